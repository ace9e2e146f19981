"""ONNX export (mlpcore.onnx): onnxruntime runs the exported model and matches the network's
inference forward pass, for every activation, with batch norm folded, in float32 and float64."""

import subprocess
import sys

import numpy as np
import pytest

import mlpcore
from conftest import ELEMENTWISE_ACTIVATIONS, activation_id, assert_close


def onnx_packages():
    onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install '.[onnx]' in a clone of mlpcore)")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install '.[onnx]' in a clone of mlpcore)")
    return onnx, ort


def network(hidden, output, cost, dtype, batch_norm, seed=0):
    """A 3-layer network with random parameters and, in batch-norm layers, random gamma, beta and
    running statistics, so that the folding is exercised with values far from 1 and 0."""
    rng = np.random.default_rng(seed)
    net = mlpcore.Network([5, 8, 6, 4], [hidden, hidden, output], cost, dtype=np.dtype(dtype).name, seed=seed,
                          batch_norm=[batch_norm, False, batch_norm], bn_eps=1e-3)
    for l in range(1, 4):
        net.b[l] = 0.5 * rng.standard_normal((net.n[l], 1))
    for l in net._batch_norm_layers:
        net.gamma[l] = rng.uniform(0.5, 2.0, (net.n[l], 1))
        net.beta[l] = rng.standard_normal((net.n[l], 1))
        net.running_mean[l] = rng.standard_normal((net.n[l], 1))
        net.running_var[l] = rng.uniform(0.1, 3.0, (net.n[l], 1))
    return net


def run(ort, path, X_rows):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["A_L"], {"X": X_rows})[0]


CASES = [pytest.param(spec, spec, "mse", id=activation_id(spec)) for spec in ELEMENTWISE_ACTIVATIONS] + [
    pytest.param("relu", "sigmoid", "bce", id="sigmoid-output"),
    pytest.param("tanh", "softmax", "cce", id="softmax-output"),
]


@pytest.mark.parametrize("batch_norm", [False, True], ids=["plain", "batch-norm"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("hidden, output, cost", CASES)
def test_onnxruntime_matches_the_inference_forward_pass(tmp_path, hidden, output, cost, dtype, batch_norm):
    _, ort = onnx_packages()
    net = network(hidden, output, cost, dtype, batch_norm)
    mlpcore.onnx.export(net, tmp_path / "model.onnx")
    X = np.random.default_rng(1).standard_normal((5, 37)).astype(dtype)
    A_L_rows = run(ort, tmp_path / "model.onnx", np.ascontiguousarray(X.T))
    assert A_L_rows.dtype == dtype
    assert_close(A_L_rows, net.forward(X, training=False).A[3].T, dtype)


def test_the_model_takes_any_number_of_rows_and_names_its_shapes(tmp_path):
    onnx, ort = onnx_packages()
    net = network("relu", "softmax", "cce", np.float32, batch_norm=True)
    model = mlpcore.onnx.export(net, tmp_path / "model.onnx")
    assert onnx.load(str(tmp_path / "model.onnx")) == model
    [X_info], [A_info] = model.graph.input, model.graph.output
    shape = [(dim.dim_param or dim.dim_value) for dim in X_info.type.tensor_type.shape.dim]
    assert (X_info.name, shape) == ("X", ["m", 5])
    assert (A_info.name, [(dim.dim_param or dim.dim_value) for dim in A_info.type.tensor_type.shape.dim]) == \
        ("A_L", ["m", 4])
    assert [node.op_type for node in model.graph.node] == ["Gemm", "Relu", "Gemm", "Relu", "Gemm", "Softmax"]
    for m in (1, 200):
        X = np.random.default_rng(m).standard_normal((5, m)).astype(np.float32)
        assert run(ort, tmp_path / "model.onnx", np.ascontiguousarray(X.T)).shape == (m, 4)


def test_folded_parameters_reproduce_batch_norm_inference():
    net = network("identity", "identity", "mse", np.float64, batch_norm=True)
    X = np.random.default_rng(2).standard_normal((5, 11))
    A = X
    for W, b in mlpcore.onnx.folded_parameters(net):
        assert W.dtype == b.dtype == np.float64 and b.ndim == 1
        A = W @ A + b[:, None]
    assert_close(A, net.forward(X, training=False).A[3], np.float64)


@pytest.mark.parametrize("where", ["nan_weight", "negative_running_var", "beyond_float32"])
def test_folded_parameters_refuse_a_layer_that_is_not_finite(where):
    """A model of NaN outputs is refused before anything is written."""
    net = network("tanh", "identity", "mse", np.float32, batch_norm=True)
    if where == "nan_weight":
        net.W[2][0, 0] = np.nan
    elif where == "negative_running_var":
        net.running_var[1][0] = -1.0
    else:
        net.running_var[1][0] = 1e-30  # gamma / sqrt(var + eps) is fine; then W' beyond float32:
        net.gamma[1][0] = 3e38
    with pytest.raises(ValueError, match=r"layer \d's parameters \(folded with its batch normalisation, if any\) "
                                         r"are not all finite in float32"):
        mlpcore.onnx.folded_parameters(net)


def test_float64_elu_keeps_its_relative_precision_near_0_and_far_below(tmp_path):
    """A float64 elu is spelled out as 2t / (1 - t), t = tanh(min(Z, 0) / 2): within a few roundings
    of expm1 from Z = -1e-300 to -800 (exp(Z) - 1 lost all digits at Z = -1e-17)."""
    _, ort = onnx_packages()
    net = mlpcore.Network([1, 1], [("elu", {"alpha": 0.5})], "mse", dtype="float64")
    net.W[1] = 1.0
    net.b[1] = 0.0
    mlpcore.onnx.export(net, tmp_path / "model.onnx")
    Z = np.array([[-1e-300, -1e-17, -1e-12, -1e-6, -0.3, -1.0, -20.0, -40.0, -800.0, 0.0, 1e-12, 3.0]])
    A_L = run(ort, tmp_path / "model.onnx", np.ascontiguousarray(Z.T))[:, 0]
    expected = np.where(Z[0] > 0, Z[0], 0.5 * np.expm1(np.minimum(Z[0], 0)))
    np.testing.assert_allclose(A_L, expected, rtol=1e-15, atol=0)
    np.testing.assert_allclose(net.forward(Z, training=False).A[1][0], expected, rtol=1e-15, atol=0)


def test_export_takes_a_network(tmp_path):
    with pytest.raises(TypeError, match="export takes a mlpcore.Network, got dict$"):
        mlpcore.onnx.export({}, tmp_path / "model.onnx")


@pytest.mark.parametrize("net", ["x", None, {}])
def test_folded_parameters_take_a_network(net):
    with pytest.raises(TypeError, match=f"folded_parameters takes a mlpcore.Network, got {type(net).__name__}$"):
        mlpcore.onnx.folded_parameters(net)


@pytest.mark.filterwarnings("ignore:Stochastic Optimizer")  # two epochs do not converge
def test_export_of_a_scikit_learn_estimator_points_to_its_network(tmp_path):
    pytest.importorskip("sklearn",
                        reason="scikit-learn is not installed (pip install '.[sklearn]' in a clone of mlpcore)")
    _, ort = onnx_packages()
    import mlpcore.sklearn
    X, y = np.random.default_rng(0).standard_normal((20, 3)), np.arange(20) % 3
    clf = mlpcore.sklearn.MLPClassifier((4,), max_iter=2, random_state=0).fit(X, y)
    with pytest.raises(TypeError, match="got MLPClassifier; export its network_"):
        mlpcore.onnx.export(clf, tmp_path / "model.onnx")
    with pytest.raises(TypeError, match="folded_parameters takes a mlpcore.Network, got MLPClassifier; fold its"):
        mlpcore.onnx.folded_parameters(clf)
    assert not (tmp_path / "model.onnx").exists()
    mlpcore.onnx.export(clf.network_, tmp_path / "model.onnx")
    assert_close(run(ort, tmp_path / "model.onnx", X), clf.predict_proba(X), np.float64)


def test_importing_mlpcore_does_not_import_onnx():
    code = "import sys, mlpcore, mlpcore.onnx; assert 'onnx' not in sys.modules and 'onnxruntime' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_export_without_onnx_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` fail
    net = mlpcore.Network([2, 1], ["identity"], "mse")
    with pytest.raises(ImportError, match=r'pip install "\.\[onnx\]"'):
        mlpcore.onnx.export(net, tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()
