"""Training in the core against the reference: batch normalisation, dropout, optimizers, L2,
clipping, schedules and fit.

Batch normalisation forward (training and inference), backward and running statistics;
dropout with the core's masks cache.D fed to the reference; one step (and a few) of every
optimizer through opt.step(net, grads); one full-batch fit step with L2, clipping and
schedules; fit's minibatches, warm start, gradient hook, history, callbacks, early stopping,
divergence, reproducibility and refusals; a Linear + BatchNorm1d torch model step for step
(when torch is installed); two spirals; scikit-learn's digits (when scikit-learn is installed).
"""

import copy
import re
import threading
import time
import warnings

import numpy as np
import pytest

import mlpcore
from mlpcore.datasets import two_spirals
from conftest import HIDDEN_NAMES, assert_close, assert_gradient, numerical_gradient, random_targets
from mlpcore import optim, reference
from mlpcore.preprocessing import Standardizer

DTYPE_IDS = {"ids": lambda d: np.dtype(d).name}
HIDDEN = ("tanh", "relu", "elu", "sigmoid", ("leaky_relu", {"alpha": 0.2}))
OUTPUT_OF = {"mse": "identity", "bce": "sigmoid", "cce": "softmax"}


# ---------------------------------------------------------------------------
# a network with batch normalisation and dropout, and its reference twin
# ---------------------------------------------------------------------------

class Twin:
    """A Network with batch norm and dropout, random b, gamma, beta, and the reference's copies.
    Hidden layers: the activation `hidden`, or ones drawn from HIDDEN."""

    def __init__(self, seed, cost, dtype=np.float64, batch_norm=None, dropout=None, n=None, m=None,
                 bn_eps=1e-5, bn_momentum=0.1, hidden=None):
        rng = np.random.default_rng(seed)
        if n is None:
            L = int(rng.integers(2, 5))
            n = [int(rng.integers(2, 12)) for _ in range(L + 1)]
        n = list(n)
        L = len(n) - 1
        if cost == "cce":
            n[L] = max(n[L], 2)
        if batch_norm is None:
            batch_norm = [bool(rng.random() < 0.6) for _ in range(L)]
            batch_norm[int(rng.integers(L))] = True
        specs = [hidden or HIDDEN[rng.integers(len(HIDDEN))] for _ in range(L - 1)] + [OUTPUT_OF[cost]]
        self.net = mlpcore.Network(n, specs, cost, dtype=np.dtype(dtype).name, seed=seed,
                                   batch_norm=batch_norm, dropout=dropout, bn_eps=bn_eps,
                                   bn_momentum=bn_momentum)
        for l in range(1, L + 1):
            self.net.b[l] = 0.3 * rng.standard_normal((n[l], 1))
        for l in self.net.gamma.indices:
            self.net.gamma[l] = 1 + 0.3 * rng.standard_normal((n[l], 1))
            self.net.beta[l] = 0.3 * rng.standard_normal((n[l], 1))
        self.acts = reference.check_architecture(n, specs, cost)
        self.n, self.L, self.cost, self.dtype = n, L, cost, np.dtype(dtype)
        self.batch_norm, self.bn_eps, self.bn_momentum = batch_norm, bn_eps, bn_momentum
        self.p = dropout
        self.m = int(rng.integers(8, 40)) if m is None else m
        self.X = rng.standard_normal((n[0], self.m)).astype(dtype)
        self.Y = random_targets(rng, cost, n[L], self.m, dtype)
        self.copy_from_net()

    def copy_from_net(self):
        """The reference's W, b, gamma, beta, running statistics := the network's."""
        net = self.net
        self.W = {l: np.array(net.W[l]) for l in range(1, self.L + 1)}
        self.b = {l: np.array(net.b[l]) for l in range(1, self.L + 1)}
        self.gamma = {l: np.array(net.gamma[l]) for l in net.gamma.indices}
        self.beta = {l: np.array(net.beta[l]) for l in net.beta.indices}
        self.running_mean = {l: np.array(net.running_mean[l]) for l in net.running_mean.indices}
        self.running_var = {l: np.array(net.running_var[l]) for l in net.running_var.indices}

    def flat(self):
        return reference.flat_parameters(self.W, self.b, self.gamma, self.beta)

    def in_float64(self):
        """A copy of this twin whose reference arrays (not the network) are float64."""
        twin = copy.copy(self)
        for key in ("W", "b", "gamma", "beta", "running_mean", "running_var"):
            setattr(twin, key, {l: v.astype(np.float64) for l, v in getattr(self, key).items()})
        twin.X, twin.Y = self.X.astype(np.float64), self.Y.astype(np.float64)
        return twin

    def set_flat(self, flat):
        """W, b, gamma, beta := the flat vector, in the core's layout."""
        k = 0

        def take(shape, order="C"):
            nonlocal k
            size = int(np.prod(shape))
            piece = flat[k:k + size].reshape(shape, order=order)
            k += size
            return piece.copy()
        for l in range(1, self.L + 1):
            self.W[l] = take(self.W[l].shape, "F")
            self.b[l] = take(self.b[l].shape)
            if l in self.gamma:
                self.gamma[l] = take(self.gamma[l].shape)
                self.beta[l] = take(self.beta[l].shape)
        assert k == flat.size

    def forward(self, X=None, training=True, D=None):
        X = self.X if X is None else X
        return reference.forward(self.W, self.b, X, self.acts, gamma=self.gamma, beta=self.beta,
                                 D=D, p=self.p, running_mean=self.running_mean,
                                 running_var=self.running_var, training=training,
                                 bn_eps=self.bn_eps, return_cache=True)

    def backward(self, cache, Y=None, D=None, l2=0.0, compute_dA0=False):
        Y = self.Y if Y is None else Y
        return reference.backward(self.W, cache["Z"], cache["A"], Y, self.acts, self.cost,
                                  compute_dA0=compute_dA0, gamma=self.gamma, Z_norm=cache["Z_norm"],
                                  Z_tilde=cache["Z_tilde"], var=cache["var"], D=D, p=self.p,
                                  bn_eps=self.bn_eps, l2=l2)

    def update_running_statistics(self, cache, m):
        if self.gamma:
            self.running_mean, self.running_var = reference.running_statistics(
                self.running_mean, self.running_var, cache["mu"], cache["var"], m, self.bn_momentum)

    def step(self, name, hyper, learning_rate, state, X=None, Y=None, l2=0.0, clip_norm=None,
             clip_value=None):
        """One reference training step as fit takes it; returns (J with the L2 term, state)."""
        X = self.X if X is None else X
        Y = self.Y if Y is None else Y
        cache = self.forward(X)
        J = reference.cost(cache["A"][self.L], Y, self.cost, W=self.W, l2=l2)
        grads = self.backward(cache, Y, l2=l2)
        flat_grads = reference.flat_parameters(grads["dW"], grads["db"], grads.get("dgamma"),
                                               grads.get("dbeta"))
        flat_grads = reference.clip(flat_grads, clip_norm, clip_value)
        flat, state = reference.optimizer_step(name, self.flat(), flat_grads, state,
                                               learning_rate=learning_rate, **hyper)
        self.set_flat(flat)
        self.update_running_statistics(cache, X.shape[1])
        return J, state

    def assert_matches_net(self, dtype=None, params_tol=None):
        """The network's parameters and running statistics equal the reference's."""
        dtype = self.dtype if dtype is None else dtype
        if params_tol is None:
            assert_close(self.net.params, self.flat(), dtype)
        else:
            np.testing.assert_allclose(self.net.params, self.flat(), **params_tol)
        for l in self.running_mean:
            assert_close(self.net.running_mean[l], self.running_mean[l], dtype)
            assert_close(self.net.running_var[l], self.running_var[l], dtype)


def core_cache(cache, L):
    Z = {l: np.array(cache.Z[l]) for l in range(1, L + 1)}
    A = {l: np.array(cache.A[l]) for l in range(0, L + 1)}
    return Z, A


def snapshot(net):
    """Copies of everything a refused call must leave as it was."""
    return (np.array(net.params),
            {l: np.array(net.running_mean[l]) for l in net.running_mean.indices},
            {l: np.array(net.running_var[l]) for l in net.running_var.indices})


def assert_unchanged(net, before):
    params, mean, var = before
    np.testing.assert_array_equal(net.params, params)
    for l in mean:
        np.testing.assert_array_equal(net.running_mean[l], mean[l])
        np.testing.assert_array_equal(net.running_var[l], var[l])


# ---------------------------------------------------------------------------
# batch normalisation
# ---------------------------------------------------------------------------

def test_batch_norm_parameters_state_and_layout():
    twin = Twin(0, "cce", n=[3, 5, 4, 3], batch_norm=[True, False, True], dtype=np.float32)
    net = twin.net
    assert net.gamma.indices == [1, 3] and net.beta.indices == [1, 3]
    assert net.running_mean.indices == [1, 3] and net.running_var.indices == [1, 3]
    with pytest.raises(IndexError):
        net.gamma[2]
    fresh = mlpcore.Network([3, 5, 4, 3], ["tanh", "relu", "softmax"], "cce", seed=0,
                            batch_norm=[True, False, True])
    for l in (1, 3):
        for array, value in ((fresh.gamma[l], 1), (fresh.beta[l], 0), (fresh.running_mean[l], 0),
                             (fresh.running_var[l], 1)):
            assert array.shape == (fresh.n[l], 1) and array.dtype == np.float32
            np.testing.assert_array_equal(array, value)
    # W[l], b[l], then gamma[l], beta[l]: one flat buffer of parameters
    assert net.params.size == (5 * 3 + 5) + (4 * 5 + 4) + (3 * 4 + 3) + 2 * 5 + 2 * 3
    np.testing.assert_array_equal(net.params, twin.flat())
    net.gamma[3][1, 0] = 7.0
    assert 7.0 in net.params
    # the running statistics are state, not parameters
    assert net.params.size == reference.flat_parameters(twin.W, twin.b, twin.gamma, twin.beta).size
    # gradients mirror the layout
    grads = net.backward(net.forward(twin.X), twin.Y)
    assert grads.dgamma.indices == [1, 3] and grads.dbeta.indices == [1, 3]
    assert grads.dgamma[1].shape == (5, 1) and grads.dbeta[3].shape == (3, 1)


def check(actual, expected, dtype, scale=None):
    """actual == expected up to rounding.

    float64: assert_close (rtol 1e-10, atol 1e-12 scale). float32, against a float64 reference on
    the same float32 parameters and data: rtol 1e-3, atol 1e-4 scale, as batch normalisation
    amplifies the float32 rounding of Z - mu by 1/sqrt(var + eps). scale: max|expected| unless
    given (db is a sum over columns of dZ that may cancel to 0: its scale is that of dZ).
    """
    actual = np.asarray(actual)
    assert actual.dtype == dtype and actual.shape == np.shape(expected)
    scale = float(np.max(np.abs(expected))) if scale is None else scale
    rtol, atol = (1e-10, 1e-12) if np.dtype(dtype) == np.float64 else (1e-3, 1e-4)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol * scale)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], **DTYPE_IDS)
@pytest.mark.parametrize("cost", ["mse", "bce", "cce"])
@pytest.mark.parametrize("seed", range(4))
def test_batch_norm_forward_and_backward_match_the_reference(seed, cost, dtype):
    twin = Twin(seed, cost, dtype=dtype)
    ref_twin = twin.in_float64()
    net, L = twin.net, twin.L
    cache = net.forward(twin.X)
    ref = ref_twin.forward()
    Z, A = core_cache(cache, L)
    assert cache.Z_norm.indices == cache.Z_tilde.indices == sorted(twin.gamma)
    for l in range(1, L + 1):
        assert Z[l].dtype == dtype and A[l].dtype == dtype
        check(Z[l], ref["Z"][l], dtype)
        check(A[l], ref["A"][l], dtype)
    for l in twin.gamma:
        assert cache.Z_norm[l].shape == (twin.n[l], twin.m) and cache.Z_norm[l].dtype == dtype
        check(cache.Z_norm[l], ref["Z_norm"][l], dtype)
        check(cache.Z_tilde[l], ref["Z_tilde"][l], dtype)
    # the training forward updated the running statistics
    ref_twin.update_running_statistics(ref, twin.m)
    for l in twin.gamma:
        check(net.running_mean[l], ref_twin.running_mean[l], dtype)
        check(net.running_var[l], ref_twin.running_var[l], dtype)

    grads = net.backward(cache, twin.Y, compute_dA0=True)
    expected = ref_twin.backward(ref, compute_dA0=True)
    for l in range(1, L + 1):
        check(grads.dW[l], expected["dW"][l], dtype)
        check(grads.dZ[l], expected["dZ"][l], dtype)
        if l in twin.gamma:
            assert np.all(grads.db[l] == 0)  # b of a batch-normalised layer has no effect
            check(grads.dgamma[l], expected["dgamma"][l], dtype)
            check(grads.dbeta[l], expected["dbeta"][l], dtype)
        else:
            check(grads.db[l], expected["db"][l], dtype, scale=np.max(np.abs(expected["dZ"][l])))
    for l in expected["dA"]:
        check(grads.dA[l], expected["dA"][l], dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], **DTYPE_IDS)
@pytest.mark.parametrize("cost", ["mse", "bce", "cce"])
def test_batch_norm_inference_uses_the_running_statistics(cost, dtype):
    twin = Twin(10, cost, dtype=dtype, bn_momentum=0.3, bn_eps=1e-3)
    net = twin.net
    rng = np.random.default_rng(1)
    for k in range(3):  # three training forwards move the running statistics
        X = (rng.standard_normal(twin.X.shape) * (k + 1) + k).astype(dtype)
        net.forward(X)
        twin.update_running_statistics(twin.forward(X), twin.m)
    for l in twin.gamma:
        assert_close(net.running_mean[l], twin.running_mean[l], dtype)
        assert_close(net.running_var[l], twin.running_var[l], dtype)
    twin.copy_from_net()  # the same float32 running statistics for the reference
    before = snapshot(net)
    cache = net.forward(twin.X, training=False)
    assert_unchanged(net, before)  # inference leaves the running statistics alone
    ref = twin.in_float64().forward(training=False)
    for l in range(1, twin.L + 1):
        check(cache.A[l], ref["A"][l], dtype)
    for l in twin.gamma:
        check(cache.Z_norm[l], ref["Z_norm"][l], dtype)
        check(cache.Z_tilde[l], ref["Z_tilde"][l], dtype)
    # one example at a time gives the same columns; predict uses inference mode
    single = net.forward(twin.X[:, 3:4], training=False)
    check(single.A[twin.L], ref["A"][twin.L][:, 3:4], dtype)
    A_L = np.array(cache.A[twin.L])
    prediction = net.predict(twin.X)
    if cost == "cce":
        np.testing.assert_array_equal(prediction, A_L.argmax(axis=0))
    elif cost == "bce":
        np.testing.assert_array_equal(prediction, (A_L >= 0.5).astype(np.int64))
    else:
        np.testing.assert_array_equal(prediction, A_L)
    assert_unchanged(net, before)


def test_batch_norm_training_forward_of_one_example_is_refused():
    twin = Twin(2, "bce", batch_norm=[True, False, False], n=[3, 4, 4, 1])
    net = twin.net
    before = snapshot(net)
    one = np.array(twin.X[:, :1], order="F")
    with pytest.raises(ValueError, match="m >= 2|m = 1|one example|single|variance"):
        net.forward(one)
    assert_unchanged(net, before)
    net.forward(one, training=False)
    assert_unchanged(net, before)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], **DTYPE_IDS)
def test_forward_reads_column_slices(dtype, training):
    """X[:, j:j+k] of a C-ordered X: rows of unit stride with a leading dimension m (also k = 1),
    read in place as the transpose of a column-major matrix. The numbers are an F-ordered copy's
    up to rounding, not to the bit: OpenBLAS may sum a transposed operand in another order (its
    small-matrix kernels for AVX-512 do)."""
    twin = Twin(14, "mse", dtype=dtype, n=[3, 5, 2], batch_norm=[False, False], m=10)
    for k in (1, 2, 3):
        X = twin.X[:, 4:4 + k]
        assert X.strides[1] == X.itemsize
        expected = twin.net.forward(np.array(X, order="F"), training=training).A[twin.L]
        assert_close(twin.net.forward(X, training=training).A[twin.L], expected, dtype)


def test_batch_norm_eps_and_momentum_are_used():
    twin = Twin(3, "mse", n=[4, 6, 2], batch_norm=[True, True], bn_eps=0.5, bn_momentum=0.75)
    cache = twin.net.forward(twin.X)
    ref = twin.forward()
    twin.update_running_statistics(ref, twin.m)
    for l in (1, 2):
        assert_close(cache.Z_norm[l], ref["Z_norm"][l], np.float64)
        assert_close(twin.net.running_var[l], twin.running_var[l], np.float64)


# ---------------------------------------------------------------------------
# dropout
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32], **DTYPE_IDS)
@pytest.mark.parametrize("cost", ["mse", "bce", "cce"])
@pytest.mark.parametrize("batch_norm", [False, True], ids=["plain", "batch_norm"])
@pytest.mark.parametrize("hidden", HIDDEN_NAMES)
def test_dropout_with_the_core_masks_matches_the_reference(hidden, batch_norm, cost, dtype):
    dropout = [0.5, 0.0, 0.2]
    twin = Twin(4, cost, dtype=dtype, n=[5, 60, 7, 40, 3], m=50, dropout=dropout,
                batch_norm=[batch_norm, False, batch_norm, False], hidden=hidden)
    net = twin.net
    cache = net.forward(twin.X)
    assert cache.D.indices == [1, 3]
    D = {l: np.array(cache.D[l]) for l in cache.D.indices}
    for l, p in ((1, 0.5), (3, 0.2)):
        assert D[l].shape == (twin.n[l], twin.m) and D[l].dtype == dtype
        assert set(np.unique(D[l])) <= {0.0, 1.0}
        # kept with probability 1 - p: 3000 and 2000 draws
        assert np.mean(D[l]) == pytest.approx(1 - p, abs=0.05)
    ref_twin = twin.in_float64()
    ref = ref_twin.forward(D=D)
    for l in range(1, twin.L + 1):
        check(cache.A[l], ref["A"][l], dtype)
    grads = net.backward(cache, twin.Y, compute_dA0=True)
    expected = ref_twin.backward(ref, D=D, compute_dA0=True)
    for l in range(1, twin.L + 1):
        check(grads.dW[l], expected["dW"][l], dtype)
        check(grads.dZ[l], expected["dZ"][l], dtype)
        if l not in twin.gamma:
            check(grads.db[l], expected["db"][l], dtype, scale=np.max(np.abs(expected["dZ"][l])))
        else:
            assert np.all(grads.db[l] == 0)
            check(grads.dgamma[l], expected["dgamma"][l], dtype)
            check(grads.dbeta[l], expected["dbeta"][l], dtype)
    for l in expected["dA"]:
        check(grads.dA[l], expected["dA"][l], dtype)

    # inference: no dropout, no masks
    twin.copy_from_net()
    inference = net.forward(twin.X, training=False)
    assert len(inference.D) == 0
    ref = twin.in_float64().forward(training=False)
    for l in range(1, twin.L + 1):
        check(inference.A[l], ref["A"][l], dtype)


def test_dropout_masks_are_fresh_and_seeded():
    def masks(seed, count=3):
        net = mlpcore.Network([4, 50, 1], ["relu", "sigmoid"], "bce", seed=seed, dropout=[0.5])
        X = np.ones((4, 20))
        return [np.array(net.forward(X).D[1]) for _ in range(count)]
    first = masks(0)
    assert not np.array_equal(first[0], first[1])       # each training forward draws anew
    for a, b in zip(first, masks(0)):                    # the same seed draws the same masks
        np.testing.assert_array_equal(a, b)
    # the dropped units of A[1] are exactly the zeros of the mask
    net = mlpcore.Network([4, 50, 1], ["sigmoid", "sigmoid"], "bce", seed=1, dropout=[0.5])
    cache = net.forward(np.ones((4, 20)))
    np.testing.assert_array_equal(np.array(cache.A[1]) == 0, np.array(cache.D[1]) == 0)


# ---------------------------------------------------------------------------
# optimizers one step at a time: opt.step(net, grads)
# ---------------------------------------------------------------------------

OPTIMIZERS = [
    ("sgd", {}, lambda: optim.SGD()),
    ("sgd", {"learning_rate": 0.2}, lambda: optim.SGD(learning_rate=0.2)),
    ("sgd", {"learning_rate": 0.05, "momentum": 0.9}, lambda: optim.SGD(learning_rate=0.05, momentum=0.9)),
    ("sgd", {"learning_rate": 0.05, "momentum": 0.8, "nesterov": True},
     lambda: optim.SGD(learning_rate=0.05, momentum=0.8, nesterov=True)),
    ("rmsprop", {}, lambda: optim.RMSprop()),
    ("rmsprop", {"learning_rate": 0.003, "alpha": 0.9, "eps": 1e-6},
     lambda: optim.RMSprop(learning_rate=0.003, alpha=0.9, eps=1e-6)),
    ("adam", {}, lambda: optim.Adam()),
    ("adam", {"learning_rate": 0.02, "beta1": 0.8, "beta2": 0.99, "eps": 1e-7},
     lambda: optim.Adam(learning_rate=0.02, beta1=0.8, beta2=0.99, eps=1e-7)),
    ("adamw", {}, lambda: optim.AdamW()),
    ("adamw", {"learning_rate": 0.02, "weight_decay": 0.2},
     lambda: optim.AdamW(learning_rate=0.02, weight_decay=0.2)),
]
OPTIMIZER_IDS = [f"{name}-{i}" for i, (name, _, _) in enumerate(OPTIMIZERS)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], **DTYPE_IDS)
@pytest.mark.parametrize("name, hyper, make", OPTIMIZERS, ids=OPTIMIZER_IDS)
def test_optimizer_steps_match_the_reference(name, hyper, make, dtype):
    """Three steps of opt.step(net, grads) on a batch-norm network, each on a new batch; the
    reference steps from the core's own gradients (checked against the reference's elsewhere:
    RMSprop and Adam divide by sqrt(v) + eps, which turns the rounding noise of a gradient that
    is 0 in exact arithmetic, such as db of a batch-norm layer, into steps of up to lr g/eps)."""
    twin = Twin(5, "cce", dtype=dtype, n=[4, 9, 7, 3], batch_norm=[True, False, True], m=25)
    net = twin.net
    opt = make()
    rng = np.random.default_rng(0)
    state = None
    for _ in range(3):
        X = rng.standard_normal(twin.X.shape).astype(dtype)
        Y = random_targets(rng, "cce", 3, twin.m, dtype)
        grads = net.backward(net.forward(X), Y)
        flat_grads = reference.flat_parameters(*({l: np.array(layers[l]) for l in layers.indices}
                                                 for layers in (grads.dW, grads.db, grads.dgamma, grads.dbeta)))
        params = np.array(net.params)
        assert params.dtype == dtype and flat_grads.dtype == dtype
        opt.step(net, grads)
        expected, state = reference.optimizer_step(name, params, flat_grads, state, **hyper)
        assert_close(net.params, expected, dtype)
    assert opt.t == 3


@pytest.mark.parametrize("make", [lambda: optim.RMSprop(learning_rate=1e-7, alpha=1 - 1e-9),
                                  lambda: optim.Adam(beta2=1 - 1e-9),
                                  lambda: optim.Adam(beta1=1 - 1e-9, beta2=1 - 1e-9)],
                         ids=["rmsprop_alpha", "adam_beta2", "adam_beta1_and_beta2"])
@pytest.mark.parametrize("how", ["step", "fit"])
def test_float32_steps_with_a_decay_rate_near_1_match_float64s(make, how):
    """alpha, beta1 or beta2 = 1 - 1e-9 rounds to 1 in float32; 1 - beta must not (taken in
    double, as torch does), else v stays 0 and a step divides g by eps alone. Three steps of each
    dtype from the same parameters move them alike."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((4, 30)), rng.integers(0, 3, 30)
    start, moves = mlpcore.Network([4, 6, 3], ["tanh", "softmax"], "cce", seed=0).params, {}
    for dtype in (np.float64, np.float32):
        net = mlpcore.Network([4, 6, 3], ["tanh", "softmax"], "cce", dtype=dtype)
        net.params[...] = start
        before = np.array(net.params, dtype=np.float64)
        opt = make()
        if how == "fit":
            net.fit(X, y, epochs=3, batch_size=None, shuffle=False, optimizer=opt, verbose=0)
        else:
            for _ in range(3):
                opt.step(net, net.backward(net.forward(X), y))
        moves[dtype] = np.array(net.params, dtype=np.float64) - before
    assert 1e-3 < np.abs(moves[np.float64]).max() < 0.1
    np.testing.assert_allclose(moves[np.float32], moves[np.float64], rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], **DTYPE_IDS)
@pytest.mark.parametrize("into_products", [False, True], ids=["gradient_kept", "into_products"])
def test_update_steps_as_fits_plain_sgd_does_to_the_bit(dtype, into_products, restore_threads):
    """net.update(grads, lr) after forward and backward gives the parameters of fit's plain SGD
    step on the same batch, to the bit where fit keeps the gradient (here for a gradient hook):
    both go through one pass (compiled for AVX-512, AVX2 and FMA where the CPU has them), so a
    Python loop and fit round alike. Without a hook, fit takes the step into the gradient's
    products instead, W[l] - (lr/m) dZ[l] A[l-1]^T in one product, which rounds differently:
    equal to rounding then. X is F-ordered, the layout of fit's batch, so that both products read
    it alike (OpenBLAS may round a transposed X's otherwise: see test_forward_reads_column_slices).
    One thread, so that fit and backward share out nothing; 300-100-3 on 50 examples, a step of
    1.5 million multiply-adds (a step into the products takes 2^20 and more)."""
    mlpcore.set_num_threads(1)
    nets = [mlpcore.Network([300, 100, 3], ["tanh", "softmax"], "cce", dtype=dtype, seed=3) for _ in range(2)]
    rng = np.random.default_rng(2)
    X, y = np.asfortranarray(rng.standard_normal((300, 50)), dtype=dtype), rng.integers(0, 3, 50)
    hook = None if into_products else (lambda flat_gradient: None)
    steps = steps_into_products(lambda: nets[0].fit(X, y, epochs=1, batch_size=None, shuffle=False, optimizer="sgd",
                                                    learning_rate=0.3, gradient_hook=hook, verbose=0))
    assert steps == (1 if into_products else 0)
    nets[1].update(nets[1].backward(nets[1].forward(X), y), 0.3)
    assert not np.array_equal(nets[1].params, mlpcore.Network([300, 100, 3], ["tanh", "softmax"], "cce",
                                                               dtype=dtype, seed=3).params)
    if into_products:
        np.testing.assert_allclose(nets[1].params, nets[0].params, rtol=0, atol=8 * np.finfo(dtype).eps)
    else:
        np.testing.assert_array_equal(nets[1].params, nets[0].params)


def steps_into_products(fit):
    """The steps of fit() that took plain SGD into the gradient's products."""
    before = mlpcore._core._steps_in_products()
    fit()
    return mlpcore._core._steps_in_products() - before


@pytest.mark.parametrize("dtype", [np.float64, np.float32], **DTYPE_IDS)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("l2", [0.0, 0.5])
@pytest.mark.parametrize("order", ["F", "C"])
@pytest.mark.parametrize("n", [[100, 96, 64, 3], [2, 1024, 256, 3]], ids=["tiles", "one_column"])
def test_plain_sgd_into_the_products_matches_the_reference(dtype, threads, l2, order, n, restore_threads):
    """Plain SGD without hook, clipping, diagnostics or batch norm takes each step into the
    gradient's products, in place: W[l] = (1 - lr l2/m) W[l] - (lr/m) dZ[l] A[l-1]^T, b[l] -= lr
    db[l]. Two epochs of four minibatches match the reference's steps (float64 to 1e-10, float32 to
    1e-4), on one thread and on a team of two (batches of 128 on a 100-96-64-3 net, whose layers
    the AVX-512 tiles take where the CPU has them; on a 2-1024-256-3 net, where each thread of two
    takes one column of W[1], a product of one column through the matrix-vector kernel, with the
    factor 1 - lr l2/m), X F- or C-ordered, with the L2 term."""
    mlpcore.set_num_threads(threads)
    twin = Twin(4, "cce", dtype=dtype, n=n, batch_norm=[False] * 3, m=512, hidden="relu")
    X = np.asfortranarray(twin.X) if order == "F" else np.ascontiguousarray(twin.X)
    steps = steps_into_products(lambda: twin.net.fit(X, twin.Y, epochs=2, batch_size=128, shuffle=False,
                                                     optimizer="sgd", learning_rate=0.2, l2=l2, verbose=0))
    assert steps == 8
    suffix = "64" if np.dtype(dtype) == np.float64 else "32"
    state = getattr(mlpcore._core, "OptimizerState" + suffix)("sgd", {}, twin.net.params.size)
    trainer = getattr(mlpcore._core, "Trainer" + suffix)(twin.net._core, "sgd", {}, state, 128, 512)
    assert trainer.threads(128) == threads
    for _ in range(2):
        for start in range(0, 512, 128):
            twin.step("sgd", {}, 0.2, None, X=twin.X[:, start:start + 128], Y=twin.Y[:, start:start + 128], l2=l2)
    twin.assert_matches_net()


@pytest.mark.parametrize("keep", ["gradient_hook", "clip_norm", "clip_value", "diagnostics", "momentum", "batch_norm",
                                  "small_steps", "none"])
def test_what_needs_the_gradient_or_more_than_plain_sgd_keeps_the_usual_step(keep):
    """A gradient hook, clipping, diagnostics (||dW[l]|| of the last step), momentum, batch norm
    and steps under 2^20 multiply-adds (batches of 16 here) each take the usual step, which forms
    dW[l]; plain SGD on batches of 64 ("none": 2.1 million multiply-adds) goes into the products.
    Either way the fit's parameters are the reference's."""
    bn = keep == "batch_norm"
    twin = Twin(5, "mse", n=[64, 256, 64, 2], batch_norm=[bn, False, False], m=64, hidden="tanh")
    options = {"gradient_hook": {"gradient_hook": lambda flat_gradient: None}, "clip_norm": {"clip_norm": 1e6},
               "clip_value": {"clip_value": 1e6}, "diagnostics": {"diagnostics": True},
               "momentum": {"optimizer": ("sgd", {"momentum": 0.5})}, "batch_norm": {},
               "small_steps": {"batch_size": 16}, "none": {}}[keep]
    kwargs = dict(epochs=1, batch_size=64, shuffle=False, optimizer="sgd", learning_rate=0.1, verbose=0)
    steps = steps_into_products(lambda: twin.net.fit(twin.X, twin.Y, **{**kwargs, **options}))
    batch = 16 if keep == "small_steps" else 64
    assert steps == (1 if keep == "none" else 0)
    hyper = {"momentum": 0.5} if keep == "momentum" else {}
    state = None
    for start in range(0, 64, batch):
        _, state = twin.step("sgd", hyper, 0.1, state, X=twin.X[:, start:start + batch],
                             Y=twin.Y[:, start:start + batch])
    twin.assert_matches_net()
    if keep == "diagnostics":
        assert twin.net.history["dW_norm"][0][0] > 0


@pytest.mark.parametrize("dtype", [np.float64, np.float32], **DTYPE_IDS)
def test_a_step_into_the_products_that_might_overflow_takes_the_usual_path(dtype):
    """Weights at a third of the dtype's largest: a step into the products, whose bound of the new
    weights (|W| + lr max|dZ| max|A|, with room for rounding) would pass a quarter of the largest,
    is not sure to stay finite, so the step takes the usual path, to the bit as with a gradient
    hook; the input that meets the large weights is 0, so that the step itself is finite. A
    2-1024-1024-1 net on batches of 4, steps of 4.2 million multiply-adds."""
    nets = [mlpcore.Network([2, 1024, 1024, 1], ["tanh", "tanh", "identity"], "mse", dtype=dtype, seed=0)
            for _ in range(2)]
    for net in nets:
        net.W[1][:, 0] = np.finfo(dtype).max / 3
    X = np.vstack([np.zeros(8), np.linspace(-1, 1, 8)]).astype(dtype)
    Y = np.linspace(0, 1, 8, dtype=dtype)[None, :]
    fit = dict(epochs=2, batch_size=4, shuffle=False, optimizer="sgd", learning_rate=0.1, verbose=0)
    assert steps_into_products(lambda: nets[0].fit(X, Y, **fit)) == 0
    nets[1].fit(X, Y, gradient_hook=lambda flat_gradient: None, **fit)
    np.testing.assert_array_equal(nets[0].params, nets[1].params)
    assert np.all(np.isfinite(nets[0].params)) and nets[0].W[1][0, 0] == np.finfo(dtype).max / 3
    nets[0].W[1][:, 0] = 1.0  # the same fit with small weights goes into the products
    assert steps_into_products(lambda: nets[0].fit(X, Y, **fit)) == 4


# The length of max_abs_run's four runs over W[1]'s 2,202 entries below: a quarter, rounded down to
# whole 64-byte lines (16 floats, 8 doubles), 544 in float32 and float64 alike; a tail of 26 follows.
RUN = 2202 // 64 * 16


@pytest.mark.parametrize("dtype", [np.float64, np.float32], **DTYPE_IDS)
@pytest.mark.parametrize("entry", sorted({0, 2201} | {i * RUN + d for i in range(1, 5) for d in (-1, 0)}))
def test_the_bound_of_the_weights_sees_a_large_weight_wherever_it_lies(dtype, entry):
    """The largest |W[1]| that bounds the steps into the products is taken over W[1]'s 2,202
    entries (column-major) in four runs of RUN and a tail (see max_abs_run): one weight at a third
    of the dtype's largest, at either end of each run or of the tail, keeps every step out of the
    products (X is 0, so the steps stay finite); without it both steps go in. A 2-1101-1000-1 net
    on batches of 4: steps of 4.4 million multiply-adds."""
    net = mlpcore.Network([2, 1101, 1000, 1], ["tanh", "tanh", "identity"], "mse", dtype=dtype, seed=0)
    X, Y = np.zeros((2, 8), dtype), np.zeros((1, 8), dtype)
    fit = dict(epochs=1, batch_size=4, shuffle=False, optimizer="sgd", learning_rate=0.1, verbose=0)
    assert steps_into_products(lambda: net.fit(X, Y, **fit)) == 2
    row, column = entry % 1101, entry // 1101
    net.W[1][row, column] = np.finfo(dtype).max / 3
    assert steps_into_products(lambda: net.fit(X, Y, **fit)) == 0
    assert net.W[1][row, column] == np.finfo(dtype).max / 3 and np.all(np.isfinite(net.params))


def test_a_weight_decay_factor_that_overflows_takes_the_usual_path():
    """lr l2 / m beyond float32's largest (lr 1e19, l2 1e20, batches of one): the step into the
    products would scale W by beta = 1 - (lr/m) l2 = -inf in float32, so its bound fails and the
    usual step runs; with and without a gradient hook the fit ends alike, its parameters finite.
    A 2-1100-1000-1 net, whose step of one example is 1.1 million multiply-adds."""
    outcomes = []
    for hook in (None, lambda flat_gradient: None):
        net = mlpcore.Network([2, 1100, 1000, 1], ["tanh", "tanh", "identity"], "mse", dtype="float32", seed=0)
        net.params[...] = 0.01
        X, Y = np.ones((2, 4), np.float32), np.ones((1, 4), np.float32)
        with pytest.raises(mlpcore.DivergenceError) as error:
            net.fit(X, Y, epochs=1, batch_size=1, shuffle=False, optimizer="sgd", learning_rate=1e19, l2=1e20,
                    gradient_hook=hook, verbose=0)
        outcomes.append((str(error.value), np.array(net.params)))
    assert outcomes[0][0] == outcomes[1][0]
    np.testing.assert_array_equal(outcomes[0][1], outcomes[1][1])
    assert np.all(np.isfinite(outcomes[0][1]))


@pytest.mark.parametrize("dtype", [np.float64, np.float32], **DTYPE_IDS)
def test_every_step_of_a_long_epoch_goes_into_the_products(dtype):
    """The bound of |W[l]| grows by each step's own bound and its rounding's share, not by a
    factor: 2,000 steps of one epoch all go into the products (each is bounded alike). A
    2-512-512-1 net on batches of 8: steps of 2.1 million multiply-adds."""
    net = mlpcore.Network([2, 512, 512, 1], ["tanh", "tanh", "sigmoid"], "bce", dtype=dtype, seed=0)
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((2, 2000 * 8)).astype(dtype), rng.integers(0, 2, (1, 2000 * 8))
    assert steps_into_products(lambda: net.fit(X, y, epochs=1, batch_size=8, shuffle=False, optimizer="sgd",
                                               learning_rate=0.1, verbose=0)) == 2000


def test_optimizer_names_are_the_documented_presets():
    """'momentum' = SGD(momentum=0.9), 'nesterov' = SGD(momentum=0.9, nesterov=True), via fit."""
    for name in ("sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw"):
        # no batch norm: no gradient that is 0 up to rounding (see ADAPTIVE)
        twin = Twin(6, "mse", n=[3, 6, 2], batch_norm=[False, False], m=16)
        state = None
        for _ in range(2):
            twin.net.fit(twin.X, twin.Y, epochs=1, batch_size=None, shuffle=False, optimizer=name,
                         learning_rate=0.05, verbose=0)
            _, state = twin.step(name, {}, 0.05, state)
            twin.assert_matches_net()


# ---------------------------------------------------------------------------
# fit: one full-batch step with L2, clipping, schedules
# ---------------------------------------------------------------------------

# RMSprop and Adam divide by sqrt(v) + eps: the rounding noise (~1e-16 max|dZ|) of a gradient that is 0
# in exact arithmetic, as db of a batch-norm layer is, becomes a step of lr noise/eps, which differs
# between any two implementations. With eps = 1e-3 that is below the tolerance; the default eps is
# checked on networks without batch norm and by opt.step from the core's own gradients.
ADAPTIVE = {"rmsprop": {"eps": 1e-3}, "adam": {"eps": 1e-3}, "adamw": {"eps": 1e-3}}


def optimizer_spec(name):
    """name, or (name, ADAPTIVE[name]) for the adaptive ones; and the hyper-parameters for the reference."""
    hyper = ADAPTIVE.get(name, {})
    return ((name, hyper) if hyper else name), hyper


FIT_CASES = [
    pytest.param(l2, clipping, id=f"l2={l2}-{clipping}")
    for l2 in (0.0, 0.3) for clipping in ("none", "norm", "value", "both")
]


def test_fit_gradient_with_l2_matches_finite_differences():
    """The gradient of fit's step (as its hook sees it) is that of J + lambda/(2m) sum_l ||W[l]||^2:
    (lambda/m) W[l] added to dW[l], nothing to db, gamma or beta."""
    rng = np.random.default_rng(31)
    net = mlpcore.Network([3, 5, 2], ["tanh", "identity"], "mse", dtype="float64", seed=3,
                          batch_norm=[True, False])
    X, Y, l2, m = rng.standard_normal((3, 8)), rng.standard_normal((2, 8)), 0.7, 8
    before = np.array(net.params)
    seen = []
    net.fit(X, Y, epochs=1, batch_size=m, shuffle=False, l2=l2, verbose=0,
            gradient_hook=lambda g: seen.append(np.array(g)))
    net.params[:] = before

    def J():
        return net.cost(net.forward(X).A[2], Y) + l2 / (2 * m) * sum(np.sum(net.W[l] ** 2) for l in (1, 2))

    assert len(seen) == 1
    assert_gradient(seen[0], numerical_gradient(J, net.params))


@pytest.mark.parametrize("l2, clipping", FIT_CASES)
@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw"])
def test_fit_step_with_l2_and_clipping_matches_the_reference(name, l2, clipping):
    twin = Twin(7, "bce", n=[4, 8, 6, 2], batch_norm=[True, True, False], m=30)
    # the reference gradient, to pick bounds that clip
    cache = twin.forward()
    grads = twin.backward(cache, l2=l2)
    g = reference.flat_parameters(grads["dW"], grads["db"], grads["dgamma"], grads["dbeta"])
    clip_norm = 0.5 * np.linalg.norm(g) if clipping in ("norm", "both") else None
    # by value: 0.3 of the largest entry (after the norm clipping halved it, if both)
    clip_value = {"value": 0.3, "both": 0.15}.get(clipping)
    if clip_value is not None:
        clip_value *= np.max(np.abs(g))
    state = None
    spec, hyper = optimizer_spec(name)
    for _ in range(2):  # two fits of one step: the second continues the optimizer state
        history = twin.net.fit(twin.X, twin.Y, epochs=1, batch_size=None, shuffle=False,
                               optimizer=spec, learning_rate=0.1, l2=l2, clip_norm=clip_norm,
                               clip_value=clip_value, verbose=0)
        J, state = twin.step(name, hyper, 0.1, state, l2=l2, clip_norm=clip_norm, clip_value=clip_value)
        twin.assert_matches_net()
        assert history["cost"] == [pytest.approx(J, rel=1e-12)]
        assert history["learning_rate"] == [pytest.approx(0.1, rel=1e-15)]


@pytest.mark.parametrize("schedule", [
    None, ("step", {"step_size": 2, "gamma": 0.5}), ("exponential", {"gamma": 0.7}),
    ("cosine", {"T_max": 4, "eta_min": 0.01})], ids=["constant", "step", "exponential", "cosine"])
@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_fit_with_schedule_matches_the_reference(name, schedule):
    twin = Twin(8, "cce", n=[3, 7, 3], batch_norm=[True, False], m=20)
    lr0 = 0.2 if name == "sgd" else 0.01
    spec, hyper = optimizer_spec(name)
    history = twin.net.fit(twin.X, twin.Y, epochs=5, batch_size=None, shuffle=False, optimizer=spec,
                           learning_rate=lr0, schedule=schedule, l2=0.1, verbose=0)
    rates = mlpcore.schedules.learning_rates(schedule, lr0, 5)
    np.testing.assert_allclose(history["learning_rate"], rates, rtol=1e-12)
    state, costs = None, []
    for rate in rates:
        J, state = twin.step(name, hyper, rate, state, l2=0.1)
        costs.append(J)
    twin.assert_matches_net()
    np.testing.assert_allclose(history["cost"], costs, rtol=1e-12)


@pytest.mark.parametrize("l2", [0.0, 0.3])
def test_fit_minibatches_in_order_without_shuffle(l2):
    """m = 20, batch_size 7: batches of 7, 7, 6 columns in order; the epoch cost is the mean of
    their costs, each weighted by its examples, and so is its L2 term (history's "l2_term", there
    when l2 > 0), l2 / (2 m_b) sum ||W[l]||^2 before each step."""
    twin = Twin(9, "mse", n=[3, 6, 2], batch_norm=[True, False], m=20)
    history = twin.net.fit(twin.X, twin.Y, epochs=2, batch_size=7, shuffle=False,
                           optimizer=("adam", ADAPTIVE["adam"]), learning_rate=0.01, l2=l2, verbose=0)
    assert ("l2_term" in history) == (l2 > 0)
    state = None
    for epoch in range(2):
        costs, l2_terms = [], []
        for start in range(0, 20, 7):
            m_b = min(7, 20 - start)
            l2_terms.append(l2 / (2 * m_b) * sum(np.sum(W ** 2) for W in twin.W.values()))
            J, state = twin.step("adam", ADAPTIVE["adam"], 0.01, state, X=twin.X[:, start:start + 7],
                                 Y=twin.Y[:, start:start + 7], l2=l2)
            costs.append(J)
        assert history["cost"][epoch] == pytest.approx(np.average(costs, weights=[7, 7, 6]), rel=1e-12)
        if l2 > 0:
            assert history["l2_term"][epoch] == pytest.approx(np.average(l2_terms, weights=[7, 7, 6]), rel=1e-12)
    twin.assert_matches_net()


def test_fit_takes_optimizer_objects_and_pairs():
    twin = Twin(11, "mse", n=[3, 5, 1], batch_norm=[False, False], m=12)
    twin2 = Twin(11, "mse", n=[3, 5, 1], batch_norm=[False, False], m=12)
    twin.net.fit(twin.X, twin.Y, epochs=1, batch_size=None, shuffle=False,
                 optimizer=("adam", {"beta1": 0.5, "beta2": 0.9, "eps": 1e-6}), learning_rate=0.03, verbose=0)
    twin.step("adam", {"beta1": 0.5, "beta2": 0.9, "eps": 1e-6}, 0.03, None)
    twin.assert_matches_net()
    twin2.net.fit(twin2.X, twin2.Y, epochs=1, batch_size=None, shuffle=False,
                  optimizer=optim.RMSprop(alpha=0.5), learning_rate=0.03, verbose=0)
    twin2.step("rmsprop", {"alpha": 0.5}, 0.03, None)
    twin2.assert_matches_net()
    assert twin2.net.optimizer is not None


def test_fit_warm_start_and_reset_optimizer():
    twin = Twin(12, "bce", n=[3, 6, 1], batch_norm=[True, False], m=16)
    net = twin.net

    def fit(name="adam"):
        net.fit(twin.X, twin.Y, epochs=1, batch_size=None, shuffle=False, optimizer=optimizer_spec(name)[0],
                learning_rate=0.01, verbose=0)
    adam, rmsprop = ADAPTIVE["adam"], ADAPTIVE["rmsprop"]
    fit()
    _, state = twin.step("adam", adam, 0.01, None)
    fit()  # the same spec: the state continues (t = 2)
    _, state = twin.step("adam", adam, 0.01, state)
    twin.assert_matches_net()
    assert net.optimizer is not None and net.optimizer.t == 2
    net.reset_optimizer()
    fit()  # afresh: t = 1
    _, state = twin.step("adam", adam, 0.01, None)
    twin.assert_matches_net()
    fit("rmsprop")  # a different spec starts afresh
    _, _ = twin.step("rmsprop", rmsprop, 0.01, None)
    twin.assert_matches_net()
    assert net.optimizer.t == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_memory_bytes_count_the_cache_that_predict_keeps(dtype):
    """After a predict, net.memory_bytes() counts the cache it keeps for its next call of the
    same m: Z[l] and A[l] of its m examples; one of another m replaces it."""
    net = mlpcore.Network([3, 5, 2], ["relu", "identity"], "mse", dtype=dtype, seed=0)
    P = net.memory_bytes()
    for m in (7, 1):
        net.predict(np.ones((3, m), dtype))
        parts = net.memory_bytes(breakdown=True)
        assert parts == {"parameters": P, "predict_cache": np.dtype(dtype).itemsize * 2 * m * (5 + 2)}
        assert net.memory_bytes() == sum(parts.values())


@pytest.mark.parametrize("optimizer, state_copies", [("sgd", 0), ("momentum", 2), ("adam", 4)])
def test_memory_bytes_are_parameters_gradient_optimizer_state_and_one_batch(optimizer, state_copies):
    """net.memory_bytes(): the parameters; after a fit also its gradient, the optimizer's state
    and the spare copies a step writes into, and a workspace of one batch: per example of the
    batch Z, A, dZ, dA, the gathered X and Y, a label and a loss; per example of the data 8 bytes
    (the epoch's order)."""
    n = [20, 16, 8, 3]
    net = mlpcore.Network(n, ["relu", "relu", "softmax"], "cce", seed=0)
    P = net.params.nbytes
    assert net.memory_bytes(breakdown=True) == {"parameters": P} and net.memory_bytes() == P
    rng = np.random.default_rng(0)

    def workspace(batch, m):
        X, y = rng.standard_normal((n[0], m)).astype(np.float32), rng.integers(0, n[-1], m)
        net.fit(X, y, epochs=2, batch_size=batch, optimizer=optimizer, verbose=0)
        parts = net.memory_bytes(breakdown=True)
        assert parts["parameters"] == parts["gradients"] == parts["spare_parameters"] == P
        assert parts["optimizer_state"] == state_copies * P  # its state and the spare state
        assert net.memory_bytes() == sum(parts.values())
        return parts["workspace"]
    per_example = 4 * (4 * sum(n[1:]) + n[0] + n[-1]) + 8 + 8
    assert workspace(20, 100) - workspace(10, 100) == 10 * per_example
    assert workspace(10, 200) - workspace(10, 100) == 100 * 8


@pytest.mark.parametrize("n", [[20, 16, 3], [512, 512, 10]], ids=["small", "large"])
def test_new_buffers_hold_zeros_and_start_at_a_cache_line(n):
    """A Cache's and Gradients' arrays, new, are zeros, also where they take the memory of ones of
    the same size just freed after a forward and backward wrote into them (the large net's dW,
    1 MiB, from memory that malloc reuses); each buffer (Z, A, the flat dW and db, dZ, dA, and a
    new network's parameters) starts at a 64-byte line."""
    net = mlpcore.Network(n, ["relu", "softmax"], "cce", seed=0)
    X, y = np.random.default_rng(0).standard_normal((n[0], 8)).astype(np.float32), np.arange(8) % n[-1]
    for _ in range(2):
        cache, grads = mlpcore.Cache(net, 8), mlpcore.Gradients(net, 8)
        arrays = [*cache.Z.values(), *cache.A.values(), *grads.dW.values(), *grads.db.values(), *grads.dZ.values(),
                  *grads.dA.values()]
        assert not any(array.any() for array in arrays)
        assert all(layers[1].ctypes.data % 64 == 0 for layers in (cache.Z, cache.A, grads.dW, grads.dZ, grads.dA))
        net.backward(net.forward(X, out=cache), y, out=grads)
        assert all(grads.dW[l].any() for l in (1, 2)) and all(cache.A[l].any() for l in (1, 2))
        del cache, grads, arrays
    assert net.params.ctypes.data % 64 == 0


@pytest.mark.parametrize("threads", [1, 2])
def test_a_fit_into_the_products_never_writes_dW(threads, restore_threads):
    """Plain SGD's steps into the products do not form dW[l] (nor write the spare parameters):
    after an epoch of them, the trainer's dW[l] hold the zeros their buffer was made with (pages
    of a fresh block that a fit never writes take no memory), its db[l] the last step's; with a
    gradient hook (the usual path), dW[l] hold the last step's gradient. memory_bytes counts the
    gradient and the spare parameters either way (what the fit reserved)."""
    from mlpcore.schedules import parse_schedule
    from mlpcore.training import _Run
    mlpcore.set_num_threads(threads)
    n = [100, 96, 64, 3]
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((n[0], 512)).astype(np.float32), rng.integers(0, n[-1], 512)
    for hook in (None, lambda flat_gradient: None):
        net = mlpcore.Network(n, ["relu", "relu", "softmax"], "cce", seed=0)
        run = _Run(net, X, y, 128, "sgd", 0.1, 0, None, None, parse_schedule(None).for_epochs(1))
        steps = steps_into_products(lambda: run.epoch(0, 0.0, None, None, False, hook, False))
        grads = run.trainer.gradients()
        formed = [bool(np.any(grads.dW(l))) for l in range(1, net.L + 1)]
        assert (steps, formed) == ((4, [False] * 3) if hook is None else (0, [True] * 3))
        assert all(np.any(grads.db(l)) for l in range(1, net.L + 1))
        assert net.memory_bytes(breakdown=True)["spare_parameters"] == net.params.nbytes


@pytest.mark.parametrize("dtype", [np.float32, np.float64], **DTYPE_IDS)
def test_a_fit_on_two_threads_keeps_the_second_part_of_a_large_layers_Z(dtype, restore_threads):
    """On two threads, fit's workspace holds the second thread's part of Z[l] (n[l], batch) of each
    layer without batch norm, dropout or softmax, of two inputs and more, and of 2^22 multiply-adds
    and more on the batch (or on n[l]/2 examples, where the batch has more), which the team shares
    out by W[l]'s columns: here layer 1 (512 x 1024 on 10 and 20 examples), not the softmax layer
    2. On one thread, none."""
    n = [1024, 512, 10]
    assert 512 * 1024 * 10 >= 2**22
    net = mlpcore.Network(n, ["relu", "softmax"], "cce", dtype=np.dtype(dtype).name, seed=0)
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((n[0], 40)).astype(dtype), rng.integers(0, n[-1], 40)

    def per_example(threads):
        mlpcore.set_num_threads(threads)
        workspace = {}
        for batch in (10, 20):
            net.fit(X, y, epochs=1, batch_size=batch, verbose=0)
            workspace[batch] = net.memory_bytes(breakdown=True)["workspace"]
        return (workspace[20] - workspace[10]) / 10
    size = np.dtype(dtype).itemsize
    alone = size * (4 * sum(n[1:]) + n[0] + n[-1]) + 8 + 8
    assert per_example(1) == alone
    assert per_example(2) == alone + size * 512


# ---------------------------------------------------------------------------
# fit: the gradient hook, history, callbacks, early stopping, divergence
# ---------------------------------------------------------------------------

def test_gradient_hook_sees_and_may_change_the_flat_gradient():
    twin = Twin(13, "cce", n=[3, 6, 3], batch_norm=[True, False], m=18)
    net = twin.net
    seen = []

    def record(flat_grads):
        assert flat_grads.ndim == 1 and flat_grads.dtype == net.dtype and flat_grads.size == net.params.size
        seen.append(np.array(flat_grads))
    net.fit(twin.X, twin.Y, epochs=1, batch_size=None, shuffle=False, optimizer="sgd",
            learning_rate=0.1, gradient_hook=record, verbose=0)
    assert len(seen) == 1
    grads = twin.backward(twin.forward())
    assert_close(seen[0], reference.flat_parameters(grads["dW"], grads["db"], grads["dgamma"],
                                                    grads["dbeta"]), np.float64)
    # a hook that zeroes the gradient: SGD leaves the parameters as they were
    before = np.array(net.params)
    net.fit(twin.X, twin.Y, epochs=2, batch_size=6, shuffle=True, seed=0, optimizer="sgd",
            learning_rate=0.1, gradient_hook=lambda g: g.fill(0), verbose=0)
    np.testing.assert_array_equal(net.params, before)
    # one call per step: 3 batches x 2 epochs
    calls = []
    net.fit(twin.X, twin.Y, epochs=2, batch_size=6, seed=0, verbose=0,
            gradient_hook=lambda g: calls.append(1))
    assert len(calls) == 6


@pytest.mark.parametrize("view", ["params", "W", "b", "gamma", "beta", "state"])
def test_the_core_s_parameter_and_state_buffers_are_not_shown_during_an_epoch(view):
    """A step writes into spares that it then makes current, and the fit frees the spares at its
    end: a view of a current buffer made from the hook could outlive its memory. The core refuses
    it there (net.params, net.W and the optimizer's state, made outside any fit, show the buffers
    the values settle in)."""
    net = mlpcore.Network([3, 4, 2], ["tanh", "identity"], "mse", batch_norm=[True, False], seed=0)
    opt = mlpcore.optim.Adam()
    X, Y = np.ones((3, 8), np.float32), np.zeros((2, 8), np.float32)
    shown = {"params": lambda: net._core.params, "state": lambda: opt._state.buffers(net._core),
             **{name: (lambda name=name: getattr(net._core, name)(1)) for name in ("W", "b", "gamma", "beta")}}[view]
    net.fit(X, Y, epochs=1, batch_size=4, optimizer=opt, verbose=0)
    with pytest.raises(RuntimeError, match="a fit of this network is running"):
        net.fit(X, Y, epochs=1, batch_size=4, optimizer=opt, gradient_hook=lambda flat_grads: shown(), verbose=0)
    after = shown()  # after the fit, the buffers the values settle in
    assert all(np.shares_memory(a, b) for a, b in zip(after if view == "state" else [after],
                                                      opt.state if view == "state" else [net.params]))


def test_a_view_asked_for_while_another_thread_starts_fits_is_of_the_settled_buffer_or_refused():
    """The check that no fit runs and the read of the buffer's address are one, under the lock: a
    fit that starts between them would hand out a view of its spare (hundreds in 200,000 reads)."""
    net = mlpcore.Network([2, 2, 1], ["tanh", "identity"], "mse", seed=0)
    X, Y = np.ones((2, 4), np.float32), np.zeros((1, 4), np.float32)
    done = threading.Event()

    def fits():
        while not done.is_set():
            net.fit(X, Y, epochs=1, batch_size=2, verbose=0)
    fitter = threading.Thread(target=fits)
    fitter.start()
    strays, start = 0, time.perf_counter()
    try:
        while time.perf_counter() - start < 1.5:
            for read in (lambda: net._core.params, lambda: net._core.W(1)):
                try:
                    strays += not np.shares_memory(read(), net.params)
                except RuntimeError as error:
                    assert "a fit of this network is running" in str(error)
    finally:
        done.set()
        fitter.join()
    assert strays == 0


def test_an_optimizer_refused_its_state_during_a_fit_is_left_without_one():
    """A step from a gradient hook is refused; the fresh optimizer keeps no half-made state bound to
    no network (which would then step any network, with opt.state empty)."""
    net = mlpcore.Network([2, 2, 1], ["tanh", "identity"], "mse", seed=0)
    X, Y = np.ones((2, 4), np.float32), np.zeros((1, 4), np.float32)
    grads = net.backward(net.forward(X), Y)
    opt = mlpcore.optim.SGD(momentum=0.9)
    with pytest.raises(RuntimeError, match="a fit of this network is running"):
        net.fit(X, Y, epochs=1, verbose=0, gradient_hook=lambda flat_grads: opt.step(net, grads))
    assert opt._state is None and opt._network is None and opt.state == [] and opt.t == 0
    opt.step(net, grads)
    assert opt.t == 1 and len(opt.state) == 1 and np.shares_memory(opt.state[0], opt._state.buffers(net._core)[0])


@pytest.mark.parametrize("batch_norm", [False, True], ids=["plain", "batch_norm"])
def test_last_minibatch_of_one_example(batch_norm):
    """m = 13, batch_size 4: batches of 4, 4, 4, 1; the batch of one is skipped by a batch-norm
    network (its variance is undefined), as fit's docstring says, and trained on otherwise."""
    twin = Twin(15, "mse", n=[3, 5, 2], batch_norm=[batch_norm, False], m=13)
    calls = []
    history = twin.net.fit(twin.X, twin.Y, epochs=2, batch_size=4, seed=0, verbose=0,
                           gradient_hook=lambda g: calls.append(1))
    assert len(calls) == (6 if batch_norm else 8)
    assert np.all(np.isfinite(twin.net.params)) and np.all(np.isfinite(history["cost"]))


def test_history_callbacks_and_verbose(capsys):
    X, labels = two_spirals(m=100, noise=0.02)
    net = mlpcore.Network([2, 8, 2], ["tanh", "softmax"], "cce", seed=0)
    Xv, labels_v = two_spirals(m=40, noise=0.02, seed=1)
    logs_seen = []

    def callback(epoch, logs):
        logs_seen.append((epoch, dict(logs)))
        return epoch == 2  # stop after the third epoch
    history = net.fit(X, labels, epochs=10, batch_size=16, seed=0, validation_data=(Xv, labels_v),
                      callbacks=[callback], verbose=0)
    assert history is net.history
    assert [epoch for epoch, _ in logs_seen] == [0, 1, 2]
    for key in ("cost", "val_cost", "val_accuracy", "learning_rate", "time"):
        assert len(history[key]) == 3, key
    assert "val_r2" not in history
    assert all(isinstance(t, float) and t > 0 for t in history["time"])  # seconds of each epoch
    assert logs_seen[-1][1]["cost"] == pytest.approx(history["cost"][-1])
    # the validation figures are those of the network after the epoch, in inference mode
    assert history["val_accuracy"][-1] == pytest.approx(np.mean(net.predict(Xv) == labels_v))
    assert history["val_cost"][-1] == pytest.approx(
        net.cost(net.forward(Xv, training=False).A[net.L], labels_v), rel=1e-5)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    # regression reports R^2
    net = mlpcore.Network([2, 8, 1], ["tanh", "identity"], "mse", seed=0)
    Y = np.sin(3 * X[:1])
    history = net.fit(X, Y, epochs=2, validation_fraction=0.2, seed=0, verbose=0)
    assert len(history["val_r2"]) == 2 and "val_accuracy" not in history
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


@pytest.mark.parametrize("targets", ["varying", "one_output_constant", "all_constant", "one_example"])
def test_val_r2_is_scikit_learns_r2_score_averaged_over_the_outputs(targets):
    """A constant validation output counts 1 if predicted exactly, else 0, and one example gives
    NaN, as scikit-learn's r2_score gives, instead of 1 minus the squared error."""
    sklearn_metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn is not installed")
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((2, 60)), rng.standard_normal((2, 60))
    m_val = 1 if targets == "one_example" else 10
    X_val, Y_val = rng.standard_normal((2, m_val)), rng.standard_normal((2, m_val))
    if targets == "one_output_constant":
        Y_val[1] = 5.0
    elif targets == "all_constant":
        Y_val[:] = 5.0
    net = mlpcore.Network([2, 8, 2], ["tanh", "identity"], "mse", dtype="float64", seed=0)
    history = net.fit(X, Y, epochs=2, validation_data=(X_val, Y_val), verbose=0)
    A_L = net.forward(X_val, training=False).A[net.L]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's about one example, whose R^2 is NaN
        expected = sklearn_metrics.r2_score(Y_val.T, A_L.T)
    assert history["val_r2"][-1] == pytest.approx(expected, rel=1e-12, abs=1e-12, nan_ok=True)


def test_early_stopping_restores_the_best_parameters():
    """Validation labels are the training labels flipped: the validation cost rises while the
    training cost falls, so training stops patience epochs after the best epoch."""
    X, labels = two_spirals(m=80, noise=0.02)
    net = mlpcore.Network([2, 16, 1], ["tanh", "sigmoid"], "bce", seed=0)
    patience = 3
    history = net.fit(X, labels[None, :], epochs=100, batch_size=8, seed=0, optimizer="adam",
                      learning_rate=0.01, validation_data=(X, 1 - labels[None, :]),
                      early_stopping=True, patience=patience, verbose=0)
    val_cost = history["val_cost"]
    best = int(np.argmin(val_cost))
    assert len(val_cost) == best + 1 + patience < 100
    J = net.cost(net.forward(X, training=False).A[net.L], 1 - labels[None, :])
    assert J == pytest.approx(val_cost[best], rel=1e-6)


def test_divergence_raises_and_leaves_finite_parameters():
    assert issubclass(mlpcore.DivergenceError, FloatingPointError) and issubclass(mlpcore.DivergenceError, ValueError)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3, 64)) * 100
    Y = rng.standard_normal((1, 64)) * 100
    net = mlpcore.Network([3, 16, 16, 1], ["relu", "relu", "identity"], "mse", seed=0,
                          batch_norm=[True, False, False])
    with pytest.raises(mlpcore.DivergenceError, match="(?i)epoch") as error:
        net.fit(X, Y, epochs=50, batch_size=8, optimizer="sgd", learning_rate=1e6, seed=0, verbose=0)
    assert "learning" in str(error.value).lower()
    assert np.all(np.isfinite(net.params))
    for l in net.running_mean.indices:
        assert np.all(np.isfinite(net.running_mean[l])) and np.all(np.isfinite(net.running_var[l]))


@pytest.mark.parametrize("cost, output", [("cce", "softmax"), ("bce", "sigmoid")])
def test_an_output_that_overflows_to_nan_is_the_cost_s_divergence(cost, output):
    """Finite X whose Z[L] is NaN (Z[1] overflows to +-inf, Z[2] = inf - inf): the cost is NaN
    (the log's clipping keeps a NaN, as the reference's cost), so fit blames the cost, before any
    update, and advises on the data's scale rather than the learning rate."""
    net = mlpcore.Network([2, 2, 3], ["identity", output], cost, seed=0)
    net.W[1][...] = [[10, 10], [-10, -10]]
    net.W[2][...] = 1
    X = np.array([[3e38, 1.0], [3e38, 1.0]], np.float32)  # the first column overflows
    before = np.array(net.params)
    with pytest.raises(mlpcore.DivergenceError, match="^the cost became NaN or inf at epoch 1, step 1.*came before "
                                                      "any update, so look at the scale of the data"):
        net.fit(X, np.array([0, 1]) if cost == "cce" else np.ones((3, 2), np.float32), epochs=1, verbose=0)
    np.testing.assert_array_equal(net.params, before)


@pytest.mark.parametrize("call", ["fit", "forward"])
def test_a_batch_variance_that_overflows_leaves_the_running_statistics(call):
    """Finite float32 X of 1e20: a batch-norm layer's batch variance overflows. fit raises
    DivergenceError naming it (advising on the data's scale), forward(training=True) ValueError;
    the running statistics stay finite, as they were."""
    net = mlpcore.Network([3, 5, 4], ["relu", "softmax"], "cce", batch_norm=[True, False], seed=0)
    X = np.zeros((3, 16), np.float32)
    X[:, ::2] = 1e20
    before = [np.array(net.running_var[1]), np.array(net.running_mean[1])]
    if call == "fit":
        with pytest.raises(mlpcore.DivergenceError, match="batch-norm layer's batch mean or variance became NaN or "
                                                          "inf at epoch 1, step 1.*scale of the data"):
            net.fit(X, np.arange(16) % 4, epochs=1, verbose=0)
    else:
        with pytest.raises(ValueError, match="batch-norm layer's batch mean or variance is NaN or inf"):
            net.forward(X)
    np.testing.assert_array_equal(net.running_var[1], before[0])
    np.testing.assert_array_equal(net.running_mean[1], before[1])


@pytest.mark.parametrize("converted", [False, True], ids=["X_as_it_is", "X_converted"])
def test_a_forward_that_fails_part_way_leaves_its_cache_holding_no_forward(converted):
    """The layers before the batch-norm check have written the cache, and X (for a float64 X, the
    float32 copy made for the call) need not outlive the call: the cache forgets it, A[0] and the
    masks go, and backward refuses the cache instead of reading X's freed memory."""
    net = mlpcore.Network([3, 5, 4], ["relu", "softmax"], "cce", batch_norm=[True, False], dropout=[0.5],
                          seed=0)
    good = np.ones((3, 16), np.float32)
    cache = net.forward(good)
    assert cache.A.indices[0] == 0 and cache.D.indices == [1]
    X = np.zeros((3, 16), np.float64 if converted else np.float32)
    X[:, ::2] = 1e20
    forwards = net._core.training_forwards
    with pytest.raises(ValueError, match="batch mean or variance is NaN or inf.*the cache holds no forward"):
        net.forward(X, out=cache)
    assert not cache._core.holds_forward and not cache._core.training
    assert net._core.training_forwards == forwards  # the next forward's dropout masks as they would have been
    assert 0 not in cache.A.indices and cache.D.indices == []
    with pytest.raises(ValueError, match="backward needs a cache from a training-mode forward"):
        net.backward(cache, np.arange(16) % 4)
    np.testing.assert_array_equal(net.forward(good, out=cache).A[0], good)  # the cache takes a new forward


def test_a_callback_that_empties_the_history_does_not_break_the_fit():
    """The history is net.history, which a callback may change: the next epochs are logged anew."""
    net = mlpcore.Network([3, 2], ["identity"], "mse", seed=0)
    X, Y = np.ones((3, 8), np.float32), np.zeros((2, 8), np.float32)
    def empty_after_the_first(epoch, logs):
        if epoch == 0:
            net.history.clear()

    history = net.fit(X, Y, epochs=3, verbose=0, callbacks=[empty_after_the_first])
    assert len(history["cost"]) == 2 and history is net.history


def test_a_validation_output_that_overflows_is_a_divergence():
    """Each step's cost, gradient and update finite, but the epoch's parameters so large that the
    validation forward overflows: DivergenceError (not the cost's ValueError about A[L]), with
    finite parameters and the epoch left out of the history."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3, 32)).astype(np.float32)
    y = (X[0] > 0).astype(np.float32)
    net = mlpcore.Network([3, 64, 32, 1], ["relu", "relu", "sigmoid"], "bce", seed=0)
    with pytest.raises(mlpcore.DivergenceError,
                       match="validation data's output A\\[L\\] is NaN or inf.*smaller learning"):
        net.fit(X, y, epochs=2, learning_rate=1e30, validation_data=(X[:, :8], y[:8]), verbose=0)
    assert np.all(np.isfinite(net.params))
    assert net.history is None or len(net.history["cost"]) == 0


def test_diagnostics_add_to_the_history():
    X, labels = two_spirals(m=60, noise=0.02)
    net = mlpcore.Network([2, 8, 8, 1], ["relu", "tanh", "sigmoid"], "bce", seed=0)
    plain = set(net.fit(X, labels, epochs=2, verbose=0))
    with_diagnostics = net.fit(X, labels, epochs=2, verbose=0, diagnostics=True)
    assert set(with_diagnostics) > plain


def test_diagnostics_are_the_last_steps_gradient_and_the_units_dead_or_saturated():
    X, labels = two_spirals(m=60, noise=0.02)
    net = mlpcore.Network([2, 8, 8, 1], ["relu", "tanh", "sigmoid"], "bce", seed=0)
    net.W[1][:4], net.b[1][:4], net.b[2][:3] = 0.0, -1.0, 6.0  # 4 dead relu units, 3 saturated tanh ones
    gradients = []
    history = net.fit(X, labels, epochs=2, batch_size=16, verbose=0, diagnostics=True,
                      gradient_hook=lambda flat_grads: gradients.append(np.array(flat_grads)))
    dW = net.gradient_views(gradients[-1])["dW"]
    assert history["dW_norm"][-1] == pytest.approx([np.linalg.norm(dW[l]) for l in (1, 2, 3)], rel=1e-6)
    A = net.forward(X, training=False).A
    dead, saturated = np.mean(np.all(A[1] == 0, axis=1)), np.mean(np.abs(A[2]) >= 0.99)
    assert history["dead_relu"][-1] == [pytest.approx(dead), None, None] and dead >= 0.5 and saturated > 0
    assert history["saturated"][-1] == [None, pytest.approx(saturated), pytest.approx(np.mean((A[3] <= 0.01)
                                                                                               | (A[3] >= 0.99)))]


# ---------------------------------------------------------------------------
# reproducibility and refusals
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("threads", [1, 2])
def test_fit_is_reproducible(threads, restore_threads):
    mlpcore.set_num_threads(threads)
    X, labels = two_spirals(m=200, noise=0.02)

    def train(seed):
        net = mlpcore.Network([2, 32, 32, 2], ["relu", "relu", "softmax"], "cce", seed=0,
                              dropout=[0.2, 0.1], batch_norm=[True, True, False])
        history = net.fit(X, labels, epochs=3, batch_size=16, optimizer="adam", learning_rate=0.01,
                          seed=seed, verbose=0)
        return np.array(net.params), history["cost"], net
    params, costs, net = train(0)
    params2, costs2, net2 = train(0)
    np.testing.assert_array_equal(params, params2)
    assert costs == costs2
    for l in net.running_mean.indices:
        np.testing.assert_array_equal(net.running_mean[l], net2.running_mean[l])
    params3, _, _ = train(1)
    assert not np.array_equal(params, params3)


def fit_refusals():
    """(id, args, kwargs, error, pattern) of fit calls that must be refused before training."""
    X = np.random.default_rng(0).standard_normal((3, 20))
    Y = np.random.default_rng(1).integers(0, 2, size=(1, 20)).astype(float)
    good = {"epochs": 1, "verbose": 0}
    return [
        ("X_Y_lengths", (X, Y[:, :19]), good, ValueError, "(?i)m|exampl|column|length"),
        ("X_width", (X[:2], Y), good, ValueError, "(?i)n\\[0\\]|n0|row|shape|feature"),
        ("batch_size_0", (X, Y), dict(good, batch_size=0), ValueError, "batch_size"),
        ("batch_size_negative", (X, Y), dict(good, batch_size=-4), ValueError, "batch_size"),
        ("unknown_optimizer", (X, Y), dict(good, optimizer="adagrad"), ValueError, "adagrad"),
        ("unknown_hyper_parameter", (X, Y), dict(good, optimizer=("adam", {"beta3": 0.1})), ValueError,
         "beta3"),
        ("torchs_name_of_the_rate", (X, Y), dict(good, optimizer=("adam", {"lr": 0.1})), ValueError,
         r"optimizer 'adam' takes the hyper-parameters \['beta1', 'beta2', 'eps'\] \(and learning_rate\), not 'lr'"),
        ("learning_rate_twice", (X, Y), dict(good, optimizer=("adam", {"learning_rate": 0.1}), learning_rate=0.2),
         ValueError, "the learning rate is given twice, 0.1 in its dict and 0.2 as learning_rate"),
        ("optimizer_class", (X, Y), dict(good, optimizer=mlpcore.optim.Adam), TypeError,
         r"optimizer=Adam is the class: pass an optimizer made of it, Adam\(...\), or its name"),
        ("negative_learning_rate", (X, Y), dict(good, learning_rate=-0.1), ValueError, "learning_rate"),
        ("nan_learning_rate", (X, Y), dict(good, learning_rate=float("nan")), ValueError, "learning_rate"),
        ("validation_width", (X, Y), dict(good, validation_data=(X[:2], Y)), ValueError,
         "(?i)n\\[0\\]|n0|row|shape|feature|validation"),
        ("validation_lengths", (X, Y), dict(good, validation_data=(X, Y[:, :5])), ValueError,
         "(?i)m|exampl|column|length|validation"),
        ("unknown_schedule", (X, Y), dict(good, schedule=("linear", {})), ValueError, "linear"),
        ("negative_l2", (X, Y), dict(good, l2=-1.0), ValueError, "l2"),
        ("nan_in_X", (np.where(X > 1, np.nan, X), Y), good, ValueError, "(?i)finite|nan"),
        ("negative_epochs", (X, Y), dict(good, epochs=-1), ValueError, "epochs"),
        ("batch_norm_batch_size_1", (X, Y), dict(good, batch_size=1), ValueError,
         "batch normalisation needs minibatches of at least 2 examples.*batch_size=1"),
        ("batch_norm_one_training_example", (X, Y), dict(good, validation_fraction=0.95), ValueError,
         "batch normalisation needs minibatches of at least 2 examples.*m = 1 "),
        ("shuffle_string", (X, Y), dict(good, shuffle="no"), TypeError, "shuffle must be True or False, got 'no'"),
        ("early_stopping_string", (X, Y), dict(good, early_stopping="yes"), TypeError,
         "early_stopping must be True or False, got 'yes'"),
        ("diagnostics_string", (X, Y), dict(good, diagnostics="x"), TypeError,
         "diagnostics must be True or False, got 'x'"),
        ("epochs_bool", (X, Y), dict(good, epochs=True), ValueError, "epochs must be an integer >= 1, got True"),
        ("epochs_float", (X, Y), dict(good, epochs=1.5), ValueError, "epochs must be an integer >= 1"),
        ("batch_size_float", (X, Y), dict(good, batch_size=2.5), ValueError, "batch_size must be an integer >= 1"),
        ("patience_0", (X, Y), dict(good, patience=0), ValueError, "patience must be an integer >= 1"),
        ("clip_norm_0", (X, Y), dict(good, clip_norm=0), ValueError, "clip_norm must be None or a number > 0"),
        ("clip_value_inf", (X, Y), dict(good, clip_value=np.inf), ValueError, "clip_value must be None or a number"),
        ("hook_not_callable", (X, Y), dict(good, gradient_hook=5), TypeError, "gradient_hook must be callable"),
        ("verbose_2", (X, Y), dict(good, verbose=2), ValueError, "verbose must be 0 or 1, got 2"),
        ("validation_fraction_1", (X, Y), dict(good, validation_fraction=1), ValueError,
         r"validation_fraction must lie in \(0, 1\)"),
        ("validation_fraction_nan", (X, Y), dict(good, validation_fraction=np.nan), ValueError,
         r"validation_fraction must lie in \(0, 1\)"),
        ("validation_both", (X, Y), dict(good, validation_fraction=0.2, validation_data=(X, Y)), ValueError,
         "give validation_data or validation_fraction, not both"),
        ("validation_not_a_pair", (X, Y), dict(good, validation_data=(X,)), ValueError,
         r"validation_data must be a pair \(X_val, Y_val\)"),
        ("seed_negative", (X, Y), dict(good, seed=-1), ValueError, "seed must be an integer >= 0 or None"),
    ]


@pytest.mark.parametrize("case", fit_refusals(), ids=lambda case: case[0])
def test_fit_refuses_bad_input_before_training(case):
    _, args, kwargs, error, pattern = case
    net = mlpcore.Network([3, 5, 1], ["relu", "sigmoid"], "bce", seed=0, batch_norm=[True, False],
                          dropout=[0.2])
    before = snapshot(net)
    with pytest.raises(error, match=pattern):
        net.fit(*args, **kwargs)
    assert_unchanged(net, before)
    assert net.optimizer is None and net.history is None


@pytest.mark.parametrize("which", ["X", "Y", "validation X", "validation Y", "state", "running_mean"])
def test_fit_refuses_data_that_shares_memory_with_what_it_writes(which):
    """Data that is a view of net.params (X = net.W[1], say), of the optimizer's state or of a
    running statistic would change as the network trains: refused, naming it, before anything
    changes (the optimizer's step count too); a copy of it trains."""
    net = mlpcore.Network([4, 4, 4], ["tanh", "identity"], "mse", batch_norm=[True, False], seed=0)
    opt = mlpcore.optim.SGD(0.01, momentum=0.9)
    X, Y = np.ones((4, 4), np.float32), np.zeros((4, 4), np.float32)
    net.fit(X, Y, epochs=1, optimizer=opt, verbose=0)
    data = {"X": X, "Y": Y, "validation X": X, "validation Y": Y}
    if which == "state":
        data["X"] = opt.state[0][:16].reshape(4, 4, order="F")
    elif which == "running_mean":  # validation data of one example
        data["validation X"], data["validation Y"] = net.running_mean[1], Y[:, :1]
    else:
        data[which] = net.W[1] if which.endswith("X") else net.W[2]
    before, state, t = snapshot(net), np.array(opt.state[0]), opt.t
    name = {"state": "X", "running_mean": "validation X"}.get(which, which)
    with pytest.raises(ValueError, match=f"^{name} shares memory with what fit writes at every step \\(the network's "
                                         "parameters and running statistics, the optimizer's state\\): pass a copy$"):
        net.fit(data["X"], data["Y"], epochs=1, optimizer=opt,
                validation_data=(data["validation X"], data["validation Y"]), verbose=0)
    assert_unchanged(net, before)
    np.testing.assert_array_equal(opt.state[0], state)
    assert opt.t == t and len(net.history["cost"]) == 1
    copies = {key: np.array(value) for key, value in data.items()}
    net.fit(copies["X"], copies["Y"], epochs=1, optimizer=opt, validation_data=(copies["validation X"],
                                                                               copies["validation Y"]), verbose=0)
    assert opt.t == t + 1


# ---------------------------------------------------------------------------
# torch: Linear + BatchNorm1d, step for step
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["momentum", "adam", "adamw"])
def test_batch_norm_network_matches_torch_step_for_step(name):
    torch = pytest.importorskip("torch", reason="torch is not installed: the torch cross-checks need it")
    n, m, eps, momentum = [4, 10, 8, 3], 12, 1e-5, 0.1
    net = mlpcore.Network(n, ["relu", "tanh", "softmax"], "cce", dtype="float64", seed=3,
                          batch_norm=[True, True, False])
    rng = np.random.default_rng(0)
    for l in (1, 2):
        net.b[l] = rng.standard_normal((n[l], 1))
    linears = [torch.nn.Linear(n[l - 1], n[l]).double() for l in (1, 2, 3)]
    norms = [torch.nn.BatchNorm1d(n[l], eps=eps, momentum=momentum).double() for l in (1, 2)]
    with torch.no_grad():
        for l, linear in enumerate(linears, start=1):
            linear.weight.copy_(torch.from_numpy(np.array(net.W[l])))
            linear.bias.copy_(torch.from_numpy(np.array(net.b[l])[:, 0]))
    model = torch.nn.Sequential(linears[0], norms[0], torch.nn.ReLU(), linears[1], norms[1], torch.nn.Tanh(),
                                linears[2])
    torch_optimizer = {
        "momentum": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
        "adam": lambda p: torch.optim.Adam(p, lr=0.01),
        "adamw": lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.01),
    }[name](list(model.parameters()))
    opt = {"momentum": lambda: optim.SGD(learning_rate=0.05, momentum=0.9),
           "adam": lambda: optim.Adam(learning_rate=0.01),
           "adamw": lambda: optim.AdamW(learning_rate=0.01, weight_decay=0.01)}[name]()

    def compare():
        tol = {"rtol": 1e-9, "atol": 1e-11}
        # b[1], b[2] feed batch norm: their gradient is 0 up to rounding, which Adam turns into
        # steps of up to lr noise/eps (~1e-10) that differ between torch and the core; they change
        # nothing but the running mean.
        loose = {"rtol": 1e-9, "atol": 1e-8}
        for l, linear in enumerate(linears, start=1):
            np.testing.assert_allclose(net.W[l], linear.weight.detach().numpy(), **tol)
            np.testing.assert_allclose(net.b[l][:, 0], linear.bias.detach().numpy(), **(tol if l == 3 else loose))
        for l, norm in enumerate(norms, start=1):
            np.testing.assert_allclose(net.gamma[l][:, 0], norm.weight.detach().numpy(), **tol)
            np.testing.assert_allclose(net.beta[l][:, 0], norm.bias.detach().numpy(), **tol)
            np.testing.assert_allclose(net.running_mean[l][:, 0], norm.running_mean.numpy(), **loose)
            np.testing.assert_allclose(net.running_var[l][:, 0], norm.running_var.numpy(), **tol)

    for step in range(6):
        X = rng.standard_normal((n[0], m)) * 2 + 1
        labels = rng.integers(0, 3, size=m)
        cache = net.forward(X)
        J = net.cost(cache.A[net.L], labels)
        opt.step(net, net.backward(cache, labels))
        model.train()
        torch_optimizer.zero_grad()
        log_p = torch.log_softmax(model(torch.from_numpy(X.T.copy())), dim=1)
        loss = -log_p[torch.arange(m), torch.from_numpy(labels)].sum() / m
        loss.backward()
        torch_optimizer.step()
        assert J == pytest.approx(loss.item(), rel=1e-10)
        compare()

    model.eval()
    X = rng.standard_normal((n[0], 7))
    with torch.no_grad():
        expected = torch.softmax(model(torch.from_numpy(X.T.copy())), dim=1).numpy().T
    np.testing.assert_allclose(net.forward(X, training=False).A[net.L], expected, rtol=1e-9, atol=1e-12)


def test_fit_matches_torch_minibatches():
    """fit without shuffling, batches of 8 over m = 40, Adam: the same as torch over the same batches."""
    torch = pytest.importorskip("torch", reason="torch is not installed: the torch cross-checks need it")
    n, m = [3, 6, 1], 40
    net = mlpcore.Network(n, ["elu", "sigmoid"], "bce", dtype="float64", seed=4, batch_norm=[True, False])
    rng = np.random.default_rng(2)
    X = rng.standard_normal((3, m))
    Y = rng.integers(0, 2, size=(1, m)).astype(np.float64)
    linear1, norm, linear2 = (torch.nn.Linear(3, 6).double(), torch.nn.BatchNorm1d(6).double(),
                              torch.nn.Linear(6, 1).double())
    with torch.no_grad():
        for l, linear in ((1, linear1), (2, linear2)):
            linear.weight.copy_(torch.from_numpy(np.array(net.W[l])))
            linear.bias.copy_(torch.from_numpy(np.array(net.b[l])[:, 0]))
    model = torch.nn.Sequential(linear1, norm, torch.nn.ELU(), linear2, torch.nn.Sigmoid())
    adam = torch.optim.Adam(model.parameters(), lr=0.02)
    history = net.fit(X, Y, epochs=2, batch_size=8, shuffle=False, optimizer="adam", learning_rate=0.02,
                      verbose=0)
    costs = []
    for epoch in range(2):
        epoch_costs = []
        for start in range(0, m, 8):
            x = torch.from_numpy(X[:, start:start + 8].T.copy())
            y = torch.from_numpy(Y[:, start:start + 8].T.copy())
            adam.zero_grad()
            out = model(x)
            loss = -(y * torch.log(out) + (1 - y) * torch.log(1 - out)).sum() / 8
            loss.backward()
            adam.step()
            epoch_costs.append(loss.item())
        costs.append(np.mean(epoch_costs))
    np.testing.assert_allclose(history["cost"], costs, rtol=1e-9)
    np.testing.assert_allclose(net.W[1], linear1.weight.detach().numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(net.gamma[1][:, 0], norm.weight.detach().numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(net.running_var[1][:, 0], norm.running_var.numpy(), rtol=1e-8, atol=1e-10)


# ---------------------------------------------------------------------------
# learning: two spirals, digits
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["plain", "batch_norm", "dropout"])
def test_fit_two_spirals(variant):
    X, labels = two_spirals(m=400, noise=0.02)
    options = {"plain": {}, "batch_norm": {"batch_norm": [True, True, False]},
               "dropout": {"dropout": [0.05, 0.0]}}[variant]
    net = mlpcore.Network([2, 64, 64, 1], ["relu", "relu", "sigmoid"], "bce", seed=0, **options)
    history = net.fit(X, labels, epochs=300, batch_size=32, optimizer="adam", learning_rate=0.01, seed=0,
                      verbose=0)
    assert history["cost"][-1] < 0.25 * history["cost"][0]  # training-mode cost: noisy with batch norm
    assert np.mean(net.predict(X)[0] == labels) >= 0.95


def test_digits_benchmark():
    """Section 8: digits, standardised, 30% stratified hold-out, 64-64-10 relu/softmax, Adam 1e-3,
    batch 32, 30 epochs: held-out accuracy >= 0.96 over seeds 0..3 and within 0.01 of
    scikit-learn's MLPClassifier with the same settings. Times are printed, not asserted."""
    pytest.importorskip("sklearn", reason="scikit-learn is not installed: the digits benchmark needs it")
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    digits = load_digits()
    ours, theirs, our_time, their_time = [], [], 0.0, 0.0
    for seed in range(4):
        X_train, X_test, y_train, y_test = train_test_split(
            digits.data, digits.target, test_size=0.3, stratify=digits.target, random_state=seed)
        scaler = Standardizer()
        X_train_T = scaler.fit_transform(X_train.T)
        X_test_T = scaler.transform(X_test.T)
        net = mlpcore.Network([64, 64, 10], ["relu", "softmax"], "cce", seed=seed)
        start = time.perf_counter()
        net.fit(X_train_T, y_train, epochs=30, batch_size=32, optimizer="adam", learning_rate=1e-3,
                seed=seed, verbose=0)
        our_time += time.perf_counter() - start
        ours.append(np.mean(net.predict(X_test_T) == y_test))

        clf = MLPClassifier((64,), solver="adam", batch_size=32, max_iter=30, learning_rate_init=1e-3,
                            random_state=seed)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X_train_T.T, y_train)
        their_time += time.perf_counter() - start
        theirs.append(clf.score(X_test_T.T, y_test))
    print(f"\ndigits: mlpcore accuracy {np.mean(ours):.4f} ({our_time / 4:.3f} s per fit), "
          f"MLPClassifier {np.mean(theirs):.4f} ({their_time / 4:.3f} s per fit), "
          f"speed-up {their_time / max(our_time, 1e-9):.1f}x")
    assert np.mean(ours) >= 0.96
    assert np.mean(ours) >= np.mean(theirs) - 0.01


def test_a_pairs_dict_may_give_the_learning_rate():
    net = mlpcore.Network([3, 4, 1], ["tanh", "sigmoid"], "bce", seed=0)
    X, y = np.random.default_rng(0).standard_normal((3, 20)), np.arange(20) % 2
    history = net.fit(X, y, epochs=2, optimizer=("adam", {"learning_rate": 0.1, "beta1": 0.8}), verbose=0)
    assert history["learning_rate"] == [0.1, 0.1] and net.optimizer.learning_rate == 0.1
    assert net.optimizer.spec == ("adam", {"beta1": 0.8, "beta2": 0.999, "eps": 1e-8})
    net.fit(X, y, epochs=1, optimizer=("adam", {"learning_rate": 0.1, "beta1": 0.8}), learning_rate=0.1, verbose=0)
    assert net.optimizer.t == 2 + 1 and net.optimizer.learning_rate == 0.1  # the same spec: its state goes on
    net.fit(X, y, epochs=1, optimizer=["sgd", {"learning_rate": 0.2}], verbose=0)  # a list pair too
    assert net.optimizer.learning_rate == 0.2
    net.fit(X, y, epochs=1, optimizer=("sgd", {"learning_rate": None}), verbose=0)  # None: not given
    assert net.optimizer.learning_rate == 0.01
    net.fit(X, y, epochs=1, optimizer=("sgd", {"learning_rate": 1}), learning_rate=1.0, verbose=0)  # the same
    assert net.optimizer.learning_rate == 1.0
    with pytest.raises(ValueError, match=r"given twice, np\.float32\(0\.1\) in its dict and 0\.1 as learning_rate"):
        net.fit(X, y, optimizer=("sgd", {"learning_rate": np.float32(0.1)}), learning_rate=0.1, verbose=0)
    with pytest.raises(ValueError, match=r"the learning rate is given twice, array\(\[0\.1, 0\.2\]\) in its dict"):
        net.fit(X, y, optimizer=("sgd", {"learning_rate": np.array([0.1, 0.2])}), learning_rate=0.1, verbose=0)


def test_fit_uses_a_given_optimizer_object_even_when_its_spec_matches_the_last_one():
    X, labels = two_spirals(m=64, noise=0.02)
    net = mlpcore.Network([2, 8, 1], ["tanh", "sigmoid"], "bce", seed=0)
    net.fit(X, labels, epochs=1, optimizer="adam", verbose=0)
    fresh = mlpcore.optim.Adam(learning_rate=5e-3)
    net.fit(X, labels, epochs=1, batch_size=64, optimizer=fresh, verbose=0)
    assert net.optimizer is fresh and fresh.t == 1


def test_a_fit_refused_another_networks_optimizer_leaves_it_unchanged():
    X, labels = two_spirals(m=64, noise=0.02)
    net = mlpcore.Network([2, 8, 1], ["tanh", "sigmoid"], "bce", seed=0)
    other = mlpcore.Network([2, 8, 1], ["tanh", "sigmoid"], "bce", seed=1)
    net.fit(X, labels, epochs=1, optimizer=optim.Adam(learning_rate=1e-3), verbose=0)
    t, state = net.optimizer.t, [np.array(buffer) for buffer in net.optimizer.state]
    with pytest.raises(ValueError, match="this optimizer's state belongs to another network"):
        other.fit(X, labels, epochs=1, optimizer=net.optimizer, learning_rate=5.0, verbose=0)
    assert (net.optimizer.learning_rate, net.optimizer.t) == (1e-3, t)
    for buffer, before in zip(net.optimizer.state, state):
        np.testing.assert_array_equal(buffer, before)
    assert other.optimizer is None and other.history is None


def _nan_gradient(flat):
    flat[0] = np.nan


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "a_new_object", "its_own_object"])
@pytest.mark.parametrize("failure", ["hook_of_another_signature", "nan_at_the_first_step", "hyper_out_of_range"])
def test_a_fit_that_fails_before_it_keeps_a_step_leaves_the_network_as_it_was(failure, optimizer):
    """Its parameters, optimizer (the object, its learning rate, t and state), history, dropout
    seeds and memory_bytes: as after the fit before, whatever the fit would have used."""
    X, labels = two_spirals(m=64, noise=0.02)
    net = mlpcore.Network([2, 8, 1], ["tanh", "sigmoid"], "bce", dropout=[0.1], seed=0)
    net.fit(X, labels, epochs=2, optimizer="adam", learning_rate=0.02, verbose=0)
    opt, history, memory = net.optimizer, net.history, net.memory_bytes()
    before = [np.array(net.params), (opt.learning_rate, opt.t), [np.array(b) for b in opt.state],
              {key: list(values) for key, values in history.items()},
              (net._core.dropout_seed, net._core.training_forwards)]
    given = {"sgd": "sgd", "adam": "adam", "a_new_object": optim.RMSprop(), "its_own_object": opt}[optimizer]
    hook = {"hook_of_another_signature": lambda: None, "nan_at_the_first_step": _nan_gradient}.get(failure)
    if failure == "hyper_out_of_range":
        given = optim.Adam(beta1=0.5) if not isinstance(given, optim.Optimizer) else given
        saved_hyper = dict(given.hyper)
        given.hyper["eps"] = -1.0
    with pytest.raises((TypeError, ValueError)):
        net.fit(X, labels, epochs=2, optimizer=given, learning_rate=0.5, gradient_hook=hook, verbose=0)
    if failure == "hyper_out_of_range":
        given.hyper.clear()
        given.hyper.update(saved_hyper)
    after = [np.array(net.params), (opt.learning_rate, opt.t), [np.array(b) for b in opt.state],
             {key: list(values) for key, values in net.history.items()},
             (net._core.dropout_seed, net._core.training_forwards)]
    np.testing.assert_array_equal(after[0], before[0])
    assert after[1] == before[1] and after[3] == before[3] and after[4] == before[4]
    assert all(np.array_equal(a, b) for a, b in zip(after[2], before[2])) and len(after[2]) == 2
    assert net.optimizer is opt and net.history is history and net.memory_bytes() == memory
    if isinstance(given, optim.Optimizer) and given is not opt:
        assert given.t == 0 and given.state == [] and given.learning_rate != 0.5  # free for any network
    net.fit(X, labels, epochs=1, optimizer="adam", verbose=0)  # and the network trains on, from its Adam state
    assert net.optimizer is opt and opt.t == before[1][1] + 2


def _interrupt(flat):
    raise KeyboardInterrupt


def test_a_fit_interrupted_before_it_keeps_a_step_leaves_the_network_as_it_was():
    """Ctrl-C (here from the hook, during the first step) ends a fit quietly; with no step kept,
    the network is as it was, and the fit returns its empty history."""
    X, labels = two_spirals(m=64, noise=0.02)
    net = mlpcore.Network([2, 8, 1], ["tanh", "sigmoid"], "bce", dropout=[0.1], seed=0)
    net.fit(X, labels, epochs=2, optimizer="adam", verbose=0)
    opt, history, params = net.optimizer, net.history, np.array(net.params)
    seeds = net._core.dropout_seed, net._core.training_forwards
    returned = net.fit(X, labels, epochs=2, optimizer="sgd", gradient_hook=_interrupt, verbose=0)
    assert returned["cost"] == [] and net.history is history and net.optimizer is opt and opt.t == 4
    assert (net._core.dropout_seed, net._core.training_forwards) == seeds
    np.testing.assert_array_equal(net.params, params)


@pytest.mark.parametrize("failure", ["nan_at_the_third_step", "callback_resets_then_raises"])
def test_a_fit_that_fails_after_it_kept_steps_keeps_them_and_its_own_history(failure):
    """The steps kept stay, and with them the fit's optimizer and its history of the epochs done,
    even when a callback has reset the optimizer (whose t then no longer counts them)."""
    X, labels = two_spirals(m=64, noise=0.02)
    net = mlpcore.Network([2, 8, 1], ["tanh", "sigmoid"], "bce", seed=0)
    net.fit(X, labels, epochs=1, optimizer="adam", verbose=0)
    old_history, old_params = net.history, np.array(net.params)
    steps = []

    def nan_at_the_third_step(flat):
        steps.append(1)
        if len(steps) == 3:
            flat[0] = np.nan

    def resets_then_raises(epoch, logs):
        net.optimizer.reset()
        raise RuntimeError("a callback's failure")

    opt = optim.SGD(momentum=0.9)
    if failure == "nan_at_the_third_step":
        with pytest.raises(mlpcore.DivergenceError, match="epoch 2, step 1"):
            net.fit(X, labels, epochs=3, optimizer=opt, gradient_hook=nan_at_the_third_step, verbose=0)
        assert opt.t == 2
    else:
        with pytest.raises(RuntimeError, match="a callback's failure"):
            net.fit(X, labels, epochs=3, optimizer=opt, callbacks=[resets_then_raises], verbose=0)
    assert net.optimizer is opt and net.history is not old_history and len(net.history["cost"]) == 1
    assert not np.array_equal(net.params, old_params)


def test_fit_refuses_callbacks_that_are_not_a_list():
    X, labels = two_spirals(m=64, noise=0.02)
    net = mlpcore.Network([2, 8, 1], ["tanh", "sigmoid"], "bce", seed=0)
    before = np.array(net.params)
    with pytest.raises(TypeError, match="callbacks must be a list"):
        net.fit(X, labels, epochs=1, callbacks=lambda epoch, logs: None, verbose=0)
    np.testing.assert_array_equal(net.params, before)


def test_a_callback_that_returns_neither_true_nor_false_is_named():
    """A callback's answer with no truth value (an array of several entries) is a TypeError that
    names the callback and what it returned, after the epoch it followed."""
    X, labels = two_spirals(m=64, noise=0.02)
    net = mlpcore.Network([2, 8, 1], ["tanh", "sigmoid"], "bce", seed=0)

    def accuracies(epoch, logs):
        return np.array([0.5, 0.7])
    with pytest.raises(TypeError, match=r"a callback returns a true value to stop training.*accuracies.* returned "
                                        r"ndarray array\(\[0\.5, 0\.7\]\), which is neither"):
        net.fit(X, labels, epochs=3, callbacks=[accuracies], verbose=0)
    assert len(net.history["cost"]) == 1


def test_a_float16_learning_rate_is_taken_without_a_warning():
    """A NumPy float16 rate is compared with float32's range as a Python float (in float16 the
    bound would overflow, with NumPy's RuntimeWarning)."""
    X, labels = two_spirals(m=64, noise=0.02)
    net = mlpcore.Network([2, 8, 1], ["tanh", "sigmoid"], "bce", seed=0)
    twin = mlpcore.Network([2, 8, 1], ["tanh", "sigmoid"], "bce", seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net.fit(X, labels, epochs=2, learning_rate=np.float16(0.25), seed=0, verbose=0)
    twin.fit(X, labels, epochs=2, learning_rate=float(np.float16(0.25)), seed=0, verbose=0)
    np.testing.assert_array_equal(net.params, twin.params)


def checked_in_steps(dtype, dropout=None, first="relu"):
    """A 64-128-64-4 net (`first`, relu, softmax) whose plain-SGD steps of 64 examples go into the products
    (2^20 multiply-adds and more), and X (64, 660) of ten batches and one of 20, larger than twice
    the parameters, with labels: its steps check their own columns of X (see fit's X), which fit
    reads in place (F-ordered)."""
    net = mlpcore.Network([64, 128, 64, 4], [first, "relu", "softmax"], "cce", dtype=np.dtype(dtype).name, seed=5,
                          dropout=dropout)
    rng = np.random.default_rng(6)
    return net, np.asfortranarray(rng.standard_normal((64, 660)), dtype), rng.integers(0, 4, 660)


def fit_in_steps(net, X, labels, **kwargs):
    """One epoch of plain SGD on batches of 64 in order, seed 0 (kwargs added)."""
    net.fit(X, labels, **dict(dict(epochs=1, batch_size=64, optimizer="sgd", learning_rate=0.05, shuffle=False, seed=0,
                                   verbose=0), **kwargs))


def refused_in_steps(net, X, labels, **kwargs):
    """fit_in_steps refuses X: net as it was (its optimizer, the optimizer's step count and its
    history too), no callback called, and a fit on good data after it (X's NaN, inf and large
    entries 0.5) the same as on a twin copied before (dropout's seeds put back too).
    Returns the steps taken into the products before X was refused."""
    before, twin = snapshot(net), copy.deepcopy(net)
    optimizer, history = net.optimizer, net.history
    t = optimizer and optimizer.t
    called, start = [], mlpcore._core._steps_in_products()
    with pytest.raises(ValueError, match="^X contains NaN or inf$"):
        fit_in_steps(net, X, labels, callbacks=[lambda epoch, logs: called.append(epoch)], **kwargs)
    steps = mlpcore._core._steps_in_products() - start
    assert_unchanged(net, before)
    assert net.optimizer is optimizer and (optimizer and optimizer.t) == t
    assert net.history is history and called == []
    good = np.where(np.abs(X) < 1e3, X, 0.5)  # NaN too
    fit_in_steps(net, good, labels, **kwargs)
    fit_in_steps(twin, good, labels, **kwargs)
    np.testing.assert_array_equal(net.params, twin.params)
    return steps


@pytest.mark.parametrize("dtype", [np.float32, np.float64], **DTYPE_IDS)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [(0, 0), (63, 320), (0, 639), (63, 659)],
                         ids=["first_batch", "sixth_batch", "tenth_batch_end", "last_batch_end"])
@pytest.mark.parametrize("first", ["relu", "step"])
def test_fit_puts_back_the_parameters_when_its_steps_meet_nan_in_X(dtype, threads, value, where, first,
                                                                    restore_threads):
    """Steps into the products check their own columns of X, which is not checked before them: a
    NaN or inf in the k-th batch is met after k - 1 steps were taken, which are undone (the
    parameters and step count of the fit's start put back, dropout's seeds too), and fit raises
    as it does before a first step: 0 steps for the first batch, 5 for column 320 (the sixth),
    9 for the tenth's last column, 10 for the last entry of the smaller last batch. Through a
    relu layer 1 the NaN reaches the cost; a step layer's output and g' hide it, so that only
    the check of X's columns keeps it out of dW[1]'s product."""
    mlpcore.set_num_threads(threads)
    net, X, labels = checked_in_steps(dtype, dropout=[0.2, 0.0], first=first)
    X[where] = value
    assert refused_in_steps(net, X, labels) == {0: 0, 320: 5, 639: 9, 659: 10}[where[1]]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("column", [0, 333, 659])
def test_fit_in_shuffled_batches_puts_back_the_parameters_when_its_steps_meet_nan_in_X(threads, column,
                                                                                        restore_threads):
    """With shuffling, each step checks the columns of X it gathered: a NaN is met at the step
    whose batch drew its column (at most the eleventh), and fit refuses X as it does in order."""
    mlpcore.set_num_threads(threads)
    net, X, labels = checked_in_steps(np.float32, first="step")
    X[17, column] = np.nan
    assert refused_in_steps(net, X, labels, shuffle=True) <= 10


def test_a_refused_fit_after_another_leaves_its_optimizer_and_history():
    """A fit after another, whose plain SGD continues the first's optimizer and step count, and
    whose steps meet a NaN in X: the parameters and step count of its start put back, the
    first fit's optimizer object and history kept."""
    net, X, labels = checked_in_steps(np.float32)
    fit_in_steps(net, X, labels)
    assert net.optimizer.t == 11 and len(net.history["cost"]) == 1
    X[9, 400] = np.nan
    assert refused_in_steps(net, X, labels) == 6


@pytest.mark.parametrize("threads", [1, 2])
def test_fit_checks_the_rest_of_X_before_a_step_outside_the_products(threads, restore_threads):
    """A step that cannot go into the products (here X's third batch has a column of half
    float32's largest, whose forward overflows) takes the usual path, which writes the spare
    parameters that keep the fit's start: all of X is checked first. With a NaN further on, fit
    undoes the two steps taken and refuses X; without it, the third step diverges as it did
    before, and the two steps are kept."""
    mlpcore.set_num_threads(threads)
    net, X, labels = checked_in_steps(np.float32)
    X[:, 130] = np.finfo(np.float32).max / 2
    bad = X.copy()
    bad[5, 500] = np.nan
    assert refused_in_steps(net, bad, labels) == 2
    start, steps = np.array(net.params), mlpcore._core._steps_in_products()
    with pytest.raises(mlpcore.DivergenceError, match="^the cost became NaN or inf at epoch 1, step 3"):
        fit_in_steps(net, X, labels)
    assert mlpcore._core._steps_in_products() - steps == 2
    assert not np.array_equal(net.params, start)


def test_fit_checks_a_held_out_share_of_X_before_the_first_step():
    """validation_fraction holds out columns of X that the steps do not read: checked before the
    first step. The held-out columns are those fit draws from the seed (see _hold_out); the
    other 594 train."""
    net, X, labels = checked_in_steps(np.float64)
    held_out = np.sort(np.random.default_rng(3).permutation(660)[:66])
    X[7, held_out[30]] = np.nan
    kept = np.setdiff1d(np.arange(660), held_out)
    fit_in_steps(copy.deepcopy(net), X[:, kept], labels[kept])
    before, steps = snapshot(net), mlpcore._core._steps_in_products()
    with pytest.raises(ValueError, match="^X contains NaN or inf$"):
        fit_in_steps(net, X, labels, validation_fraction=0.1, seed=3)
    assert mlpcore._core._steps_in_products() == steps
    assert_unchanged(net, before)


def test_fit_checks_X_once():
    """X's entries are known finite after the first epoch's steps read them all, as they were
    when fit checked X before its first step: a NaN that a callback puts into X after it is not
    refused (which would undo the first epoch) but diverges at the second epoch's first step."""
    net, X, labels = checked_in_steps(np.float32)
    steps = mlpcore._core._steps_in_products()
    with pytest.raises(mlpcore.DivergenceError, match="^the cost became NaN or inf at epoch 2, step 1"):
        fit_in_steps(net, X, labels, epochs=2, callbacks=[lambda epoch, logs: X.__setitem__((3, 10), np.nan)])
    assert mlpcore._core._steps_in_products() - steps == 11
    assert len(net.history["cost"]) == 1


def test_fit_names_the_validation_data_that_holds_nan():
    X, labels = two_spirals(m=64, noise=0.02)
    X_val = X[:, :8].copy()
    X_val[0, 0] = np.nan
    net = mlpcore.Network([2, 8, 1], ["tanh", "sigmoid"], "bce", seed=0)
    with pytest.raises(ValueError, match="validation X contains NaN or inf"):
        net.fit(X, labels, epochs=1, validation_data=(X_val, labels[:8]), verbose=0)


@pytest.mark.parametrize("validation", [False, True])
def test_fit_names_the_data_whose_values_the_core_refuses_once(validation):
    X, labels = two_spirals(m=64, noise=0.02)
    net = mlpcore.Network([2, 8, 2], ["tanh", "softmax"], "cce", seed=0)
    Y = np.eye(2)[:, labels]
    prefix = "validation " if validation else ""
    for bad_Y, message in ((2 * Y, "Y for cce must lie in [0, 1], got 2"),
                           (np.full_like(labels, 2), "Y: cce labels must lie in 0..1, got 2 at example 0")):
        data = {"validation_data": (X, bad_Y)} if validation else {}
        with pytest.raises(ValueError) as refused:
            net.fit(X, bad_Y if not validation else labels, epochs=1, verbose=0, **data)
        assert str(refused.value).startswith(prefix + message), str(refused.value)


@pytest.mark.parametrize("m", [50, 660])
def test_a_fit_refused_in_its_first_epoch_shows_no_progress_bar(m, capsys):
    """X's NaN, which the core meets in the first epoch (before its first step with 50 examples,
    at the steps' check of their columns with 660), is refused before the bar shows anything."""
    net, X, labels = checked_in_steps(np.float32)
    X[3, m - 1] = np.nan
    with pytest.raises(ValueError, match="^X contains NaN or inf$"):
        fit_in_steps(net, X[:, :m], labels[:m], epochs=3, verbose=1)
    assert capsys.readouterr().err == ""
    fit_in_steps(net, X[:, :m - 1], labels[:m - 1], epochs=3, verbose=1)
    assert re.search(r"3/3 \[", capsys.readouterr().err)


def test_the_progress_bar_shows_the_running_cost_inside_a_long_epoch(capsys):
    X, labels = two_spirals(m=400, noise=0.02)
    net = mlpcore.Network([2, 8, 1], ["tanh", "sigmoid"], "bce", seed=0)
    slow_step = lambda flat_grads: time.sleep(0.002)  # noqa: E731 - 400 steps: about 0.8 s of epoch
    net.fit(X, labels, epochs=1, batch_size=1, gradient_hook=slow_step, verbose=1)
    shown = capsys.readouterr().err
    assert re.search(r"step=\d+/400, running cost=\d", shown), shown[-300:]


# ---------------------------------------------------------------------------
# numbers the network's dtype cannot hold, and divergence caused by the data
# ---------------------------------------------------------------------------

def fit_state(net):
    """What a refused fit must leave as it was, beyond snapshot(net): copies of the history,
    the optimizer (object, learning rate, t, state), the dropout seed and the fit's memory."""
    optimizer = net.optimizer
    return (copy.deepcopy(net.history), optimizer, optimizer.learning_rate, optimizer.t,
            [np.array(buffer) for buffer in optimizer.state], net._core.dropout_seed, dict(net._fit_memory))


@pytest.mark.parametrize("dtype, kwargs, pattern", [
    ("float32", {"learning_rate": 1e300}, "learning_rate must be a number >= 0 finite in float32, got 1e\\+300"),
    ("float32", {"l2": 1e39}, "l2 must be a number >= 0 finite in float32"),
    ("float32", {"clip_norm": 1e39}, "clip_norm must be None or a number > 0 finite in float32"),
    ("float32", {"clip_value": 1e39}, "clip_value must be None or a number > 0 finite in float32"),
    ("float32", {"clip_value": 1e-50}, "clip_value .* not rounding to 0 there"),
    ("float32", {"schedule": ("exponential", {"gamma": 1e10}), "epochs": 40},
     "schedule \\('exponential', \\{'gamma': 10000000000.0\\}\\) .* to 1e\\+48 at epoch 6 of this fit's 40, .*float32"),
    ("float64", {"schedule": ("exponential", {"gamma": 1e10}), "epochs": 40},
     "schedule .*exponential.* to inf at epoch 33 of this fit's 40, .*float64"),
    ("float64", {"schedule": ("step", {"step_size": 1, "gamma": 2}), "epochs": 2000},
     "from 0.01 to inf at epoch 1032 of"),
], ids=["lr", "l2", "clip_norm", "clip_value", "clip_value_0", "schedule32", "schedule64", "step64"])
def test_fit_refuses_numbers_the_dtype_cannot_hold_before_anything_changes(dtype, kwargs, pattern):
    """Refused up front (a schedule's rate over the epochs of this fit), not at a later epoch with
    an OverflowError or a DivergenceError; the warm-started optimizer, history, dropout seed and
    memory of the last fit stay as they were."""
    X, labels = two_spirals(m=64, noise=0.02)
    net = mlpcore.Network([2, 8, 1], ["tanh", "sigmoid"], "bce", dtype=dtype, seed=0, dropout=[0.1])
    net.fit(X, labels, epochs=2, optimizer="adam", verbose=0)
    before, state = snapshot(net), fit_state(net)
    with pytest.raises(ValueError, match=pattern) as refused:
        net.fit(X, labels, **{"epochs": 1, "optimizer": "adam", "learning_rate": 0.01, **kwargs}, verbose=0)
    assert not isinstance(refused.value, mlpcore.DivergenceError)
    assert_unchanged(net, before)
    history, optimizer, learning_rate, t, buffers, dropout_seed, memory = state
    assert net.history == history and net.optimizer is optimizer and net._fit_memory == memory
    assert (optimizer.learning_rate, optimizer.t, net._core.dropout_seed) == (learning_rate, t, dropout_seed)
    for buffer, saved in zip(optimizer.state, buffers, strict=True):
        np.testing.assert_array_equal(buffer, saved)


def test_fit_refuses_an_optimizer_objects_rate_the_dtype_cannot_hold():
    X, labels = two_spirals(m=64, noise=0.02)
    net = mlpcore.Network([2, 8, 1], ["tanh", "sigmoid"], "bce", seed=0)
    with pytest.raises(ValueError, match="learning_rate must be a number >= 0 finite in float32"):
        net.fit(X, labels, epochs=1, optimizer=optim.Adam(learning_rate=1e39), verbose=0)
    assert net.optimizer is None and net.history is None


def test_fit_checks_a_schedule_over_the_epochs_of_the_call_only():
    """Rates 1e-30, 1e-20, 1e-10 are fine for 3 epochs; the 8th epoch's 1e40 is beyond float32."""
    X, labels = two_spirals(m=64, noise=0.02)
    net = mlpcore.Network([2, 8, 1], ["tanh", "sigmoid"], "bce", seed=0)
    schedule = ("exponential", {"gamma": 1e10})
    history = net.fit(X, labels, epochs=3, learning_rate=1e-30, schedule=schedule, verbose=0)
    assert history["learning_rate"] == pytest.approx([1e-30, 1e-20, 1e-10], rel=1e-12)
    with pytest.raises(ValueError, match="at epoch 8 of this fit's 8"):
        net.fit(X, labels, epochs=8, learning_rate=1e-30, schedule=schedule, verbose=0)


def test_divergence_at_the_first_step_points_at_the_data_not_only_the_learning_rate():
    """Targets near float32's largest overflow the first gradient, before any update: the error
    names the scale of the data and of the parameters, not the learning rate; a first update that
    overflows names both, a later divergence the learning rate alone. Each is one line."""
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((3, 32)), rng.standard_normal((1, 32))
    scale = (r"the scale of the data \(\|X\| up to \d\.\d+(e\+18)?, \|Y\| up to \d\.\d+e\+(38|18): standardise "
             r"them, e\.g\. with mlpcore\.preprocessing\.Standardizer\) and of the parameters \(up to \d\.\d+\)")
    smaller = r"try a smaller learning_rate \(this epoch's was "
    cases = [(X, 1e38 * Y, 0.01, rf"^the gradient .* epoch 1, step 1, .*before any update, so look at {scale}.*"
                                 r"not at the learning rate\.$"),
             (1e18 * X, 1e18 * Y, 1e3,
              rf"^the updated parameters .* epoch 1, step 1, .*{smaller}1000\) or check {scale}"),
             (X, 100 * Y, 1e30, rf"^the cost .* epoch 2, step 1, .*{smaller}1e\+30\)\.$")]
    for X_case, Y_case, learning_rate, pattern in cases:
        net = mlpcore.Network([3, 4, 1], ["relu", "identity"], "mse", seed=0)
        with pytest.raises(mlpcore.DivergenceError, match=pattern) as error:
            net.fit(X_case, Y_case, epochs=3, learning_rate=learning_rate, verbose=0)
        assert len(str(error.value).splitlines()) == 1
