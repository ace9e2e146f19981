"""mlpcore.preprocessing: Standardizer and one_hot on (n0, m) arrays, one column per example;
mlpcore.datasets, the generated sets laid out the same way."""

import numpy as np
import pytest

from mlpcore.datasets import two_spirals, xor
from mlpcore.preprocessing import NotFittedError, Standardizer, one_hot


def data(n0=4, m=50, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n0, m)) * [[1.0], [10.0], [0.01], [3.0]][:n0] + [[5.0], [-2.0], [0.0], [100.0]][:n0]


def test_standardizer_fit_transform():
    X = data()
    scaler = Standardizer()
    assert scaler.fit(X) is scaler
    assert scaler.mean_.shape == (4, 1) and scaler.scale_.shape == (4, 1)
    assert scaler.mean_.dtype == np.float64 and scaler.scale_.dtype == np.float64
    np.testing.assert_allclose(scaler.mean_, X.mean(axis=1, keepdims=True), rtol=1e-14)
    # population standard deviation (divided by m)
    np.testing.assert_allclose(scaler.scale_, X.std(axis=1, ddof=0, keepdims=True), rtol=1e-14)
    Xs = scaler.transform(X)
    assert Xs.shape == X.shape and Xs.dtype == np.float64
    np.testing.assert_allclose(Xs.mean(axis=1), 0, atol=1e-14)
    np.testing.assert_allclose(Xs.std(axis=1), 1, rtol=1e-13)
    np.testing.assert_allclose(Standardizer().fit_transform(X), Xs, rtol=1e-15)
    np.testing.assert_allclose(scaler.inverse_transform(Xs), X, rtol=1e-13, atol=1e-13)
    assert "n0 = 4" in repr(scaler)


def test_standardizer_hand_values_and_new_data():
    X = np.array([[1.0, 3.0], [10.0, 10.0], [0.0, 4.0]])
    scaler = Standardizer().fit(X)
    np.testing.assert_array_equal(scaler.mean_, [[2.0], [10.0], [2.0]])
    # the constant feature gets scale 1, never a division by zero
    np.testing.assert_array_equal(scaler.scale_, [[1.0], [1.0], [2.0]])
    np.testing.assert_array_equal(scaler.transform(X), [[-1.0, 1.0], [0.0, 0.0], [-1.0, 1.0]])
    # new data is transformed with the training statistics, any m
    np.testing.assert_array_equal(scaler.transform([[2.0], [12.0], [8.0]]), [[0.0], [2.0], [3.0]])
    np.testing.assert_array_equal(scaler.inverse_transform([[0.0], [2.0], [3.0]]), [[2.0], [12.0], [8.0]])


def test_standardizer_constant_features_with_rounding():
    """A constant feature whose mean rounds (0.1 * 3 / 3) is still mapped to exactly 0."""
    X = np.array([[0.1, 0.1, 0.1], [1e10 + 0.5, 1e10 + 0.5, 1e10 + 0.5], [1.0, 2.0, 3.0]])
    scaler = Standardizer().fit(X)
    np.testing.assert_array_equal(scaler.scale_[:2], [[1.0], [1.0]])
    np.testing.assert_array_equal(scaler.transform(X)[:2], np.zeros((2, 3)))
    assert np.all(np.isfinite(scaler.transform(X)))
    # a single example: every feature is constant
    single = Standardizer().fit(np.array([[3.0], [-1.0]]))
    np.testing.assert_array_equal(single.scale_, [[1.0], [1.0]])
    np.testing.assert_array_equal(single.transform([[3.0], [-1.0]]), [[0.0], [0.0]])


def test_standardizer_dtypes_and_layouts():
    X = data()
    X32 = X.astype(np.float32)
    scaler = Standardizer().fit(X32)
    Xs = scaler.transform(X32)
    assert Xs.dtype == np.float32
    np.testing.assert_allclose(Xs, Standardizer().fit_transform(X), rtol=1e-5, atol=1e-5)
    assert scaler.inverse_transform(Xs).dtype == np.float32
    ints = np.array([[1, 2, 3], [4, 4, 4]], dtype=np.int32)
    assert Standardizer().fit_transform(ints).dtype == np.float64
    # X_rows.T (F-ordered) and a strided view give the same results
    X_rows = np.ascontiguousarray(X.T)
    np.testing.assert_allclose(Standardizer().fit_transform(X_rows.T), Standardizer().fit_transform(X),
                               rtol=1e-15)
    wide = np.concatenate([X, X], axis=1)[:, ::2]
    np.testing.assert_allclose(Standardizer().fit(wide).mean_,
                               Standardizer().fit(np.ascontiguousarray(wide)).mean_, rtol=1e-15)
    # fit does not change its input
    before = X.copy()
    Standardizer().fit_transform(X)
    np.testing.assert_array_equal(X, before)


def test_standardizer_refuses():
    with pytest.raises(NotFittedError, match="fit"):
        Standardizer().transform(data())
    with pytest.raises(ValueError, match="fit"):   # NotFittedError is a ValueError
        Standardizer().inverse_transform(data())
    scaler = Standardizer().fit(data())
    with pytest.raises(ValueError, match="n0 = 4"):
        scaler.transform(data(n0=3))
    with pytest.raises(ValueError, match="n0 = 4"):
        scaler.inverse_transform(np.ones((5, 2)))
    with pytest.raises(ValueError, match="2-D"):
        scaler.transform(np.ones(4))
    with pytest.raises(ValueError, match="2-D"):
        Standardizer().fit(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match="at least one example"):
        Standardizer().fit(np.ones((4, 0)))
    bad = data()
    bad[1, 3] = np.nan
    with pytest.raises(ValueError, match="finite"):
        Standardizer().fit(bad)
    bad[1, 3] = np.inf
    with pytest.raises(ValueError, match="finite"):
        scaler.transform(bad)
    for wrong in (np.ones((4, 3), dtype=bool), np.ones((4, 3), dtype=complex), np.array([["a"] * 3] * 4)):
        with pytest.raises(TypeError, match="real numbers"):
            Standardizer().fit(wrong)
    # a refused fit leaves an earlier fit in place
    mean = scaler.mean_.copy()
    with pytest.raises(ValueError):
        scaler.fit(bad)
    np.testing.assert_array_equal(scaler.mean_, mean)


def test_standardizer_refuses_a_longdouble_beyond_float64():
    """Finite in an x86 longdouble, inf in float64, in which the statistics are computed (where
    longdouble is float64, 1e4000 is inf there already, and refused as such)."""
    X = np.array([[np.longdouble("1e4000"), 1, 2]], dtype=np.longdouble)
    with pytest.raises(ValueError, match="X holds values beyond float64's range|finite"):
        Standardizer().fit(X)


def test_standardizer_is_finite_for_values_near_the_largest_float():
    """Sums and squares of such values overflow float64; the statistics and results must not."""
    largest = np.finfo(np.float64).max
    scaler = Standardizer().fit([[1e200, -1e200]])
    np.testing.assert_array_equal(scaler.scale_, [[1e200]])
    np.testing.assert_array_equal(scaler.transform([[1e200, -1e200]]), [[1.0, -1.0]])
    X = np.array([[1.7e308, 1.7e308, -1.7e308], [largest] * 3, [1e300, 3e300, -2e300]])
    scaler = Standardizer().fit(X)
    # mean 1.7e308 / 3 and standard deviation 1.7e308 sqrt(8) / 3; a constant feature of the largest float
    np.testing.assert_allclose(scaler.mean_[:2], [[1.7e308 / 3], [largest]], rtol=1e-15)
    np.testing.assert_allclose(scaler.scale_[:2], [[1.7e308 / 3 * np.sqrt(8)], [1.0]], rtol=1e-15)
    np.testing.assert_allclose(scaler.scale_[2], np.std([1.0, 3.0, -2.0]) * 1e300, rtol=1e-15)
    X_scaled = scaler.transform(X)
    np.testing.assert_allclose(X_scaled[0], [0.5 ** 0.5, 0.5 ** 0.5, -2 ** 0.5], rtol=1e-15)
    np.testing.assert_array_equal(X_scaled[1], [0.0] * 3)
    np.testing.assert_allclose(X_scaled.std(axis=1), [1.0, 0.0, 1.0], rtol=1e-14)
    np.testing.assert_allclose(scaler.inverse_transform(X_scaled), X, rtol=1e-15)


@pytest.mark.parametrize("fit_X, method, X, pattern", [
    ([[0.0, 1e-300]], "transform", [[1e300]], "row.? 0, example .column. 0: its standardised value is inf.*float64"),
    (np.float32([[0.0, 1.0], [0.0, 1.0]]), "transform", np.float32([[0.5, 0.5], [0.5, 3e38]]),
     "row.? 1, example .column. 1: its standardised value is 6e\\+38.*float32"),
    (np.float32([[0.0, 1e38]]), "inverse_transform", np.float32([[8.0]]), "its value in the original units.*float32"),
], ids=["transform_beyond_float64", "transform_beyond_float32", "inverse_beyond_float32"])
def test_standardizer_refuses_results_beyond_the_output_dtype(fit_X, method, X, pattern):
    """A result the output dtype cannot hold is refused, naming its feature and example, never inf."""
    with pytest.raises(ValueError, match=pattern):
        getattr(Standardizer().fit(fit_X), method)(X)


def test_one_hot():
    Y = one_hot([2, 0, 1, 2], 3)
    assert Y.shape == (3, 4) and Y.dtype == np.float64
    np.testing.assert_array_equal(Y, [[0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 1]])
    np.testing.assert_array_equal(one_hot(np.array([1.0, 0.0]), np.int64(2)), [[0, 1], [1, 0]])
    np.testing.assert_array_equal(one_hot(np.array([0], dtype=np.uint8), 1), [[1.0]])
    assert one_hot([], 4).shape == (4, 0)
    labels = np.random.default_rng(0).integers(0, 10, size=1000)
    np.testing.assert_array_equal(one_hot(labels, 10).argmax(axis=0), labels)
    np.testing.assert_array_equal(one_hot(labels, 10).sum(axis=0), 1.0)


@pytest.mark.parametrize("labels, K, error, pattern", [
    ([0, 3], 3, ValueError, "0..2"),
    ([-1, 0], 3, ValueError, "0..2"),
    ([1e30], 3, ValueError, r"0\.\.2 .* from 1e\+30"),
    (np.array([2**64 - 1], dtype=np.uint64), 3, ValueError, "0..2 .* from 18446744073709551615"),
    ([0.5, 1.0], 3, ValueError, "whole"),
    ([np.nan], 3, ValueError, "whole"),
    ([[0, 1]], 3, ValueError, "1-D"),
    ([0, 1], 0, ValueError, "K"),
    ([0, 1], 2.0, TypeError, "K"),
    ([0, 1], True, TypeError, "K"),
    (["a", "b"], 2, TypeError, "labels"),
    ([True, False], 2, TypeError, "labels"),
])
def test_one_hot_refuses(labels, K, error, pattern):
    with pytest.raises(error, match=pattern):
        one_hot(labels, K)


@pytest.mark.parametrize("m", [2, 3, 5, 400, 401])
def test_two_spirals_gives_exactly_m_points_the_first_spiral_taking_the_odd_one(m):
    X, y = two_spirals(m=m, dtype=np.float32)
    assert X.shape == (2, m) and X.dtype == np.float32
    assert y.shape == (m,) and y.dtype == np.int64
    assert np.bincount(y).tolist() == [m - m // 2, m // 2]


@pytest.mark.parametrize("kwargs, pattern", [
    pytest.param({"m": -2}, r"m must be an int >= 2", id="negative_m"),
    pytest.param({"m": 0}, r"m must be an int >= 2", id="m_0"),
    pytest.param({"m": 1}, r"m must be an int >= 2", id="m_1"),
    pytest.param({"m": 10.0}, r"m must be an int >= 2", id="float_m"),
    pytest.param({"turns": 0}, r"turns must be a finite real number > 0", id="no_turns"),
    pytest.param({"turns": np.nan}, r"turns must be a finite real number > 0", id="nan_turns"),
    pytest.param({"noise": -0.1}, r"noise must be a finite real number >= 0", id="negative_noise"),
    pytest.param({"seed": -1}, r"seed must be an integer >= 0 or None, got -1", id="negative_seed"),
    pytest.param({"seed": 1.5}, r"seed must be an integer >= 0 or None, got 1\.5", id="float_seed"),
    pytest.param({"dtype": np.int8}, r"dtype must be a float dtype such as np\.float32, got int8", id="int_dtype"),
    pytest.param({"dtype": "no"}, r"dtype must be a float dtype such as np\.float32, got 'no'", id="no_dtype"),
    pytest.param({"turns": 1e308}, r"turns = 1e\+308 and noise = 0\.05 give points that are not finite in float64",
                 id="turns_without_a_sine"),
    pytest.param({"noise": 1e5, "dtype": np.float16}, r"give points that are not finite in float16",
                 id="noise_beyond_float16"),
])
def test_two_spirals_refuses(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        two_spirals(**kwargs)


def test_xor_refuses_an_integer_dtype():
    with pytest.raises(ValueError, match=r"dtype must be a float dtype such as np\.float32, got int64"):
        xor(dtype=np.int64)


@pytest.mark.parametrize("dtype, fractions", [
    (np.float64, [-1.0, 0.46]), (np.float64, [-1.0, -0.02]), (np.float64, [1.0, 0.25, -1.0]),
    (np.float32, [1.0, 0.87, 0.5]), (np.float32, [1.0, 0.38, 0.11]), (np.float32, [-1.0, 1.0, -1.0]),
])
def test_standardizer_gives_back_values_at_the_edge_of_the_range(dtype, fractions):
    """transform then inverse_transform of the largest float gives it back: a result beyond it by
    rounding only is the largest float, not refused as beyond the range."""
    largest = float(np.finfo(dtype).max)
    X = (np.array([fractions]) * largest).astype(dtype)
    scaler = Standardizer().fit(X)
    back = scaler.inverse_transform(scaler.transform(X))
    assert back.dtype == dtype
    np.testing.assert_allclose(back, X, rtol=0, atol=4 * np.finfo(dtype).eps * largest)
    assert abs(float(back[0, 0])) == largest


def test_standardizer_still_refuses_values_truly_beyond_the_range():
    largest = np.finfo(np.float64).max
    scaler = Standardizer().fit([[-largest, 0.46 * largest]])
    with pytest.raises(ValueError, match=r"example \(column\) 0: its value in the original units is -inf"):
        scaler.inverse_transform([[-1.001]])


def test_standardizer_of_X_transposed_hints_at_X_T():
    scaler = Standardizer().fit(data(n0=3))
    with pytest.raises(ValueError, match=r"n0 = 3 rows .* got shape \(50, 3\): one column per example, pass X\.T"):
        scaler.transform(data(n0=3).T)
    with pytest.raises(ValueError, match=r"got shape \(4, 2\)$"):  # not the transpose: no hint
        scaler.inverse_transform(np.ones((4, 2)))
