"""Per-layer arrays indexed as on paper: layers[l] for l in the layers that exist."""


class Layers:
    """Arrays of a network's layers, indexed by layer number as in the notation.

    ``layers[l]`` is the array of layer l; an index with no array raises
    IndexError naming the indices that exist. Iterating yields the arrays in
    layer order; ``len`` counts them; ``indices`` lists the layer numbers.
    """

    __slots__ = ("_name", "_arrays")

    def __init__(self, name, arrays):
        self._name = name
        self._arrays = dict(arrays)

    def __getitem__(self, l):
        try:
            return self._arrays[l]
        except (KeyError, TypeError):
            raise IndexError(f"{self._name}[{l!r}] does not exist; {self._name} has the layers "
                             f"{self.indices}") from None

    def __setitem__(self, l, value):
        self[l][...] = value

    def _set(self, l, array):
        self._arrays[l] = array

    def _remove(self, l):
        self._arrays.pop(l, None)

    @property
    def indices(self):
        return sorted(self._arrays)

    def __len__(self):
        return len(self._arrays)

    def __iter__(self):
        return (self._arrays[l] for l in self.indices)

    def __contains__(self, l):
        return l in self._arrays

    def __repr__(self):
        shapes = ", ".join(f"{l}: {self._arrays[l].shape}" for l in self.indices)
        return f"<{self._name}: {{{shapes}}}>"
