"""Plain NumPy reference of a multilayer perceptron: the oracle of the tests.

Every function spells out the textbook equations in the notation of
DESIGN.md, one line of NumPy per equation:

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

Arithmetic stays in the dtype of the inputs: float32 in, float32 out.
The only import is NumPy.
"""

import numpy as np

__all__ = [
    "EPS", "ACTIVATIONS", "COSTS", "INITS",
    "parse_activation", "check_architecture", "initial_parameters",
    "g", "g_prime", "forward", "cost", "backward", "update", "one_hot",
]

# Clip of A[L] before a log in the bce and cce costs, per dtype.
EPS = {np.dtype("float32"): 1e-7, np.dtype("float64"): 1e-15}

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

def _is_integer(value):
    """True for a Python or NumPy integer (not a bool)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_finite_real(value):
    """True for a finite Python or NumPy int or float (not a bool)."""
    return (isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, bool) and bool(np.isfinite(value)))


def parse_activation(spec):
    """Resolve an activation spec to ``(name, params)``.

    spec: a name such as ``"relu"``, or a pair ``(name, {"alpha": value})``;
    only leaky_relu and elu take alpha. ``"linear"`` is resolved to
    ``"identity"``. Returns the canonical name and a params dict with alpha
    filled in (0.01 for leaky_relu, 1.0 for elu; ``{}`` for the others).
    Raises ValueError on an unknown name or parameter, TypeError on a spec
    that is neither a name nor a pair.
    """
    if isinstance(spec, str):
        name, params = spec, {}
    elif isinstance(spec, (tuple, list)) and len(spec) == 2:
        name, params = spec
    else:
        raise TypeError(
            f"an activation is a name or a pair (name, params); got {spec!r}")
    if not isinstance(name, str):
        raise TypeError(f"an activation name is a str; got {name!r}")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise TypeError(
            f"activation params are a dict such as {{'alpha': 0.1}}; "
            f"got {params!r}")

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
    if not _is_finite_real(alpha):
        raise ValueError(
            f"alpha of {name!r} must be a finite real number; got {alpha!r}")
    return name, {"alpha": float(alpha)}


def check_architecture(n, activations, cost):
    """Check layer sizes, activations and cost; return the parsed activations.

    n: sequence of L + 1 positive ints, n[0] input features .. n[L] outputs.
    activations: sequence of L activation specs, one for each layer 1..L.
    cost: "mse", "bce" or "cce".
    Returns a list of L ``(name, params)`` pairs (index 0 is layer 1).
    Raises ValueError when the sizes, the count of activations or a pairing
    is wrong: softmax only as the output of a cce network with n[L] >= 2,
    bce only with a sigmoid output, cce only with a softmax output, mse with
    any output but softmax.
    """
    n = list(n)
    for size in n:
        if not _is_integer(size) or size < 1:
            raise ValueError(
                f"layer sizes n must be integers >= 1; got n = {n}")
    if len(n) < 2:
        raise ValueError(
            f"layer sizes n need n[0] and at least one layer; got n = {n}")
    L = len(n) - 1

    if isinstance(activations, (str, dict)):
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
    init = list(init)
    if len(init) != L:
        raise ValueError(
            f"init needs one name for each of the L = {L} layers; "
            f"got {len(init)}")
    for scheme in init:
        if scheme not in INITS:
            raise ValueError(
                f"unknown init {scheme!r}; expected one of {', '.join(INITS)}")

    if not _is_finite_real(bias):
        raise ValueError(f"bias must be a finite real number; got {bias!r}")

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
# Forward, cost, backward, update
# ---------------------------------------------------------------------------

def forward(W, b, X, activations):
    """Forward propagation.

    W, b: dicts keyed 1..L, W[l] (n[l], n[l-1]), b[l] (n[l], 1), dtype float.
    X: (n[0], m), one column per example, same dtype as W.
    activations: L specs, index 0 for layer 1.
    Returns (Z, A): dicts with Z[l] (n[l], m) for l = 1..L and A[l] (n[l], m)
    for l = 0..L, A[0] = X; all of the dtype of W and X.
    """
    L = len(W)
    Z, A = {}, {0: X}
    for l in range(1, L + 1):
        # Z[l] = W[l] A[l-1] + b[l]
        Z[l] = W[l] @ A[l - 1] + b[l]
        # A[l] = g[l](Z[l])
        A[l] = g(activations[l - 1], Z[l])
    return Z, A


def cost(A_L, Y, cost):
    """Cost J, summed over output units and averaged over the m examples.

    A_L: (n[L], m) output activations, float32 or float64.
    Y: (n[L], m) dense targets (one-hot for cce); cast to the dtype of A_L.
    cost: "mse", "bce" or "cce".
    Returns J as a Python float, computed in the dtype of A_L.
    """
    Y = np.asarray(Y, dtype=A_L.dtype)
    m = A_L.shape[1]
    if cost == "mse":
        # J = 1/(2m) sum (A[L] - Y)^2
        return float(np.sum((A_L - Y) ** 2) / (2 * m))
    eps = A_L.dtype.type(EPS[A_L.dtype])
    # Ac = clip(A[L], eps, 1 - eps)
    Ac = np.clip(A_L, eps, 1 - eps)
    if cost == "bce":
        # J = -(1/m) sum [Y log Ac + (1 - Y) log(1 - Ac)]
        return float(-np.sum(Y * np.log(Ac) + (1 - Y) * np.log(1 - Ac)) / m)
    if cost == "cce":
        # J = -(1/m) sum Y log Ac
        return float(-np.sum(Y * np.log(Ac)) / m)
    raise ValueError(f"unknown cost {cost!r}; expected one of {', '.join(COSTS)}")


def backward(W, Z, A, Y, activations, cost, compute_dA0=False):
    """Backward propagation.

    W: dict keyed 1..L, W[l] (n[l], n[l-1]).
    Z, A: the dicts returned by forward (Z[1..L], A[0..L]).
    Y: (n[L], m) dense targets (one-hot for cce), dtype of A.
    activations: L specs; cost: "mse", "bce" or "cce".
    compute_dA0: also return dA[0] = W[1]^T dZ[1] (n[0], m).
    Returns {"dW": dW, "db": db, "dZ": dZ, "dA": dA}, dicts keyed by layer:
    dW[l] (n[l], n[l-1]), db[l] (n[l], 1), dZ[l] (n[l], m) for l = 1..L;
    dA[l] (n[l], m) for l = 1..L-1, plus dA[L] for mse, plus dA[0] if asked.
    dZ and dA are m times dJ/dZ and dJ/dA; dW and db are dJ/dW and dJ/db.
    """
    L = len(W)
    m = A[0].shape[1]
    Y = np.asarray(Y, dtype=A[L].dtype)
    dW, db, dZ, dA = {}, {}, {}, {}

    if cost == "mse":
        # dA[L] = A[L] - Y
        dA[L] = A[L] - Y
        # dZ[L] = dA[L] * g[L]'(Z[L])
        dZ[L] = dA[L] * g_prime(activations[L - 1], Z[L])
    else:
        # bce with sigmoid, cce with softmax: dZ[L] = A[L] - Y
        dZ[L] = A[L] - Y

    for l in range(L, 0, -1):
        # dW[l] = (1/m) dZ[l] A[l-1]^T
        dW[l] = dZ[l] @ A[l - 1].T / m
        # db[l] = (1/m) sum over columns of dZ[l]
        db[l] = np.sum(dZ[l], axis=1, keepdims=True) / m
        if l > 1 or compute_dA0:
            # dA[l-1] = W[l]^T dZ[l]
            dA[l - 1] = W[l].T @ dZ[l]
        if l > 1:
            # dZ[l-1] = dA[l-1] * g[l-1]'(Z[l-1])
            dZ[l - 1] = dA[l - 1] * g_prime(activations[l - 2], Z[l - 1])

    return {"dW": dW, "db": db, "dZ": dZ, "dA": dA}


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
