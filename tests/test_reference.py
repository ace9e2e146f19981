"""The NumPy reference alone: the oracle must itself be right.

Gradients by finite differences in float64, stability of every activation at
|Z| = 1e4 in float32, dtype preservation, the initialisation schemes, and the
validation of architectures.
"""

import warnings

import numpy as np
import pytest

from conftest import (ELEMENTWISE_ACTIVATIONS, activation_id, assert_gradient, numerical_gradient,
                      pairing_cases)
from mlpcore import reference

ALL_ACTIVATIONS = ELEMENTWISE_ACTIVATIONS + ("softmax",)


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def small_problem(seed, hidden, output, cost, dtype=np.float64):
    """A small random network (L <= 3, widths <= 4, m <= 5) with data, for finite differences."""
    rng = np.random.default_rng(seed)
    L = int(rng.integers(1 if hidden == output else 2, 4))
    n = [int(rng.integers(1, 5)) for _ in range(L + 1)]
    if cost == "cce":
        n[L] = max(n[L], 2)
    m = int(rng.integers(1, 6))
    if hidden == "mixed":
        names = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu")
        specs = [names[rng.integers(len(names))] for _ in range(L - 1)] + [output]
    else:
        specs = [hidden] * (L - 1) + [output]
    acts = reference.check_architecture(n, specs, cost)
    W, b = reference.initial_parameters(n, acts, seed=seed, dtype=dtype)
    for l in range(1, L + 1):
        b[l] = (0.5 * rng.standard_normal((n[l], 1))).astype(dtype)
    X = rng.standard_normal((n[0], m)).astype(dtype)
    if cost == "mse":
        Y = rng.standard_normal((n[L], m))
    elif cost == "bce":
        Y = rng.random((n[L], m))
    else:
        Y = reference.one_hot(rng.integers(0, n[L], size=m), n[L])
    return W, b, X, Y.astype(dtype), acts


def cost_of(W, b, X, Y, acts, cost):
    """J of the network (W, b) on (X, Y)."""
    _, A = reference.forward(W, b, X, acts)
    return reference.cost(A[len(W)], Y, cost)


SMOOTH_CASES = [case for case in pairing_cases() if case.values[0] != "step"]
STEP_CASES = [case for case in pairing_cases() if case.values[0] == "step"]


# ---------------------------------------------------------------------------
# gradients
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("hidden, output, cost", SMOOTH_CASES)
def test_backward_matches_finite_differences(hidden, output, cost, seed):
    W, b, X, Y, acts = small_problem(seed, hidden, output, cost)
    L, m = len(W), X.shape[1]
    Z, A = reference.forward(W, b, X, acts)
    grads = reference.backward(W, Z, A, Y, acts, cost, compute_dA0=True)

    def J():
        return cost_of(W, b, X, Y, acts, cost)

    for l in range(1, L + 1):
        assert_gradient(grads["dW"][l], numerical_gradient(J, W[l]))
        assert_gradient(grads["db"][l], numerical_gradient(J, b[l]))
    # dA[0] is m times dJ/dX (per-example convention)
    assert_gradient(grads["dA"][0], m * numerical_gradient(J, X))


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("hidden, output, cost", SMOOTH_CASES)
def test_output_dZ_and_dA_match_finite_differences(hidden, output, cost, seed):
    """dZ[L] = m dJ/dZ[L] (fused A - Y for bce, cce); dA[L] = m dJ/dA[L] for mse."""
    W, b, X, Y, acts = small_problem(seed, hidden, output, cost)
    L, m = len(W), X.shape[1]
    Z, A = reference.forward(W, b, X, acts)
    grads = reference.backward(W, Z, A, Y, acts, cost)
    Z_L, A_L = Z[L].copy(), A[L].copy()

    dZ_numeric = m * numerical_gradient(
        lambda: reference.cost(reference.g(acts[L - 1], Z_L), Y, cost), Z_L)
    assert_gradient(grads["dZ"][L], dZ_numeric)
    if cost == "mse":
        dA_numeric = m * numerical_gradient(lambda: reference.cost(A_L, Y, cost), A_L)
        assert_gradient(grads["dA"][L], dA_numeric)
    else:
        assert L not in grads["dA"]


@pytest.mark.parametrize("hidden, output, cost", STEP_CASES)
def test_step_gives_zero_gradients(hidden, output, cost):
    """g' of step is 0: every gradient behind a step layer vanishes."""
    W, b, X, Y, acts = small_problem(0, hidden, output, cost)
    L = len(W)
    Z, A = reference.forward(W, b, X, acts)
    grads = reference.backward(W, Z, A, Y, acts, cost, compute_dA0=True)
    # the layers below the last step layer get no gradient at all
    last_step = max(l for l in range(1, L + 1) if acts[l - 1][0] == "step")
    for l in range(1, last_step + 1):
        assert np.all(grads["dZ"][l] == 0)
        assert np.all(grads["dW"][l] == 0)
        assert np.all(grads["db"][l] == 0)
    assert np.all(grads["dA"][0] == 0)
    # and the finite differences agree: J is flat in W[1]
    J = lambda: cost_of(W, b, X, Y, acts, cost)  # noqa: E731
    assert np.all(numerical_gradient(J, W[1]) == 0)
    if last_step < L:  # a sigmoid/softmax output above the step layers still learns
        assert np.any(grads["dW"][L] != 0)


def test_backward_dA_keys():
    """dA[l] for 1..L-1, dA[L] only for mse, dA[0] only when asked."""
    for cost, output in (("mse", "tanh"), ("bce", "sigmoid"), ("cce", "softmax")):
        W, b, X, Y, acts = small_problem(1, "tanh", output, cost)
        L = len(W)
        Z, A = reference.forward(W, b, X, acts)
        expected = set(range(1, L)) | ({L} if cost == "mse" else set())
        assert set(reference.backward(W, Z, A, Y, acts, cost)["dA"]) == expected
        with_dA0 = reference.backward(W, Z, A, Y, acts, cost, compute_dA0=True)
        assert set(with_dA0["dA"]) == expected | {0}
        assert with_dA0["dA"][0].shape == X.shape


# ---------------------------------------------------------------------------
# activations
# ---------------------------------------------------------------------------

BIG = np.array([[-1e4, -1e3, -100.0, -88.8, -20.0, -1.0, -1e-30, 0.0],
                [1e-30, 1.0, 20.0, 88.8, 100.0, 1e3, 1e4, 3e38]], dtype=np.float32)


@pytest.mark.parametrize("spec", ALL_ACTIVATIONS, ids=activation_id)
def test_activation_stable_in_float32(spec):
    """|Z| up to 1e4 (and beyond): no overflow, no NaN, no warning; float32 kept.

    Underflow (e^-1e4 -> 0) is the right answer and is allowed.
    """
    Z = np.concatenate([BIG, -BIG], axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"):
            A = reference.g(spec, Z)
            derivative = None if spec == "softmax" else reference.g_prime(spec, Z)
    assert A.dtype == np.float32 and A.shape == Z.shape
    assert np.all(np.isfinite(A))
    if derivative is not None:
        assert derivative.dtype == np.float32
        assert np.all(np.isfinite(derivative))


def test_activation_values_at_extremes():
    Z = np.array([[-1e4, 0.0, 1e4]], dtype=np.float32)
    np.testing.assert_array_equal(reference.g("sigmoid", Z), [[0.0, 0.5, 1.0]])
    np.testing.assert_array_equal(reference.g("tanh", Z), [[-1.0, 0.0, 1.0]])
    np.testing.assert_array_equal(reference.g("elu", Z), [[-1.0, 0.0, 1e4]])
    np.testing.assert_array_equal(reference.g(("elu", {"alpha": 0.5}), Z), [[-0.5, 0.0, 1e4]])
    np.testing.assert_allclose(reference.g("leaky_relu", Z), [[-100.0, 0.0, 1e4]])
    np.testing.assert_array_equal(reference.g_prime("sigmoid", Z), [[0.0, 0.25, 0.0]])
    # softmax of a column with a 2e4 spread: exactly one-hot, no NaN
    S = np.array([[-1e4, 1e4], [1e4, -1e4]], dtype=np.float32)
    np.testing.assert_array_equal(reference.g("softmax", S), [[0.0, 1.0], [1.0, 0.0]])


def test_activation_values():
    Z = np.array([[-2.0, -0.5, 0.0, 0.5, 2.0]])
    e = np.exp
    expected = {
        "identity": Z,
        "linear": Z,
        "step": [[0, 0, 1, 1, 1]],
        "sigmoid": 1 / (1 + e(-Z)),
        "tanh": np.tanh(Z),
        "relu": [[0, 0, 0, 0.5, 2.0]],
        "leaky_relu": [[-0.02, -0.005, 0, 0.5, 2.0]],
        "elu": [[e(-2.0) - 1, e(-0.5) - 1, 0, 0.5, 2.0]],
    }
    for name, values in expected.items():
        np.testing.assert_allclose(reference.g(name, Z), values, rtol=1e-15, atol=1e-16)
    np.testing.assert_allclose(reference.g(("leaky_relu", {"alpha": 0.3}), Z),
                               [[-0.6, -0.15, 0, 0.5, 2.0]], rtol=1e-15)
    S = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    expected_softmax = e(S) / e(S).sum(axis=0)
    np.testing.assert_allclose(reference.g("softmax", S), expected_softmax, rtol=1e-15)


def test_derivative_conventions_at_kinks():
    Z = np.array([[0.0, -1.0, 1.0]])
    np.testing.assert_array_equal(reference.g_prime("step", Z), [[0, 0, 0]])
    np.testing.assert_array_equal(reference.g_prime("relu", Z), [[0, 0, 1]])
    np.testing.assert_allclose(reference.g_prime("leaky_relu", Z), [[0.01, 0.01, 1]])
    np.testing.assert_allclose(reference.g_prime(("elu", {"alpha": 0.5}), Z),
                               [[0.5, 0.5 * np.exp(-1.0), 1]])
    with pytest.raises(ValueError, match="softmax"):
        reference.g_prime("softmax", Z)


@pytest.mark.parametrize("spec", ELEMENTWISE_ACTIVATIONS, ids=activation_id)
def test_derivative_matches_finite_differences(spec):
    """g'(Z) = (g(Z + h) - g(Z - h)) / 2h away from the kinks."""
    Z = np.random.default_rng(0).uniform(-4, 4, size=(5, 40))
    Z[np.abs(Z) < 0.01] = 0.5
    h = 1e-6
    numeric = (reference.g(spec, Z + h) - reference.g(spec, Z - h)) / (2 * h)
    np.testing.assert_allclose(reference.g_prime(spec, Z), numeric, rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------------------
# dtype preservation and the cost
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("hidden, output, cost", pairing_cases())
def test_float32_in_float32_out(hidden, output, cost):
    W, b, X, Y, acts = small_problem(2, hidden, output, cost, dtype=np.float32)
    L = len(W)
    Z, A = reference.forward(W, b, X, acts)
    grads = reference.backward(W, Z, A, Y, acts, cost, compute_dA0=True)
    arrays = [Z[l] for l in Z] + [A[l] for l in A]
    arrays += [array for key in grads for array in grads[key].values()]
    assert all(array.dtype == np.float32 for array in arrays)
    J = reference.cost(A[L], Y, cost)
    assert isinstance(J, float) and np.isfinite(J)
    J64 = reference.cost(A[L].astype(np.float64), Y.astype(np.float64), cost)
    assert J == pytest.approx(J64, rel=1e-5, abs=1e-6)


def test_cost_values():
    A = np.array([[0.5, 0.25], [1.0, 0.0]])
    Y = np.array([[1.0, 0.0], [1.0, 1.0]])
    assert reference.cost(A, Y, "mse") == pytest.approx((0.25 + 0.0625 + 0 + 1) / 4)
    # bce clips A to [eps, 1 - eps] before the log: log(0) becomes log(1e-15)
    expected_bce = -(np.log(0.5) + np.log(0.75) + 0 + np.log(1e-15)) / 2
    assert reference.cost(A, Y, "bce") == pytest.approx(expected_bce, rel=1e-12)
    P = np.array([[0.7, 0.0], [0.3, 1.0]])
    Y1 = np.array([[1.0, 1.0], [0.0, 0.0]])
    expected_cce = -(np.log(0.7) + np.log(1e-15)) / 2
    assert reference.cost(P, Y1, "cce") == pytest.approx(expected_cce, rel=1e-12)
    # float32 clips at 1e-7
    J32 = reference.cost(P.astype(np.float32), Y1.astype(np.float32), "cce")
    assert J32 == pytest.approx(-(np.log(0.7) + np.log(1e-7)) / 2, rel=1e-5)
    with pytest.raises(ValueError, match="cost"):
        reference.cost(A, Y, "hinge")


def test_update_in_place():
    W = {1: np.ones((2, 3), np.float32)}
    b = {1: np.zeros((2, 1), np.float32)}
    W_before, b_before = W[1], b[1]
    dW = {1: np.full((2, 3), 2.0, np.float32)}
    db = {1: np.full((2, 1), -4.0, np.float32)}
    assert reference.update(W, b, dW, db, 0.25) is None
    assert W[1] is W_before and b[1] is b_before
    np.testing.assert_array_equal(W[1], np.full((2, 3), 0.5))
    np.testing.assert_array_equal(b[1], np.full((2, 1), 1.0))
    assert W[1].dtype == np.float32 and b[1].dtype == np.float32


def test_one_hot():
    Y = reference.one_hot([2, 0, 1, 2], 3, dtype=np.float32)
    assert Y.dtype == np.float32 and Y.shape == (3, 4)
    np.testing.assert_array_equal(Y, [[0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 1]])
    assert reference.one_hot(np.array([1]), 2).dtype == np.float64
    for bad in ([3], [-1], [0.5]):
        with pytest.raises(ValueError, match="labels"):
            reference.one_hot(bad, 3)


# ---------------------------------------------------------------------------
# parsing and architecture
# ---------------------------------------------------------------------------

def test_parse_activation():
    assert reference.parse_activation("relu") == ("relu", {})
    assert reference.parse_activation("linear") == ("identity", {})
    assert reference.parse_activation("leaky_relu") == ("leaky_relu", {"alpha": 0.01})
    assert reference.parse_activation("elu") == ("elu", {"alpha": 1.0})
    assert reference.parse_activation(("elu", {"alpha": 0.3})) == ("elu", {"alpha": 0.3})
    assert reference.parse_activation(("leaky_relu", {})) == ("leaky_relu", {"alpha": 0.01})
    assert reference.parse_activation(("tanh", {})) == ("tanh", {})
    # a parsed pair parses to itself
    parsed = reference.parse_activation(("leaky_relu", {"alpha": 0.2}))
    assert reference.parse_activation(parsed) == parsed
    assert set(reference.ACTIVATIONS) == {"identity", "step", "sigmoid", "tanh", "relu",
                                          "leaky_relu", "elu", "softmax"}
    assert set(reference.COSTS) == {"mse", "bce", "cce"}


@pytest.mark.parametrize("spec, pattern", [
    ("relux", "relux"),
    ("ReLU", "ReLU"),
    (("relu", {"alpha": 0.1}), "alpha"),
    (("elu", {"beta": 0.1}), "beta"),
    (("elu", {"alpha": float("nan")}), "alpha"),
])
def test_parse_activation_refuses(spec, pattern):
    with pytest.raises(ValueError, match=pattern):
        reference.parse_activation(spec)


def test_check_architecture_accepts_and_parses():
    parsed = reference.check_architecture([3, 4, 2], ["linear", "softmax"], "cce")
    assert parsed == [("identity", {}), ("softmax", {})]
    assert reference.check_architecture((1, 1), ["step"], "mse") == [("step", {})]
    assert reference.check_architecture([2, 5, 1], ["elu", "sigmoid"], "bce")[0] == (
        "elu", {"alpha": 1.0})


@pytest.mark.parametrize("n, activations, cost, pattern", [
    ([3, 4, 2], ["relu"], "mse", "activations|L = 2"),
    ([3, 4, 2], ["relu", "relu", "relu"], "mse", "activations|L = 2"),
    ([3, 0, 2], ["relu", "relu"], "mse", "n|size"),
    ([3], [], "mse", "n|layer"),
    ([3, 4, 2], ["softmax", "softmax"], "cce", "softmax"),
    ([3, 4, 2], ["relu", "softmax"], "mse", "softmax|mse"),
    ([3, 4, 1], ["relu", "softmax"], "cce", "softmax|n\\[L\\]"),
    ([3, 4, 1], ["relu", "relu"], "bce", "sigmoid|bce"),
    ([3, 4, 2], ["relu", "sigmoid"], "cce", "softmax|cce"),
    ([3, 4, 2], ["relu", "relu"], "hinge", "hinge|cost"),
    ([3, 4, 2], ["relu", "swish"], "mse", "swish"),
])
def test_check_architecture_refuses(n, activations, cost, pattern):
    with pytest.raises(ValueError, match=pattern):
        reference.check_architecture(n, activations, cost)


# ---------------------------------------------------------------------------
# initialisation
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("init, activation, expected_std", [
    ("he", "tanh", np.sqrt(2 / 400)),
    ("xavier", "relu", np.sqrt(1 / 400)),
    ("glorot", "tanh", np.sqrt(2 / (400 + 300))),
    ("small", "relu", 0.01),
    ("auto", "relu", np.sqrt(2 / 400)),
    ("auto", "leaky_relu", np.sqrt(2 / 400)),
    ("auto", "elu", np.sqrt(2 / 400)),
    ("auto", "tanh", np.sqrt(1 / 400)),
    ("auto", "sigmoid", np.sqrt(1 / 400)),
    ("auto", "identity", np.sqrt(1 / 400)),
])
def test_initial_weights_have_the_scheme_variance(init, activation, expected_std):
    n = [400, 300]
    W, b = reference.initial_parameters(n, [activation], init=init, seed=7,
                                        dtype=np.float64)
    assert W[1].shape == (300, 400) and b[1].shape == (300, 1)
    # 120000 draws: the sample std is within ~0.5% of the truth; allow 5%
    assert np.std(W[1]) == pytest.approx(expected_std, rel=0.05)
    assert abs(np.mean(W[1])) < 0.05 * expected_std
    assert np.all(b[1] == 0)


def test_initial_parameters_draw_order_and_dtype():
    """W[l] = rng.standard_normal((n[l], n[l-1])) * scale for l = 1..L in order, cast after."""
    n = [5, 4, 3, 2]
    acts = ["relu", "tanh", "sigmoid"]
    W, b = reference.initial_parameters(n, acts, init="auto", bias=0.25, seed=42,
                                        dtype=np.float32)
    rng = np.random.default_rng(42)
    scales = [np.sqrt(2 / 5), np.sqrt(1 / 4), np.sqrt(1 / 3)]
    for l in range(1, 4):
        expected = (rng.standard_normal((n[l], n[l - 1])) * scales[l - 1]).astype(np.float32)
        assert W[l].dtype == np.float32 and b[l].dtype == np.float32
        np.testing.assert_array_equal(W[l], expected)
        np.testing.assert_array_equal(b[l], np.full((n[l], 1), 0.25, np.float32))
    assert sorted(W) == [1, 2, 3] and sorted(b) == [1, 2, 3]


def test_initial_parameters_init_per_layer():
    n = [300, 200, 100]
    W, _ = reference.initial_parameters(n, ["relu", "relu"], init=["small", "glorot"],
                                        seed=3, dtype=np.float64)
    assert np.std(W[1]) == pytest.approx(0.01, rel=0.05)
    assert np.std(W[2]) == pytest.approx(np.sqrt(2 / 300), rel=0.05)


def test_initial_parameters_seed_reproducibility():
    n, acts = [6, 5, 2], ["tanh", "softmax"]
    W1, _ = reference.initial_parameters(n, acts, seed=11)
    W2, _ = reference.initial_parameters(n, acts, seed=11)
    W3, _ = reference.initial_parameters(n, acts, seed=12)
    W4, _ = reference.initial_parameters(n, acts, seed=None)
    W5, _ = reference.initial_parameters(n, acts, seed=None)
    for l in (1, 2):
        np.testing.assert_array_equal(W1[l], W2[l])
        assert not np.array_equal(W1[l], W3[l])
        assert not np.array_equal(W4[l], W5[l])


@pytest.mark.parametrize("kwargs, error, pattern", [
    ({"init": "lecun"}, ValueError, "lecun"),
    ({"init": ["he"]}, ValueError, "init"),
    ({"bias": float("nan")}, ValueError, "bias"),
    ({"dtype": np.int32}, TypeError, "float32|dtype"),
])
def test_initial_parameters_refuses(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        reference.initial_parameters([3, 4, 2], ["relu", "softmax"], **kwargs)


def test_the_reference_takes_a_networks_layers_as_dicts():
    """net.W, net.b, grads.dW, grads.db are keyed by layer number like the reference's dicts, so
    that the reference's functions take them as they are."""
    import mlpcore

    rng = np.random.default_rng(5)
    net = mlpcore.Network([3, 4, 2], ["tanh", "sigmoid"], "bce", dtype="float64", seed=0)
    X, Y = rng.standard_normal((3, 6)), rng.integers(0, 2, (2, 6)).astype(float)
    W, b = ({l: np.array(layers[l]) for l in (1, 2)} for layers in (net.W, net.b))
    assert list(net.W) == list(net.W.keys()) == [1, 2] and dict(net.W.items()).keys() == W.keys()
    A_L = np.array(net.forward(X).A[2])
    assert reference.cost(A_L, Y, "bce", W=net.W, l2=0.1) == reference.cost(A_L, Y, "bce", W=W, l2=0.1)
    np.testing.assert_array_equal(reference.flat_parameters(net.W, net.b), net.params)
    grads = net.backward(net.forward(X), Y)
    assert reference.global_norm(grads.dW) == reference.global_norm({l: np.array(grads.dW[l]) for l in (1, 2)})
    reference.update(net.W, net.b, grads.dW, grads.db, 0.5)  # writes through the views into the network
    np.testing.assert_array_equal(net.W[1], W[1] - 0.5 * np.array(grads.dW[1]))


def test_the_reference_takes_cce_labels_and_refuses_targets_of_another_shape():
    rng = np.random.default_rng(6)
    A_L = reference.g("softmax", rng.standard_normal((3, 5)))
    labels = rng.integers(0, 3, 5)
    Y = reference.one_hot(labels, 3)
    assert reference.cost(A_L, labels, "cce") == reference.cost(A_L, Y, "cce")
    W = {1: rng.standard_normal((3, 4))}
    Z, A = {1: np.log(A_L)}, {0: rng.standard_normal((4, 5)), 1: A_L}
    from_labels, from_Y = (reference.backward(W, Z, A, targets, ["softmax"], "cce") for targets in (labels, Y))
    for key in ("dW", "db", "dZ"):
        np.testing.assert_array_equal(from_labels[key][1], from_Y[key][1])
    with pytest.raises(ValueError, match=r"Y of shape \(2, 5\) does not match A\[L\] of shape \(3, 5\)"):
        reference.cost(A_L, Y[:2], "cce")
    with pytest.raises(ValueError, match=r"Y of shape \(5,\) does not match"):
        reference.cost(A_L, labels.astype(float), "cce")
