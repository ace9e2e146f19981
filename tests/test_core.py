"""The C++ core through mlpcore.Network, checked against mlpcore.reference.

Every activation with every cost it pairs with, in float32 and float64, on
random architectures (L 1..5, widths 1..64, m 1..300).

Each equation is checked on the core's own inputs to it (Z[l] from the
core's A[l-1], dW[l] from the core's dZ[l], the reference backward from the
core's Z and A), and the reference also runs end to end from W, b, X: always
in float64, and for the forward pass in float32 unless a step layer could flip
on a rounding difference at Z = 0. float32 references are computed in
float32 on the same float32 parameters and data.
"""

import math
import re
import threading
import time

import numpy as np
import pytest

import mlpcore
from conftest import (DTYPES, ELEMENTWISE_ACTIVATIONS, HIDDEN_NAMES, activation_id,
                      assert_close, assert_gradient, central_difference, make_case, numerical_gradient,
                      pairing_cases, random_input, random_targets, reference_params)
from mlpcore import _core, reference

SEEDS = range(6)
DTYPE_IDS = {"ids": lambda d: np.dtype(d).name}
CASES = pairing_cases()


def cache_dicts(cache, L):
    """Z (1..L) and A (0..L) of a cache as plain dicts of arrays."""
    Z = {l: np.asarray(cache.Z[l]) for l in range(1, L + 1)}
    A = {l: np.asarray(cache.A[l]) for l in range(0, L + 1)}
    return Z, A


def has_step(case):
    return any(name == "step" for name, _ in case.activations)


# ---------------------------------------------------------------------------
# forward, cost, backward, update against the reference
# ---------------------------------------------------------------------------

def check_forward(case, end_to_end=True):
    """net.forward against the reference: shapes, dtypes, Z[l], A[l], each layer on the core's
    own A[l-1], and with end_to_end the reference's whole forward too."""
    net, L, dtype = case.net, case.L, case.dtype
    cache = net.forward(case.X)
    assert cache.m == case.m
    Z, A = cache_dicts(cache, L)
    assert_close(A[0], case.X, dtype)
    for l in range(1, L + 1):
        assert Z[l].shape == (case.n[l], case.m) and Z[l].dtype == dtype
        assert A[l].shape == (case.n[l], case.m) and A[l].dtype == dtype

    # each layer on the core's own A[l-1] and Z[l]
    for l in range(1, L + 1):
        # Z[l] = W[l] A[l-1] + b[l]
        assert_close(Z[l], case.W[l] @ A[l - 1] + case.b[l], dtype)
        # A[l] = g[l](Z[l])
        assert_close(A[l], reference.g(case.activations[l - 1], Z[l]), dtype)

    # end to end (a step layer in float32 could flip on a rounding at Z = 0)
    if end_to_end and (dtype == np.float64 or not has_step(case)):
        Z_ref, A_ref = reference.forward(case.W, case.b, case.X, case.activations)
        for l in range(1, L + 1):
            assert_close(Z[l], Z_ref[l], dtype)
            assert_close(A[l], A_ref[l], dtype)


@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
@pytest.mark.parametrize("activation", ELEMENTWISE_ACTIVATIONS, ids=activation_id)
def test_forward_carries_nan_and_inf_in_z_as_the_reference(activation, dtype):
    """A NaN in Z[l] stays NaN in A[l] (relu's max(z, 0) too, as numpy.maximum's; step's 0 or 1
    is 0), so that a forward that overflowed shows in A[L]; +-inf go where the reference's g sends them."""
    net = mlpcore.Network([1, 4, 1], [activation, "identity"], "mse", seed=0, dtype=dtype)
    net.W[1][...] = [[np.nan], [np.inf], [-np.inf], [1.0]]
    net.b[1][...] = 0
    cache = net.forward(np.array([[0.5, -2.0]], dtype), training=False)
    with np.errstate(invalid="ignore", over="ignore"):
        expected = reference.g(net.activations[0], np.asarray(cache.Z[1]))
    assert np.isnan(cache.Z[1][0]).all() and np.isnan(cache.A[1][0]).all() == (activation != "step")  # step: 0 or 1
    np.testing.assert_allclose(cache.A[1], expected, rtol=1e-6)  # NaN where NaN, inf where inf


def check_cost(case):
    """net.cost against the reference, on the core's A[L] and end to end in float64."""
    net, L, dtype, cost = case.net, case.L, case.dtype, case.cost
    A_L = np.asarray(net.forward(case.X).A[L])
    J = net.cost(A_L, case.Y)
    assert isinstance(J, float)
    assert_close(J, reference.cost(A_L, case.Y, cost), dtype)
    if dtype == np.float64:
        _, A_ref = reference.forward(case.W, case.b, case.X, case.activations)
        assert_close(J, reference.cost(A_ref[L], case.Y, cost), dtype)


def check_backward(case):
    """net.backward against the reference: dW, db, dZ, dA (dA[0] included)."""
    net, L, m, dtype, cost = case.net, case.L, case.m, case.dtype, case.cost
    cache = net.forward(case.X)
    grads = net.backward(cache, case.Y, compute_dA0=True)
    Z, A = cache_dicts(cache, L)

    # the reference backward on the core's forward values: the same g'(Z)
    expected = reference.backward(case.W, Z, A, case.Y, case.activations, cost,
                                  compute_dA0=True)
    for l in range(1, L + 1):
        for key, shape in (("dW", (case.n[l], case.n[l - 1])),
                           ("db", (case.n[l], 1)), ("dZ", (case.n[l], m))):
            actual = np.asarray(getattr(grads, key)[l])
            assert actual.shape == shape and actual.dtype == dtype, (key, l)
            assert_close(actual, expected[key][l], dtype)
    assert set(expected["dA"]) == set(range(0, L)) | ({L} if cost == "mse" else set())
    for l in expected["dA"]:
        actual = np.asarray(grads.dA[l])
        assert actual.shape == (case.n[l], m) and actual.dtype == dtype
        assert_close(actual, expected["dA"][l], dtype)
    if cost != "mse":
        with pytest.raises((KeyError, IndexError)):
            grads.dA[L]

    # each equation on the core's own dZ[l]
    for l in range(1, L + 1):
        dZ = np.asarray(grads.dZ[l])
        # dW[l] = (1/m) dZ[l] A[l-1]^T ; db[l] = (1/m) sum_columns dZ[l]
        assert_close(grads.dW[l], dZ @ A[l - 1].T / m, dtype)
        assert_close(grads.db[l], np.sum(dZ, axis=1, keepdims=True) / m, dtype)
        # dA[l-1] = W[l]^T dZ[l]
        assert_close(grads.dA[l - 1], case.W[l].T @ dZ, dtype)

    # end to end in float64: the reference's own forward and backward
    if dtype == np.float64:
        Z_ref, A_ref = reference.forward(case.W, case.b, case.X, case.activations)
        chained = reference.backward(case.W, Z_ref, A_ref, case.Y, case.activations,
                                     cost, compute_dA0=True)
        for key in ("dW", "db", "dZ", "dA"):
            for l in chained[key]:
                assert_close(getattr(grads, key)[l], chained[key][l], dtype)


def check_update(case, learning_rate):
    """net.update against the reference update with the core's gradients."""
    net, L, dtype = case.net, case.L, case.dtype
    grads = net.backward(net.forward(case.X), case.Y)
    dW = {l: np.array(grads.dW[l]) for l in range(1, L + 1)}
    db = {l: np.array(grads.db[l]) for l in range(1, L + 1)}

    W_views = [net.W[l] for l in range(1, L + 1)]
    net.update(grads, learning_rate)
    reference.update(case.W, case.b, dW, db, learning_rate)
    for l in range(1, L + 1):
        # W[l] -= lr dW[l] ; b[l] -= lr db[l]
        assert_close(net.W[l], case.W[l], dtype)
        assert_close(net.b[l], case.b[l], dtype)
        # the earlier views see the update: W[l] lives in the flat buffer
        assert_close(W_views[l - 1], case.W[l], dtype)


@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
@pytest.mark.parametrize("hidden, output, cost", CASES)
@pytest.mark.parametrize("seed", SEEDS)
def test_forward_matches_reference(seed, hidden, output, cost, dtype):
    check_forward(make_case(seed, hidden, output, cost, dtype))


@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
@pytest.mark.parametrize("hidden, output, cost", CASES)
@pytest.mark.parametrize("seed", SEEDS)
def test_cost_matches_reference(seed, hidden, output, cost, dtype):
    check_cost(make_case(seed, hidden, output, cost, dtype))


@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
@pytest.mark.parametrize("hidden, output, cost", CASES)
@pytest.mark.parametrize("seed", SEEDS)
def test_backward_matches_reference(seed, hidden, output, cost, dtype):
    check_backward(make_case(seed, hidden, output, cost, dtype))


@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
@pytest.mark.parametrize("hidden, output, cost", CASES)
@pytest.mark.parametrize("seed", SEEDS)
def test_update_matches_reference(seed, hidden, output, cost, dtype):
    learning_rate = float(np.random.default_rng(seed).uniform(0.01, 2.0))
    check_update(make_case(seed, hidden, output, cost, dtype), learning_rate)


@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
@pytest.mark.parametrize("cost", ["mse", "bce", "cce"])
def test_dA0_only_when_asked(cost, dtype):
    output = {"mse": "relu", "bce": "sigmoid", "cce": "softmax"}[cost]
    case = make_case(5, "tanh", output, cost, dtype, L=3)
    grads = case.net.backward(case.net.forward(case.X), case.Y)
    with pytest.raises((KeyError, IndexError)):
        grads.dA[0]
    assert np.asarray(grads.dA[1]).shape == (case.n[1], case.m)


# the extremes of the random ranges, drawn deterministically
EDGE_ARCHITECTURES = [
    pytest.param([1, 1], 1, id="n1-1_m1"),
    pytest.param([1, 1, 1, 1, 1, 1], 1, id="n1x6_m1"),
    pytest.param([64, 64, 64, 64, 64, 64], 300, id="n64x6_m300"),
    pytest.param([1, 64, 1], 300, id="n1-64-1_m300"),
    pytest.param([64, 1, 64], 1, id="n64-1-64_m1"),
    pytest.param([2, 3, 2], 2, id="n2-3-2_m2"),
]
EDGE_PAIRINGS = [
    pytest.param("tanh", "identity", "mse", id="tanh-identity-mse"),
    pytest.param("relu", "sigmoid", "bce", id="relu-bce"),
    pytest.param("mixed", "softmax", "cce", id="mixed-cce"),
]


@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
@pytest.mark.parametrize("hidden, output, cost", EDGE_PAIRINGS)
@pytest.mark.parametrize("n, m", EDGE_ARCHITECTURES)
def test_edge_architectures_match_reference(n, m, hidden, output, cost, dtype):
    case = make_case(7, hidden, output, cost, dtype, n=n, m=m)
    check_forward(case)
    check_cost(case)
    check_backward(case)
    check_update(case, 0.3)


# ---------------------------------------------------------------------------
# finite differences on the core itself
# ---------------------------------------------------------------------------

def check_finite_differences(net, X, Y):
    """dW, db (dgamma, dbeta of batch-norm layers), dA[0] of the core's training forward and
    backward against central differences of the core's own cost; the same dropout masks in
    every forward (the count of training forwards that draws them is set back each time).
    Returns the analytic gradients."""
    L, m = net.L, X.shape[1]

    def training_forward():
        net._core.training_forwards = 0
        return net.forward(X)

    grads = net.backward(training_forward(), Y, compute_dA0=True)
    views = {"W": net.W, "b": net.b, "gamma": net.gamma, "beta": net.beta}  # writable views of net.params
    analytic = {(kind, l): np.array(getattr(grads, "d" + kind)[l]) for kind, layers in views.items()
                for l in layers.indices}
    dA0 = np.array(grads.dA[0])
    params_before = np.array(net.params)

    def J():
        return net.cost(training_forward().A[L], Y)

    for (kind, l), grad in analytic.items():
        assert_gradient(grad, numerical_gradient(J, views[kind][l]))
    np.testing.assert_array_equal(net.params, params_before)

    # dA[0] = m dJ/dX
    assert_gradient(dA0, m * numerical_gradient(J, X))
    return analytic, dA0


@pytest.mark.parametrize("hidden, output, cost", CASES)
def test_core_gradient_matches_finite_differences(hidden, output, cost):
    """dW, db, dA[0] of the core against central differences of the core's own cost."""
    case = make_case(101, hidden, output, cost, np.float64, max_width=4, max_m=6,
                     L=None if hidden == output else 3)
    analytic, dA0 = check_finite_differences(case.net, case.X, case.Y)
    if hidden == "step":  # g' = 0: nothing below the last step layer learns
        assert np.all(dA0 == 0) and np.all(analytic[("W", 1)] == 0)


@pytest.mark.parametrize("hidden", HIDDEN_NAMES)
@pytest.mark.parametrize("output, cost", [("identity", "mse"), ("sigmoid", "bce"), ("softmax", "cce")])
def test_core_gradient_with_batch_norm_and_dropout_matches_finite_differences(hidden, output, cost):
    """The same check through batch-norm layers (their mu and var depend on every column) and
    dropout masks (g' rebuilt from A = g(U) D / (1 - p))."""
    rng = np.random.default_rng(23)
    net = mlpcore.Network([3, 5, 4, 3], [hidden, hidden, output], cost, dtype="float64", seed=5,
                          batch_norm=[True, False, True], dropout=[0.3, 0.4])
    for l in range(1, 4):
        net.b[l] = 0.3 * rng.standard_normal((net.n[l], 1))
    for l in net.gamma.indices:
        net.gamma[l] = 1 + 0.3 * rng.standard_normal((net.n[l], 1))
        net.beta[l] = 0.3 * rng.standard_normal((net.n[l], 1))
    X = rng.standard_normal((3, 7))
    analytic, _ = check_finite_differences(net, X, random_targets(rng, cost, 3, 7, np.float64))
    assert all(np.all(analytic[("b", l)] == 0) for l in net.gamma.indices)  # b has no effect there


@pytest.mark.parametrize("m", [16, 19])
def test_core_gradient_through_transposed_tiles_matches_finite_differences(m):
    """On AVX-512, dA[1] = W[2]^T dZ[2] and dA[2] = W[3]^T dZ[3] of 25 and 26 rows (three float64
    vectors and more) on 16 columns and more run on the tiles through W[l]^T, transposed in
    blocks of 8 by 8 cut at both edges (W[2] is 26 x 25, W[3] 2 x 26): dW[1], db[1] and dW[2],
    db[2], which they feed, against central differences of the core's cost; one backward takes
    four products on the tiles (dW[1], dW[2], dA[1], dA[2]), none elsewhere."""
    rng = np.random.default_rng(31)
    net = mlpcore.Network([3, 25, 26, 2], ["tanh", "tanh", "softmax"], "cce", dtype="float64", seed=6)
    X, Y = rng.standard_normal((3, m)), random_targets(rng, "cce", 2, m, np.float64)
    cache = net.forward(X)
    before = _core._tile_products()
    net.backward(cache, Y)
    transposed = [_core._transposes_for_tiles(True, 25, m, 26), _core._transposes_for_tiles(True, 26, m, 2)]
    assert transposed == [_core._avx512_kernels()] * 2
    assert _core._tile_products() - before == (4 if _core._avx512_kernels() else 0)
    check_finite_differences(net, X, Y)


@pytest.mark.parametrize("m", [15, 16, 17, 40])
@pytest.mark.parametrize("n, dtype", [([5, 48, 1], np.float32), ([5, 49, 3], np.float32), ([5, 97, 17], np.float32),
                                      ([5, 24, 1], np.float64), ([5, 31, 2], np.float64)])
def test_dA_through_W_transposed_for_the_tiles_matches_the_product(n, m, dtype):
    """dA[1] = W[2]^T dZ[2] on a k of 1 to 3 units of layer 2 (W[2]'s rows; one column of
    blocks of 8 or 16 lanes, masked to 1 to 3), and of 17 (a block and one more): on AVX-512, on
    the tiles from 16 columns (through W[2]^T transposed), on BLAS on 15; against the float64
    product of the core's W[2] and dZ[2]."""
    net = mlpcore.Network(n, ["tanh", "identity"], "mse", dtype=np.dtype(dtype).name, seed=8)
    rng = np.random.default_rng(9)
    X, Y = rng.standard_normal((n[0], m)).astype(dtype), rng.standard_normal((n[2], m)).astype(dtype)
    cache = net.forward(X)
    before = _core._tile_products()
    grads = net.backward(cache, Y)
    transposed = _core._transposes_for_tiles(dtype == np.float64, n[1], m, n[2])
    assert transposed == (_core._avx512_kernels() and m >= 16)
    dW_on_tiles = sum(_core._tile_parts(dtype == np.float64, n[l], n[l - 1], m, 1 if l == 1 else n[l - 1]) > 0
                      for l in (1, 2))  # op(B) = X^T (X C-ordered), A[1]^T
    assert dW_on_tiles >= _core._avx512_kernels()
    assert _core._tile_products() - before == dW_on_tiles + transposed
    expected = np.asarray(net.W[2], np.float64).T @ np.asarray(grads.dZ[2], np.float64)
    assert_close(grads.dA[1], expected, dtype)


def test_cce_gradient_with_class_probabilities_matches_finite_differences():
    """cce also takes columns of class probabilities as Y, not only one-hot columns."""
    rng = np.random.default_rng(29)
    net = mlpcore.Network([3, 5, 4], ["tanh", "softmax"], "cce", dtype="float64", seed=2)
    check_finite_differences(net, rng.standard_normal((3, 6)), rng.dirichlet(np.ones(4), size=6).T)


@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
def test_cce_with_class_probabilities_matches_reference(dtype):
    case = make_case(17, "tanh", "softmax", "cce", dtype, n=[5, 8, 4], m=30)
    case.Y = np.random.default_rng(3).dirichlet(np.ones(4), size=30).T.astype(dtype)
    check_cost(case)
    check_backward(case)


def test_perturbing_params_changes_cost():
    """The finite differences above see net.params: writing into it moves J."""
    case = make_case(3, "tanh", "sigmoid", "bce", np.float64, L=2)
    net = case.net
    J0 = net.cost(net.forward(case.X).A[2], case.Y)
    net.params[0] += 0.5
    J1 = net.cost(net.forward(case.X).A[2], case.Y)
    assert J1 != J0


# ---------------------------------------------------------------------------
# targets
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
@pytest.mark.parametrize("label_dtype", [np.int64, np.int32, np.uint8])
def test_cce_integer_labels_equal_one_hot(label_dtype, dtype):
    case = make_case(8, "relu", "softmax", "cce", dtype, L=2)
    net, L = case.net, case.L
    labels = np.argmax(case.Y, axis=0).astype(label_dtype)
    cache = net.forward(case.X)
    A_L = np.asarray(cache.A[L])
    assert net.cost(A_L, labels) == net.cost(A_L, case.Y)  # the label's unit alone: the others add 0
    assert_close(net.cost(A_L, labels), reference.cost(A_L, case.Y, "cce"), dtype)
    from_labels = net.backward(cache, labels)
    from_one_hot = net.backward(cache, case.Y)
    for l in range(1, L + 1):
        assert_close(from_labels.dW[l], from_one_hot.dW[l], dtype)
        assert_close(from_labels.db[l], from_one_hot.db[l], dtype)
        assert_close(from_labels.dZ[l], from_one_hot.dZ[l], dtype)


@pytest.mark.parametrize("cost, output, n_L", [("bce", "sigmoid", 3), ("mse", "identity", 2), ("cce", "softmax", 2)])
def test_boolean_targets_are_0_and_1(cost, output, n_L):
    """Boolean Y (a multi-label indicator, cce's labels of two classes) counts True as 1."""
    case = make_case(9, "tanh", output, cost, np.float32, n=[3, 4, n_L], m=12)
    Y = np.random.default_rng(2).random((n_L, 12) if cost != "cce" else 12) < 0.5
    cache = case.net.forward(case.X)
    as_numbers = Y.astype(np.int64 if cost == "cce" else np.float32)
    assert case.net.cost(cache.A[2], Y) == case.net.cost(cache.A[2], as_numbers)
    np.testing.assert_array_equal(case.net.backward(cache, Y).dW[1], case.net.backward(cache, as_numbers).dW[1])
    history = case.net.fit(case.X, Y, epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history["cost"][0])


@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
@pytest.mark.parametrize("cost, output", [("mse", "identity"), ("bce", "sigmoid")])
def test_single_output_accepts_vector_Y(cost, output, dtype):
    """n[L] == 1: Y of shape (m,) is the same as (1, m)."""
    rng = np.random.default_rng(4)
    net = mlpcore.Network([3, 5, 1], ["tanh", output], cost, dtype=np.dtype(dtype).name,
                          seed=4)
    X = random_input(rng, 3, 17, dtype)
    Y = random_targets(rng, cost, 1, 17, dtype)
    cache = net.forward(X)
    assert_close(net.cost(cache.A[2], Y[0]), net.cost(cache.A[2], Y), dtype)
    as_vector, as_row = net.backward(cache, Y[0]), net.backward(cache, Y)
    for l in (1, 2):
        assert_close(as_vector.dW[l], as_row.dW[l], dtype)
        assert_close(as_vector.db[l], as_row.db[l], dtype)


# ---------------------------------------------------------------------------
# stability
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("spec", ELEMENTWISE_ACTIVATIONS + ("softmax",), ids=activation_id)
def test_core_activation_stable_at_1e4_in_float32(spec):
    """Z = +-1e4 through a one-input layer: finite A and gradients, equal to the reference."""
    z = np.array([[-1e4, -1e3, -100.0, -88.8, -20.0, -1.0, 0.0,
                   1.0, 20.0, 88.8, 100.0, 1e3, 1e4]], dtype=np.float32)
    if spec == "softmax":
        net = mlpcore.Network([1, 2], [spec], "cce", dtype="float32", seed=0)
        net.W[1][...] = [[1.0], [-1.0]]
        Y = reference.one_hot(np.arange(z.shape[1]) % 2, 2, dtype=np.float32)
    else:
        net = mlpcore.Network([1, 1], [spec], "mse", dtype="float32", seed=0)
        net.W[1][...] = 1.0
        Y = np.zeros_like(z)
    net.b[1][...] = 0.0
    cache = net.forward(z)
    Z, A = cache_dicts(cache, 1)
    assert np.all(np.isfinite(A[1]))
    assert_close(Z[1], reference.forward({1: np.array(net.W[1])}, {1: np.array(net.b[1])},
                                         z, [spec])[0][1], np.float32)
    assert_close(A[1], reference.g(spec, Z[1]), np.float32)
    grads = net.backward(cache, Y, compute_dA0=True)
    for array in (grads.dW[1], grads.db[1], grads.dZ[1], grads.dA[0]):
        assert np.all(np.isfinite(array))
    assert np.isfinite(net.cost(A[1], Y))


@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
@pytest.mark.parametrize("alpha", [1.0, 0.3])
def test_core_elu_derivative_keeps_its_relative_accuracy_far_below_zero(alpha, dtype):
    """dZ = dA * alpha e^Z with dA = 1 (mse, Y = A - 1): within a few roundings of e^Z, where
    A + alpha, the derivative written through A, cancels (float32: 3% off at Z = -15, 0 from -17)."""
    z = np.array([[-3.0, -10.0, -15.0, -20.0, -30.0, -60.0]], dtype=dtype)
    net = mlpcore.Network([1, 1], [("elu", {"alpha": alpha})], "mse", dtype=dtype, seed=0)
    net.W[1][...] = 1.0
    net.b[1][...] = 0.0
    cache = net.forward(z)
    dZ = net.backward(cache, cache.A[1] - 1).dZ[1]
    exact = alpha * np.exp(z.astype(np.float64))
    np.testing.assert_allclose(dZ, exact, rtol=8 * np.finfo(dtype).eps, atol=0)
    np.testing.assert_allclose(reference.g_prime(("elu", {"alpha": alpha}), z), exact,
                               rtol=8 * np.finfo(dtype).eps, atol=0)


@pytest.mark.parametrize("dtype, z", [("float32", -110.0), ("float64", -800.0)])
@pytest.mark.parametrize("spec", ["sigmoid", "softmax"])
def test_core_exponential_tail_is_zero_where_the_true_value_rounds_to_zero(spec, dtype, z):
    """sigmoid(z) and softmax's e^z / (e^z + 1) for a z whose e^z is below the dtype's smallest
    subnormal number: 0, as the exact value rounded to the dtype is (not the smallest normal)."""
    assert np.exp(np.array(z, dtype)) == 0
    if spec == "softmax":
        net = mlpcore.Network([1, 2], [spec], "cce", dtype=dtype, seed=0)
        net.W[1][...] = [[1.0], [0.0]]
    else:
        net = mlpcore.Network([1, 1], [spec], "bce", dtype=dtype, seed=0)
        net.W[1][...] = 1.0
    net.b[1][...] = 0.0
    assert net.forward(np.array([[z]], dtype)).A[1][0, 0] == 0


# ---------------------------------------------------------------------------
# parameters, seeds, views
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
def test_network_attributes_and_views(dtype):
    n = [4, 7, 3, 2]
    net = mlpcore.Network(n, ["relu", ("leaky_relu", {"alpha": 0.2}), "softmax"], "cce",
                          dtype=np.dtype(dtype).name, seed=1)
    assert net.L == 3 and len(net.W) == 3 and len(net.b) == 3
    assert tuple(net.n) == (4, 7, 3, 2) and isinstance(net.n, tuple)
    assert np.dtype(net.dtype) == np.dtype(dtype)
    assert tuple(net.activations) == (("relu", {}), ("leaky_relu", {"alpha": 0.2}),
                                      ("softmax", {}))
    assert net.cost_name == "cce"
    count = sum(n[l] * n[l - 1] + n[l] for l in range(1, 4))
    assert net.params.ndim == 1 and net.params.size == count
    assert net.params.dtype == dtype and net.params.flags.writeable
    for l in range(1, 4):
        assert net.W[l].shape == (n[l], n[l - 1]) and net.b[l].shape == (n[l], 1)
        assert net.W[l].dtype == dtype and net.b[l].dtype == dtype
        assert net.W[l].flags.f_contiguous and net.W[l].flags.writeable
        assert np.shares_memory(net.W[l], net.params)
        assert np.shares_memory(net.b[l], net.params)
    for bad in (0, 4):
        with pytest.raises(IndexError):
            net.W[bad]
        with pytest.raises(IndexError):
            net.b[bad]


def test_W_and_b_views_tile_the_flat_buffer():
    """Every entry of net.params is exactly one entry of one W[l] or b[l]."""
    n = [3, 5, 2]
    net = mlpcore.Network(n, ["tanh", "identity"], "mse", dtype="float64", seed=0)
    net.params[:] = np.arange(net.params.size)
    seen = np.concatenate([np.ravel(net.W[l]) for l in (1, 2)] +
                          [np.ravel(net.b[l]) for l in (1, 2)])
    np.testing.assert_array_equal(np.sort(seen), np.arange(net.params.size))


@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
def test_core_buffers_start_at_a_cache_line(dtype):
    """The flat parameter buffer, the caches and the gradients start at a 64-byte boundary: a
    784-256 W[1] read from a 16-byte boundary made one example's forward a third slower."""
    def address(a):
        return a.__array_interface__["data"][0]

    for n in ([784, 256, 10], [3, 5, 2], [17, 33, 1]):
        net = mlpcore.Network(n, ["relu", "identity"], "mse", dtype=dtype, seed=0)
        X = np.ones((n[0], 7), dtype)
        cache = net.forward(X)
        grads = net.backward(cache, np.zeros((n[-1], 7), dtype))
        for name, array in (("params", net.params), ("W[1]", net.W[1]), ("Z[1]", cache.Z[1]),
                            ("dW[1]", grads.dW[1])):
            assert address(array) % 64 == 0, (n, name, address(array))


def test_repr_mentions_sizes_and_parameter_count():
    net = mlpcore.Network([13, 17, 3], ["relu", "softmax"], "cce", seed=0)
    text = repr(net)
    count = 13 * 17 + 17 + 17 * 3 + 3
    assert f"{count}" in text or f"{count:,}" in text or f"{count:_}" in text
    for size in ("13", "17", "3"):
        assert size in text


@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
def test_seed_reproducibility(dtype):
    n, acts = [5, 8, 3], ["elu", "softmax"]
    name = np.dtype(dtype).name
    a = mlpcore.Network(n, acts, "cce", dtype=name, seed=123)
    b = mlpcore.Network(n, acts, "cce", dtype=name, seed=123)
    c = mlpcore.Network(n, acts, "cce", dtype=name, seed=124)
    np.testing.assert_array_equal(a.params, b.params)
    assert not np.array_equal(a.params, c.params)
    # the network draws exactly what the reference draws
    W, b_ref = reference.initial_parameters(n, acts, seed=123, dtype=dtype)
    for l in (1, 2):
        np.testing.assert_array_equal(a.W[l], W[l])
        np.testing.assert_array_equal(a.b[l], b_ref[l])


@pytest.mark.parametrize("init", ["he", "xavier", "glorot", "small", "auto",
                                  ["small", "he", "glorot"]])
def test_network_init_and_bias_follow_reference(init):
    n, acts = [6, 9, 4, 1], ["relu", "tanh", "sigmoid"]
    net = mlpcore.Network(n, acts, "bce", dtype="float64", init=init, bias=0.3, seed=9)
    W, b = reference.initial_parameters(n, acts, init=init, bias=0.3, seed=9,
                                        dtype=np.float64)
    for l in (1, 2, 3):
        np.testing.assert_array_equal(net.W[l], W[l])
        np.testing.assert_array_equal(net.b[l], np.full((n[l], 1), 0.3))


@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
def test_writing_W_changes_next_forward(dtype):
    case = make_case(12, "tanh", "identity", "mse", dtype, L=2)
    net = case.net
    before = np.array(net.forward(case.X).A[2])
    new_W1 = np.random.default_rng(0).standard_normal(net.W[1].shape)
    net.W[1][...] = new_W1
    assert np.array_equal(np.asarray(net.W[1]), new_W1.astype(dtype))
    W, b = reference_params(net)
    after = np.asarray(net.forward(case.X).A[2])
    assert not np.allclose(after, before)
    _, A_ref = reference.forward(W, b, case.X, case.activations)
    assert_close(after, A_ref[2], dtype)


# ---------------------------------------------------------------------------
# input memory orders and dtypes
# ---------------------------------------------------------------------------

def _layout(X, kind):
    if kind == "C":
        return np.ascontiguousarray(X)
    if kind == "F":
        return np.asfortranarray(X)
    if kind == "columns_step_2":      # every other example
        wide = np.zeros((X.shape[0], 2 * X.shape[1]), X.dtype)
        wide[:, ::2] = X
        return wide[:, ::2]
    if kind == "rows_step_2":         # every other feature
        tall = np.zeros((2 * X.shape[0], X.shape[1]), X.dtype, order="F")
        tall[::2] = X
        return tall[::2]
    if kind == "transposed_rows":     # X_rows.T of an (m, n0) array: F-ordered
        return np.ascontiguousarray(X.T).T
    if kind == "negative_stride":
        return np.ascontiguousarray(X[:, ::-1])[:, ::-1]
    if kind == "read_only":
        Y = X.copy()
        Y.flags.writeable = False
        return Y
    raise AssertionError(kind)


LAYOUTS = ["C", "F", "columns_step_2", "rows_step_2", "transposed_rows",
           "negative_stride", "read_only"]


@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_memory_layouts_give_the_same_result(layout, dtype):
    case = make_case(21, "tanh", "softmax", "cce", dtype, L=3)
    net, L = case.net, case.L
    X = _layout(case.X, layout)
    np.testing.assert_array_equal(X, case.X)
    cache = net.forward(X)
    np.testing.assert_array_equal(cache.A[0], case.X)
    Z_ref, A_ref = reference.forward(case.W, case.b, case.X, case.activations)
    for l in range(1, L + 1):
        assert_close(cache.Z[l], Z_ref[l], dtype)
        assert_close(cache.A[l], A_ref[l], dtype)
    # the input is untouched
    np.testing.assert_array_equal(X, case.X)


@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
@pytest.mark.parametrize("n0", [1, 2, 7, 300])
@pytest.mark.parametrize("n1", [65, 256, 257])
@pytest.mark.parametrize("layout", ["F", "column_of_C"])
def test_one_example_forward_matches_the_reference_for_every_block_of_rows(n0, n1, layout, dtype):
    """One example's Z[l] = W[l] a[l-1] + b[l] (on AVX-512, the core's own matrix-vector kernel:
    blocks of sixteen vectors of rows, 256 in float32 and 128 in float64, where W[l] fits in half
    of L2, else of four; then the rows left, 4 and more, in 1 to 16 vectors whose last is masked,
    two sets of sums under eight; BLAS's for 1 to 3 rows left), each layer on the core's own
    input, to the reference in float64. Rows: 1, 3, 4, 15, 17, 33, 49, 63, 64, 65, 95 and 127 to
    130 (one to nine vectors in float32; in float64 up to sixteen, a block, and a block and 1 or
    2 rows for BLAS); 255, 256, 257, 260, 300, 383 and 513 (a block exactly in float32, two in
    float64; blocks and 1 row for BLAS, and blocks and 1, 3 or 8 vectors); 1100 on 513 inputs
    (2.3 MB in float32, beyond half of L2: blocks of four vectors, and the rest); n[l-1] odd,
    even and 1; x contiguous, or a column of a C-ordered X, read with a stride. Layers of 2^16
    multiply-adds and more are two halves of the inputs added (layer 1 where n0 = 300)."""
    n = [n0, n1, 1, 15, 64, 65, 33, 130, 4, 17, 49, 63, 95, 127, 128, 129, 255, 256, 257, 260, 300, 383, 513, 1100,
         3]
    net = mlpcore.Network(n, ["tanh"] * (len(n) - 2) + ["identity"], "mse", dtype=dtype, seed=1)
    X_all = np.random.default_rng(2).standard_normal((n0, 5)).astype(dtype)
    X_all = np.ascontiguousarray(X_all) if layout == "column_of_C" else np.asfortranarray(X_all)
    x = X_all[:, 2:3]
    W, b = reference_params(net)
    cache = net.forward(x)
    for l in range(1, net.L + 1):
        a_prev = np.asarray(cache.A[l - 1], dtype=np.float64)
        assert_close(cache.Z[l], W[l].astype(np.float64) @ a_prev + b[l].astype(np.float64), dtype)
    np.testing.assert_array_equal(net.predict(x), cache.A[net.L])


# Which of x's K entries are not 0, for the zero-skipping of one example's product.
NONZERO_PATTERNS = {
    "no_zero": lambda K: np.ones(K, bool),
    "all_zero": lambda K: np.zeros(K, bool),
    "every_other": lambda K: np.arange(K) % 2 == 1,
    "first_only": lambda K: np.arange(K) == 0,
    "last_only": lambda K: np.arange(K) == K - 1,
    "runs_of_20": lambda K: np.arange(K) // 20 % 2 == 1,
    "one_zero_last": lambda K: np.arange(K) < K - 1,
    "random_80_percent_zero": lambda K: np.random.default_rng(K).random(K) >= 0.8,
}


@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
@pytest.mark.parametrize("pattern", NONZERO_PATTERNS)
def test_one_example_forward_with_zeros_in_x_matches_the_reference(pattern, dtype):
    """Z[1] = W[1] x + b[1] for one example whose x holds 0s: on AVX-512, the core's own
    matrix-vector kernel skips the columns of W[1] whose x[k] is 0 where x is contiguous,
    finding them 64 at a time, and sums the other terms as over every column: bit for bit the
    Z[1] of the same x read with a stride (a column of a C-ordered X, every column; on 4 rows
    and more, which the kernel takes), and the float64 product within the tolerance. Inputs
    K = 1, 17, 64, 65, 130, 300 (groups of 64 whole and cut; 300 on 256 rows and more is two
    halves of the inputs, each with its own 0s); rows 3 (BLAS's gemv), 49 (four vectors in
    float32, two sets of sums: each term in the set of its k's parity), 64, 127, 256 and 300 (a
    block of sixteen vectors and the rest); 0s nowhere, everywhere, every other, all but the
    first or the last, in runs of 20 across the groups, or 80% at random."""
    for K in [1, 17, 64, 65, 130, 300]:
        X = np.random.default_rng(K).standard_normal((K, 5)).astype(dtype)
        X[~NONZERO_PATTERNS[pattern](K), 2] = 0
        x, x_strided = np.asfortranarray(X)[:, 2:3], np.ascontiguousarray(X)[:, 2:3]
        for rows in [3, 49, 64, 127, 256, 300]:
            net = mlpcore.Network([K, rows], ["identity"], "mse", dtype=dtype, seed=rows)
            W, b = reference_params(net)
            Z = np.asarray(net.forward(x).Z[1])
            if _core._avx512_kernels() and rows >= 4:  # BLAS's gemv sums a strided x in another order
                np.testing.assert_array_equal(Z, net.forward(x_strided).Z[1])
            assert_close(Z, W[1].astype(np.float64) @ x.astype(np.float64) + b[1].astype(np.float64), dtype)


@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
def test_one_example_forward_through_relu_layers_matches_the_reference(dtype):
    """A relu net's one example: each A[l-1] about half 0s, whose columns of W[l] the kernel
    skips; each layer's Z[l] against the float64 product of the cache's own A[l-1], for several
    examples (each its own pattern of 0s)."""
    n = [300, 256, 130, 64, 49, 17, 3]
    net = mlpcore.Network(n, ["relu"] * (len(n) - 2) + ["identity"], "mse", dtype=dtype, seed=5)
    W, b = reference_params(net)
    X = np.random.default_rng(6).standard_normal((n[0], 4)).astype(dtype)
    for j in range(X.shape[1]):
        cache = net.forward(X[:, j:j + 1])
        for l in range(1, net.L + 1):
            a_prev = np.asarray(cache.A[l - 1], dtype=np.float64)
            if l > 1:
                assert 0.2 < np.mean(a_prev == 0) < 0.8  # the relu's 0s, which the kernel skips
            assert_close(cache.Z[l], W[l].astype(np.float64) @ a_prev + b[l].astype(np.float64), dtype)


@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
@pytest.mark.parametrize("rows", [5, 64])
@pytest.mark.parametrize("value", ["inf", "nan"])
def test_one_example_forward_keeps_infinite_and_nan_activations_beside_zeros(value, rows, dtype):
    """A hidden layer's A[l-1] of inf (relus of an overflowed Z[l-1]) or NaN (of inf - inf)
    beside 0s: the kernel skips the 0s' columns but neither the infs' nor the NaN's, so Z[l] is
    inf or NaN (0 * inf, infs of both signs; a NaN everywhere) where the float64 product is; on
    5 rows (two sets of sums) and 64."""
    net = mlpcore.Network([4, 70, rows], ["relu", "identity"], "mse", dtype=dtype, seed=7)
    if value == "inf":
        net.W[1][:3, 0] = np.inf  # units 0-2: +inf for x[0] > 0; the rest about half 0s
        net.W[2][:, 0] = np.where(np.arange(rows) < 2, 0, 1)  # 0 * inf = NaN in rows 0-1
        net.W[2][:, 1] = np.where(np.arange(rows) % 3 == 0, -1, 1)  # infs of both signs
        net.W[2][:, 2] = 1
    else:
        net.W[1][3, :] = [np.inf, -np.inf, 0, 0]  # unit 3: inf - inf = NaN
    cache = net.forward(np.ones((4, 1), dtype))
    a_prev = np.asarray(cache.A[1], dtype=np.float64)
    assert (a_prev == 0).any() and (np.isinf(a_prev[:3]).all() if value == "inf" else np.isnan(a_prev[3]))
    with np.errstate(invalid="ignore"):
        expected = np.asarray(net.W[2], dtype=np.float64) @ a_prev + np.asarray(net.b[2], dtype=np.float64)
    actual = np.asarray(cache.Z[2])
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    np.testing.assert_array_equal(np.isinf(actual), np.isinf(expected))
    assert np.isnan(expected).all() if value == "nan" else np.isnan(expected).any() and np.isinf(expected).any()


@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
@pytest.mark.parametrize("rows", [4, 17, 64])
def test_one_example_forward_leaves_out_the_columns_of_zeros_on_avx512(rows, dtype):
    """Where the core's own matrix-vector kernel runs (AVX-512) and x is contiguous, a column of
    W[1] whose x[k] is 0 is left out with its weights: inf there gives no NaN, and Z[1] is the
    product of the other columns. Elsewhere (BLAS's gemv, or x a column of a C-ordered X, read
    with a stride) 0 * inf is NaN, as in the reference. So the skipping is seen to happen, and
    only where it is documented."""
    net = mlpcore.Network([8, rows], ["identity"], "mse", dtype=dtype, seed=8)
    net.W[1][:, 3] = np.inf
    X = np.random.default_rng(9).standard_normal((8, 3)).astype(dtype)
    X[3] = 0
    W, b = (np.asarray(net.W[1], dtype=np.float64), np.asarray(net.b[1], dtype=np.float64))
    others = np.arange(8) != 3
    kept = W[:, others] @ X[others, 1:2].astype(np.float64) + b
    z = np.asarray(net.forward(np.asfortranarray(X)[:, 1:2]).Z[1])
    if _core._avx512_kernels():
        assert_close(z, kept, dtype)
    else:
        assert np.isnan(z).all()
    assert np.isnan(np.asarray(net.forward(np.ascontiguousarray(X)[:, 1:2]).Z[1])).all()


@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
@pytest.mark.parametrize("m", [2, 3, 4, 6, 8, 13, 71])
@pytest.mark.parametrize("layout", ["F", "C"])
def test_minibatch_products_match_the_reference_for_every_tile(m, layout, dtype):
    """Z[l] = W[l] A[l-1] + b[l], dW[l] = (1/m) dZ[l] A[l-1]^T and dA[l-1] = W[l]^T dZ[l] of several
    examples (on AVX-512, the core's own tiles where op(A) fits in L2 and has a vector of rows and
    more, 16 rows in float32, 8 in float64 (see _tile_parts); tiles of three vectors, a last one of
    two or three, and two of two where three would leave one; eight columns at a time, then the 1
    to 7 left). n[l] in float32: 48 (one tile), 49, 64 and 112 (two and two at the end), 80, 95
    and 130 (a last tile of two or three, masked); 24 and 25 (one tile of two vectors, masked),
    and 3 on BLAS. In float64 those are two tiles and more, and 24 (one tile) and 25 (two
    and two) take the tiles too. m of 2, 3, 4, 6, 8, 13 and 71 columns, and the widths of each
    dW[l]; X F-ordered, or C-ordered (op(B) read a row a step). Each layer's forward and dW[l] that
    the tiles take is one product on them, and so is dA[l-1] (dA[0] asked for too) where the core
    transposes W[l] for the tiles (on AVX-512, from 16 columns, W[l] within an eighth of L2;
    dA[l-1] of n[l-1] rows on a k of n[l]: 71 columns, and in float64 dA[0] of 37 rows), in blocks
    of a vector's lanes square: n[l-1] and n[l] both multiples of them (64 by 80), or not (49 by
    64, 130 by 112, 112 by 24 with a block of 8 rows left in float32, and a last block of fewer
    rows and columns in each dtype)."""
    n = [37, 48, 49, 64, 80, 95, 130, 112, 24, 25, 3]
    net = mlpcore.Network(n, ["tanh"] * (len(n) - 2) + ["identity"], "mse", dtype=dtype, seed=3)
    rng = np.random.default_rng(4)
    X = rng.standard_normal((n[0], m)).astype(dtype)
    X = np.ascontiguousarray(X) if layout == "C" else np.asfortranarray(X)
    Y = rng.standard_normal((n[-1], m)).astype(dtype)
    W, b = reference_params(net)
    float64, x_rows_apart = dtype == np.float64, layout == "C"  # op(B) = X, or X^T in dW[1]

    def on_tiles(rows, cols, k, bk):
        return _core._tile_parts(float64, rows, cols, k, bk) > 0

    Z_on_tiles = sum(on_tiles(n[l], m, n[l - 1], m if l == 1 and x_rows_apart else 1) for l in range(1, len(n)))
    dW_on_tiles = sum(on_tiles(n[l], n[l - 1], m, 1 if l == 1 and x_rows_apart else n[l - 1]) for l in range(1, len(n)))
    dA_on_tiles = sum(_core._transposes_for_tiles(float64, n[l - 1], m, n[l]) for l in range(1, len(n)))
    assert Z_on_tiles == (9 if _core._avx512_kernels() else 0)
    before = _core._tile_products()
    cache = net.forward(X)
    assert _core._tile_products() - before == Z_on_tiles
    grads = net.backward(cache, Y, compute_dA0=True)
    assert _core._tile_products() - before == Z_on_tiles + dW_on_tiles + dA_on_tiles
    Z_ref, A_ref = reference.forward(W, b, X, net.activations)
    Z, A = cache_dicts(cache, net.L)
    expected = reference.backward(W, Z, A, Y, net.activations, "mse", compute_dA0=True)
    for l in range(1, net.L + 1):
        assert_close(cache.Z[l], Z_ref[l], dtype)
        assert_close(grads.dW[l], expected["dW"][l], dtype)
        assert_close(grads.db[l], expected["db"][l], dtype)
    for l in range(0, net.L + 1):
        assert_close(grads.dA[l], expected["dA"][l], dtype)


def _lanes(dtype):
    """Entries of an AVX-512 vector."""
    return 64 // np.dtype(dtype).itemsize


@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
def test_tiles_take_one_vector_of_rows_and_more(dtype):
    """On AVX-512, a product whose op(A) has a vector's lanes of rows and more goes to the tiles,
    small or large; through a row-major op(A), transposed first, with fewer rows than three
    vectors only on a k of 32 at most; below a vector of rows, to BLAS. Without AVX-512, all to
    BLAS."""
    float64, lanes = dtype == np.float64, _lanes(dtype)
    expected = {  # (rows, cols, k): parts; op(A) of 48 KiB at most, within half of any L2
        (lanes - 1, 16, 8): 0,
        (lanes - 1, 64, 256): 0,
        (lanes, 2, 8): 1,
        (lanes, 64, 256): 1,
        (3 * lanes - 1, 64, 256): 1,
        (3 * lanes, 64, 256): 1,
    }
    for (rows, cols, k), parts in expected.items():
        taken = parts if _core._avx512_kernels() else 0
        assert _core._tile_parts(float64, rows, cols, k, 1) == taken, (rows, cols, k)
    transposed = {(lanes, 16, 32): True, (lanes, 16, 33): False, (3 * lanes - 1, 16, 16): True,
                  (lanes - 1, 16, 16): False, (3 * lanes, 16, 33): True}
    for (rows, cols, k), taken in transposed.items():
        taken = taken and _core._avx512_kernels()
        assert _core._transposes_for_tiles(float64, rows, cols, k) == taken, (rows, cols, k)


# A layer beyond the tiles' reach on one thread on any L2 of 4 MiB and less: W[1] of 2100 x 1100
# (9 MiB in float32), Z[1] of 2100 x 130 (1.1 MiB); op(A)'s panels of three vectors of rows, the
# last masked; k in parts of at most 512 terms; strips of eight columns, the last of two.
PANEL_NET, PANEL_M = [1100, 2100, 3], 130


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
def test_products_through_panel_copies_match_the_reference(threads, dtype, restore_threads):
    """On AVX-512, Z[1] = W[1] X (op(A) stored column-major, copied panel by panel as the first
    strip reads it), dA[0] = W[1]^T dZ[1] (op(A) stored row-major, each panel transposed into
    the copy first) and dW[1] = dZ[1] X^T / m (op(B) = X^T packed strip by strip) go through
    panel_gemm, each thread's share of the rows (1050 of Z[1]'s, 550 of dA[0]'s on two threads)
    or of dW[1]'s columns (550), Z[1]'s and dW[1]'s where the tiles do not take them (Z[1]'s on
    two threads, not on an L2 of 4 MiB); Z, dW, db and dA against the reference. Without
    AVX-512, all to BLAS."""
    mlpcore.set_num_threads(threads)
    net = mlpcore.Network(PANEL_NET, ["tanh", "softmax"], "cce", dtype=np.dtype(dtype).name, seed=21)
    rng = np.random.default_rng(22)
    X = np.asfortranarray(rng.standard_normal((PANEL_NET[0], PANEL_M)).astype(dtype))
    Y = random_targets(rng, "cce", PANEL_NET[-1], PANEL_M, dtype)
    before = _core._panel_products()
    cache = net.forward(X)
    grads = net.backward(cache, Y, compute_dA0=True)
    Z_share, dW_share = ((n + threads - 1) // threads for n in PANEL_NET[1::-1])
    Z_on_panels = _core._tile_parts(dtype == np.float64, Z_share, PANEL_M, PANEL_NET[0], 1) == 0
    dW_on_panels = _core._tile_parts(dtype == np.float64, PANEL_NET[1], dW_share, PANEL_M, PANEL_NET[0]) == 0
    on_panels = 1 + Z_on_panels + dW_on_panels
    assert _core._panel_products() - before == (threads * on_panels if _core._avx512_kernels() else 0)
    W, b = reference_params(net)
    Z_ref, A_ref = reference.forward(W, b, X, net.activations)
    expected = reference.backward(W, Z_ref, A_ref, Y, net.activations, "cce", compute_dA0=True)
    for l in (1, 2):
        assert_close(cache.Z[l], Z_ref[l], dtype)
        assert_close(grads.dW[l], expected["dW"][l], dtype)
        assert_close(grads.db[l], expected["db"][l], dtype)
    assert_close(grads.dA[0], expected["dA"][0], dtype)


def test_gradient_through_panel_copies_matches_finite_differences(restore_threads):
    """float64, one thread: dW[1] (through the panels' copies and X^T packed, on an L2 of 4 MiB
    and less), db[1] (behind Z[1] through the panels' copies) and dA[0] (through W[1]^T's
    transposed copies) against central differences of the cost, at six entries of each drawn at
    random (the net is too large to difference every one)."""
    mlpcore.set_num_threads(1)
    net = mlpcore.Network(PANEL_NET, ["tanh", "softmax"], "cce", dtype="float64", seed=23)
    rng = np.random.default_rng(24)
    X = np.asfortranarray(rng.standard_normal((PANEL_NET[0], PANEL_M)))
    Y = random_targets(rng, "cce", PANEL_NET[-1], PANEL_M, np.float64)
    dW_on_panels = _core._tile_parts(True, PANEL_NET[1], PANEL_NET[0], PANEL_M, PANEL_NET[0]) == 0
    before = _core._panel_products()
    grads = net.backward(net.forward(X), Y, compute_dA0=True)
    assert _core._panel_products() - before == (2 + dW_on_panels if _core._avx512_kernels() else 0)
    analytic = {"W": np.array(grads.dW[1]), "b": np.array(grads.db[1]), "X": np.array(grads.dA[0]) / PANEL_M}
    arrays = {"W": net.W[1], "b": net.b[1], "X": X}  # net.W[1], net.b[1]: writable views of net.params

    def J():
        return net.cost(net.forward(X).A[net.L], Y)

    for name, array in arrays.items():
        for _ in range(6):
            entry = tuple(int(rng.integers(size)) for size in array.shape)
            assert_gradient(analytic[name][entry], central_difference(J, array, entry))


def _gemm(dtype):
    """mlpcore's gemm for dtype, in place: (trans_A, A, trans_B, B, alpha, beta, C)."""
    return _core._gemm64 if dtype == np.float64 else _core._gemm32


def _op_A(rng, rows, k, layout, dtype):
    """(trans_A, A) with op(A) of (rows, k): stored column-major ("F"), row-major as a C-ordered
    A ("C"), or row-major as A^T F-ordered ("FT", trans_A)."""
    A = rng.standard_normal((rows, k)).astype(dtype)
    if layout == "FT":
        return True, np.asfortranarray(A.T)
    return False, np.ascontiguousarray(A) if layout == "C" else np.asfortranarray(A)


# (rows, cols, k, alpha, beta, trans_B), past the tiles' reach on any L2 of 8 MiB and less: op(A)
# of 17,000 rows and more (not a part of 128 terms of them fits in half of it), or a C of 2,000
# rows (1,000 a thread on two) by 600 columns and more, beyond a quarter of it, on a k of more
# than one part; C of 16 columns to 603, 600 in two chunks of 304 and 296 columns, 603 in two of
# 304 and 299 (the last strip of 3); k in one part, in two of 260, in two of 500, in two of 300;
# with trans_B, op(B) = B^T of an F-ordered B (dW[l]'s A[l-1]^T), packed.
PANEL_PRODUCTS = [(20000, 16, 300, 1.0, 0.0, False), (17000, 512, 520, -0.37, 0.5, False),
                  (17003, 137, 1000, 2.0, 1.0, True), (2000, 600, 600, 0.7, 0.5, False),
                  (2000, 603, 600, -1.3, 0.0, True)]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("layout", ["F", "C", "FT"])
@pytest.mark.parametrize("rows, cols, k, alpha, beta, trans_B", PANEL_PRODUCTS)
@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
def test_gemm_through_panel_copies_matches_numpy(dtype, rows, cols, k, alpha, beta, trans_B, layout, threads,
                                                 restore_threads):
    """On AVX-512, C = alpha op(A) op(B) + beta C past the tiles' reach goes through copies of
    op(A)'s panels (see panel_gemm), one product a thread (gemm shares the rows out on two), op(A)
    stored column-major or row-major, op(B)'s columns contiguous or its rows (packed): against
    NumPy's float64 product. With beta = 0, C's NaNs are not read. Without AVX-512, all to BLAS."""
    mlpcore.set_num_threads(threads)
    rng = np.random.default_rng(rows + cols + k)
    trans_A, A = _op_A(rng, rows, k, layout, dtype)
    op_B = rng.standard_normal((k, cols)).astype(dtype)
    B = np.asfortranarray(op_B.T if trans_B else op_B)
    C = np.asfortranarray(rng.standard_normal((rows, cols)).astype(dtype) if beta else np.full((rows, cols), np.nan, dtype))
    expected = alpha * (np.asarray(A, np.float64).T if trans_A else np.asarray(A, np.float64)) @ op_B.astype(np.float64)
    if beta:
        expected += beta * C.astype(np.float64)
    before = _core._panel_products()
    _gemm(dtype)(trans_A, A, trans_B, B, alpha, beta, C)
    assert _core._panel_products() - before == (threads if _core._avx512_kernels() else 0)
    assert_close(C, expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
def test_gemm_leaves_products_to_blas_outside_the_panels_reach(dtype, restore_threads):
    """One thread: of 15 columns, or alpha = 0, or with op(B)'s rows adjacent (B^T F-ordered:
    dW[l]'s A[l-1]^T) and fewer than three vectors of rows (47 in float32, 23 in float64; op(B)'s
    rows 17,000 entries apart, C of 17,000 columns, past the tiles' reach on any L2 of 8 MiB and
    less), a product past the tiles' reach goes to BLAS, not to the panels' copies; each against
    NumPy's float64 product."""
    mlpcore.set_num_threads(1)
    rng = np.random.default_rng(30)
    k, few_rows = 300, 3 * (16 if dtype == np.float32 else 8) - 1
    for rows, cols, trans_B, alpha in ((17000, 15, False, 1.0), (17000, 15, True, 1.0), (17000, 64, False, 0.0),
                                       (few_rows, 17000, True, 1.0)):
        trans_A, A = _op_A(rng, rows, k, "F", dtype)
        B = rng.standard_normal((k, cols)).astype(dtype)
        B = np.asfortranarray(B.T) if trans_B else np.asfortranarray(B)
        C = np.asfortranarray(rng.standard_normal((rows, cols)).astype(dtype))
        expected = alpha * A.astype(np.float64) @ (B.T if trans_B else B).astype(np.float64) + 0.5 * C
        assert _core._tile_parts(dtype == np.float64, rows, cols, k, cols if trans_B else 1) == 0
        before = _core._panel_products()
        _gemm(dtype)(trans_A, A, trans_B, B, alpha, 0.5, C)
        assert _core._panel_products() == before, (rows, cols, trans_B, alpha)
        assert_close(C, expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
def test_gemm_packs_op_B_from_three_vectors_of_rows(dtype, restore_threads):
    """One thread: with op(B)'s rows adjacent (B^T F-ordered) and three vectors of rows (48 in
    float32, 24 in float64; a row fewer goes to BLAS, see the test before), a product past the
    tiles' reach (C of 17,000 columns) goes through the panels' copies with op(B) packed, C's
    NaNs unread at beta = 0; against NumPy's float64 product."""
    mlpcore.set_num_threads(1)
    rng = np.random.default_rng(31)
    rows, cols, k = 3 * (16 if dtype == np.float32 else 8), 17000, 300
    trans_A, A = _op_A(rng, rows, k, "F", dtype)
    op_B = rng.standard_normal((k, cols)).astype(dtype)
    B = np.asfortranarray(op_B.T)
    C = np.full((rows, cols), np.nan, dtype, order="F")
    assert _core._tile_parts(dtype == np.float64, rows, cols, k, cols) == 0
    before = _core._panel_products()
    _gemm(dtype)(trans_A, A, True, B, -0.5, 0.0, C)
    assert _core._panel_products() - before == (1 if _core._avx512_kernels() else 0)
    assert_close(C, -0.5 * A.astype(np.float64) @ op_B.astype(np.float64), dtype)


def test_gemm_hook_refuses_products_that_do_not_fit():
    """The tests' gemm refuses shapes that do not chain, a C that is not F-ordered, 2-D or
    writable, and factors of another dtype, leaving C as it was."""
    A, B = np.ones((4, 3), np.float32, order="F"), np.ones((3, 5), np.float32, order="F")
    C = np.zeros((4, 6), np.float32, order="F")
    with pytest.raises(ValueError, match="does not fit C"):
        _core._gemm32(False, A, False, B, 1.0, 0.0, C)
    assert np.all(C == 0)
    with pytest.raises(ValueError, match="F-ordered"):
        _core._gemm32(False, A, False, B, 1.0, 0.0, np.zeros((4, 5), np.float32))
    with pytest.raises(TypeError, match="float32"):
        _core._gemm32(False, A, False, B, 1.0, 0.0, np.zeros((4, 5), np.float64, order="F"))
    with pytest.raises(ValueError, match="2-D"):
        _core._gemm32(False, A, False, np.ones((3, 1), np.float32), 1.0, 0.0, np.zeros(4, np.float32))
    read_only = np.zeros((4, 5), np.float32, order="F")
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        _core._gemm32(False, A, False, B, 1.0, 0.0, read_only)
    with pytest.raises(TypeError, match="float32"):
        _core._gemm32(False, A.astype(np.float64), False, B, 1.0, 0.0, np.zeros((4, 5), np.float32, order="F"))


def test_long_sums_on_the_tiles_go_in_parts_of_512_terms_at_most(restore_threads):
    """On AVX-512, a float32 layer of 16 units on 30,000 inputs: each thread's forward goes to the
    tiles in 59 parts of 508 and 509 terms (512 at most), each sum within a part one chain of FMAs,
    and Z[1] is within float32's tolerance of the float64 product (in parts of 8,192 terms, as half
    of a 1 MiB L2 allows, it was off by 1.03 times that tolerance)."""
    k, m = 30000, 64
    mlpcore.set_num_threads(1)
    assert _core._tile_parts(False, 16, m, k, 1) == (59 if _core._avx512_kernels() else 0)
    net = mlpcore.Network([k, 16, 1], ["tanh", "sigmoid"], "bce", dtype="float32", seed=0)
    X = np.asfortranarray(np.random.default_rng(1).standard_normal((k, m)).astype(np.float32))
    expected = np.asarray(net.W[1], np.float64) @ X.astype(np.float64) + np.asarray(net.b[1], np.float64).reshape(-1, 1)
    before = _core._tile_products()
    Z = net.forward(X).Z[1]
    assert _core._tile_products() - before == _core._avx512_kernels()
    assert_close(Z, expected, np.float32)


@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
@pytest.mark.parametrize("m", [5, 16, 24])
def test_small_layers_on_the_tiles_match_the_reference(m, dtype):
    """A small network whose hidden layers have one vector of rows, one and one more, and two and
    one more (float32: 16, 17, 33; float64: 8, 9, 17) on 5 to 24 examples: on AVX-512 each
    forward and dW[l] product of those layers goes to the tiles (one tile of one, two or three
    vectors, masked but the first one), and so does each dA[l-1] on a k of 32 at most (not
    float32's dA[2], on 33) from 16 columns (W[l]^T transposed); Z[l], dW[l], db[l] and dA[l]
    against the reference, and the gradient against finite differences."""
    lanes, float64 = _lanes(dtype), dtype == np.float64
    n = [3, lanes, lanes + 1, 2 * lanes + 1, 1]
    net = mlpcore.Network(n, ["tanh", "relu", "tanh", "sigmoid"], "bce", dtype=np.dtype(dtype).name, seed=11)
    rng = np.random.default_rng(12)
    X = np.asfortranarray(rng.standard_normal((n[0], m)).astype(dtype))
    Y = random_targets(rng, "bce", 1, m, dtype)
    products = [(n[l], m, n[l - 1], 1) for l in range(1, 4)] + [(n[l], n[l - 1], m, n[l - 1]) for l in range(1, 4)]
    on_tiles = [_core._tile_parts(float64, *product) for product in products]
    dA_on_tiles = [_core._transposes_for_tiles(float64, n[l - 1], m, n[l]) for l in range(2, 5)]
    assert on_tiles == [_core._avx512_kernels()] * 6
    assert dA_on_tiles == [_core._avx512_kernels() and m >= 16 and n[l] <= 32 for l in range(2, 5)]
    before = _core._tile_products()
    cache = net.forward(X)
    grads = net.backward(cache, Y)
    assert _core._tile_products() - before == sum(on_tiles) + sum(dA_on_tiles)
    W, b = reference_params(net)
    Z_ref, A_ref = reference.forward(W, b, X, net.activations)
    Z, A = cache_dicts(cache, net.L)
    expected = reference.backward(W, Z, A, Y, net.activations, "bce")
    for l in range(1, net.L + 1):
        assert_close(cache.Z[l], Z_ref[l], dtype)
        assert_close(grads.dW[l], expected["dW"][l], dtype)
        assert_close(grads.db[l], expected["db"][l], dtype)
    for l in range(1, net.L):
        assert_close(grads.dA[l], expected["dA"][l], dtype)
    if float64:
        check_finite_differences(net, X, Y)


def _tile_rows(dtype):
    """Rows of a layer on the tiles: three vectors of rows and two more (the last vector masked)."""
    return 3 * _lanes(dtype) + 2


def _part_boundaries(k, parts):
    """Where the tiles' parts of k begin, but the first (the first k % parts parts one term longer)."""
    return [p * (k // parts) + min(p, k % parts) for p in range(1, parts)]


def _rows_in_three_parts(float64, k, bk):
    """The fewest rows, from three vectors and two more, of a thread's product over k (op(A)
    stored column-major, op(B)'s rows bk apart) that the tiles take in three parts of k, found
    with two columns of C (the callers' few columns keep C far within the parts' limit); None
    where they take none (no AVX-512)."""
    first = _tile_rows(np.float64 if float64 else np.float32)
    return next((rows for rows in range(first, 100 * k) if _core._tile_parts(float64, rows, 2, k, bk) == 3), None)


@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
@pytest.mark.parametrize("m", [2, 9])
@pytest.mark.parametrize("layout", ["F", "C"])
def test_products_in_parts_of_k_match_the_reference(layout, m, dtype, restore_threads):
    """Z[1] = W[1] X whose sums are longer than the tiles take in one part (on AVX-512, 512 terms
    at most, within half of L2) goes to the tiles in three parts of k = n[0] = 1,201 (400 terms
    and 401), each part after the first added into Z[1]; X F-ordered, or C-ordered (op(B) read a
    row a step, each part from its first row on); W[1] of the fewest rows (a masked last vector)
    that make three parts. Z[1], and the gradients of the backward that follows, against the reference.
    One thread, so that the product is the thread's own."""
    mlpcore.set_num_threads(1)
    n0, bk = 1201, 1 if layout == "F" else m
    rows = _rows_in_three_parts(dtype == np.float64, n0, bk) or _tile_rows(dtype)
    assert _core._tile_parts(dtype == np.float64, rows, m, n0, bk) == (3 if _core._avx512_kernels() else 0)
    net = mlpcore.Network([n0, rows, 3], ["tanh", "identity"], "mse", dtype=np.dtype(dtype).name, seed=7)
    rng = np.random.default_rng(8)
    X = rng.standard_normal((n0, m)).astype(dtype)
    X = np.ascontiguousarray(X) if layout == "C" else np.asfortranarray(X)
    Y = rng.standard_normal((3, m)).astype(dtype)
    W, b = reference_params(net)
    before = _core._tile_products()
    cache = net.forward(X)
    assert _core._tile_products() - before == _core._avx512_kernels()
    grads = net.backward(cache, Y)
    Z_ref, A_ref = reference.forward(W, b, X, net.activations)
    expected = reference.backward(W, *cache_dicts(cache, net.L), Y, net.activations, "mse")
    assert_close(cache.Z[1], Z_ref[1], dtype)
    assert_close(cache.A[2], A_ref[2], dtype)
    for l in (1, 2):
        assert_close(grads.dW[l], expected["dW"][l], dtype)
        assert_close(grads.db[l], expected["db"][l], dtype)


def _fewest_columns_off_the_parts(float64, rows, k):
    """The fewest columns of C = (rows, columns) over k from which the tiles no longer take a
    product that they take in parts at two columns (op(A) column-major, op(B)'s rows adjacent);
    None where they take none at two (no AVX-512)."""
    if _core._tile_parts(float64, rows, 2, k, 1) < 2:
        return None
    taken, off = 2, 2**24
    while off - taken > 1:
        middle = (taken + off) // 2
        taken, off = (middle, off) if _core._tile_parts(float64, rows, middle, k, 1) else (taken, middle)
    return off


@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
def test_products_leave_the_parts_where_C_outgrows_L2(dtype, restore_threads):
    """On AVX-512, each part of a product in parts reads and writes the whole of C once more: from
    a C of more than a quarter of a core's L2 it leaves the tiles' parts, for their panels' copies
    or BLAS (on a 2 MiB L2, 1024x256x1024 ran at 82-123 GFLOP/s in parts against OpenBLAS's
    102-143), while a product that the tiles take whole
    stays on them however wide C is. The limit, found with four vectors of rows over k = 1,201
    (parts of 512 terms at most), holds for any rows: Z[1] = W[1] X of rows near the square root
    of it (the smallest X and W[1]) is one tile product on the last number of columns that the
    parts take, none on one more, and Z[1] is as the reference's both times. One thread, so that
    the product is the thread's own."""
    mlpcore.set_num_threads(1)
    float64, lanes, size, k = dtype == np.float64, _lanes(dtype), np.dtype(dtype).itemsize, 1201
    off = _fewest_columns_off_the_parts(float64, 4 * lanes, k)
    assert (off is not None) == _core._avx512_kernels()
    if off is None:
        return
    assert _core._tile_parts(float64, 4 * lanes, off, k, 1) == 0
    limit = (off - 1) * 4 * lanes * size  # the largest C in parts, in bytes
    rows = lanes * math.ceil(math.sqrt(limit / size) / lanes)
    off = _fewest_columns_off_the_parts(float64, rows, k)
    assert (off - 1) * rows * size <= limit < off * rows * size
    assert _core._tile_parts(float64, rows, off - 1, k, 1) >= 2
    assert _core._tile_parts(float64, rows, off, k, 1) == 0
    assert _core._tile_parts(float64, rows, off, 128, 1) == 1  # whole: no limit on C
    net = mlpcore.Network([k, rows, 1], ["tanh", "identity"], "mse", dtype=np.dtype(dtype).name, seed=11)
    W, b = reference_params(net)
    rng = np.random.default_rng(12)
    for m, products in ((off - 1, 1), (off, 0)):
        X = rng.standard_normal((m, k)).astype(dtype).T  # F-ordered
        before = _core._tile_products()
        Z = net.forward(X).Z[1]
        assert _core._tile_products() - before == products, m
        assert_close(Z, reference.forward(W, b, X, net.activations)[0][1], dtype)


@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
@pytest.mark.parametrize("into_products", [True, False], ids=["into_products", "gradient_hook"])
def test_sgd_steps_with_products_in_parts_of_the_batch_match_the_reference(into_products, dtype, restore_threads):
    """With a batch larger than the tiles take whole (on AVX-512, dZ[1] of m = 1,201 columns, more
    than a part's 512 terms, and of the fewest rows that make three parts), dW[1] = (1/m) dZ[1] X^T goes to
    the tiles in three parts of m, each added into the product: a fit's plain-SGD steps taken into the
    products, W[1] = (1 - lr l2/m) W[1] - (lr/m) dZ[1] X^T, add them into W[1] itself, the first
    scaled by the decay factor; with a gradient hook, which needs the gradient, into dW[1]. W[l]
    and b[l] after two full-batch steps with l2 = 0.3 against the reference's two steps from the
    same parameters. One thread; batches of 2^20 multiply-adds and more (the steps into the
    products need them)."""
    mlpcore.set_num_threads(1)
    m, n0, lr, l2 = 1201, 100, 0.5, 0.3
    rows = _rows_in_three_parts(dtype == np.float64, m, n0) or _tile_rows(dtype)  # op(B) = X^T: rows n[0] apart
    assert _core._tile_parts(dtype == np.float64, rows, n0, m, n0) == (3 if _core._avx512_kernels() else 0)
    net = mlpcore.Network([n0, rows, 3], ["tanh", "identity"], "mse", dtype=np.dtype(dtype).name, seed=9)
    assert m * net.params.size >= 2**20
    rng = np.random.default_rng(10)
    X = np.asfortranarray(rng.standard_normal((n0, m)).astype(dtype))
    Y = rng.standard_normal((3, m)).astype(dtype)
    W, b = reference_params(net)
    for _ in range(2):
        Z, A = reference.forward(W, b, X, net.activations)
        expected = reference.backward(W, Z, A, Y, net.activations, "mse", l2=l2)
        reference.update(W, b, expected["dW"], expected["db"], lr)
    steps_before, tiles_before = _core._steps_in_products(), _core._tile_products()
    net.fit(X, Y, epochs=2, batch_size=m, optimizer="sgd", learning_rate=lr, l2=l2, shuffle=False, verbose=0,
            gradient_hook=None if into_products else (lambda flat_gradient: None))
    assert _core._steps_in_products() - steps_before == (2 if into_products else 0)
    assert (_core._tile_products() > tiles_before) == _core._avx512_kernels()
    for l in (1, 2):
        assert_close(net.W[l], W[l], dtype)
        assert_close(net.b[l], b[l], dtype)


@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
def test_sgd_steps_into_small_tiles_match_the_reference(dtype, restore_threads):
    """A fit's plain-SGD steps taken into the products, W[l] = (1 - lr l2/m) W[l] - (lr/m) dZ[l]
    A[l-1]^T (the tiles' beta the decay factor, alpha -lr/m), where dW[2], dW[3] and dW[4] are small
    products with one, two and three vectors of rows (float32: 16, 24, 33; float64: 8, 12, 17;
    the last two masked): on AVX-512 each goes to the tiles. W[l] and b[l] after two full-batch
    steps of 16 examples with l2 = 0.3 against the reference's two steps from the same
    parameters; layer 1's inputs make the batch's 2^20 multiply-adds that the steps into the
    products need. One thread."""
    mlpcore.set_num_threads(1)
    lanes, float64 = _lanes(dtype), dtype == np.float64
    m, lr, l2 = 16, 0.1, 0.3
    n = [2**16 // (lanes // 2) + 1, lanes // 2, lanes, lanes + lanes // 2, 2 * lanes + 1]
    net = mlpcore.Network(n, ["tanh"] * 3 + ["identity"], "mse", dtype=np.dtype(dtype).name, seed=13)
    assert m * net.params.size >= 2**20
    on_tiles = [_core._tile_parts(float64, n[l], n[l - 1], m, n[l - 1]) for l in range(2, 5)]  # op(B) = A[l-1]^T
    assert on_tiles == [int(_core._avx512_kernels())] * 3
    rng = np.random.default_rng(14)
    X = np.asfortranarray(0.1 * rng.standard_normal((n[0], m)).astype(dtype))  # tanh in its near-linear range
    Y = rng.standard_normal((n[-1], m)).astype(dtype)
    W, b = reference_params(net)
    for _ in range(2):
        Z, A = reference.forward(W, b, X, net.activations)
        expected = reference.backward(W, Z, A, Y, net.activations, "mse", l2=l2)
        reference.update(W, b, expected["dW"], expected["db"], lr)
    steps_before, tiles_before = _core._steps_in_products(), _core._tile_products()
    net.fit(X, Y, epochs=2, batch_size=m, optimizer="sgd", learning_rate=lr, l2=l2, shuffle=False, verbose=0)
    assert _core._steps_in_products() - steps_before == 2
    Z_on_tiles = [_core._tile_parts(float64, n[l], m, n[l - 1], 1) > 0 for l in range(1, 5)]
    dA_on_tiles = [_core._transposes_for_tiles(float64, n[l - 1], m, n[l]) for l in range(2, 5)]
    assert _core._tile_products() - tiles_before == 2 * (sum(Z_on_tiles) + sum(dA_on_tiles) + sum(on_tiles))
    for l in range(1, net.L + 1):
        assert_close(net.W[l], W[l], dtype)
        assert_close(net.b[l], b[l], dtype)


def test_gradient_through_products_in_parts_matches_finite_differences(restore_threads):
    """dW[1] of a network whose Z[1] = W[1] X goes to the tiles in three parts of k = n[0] (on
    AVX-512; see above), against central differences of the core's cost in W[1]'s columns on
    either side of each boundary between two parts, and in its first and last."""
    mlpcore.set_num_threads(1)
    n0, m = 1201, 4
    rows = _rows_in_three_parts(True, n0, 1) or _tile_rows(np.float64)
    assert _core._tile_parts(True, rows, m, n0, 1) == (3 if _core._avx512_kernels() else 0)
    net = mlpcore.Network([n0, rows, 2], ["tanh", "softmax"], "cce", dtype="float64", seed=11)
    rng = np.random.default_rng(12)
    X = np.asfortranarray(rng.standard_normal((n0, m)))
    Y = random_targets(rng, "cce", 2, m, np.float64)
    dW1 = np.array(net.backward(net.forward(X), Y).dW[1])
    W1 = net.W[1]  # a writable view of the parameters

    def J():
        return net.cost(net.forward(X).A[2], Y)
    for start in [0, *(k - 1 for k in _part_boundaries(n0, 3)), n0 - 1]:
        columns = slice(start, start + 2)
        assert_gradient(dW1[:, columns], numerical_gradient(J, W1[:, columns]))


class _Subclass(np.ndarray):
    pass


# Layouts of X that predict hands to the core as they are, and forms it converts first.
IN_PLACE = ["C", "F", "transposed_rows", "read_only", "sub_block"]
CONVERTED = ["columns_step_2", "rows_step_2", "negative_stride", "subclass", "swapped_byte_order",
             "other_float", "nested_lists"]


def _predict_input(X, kind):
    """X in the layouts of _layout, or in one of the other kinds above."""
    if kind == "sub_block":  # F-ordered rows of a taller array: a leading dimension of twice n[0]
        tall = np.zeros((2 * X.shape[0], X.shape[1]), X.dtype, order="F")
        tall[:X.shape[0]] = X
        return tall[:X.shape[0]]
    if kind == "subclass":
        return X.view(_Subclass)
    if kind == "swapped_byte_order":
        return X.astype(X.dtype.newbyteorder())
    if kind == "other_float":
        return X.astype(np.float64 if X.dtype == np.float32 else np.float32)
    if kind == "nested_lists":
        return X.tolist()
    return _layout(X, kind)


@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
@pytest.mark.parametrize("cost", ["mse", "cce"])
@pytest.mark.parametrize("kind", IN_PLACE + CONVERTED)
def test_predict_reads_X_in_every_layout_and_form_as_forward_does(kind, cost, dtype, monkeypatch):
    """predict hands the layouts the core reads in place to it without Python's _matrix (which
    fails the test if called for one of them) and converts the others, answering as from
    forward's A[L], bit for bit; its cache follows m."""
    output = "identity" if cost == "mse" else "softmax"
    net = mlpcore.Network([7, 9, 4], ["relu", output], cost, dtype=np.dtype(dtype).name, seed=3)
    rng = np.random.default_rng(1)
    X = rng.integers(-4, 5, size=(7, 11)).astype(dtype)  # small integers: exact in both dtypes
    for m in (11, 1, 11):
        A_L = np.asarray(net.forward(X[:, :m], training=False).A[2])
        expected = A_L if cost == "mse" else np.argmax(A_L, axis=0)
        with monkeypatch.context() as patch:
            if kind in IN_PLACE:
                patch.setattr(mlpcore.Network, "_matrix", lambda *args, **kwargs: pytest.fail("X was converted"))
            answer = net.predict(_predict_input(X[:, :m], kind))
        assert type(answer) is np.ndarray and answer.dtype == expected.dtype and answer.shape == expected.shape
        np.testing.assert_array_equal(answer, expected)
        assert net._core.predict_cache_capacity == m
    x = _predict_input(X, kind)
    assert net.predict(x) is not net.predict(x)  # a new answer each call, not the cache's memory


def test_a_results_arrays_are_made_when_first_read_then_kept():
    """A Cache's and a Gradients' views are made the first time they are read (a loop reads few
    of them), then are the same array at each read, through [l], get, values and items alike; a
    layer with no array raises LayerIndexError naming those that exist."""
    net = mlpcore.Network([3, 4, 2], ["tanh", "sigmoid"], "bce", dtype="float64", seed=0)
    rng = np.random.default_rng(5)
    X, Y = rng.standard_normal((3, 6)), rng.integers(0, 2, (2, 6)).astype(float)
    cache = net.forward(X)
    grads = net.backward(cache, Y)
    assert list(grads.dW._arrays.values()) == [None, None]  # none made yet
    dW1 = grads.dW[1]
    assert grads.dW[1] is dW1 and grads.dW.get(1) is dW1 and next(iter(grads.dW.values())) is dW1
    assert dict(grads.dW.items())[2] is grads.dW[2] and grads.dW.get(3) is None
    np.testing.assert_allclose(dW1, np.asarray(grads.dZ[1]) @ X.T / 6, rtol=1e-12)
    assert repr(cache.Z) == "<Z: {1: (4, 6), 2: (2, 6)}>"
    with pytest.raises(mlpcore._layers.LayerIndexError, match=r"^dA\[0\] does not exist; dA has the layers \[1\]$"):
        grads.dA[0]
    net.backward(net.forward(X[:, ::-1].copy(), out=cache), Y, out=grads)
    assert grads.dW[1] is dW1  # the same memory, filled again
    np.testing.assert_allclose(dW1, np.asarray(grads.dZ[1]) @ X[:, ::-1].T / 6, rtol=1e-12)


def _fail(what):
    return lambda *args, **kwargs: pytest.fail(what)


@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("kind", IN_PLACE + CONVERTED)
def test_forward_into_a_cache_reads_X_in_every_layout_and_form_as_into_a_new_one(kind, training, dtype, monkeypatch):
    """forward(X, out=cache) hands the layouts the core reads in place to it without Python's
    _matrix and _out (which fail the test if called for one of them), and converts the others:
    Z, A and the dropout masks D as a forward into a new cache gives, bit for bit; A[0] a
    read-only view of X itself when X is read in place."""
    make = lambda: mlpcore.Network([7, 9, 4], ["relu", "softmax"], "cce", dtype=np.dtype(dtype).name, seed=3,
                                   dropout=[0.5])
    net, twin = make(), make()  # the same dropout masks, forward after forward
    X = np.random.default_rng(1).integers(-4, 5, size=(7, 11)).astype(dtype)
    cache = net.forward(X)
    twin.forward(X)
    expected = twin.forward(X, training=training)
    x = _predict_input(X, kind)
    with monkeypatch.context() as patch:
        if kind in IN_PLACE:
            patch.setattr(mlpcore.Network, "_matrix", _fail("X was converted"))
            patch.setattr(mlpcore.Network, "_out", _fail("the cache was looked at from Python"))
        assert net.forward(x, out=cache, training=training) is cache
    assert cache.D.indices == ([1] if training else [])
    for name in ("Z", "A", "D"):
        for l in getattr(expected, name):
            np.testing.assert_array_equal(getattr(cache, name)[l], getattr(expected, name)[l])
    A0 = cache.A[0]
    assert type(A0) is np.ndarray and A0.dtype == dtype and not A0.flags.writeable
    np.testing.assert_array_equal(A0, X)
    assert np.shares_memory(A0, x) or kind not in IN_PLACE


def _targets_input(Y, kind):
    """Targets Y (labels (m,) or a matrix) in one of the forms of Y_FORMS."""
    if kind == "labels_int32":
        return Y.astype(np.int32)
    if kind == "labels_step_2":
        wide = np.zeros(2 * Y.size, Y.dtype)
        wide[::2] = Y
        return wide[::2]
    if kind == "vector_step_2":
        wide = np.zeros(2 * Y.size, Y.dtype)
        wide[::2] = Y.ravel()
        return wide[::2]
    if kind == "one_hot_bool":
        return Y.astype(bool)
    if kind in ("labels", "vector", "one_hot"):
        return Y.ravel() if kind == "vector" else Y
    return _predict_input(Y, kind)


# (cost, form of Y, whether backward hands it to the core as it is)
Y_FORMS = ([("mse", kind, kind in IN_PLACE) for kind in IN_PLACE + CONVERTED] +
           [("cce", "labels", True), ("cce", "labels_int32", False), ("cce", "labels_step_2", False),
            ("cce", "nested_lists", False), ("cce", "one_hot", True), ("cce", "one_hot_bool", False),
            ("bce", "vector", True), ("bce", "vector_step_2", True), ("bce", "swapped_byte_order", False)])


@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
@pytest.mark.parametrize("cost, kind, in_place", Y_FORMS)
@pytest.mark.parametrize("compute_dA0", [False, True])
def test_backward_into_gradients_reads_Y_in_every_layout_and_form_as_into_new_ones(cost, kind, in_place, compute_dA0,
                                                                                    dtype, monkeypatch):
    """backward(cache, Y, out=grads) hands the forms of Y the core reads in place to it without
    Python's _targets and _out (which fail the test if called for one of them), and converts
    the others: the gradients of a backward into new Gradients, bit for bit."""
    n_L = 1 if cost == "bce" else 4
    output = {"mse": "identity", "bce": "sigmoid", "cce": "softmax"}[cost]
    net = mlpcore.Network([7, 9, n_L], ["relu", output], cost, dtype=np.dtype(dtype).name, seed=3)
    rng = np.random.default_rng(1)
    X = rng.integers(-4, 5, size=(7, 11)).astype(dtype)
    if cost == "mse":
        Y = rng.integers(-4, 5, size=(n_L, 11)).astype(dtype)
    elif cost == "bce":
        Y = rng.integers(0, 2, size=(1, 11)).astype(dtype)
    else:
        labels = rng.integers(0, n_L, size=11)
        Y = labels if kind.startswith("labels") or kind == "nested_lists" else \
            np.asfortranarray(np.arange(n_L)[:, None] == labels).astype(dtype)
    cache = net.forward(X)
    grads = net.backward(cache, np.zeros((1, 11), dtype) if cost == "bce" else Y)  # other numbers to overwrite
    expected = net.backward(cache, Y, compute_dA0=compute_dA0)
    y = _targets_input(Y, kind)
    with monkeypatch.context() as patch:
        if in_place:
            patch.setattr(mlpcore.Network, "_targets", _fail("Y was converted"))
            patch.setattr(mlpcore.Network, "_out", _fail("the gradients were looked at from Python"))
        assert net.backward(cache, y, out=grads, compute_dA0=compute_dA0) is grads
    for name in ("dW", "db", "dZ", "dA"):
        assert getattr(grads, name).indices == getattr(expected, name).indices
        for l in getattr(expected, name):
            np.testing.assert_array_equal(getattr(grads, name)[l], getattr(expected, name)[l])


@pytest.mark.parametrize("into", ["a_new_cache", "its_out_cache"])
def test_an_axis_of_length_1_is_read_in_place_whatever_its_stride(into):
    """One feature of every other example of a wider array, (1, m) with a column stride of two
    items, is read in place (the stride of its axis of length 1 is never used) into a new cache
    as into an out cache; so is a bce Y of the same form."""
    net = mlpcore.Network([1, 3, 1], ["tanh", "sigmoid"], "bce", seed=0)
    data = np.zeros((2, 12), np.float32)
    data[0], data[1] = np.linspace(-1, 1, 12), np.arange(12) % 3 == 0
    X, Y = data[:1, ::2], data[1:, ::2]  # strides of 48 and 8 bytes
    assert not any(A.flags.c_contiguous or A.flags.f_contiguous for A in (X, Y))
    cache = net.forward(X.copy()) if into == "its_out_cache" else None
    result = net.forward(X, out=cache)
    assert np.shares_memory(result.A[0], X)
    expected = net.backward(net.forward(X.copy()), Y.copy())
    grads = net.backward(result, Y, out=net.backward(result, Y.copy()))
    for l in (1, 2):
        np.testing.assert_array_equal(grads.dW[l], expected.dW[l])


@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
@pytest.mark.parametrize("x_dtype", [np.int64, np.int32, np.uint8, np.int8, np.float16,
                                     "other_float"])
def test_real_and_integer_X_converted(x_dtype, dtype):
    case = make_case(22, "relu", "sigmoid", "bce", dtype, L=2)
    net = case.net
    if x_dtype == "other_float":
        x_dtype = np.float64 if dtype == np.float32 else np.float32
    X = np.random.default_rng(0).integers(0, 5, size=case.X.shape).astype(x_dtype)
    cache = net.forward(X)
    assert np.asarray(cache.A[0]).dtype == dtype
    expected = net.forward(X.astype(dtype))
    for l in (1, 2):
        assert np.asarray(cache.Z[l]).dtype == dtype
        assert_close(cache.Z[l], expected.Z[l], dtype)
        assert_close(cache.A[l], expected.A[l], dtype)


# ---------------------------------------------------------------------------
# caches and out=
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
def test_later_forward_does_not_change_earlier_cache(dtype):
    case = make_case(31, "elu", "identity", "mse", dtype, L=3)
    net, L = case.net, case.L
    first = net.forward(case.X)
    Z1, A1 = cache_dicts(first, L)
    Z1 = {l: Z1[l].copy() for l in Z1}
    A1 = {l: A1[l].copy() for l in A1}
    X2 = random_input(np.random.default_rng(1), case.n[0], case.m, dtype)
    second = net.forward(X2)
    net.backward(second, case.Y)
    for l in range(1, L + 1):
        np.testing.assert_array_equal(first.Z[l], Z1[l])
        np.testing.assert_array_equal(first.A[l], A1[l])
        assert not np.shares_memory(np.asarray(first.Z[l]), np.asarray(second.Z[l]))
    np.testing.assert_array_equal(first.A[0], A1[0])


@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
def test_forward_out_reuses_the_cache(dtype):
    case = make_case(32, "relu", "sigmoid", "bce", dtype, L=3)
    net, L = case.net, case.L
    cache = net.forward(case.X)
    old_Z = [cache.Z[l] for l in range(1, L + 1)]
    old_A = [cache.A[l] for l in range(1, L + 1)]
    X2 = random_input(np.random.default_rng(2), case.n[0], case.m, dtype)
    again = net.forward(X2, out=cache)
    Z_ref, A_ref = reference.forward(case.W, case.b, X2, case.activations)
    for l in range(1, L + 1):
        assert np.shares_memory(np.asarray(again.Z[l]), np.asarray(old_Z[l - 1]))
        assert np.shares_memory(np.asarray(again.A[l]), np.asarray(old_A[l - 1]))
        assert_close(again.Z[l], Z_ref[l], dtype)
        assert_close(again.A[l], A_ref[l], dtype)
        # the cache handed in now holds the new values too
        assert_close(cache.A[l], A_ref[l], dtype)
    np.testing.assert_array_equal(again.A[0], X2)


@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
def test_backward_out_reuses_the_grads(dtype):
    case = make_case(33, "tanh", "identity", "mse", dtype, L=3)
    net, L = case.net, case.L
    grads = net.backward(net.forward(case.X), case.Y)
    old = {key: [getattr(grads, key)[l] for l in range(1, L + 1)] for key in ("dW", "db", "dZ")}
    rng = np.random.default_rng(3)
    X2 = random_input(rng, case.n[0], case.m, dtype)
    Y2 = random_targets(rng, "mse", case.n[L], case.m, dtype)
    cache2 = net.forward(X2)
    again = net.backward(cache2, Y2, out=grads)
    Z, A = cache_dicts(cache2, L)
    expected = reference.backward(case.W, Z, A, Y2, case.activations, "mse")
    for key in ("dW", "db", "dZ"):
        for l in range(1, L + 1):
            assert np.shares_memory(np.asarray(getattr(again, key)[l]),
                                    np.asarray(old[key][l - 1]))
            assert_close(getattr(again, key)[l], expected[key][l], dtype)


def test_the_dA0_buffer_is_made_once_for_the_gradients_capacity():
    """dA[0] is sized for the capacity at the first backward that asks for it, so that a view
    of it stays valid through later backwards of more examples (the core's own calls may give
    any m up to the capacity)."""
    net = mlpcore.Network([3, 4, 1], ["relu", "identity"], "mse", dtype="float64", seed=0)
    rng = np.random.default_rng(0)
    grads, cache = net._core.new_gradients(100), net._core.new_cache(100)
    address = []
    for m in (2, 100, 2):
        X, Y = np.asfortranarray(rng.standard_normal((3, m))), np.asfortranarray(rng.standard_normal((1, m)))
        net._core.forward(X, cache, True, True)
        net._core.backward(cache, Y, grads, True, True)
        dA0 = grads.dA(0)
        assert dA0.shape == (3, m)
        np.testing.assert_allclose(dA0, np.array(net.W[1]).T @ grads.dZ(1), rtol=1e-12)  # dA[0] = W[1]^T dZ[1]
        address.append(dA0.__array_interface__["data"][0])
    assert address[0] == address[1] == address[2]


# ---------------------------------------------------------------------------
# predict
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
@pytest.mark.parametrize("cost, output, nL", [("mse", "identity", 3), ("mse", "tanh", 1),
                                              ("bce", "sigmoid", 1), ("bce", "sigmoid", 4),
                                              ("cce", "softmax", 5)])
def test_predict(cost, output, nL, dtype):
    rng = np.random.default_rng(nL)
    net = mlpcore.Network([6, 10, nL], ["relu", output], cost, dtype=np.dtype(dtype).name,
                          seed=5)
    net.b[2][...] = rng.standard_normal((nL, 1))
    X = random_input(rng, 6, 57, dtype)
    W, b = reference_params(net)
    _, A = reference.forward(W, b, X, reference.check_architecture(net.n, [
        "relu", output], cost))
    prediction = net.predict(X)
    if cost == "mse":
        assert prediction.shape == (nL, 57) and prediction.dtype == dtype
        assert_close(prediction, A[2], dtype)
    elif cost == "bce":
        assert prediction.shape == (nL, 57) and prediction.dtype == np.int64
        expected = (A[2] >= 0.5).astype(np.int64)
        # only values far from the 0.5 threshold are certain across roundings
        sure = np.abs(A[2] - 0.5) > 1e-5
        np.testing.assert_array_equal(prediction[sure], expected[sure])
        assert set(np.unique(prediction)) <= {0, 1}
        assert 0 < expected.sum() < expected.size  # the test sees both classes
    else:
        assert prediction.shape == (57,) and prediction.dtype == np.int64
        top_two = np.sort(A[2], axis=0)[-2:]
        sure = top_two[1] - top_two[0] > 1e-5
        np.testing.assert_array_equal(prediction[sure], np.argmax(A[2], axis=0)[sure])
        assert len(np.unique(prediction)) > 1


@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
@pytest.mark.parametrize("cost, output", [("mse", "identity"), ("bce", "sigmoid"), ("cce", "softmax")])
def test_predict_answers_as_numpy_does_from_an_inference_forward(cost, output, dtype):
    """predict's answers are numpy's from A[L] of forward(training=False), bit for bit, also where
    outputs tie (argmax: the first of equal largest entries); where they are NaN, mse's A[L] is
    its NaN and bce and cce, which have no label for it, raise ValueError."""
    net = mlpcore.Network([6, 10, 5], ["relu", output], cost, dtype=np.dtype(dtype).name, seed=5)
    X = random_input(np.random.default_rng(0), 6, 40, dtype)
    answers = {}
    for change in ("none", "ties", "nan"):
        if change == "ties":  # rows 1 and 3 of W[2] and b[2] equal, and larger than the others
            net.W[2][[1, 3]] = np.abs(net.W[2][1]) + 1
            net.b[2][[1, 3]] = 1
        if change == "nan":  # Z[2] row 2 NaN (NaN times 0 is NaN too): softmax's columns all NaN
            net.W[2][2, 0] = np.nan
        A_L = np.array(net.forward(X, training=False).A[2])
        if change == "nan" and cost != "mse":
            with pytest.raises(ValueError, match="A\\[L\\] contains NaN or inf, of which no label can be predicted"):
                net.predict(X)
            break
        expected = {"mse": A_L, "bce": (A_L >= 0.5).astype(np.int64), "cce": np.argmax(A_L, axis=0)}[cost]
        answers[change] = net.predict(X)
        np.testing.assert_array_equal(answers[change], expected)
        assert answers[change].dtype == (np.dtype(dtype) if cost == "mse" else np.int64)
    assert np.isnan(A_L).any()
    if cost == "cce":
        assert set(answers["ties"]) == {1}


# ---------------------------------------------------------------------------
# threads
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
def test_thread_counts_agree(dtype, restore_threads):
    case = make_case(41, "relu", "softmax", "cce", dtype, L=4, max_width=64, max_m=300)
    net, L = case.net, case.L
    # a big enough batch that the element-wise loops are split across threads
    X = random_input(np.random.default_rng(5), case.n[0], 3000, dtype)
    Y = random_targets(np.random.default_rng(6), "cce", case.n[L], 3000, dtype)
    results = {}
    for threads in (1, 2):
        mlpcore.set_num_threads(threads)
        assert mlpcore.get_num_threads() == threads
        cache = net.forward(X)
        grads = net.backward(cache, Y, compute_dA0=True)
        results[threads] = ([np.array(cache.A[l]) for l in range(1, L + 1)] +
                            [np.array(grads.dW[l]) for l in range(1, L + 1)] +
                            [np.array(grads.db[l]) for l in range(1, L + 1)] +
                            [np.array(grads.dA[0])])
        # same seed and thread count: identical from run to run
        again = net.backward(net.forward(X), Y, compute_dA0=True)
        for l in range(1, L + 1):
            np.testing.assert_array_equal(again.dW[l], grads.dW[l])
    for one, two in zip(results[1], results[2]):
        assert_close(two, one, dtype)


@pytest.mark.parametrize("order", ["F", "C"])
@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
@pytest.mark.parametrize("n, m, team", [
    # too few examples for a team; gemm shares each product of 2^23 multiply-adds out:
    ([3000, 3000, 3], 1, False),   # rows: Z[1] (3000, 1), dA[0] by matrix-vector products; columns: dW[1]
    ([1500, 3000, 3], 20, False),  # rows: Z[1] (3000, 20), dW[1] (3000, 1500), dA[0] (1500, 20) through W[1]^T
    ([3000, 1000, 3], 20, False),  # columns: dW[1] (1000, 3000) through X^T; rows: Z[1], dA[0] (3000, 20)
    # a team for the whole call, each thread on its share of the columns:
    ([300, 100, 3], 2000, True),
    ([5000, 3, 3], 600, True),
], ids=["gemm-one-example", "gemm-rows", "gemm-columns", "team", "team-wide-input"])
def test_work_shared_out_over_the_threads_matches_the_reference(n, m, team, dtype, order, restore_threads):
    """A forward or backward of 2^23 multiply-adds and more (m times the weights) with 16
    examples a thread and more runs on a team, each thread on its share of the columns;
    with fewer examples, each product of 2^23 multiply-adds and more is shared out, each
    thread taking its share of the longer side of the result (columns with op(B)'s, rows with
    op(A)'s) from X as it is stored, F- or C-ordered. The same numbers as the reference, and
    as one thread."""
    mlpcore.set_num_threads(2)
    case = make_case(11, "tanh", "softmax", "cce", dtype, n=n, m=m)
    case.X = np.asfortranarray(case.X) if order == "F" else np.ascontiguousarray(case.X)
    assert case.net._core.threads(m) == (2 if team else 1)
    case.net.backward(case.net.forward(case.X), case.Y)
    assert mlpcore._core._last_team_size() == (2 if team else 1)
    # In float32 the rounding of sums this long, carried through two layers, exceeds the
    # tolerance at a few entries near 0 (with one thread too): there each layer is checked
    # on the core's own input, and end to end in float64.
    check_forward(case, end_to_end=dtype == np.float64)
    check_backward(case)
    net = case.net
    two = net.backward(net.forward(case.X), case.Y, compute_dA0=True)
    mlpcore.set_num_threads(1)
    one = net.backward(net.forward(case.X), case.Y, compute_dA0=True)
    for key, l in (("dW", 1), ("dW", 2), ("dA", 0), ("dA", 1)):
        assert_close(getattr(two, key)[l], getattr(one, key)[l], dtype)


def calls_until_the_pair_thread_takes_a_half(call, more=0):
    """call() in a loop (which wakes the pair thread) until the pair thread has taken a half and
    `more` calls after, for at most 20 s: whether it took one."""
    halves, deadline, after = mlpcore._core._pair_halves(), time.monotonic() + 20, 0
    while after <= more and time.monotonic() < deadline:
        call()
        after += mlpcore._core._pair_halves() > halves
    return mlpcore._core._pair_halves() > halves


def one_example_products(net, X, Y):
    """A[1], A[L] and dA[0] of forward and backward on X's one example."""
    cache = net.forward(X)
    grads = net.backward(cache, Y, compute_dA0=True)
    return [np.array(cache.A[1]), np.array(cache.A[net.L]), np.array(grads.dA[0])]


@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
def test_one_example_products_in_two_halves_match_the_reference(dtype, restore_threads):
    """One example's products of 2^16 to 2^23 multiply-adds are two halves of the inner
    dimension summed, the second half on the pair thread when it is awake: Z[1] = W[1] a[0]
    by W[1]'s columns, dA[0] = W[1]^T dZ[1] by its rows (here 240,000 multiply-adds each). The
    same numbers as the reference, and the same bits whichever thread took the halves, on 1
    and 2 threads."""
    mlpcore.set_num_threads(2)
    case = make_case(12, "tanh", "softmax", "cce", dtype, n=[800, 300, 3], m=1)
    check_forward(case)
    check_backward(case)
    first = one_example_products(case.net, case.X, case.Y)

    def same_again():
        for a, b in zip(one_example_products(case.net, case.X, case.Y), first):
            np.testing.assert_array_equal(a, b)
    assert calls_until_the_pair_thread_takes_a_half(same_again, more=100)
    taken = mlpcore._core._pair_halves()
    mlpcore.set_num_threads(1)
    alone = one_example_products(case.net, case.X, case.Y)
    untouched = mlpcore._core._pair_halves()
    assert untouched == taken  # one thread: no halves for the pair thread
    for a, b in zip(alone, first):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES, **DTYPE_IDS)
def test_one_example_products_of_one_term_stay_whole(dtype, restore_threads):
    """A product whose inner dimension is 1 (one input unit: Z[1] = W[1] a[0] of 70,000
    multiply-adds; one hidden unit: dA[0] = W[1]^T dZ[1]) is not halved: the same numbers as
    the reference, call after call into the same buffers."""
    mlpcore.set_num_threads(2)
    for n in ([1, 70000, 2], [70000, 1, 2]):
        case = make_case(13, "tanh", "softmax", "cce", dtype, n=n, m=1)
        for _ in range(3):
            check_forward(case)
            check_backward(case)
        cache = case.net.forward(case.X)
        first = np.array(cache.A[2])
        for _ in range(3):
            case.net.forward(case.X, out=cache)
            np.testing.assert_array_equal(cache.A[2], first)


def wrong_answers_in_threads(call, expected, calls):
    """Four Python threads at once, thread i making `calls` calls of call(i): the threads whose
    answer was ever not expected[i], bit for bit."""
    import threading
    wrong = []

    def calls_of(i):
        for _ in range(calls):
            if not np.array_equal(call(i), expected[i]):
                wrong.append(i)
    threads = [threading.Thread(target=calls_of, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return wrong


def test_python_threads_share_the_pair_thread_and_keep_their_numbers(restore_threads):
    """Four Python threads, each forward of one example on its own network at once (the core
    releases the GIL): one call at a time has the pair thread, the others compute both halves,
    and every call gives its network's numbers, bit for bit."""
    mlpcore.set_num_threads(2)
    nets = [mlpcore.Network([784, 256, 10], ["relu", "softmax"], "cce", dtype="float64", seed=s) for s in range(4)]
    X = [np.random.default_rng(s).standard_normal((784, 1)) for s in range(4)]
    expected = [np.array(net.forward(x, training=False).A[2]) for net, x in zip(nets, X)]
    halves = mlpcore._core._pair_halves()
    for _ in range(5):  # on a loaded host the pair thread may sleep through a round of calls
        assert wrong_answers_in_threads(lambda i: nets[i].forward(X[i], training=False).A[2], expected, 1000) == []
        if mlpcore._core._pair_halves() > halves:
            break
    assert mlpcore._core._pair_halves() > halves


def test_threads_predicting_with_one_network_at_once_get_their_own_answers(restore_threads):
    """Four Python threads calling predict of the same network at once (the core releases the
    GIL) each get the answers for their X: a call does not share its buffers with another."""
    mlpcore.set_num_threads(1)
    net = mlpcore.Network([100, 300, 10], ["relu", "softmax"], "cce", seed=0)
    X = [np.random.default_rng(s).standard_normal((100, 64)).astype(np.float32) for s in range(4)]
    expected = [net.predict(x) for x in X]
    assert not np.array_equal(expected[0], expected[1])
    assert wrong_answers_in_threads(lambda i: net.predict(X[i]), expected, 300) == []


def _refusals_at_once(first, second, attempts=50):
    """first() and second() on two Python threads at once (each in the core with the GIL
    released), `attempts` times or until a call is refused: the RuntimeErrors raised."""
    for _ in range(attempts):
        barrier, errors = threading.Barrier(2), []

        def run(call):
            barrier.wait()
            try:
                call()
            except RuntimeError as error:
                errors.append(error)
        threads = [threading.Thread(target=run, args=(call,)) for call in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            return errors
    return []


CACHE_IN_USE = r"the cache is in use by a forward or backward on another thread: give each thread its own Cache"
GRADIENTS_IN_USE = (r"the gradients are in use by a backward, update or optimizer step on another thread: give each "
                    r"thread its own Gradients")


def _busy_net_and_data():
    """A network and batch whose forward and backward take some 10 ms, their update some 1 ms."""
    net = mlpcore.Network([1024, 1024, 1], ["relu", "identity"], "mse", dtype="float64", seed=0)
    rng = np.random.default_rng(0)
    X = [rng.standard_normal((1024, 1024)) for _ in range(2)]
    return net, X, rng.standard_normal((1, 1024))


def test_two_forwards_into_one_cache_at_once_are_one_too_many(restore_threads):
    """Two Python threads forwarding into one cache at once: one is refused, not left to point the
    cache at an X whose array the other call's return lets go (a backward then read freed memory),
    and the cache's A[0] stays the X the core read."""
    mlpcore.set_num_threads(1)
    net, X, Y = _busy_net_and_data()
    cache = net.forward(X[0])
    errors = _refusals_at_once(lambda: net.forward(X[0], out=cache), lambda: net.forward(X[1].copy(), out=cache))
    assert errors and all(re.fullmatch(CACHE_IN_USE, str(error)) for error in errors)
    grads = net.backward(cache, Y)
    assert_close(grads.dW[1], np.asarray(grads.dZ[1]) @ np.asarray(cache.A[0]).T / 1024, np.float64)


@pytest.mark.parametrize("other", ["forward_into_the_cache", "backward_into_the_gradients", "update", "optimizer_step"])
def test_a_backward_is_not_joined_by_a_call_that_changes_what_it_reads_or_writes(other, restore_threads):
    """While a backward reads a cache and writes its gradients (and makes their dA[0]), a forward
    into that cache, another backward into the gradients, or an update or optimizer step reading
    them, is refused (or the backward is, if the other call came first)."""
    mlpcore.set_num_threads(1)
    net, X, Y = _busy_net_and_data()
    cache, other_cache = net.forward(X[0]), net.forward(X[1])
    grads = net.backward(cache, Y)
    optimizer = mlpcore.optim.SGD(learning_rate=0.0)
    calls = {"forward_into_the_cache": lambda: net.forward(X[1], out=cache),
             "backward_into_the_gradients": lambda: net.backward(other_cache, Y, out=grads, compute_dA0=True),
             "update": lambda: net.update(grads, 0.0),
             "optimizer_step": lambda: optimizer.step(net, grads)}
    errors = _refusals_at_once(lambda: net.backward(cache, Y, out=grads, compute_dA0=True), calls[other])
    pattern = CACHE_IN_USE if other == "forward_into_the_cache" else GRADIENTS_IN_USE
    assert errors and all(re.fullmatch(pattern, str(error)) for error in errors)
    net.backward(cache, Y, out=grads, compute_dA0=True)  # the gradients as good as new
    assert_close(grads.dA[0], np.asarray(net.W[1]).T @ np.asarray(grads.dZ[1]), np.float64)


def test_calls_that_only_read_a_cache_or_gradients_share_them(restore_threads):
    """Two backwards reading one cache into their own gradients, and two updates reading one
    gradients, run at once without refusal."""
    mlpcore.set_num_threads(1)
    net, X, Y = _busy_net_and_data()
    cache = net.forward(X[0])
    grads = [net.backward(cache, Y) for _ in range(2)]
    assert _refusals_at_once(lambda: net.backward(cache, Y, out=grads[0]), lambda: net.backward(cache, Y, out=grads[1]),
                             attempts=10) == []
    assert _refusals_at_once(lambda: net.update(grads[0], 0.0), lambda: net.update(grads[0], 0.0), attempts=10) == []


def run_in_a_fresh_python(tmp_path, script, env=None, parse=True):
    """What `script` prints (as JSON when `parse`), run in a fresh Python (whose threads are the
    script's own alone) with the environment variables `env` added; the script may fork a
    child through in_a_child(f) (a pool's) or in_a_fork(f) (os.fork alone, for a parent with
    threads of its own running), a child that hangs failing it. Fails on any other exit than 0."""
    import json
    import os
    import subprocess
    import sys
    import textwrap
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent("""
        import json, multiprocessing, os, threading, warnings
        import numpy as np
        import mlpcore
        warnings.simplefilter("ignore", DeprecationWarning)  # Python 3.12+: a fork with threads
        def in_a_child(f):
            with multiprocessing.get_context("fork").Pool(1) as pool:
                return pool.apply_async(f).get(timeout=60)  # a hung child: TimeoutError
        def in_a_fork(f):
            # f() in a child made by os.fork alone, its JSON answer back through a pipe: no pool's
            # threads and locks of the parent's in the child. A hung child: TimeoutError.
            import time
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:
                try:
                    os.write(write, json.dumps(f()).encode())
                finally:
                    os._exit(0)
            os.close(write)
            deadline = time.monotonic() + 60
            while os.waitpid(pid, os.WNOHANG)[0] == 0:
                if time.monotonic() > deadline:
                    os.kill(pid, 9)
                    os.waitpid(pid, 0)
                    raise TimeoutError("the child made by fork hung")
                time.sleep(0.01)
            with os.fdopen(read) as pipe:
                return json.loads(pipe.read())
        """) + textwrap.dedent(script))
    run = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=180,
                         env={**os.environ, **(env or {})})
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout) if parse else run.stdout


def test_a_forked_child_predicts_with_its_own_pair_thread(tmp_path):
    """After the parent's pair thread has run (no OpenMP threads yet), a child made by fork
    (which has none of the parent's threads) predicts the same labels, with a pair thread of
    its own."""
    parent, child = run_in_a_fresh_python(tmp_path, """
        def predict_in_a_loop():
            # 50 labels, then calls until the pair thread takes a half (at most 20 s): whether it did
            mlpcore.set_num_threads(2)
            net = mlpcore.Network([800, 300, 3], ["relu", "softmax"], "cce", seed=0)
            x = np.linspace(-1, 1, 800).reshape(800, 1)
            labels = [int(net.predict(x)[0]) for _ in range(50)]
            halves, deadline = mlpcore._core._pair_halves(), time.monotonic() + 20
            while mlpcore._core._pair_halves() == halves and time.monotonic() < deadline:
                net.predict(x)
            return labels, mlpcore._core._pair_halves() > halves
        import time
        print(json.dumps([predict_in_a_loop(), in_a_child(predict_in_a_loop)]))
        """)
    assert parent[1] and child == parent


def test_a_child_forked_after_a_team_runs_on_one_thread(tmp_path):
    """OpenMP's threads do not survive fork, and GCC's runtime would wait for them forever: a
    child forked after the parent ran a team predicts and trains on one thread, and refuses
    more with a clear error."""
    parent, child = run_in_a_fresh_python(tmp_path, """
        mlpcore.set_num_threads(2)
        net = mlpcore.Network([784, 256, 128, 10], ["relu", "relu", "softmax"], "cce", seed=0)
        X = np.random.default_rng(0).standard_normal((784, 300)).astype(np.float32)
        labels = net.predict(X)  # 300 examples: a team of 2
        parent = [mlpcore._core._last_team_size(), labels.tolist()]
        def child():
            answers = [mlpcore.get_num_threads(), net.predict(X).tolist()]
            try:
                mlpcore.set_num_threads(2)
            except RuntimeError as error:
                answers.append(str(error))
            net.fit(X, labels, epochs=1, batch_size=128, verbose=0)
            return answers + [mlpcore._core._last_team_size()]
        print(json.dumps([parent, in_a_child(child)]))
        """)
    assert parent[0] == 2
    threads, labels, error, team = child
    assert threads == 1 and labels == parent[1] and team == 1
    assert "fork" in error and "spawn" in error


def test_a_fit_of_steps_on_the_calling_thread_starts_no_other_thread(tmp_path):
    """On two threads, a fit whose steps are too small for a team (100-40-70 on batches of 8)
    checks its X and Y (400,000 and 280,000 entries, which a pass would share out) on the calling
    thread too: no OpenMP thread is left spinning beside its steps. A forward of the whole X (27
    million multiply-adds) then starts the second thread."""
    threads, after_fit, after_forward = run_in_a_fresh_python(tmp_path, """
        mlpcore.set_num_threads(min(2, len(os.sched_getaffinity(0))))
        net = mlpcore.Network([100, 40, 70], ["relu", "identity"], "mse", seed=0)
        rng = np.random.default_rng(0)
        X, Y = rng.standard_normal((100, 4000)).astype(np.float32), rng.standard_normal((70, 4000)).astype(np.float32)
        net.fit(X, Y, epochs=1, batch_size=8, verbose=0)
        after_fit = mlpcore._core._threads_started()
        net.forward(X)
        print(json.dumps([mlpcore.get_num_threads(), after_fit, mlpcore._core._threads_started()]))
        """)
    assert not after_fit
    assert after_forward == (threads > 1)


def test_more_threads_asked_of_openmp_than_processors_give_a_team_of_the_processors(tmp_path):
    """OMP_NUM_THREADS above the processors: mlpcore's count starts at the processors (fit's team
    wrote past its per-thread flags and crashed), and setting it back to itself is allowed."""
    threads, processors, classes = run_in_a_fresh_python(tmp_path, """
        net = mlpcore.Network([256, 512, 10], ["relu", "softmax"], "cce", seed=0)
        X = np.random.default_rng(0).standard_normal((256, 512)).astype(np.float32)
        net.fit(X, np.arange(512) % 10, epochs=2, batch_size=64, verbose=0)
        mlpcore.set_num_threads(mlpcore.get_num_threads())
        print(json.dumps([mlpcore.get_num_threads(), len(os.sched_getaffinity(0)), len(set(net.predict(X)))]))
        """, env={"OMP_NUM_THREADS": "64"})
    assert threads == min(64, processors) and classes > 1


def test_a_program_may_end_while_a_daemon_thread_is_in_a_call(tmp_path):
    """The interpreter ends a daemon thread that takes the GIL back after a call by unwinding its
    stack: the call lets it through instead of aborting the program."""
    run_in_a_fresh_python(tmp_path, """
        net = mlpcore.Network([4, 8, 1], ["relu", "sigmoid"], "bce", seed=0)
        X = np.ones((4, 3), np.float32)

        def calls():
            while True:
                net.predict(X)
        threading.Thread(target=calls, daemon=True).start()
        net.predict(X)
        """, parse=False)


def test_predict_from_another_thread_during_fit_of_the_same_network(tmp_path):
    """fit swaps the parameters with its spares at every step and frees the spares at its end;
    a predict from another thread meanwhile reads whole parameter buffers, never a freed one."""
    fits, predicts, finite = run_in_a_fresh_python(tmp_path, """
        import time
        mlpcore.set_num_threads(1)
        net = mlpcore.Network([2048, 2048, 1], ["relu", "identity"], "mse", seed=0)
        rng = np.random.default_rng(0)
        X_predict = rng.standard_normal((2048, 64)).astype(np.float32)
        X_fit, Y_fit = rng.standard_normal((2048, 2)).astype(np.float32), np.zeros((1, 2), np.float32)
        done, answers = threading.Event(), []

        def predictor():
            while not done.is_set():
                answers.append(bool(np.isfinite(net.predict(X_predict)).all()))
        thread = threading.Thread(target=predictor)
        thread.start()
        fits, start = 0, time.monotonic()
        while time.monotonic() - start < 3:
            net.fit(X_fit, Y_fit, epochs=1, batch_size=2, shuffle=False, learning_rate=1e-6, verbose=0)
            fits += 1
        done.set()
        thread.join()
        print(json.dumps([fits, len(answers), all(answers)]))
        """)
    assert fits > 0 and predicts > 0 and finite


@pytest.mark.parametrize("k, error, message", [
    (0, ValueError, "must lie in 1.."), (-1, ValueError, "must lie in 1.."), (2**31, ValueError, "got 2147483648"),
    (True, TypeError, "must be an int"), (2.0, TypeError, "must be an int"), ("2", TypeError, "must be an int")])
def test_set_num_threads_refuses_what_is_not_a_thread_count(k, error, message, restore_threads):
    with pytest.raises(error, match=message):
        mlpcore.set_num_threads(k)
    assert mlpcore.get_num_threads() == restore_threads


def mnist_shaped(m=512, seed=1):
    """A 784-256-128-10 network, X (784, m) float32 and labels, for the tests of fits and threads."""
    X = np.random.default_rng(0).standard_normal((784, m)).astype(np.float32)
    return mlpcore.Network([784, 256, 128, 10], ["relu", "relu", "softmax"], "cce", seed=seed), X, np.arange(m) % 10


@pytest.mark.parametrize("call", ["fit from its hook", "fit from a callback", "update from its hook",
                                  "optimizer step from its hook"])
def test_a_network_trains_in_one_fit_at_a_time(call):
    """A second fit of a network during its fit (here from the hook or a callback, as from another
    thread), or an update or optimizer step during an epoch, is refused: two fits traded the
    parameter buffers, and the network's views were left on a freed one."""
    net, X, y = mnist_shaped()
    grads = net.backward(net.forward(X[:, :4]), y[:4])
    optimizer = mlpcore.optim.SGD(0.1)
    inner = {"fit from its hook": lambda: net.fit(X, y, epochs=1, verbose=0),
             "fit from a callback": lambda: net.fit(X, y, epochs=1, verbose=0),
             "update from its hook": lambda: net.update(grads, 0.1),
             "optimizer step from its hook": lambda: optimizer.step(net, grads)}[call]
    hooks = {"callbacks": [lambda epoch, logs: inner()]} if "callback" in call else {"gradient_hook": lambda g: inner()}
    with pytest.raises(RuntimeError, match="fit of this network is running"):
        net.fit(X, y, epochs=2, batch_size=128, verbose=0, **hooks)
    assert np.shares_memory(net.W[1], net._core.params) and np.all(np.isfinite(net.params))
    net.update(grads, 0.1)  # once the fit has ended
    net.fit(X, y, epochs=1, batch_size=128, verbose=0)


def test_the_core_refuses_a_second_epoch_of_a_network_in_an_epoch():
    """The core's own guard, for callers of its Trainer (Network.fit refuses before it): an epoch
    of a second trainer of the network, started from the first's hook, raises and leaves the
    network on its own buffers."""
    net, X, y = mnist_shaped(m=256)
    state = _core.OptimizerState32("sgd", {}, net.params.size)
    second = _core.Trainer32(net._core, "sgd", {}, state, 128, 256)
    errors = []

    def hook(g):
        try:
            second.epoch(X, y, 128, 0.01, 0.0, 0.0, 0.0, False, 0, 0, None, False, None, False)
        except RuntimeError as error:
            errors.append(str(error))
    first = _core.Trainer32(net._core, "sgd", {}, _core.OptimizerState32("sgd", {}, net.params.size), 128, 256)
    result = first.epoch(X, y, 128, 0.01, 0.0, 0.0, 0.0, False, 0, 0, hook, False, None, False)
    assert result["steps"] == 2 and len(errors) == 2 and "a fit of this network is running" in errors[0]
    assert np.shares_memory(net.W[1], net._core.params)
    assert second.epoch(X, y, 128, 0.01, 0.0, 0.0, 0.0, False, 0, 0, None, False, None, False)["steps"] == 2


def test_the_core_refuses_a_backward_into_a_trainers_gradients_during_its_epoch():
    """The core's guard for callers of its Trainer: the team writes trainer.gradients() in each step."""
    net, X, y = mnist_shaped(m=256)
    cache = net.forward(X[:, :128], training=True)
    trainer = _core.Trainer32(net._core, "sgd", {}, _core.OptimizerState32("sgd", {}, net.params.size), 128, 256)
    errors = []

    def hook(g):
        try:
            net._core.backward(cache._core, y[:128], trainer.gradients(), False, True)
        except RuntimeError as error:
            errors.append(str(error))
    assert trainer.epoch(X, y, 128, 0.01, 0.0, 0.0, 0.0, False, 0, 0, hook, False, None, False)["steps"] == 2
    assert len(errors) == 2 and "the gradients are in use" in errors[0]
    assert net._core.backward(cache._core, y[:128], trainer.gradients(), False, True)  # after the epoch


@pytest.mark.parametrize("batch_size, m", [(1, 8), (4, 1)])
def test_the_core_trainer_refuses_batch_norm_on_minibatches_of_one(batch_size, m):
    """Network.fit refuses it first; the core's Trainer took an epoch of m = 1, whose batch variance
    of 0 made the running variance NaN (1/0 * 0)."""
    net = mlpcore.Network([3, 4, 2], ["tanh", "softmax"], "cce", batch_norm=[True, False], seed=0)
    with pytest.raises(ValueError, match="batch normalisation needs minibatches of at least 2 examples"):
        _core.Trainer32(net._core, "sgd", {}, _core.OptimizerState32("sgd", {}, net.params.size), batch_size, m)


def test_an_optimizer_step_from_another_thread_during_a_fit_is_refused_as_such():
    """opt.step(net, grads) while net.fit(optimizer=opt) runs on another thread: a RuntimeError
    saying so, every time. The step read the optimizer's state while the fit swapped it (the
    state was refused as made for other hyper-parameters, or read torn)."""
    net, X, y = mnist_shaped(m=256)
    grads = net.backward(net.forward(X[:, :4]), y[:4])
    opt = mlpcore.optim.Adam(1e-4)
    opt.step(net, grads)
    fitting, errors = threading.Event(), []

    def hammer():
        fitting.wait()
        while fitting.is_set():
            try:
                opt.step(net, grads)
            except RuntimeError as error:
                errors.append(str(error))
            except ValueError as error:
                errors.append(f"ValueError: {error}")

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        net.fit(X, y, epochs=6, batch_size=16, optimizer=opt, verbose=0,
                callbacks=[lambda epoch, logs: fitting.set()])
    finally:
        fitting.clear()
        thread.join()
    assert errors and all("a fit of this network is running" in error for error in errors), set(errors)
    assert opt.t >= 5 * 16 and np.all(np.isfinite(net.params))


def test_training_forwards_of_threads_at_once_are_all_counted():
    """Each training forward draws its dropout masks from the count of training forwards: four
    threads' forwards at once each count, so no two draw the same masks."""
    net = mlpcore.Network([20, 30, 2], ["relu", "identity"], "mse", dropout=[0.5], seed=0)
    X = np.random.default_rng(0).standard_normal((20, 2)).astype(np.float32)
    start = net._core.training_forwards
    threads = [threading.Thread(target=lambda: [net.forward(X, out=mlpcore.Cache(net, 2)) for _ in range(2000)])
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert net._core.training_forwards - start == 8000


@pytest.mark.parametrize("t", [-1, 2**62, 2**63 - 1])
def test_an_optimizer_state_takes_no_step_count_that_steps_could_overflow(t):
    state = _core.OptimizerState32("adam", {}, 10)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 2\^62\)"):
        state.t = t
    state.t = 2**62 - 1
    assert state.t == 2**62 - 1


def test_threads_updating_one_network_lose_no_update():
    """update writes the parameters under the exclusive lock: two threads' 100 updates each
    equal 200 in a row (the same gradient each time, so the order does not matter)."""
    n, activations = [784, 512, 512, 10], ["relu", "relu", "softmax"]
    X = np.random.default_rng(0).standard_normal((784, 64))
    nets = [mlpcore.Network(n, activations, "cce", dtype="float64", seed=0) for _ in range(2)]
    grads = [net.backward(net.forward(X), np.arange(64) % 10) for net in nets]
    threads = [threading.Thread(target=lambda: [nets[0].update(grads[0], 1e-3) for _ in range(100)])
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for _ in range(200):
        nets[1].update(grads[1], 1e-3)
    np.testing.assert_array_equal(nets[0].params, nets[1].params)


def test_optimizer_state_seen_during_a_fit_is_the_states_own_buffers():
    """Optimizer.state shows the buffers the state keeps, also when read during a fit, whose
    steps swap them with spares that it frees at its end."""
    net, X, y = mnist_shaped()
    seen = []
    net.fit(X, y, epochs=1, batch_size=128, optimizer="adam", verbose=0,
            gradient_hook=lambda g: seen.append(net.optimizer.state))
    assert len(seen) == 4
    for buffers in seen:
        for view, kept in zip(buffers, net.optimizer.state):
            assert np.shares_memory(view, kept) and np.array_equal(view, kept)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("hook", [False, True])
def test_a_program_may_end_while_a_daemon_thread_fits(tmp_path, hook, threads):
    """At exit, a fit in a daemon thread stops after its step before the interpreter shuts down:
    its hook took the GIL during the shut-down and aborted the program ("FATAL: exception not
    rethrown"), and a product ran while OpenBLAS freed its buffers."""
    out = run_in_a_fresh_python(tmp_path, f"""
        import time
        mlpcore.set_num_threads({threads})
        X = np.random.default_rng(0).standard_normal((784, 4096)).astype(np.float32)
        net = mlpcore.Network([784, 256, 128, 10], ["relu", "relu", "softmax"], "cce", seed=0)
        hook = (lambda g: None) if {hook} else None
        threading.Thread(target=lambda: net.fit(X, np.arange(4096) % 10, epochs=1000, batch_size=128, verbose=0,
                                                gradient_hook=hook), daemon=True).start()
        time.sleep(0.3)
        print("the main thread ends")
        """, parse=False)
    assert out == "the main thread ends\n"


def test_a_child_forked_while_another_thread_predicts_trains(tmp_path):
    """A fork while another thread is inside predict leaves that reader in the parameters' lock of
    the child, where no thread will ever leave it: the child's lock starts afresh, and its fit
    (which takes the lock exclusively) ends instead of waiting forever."""
    costs = run_in_a_fresh_python(tmp_path, """
        mlpcore.set_num_threads(1)
        X = np.random.default_rng(0).standard_normal((784, 512)).astype(np.float32)
        net = mlpcore.Network([784, 256, 128, 10], ["relu", "relu", "softmax"], "cce", seed=1)
        done = threading.Event()

        def predictor():
            while not done.is_set():
                net.predict(X[:, :128])
        thread = threading.Thread(target=predictor)
        thread.start()
        def child():
            return net.fit(X, np.arange(512) % 10, epochs=1, batch_size=64, verbose=0)["cost"][0]
        costs = [in_a_fork(child) for _ in range(4)]
        done.set()
        thread.join()
        print(json.dumps(costs))
        """)
    assert len(costs) == 4 and all(np.isfinite(costs))


def test_a_program_may_end_while_a_daemon_thread_calls_in_a_loop(tmp_path):
    """At exit, other threads' new calls are refused and the calls in flight end before the
    interpreter shuts down: a product ran while OpenBLAS freed its buffers (a segfault), and a
    daemon thread calling in a loop kept the exit waiting."""
    out = run_in_a_fresh_python(tmp_path, """
        import time
        mlpcore.set_num_threads(1)
        X = np.random.default_rng(0).standard_normal((784, 4000)).astype(np.float32)
        net = mlpcore.Network([784, 1024, 1024, 10], ["relu", "relu", "softmax"], "cce", seed=0)

        def calls():
            while True:
                net.predict(X)
        threading.Thread(target=calls, daemon=True).start()
        time.sleep(0.3)
        print("the main thread ends")
        """, parse=False)
    assert out == "the main thread ends\n"


def test_a_child_forked_during_a_call_or_a_fit_of_another_thread(tmp_path):
    """A child made by fork has none of its parent's other threads: their calls in flight are not
    its own (its exit would wait for them), and a network they were fitting is refused for
    training with a clear error, its parameters perhaps those of a step in progress."""
    in_flight, fit_error, update_error = run_in_a_fresh_python(tmp_path, """
        import sys
        mlpcore.set_num_threads(1)
        X = np.random.default_rng(0).standard_normal((784, 512)).astype(np.float32)
        y = np.arange(512) % 10
        net = mlpcore.Network([784, 256, 128, 10], ["relu", "relu", "softmax"], "cce", seed=0)
        grads = net.backward(net.forward(X[:, :4]), y[:4])
        started, forked = threading.Event(), threading.Event()

        def hook(g):
            started.set()
            forked.wait()
        fitting = threading.Thread(target=lambda: net.fit(X, y, epochs=1, batch_size=512, verbose=0,
                                                          gradient_hook=hook))
        fitting.start()
        started.wait()
        read, write = os.pipe()
        if os.fork() == 0:
            answers = [mlpcore._core._calls_in_flight()]
            for call in (lambda: net.fit(X, y, epochs=1, verbose=0), lambda: net.update(grads, 0.1)):
                try:
                    call()
                    answers.append("")
                except RuntimeError as error:
                    answers.append(str(error))
            os.write(write, json.dumps(answers).encode())
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as pipe:
            answers = pipe.read()
        forked.set()
        fitting.join()
        print(answers)
        """)
    assert in_flight == 0
    for error in (fit_error, update_error):
        assert "forked while a thread of its parent was fitting this network" in error


def test_gradient_views_show_each_layer_of_a_flat_gradient():
    """What a gradient_hook gets is laid out like net.params: gradient_views shows its dW[l],
    db[l], dgamma[l], dbeta[l], as views that write into it."""
    rng = np.random.default_rng(4)
    net = mlpcore.Network([3, 5, 4, 2], ["relu", "tanh", "identity"], "mse", batch_norm=[True, False, False], seed=1)
    X, Y = rng.standard_normal((3, 9)).astype(np.float32), rng.standard_normal((2, 9)).astype(np.float32)
    grads = net.backward(net.forward(X), Y)
    flat = reference.flat_parameters(grads.dW, grads.db, grads.dgamma, grads.dbeta)
    views = net.gradient_views(flat)
    for name in ("dW", "db", "dgamma", "dbeta"):
        assert views[name].indices == getattr(grads, name).indices
        for l in views[name]:
            np.testing.assert_array_equal(views[name][l], getattr(grads, name)[l])
            assert np.shares_memory(views[name][l], flat)
    views["db"][3][1, 0] = 7
    assert flat[-1] == 7  # b[L] ends the buffer
    for bad in (flat[:-1], flat.astype(np.float64), list(flat)):
        with pytest.raises(ValueError, match=r"flat must be a 1-D float32 array of net\.params' size \(64\), got a"):
            net.gradient_views(bad)
