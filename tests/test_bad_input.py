"""Bad input is refused at the boundary.

Each case asserts the exception type, that the message names what was
expected or what came (a loose regex), and that the network's parameters
are exactly as they were before the refused call.
"""

import copy
import re

import numpy as np
import pytest

import mlpcore

M = 10  # examples in the good batch


def make_net(cost, dtype="float32", seed=0):
    """A small network of each cost: n = [3, 5, 2] (mse, bce) or [3, 5, 4] (cce)."""
    if cost == "mse":
        return mlpcore.Network([3, 5, 2], ["tanh", "identity"], "mse", dtype=dtype, seed=seed)
    if cost == "bce":
        return mlpcore.Network([3, 5, 2], ["relu", "sigmoid"], "bce", dtype=dtype, seed=seed)
    return mlpcore.Network([3, 5, 4], ["relu", "softmax"], "cce", dtype=dtype, seed=seed)


def good_X(m=M, dtype=np.float32):
    return np.random.default_rng(0).standard_normal((3, m)).astype(dtype)


def good_Y(cost, m=M, dtype=np.float32):
    rng = np.random.default_rng(1)
    if cost == "mse":
        return rng.standard_normal((2, m)).astype(dtype)
    if cost == "bce":
        return rng.integers(0, 2, size=(2, m)).astype(dtype)
    return rng.integers(0, 4, size=m)


def assert_refused(net, call, error, pattern):
    """call() raises error with a message matching pattern; net.params unchanged."""
    before = np.array(net.params, copy=True)
    with pytest.raises(error, match=pattern):
        call()
    np.testing.assert_array_equal(net.params, before)


def _copies(result, names):
    """Copies of the arrays `names` of a Cache or Gradients (none of None), keyed by name and layer."""
    return {(name, l): np.array(getattr(result, name)[l]) for name in names for l in getattr(result, name)} \
        if result is not None else {}


def assert_unchanged(result, copies):
    for (name, l), copy in copies.items():
        np.testing.assert_array_equal(getattr(result, name)[l], copy)


# ---------------------------------------------------------------------------
# X
# ---------------------------------------------------------------------------

SHAPE = r"(?i)n0|n\[0\]|rows|shape|feature|expected"


def _with(value, dtype=np.float32, where=(1, 4)):
    X = good_X(dtype=dtype)
    X[where] = value
    return X


BAD_X = [
    pytest.param(good_X()[:2], ValueError, SHAPE, id="rows_less_than_n0"),
    pytest.param(np.vstack([good_X(), good_X()[:1]]), ValueError, SHAPE, id="rows_more_than_n0"),
    pytest.param(good_X()[:, 0], ValueError, r"(?i)ndim|dimension|2-d|2d|shape", id="ndim_1"),
    pytest.param(good_X()[:, :, None], ValueError, r"(?i)ndim|dimension|2-d|2d|shape",
                 id="ndim_3"),
    pytest.param(np.zeros((3, 0), np.float32), ValueError,
                 r"(?i)\bm\b|empty|example|zero|column|batch|at least", id="m_is_0"),
    pytest.param(good_X() > 0, TypeError, r"(?i)dtype|bool", id="bool"),
    pytest.param(good_X().astype(np.complex64), TypeError, r"(?i)dtype|complex", id="complex"),
    pytest.param(good_X().astype(object), TypeError, r"(?i)dtype|object", id="object"),
    pytest.param(good_X().astype(str), TypeError, r"(?i)dtype|str|<U|unicode", id="str"),
    pytest.param(_with(np.nan), ValueError, r"(?i)nan|finite", id="nan"),
    pytest.param(_with(np.inf), ValueError, r"(?i)inf|finite", id="inf"),
    pytest.param(_with(-np.inf, dtype=np.float64), ValueError, r"(?i)inf|finite",
                 id="minus_inf_float64"),
    pytest.param(_with(-1e300, dtype=np.float64), ValueError,
                 r"X holds values beyond the range of float32 \(\|x\| <= 3\.403e\+38\), which would become inf: "
                 r"make the network with dtype='float64', or scale the data", id="beyond_float32"),
]


def test_X_and_Y_given_one_row_per_example_are_refused_with_the_way_out():
    """A student's first slip, X (m, n[0]) or Y (m, n[L]) with one row per example: the message
    says to pass the transpose (and, where they fit, the 1-D forms)."""
    net = mlpcore.Network([3, 4, 1], ["tanh", "sigmoid"], "bce", seed=0)
    X, y = np.ones((3, 10), np.float32), np.arange(10) % 2
    for call in (lambda: net.forward(X.T), lambda: net.predict(X.T), lambda: net.fit(X.T, y, verbose=0)):
        assert_refused(net, call, ValueError, r"got shape \(10, 3\): one column per example, pass X\.T$")
    assert_refused(net, lambda: net.backward(net.forward(X), y[:, None]), ValueError,
                   r"^Y must be \(n\[L\], m\) with n\[L\] = 1, or of shape \(m,\), got shape \(10, 1\): one "
                   r"column per example, pass Y\.T$")
    assert_refused(net, lambda: net.fit(X, y[:, None], verbose=0), ValueError,
                   r"got \(10, 1\): one column per example, pass Y\.T$")
    softmax = mlpcore.Network([3, 4, 2], ["tanh", "softmax"], "cce", seed=0)
    assert_refused(softmax, lambda: softmax.backward(softmax.forward(X), y[:, None]), ValueError,
                   r"with n\[L\] = 2, or integer labels of shape \(m,\), got shape \(10, 1\)$")
    assert_refused(softmax, lambda: softmax.fit(X, y[:, None], verbose=0), ValueError,
                   r"got \(10, 1\); cce's class labels go as shape \(m,\) = \(10,\): pass Y\.ravel\(\)$")


def test_a_1d_X_is_refused_with_the_reshape_that_makes_it_a_matrix():
    """One example as a vector of n[0] values, or, with n[0] = 1, m examples of one value."""
    net = mlpcore.Network([3, 4, 1], ["tanh", "sigmoid"], "bce", seed=0)
    for call in (lambda: net.predict(np.ones(3)), lambda: net.forward(np.ones(3))):
        assert_refused(net, call, ValueError, r"got shape \(3,\): one example is a column, pass X\.reshape\(-1, 1\)$")
    one_feature = mlpcore.Network([1, 4, 1], ["tanh", "sigmoid"], "bce", seed=0)
    assert_refused(one_feature, lambda: one_feature.predict(np.ones(10)), ValueError,
                   r"got shape \(10,\): one column per example, pass X\.reshape\(1, -1\)$")


@pytest.mark.parametrize("into", ["a_new_cache", "its_out_cache"])
@pytest.mark.parametrize("X, error, pattern", BAD_X)
def test_forward_refuses_bad_X(X, error, pattern, into):
    """Refused, the network unchanged, and the out cache too (forward into it looks at X in the core)."""
    net = make_net("cce")
    cache = net.forward(good_X()) if into == "its_out_cache" else None
    before = _copies(cache, ("Z", "A"))
    assert_refused(net, lambda: net.forward(X, out=cache), error, pattern)
    assert_unchanged(cache, before)


@pytest.mark.parametrize("X, error, pattern", BAD_X)
def test_predict_refuses_bad_X(X, error, pattern):
    """Refused, the network unchanged, predict's cache still there for the next call (of the
    same m as before)."""
    net = make_net("bce")
    net.predict(good_X())
    assert net._core.predict_cache_capacity == good_X().shape[1]
    assert_refused(net, lambda: net.predict(X), error, pattern)
    assert net._core.predict_cache_capacity == good_X().shape[1]


@pytest.mark.parametrize("cost", ["bce", "cce"])
def test_predict_refuses_labels_of_an_output_that_overflowed(cost):
    """Finite X whose forward overflows to a NaN A[L] (inf - inf in Z[2]): no label, a ValueError
    that says why, the network unchanged; mse gives its NaN A[L] as it is."""
    output = {"bce": "sigmoid", "cce": "softmax"}[cost]
    net = mlpcore.Network([2, 4, 3], ["identity", output], cost, seed=0)
    X = np.array([[3e38, 1.0], [3e38, 1.0]], np.float32)  # the first column overflows
    net.W[1][...] = 1
    net.W[2][:, :2] = [[1, -1]] * 3
    assert_refused(net, lambda: net.predict(X), ValueError, r"A\[L\] contains NaN or inf, of which no label")
    assert net.predict(X[:, 1:]).shape == ((1,) if cost == "cce" else (3, 1))
    regression = mlpcore.Network([2, 4, 3], ["identity", "identity"], "mse", seed=0)
    regression.W[1][...] = 1
    regression.W[2][:, :2] = [[1, -1]] * 3
    assert np.isnan(regression.predict(X)[:, 0]).all() and np.isfinite(regression.predict(X)[:, 1]).all()


# ---------------------------------------------------------------------------
# Y (through backward and through cost)
# ---------------------------------------------------------------------------

FINITE = r"(?i)nan|inf|finite"
TARGETS = r"(?i)\[0, ?1\]|0 and 1|range|target|between|outside|probabilit"
LABELS = r"(?i)label|class|range|0\.\.|n\[L\]"
Y_SHAPE = r"(?i)shape|rows|n\[L\]|nL|expected"


def _Y(cost, value, where=(1, 3)):
    Y = good_Y(cost)
    Y[where] = value
    return Y


BAD_Y = [
    pytest.param("mse", _Y("mse", np.nan), ValueError, FINITE, id="mse_nan"),
    pytest.param("mse", _Y("mse", np.inf), ValueError, FINITE, id="mse_inf"),
    pytest.param("bce", _Y("bce", np.nan), ValueError, FINITE, id="bce_nan"),
    pytest.param("cce", np.where(np.arange(4)[:, None] == good_Y("cce"), 1.0, np.nan),
                 ValueError, FINITE, id="cce_one_hot_nan"),
    pytest.param("mse", good_Y("mse")[:1], ValueError, Y_SHAPE, id="mse_rows_too_few"),
    pytest.param("mse", np.vstack([good_Y("mse")] * 2), ValueError, Y_SHAPE,
                 id="mse_rows_too_many"),
    pytest.param("mse", good_Y("mse")[0], ValueError, Y_SHAPE, id="mse_vector_but_nL_2"),
    pytest.param("mse", good_Y("mse")[:, :, None], ValueError, Y_SHAPE, id="mse_ndim_3"),
    pytest.param("cce", np.ones((3, M)), ValueError, Y_SHAPE, id="cce_one_hot_rows"),
    pytest.param("cce", good_Y("cce")[:-1], ValueError,  # backward's message, the cost's (not an (n[L], m) shape)
                 rf"(Y must hold the cache's m = {M} examples, got shape \({M - 1},\)|Y's labels must be of "
                 rf"shape \(m,\) = \({M},\), got \({M - 1},\))$", id="cce_labels_too_few"),
    pytest.param("cce", _Y("cce", 4, where=3), ValueError, LABELS, id="cce_label_equals_nL"),
    pytest.param("cce", _Y("cce", 100, where=3), ValueError, LABELS, id="cce_label_100"),
    pytest.param("cce", _Y("cce", -1, where=3), ValueError, LABELS, id="cce_label_negative"),
    pytest.param("cce", good_Y("cce").astype(np.uint64) + np.uint64(2**64 - 5), ValueError,
                 r"cce labels must lie in 0\.\.3, got 1844674407370955161\d", id="cce_label_uint64_max"),
    pytest.param("bce", _Y("bce", 1.5), ValueError, TARGETS, id="bce_target_above_1"),
    pytest.param("bce", _Y("bce", -0.5), ValueError, TARGETS, id="bce_target_below_0"),
    pytest.param("cce", 2 * (np.arange(4)[:, None] == good_Y("cce")).astype(np.float32),
                 ValueError, TARGETS, id="cce_one_hot_above_1"),
    pytest.param("mse", good_Y("mse").astype(np.complex128), TypeError,
                 r"(?i)dtype|complex", id="mse_complex"),
    pytest.param("mse", good_Y("mse").astype(np.float64) + np.where(np.arange(M) == 3, 1e39, 0.0), ValueError,
                 r"Y holds values beyond the range of float32", id="mse_beyond_float32"),
]


@pytest.mark.parametrize("into", ["new_gradients", "its_out_gradients"])
@pytest.mark.parametrize("cost, Y, error, pattern", BAD_Y)
def test_backward_refuses_bad_Y(cost, Y, error, pattern, into):
    """Refused, the network unchanged, and the out gradients too (backward into them looks at Y in the core)."""
    net = make_net(cost)
    cache = net.forward(good_X())
    grads = net.backward(cache, good_Y(cost)) if into == "its_out_gradients" else None
    before = _copies(grads, ("dW", "db", "dZ", "dA"))
    assert_refused(net, lambda: net.backward(cache, Y, out=grads), error, pattern)
    assert_unchanged(grads, before)


@pytest.mark.parametrize("cost, Y, error, pattern", BAD_Y)
def test_cost_refuses_bad_Y(cost, Y, error, pattern):
    net = make_net(cost)
    A_L = net.forward(good_X()).A[net.L]
    assert_refused(net, lambda: net.cost(A_L, Y), error, pattern)


def test_cost_refuses_what_is_not_the_output_layers_A_saying_which_to_pass():
    """cache.A (all layers), the cache itself, or a hidden layer's A: each named, not blamed on its values."""
    net = mlpcore.Network([3, 8, 1], ["tanh", "sigmoid"], "bce", seed=0)
    cache = net.forward(good_X())
    y = np.arange(cache.A[0].shape[1]) % 2
    for given in (cache.A, cache, net.backward(cache, y), dict(cache.A)):
        assert_refused(net, lambda: net.cost(given, y), TypeError,
                       rf"^A_L must be the array A\[L\], got a {type(given).__name__}: pass cache\.A\[net\.L\]$")
    assert_refused(net, lambda: net.cost(cache.A[1], y), ValueError,
                   r"^A\[L\] must have n\[L\] = 1 rows, got shape \(8, \d+\): pass cache\.A\[net\.L\]")
    assert_refused(net, lambda: net.cost(cache.A[net.L].T, y), ValueError,
                   r"^A\[L\] must have n\[L\] = 1 rows, got shape \(\d+, 1\): one column per example, pass A_L\.T$")


@pytest.mark.parametrize("into", ["new_gradients", "its_out_gradients"])
@pytest.mark.parametrize("cache_kind", ["inference_forward", "never_forwarded"])
def test_backward_refuses_a_cache_of_no_training_forward(cache_kind, into):
    """Refused, the out gradients unchanged: there are no training-mode Z and A to go back through."""
    net = make_net("mse")
    grads = net.backward(net.forward(good_X()), good_Y("mse")) if into == "its_out_gradients" else None
    before = _copies(grads, ("dW", "db", "dZ", "dA"))
    cache = net.forward(good_X(), training=False) if cache_kind == "inference_forward" else mlpcore.Cache(net, M)
    assert_refused(net, lambda: net.backward(cache, good_Y("mse"), out=grads), ValueError,
                   r"backward needs a cache from a training-mode forward: net\.forward\(X\) \(training=True, the "
                   r"default; not training=False, nor a cache that no forward has filled\)$")
    assert_unchanged(grads, before)


@pytest.mark.parametrize("call, error, pattern", [
    pytest.param(lambda net, cache, grads: net.forward(good_X()[:2], out=cache, training="no"), ValueError, SHAPE,
                 id="forward_X_before_training"),
    pytest.param(lambda net, cache, grads: net.forward(good_X(), out=grads, training="no"), TypeError,
                 r"out must be a mlpcore\.Cache", id="forward_out_before_training"),
    pytest.param(lambda net, cache, grads: net.backward("cache", good_Y("mse"), out=grads, compute_dA0="no"),
                 TypeError, r"cache must be a mlpcore\.Cache", id="backward_cache_before_compute_dA0"),
    pytest.param(lambda net, cache, grads: net.backward(cache, good_Y("mse")[:1], out=grads, compute_dA0="no"),
                 TypeError, r"compute_dA0 must be True or False", id="backward_compute_dA0_before_Y"),
])
def test_of_two_bad_arguments_the_first_checked_is_named(call, error, pattern):
    """forward checks X, then out, then training; backward the cache, out, compute_dA0, then Y,
    into an out= of the batch's m as into new results."""
    net = make_net("mse")
    cache = net.forward(good_X())
    grads = net.backward(cache, good_Y("mse"))
    assert_refused(net, lambda: call(net, cache, grads), error, pattern)


@pytest.mark.parametrize("into", ["new_gradients", "its_out_gradients"])
@pytest.mark.parametrize("cost", ["mse", "bce", "cce"])
@pytest.mark.parametrize("m", [M - 1, M + 1])
def test_backward_refuses_Y_whose_m_differs_from_cache(m, cost, into):
    """The message gives the shape of the Y passed, (m,) for labels or a vector."""
    net = make_net(cost)
    cache = net.forward(good_X())
    grads = net.backward(cache, good_Y(cost)) if into == "its_out_gradients" else None
    Y = good_Y(cost, m=m)
    assert_refused(net, lambda: net.backward(cache, Y, out=grads), ValueError,
                   rf"^Y must hold the cache's m = {M} examples, got shape {re.escape(str(Y.shape))}$")


# ---------------------------------------------------------------------------
# construction
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("n, activations, cost, kwargs, pattern", [
    pytest.param([3, 5, 2], ["relu", "swish"], "mse", {}, "swish", id="unknown_activation"),
    pytest.param([3, 5, 2], [("relu", {"alpha": 0.1}), "identity"], "mse", {}, "alpha",
                 id="alpha_for_relu"),
    pytest.param([3, 5, 2], [("elu", {"beta": 1.0}), "identity"], "mse", {}, "beta",
                 id="unknown_activation_param"),
    pytest.param([3, 5, 2], ["relu", "identity"], "hinge", {}, "hinge", id="unknown_cost"),
    pytest.param([3, 5, 2], ["relu", "identity"], "mse", {"init": "lecun"}, "lecun",
                 id="unknown_init"),
    pytest.param([3, 5, 2], ["relu", "identity"], "mse", {"init": ["he", "lecun"]}, "lecun",
                 id="unknown_init_in_list"),
    pytest.param([3, 5, 4], ["softmax", "softmax"], "cce", {}, "(?i)softmax|hidden",
                 id="softmax_hidden"),
    pytest.param([3, 5, 2], ["relu", "softmax"], "mse", {}, "(?i)softmax|mse",
                 id="softmax_with_mse"),
    pytest.param([3, 5, 2], ["tanh", "relu"], "bce", {}, "(?i)sigmoid|bce",
                 id="bce_with_relu"),
    pytest.param([3, 5, 2], ["tanh", "sigmoid"], "cce", {}, "(?i)softmax|cce",
                 id="cce_with_sigmoid"),
    pytest.param([3, 5, 1], ["tanh", "softmax"], "cce", {},
                 r"(?i)softmax.*(n\[L\]|unit|>= ?2)|(n\[L\]|unit).*softmax",
                 id="softmax_single_unit"),
    pytest.param([3, 5, 2], ["relu"], "mse", {}, "(?i)activation",
                 id="too_few_activations"),
    pytest.param([3, 5, 2], ["relu", "relu", "relu"], "mse", {}, "(?i)activation",
                 id="too_many_activations"),
    pytest.param([3, 0, 2], ["relu", "relu"], "mse", {}, r"(?i)size|n\b|>= ?1|positive",
                 id="zero_width_layer"),
    # refused before any allocation: the float64 draw of W would take 16 GB, 75 GB, or fail to convert
    pytest.param([2**31, 1], ["sigmoid"], "mse", {}, r"1\.\.2\^31-1 units", id="layer_of_2^31_units"),
    pytest.param([2, 100_000, 100_000], ["relu", "identity"], "mse", {}, r"W\[2\] has more than 2\^31-1 entries",
                 id="W_of_10^10_entries"),
    pytest.param([2**63, 1], ["sigmoid"], "mse", {}, r"1\.\.2\^31-1 units", id="layer_of_2^63_units"),
    pytest.param([3, 2], ["identity"], "mse", {"init": 5}, r"init must be a name \(auto, .*\) or a list of L = 1",
                 id="init_int"),
    pytest.param([3, 2], ["identity"], "mse", {"init": None}, r"init must be a name", id="init_none"),
    pytest.param([3, 2], ["identity"], "mse", {"seed": -1}, r"seed must be an integer >= 0 or None; got -1",
                 id="negative_seed"),
    pytest.param([3, 2], ["identity"], "mse", {"seed": 1.5}, r"seed must be an integer >= 0 or None; got 1\.5",
                 id="float_seed"),
    pytest.param([3, 2], ["identity"], "mse", {"bias": 1e300}, r"bias must be a real number finite in float32",
                 id="bias_beyond_float32"),
    pytest.param([3, 2], ["identity"], "mse", {"bias": np.nan}, r"bias must be a real number finite", id="nan_bias"),
    pytest.param([3, 5, 2], [("elu", {"alpha": 1e300}), "identity"], "mse", {},
                 r"the alpha of elu must be finite in float32", id="alpha_beyond_float32"),
    pytest.param([3, 5, 2], ["relu", "identity"], "mse", {"dropout": [0.1, 0.2]},
                 r"dropout takes a sequence of 1 drop probabilities for layers 1\.\.L-1", id="dropout_length"),
    pytest.param([3, 5, 2], ["relu", "identity"], "mse", {"dropout": {0: 0.5}},
                 r"dropout takes a sequence of 1 drop probabilities for layers 1\.\.L-1, got \{0: 0\.5\}",
                 id="dropout_dict"),
    pytest.param([3, 5, 4], ["relu", "identity"], "mse", {"batch_norm": {True, False}},
                 r"batch_norm takes a sequence of 2 flags for layers 1\.\.L", id="batch_norm_set"),
    pytest.param([3, 5, 2], ["relu", "identity"], "mse", {"dropout": [1.0]}, r"dropout values must be in \[0, 1\)",
                 id="dropout_1"),
    pytest.param([3, 5, 2], ["relu", "identity"], "mse", {"batch_norm": [1, 0]}, r"batch_norm values must be bools",
                 id="batch_norm_ints"),
    pytest.param([3, 2], ["identity"], "mse", {"bn_eps": 0}, r"bn_eps must be a real number > 0", id="bn_eps_0"),
    pytest.param([3, 2], ["identity"], "mse", {"bn_eps": 1e-50, "dtype": "float32"},
                 r"bn_eps must be a real number > 0 finite in float32 \(and not rounding to 0 there\), got 1e-50",
                 id="bn_eps_rounding_to_0_in_float32"),
    pytest.param([3, 2], ["identity"], "mse", {"bn_eps": 1e300, "dtype": "float32"},
                 r"bn_eps must be a real number > 0 finite in float32", id="bn_eps_beyond_float32"),
    pytest.param([3, 2], ["identity"], "mse", {"bn_momentum": 2}, r"bn_momentum must be a real number in \[0, 1\]",
                 id="bn_momentum_2"),
])
def test_construction_refuses(n, activations, cost, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        mlpcore.Network(n, activations, cost, **kwargs)


def test_construction_refuses_a_dtype_of_None():
    """np.dtype(None) is float64; Network's default is float32: None names neither."""
    with pytest.raises(TypeError, match=r"^dtype must be float32 or float64, got None$"):
        mlpcore.Network([3, 2], ["identity"], "mse", dtype=None)


@pytest.mark.parametrize("n", [5, None, "352", {3, 40, 2}, {3: 1, 2: 1}], ids=["int", "none", "str", "set", "dict"])
def test_construction_refuses_layer_sizes_that_are_not_a_sequence(n):
    with pytest.raises(TypeError, match=r"layer sizes n must be a sequence of ints \(n\[0\], \.\.\., n\[L\]\)"):
        mlpcore.Network(n, ["relu", "identity"], "mse")


@pytest.mark.parametrize("activations", [None, "relu", {"relu", "identity"}, {1: "relu", 2: "identity"}],
                         ids=["none", "str", "set", "dict"])
def test_construction_refuses_activations_that_are_not_a_sequence(activations):
    with pytest.raises(ValueError, match=r"activations must be a list of L = 2 specs, one per layer"):
        mlpcore.Network([3, 5, 2], activations, "mse")


# ---------------------------------------------------------------------------
# caches and grads from elsewhere
# ---------------------------------------------------------------------------

def test_backward_refuses_cache_of_another_architecture():
    net, other = make_net("mse"), mlpcore.Network([3, 6, 2], ["tanh", "identity"], "mse")
    cache = other.forward(good_X())
    assert_refused(net, lambda: net.backward(cache, good_Y("mse")), ValueError,
                   r"(?i)cache|network")


def test_backward_refuses_cache_of_another_network_of_same_architecture():
    net, other = make_net("mse"), make_net("mse", seed=1)
    cache = other.forward(good_X())
    assert_refused(net, lambda: net.backward(cache, good_Y("mse")), ValueError,
                   r"(?i)cache|network")


@pytest.mark.parametrize("m", [M - 1, M + 1])
def test_forward_refuses_out_cache_of_another_batch_size(m):
    net = make_net("bce")
    cache = net.forward(good_X(m=m))
    assert_refused(net, lambda: net.forward(good_X(), out=cache), ValueError,
                   rf"(?i)\bm\b|batch|example|column|size|{M}|{m}")


def test_forward_refuses_out_cache_of_another_network():
    net, other = make_net("bce"), make_net("bce", seed=1)
    cache = other.forward(good_X())
    assert_refused(net, lambda: net.forward(good_X(), out=cache), ValueError,
                   r"(?i)cache|network")


def test_forward_refuses_out_cache_of_another_dtype():
    net, other = make_net("bce"), make_net("bce", dtype="float64")
    cache = other.forward(good_X())
    assert_refused(net, lambda: net.forward(good_X(), out=cache), ValueError,
                   r"(?i)cache|network|dtype")


def test_backward_refuses_cache_of_another_dtype():
    net, other = make_net("mse"), make_net("mse", dtype="float64")
    cache = other.forward(good_X())
    assert_refused(net, lambda: net.backward(cache, good_Y("mse")), ValueError,
                   r"(?i)cache|network|dtype")


@pytest.mark.parametrize("other", ["architecture", "same_architecture", "batch_size", "dtype"])
def test_backward_refuses_out_grads_from_elsewhere(other):
    """out= grads must come from this network, for this batch size (as for forward's out=)."""
    net = make_net("mse")
    cache = net.forward(good_X())
    if other == "architecture":
        source = mlpcore.Network([3, 6, 2], ["tanh", "identity"], "mse")
    elif other == "dtype":
        source = make_net("mse", dtype="float64")
    elif other == "same_architecture":
        source = make_net("mse", seed=1)
    else:
        source = net
    m = M + 1 if other == "batch_size" else M
    grads = source.backward(source.forward(good_X(m=m)), good_Y("mse", m=m))
    assert_refused(net, lambda: net.backward(cache, good_Y("mse"), out=grads), ValueError,
                   rf"(?i)grad|network|dtype|\bm\b|batch|example|{M + 1}")


def test_update_refuses_grads_of_another_architecture():
    net = make_net("cce")
    other = mlpcore.Network([3, 7, 4], ["relu", "softmax"], "cce")
    grads = other.backward(other.forward(good_X()), good_Y("cce"))
    assert_refused(net, lambda: net.update(grads, 0.1), ValueError,
                   r"(?i)grad|network")


def test_update_refuses_grads_of_another_network_of_same_architecture():
    net, other = make_net("cce"), make_net("cce", seed=1)
    grads = other.backward(other.forward(good_X()), good_Y("cce"))
    assert_refused(net, lambda: net.update(grads, 0.1), ValueError,
                   r"(?i)grad|network")


def test_update_refuses_grads_of_another_dtype():
    net, other = make_net("cce"), make_net("cce", dtype="float64")
    grads = other.backward(other.forward(good_X()), good_Y("cce"))
    assert_refused(net, lambda: net.update(grads, 0.1), ValueError,
                   r"(?i)grad|network|dtype")


# ---------------------------------------------------------------------------
# learning rate
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("learning_rate", [np.nan, np.inf, -np.inf, -0.1, -1e-12],
                         ids=["nan", "inf", "minus_inf", "negative", "tiny_negative"])
def test_update_refuses_bad_learning_rate(learning_rate):
    net = make_net("mse")
    grads = net.backward(net.forward(good_X()), good_Y("mse"))
    assert_refused(net, lambda: net.update(grads, learning_rate), ValueError,
                   r"(?i)learning.rate|\blr\b")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_update_refuses_a_step_that_would_overflow_the_parameters(dtype):
    """Finite gradients and a finite learning rate whose product overflows: DivergenceError (a
    ValueError), nothing changed, as an optimizer's step does; a smaller rate then updates."""
    net = make_net("mse", dtype=dtype)
    grads = net.backward(net.forward(good_X(dtype=dtype)), good_Y("mse", dtype=dtype))
    huge = float(np.finfo(dtype).max) / 4
    grads.dW[1][...] = huge  # finite, but huge * learning_rate is not
    assert_refused(net, lambda: net.update(grads, 8.0), mlpcore.DivergenceError,
                   r"NaN or inf.*smaller learning rate.*nothing was changed")
    before = np.array(net.W[1])
    net.update(grads, 1e-30)
    assert not np.array_equal(net.W[1], before)
    assert np.all(np.isfinite(net.params))


# ---------------------------------------------------------------------------
# gradients that are not finite, and what is not a network or gradients
# ---------------------------------------------------------------------------

def _update(net, grads):
    net.update(grads, 0.1)


def _optimizer_step(net, grads):
    mlpcore.optim.SGD(momentum=0.9).step(net, grads)


@pytest.mark.parametrize("apply", [_update, _optimizer_step], ids=["update", "optimizer_step"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "minus_inf"])
@pytest.mark.parametrize("name", ["dW", "db", "dgamma", "dbeta"])
def test_updates_refuse_gradients_with_nan_or_inf(apply, value, name):
    """update and Optimizer.step leave the parameters bit for bit as they were."""
    net = mlpcore.Network([3, 5, 2], ["relu", "identity"], "mse", batch_norm=[True, False], seed=0)
    grads = net.backward(net.forward(good_X()), good_Y("mse"))
    getattr(grads, name)[1][0, 0] = value
    before = net.params.tobytes()
    assert_refused(net, lambda: apply(net, grads), ValueError,
                   r"the gradients contain NaN or inf: if a backward made them, the steps before diverged \(try a "
                   r"smaller learning rate\) or the scale of X or Y is too large")
    assert net.params.tobytes() == before


@pytest.mark.parametrize("apply", [_update, _optimizer_step], ids=["update", "optimizer_step"])
@pytest.mark.parametrize("written_by", ["backward", "hand"])
def test_updates_refuse_gradients_that_nothing_has_written(apply, written_by):
    """Gradients(net, m) are backward's out=: an update from them before anything has written them
    would be one of zeros, which an optimizer would count as a step. Refused; written by a
    backward, or by hand (a student's own dW[1]), they update."""
    net = make_net("mse")
    grads = mlpcore.Gradients(net, good_X().shape[1])
    assert_refused(net, lambda: apply(net, grads), ValueError,
                   r"^the gradients hold nothing: Gradients\(net, m\) are for net\.backward\(cache, Y, "
                   r"out=grads\), which fills them \(or write dW\[l\], db\[l\] into them yourself\)$")
    if written_by == "backward":
        net.backward(net.forward(good_X()), good_Y("mse"), out=grads)
    else:
        grads.dW[1][0, 0] = 1.0
    before = np.array(net.params)
    apply(net, grads)
    assert not np.array_equal(net.params, before)


@pytest.mark.parametrize("args, pattern", [
    pytest.param(("net", "x"), r"grads must be the mlpcore\.Gradients of a backward of net, got str", id="str_grads"),
    pytest.param(("net", None), r"grads must be the mlpcore\.Gradients .* got NoneType", id="no_grads"),
    pytest.param(("net", "cache"), r"grads must be the mlpcore\.Gradients .* got Cache", id="cache_as_grads"),
    pytest.param(("x", "grads"), r"net must be a mlpcore\.Network, got str", id="str_net"),
])
def test_optimizer_step_refuses_what_is_not_a_network_or_its_gradients(args, pattern):
    net = make_net("mse")
    cache = net.forward(good_X())
    given = {"net": net, "cache": cache, "grads": net.backward(cache, good_Y("mse"))}
    opt = mlpcore.optim.Adam()
    assert_refused(net, lambda: opt.step(*(given.get(arg, arg) for arg in args)), TypeError, pattern)
    assert opt.t == 0 and opt.state == []


@pytest.mark.parametrize("change", [0.9, 0.0], ids=["momentum_from_0", "momentum_to_0"])
@pytest.mark.parametrize("through", ["step", "fit", "core"])
def test_an_optimizer_whose_momentum_changed_to_or_from_0_after_its_state_was_made_is_refused(change, through):
    """SGD's state has a momentum buffer only with momentum: stepping with the other setting
    would read a buffer that is not there. Refused at a step, at fit and by the core itself,
    leaving the network and the state as they were."""
    net = make_net("mse")
    X, Y = good_X(), good_Y("mse")
    grads = net.backward(net.forward(X), Y)
    opt = mlpcore.optim.SGD(momentum=0.9 - change)
    opt.step(net, grads)
    opt.hyper["momentum"] = change
    state, t = [np.array(buffer) for buffer in opt.state], opt.t
    refused = {"step": lambda: opt.step(net, grads),
               "fit": lambda: net.fit(X, Y, epochs=1, optimizer=opt, verbose=0),
               "core": lambda: opt._state.step(opt.method, opt.hyper, net._core, grads._core, 0.1)}[through]
    assert_refused(net, refused, ValueError, r"made for .*other hyper-parameters .*call reset\(\) first")
    assert opt.t == t and all(np.array_equal(a, b) for a, b in zip(opt.state, state))
    opt.reset()
    opt.step(net, grads)  # a new state for the new momentum
    assert len(opt.state) == (1 if change else 0)


@pytest.mark.parametrize("name", ["params", "W", "b", "gamma", "beta", "running_mean", "running_var"])
def test_the_core_buffers_cannot_be_replaced(name):
    """net.params = saved would leave the core's parameters as they were without a word: refused,
    with the way to write into them."""
    net = mlpcore.Network([3, 5, 2], ["tanh", "identity"], "mse", batch_norm=[True, False], seed=0)
    shown = getattr(net, name)
    into = r"net\.params\[\.\.\.\] = values" if name == "params" else rf"net\.{name}\[l\] = values"
    for change in (lambda: setattr(net, name, np.zeros(net.params.size, np.float32)), lambda: delattr(net, name)):
        assert_refused(net, change, AttributeError,
                       rf"net\.{name} shows the core's memory and cannot be replaced; write into it instead: {into}")
    assert getattr(net, name) is shown


@pytest.mark.parametrize("name", ["L", "n", "activations", "cost_name", "dtype", "dropout", "batch_norm", "bn_eps",
                                  "bn_momentum"])
def test_the_architecture_cannot_be_reassigned(name):
    net = make_net("mse")
    before = getattr(net, name)
    assert_refused(net, lambda: setattr(net, name, before), AttributeError,
                   rf"net\.{name} is fixed when the network is made; make a new Network for another")
    assert getattr(net, name) == before


@pytest.mark.parametrize("name, value, described", [
    ("optimizer", "adam", "a mlpcore.optim.Optimizer"), ("optimizer", mlpcore.optim.Adam, "a mlpcore.optim.Optimizer"),
    ("history", 5, "a dict of per-epoch lists"), ("history", [1.0], "a dict of per-epoch lists")])
def test_the_optimizer_and_history_take_their_kind_or_none(name, value, described):
    """net.optimizer = "adam" would fail later, in fit or reset_optimizer, with an AttributeError:
    refused at the assignment; an Optimizer, a dict and None are taken."""
    net = make_net("mse")
    assert_refused(net, lambda: setattr(net, name, value), TypeError,
                   rf"^net\.{name} must be {described} or None, got {type(value).__name__}$")
    assert getattr(net, name) is None
    good = mlpcore.optim.Adam() if name == "optimizer" else {"cost": [1.0]}
    setattr(net, name, good)
    assert getattr(net, name) is good
    setattr(net, name, None)
    assert getattr(net, name) is None


def _huge_learning_rate(opt):
    opt.learning_rate = 1e300  # finite in float64, inf in the float32 network's step


def _huge_weight_decay(opt):
    opt.hyper["weight_decay"] = 1e300  # p (1 - lr weight_decay) flips p to -inf


@pytest.mark.parametrize("optimizer, diverge", [
    pytest.param(mlpcore.optim.SGD, _huge_learning_rate, id="sgd"),
    pytest.param(lambda: mlpcore.optim.SGD(momentum=0.9), _huge_learning_rate, id="momentum"),
    pytest.param(mlpcore.optim.Adam, _huge_learning_rate, id="adam"),
    pytest.param(mlpcore.optim.AdamW, _huge_weight_decay, id="adamw"),
])
def test_a_step_that_would_overflow_changes_nothing(optimizer, diverge):
    """A step whose new parameters or state would not be finite raises DivergenceError and
    leaves the parameters, the state and t as after the last good step."""
    net = make_net("mse")
    grads = net.backward(net.forward(good_X()), good_Y("mse"))
    opt = optimizer()
    opt.step(net, grads)
    diverge(opt)
    state, t = [np.array(buffer) for buffer in opt.state], opt.t
    assert_refused(net, lambda: opt.step(net, grads), mlpcore.DivergenceError, r"nothing was changed")
    assert opt.t == t == 1 and all(np.array_equal(a, b) for a, b in zip(opt.state, state))


@pytest.mark.parametrize("value", [-0.1, np.nan, np.inf, "0.1", None], ids=["negative", "nan", "inf", "str", "none"])
def test_an_optimizer_refuses_a_learning_rate_set_later(value):
    opt = mlpcore.optim.SGD()
    with pytest.raises(ValueError, match=r"learning_rate must be a finite real number >= 0"):
        opt.learning_rate = value
    assert opt.learning_rate == 0.01


def test_an_optimizer_refuses_a_hyper_parameter_of_another_type_set_later():
    net = make_net("mse")
    grads = net.backward(net.forward(good_X()), good_Y("mse"))
    opt = mlpcore.optim.SGD(momentum=0.9)
    opt.step(net, grads)
    opt.hyper["momentum"] = "x"
    state = [np.array(buffer) for buffer in opt.state]
    assert_refused(net, lambda: opt.step(net, grads), TypeError,
                   r"hyper-parameter 'momentum' of optimizer 'sgd' must be a real number, got 'x'")
    assert opt.t == 1 and np.array_equal(opt.state[0], state[0])


def test_an_optimizers_hyper_parameters_must_stay_a_dict():
    opt = mlpcore.optim.Adam()
    with pytest.raises(TypeError, match=r"^hyper must be a dict of hyper-parameters keyed by name, got NoneType$"):
        opt.hyper = None
    assert opt.hyper == {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}


@pytest.mark.parametrize("make, name, value, error, pattern", [
    (lambda: mlpcore.optim.Adam(), "beta1", 1.5, ValueError,
     r"hyper-parameter 'beta1' of optimizer 'adam' must be a real number in \[0, 1\), got 1\.5"),
    (lambda: mlpcore.optim.Adam(), "beta2", 1.0, ValueError, r"'beta2' of optimizer 'adam' must be .* got 1\.0"),
    (lambda: mlpcore.optim.RMSprop(), "alpha", -0.1, ValueError, r"'alpha' of optimizer 'rmsprop' must be"),
    (lambda: mlpcore.optim.AdamW(), "eps", -1.0, ValueError,
     r"'eps' of optimizer 'adamw' must be a finite real number > 0, got -1\.0"),
    (lambda: mlpcore.optim.AdamW(), "weight_decay", np.inf, ValueError, r"'weight_decay' of optimizer 'adamw'"),
    (lambda: mlpcore.optim.SGD(momentum=0.9), "momentum", -5.0, ValueError,
     r"'momentum' of optimizer 'sgd' must be a finite real number >= 0, got -5\.0"),
    (lambda: mlpcore.optim.SGD(momentum=0.9, nesterov=True), "momentum", 0.0, ValueError,
     r"nesterov needs momentum > 0"),
    (lambda: mlpcore.optim.SGD(momentum=0.9), "nesterov", "no", TypeError,
     r"hyper-parameter 'nesterov' of optimizer 'sgd' must be True or False, got 'no'"),
    (lambda: mlpcore.optim.SGD(momentum=0.9), "momentum", True, TypeError,
     r"hyper-parameter 'momentum' of optimizer 'sgd' must be a real number, got True"),
    (lambda: mlpcore.optim.Adam(), "eps", 10**400, ValueError,
     r"hyper-parameter 'eps' of optimizer 'adam' must be a finite real number, got 1000"),
    (lambda: mlpcore.optim.Adam(), "eps", 1e-50, ValueError,
     r"hyper-parameter 'eps' of optimizer 'adam' must not round to 0 in float32, got 1e-50"),
], ids=["beta1", "beta2", "alpha", "eps", "weight_decay", "momentum", "nesterov_without_momentum", "nesterov_str",
        "momentum_bool", "eps_beyond_float", "eps_rounding_to_0_in_float32"])
@pytest.mark.parametrize("through", ["step", "fit"])
def test_an_optimizer_refuses_a_hyper_parameter_out_of_range_set_later(make, name, value, error, pattern, through):
    """opt.hyper can be changed after the constructor checked it: each step and fit check it
    again, refusing what the constructor would, before anything changes."""
    net = make_net("mse")
    X, Y = good_X(), good_Y("mse")
    opt = make()
    opt.step(net, net.backward(net.forward(X), Y))
    opt.hyper[name] = value
    state, t = [np.array(buffer) for buffer in opt.state], opt.t
    call = {"step": lambda: opt.step(net, net.backward(net.forward(X), Y)),
            "fit": lambda: net.fit(X, Y, epochs=1, optimizer=opt, verbose=0)}[through]
    assert_refused(net, call, error, pattern)
    assert opt.t == t and all(np.array_equal(a, b) for a, b in zip(opt.state, state))


def test_an_eps_that_rounds_to_0_in_the_networks_dtype_is_refused_at_the_first_step():
    """1e-50 is a float64 > 0, which the constructor takes; a float32 network's step would divide
    a zero gradient by sqrt(v) + 0."""
    net = make_net("mse")
    opt = mlpcore.optim.Adam(eps=1e-50)
    grads = net.backward(net.forward(good_X()), good_Y("mse"))
    assert_refused(net, lambda: opt.step(net, grads), ValueError, r"'eps' of optimizer 'adam' must not round to 0")
    assert_refused(net, lambda: net.fit(good_X(), good_Y("mse"), optimizer=opt, verbose=0), ValueError,
                   r"'eps' of optimizer 'adam' must not round to 0 in float32")
    assert opt.t == 0 and net.optimizer is None
    net64 = make_net("mse", dtype="float64")
    opt.step(net64, net64.backward(net64.forward(good_X()), good_Y("mse")))
    assert opt.t == 1


def test_a_numpy_bool_is_a_bool_for_nesterov_set_later():
    net = make_net("mse")
    grads = net.backward(net.forward(good_X()), good_Y("mse"))
    opt = mlpcore.optim.SGD(momentum=0.9)
    opt.hyper["nesterov"] = np.True_
    opt.step(net, grads)
    assert opt.t == 1


def test_sgd_refuses_a_nesterov_that_is_not_a_bool():
    with pytest.raises(TypeError, match=r"nesterov must be True or False, got 'no'"):
        mlpcore.optim.SGD(momentum=0.9, nesterov="no")
    net = make_net("mse")
    assert_refused(net, lambda: net.fit(good_X(), good_Y("mse"), optimizer=("momentum", {"nesterov": "no"})),
                   ValueError, r"optimizer 'momentum': nesterov must be True or False, got 'no'")


@pytest.mark.parametrize("refusal", ["nan_gradients", "divergence"])
def test_a_refused_first_step_leaves_the_optimizer_without_state(refusal):
    """The state is made by the first step that is taken: a refused one leaves none, bound to no
    network, so that the optimizer still serves any network."""
    net, other = make_net("mse"), make_net("mse", seed=1)
    grads = net.backward(net.forward(good_X()), good_Y("mse"))
    opt = mlpcore.optim.SGD(momentum=0.9)
    if refusal == "nan_gradients":
        grads.dW[1][0, 0] = np.nan
        error, pattern = ValueError, r"the gradients contain NaN or inf"
    else:
        opt.learning_rate = 1e300  # finite in float64, inf in the float32 network's step
        error, pattern = mlpcore.DivergenceError, r"nothing was changed"
    assert_refused(net, lambda: opt.step(net, grads), error, pattern)
    assert opt.state == [] and opt.t == 0 and net.optimizer is None
    opt.learning_rate = 0.1
    opt.step(other, other.backward(other.forward(good_X()), good_Y("mse")))
    assert opt.t == 1 and other.optimizer is opt


HUGE = 10**400  # an int beyond the float range: float(HUGE) raises OverflowError


@pytest.mark.parametrize("call, pattern", [
    (lambda net, X, Y, grads: net.update(grads, HUGE), r"^learning_rate must be finite in float32 and >= 0"),
    (lambda net, X, Y, grads: net.fit(X, Y, learning_rate=HUGE, verbose=0),
     r"^learning_rate must be a number >= 0 finite in float32"),
    (lambda net, X, Y, grads: net.fit(X, Y, l2=HUGE, verbose=0), r"^l2 must be a number >= 0 finite in float32"),
    (lambda net, X, Y, grads: net.fit(X, Y, clip_norm=HUGE, verbose=0),
     r"^clip_norm must be None or a number > 0 finite in float32"),
    (lambda net, X, Y, grads: net.fit(X, Y, validation_fraction=HUGE, verbose=0),
     r"^validation_fraction must lie in \(0, 1\)"),
    (lambda net, X, Y, grads: net.fit(X, Y, epochs=HUGE, schedule=("step", {"gamma": 2.0}), verbose=0),
     r"^the schedule .* takes the learning rate from 0\.01 to 4\.35561e\+38 at epoch 1351 of this fit's 1000"),
    (lambda net, X, Y, grads: mlpcore.optim.Adam(learning_rate=HUGE), r"^learning_rate must be a finite real number"),
    (lambda net, X, Y, grads: mlpcore.optim.Adam(eps=HUGE), r"^eps must be a finite real number > 0"),
    (lambda net, X, Y, grads: mlpcore.Network([3, 2], ["identity"], "mse", bias=HUGE),
     r"^bias must be a real number finite"),
    (lambda net, X, Y, grads: mlpcore.Network([3, 2], ["identity"], "mse", bn_eps=HUGE),
     r"^bn_eps must be a real number > 0 finite"),
    (lambda net, X, Y, grads: mlpcore.Network([3, 4, 2], ["relu", "identity"], "mse", dropout=[HUGE]),
     r"^dropout values must be in \[0, 1\)"),
    (lambda net, X, Y, grads: mlpcore.Network([3, 2], [("elu", {"alpha": HUGE})], "mse"),
     r"^alpha of 'elu' must be a finite real number"),
    (lambda net, X, Y, grads: mlpcore.schedules.parse_schedule(("exponential", {"gamma": HUGE})),
     r"^gamma of schedule 'exponential' must be a finite number > 0"),
], ids=["update", "fit_learning_rate", "fit_l2", "fit_clip_norm", "fit_validation_fraction", "fit_epochs_schedule",
        "adam_learning_rate", "adam_eps", "bias", "bn_eps", "dropout", "elu_alpha", "schedule_gamma"])
def test_an_int_beyond_the_float_range_is_refused_with_the_name_of_what_it_was(call, pattern):
    """A ValueError naming the argument, not OverflowError from converting it to float."""
    net = make_net("mse")
    X, Y = good_X(), good_Y("mse")
    grads = net.backward(net.forward(X), Y)
    assert_refused(net, lambda: call(net, X, Y, grads), ValueError, pattern)


def test_refused_calls_leave_a_working_network():
    """After a series of refused calls the network still matches a twin that saw none."""
    net, twin = make_net("cce", seed=5), make_net("cce", seed=5)
    X, Y = good_X(), good_Y("cce")
    cache = net.forward(X)
    grads = net.backward(cache, Y)
    for call in (lambda: net.forward(X[:2]),
                 lambda: net.backward(cache, Y[:5]),
                 lambda: net.update(grads, np.nan),
                 lambda: net.backward(cache, Y + 10)):
        with pytest.raises((ValueError, TypeError)):
            call()
    for network in (net, twin):
        network.update(network.backward(network.forward(X), Y), 0.5)
    np.testing.assert_array_equal(net.params, twin.params)


# ---------------------------------------------------------------------------
# memory the core cannot use as given
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("matrix", ["Z", "A"])
def test_forward_refuses_X_that_shares_memory_with_its_out_cache(matrix):
    """forward would write Z[1] or A[1] while it reads X from it: refused before any write."""
    net = mlpcore.Network([5, 5, 2], ["tanh", "identity"], "mse", seed=0)
    cache = net.forward(np.random.default_rng(0).standard_normal((5, M)).astype(np.float32))
    before = {l: (np.array(cache.Z[l]), np.array(cache.A[l])) for l in (1, 2)}
    X = getattr(cache, matrix)[1]
    assert_refused(net, lambda: net.forward(X, out=cache), ValueError, r"X shares memory with the cache")
    for l, (Z, A) in before.items():
        np.testing.assert_array_equal(cache.Z[l], Z)
        np.testing.assert_array_equal(cache.A[l], A)


@pytest.mark.parametrize("target", ["dA0", "dW"])
def test_backward_refuses_a_cache_whose_X_shares_memory_with_its_out_gradients(target):
    """backward writes dA[0] and dW[1] while it reads X: an X forwarded from the gradients' own
    dA[0] (or dW[l]) gave a wrong dW[1], silently. Refused before any write."""
    net = mlpcore.Network([5, 5, 5], ["tanh", "identity"], "mse", seed=0)
    X = np.random.default_rng(0).standard_normal((5, 5)).astype(np.float32)
    Y = np.ones((5, 5), np.float32)
    grads = net.backward(net.forward(X), Y, compute_dA0=True)
    before = _copies(grads, ["dW", "db", "dA"])
    X_of_grads = grads.dA[0] if target == "dA0" else grads.dW[2]
    cache = net.forward(X_of_grads)
    assert_refused(net, lambda: net.backward(cache, Y, out=grads, compute_dA0=True), ValueError,
                   r"the cache's X shares memory with the gradients the backward writes into")
    assert_unchanged(grads, before)
    copied = net.backward(net.forward(np.array(X_of_grads)), Y)  # a copy of X is the way out
    assert np.all(np.isfinite(copied.dW[1]))


@pytest.mark.parametrize("cost", ["mse", "cce"])
def test_backward_refuses_a_Y_that_shares_memory_with_its_out_gradients(cost):
    """backward writes dZ[L] = A[L] - Y: a Y (or cce's int64 labels) lying in the gradients' own
    dZ[L] gave wrong gradients, silently. Refused before any write."""
    n = [3, 4, 2]
    net = mlpcore.Network(n, ["tanh", "softmax" if cost == "cce" else "identity"], cost, dtype="float64", seed=0)
    X = np.random.default_rng(0).standard_normal((3, 8))
    labels = np.array([0, 1, 1, 0, 1, 0, 0, 1])
    Y = labels if cost == "cce" else np.ones((2, 8))
    cache = net.forward(X)
    grads = net.backward(cache, Y)
    before = _copies(grads, ["dW", "db"])
    if cost == "cce":  # the labels written into dZ[2]'s memory as int64
        Y_in_grads = np.asarray(grads.dZ[2]).reshape(-1, order="F")[:8].view(np.int64)
        Y_in_grads[...] = labels
    else:
        Y_in_grads = grads.dZ[2]
    assert_refused(net, lambda: net.backward(cache, Y_in_grads, out=grads), ValueError,
                   r"Y shares memory with the gradients the backward writes into")
    assert_unchanged(grads, before)


def test_an_X_not_aligned_to_its_dtype_is_copied_not_read_in_place():
    """A float array at an odd address (a view into bytes) is legal NumPy but not for the core's
    kernels: it is read from an aligned copy, with the same numbers."""
    net = mlpcore.Network([3, 4, 2], ["tanh", "identity"], "mse", dtype="float64", seed=0)
    X = np.random.default_rng(0).standard_normal((3, 6))
    raw = np.zeros(X.nbytes + 1, np.uint8)
    unaligned = np.ndarray(X.shape, np.float64, buffer=raw, offset=1, order="F")
    unaligned[...] = X
    assert not unaligned.flags.aligned and not net._core.reads_in_place(unaligned)
    expected = net.forward(X, training=False).A[2]
    np.testing.assert_array_equal(net.forward(unaligned, training=False).A[2], expected)
    np.testing.assert_array_equal(net.predict(unaligned), net.predict(X))
    fitted = [copy.deepcopy(net) for _ in range(2)]
    for fitted_net, given in zip(fitted, (X, unaligned)):
        fitted_net.fit(given, np.ones((2, 6)), epochs=2, batch_size=3, seed=0, verbose=0)
    np.testing.assert_array_equal(fitted[1].params, fitted[0].params)


def test_cce_labels_not_aligned_to_int64_are_copied_not_read_in_place():
    net = mlpcore.Network([3, 4, 3], ["tanh", "softmax"], "cce", dtype="float64", seed=0)
    X, y = np.random.default_rng(0).standard_normal((3, 6)), np.array([0, 2, 1, 1, 0, 2])
    raw = np.zeros(y.nbytes + 1, np.uint8)
    unaligned = np.ndarray(y.shape, np.int64, buffer=raw, offset=1)
    unaligned[...] = y
    assert not unaligned.flags.aligned and net._targets(unaligned).flags.aligned  # Python's path copies them
    expected = net.backward(net.forward(X), y)
    cache = net.forward(X)
    for grads in (net.backward(cache, unaligned), net.backward(cache, unaligned, out=mlpcore.Gradients(net, 6))):
        np.testing.assert_array_equal(grads.dW[1], expected.dW[1])
    assert net.cost(net.forward(X).A[2], unaligned) == net.cost(net.forward(X).A[2], y)
    fitted = [copy.deepcopy(net) for _ in range(2)]
    for fitted_net, labels in zip(fitted, (y, unaligned)):
        fitted_net.fit(X, labels, epochs=2, batch_size=3, seed=0, verbose=0)
    np.testing.assert_array_equal(fitted[1].params, fitted[0].params)


@pytest.mark.parametrize("m", [2**31, 2**63, np.uint64(2**64 - 1), 10**40, 0, -2**70])
@pytest.mark.parametrize("make", [mlpcore.Cache, mlpcore.Gradients], ids=["cache", "gradients"])
def test_buffers_for_more_examples_than_blas_takes_are_refused(make, m):
    net = make_net("mse")
    with pytest.raises(ValueError, match=rf"1 <= m < 2\^31 examples, got {int(m)}$"):
        make(net, m)


def test_a_leading_dimension_past_blas_int_is_copied_not_refused():
    """Unit-stride rows 2^31 items apart cannot be BLAS's leading dimension: such an X is
    copied (the view below is never read)."""
    reads_in_place = mlpcore.Network([2, 1], ["identity"], "mse", dtype="float32")._core.reads_in_place
    base = np.zeros(4, np.float32)
    assert reads_in_place(np.lib.stride_tricks.as_strided(base, shape=(2, 2), strides=(4, 8)))
    assert not reads_in_place(np.lib.stride_tricks.as_strided(base, shape=(2, 2), strides=(4, 4 * 2**31)))


def _strides_of_part_of_an_item(kind):
    """float32 X (2, 2) with columns 10 bytes apart (2.5 items), or X (7, 1) whose one column's
    stride, which NumPy does not look at, is 10 bytes; a field of a structured array, whose rows
    are 18 bytes apart."""
    numbers = np.arange(40, dtype=np.float32)
    if kind == "columns_10_bytes_apart":
        return np.lib.stride_tricks.as_strided(numbers, shape=(2, 2), strides=(4, 10))
    if kind == "one_column_of_stride_10_bytes":
        return np.lib.stride_tricks.as_strided(numbers, shape=(7, 1), strides=(4, 10))
    records = np.zeros(3, [("x", "f4", (7,)), ("flag", "i2")])
    records["x"] = numbers[:21].reshape(3, 7)
    return records["x"].T


@pytest.mark.parametrize("kind", ["columns_10_bytes_apart", "one_column_of_stride_10_bytes", "structured_field"])
@pytest.mark.parametrize("call", ["forward", "predict"])
def test_strides_of_part_of_an_item_are_read_or_copied_not_refused(call, kind):
    """A stride that matters and is no whole number of items (no leading dimension of BLAS's) is
    copied; one that does not matter (of an axis of length 1) is not looked at."""
    X = _strides_of_part_of_an_item(kind)
    net = mlpcore.Network([X.shape[0], 3], ["identity"], "mse", seed=0)
    answer = net.forward(X).A[1] if call == "forward" else net.predict(X)
    assert type(answer) is np.ndarray or call == "forward"
    np.testing.assert_array_equal(answer, net.predict(X.copy()))


@pytest.mark.parametrize("call", [
    pytest.param(lambda net: net.forward(good_X(), training="no"), id="forward_training"),
    pytest.param(lambda net: net.backward(net.forward(good_X()), good_Y("mse"), compute_dA0="no"),
                 id="backward_compute_dA0"),
])
def test_flags_must_be_true_or_false(call):
    """A string such as "no" would otherwise count as true."""
    net = make_net("mse")
    assert_refused(net, lambda: call(net), TypeError, r"(training|compute_dA0) must be True or False, got 'no'")


@pytest.mark.parametrize("make", [mlpcore.Cache, mlpcore.Gradients], ids=["cache", "gradients"])
@pytest.mark.parametrize("m, error, pattern", [
    ("x", TypeError, r"m must be an int \(the number of examples\), got 'x'"),
    (True, TypeError, r"m must be an int \(the number of examples\), got True"),
    (2.0, TypeError, r"m must be an int"),
    (0, ValueError, r"needs 1 <= m < 2\^31 examples, got 0"),
])
def test_buffers_for_m_that_is_not_a_count_of_examples_are_refused(make, m, error, pattern):
    with pytest.raises(error, match=pattern):
        make(make_net("mse"), m)


def test_buffers_of_what_is_not_a_network_are_refused():
    with pytest.raises(TypeError, match=r"network must be a mlpcore\.Network, got str"):
        mlpcore.Cache("net", 3)


@pytest.mark.parametrize("cost", ["bce", "cce"])
@pytest.mark.parametrize("value", [-0.1, 5.0])
def test_the_cost_refuses_outputs_that_are_not_probabilities(cost, value):
    """bce and cce take A[L] as probabilities: 5 would give a cce cost near 0, silently."""
    net = make_net(cost)
    A_L = np.array(net.forward(good_X()).A[net.L])
    A_L[0, 0] = value
    assert_refused(net, lambda: net.cost(A_L, good_Y(cost)), ValueError,
                   rf"A\[L\] of a {cost} network holds probabilities in \[0, 1\], got values from")


@pytest.mark.parametrize("make, error, pattern", [
    pytest.param(lambda: mlpcore.optim.SGD(learning_rate=-1), ValueError,
                 r"learning_rate must be a finite real number >= 0", id="negative_learning_rate"),
    pytest.param(lambda: mlpcore.optim.SGD(momentum=-0.1), ValueError, r"momentum must be a finite real number >= 0",
                 id="negative_momentum"),
    pytest.param(lambda: mlpcore.optim.SGD(momentum="x"), ValueError, r"momentum must be a finite real number",
                 id="str_momentum"),
    pytest.param(lambda: mlpcore.optim.SGD(nesterov=True), ValueError, r"nesterov needs momentum > 0",
                 id="nesterov_without_momentum"),
    pytest.param(lambda: mlpcore.optim.RMSprop(alpha=1), ValueError, r"alpha must lie in \[0, 1\)", id="alpha_1"),
    pytest.param(lambda: mlpcore.optim.Adam(beta1=1.0), ValueError, r"beta1 must lie in \[0, 1\)", id="beta1_1"),
    pytest.param(lambda: mlpcore.optim.Adam(beta2=1.5), ValueError, r"beta2 must lie in \[0, 1\)", id="beta2_above_1"),
    pytest.param(lambda: mlpcore.optim.Adam(eps=0), ValueError, r"eps must be a finite real number > 0", id="eps_0"),
    pytest.param(lambda: mlpcore.optim.AdamW(weight_decay=-1), ValueError,
                 r"weight_decay must be a finite real number >= 0", id="negative_weight_decay"),
    pytest.param(lambda: mlpcore.optim.Adam(beta3=0.1), TypeError, r"unexpected keyword argument 'beta3'",
                 id="unknown_hyper_parameter"),
])
def test_optimizers_refuse_bad_hyper_parameters(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()
