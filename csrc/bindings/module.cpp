// mlpcore._core: the pybind11 module. It checks what comes from Python before any state is
// touched, hands NumPy memory to the core without copying, releases the GIL around work and
// turns core errors into Python exceptions (std::invalid_argument becomes ValueError).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <climits>
#include <map>
#include <string>
#include <utility>

#include "mlpcore/network.hpp"

namespace py = pybind11;

namespace mlpcore {
namespace {

std::string shape_of(const py::array& a) {
  std::string text = "(";
  for (py::ssize_t d = 0; d < a.ndim(); ++d) text += (d ? ", " : "") + std::to_string(a.shape(d));
  return text + (a.ndim() == 1 ? ",)" : ")");
}

template <class T>
const char* dtype_name() {
  return sizeof(T) == 4 ? "float32" : "float64";
}

// The dtype of `a` must be exactly T (the Python layer converts beforehand).
template <class T>
void require_dtype(const py::array& a, const char* name) {
  if (a.dtype().num() != py::dtype::of<T>().num())
    throw py::type_error(std::string(name) + " must be " + dtype_name<T>() + ", got " +
                         std::string(py::str(a.dtype())));
}

// A 2-D array, or a 1-D array read as one row, as a matrix view without copying: one of its
// two strides must be the item size (F-ordered: a column-major view; C-ordered: a transposed one).
template <class T>
ConstMatrix<T> matrix_view(const py::array& a, const char* name) {
  require_dtype<T>(a, name);
  if (a.ndim() != 1 && a.ndim() != 2)
    throw py::value_error(std::string(name) + " must be 2-D (units, examples), got shape " + shape_of(a));
  const index rows = a.ndim() == 2 ? a.shape(0) : 1, cols = a.shape(a.ndim() - 1);
  if (cols == 0) throw py::value_error(std::string(name) + " has m = 0 examples (shape " + shape_of(a) + ")");
  if (rows > INT_MAX || cols > INT_MAX) throw py::value_error(std::string(name) + " is too large for BLAS");
  index row_step = a.ndim() == 2 ? a.strides(0) / index(sizeof(T)) : 1, col_step = a.strides(a.ndim() - 1) / index(sizeof(T));
  if (rows == 1) row_step = 1;
  if (cols == 1) col_step = rows;
  const T* data = static_cast<const T*>(a.data());
  if (row_step == 1 && col_step >= rows && col_step <= INT_MAX) return {data, rows, cols, col_step, false};
  if (col_step == 1 && row_step >= cols && row_step <= INT_MAX) return {data, rows, cols, row_step, true};
  throw py::value_error(std::string(name) + " must be C- or F-contiguous along one axis");
}

template <class T>
ConstMatrix<T> finite_matrix(const py::array& a, const char* name) {
  ConstMatrix<T> M = matrix_view<T>(a, name);
  if (!all_finite(M)) throw py::value_error(std::string(name) + " contains NaN or inf");
  return M;
}

// Y for the network's cost: int64 labels of shape (m,) for cce, else a finite (n[L], m) matrix
// (or (m,) when n[L] = 1) whose entries lie in [0, 1] for bce and cce.
template <class T>
Targets<T> targets(const Network<T>& net, const py::array& Y) {
  const index n_L = net.layout.n[net.L()];
  if (net.cost == Cost::cce && Y.ndim() == 1) {
    require_dtype<std::int64_t>(Y, "cce labels");
    if (!(Y.flags() & py::array::c_style)) throw py::value_error("cce labels must be contiguous");
    const index m = Y.shape(0);
    const auto* labels = static_cast<const std::int64_t*>(Y.data());
    for (index j = 0; j < m; ++j)
      if (labels[j] < 0 || labels[j] >= n_L)
        throw py::value_error("cce labels must lie in 0.." + std::to_string(n_L - 1) + ", got " +
                              std::to_string(labels[j]) + " at example " + std::to_string(j));
    return {{nullptr, n_L, m, n_L}, labels};
  }
  if (Y.ndim() == 1 && n_L != 1)
    throw py::value_error("Y must be (n[L], m) with n[L] = " + std::to_string(n_L) + ", got shape " + shape_of(Y));
  ConstMatrix<T> view = finite_matrix<T>(Y, "Y");
  if (net.cost != Cost::mse)
    for (index j = 0; j < view.cols; ++j)
      for (index i = 0; i < view.rows; ++i)
        if (!(view(i, j) >= 0 && view(i, j) <= 1))
          throw py::value_error("Y for " + std::string(net.cost == Cost::bce ? "bce" : "cce") +
                                " must lie in [0, 1], got " + std::to_string(view(i, j)));
  return {view, nullptr};
}

// The core's Cache with the X array it points into, kept alive as long as the cache.
template <class T>
struct PyCache {
  Cache<T> core;
  py::object X;
};

// An F-ordered NumPy view of a core matrix that keeps `owner` alive.
template <class T>
py::array view(ConstMatrix<T> M, py::handle owner) {
  return py::array_t<T>({M.rows, M.cols}, {index(sizeof(T)), index(sizeof(T)) * M.ld}, M.data, owner);
}

void require_layer(index l, index first, index last) {
  if (l < first || l > last)
    throw py::index_error("layer index must be in " + std::to_string(first) + ".." + std::to_string(last) +
                          ", got " + std::to_string(l));
}

const std::map<std::string, Activation> activation_names = {
    {"identity", Activation::identity}, {"step", Activation::step}, {"sigmoid", Activation::sigmoid},
    {"tanh", Activation::tanh}, {"relu", Activation::relu}, {"leaky_relu", Activation::leaky_relu},
    {"elu", Activation::elu}, {"softmax", Activation::softmax}};
const std::map<std::string, Cost> cost_names = {{"mse", Cost::mse}, {"bce", Cost::bce}, {"cce", Cost::cce}};

template <class Kind>
Kind lookup(const std::map<std::string, Kind>& names, const std::string& name, const char* what) {
  auto found = names.find(name);
  if (found == names.end()) throw py::value_error(std::string("unknown ") + what + " '" + name + "'");
  return found->second;
}

template <class T>
std::unique_ptr<Network<T>> make_network(std::vector<index> n, const std::vector<std::pair<std::string, double>>& g,
                                         const std::string& cost) {
  std::vector<ActivationSpec> specs;
  for (const auto& [name, alpha] : g) specs.push_back({lookup(activation_names, name, "activation"), alpha});
  return std::make_unique<Network<T>>(std::move(n), std::move(specs), lookup(cost_names, cost, "cost"));
}

template <class T>
void bind_network(py::module_& m, const std::string& suffix) {
  using Net = Network<T>;
  using Grads = Gradients<T>;

  py::class_<PyCache<T>>(m, ("Cache" + suffix).c_str())
      .def_property_readonly("m", [](const PyCache<T>& c) { return c.core.m; })
      .def_readonly("X", &PyCache<T>::X)
      .def("Z", [](py::object self, index l) {
        auto& c = self.cast<PyCache<T>&>();
        require_layer(l, 1, c.core.Z.L());
        return view<T>(c.core.Z[l], self);
      })
      .def("A", [](py::object self, index l) {
        auto& c = self.cast<PyCache<T>&>();
        require_layer(l, 1, c.core.Z.L());
        return view<T>(c.core.A[l], self);
      });

  py::class_<Grads>(m, ("Gradients" + suffix).c_str())
      .def_property_readonly("m", [](const Grads& g) { return g.m; })
      .def_property_readonly("has_dA0", [](const Grads& g) { return !g.dA0_values.empty(); })
      .def("dW", [](py::object self, index l) {
        auto& g = self.cast<Grads&>();
        require_layer(l, 1, g.layout.L());
        return view<T>(g.dW(l), self);
      })
      .def("db", [](py::object self, index l) {
        auto& g = self.cast<Grads&>();
        require_layer(l, 1, g.layout.L());
        return view<T>(ConstMatrix<T>(g.db(l), g.layout.n[l], 1, g.layout.n[l]), self);
      })
      .def("dZ", [](py::object self, index l) {
        auto& g = self.cast<Grads&>();
        require_layer(l, 1, g.layout.L());
        return view<T>(g.dZ[l], self);
      })
      .def("dA", [](py::object self, index l) {
        auto& g = self.cast<Grads&>();
        require_layer(l, g.dA0_values.empty() ? 1 : 0, g.layout.L());
        return view<T>(l == 0 ? g.dA0() : g.dA[l], self);
      });

  py::class_<Net>(m, ("Network" + suffix).c_str())
      .def(py::init(&make_network<T>), py::arg("n"), py::arg("activations"), py::arg("cost"))
      .def_property_readonly("L", &Net::L)
      .def_property_readonly("n", [](const Net& net) { return net.layout.n; })
      .def_property_readonly("params", [](py::object self) {
        auto& net = self.cast<Net&>();
        return py::array_t<T>({net.layout.size}, {index(sizeof(T))}, net.params.data(), self);
      })
      .def("W", [](py::object self, index l) {
        auto& net = self.cast<Net&>();
        require_layer(l, 1, net.L());
        return view<T>(net.W(l), self);
      })
      .def("b", [](py::object self, index l) {
        auto& net = self.cast<Net&>();
        require_layer(l, 1, net.L());
        return view<T>(ConstMatrix<T>(net.b(l), net.layout.n[l], 1, net.layout.n[l]), self);
      })
      .def("new_cache", [](const Net& net, index m) {
        if (m < 1) throw py::value_error("a cache needs m >= 1 examples, got " + std::to_string(m));
        return PyCache<T>{Cache<T>(net, m), py::none()};
      })
      .def("new_gradients", [](const Net& net, index m) {
        if (m < 1) throw py::value_error("gradients need m >= 1 examples, got " + std::to_string(m));
        return Grads(net, m);
      })
      .def("forward", [](const Net& net, py::array X, PyCache<T>& cache) {
        const ConstMatrix<T> view = finite_matrix<T>(X, "X");
        {
          py::gil_scoped_release release;
          net.forward(view, cache.core);
        }
        cache.X = X;
      })
      .def("J", [](const Net& net, py::array A_L, py::array Y) {
        const ConstMatrix<T> A = finite_matrix<T>(A_L, "A[L]");
        const Targets<T> targets_Y = targets(net, Y);
        py::gil_scoped_release release;
        return net.J(A, targets_Y);
      })
      .def("backward", [](const Net& net, const PyCache<T>& cache, py::array Y, Grads& grads, bool compute_dA0) {
        const Targets<T> targets_Y = targets(net, Y);
        py::gil_scoped_release release;
        net.backward(cache.core, targets_Y, grads, compute_dA0);
      })
      .def("update", [](Net& net, const Grads& grads, double learning_rate) {
        py::gil_scoped_release release;
        net.update(grads, T(learning_rate));
      });
}

}  // namespace
}  // namespace mlpcore

PYBIND11_MODULE(_core, m) {
  m.doc() = "mlpcore's C++ core: dense layers on column-major buffers, BLAS for the products, OpenMP for the rest";
  mlpcore::bind_network<float>(m, "32");
  mlpcore::bind_network<double>(m, "64");
  m.def("set_num_threads", [](int k) {
    if (k < 1) throw py::value_error("the thread count must be at least 1, got " + std::to_string(k));
    mlpcore::set_num_threads(k);
  }, py::arg("k"),
  "set_num_threads(k): use k threads (k >= 1) in BLAS's matrix products and in OpenMP's element-wise\n"
  "passes alike; the two pools take turns, never nested.");
  m.def("get_num_threads", &mlpcore::get_num_threads,
        "get_num_threads() -> int: the thread count of BLAS and OpenMP (all cores until set_num_threads).");
}
