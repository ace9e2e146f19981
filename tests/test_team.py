"""fit's steps on a team of threads, which networks with large enough steps take when
set_num_threads(k > 1): each thread runs forward and backward on its share of the batch's
columns, the gradient of its share of each dW[l] and the optimizer on the entries of the
gradient it computed. The same numbers as the reference, and as one thread, with batch
normalisation, dropout, L2, clipping, the gradient hook, shuffling, labels, C-ordered data,
uneven batches and layers a thread has no share of; divergence and a failing hook leave the
network as after the last good step. Large calls of forward and backward from Python take a
team the same way, and an optimizer's step outside fit gives the same numbers on any thread
count. BLAS's own pool stays at one thread; OpenMP's settings stay the user's.
"""

import numpy as np
import pytest

import mlpcore
from mlpcore import _core, reference
from conftest import assert_close
from test_training import OPTIMIZER_IDS, OPTIMIZERS, Twin, optimizer_spec

DTYPE_IDS = {"ids": lambda d: np.dtype(d).name}
# 128 x (40 x 96 + 96 x 64 + 64 x 3) = 1.3M multiply-adds a step: large enough for a team
BIG = [40, 96, 64, 3]


def threads_for(net, batch_size, m):
    """The threads the core's trainer gives steps of batch_size examples of net."""
    suffix = "32" if net.dtype == np.float32 else "64"
    state = getattr(_core, "OptimizerState" + suffix)("sgd", {}, net.params.size)
    trainer = getattr(_core, "Trainer" + suffix)(net._core, "sgd", {}, state, batch_size, m)
    return trainer.threads(batch_size)


def test_large_steps_take_a_team_and_small_ones_one_thread(restore_threads):
    big = mlpcore.Network(BIG, ["relu", "relu", "softmax"], "cce", seed=0)
    small = mlpcore.Network([2, 16, 16, 1], ["tanh", "tanh", "sigmoid"], "bce", seed=0)
    mlpcore.set_num_threads(2)
    assert threads_for(big, 128, 1000) == 2
    assert threads_for(big, 64, 1000) == 1  # 0.65M multiply-adds
    assert threads_for(small, 1000, 1000) == 1
    mlpcore.set_num_threads(1)
    assert threads_for(big, 128, 1000) == 1


@pytest.mark.parametrize("dtype", [np.float64, np.float32], **DTYPE_IDS)
@pytest.mark.parametrize("name, l2, clipping", [
    ("sgd", 0.0, "none"), ("momentum", 0.3, "norm"), ("rmsprop", 0.0, "value"), ("adam", 0.3, "both")])
@pytest.mark.parametrize("cost", ["mse", "bce", "cce"])
def test_team_steps_match_the_reference(cost, name, l2, clipping, dtype, restore_threads):
    mlpcore.set_num_threads(2)
    twin = Twin(21, cost, dtype=dtype, n=BIG, batch_norm=[True, False, True], m=128)
    assert threads_for(twin.net, 128, 128) == 2
    reference_twin = twin.in_float64()  # float32's reference in float64, the core's rounding aside
    clip_norm = 0.5 if clipping in ("norm", "both") else None
    clip_value = 0.01 if clipping in ("value", "both") else None
    spec, hyper = optimizer_spec(name)
    state = None
    for _ in range(2):  # two fits of one step: the second continues the optimizer state
        history = twin.net.fit(twin.X, twin.Y, epochs=1, batch_size=None, shuffle=False, optimizer=spec,
                               learning_rate=0.01, l2=l2, clip_norm=clip_norm, clip_value=clip_value, verbose=0)
        J, state = reference_twin.step(name, hyper, 0.01, state, l2=l2, clip_norm=clip_norm,
                                       clip_value=clip_value)
        # float32: rmsprop's and adam's first steps are about lr sign(g), which rounding near g = 0 moves
        reference_twin.assert_matches_net(dtype=dtype, params_tol=None if dtype == np.float64 else
                                          {"rtol": 1e-4, "atol": 1e-4})
        assert history["cost"] == [pytest.approx(J, rel=1e-12 if dtype == np.float64 else 1e-5)]


def team_data(seed, n_hidden, cost, dtype, layout, m=301):
    """n = n[0..L-1] of n_hidden and n[L] for cost, and X (n[0], m) and Y of m random examples
    in `layout` (cce: class labels)."""
    rng = np.random.default_rng(seed)
    n = [*n_hidden, 4 if cost == "cce" else 2]
    X = np.asarray(rng.standard_normal((n[0], m)), dtype=dtype, order=layout)
    if cost == "cce":
        return n, X, rng.integers(0, n[-1], m)
    Y = rng.integers(0, 2, (n[-1], m)) if cost == "bce" else rng.standard_normal((n[-1], m))
    return n, X, np.asarray(Y, dtype=dtype, order=layout)


def dropout_net(n, cost, dtype, batch_norm=True):
    """relu, tanh and cost's output layer; dropout 0.2 and 0.1 on the hidden layers, batch norm on the first."""
    output = {"mse": "identity", "bce": "sigmoid", "cce": "softmax"}[cost]
    return mlpcore.Network(n, ["relu", "tanh", output], cost, dtype=np.dtype(dtype).name, seed=0,
                           dropout=[0.2, 0.1], batch_norm=[batch_norm, False, False])


def team_and_one_thread(train):
    """train(), as a team of 2 threads and as one thread: the two results."""
    mlpcore.set_num_threads(2)
    team = train()
    mlpcore.set_num_threads(1)
    return team, train()


@pytest.mark.parametrize("dtype", [np.float64, np.float32], **DTYPE_IDS)
@pytest.mark.parametrize("layout", ["F", "C"])
@pytest.mark.parametrize("cost", ["mse", "bce", "cce"])
def test_a_team_fits_as_one_thread_does(cost, layout, dtype, restore_threads):
    """Dropout, batch norm, shuffling, L2 and Adam; batches of 101 (odd, split unevenly) and a
    last one of 99; X (and dense Y) in either memory order; cce from labels."""
    n, X, Y = team_data(5, [50, 128, 96], cost, dtype, layout)

    def train():
        net = dropout_net(n, cost, dtype)
        history = net.fit(X, Y, epochs=2, batch_size=101, optimizer="adam", learning_rate=0.01, l2=0.1,
                          seed=3, verbose=0)
        return net, history["cost"]
    mlpcore.set_num_threads(2)
    assert threads_for(train()[0], 101, X.shape[1]) == 2
    (team, team_costs), (alone, costs) = team_and_one_thread(train)
    rtol = 1e-9 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(team_costs, costs, rtol=rtol)
    np.testing.assert_allclose(team.params, alone.params, rtol=rtol, atol=rtol * np.max(np.abs(alone.params)))
    for l in alone.running_mean.indices:
        np.testing.assert_allclose(team.running_mean[l], alone.running_mean[l], rtol=rtol, atol=rtol)
        np.testing.assert_allclose(team.running_var[l], alone.running_var[l], rtol=rtol, atol=rtol)
    assert not np.array_equal(team.params, dropout_net(n, cost, dtype).params)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_team_updates_the_layers_a_thread_has_no_share_of(optimizer, restore_threads):
    """n[0] = 1 and n[L] = 1: the first thread of two computes no column of dW[1] and no row of
    db[L], and the second updates them alone; every parameter as one thread has it."""
    rng = np.random.default_rng(6)
    n, X, Y = [1, 512, 512, 1], rng.standard_normal((1, 256)), rng.standard_normal((1, 256))

    def train():
        net = mlpcore.Network(n, ["tanh", "relu", "identity"], "mse", dtype="float64", seed=0)
        net.fit(X, Y, epochs=2, batch_size=128, optimizer=optimizer, learning_rate=0.01, seed=3, verbose=0)
        return net
    mlpcore.set_num_threads(2)
    assert threads_for(train(), 128, 256) == 2
    team, alone = team_and_one_thread(train)
    untrained = mlpcore.Network(n, ["tanh", "relu", "identity"], "mse", dtype="float64", seed=0)
    for l in (1, 3):
        assert not np.any(team.W[l] == untrained.W[l]) and not np.any(team.b[l] == untrained.b[l])
    np.testing.assert_allclose(team.params, alone.params, rtol=1e-10, atol=1e-12)


def test_calls_take_a_team_from_2_23_multiply_adds_and_16_examples_a_thread(restore_threads):
    """forward and backward called from Python: a team when m times the weights reaches 2^23
    multiply-adds, with at least 16 examples a thread; one thread below either."""
    narrow = mlpcore.Network([100, 200, 96, 4], ["relu", "tanh", "softmax"], "cce", seed=0)  # 39,584 weights
    wide = mlpcore.Network([3000, 3000, 3], ["relu", "softmax"], "cce", seed=0)
    mlpcore.set_num_threads(2)
    assert narrow._core.threads(212) == 2 and narrow._core.threads(211) == 1  # 8.39M, 8.35M multiply-adds
    assert wide._core.threads(32) == 2 and wide._core.threads(31) == 1  # 16 examples a thread
    mlpcore.set_num_threads(1)
    assert narrow._core.threads(10000) == 1


@pytest.mark.parametrize("dtype", [np.float64, np.float32], **DTYPE_IDS)
def test_element_wise_passes_shared_out_give_one_threads_numbers_to_the_bit(dtype, restore_threads):
    """Below a team's work (2^23 multiply-adds), a call's element-wise passes of 2^18 entries and
    more are shared out by themselves, each thread a run of whole columns whose entries meet the
    vector loop's body and tail in other places than on one thread: the activations, their
    derivatives (with dropout masks) and so the gradients are the same to the bit."""
    m = 20001  # 16 m = 320,016 entries a hidden layer; 304 m = 6.1M multiply-adds a call
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2, m)).astype(dtype)
    Y = (rng.random((1, m)) < 0.5).astype(dtype)

    def call():
        net = mlpcore.Network([2, 16, 16, 1], ["tanh", "elu", "sigmoid"], "bce", dtype=np.dtype(dtype).name,
                              dropout=[0.2, 0.1], seed=0)
        assert net._core.threads(m) == 1 and 16 * m >= 2**18
        cache = net.forward(X)
        return cache, net.backward(cache, Y)
    (team, team_grads), (alone, grads) = team_and_one_thread(call)
    for l in (1, 2, 3):
        for got, expected in ((team.Z[l], alone.Z[l]), (team.A[l], alone.A[l]), (team_grads.dZ[l], grads.dZ[l]),
                              (team_grads.dW[l], grads.dW[l]), (team_grads.db[l], grads.db[l])):
            np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], **DTYPE_IDS)
@pytest.mark.parametrize("layout", ["F", "C"])
@pytest.mark.parametrize("cost", ["mse", "bce", "cce"])
@pytest.mark.parametrize("batch_norm", [True, False], ids=["batch-norm-and-dA0", "plain"])
def test_forward_and_backward_calls_on_a_team_equal_one_thread(batch_norm, cost, layout, dtype, restore_threads):
    """A large call of forward or backward from Python runs on a team: with dropout, and with
    or without batch norm and dA[0], on 301 examples (split unevenly) in either memory order,
    the same cache, gradients and running statistics as one thread, and the same dropout masks.
    (Without batch norm, whose syncs would hide it, a missing sync between the deltas and dW
    shows.)"""
    n, X, Y = team_data(8, [100, 200, 96], cost, dtype, layout)
    bn_layers = [1] if batch_norm else []

    def call():
        net = dropout_net(n, cost, dtype, batch_norm)
        cache = net.forward(X)
        forward_team = _core._last_team_size()
        grads = net.backward(cache, Y, compute_dA0=batch_norm)
        return net, cache, grads, (forward_team, _core._last_team_size())
    (team_net, team, team_grads, team_sizes), (net, alone, grads, sizes) = team_and_one_thread(call)
    assert team_sizes == (2, 2) and sizes == (1, 1)
    for l in (1, 2):
        np.testing.assert_array_equal(team.D[l], alone.D[l])
    for name, layers in (("Z", range(1, 4)), ("A", range(1, 4)), ("Z_norm", bn_layers), ("Z_tilde", bn_layers)):
        for l in layers:
            assert_close(getattr(team, name)[l], getattr(alone, name)[l], dtype)
    dA = range(0 if batch_norm else 1, 4 if cost == "mse" else 3)
    for name, layers in (("dW", range(1, 4)), ("db", range(1, 4)), ("dZ", range(1, 4)), ("dA", dA),
                         ("dgamma", bn_layers), ("dbeta", bn_layers)):
        for l in layers:
            assert_close(getattr(team_grads, name)[l], getattr(grads, name)[l], dtype)
    for l in bn_layers:
        assert_close(team_net.running_mean[l], net.running_mean[l], dtype)
        assert_close(team_net.running_var[l], net.running_var[l], dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], **DTYPE_IDS)
def test_a_team_s_rows_of_w_on_the_tiles_match_the_reference(dtype, restore_threads):
    """A call's layer shared out by rows whose half of W[l] (500 of its 1,000 rows, read with
    W[l]'s leading dimension of 1,000; 400 KB in float64) fits in half of L2 (where it does): on
    AVX-512, each thread's product runs on the core's own tiles (two products), as dW[l] = (1/m) dZ[l]
    A[l-1]^T does; so does each thread's share of the columns of layer 2 (10 rows) in float64,
    where they are a vector and more (two more products); Z[l] and dW[l] against the reference."""
    n, m = [100, 1000, 10], 96
    assert 1000 * 100 * m >= 2**23 and 1000 >= 2 * m
    rng = np.random.default_rng(5)
    X, y = rng.standard_normal((n[0], m)).astype(dtype), rng.integers(0, 10, m)
    net = mlpcore.Network(n, ["tanh", "softmax"], "cce", dtype=dtype, seed=2)
    W = {l: np.array(net.W[l]) for l in (1, 2)}
    Z, A = reference.forward(W, {l: np.array(net.b[l]) for l in (1, 2)}, X, net.activations)
    mlpcore.set_num_threads(2)
    before = _core._tile_products()
    cache = net.forward(X)
    assert _core._last_team_size() == 2
    float64 = dtype == np.float64
    layer_1_on_tiles = _core._tile_parts(float64, 500, m, 100, 1) > 0  # each thread's rows (an L2 of 800 KB)
    layer_2_on_tiles = _core._tile_parts(float64, 10, m // 2, 1000, 1) > 0
    assert layer_2_on_tiles == (_core._avx512_kernels() and float64)
    assert _core._tile_products() - before == 2 * layer_1_on_tiles + 2 * layer_2_on_tiles
    grads = net.backward(cache, y)
    expected = reference.backward(W, Z, A, reference.one_hot(y, 10), net.activations, "cce")
    for l in (1, 2):
        assert_close(cache.Z[l], Z[l], dtype)
        assert_close(grads.dW[l], expected["dW"][l], dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], **DTYPE_IDS)
def test_a_large_layer_shared_out_by_rows_equals_one_thread_and_the_reference(dtype, restore_threads):
    """A plain layer's product of 2^22 multiply-adds and more, with twice as many rows as columns
    and more, is shared out by the rows of its result (each thread packing half of W[l], not all
    of it for half the columns), in forward and for dA[l-1]; with a sync before (but for layer 1,
    whose X is there from the start: in a fit, each thread gathers its columns of a shuffled
    batch before the step's first sync) and after. The 1,499 rows of dA[0] and of layer 2 split
    unevenly (750 + 749). The calls and a fit (two shuffled full-batch steps, whose team of two
    shares layers 1 and 2 out by W[l]'s columns instead, adding the two threads' parts of Z[l])
    against one thread's, and the calls of float64 against the reference. In float32, a team's
    and one thread's sums of 1,500 terms may go in different orders (on AVX-512, the team's Z[1]
    and Z[2] on the tiles in parts of k, each thread's 750 rows of W[l] beyond half of L2, and
    one thread's on BLAS) and stray some 1e-6 of the largest |Z[l]| apart, which A[l] =
    tanh(Z[l]) or relu(Z[l]) inherits, beyond the float32 tolerance of A[l] near 0: A[l] is
    compared within the tolerance of Z[l]."""
    n, m = [1499, 1500, 1499, 10], 128
    assert 1500 * 1499 * m >= 2**22 and 1499 >= 2 * m and 10 * 1499 * m < 2**22
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((n[0], m)).astype(dtype), rng.integers(0, 10, m)

    def call():
        net = mlpcore.Network(n, ["tanh", "relu", "softmax"], "cce", dtype=dtype, seed=1)
        cache = net.forward(X)
        grads = net.backward(cache, y, compute_dA0=True)
        return net, cache, grads
    (_, team, team_grads), (net, alone, grads) = team_and_one_thread(call)
    W = {l: np.array(net.W[l], np.float64) for l in (1, 2, 3)}
    Z, A = reference.forward(W, {l: np.array(net.b[l], np.float64) for l in (1, 2, 3)}, X.astype(np.float64),
                             net.activations)
    ref_grads = reference.backward(W, Z, A, reference.one_hot(y, 10), net.activations, "cce", compute_dA0=True)
    def same(of_team, of_one_thread, of_reference):
        assert_close(of_team, of_one_thread, dtype)
        if dtype == np.float64:
            assert_close(of_team, of_reference, dtype)
    for l in (1, 2, 3):
        same(team.Z[l], alone.Z[l], Z[l])
        if dtype == np.float64 or l == 3:  # softmax's A[3] within the usual tolerance
            same(team.A[l], alone.A[l], A[l])
        else:
            np.testing.assert_allclose(team.A[l], alone.A[l], rtol=1e-4, atol=1e-6 * np.max(np.abs(alone.Z[l])))
        for name in ("dW", "db", "dZ"):
            same(getattr(team_grads, name)[l], getattr(grads, name)[l], ref_grads[name][l])
    for l in (0, 1, 2):
        same(team_grads.dA[l], grads.dA[l], ref_grads["dA"][l])

    def fit():
        net = mlpcore.Network(n, ["tanh", "relu", "softmax"], "cce", dtype=dtype, seed=1)
        before = _core._inputs_forwards()
        net.fit(X, y, epochs=2, batch_size=m, shuffle=True, seed=0, learning_rate=0.05, verbose=0)
        return net, _core._inputs_forwards() - before
    (team_fit, team_layers), (alone_fit, layers) = team_and_one_thread(fit)
    assert (team_layers, layers) == (2 * 2, 0)  # layers 1 and 2 of each step
    rtol = 1e-9 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(team_fit.params, alone_fit.params, rtol=rtol,
                               atol=rtol * np.max(np.abs(alone_fit.params)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32], **DTYPE_IDS)
@pytest.mark.parametrize("n1, m, by_columns", [(512, 128, True), (1024, 128, False), (512, 256, False)])
def test_a_team_s_dA_through_W_transposed_on_the_tiles_equals_one_thread_and_the_reference(
        n1, m, by_columns, dtype, restore_threads):
    """dA[1] = W[2]^T dZ[2] of twice as many rows as the batch's columns and more, which by_rows
    alone would share out by rows (float64 too, from 512 rows): where the core transposes W[2]
    (64 x n1) for the tiles (on AVX-512, W[2] within an eighth of L2: on a 2 MiB L2, all but
    float64's 64 x 1024), below 2^23 multiply-adds (512 rows on 128 columns, 2^22) each thread
    transposes all of W[2] and multiplies its own columns on the tiles; from 2^23 (1,024 rows on
    128 columns, 512 on 256) by rows, each thread's half of W[2] on BLAS. dA[2] = W[3]^T dZ[3]
    (64 rows on a k of 10) goes by columns through the tiles either way, and dW[1] and dW[2]
    take the tiles on each thread, as does dW[3] in float64 (10 rows, a vector and more). The
    calls on two threads against one thread's and the reference."""
    n = [256, n1, 64, 10]
    assert (n1 * 64 * m < 2**23) == by_columns and n1 * 64 * m >= 2**22 and n1 >= 2 * m
    rng = np.random.default_rng(6)
    X, y = rng.standard_normal((n[0], m)).astype(dtype), rng.integers(0, 10, m)

    def call():
        net = mlpcore.Network(n, ["tanh", "relu", "softmax"], "cce", dtype=dtype, seed=4)
        cache = net.forward(X)
        before = _core._tile_products()
        grads = net.backward(cache, y)
        return net, grads, _core._tile_products() - before, _core._last_team_size()
    (_, team_grads, team_tiles, team_size), (net, grads, tiles, size) = team_and_one_thread(call)
    assert (team_size, size) == (2, 1)
    float64 = dtype == np.float64
    dW3_alone, dW3_shared = (_core._tile_parts(float64, 10, units, m, 64) > 0 for units in (64, 32))
    if _core._transposes_for_tiles(float64, n1, m // 2, 64):
        # one thread: dW[1], dW[2], dA[2], dA[1] (and dW[3]); two: each of theirs, but dA[1] by rows
        assert (tiles, team_tiles) == (4 + dW3_alone, 2 * (3 + dW3_shared) + (2 if by_columns else 0))
    else:  # dA[1] on BLAS either way; the other products on the tiles or not, on each thread
        assert team_tiles == 2 * tiles
    W = {l: np.array(net.W[l], np.float64) for l in (1, 2, 3)}
    Z, A = reference.forward(W, {l: np.array(net.b[l], np.float64) for l in (1, 2, 3)}, X.astype(np.float64),
                             net.activations)
    expected = reference.backward(W, Z, A, reference.one_hot(y, 10), net.activations, "cce")
    for l in (1, 2):
        assert_close(team_grads.dA[l], grads.dA[l], dtype)
        assert_close(team_grads.dA[l], expected["dA"][l], dtype)
    for l in (1, 2, 3):
        assert_close(team_grads.dW[l], expected["dW"][l], dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], **DTYPE_IDS)
@pytest.mark.parametrize("output, cost", [("identity", "mse"), ("sigmoid", "bce")])
def test_a_fit_sharing_its_output_layer_out_by_inputs_equals_one_thread(output, cost, dtype, restore_threads):
    """An output layer without softmax whose product is tall (784 rows on batches of 101, 2^22
    multiply-adds and more): a fit's team of two shares it out by W[L]'s columns, each thread
    adding the two parts in its columns of Z[L] (51 and 50 of them) and applying g into A[L],
    which the costs and deltas then read with no sync between; a last batch of one example goes
    by columns. Three epochs of an autoencoder-shaped net as one thread's, which takes no such
    path."""
    n = [784, 96, 784]
    assert 784 * 96 * 101 >= 2**22 and 784 >= 2 * 101
    rng = np.random.default_rng(5)
    X = rng.random((n[0], 203)).astype(dtype)

    def fit():
        net = mlpcore.Network(n, ["relu", output], cost, dtype=np.dtype(dtype).name, seed=2)
        before = _core._inputs_forwards()
        history = net.fit(X, X, epochs=3, batch_size=101, seed=1, learning_rate=0.05, verbose=0)
        return net, history["cost"], _core._inputs_forwards() - before
    mlpcore.set_num_threads(2)
    assert threads_for(fit()[0], 101, X.shape[1]) == 2
    (team, team_costs, team_layers), (alone, costs, layers) = team_and_one_thread(fit)
    assert (team_layers, layers) == (3 * 2, 0)  # layer 2 of the two full batches of each epoch
    rtol = 1e-9 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(team_costs, costs, rtol=rtol)
    np.testing.assert_allclose(team.params, alone.params, rtol=rtol, atol=rtol * np.max(np.abs(alone.params)))
    assert costs[-1] < costs[0]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], **DTYPE_IDS)
def test_a_fit_sharing_a_layer_out_by_inputs_before_batch_norm_and_dropout_equals_one_thread(dtype, restore_threads):
    """Layer 1 (512 x 784 on batches of 128) shared out by W[1]'s columns, with no sync after it,
    then a layer with batch norm and dropout (whose product reads each thread's columns of A[1],
    and whose statistics sync first) and a softmax layer: a fit on two threads as on one, taking
    that path for each batch, the last of 44 examples too. (Plain SGD: Adam would turn the
    rounding of a gradient near 0, which the order of the sums decides, into a step of lr.)"""
    n, X, y = team_data(9, [784, 512, 64], "cce", dtype, "F", m=300)
    assert 512 * 784 * 128 >= 2**22 and 512 >= 2 * 128

    def fit():
        net = mlpcore.Network(n, ["relu", "tanh", "softmax"], "cce", dtype=np.dtype(dtype).name, seed=0,
                              dropout=[0, 0.2], batch_norm=[False, True, False])
        before = _core._inputs_forwards()
        history = net.fit(X, y, epochs=2, batch_size=128, learning_rate=0.05, seed=3, verbose=0)
        return net, history["cost"], _core._inputs_forwards() - before
    (team, team_costs, team_layers), (alone, costs, layers) = team_and_one_thread(fit)
    assert (team_layers, layers) == (2 * 3, 0)  # each batch of each epoch: 128, 128 and the last 44
    rtol = 1e-9 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(team_costs, costs, rtol=rtol)
    np.testing.assert_allclose(team.params, alone.params, rtol=rtol, atol=rtol * np.max(np.abs(alone.params)))
    np.testing.assert_allclose(team.running_mean[2], alone.running_mean[2], rtol=rtol, atol=rtol)
    np.testing.assert_allclose(team.running_var[2], alone.running_var[2], rtol=rtol, atol=rtol)


def test_a_team_hook_sees_the_whole_gradient_and_may_change_it(restore_threads):
    mlpcore.set_num_threads(2)
    twin = Twin(22, "cce", n=BIG, batch_norm=[False, True, False], m=128)
    net = twin.net
    seen = []
    net.fit(twin.X, twin.Y, epochs=1, batch_size=None, shuffle=False, optimizer="sgd", learning_rate=0.1,
            gradient_hook=lambda g: seen.append(np.array(g)), verbose=0)
    grads = twin.backward(twin.forward())
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], reference.flat_parameters(grads["dW"], grads["db"], grads["dgamma"],
                                                                  grads["dbeta"]), rtol=1e-10, atol=1e-13)
    before = np.array(net.params)
    net.fit(twin.X, twin.Y, epochs=2, batch_size=128, shuffle=True, seed=0, optimizer="sgd", learning_rate=0.1,
            gradient_hook=lambda g: g.fill(0), verbose=0)
    np.testing.assert_array_equal(net.params, before)


def test_a_team_failing_hook_raises_and_leaves_the_last_good_step(restore_threads):
    mlpcore.set_num_threads(2)
    settings = dict(batch_size=128, shuffle=False, optimizer="sgd", learning_rate=0.1, verbose=0)
    twin, one_step = (Twin(23, "mse", n=BIG, batch_norm=[True, False, False], m=256) for _ in range(2))
    one_step.net.fit(one_step.X[:, :128], one_step.Y[:, :128], epochs=1, **settings)
    calls = []

    def hook(g):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("the hook failed")
    with pytest.raises(RuntimeError, match="the hook failed"):
        twin.net.fit(twin.X, twin.Y, epochs=1, gradient_hook=hook, **settings)
    np.testing.assert_array_equal(twin.net.params, one_step.net.params)  # the first step's, not the second's
    for l in twin.net.running_mean.indices:
        np.testing.assert_array_equal(twin.net.running_mean[l], one_step.net.running_mean[l])


def test_a_team_divergence_raises_and_leaves_finite_parameters(restore_threads):
    mlpcore.set_num_threads(2)
    twin = Twin(24, "mse", n=BIG, batch_norm=[True, False, False], m=256)
    net = twin.net
    with pytest.raises(mlpcore.DivergenceError, match="(?i)epoch"):
        net.fit(twin.X * 100, twin.Y * 100, epochs=50, batch_size=128, optimizer="sgd", learning_rate=1e6,
                seed=0, verbose=0)
    assert np.all(np.isfinite(net.params))
    for l in net.running_mean.indices:
        assert np.all(np.isfinite(net.running_mean[l])) and np.all(np.isfinite(net.running_var[l]))


@pytest.mark.parametrize("dtype", [np.float64, np.float32], **DTYPE_IDS)
@pytest.mark.parametrize("name, hyper, make", OPTIMIZERS, ids=OPTIMIZER_IDS)
def test_an_optimizer_step_outside_fit_is_the_same_on_one_thread_and_two(name, hyper, make, dtype, restore_threads):
    """opt.step(net, grads) over a flat buffer long enough for OpenMP's team (2^18 entries and
    more) gives the same numbers to the bit on one thread and on two: each thread of the team runs
    the code one thread alone runs (compiled for AVX-512, AVX2 and FMA where the CPU has them)."""
    # 275,571 parameters: the threads' ranges do not end on a vector's boundary
    net = mlpcore.Network([600, 451, 10], ["relu", "softmax"], "cce", dtype=dtype, seed=0)
    assert net.params.size >= 2**18
    rng = np.random.default_rng(1)
    grads = net.backward(net.forward(rng.standard_normal((600, 32)).astype(dtype)), rng.integers(0, 10, 32))
    start = np.array(net.params)
    stepped = {}
    for threads in (1, 2):
        mlpcore.set_num_threads(threads)
        net.params[...] = start
        opt = make()
        for _ in range(2):  # the second step reads the state the first wrote
            opt.step(net, grads)
        stepped[threads] = np.array(net.params)
    assert not np.array_equal(stepped[1], start)
    np.testing.assert_array_equal(stepped[2], stepped[1])


def bundled_blas_path():
    """The path of the BLAS library inside the mlpcore package."""
    import pathlib
    found = list(pathlib.Path(mlpcore.__file__).parent.glob("libscipy_openblas*.so"))
    if not found:
        pytest.skip("mlpcore was built against a system BLAS, without the bundled scipy-openblas32")
    return str(found[0])


def test_blas_own_pool_is_one_thread_from_import():
    """Importing mlpcore puts its BLAS's own pool at one thread, before anything runs."""
    import subprocess
    import sys
    code = f"import ctypes, mlpcore; print(ctypes.CDLL({bundled_blas_path()!r}).scipy_openblas_get_num_threads())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "1"


def child_env(**settings):
    """This process's environment without the thread settings OpenBLAS reads, plus settings."""
    import os
    blas_settings = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")
    return dict({k: v for k, v in os.environ.items() if k not in blas_settings}, **settings)


@pytest.mark.parametrize("user_setting", [None, "2"], ids=["unset", "user's"])
def test_import_starts_no_blas_threads_and_leaves_the_users_setting(user_setting):
    """Importing mlpcore starts no thread: its BLAS, on one thread from the start, has no pool
    of its own (one that spun on a core for some 0.1 s after the import). The user's
    OPENBLAS_NUM_THREADS is as it was after the import."""
    import subprocess
    import sys
    code = ("import os, numpy; before = len(os.listdir('/proc/self/task')); import mlpcore; "
            "print(len(os.listdir('/proc/self/task')) - before, os.environ.get('OPENBLAS_NUM_THREADS'))")
    env = child_env(**({} if user_setting is None else {"OPENBLAS_NUM_THREADS": user_setting}))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert result.stdout.split() == ["0", str(user_setting)]


def test_numpys_blas_takes_the_users_thread_setting_when_mlpcore_comes_first():
    """Imported before NumPy, mlpcore leaves NumPy's BLAS to read the user's OPENBLAS_NUM_THREADS
    (2), not the 1 that mlpcore's own BLAS loads with."""
    pytest.importorskip("threadpoolctl", reason="threadpoolctl, which scikit-learn brings, is not installed "
                                                "(pip install '.[test]')")
    import subprocess
    import sys
    code = ("import mlpcore, numpy, threadpoolctl; print(sorted((i['filepath'].split('/')[-1], i['num_threads']) "
            "for i in threadpoolctl.threadpool_info() if i['user_api'] == 'blas'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env=child_env(OPENBLAS_NUM_THREADS="2"))
    pools = dict(eval(result.stdout))
    ours = [name for name in pools if name.startswith("libscipy_openblas.")]
    assert [pools.pop(name) for name in ours] == [1] and pools and set(pools.values()) == {2}


def openmp_settings(code, user_settings):
    """(stdout, the settings block the OpenMP runtime prints with OMP_DISPLAY_ENV=verbose) of
    Python running `code` in a fresh process whose only OMP_ and GOMP_ variables are
    user_settings."""
    import os
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_"))}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env=dict(env, OMP_DISPLAY_ENV="verbose", **user_settings))
    begin, end = "OPENMP DISPLAY ENVIRONMENT BEGIN", "OPENMP DISPLAY ENVIRONMENT END"
    return result.stdout, result.stderr[result.stderr.index(begin):result.stderr.index(end)]


@pytest.mark.parametrize("user_settings", [{}, {"OMP_WAIT_POLICY": "active"}], ids=["unset", "user's"])
def test_import_leaves_openmp_settings_as_they_were(user_settings):
    """Importing mlpcore sets none of OpenMP's settings: the runtime reads them once for every
    OpenMP user of the process, and a passive wait policy set by mlpcore slowed PyTorch's
    training 1.7-3x when PyTorch was imported after it."""
    runtime, with_mlpcore = openmp_settings(
        "import mlpcore; print(next((line.split()[-1] for line in open('/proc/self/maps') if 'libgomp' in line), ''))",
        user_settings)
    assert runtime.strip(), "mlpcore's core did not load libgomp (GCC's OpenMP runtime), which this test reads"
    _, runtime_alone = openmp_settings(f"import ctypes; ctypes.CDLL({runtime.strip()!r})", user_settings)
    # libgomp prints OMP_WAIT_POLICY as PASSIVE whether it is passive or unset; the spin count
    # (0 when passive) is the line that tells them apart
    assert "GOMP_SPINCOUNT" in runtime_alone
    assert with_mlpcore == runtime_alone


@pytest.mark.parametrize("threads", [1, 2])
def test_blas_own_pool_stays_at_one_thread(threads, restore_threads):
    """Products share their work out over OpenMP's threads, the same as fit's team and the
    element-wise passes; BLAS's own pool stays at one thread, so that no second pool spins on the
    cores. set_num_threads and every product put it back to one when another library
    (threadpoolctl, say) has raised it, whatever mlpcore's own thread count."""
    import ctypes
    blas = ctypes.CDLL(bundled_blas_path())
    mlpcore.set_num_threads(threads)
    assert blas.scipy_openblas_get_num_threads() == 1
    net = mlpcore.Network(BIG, ["relu", "relu", "softmax"], "cce", seed=0)
    X = np.random.default_rng(0).standard_normal((BIG[0], 256))
    y = np.arange(256) % BIG[-1]
    wide = mlpcore.Network([3000, 3000, 3], ["relu", "softmax"], "cce", seed=0)
    X_wide = np.random.default_rng(1).standard_normal((3000, 4))
    for run in (lambda: net.fit(X, y, epochs=1, batch_size=128, verbose=0),
                lambda: net.forward(np.repeat(X, 8, axis=1)),  # 2048 x 10,176 multiply-adds: a team
                lambda: wide.forward(X_wide),  # too few examples for a team: products shared out by rows
                lambda: net.forward(X[:, :16]),
                lambda: net.predict(X[:, :1])):
        blas.scipy_openblas_set_num_threads(2)  # as threadpoolctl.threadpool_limits(2) does
        run()
        assert blas.scipy_openblas_get_num_threads() == 1
    blas.scipy_openblas_set_num_threads(2)
    mlpcore.set_num_threads(threads)
    assert blas.scipy_openblas_get_num_threads() == 1
