"""mlpcore.plot: what each picture draws, checked on the matplotlib objects (Agg backend)."""

import io
import subprocess
import sys

import numpy as np
import pytest

import mlpcore
from mlpcore import plot, reference

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def plt():
    """matplotlib.pyplot on the Agg backend; every figure is closed after the test."""
    matplotlib = pytest.importorskip("matplotlib", reason="mlpcore.plot needs matplotlib, which is not installed")
    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot
    yield pyplot
    pyplot.close("all")


def history(epochs=5, validation=True, metric="val_accuracy"):
    h = {"cost": list(np.linspace(1.0, 0.1, epochs)), "learning_rate": [0.01] * epochs, "time": [0.1] * epochs}
    if validation:
        h["val_cost"] = list(np.linspace(1.2, 0.3, epochs))
        h[metric] = list(np.linspace(0.5, 0.9, epochs))
    return h


def test_cost_curves_draws_cost_validation_cost_and_metric(plt, tmp_path):
    h = history()
    figure = plot.cost_curves(h, path=tmp_path / "cost.png")
    cost_axes, metric_axes = figure.axes
    labels = [line.get_label() for line in cost_axes.get_lines()]
    assert labels == ["cost J (training)", "cost J (validation)"]
    np.testing.assert_allclose(cost_axes.get_lines()[0].get_ydata(), h["cost"])
    np.testing.assert_allclose(cost_axes.get_lines()[1].get_ydata(), h["val_cost"])
    np.testing.assert_allclose(cost_axes.get_lines()[0].get_xdata(), [1, 2, 3, 4, 5])  # epochs from 1
    np.testing.assert_allclose(metric_axes.get_lines()[0].get_ydata(), h["val_accuracy"])
    assert metric_axes.get_ylabel() == "val_accuracy"
    assert cost_axes.get_yscale() == "log"
    assert (tmp_path / "cost.png").read_bytes()[:8] == PNG_SIGNATURE


def test_a_save_that_fails_part_way_leaves_the_earlier_picture(plt, tmp_path, monkeypatch):
    """save writes whole or not at all; the format is the extension's (PNG without one, under the
    name given), and one matplotlib does not write is refused."""
    earlier = tmp_path / "cost.png"
    plot.cost_curves(history(), path=earlier)
    picture = earlier.read_bytes()
    figure = plot.cost_curves(history())

    def half_then_full_disk(self, file, **kwargs):
        file.write(b"\x89PNG half")
        raise OSError(28, "No space left on device")
    with monkeypatch.context() as patch:
        patch.setattr(type(figure), "savefig", half_then_full_disk)
        with pytest.raises(OSError, match="No space left"):
            plot.save(figure, earlier)
    assert earlier.read_bytes() == picture and sorted(p.name for p in tmp_path.iterdir()) == ["cost.png"]
    plot.save(figure, tmp_path / "noext")
    assert (tmp_path / "noext").read_bytes()[:8] == PNG_SIGNATURE
    plot.save(figure, tmp_path / "cost.svg")
    assert b"<svg" in (tmp_path / "cost.svg").read_bytes()[:400]
    with pytest.raises(ValueError, match=r"cost\.xyz: matplotlib writes .*png.*, not 'xyz'"):
        plot.save(figure, tmp_path / "cost.xyz")
    assert not (tmp_path / "cost.xyz").exists()
    memory = io.BytesIO()  # a file object: matplotlib's savefig, as before
    plot.save(figure, memory)
    assert memory.getvalue()[:8] == PNG_SIGNATURE


def test_cost_curves_take_numpy_arrays_as_the_lists_of_a_history(plt):
    h = {key: np.array(values) for key, values in history().items()}
    figure = plot.cost_curves(h)
    np.testing.assert_allclose(figure.axes[0].get_lines()[1].get_ydata(), h["val_cost"])
    with pytest.raises(ValueError, match="history must be the dict of a fit, with a non-empty 'cost' list"):
        plot.cost_curves({"cost": np.array([])})


def test_cost_curves_of_a_training_history_without_validation(plt):
    net = mlpcore.Network([2, 1], ["identity"], "mse", seed=0)
    X = np.random.default_rng(0).standard_normal((2, 20))
    net.fit(X, X[0] - X[1], epochs=4, verbose=0)
    figure = plot.cost_curves(net.history)
    assert len(figure.axes) == 1
    assert [line.get_label() for line in figure.axes[0].get_lines()] == ["cost J (training)"]


def test_cost_curves_into_given_axes_with_r2_and_a_zero_cost(plt):
    h = history(metric="val_r2")
    h["cost"][-1] = 0.0
    figure, ax = plt.subplots()
    assert plot.cost_curves(h, ax=ax) is figure
    assert ax.get_yscale() == "linear"  # a zero cost has no logarithm
    assert figure.axes[1].get_ylabel() == "val_r2"


@pytest.mark.parametrize("bad", [None, {}, {"cost": []}, [0.5, 0.4]])
def test_cost_curves_refuses_what_is_not_a_history(bad):
    with pytest.raises(ValueError, match="history must be the dict of a fit"):
        plot.cost_curves(bad)


def test_decision_regions_of_a_binary_classifier_draw_its_boundary(plt, tmp_path):
    # A[1] = sigmoid(2 x1 - 1): the boundary A = 0.5 is the line x1 = 0.5.
    net = mlpcore.Network([2, 1], ["sigmoid"], "bce", dtype="float64")
    net.W[1][...] = [[2.0, 0.0]]
    net.b[1][...] = -1.0
    X = np.random.default_rng(0).uniform(-1, 2, size=(2, 50))
    y = (X[0] > 0.5).astype(np.int64)
    figure = plot.decision_regions(net, X, y, path=tmp_path / "regions.png")
    ax = figure.axes[0]
    boundary = ax.collections[1]  # the contourf of A[L], then the 0.5 contour, then the points
    vertices = np.concatenate([path.vertices for path in boundary.get_paths()])
    np.testing.assert_allclose(vertices[:, 0], 0.5, atol=0.02)
    np.testing.assert_allclose(ax.collections[-1].get_offsets(), X.T)  # the examples on top
    assert (tmp_path / "regions.png").read_bytes()[:8] == PNG_SIGNATURE


def test_decision_regions_of_a_softmax_classifier_colour_the_argmax(plt):
    # Z[1] = (x1, x2, -x1 - x2): class 0 where x1 is the largest, and so on.
    net = mlpcore.Network([2, 3], ["softmax"], "cce", dtype="float64")
    net.W[1][...] = [[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]
    X = np.array([[2.0, 0.0, -2.0], [0.0, 2.0, -2.0]])
    figure, ax = plt.subplots()
    plot.decision_regions(net, X, np.array([0, 1, 2]), ax=ax, resolution=50)
    regions = ax.collections[:3]  # one a class, in class order
    # the region of class k holds the points where unit k of A[L] is the largest
    for k, point in enumerate([(1.5, 0.2), (0.2, 1.5), (-1.5, -1.5)]):
        assert any(path.contains_point(point) for path in regions[k].get_paths())
        assert not any(path.contains_point(point) for j in range(3) if j != k for path in regions[j].get_paths())
        np.testing.assert_allclose(regions[k].get_facecolor()[0][:3], plt.get_cmap("tab10")(k)[:3])


def test_decision_regions_draw_no_band_of_a_class_between_two_others(plt):
    """Z[1] = (x1, -10, -x1): classes 0 and 2 meet at x1 = 0 and class 1 is nowhere, so its
    region is empty (contours of the labels 0..2 would draw a band of 1 along the boundary)."""
    net = mlpcore.Network([2, 3], ["softmax"], "cce", dtype="float64")
    net.W[1][...] = [[1.0, 0.0], [0.0, 0.0], [-1.0, 0.0]]
    net.b[1][...] = [[0.0], [-10.0], [0.0]]
    figure, ax = plt.subplots()
    plot.decision_regions(net, np.array([[1.0, -1.0], [0.0, 0.5]]), np.array([0, 2]), ax=ax, resolution=51)
    assert all(len(path.vertices) == 0 for path in ax.collections[1].get_paths())
    assert all(any(path.contains_point(point) for path in ax.collections[k].get_paths())
               for k, point in ((0, (0.5, 0.2)), (2, (-0.5, 0.2))))


@pytest.mark.parametrize("n, activations, cost, message", [
    ([3, 1], ["sigmoid"], "bce", "2 inputs"),
    ([2, 1], ["identity"], "mse", "cost 'mse'"),
    ([2, 2], ["sigmoid"], "bce", "one output unit"),
])
def test_decision_regions_refuses_other_networks(n, activations, cost, message):
    net = mlpcore.Network(n, activations, cost)
    with pytest.raises(ValueError, match=message):
        plot.decision_regions(net, np.zeros((n[0], 3)), np.zeros(3, dtype=np.int64))


def test_decision_regions_checks_X_and_y():
    net = mlpcore.Network([2, 1], ["sigmoid"], "bce")
    with pytest.raises(ValueError, match=r"X must be \(2, m\) and y \(m,\)"):
        plot.decision_regions(net, np.zeros((2, 3)), np.zeros(4))
    with pytest.raises(TypeError, match="mlpcore.Network"):
        plot.decision_regions("net", np.zeros((2, 3)), np.zeros(3))
    for resolution in (1, 2.5, None):
        with pytest.raises(ValueError, match="resolution must be an integer >= 2"):
            plot.decision_regions(net, np.zeros((2, 3)), np.zeros(3), resolution=resolution)
    with pytest.raises(ValueError, match=r"X must be \(2, m\) and y \(m,\) or \(1, m\) with m >= 1"):
        plot.decision_regions(net, np.zeros((2, 0)), np.zeros(0))
    for X in (np.full((2, 3), "a"), np.array([[0, np.nan, 1], [0, 0, 0]])):
        with pytest.raises(ValueError, match="X must hold finite real numbers"):
            plot.decision_regions(net, X, np.zeros(3))
    for y in (np.array([0, 1, 2]), np.array([0, 0.5, 1]), np.array(["a", "b", "a"])):
        with pytest.raises(ValueError, match=r"y must hold the class indices 0\.\.1 of the examples"):
            plot.decision_regions(net, np.zeros((2, 3)), y)


def test_decision_regions_take_y_as_fit_does_a_row_and_bools(plt):
    net = mlpcore.Network([2, 1], ["sigmoid"], "bce", dtype="float64", seed=1)
    X = np.random.default_rng(0).uniform(-1, 2, size=(2, 30))
    y = X[0] > 0.5
    expected = plot.decision_regions(net, X, y.astype(np.int64)).axes[0].collections[-1].get_array()
    for given in (y, y[None, :].astype(np.float64), y[None, :]):
        points = plot.decision_regions(net, X, given).axes[0].collections[-1]
        np.testing.assert_array_equal(points.get_array(), expected)


def test_a_picture_saved_to_a_path_is_closed_in_pyplot_and_others_stay_open(plt, tmp_path):
    """A loop saving pictures does not keep them all open in pyplot (20 open figures warn, and
    each holds its memory); a figure not saved, or the caller's (ax given), stays open."""
    net = mlpcore.Network([2, 3, 1], ["tanh", "sigmoid"], "bce", dtype="float64")
    X, y = np.random.default_rng(0).standard_normal((2, 10)), np.arange(10) % 2
    saved = [plot.cost_curves(history(), path=tmp_path / "cost.png"),
             plot.decision_regions(net, X, y, path=tmp_path / "regions.png", resolution=10),
             plot.activation_functions(["relu"], path=tmp_path / "g.png"),
             plot.weight_histograms(net, path=tmp_path / "W.png")]
    assert plt.get_fignums() == []
    saved[0].savefig(tmp_path / "again.png")  # a closed figure is still a figure
    assert (tmp_path / "again.png").read_bytes()[:8] == PNG_SIGNATURE
    with pytest.raises(OSError):  # a save that fails closes the figure too
        plot.cost_curves(history(), path=tmp_path / "no such folder" / "cost.png")
    assert plt.get_fignums() == []
    kept = plot.cost_curves(history())
    figure, ax = plt.subplots()
    plot.decision_regions(net, X, y, ax=ax, path=tmp_path / "mine.png", resolution=10)
    assert sorted(plt.get_fignums()) == sorted([kept.number, figure.number])


@pytest.mark.parametrize("key, values", [("val_cost", [0.5]), ("cost", [0.5, "x"]), ("val_accuracy", [0.5, None])])
def test_cost_curves_refuses_figures_that_are_not_one_number_per_epoch(key, values):
    history = {"cost": [0.5, 0.4], key: values}
    with pytest.raises(ValueError, match=rf"history\['{key}'\] must hold one finite number per epoch"):
        plot.cost_curves(history)


def test_activation_functions_draw_g_beside_g_prime(plt, tmp_path):
    specs = ["sigmoid", "relu", ("elu", {"alpha": 0.5})]
    z = np.linspace(-3, 3, 61)
    figure = plot.activation_functions(specs, path=tmp_path / "g.png", z=z)
    axes = np.array(figure.axes).reshape(len(specs), 2)
    for (left, right), spec in zip(axes, specs):
        np.testing.assert_allclose(left.get_lines()[0].get_ydata(), reference.g(spec, z[None])[0])
        np.testing.assert_allclose(right.get_lines()[0].get_ydata(), reference.g_prime(spec, z[None])[0])
    assert axes[2, 0].get_title() == "elu (alpha 0.5): g(z)"
    assert axes[2, 1].get_title() == "elu (alpha 0.5): g'(z)"
    assert (tmp_path / "g.png").read_bytes()[:8] == PNG_SIGNATURE


@pytest.mark.parametrize("spec", ["relu", ("elu", {"alpha": 0.5})])
def test_activation_functions_takes_one_spec(plt, spec):
    figure = plot.activation_functions(spec)
    assert len(figure.axes) == 2 and figure.axes[0].get_title().startswith(reference.parse_activation(spec)[0])


def test_activation_functions_by_default_draw_every_elementwise_activation(plt):
    figure = plot.activation_functions()
    titles = [ax.get_title() for ax in figure.axes[::2]]
    assert [title.split(":")[0].split(" ")[0] for title in titles] == [
        "identity", "step", "sigmoid", "tanh", "relu", "leaky_relu", "elu"]


def test_activation_functions_refuses_softmax_and_nothing():
    with pytest.raises(ValueError, match="softmax has no element-wise derivative"):
        plot.activation_functions(["relu", "softmax"])
    with pytest.raises(ValueError, match="at least one"):
        plot.activation_functions([])
    with pytest.raises(ValueError, match="unknown activation"):
        plot.activation_functions(["swish"])
    with pytest.raises(TypeError, match="activations must be a spec such as 'relu'"):
        plot.activation_functions(5)


def test_weight_histograms_of_weights_and_gradients(plt, tmp_path):
    net = mlpcore.Network([4, 6, 5, 1], ["relu", "relu", "sigmoid"], "bce", seed=0)
    X = np.random.default_rng(0).standard_normal((4, 30))
    grads = net.backward(net.forward(X), (X[0] > 0).astype(np.int64))
    figure = plot.weight_histograms(net, grads, path=tmp_path / "w.png", bins=10)
    axes = np.array(figure.axes).reshape(2, net.L)
    for l in range(1, net.L + 1):
        for ax, array, symbol in ((axes[0, l - 1], net.W[l], "W"), (axes[1, l - 1], grads.dW[l], "dW")):
            heights = [patch.get_height() for patch in ax.patches]
            assert len(heights) == 10 and sum(heights) == array.size
            assert ax.get_title() == f"{symbol}[{l}]  std {np.std(array.astype(np.float64)):.2g}"
    assert axes[0, 0].get_shared_x_axes().joined(axes[0, 0], axes[0, 2])  # one scale per row
    assert (tmp_path / "w.png").read_bytes()[:8] == PNG_SIGNATURE


def test_weight_histograms_without_gradients(plt):
    net = mlpcore.Network([3, 2, 1], ["tanh", "sigmoid"], "bce", seed=0)
    assert len(plot.weight_histograms(net).axes) == net.L


def test_weight_histograms_checks_its_arguments():
    net = mlpcore.Network([3, 2, 1], ["tanh", "sigmoid"], "bce", seed=0)
    other = mlpcore.Network([4, 2, 1], ["tanh", "sigmoid"], "bce", seed=0)
    other_grads = other.backward(other.forward(np.zeros((4, 2))), np.zeros(2))
    twin = mlpcore.Network([3, 2, 1], ["tanh", "sigmoid"], "bce", seed=0)  # the same shapes: still another's
    twin_grads = twin.backward(twin.forward(np.zeros((3, 2))), np.zeros(2))
    for grads in (other_grads, twin_grads):
        with pytest.raises(ValueError, match="another network"):
            plot.weight_histograms(net, grads)
    with pytest.raises(TypeError, match="mlpcore.Gradients"):
        plot.weight_histograms(net, {"dW": {}})
    with pytest.raises(TypeError, match="mlpcore.Network"):
        plot.weight_histograms(None)
    net.W[2][0, 0] = np.inf
    with pytest.raises(ValueError, match=r"W\[2\] holds NaN or inf"):
        plot.weight_histograms(net)


def test_without_matplotlib_the_error_names_the_extra():
    code = ("import sys; sys.modules['matplotlib'] = None; sys.modules['matplotlib.pyplot'] = None\n"
            "import mlpcore.plot\n"
            "try:\n    mlpcore.plot.activation_functions()\n"
            "except ImportError as error:\n    print(error)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == ('mlpcore.plot needs matplotlib: pip install ".[plot]" in a clone of mlpcore '
                                     "(or pip install matplotlib)"), result.stderr


def test_cost_curves_leave_out_the_nan_r2_of_one_validation_example(plt):
    """fit records val_r2 as NaN with one validation example (as scikit-learn): its curve has gaps,
    the history is drawn; inf stays refused."""
    X = np.random.default_rng(0).standard_normal((1, 20))
    net = mlpcore.Network([1, 1], ["identity"], "mse", seed=0)
    h = net.fit(X, 2 * X, epochs=2, verbose=0, validation_data=(X[:, :1], 2 * X[:, :1]))
    assert np.all(np.isnan(h["val_r2"]))
    metric_axes = plot.cost_curves(h).axes[1]
    assert metric_axes.get_ylabel() == "val_r2" and np.all(np.isnan(metric_axes.get_lines()[0].get_ydata()))
    gaps = plot.cost_curves({**history(3, metric="val_r2"), "val_r2": [0.5, np.nan, 0.7]}).axes[1]
    np.testing.assert_array_equal(gaps.get_lines()[0].get_ydata(), [0.5, np.nan, 0.7])
    for key in ("val_r2", "val_accuracy", "val_cost"):
        with pytest.raises(ValueError, match=rf"history\['{key}'\] must hold one finite number per epoch"):
            plot.cost_curves({"cost": [0.5, 0.4], key: [0.5, np.inf if key == "val_r2" else np.nan]})


@pytest.mark.parametrize("values", [np.array([[1.0, 0.5]]), np.float64(1.0), np.array(1.0), {1: 2}, "ab"],
                         ids=["2-D", "scalar", "0-D", "dict", "str"])
@pytest.mark.parametrize("key", ["cost", "val_cost"])
def test_cost_curves_refuse_a_curve_that_is_not_a_list_with_their_own_error(plt, key, values):
    h = {"cost": [1.0, 0.5], key: values}
    with pytest.raises(ValueError, match=rf"history\['{key}'\] must hold one finite number per epoch"):
        plot.cost_curves(h)
    assert plt.get_fignums() == []


def test_cost_curves_mark_each_of_few_epochs_so_that_one_epoch_shows(plt):
    (line,) = plot.cost_curves({"cost": [0.5]}).axes[0].get_lines()
    assert line.get_marker() == "o"
    assert plot.cost_curves(history(plot.MARKED_EPOCHS + 1)).axes[0].get_lines()[0].get_marker() == "None"


def grid_extent(figure):
    """The (x1, x2) extents of the first region decision_regions drew: its contourf's grid."""
    vertices = np.concatenate([path.vertices for path in figure.axes[0].collections[0].get_paths()])
    return np.ptp(vertices, axis=0)


@pytest.mark.parametrize("X", [np.array([[1e6], [1e6]]), np.array([[0.0], [0.0]]), np.array([[-3.0], [2.0]])],
                         ids=["one_example_at_1e6", "one_example_at_0", "one_example"])
def test_decision_regions_of_one_example_draw_a_window_around_it(plt, X):
    net = mlpcore.Network([2, 1], ["sigmoid"], "bce", dtype="float64", seed=0)
    figure = plot.decision_regions(net, X, [1], resolution=20)
    size = 2e-4 * max(np.abs(X).max(), 1.0)  # 1e-4 of the largest |x| (at least 1) on every side
    np.testing.assert_allclose(grid_extent(figure), [size, size], rtol=1e-6)
    assert all(np.ptp(limits) > 0 for limits in (figure.axes[0].get_xlim(), figure.axes[0].get_ylim()))


def test_decision_regions_of_a_constant_coordinate_take_the_margin_of_the_other(plt):
    """x2 constant: its side of the window is 10% of x1's range on either side, not a flat line."""
    net = mlpcore.Network([2, 1], ["sigmoid"], "bce", dtype="float64", seed=0)
    X = np.array([np.linspace(-2.0, 2.0, 9), np.full(9, 5.0)])
    figure = plot.decision_regions(net, X, np.arange(9) % 2, resolution=20)
    np.testing.assert_allclose(grid_extent(figure), [4.8, 0.8], rtol=1e-12)


def test_decision_regions_keep_the_grid_within_the_range_of_the_network_and_of_matplotlib(plt):
    """The window beyond float32's largest is clipped to it (its NaN/inf was blamed on X); X beyond
    what matplotlib draws is refused."""
    net = mlpcore.Network([2, 1], ["sigmoid"], "bce", dtype="float32", seed=0)
    X = np.array([[3e38, -3e38], [0, 1]], dtype=np.float32)
    figure = plot.decision_regions(net, X, [1, 0], resolution=20)
    np.testing.assert_allclose(figure.axes[0].get_xlim(), [-np.finfo(np.float32).max, np.finfo(np.float32).max])
    net64 = mlpcore.Network([2, 1], ["sigmoid"], "bce", dtype="float64", seed=0)
    with pytest.raises(ValueError, match=r"X must lie within \+-1e\+307, .* got values up to 1\.7e\+308"):
        plot.decision_regions(net64, np.array([[1.7e308, -1.7e308], [0, 1]]), [1, 0])
    with pytest.raises(ValueError, match=r"X must lie within \+-3\.403e\+38, which the network's float32 holds"):
        plot.decision_regions(net, np.array([[1e300, 0.0], [0, 1]]), [1, 0])
    assert plt.get_fignums() == [figure.number]


def test_decision_regions_of_X_transposed_hint_at_X_T():
    net = mlpcore.Network([2, 1], ["sigmoid"], "bce")
    with pytest.raises(ValueError, match=r"got X \(5, 2\) and y \(5,\): one column per example, pass X\.T"):
        plot.decision_regions(net, np.zeros((5, 2)), np.zeros(5))


@pytest.mark.parametrize("bins", [0, -1, "abc", 2.5, True, None, [0.0, 1.0]])
def test_weight_histograms_refuse_bad_bins_and_close_the_figure(plt, tmp_path, bins):
    net = mlpcore.Network([3, 2, 1], ["tanh", "sigmoid"], "bce", seed=0)
    with pytest.raises(ValueError, match=r"bins must be an integer >= 1 or one of auto, fd"):
        plot.weight_histograms(net, path=tmp_path / "w.png", bins=bins)
    assert plt.get_fignums() == [] and not (tmp_path / "w.png").exists()
    assert len(plot.weight_histograms(net, bins="auto").axes) == net.L


def test_a_drawing_that_fails_closes_the_figure_it_made(plt, tmp_path, monkeypatch):
    net = mlpcore.Network([3, 2, 1], ["tanh", "sigmoid"], "bce", seed=0)

    def fails(*args, **kwargs):
        raise RuntimeError("a failure of matplotlib")
    monkeypatch.setattr(type(plt.figure().add_subplot()), "hist", fails)
    plt.close("all")
    with pytest.raises(RuntimeError, match="a failure of matplotlib"):
        plot.weight_histograms(net, path=tmp_path / "w.png")
    assert plt.get_fignums() == []


def test_weight_histograms_of_weights_near_the_largest_float(plt):
    """Weights of +-1.7e308 gave NumPy's "Too many bins for data range"; up to 1e307 they are drawn,
    and their standard deviation is not the inf of overflowing squares."""
    net = mlpcore.Network([2, 3, 1], ["relu", "sigmoid"], "bce", dtype="float64", seed=0)
    net.W[1][...] = [[1e307, -1e307], [0.0, 0.0], [0.0, 0.0]]
    assert plot.weight_histograms(net).axes[0].get_title() == f"W[1]  std {1e307 * np.std(net.W[1] / 1e307):.2g}"
    net.W[1][0] = [1.7e308, -1.7e308]
    with pytest.raises(ValueError, match=r"W\[1\] holds values up to 1\.7e\+308, beyond the \+-1e\+307"):
        plot.weight_histograms(net)


def test_activation_functions_take_a_pair_with_params_none_as_network_does(plt):
    mlpcore.Network([2, 1], [("elu", None)], "mse")
    figure = plot.activation_functions(("elu", None))
    assert [ax.get_title() for ax in figure.axes] == ["elu (alpha 1): g(z)", "elu (alpha 1): g'(z)"]


@pytest.mark.parametrize("z, error, pattern", [
    ([-1e308, 1e308], ValueError, r"\|z\| <= 1e\+100 .* from -1e\+308 to 1e\+308"),
    ([0.0, np.nan], ValueError, "finite points"),
    ([], ValueError, r"at least 2 .* shape \(0,\)"),
    ([1.0], ValueError, r"at least 2 .* shape \(1,\)"),
    (np.ones((2, 3)), ValueError, r"1-D .* shape \(2, 3\)"),
    (3.0, ValueError, r"1-D .* shape \(\)"),
    (["a", "b"], TypeError, "z must hold real numbers"),
    ([1j, 2j], TypeError, "z must hold real numbers"),
    ([True, False], TypeError, "z must hold real numbers"),
], ids=["huge", "nan", "empty", "one", "2-D", "scalar", "str", "complex", "bool"])
def test_activation_functions_refuse_z_that_is_not_points_of_an_axis(plt, z, error, pattern):
    with pytest.raises(error, match=pattern):
        plot.activation_functions("relu", z=z)
    assert plt.get_fignums() == []
