"""Pictures of training and of a network, drawn with matplotlib (``pip install ".[plot]"`` in a
clone of mlpcore, or ``pip install matplotlib``).

    import mlpcore.plot                                        # not imported by ``import mlpcore``
    fig = mlpcore.plot.cost_curves(net.history)                # cost and validation curves per epoch
    fig = mlpcore.plot.decision_regions(net, X, y)             # a classifier of 2-D inputs, X (2, m)
    fig = mlpcore.plot.activation_functions()                  # g(z) beside g'(z), as the lecture notes draw them
    fig = mlpcore.plot.weight_histograms(net, grads)           # W[l] and dW[l] per layer: vanishing or exploding?

Each function returns the matplotlib Figure and, given ``path``, also saves it as a PNG
(or any format matplotlib knows from the file name) and closes it in pyplot, so that a loop
saving pictures does not keep them all (the Figure returned can still be drawn on and saved);
a figure made here is closed as well when its drawing or saving fails.
cost_curves and decision_regions draw into an existing Axes when given ``ax``, whose figure
stays the caller's to close. matplotlib is imported when a function is called,
never by ``import mlpcore``.
"""

import contextlib
import math
import os

import numpy as np

from . import reference
from ._checks import is_integer, is_real, largest, transpose_hint
from .network import Gradients, Network

__all__ = ["cost_curves", "decision_regions", "activation_functions", "weight_histograms", "save",
           "picture_format", "MISSING_MATPLOTLIB"]

MISSING_MATPLOTLIB = ('mlpcore.plot needs matplotlib: pip install ".[plot]" in a clone of mlpcore '
                      "(or pip install matplotlib)")

# The element-wise activations, leaky_relu with a slope that shows at this scale.
DEFAULT_ACTIVATIONS = ("identity", "step", "sigmoid", "tanh", "relu", ("leaky_relu", {"alpha": 0.1}), "elu")

# The per-epoch lists of a history that cost_curves draws. fit records val_r2 as NaN when there is one
# validation example (as scikit-learn's r2_score), which the curve leaves out; the others are finite.
CURVES = ("cost", "val_cost", "val_accuracy", "val_r2")
MARKED_EPOCHS = 30  # curves of at most this many epochs mark each epoch, so that one epoch shows as a point

# The largest |coordinate| decision_regions and weight_histograms draw: matplotlib's ticks overflow
# float64 past about 4e307.
DRAWABLE = 1e307
# The largest |z| activation_functions draws, with room for g(z) = alpha z below DRAWABLE.
Z_LIMIT = 1e100

# The names of NumPy's rules for the number of bins (numpy.histogram_bin_edges), which weight_histograms takes.
BIN_RULES = ("auto", "fd", "doane", "scott", "stone", "rice", "sturges", "sqrt")


def _pyplot():
    """matplotlib.pyplot, or ImportError naming the extra that brings it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(MISSING_MATPLOTLIB) from None
    return plt


def _axes(ax, figsize):
    """The Axes to draw into: ax, or the one Axes of a new figure of figsize (inches)."""
    if ax is not None:
        return ax
    return _pyplot().subplots(figsize=figsize, layout="constrained")[1]


@contextlib.contextmanager
def _closed_on_failure(figure, made_here):
    """Close figure in pyplot, when made here, if the drawing in the with block fails: the caller never
    gets it to close."""
    try:
        yield
    except BaseException:
        if made_here:
            _pyplot().close(figure)
        raise


def _finish(figure, path, made_here):
    """Save figure to path (when given) and return it; a figure made here (not the figure of
    an Axes given) is then closed in pyplot."""
    if path is not None:
        try:
            save(figure, path)
        finally:  # a figure made here is closed even when the save fails
            if made_here:
                _pyplot().close(figure)
    return figure


def save(figure, path):
    """Save the matplotlib figure at path (str or os.PathLike), at 100 dpi, in the format its
    extension names (PNG without one), whole or not at all: a save that fails leaves what was
    at path as it was. A file object (io.BytesIO, say) gets matplotlib's own savefig."""
    from .io import write_atomically

    if hasattr(path, "write"):
        figure.savefig(path, dpi=100)
        return
    kind = picture_format(path)
    write_atomically(path, lambda file: figure.savefig(file, dpi=100, format=kind))


def picture_format(path):
    """The format matplotlib writes for path's extension, "png" without one; ValueError naming
    the formats it writes for another extension."""
    _pyplot()
    from matplotlib.backend_bases import FigureCanvasBase

    extension = os.path.splitext(os.fsdecode(path))[1][1:].lower()
    formats = FigureCanvasBase.get_supported_filetypes()
    if extension and extension not in formats:
        raise ValueError(f"{os.fsdecode(path)}: matplotlib writes {', '.join(sorted(formats))} pictures, not "
                         f"{extension!r}")
    return extension or "png"


def cost_curves(history, ax=None, path=None):
    """The cost J (and the validation cost) per epoch, with the validation metric on a second axis.

    history : the dict that Network.fit returns (also ``net.history``): "cost" and, when
        fit had validation data, "val_cost" and "val_accuracy" or "val_r2"; lists, tuples or
        1-D NumPy arrays with one finite number per epoch (val_r2 may also hold NaN, which fit
        records for one validation example: those epochs are left out of its curve).
    ax : a matplotlib Axes to draw into; None draws into a new figure.
    path : where to save the figure (see save), or None.
    Returns the Figure. The cost axis is logarithmic when every cost is > 0. Curves of at most
    MARKED_EPOCHS epochs mark each epoch with a dot.
    """
    curves = _curves(history)
    epochs = np.arange(1, len(curves["cost"]) + 1)
    style = {"marker": "o", "markersize": 3} if len(epochs) <= MARKED_EPOCHS else {}
    made_here, ax = ax is None, _axes(ax, (6, 4))
    with _closed_on_failure(ax.figure, made_here):
        ax.plot(epochs, curves["cost"], label="cost J (training)", **style)
        if "val_cost" in curves:
            ax.plot(epochs, curves["val_cost"], label="cost J (validation)", **style)
        if min(np.min(curves[key]) for key in ("cost", "val_cost") if key in curves) > 0:
            ax.set_yscale("log")
        ax.set(xlabel="epoch", ylabel="cost J", title="cost per epoch")
        lines = ax.get_lines()
        metric = next((key for key in ("val_accuracy", "val_r2") if key in curves), None)
        if metric is not None:
            right = ax.twinx()
            lines += right.plot(epochs, curves[metric], color="tab:green", linestyle="--", label=metric, **style)
            right.set_ylabel(metric)
        ax.legend(lines, [line.get_label() for line in lines], loc="center right")
    return _finish(ax.figure, path, made_here)


def _curves(history):
    """{key: (epochs,) float64 array} for each of CURVES that history holds (not None or empty).
    ValueError unless history is a dict with a non-empty "cost" and each curve holds one finite
    number per epoch (or NaN, in val_r2)."""
    if not isinstance(history, dict) or _is_empty(history.get("cost")):
        raise ValueError("history must be the dict of a fit, with a non-empty 'cost' list; "
                         f"got {type(history).__name__}"
                         + (f" with keys {sorted(history)}" if isinstance(history, dict) else ""))
    epochs = len(history["cost"]) if _is_list(history["cost"]) else None
    curves = {}
    for key in CURVES:
        values = history.get(key)
        if _is_empty(values):
            continue
        if not (_is_list(values) and len(values) == epochs and all(_is_point(value, key) for value in values)):
            raise ValueError(f"history[{key!r}] must hold one finite number per epoch"
                             + (f", as 'cost' does ({epochs} epochs)" if key != "cost" else ""))
        curves[key] = np.array(values, dtype=np.float64)
    return curves


def _is_empty(values):
    """True for None and an empty list, tuple or NumPy array: a curve that a history does not hold."""
    if isinstance(values, np.ndarray):
        return values.size == 0
    return values is None or isinstance(values, (list, tuple)) and not values


def _is_list(values):
    """True for a list, a tuple or a 1-D NumPy array, the forms of a curve of a history."""
    return isinstance(values, (list, tuple)) or isinstance(values, np.ndarray) and values.ndim == 1


def _is_point(value, key):
    """True for a value that the curve of history[key] takes: a finite number, or NaN in val_r2."""
    return is_real(value) or key == "val_r2" and isinstance(value, (float, np.floating)) and math.isnan(value)


def decision_regions(net, X, y, ax=None, path=None, resolution=200):
    """The regions a classifier of 2-D inputs assigns to each class, with the examples on top.

    net : a Network with n[0] = 2 and a bce output of one unit (binary) or a cce output.
    X : (2, m) the examples, one column each; y : (m,) or (1, m) their class indices (0/1 or
        False/True for bce).
    ax : a matplotlib Axes to draw into; None draws into a new figure.
    path : where to save the figure (see save), or None.
    resolution : points per side of the grid the network is evaluated on.
    Binary: the colour is A[L], the probability of class 1, with the 0.5 boundary drawn.
    Multi-class: each region takes the colour of the class of largest A[L].
    Returns the Figure.
    """
    if not isinstance(net, Network):
        raise TypeError(f"net must be a mlpcore.Network, got {type(net).__name__}")
    if net.n[0] != 2 or net.cost_name == "mse" or (net.cost_name == "bce" and net.n[-1] != 1):
        raise ValueError("decision_regions draws a classifier of 2 inputs (bce with one output unit, "
                         f"or cce); got n = {list(net.n)} with cost {net.cost_name!r}")
    X, given = np.asarray(X), np.asarray(y)
    y = given[0] if given.ndim == 2 and given.shape[0] == 1 else given
    y = y.astype(np.intp) if y.dtype == bool else y
    if X.ndim != 2 or X.shape[0] != 2 or X.shape[1] < 1 or y.shape != (X.shape[1],):
        raise ValueError(f"X must be (2, m) and y (m,) or (1, m) with m >= 1; got X {X.shape} and y {given.shape}"
                         f"{transpose_hint('X', X.shape, 2, y.shape[0] if y.ndim == 1 else None)}")
    if not is_integer(resolution) or resolution < 2:
        raise ValueError(f"resolution must be an integer >= 2 (points per side of the grid), got {resolution!r}")
    if X.dtype.kind not in "fiu" or not np.all(np.isfinite(X)):
        raise ValueError(f"X must hold finite real numbers, got dtype {X.dtype}")
    limit = min(largest(net.dtype), DRAWABLE)
    if not np.max(np.abs(X)) <= limit:
        raise ValueError(f"X must lie within +-{limit:.4g}, which the network's {net.dtype.name} holds and "
                         f"matplotlib draws; got values up to {np.max(np.abs(X)):.4g}")
    classes = 2 if net.cost_name == "bce" else net.n[-1]
    if y.dtype.kind not in "fiu" or not np.all(np.isin(y, np.arange(classes))):
        raise ValueError(f"y must hold the class indices 0..{classes - 1} of the examples, got the {y.dtype} "
                         f"values {np.unique(y)[:6]}")
    u, v = _grid_axes(X, resolution, limit)
    U, V = np.meshgrid(u, v)
    A_L = net.forward(np.stack([U.ravel(), V.ravel()]), training=False).A[net.L]
    made_here, ax = ax is None, _axes(ax, (5, 5))
    with _closed_on_failure(ax.figure, made_here):
        colours = _draw_regions(ax, net, U, V, A_L)
        ax.scatter(X[0], X[1], c=y, s=12, edgecolors="black", linewidths=0.4, **colours)
        ax.set(xlabel="x1", ylabel="x2", title="decision regions", aspect="equal")
    return _finish(ax.figure, path, made_here)


def _draw_regions(ax, net, U, V, A_L):
    """Draw into ax the class regions of A_L (n[L], U.size), the network's output at the points of the
    grid U, V (each (resolution, resolution)); returns the colour arguments (cmap, vmin, vmax) that
    give the examples of each class the colour of its region."""
    if net.cost_name == "bce":
        probability = A_L.reshape(U.shape)
        colours = {"cmap": "coolwarm", "vmin": 0, "vmax": 1}
        ax.contourf(U, V, probability, levels=np.linspace(0, 1, 11), alpha=0.6, **colours)
        ax.contour(U, V, probability, levels=[0.5], colors="black", linewidths=1)
    else:
        K, palette = net.n[-1], 10 if net.n[-1] <= 10 else 20
        cmap = f"tab{palette}"  # class k takes colour k (classes past 20 share the last)
        colours = {"cmap": cmap, "vmin": -0.5, "vmax": palette - 0.5}
        labels, colour = A_L.argmax(axis=0).reshape(U.shape), _pyplot().get_cmap(cmap)
        for k in range(K):  # each class's own region: contours of the labels themselves would draw, where
            # classes 0 and 2 meet, a band of class 1 (the values between them)
            ax.contourf(U, V, (labels == k).astype(float), levels=[0.5, 1.5], alpha=0.4,
                        colors=[colour(min(k, palette - 1))])
    return colours


def _grid_axes(X, resolution, limit):
    """The points u (x1) and v (x2) of the grid decision_regions evaluates, each (resolution,) float64:
    the examples' bounding box (|X| <= limit) widened on every side by 10% of its larger side, or by
    1e-4 of the largest |x| (at least 1) when that is more (one example, or examples that differ by
    rounding only), and clipped to +-limit."""
    X = X.astype(np.float64)
    low, high = X.min(axis=1), X.max(axis=1)
    margin = max(0.1 * np.max(high - low), 1e-4 * max(np.max(np.abs(X)), 1.0))
    low, high = np.maximum(low - margin, -limit), np.minimum(high + margin, limit)
    return (np.linspace(first, last, resolution) for first, last in zip(low, high))


def activation_functions(activations=DEFAULT_ACTIVATIONS, path=None, z=None):
    """Each activation g(z) beside its derivative g'(z), one row per activation.

    activations : specs as Network takes them ("relu", ("elu", {"alpha": 0.5}), ("elu", None), ...),
        or one spec; softmax has no element-wise derivative and is refused. The values come from
        mlpcore.reference.g and g_prime.
    path : where to save the figure (see save), or None.
    z : the points of the horizontal axis, a 1-D array (or list) of at least 2 real numbers with
        |z| <= Z_LIMIT (default 401 points from -4 to 4).
    Returns the Figure (a new one: there is no ax, as it draws a grid of Axes).
    """
    one_pair = (isinstance(activations, tuple) and len(activations) == 2
                and (activations[1] is None or isinstance(activations[1], dict)))
    if not (isinstance(activations, (str, list, tuple))):
        raise TypeError(f"activations must be a spec such as 'relu' or ('elu', {{'alpha': 0.5}}), or a list of "
                        f"them; got {activations!r}")
    specs = [activations] if isinstance(activations, str) or one_pair else list(activations)
    if not specs:
        raise ValueError("activations must name at least one activation")
    for spec in specs:
        if reference.parse_activation(spec)[0] == "softmax":
            raise ValueError("softmax has no element-wise derivative to draw; choose among "
                             f"{', '.join(name for name in reference.ACTIVATIONS if name != 'softmax')}")
    Z = np.linspace(-4, 4, 401).reshape(1, -1) if z is None else _points(z)
    figure, axes = _pyplot().subplots(len(specs), 2, figsize=(7, 1.9 * len(specs)), sharex=True,
                                      squeeze=False, layout="constrained")
    with _closed_on_failure(figure, made_here=True):
        for (left, right), spec in zip(axes, specs):
            _draw_activation(left, right, spec, Z)
        for ax in axes[-1]:
            ax.set_xlabel("z")
    return _finish(figure, path, made_here=True)


def _draw_activation(left, right, spec, Z):
    """Draw g(Z) of the activation spec into the Axes left and g'(Z) into right; Z (1, k) float64."""
    name, params = reference.parse_activation(spec)
    label = name + (f" (alpha {params['alpha']:g})" if params else "")
    left.plot(Z[0], reference.g(spec, Z)[0])
    right.plot(Z[0], reference.g_prime(spec, Z)[0], color="tab:orange")
    left.set_title(f"{label}: g(z)", fontsize=10)
    right.set_title(f"{label}: g'(z)", fontsize=10)
    for ax in (left, right):
        ax.axhline(0, color="grey", linewidth=0.5)
        ax.axvline(0, color="grey", linewidth=0.5)


def _points(z):
    """z as a (1, k) float64 array; TypeError unless it holds real numbers, ValueError unless it is
    1-D with k >= 2 points of |z| <= Z_LIMIT."""
    points = np.asarray(z)
    if points.dtype.kind not in "fiu":
        raise TypeError(f"z must hold real numbers (float or int), got dtype {points.dtype}")
    if points.ndim != 1 or points.size < 2 or not np.all(np.abs(points) <= Z_LIMIT):
        raise ValueError(f"z must be a 1-D array of at least 2 finite points with |z| <= {Z_LIMIT:g} (the "
                         f"horizontal axis), got shape {points.shape}"
                         + (f" from {points.min()} to {points.max()}" if points.size else ""))
    return points.astype(np.float64).reshape(1, -1)


def weight_histograms(net, grads=None, path=None, bins=40):
    """Histograms of W[l] for each layer l (one column each) and, given grads, of dW[l] below.

    net : a Network; grads : Gradients of a backward pass of net, or None.
    path : where to save the figure (see save), or None.
    bins : the number of bins of each histogram, an integer >= 1, or the name of a NumPy rule
        that chooses it (one of BIN_RULES, see numpy.histogram_bin_edges).
    The layers of a row share its horizontal axis (the W row and the dW row are scaled
    apart), so that a layer whose gradients vanish shows as a narrow spike beside the
    others and exploding ones as a wide spread; each title gives the standard deviation.
    Returns the Figure (a new one: there is no ax, as it draws a grid of Axes).
    """
    if not isinstance(net, Network):
        raise TypeError(f"net must be a mlpcore.Network, got {type(net).__name__}")
    if grads is not None and not isinstance(grads, Gradients):
        raise TypeError(f"grads must be mlpcore.Gradients from net.backward, got {type(grads).__name__}")
    if grads is not None and grads._network is not net:
        raise ValueError("grads are of another network: give the Gradients of a backward of net")
    if not (is_integer(bins) and bins >= 1 or isinstance(bins, str) and bins in BIN_RULES):
        raise ValueError(f"bins must be an integer >= 1 or one of {', '.join(BIN_RULES)}; got {bins!r}")
    rows = [(symbol, [_histogram_values(symbol, l, arrays[l]) for l in arrays])
            for symbol, arrays in [("W", net.W)] + ([("dW", grads.dW)] if grads is not None else [])]
    figure, axes = _pyplot().subplots(len(rows), net.L, figsize=(2.6 * net.L, 2.3 * len(rows)),
                                      sharex="row", squeeze=False, layout="constrained")
    with _closed_on_failure(figure, made_here=True):
        for row, (symbol, layers) in zip(axes, rows):
            for l, (ax, values) in enumerate(zip(row, layers), start=1):
                ax.hist(values, bins=bins, color="tab:blue" if symbol == "W" else "tab:red")
                ax.set_title(f"{symbol}[{l}]  std {_std(values):.2g}", fontsize=10)
                ax.set_yticks([])
    return _finish(figure, path, made_here=True)


def _histogram_values(symbol, l, array):
    """The values of array (symbol[l]) as a 1-D float64 array; ValueError when one is NaN or inf, or beyond
    +-DRAWABLE."""
    values = np.asarray(array, dtype=np.float64).ravel()
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{symbol}[{l}] holds NaN or inf: a histogram has no bins for them")
    if not np.max(np.abs(values)) <= DRAWABLE:
        raise ValueError(f"{symbol}[{l}] holds values up to {np.max(np.abs(values)):.4g}, beyond the +-{DRAWABLE:g} "
                         "that matplotlib draws")
    return values


def _std(values):
    """The standard deviation of values (1-D float64), in units of their largest |value|: the squares of
    values beyond 1e154 would overflow."""
    unit = np.max(np.abs(values))
    return unit * np.std(values / unit) if unit > 0 else 0.0
