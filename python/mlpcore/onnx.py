"""ONNX export of a Network, for inference elsewhere (onnxruntime and any ONNX runtime).

    mlpcore.onnx.export(net, "model.onnx")
    session = onnxruntime.InferenceSession("model.onnx")
    A_L_rows = session.run(None, {"X": X_rows.astype(net.dtype)})[0]    # (m, n[0]) -> (m, n[L])

The graph takes rows as examples, as ONNX users expect: input "X" of shape (m, n[0])
(m dynamic, the network's dtype) and output "A_L" = A[L]^T of shape (m, n[L]), the
inference-mode forward pass (running statistics, no dropout). Each layer is a Gemm
(Z = A W^T + b) followed by its activation node; a batch-norm layer is folded into its
Gemm. The onnx package (``pip install ".[onnx]"`` in a clone of mlpcore, or ``pip install onnx``)
is imported only by export.
"""

import numpy as np

from .io import write_atomically
from .network import Network

__all__ = ["export", "folded_parameters"]

OPSET = 17       # read by onnxruntime 1.13 and later
IR_VERSION = 8   # the IR version that goes with opset 17 (the onnx package would write its newest)

# activation name -> ONNX operator of one node Z -> A (identity, step and float64 leaky_relu, elu apart)
_OPERATORS = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu", "leaky_relu": "LeakyRelu", "elu": "Elu",
              "softmax": "Softmax"}


def export(net, path):
    """Write net as an ONNX model to path (str or os.PathLike; written atomically).

    Layer l becomes Gemm(A[l-1], W'[l], b'[l], transB=1) -> Z[l], then its activation:
    Identity, GreaterOrEqual(Z, 0) + Cast (step), Sigmoid, Tanh, Relu, LeakyRelu(alpha),
    Elu(alpha), or Softmax(axis=1), with W', b' from ``folded_parameters``. Float32 and
    float64 networks give float32 and float64 models (a float64 leaky_relu or elu is
    spelled out with Greater, Where, Tanh for elu and float64 constants: ONNX attributes are
    float32). A fitted mlpcore.sklearn estimator is refused (TypeError): export its ``network_``.
    Returns the onnx.ModelProto.
    """
    _require_network(net, "export", "export")
    try:
        import onnx
    except ImportError:
        raise ImportError('mlpcore.onnx.export needs the onnx package: pip install ".[onnx]" in a clone of mlpcore '
                          "(or pip install onnx)") from None
    model = _model(onnx, net)
    onnx.checker.check_model(model, full_check=True)
    write_atomically(path, lambda file: file.write(model.SerializeToString()))
    return model


def folded_parameters(net):
    """The parameters of net's inference pass as one Gemm per layer: Z~[l] = W'[l] A[l-1] + b'[l].

    Without batch norm, W' = W[l] and b' = b[l]. With it, s = gamma / sqrt(running_var + bn_eps),
    W' = diag(s) W[l] and b' = s (b[l] - running_mean) + beta. Returns a list of L pairs
    (W' of shape (n[l], n[l-1]), b' of shape (n[l],)) of the network's dtype, computed in float64.
    Raises ValueError for a layer whose W' or b' is not finite (NaN or inf parameters, or a
    negative running variance), which would make a model of NaN outputs; TypeError, as export,
    for what is not a Network.
    """
    _require_network(net, "folded_parameters", "fold")
    folded = []
    for l in range(1, net.L + 1):
        W, b = np.asarray(net.W[l], np.float64), np.asarray(net.b[l], np.float64)[:, 0]
        with np.errstate(invalid="ignore", over="ignore"):  # what is not finite is refused below
            if l in net._batch_norm_layers:
                scale = net.gamma[l][:, 0] / np.sqrt(np.asarray(net.running_var[l], np.float64)[:, 0] + net.bn_eps)
                W, b = scale[:, None] * W, scale * (b - net.running_mean[l][:, 0]) + net.beta[l][:, 0]
            W, b = W.astype(net.dtype), b.astype(net.dtype)
        if not (np.all(np.isfinite(W)) and np.all(np.isfinite(b))):
            raise ValueError(f"layer {l}'s parameters (folded with its batch normalisation, if any) are not all "
                             f"finite in {net.dtype.name}: NaN or inf in W, b, gamma, beta or the running "
                             f"statistics, or a negative running variance")
        folded.append((W, b))
    return folded


def _require_network(net, function, verb):
    """TypeError, naming function, unless net is a Network; for a fitted mlpcore.sklearn estimator it
    says to `verb` the estimator's network_ instead."""
    if not isinstance(net, Network):
        hint = f"; {verb} its network_" if isinstance(getattr(net, "network_", None), Network) else ""
        raise TypeError(f"{function} takes a mlpcore.Network, got {type(net).__name__}{hint}")


def _model(onnx, net):
    """The onnx.ModelProto of net's inference pass."""
    helper = onnx.helper
    graph = _Graph(onnx, net.dtype)
    previous = "X"
    for l, ((W, b), (name, params)) in enumerate(zip(folded_parameters(net), net.activations), start=1):
        Z = graph.node("Gemm", [previous, graph.constant(f"W{l}", W), graph.constant(f"b{l}", b)], f"Z{l}", transB=1)
        previous = _activation(graph, name, params, Z, "A_L" if l == net.L else f"A{l}")
    onnx_graph = helper.make_graph(
        graph.nodes, "mlpcore_network",
        [helper.make_tensor_value_info("X", graph.element, ["m", net.n[0]])],
        [helper.make_tensor_value_info("A_L", graph.element, ["m", net.n[-1]])],
        list(graph.initializers.values()))
    model = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="mlpcore",
                              doc_string=repr(net))
    model.ir_version = IR_VERSION
    return model


class _Graph:
    """The nodes and initializers (constants) of a graph being built, of one float dtype."""

    def __init__(self, onnx, dtype):
        self._onnx = onnx
        self.dtype = np.dtype(dtype)
        self.element = onnx.helper.np_dtype_to_tensor_dtype(self.dtype)
        self.nodes = []
        self.initializers = {}

    def constant(self, name, value):
        """The name of an initializer holding value (array or scalar) in the graph's dtype."""
        if name not in self.initializers:
            self.initializers[name] = self._onnx.numpy_helper.from_array(np.asarray(value, self.dtype), name)
        return name

    def node(self, operator, inputs, output, **attributes):
        """Add a node (named after its one output) and return the name of its output."""
        self.nodes.append(self._onnx.helper.make_node(operator, inputs, [output], name=output, **attributes))
        return output


def _activation(graph, name, params, Z, A):
    """Add the nodes computing A = g(Z) for the activation `name`; returns A."""
    if name == "identity":
        return graph.node("Identity", [Z], A)
    if name == "step":  # 1 where Z >= 0, else 0
        nonnegative = graph.node("GreaterOrEqual", [Z, graph.constant("zero", 0)], f"{Z}_nonnegative")
        return graph.node("Cast", [nonnegative], A, to=graph.element)
    if name in ("leaky_relu", "elu") and graph.dtype == np.float64:
        # An ONNX attribute alpha is float32 and onnxruntime has no float64 Elu: spelled out in float64 as
        # Where(Z > 0, Z, alpha Z) and Where(Z > 0, Z, alpha expm1(min(Z, 0))).
        alpha = graph.constant(f"{A}_alpha", params["alpha"])
        negative = Z if name == "leaky_relu" else _expm1_of_nonpositive(graph, Z)
        scaled = graph.node("Mul", [negative, alpha], f"{Z}_negative")
        return graph.node("Where", [graph.node("Greater", [Z, graph.constant("zero", 0)], f"{Z}_positive"), Z, scaled],
                          A)
    attributes = {"axis": 1} if name == "softmax" else dict(params)
    return graph.node(_OPERATORS[name], [Z], A, **attributes)


def _expm1_of_nonpositive(graph, Z):
    """Add the nodes computing e^min(Z, 0) - 1 as 2t / (1 - t), t = tanh(min(Z, 0) / 2), which
    keeps its relative precision near 0 (Exp(.) - 1 cancels: 2e-5 off at Z = -1e-12) and goes
    to -1 as Z goes to -inf; returns its name."""
    half = graph.node("Mul", [graph.node("Min", [Z, graph.constant("zero", 0)], f"{Z}_nonpositive"),
                              graph.constant("half", 0.5)], f"{Z}_half")
    t = graph.node("Tanh", [half], f"{Z}_tanh")
    return graph.node("Div", [graph.node("Add", [t, t], f"{Z}_twice_tanh"),
                              graph.node("Sub", [graph.constant("one", 1), t], f"{Z}_one_minus_tanh")], f"{Z}_expm1")
