"""The Network class: W[l], b[l], forward, cost, backward, update, predict."""

import contextlib
import os

import numpy as np

from . import _core
from ._checks import held_by, is_integer, is_real, largest, require_flag, transpose_hint
from . import io as saving
from ._layers import Layers
from .optim import Optimizer, update_divergence
from .reference import check_architecture, initial_parameters
from .training import fit

_CORE_CLASSES = {np.dtype("float32"): _core.Network32, np.dtype("float64"): _core.Network64}
_MAX_UNITS = 2**31 - 1  # the units a layer may have


def _per_layer(values, count, default, name, what, valid, valid_text):
    """A tuple of `count` per-layer values, `default` for each when values is None."""
    if values is None:
        return (default,) * count
    unordered = isinstance(values, (dict, set, frozenset))  # a dict would give its keys
    if unordered or isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or len(values) != count:
        raise ValueError(f"{name} takes a sequence of {count} {what}, got {values!r}")
    for value in values:
        if not valid(value):
            raise ValueError(f"{name} values must be {valid_text}, got {value!r}")
    return tuple(type(default)(value) for value in values)


def check_layer_sizes(layer_sizes):
    """Refuse (ValueError) checked layer sizes past the core's limit of 2^31-1 units a layer
    (sizes past 2^63 would not even reach it)."""
    if max(layer_sizes) > _MAX_UNITS:
        raise ValueError(f"every layer needs 1..2^31-1 units, got n = {list(layer_sizes)}")


def _layer_settings(layer_sizes, activations, dtype, dropout, batch_norm, bn_eps, bn_momentum):
    """Network's per-layer arguments checked: (dropout, a drop probability for each layer 1..L
    with layer L's 0; batch_norm, a bool for each; the core's (name, alpha, batch_norm, dropout)
    of each layer)."""
    L = len(activations)
    dropout = _per_layer(dropout, L - 1, 0.0, "dropout", "drop probabilities for layers 1..L-1",
                         lambda p: is_real(p) and 0 <= p < 1, "in [0, 1)") + (0.0,)
    batch_norm = _per_layer(batch_norm, L, False, "batch_norm", "flags for layers 1..L",
                            lambda flag: isinstance(flag, (bool, np.bool_)), "bools")
    for name, params in activations:
        if not held_by(params.get("alpha", 0.0), dtype):
            raise ValueError(f"the alpha of {name} must be finite in {dtype.name}, got {params['alpha']!r}")
    if not (held_by(bn_eps, dtype) and dtype.type(bn_eps) > 0):
        raise ValueError(f"bn_eps must be a real number > 0 finite in {dtype.name} (and not rounding to 0 there), "
                         f"got {bn_eps!r}")
    if not (is_real(bn_momentum) and 0 <= bn_momentum <= 1):
        raise ValueError(f"bn_momentum must be a real number in [0, 1], got {bn_momentum!r}")
    check_layer_sizes(layer_sizes)
    layers = [(name, params.get("alpha", 0.0), bool(flag), float(p))
              for (name, params), flag, p in zip(activations, batch_norm, dropout)]
    return dropout, batch_norm, layers


def _parse_dtype(dtype):
    if dtype is None:  # np.dtype(None) is float64, while Network's default is float32
        raise TypeError("dtype must be float32 or float64, got None")
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
    network's dtype, F-ordered views of memory this cache owns; A[0] is a
    read-only view of X as the core read it (X itself, when it needed no
    conversion: changing X changes what backward computes). Batch-norm layers also have Z_norm[l] and Z_tilde[l]
    (n[l], m); after a training forward, dropout layers have their 0/1 masks
    D[l] (n[l], m), in the network's dtype (1 = kept). A later forward leaves this cache unchanged unless the
    cache is handed to it as ``out=``, which overwrites these arrays in place. A forward into the
    cache while a call on another thread uses it (a forward into it, or a backward reading it)
    raises RuntimeError; backwards may read it at once.

    Cache(network, m) makes an empty cache of the Network network for a batch of m examples
    (an int, 1 <= m < 2^31), to pass to forward as ``out=`` with an X of exactly m columns
    (another m is refused with ValueError). A cache is not pickled or
    copied (TypeError): it is a batch's working memory in the core.
    """

    __slots__ = ("_core", "_network", "Z", "A", "Z_norm", "Z_tilde", "D")

    def __reduce__(self):
        raise TypeError("a mlpcore.Cache is not pickled or copied: it is a batch's working memory in the core; "
                        "pickle the network, and run its forward again")

    def __init__(self, network, m):
        m = _examples(network, m)
        self._core = network._core.new_cache(m)
        self._network = network
        L = network.L
        self.Z = Layers("Z", range(1, L + 1), self._core.Z)
        self.A = Layers("A", range(1, L + 1), self._core.A)
        self.Z_norm = Layers("Z_norm", network._batch_norm_layers, self._core.Z_norm)
        self.Z_tilde = Layers("Z_tilde", network._batch_norm_layers, self._core.Z_tilde)
        self.D = Layers("D", {})

    def _pass(self, *arguments):
        """The core's forward(X, this cache's core, training, converted), shown (see _show_pass);
        None when the core did not take X as it was. A pass that failed part-way (a batch-norm
        layer's statistics not finite) leaves the cache holding no forward: A[0] and D go."""
        try:
            A0 = self._network._core.forward(*arguments)
        except ValueError:
            if not self._core.holds_forward:
                self.A._remove(0)
                self.D = Layers("D", {})
            raise
        return None if A0 is None else self._show_pass(A0)

    def _show_pass(self, A0):
        """After a forward: A[0] is A0, the read-only view of its X that the core returned; D[l] are
        its dropout masks if it was a training pass. Returns the cache."""
        self.A._set(0, A0)
        if self._network._dropout_layers:
            dropout_layers = self._network._dropout_layers if self._core.training else ()
            self.D = Layers("D", dropout_layers, self._core.D)
        return self

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
    mse only, dA[0] after a backward with compute_dA0=True. Batch-norm layers have
    dgamma[l], dbeta[l] (n[l], 1). All are F-ordered
    views, in the network's dtype, of memory this object owns; dW and db lie in
    one flat buffer laid out like the network's parameters. A backward into them
    while a call on another thread uses them (a backward into them, an update or
    an optimizer's step reading them) raises RuntimeError; updates and steps may
    read them at once.

    Gradients(network, m) makes empty gradients of the Network network for a batch of m
    examples (an int, 1 <= m < 2^31), to pass to backward as ``out=`` with a cache of exactly
    m examples (another m is refused with ValueError); update and optimizer steps refuse
    them while nothing has written them (all zero, no backward). They are not
    pickled or copied (TypeError): copy the arrays, such as grads.dW[l], that you keep.
    """

    __slots__ = ("_core", "_network", "dW", "db", "dZ", "dA", "dgamma", "dbeta")

    def __reduce__(self):
        raise TypeError("mlpcore.Gradients are not pickled or copied: they are a batch's working memory in the core; "
                        "copy the arrays you keep (np.array(grads.dW[l]))")

    def __init__(self, network, m):
        m = _examples(network, m)
        self._core = network._core.new_gradients(m)
        self._network = network
        L = network.L
        self.dW = Layers("dW", range(1, L + 1), self._core.dW)
        self.db = Layers("db", range(1, L + 1), self._core.db)
        self.dZ = Layers("dZ", range(1, L + 1), self._core.dZ)
        last_dA = L if network.cost_name == "mse" else L - 1
        self.dA = Layers("dA", range(1, last_dA + 1), self._core.dA)
        self.dgamma = Layers("dgamma", network._batch_norm_layers, self._core.dgamma)
        self.dbeta = Layers("dbeta", network._batch_norm_layers, self._core.dbeta)

    @property
    def m(self):
        """The number of examples (columns) of the batch."""
        return self._core.m

    def _show_dA0(self, computed):
        """dA[0] is shown after a backward that computed it, and only then. Returns the gradients."""
        if computed:
            self.dA._set(0, self._core.dA(0))
        else:
            self.dA._remove(0)
        return self

    def __repr__(self):
        return f"<mlpcore.Gradients of m = {self.m}: dW, db, dZ, dA>"


def _examples(network, m):
    """m, the examples of a Cache or Gradients of network; TypeError unless network is a Network
    and m an int (not a bool); the core refuses m outside 1..2^31-1."""
    if not isinstance(network, Network):
        raise TypeError(f"network must be a mlpcore.Network, got {type(network).__name__}")
    if not is_integer(m):
        raise TypeError(f"m must be an int (the number of examples), got {m!r}")
    return int(m)


def _described(value):
    """An array by its shape and dtype, anything else by its type."""
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    return f"a {type(value).__name__}"


class Network:
    """A dense feed-forward network of L layers, computed by mlpcore's C++ core.

    Parameters
    ----------
    layer_sizes : sequence of int
        n[0], n[1], ..., n[L]: input features, then the units of each layer
        (each 1..2^31-1).
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
        Seed of the initial parameters (and of the dropout masks of forward
        passes outside fit); the same seed gives the same network.
    dropout : None or sequence of L-1 floats in [0, 1)
        Drop probability p of inverted dropout on A[1..L-1] in training-mode
        forward passes: A[l] = g(.) * D[l] / (1 - p), D[l] a 0/1 mask.
    batch_norm : None or sequence of L bools
        Which layers normalise Z[l] over the batch before the activation:
        Z_norm = (Z - mu) / sqrt(var + bn_eps), Z_tilde = gamma Z_norm + beta,
        A = g(Z_tilde); inference uses running statistics updated with
        bn_momentum, as torch.nn.BatchNorm1d does.
    bn_eps : float > 0, finite in dtype and not rounding to 0 there
        The eps of sqrt(var + bn_eps) in batch-norm layers (default 1e-5).
    bn_momentum : float in [0, 1]
        The rate at which each training forward moves the running statistics
        towards the batch's mean and (unbiased) variance: running =
        (1 - bn_momentum) running + bn_momentum batch's (default 0.1; 0 keeps
        the initial statistics, 1 keeps only the last batch's).

    Attributes
    ----------
    L : int, the number of layers with weights.
    n : tuple of int, n[0..L].
    W, b : W[l] (n[l], n[l-1]) and b[l] (n[l], 1) for l = 1..L, writable
        F-ordered views of the core's one flat parameter buffer: writing into
        them changes the network.
    gamma, beta : gamma[l], beta[l] (n[l], 1) of batch-norm layers, views of
        the same buffer; running_mean, running_var : (n[l], 1) views of their
        running statistics (state, not parameters).
    params : the flat parameter buffer itself, 1-D, writable, in the network's
        dtype, layer after layer: W[1] (column-major), b[1] (, gamma[1],
        beta[1] in a batch-norm layer), then W[2], b[2] ... up to layer L.
    activations : tuple of L (name, params) pairs; cost_name : str; dtype : numpy.dtype.
    optimizer : the optimizer of the last fit or of the last step of an optimizer
        (opt.step(net, grads)), with its state; None before either.
    history : the per-epoch figures of the last fit (None before).
    metadata : dict of JSON values kept with the network by save and load ({} by default).
    """

    # Attributes fixed when the network is made: assigning one would leave the core unchanged
    # without a word, so it is refused (reading them is a plain attribute's lookup).
    _ARCHITECTURE = frozenset(("L", "n", "activations", "cost_name", "dtype", "dropout", "batch_norm", "bn_eps",
                               "bn_momentum"))
    _CORE_BUFFERS = frozenset(("params", "W", "b", "gamma", "beta", "running_mean", "running_var"))

    # Attributes that fit and save read, and the types they take (None too).
    _KINDS = {"optimizer": (Optimizer, "a mlpcore.optim.Optimizer"), "history": (dict, "a dict of per-epoch lists")}

    def __setattr__(self, name, value):
        self._require_replaceable(name)
        kind, described = self._KINDS.get(name, (object, None))
        if not (value is None or isinstance(value, kind)):
            raise TypeError(f"net.{name} must be {described} or None, got {type(value).__name__}")
        super().__setattr__(name, value)

    def __delattr__(self, name):
        self._require_replaceable(name)
        super().__delattr__(name)

    def _require_replaceable(self, name):
        """Refuse to assign or delete a fixed attribute (see _ARCHITECTURE and _CORE_BUFFERS)."""
        if name in self._CORE_BUFFERS:
            into = "net.params[...] = values" if name == "params" else f"net.{name}[l] = values"
            raise AttributeError(f"net.{name} shows the core's memory and cannot be replaced; write into it "
                                 f"instead: {into}")
        if name in self._ARCHITECTURE:
            raise AttributeError(f"net.{name} is fixed when the network is made; make a new Network for another")

    def __init__(self, layer_sizes, activations, cost, dtype="float32", init="auto", bias=0.0, seed=None,
                 dropout=None, batch_norm=None, bn_eps=1e-5, bn_momentum=0.1):
        activations = tuple(check_architecture(layer_sizes, activations, cost))
        dtype = _parse_dtype(dtype)
        L = len(activations)
        dropout, batch_norm, layers = _layer_settings(layer_sizes, activations, dtype, dropout, batch_norm, bn_eps,
                                                      bn_momentum)
        # the core first: it refuses sizes it cannot hold before initial_parameters draws W in float64
        core = _CORE_CLASSES[dtype](list(layer_sizes), layers, cost, float(bn_eps), float(bn_momentum))
        W, b = initial_parameters(layer_sizes, activations, init, bias, seed, dtype)
        core.dropout_seed = int(np.random.SeedSequence(seed).generate_state(1, np.uint64)[0])
        self._core = core
        self._batch_norm_layers = tuple(l for l in range(1, L + 1) if batch_norm[l - 1])
        self._dropout_layers = tuple(l for l in range(1, L) if dropout[l - 1] > 0)
        self.__dict__.update(  # the fixed attributes (see __setattr__)
            L=core.L, n=tuple(core.n), activations=activations, cost_name=cost, dtype=dtype, dropout=dropout,
            batch_norm=batch_norm, bn_eps=float(bn_eps), bn_momentum=float(bn_momentum), params=core.params,
            W=Layers("W", {l: core.W(l) for l in range(1, L + 1)}),
            b=Layers("b", {l: core.b(l) for l in range(1, L + 1)}),
            **{name: Layers(name, {l: getattr(core, name)(l) for l in self._batch_norm_layers})
               for name in ("gamma", "beta", "running_mean", "running_var")})
        for l in range(1, L + 1):
            self.W[l] = W[l]
            self.b[l] = b[l]
        self.optimizer = None
        self.history = None
        self.metadata = {}
        self._fit_memory = {}

    def __repr__(self):
        names = ", ".join(name if not params else f"{name}({params['alpha']:g})"
                          for name, params in self.activations)
        extras = "".join(f", {name}={value}" for name, value in
                         (("dropout", list(self.dropout[:-1])), ("batch_norm", list(self.batch_norm)))
                         if any(value))
        return (f"mlpcore.Network(n={list(self.n)}, activations=[{names}], cost={self.cost_name!r}, "
                f"dtype={self.dtype.name}{extras}, parameters={self.params.size})")

    def forward(self, X, out=None, training=True):
        """Forward propagation: Z[l] = W[l] A[l-1] + b[l], A[l] = g[l](Z[l]) for l = 1..L.

        X : array of shape (n[0], m), one column per example (``X_rows.T`` of a
            row-per-example array). Real or integer dtypes are converted to the
            network's dtype; F- and C-ordered arrays are read without a copy.
        out : a Cache of this network with the same m, to fill in place.
        training : True (default): the path backward follows: batch statistics in
            batch-norm layers (whose running statistics it updates; needs m >= 2),
            dropout masks drawn. False: running statistics, no dropout (inference).
        Returns the Cache with Z[l], A[l] of shape (n[l], m).
        With set_num_threads(k > 1) and m times the weights of 2^23 and more, it runs on
        min(k, m // 16) threads (16 examples a thread at least), each on its share of the
        columns; the same numbers as one thread to rounding (the same dropout masks).
        """
        if type(training) is bool and type(out) is Cache and out._network is self:  # X looked at in the core
            shown = out._pass(X, out._core, training, False)
            if shown is not None:
                return shown
        X = self._matrix(X, "X", rows=self.n[0])
        out = self._out(out, Cache, X.shape[1], "X")
        return out._pass(X, out._core, require_flag(training, "training"), True)

    def cost(self, A_L, Y):
        """The cost J of the output A_L = A[L], shape (n[L], m), against the targets Y.

        mse: J = 1/(2m) sum (A[L] - Y)^2; bce: J = -(1/m) sum [Y log A[L] + (1 - Y) log(1 - A[L])];
        cce: J = -(1/m) sum Y log A[L]; the log is of A[L] clipped to [eps, 1 - eps]
        (eps 1e-7 in float32, 1e-15 in float64). Y is (n[L], m), or (m,) when n[L] = 1,
        or for cce integer labels 0..n[L]-1 of shape (m,). Returns a float.
        For bce and cce, A[L] holds probabilities: a value outside [0, 1] is refused.
        """
        if isinstance(A_L, (Layers, Cache, Gradients, dict)):
            raise TypeError(f"A_L must be the array A[L], got a {type(A_L).__name__}: pass cache.A[net.L]")
        A_L = self._matrix(A_L, "A[L]")
        if A_L.ndim == 2 and A_L.shape[0] != self.n[-1]:
            raise ValueError(f"A[L] must have n[L] = {self.n[-1]} rows, got shape {A_L.shape}"
                             + (transpose_hint("A_L", A_L.shape, self.n[-1]) or ": pass cache.A[net.L], the output "
                                                                                  "layer's"))
        if self.cost_name != "mse" and np.any((A_L < 0) | (A_L > 1)):
            raise ValueError(f"A[L] of a {self.cost_name} network holds probabilities in [0, 1], got values from "
                             f"{np.nanmin(A_L):g} to {np.nanmax(A_L):g}")
        return self._core.J(A_L, self._targets(Y))

    def backward(self, cache, Y, out=None, compute_dA0=False):
        """Backpropagation of the cost of ``cache`` (this network's forward of m examples) against Y.

        dZ[L] = A[L] - Y for sigmoid + bce and softmax + cce; for mse dA[L] = A[L] - Y and
        dZ[L] = dA[L] * g'(Z[L]). Then for l = L..1: dW[l] = (1/m) dZ[l] A[l-1]^T,
        db[l] = (1/m) sum over columns of dZ[l], dA[l-1] = W[l]^T dZ[l] (dA[0] only when
        compute_dA0), dZ[l-1] = dA[l-1] * g'(Z[l-1]).
        Y : as for ``cost``, with the cache's m. out : Gradients of this network and m to fill.
        The cache must come from a training-mode forward (forward(X) or forward(X,
        training=True)): one of forward(X, training=False) is refused with ValueError.
        Returns the Gradients. Threads as for forward.
        """
        if type(compute_dA0) is bool and type(cache) is Cache and cache._network is self \
                and type(out) is Gradients and out._network is self \
                and self._core.backward(cache._core, Y, out._core, compute_dA0, False):  # Y looked at in the core
            return out._show_dA0(compute_dA0)
        if not isinstance(cache, Cache):
            raise TypeError(f"cache must be a mlpcore.Cache from forward, got {type(cache).__name__}")
        self._require_own(cache, "cache")
        out = self._out(out, Gradients, cache.m, "the cache")
        compute_dA0 = require_flag(compute_dA0, "compute_dA0")
        self._core.backward(cache._core, self._targets(Y), out._core, compute_dA0, True)
        return out._show_dA0(compute_dA0)

    def gradient_views(self, flat):
        """dW[l], db[l] (and dgamma[l], dbeta[l] of batch-norm layers) as views of a flat buffer
        laid out like net.params, such as the flat gradient that fit's gradient_hook gets.

        flat : 1-D array of net.params' size and the network's dtype.
        Returns {"dW": Layers, "db": Layers, "dgamma": Layers, "dbeta": Layers} of F-ordered
        views, shaped as W[l] (n[l], n[l-1]), b[l], gamma[l], beta[l] (n[l], 1): reading them
        reads flat, writing into them writes into flat.
        """
        if not isinstance(flat, np.ndarray) or flat.dtype != self.dtype or flat.shape != self.params.shape:
            raise ValueError(f"flat must be a 1-D {self.dtype.name} array of net.params' size "
                             f"({self.params.size}), got {_described(flat)}")
        start = self.params.__array_interface__["data"][0]

        def view(array):
            offset = (array.__array_interface__["data"][0] - start) // self.dtype.itemsize
            return flat[offset:offset + array.size].reshape(array.shape, order="F")
        return {"d" + name: Layers("d" + name, {l: view(layers[l]) for l in layers})
                for name, layers in (("W", self.W), ("b", self.b), ("gamma", self.gamma), ("beta", self.beta))}

    def update(self, grads, learning_rate):
        """Gradient descent: W[l] -= learning_rate dW[l], b[l] -= learning_rate db[l], for l = 1..L.

        grads : Gradients from this network's backward. learning_rate : a finite float >= 0.
        Over the flat parameter buffer (gamma[l] and beta[l] of batch-norm layers move too),
        rounded as fit's plain SGD step where fit keeps the gradient (a gradient_hook, clipping,
        diagnostics, batch norm, or steps under 2^20 multiply-adds); otherwise fit takes W[l] -= learning_rate dW[l] into the
        product of dW[l] itself, W[l] - (learning_rate/m) dZ[l] A[l-1]^T in place, which rounds
        differently in the last bits. Leaving the parameters as they were, raises
        ValueError when the gradients (dW, db, dgamma, dbeta) contain NaN or inf or hold
        nothing (Gradients(net, m) that neither a backward nor your code has written),
        mlpcore.DivergenceError when an updated parameter would be NaN or inf (a learning
        rate too large for these gradients), and RuntimeError during an epoch of a fit of
        this network (from another thread or its gradient hook).
        """
        if not isinstance(grads, Gradients):
            raise TypeError(f"grads must be mlpcore.Gradients, got {type(grads).__name__}")
        self._require_own(grads, "grads")
        if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float, np.integer, np.floating)):
            raise TypeError(f"learning_rate must be a real number, got {learning_rate!r}")
        if not (held_by(learning_rate, self.dtype) and learning_rate >= 0):
            raise ValueError(f"learning_rate must be finite in {self.dtype.name} and >= 0, got {learning_rate!r}")
        if not self._core.update(grads._core, float(learning_rate)):
            raise update_divergence(learning_rate, "update")

    def fit(self, X, Y, epochs=10, batch_size=32, optimizer="sgd", learning_rate=None, shuffle=True, seed=None,
            validation_data=None, validation_fraction=None, early_stopping=False, patience=10, l2=0.0,
            clip_norm=None, clip_value=None, callbacks=None, schedule=None, gradient_hook=None,
            diagnostics=False, verbose=1):
        """Train by minibatch gradient descent; the steps of each epoch run in the C++ core.

        X : (n[0], m); Y : as for ``cost`` (labels (m,) for cce, or (n[L], m)). A NaN or inf
            in X or Y raises ValueError and leaves the network as it was: Y's and validation
            data's are checked before the first step, X's before a step updates the parameters
            from them. Where the steps go into the products (see optimizer) and X is larger
            than twice the parameters, each step checks its own columns of X as it reads them
            (X is then read once, not twice), and a NaN or inf met after some steps puts back
            the parameters of the fit's start before fit raises (after Ctrl-C too, which then
            checks the rest of X).
        epochs : int >= 1. batch_size : int >= 1, or None for the whole set (batch
            gradient descent); the last minibatch of an epoch may be smaller (a last
            minibatch of one example is skipped in a batch-norm network, which needs
            batch_size >= 2).
        optimizer : "sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw", a pair
            such as ("adam", {"beta1": 0.9}) (whose dict may give the learning_rate too), or
            a ``mlpcore.optim`` object. Kept, with its state, at ``net.optimizer``: a later
            fit with the same spec continues from that state (warm start);
            ``reset_optimizer()`` forgets it. Plain SGD (without momentum) on a network
            without batch norm, with no gradient_hook, clipping or diagnostics, and steps of
            2^20 multiply-adds and more (batch size times weights), takes each step into the
            product of dW[l]: W[l] = (1 - lr l2/m) W[l] - (lr/m) dZ[l]
            A[l-1]^T in place, without forming dW[l], when the step is sure to stay finite
            (else as every other step).
        learning_rate : the base rate; default 0.01, or the optimizer object's own, or the
            pair's.
            It, l2, clip_norm and clip_value must be finite in the network's dtype
            (the clip bounds not rounding to 0 there), and so must the schedule's rate
            of each epoch of the call: all are checked before anything changes.
        shuffle, seed : each epoch visits the examples in an order drawn from seed,
            which also draws the dropout masks; the same seed and thread count give
            bit-identical parameters. Steps of 2^20 multiply-adds and more (batch size
            times weights) run on a team of mlpcore.get_num_threads() threads, each on
            its share of the batch; its results equal one thread's to rounding (which
            Adam and RMSprop can magnify where a gradient is as small as their eps).
        validation_data : (X_val, Y_val), or validation_fraction : a random share of
            X held out. Adds val_cost and val_accuracy (bce, cce) or val_r2 (mse).
        early_stopping, patience : stop when the validation cost has not improved for
            `patience` epochs, and restore the parameters (and batch-norm running
            statistics) of the best epoch; the optimizer's state and the history stay
            those of the last epoch. Without
            validation data it watches the epoch's cost (see below), as Keras watches
            its loss.
        l2 : lambda: J gains lambda/(2m) sum ||W[l]||^2 and dW[l] gains (lambda/m) W[l].
        clip_norm, clip_value : clip the flat gradient to this global norm, then to
            [-clip_value, clip_value].
        callbacks : callables callback(epoch, logs) called after each epoch, epoch counted from 0
            (DivergenceError's messages and the progress bar count from 1), with its figures
            (as the history records them, and "interrupted": True after an epoch that Ctrl-C
            ended: after the step it came in, which may have been the epoch's last); one that
            returns a true value (as bool() takes it) stops training.
        schedule : None, ("step", {...}), ("exponential", {...}), ("cosine", {...}):
            the rate of each epoch, as torch.optim.lr_scheduler (see mlpcore.schedules).
        gradient_hook : callable(flat_grads) called once per step between backward
            and update (before clipping) with a writable view of the flat gradient
            buffer (with the L2 term), which it may change in place (its return value is
            not used; what it raises ends the fit, keeping the last good step);
            ``net.gradient_views(flat_grads)["dW"][l]`` shows dW[l] in it. During
            an epoch the core keeps the current parameters in a buffer of its own: read
            net.params in callbacks, which run between epochs, not here.
        diagnostics : record after each epoch lists by layer, whose item l - 1 is layer l's
            (lists to keep the history JSON): "dW_norm" (||dW[l]|| of the
            epoch's last step), "dead_relu" (the share of a relu layer's units that are 0
            for each of the first 1000 training examples) and "saturated" (the share of a
            sigmoid or tanh layer's outputs on them within 0.01 of their bounds); None for
            layers of other activations.
        verbose : 1 shows a progress bar, 0 is silent.

        Returns the history, a dict of per-epoch lists ("cost": the mean of the
        epoch's minibatch costs J, each taken before its step's update, with the L2
        term, and weighted by its examples, so that a smaller last minibatch counts
        for its size; with l2 > 0, "l2_term": the part of "cost" that is the L2 term,
        l2/(2 m_b) sum over l of ||W[l]||^2 of each minibatch of m_b examples, so weighted;
        "learning_rate", "time" in seconds, and the validation and diagnostic figures
        asked for), also kept at ``net.history``. Ctrl-C stops after the
        current step with a consistent network and returns normally, the interrupted
        epoch in the history (when Python's own handler has SIGINT:
        a handler of the program's is called instead, an ignored SIGINT stays ignored). A NaN or inf in the cost, the
        gradient or the updated parameters raises mlpcore.DivergenceError and leaves
        the parameters and optimizer state of the last good step. A fit that ends
        (by an error, or Ctrl-C) before it keeps a step leaves the network as it was:
        its parameters, optimizer (and that optimizer's learning rate and state),
        history and dropout seeds; after a kept step, it keeps the fit's optimizer and
        the history of the epochs done (an error's epoch is not in it). A network trains in
        one fit at a time: a second fit of it meanwhile (on another thread, or from a
        hook or callback) raises RuntimeError, and so do update and an optimizer's
        step during an epoch.
        """
        with self._one_fit_at_a_time():
            return fit(self, X, Y, epochs=epochs, batch_size=batch_size, optimizer=optimizer,
                       learning_rate=learning_rate, shuffle=shuffle, seed=seed, validation_data=validation_data,
                       validation_fraction=validation_fraction, early_stopping=early_stopping, patience=patience,
                       l2=l2, clip_norm=clip_norm, clip_value=clip_value, callbacks=callbacks, schedule=schedule,
                       gradient_hook=gradient_hook, diagnostics=diagnostics, verbose=verbose)

    @contextlib.contextmanager
    def _one_fit_at_a_time(self):
        """The network's fit flag for the block; RuntimeError, before anything changes, when
        another fit holds it (or a fit of the parent of this forked process did at the fork)."""
        running = (os.getpid(), object())
        try:
            held = self.__dict__.setdefault("_fit_running", running)  # one call: atomic under the GIL
            if held is not running and held[0] == running[0]:
                raise RuntimeError("another fit of this network is running (on another thread, or this fit was "
                                   "started from its gradient hook or a callback); one network trains in one fit "
                                   "at a time")
            if held is not running:
                raise RuntimeError("this process was forked while a thread of its parent was fitting this network, "
                                   "so its parameters may be those of a step in progress; train a copy made "
                                   "before the fork, or load a saved one")
            yield
        finally:
            if self.__dict__.get("_fit_running") is running:
                del self.__dict__["_fit_running"]

    def memory_bytes(self, breakdown=False):
        """The bytes of mlpcore's own buffers for this network: its parameters and running
        statistics, and those the last fit trained with (the gradient, the optimizer's state with
        the spare copies a step writes into, and one batch's workspace with the epoch's order of
        the examples), and the cache that predict keeps for its next call of the same m. Those of
        the fit are its figures while it ran: when it returns, it frees all but the optimizer's
        state (without its spares), which net.optimizer keeps. The state of an optimizer used
        only through its step is not counted, nor are the caches and gradients that forward and
        backward return (the caller holds those), nor what each thread keeps for any network's
        products: BLAS's buffers, and on CPUs with AVX-512 the copy of a W[l]^T that backward
        transposes for the core's own kernels (up to an eighth of a core's L2 a dtype), or the
        copies of a large product's panels and its packed right factor (up to 1.1 MiB in
        float32, 2.1 MiB in float64). These
        are the bytes reserved: where a buffer comes fresh from the system (glibc maps blocks of
        32 MiB and more so), its pages that a fit never writes take no memory (plain SGD's steps
        into the products, on steps of 2^20 multiply-adds and more without hook, clipping,
        diagnostics or batch norm, write neither dW[l] nor the spare parameters).

        breakdown : False gives the total, an int; True a dict of the parts, ints keyed
            'parameters' (with the running statistics) and, after a fit, 'gradients',
            'optimizer_state' (the state and its spare: twice the state), 'spare_parameters'
            and 'workspace' (one batch's cache, deltas, and gathered examples and targets, and
            the epoch's order of the examples: 8 bytes an example; on two threads also the
            second thread's part of Z[l] of each layer that the team shares out by W[l]'s
            columns: without batch norm, dropout or softmax, of two inputs and more, and of 2^22
            multiply-adds and more on the batch, or on n[l]/2 examples where the batch has more),
            and after a predict 'predict_cache' (Z[l] and A[l] for its m examples).
        """
        parts = {"parameters": self._core.bytes(), **self._fit_memory}
        if self._core.predict_cache_bytes:
            parts["predict_cache"] = self._core.predict_cache_bytes
        return parts if breakdown else sum(parts.values())

    def reset_optimizer(self):
        """Forget the optimizer of the last fit and its state: the next fit starts afresh. The
        optimizer object is reset too (its state dropped), also where the caller holds it."""
        if self.optimizer is not None:
            self.optimizer.reset()
        self.optimizer = None

    # ---- saving, loading and pickling (mlpcore.io) ----
    def save(self, path, include_optimizer=False, metadata=None):
        """Write this network to one file at path; ``mlpcore.load(path)`` reads it back.

        The file holds the architecture, parameters, batch-norm running statistics,
        net.history and metadata (a dict of JSON values; None saves net.metadata), and
        with include_optimizer net.optimizer with its state, so that training resumes
        exactly (ValueError when net.optimizer is None). It is written atomically; see
        ``mlpcore.io`` for the format.
        """
        saving.save(self, path, include_optimizer=include_optimizer, metadata=metadata)

    def __getstate__(self):
        """Pickle support: the bytes of the saved file, optimizer included (no pickle inside)."""
        return {"mlpcore": saving.to_bytes(self)}

    def __setstate__(self, state):
        if not (isinstance(state, dict) and isinstance(state.get("mlpcore"), bytes)):
            raise ValueError("not the pickled state of a mlpcore.Network (a dict holding the saved file's bytes "
                             "under 'mlpcore')")
        saving.restore_from_bytes(self, state["mlpcore"])
    # ---- end of saving, loading and pickling ----

    def predict(self, X):
        """Predictions for X of shape (n[0], m).

        mse: A[L] (n[L], m), in the network's dtype; bce: int64 (n[L], m), 1 where A[L] >= 0.5;
        cce: int64 class index of the largest A[L], shape (m,).
        Raises ValueError for X with NaN or inf, and, with bce or cce, where A[L] is NaN or inf
        (the forward overflowed), which has no label. Threads may call predict of one network
        at the same time.
        """
        answer = self._core.predict(X, False)  # predict's cache is the core's (see predict_cache_capacity)
        if answer is None:  # X is not as the core reads it: converted, or refused with the reason
            answer = self._core.predict(self._matrix(X, "X", rows=self.n[0]), True)
        return answer

    def _out(self, out, kind, m, source):
        """A new `kind` (Cache or Gradients) for m examples, or `out` if it is one of this
        network's for m examples (the m of `source`)."""
        if out is None:
            return kind(self, m)
        if not isinstance(out, kind):
            raise TypeError(f"out must be a mlpcore.{kind.__name__}, got {type(out).__name__}")
        self._require_own(out, f"out {kind.__name__}")
        if out._core.capacity != m:
            raise ValueError(f"the out {kind.__name__} holds m = {out._core.capacity} examples, {source} has m = {m}")
        return out

    def _require_own(self, result, name):
        """Refuse a Cache or Gradients that another network made."""
        if result._network is not self:
            raise ValueError(f"the {name} belongs to another network ({result._network!r}), not to this one")

    def _matrix(self, X, name, rows=None):
        """X as an array of the network's dtype that the core reads without copying.

        With `rows`, X must be 2-D (rows, m) with 1 <= m < 2^31; that is checked
        before anything is converted or allocated.
        """
        flags = X.flags if type(X) is np.ndarray else None
        if flags is not None and X.dtype is self.dtype and (flags.f_contiguous or flags.c_contiguous) \
                and flags.aligned and (rows is None or (X.ndim == 2 and X.shape[0] == rows and 0 < X.shape[1] < 2**31)):
            return X  # the common case, already as the core reads it: no further look
        X = np.asarray(X)
        if X.dtype.kind not in "fiu":
            raise TypeError(f"{name} must hold real numbers (float or int), got dtype {X.dtype}")
        if rows is not None and (X.ndim != 2 or X.shape[0] != rows or not 1 <= X.shape[1] < 2**31):
            raise ValueError(f"{name} must be 2-D of shape (n[0], m) = ({rows}, m) with 1 <= m < 2^31, "
                             f"got shape {X.shape}{transpose_hint(name, X.shape, rows)}")
        if X.dtype.kind == "f" and X.dtype.itemsize > self.dtype.itemsize:
            self._require_within_range(X, name)
        X = X.astype(self.dtype.newbyteorder("="), copy=False)
        if X.ndim in (1, 2) and not self._core.reads_in_place(X):  # other shapes: refused by the core
            X = np.require(X, requirements=("F_CONTIGUOUS", "ALIGNED"))
        return X

    def _require_within_range(self, X, name):
        """Refuse finite values of the float array X beyond the network's dtype's range, which
        the conversion to it would make inf."""
        limit = largest(self.dtype)
        if np.any((np.abs(X) > limit) & np.isfinite(X)):
            raise ValueError(f"{name} holds values beyond the range of {self.dtype.name} (|x| <= {limit:.4g}), "
                             f"which would become inf: make the network with dtype='float64', or scale the data")

    def _targets(self, Y):
        """Y as the core takes it: int64 labels (m,) for cce, else a matrix of the network's dtype
        (boolean targets become 0 and 1)."""
        Y = np.asarray(Y)
        if Y.dtype.kind == "b":
            Y = Y.astype(np.int64 if self.cost_name == "cce" and Y.ndim == 1 else self.dtype)
        if self.cost_name == "cce" and Y.ndim == 1:
            if Y.dtype.kind not in "iu":
                raise TypeError(f"cce labels of shape (m,) must be integers 0..{self.n[-1] - 1}, "
                                f"got dtype {Y.dtype}")
            if Y.dtype.kind == "u" and Y.size and Y.max() >= self.n[-1]:  # before int64 wraps 2^64 - 1 to -1
                raise ValueError(f"cce labels must lie in 0..{self.n[-1] - 1}, got {Y.max()}")
            return np.require(Y, dtype=np.int64, requirements=("C_CONTIGUOUS", "ALIGNED"))
        return self._matrix(Y, "Y")
