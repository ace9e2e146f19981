"""Plain NumPy reference of a multilayer perceptron: the oracle of the tests.

Every function spells out the textbook equations in the notation of the
README's Notation table, one line of NumPy per equation:

    X = A[0]                          (n[0], m)    one column per example
    Z[l] = W[l] A[l-1] + b[l]         (n[l], m)
    A[l] = g[l](Z[l])                 (n[l], m)
    dZ[l] = dA[l] * g[l]'(Z[l])       (n[l], m)
    dW[l] = (1/m) dZ[l] A[l-1]^T      (n[l], n[l-1])
    db[l] = (1/m) sum_columns dZ[l]   (n[l], 1)
    dA[l-1] = W[l]^T dZ[l]            (n[l-1], m)

Layers are numbered 1..L as on paper, so W, b, Z, A, dW, db, dZ, dA are
dicts keyed by the layer number (A and dA may also hold layer 0).
dZ and dA are m times dJ/dZ, dJ/dA (the per-example convention); only dW
and db carry the 1/m.

Training adds, per layer l chosen for them (see forward and backward):

    batch normalisation of Z[l] before the activation,
    mu = mean_columns Z, var = mean_columns (Z - mu)^2,
    Z_norm = (Z - mu) / sqrt(var + eps), Z_tilde = gamma Z_norm + beta,
    A[l] = g[l](Z_tilde)                                (n[l], m)
    inverted dropout of a hidden layer, with a 0/1 mask D[l] (1 = kept):
    A[l] = g[l](U) * D[l] / (1 - p[l]),  U = Z_tilde or Z
    an L2 penalty J += lambda/(2m) sum_l ||W[l]||^2, clipping of the
    gradient, and the update rules of torch.optim as pure functions.

Arithmetic stays in the dtype of the inputs: float32 in, float32 out.
The only imports are NumPy and mlpcore._checks (the argument checks shared
with the rest of mlpcore, itself plain Python and NumPy), not the C++ core.
"""

from collections.abc import Mapping

import numpy as np

from ._checks import held_by, is_integer, is_real, name_and_params

__all__ = [
    "EPS", "ACTIVATIONS", "COSTS", "INITS",
    "parse_activation", "check_architecture", "initial_parameters",
    "g", "g_prime", "forward", "dense_targets", "cost", "backward", "update", "one_hot",
    "BN_EPS", "BN_MOMENTUM", "initial_batch_norm", "running_statistics",
    "drop_probabilities", "dropout_masks", "flat_parameters",
    "global_norm", "clip_by_norm", "clip_by_value", "clip",
    "sgd_step", "rmsprop_step", "adam_step", "adamw_step", "OPTIMIZERS",
    "optimizer_step",
]

# Clip of A[L] before a log in the bce and cce costs, per dtype.
EPS = {np.dtype("float32"): 1e-7, np.dtype("float64"): 1e-15}

# Batch normalisation defaults: eps of sqrt(var + eps), momentum of the running statistics.
BN_EPS = 1e-5
BN_MOMENTUM = 0.1

ACTIVATIONS = ("identity", "step", "sigmoid", "tanh", "relu", "leaky_relu",
               "elu", "softmax")
ACTIVATION_ALIASES = {"linear": "identity"}
DEFAULT_ALPHA = {"leaky_relu": 0.01, "elu": 1.0}

COSTS = ("mse", "bce", "cce")

INITS = ("auto", "he", "xavier", "glorot", "small")
HE_LAYERS = ("relu", "leaky_relu", "elu")


# ---------------------------------------------------------------------------
# Architecture
# ---------------------------------------------------------------------------

def parse_activation(spec):
    """Resolve an activation spec to ``(name, params)``.

    spec: a name such as ``"relu"``, or a pair ``(name, {"alpha": value})``;
    only leaky_relu and elu take alpha. ``"linear"`` is resolved to
    ``"identity"``. Returns the canonical name and a params dict with alpha
    filled in (0.01 for leaky_relu, 1.0 for elu; ``{}`` for the others).
    Raises ValueError on an unknown name or parameter, TypeError on a spec
    that is neither a name nor a pair.
    """
    name, params = name_and_params(spec, "an activation", "('leaky_relu', {'alpha': 0.1})")

    name = ACTIVATION_ALIASES.get(name, name)
    if name not in ACTIVATIONS:
        raise ValueError(
            f"unknown activation {name!r}; expected one of "
            f"{', '.join(ACTIVATIONS + tuple(ACTIVATION_ALIASES))}")

    allowed = ("alpha",) if name in DEFAULT_ALPHA else ()
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(
            f"activation {name!r} takes the parameters {list(allowed)}; "
            f"got {unknown}")
    if name not in DEFAULT_ALPHA:
        return name, {}

    alpha = params.get("alpha", DEFAULT_ALPHA[name])
    if not is_real(alpha):
        raise ValueError(
            f"alpha of {name!r} must be a finite real number; got {alpha!r}")
    return name, {"alpha": float(alpha)}


def _is_sequence(values):
    """Whether values is an ordered collection (a list, tuple or array; not a string, set or dict)."""
    return hasattr(values, "__len__") and hasattr(values, "__getitem__") \
        and not isinstance(values, (str, bytes, Mapping))


def check_architecture(n, activations, cost):
    """Check layer sizes, activations and cost; return the parsed activations.

    n: sequence of L + 1 positive ints, n[0] input features .. n[L] outputs
    (TypeError for anything but a sequence: a set or dict has no order).
    activations: sequence of L activation specs, one for each layer 1..L.
    cost: "mse", "bce" or "cce".
    Returns a list of L ``(name, params)`` pairs (index 0 is layer 1).
    Raises ValueError when the sizes, the count of activations or a pairing
    is wrong: softmax only as the output of a cce network with n[L] >= 2,
    bce only with a sigmoid output, cce only with a softmax output, mse with
    any output but softmax.
    """
    if not _is_sequence(n):
        raise TypeError(
            f"layer sizes n must be a sequence of ints (n[0], ..., n[L]); got {n!r}")
    n = list(n)
    for size in n:
        if not is_integer(size) or size < 1:
            raise ValueError(
                f"layer sizes n must be integers >= 1; got n = {n}")
    if len(n) < 2:
        raise ValueError(
            f"layer sizes n need n[0] and at least one layer; got n = {n}")
    L = len(n) - 1

    if not _is_sequence(activations):
        raise ValueError(
            f"activations must be a list of L = {L} specs, one per layer; "
            f"got {activations!r}")
    activations = list(activations)
    if len(activations) != L:
        raise ValueError(
            f"expected L = {L} activations (one for each of layers 1..{L}); "
            f"got {len(activations)}")
    parsed = [parse_activation(spec) for spec in activations]

    if cost not in COSTS:
        raise ValueError(
            f"unknown cost {cost!r}; expected one of {', '.join(COSTS)}")

    for l, (name, _) in enumerate(parsed[:-1], start=1):
        if name == "softmax":
            raise ValueError(
                f"softmax is allowed only in the output layer L = {L}; "
                f"got it in hidden layer {l}")
    output = parsed[-1][0]
    if output == "softmax" and n[L] < 2:
        raise ValueError(
            f"a softmax output needs n[L] >= 2 units; got n[L] = {n[L]}")
    if cost == "mse" and output == "softmax":
        raise ValueError(
            "cost 'mse' pairs with any output activation except softmax; "
            "use cost 'cce' with softmax")
    if cost == "bce" and output != "sigmoid":
        raise ValueError(
            f"cost 'bce' needs a sigmoid output layer; got {output!r}")
    if cost == "cce" and output != "softmax":
        raise ValueError(
            f"cost 'cce' needs a softmax output layer; got {output!r}")
    return parsed


def initial_parameters(n, activations, init="auto", bias=0.0, seed=None,
                       dtype=np.float32):
    """Draw the initial parameters W, b of a network.

    n: L + 1 layer sizes; activations: L specs; init: "auto", "he",
    "xavier", "glorot", "small", or a list of L such names (one per layer);
    bias: the value of every b[l]; seed: for np.random.default_rng;
    dtype: float32 or float64.
    Returns (W, b), dicts keyed 1..L: W[l] (n[l], n[l-1]) and b[l] (n[l], 1)
    of dtype. For l = 1..L in order, W[l] is drawn as
    rng.standard_normal((n[l], n[l-1])) in float64, times the scale of the
    scheme, then cast to dtype. "auto" is he for relu, leaky_relu and elu
    layers and xavier for the others.
    Raises ValueError on an unknown init name or a wrong count, TypeError
    on a dtype other than float32/float64.
    """
    n = list(n)
    L = len(n) - 1
    if isinstance(activations, (str, dict)) or len(activations) != L:
        raise ValueError(
            f"expected L = {L} activations (one for each of layers 1..{L}); "
            f"got {activations!r}")
    names = [parse_activation(spec)[0] for spec in activations]
    dtype = np.dtype(dtype)
    if dtype not in EPS:
        raise TypeError(f"dtype must be float32 or float64; got {dtype}")

    if isinstance(init, str):
        init = [init] * L
    if not isinstance(init, (list, tuple)):
        raise ValueError(f"init must be a name ({', '.join(INITS)}) or a list of L = {L} of them; got {init!r}")
    init = list(init)
    if len(init) != L:
        raise ValueError(
            f"init needs one name for each of the L = {L} layers; "
            f"got {len(init)}")
    for scheme in init:
        if scheme not in INITS:
            raise ValueError(
                f"unknown init {scheme!r}; expected one of {', '.join(INITS)}")

    if not held_by(bias, dtype):
        raise ValueError(f"bias must be a real number finite in {dtype.name}; got {bias!r}")
    if seed is not None and (not is_integer(seed) or seed < 0):
        raise ValueError(f"seed must be an integer >= 0 or None; got {seed!r}")

    rng = np.random.default_rng(seed)
    W, b = {}, {}
    for l in range(1, L + 1):
        scale = _init_scale(init[l - 1], names[l - 1], n[l - 1], n[l])
        # W[l] ~ N(0, scale^2), drawn in float64, then cast
        W[l] = (rng.standard_normal((n[l], n[l - 1])) * scale).astype(dtype)
        # b[l] = bias
        b[l] = np.full((n[l], 1), bias, dtype=dtype)
    return W, b


def _init_scale(scheme, activation, n_in, n_out):
    """Standard deviation of W[l] under scheme, for n_in = n[l-1], n_out = n[l]."""
    if scheme == "auto":
        scheme = "he" if activation in HE_LAYERS else "xavier"
    if scheme == "he":
        return np.sqrt(2.0 / n_in)
    if scheme == "xavier":
        return np.sqrt(1.0 / n_in)
    if scheme == "glorot":
        return np.sqrt(2.0 / (n_in + n_out))
    return 0.01  # "small"


# ---------------------------------------------------------------------------
# Activations
# ---------------------------------------------------------------------------

def g(activation, Z):
    """Activation A = g(Z), element-wise (softmax: column-wise).

    activation: a spec as taken by parse_activation.
    Z: (n, m) float array. Returns A, same shape and dtype as Z.
    Stable in float32 for |Z| up to 1e4 (and beyond): no overflow, no NaN.
    """
    name, params = parse_activation(activation)
    zero = Z.dtype.type(0)
    if name == "identity":
        # A = Z
        return Z.copy()
    if name == "step":
        # A = 1 if Z >= 0 else 0
        return (Z >= 0).astype(Z.dtype)
    if name == "sigmoid":
        # A = 1 / (1 + e^-Z), two-sided so that e^-|Z| <= 1 never overflows:
        # Z >= 0: 1 / (1 + e^-|Z|);  Z < 0: e^-|Z| / (1 + e^-|Z|)
        E = np.exp(-np.abs(Z))
        return np.where(Z >= 0, 1 / (1 + E), E / (1 + E))
    if name == "tanh":
        # A = tanh(Z)
        return np.tanh(Z)
    if name == "relu":
        # A = max(Z, 0)
        return np.maximum(Z, zero)
    if name == "leaky_relu":
        # A = Z if Z > 0 else alpha Z
        alpha = Z.dtype.type(params["alpha"])
        return np.where(Z > 0, Z, alpha * Z)
    if name == "elu":
        # A = Z if Z > 0 else alpha (e^Z - 1), e^Z taken of min(Z, 0) only
        alpha = Z.dtype.type(params["alpha"])
        return np.where(Z > 0, Z, alpha * np.expm1(np.minimum(Z, zero)))
    # softmax: A[i, j] = e^(Z[i, j] - max_i Z[:, j]) / sum_i e^(Z[i, j] - max_i Z[:, j])
    E = np.exp(Z - np.max(Z, axis=0, keepdims=True))
    return E / np.sum(E, axis=0, keepdims=True)


def g_prime(activation, Z):
    """Derivative g'(Z), element-wise; not defined here for softmax.

    activation: a spec as taken by parse_activation.
    Z: (n, m) float array. Returns g'(Z), same shape and dtype as Z.
    Conventions at the kinks: step' = 0, relu'(0) = 0, leaky_relu'(0) = alpha,
    elu'(0) = alpha.
    Raises ValueError for softmax (its Jacobian is not element-wise; with
    cce the output layer uses the fused dZ[L] = A[L] - Y).
    """
    name, params = parse_activation(activation)
    one, zero = Z.dtype.type(1), Z.dtype.type(0)
    if name == "identity":
        # g'(Z) = 1
        return np.ones_like(Z)
    if name == "step":
        # g'(Z) = 0
        return np.zeros_like(Z)
    if name == "sigmoid":
        # g'(Z) = s (1 - s), s = sigmoid(Z)
        s = g(name, Z)
        return s * (1 - s)
    if name == "tanh":
        # g'(Z) = 1 - tanh(Z)^2
        return 1 - np.tanh(Z) ** 2
    if name == "relu":
        # g'(Z) = 1 if Z > 0 else 0
        return (Z > 0).astype(Z.dtype)
    if name == "leaky_relu":
        # g'(Z) = 1 if Z > 0 else alpha
        alpha = Z.dtype.type(params["alpha"])
        return np.where(Z > 0, one, alpha)
    if name == "elu":
        # g'(Z) = 1 if Z > 0 else alpha e^Z
        alpha = Z.dtype.type(params["alpha"])
        return np.where(Z > 0, one, alpha * np.exp(np.minimum(Z, zero)))
    raise ValueError(
        "g_prime is not defined for softmax: use it as the output of a cce "
        "network, where dZ[L] = A[L] - Y")


# ---------------------------------------------------------------------------
# Batch normalisation and dropout: parameters, state, masks
# ---------------------------------------------------------------------------

def initial_batch_norm(n, batch_norm, dtype=np.float32):
    """Initial gamma, beta and running statistics of the batch-normalised layers.

    n: L + 1 layer sizes; batch_norm: L bools (index 0 = layer 1), or None.
    Returns (gamma, beta, running_mean, running_var), dicts keyed by the
    layers l with batch_norm[l - 1] true, each (n[l], 1) of dtype:
    gamma = 1, beta = 0, running_mean = 0, running_var = 1.
    """
    L = len(n) - 1
    batch_norm = [False] * L if batch_norm is None else list(batch_norm)
    if len(batch_norm) != L:
        raise ValueError(
            f"batch_norm needs one flag for each of the L = {L} layers; got {len(batch_norm)}")
    layers = [l for l in range(1, L + 1) if batch_norm[l - 1]]
    gamma = {l: np.ones((n[l], 1), dtype=dtype) for l in layers}
    beta = {l: np.zeros((n[l], 1), dtype=dtype) for l in layers}
    running_mean = {l: np.zeros((n[l], 1), dtype=dtype) for l in layers}
    running_var = {l: np.ones((n[l], 1), dtype=dtype) for l in layers}
    return gamma, beta, running_mean, running_var


def running_statistics(running_mean, running_var, mu, var, m, momentum=BN_MOMENTUM):
    """The running statistics after a training-mode forward of m examples.

    running_mean, running_var: dicts keyed by the batch-normalised layers,
    (n[l], 1); mu, var: the batch statistics of that forward (the "mu" and
    "var" of forward's cache; var biased), keyed alike; m >= 2.
    Returns new dicts (the inputs are not changed), in their dtype, as
    torch.nn.BatchNorm1d updates them, with the unbiased batch variance:
        running_mean = (1 - momentum) running_mean + momentum mu
        running_var  = (1 - momentum) running_var + momentum var m/(m-1)
    """
    if m < 2:
        raise ValueError(f"running statistics need a batch of m >= 2 examples; got m = {m}")
    new_mean, new_var = {}, {}
    for l in running_mean:
        dtype = running_mean[l].dtype.type
        rate = dtype(momentum)
        # running_mean = (1 - momentum) running_mean + momentum mu
        new_mean[l] = (1 - rate) * running_mean[l] + rate * mu[l]
        # running_var = (1 - momentum) running_var + momentum var m/(m-1)
        new_var[l] = (1 - rate) * running_var[l] + rate * (var[l] * dtype(m) / dtype(m - 1))
    return new_mean, new_var


def drop_probabilities(p, L):
    """The drop probabilities as a dict {l: p[l]} for hidden layers l in 1..L-1.

    p: None (no dropout), a dict {l: p[l]}, or a sequence of L-1 numbers
    (index 0 = layer 1), each in [0, 1). Raises ValueError otherwise.
    """
    if p is None:
        return {}
    if not isinstance(p, Mapping):
        p = list(p)
        if len(p) != L - 1:
            raise ValueError(
                f"dropout needs one drop probability for each of the L-1 = {L - 1} hidden "
                f"layers; got {len(p)}")
        p = {l: p[l - 1] for l in range(1, L)}
    for l, p_l in p.items():
        if not 1 <= l <= L - 1:
            raise ValueError(f"dropout is for hidden layers 1..{L - 1}; got layer {l}")
        if not is_real(p_l) or not 0 <= p_l < 1:
            raise ValueError(f"a drop probability must lie in [0, 1); got p[{l}] = {p_l!r}")
    return {l: float(p_l) for l, p_l in p.items()}


def dropout_masks(rng, n, m, p, dtype=np.float64):
    """Random dropout masks, for tests of the reference on its own.

    rng: a np.random.Generator; n: L + 1 layer sizes; m: examples;
    p: drop probabilities as taken by drop_probabilities.
    Returns D: dict keyed by the layers with p[l] > 0, D[l] (n[l], m) of
    dtype, 1 (kept) with probability 1 - p[l], else 0. (The core draws its
    own masks from its own generator; its cache.D holds them.)
    """
    L = len(n) - 1
    D = {}
    for l, p_l in drop_probabilities(p, L).items():
        if p_l > 0:
            # D[l] = 1 where a uniform draw is >= p[l]
            D[l] = (rng.random((n[l], m)) >= p_l).astype(dtype)
    return D


# ---------------------------------------------------------------------------
# Forward, cost, backward, update
# ---------------------------------------------------------------------------

def forward(W, b, X, activations, *, gamma=None, beta=None, D=None, p=None,
            running_mean=None, running_var=None, training=True, bn_eps=BN_EPS,
            return_cache=False):
    """Forward propagation, with batch normalisation and dropout if asked.

    W, b: dicts keyed 1..L, W[l] (n[l], n[l-1]), b[l] (n[l], 1), dtype float.
    X: (n[0], m), one column per example, same dtype as W.
    activations: L specs, index 0 for layer 1.
    Returns (Z, A): dicts with Z[l] (n[l], m) for l = 1..L and A[l] (n[l], m)
    for l = 0..L, A[0] = X; all of the dtype of W and X.

    Keyword-only, for training (all default to a plain network):
    gamma, beta: dicts keyed by the batch-normalised layers l, each
        (n[l], 1) of the dtype; a layer is batch-normalised iff l in gamma.
    running_mean, running_var: dicts keyed like gamma, (n[l], 1); used
        instead of the batch mean and variance when training=False (only
        needed then). They are read, never changed: see running_statistics.
    D: dict of dropout masks D[l] (n[l], m), values 0/1 (1 = kept), for
        hidden layers l in 1..L-1; p: the drop probabilities, a dict
        {l: p[l]} or a sequence of L-1 (index 0 = layer 1), see
        drop_probabilities. In training mode every layer with p[l] > 0 must
        have its mask in D (the reference draws nothing: see dropout_masks).
    training: True for the training path (batch statistics, dropout);
        False for inference (running statistics, no dropout).
    bn_eps: eps of batch normalisation (1e-5).
    return_cache: return a dict instead of (Z, A), with the keys
        "Z", "A" as above and, keyed by the batch-normalised layers,
        "Z_norm", "Z_tilde" (n[l], m) and "mu", "var" (n[l], 1): the
        statistics used, the batch ones (var biased) in training mode, the
        running ones in inference mode.

    Raises ValueError for a training-mode forward of m = 1 example through
    batch normalisation (the variance is undefined), a missing mask or a
    missing running statistic.
    """
    L = len(W)
    m = X.shape[1]
    gamma = {} if gamma is None else gamma
    beta = {} if beta is None else beta
    D = {} if D is None else D
    p = drop_probabilities(p, L)
    dropped = _require_forward_inputs(L, m, gamma, D, p, running_mean, running_var, training)
    one = X.dtype.type(1)
    Z, A = {}, {0: X}
    Z_norm, Z_tilde, mu, var = {}, {}, {}, {}
    for l in range(1, L + 1):
        # Z[l] = W[l] A[l-1] + b[l]
        Z[l] = W[l] @ A[l - 1] + b[l]
        U = Z[l]
        if l in gamma:
            mu[l], var[l] = _batch_statistics(Z[l]) if training else (running_mean[l], running_var[l])
            Z_norm[l], Z_tilde[l] = _normalise(Z[l], mu[l], var[l], gamma[l], beta[l], X.dtype.type(bn_eps))
            U = Z_tilde[l]
        # A[l] = g[l](U), U = Z_tilde[l] or Z[l]
        A[l] = g(activations[l - 1], U)
        if l in dropped:
            # A[l] = g[l](U) * D[l] / (1 - p[l])
            A[l] = A[l] * D[l].astype(X.dtype, copy=False) / (one - X.dtype.type(p.get(l, 0.0)))

    if return_cache:
        return {"Z": Z, "A": A, "Z_norm": Z_norm, "Z_tilde": Z_tilde,
                "mu": mu, "var": var}
    return Z, A


def _require_forward_inputs(L, m, gamma, D, p, running_mean, running_var, training):
    """Refuse what forward cannot compute (see forward); return the layers that drop units
    in this pass, ascending (none in inference)."""
    if training and gamma and m < 2:
        raise ValueError(
            "a training-mode forward through batch normalisation needs m >= 2 "
            f"examples (the batch variance of m = {m} is undefined)")
    dropped = sorted(set(D) | {l for l in p if p[l] > 0}) if training else []
    for l in dropped:
        if l not in D:
            raise ValueError(f"layer {l} drops p = {p[l]} of its units: D[{l}] is needed")
        if not 1 <= l <= L - 1:
            raise ValueError(f"dropout is for hidden layers 1..{L - 1}; got a mask for layer {l}")
    if not training and any(running_mean is None or running_var is None
                            or l not in running_mean or l not in running_var for l in gamma):
        raise ValueError(
            "an inference-mode forward through batch normalisation needs "
            f"running_mean and running_var for the layers {sorted(gamma)}")
    return dropped


def _batch_statistics(Z):
    """(mu, var) of the batch Z (n, m), each (n, 1): var biased (divided by m)."""
    m = Z.shape[1]
    # mu = (1/m) sum over columns of Z
    mu = np.sum(Z, axis=1, keepdims=True) / m
    # var = (1/m) sum over columns of (Z - mu)^2
    var = np.sum((Z - mu) ** 2, axis=1, keepdims=True) / m
    return mu, var


def _normalise(Z, mu, var, gamma, beta, eps):
    """(Z_norm, Z_tilde) of batch normalisation.   Z: (n, m); mu, var, gamma, beta: (n, 1)"""
    # Z_norm = (Z - mu) / sqrt(var + eps)
    Z_norm = (Z - mu) / np.sqrt(var + eps)
    # Z_tilde = gamma Z_norm + beta
    return Z_norm, gamma * Z_norm + beta


def dense_targets(Y, A_L, cost):
    """Y as (n[L], m) targets in the dtype of A_L (n[L], m): cce's (m,) integer (or boolean) class
    labels one-hot encoded, (m,) targets as (1, m) when n[L] = 1. Raises ValueError for any other
    shape than A_L's (which NumPy would otherwise broadcast into wrong numbers)."""
    Y = np.asarray(Y)
    if cost == "cce" and Y.ndim == 1 and Y.dtype.kind in "iub":
        Y = one_hot(Y.astype(np.int64), A_L.shape[0])
    elif Y.ndim == 1 and A_L.shape[0] == 1:
        Y = Y.reshape(1, -1)
    if Y.shape != A_L.shape:
        raise ValueError(f"Y of shape {Y.shape} does not match A[L] of shape {A_L.shape} (Y is (n[L], m), "
                         f"or (m,) when n[L] = 1, or for cce m integer class labels)")
    return Y.astype(A_L.dtype, copy=False)


def cost(A_L, Y, cost, W=None, l2=0.0):
    """Cost J, summed over output units and averaged over the m examples.

    A_L: (n[L], m) output activations, float32 or float64.
    Y: (n[L], m) targets (for cce one-hot columns, class probabilities or (m,) integer
    labels), cast to the dtype of A_L; see dense_targets.
    cost: "mse", "bce" or "cce".
    W, l2: with l2 = lambda > 0, the weights W (dict keyed 1..L) add the L2
    penalty lambda/(2m) sum_l ||W[l]||^2 (Frobenius; not on b, gamma, beta).
    Returns J as a Python float, computed in the dtype of A_L.
    """
    Y = dense_targets(Y, A_L, cost)
    m = A_L.shape[1]
    if cost == "mse":
        # J = 1/(2m) sum (A[L] - Y)^2
        J = np.sum((A_L - Y) ** 2) / (2 * m)
    elif cost in ("bce", "cce"):
        eps = A_L.dtype.type(EPS[A_L.dtype])
        # Ac = clip(A[L], eps, 1 - eps)
        Ac = np.clip(A_L, eps, 1 - eps)
        if cost == "bce":
            # J = -(1/m) sum [Y log Ac + (1 - Y) log(1 - Ac)]
            J = -np.sum(Y * np.log(Ac) + (1 - Y) * np.log(1 - Ac)) / m
        else:
            # J = -(1/m) sum Y log Ac
            J = -np.sum(Y * np.log(Ac)) / m
    else:
        raise ValueError(f"unknown cost {cost!r}; expected one of {', '.join(COSTS)}")
    if l2:
        if W is None:
            raise ValueError(f"the L2 term of l2 = {l2} needs the weights W")
        # J = J + lambda/(2m) sum_l ||W[l]||^2
        J = J + A_L.dtype.type(l2) / (2 * m) * sum(np.sum(W[l] ** 2) for l in W)
    return float(J)


def backward(W, Z, A, Y, activations, cost, compute_dA0=False, *, gamma=None,
             Z_norm=None, Z_tilde=None, var=None, D=None, p=None,
             bn_eps=BN_EPS, l2=0.0):
    """Backward propagation (of a training-mode forward).

    W: dict keyed 1..L, W[l] (n[l], n[l-1]).
    Z, A: the dicts returned by forward (Z[1..L], A[0..L]).
    Y: (n[L], m) targets as for cost, cast to the dtype of A.
    activations: L specs; cost: "mse", "bce" or "cce".
    compute_dA0: also return dA[0] = W[1]^T dZ[1] (n[0], m).
    Returns {"dW": dW, "db": db, "dZ": dZ, "dA": dA}, dicts keyed by layer:
    dW[l] (n[l], n[l-1]), db[l] (n[l], 1), dZ[l] (n[l], m) for l = 1..L;
    dA[l] (n[l], m) for l = 1..L-1, plus dA[L] for mse, plus dA[0] if asked.
    dZ and dA are m times dJ/dZ and dJ/dA; dW and db are dJ/dW and dJ/db.

    Keyword-only, for training (the same as given to and returned by
    forward(..., return_cache=True) in training mode):
    gamma: dict of gamma[l] (n[l], 1) of the batch-normalised layers;
    Z_norm, Z_tilde (n[l], m), var (n[l], 1): from forward's cache, keyed
        like gamma. Then "dgamma", "dbeta" ((n[l], 1), keyed like gamma)
        are returned too, and dZ[l] is taken w.r.t. Z[l] = W[l] A[l-1] + b[l],
        before the normalisation (db[l] is then 0 up to rounding).
    D, p: the dropout masks and drop probabilities of the forward.
    bn_eps: eps of batch normalisation; l2: lambda of the L2 penalty, which
        adds (lambda/m) W[l] to dW[l].
    """
    L = len(W)
    m = A[0].shape[1]
    dtype = A[L].dtype
    Y = dense_targets(Y, A[L], cost)
    gamma = {} if gamma is None else gamma
    D = {} if D is None else D
    p = drop_probabilities(p, L)
    eps, one = dtype.type(bn_eps), dtype.type(1)
    dW, db, dZ, dA = {}, {}, {}, {}
    dgamma, dbeta = {}, {}

    def U(l):
        """The input of g[l]: Z_tilde[l] if layer l is batch-normalised, else Z[l]."""
        return Z_tilde[l] if l in gamma else Z[l]

    if cost == "mse":
        # dA[L] = A[L] - Y
        dA[L] = A[L] - Y
        # dU[L] = dA[L] * g[L]'(U[L])
        dU = dA[L] * g_prime(activations[L - 1], U(L))
    else:
        # bce with sigmoid, cce with softmax: dU[L] = A[L] - Y
        dU = A[L] - Y

    for l in range(L, 0, -1):
        if l in gamma:
            dZ[l], dgamma[l], dbeta[l] = _normalisation_backward(dU, Z_norm[l], var[l], gamma[l], eps)
        else:
            # dZ[l] = dU
            dZ[l] = dU
        # dW[l] = (1/m) dZ[l] A[l-1]^T
        dW[l] = dZ[l] @ A[l - 1].T / m
        if l2:
            # dW[l] = dW[l] + (lambda/m) W[l]
            dW[l] = dW[l] + dtype.type(l2) / m * W[l]
        # db[l] = (1/m) sum over columns of dZ[l]
        db[l] = np.sum(dZ[l], axis=1, keepdims=True) / m
        if l > 1 or compute_dA0:
            # dA[l-1] = W[l]^T dZ[l]
            dA[l - 1] = W[l].T @ dZ[l]
        if l > 1:
            # dU[l-1] = dA[l-1] (* D[l-1] / (1 - p[l-1]) in a dropout layer) * g[l-1]'(U[l-1])
            keep = (D[l - 1].astype(dtype, copy=False) / (one - dtype.type(p.get(l - 1, 0.0)))
                    if l - 1 in D or p.get(l - 1, 0.0) > 0 else one)
            dU = dA[l - 1] * keep * g_prime(activations[l - 2], U(l - 1))

    grads = {"dW": dW, "db": db, "dZ": dZ, "dA": dA}
    if gamma:
        grads["dgamma"], grads["dbeta"] = dgamma, dbeta
    return grads


def _normalisation_backward(dU, Z_norm, var, gamma, eps):
    """(dZ, dgamma, dbeta) of a batch-normalised layer from dU = m dJ/dZ_tilde.
    dU, Z_norm: (n, m); var, gamma: (n, 1)."""
    m = dU.shape[1]
    # dgamma = (1/m) sum over columns of dU * Z_norm
    dgamma = np.sum(dU * Z_norm, axis=1, keepdims=True) / m
    # dbeta = (1/m) sum over columns of dU
    dbeta = np.sum(dU, axis=1, keepdims=True) / m
    # G = dU * gamma
    G = dU * gamma
    # dZ = (G - mean_cols G - Z_norm mean_cols(G * Z_norm)) / sqrt(var + eps)
    dZ = (G - np.mean(G, axis=1, keepdims=True)
          - Z_norm * np.mean(G * Z_norm, axis=1, keepdims=True)) / np.sqrt(var + eps)
    return dZ, dgamma, dbeta


def update(W, b, dW, db, learning_rate):
    """One gradient-descent step, in place.

    W, b, dW, db: dicts keyed 1..L of matching shapes and dtype.
    learning_rate: float.
    W[l] -= learning_rate dW[l];  b[l] -= learning_rate db[l].
    Returns None.
    """
    for l in W:
        # W[l] = W[l] - learning_rate dW[l]
        W[l] -= W[l].dtype.type(learning_rate) * dW[l]
        # b[l] = b[l] - learning_rate db[l]
        b[l] -= b[l].dtype.type(learning_rate) * db[l]


def one_hot(labels, k, dtype=np.float64):
    """One-hot targets from class labels.

    labels: (m,) integers in 0..k-1; k: number of classes.
    Returns Y (k, m) of dtype with Y[labels[j], j] = 1 and 0 elsewhere.
    Raises ValueError on labels that are not 1-D integers in 0..k-1.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be a 1-D integer array; got shape {labels.shape}, "
            f"dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(
            f"labels must lie in 0..{k - 1}; got values from {labels.min()} "
            f"to {labels.max()}")
    m = labels.shape[0]
    Y = np.zeros((k, m), dtype=dtype)
    # Y[labels[j], j] = 1
    Y[labels, np.arange(m)] = 1
    return Y


# ---------------------------------------------------------------------------
# The flat parameter vector and gradient clipping
# ---------------------------------------------------------------------------

def flat_parameters(W, b, gamma=None, beta=None):
    """The parameters as one flat vector, laid out as the core's buffer.

    W, b: dicts keyed 1..L; gamma, beta: dicts keyed by the batch-normalised
    layers, or None. For l = 1..L: W[l] column by column (Fortran order,
    n[l] n[l-1] entries), b[l], then gamma[l], beta[l] if layer l has them.
    Returns a 1-D array of their dtype. The same layout holds the gradients:
    flat_parameters(dW, db, dgamma, dbeta).
    """
    gamma = {} if gamma is None else gamma
    beta = {} if beta is None else beta
    pieces = []
    for l in sorted(W):
        pieces += [W[l].ravel(order="F"), b[l].ravel()]
        if l in gamma:
            pieces += [gamma[l].ravel(), beta[l].ravel()]
    return np.concatenate(pieces)


def _sorted_keys(tree):
    """The keys of a dict in a fixed order, whatever order they were inserted in."""
    return sorted(tree, key=lambda key: (type(key).__name__, key))


def _leaves(tree):
    """The arrays of a tree (an array, or dicts, lists, tuples of trees), in a fixed order.

    Dict entries are taken in sorted key order, so that {2: dW2, 1: dW1} (as backward fills it)
    lines up with {1: W1, 2: W2}.
    """
    if isinstance(tree, Mapping):
        return [leaf for key in _sorted_keys(tree) for leaf in _leaves(tree[key])]
    if isinstance(tree, (list, tuple)):
        return [leaf for item in tree for leaf in _leaves(item)]
    return [tree]


def _rebuild(tree, leaves):
    """A tree shaped like tree holding leaves (as ordered by _leaves)."""
    leaves = iter(leaves)

    def build(node):
        if isinstance(node, Mapping):
            return {key: build(node[key]) for key in _sorted_keys(node)}
        if isinstance(node, (list, tuple)):
            return type(node)(build(item) for item in node)
        return next(leaves)
    return build(tree)


def _structure(tree):
    """The keys, lengths and array shapes of a tree, to compare two trees."""
    if isinstance(tree, Mapping):
        return {key: _structure(tree[key]) for key in tree}
    if isinstance(tree, (list, tuple)):
        return [_structure(item) for item in tree]
    return np.shape(tree)


def _same_structure(params, grads):
    """Raise ValueError unless grads has the keys and shapes of params."""
    if _structure(params) != _structure(grads):
        raise ValueError(
            "the gradients must have the structure (keys and shapes) of the parameters; got "
            f"{_structure(grads)} for {_structure(params)}")


def global_norm(grads):
    """||g||_2 of all the arrays of grads taken as one flat vector.

    grads: an array, or a dict, list or tuple of them (nested at will),
    e.g. {"dW": dW, "db": db}. Returns a float, computed in their dtype.
    """
    # ||g|| = sqrt(sum over every entry of g^2)
    return float(np.sqrt(sum(np.sum(G * G) for G in _leaves(grads))))


def clip_by_norm(grads, clip_norm):
    """Clipping by global norm: g = g * c / ||g|| if ||g|| > c, else g.

    grads: arrays as taken by global_norm, one flat vector g;
    clip_norm: c > 0. Returns new arrays in the same structure and dtype.
    """
    leaves = _leaves(grads)
    norm = global_norm(grads)
    if norm > clip_norm:
        dtype = leaves[0].dtype.type
        # g = g * c / ||g||
        scale = dtype(clip_norm) / dtype(norm)
        return _rebuild(grads, [G * scale for G in leaves])
    return _rebuild(grads, [G.copy() for G in leaves])


def clip_by_value(grads, clip_value):
    """Clipping by value: g = clip(g, -v, v), entry by entry.

    grads: arrays as taken by global_norm; clip_value: v > 0.
    Returns new arrays in the same structure and dtype.
    """
    # g = min(max(g, -v), v)
    return _rebuild(grads, [np.clip(G, -G.dtype.type(clip_value), G.dtype.type(clip_value))
                            for G in _leaves(grads)])


def clip(grads, clip_norm=None, clip_value=None):
    """Clipping as fit does it: by global norm first (if clip_norm), then by value (if clip_value).

    grads: arrays as taken by global_norm (the gradient after L2).
    Returns new arrays in the same structure and dtype.
    """
    if clip_norm is None and clip_value is None:
        return _rebuild(grads, [G.copy() for G in _leaves(grads)])
    if clip_norm is not None:
        grads = clip_by_norm(grads, clip_norm)
    if clip_value is not None:
        grads = clip_by_value(grads, clip_value)
    return grads


# ---------------------------------------------------------------------------
# Optimizers: the update rules of torch.optim, as pure functions
# ---------------------------------------------------------------------------
#
# Each step takes params and grads of the same structure (an array, or a
# dict, list or tuple of arrays: the flat vector of flat_parameters, or
# {"W": W, "b": b, ...}), the state returned by the previous step (None at
# the first), and the hyper-parameters; it returns (new params, new state)
# and changes nothing it was given. Every rule is element-wise, so a step
# over a dict of arrays equals the step over their flat vector.
# t is the step count, 1 at the first step. Arithmetic in the params' dtype,
# but for 1 - beta (alpha) and the bias corrections, taken in double first, as torch does.

def _start(state, params, *names):
    """The state before a step: step count t and zero buffers named names."""
    if state is None:
        state = {"t": 0}
        for name in names:
            state[name] = _rebuild(params, [np.zeros_like(P) for P in _leaves(params)])
    return state


def sgd_step(params, grads, state=None, *, learning_rate=0.01, momentum=0.0, nesterov=False):
    """One step of SGD, with momentum and Nesterov momentum (torch.optim.SGD, dampening 0).

    momentum = 0:  p = p - lr g.
    momentum > 0:  buf = g at t = 1, else buf = momentum buf + g;
                   d = g + momentum buf (nesterov) or buf;  p = p - lr d.
    state: {"t": t, "buf": buffers like params (None without momentum)}.
    Returns (params, state).
    """
    if nesterov and momentum <= 0:
        raise ValueError("Nesterov momentum needs momentum > 0")
    _same_structure(params, grads)
    state = {"t": 0, "buf": None} if state is None else state
    t = state["t"] + 1
    new_params, new_buf = [], []
    bufs = _leaves(state["buf"]) if state["buf"] is not None else [None] * len(_leaves(params))
    for P, G, buf in zip(_leaves(params), _leaves(grads), bufs):
        dtype = P.dtype.type
        lr, mu = dtype(learning_rate), dtype(momentum)
        if momentum == 0:
            # d = g
            d = G
        else:
            # buf = g (t = 1);  buf = momentum buf + g (t > 1)
            buf = G.copy() if t == 1 else mu * buf + G
            # d = g + momentum buf (Nesterov), else d = buf
            d = G + mu * buf if nesterov else buf
            new_buf.append(buf)
        # p = p - lr d
        new_params.append(P - lr * d)
    buf_tree = _rebuild(params, new_buf) if momentum != 0 else None
    return _rebuild(params, new_params), {"t": t, "buf": buf_tree}


def rmsprop_step(params, grads, state=None, *, learning_rate=0.01, alpha=0.99, eps=1e-8):
    """One step of RMSprop (torch.optim.RMSprop, not centred, no momentum).

    v = alpha v + (1 - alpha) g^2;  p = p - lr g / (sqrt(v) + eps); v starts at 0.
    state: {"t": t, "v": buffers like params}. Returns (params, state).
    """
    _same_structure(params, grads)
    state = _start(state, params, "v")
    new_params, new_v = [], []
    for P, G, v in zip(_leaves(params), _leaves(grads), _leaves(state["v"])):
        dtype = P.dtype.type
        # 1 - alpha in double before the cast, as torch takes it: in float32 an alpha near 1 rounds to 1
        lr, a, one_minus_a, e = dtype(learning_rate), dtype(alpha), dtype(1 - float(alpha)), dtype(eps)
        # v = alpha v + (1 - alpha) g^2
        v = a * v + one_minus_a * G * G
        # p = p - lr g / (sqrt(v) + eps)
        new_params.append(P - lr * G / (np.sqrt(v) + e))
        new_v.append(v)
    return (_rebuild(params, new_params),
            {"t": state["t"] + 1, "v": _rebuild(params, new_v)})


def adam_step(params, grads, state=None, *, learning_rate=1e-3, beta1=0.9, beta2=0.999,
              eps=1e-8, weight_decay=0.0):
    """One step of Adam (torch.optim.Adam, amsgrad off), or of AdamW if weight_decay > 0.

    AdamW first: p = p (1 - lr weight_decay)  (decoupled, torch.optim.AdamW).
    m1 = beta1 m1 + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2  (both start at 0);
    m_hat = m1 / (1 - beta1^t);  v_hat = v / (1 - beta2^t);
    p = p - lr m_hat / (sqrt(v_hat) + eps).
    state: {"t": t, "m1": ..., "v": ...} buffers like params. Returns (params, state).
    """
    _same_structure(params, grads)
    state = _start(state, params, "m1", "v")
    t = state["t"] + 1
    new_params, new_m1, new_v = [], [], []
    for P, G, m1, v in zip(_leaves(params), _leaves(grads), _leaves(state["m1"]),
                           _leaves(state["v"])):
        dtype = P.dtype.type
        # 1 - beta and the bias corrections in double before the cast, as for RMSprop
        lr, b1, b2, e = dtype(learning_rate), dtype(beta1), dtype(beta2), dtype(eps)
        one_minus_b1, one_minus_b2 = dtype(1 - float(beta1)), dtype(1 - float(beta2))
        if weight_decay:
            # p = p (1 - lr weight_decay)
            P = P * (1 - lr * dtype(weight_decay))
        # m1 = beta1 m1 + (1 - beta1) g
        m1 = b1 * m1 + one_minus_b1 * G
        # v = beta2 v + (1 - beta2) g^2
        v = b2 * v + one_minus_b2 * G * G
        # m_hat = m1 / (1 - beta1^t)
        m_hat = m1 / dtype(1 - float(beta1) ** t)
        # v_hat = v / (1 - beta2^t)
        v_hat = v / dtype(1 - float(beta2) ** t)
        # p = p - lr m_hat / (sqrt(v_hat) + eps)
        new_params.append(P - lr * m_hat / (np.sqrt(v_hat) + e))
        new_m1.append(m1)
        new_v.append(v)
    return (_rebuild(params, new_params),
            {"t": t, "m1": _rebuild(params, new_m1), "v": _rebuild(params, new_v)})


def adamw_step(params, grads, state=None, *, learning_rate=1e-3, beta1=0.9, beta2=0.999,
               eps=1e-8, weight_decay=0.01):
    """One step of AdamW (torch.optim.AdamW): p = p (1 - lr weight_decay), then the Adam step.

    The decay applies to every entry of params (one torch param group).
    See adam_step. Returns (params, state).
    """
    return adam_step(params, grads, state, learning_rate=learning_rate, beta1=beta1,
                     beta2=beta2, eps=eps, weight_decay=weight_decay)


# name: (step function, its hyper-parameters with the defaults of torch.optim
# and of the contract; "momentum" and "nesterov" are SGD with momentum 0.9)
OPTIMIZERS = {
    "sgd": (sgd_step, {"learning_rate": 0.01, "momentum": 0.0, "nesterov": False}),
    "momentum": (sgd_step, {"learning_rate": 0.01, "momentum": 0.9, "nesterov": False}),
    "nesterov": (sgd_step, {"learning_rate": 0.01, "momentum": 0.9, "nesterov": True}),
    "rmsprop": (rmsprop_step, {"learning_rate": 0.01, "alpha": 0.99, "eps": 1e-8}),
    "adam": (adam_step, {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}),
    "adamw": (adamw_step, {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
                           "weight_decay": 0.01}),
}


def optimizer_step(name, params, grads, state=None, **hyper_parameters):
    """One step of the optimizer called name in OPTIMIZERS, hyper-parameters defaulted.

    name: "sgd", "momentum", "nesterov", "rmsprop", "adam" or "adamw";
    hyper_parameters: any of that optimizer's (e.g. learning_rate=0.1, beta1=0.8).
    Returns (params, state). Raises ValueError on an unknown name or hyper-parameter.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")
    step, defaults = OPTIMIZERS[name]
    unknown = sorted(set(hyper_parameters) - set(defaults))
    if unknown:
        raise ValueError(f"optimizer {name!r} takes {sorted(defaults)}; got {unknown}")
    return step(params, grads, state, **{**defaults, **hyper_parameters})
