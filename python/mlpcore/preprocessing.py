"""Feature scaling and targets, on (n[0], m) arrays: one column per example, like the rest of mlpcore.

    scaler = Standardizer().fit(X_train)        # X_train (n0, m)
    X_train = scaler.transform(X_train)         # zero mean, unit variance per feature (row)
    X_test = scaler.transform(X_test)           # with the training mean and scale
    Y = one_hot(labels, K)                      # (K, m) float64
"""

import numpy as np

from . import reference
from ._checks import transpose_hint

__all__ = ["Standardizer", "NotFittedError", "one_hot"]


class NotFittedError(ValueError, AttributeError):
    """A Standardizer was asked to transform before it was fitted."""


def _matrix(X, name="X"):
    """X as a 2-D array of real numbers with at least one column; the dtype is kept."""
    X = np.asarray(X)
    if X.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers (float or int); got dtype {X.dtype}")
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D of shape (n0, m), one column per example; "
                         f"got shape {X.shape}")
    if X.shape[1] == 0:
        raise ValueError(f"{name} must have at least one example (column); got shape {X.shape}")
    if X.dtype.kind == "f" and not np.all(np.isfinite(X)):
        raise ValueError(f"{name} must be finite; it holds NaN or inf")
    return X


# A result beyond the largest float of its dtype by at most this many units of its eps (relative) is
# taken as that largest: the rounding of transform then inverse_transform of values at the edge of the range.
ROUNDING = 4


def _computed(formula, X, mean, dtype, what):
    """formula(X, mean) as dtype, (n0, m), computed in float64, for a formula linear in X and mean
    together (so that formula(X / 2, mean / 2) is half of it).

    Where a value is beyond dtype's range (or a step of it overflows float64), it is computed as
    2 formula(X / 2, mean / 2), whose steps are half as large: one beyond by no more than ROUNDING
    units of dtype's eps (relative) is dtype's largest, with its sign; ValueError, naming the first
    feature (row) and example (column), for one beyond by more (its `what`)."""
    largest = np.finfo(dtype).max
    with np.errstate(over="ignore"):
        values = formula(X, mean)
        beyond = ~(np.abs(values) <= largest)
        if np.any(beyond):
            half = formula(X / 2, mean / 2)
            values = np.where(beyond, np.clip(2 * half, -largest, largest), values)
            refused = beyond & ~(np.abs(half) <= largest / 2 * (1 + ROUNDING * np.finfo(dtype).eps))
            if np.any(refused):
                row, column = np.argwhere(refused)[0]
                raise ValueError(f"feature (row) {row}, example (column) {column}: its {what} is "
                                 f"{2 * half[row, column]:g}, beyond the range of {dtype.name}")
    return values.astype(dtype, copy=False)


class Standardizer:
    """Mean normalisation and scaling of each feature (each row of X) to zero mean and unit variance.

    fit(X) learns, from X (n0, m), mean_ = the mean of each row and scale_ = its standard
    deviation (population: divided by m), both (n0, 1) float64; a constant feature (scale 0,
    or below rounding of its mean) gets scale 1, so it is mapped to 0, never divided by zero.
    transform(X) = (X - mean_) / scale_; inverse_transform(X) = X scale_ + mean_.

    X may be any real or integer array; float32 stays float32 and float64 stays float64
    (integers give float64). The statistics are computed in float64, finite for any finite X
    (even near the largest float64); transform and inverse_transform refuse (ValueError) a value
    whose result the output dtype cannot hold, rather than give inf.

    Attributes
    ----------
    mean_ : (n0, 1) float64, the mean of each feature over the training examples.
    scale_ : (n0, 1) float64, the standard deviation of each feature, 1 where it is 0.
    n_features_ : int, n0.
    """

    def __init__(self):
        self.mean_ = None
        self.scale_ = None
        self.n_features_ = None

    def fit(self, X):
        """Learn mean_ and scale_ from X of shape (n0, m), m >= 1, finite. Returns self.

        Any finite X within float64's range (in which they are computed; ValueError beyond it)
        gives a finite mean_ and scale_: a feature whose largest |x| is beyond
        2^400 or below 2^-400 is taken in units of the power of 2 at or above it (exactly),
        where no sum or square overflows or underflows.
        """
        X = _matrix(X)
        with np.errstate(over="ignore"):
            X64 = X.astype(np.float64)
        if not np.all(np.isfinite(X64)):  # a longdouble beyond float64's range
            raise ValueError("X holds values beyond float64's range, in which the statistics are computed")
        _, exponent = np.frexp(np.max(np.abs(X64), axis=1, keepdims=True))
        exponent = np.where(np.abs(exponent) > 400, exponent, 0)  # ordinary features: their own units
        X_units = np.ldexp(X64, -exponent) if np.any(exponent) else X64  # |X_units| < 1 where rescaled
        low, high = X_units.min(axis=1, keepdims=True), X_units.max(axis=1, keepdims=True)
        # mean_ = (1/m) sum over columns of X, within [min, max] whatever the rounding: a constant
        # feature's own value
        mean = np.clip(np.mean(X_units, axis=1, keepdims=True), low, high)
        # scale_ = sqrt((1/m) sum over columns of (X - mean_)^2), at most half the range (max - min) / 2
        scale = np.minimum(np.sqrt(np.mean((X_units - mean) ** 2, axis=1, keepdims=True)), (high - low) / 2)
        mean, scale = np.ldexp(mean, exponent), np.ldexp(scale, exponent)
        # scale 1 for a constant feature, and for a spread that is only the rounding of the mean
        scale = np.where(scale <= 10 * np.finfo(np.float64).eps * np.abs(mean), 1.0, scale)
        self.mean_, self.scale_, self.n_features_ = mean, scale, X.shape[0]
        return self

    def transform(self, X):
        """(X - mean_) / scale_ for X of shape (n0, m); float32 stays float32, else float64.

        Raises ValueError, naming the feature (row) and example (column), for a value that lies
        beyond the range of that dtype once standardised (never on the data of fit).
        """
        X = self._checked(X)
        # X_scaled = (X - mean_) / scale_
        return _computed(lambda X, mean: (X - mean) / self.scale_, X.astype(np.float64), self.mean_,
                         self._dtype(X), "standardised value")

    def fit_transform(self, X):
        """fit(X), then transform(X): X (n0, m) of reals standardised with its own statistics,
        float32 for float32 X, else float64."""
        return self.fit(X).transform(X)

    def inverse_transform(self, X):
        """X scale_ + mean_ for standardised X (n0, m): back to the original units; float32
        stays float32, else float64.

        Raises ValueError, naming the feature (row) and example (column), for a value that lies
        beyond the range of that dtype in the original units.
        """
        X = self._checked(X)
        # X = X_scaled scale_ + mean_
        return _computed(lambda X, mean: X * self.scale_ + mean, X.astype(np.float64), self.mean_,
                         self._dtype(X), "value in the original units")

    def _checked(self, X):
        if self.mean_ is None:
            raise NotFittedError("this Standardizer is not fitted yet: call fit(X) or "
                                 "fit_transform(X) with the training data first")
        X = _matrix(X)
        if X.shape[0] != self.n_features_:
            raise ValueError(f"X must have n0 = {self.n_features_} rows (features), as in fit; "
                             f"got shape {X.shape}{transpose_hint('X', X.shape, self.n_features_)}")
        return X

    @staticmethod
    def _dtype(X):
        return X.dtype if X.dtype == np.float32 else np.dtype(np.float64)

    def __repr__(self):
        fitted = f"fitted on n0 = {self.n_features_}" if self.mean_ is not None else "not fitted"
        return f"Standardizer({fitted})"


def one_hot(labels, K):
    """One-hot targets Y of shape (K, m), float64: Y[labels[j], j] = 1, 0 elsewhere.

    labels : (m,) class indices in 0..K-1; integers, or floats that are whole numbers.
    K : the number of classes, an integer >= 1.
    Raises ValueError on labels that are not 1-D, not whole numbers or outside 0..K-1,
    and on K < 1; TypeError on a K that is not an integer or labels that are not numbers.
    """
    if isinstance(K, bool) or not isinstance(K, (int, np.integer)):
        raise TypeError(f"K must be an integer (the number of classes); got {K!r}")
    if K < 1:
        raise ValueError(f"K must be >= 1 (the number of classes); got {K}")
    labels = np.asarray(labels)
    if labels.dtype.kind not in "fiu":
        raise TypeError(f"labels must be integers 0..{K - 1}; got dtype {labels.dtype}")
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D of shape (m,); got shape {labels.shape}")
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
            raise ValueError("labels must be whole numbers (class indices); got "
                             f"{labels[~np.isfinite(labels) | (labels != np.round(labels))][:5]}")
    if labels.size and (labels.min() < 0 or labels.max() >= K):  # before the cast, which would wrap them
        raise ValueError(f"labels must lie in 0..{K - 1} for K = {K} classes; got values from "
                         f"{labels.min()} to {labels.max()}")
    return reference.one_hot(labels.astype(np.int64), K)
