"""The Network class: W[l], b[l], forward, cost, backward, update, predict."""

import math

import numpy as np

from . import _core
from ._layers import Layers
from .reference import check_architecture, initial_parameters

_CORE_CLASSES = {
    np.dtype("float32"): (_core.Network32, "32"),
    np.dtype("float64"): (_core.Network64, "64"),
}


def _parse_dtype(dtype):
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dtype not in _CORE_CLASSES:
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


class Cache:
    """What a forward pass keeps for backpropagation, for a batch of m examples.

    Z[l] (l = 1..L) and A[l] (l = 0..L) are arrays of shape (n[l], m) and the
    network's dtype, F-ordered views of memory this cache owns; A[0] is X as
    the core read it. A later forward leaves this cache unchanged unless the
    cache is handed to it as ``out=``, which overwrites these arrays in place.
    """

    __slots__ = ("_core", "_network", "Z", "A")

    def __init__(self, network, m):
        self._core = network._core.new_cache(m)
        self._network = network
        self.Z = Layers("Z", {l: self._core.Z(l) for l in range(1, network.L + 1)})
        self.A = Layers("A", {l: self._core.A(l) for l in range(1, network.L + 1)})

    @property
    def m(self):
        """The number of examples (columns) of the batch."""
        return self._core.m

    def __repr__(self):
        return f"<mlpcore.Cache of m = {self.m}: Z[1..L], A[0..L]>"


class Gradients:
    """What a backward pass computes, for a batch of m examples.

    dW[l] (n[l], n[l-1]) and db[l] (n[l], 1) for l = 1..L are dJ/dW[l], dJ/db[l].
    dZ[l] (n[l], m) for l = 1..L and dA[l] (n[l], m) for l = 1..L-1 are m times
    dJ/dZ[l], dJ/dA[l] (the per-example convention); dA[L] = A[L] - Y exists for
    mse only, dA[0] after a backward with compute_dA0=True. All are F-ordered
    views, in the network's dtype, of memory this object owns; dW and db lie in
    one flat buffer laid out like the network's parameters.
    """

    __slots__ = ("_core", "_network", "dW", "db", "dZ", "dA")

    def __init__(self, network, m):
        self._core = network._core.new_gradients(m)
        self._network = network
        L = network.L
        self.dW = Layers("dW", {l: self._core.dW(l) for l in range(1, L + 1)})
        self.db = Layers("db", {l: self._core.db(l) for l in range(1, L + 1)})
        self.dZ = Layers("dZ", {l: self._core.dZ(l) for l in range(1, L + 1)})
        last_dA = L if network.cost_name == "mse" else L - 1
        self.dA = Layers("dA", {l: self._core.dA(l) for l in range(1, last_dA + 1)})

    @property
    def m(self):
        """The number of examples (columns) of the batch."""
        return self._core.m

    def _show_dA0(self):
        if 0 not in self.dA and self._core.has_dA0:
            self.dA._set(0, self._core.dA(0))

    def __repr__(self):
        return f"<mlpcore.Gradients of m = {self.m}: dW, db, dZ, dA>"


class Network:
    """A dense feed-forward network of L layers, computed by mlpcore's C++ core.

    Parameters
    ----------
    layer_sizes : sequence of int
        n[0], n[1], ..., n[L]: input features, then the units of each layer.
    activations : sequence of L activation specs
        One per layer 1..L: "identity" (or "linear"), "step", "sigmoid",
        "tanh", "relu", "leaky_relu", "elu", "softmax" (output only), or a pair
        such as ("leaky_relu", {"alpha": 0.2}) (leaky_relu alpha 0.01 and elu
        alpha 1.0 by default).
    cost : {"mse", "bce", "cce"}
        mse with any output but softmax; bce with a sigmoid output; cce with a
        softmax output of at least 2 units.
    dtype : "float32" (default) or "float64"
        The dtype of every parameter and computation.
    init : "auto", "he", "xavier", "glorot", "small", or a list of L of them
        How W[l] is drawn; "auto" is he for relu, leaky_relu and elu layers
        and xavier for the others. See ``mlpcore.reference.initial_parameters``.
    bias : float
        The initial value of every b[l] (default 0).
    seed : int or None
        Seed of the initial parameters; the same seed gives the same network.

    Attributes
    ----------
    L : int, the number of layers with weights.
    n : tuple of int, n[0..L].
    W, b : W[l] (n[l], n[l-1]) and b[l] (n[l], 1) for l = 1..L, writable
        F-ordered views of the core's one flat parameter buffer: writing into
        them changes the network.
    params : the flat parameter buffer itself, 1-D, writable (W[1], b[1], ..., W[L], b[L]).
    activations : tuple of L (name, params) pairs; cost_name : str; dtype : numpy.dtype.
    """

    def __init__(self, layer_sizes, activations, cost, dtype="float32", init="auto", bias=0.0, seed=None):
        self.activations = tuple(check_architecture(layer_sizes, activations, cost))
        self.dtype = _parse_dtype(dtype)
        W, b = initial_parameters(layer_sizes, self.activations, init, bias, seed, self.dtype)
        core_class, self._suffix = _CORE_CLASSES[self.dtype]
        self._core = core_class(list(layer_sizes), [(name, params.get("alpha", 0.0))
                                                    for name, params in self.activations], cost)
        self.cost_name = cost
        self.L = self._core.L
        self.n = tuple(self._core.n)
        self.params = self._core.params
        self.W = Layers("W", {l: self._core.W(l) for l in range(1, self.L + 1)})
        self.b = Layers("b", {l: self._core.b(l) for l in range(1, self.L + 1)})
        for l in range(1, self.L + 1):
            self.W[l] = W[l]
            self.b[l] = b[l]

    def __repr__(self):
        names = ", ".join(name if not params else f"{name}({params['alpha']:g})"
                          for name, params in self.activations)
        return (f"mlpcore.Network(n={list(self.n)}, activations=[{names}], cost={self.cost_name!r}, "
                f"dtype={self.dtype.name}, parameters={self.params.size})")

    def forward(self, X, out=None):
        """Forward propagation: Z[l] = W[l] A[l-1] + b[l], A[l] = g[l](Z[l]) for l = 1..L.

        X : array of shape (n[0], m), one column per example (``X_rows.T`` of a
            row-per-example array). Real or integer dtypes are converted to the
            network's dtype; F- and C-ordered arrays are read without a copy.
        out : a Cache of this network with the same m, to fill in place.
        Returns the Cache with Z[l], A[l] of shape (n[l], m).
        """
        X = self._matrix(X, "X")
        if X.ndim != 2 or X.shape[1] == 0:
            raise ValueError(f"X must be 2-D of shape (n[0], m) = ({self.n[0]}, m) with m >= 1, got shape {X.shape}")
        if out is None:
            out = Cache(self, X.shape[1])
        elif not isinstance(out, Cache):
            raise TypeError(f"out must be a mlpcore.Cache, got {type(out).__name__}")
        self._require_own(out, "out cache")
        self._core.forward(X, out._core)
        out.A._set(0, out._core.X)
        return out

    def cost(self, A_L, Y):
        """The cost J of the output A_L = A[L], shape (n[L], m), against the targets Y.

        mse: J = 1/(2m) sum (A[L] - Y)^2; bce: J = -(1/m) sum [Y log A[L] + (1 - Y) log(1 - A[L])];
        cce: J = -(1/m) sum Y log A[L]; the log is of A[L] clipped to [eps, 1 - eps]
        (eps 1e-7 in float32, 1e-15 in float64). Y is (n[L], m), or (m,) when n[L] = 1,
        or for cce integer labels 0..n[L]-1 of shape (m,). Returns a float.
        """
        return self._core.J(self._matrix(A_L, "A[L]"), self._targets(Y))

    def backward(self, cache, Y, out=None, compute_dA0=False):
        """Backpropagation of the cost of ``cache`` (this network's forward of m examples) against Y.

        dZ[L] = A[L] - Y for sigmoid + bce and softmax + cce; for mse dA[L] = A[L] - Y and
        dZ[L] = dA[L] * g'(Z[L]). Then for l = L..1: dW[l] = (1/m) dZ[l] A[l-1]^T,
        db[l] = (1/m) sum over columns of dZ[l], dA[l-1] = W[l]^T dZ[l] (dA[0] only when
        compute_dA0), dZ[l-1] = dA[l-1] * g'(Z[l-1]).
        Y : as for ``cost``, with the cache's m. out : Gradients of this network and m to fill.
        Returns the Gradients.
        """
        if not isinstance(cache, Cache):
            raise TypeError(f"cache must be a mlpcore.Cache from forward, got {type(cache).__name__}")
        self._require_own(cache, "cache")
        if out is None:
            out = Gradients(self, cache.m)
        elif not isinstance(out, Gradients):
            raise TypeError(f"out must be mlpcore.Gradients, got {type(out).__name__}")
        self._require_own(out, "out gradients")
        self._core.backward(cache._core, self._targets(Y), out._core, bool(compute_dA0))
        out._show_dA0()
        return out

    def update(self, grads, learning_rate):
        """Gradient descent: W[l] -= learning_rate dW[l], b[l] -= learning_rate db[l], for l = 1..L.

        grads : Gradients from this network's backward. learning_rate : a finite float >= 0.
        One pass over the flat parameter buffer.
        """
        if not isinstance(grads, Gradients):
            raise TypeError(f"grads must be mlpcore.Gradients, got {type(grads).__name__}")
        self._require_own(grads, "grads")
        if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float, np.integer, np.floating)):
            raise TypeError(f"learning_rate must be a real number, got {learning_rate!r}")
        if not (math.isfinite(learning_rate) and learning_rate >= 0):
            raise ValueError(f"learning_rate must be finite and >= 0, got {learning_rate!r}")
        self._core.update(grads._core, float(learning_rate))

    def predict(self, X):
        """Predictions for X of shape (n[0], m).

        mse: A[L], float (n[L], m); bce: int64 (n[L], m), 1 where A[L] >= 0.5;
        cce: int64 class index of the largest A[L], shape (m,).
        """
        A_L = self.forward(X).A[self.L]
        if self.cost_name == "mse":
            return A_L
        if self.cost_name == "bce":
            return (A_L >= 0.5).astype(np.int64)
        return A_L.argmax(axis=0).astype(np.int64)

    def _require_own(self, result, name):
        """Refuse a Cache or Gradients that another network made."""
        if result._network is not self:
            raise ValueError(f"the {name} belongs to another network ({result._network!r}), not to this one")

    def _matrix(self, X, name):
        """X as an array of the network's dtype that the core reads without copying."""
        X = np.asarray(X)
        if X.dtype.kind not in "fiu":
            raise TypeError(f"{name} must hold real numbers (float or int), got dtype {X.dtype}")
        X = X.astype(self.dtype, copy=False)
        if not (X.flags.f_contiguous or X.flags.c_contiguous):
            X = np.asfortranarray(X)
        return X

    def _targets(self, Y):
        """Y as the core takes it: int64 labels (m,) for cce, else a matrix of the network's dtype."""
        Y = np.asarray(Y)
        if self.cost_name == "cce" and Y.ndim == 1:
            if Y.dtype.kind not in "iu":
                raise TypeError(f"cce labels of shape (m,) must be integers 0..{self.n[-1] - 1}, "
                                f"got dtype {Y.dtype}")
            return np.ascontiguousarray(Y, dtype=np.int64)
        return self._matrix(Y, "Y")
