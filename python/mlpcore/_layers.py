"""Per-layer arrays indexed as on paper: layers[l] for l in the layers that exist."""

from collections.abc import ItemsView, KeysView, Mapping, ValuesView


class LayerIndexError(IndexError, KeyError):
    """A layer number with no array: an IndexError, and a KeyError as a dict's missing key is."""

    def __str__(self):
        return str(self.args[0])  # not KeyError's repr of it


class Layers:
    """Arrays of a network's layers, indexed by layer number as in the notation.

    ``layers[l]`` is the array of layer l; an index with no array raises
    LayerIndexError (an IndexError and a KeyError) naming the indices that
    exist. As a dict keyed by layer number (which the functions of
    mlpcore.reference take): iterating and ``keys()`` yield the layer numbers
    in order, ``values()`` the arrays, ``items()`` the pairs; ``len`` counts
    them; ``indices`` lists the layer numbers.
    """

    __slots__ = ("_name", "_arrays", "_make")

    def __init__(self, name, arrays, make=None):
        """arrays: {l: array}; or, with make, the layer numbers l whose array make(l) gives the first
        time it is asked for (a Cache's or Gradients' views, most of which a loop never reads)."""
        self._name = name
        self._make = make
        self._arrays = dict(arrays) if make is None else dict.fromkeys(arrays)

    def __getitem__(self, l):
        try:
            array = self._arrays[l]
        except (KeyError, TypeError):
            raise LayerIndexError(f"{self._name}[{l!r}] does not exist; {self._name} has the layers "
                                  f"{self.indices}") from None
        if array is None:  # not made yet
            array = self._arrays[l] = self._make(l)
        return array

    def __setitem__(self, l, value):
        self[l][...] = value

    def _set(self, l, array):
        self._arrays[l] = array

    def _remove(self, l):
        self._arrays.pop(l, None)

    @property
    def indices(self):
        """The layer numbers l that have an array, ascending: a list of ints."""
        return sorted(self._arrays)

    def __len__(self):
        return len(self._arrays)

    def __iter__(self):
        return iter(self.indices)

    def keys(self):
        """The layer numbers, ascending, as a dict's keys view."""
        return KeysView(self)

    def values(self):
        """The arrays in layer order (layer l's of shape (n[l], m), (n[l], n[l-1]) or (n[l], 1) as
        the notation says, in the network's dtype), as a dict's values view."""
        return ValuesView(self)

    def items(self):
        """The pairs (l, array) in layer order, as a dict's items view."""
        return ItemsView(self)

    def get(self, l, default=None):
        """layers[l], or default if layer l has no array."""
        return self[l] if l in self._arrays else default

    def __contains__(self, l):
        return l in self._arrays

    def __repr__(self):
        shapes = ", ".join(f"{l}: {self[l].shape}" for l in self.indices)
        return f"<{self._name}: {{{shapes}}}>"


Mapping.register(Layers)  # what takes a dict keyed by layer number (mlpcore.reference) takes Layers
