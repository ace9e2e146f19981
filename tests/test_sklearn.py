"""mlpcore.sklearn: MLPClassifier and MLPRegressor as scikit-learn estimators.

scikit-learn's own estimator checks, every one of them run and none allowed to
skip; scikit-learn's MLP as the oracle of the coefs_/intercepts_ layout, the
outputs and the stopping rule; Pipeline, GridSearchCV, cross_val_score, pickling.
"""

import contextlib
import copy
import pickle
import subprocess
import sys
import warnings
from unittest import SkipTest

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", reason="scikit-learn is not installed (pip install 'mlpcore[sklearn]')")

import joblib  # noqa: E402  (scikit-learn depends on it)
from sklearn import neural_network  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import make_blobs, make_multilabel_classification, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils import check_random_state  # noqa: E402
from sklearn.utils._param_validation import InvalidParameterError  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402
from sklearn.utils.validation import check_is_fitted  # noqa: E402

import mlpcore  # noqa: E402
from mlpcore.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

# short fits that stop at max_iter warn, as scikit-learn's do; the tests of the warning use pytest.warns
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def parametrize_with_all_checks(estimators):
    """scikit-learn's parametrize_with_checks, its checks made a list (pytest 9.2 deprecates a generator)."""
    mark = parametrize_with_checks(estimators)
    names, checks = mark.args
    return pytest.mark.parametrize(names, list(checks), **mark.kwargs)


@parametrize_with_all_checks([MLPClassifier(), MLPRegressor()])
def test_sklearn_estimator_checks(estimator, check, monkeypatch):
    # the array-API check runs (on NumPy input) only with SCIPY_ARRAY_API set; pandas is in the test extra
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")
    try:
        check(estimator)
    except SkipTest as skip:
        pytest.fail(f"the estimator check was skipped, and every check must run: {skip}")


def blobs(n_samples=120, centers=3, seed=0):
    X, y = make_blobs(n_samples=n_samples, centers=centers, n_features=4, cluster_std=1.0, random_state=seed)
    return StandardScaler().fit_transform(X), y


def sklearn_twin(estimator, X, y):
    """scikit-learn's own MLP with the same architecture, holding estimator's coefs_ and intercepts_."""
    cls = neural_network.MLPClassifier if isinstance(estimator, MLPClassifier) else neural_network.MLPRegressor
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        twin = cls(hidden_layer_sizes=estimator.hidden_layer_sizes, activation=estimator.activation,
                   max_iter=1).fit(X, y)
    twin.coefs_ = [np.array(W) for W in estimator.coefs_]
    twin.intercepts_ = [np.array(b) for b in estimator.intercepts_]
    return twin


def test_coefs_and_intercepts_are_the_networks_parameters_in_sklearn_layout():
    X, y = blobs()
    clf = MLPClassifier(hidden_layer_sizes=(7, 5), random_state=0, max_iter=30).fit(X, y)
    net = clf.network_
    assert [W.shape for W in clf.coefs_] == [(4, 7), (7, 5), (5, 3)]
    assert [b.shape for b in clf.intercepts_] == [(7,), (5,), (3,)]
    for l in range(1, net.L + 1):
        np.testing.assert_array_equal(clf.coefs_[l - 1], net.W[l].T)
        np.testing.assert_array_equal(clf.intercepts_[l - 1], net.b[l][:, 0])
    clf.coefs_[0][0, 0] = 42.0  # views: writing through them changes the network
    assert net.W[1][0, 0] == 42.0
    assert clf.n_layers_ == 4 and clf.n_outputs_ == 3 and clf.n_features_in_ == 4


@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
@pytest.mark.parametrize("target", ["binary", "multiclass", "multilabel", "regression", "regression-2d"])
def test_outputs_match_sklearns_mlp_with_the_same_parameters(activation, target):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((40, 3))
    if target.startswith("regression"):
        y = X @ rng.standard_normal((3, 2 if target == "regression-2d" else 1))
        y = y.ravel() if target == "regression" else y
        estimator = MLPRegressor(hidden_layer_sizes=(6, 4), activation=activation, max_iter=20, random_state=0)
    else:
        y = {"binary": (X[:, 0] > 0).astype(int), "multiclass": np.digitize(X[:, 0], [-0.5, 0.5]),
             "multilabel": (X[:, :2] > 0).astype(int)}[target]
        estimator = MLPClassifier(hidden_layer_sizes=(6, 4), activation=activation, max_iter=20, random_state=0)
    estimator.fit(X, y)
    twin = sklearn_twin(estimator, X, y)
    assert estimator.out_activation_ == twin.out_activation_
    if isinstance(estimator, MLPRegressor):
        np.testing.assert_allclose(estimator.predict(X), twin.predict(X), rtol=1e-10, atol=1e-12)
    else:
        np.testing.assert_array_equal(estimator.predict(X), twin.predict(X))
        np.testing.assert_allclose(estimator.predict_proba(X), twin.predict_proba(X), rtol=1e-12)
        np.testing.assert_allclose(estimator.predict_log_proba(X), twin.predict_log_proba(X), rtol=1e-12)


def test_binary_multiclass_and_string_labels():
    X, y = blobs(centers=3)
    names = np.array(["ant", "bee", "cat"])[y]
    clf = MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.01, random_state=0).fit(X, names)
    assert list(clf.classes_) == ["ant", "bee", "cat"]
    assert clf.network_.cost_name == "cce" and clf.network_.n[-1] == 3
    assert clf.predict(X).dtype == names.dtype and clf.score(X, names) > 0.9
    np.testing.assert_allclose(clf.predict_proba(X).sum(axis=1), 1.0)
    binary = np.where(y == 0, "no", "yes")
    clf = MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.01, random_state=0).fit(X, binary)
    assert clf.network_.cost_name == "bce" and clf.network_.n[-1] == 1
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2) and clf.score(X, binary) > 0.9
    np.testing.assert_array_equal(clf.predict(X), np.where(proba[:, 1] > 0.5, "yes", "no"))
    np.testing.assert_array_equal(clf.decision_function(X) > 0, proba[:, 1] > 0.5)


def test_one_class_predicts_it_with_probability_one():
    """A documented difference: (n, 1) of ones, where scikit-learn's predict_proba gives (n, 2)."""
    X, _ = blobs(n_samples=20)
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(X, ["only"] * 20)
    assert list(clf.predict(X[:3])) == ["only"] * 3
    np.testing.assert_array_equal(clf.predict_proba(X[:3]), np.ones((3, 1)))
    theirs = neural_network.MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(X, ["only"] * 20)
    assert theirs.predict_proba(X[:3]).shape == (3, 2)


def test_binary_tie_at_one_half_predicts_classes_0_as_sklearn_does():
    """A documented difference from Network.predict, which gives 1 where A[L] >= 0.5."""
    X, y = blobs(centers=2)
    labels = np.array(["no", "yes"])[y]
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(X, labels)
    net = clf.network_
    net.W[net.L][...] = 0.0
    net.b[net.L][...] = 0.0  # Z[L] = 0: A[L] = sigmoid(0) = 0.5 exactly
    np.testing.assert_array_equal(clf.predict_proba(X), np.full((len(X), 2), 0.5))
    np.testing.assert_array_equal(clf.predict(X), np.full(len(X), "no"))
    np.testing.assert_array_equal(sklearn_twin(clf, X, labels).predict(X), clf.predict(X))
    np.testing.assert_array_equal(net.predict(X.T), np.ones((1, len(X))))


def test_multilabel_targets_train_one_sigmoid_per_label():
    X, Y = make_multilabel_classification(n_samples=150, n_features=6, n_classes=4, random_state=0)
    X = StandardScaler().fit_transform(X)
    clf = MLPClassifier(hidden_layer_sizes=(32,), learning_rate_init=0.01, max_iter=300, random_state=0).fit(X, Y)
    assert clf.network_.activations[-1][0] == "sigmoid" and clf.network_.cost_name == "bce"
    np.testing.assert_array_equal(clf.classes_, np.arange(4))
    assert clf.predict(X).shape == Y.shape and clf.predict_proba(X).shape == Y.shape
    assert np.mean(clf.predict(X) == Y) > 0.85


def test_regressor_takes_boolean_targets_as_numbers():
    X, y = blobs()
    regressor = MLPRegressor(hidden_layer_sizes=(4,), max_iter=3, random_state=0)
    assert regressor.fit(X, y == 1).predict(X).shape == (X.shape[0],)
    twin = MLPRegressor(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X, (y == 1).astype(float))
    np.testing.assert_array_equal(regressor.predict(X), twin.predict(X))


def test_constructor_parameters_are_sklearns_but_max_fun():
    """As README.md says (sklearn's parameters but lbfgs and max_fun), whatever sklearn's version."""
    for ours, theirs in ((MLPClassifier(), neural_network.MLPClassifier()),
                         (MLPRegressor(), neural_network.MLPRegressor())):
        assert set(theirs.get_params()) - set(ours.get_params()) == {"max_fun"}


def test_regressor_loss_is_squared_error_keyword_only():
    X, y = make_regression(n_samples=40, n_features=3, random_state=0)
    reg = clone(MLPRegressor(loss="squared_error", hidden_layer_sizes=(4,), max_iter=3, random_state=0))
    assert reg.get_params()["loss"] == "squared_error" == MLPRegressor().loss
    assert reg.fit(X, y).network_.cost_name == "mse"
    assert MLPRegressor((8,)).hidden_layer_sizes == (8,)  # loss is not the first positional parameter here


@pytest.mark.parametrize("loss", ["poisson", "absolute_error", None])
def test_regressor_refuses_other_losses_at_fit(loss):
    X, y = make_regression(n_samples=40, n_features=3, random_state=0)
    reg = MLPRegressor(loss=loss)  # taken as it is: parameters are checked at fit, as in scikit-learn
    assert reg.get_params()["loss"] == loss
    with pytest.raises(ValueError, match=r"loss must be 'squared_error' \(scikit-learn's 'poisson' is not supported\)"):
        reg.fit(X, y)
    assert not hasattr(reg, "network_")


def assert_owns_its_memory(array):
    """array holds its numbers itself, or is a view of the whole of a plain array that does (not of
    a forward's Cache, which would keep every layer's Z[l] and A[l] alive with it)."""
    owner = array if array.base is None else array.base
    assert type(owner) is np.ndarray and owner.base is None and owner.size == array.size
    assert array.flags.c_contiguous or array.flags.f_contiguous


@pytest.mark.parametrize("target", ["binary", "multiclass", "multilabel"])
@pytest.mark.parametrize("method", ["predict_proba", "predict_log_proba", "decision_function"])
def test_classifier_outputs_own_their_memory(target, method):
    X, y = blobs(centers=2 if target == "binary" else 3)
    y = (X[:, :3] > 0).astype(int) if target == "multilabel" else y
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(X, y)
    assert_owns_its_memory(getattr(clf, method)(X))


@pytest.mark.parametrize("n_targets", [1, 2])
def test_regressor_predictions_own_their_memory(n_targets):
    X, y = make_regression(n_samples=40, n_features=3, n_targets=n_targets, random_state=0)
    predictions = MLPRegressor(hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(X, y).predict(X)
    assert predictions.shape == y.shape
    assert_owns_its_memory(predictions)


def test_regressor_one_and_several_targets():
    X, y = make_regression(n_samples=150, n_features=5, n_targets=2, noise=1.0, random_state=0)
    y = y / y.std(axis=0)
    reg = MLPRegressor(hidden_layer_sizes=(32,), learning_rate_init=0.01, max_iter=300, random_state=0)
    assert reg.fit(X, y).predict(X).shape == (150, 2) and reg.score(X, y) > 0.95
    assert reg.network_.cost_name == "mse" and reg.network_.activations[-1][0] == "identity"
    assert reg.fit(X, y[:, 0]).predict(X).shape == (150,) and reg.score(X, y[:, 0]) > 0.95


class RecordingFit:
    """Wraps Network.fit to record the X each call hands to the core."""

    def __init__(self, monkeypatch):
        self.seen = []
        original = mlpcore.Network.fit

        def fit(net, X, *args, **kwargs):
            self.seen.append(X)
            return original(net, X, *args, **kwargs)

        monkeypatch.setattr(mlpcore.Network, "fit", fit)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_X_reaches_the_core_as_its_transpose_without_a_copy(monkeypatch, dtype):
    X, y = blobs()
    X = np.ascontiguousarray(X, dtype=dtype)
    recording = RecordingFit(monkeypatch)
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(X, y)
    (seen,) = recording.seen
    assert seen.shape == (4, len(X)) and seen.flags.f_contiguous and np.shares_memory(seen, X)
    assert clf.network_.dtype == dtype


@pytest.mark.parametrize("X_dtype, dtype, expected", [
    (np.float32, None, np.float32), (np.float64, None, np.float64), (np.int64, None, np.float64),
    (np.float64, "float32", np.float32), (np.float32, "float64", np.float64)])
def test_dtype_follows_X_unless_given(X_dtype, dtype, expected):
    X, y = blobs()
    X = (X * 10).astype(X_dtype)
    reg = MLPRegressor(hidden_layer_sizes=(8,), max_iter=3, dtype=dtype, random_state=0).fit(X, y.astype(float))
    assert reg.network_.dtype == expected
    assert reg.predict(X.astype(np.float64)).dtype == expected
    assert reg.coefs_[0].dtype == expected


def test_partial_fit_needs_classes_first_then_continues():
    X, y = blobs()
    clf = MLPClassifier(hidden_layer_sizes=(8,), random_state=0)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        clf.partial_fit(X, y)
    clf.partial_fit(X[y < 2], y[y < 2], classes=[0, 1, 2])
    assert list(clf.classes_) == [0, 1, 2] and clf.network_.n[-1] == 3
    t = clf.network_.optimizer.t
    for _ in range(3):
        clf.partial_fit(X, y)
    assert len(clf.loss_curve_) == 4 and clf.n_iter_ == 1 and clf.t_ == int((y < 2).sum()) + 3 * len(X)
    assert clf.network_.optimizer.t == t + 3  # one step per call (batch "auto" = all 120): the state carries on
    with pytest.raises(ValueError, match="not in classes_"):
        clf.partial_fit(X, np.full(len(X), 7))


def test_warm_start_continues_from_the_previous_network():
    X, y = blobs()
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, warm_start=True, tol=0, random_state=0)
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, y)
    net, W = clf.network_, clf.network_.W[1].copy()
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, y)
    assert clf.network_ is net and len(clf.loss_curve_) == 10 and clf.n_iter_ == 5
    assert clf.loss_curve_[5] < clf.loss_curve_[0]
    assert not np.array_equal(net.W[1], W)
    with pytest.raises(ValueError, match="warm_start needs y with the classes"):
        clf.fit(X[y < 2], y[y < 2])


@pytest.mark.parametrize("parameter, value", [("hidden_layer_sizes", (9, 3)), ("activation", "tanh"),
                                              ("batch_norm", True), ("dropout", 0.2), ("dtype", "float32")])
@pytest.mark.parametrize("method", ["warm_start", "partial_fit"])
def test_going_on_with_network_refuses_a_changed_architecture(parameter, value, method):
    X, y = blobs()
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, warm_start=method == "warm_start", random_state=0)
    clf.fit(X, y) if method == "warm_start" else clf.partial_fit(X, y, classes=[0, 1, 2])
    net, params = clf.network_, clf.network_.params.copy()
    clf.set_params(**{parameter: value})
    with pytest.raises(ValueError, match=f"{parameter} changed since network_ was built, and {method} goes on"):
        clf.fit(X, y) if method == "warm_start" else clf.partial_fit(X, y)
    assert clf.network_ is net and np.array_equal(net.params, params)


def test_warm_start_validation_scores_go_on_as_the_loss_curve_does():
    X, y = blobs()
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, tol=0, warm_start=True, early_stopping=True,
                        n_iter_no_change=10, random_state=0)
    clf.fit(X, y).fit(X, y)
    assert len(clf.loss_curve_) == len(clf.validation_scores_) == 6


def test_coefs_and_intercepts_take_new_arrays_as_sklearns():
    """Assigning coefs_ or intercepts_ (the list, or one of its items) copies the arrays into
    network_, as scikit-learn's estimator takes them: both then predict alike. A wrong count,
    shape or a value that is not a finite real number is refused, changing nothing."""
    X, y = blobs()
    ours = MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, dtype="float64", random_state=0).fit(X, y)
    theirs = neural_network.MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, random_state=1).fit(X, y)
    ours.coefs_ = [np.array(W) for W in theirs.coefs_]
    ours.intercepts_[0] = theirs.intercepts_[0]
    ours.intercepts_[-1] = list(theirs.intercepts_[1])
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-12)
    before = np.array(ours.network_.params)
    refusals = [(lambda: setattr(ours, "coefs_", theirs.coefs_[:1]), "coefs_ holds 2 arrays, one per layer; got 1"),
                (lambda: ours.coefs_.__setitem__(1, np.zeros((3, 5))),
                 r"coefs_\[1\] has shape \(5, 3\), got an array of shape \(3, 5\)"),
                (lambda: setattr(ours, "intercepts_", [np.zeros(5), np.full(3, np.nan)]),
                 r"intercepts_\[1\] takes finite real numbers"),
                (lambda: ours.intercepts_.__setitem__(0, np.array(["a"] * 5)), r"intercepts_\[0\] takes finite real")]
    for assign, message in refusals:
        with pytest.raises(ValueError, match=message):
            assign()
        np.testing.assert_array_equal(ours.network_.params, before)


def test_coefs_take_values_in_the_networks_dtype_and_a_list_that_swaps_layers():
    """A value finite in float64 but beyond float32 is refused by a float32 network (it would be
    inf there), and a list of the layers' own arrays in another order swaps them."""
    X, y = blobs()
    clf = MLPClassifier(hidden_layer_sizes=(4, 4), max_iter=2, dtype="float32", random_state=0).fit(X, y)
    before = np.array(clf.network_.params)
    with pytest.raises(ValueError, match=r"intercepts_\[0\] takes finite real numbers that the network's float32"):
        clf.intercepts_[0] = np.full(4, 1e39)
    np.testing.assert_array_equal(clf.network_.params, before)
    first, second = (np.array(W) for W in clf.coefs_[:2])
    clf.intercepts_ = [clf.intercepts_[1], clf.intercepts_[0], clf.intercepts_[2]]
    clf.coefs_ = [clf.coefs_[0], clf.coefs_[1].T, clf.coefs_[2]]
    np.testing.assert_array_equal(clf.coefs_[1], second.T)
    np.testing.assert_array_equal(clf.coefs_[0], first)


def test_a_warm_start_of_an_estimator_pickled_without_its_best_parameters_starts_the_records_afresh():
    """An early-stopping estimator pickled by an earlier mlpcore kept no best parameters
    (_best None): a warm start then keeps no records it could not restore, as a new fit."""
    X, y = blobs()
    clf = MLPClassifier(hidden_layer_sizes=(8,), early_stopping=True, warm_start=True, max_iter=3,
                        random_state=0).fit(X, y)
    clf._best = None
    clf.set_params(max_iter=2).fit(X, y)
    assert clf._best is not None and len(clf.validation_scores_) == 2
    assert clf.best_validation_score_ == max(clf.validation_scores_)


@pytest.mark.parametrize("early_stopping", [False, True])
def test_a_warm_start_goes_on_with_the_stopping_records_as_sklearns(early_stopping):
    """After a fit that stopped for want of improvement, a warm start keeps best_loss_ (or
    best_validation_score_) and the count of epochs without improvement, as scikit-learn's:
    both stop after one epoch, their records the first fit's best."""
    X, y = blobs()
    settings = dict(hidden_layer_sizes=(8,), tol=1e9, n_iter_no_change=3, early_stopping=early_stopping,
                    warm_start=True, random_state=0)
    ours, theirs = MLPClassifier(**settings).fit(X, y), neural_network.MLPClassifier(**settings).fit(X, y)
    ours_first, theirs_first = (ours.best_loss_, ours.best_validation_score_), (theirs.best_loss_,
                                                                              theirs.best_validation_score_)
    ours.fit(X, y)
    theirs.fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_ == 1 and len(ours.loss_curve_) == len(theirs.loss_curve_) == 6
    if early_stopping:
        assert ours.best_validation_score_ >= ours_first[1] and len(ours.validation_scores_) == 6
        assert theirs.best_validation_score_ >= theirs_first[1]
    else:
        assert ours.best_loss_ == min(ours.loss_curve_) <= ours_first[0]
        assert theirs.best_loss_ == min(theirs.loss_curve_) <= theirs_first[0]


def test_early_stopping_keeps_an_earlier_fits_best_parameters_as_sklearns():
    """A warm start whose epochs do not beat the best validation score of the fit before it
    ends with that fit's best parameters, as scikit-learn's (its best coefs_ kept)."""
    X, y = blobs()
    ours = MLPClassifier(hidden_layer_sizes=(8,), early_stopping=True, warm_start=True, max_iter=30,
                         learning_rate_init=0.01, random_state=0).fit(X, y)
    best = [np.array(W) for W in ours.coefs_]
    ours.set_params(learning_rate_init=1e-12, max_iter=2).fit(X, y)  # cannot move: no better epoch
    assert max(ours.validation_scores_[-2:]) <= ours.best_validation_score_
    for W, W_best in zip(ours.coefs_, best):
        np.testing.assert_array_equal(W, W_best)


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_early_stopping_holds_out_sklearns_examples(kind):
    """The same random_state draws the same initial parameters and then the same validation
    split as scikit-learn's: with full-batch plain SGD in float64, the validation scores of
    every epoch agree."""
    if kind == "classifier":  # multi-class: a random split, not a stratified one
        X, y = blobs(n_samples=60)
        ours_class, theirs_class = MLPClassifier, neural_network.MLPClassifier
    else:
        X = np.random.RandomState(0).standard_normal((60, 3))
        y = X[:, 0]
        ours_class, theirs_class = MLPRegressor, neural_network.MLPRegressor
    settings = dict(hidden_layer_sizes=(4,), solver="sgd", momentum=0.0, batch_size=45, shuffle=False,
                    learning_rate_init=0.05, early_stopping=True, validation_fraction=0.25, max_iter=5, tol=0,
                    n_iter_no_change=100, random_state=0)
    ours = ours_class(dtype="float64", **settings).fit(X, y)
    theirs = theirs_class(**settings).fit(X, y)
    np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_, rtol=1e-9)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)


@pytest.mark.parametrize("alpha", [0.0, 0.05])
def test_regressor_loss_with_several_outputs_is_sklearns(alpha):
    """With three outputs, loss_ averages the squared errors over them (the alpha term whole), as
    scikit-learn's does: the same loss curve, so tol's stopping rule ends at the same epoch."""
    X = np.random.RandomState(1).standard_normal((60, 4))
    y = np.column_stack([X[:, 0], X[:, 1] - X[:, 2], 3 * X[:, 3]])
    settings = dict(hidden_layer_sizes=(5,), solver="sgd", momentum=0.0, batch_size=25, shuffle=False,
                    alpha=alpha, learning_rate_init=0.02, max_iter=200, tol=1e-3, n_iter_no_change=3,
                    random_state=0)
    ours = MLPRegressor(dtype="float64", **settings).fit(X, y)
    theirs = neural_network.MLPRegressor(**settings).fit(X, y)
    assert 5 < ours.n_iter_ == theirs.n_iter_ < 200
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)
    for W, W_theirs in zip(ours.coefs_, theirs.coefs_):
        np.testing.assert_allclose(W, W_theirs, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("learning_rate", ["adaptive", "constant"])
def test_verbose_stopping_messages_are_sklearns(learning_rate, capsys):
    """verbose prints scikit-learn's lines of the stopping rule, word for word (the losses of
    the Iteration lines aside): the adaptive rate's divisions, then its stop."""
    X, y = blobs()
    settings = dict(hidden_layer_sizes=(4,), solver="sgd", learning_rate=learning_rate, tol=1e9, n_iter_no_change=1,
                    max_iter=30, verbose=True, random_state=0)
    printed = []
    for Estimator in (MLPClassifier, neural_network.MLPClassifier):
        Estimator(**settings).fit(X, y)
        printed.append([line for line in capsys.readouterr().out.splitlines() if not line.startswith("Iteration")])
    assert printed[0] == printed[1] and printed[0][-1].endswith(" Stopping.")
    assert len(printed[0]) == (6 if learning_rate == "adaptive" else 1)


@pytest.mark.parametrize("early_stopping", [False, True])
def test_stopping_rule_is_sklearns(early_stopping):
    """With a tol no epoch can meet, both stop after the same number of epochs."""
    X, y = blobs()
    settings = dict(hidden_layer_sizes=(8,), tol=1e9, n_iter_no_change=3, early_stopping=early_stopping,
                    random_state=0)
    ours = MLPClassifier(**settings).fit(X, y)
    theirs = neural_network.MLPClassifier(**settings).fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_ == 5
    assert len(ours.loss_curve_) == 5
    assert (ours.validation_scores_ is None) == (theirs.validation_scores_ is None)


def test_early_stopping_keeps_the_best_epochs_parameters():
    X, y = blobs(n_samples=200, seed=3)
    clf = MLPClassifier(hidden_layer_sizes=(16,), early_stopping=True, validation_fraction=0.2,
                        learning_rate_init=0.05, n_iter_no_change=5, random_state=0).fit(X, y)
    assert len(clf.validation_scores_) == clf.n_iter_ and clf.best_loss_ is None
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    rng = check_random_state(0)
    for fan_in, fan_out in ((4, 16), (16, 3)):  # scikit-learn's draws of coefs_ and intercepts_
        rng.uniform(size=(fan_in + 1) * fan_out)
    _, X_val, _, y_val = train_test_split(X, y, random_state=rng, test_size=0.2)  # multi-class: at random
    assert clf.score(X_val, y_val) == clf.best_validation_score_
    assert clf.score(X, y) < 1  # not every split scores alike


@pytest.mark.parametrize("m, classes, fraction", [(4, 3, 0.5), (7, 3, 0.25), (11, 3, 0.1), (3, 3, 0.5)])
def test_early_stopping_splits_at_random_where_it_cannot_stratify(m, classes, fraction):
    """A class with one example, or fewer held-out (or kept) examples than classes: scikit-learn's
    MLP fits these (it stratifies binary targets only), and so does ours, on a random split."""
    X, y = np.random.default_rng(0).standard_normal((m, 2)), np.arange(m) % classes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        neural_network.MLPClassifier((3,), early_stopping=True, validation_fraction=fraction, max_iter=2).fit(X, y)
        clf = MLPClassifier((3,), early_stopping=True, validation_fraction=fraction, max_iter=2, random_state=0)
        assert len(clf.fit(X, y).validation_scores_) == 2
    assert list(clf.classes_) == list(range(classes))


@pytest.mark.parametrize("activation", ["relu", "logistic", "tanh"])
@pytest.mark.parametrize("Estimator, ours_of", [(MLPClassifier, lambda: neural_network.MLPClassifier),
                                                 (MLPRegressor, lambda: neural_network.MLPRegressor)])
def test_initial_parameters_are_scikit_learns_for_the_same_random_state(Estimator, ours_of, activation):
    """The same draws as scikit-learn's MLP (Glorot's uniform scheme for weights and biases, from
    the random_state): one epoch of plain SGD in order then ends on its parameters, to rounding."""
    X, y = blobs(n_samples=90)
    if Estimator is MLPRegressor:
        y = np.c_[X[:, 0] - X[:, 1], X[:, 2]]
    settings = dict(hidden_layer_sizes=(7, 5), activation=activation, solver="sgd", momentum=0.0, shuffle=False,
                    batch_size=30, learning_rate_init=0.01, max_iter=1, random_state=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = Estimator(dtype="float64", **settings).fit(X, y)
        theirs = ours_of()(**settings).fit(X, y)
    for mine, sklearns in ((ours.coefs_, theirs.coefs_), (ours.intercepts_, theirs.intercepts_)):
        for W, W_theirs in zip(mine, sklearns):
            np.testing.assert_allclose(W, W_theirs, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("max_iter", [1, 3])
def test_convergence_warning_when_max_iter_is_reached(max_iter):
    X, y = blobs()
    with pytest.warns(ConvergenceWarning, match=rf"Maximum iterations \({max_iter}\) reached"):
        MLPClassifier(hidden_layer_sizes=(4,), max_iter=max_iter, tol=0, random_state=0).fit(X, y)


def test_loss_curve_is_sklearns_with_a_smaller_last_minibatch():
    """203 examples in batches of 50: the last batch of 3 counts for 3 examples in the epoch's
    loss (with the alpha term), as in scikit-learn's loss_curve_."""
    X, y = blobs(n_samples=203)
    settings = dict(hidden_layer_sizes=(7,), activation="tanh", solver="sgd", momentum=0.0, shuffle=False,
                    batch_size=50, alpha=0.01, learning_rate_init=0.05, max_iter=1, random_state=0)
    ours = MLPClassifier(dtype="float64", **settings).fit(X, y)
    theirs = neural_network.MLPClassifier(**settings).fit(X, y)
    for l in range(2):
        ours.coefs_[l][...], ours.intercepts_[l][...] = theirs.coefs_[l], theirs.intercepts_[l]
    for estimator in (ours, theirs):
        estimator.set_params(warm_start=True, max_iter=4).fit(X, y)
    for W, W_theirs in zip(ours.coefs_, theirs.coefs_):
        np.testing.assert_allclose(W, W_theirs, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.loss_curve_[1:], theirs.loss_curve_[1:], rtol=1e-10)


@pytest.mark.parametrize("centers", [2, 3], ids=["binary", "multiclass"])
def test_predict_refuses_labels_of_a_nan_output_that_predict_proba_shows(centers):
    """A NaN in W[1] (as from a forward that overflowed) makes A[L] NaN: argmax would call it
    classes_[0]; predict raises ValueError instead, predict_proba gives the NaN."""
    X, y = blobs(centers=centers)
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0)
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, y)
    clf.network_.W[1][0, 0] = np.nan
    with pytest.raises(ValueError, match=r"^A\[L\] contains NaN or inf, of which no label can be predicted"):
        clf.predict(X)
    assert np.isnan(clf.predict_proba(X)).any()


def test_learning_rate_schedules():
    X, y = blobs()
    settings = dict(hidden_layer_sizes=(4,), solver="sgd", learning_rate_init=0.1, random_state=0)
    clf = MLPClassifier(learning_rate="invscaling", power_t=0.5, max_iter=4, tol=0, **settings)
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, y)
    assert clf.network_.optimizer.learning_rate == pytest.approx(0.1 / (clf.t_ + 1) ** 0.5)
    steep = MLPClassifier(learning_rate="invscaling", power_t=1e3, max_iter=3, tol=0, **settings)
    with pytest.warns(ConvergenceWarning):  # (t_ + 1)^1000 beyond float64: a rate of 0, not an OverflowError
        steep.fit(X, y)
    assert steep.network_.optimizer.learning_rate == 0 and steep.n_iter_ == 3
    settings.update(learning_rate="adaptive", tol=1e9, n_iter_no_change=1)
    ours = MLPClassifier(**settings).fit(X, y)
    theirs = neural_network.MLPClassifier(**settings).fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_ == 19  # divided by 5 every 2 epochs until at most 1e-6
    assert ours.network_.optimizer.learning_rate == pytest.approx(0.1 / 5 ** 8)


@pytest.mark.parametrize("solver, method, hyper", [
    ("sgd", "sgd", {"momentum": 0.9, "nesterov": True}),
    ("momentum", "sgd", {"momentum": 0.9, "nesterov": False}),
    ("nesterov", "sgd", {"momentum": 0.9, "nesterov": True}),
    ("rmsprop", "rmsprop", {"alpha": 0.99, "eps": 1e-8}),
    ("adam", "adam", {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}),
    ("adamw", "adamw", {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 1e-4})])
def test_solvers_are_mlpcores_optimizers(solver, method, hyper):
    X, y = blobs()
    clf = MLPClassifier(hidden_layer_sizes=(4,), solver=solver, learning_rate_init=0.01, max_iter=2, tol=0,
                        random_state=0)
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, y)
    assert clf.network_.optimizer.spec == (method, hyper)
    assert clf.network_.optimizer.learning_rate == 0.01


def test_adamws_weight_decay_is_alpha_in_place_of_the_l2_term():
    X, y = blobs()
    clf = MLPClassifier(hidden_layer_sizes=(4,), solver="adamw", alpha=0.3, max_iter=2, tol=0, random_state=0)
    clf.fit(X, y)
    assert clf.network_.optimizer.hyper["weight_decay"] == 0.3
    assert "l2_term" not in clf.network_.history  # no alpha term in the loss
    adam = MLPClassifier(hidden_layer_sizes=(4,), solver="adam", alpha=0.3, max_iter=2, tol=0, random_state=0)
    assert "l2_term" in adam.fit(X, y).network_.history


@pytest.mark.parametrize("learning_rate, tol, n_iter_no_change", [("invscaling", 0, 100), ("adaptive", 10, 1)])
@pytest.mark.parametrize("nesterovs_momentum", [False, True])
def test_a_new_learning_rate_keeps_the_momentum_velocity_as_sklearns(learning_rate, tol, n_iter_no_change,
                                                                      nesterovs_momentum):
    """scikit-learn's velocity v = momentum v - lr g keeps the rate of each step taken; mlpcore's
    buffer (torch's) holds gradients, which the wrapper rescales when the rate changes (each
    epoch with invscaling, every second one here with adaptive)."""
    X, y = blobs()
    settings = dict(hidden_layer_sizes=(5,), solver="sgd", learning_rate=learning_rate, learning_rate_init=0.1,
                    power_t=0.3, momentum=0.9, nesterovs_momentum=nesterovs_momentum, tol=tol,
                    n_iter_no_change=n_iter_no_change, shuffle=False, random_state=0, max_iter=8)
    ours = MLPClassifier(**settings).fit(X, y)
    theirs = neural_network.MLPClassifier(**settings).fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_ >= 6
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)


def test_a_rate_too_small_for_the_momentum_buffer_leaves_it_unscaled():
    """old / new rate of 1e38 and more would overflow a float32 buffer: scikit-learn's fit runs on."""
    X, y = blobs()
    settings = dict(hidden_layer_sizes=(5,), solver="sgd", learning_rate="invscaling", learning_rate_init=0.1,
                    power_t=14, momentum=0.9, shuffle=False, random_state=0, max_iter=10, tol=0)
    ours = MLPClassifier(**settings).fit(X.astype(np.float32), y)
    assert ours.n_iter_ == neural_network.MLPClassifier(**settings).fit(X.astype(np.float32), y).n_iter_ == 10
    assert np.all(np.isfinite(ours.network_.optimizer.state[0]))


def test_a_sparse_multilabel_y_is_taken_and_predicted_sparse_as_sklearn():
    scipy_sparse = pytest.importorskip("scipy.sparse", reason="scipy is not installed")
    X, Y = make_multilabel_classification(n_samples=60, n_features=5, n_classes=3, random_state=0)
    dense = MLPClassifier(hidden_layer_sizes=(6,), max_iter=5, random_state=0).fit(X, Y)
    ours = MLPClassifier(hidden_layer_sizes=(6,), max_iter=5, random_state=0).fit(X, scipy_sparse.csr_matrix(Y))
    predicted = ours.predict(X)
    assert scipy_sparse.issparse(predicted) and predicted.format == "csr"
    assert isinstance(neural_network.MLPClassifier(max_iter=5).fit(X, scipy_sparse.csr_matrix(Y)).predict(X),
                      type(predicted))
    np.testing.assert_array_equal(predicted.toarray(), dense.predict(X))
    np.testing.assert_array_equal(ours.predict_proba(X), dense.predict_proba(X))
    assert not scipy_sparse.issparse(dense.predict(X))


def test_a_sparse_X_from_a_pipeline_is_refused_saying_how_to_make_it_dense():
    pd = pytest.importorskip("pandas", reason="pandas is not installed (it is in the test extra)")
    from sklearn.compose import make_column_transformer
    from sklearn.preprocessing import OneHotEncoder
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.standard_normal(120), "city": rng.choice([f"c{i}" for i in range(40)], 120)})
    y = (frame.a > 0).astype(int)
    columns = make_column_transformer((StandardScaler(), ["a"]), (OneHotEncoder(handle_unknown="ignore"), ["city"]))
    with pytest.raises(TypeError, match=r"take dense X .* got a sparse csr matrix of shape \(120, \d+\): in a "
                                        r"Pipeline, OneHotEncoder\(sparse_output=False\)"):
        make_pipeline(columns, MLPClassifier(max_iter=2)).fit(frame, y)
    dense = make_column_transformer((StandardScaler(), ["a"]), (OneHotEncoder(handle_unknown="ignore"), ["city"]),
                                    sparse_threshold=0)
    model = make_pipeline(dense, MLPClassifier(learning_rate_init=0.01, max_iter=100, random_state=0))
    assert model.fit(frame, y).score(frame, y) > 0.9
    fitted = MLPClassifier(max_iter=2).fit(columns.fit_transform(frame).toarray(), y)
    with pytest.raises(TypeError, match="take dense X"):
        fitted.predict(columns.transform(frame))


def test_mlpcore_layers_batch_norm_dropout_and_activations():
    X, y = blobs()
    clf = MLPClassifier(hidden_layer_sizes=(8, 6), activation="elu", batch_norm=[True, False], dropout=0.25,
                        max_iter=3, random_state=0)
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, y)
    net = clf.network_
    assert net.batch_norm == (True, False, False) and net.dropout == (0.25, 0.25, 0.0)
    assert [name for name, _ in net.activations] == ["elu", "elu", "softmax"]
    np.testing.assert_array_equal(clf.predict_proba(X), clf.predict_proba(X))  # inference: no dropout


@pytest.mark.parametrize("parameter, value, message", [
    ("activation", "softmax", "activation must be one of identity, logistic"),
    ("solver", "lbfgs", "solver must be one of sgd, momentum"),
    ("hidden_layer_sizes", (8, 0), "hidden_layer_sizes must be an int >= 1"),
    ("batch_size", 0, "batch_size must be 'auto' or an int >= 1, got 0"),
    ("alpha", -1.0, "alpha must be a finite number >= 0"),
    ("momentum", 1.5, r"momentum must be a number in \[0, 1\]"),
    ("dtype", "float16", "dtype must be None, 'float32' or 'float64'"),
    ("dropout", [0.1], r"dropout must be a drop probability in \[0, 1\), or a sequence of 2"),
    ("dropout", np.array(0.1), r"dropout must be a drop probability in \[0, 1\), or a sequence of 2"),
    ("batch_norm", "yes", "batch_norm must be True or False, or a sequence of 2"),
    ("early_stopping", "yes", "early_stopping must be True or False"),
    ("batch_size", 1, "batch_size must be 'auto' or an int >= 2 with batch_norm"),
    ("momentum", 0.0, r"momentum must be a number in \(0, 1\] with solver='nesterov', got 0.0"),
    ("validation_fraction", 0.0, r"validation_fraction must be a number in \(0, 1\) with early_stopping")])
def test_bad_parameters_are_refused_at_fit_naming_what_was_expected(parameter, value, message):
    """As scikit-learn's estimators refuse them: its InvalidParameterError, a ValueError and a TypeError.
    (momentum 0 is refused with the nesterov solver, validation_fraction 0 with early stopping.)"""
    X, y = blobs()
    clf = MLPClassifier(hidden_layer_sizes=(8, 4), batch_norm=[True, False], solver="nesterov", early_stopping=True)
    clf.set_params(**{parameter: value})
    with pytest.raises(InvalidParameterError, match=message) as refusal:
        clf.fit(X, y)
    assert isinstance(refusal.value, ValueError) and isinstance(refusal.value, TypeError)
    assert not hasattr(clf, "network_") and not hasattr(clf, "n_features_in_")  # refused before any change


def test_a_layer_larger_than_the_core_takes_is_refused_before_the_initial_draws():
    """2^31 units: the Network's ValueError, not a MemoryError from drawing 48 GiB of weights."""
    X, y = blobs()
    clf = MLPClassifier(hidden_layer_sizes=(2**31,))
    with pytest.raises(ValueError, match=r"every layer needs 1\.\.2\^31-1 units"):
        clf.fit(X, y)
    assert not hasattr(clf, "network_")


def regression(dtype=np.float64):
    """X (40, 3) of dtype and real targets y (40,) of a linear function of X."""
    X = np.random.default_rng(0).standard_normal((40, 3)).astype(dtype)
    return X, X @ np.array([1.0, -2.0, 0.5])


def late_failures():
    """Fits that fail after X and y passed validate_data: name -> (estimator, (X, y) to fit it on
    first, (X, y) that fail, exception, message, the ways of calling fit that fail late)."""
    X, y = blobs()
    labels = (X[:, :3] > 0).astype(int)  # multi-label: one example is a valid y for a fitted network too
    X32, y32 = regression(np.float32)
    X64, y64 = regression()
    diverging = y64.copy()
    diverging[-10:] = 1e200  # squares beyond float64: minibatches 1-3 of 10 train, the 4th diverges
    X6 = np.random.default_rng(1).standard_normal((30, 6))
    settings = dict(hidden_layer_sizes=(8,), max_iter=5, random_state=0)
    every_way = ("fit", "warm_start", "partial_fit")
    return {
        "targets overflowing float32": (MLPRegressor(**settings), (X32, y32), (X32, np.full(40, 1e300)),
                                        ValueError, "beyond the range of the network's float32", every_way),
        "a batch-norm minibatch of one": (MLPClassifier(batch_norm=True, **settings), (X, labels),
                                          (X[:1], labels[:1]), ValueError, "minibatches of at least 2", every_way),
        "continuous labels of other features": (MLPClassifier(**settings), (X, y), (X6, X6[:, 0]), ValueError,
                                                "Unknown label type", ("fit",)),
        "an early-stopping split too small": (MLPClassifier(early_stopping=True, **settings), (X, y),
                                              (X[:6], np.array([0, 1, 2, 0, 1, 2])), ValueError,
                                              "early stopping holds 1 example", ("fit", "warm_start")),
        "a divergence in an epoch": (MLPRegressor(batch_size=10, shuffle=False, **settings), (X64, y64),
                                     (X64, diverging), mlpcore.DivergenceError, "became NaN or inf", every_way),
    }


LATE_FAILURES = late_failures()


@contextlib.contextmanager
def fitting_badly(error, message):
    """pytest.raises(error, match=message) around the block, with ConvergenceWarning made an error."""
    with warnings.catch_warnings(), pytest.raises(error, match=message):
        warnings.simplefilter("error", ConvergenceWarning)
        yield


def test_a_convergence_warning_made_an_error_leaves_the_fit_kept():
    """As in scikit-learn: the warning comes after the fit, which a filter that raises it keeps."""
    X, y = regression()
    estimator = MLPRegressor(hidden_layer_sizes=(8,), max_iter=5, tol=0, random_state=0)
    with fitting_badly(ConvergenceWarning, r"Maximum iterations \(5\) reached"):
        estimator.fit(X, y)
    check_is_fitted(estimator)
    assert estimator.n_iter_ == 5 and len(estimator.loss_curve_) == 5


@pytest.mark.parametrize("case", LATE_FAILURES)
def test_a_late_failure_leaves_a_new_estimator_unfitted(case):
    estimator, _, (X, y), error, message, _ = LATE_FAILURES[case]
    estimator = clone(estimator)
    with fitting_badly(error, message):
        estimator.fit(X, y)
    with pytest.raises(NotFittedError):
        check_is_fitted(estimator)
    assert vars(estimator) == estimator.get_params()


def fitted_state(estimator, X):
    """Copies of what a failed call must leave as it was: every attribute of the estimator but its
    parameters, network_'s parameters, running statistics, optimizer (the object, learning rate, t,
    state), history and memory, and the predictions on X (made first: memory counts the cache
    that predict keeps)."""
    net, optimizer = estimator.network_, estimator.network_.optimizer
    predictions = estimator.predict(X)
    return {"attributes": {name: copy.deepcopy(value) for name, value in vars(estimator).items()
                           if name not in estimator.get_params() and name != "network_"},
            "parameters": [np.array(array) for array in (net.params, *net.running_mean.values(),
                                                         *net.running_var.values())],
            "optimizer": (optimizer, optimizer.learning_rate, optimizer.t, [np.array(b) for b in optimizer.state]),
            "history": copy.deepcopy(net.history), "memory": net.memory_bytes(breakdown=True),
            "predictions": predictions}


@pytest.mark.parametrize("case, way", [(case, way) for case, failure in LATE_FAILURES.items() for way in failure[-1]])
def test_a_late_failure_leaves_a_fitted_estimator_as_it_was(case, way):
    estimator, (X, y), (X_bad, y_bad), error, message, _ = LATE_FAILURES[case]
    estimator = clone(estimator).fit(X, y)
    net, before = estimator.network_, fitted_state(estimator, X)
    assert before["optimizer"][2] > 0  # the optimizer has a state to keep
    with fitting_badly(error, message):
        if way == "partial_fit":
            estimator.partial_fit(X_bad, y_bad)
        else:
            estimator.set_params(warm_start=way == "warm_start").fit(X_bad, y_bad)
    assert estimator.network_ is net
    np.testing.assert_equal(fitted_state(estimator, X), before)


def test_pipeline_grid_search_and_cross_val_score():
    X, y = blobs(n_samples=90)
    pipeline = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(8,), learning_rate_init=0.01,
                                                             random_state=0))
    assert pipeline.fit(X, y).score(X, y) > 0.9
    search = GridSearchCV(pipeline, {"mlpclassifier__hidden_layer_sizes": [(4,), (8, 8)],
                                     "mlpclassifier__solver": ["adam", "nesterov"]}, cv=3).fit(X, y)
    assert search.best_score_ > 0.9 and len(search.cv_results_["params"]) == 4
    scores = cross_val_score(MLPRegressor(hidden_layer_sizes=(8,), learning_rate_init=0.01, random_state=0),
                             X, X[:, 0] - X[:, 1], cv=3)
    assert scores.shape == (3,) and scores.min() > 0.8


def test_pickle_and_joblib_round_trips(tmp_path):
    X, y = blobs()
    clf = MLPClassifier(hidden_layer_sizes=(8,), batch_norm=True, max_iter=20, random_state=0).fit(X, y)
    copy = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))
    joblib.dump(clf, tmp_path / "model.joblib")
    loaded = joblib.load(tmp_path / "model.joblib")
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert loaded.loss_curve_ == clf.loss_curve_ and list(loaded.classes_) == list(clf.classes_)
    clf.partial_fit(X, y)
    loaded.partial_fit(X, y)  # the optimizer state came along: the next step is the same
    np.testing.assert_array_equal(loaded.network_.params, clf.network_.params)


def test_feature_names_of_a_dataframe():
    pandas = pytest.importorskip("pandas", reason="pandas is not installed (it is in the test extra)")
    X, y = blobs()
    frame = pandas.DataFrame(X, columns=["a", "b", "c", "d"])
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(frame, y)
    assert list(clf.feature_names_in_) == ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(frame.rename(columns={"a": "z"}))


def test_verbose_prints_the_loss_of_each_epoch(capsys):
    X, y = blobs()
    MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, tol=1e9, n_iter_no_change=1, verbose=True,
                  random_state=0).fit(X, y)
    out = capsys.readouterr().out
    assert "Iteration 1, loss = " in out and "Iteration 2, loss = " in out and "Stopping" in out


def test_import_mlpcore_does_not_import_sklearn():
    code = "import sys, mlpcore; assert 'sklearn' not in sys.modules, 'sklearn was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_without_sklearn_the_import_error_names_the_extra():
    code = "import sys; sys.modules['sklearn'] = None; import mlpcore.sklearn"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0 and 'pip install ".[sklearn]"' in result.stderr
