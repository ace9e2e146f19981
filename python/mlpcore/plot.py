"""Pictures of training and of a network, drawn with matplotlib (``pip install ".[plot]"`` in a
clone of mlpcore, or ``pip install matplotlib``).

    import mlpcore.plot                                        # not imported by ``import mlpcore``
    fig = mlpcore.plot.cost_curves(net.history)                # cost and validation curves per epoch
    fig = mlpcore.plot.decision_regions(net, X, y)             # a classifier of 2-D inputs, X (2, m)
    fig = mlpcore.plot.activation_functions()                  # g(z) beside g'(z), as the lecture notes draw them
    fig = mlpcore.plot.weight_histograms(net, grads)           # W[l] and dW[l] per layer: vanishing or exploding?

Each function returns the matplotlib Figure and, given ``path``, also saves it as a PNG
(or any format matplotlib knows from the file name) and closes it in pyplot, so that a loop
saving pictures does not keep them all (the Figure returned can still be drawn on and saved).
cost_curves and decision_regions draw into an existing Axes when given ``ax``, whose figure
stays the caller's to close. matplotlib is imported when a function is called,
never by ``import mlpcore``.
"""

import os

import numpy as np

from . import reference
from ._checks import is_integer, is_real
from .network import Gradients, Network

__all__ = ["cost_curves", "decision_regions", "activation_functions", "weight_histograms", "save",
           "picture_format", "MISSING_MATPLOTLIB"]

MISSING_MATPLOTLIB = ('mlpcore.plot needs matplotlib: pip install ".[plot]" in a clone of mlpcore '
                      "(or pip install matplotlib)")

# The element-wise activations, leaky_relu with a slope that shows at this scale.
DEFAULT_ACTIVATIONS = ("identity", "step", "sigmoid", "tanh", "relu", ("leaky_relu", {"alpha": 0.1}), "elu")


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
        fit had validation data, "val_cost" and "val_accuracy" or "val_r2"; lists (or 1-D
        NumPy arrays) with one float per epoch.
    ax : a matplotlib Axes to draw into; None draws into a new figure.
    path : where to save the figure (see save), or None.
    Returns the Figure. The cost axis is logarithmic when every cost is > 0.
    """
    if isinstance(history, dict):  # 1-D NumPy arrays as lists (an array's truth value is ambiguous)
        history = {key: list(value) if isinstance(value, np.ndarray) and value.ndim == 1 else value
                   for key, value in history.items()}
    if not isinstance(history, dict) or not history.get("cost"):
        raise ValueError("history must be the dict of a fit, with a non-empty 'cost' list; "
                         f"got {type(history).__name__}"
                         + (f" with keys {sorted(history)}" if isinstance(history, dict) else ""))
    for key in ("cost", "val_cost", "val_accuracy", "val_r2"):
        values = history.get(key)
        if values and (len(values) != len(history["cost"]) or not all(is_real(value) for value in values)):
            raise ValueError(f"history[{key!r}] must hold one finite number per epoch, as 'cost' does "
                             f"({len(history['cost'])} epochs)")
    made_here, ax = ax is None, _axes(ax, (6, 4))
    epochs = np.arange(1, len(history["cost"]) + 1)
    ax.plot(epochs, history["cost"], label="cost J (training)")
    costs = list(history["cost"])
    if history.get("val_cost"):
        ax.plot(epochs, history["val_cost"], label="cost J (validation)")
        costs += history["val_cost"]
    if min(costs) > 0:
        ax.set_yscale("log")
    ax.set(xlabel="epoch", ylabel="cost J", title="cost per epoch")
    lines = ax.get_lines()
    metric = next((key for key in ("val_accuracy", "val_r2") if history.get(key)), None)
    if metric is not None:
        right = ax.twinx()
        lines += right.plot(epochs, history[metric], color="tab:green", linestyle="--", label=metric)
        right.set_ylabel(metric)
    ax.legend(lines, [line.get_label() for line in lines], loc="center right")
    return _finish(ax.figure, path, made_here)


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
        raise ValueError(f"X must be (2, m) and y (m,) or (1, m) with m >= 1; got X {X.shape} and y {given.shape}")
    if not is_integer(resolution) or resolution < 2:
        raise ValueError(f"resolution must be an integer >= 2 (points per side of the grid), got {resolution!r}")
    if X.dtype.kind not in "fiu" or not np.all(np.isfinite(X)):
        raise ValueError(f"X must hold finite real numbers, got dtype {X.dtype}")
    classes = 2 if net.cost_name == "bce" else net.n[-1]
    if y.dtype.kind not in "fiu" or not np.all(np.isin(y, np.arange(classes))):
        raise ValueError(f"y must hold the class indices 0..{classes - 1} of the examples, got the {y.dtype} "
                         f"values {np.unique(y)[:6]}")
    low, high = X.min(axis=1), X.max(axis=1)
    margin = 0.1 * np.maximum(high - low, 1e-12)
    u = np.linspace(low[0] - margin[0], high[0] + margin[0], resolution)
    v = np.linspace(low[1] - margin[1], high[1] + margin[1], resolution)
    U, V = np.meshgrid(u, v)
    A_L = net.forward(np.stack([U.ravel(), V.ravel()]), training=False).A[net.L]
    made_here, ax = ax is None, _axes(ax, (5, 5))
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
    ax.scatter(X[0], X[1], c=y, s=12, edgecolors="black", linewidths=0.4, **colours)
    ax.set(xlabel="x1", ylabel="x2", title="decision regions", aspect="equal")
    return _finish(ax.figure, path, made_here)


def activation_functions(activations=DEFAULT_ACTIVATIONS, path=None, z=None):
    """Each activation g(z) beside its derivative g'(z), one row per activation.

    activations : specs as Network takes them ("relu", ("elu", {"alpha": 0.5}), ...), or one
        spec; softmax has no element-wise derivative and is refused. The values come from
        mlpcore.reference.g and g_prime.
    path : where to save the figure (see save), or None.
    z : 1-D float array, the points of the horizontal axis (default 401 points from -4 to 4).
    Returns the Figure (a new one: there is no ax, as it draws a grid of Axes).
    """
    one_pair = isinstance(activations, tuple) and len(activations) == 2 and isinstance(activations[1], dict)
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
    Z = np.linspace(-4, 4, 401).reshape(1, -1) if z is None else np.asarray(z, dtype=np.float64).reshape(1, -1)
    figure, axes = _pyplot().subplots(len(specs), 2, figsize=(7, 1.9 * len(specs)), sharex=True,
                                      squeeze=False, layout="constrained")
    for (left, right), spec in zip(axes, specs):
        name, params = reference.parse_activation(spec)
        label = name + (f" (alpha {params['alpha']:g})" if params else "")
        left.plot(Z[0], reference.g(spec, Z)[0])
        right.plot(Z[0], reference.g_prime(spec, Z)[0], color="tab:orange")
        left.set_title(f"{label}: g(z)", fontsize=10)
        right.set_title(f"{label}: g'(z)", fontsize=10)
        for ax in (left, right):
            ax.axhline(0, color="grey", linewidth=0.5)
            ax.axvline(0, color="grey", linewidth=0.5)
    for ax in axes[-1]:
        ax.set_xlabel("z")
    return _finish(figure, path, made_here=True)


def weight_histograms(net, grads=None, path=None, bins=40):
    """Histograms of W[l] for each layer l (one column each) and, given grads, of dW[l] below.

    net : a Network; grads : Gradients of a backward pass of net, or None.
    path : where to save the figure (see save), or None.
    bins : the number of bins of each histogram (or anything matplotlib's hist takes as bins).
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
    rows = [("W", net.W)] + ([("dW", grads.dW)] if grads is not None else [])
    for symbol, arrays in rows:
        for l in arrays:
            if not np.all(np.isfinite(arrays[l])):
                raise ValueError(f"{symbol}[{l}] holds NaN or inf: a histogram has no bins for them")
    figure, axes = _pyplot().subplots(len(rows), net.L, figsize=(2.6 * net.L, 2.3 * len(rows)),
                                      sharex="row", squeeze=False, layout="constrained")
    for row, (symbol, arrays) in zip(axes, rows):
        for l, ax in enumerate(row, start=1):
            values = np.asarray(arrays[l], dtype=np.float64).ravel()
            ax.hist(values, bins=bins, color="tab:blue" if symbol == "W" else "tab:red")
            ax.set_title(f"{symbol}[{l}]  std {values.std():.2g}", fontsize=10)
            ax.set_yticks([])
    return _finish(figure, path, made_here=True)
