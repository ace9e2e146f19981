"""The training math of the NumPy reference on its own: the oracle of the training tests.

Batch normalisation (training and inference), dropout with given masks and the
L2 term by finite differences in float64; the running statistics, clipping and
every optimizer against hand-computed values (always) and against torch
(torch.nn.BatchNorm1d, autograd, torch.optim) when torch is installed.
"""

import numpy as np
import pytest

from conftest import assert_gradient, numerical_gradient
from mlpcore import reference

SMOOTH_HIDDEN = ("tanh", "sigmoid", "elu", "identity", ("elu", {"alpha": 0.5}))
OUTPUT_OF = {"mse": "tanh", "bce": "sigmoid", "cce": "softmax"}


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

class Problem:
    """A small network with batch normalisation and dropout, its data and fixed masks."""

    def __init__(self, seed, cost, batch_norm=None, dropout=True, l2=0.0, dtype=np.float64,
                 L=None, m=None):
        rng = np.random.default_rng(seed)
        L = int(rng.integers(2, 4)) if L is None else L
        n = [int(rng.integers(1, 5)) for _ in range(L + 1)]
        if cost == "cce":
            n[L] = max(n[L], 2)
        self.m = int(rng.integers(3, 7)) if m is None else m
        specs = [SMOOTH_HIDDEN[rng.integers(len(SMOOTH_HIDDEN))] for _ in range(L - 1)]
        specs.append(OUTPUT_OF[cost])
        self.acts = reference.check_architecture(n, specs, cost)
        if batch_norm is None:
            batch_norm = [bool(rng.random() < 0.6) for _ in range(L)]
            batch_norm[int(rng.integers(L))] = True
        self.batch_norm = batch_norm
        self.W, self.b = reference.initial_parameters(n, self.acts, seed=seed, dtype=dtype)
        for l in range(1, L + 1):
            self.b[l] = (0.5 * rng.standard_normal((n[l], 1))).astype(dtype)
        self.gamma, self.beta, self.running_mean, self.running_var = \
            reference.initial_batch_norm(n, batch_norm, dtype)
        for l in self.gamma:
            self.gamma[l] = (1 + 0.3 * rng.standard_normal((n[l], 1))).astype(dtype)
            self.beta[l] = (0.3 * rng.standard_normal((n[l], 1))).astype(dtype)
        self.p = [float(rng.choice([0.0, 0.3, 0.5])) for _ in range(L - 1)] if dropout else None
        self.D = reference.dropout_masks(rng, n, self.m, self.p, dtype)
        self.X = rng.standard_normal((n[0], self.m)).astype(dtype)
        if cost == "mse":
            Y = rng.standard_normal((n[L], self.m))
        elif cost == "bce":
            Y = rng.random((n[L], self.m))
        else:
            Y = reference.one_hot(rng.integers(0, n[L], size=self.m), n[L])
        self.Y = Y.astype(dtype)
        self.n, self.L, self.cost, self.l2 = n, L, cost, l2

    def forward(self, **kwargs):
        return reference.forward(self.W, self.b, self.X, self.acts, gamma=self.gamma,
                                 beta=self.beta, D=self.D, p=self.p, return_cache=True, **kwargs)

    def J(self):
        """The training cost with the fixed masks, the batch statistics and the L2 term."""
        cache = self.forward()
        return reference.cost(cache["A"][self.L], self.Y, self.cost, W=self.W, l2=self.l2)

    def backward(self, compute_dA0=True):
        cache = self.forward()
        return reference.backward(self.W, cache["Z"], cache["A"], self.Y, self.acts, self.cost,
                                  compute_dA0=compute_dA0, gamma=self.gamma,
                                  Z_norm=cache["Z_norm"], Z_tilde=cache["Z_tilde"],
                                  var=cache["var"], D=self.D, p=self.p, l2=self.l2)


def torch_or_skip():
    return pytest.importorskip("torch", reason="torch is not installed: the torch cross-checks need it")


# ---------------------------------------------------------------------------
# batch normalisation, dropout and L2 by finite differences
# ---------------------------------------------------------------------------

def assert_parameter_gradients(problem, grads):
    """dW, db (and dgamma, dbeta of batch-norm layers) against central differences of problem.J."""
    for l in range(1, problem.L + 1):
        assert_gradient(grads["dW"][l], numerical_gradient(problem.J, problem.W[l]))
        assert_gradient(grads["db"][l], numerical_gradient(problem.J, problem.b[l]))
    for l in problem.gamma:
        assert_gradient(grads["dgamma"][l], numerical_gradient(problem.J, problem.gamma[l]))
        assert_gradient(grads["dbeta"][l], numerical_gradient(problem.J, problem.beta[l]))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("cost", ["mse", "bce", "cce"])
@pytest.mark.parametrize("dropout", [False, True], ids=["no_dropout", "dropout"])
def test_batch_norm_backward_matches_finite_differences(cost, dropout, seed):
    """dW, db, dgamma, dbeta and dA[0] = m dJ/dX through batch statistics, training mode."""
    problem = Problem(seed, cost, dropout=dropout)
    grads = problem.backward()
    assert set(grads["dgamma"]) == set(problem.gamma) == set(grads["dbeta"])
    assert_parameter_gradients(problem, grads)
    assert_gradient(grads["dA"][0], problem.m * numerical_gradient(problem.J, problem.X))


def upper_layers_cost(problem, l, Z_l):
    """J as a function of Z[l] alone: layers l..L of the problem as a network of their own whose
    first layer has W = I and b = 0, so that its Z is Z_l (dropout off)."""
    def shifted(layers):
        return {k - l + 1: layers[k] for k in layers if k >= l}
    W, b = shifted(problem.W), shifted(problem.b)
    W[1], b[1] = np.eye(problem.n[l]), np.zeros((problem.n[l], 1))
    _, A = reference.forward(W, b, Z_l, problem.acts[l - 1:], gamma=shifted(problem.gamma),
                             beta=shifted(problem.beta))
    return reference.cost(A[len(W)], problem.Y, problem.cost)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("cost", ["mse", "bce", "cce"])
def test_batch_norm_dZ_is_the_gradient_before_normalisation(cost, seed):
    """dZ[l] = m dJ/dZ[l], Z = W A + b taken before batch normalisation; db = 0 there."""
    problem = Problem(seed, cost, batch_norm=[True, False, True], L=3, dropout=False)
    grads = problem.backward()
    cache = problem.forward()
    for l in range(1, problem.L + 1):
        Z_l = cache["Z"][l].copy()
        numeric = numerical_gradient(lambda: upper_layers_cost(problem, l, Z_l), Z_l)
        assert_gradient(grads["dZ"][l], problem.m * numeric)
        if l in problem.gamma:
            # a batch-normalised layer's b has no effect: db = 0 up to rounding
            assert np.max(np.abs(grads["db"][l])) < 1e-14 * max(1.0, np.max(np.abs(grads["dZ"][l])))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("cost", ["mse", "bce", "cce"])
def test_dropout_backward_matches_finite_differences(cost, seed):
    """Fixed masks D[l]: A = g(Z) D / (1 - p) is a smooth function of the parameters."""
    problem = Problem(seed, cost, batch_norm=[False] * 3, L=3)
    problem.p = [0.5, 0.25]
    problem.D = reference.dropout_masks(np.random.default_rng(seed), problem.n, problem.m,
                                        problem.p)
    grads = problem.backward()
    for l in range(1, problem.L + 1):
        assert_gradient(grads["dW"][l], numerical_gradient(problem.J, problem.W[l]))
        assert_gradient(grads["db"][l], numerical_gradient(problem.J, problem.b[l]))
    assert_gradient(grads["dA"][0], problem.m * numerical_gradient(problem.J, problem.X))
    assert "dgamma" not in grads


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("cost", ["mse", "bce", "cce"])
@pytest.mark.parametrize("batch_norm", [False, True], ids=["plain", "batch_norm"])
def test_l2_term_matches_finite_differences(cost, batch_norm, seed):
    """J += lambda/(2m) sum ||W||^2, dW += (lambda/m) W; b, gamma, beta not decayed."""
    problem = Problem(seed, cost, batch_norm=[batch_norm] * 3, L=3, dropout=False, l2=0.7)
    grads = problem.backward()
    assert_parameter_gradients(problem, grads)
    # and the L2 term is exactly what it adds
    problem.l2 = 0.0
    plain = problem.backward()
    for l in range(1, problem.L + 1):
        np.testing.assert_allclose(grads["dW"][l] - plain["dW"][l], 0.7 / problem.m * problem.W[l],
                                   rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(grads["db"][l], plain["db"][l])


def test_l2_cost_hand_values():
    W = {1: np.array([[1.0, 2.0]]), 2: np.array([[3.0]])}
    A = np.array([[0.5, 1.5]])
    Y = np.array([[0.0, 1.0]])
    data = (0.25 + 0.25) / 4
    assert reference.cost(A, Y, "mse") == pytest.approx(data, rel=1e-15)
    # lambda/(2m) (1 + 4 + 9) with lambda = 0.5, m = 2
    assert reference.cost(A, Y, "mse", W=W, l2=0.5) == pytest.approx(data + 1.75, rel=1e-15)
    assert reference.cost(A, Y, "mse", W=W, l2=0.0) == pytest.approx(data, rel=1e-15)
    J32 = reference.cost(A.astype(np.float32), Y, "mse", W={l: w.astype(np.float32) for l, w in W.items()},
                         l2=0.5)
    assert J32 == pytest.approx(data + 1.75, rel=1e-6)


def test_plain_network_is_unchanged_by_the_training_options():
    """No gamma, no masks: forward and backward as for a plain network, same keys."""
    problem = Problem(0, "bce", batch_norm=[False] * 3, L=3, dropout=False)
    Z, A = reference.forward(problem.W, problem.b, problem.X, problem.acts)
    cache = problem.forward()
    for l in range(1, 4):
        np.testing.assert_array_equal(cache["Z"][l], Z[l])
        np.testing.assert_array_equal(cache["A"][l], A[l])
    assert cache["Z_norm"] == {} and cache["Z_tilde"] == {}
    plain = reference.backward(problem.W, Z, A, problem.Y, problem.acts, "bce")
    assert set(plain) == {"dW", "db", "dZ", "dA"}
    trained = problem.backward(compute_dA0=False)
    assert set(trained) == {"dW", "db", "dZ", "dA"}
    for key in plain:
        for l in plain[key]:
            np.testing.assert_array_equal(trained[key][l], plain[key][l])


@pytest.mark.parametrize("cost", ["mse", "bce", "cce"])
def test_float32_in_float32_out(cost):
    problem = Problem(1, cost, batch_norm=[True, True, True], L=3, dtype=np.float32, l2=0.1)
    problem.p = [0.5, 0.5]
    problem.D = reference.dropout_masks(np.random.default_rng(0), problem.n, problem.m, problem.p,
                                        np.float32)
    cache = problem.forward()
    grads = problem.backward()
    arrays = [a for key in cache for a in cache[key].values()]
    arrays += [a for key in grads for a in grads[key].values()]
    assert all(a.dtype == np.float32 for a in arrays)
    inference = problem.forward(training=False, running_mean=problem.running_mean,
                                running_var=problem.running_var)
    assert all(a.dtype == np.float32 for key in inference for a in inference[key].values())
    mean, var = reference.running_statistics(problem.running_mean, problem.running_var,
                                             cache["mu"], cache["var"], problem.m)
    assert all(a.dtype == np.float32 for a in list(mean.values()) + list(var.values()))


# ---------------------------------------------------------------------------
# batch normalisation and dropout: hand values
# ---------------------------------------------------------------------------

EPS = reference.BN_EPS


def one_layer(activation="identity"):
    """n = [2, 2], W = I, b = 0, so that Z = X: the batch statistics are those of X."""
    W = {1: np.eye(2)}
    b = {1: np.zeros((2, 1))}
    X = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 6.0]])
    gamma = {1: np.array([[2.0], [1.0]])}
    beta = {1: np.array([[0.0], [1.0]])}
    return W, b, X, [reference.parse_activation(activation)], gamma, beta


def test_batch_norm_forward_hand_values():
    W, b, X, acts, gamma, beta = one_layer()
    cache = reference.forward(W, b, X, acts, gamma=gamma, beta=beta, return_cache=True)
    # unit 1: mu 2, var 2/3; unit 2: mu 2, var (4 + 4 + 16)/3 = 8
    np.testing.assert_allclose(cache["mu"][1], [[2.0], [2.0]], rtol=1e-15)
    np.testing.assert_allclose(cache["var"][1], [[2 / 3], [8.0]], rtol=1e-15)
    Z_norm = np.array([[-1.0, 0.0, 1.0], [-2.0, -2.0, 4.0]]) / np.sqrt([[2 / 3 + EPS], [8 + EPS]])
    np.testing.assert_allclose(cache["Z_norm"][1], Z_norm, rtol=1e-15)
    np.testing.assert_allclose(cache["Z_tilde"][1], [[2.0], [1.0]] * Z_norm + [[0.0], [1.0]],
                               rtol=1e-15)
    np.testing.assert_allclose(cache["A"][1], cache["Z_tilde"][1], rtol=1e-15)
    # Z_norm has mean 0 and a variance just under 1 (var / (var + eps))
    np.testing.assert_allclose(cache["Z_norm"][1].mean(axis=1), 0, atol=1e-15)
    np.testing.assert_allclose(cache["Z_norm"][1].var(axis=1), [(2 / 3) / (2 / 3 + EPS), 8 / (8 + EPS)],
                               rtol=1e-14)
    # (Z, A) without return_cache
    Z, A = reference.forward(W, b, X, acts, gamma=gamma, beta=beta)
    np.testing.assert_array_equal(A[1], cache["A"][1])
    # a different eps
    cache = reference.forward(W, b, X, acts, gamma=gamma, beta=beta, bn_eps=0.5, return_cache=True)
    np.testing.assert_allclose(cache["Z_norm"][1][0], np.array([-1.0, 0.0, 1.0]) / np.sqrt(2 / 3 + 0.5),
                               rtol=1e-15)


def test_running_statistics_hand_values():
    W, b, X, acts, gamma, beta = one_layer()
    cache = reference.forward(W, b, X, acts, gamma=gamma, beta=beta, return_cache=True)
    _, _, running_mean, running_var = reference.initial_batch_norm([2, 2], [True], np.float64)
    np.testing.assert_array_equal(running_mean[1], [[0.0], [0.0]])
    np.testing.assert_array_equal(running_var[1], [[1.0], [1.0]])
    mean, var = reference.running_statistics(running_mean, running_var, cache["mu"], cache["var"], 3)
    # mean: 0.9 * 0 + 0.1 * 2; var: 0.9 * 1 + 0.1 * var * 3/2 (unbiased: 1 and 12)
    np.testing.assert_allclose(mean[1], [[0.2], [0.2]], rtol=1e-15)
    np.testing.assert_allclose(var[1], [[1.0], [2.1]], rtol=1e-15)
    np.testing.assert_array_equal(running_mean[1], [[0.0], [0.0]])  # inputs unchanged
    mean, var = reference.running_statistics(mean, var, cache["mu"], cache["var"], 3, momentum=0.5)
    np.testing.assert_allclose(mean[1], [[1.1], [1.1]], rtol=1e-15)
    np.testing.assert_allclose(var[1], [[1.0], [7.05]], rtol=1e-15)
    with pytest.raises(ValueError, match="m >= 2"):
        reference.running_statistics(mean, var, cache["mu"], cache["var"], 1)


def test_batch_norm_inference_uses_the_running_statistics():
    W, b, X, acts, gamma, beta = one_layer("tanh")
    running_mean = {1: np.array([[0.5], [-1.0]])}
    running_var = {1: np.array([[4.0], [0.25]])}
    cache = reference.forward(W, b, X, acts, gamma=gamma, beta=beta, training=False,
                              running_mean=running_mean, running_var=running_var, return_cache=True)
    Z_norm = (X - [[0.5], [-1.0]]) / np.sqrt([[4.0 + EPS], [0.25 + EPS]])
    np.testing.assert_allclose(cache["Z_norm"][1], Z_norm, rtol=1e-15)
    np.testing.assert_allclose(cache["A"][1], np.tanh([[2.0], [1.0]] * Z_norm + [[0.0], [1.0]]),
                               rtol=1e-15)
    np.testing.assert_array_equal(cache["mu"][1], running_mean[1])
    # one example is fine in inference mode, column by column the same
    single = reference.forward(W, b, X[:, 1:2], acts, gamma=gamma, beta=beta, training=False,
                               running_mean=running_mean, running_var=running_var)
    np.testing.assert_allclose(single[1][1], cache["A"][1][:, 1:2], rtol=1e-15)
    with pytest.raises(ValueError, match="running"):
        reference.forward(W, b, X, acts, gamma=gamma, beta=beta, training=False)


def test_batch_norm_training_refuses_one_example():
    W, b, X, acts, gamma, beta = one_layer()
    with pytest.raises(ValueError, match="m >= 2|variance"):
        reference.forward(W, b, X[:, :1], acts, gamma=gamma, beta=beta)
    # a plain network takes one example in training mode
    reference.forward(W, b, X[:, :1], acts)


def test_dropout_forward_hand_values():
    W = {1: np.eye(2), 2: np.ones((1, 2))}
    b = {1: np.zeros((2, 1)), 2: np.zeros((1, 1))}
    X = np.array([[1.0, -2.0], [3.0, 4.0]])
    acts = reference.check_architecture([2, 2, 1], ["relu", "identity"], "mse")
    D = {1: np.array([[1.0, 1.0], [0.0, 1.0]])}
    Z, A = reference.forward(W, b, X, acts, D=D, p=[0.75])
    # A[1] = relu(X) * D / 0.25
    np.testing.assert_array_equal(A[1], [[4.0, 0.0], [0.0, 16.0]])
    np.testing.assert_array_equal(A[2], [[4.0, 16.0]])
    # inference: no dropout
    Z, A = reference.forward(W, b, X, acts, D=D, p=[0.75], training=False)
    np.testing.assert_array_equal(A[1], [[1.0, 0.0], [3.0, 4.0]])
    # p as a dict; p = 0 with an all-ones mask changes nothing
    _, A = reference.forward(W, b, X, acts, D=D, p={1: 0.75})
    np.testing.assert_array_equal(A[1], [[4.0, 0.0], [0.0, 16.0]])
    _, A = reference.forward(W, b, X, acts, D={1: np.ones((2, 2))}, p=[0.0])
    np.testing.assert_array_equal(A[1], [[1.0, 0.0], [3.0, 4.0]])
    # the backward through the mask: dU = dA D / (1 - p) g'(Z)
    cache = reference.forward(W, b, X, acts, D=D, p=[0.75], return_cache=True)
    grads = reference.backward(W, cache["Z"], cache["A"], np.zeros((1, 2)), acts, "mse", D=D, p=[0.75])
    # dA[2] = A[2] = [4, 16]; dA[1] = W[2]^T dZ[2] = [[4, 16], [4, 16]]
    np.testing.assert_array_equal(grads["dA"][1], [[4.0, 16.0], [4.0, 16.0]])
    # dZ[1] = dA[1] * D / 0.25 * relu'(Z[1])
    np.testing.assert_array_equal(grads["dZ"][1], [[16.0, 0.0], [0.0, 64.0]])


def test_dropout_refusals():
    W = {1: np.eye(2), 2: np.ones((1, 2))}
    b = {1: np.zeros((2, 1)), 2: np.zeros((1, 1))}
    X = np.ones((2, 3))
    acts = reference.check_architecture([2, 2, 1], ["relu", "identity"], "mse")
    with pytest.raises(ValueError, match="D\\[1\\]"):
        reference.forward(W, b, X, acts, p=[0.5])
    with pytest.raises(ValueError, match="hidden"):
        reference.forward(W, b, X, acts, D={2: np.ones((1, 3))}, p={2: 0.5})
    for bad in ([1.0], [-0.1], [float("nan")], [0.5, 0.5]):
        with pytest.raises(ValueError, match="drop probabilit|dropout"):
            reference.forward(W, b, X, acts, D={1: np.ones((2, 3))}, p=bad)
    # inference needs no mask
    reference.forward(W, b, X, acts, p=[0.5], training=False)


def test_dropout_masks():
    rng = np.random.default_rng(0)
    D = reference.dropout_masks(rng, [3, 200, 300, 100, 1], 500, [0.2, 0.0, 0.7], np.float32)
    assert sorted(D) == [1, 3]
    assert D[1].shape == (200, 500) and D[3].shape == (100, 500)
    assert D[1].dtype == np.float32
    assert set(np.unique(D[1])) == {0.0, 1.0}
    assert np.mean(D[1]) == pytest.approx(0.8, abs=0.01)
    assert np.mean(D[3]) == pytest.approx(0.3, abs=0.01)


def test_flat_parameters_layout():
    W = {1: np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), 2: np.array([[7.0, 8.0]])}
    b = {1: np.array([[9.0], [10.0]]), 2: np.array([[11.0]])}
    gamma = {1: np.array([[12.0], [13.0]])}
    beta = {1: np.array([[14.0], [15.0]])}
    # W[l] column by column (Fortran order), b[l], then gamma[l], beta[l]
    np.testing.assert_array_equal(reference.flat_parameters(W, b, gamma, beta),
                                  [1, 4, 2, 5, 3, 6, 9, 10, 12, 13, 14, 15, 7, 8, 11])
    np.testing.assert_array_equal(reference.flat_parameters(W, b),
                                  [1, 4, 2, 5, 3, 6, 9, 10, 7, 8, 11])


def test_batch_norm_layer_refusals():
    with pytest.raises(ValueError, match="batch_norm"):
        reference.initial_batch_norm([2, 3, 1], [True])


# ---------------------------------------------------------------------------
# batch normalisation against torch
# ---------------------------------------------------------------------------

def test_batch_norm_against_torch_batchnorm1d():
    """Linear + BatchNorm1d + tanh, Linear + sigmoid: training forward, running statistics over
    three batches, autograd gradients of the bce cost, and the eval-mode forward."""
    torch = torch_or_skip()
    rng = np.random.default_rng(5)
    n, m, momentum, eps = [3, 5, 1], 7, 0.2, 1e-3
    acts = reference.check_architecture(n, ["tanh", "sigmoid"], "bce")
    W, b = reference.initial_parameters(n, acts, seed=1, dtype=np.float64)
    b[1] = rng.standard_normal((5, 1))
    gamma, beta, running_mean, running_var = reference.initial_batch_norm(n, [True, False], np.float64)
    gamma[1] = 1 + 0.3 * rng.standard_normal((5, 1))
    beta[1] = 0.3 * rng.standard_normal((5, 1))

    linear1 = torch.nn.Linear(3, 5).double()
    bn = torch.nn.BatchNorm1d(5, eps=eps, momentum=momentum).double()
    linear2 = torch.nn.Linear(5, 1).double()
    with torch.no_grad():
        linear1.weight.copy_(torch.from_numpy(W[1]))
        linear1.bias.copy_(torch.from_numpy(b[1][:, 0]))
        bn.weight.copy_(torch.from_numpy(gamma[1][:, 0]))
        bn.bias.copy_(torch.from_numpy(beta[1][:, 0]))
        linear2.weight.copy_(torch.from_numpy(W[2]))
        linear2.bias.copy_(torch.from_numpy(b[2][:, 0]))
    model = torch.nn.Sequential(linear1, bn, torch.nn.Tanh(), linear2, torch.nn.Sigmoid())

    for batch in range(3):
        X = rng.standard_normal((3, m)) * (batch + 1) + batch
        Y = rng.integers(0, 2, size=(1, m)).astype(np.float64)
        cache = reference.forward(W, b, X, acts, gamma=gamma, beta=beta, bn_eps=eps, return_cache=True)
        grads = reference.backward(W, cache["Z"], cache["A"], Y, acts, "bce", gamma=gamma,
                                   Z_norm=cache["Z_norm"], Z_tilde=cache["Z_tilde"], var=cache["var"],
                                   bn_eps=eps)
        running_mean, running_var = reference.running_statistics(
            running_mean, running_var, cache["mu"], cache["var"], m, momentum=momentum)

        model.train()
        model.zero_grad()
        output = model(torch.from_numpy(X.T.copy()))
        y = torch.from_numpy(Y.T.copy())
        J = -(y * torch.log(output) + (1 - y) * torch.log(1 - output)).sum() / m
        J.backward()
        np.testing.assert_allclose(cache["A"][2], output.detach().numpy().T, rtol=1e-12)
        assert reference.cost(cache["A"][2], Y, "bce") == pytest.approx(J.item(), rel=1e-12)
        np.testing.assert_allclose(running_mean[1][:, 0], bn.running_mean.numpy(), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(running_var[1][:, 0], bn.running_var.numpy(), rtol=1e-12)
        tol = {"rtol": 1e-9, "atol": 1e-13}
        np.testing.assert_allclose(grads["dW"][1], linear1.weight.grad.numpy(), **tol)
        np.testing.assert_allclose(grads["db"][1][:, 0], linear1.bias.grad.numpy(), rtol=0, atol=1e-13)
        np.testing.assert_allclose(grads["dgamma"][1][:, 0], bn.weight.grad.numpy(), **tol)
        np.testing.assert_allclose(grads["dbeta"][1][:, 0], bn.bias.grad.numpy(), **tol)
        np.testing.assert_allclose(grads["dW"][2], linear2.weight.grad.numpy(), **tol)
        np.testing.assert_allclose(grads["db"][2][:, 0], linear2.bias.grad.numpy(), **tol)

    model.eval()
    X = rng.standard_normal((3, 4))
    A = reference.forward(W, b, X, acts, gamma=gamma, beta=beta, bn_eps=eps, training=False,
                          running_mean=running_mean, running_var=running_var)[1]
    with torch.no_grad():
        output = model(torch.from_numpy(X.T.copy())).numpy().T
    np.testing.assert_allclose(A[2], output, rtol=1e-12)


# ---------------------------------------------------------------------------
# clipping
# ---------------------------------------------------------------------------

def test_clip_by_norm_hand_values():
    grads = {"dW": {1: np.array([[3.0, 0.0]])}, "db": {1: np.array([[4.0]])}}
    assert reference.global_norm(grads) == 5.0
    clipped = reference.clip_by_norm(grads, 1.0)
    np.testing.assert_allclose(clipped["dW"][1], [[0.6, 0.0]], rtol=1e-15)
    np.testing.assert_allclose(clipped["db"][1], [[0.8]], rtol=1e-15)
    assert reference.global_norm(clipped) == pytest.approx(1.0, rel=1e-15)
    np.testing.assert_array_equal(grads["dW"][1], [[3.0, 0.0]])  # inputs unchanged
    # at or below the threshold: unchanged values, new arrays
    for c in (5.0, 7.0):
        same = reference.clip_by_norm(grads, c)
        np.testing.assert_array_equal(same["dW"][1], [[3.0, 0.0]])
        assert same["dW"][1] is not grads["dW"][1]
    # a list of arrays is one flat vector too; so is a single array
    clipped = reference.clip_by_norm([np.array([1.0, 1.0]), np.array([[1.0], [1.0]])], 1.0)
    assert isinstance(clipped, list)
    np.testing.assert_allclose(clipped[1], [[0.5], [0.5]], rtol=1e-15)
    np.testing.assert_allclose(reference.clip_by_norm(np.array([6.0, 8.0]), 2.0), [1.2, 1.6], rtol=1e-15)
    clipped32 = reference.clip_by_norm([np.array([3.0, 4.0], np.float32)], 1.0)
    assert clipped32[0].dtype == np.float32


def test_clip_by_value_and_order():
    grads = [np.array([3.0, -0.2, -7.0]), np.array([[0.1], [4.0]])]
    clipped = reference.clip_by_value(grads, 0.5)
    np.testing.assert_array_equal(clipped[0], [0.5, -0.2, -0.5])
    np.testing.assert_array_equal(clipped[1], [[0.1], [0.5]])
    # the norm first, then the value: ||(3, 4)|| = 5 -> (0.6, 0.8) -> (0.6, 0.7)
    g = [np.array([3.0, 4.0])]
    np.testing.assert_allclose(reference.clip(g, clip_norm=1.0, clip_value=0.7)[0], [0.6, 0.7], rtol=1e-15)
    # (value first would give (0.7, 0.7) -> norm 0.99 <= 1: a different result)
    np.testing.assert_allclose(reference.clip(g, clip_value=0.7)[0], [0.7, 0.7])
    np.testing.assert_allclose(reference.clip(g, clip_norm=1.0)[0], [0.6, 0.8], rtol=1e-15)
    np.testing.assert_array_equal(reference.clip(g)[0], [3.0, 4.0])


# ---------------------------------------------------------------------------
# optimizers: hand values
# ---------------------------------------------------------------------------

def steps(name, gradients, p0=1.0, **hyper):
    """The parameter after each of the steps of optimizer name from p0 with the given gradients."""
    params, state, values = np.array([p0]), None, []
    for g in gradients:
        params, state = reference.optimizer_step(name, params, np.array([g]), state, **hyper)
        values.append(float(params[0]))
    assert state["t"] == len(gradients)
    return values


def test_sgd_hand_values():
    assert steps("sgd", [0.5, -1.0], learning_rate=0.1) == pytest.approx([0.95, 1.05], rel=1e-15)
    # momentum 0.9: buf = 0.5; then buf = 0.45 + 0.5 = 0.95
    assert steps("momentum", [0.5, 0.5], learning_rate=0.1) == pytest.approx([0.95, 0.855], rel=1e-15)
    # nesterov: d = 0.5 + 0.9 * 0.5 = 0.95; then buf = 0.95, d = 0.5 + 0.855 = 1.355
    assert steps("nesterov", [0.5, 0.5], learning_rate=0.1) == pytest.approx([0.905, 0.7695], rel=1e-15)
    assert steps("sgd", [0.5, 0.5], learning_rate=0.1, momentum=0.5, nesterov=True) == pytest.approx(
        [1 - 0.1 * 0.75, 1 - 0.1 * 0.75 - 0.1 * (0.5 + 0.5 * 0.75)], rel=1e-15)
    # the default learning rate is 0.01
    assert steps("sgd", [1.0]) == pytest.approx([0.99], rel=1e-15)


def test_rmsprop_hand_values():
    # v = 0.01 * 0.25 = 0.0025, sqrt = 0.05; then v = 0.99 * 0.0025 + 0.01 * 1
    v2 = 0.99 * 0.0025 + 0.01
    expected = [1 - 0.01 * 0.5 / (0.05 + 1e-8)]
    expected.append(expected[0] - 0.01 * -1.0 / (np.sqrt(v2) + 1e-8))
    assert steps("rmsprop", [0.5, -1.0]) == pytest.approx(expected, rel=1e-15)
    expected = [1 - 0.1 * 0.5 / (np.sqrt(0.5 * 0.25) + 0.1)]
    assert steps("rmsprop", [0.5], learning_rate=0.1, alpha=0.5, eps=0.1) == pytest.approx(expected,
                                                                                         rel=1e-15)


def test_adam_hand_values():
    lr, eps = 1e-3, 1e-8
    # t = 1: m_hat = g, v_hat = g^2
    p1 = 1 - lr * 0.5 / (0.5 + eps)
    # t = 2: m1 = 0.9 * 0.05 - 0.1 = -0.055, v = 0.999 * 0.00025 + 0.001 = 0.00124975
    m_hat = -0.055 / (1 - 0.9 ** 2)
    v_hat = 0.00124975 / (1 - 0.999 ** 2)
    p2 = p1 - lr * m_hat / (np.sqrt(v_hat) + eps)
    assert steps("adam", [0.5, -1.0]) == pytest.approx([p1, p2], rel=1e-14)
    # AdamW decays first: p (1 - lr 0.01), then the same Adam step
    q1 = 1 * (1 - lr * 0.01) - lr * 0.5 / (0.5 + eps)
    q2 = q1 * (1 - lr * 0.01) - lr * m_hat / (np.sqrt(v_hat) + eps)
    assert steps("adamw", [0.5, -1.0]) == pytest.approx([q1, q2], rel=1e-14)
    assert steps("adamw", [0.5], weight_decay=0.0) == pytest.approx([p1], rel=1e-15)
    # other betas
    m1, v = 0.5 * 2.0, 0.2 * 4.0
    expected = 3 - 0.1 * (m1 / 0.5) / (np.sqrt(v / 0.2) + 0.01)
    assert steps("adam", [2.0], p0=3.0, learning_rate=0.1, beta1=0.5, beta2=0.8, eps=0.01) == \
        pytest.approx([expected], rel=1e-15)


def test_optimizer_steps_are_pure_and_keep_the_structure():
    params = {"W": {1: np.ones((2, 3))}, "b": {1: np.zeros((2, 1))}}
    grads = {"W": {1: np.full((2, 3), 0.5)}, "b": {1: np.full((2, 1), -1.0)}}
    for name in reference.OPTIMIZERS:
        new, state = reference.optimizer_step(name, params, grads)
        assert set(new) == {"W", "b"} and new["W"][1].shape == (2, 3) and new["b"][1].shape == (2, 1)
        np.testing.assert_array_equal(params["W"][1], 1.0)
        np.testing.assert_array_equal(grads["b"][1], -1.0)
        # a dict of arrays steps exactly as their flat vector does
        flat, _ = reference.optimizer_step(name, np.concatenate([np.ones(6), np.zeros(2)]),
                                           np.concatenate([np.full(6, 0.5), np.full(2, -1.0)]))
        np.testing.assert_array_equal(np.concatenate([new["W"][1].ravel(), new["b"][1].ravel()]), flat)
        assert state["t"] == 1
    new32, _ = reference.adam_step(np.ones(3, np.float32), np.ones(3, np.float32))
    assert new32.dtype == np.float32


def test_optimizer_steps_line_up_dicts_by_key():
    """backward fills dW from layer L down: {2: dW2, 1: dW1} steps {1: W1, 2: W2} key by key."""
    params = {"W": {1: np.ones((3, 2)), 2: np.ones((1, 3))}, "b": {1: np.zeros((3, 1)), 2: np.zeros((1, 1))}}
    grads = {"b": {2: np.full((1, 1), 4.0), 1: np.full((3, 1), 3.0)},
             "W": {2: np.full((1, 3), 2.0), 1: np.full((3, 2), 1.0)}}
    for name in ("sgd", "momentum", "rmsprop", "adam"):
        new, state = reference.optimizer_step(name, params, grads, learning_rate=0.5)
        new, state = reference.optimizer_step(name, new, grads, state, learning_rate=0.5)
        for key in ("W", "b"):
            for l in (1, 2):
                expected, _ = reference.optimizer_step(name, params[key][l], grads[key][l], learning_rate=0.5)
                expected, _ = reference.optimizer_step(name, expected, grads[key][l], _, learning_rate=0.5)
                np.testing.assert_array_equal(new[key][l], expected)
    with pytest.raises(ValueError, match="structure"):
        reference.adam_step(params, {"W": grads["W"]})
    with pytest.raises(ValueError, match="structure"):
        reference.sgd_step(np.ones(3), np.ones(4))


def test_optimizer_step_refusals():
    with pytest.raises(ValueError, match="adagrad"):
        reference.optimizer_step("adagrad", np.ones(1), np.ones(1))
    with pytest.raises(ValueError, match="beta3"):
        reference.optimizer_step("adam", np.ones(1), np.ones(1), beta3=0.5)
    with pytest.raises(ValueError, match="momentum"):
        reference.sgd_step(np.ones(1), np.ones(1), nesterov=True)


# ---------------------------------------------------------------------------
# optimizers against torch.optim
# ---------------------------------------------------------------------------

TORCH_OPTIMIZERS = [
    ("sgd", {}, "SGD", {"lr": 0.01}),
    ("sgd", {"learning_rate": 0.3}, "SGD", {"lr": 0.3}),
    ("momentum", {"learning_rate": 0.05}, "SGD", {"lr": 0.05, "momentum": 0.9}),
    ("sgd", {"learning_rate": 0.05, "momentum": 0.7}, "SGD", {"lr": 0.05, "momentum": 0.7}),
    ("nesterov", {"learning_rate": 0.05}, "SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    ("rmsprop", {}, "RMSprop", {"lr": 0.01, "alpha": 0.99, "eps": 1e-8}),
    ("rmsprop", {"learning_rate": 0.002, "alpha": 0.9, "eps": 1e-6}, "RMSprop",
     {"lr": 0.002, "alpha": 0.9, "eps": 1e-6}),
    ("adam", {}, "Adam", {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8}),
    ("adam", {"learning_rate": 0.05, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6}, "Adam",
     {"lr": 0.05, "betas": (0.8, 0.99), "eps": 1e-6}),
    ("adamw", {}, "AdamW", {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01}),
    ("adamw", {"learning_rate": 0.05, "weight_decay": 0.3}, "AdamW",
     {"lr": 0.05, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.3}),
]


@pytest.mark.parametrize("name, hyper, torch_name, torch_hyper", TORCH_OPTIMIZERS,
                         ids=[f"{case[0]}-{i}" for i, case in enumerate(TORCH_OPTIMIZERS)])
def test_optimizer_matches_torch_optim(name, hyper, torch_name, torch_hyper):
    """Six steps on three parameter arrays (one param group), float64, random gradients."""
    torch = torch_or_skip()
    rng = np.random.default_rng(3)
    params = {"W": rng.standard_normal((4, 3)), "b": rng.standard_normal((4, 1)),
              "gamma": 1 + 0.1 * rng.standard_normal((4, 1))}
    tensors = {key: torch.tensor(value, requires_grad=True) for key, value in params.items()}
    optimizer = getattr(torch.optim, torch_name)(list(tensors.values()), **torch_hyper)
    state = None
    for _ in range(6):
        grads = {key: rng.standard_normal(value.shape) * rng.choice([0.01, 1.0, 100.0])
                 for key, value in params.items()}
        params, state = reference.optimizer_step(name, params, grads, state, **hyper)
        for key, tensor in tensors.items():
            tensor.grad = torch.from_numpy(grads[key].copy())
        optimizer.step()
        for key, tensor in tensors.items():
            np.testing.assert_allclose(params[key], tensor.detach().numpy(), rtol=1e-13, atol=1e-15)
    assert state["t"] == 6
