"""scikit-learn estimators on mlpcore networks: MLPClassifier and MLPRegressor.

    from mlpcore.sklearn import MLPClassifier
    clf = MLPClassifier(hidden_layer_sizes=(64, 32), batch_norm=True, dropout=0.1, random_state=0)
    clf.fit(X, y)                    # X: (n_samples, n_features), one row per example
    clf.predict_proba(X)             # (n_samples, n_classes)
    clf.network_.W[1]                # the mlpcore.Network underneath, W[l] as usual

They follow sklearn.neural_network's MLPClassifier and MLPRegressor: the same
constructor parameters (but no lbfgs solver, max_fun, sample_weight or poisson loss), the same
fitted attributes and the same stopping rule, with mlpcore's optimizers, hidden
activations, batch normalisation and dropout on top. Training runs in mlpcore's
C++ core: X, one row per example, reaches it as X.T, the (n_features, n_samples)
matrix the core takes, without a copy when X is a C-ordered float32 or float64 array.

This module needs scikit-learn >= 1.6 (``pip install ".[sklearn]"`` in a clone of mlpcore, or
``pip install "scikit-learn>=1.6"``); ``import mlpcore`` does not import it.
"""

import contextlib
import inspect
import warnings

import numpy as np

try:
    from scipy import sparse
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
    from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data
except ImportError as error:  # pragma: no cover - depends on what is installed
    raise ImportError('mlpcore.sklearn needs scikit-learn >= 1.6: pip install ".[sklearn]" in a clone of mlpcore '
                      '(or pip install "scikit-learn>=1.6")') from error

try:  # scikit-learn's estimators raise it for bad parameters: a ValueError and a TypeError
    from sklearn.utils._param_validation import InvalidParameterError
except ImportError:  # pragma: no cover - a scikit-learn that moved it

    class InvalidParameterError(ValueError, TypeError):
        """A constructor parameter of the wrong type or out of its range."""

from ._checks import is_integer, is_real
from .training import FitStart, restore, snapshot
from .network import Network, check_layer_sizes

__all__ = ["MLPClassifier", "MLPRegressor"]

# the estimator's hidden activation -> mlpcore's
_ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu",
                "leaky_relu": "leaky_relu", "elu": "elu"}
_SOLVERS = ("sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw")
_LEARNING_RATES = ("constant", "invscaling", "adaptive")
_SMALLEST_ADAPTIVE_RATE = 1e-6  # an adaptive rate at or below this stops training (as in scikit-learn)


def _require(condition, name, expected, value):
    if not condition:
        raise InvalidParameterError(f"{name} must be {expected}, got {value!r}")


def _fraction(value):
    return is_real(value) and 0 <= value < 1


def _flag(value):
    return isinstance(value, (bool, np.bool_))


# (parameter, test, what it must be) of the numeric and boolean constructor parameters
_PARAMETER_CHECKS = (
    ("batch_size", lambda value: (isinstance(value, str) and value == "auto") or (is_integer(value) and value >= 1),
     "'auto' or an int >= 1"),
    ("max_iter", lambda value: is_integer(value) and value >= 1, "an int >= 1"),
    ("n_iter_no_change", lambda value: (is_integer(value) and value >= 1) or value == np.inf,
     "an int >= 1 or numpy.inf"),
    *((name, lambda value: is_real(value) and value >= 0, "a finite number >= 0")
      for name in ("alpha", "power_t", "tol")),
    *((name, lambda value: is_real(value) and value > 0, "a finite number > 0")
      for name in ("learning_rate_init", "epsilon")),
    ("momentum", lambda value: is_real(value) and 0 <= value <= 1, "a number in [0, 1]"),
    *((name, _fraction, "a number in [0, 1)") for name in ("beta_1", "beta_2", "validation_fraction")),
    *((name, _flag, "True or False") for name in ("shuffle", "warm_start", "nesterovs_momentum", "early_stopping")),
)


def _per_hidden_layer(value, name, valid, expected, count):
    """A per-hidden-layer setting given as one value for every layer or as a sequence of one per layer."""
    values = [value] * count if valid(value) else value
    sequence = isinstance(values, (list, tuple)) or (isinstance(values, np.ndarray) and values.ndim == 1)
    ok = sequence and len(values) == count and all(map(valid, values))
    _require(ok, name, f"{expected}, or a sequence of {count} of them (one per hidden layer)", value)
    return list(values)


def _signature_with(base, function, name):
    """base's signature with function's keyword-only parameter `name` added at its end."""
    signature = inspect.signature(base)
    return signature.replace(parameters=[*signature.parameters.values(), inspect.signature(function).parameters[name]])


class _NetworkCheckpoint(FitStart):
    """What a fit changes in a network, copied, to put back into the same network if the fit
    fails, even after it kept steps: FitStart's, and the parameters, the batch-norm running
    statistics and the optimizer's step count t and state buffers."""

    def __init__(self, net):
        super().__init__(net, None)
        self.arrays = snapshot(net)
        if self.optimizer is not None:
            self.t, self.buffers = self.optimizer.t, [np.array(buffer) for buffer in self.optimizer.state]

    def restore(self):
        """Put the network back as it was when the checkpoint was made."""
        restore(self.net, self.arrays)
        super().restore()
        if self.optimizer is not None:
            self._restore_optimizer_state()

    def _restore_optimizer_state(self):
        """The optimizer's state, whatever the fit did to it (reset or stepped), as mlpcore.io
        restores a saved one: no state when t was 0."""
        optimizer = self.optimizer
        optimizer.reset()
        if self.t:
            state = optimizer._state_for(self.net)
            for buffer, saved in zip(optimizer.state, self.buffers):
                buffer[...] = saved
            state.t = self.t


@contextlib.contextmanager
def _undone_on_error(estimator, network):
    """Run the block; if it raises, put back the estimator's attributes (the lists among them,
    which a fit appends to, in place) and network, the network_ the block trains on (or None
    when it trains a new one), as they were."""
    attributes = dict(vars(estimator))
    lists = {name: list(value) for name, value in attributes.items() if isinstance(value, list)}
    checkpoint = None if network is None else _NetworkCheckpoint(network)
    try:
        yield
    except BaseException:
        if checkpoint is not None:
            checkpoint.restore()
        vars(estimator).clear()
        vars(estimator).update(attributes)
        for name, items in lists.items():
            attributes[name][:] = items
        raise


class _LayerViews(list):
    """coefs_ or intercepts_ (`name`): views of the network's layers, into which an assigned item
    or list is copied, as scikit-learn's estimator takes new coefs_ and intercepts_; the shapes
    and values are checked first, so that a refused assignment changes nothing."""

    def __init__(self, name, views):
        super().__init__(views)
        self.name = name

    def __setitem__(self, i, array):
        if not isinstance(i, (int, np.integer)):
            raise TypeError(f"{self.name}[i] = array takes one layer's index i, got {i!r}")
        self._copy({range(len(self))[i]: array})

    def assign(self, arrays):
        """Copy the list `arrays`, one array per layer, into the layers."""
        arrays = list(arrays)
        if len(arrays) != len(self):
            raise ValueError(f"{self.name} holds {len(self)} arrays, one per layer; got {len(arrays)}")
        self._copy(dict(enumerate(arrays)))

    def _copy(self, arrays):
        """Copies of the arrays {i: array} in the layers' dtype, each checked, then put in (so
        that a list that swaps the layers' own arrays swaps them)."""
        checked = {}
        for i, array in arrays.items():
            view = list.__getitem__(self, i)
            value = np.asarray(array)
            if value.shape != view.shape:
                raise ValueError(f"{self.name}[{i}] has shape {view.shape}, got an array of shape {value.shape}")
            if not np.issubdtype(value.dtype, np.number) or np.iscomplexobj(value):
                raise ValueError(f"{self.name}[{i}] takes finite real numbers, got an array of {value.dtype}")
            with np.errstate(over="ignore", invalid="ignore"):  # beyond the dtype's range: inf, refused below
                checked[i] = value.astype(view.dtype)
            if not np.all(np.isfinite(checked[i])):
                raise ValueError(f"{self.name}[{i}] takes finite real numbers that the network's "
                                 f"{view.dtype} holds")
        for i, value in checked.items():
            list.__getitem__(self, i)[...] = value


def _require_dense(X):
    """TypeError for a scipy.sparse X (which a Pipeline's OneHotEncoder or ColumnTransformer may make
    unasked), saying how to get dense columns instead."""
    if sparse.issparse(X):
        raise TypeError(f"mlpcore's estimators take dense X (its core multiplies dense matrices), got a sparse "
                        f"{X.format} matrix of shape {X.shape}: in a Pipeline, OneHotEncoder(sparse_output=False) "
                        f"or ColumnTransformer(..., sparse_threshold=0) give dense columns; else X.toarray(), "
                        f"where it fits in memory")


def _seed(rng):
    """A seed for the core (of a network's dropout masks, or of a fit's order), drawn from rng."""
    return int(rng.randint(np.iinfo(np.int32).max))


class _BaseMLP(BaseEstimator):
    """What the classifier and the regressor share: parameters, fitting, the network's outputs.

    A subclass defines _validation_kwargs (for validate_data), _set_targets (n_outputs_,
    and labels, from y), _output_layer (output activation and cost), _core_targets (y as
    the core takes it) and _score_outputs (the validation score of early stopping).
    """

    _sparse_targets = False  # whether the first fit's y was a scipy.sparse matrix

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5, max_iter=200,
                 shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, n_iter_no_change=10, dtype=None, batch_norm=False, dropout=0.0):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.dtype = dtype
        self.batch_norm = batch_norm
        self.dropout = dropout

    # ---- fitted attributes laid out as scikit-learn's ----

    @property
    def coefs_(self):
        """List of L arrays: coefs_[i] (n_in, n_out) is network_.W[i + 1].T, a writable view of the
        network. Assigning the list, or one of its items, copies the arrays into the network."""
        net = self.network_
        return _LayerViews("coefs_", [net.W[l].T for l in range(1, net.L + 1)])

    @coefs_.setter
    def coefs_(self, arrays):
        self.coefs_.assign(arrays)

    @property
    def intercepts_(self):
        """List of L arrays: intercepts_[i] (n_out,) is network_.b[i + 1][:, 0], a writable view of
        the network. Assigning the list, or one of its items, copies the arrays into the network."""
        net = self.network_
        return _LayerViews("intercepts_", [net.b[l][:, 0] for l in range(1, net.L + 1)])

    @intercepts_.setter
    def intercepts_(self, arrays):
        self.intercepts_.assign(arrays)

    @property
    def n_layers_(self):
        """Number of layers, the input and output layers included: network_.L + 1."""
        return self.network_.L + 1

    # ---- parameters ----

    def _hidden_layers(self):
        """(sizes, batch-norm flags, drop probabilities) of the hidden layers, checked.

        hidden_layer_sizes is an int >= 1 (one hidden layer) or a sequence of them;
        batch_norm and dropout are one value for every hidden layer or one per layer.
        """
        sizes = self.hidden_layer_sizes
        sizes = (sizes,) if is_integer(sizes) else sizes
        valid = not isinstance(sizes, (str, bytes)) and hasattr(sizes, "__iter__")
        sizes = tuple(sizes) if valid else ()
        _require(valid and all(is_integer(size) and size >= 1 for size in sizes), "hidden_layer_sizes",
                 "an int >= 1 or a sequence of ints >= 1 (units of each hidden layer)", self.hidden_layer_sizes)
        count = len(sizes)
        batch_norm = _per_hidden_layer(self.batch_norm, "batch_norm", _flag, "True or False", count)
        dropout = _per_hidden_layer(self.dropout, "dropout", _fraction, "a drop probability in [0, 1)", count)
        return [int(size) for size in sizes], [bool(flag) for flag in batch_norm], [float(p) for p in dropout]

    def _check_params(self):
        """Refuse bad constructor parameters, naming what was expected (fit calls this, not __init__)."""
        for name, choices in (("activation", tuple(_ACTIVATIONS)), ("solver", _SOLVERS),
                              ("learning_rate", _LEARNING_RATES)):
            value = getattr(self, name)
            _require(isinstance(value, str) and value in choices, name, f"one of {', '.join(choices)}", value)
        for name, valid, expected in _PARAMETER_CHECKS:
            _require(valid(getattr(self, name)), name, expected, getattr(self, name))
        self._fit_dtype_spec()
        _, batch_norm, _ = self._hidden_layers()
        _require(not (any(batch_norm) and self.batch_size == 1), "batch_size",
                 "'auto' or an int >= 2 with batch_norm (one example has no batch variance)", self.batch_size)
        _require(not (self.solver == "nesterov" and self.momentum == 0), "momentum",
                 "a number in (0, 1] with solver='nesterov'", self.momentum)
        _require(not (self.early_stopping and self.validation_fraction == 0), "validation_fraction",
                 "a number in (0, 1) with early_stopping (the held-out examples it scores)", self.validation_fraction)

    def _fit_dtype_spec(self):
        """What validate_data converts X to at a first fit: float32 or float64, or either (dtype=None)."""
        if self.dtype is None:
            return (np.float64, np.float32)
        try:
            dtype = np.dtype(self.dtype)
        except TypeError:
            dtype = None
        if dtype not in (np.float32, np.float64):
            raise InvalidParameterError(f"dtype must be None, 'float32' or 'float64', got {self.dtype!r}")
        return dtype

    def _optimizer(self):
        """The mlpcore optimizer spec (name, hyper-parameters) of solver."""
        adam = {"beta1": float(self.beta_1), "beta2": float(self.beta_2), "eps": float(self.epsilon)}
        momentum = float(self.momentum)
        return {
            "sgd": ("sgd", {"momentum": momentum, "nesterov": bool(self.nesterovs_momentum) and momentum > 0}),
            "momentum": ("sgd", {"momentum": momentum}),
            "nesterov": ("sgd", {"momentum": momentum, "nesterov": True}),
            "rmsprop": ("rmsprop", {"eps": float(self.epsilon)}),
            "adam": ("adam", adam),
            "adamw": ("adamw", {**adam, "weight_decay": float(self.alpha)}),
        }[self.solver]

    # ---- fitting ----

    def _fit(self, X, y, incremental, classes=None):
        """fit (incremental False) or partial_fit (True) on X (n_samples, n_features) and y.

        A call that raises, however late (targets the network's dtype cannot hold, a
        DivergenceError in an epoch), leaves the estimator as it was before the call.
        """
        self._check_params()
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        first = not hasattr(self, "network_") or not (incremental or self.warm_start)
        if not first:
            self._require_same_network(incremental)
        with _undone_on_error(self, None if first else self.network_):
            warning = self._fit_checked(X, y, incremental, classes, first)
        if warning is not None:  # after the fit is kept: a filter that makes it an error keeps it, as scikit-learn
            warnings.warn(warning)
        return self

    def _fit_checked(self, X, y, incremental, classes, first):
        """_fit once the parameters are checked; first: a new network_ (else it goes on with network_).
        Returns the warning of the fit's end, if any (see _train)."""
        dtype = self._fit_dtype_spec() if first else self.network_.dtype
        _require_dense(X)
        X, y = validate_data(self, X, y, multi_output=True, dtype=dtype, reset=first, **self._validation_kwargs)
        if first:
            self._sparse_targets = sparse.issparse(y)
        if sparse.issparse(y):  # a multi-label indicator matrix, which scikit-learn takes sparse too
            y = y.toarray()
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        self._set_targets(y, first, incremental, classes)
        # rng's draws in scikit-learn's order: the initial coefs_ and intercepts_, then the
        # validation split, so that the same random_state gives the same ones
        rng = check_random_state(self.random_state)
        if first:
            n = [X.shape[1], *self._hidden_layers()[0], self.n_outputs_]
            check_layer_sizes(n)  # before W is drawn in float64: sizes the core refuses could ask for GiBs
            W, b = self._initial_parameters(n, rng)
        X_val = y_val = None
        if self.early_stopping:
            X, X_val, y, y_val = self._split(X, y, rng)
        if first:
            self._new_network(n, W, b, X.dtype, _seed(rng))
        if first or not incremental:
            self.network_.reset_optimizer()
            self._learning_rate = float(self.learning_rate_init)
        self._reset_stopping(first)
        self.n_iter_ = 0
        return self._train(X, y, X_val, y_val, incremental, _seed(rng))

    def _new_network(self, n, W, b, dtype, seed):
        """network_ with layer sizes n, W[l] and b[l] (see _initial_parameters) and the core's
        seed (of its dropout masks), and the per-network records."""
        sizes, batch_norm, dropout = self._hidden_layers()
        output, cost = self._output_layer()
        self.network_ = Network(n, [_ACTIVATIONS[self.activation]] * len(sizes) + [output], cost, dtype=dtype,
                                seed=seed, dropout=dropout, batch_norm=[*batch_norm, False])
        for l in range(1, len(n)):
            self.network_.W[l], self.network_.b[l] = W[l], b[l]
        self.out_activation_ = {"sigmoid": "logistic"}.get(output, output)
        self.loss_curve_ = []
        self.t_ = 0

    def _initial_parameters(self, n, rng):
        """W[l] (n[l], n[l-1]) and b[l] (n[l], 1), float64, drawn as scikit-learn's MLP draws
        its coefs_ and intercepts_ from the same rng (Glorot's uniform scheme, for weights and
        biases alike): U(-r, r) with r = sqrt(6 / (n[l-1] + n[l])), or sqrt(2 / ...) for
        logistic hidden layers; coefs_[l-1] (n[l-1], n[l]) first, then intercepts_[l-1]."""
        factor = 2.0 if self.activation == "logistic" else 6.0
        W, b = {}, {}
        for l in range(1, len(n)):
            bound = np.sqrt(factor / (n[l - 1] + n[l]))
            W[l] = rng.uniform(-bound, bound, (n[l - 1], n[l])).T
            b[l] = rng.uniform(-bound, bound, n[l])[:, None]
        return W, b

    def _require_same_network(self, incremental):
        """warm_start and partial_fit go on with network_: refuse parameters that would build
        another, before anything changes."""
        sizes, batch_norm, dropout = self._hidden_layers()
        net, hidden = self.network_, len(sizes)
        built = {"hidden_layer_sizes": list(net.n[1:-1]), "activation": [name for name, _ in net.activations[:-1]],
                 "batch_norm": list(net.batch_norm[:-1]), "dropout": list(net.dropout[:len(net.n) - 2])}
        wanted = {"hidden_layer_sizes": sizes, "activation": [_ACTIVATIONS[self.activation]] * hidden,
                  "batch_norm": batch_norm, "dropout": dropout}
        changed = [name for name in built if built[name] != wanted[name]]
        if "hidden_layer_sizes" in changed:  # the per-layer lists differ in length then too
            changed = ["hidden_layer_sizes"]
        if self.dtype is not None and np.dtype(self._fit_dtype_spec()) != net.dtype:
            changed.append("dtype")
        if changed:
            raise ValueError(f"{', '.join(changed)} changed since network_ was built, and "
                             f"{'partial_fit' if incremental else 'warm_start'} goes on with network_; "
                             f"set them back, or fit a new network (warm_start=False)")

    def _reset_stopping(self, first):
        """The records of the stopping rule (best_loss_ or validation_scores_ and
        best_validation_score_ with the best epoch's parameters, and the count of epochs
        without improvement): new with a new network; a warm start or a partial_fit goes on
        with the earlier calls' records, as scikit-learn's does, unless early_stopping changed
        since (they are the other rule's)."""
        if not first and (self.validation_scores_ is not None) == bool(self.early_stopping) and (
                not self.early_stopping or self._best is not None):  # None: pickled before it was kept
            return
        self._no_improvement_count = 0
        self._best = None  # the early-stopping snapshot of the best epoch
        if self.early_stopping:
            self.validation_scores_, self.best_validation_score_, self.best_loss_ = [], -np.inf, None
        else:
            self.validation_scores_, self.best_validation_score_, self.best_loss_ = None, None, np.inf

    def _split(self, X, y, rng):
        """Hold out validation_fraction of the examples, as scikit-learn's MLP does from the same
        rng: stratified for a binary classifier where each class can have examples on both
        sides, else at random (multi-class and multi-label targets, and regression)."""
        X, X_val, y, y_val = train_test_split(X, y, random_state=rng, test_size=self.validation_fraction,
                                              stratify=y if self._can_stratify(y) else None)
        if X_val.shape[0] < 2:
            raise ValueError(f"the validation set of early stopping holds {X_val.shape[0]} example; it needs at "
                             f"least 2: increase validation_fraction or give more examples")
        return X, X_val, y, y_val

    def _can_stratify(self, y):
        """Whether y is split stratified: a binary classifier's labels (one output, as scikit-learn
        stratifies), each class twice or more, and one example per class on each side of the split."""
        if not isinstance(self, ClassifierMixin) or y.ndim != 1 or self.n_outputs_ != 1:
            return False
        counts = np.unique(y, return_counts=True)[1]
        held_out = int(np.ceil(self.validation_fraction * y.shape[0]))
        return counts.min() >= 2 and min(held_out, y.shape[0] - held_out) >= counts.size

    def _batch_size(self, n_samples):
        if self.batch_size == "auto":
            return min(200, n_samples)
        if self.batch_size > n_samples:
            warnings.warn(f"batch_size {self.batch_size} is larger than the {n_samples} examples; "
                          f"it is clipped to {n_samples}", UserWarning)
        return min(self.batch_size, n_samples)

    def _train(self, X, y, X_val, y_val, incremental, seed):
        """Up to max_iter epochs (one for partial_fit) of network_.fit on X.T, stopping as
        scikit-learn's MLP stops. Returns scikit-learn's warning for a fit that Ctrl-C stopped
        (an epoch it ended in a step, as there, is not counted: not in n_iter_, t_ or loss_curve_)
        or that ran max_iter epochs without stopping, else None."""
        epochs = 1 if incremental else self.max_iter
        n_samples = X.shape[0]
        ended = [None]  # "stopped" or "interrupted"

        def after_epoch(epoch, logs):
            if logs.get("interrupted"):
                ended[0] = "interrupted"
                return True
            if self._after_epoch(self._loss(logs), n_samples, X_val, y_val):
                ended[0] = "stopped"
            return ended[0] is not None

        optimizer = self._optimizer()
        l2 = 0.0 if "weight_decay" in optimizer[1] else float(self.alpha)  # adamw's decay is alpha (see _optimizer)
        self.network_.fit(X.T, self._core_targets(y), epochs=epochs, batch_size=self._batch_size(n_samples),
                          optimizer=optimizer, learning_rate=self._learning_rate, shuffle=bool(self.shuffle),
                          seed=seed, l2=l2, callbacks=[after_epoch], verbose=0)
        if self.early_stopping and self._best is not None:  # the best epoch's, an earlier fit's too
            restore(self.network_, self._best)
        # Ctrl-C in a step, or between two epochs (in after_epoch, say: Network.fit then just stops)
        if ended[0] == "interrupted" or ended[0] is None and self.n_iter_ < epochs:
            return UserWarning("Training interrupted by user.")
        if not incremental and self.n_iter_ == self.max_iter and ended[0] is None:
            return ConvergenceWarning(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                                      f"optimization hasn't converged yet.")
        return None

    def _loss(self, logs):
        """loss_ of an epoch from its logs: the cost J, as scikit-learn's classifiers' log loss
        (summed over the outputs, averaged over the examples) and the alpha term (none with adamw)."""
        return logs["cost"]

    def _after_epoch(self, loss, n_samples, X_val, y_val):
        """Record an epoch; True when training should stop (no improvement by tol for n_iter_no_change epochs)."""
        self.n_iter_ += 1
        self.t_ += n_samples
        self.loss_ = float(loss)
        self.loss_curve_.append(self.loss_)
        if self.verbose:
            print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")
        improved = self._improved(X_val, y_val)
        self._no_improvement_count = 0 if improved else self._no_improvement_count + 1
        if self.learning_rate == "invscaling":
            with np.errstate(over="ignore"):  # a power beyond float64's range: a rate of 0, not an OverflowError
                self._learning_rate = float(self.learning_rate_init / np.float64(self.t_ + 1) ** self.power_t)
        if self._no_improvement_count > self.n_iter_no_change:  # scikit-learn's messages, word for word
            what = "Validation score" if X_val is not None else "Training loss"
            message = f"{what} did not improve more than tol={self.tol:f} for {self.n_iter_no_change} consecutive epochs."
            if self.learning_rate != "adaptive" or self._learning_rate <= _SMALLEST_ADAPTIVE_RATE:
                if self.verbose:
                    small = " Learning rate too small." if self.learning_rate == "adaptive" else ""
                    print(f"{message}{small} Stopping.")
                return True
            self._learning_rate /= 5
            self._no_improvement_count = 0
            if self.verbose:
                print(f"{message} Setting learning rate to {self._learning_rate:f}")
        self._set_learning_rate(self._learning_rate)
        return False

    def _set_learning_rate(self, rate):
        """The rate of the next epochs. SGD's momentum keeps the velocity of the steps taken at the old
        rate, as scikit-learn's does: its v = momentum v - lr g is -lr buf of mlpcore's (torch's) buf =
        momentum buf + g, so buf is scaled by old / new (not at a new rate of 0, which takes no step, nor
        where the scaled buffer would overflow the network's dtype: a rate of 1e-40 in float32)."""
        optimizer = self.network_.optimizer
        if optimizer.method == "sgd" and 0 < rate != optimizer.learning_rate:
            for buf in optimizer.state:
                with np.errstate(over="ignore", invalid="ignore"):
                    scaled = buf * (optimizer.learning_rate / rate)
                if np.all(np.isfinite(scaled)):
                    buf[...] = scaled
        optimizer.learning_rate = rate

    def _improved(self, X_val, y_val):
        """Whether this epoch improved the training loss (or the validation score) by at least tol."""
        if X_val is None:
            improved = self.loss_ <= self.best_loss_ - self.tol
            self.best_loss_ = min(self.best_loss_, self.loss_)
            return improved
        score = self._score_outputs(self._outputs(X_val), y_val)
        self.validation_scores_.append(score)
        if self.verbose:
            print(f"Validation score: {score:f}")
        improved = score >= self.best_validation_score_ + self.tol
        if score > self.best_validation_score_:
            self.best_validation_score_ = score
            self._best = snapshot(self.network_)
        return improved

    # ---- predicting ----

    def _validated(self, X):
        """X (n_samples, n_features) checked against the fit and in the network's dtype."""
        check_is_fitted(self)
        _require_dense(X)
        return validate_data(self, X, dtype=self.network_.dtype, reset=False)

    def _outputs(self, X):
        """A[L].T (n_samples, n_outputs) of an inference forward of the validated X; see _last_layer."""
        return self._last_layer(X, "A")

    def _last_layer(self, X, symbol):
        """A[L].T or Z[L].T (symbol "A" or "Z") of an inference forward of the validated X
        (n_samples, n_features): (n_samples, n_outputs), C-ordered, in the network's dtype.

        A copy that owns its memory: a view would keep the forward's cache, every layer's
        Z[l] and A[l], alive as long as the result.
        """
        net = self.network_
        return np.array(getattr(net.forward(X.T, training=False), symbol)[net.L].T)


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier trained by mlpcore, as sklearn.neural_network.MLPClassifier.

    Targets: binary (one sigmoid output, bce), multi-class (a softmax output of
    one unit per class, cce on integer labels) or multi-label (an indicator
    matrix (n_samples, n_labels): one sigmoid output per label, bce). Labels
    may be of any type numpy can sort (ints, strings, ...); classes_ holds them.

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default=(100,)
        Units of each hidden layer; () makes a network without hidden layers.
    activation : {"identity", "logistic", "tanh", "relu", "leaky_relu", "elu"}, default="relu"
        Activation of the hidden layers (leaky_relu with alpha 0.01, elu with alpha 1).
    solver : {"sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw"}, default="adam"
        mlpcore's optimizers. "sgd" is scikit-learn's: SGD with `momentum` and, when
        nesterovs_momentum, Nesterov's momentum (momentum=0 gives plain SGD); "momentum"
        and "nesterov" are SGD with `momentum`; "adam" and "adamw" take beta_1, beta_2
        and epsilon; "rmsprop" takes epsilon. The formulas are torch.optim's; "adamw"'s
        weight decay is alpha.
    alpha : float, default=1e-4
        L2 strength: each minibatch of m examples adds alpha/(2m) sum ||W[l]||^2 to the loss.
        With solver="adamw", AdamW's decoupled weight decay instead, p = p (1 - lr alpha) on
        every parameter (biases too, as torch.optim.AdamW's), and the loss has no alpha term;
        a new alpha between partial_fit calls then starts the optimizer's state afresh, as a
        new value of its other hyper-parameters (beta_1, momentum, ...) does.
    batch_size : int or "auto", default="auto"
        Minibatch size; "auto" is min(200, n_samples); clipped to n_samples.
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        "invscaling": learning_rate_init / (t_ + 1) ** power_t after each epoch (t_ the
        examples seen); "adaptive": divided by 5 whenever n_iter_no_change epochs did not
        improve by tol, stopping once it is at most 1e-6. Unlike scikit-learn,
        which uses it with "sgd" only, it applies to every solver. A new rate leaves
        SGD's momentum velocity as it was, as scikit-learn's does (the steps already
        taken keep their rate).
    learning_rate_init : float, default=1e-3
    power_t : float, default=0.5
    max_iter : int, default=200
        Maximum number of epochs (for partial_fit, one epoch per call).
    shuffle : bool, default=True
        Visit the examples of each epoch in a new random order.
    random_state : int, RandomState or None, default=None
        Draws the initial weights and biases (first, as scikit-learn's MLP draws them:
        Glorot's uniform scheme, so the same int gives its initial coefs_ and intercepts_),
        then the validation split (as scikit-learn's: the same int holds out the same
        examples), the dropout masks and the order of the examples; an int makes fits
        repeatable (for a given thread count).
    tol : float, default=1e-4
    n_iter_no_change : int or numpy.inf, default=10
        Training stops when, for more than n_iter_no_change epochs in a row, the training
        loss did not fall below its best minus tol (or, with early_stopping, the validation
        accuracy did not rise above its best plus tol).
    verbose : bool, default=False
        Print the loss of each epoch.
    warm_start : bool, default=False
        fit continues from the network of the previous fit (with a new optimizer state), and
        with the stopping rule's records, as scikit-learn's does: best_loss_ (or
        best_validation_score_ and the best epoch's parameters, which early stopping keeps
        even when they are an earlier fit's) and the count of epochs without improvement, so
        that a fit that stopped for want of improvement may stop again after one epoch. A
        changed architecture (hidden_layer_sizes, activation, batch_norm, dropout, dtype) is
        refused with a ValueError, here and by partial_fit: scikit-learn's goes on training the
        old network (or fails, for another number of hidden layers).
    momentum : float in [0, 1], default=0.9
        (0 is refused with solver="nesterov", which needs momentum.)
    nesterovs_momentum : bool, default=True
    early_stopping : bool, default=False
        Hold out validation_fraction of the training examples (drawn after the initial
        parameters, as scikit-learn's: the same random_state holds out the same examples;
        stratified for a binary classifier whose classes can both fall on both sides, else at
        random), stop on the validation accuracy as described under n_iter_no_change, and keep
        the parameters of the best epoch.
    validation_fraction : float in [0, 1), default=0.1
        (0 is refused with early_stopping, which scores the held-out examples.)
    beta_1, beta_2 : float in [0, 1), default=0.9, 0.999
    epsilon : float, default=1e-8
    dtype : None, "float32" or "float64", default=None
        The network's dtype. None follows X: float32 X trains a float32 network,
        any other X a float64 one.
    batch_norm : bool or sequence of bool, default=False
        Batch normalisation of each hidden layer's Z (one flag for all, or one per hidden layer).
    dropout : float or sequence of float, default=0.0
        Inverted-dropout probability of each hidden layer's activations during training.

    Attributes
    ----------
    network_ : mlpcore.Network, with W[l] (n[l], n[l-1]) and b[l] (n[l], 1) as in mlpcore.
    classes_ : ndarray (n_classes,) of the labels; for multi-label y, arange(n_labels).
    coefs_, intercepts_ : lists of views of the network's W[l].T (n_in, n_out) and b[l] (n_out,);
        assigning a list, or one item, copies the arrays into the network.
    loss_ : float, loss_curve_ : list of the mean minibatch loss of each epoch (L2 term included,
        but with solver="adamw", which has none).
    best_loss_ : float or None, validation_scores_ : list or None, best_validation_score_ : float or None.
    n_iter_ : int, epochs of the last fit; t_ : int, examples seen since the network was made.
    n_features_in_ : int; feature_names_in_ : ndarray of str, when X had string column names.
    n_layers_ : int; n_outputs_ : int; out_activation_ : "logistic" or "softmax".

    Notes
    -----
    Deliberate differences from scikit-learn's estimator:

    - y with a single class: predict_proba returns (n_samples, 1) of ones, the probability
      of classes_[0] (scikit-learn's returns (n_samples, 2)); predict returns that class.
    - A binary problem's predict gives classes_[1] only where its probability is above 0.5,
      classes_[0] where it is exactly 0.5, as scikit-learn's does; network_.predict
      (mlpcore's Network.predict, 1 where A[L] >= 0.5) gives 1 there.
    - decision_function (the logits) is an addition; meta-estimators that prefer it to
      predict_proba (CalibratedClassifierCV, say) then work on the logits.
    - X must be dense: scikit-learn's sparse matrices are refused with a TypeError that says how
      to make a Pipeline's columns dense (OneHotEncoder(sparse_output=False), or a
      ColumnTransformer's sparse_threshold=0), or X.toarray() where it fits; a sparse
      multi-label y is taken, as there.
    - warm_start and partial_fit refuse a changed architecture (see warm_start).
    - Outputs are in the network's dtype (float32 after a float32 fit, whatever X's dtype).

    A fit or partial_fit that raises, however late (a DivergenceError in an epoch), leaves
    the estimator as it was: network_ (the same object, with its parameters and optimizer
    state) and every fitted attribute, or unfitted if it was. For that, a call on a fitted
    estimator first copies network_'s parameters and optimizer state: on 6 million float32
    parameters with Adam, 8-20 ms on the 2-core development machine, against 70-120 ms for a
    partial_fit of 32 examples (train network_ itself, with Network.fit, where that
    matters). The ConvergenceWarning of a fit that ran max_iter epochs comes after the fit
    is kept, as in scikit-learn (a filter that makes it an error leaves the estimator
    fitted). So does the UserWarning "Training interrupted by user." of a fit that Ctrl-C
    stopped, which keeps the steps taken but, as scikit-learn's, does not count an epoch
    that it ended in a step (in n_iter_, t_ or loss_curve_).
    """

    _validation_kwargs = {}

    def fit(self, X, y):
        """Train a new network (or, with warm_start, the previous one) on X and y.

        X : array-like (n_samples, n_features), real numbers. y : labels (n_samples,),
        or a 0/1 indicator matrix (n_samples, n_labels) for multi-label classification.
        Returns self.
        """
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X, y, classes=None):
        """One epoch over X and y, continuing from the network and optimizer state of the last call.

        X : array-like (n_samples, n_features), real numbers. y : labels (n_samples,), or a
            0/1 indicator matrix (n_samples, n_labels) for multi-label classification.
        classes : every label of the whole task, needed on the first call (unless y is a
            multi-label indicator matrix), optional afterwards. Returns self.
        """
        return self._fit(X, y, incremental=True, classes=classes)

    def decision_function(self, X):
        """The output layer's pre-activation Z[L].T, in the network's dtype: the logits.

        (n_samples,) for one sigmoid output (binary: > 0 for classes_[1]), else
        (n_samples, n_outputs): softmax logits of each class, or each label's logit.
        """
        Z = self._last_layer(self._validated(X), "Z")
        return Z.ravel() if self.n_outputs_ == 1 and not self._multilabel else Z

    def predict_proba(self, X):
        """Probabilities (n_samples, n_classes) of the classes_, in the network's dtype.

        Multi-label: (n_samples, n_labels), each label's own probability.
        """
        return self._probabilities(self._outputs(self._validated(X)))

    def predict_log_proba(self, X):
        """log(predict_proba(X)): (n_samples, n_classes), or (n_samples, n_labels) for
        multi-label, in the network's dtype (-inf where a probability is 0)."""
        probabilities = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return np.log(probabilities, out=probabilities)

    def predict(self, X):
        """Labels (n_samples,) of classes_' dtype; multi-label: an int indicator matrix (n_samples, n_labels),
        a scipy.sparse CSR matrix when the first fit's y was sparse (as scikit-learn's).
        ValueError where the network's output is NaN (its forward overflowed), which has no label;
        predict_proba shows it."""
        outputs = self._outputs(self._validated(X))
        if not np.isfinite(outputs).all():
            raise ValueError("A[L] contains NaN or inf, of which no label can be predicted: the forward overflowed "
                             "(look at the scale of X and of the parameters)")
        labels = self._labels(outputs)
        return sparse.csr_matrix(labels) if self._multilabel and self._sparse_targets else labels

    def _set_targets(self, y, first, incremental, classes):
        """classes_, n_outputs_ (and which targets) from y; checks y against an earlier fit."""
        check_classification_targets(y)
        kind = type_of_target(y)
        if kind not in ("binary", "multiclass", "multilabel-indicator"):
            raise ValueError(f"y must be labels (n_samples,) or a multi-label 0/1 indicator matrix, got {kind} "
                             f"targets of shape {y.shape}")
        multilabel = kind == "multilabel-indicator"
        found = np.arange(y.shape[1]) if multilabel else unique_labels(y)
        if first:
            self._multilabel = multilabel
            if incremental and not multilabel:
                if classes is None:
                    raise ValueError("classes must be passed on the first call to partial_fit")
                self.classes_ = unique_labels(classes)
            else:
                self.classes_ = found
            self.n_outputs_ = len(self.classes_) if multilabel or len(self.classes_) > 2 else 1
        elif multilabel != self._multilabel:
            raise ValueError(f"y is {kind}, but the network was fitted on "
                             f"{'multi-label' if self._multilabel else 'label'} targets")
        elif classes is not None and not np.array_equal(unique_labels(classes), self.classes_):
            raise ValueError(f"classes={classes!r} differs from the classes of the first call, {self.classes_!r}")
        self._check_labels(found, warm=not (first or incremental))

    def _check_labels(self, found, warm):
        """The labels of y must be among classes_; a warm-started fit needs exactly classes_."""
        if self._multilabel:
            if len(found) != len(self.classes_):
                raise ValueError(f"y has {len(found)} labels; the network was fitted on {len(self.classes_)}")
        elif warm and set(found) != set(self.classes_):
            raise ValueError(f"warm_start needs y with the classes of the previous fit, {self.classes_!r}; "
                             f"y has {found!r}")
        elif len(np.setdiff1d(found, self.classes_)):
            raise ValueError(f"y has labels {np.setdiff1d(found, self.classes_)!r} that are not in classes_ "
                             f"{self.classes_!r}")

    def _output_layer(self):
        return ("softmax", "cce") if self.n_outputs_ > 1 and not self._multilabel else ("sigmoid", "bce")

    def _core_targets(self, y):
        """y as the core takes it: 0/1 (n_samples,) for one sigmoid output, label indices
        (n_samples,) for softmax, the indicator matrix transposed (n_labels, n_samples) for multi-label."""
        if self._multilabel:
            return y.T.astype(self.network_.dtype)
        if self.n_outputs_ == 1:
            return (y == self.classes_[-1]).astype(self.network_.dtype)
        return np.searchsorted(self.classes_, y)

    def _probabilities(self, outputs):
        """predict_proba from A[L].T (n_samples, n_outputs)."""
        if self._multilabel or self.n_outputs_ > 1:
            return outputs
        if len(self.classes_) == 1:
            return np.ones_like(outputs)
        return np.hstack([1 - outputs, outputs])

    def _labels(self, outputs):
        """predict from A[L].T: the most probable class (the first of a tie: classes_[0] at p = 0.5
        in a binary problem), or for multi-label each label with p > 0.5."""
        if self._multilabel:
            return (outputs > 0.5).astype(int)
        return self.classes_[self._probabilities(outputs).argmax(axis=1)]

    def _score_outputs(self, outputs, y):
        return accuracy_score(y, self._labels(outputs))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor trained by mlpcore, as sklearn.neural_network.MLPRegressor.

    An identity output layer of one unit per target and the mse cost
    J = 1/(2m) sum (A[L] - Y)^2 over each minibatch of m examples, summed over the
    outputs, whose gradients are scikit-learn's; loss_ (and tol's stopping rule on it)
    averages the squared errors over the outputs, as scikit-learn's loss_ does. The
    parameters are MLPClassifier's (see there), and loss; early stopping
    watches the validation R^2. X must be dense, and predict's outputs are in the
    network's dtype, as MLPClassifier's.

    Parameters
    ----------
    loss : {"squared_error"}, default="squared_error"
        The loss, keyword-only (scikit-learn's is its first positional parameter): only
        "squared_error", the mse cost above. scikit-learn's "poisson" is refused, as is any
        other value, with a ValueError at fit.

    Attributes
    ----------
    network_ : mlpcore.Network. coefs_, intercepts_, loss_, loss_curve_, best_loss_,
    validation_scores_, best_validation_score_, n_iter_, t_, n_features_in_,
    feature_names_in_, n_layers_, n_outputs_, out_activation_ ("identity"): as MLPClassifier's.
    A fit or partial_fit that raises leaves them, and network_, as they were (see MLPClassifier).
    """

    _validation_kwargs = {"y_numeric": True}

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, loss="squared_error", **parameters):
        super().__init__(hidden_layer_sizes, activation, **parameters)
        self.loss = loss

    # scikit-learn's get_params and clone read the parameters from the signature: _BaseMLP's and loss
    __init__.__signature__ = _signature_with(_BaseMLP.__init__, __init__, "loss")

    def fit(self, X, y):
        """Train a new network (or, with warm_start, the previous one) on X and y.

        X : array-like (n_samples, n_features); y : real targets (n_samples,) or
        (n_samples, n_targets). Returns self.
        """
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X, y):
        """One epoch over X and y, continuing from the network and optimizer state of the last call.

        X : array-like (n_samples, n_features); y : real targets (n_samples,) or
        (n_samples, n_targets). Returns self.
        """
        return self._fit(X, y, incremental=True)

    def predict(self, X):
        """Predictions (n_samples,) for one target, else (n_samples, n_targets), in the network's dtype."""
        outputs = self._outputs(self._validated(X))
        return outputs.ravel() if self.n_outputs_ == 1 else outputs

    def _outputs(self, X):
        """A[L].T (n_samples, n_outputs), C-ordered, in the network's dtype, of the validated X:
        network_.predict's A[L], an array of its own (predict reuses its other buffers)."""
        return self.network_.predict(X.T).T

    def _check_params(self):
        _require(isinstance(self.loss, str) and self.loss == "squared_error", "loss",
                 "'squared_error' (scikit-learn's 'poisson' is not supported)", self.loss)
        super()._check_params()

    def _set_targets(self, y, first, incremental, classes):
        n_outputs = 1 if y.ndim == 1 else y.shape[1]
        if first:
            self.n_outputs_ = n_outputs
        elif n_outputs != self.n_outputs_:
            raise ValueError(f"y has {n_outputs} targets; the network was fitted on {self.n_outputs_}")

    def _output_layer(self):
        return "identity", "mse"

    def _core_targets(self, y):
        """y as the core takes it, in the network's dtype: (n_samples,) or, transposed,
        (n_targets, n_samples). ValueError if a target is beyond that dtype's range."""
        dtype = self.network_.dtype
        with np.errstate(over="ignore"):
            targets = (y if y.ndim == 1 else y.T).astype(dtype, copy=False)
        if not np.isfinite(targets).all():  # y itself is finite (validate_data checked it)
            raise ValueError(f"y holds targets beyond the range of the network's {dtype} (largest |y| is "
                             f"{np.abs(y).max():g}); scale y down, or fit with dtype='float64'")
        return targets

    def _loss(self, logs):
        """scikit-learn's loss_: the squared errors averaged over the n_outputs_ outputs (the mse
        cost J sums them, which gives the same gradients as scikit-learn's), and the alpha term
        (none with adamw)."""
        l2_term = logs.get("l2_term", 0.0)
        return (logs["cost"] - l2_term) / self.n_outputs_ + l2_term

    def _score_outputs(self, outputs, y):
        return r2_score(y, outputs.ravel() if self.n_outputs_ == 1 else outputs)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
