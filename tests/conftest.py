"""Shared helpers of the test suite: tolerances, random networks, random data.

Every public behaviour of mlpcore is checked against mlpcore.reference, the
plain NumPy spelling of the same equations. The helpers here build a network
and a reference twin holding copies of the same parameters, plus random
inputs and valid targets for each cost.
"""

import numpy as np
import pytest

import mlpcore
from mlpcore import reference

DTYPES = (np.float32, np.float64)

# (rtol, atol as a fraction of max |expected|) per dtype
TOLERANCE = {
    np.dtype(np.float32): (1e-4, 1e-6),
    np.dtype(np.float64): (1e-10, 1e-12),
}

# The output activation a cost requires; mse takes any but softmax.
OUTPUT_OF_COST = {"bce": "sigmoid", "cce": "softmax"}

# Every activation but softmax, with non-default alphas as well.
ELEMENTWISE_ACTIVATIONS = (
    "identity", "step", "sigmoid", "tanh", "relu", "leaky_relu", "elu",
    ("leaky_relu", {"alpha": 0.2}), ("elu", {"alpha": 0.5}),
)
HIDDEN_NAMES = ("identity", "step", "sigmoid", "tanh", "relu", "leaky_relu", "elu")


def activation_id(spec):
    """Short test id of an activation spec: 'relu', 'elu0.5'."""
    if isinstance(spec, str):
        return spec
    name, params = spec
    return f"{name}{params['alpha']}"


def pairing_cases():
    """Every activation with every cost it pairs with: (hidden, output, cost).

    mse: the activation in every layer, the output included.
    bce, cce: the activation in the hidden layers, sigmoid or softmax output
    (softmax is thus covered by every cce case).
    hidden = "mixed": a random activation for each hidden layer.
    """
    cases = []
    for spec in ELEMENTWISE_ACTIVATIONS:
        cases.append(pytest.param(spec, spec, "mse", id=f"{activation_id(spec)}-mse"))
        for cost in ("bce", "cce"):
            cases.append(pytest.param(spec, OUTPUT_OF_COST[cost], cost,
                                      id=f"{activation_id(spec)}-{cost}"))
    for cost in ("mse", "bce", "cce"):
        output = OUTPUT_OF_COST.get(cost, "tanh")
        cases.append(pytest.param("mixed", output, cost, id=f"mixed-{cost}"))
    return cases


def assert_close(actual, expected, dtype):
    """Assert actual == expected within the tolerance of dtype.

    float64: rtol 1e-10, atol 1e-12 * max|expected|;
    float32: rtol 1e-4,  atol 1e-6  * max|expected|.
    """
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, (
        f"shape {actual.shape} != expected {expected.shape}")
    rtol, atol_fraction = TOLERANCE[np.dtype(dtype)]
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=rtol,
                               atol=atol_fraction * scale)


def central_difference(f, array, index, h=1e-6):
    """The central difference of the scalar f() with respect to array[index] (in place, restored)."""
    saved = array[index]
    array[index] = saved + h
    f_plus = f()
    array[index] = saved - h
    f_minus = f()
    array[index] = saved
    return (f_plus - f_minus) / (2 * h)


def numerical_gradient(f, array, h=1e-6):
    """Central differences of the scalar f() with respect to every entry of array (in place)."""
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        grad[index] = central_difference(f, array, index, h)
    return grad


def assert_gradient(analytic, numeric):
    """Analytic and finite-difference gradients agree (float64, h = 1e-6)."""
    scale = max(1.0, float(np.max(np.abs(numeric))))
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7 * scale)


def random_activations(rng, L, hidden, output):
    """L activation specs: hidden for layers 1..L-1 (or random if "mixed"), output for L."""
    specs = []
    for _ in range(L - 1):
        if hidden == "mixed":
            name = HIDDEN_NAMES[rng.integers(len(HIDDEN_NAMES))]
            if name in ("leaky_relu", "elu"):
                specs.append((name, {"alpha": float(rng.uniform(0.05, 1.5))}))
            else:
                specs.append(name)
        else:
            specs.append(hidden)
    specs.append(output)
    return specs


def random_sizes(rng, cost, L, max_width=64):
    """Layer sizes n[0..L], each in 1..max_width (often small); n[L] >= 2 for cce."""
    n = []
    for _ in range(L + 1):
        if rng.random() < 0.25:
            n.append(int(rng.integers(1, 4)))
        else:
            n.append(int(rng.integers(1, max_width + 1)))
    if cost == "cce":
        n[L] = max(n[L], 2)
    return n


def random_input(rng, n0, m, dtype):
    """X (n0, m) of dtype, standard normal."""
    return rng.standard_normal((n0, m)).astype(dtype)


def random_targets(rng, cost, nL, m, dtype):
    """Valid dense targets Y (nL, m) of dtype for cost.

    mse: any real; bce: in [0, 1], about half exactly 0 or 1; cce: one-hot.
    """
    if cost == "mse":
        return rng.standard_normal((nL, m)).astype(dtype)
    if cost == "bce":
        Y = rng.random((nL, m))
        hard = rng.random((nL, m)) < 0.5
        Y[hard] = np.round(Y[hard])
        return Y.astype(dtype)
    labels = rng.integers(0, nL, size=m)
    return reference.one_hot(labels, nL, dtype=dtype)


def reference_params(net):
    """Copies (W, b) of the network's parameters, dicts keyed 1..L."""
    W = {l: np.array(net.W[l]) for l in range(1, net.L + 1)}
    b = {l: np.array(net.b[l]) for l in range(1, net.L + 1)}
    return W, b


class Case:
    """A network, a reference twin of its parameters, and a batch X, Y."""

    def __init__(self, net, activations, cost, X, Y):
        self.net = net
        self.activations = activations          # parsed, index 0 = layer 1
        self.cost = cost
        self.L = net.L
        self.n = list(net.n)
        self.X = X
        self.Y = Y
        self.m = X.shape[1]
        self.dtype = np.dtype(net.dtype)
        self.W, self.b = reference_params(net)


def make_case(seed, hidden, output, cost, dtype, L=None, max_width=64,
              max_m=300, bias_scale=0.5, n=None, m=None):
    """Random architecture, network and data for the pairing (hidden, output, cost).

    L in 1..5 (2..5 when hidden differs from output, so the hidden activation
    is used), widths 1..max_width, m in 1..max_m, unless n (the layer sizes)
    or m are given. The biases are overwritten with random values through the
    writable views net.b[l], so that the b terms are exercised; the reference
    twin copies the final W, b.
    """
    rng = np.random.default_rng(seed)
    if n is None:
        if L is None:
            L = int(rng.integers(1 if hidden == output else 2, 6))
        n = random_sizes(rng, cost, L, max_width)
    else:
        n, L = list(n), len(n) - 1
        if cost == "cce":
            n[L] = max(n[L], 2)
    if m is None:
        m = int(rng.integers(1, max_m + 1))
    specs = random_activations(rng, L, hidden, output)
    net = mlpcore.Network(n, specs, cost, dtype=np.dtype(dtype).name,
                          seed=int(rng.integers(2**31)))
    for l in range(1, L + 1):
        net.b[l][...] = bias_scale * rng.standard_normal((n[l], 1))
    parsed = reference.check_architecture(n, specs, cost)
    X = random_input(rng, n[0], m, dtype)
    Y = random_targets(rng, cost, n[L], m, dtype)
    return Case(net, parsed, cost, X, Y)


@pytest.fixture
def restore_threads():
    """Put mlpcore's thread count back as it was after the test."""
    before = mlpcore.get_num_threads()
    yield before
    mlpcore.set_num_threads(before)
