// mlpcore._core: the pybind11 module. It checks what comes from Python before any state is
// touched, hands NumPy memory to the core without copying, releases the GIL around work and
// turns core errors into Python exceptions (std::invalid_argument becomes ValueError).
#include <pthread.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <signal.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <climits>
#include <cmath>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <utility>

#include "mlpcore/network.hpp"
#include "mlpcore/pair.hpp"
#include "mlpcore/trainer.hpp"

namespace py = pybind11;

namespace mlpcore {
namespace {

// The calls that have released the GIL and not yet taken it back (see _stop_for_exit).
std::atomic<int> calls_in_flight{0};

// Whether the interpreter finalizes, after the exit functions (atexit) have run.
bool interpreter_finalizing() {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing();
#else
  return _Py_IsFinalizing();
#endif
}

// A thread other than the exiting one about to take the GIL back once the interpreter
// finalizes waits here for the process to end. CPython 3.12 and 3.13 end such a thread with
// pthread_exit, whose unwinding runs the call's destructors, and those free Python objects with
// no thread state left: a segfault. (3.14 makes the thread wait itself; 3.11 survived it.)
void wait_for_the_end_if_finalizing() {
  if (!interpreter_finalizing() || !other_thread_than_the_exiting_one()) return;
  for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
}

// Releases the GIL for the work of a call, as py::gil_scoped_release does, but lets through
// (noexcept(false)) the forced unwinding that CPython starts when a daemon thread takes the GIL
// back while the interpreter shuts down: pybind11's noexcept destructor turned it into
// std::terminate, and a program that ended while a daemon thread was in a call aborted.
class ReleasedGIL {
 public:
  // Refuses a call from a thread other than the one that exits the interpreter, once it does:
  // the exit waits for the calls in flight, and a daemon thread calling in a loop would keep
  // one in flight.
  ReleasedGIL() : state_(nullptr) {
    if (other_thread_than_the_exiting_one())
      throw std::runtime_error("the interpreter is exiting: mlpcore takes no more calls from other threads");
    state_ = PyEval_SaveThread();
    ++calls_in_flight;
  }
  ~ReleasedGIL() noexcept(false) {
    wait_for_the_end_if_finalizing();
    PyEval_RestoreThread(state_);
    --calls_in_flight;  // only now: the exit's wait must not end while this thread needs the GIL
  }
  ReleasedGIL(const ReleasedGIL&) = delete;
  ReleasedGIL& operator=(const ReleasedGIL&) = delete;

 private:
  PyThreadState* state_;
};

std::string shape_of(const py::array& a) {
  std::string text = "(";
  for (py::ssize_t d = 0; d < a.ndim(); ++d) text += (d ? ", " : "") + std::to_string(a.shape(d));
  return text + (a.ndim() == 1 ? ",)" : ")");
}

template <class T>
const char* dtype_name() {
  return sizeof(T) == 4 ? "float32" : "float64";
}

// Whether the dtype of `a` is exactly T in native byte order.
template <class T>
bool has_dtype(const py::array& a) {
  const std::uint16_t probe = 1;
  const char foreign_order = *reinterpret_cast<const char*>(&probe) == 1 ? '>' : '<';
  return a.dtype().num() == py::dtype::of<T>().num() && a.dtype().byteorder() != foreign_order;
}

// The dtype of `a` must be exactly T in native byte order (the Python layer converts beforehand).
template <class T>
void require_dtype(const py::array& a, const char* name) {
  if (!has_dtype<T>(a))
    throw py::type_error(std::string(name) + " must be " + dtype_name<T>() + " in native byte order, got " +
                         std::string(py::str(a.dtype())));
}

// Whether a's data lies at an address aligned to T (NumPy's arrays may not: a view into bytes).
template <class T>
bool aligned_to(const py::array& a) {
  return reinterpret_cast<std::uintptr_t>(a.data()) % alignof(T) == 0;
}

// The column-major view of a 2-D array of T, or of a 1-D one read as one row, without copying,
// if it is aligned to T and one of its strides is one item and the other (a leading dimension,
// below 2^31 items) steps over a whole column or row: F-ordered arrays give a plain view,
// C-ordered ones a transposed one.
template <class T>
std::optional<ConstMatrix<T>> unit_stride_view(const py::array& a) {
  if (!aligned_to<T>(a)) return std::nullopt;
  const index rows = a.ndim() == 2 ? a.shape(0) : 1, cols = a.shape(a.ndim() - 1);
  const index item = index(sizeof(T));
  const index row_stride = a.ndim() == 2 ? a.strides(0) : item, col_stride = a.strides(a.ndim() - 1);
  // A single row or column has one stride that matters; the other is whatever makes the view valid.
  if ((rows > 1 && row_stride % item != 0) || (cols > 1 && col_stride % item != 0)) return std::nullopt;
  const index row_step = rows == 1 ? 1 : row_stride / item;
  const index col_step = cols > 1 ? col_stride / item : row_step == 1 ? rows : 1;
  const T* data = static_cast<const T*>(a.data());
  if (row_step == 1 && col_step >= rows && col_step <= INT_MAX)
    return ConstMatrix<T>{data, rows, cols, col_step, false};
  if (col_step == 1 && row_step >= cols && row_step <= INT_MAX) return ConstMatrix<T>{data, rows, cols, row_step, true};
  return std::nullopt;
}

// A 2-D array, or a 1-D array read as one row, as a matrix view without copying (see
// unit_stride_view); a Python exception that says what is wrong with any other.
template <class T>
ConstMatrix<T> matrix_view(const py::array& a, const char* name) {
  require_dtype<T>(a, name);
  if (a.ndim() != 1 && a.ndim() != 2)
    throw py::value_error(std::string(name) + " must be 2-D (units, examples), got shape " + shape_of(a));
  const index rows = a.ndim() == 2 ? a.shape(0) : 1, cols = a.shape(a.ndim() - 1);
  if (cols == 0) throw py::value_error(std::string(name) + " has m = 0 examples (shape " + shape_of(a) + ")");
  if (rows > INT_MAX || cols > INT_MAX) throw py::value_error(std::string(name) + " is too large for BLAS");
  if (const auto view = unit_stride_view<T>(a)) return *view;
  throw py::value_error(
      std::string(name) +
      " must be C- or F-contiguous along one axis, its strides whole items, and aligned to its dtype");
}

// `object` as an array if it is a NumPy ndarray itself (no subclass), else nullopt.
inline std::optional<py::array> exact_ndarray(py::handle object) {
  if (Py_TYPE(object.ptr()) != py::detail::npy_api::get().PyArray_Type_) return std::nullopt;
  return py::reinterpret_borrow<py::array>(object);
}

// X as forward and predict read it in place, without Python's Network._matrix, if it is so: a
// NumPy ndarray itself of T in native byte order, 2-D (n[0], m) with 1 <= m < 2^31, of unit
// stride along one axis (see unit_stride_view); nullopt for any other X, which _matrix converts
// first, or refuses with the reason.
template <class T>
std::optional<ConstMatrix<T>> input_view(const Network<T>& net, py::handle X) {
  const std::optional<py::array> a = exact_ndarray(X);
  if (!a || a->ndim() != 2 || a->shape(0) != net.layout.n[0] || a->shape(1) < 1 || a->shape(1) > INT_MAX ||
      !has_dtype<T>(*a))
    return std::nullopt;
  return unit_stride_view<T>(*a);
}

// The X a call of forward or predict reads: its view, and the array that holds the memory read.
template <class T>
struct Input {
  ConstMatrix<T> view;
  py::array array;
};

// X as input_view takes it; nullopt for any other X unless `converted` (X came through _matrix):
// then matrix_view reads X as it is or says what is wrong with it.
template <class T>
std::optional<Input<T>> read_input(const Network<T>& net, py::handle X, bool converted) {
  const std::optional<ConstMatrix<T>> view = input_view(net, X);
  if (!view && !converted) return std::nullopt;
  py::array array = X.cast<py::array>();  // X itself if view, else what holds the memory read
  return Input<T>{view ? *view : matrix_view<T>(array, "X"), std::move(array)};
}

// A read-only view of the array a, as a.view() with its writeable flag cleared: forward's A[0].
inline py::array read_only_view(const py::array& a) {
  py::array view(a.dtype(), {a.shape(), a.shape() + a.ndim()}, {a.strides(), a.strides() + a.ndim()}, a.data(), a);
  py::detail::array_proxy(view.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
  return view;
}

// Y for the network's cost, shape and dtype checked (its values are checked by
// require_valid_targets, without the GIL): int64 labels of shape (m,) for cce, else an
// (n[L], m) matrix, or (m,) when n[L] = 1.
template <class T>
Targets<T> targets(const Network<T>& net, const py::array& Y) {
  const index n_L = net.layout.n[net.L()];
  if (net.cost == Cost::cce && Y.ndim() == 1) {
    require_dtype<std::int64_t>(Y, "cce labels");
    if (!(Y.flags() & py::array::c_style) || !aligned_to<std::int64_t>(Y))
      throw py::value_error("cce labels must be contiguous and aligned to int64");
    if (Y.shape(0) == 0) throw py::value_error("Y has m = 0 examples");
    return Targets<T>::from_labels(static_cast<const std::int64_t*>(Y.data()), n_L, Y.shape(0));
  }
  const ConstMatrix<T> view = matrix_view<T>(Y, "Y");
  if (view.rows != n_L) {
    const bool transposed = Y.ndim() == 2 && Y.shape(1) == n_L;
    throw py::value_error("Y must be (n[L], m) with n[L] = " + std::to_string(n_L) +
                          (net.cost == Cost::cce ? ", or integer labels of shape (m,)"
                           : n_L == 1            ? ", or of shape (m,)"
                                                 : "") +
                          ", got shape " + shape_of(Y) + (transposed ? ": one column per example, pass Y.T" : ""));
  }
  return {view, nullptr};
}

// Y as backward reads it in place, without Python's Network._targets, if it is so: a NumPy
// ndarray itself (no subclass) of C-contiguous int64 labels (m,) for cce, else of T, in native
// byte order, (n[L], m) or (m,) when n[L] = 1, with 1 <= m < 2^31, of unit stride along one
// axis (see unit_stride_view); nullopt for any other Y, which _targets converts first, or
// refuses with the reason.
template <class T>
std::optional<Targets<T>> targets_view(const Network<T>& net, py::handle Y) {
  const std::optional<py::array> found = exact_ndarray(Y);
  if (!found) return std::nullopt;
  const py::array& a = *found;
  const index n_L = net.layout.n[net.L()];
  if (a.ndim() < 1 || a.ndim() > 2 || a.shape(a.ndim() - 1) < 1 || a.shape(a.ndim() - 1) > INT_MAX) return std::nullopt;
  if (net.cost == Cost::cce && a.ndim() == 1) {
    if (!has_dtype<std::int64_t>(a) || !(a.flags() & py::array::c_style) || !aligned_to<std::int64_t>(a))
      return std::nullopt;
    return Targets<T>::from_labels(static_cast<const std::int64_t*>(a.data()), n_L, a.shape(0));
  }
  if ((a.ndim() == 2 ? a.shape(0) : 1) != n_L || !has_dtype<T>(a)) return std::nullopt;
  if (const auto view = unit_stride_view<T>(a)) return Targets<T>{*view, nullptr};
  return std::nullopt;
}

// predict's answer for m examples: mse: A[L], T (n[L], m); bce: int64 (n[L], m); cce: int64 (m,)
// (see predicted_labels); 2-D answers F-ordered, as A[L] is.
template <class T>
py::array prediction_array(Cost cost, index n_L, index m) {
  if (cost == Cost::cce) return py::array_t<std::int64_t>(m);
  if (cost == Cost::bce) return py::array_t<std::int64_t, py::array::f_style>({n_L, m});
  return py::array_t<T, py::array::f_style>({n_L, m});
}

// Refuses gradients that nothing has written, neither a backward nor the caller (all zero: an
// optimizer would count a step of nothing), and gradients with a NaN or inf (in dW, db, dgamma or
// dbeta: one pass over the flat buffer) before an update reads them, so that a refused update
// leaves the parameters as they were.
template <class T>
void require_usable_gradients(const Gradients<T>& grads) {
  const T* g = grads.dparams.data();
  const index size = index(grads.dparams.size());
  require(grads.filled || !all_zero(size, size, [g](index k) { return g[k]; }),
          "the gradients hold nothing: Gradients(net, m) are for net.backward(cache, Y, out=grads), which fills "
          "them (or write dW[l], db[l] into them yourself)");
  require(all_finite(g, size),
          "the gradients contain NaN or inf: if a backward made them, the steps before diverged (try a smaller "
          "learning rate) or the scale of X or Y is too large (standardise them, e.g. with "
          "mlpcore.preprocessing.Standardizer)");
}

// The core's Cache with the X array it points into, kept alive as long as the cache.
template <class T>
struct PyCache {
  Cache<T> core;
  py::object X;
  int users = 0;  // the Python calls using the cache: -1 a writer, n > 0 n readers (see Claim)
};

// The network as Python holds it: the core's, and the cache of predict's last call, kept for
// the next call of the same m (a core cache: no views, no Python object to make or look up).
template <class T>
struct PyNetwork : Network<T> {
  using Network<T>::Network;
  std::unique_ptr<Cache<T>> predict_cache;
};

// What read() reads of the parameters' or the optimizer state's buffers (where they are, or what
// they hold), under net's shared lock with the GIL released; RuntimeError during an epoch of a fit
// of net, whose steps write into spares and make them current, and which frees the spares at its
// end. Outside a fit they are the buffers the values settle in, which live as long as the
// network and the state: a view of an address read here stays valid.
template <class T, class Read>
auto settled(const PyNetwork<T>& net, const Read& read) {
  ReleasedGIL release;  // the lock may wait for a long call of net (see WriterFirstLock)
  const std::shared_lock reading(net.params_lock);
  net.require_not_fitting();
  return read();
}

// predict's cache for a call on m examples: the network's own, taken from it for the call (while
// the call holds the GIL), or a new one if it has none of m; given back when the call ends, even
// by an exception, so that a call from another thread meanwhile makes its own. Made before a
// ReleasedGIL, it gives the cache back once the GIL is held again.
template <class T>
class PredictCache {
 public:
  PredictCache(PyNetwork<T>& net, index m) : net_(net), cache_(std::move(net.predict_cache)) {
    if (!cache_ || cache_->capacity != m) cache_ = std::make_unique<Cache<T>>(net, m);
  }
  ~PredictCache() { net_.predict_cache = std::move(cache_); }
  PredictCache(const PredictCache&) = delete;
  PredictCache& operator=(const PredictCache&) = delete;
  Cache<T>& operator*() const { return *cache_; }
  Cache<T>* operator->() const { return cache_.get(); }

 private:
  PyNetwork<T>& net_;
  std::unique_ptr<Cache<T>> cache_;
};

// Two Python threads may call into one Cache or Gradients at once, each with the GIL released. A
// forward writes its cache and points it at its X, a backward writes its gradients and makes
// their dA[0] the first time it is asked for: either, while another call uses the same object,
// would race in memory that one of them frees or moves (another X, another dA[0]). So a call
// claims what it uses, as its writer or as one of its readers, while it holds the GIL, and lets
// it go once it has the GIL back (a Claim made before a ReleasedGIL ends after it); a call that
// finds an object claimed the other way, or by another writer, is refused.
class Claim {
 public:
  enum Use { reading, writing };
  // users: the object's count, -1 for a writer, n > 0 for n readers.
  Claim(int& users, Use use, const char* refusal) : users_(users) {
    if (use == writing ? users != 0 : users < 0) throw std::runtime_error(refusal);
    users = use == writing ? -1 : users + 1;
  }
  ~Claim() { users_ = users_ < 0 ? 0 : users_ - 1; }
  Claim(const Claim&) = delete;
  Claim& operator=(const Claim&) = delete;

 private:
  int& users_;
};

constexpr const char* cache_in_use =
    "the cache is in use by a forward or backward on another thread: give each thread its own Cache";
constexpr const char* gradients_in_use =
    "the gradients are in use by a backward, update or optimizer step on another thread: give each thread its own "
    "Gradients";

// An F-ordered NumPy view of a core matrix that keeps `owner` alive.
template <class T>
py::array view(ConstMatrix<T> M, py::handle owner) {
  return py::array_t<T>({M.rows, M.cols}, {index(sizeof(T)), index(sizeof(T)) * M.ld}, M.data, owner);
}

// The m examples of a cache or gradients (`what`): a ValueError for any int outside 1..2^31 - 1,
// those beyond int64 too.
inline index capacity(const py::int_& m, const std::string& what) {
  int overflow = 0;
  const long long value = PyLong_AsLongLongAndOverflow(m.ptr(), &overflow);
  if (overflow || value < 1 || value > INT_MAX)
    throw py::value_error(what + " needs 1 <= m < 2^31 examples, got " + std::string(py::str(m)));
  return index(value);
}

// A flat buffer's address and size, as flat_view takes them (read under a lock where a fit may swap it).
template <class T>
std::pair<T*, index> extent(Buffer<T>& buffer) {
  return {buffer.data(), index(buffer.size())};
}

// A 1-D NumPy view of a flat buffer that keeps `owner` alive.
template <class T>
py::array flat_view(std::pair<T*, index> buffer, py::handle owner) {
  return py::array_t<T>({buffer.second}, {index(sizeof(T))}, buffer.first, owner);
}

// The (n, 1) view of a per-unit vector.
template <class T>
py::array column_view(const T* v, index n, py::handle owner) {
  return view<T>(ConstMatrix<T>(v, n, 1, n), owner);
}

// Binds `name(l)` on a class: the NumPy view of layer l's matrix given by `get(object, l)`,
// for the layers where `exists(object, l)`; IndexError for the others.
template <class Class, class Exists, class Get>
void def_layer_view(py::class_<Class>& cls, const char* name, Exists exists, Get get) {
  cls.def(name, [name, exists, get](py::object self, index l) {
    auto& object = self.cast<Class&>();
    if (!exists(object, l)) throw py::index_error(std::string(name) + "[" + std::to_string(l) + "] does not exist");
    return get(object, l, self);
  });
}

std::atomic<bool> interrupt_requested{false};

extern "C" void request_interrupt(int) { interrupt_requested = true; }

// While alive and active (a fit on Python's main thread while Python's own handler has SIGINT,
// see training.py's _takes_ctrl_c), Ctrl-C (SIGINT) sets
// interrupt_requested instead of reaching Python, so that the training loop can stop after the
// current step; Python's handler comes back after exactly as it was (std::signal would bring it
// back with SA_RESTART, and a blocking read would no longer end at Ctrl-C). An inactive
// catcher's stop flag is its own and never set: a fit on another thread neither stops at Ctrl-C
// nor clears a Ctrl-C the main thread's fit has yet to see.
class InterruptCatcher {
 public:
  explicit InterruptCatcher(bool active) : active_(active) {
    if (!active_) return;
    interrupt_requested = false;
    struct sigaction catcher{};
    catcher.sa_handler = request_interrupt;
    sigemptyset(&catcher.sa_mask);
    sigaction(SIGINT, &catcher, &previous_);
  }
  ~InterruptCatcher() { restore(); }
  const std::atomic<bool>& stop() const { return active_ ? interrupt_requested : never_; }

  // Puts Python's handler back, and tells whether a Ctrl-C came meanwhile: one that came after
  // the trainer last looked at stop() would otherwise be lost.
  bool finish() {
    restore();
    return stop().load();
  }

 private:
  void restore() {
    if (active_ && !restored_) sigaction(SIGINT, &previous_, nullptr);
    restored_ = true;
  }

  bool active_, restored_ = false;
  struct sigaction previous_{};
  std::atomic<bool> never_{false};
};

const std::map<std::string, Activation> activation_names = {
    {"identity", Activation::identity}, {"step", Activation::step},      {"sigmoid", Activation::sigmoid},
    {"tanh", Activation::tanh},         {"relu", Activation::relu},      {"leaky_relu", Activation::leaky_relu},
    {"elu", Activation::elu},           {"softmax", Activation::softmax}};
const std::map<std::string, Cost> cost_names = {{"mse", Cost::mse}, {"bce", Cost::bce}, {"cce", Cost::cce}};
const std::map<std::string, Method> method_names = {
    {"sgd", Method::sgd}, {"rmsprop", Method::rmsprop}, {"adam", Method::adam}, {"adamw", Method::adamw}};

template <class Kind>
Kind lookup(const std::map<std::string, Kind>& names, const std::string& name, const char* what) {
  auto found = names.find(name);
  if (found == names.end()) throw py::value_error(std::string("unknown ") + what + " '" + name + "'");
  return found->second;
}

// layers: one (activation name, alpha, batch_norm, dropout) per layer 1..L
using LayerTuple = std::tuple<std::string, double, bool, double>;

template <class T>
std::unique_ptr<PyNetwork<T>> make_network(std::vector<index> n, const std::vector<LayerTuple>& layers,
                                           const std::string& cost, double bn_eps, double bn_momentum) {
  std::vector<LayerSpec> specs;
  for (const auto& [name, alpha, batch_norm, dropout] : layers)
    specs.push_back({{lookup(activation_names, name, "activation"), alpha}, batch_norm, dropout});
  return std::make_unique<PyNetwork<T>>(std::move(n), std::move(specs), lookup(cost_names, cost, "cost"), bn_eps,
                                        bn_momentum);
}

// Refuses hyper-parameters outside the ranges that the optimizers' constructors check: opt.hyper
// may have been changed since.
void require_in_range(const OptimizerSettings& s, const std::string& method) {
  const auto check = [&](const char* name, double value, bool in_range, const char* range) {
    if (!in_range)
      throw py::value_error(std::string("hyper-parameter '") + name + "' of optimizer '" + method + "' must be " +
                            range + ", got " + std::string(py::repr(py::float_(value))));
  };
  const char* fraction = "a real number in [0, 1)";
  check("momentum", s.momentum, std::isfinite(s.momentum) && s.momentum >= 0, "a finite real number >= 0");
  check("alpha", s.alpha, s.alpha >= 0 && s.alpha < 1, fraction);
  check("beta1", s.beta1, s.beta1 >= 0 && s.beta1 < 1, fraction);
  check("beta2", s.beta2, s.beta2 >= 0 && s.beta2 < 1, fraction);
  check("eps", s.eps, std::isfinite(s.eps) && s.eps > 0, "a finite real number > 0");
  check("weight_decay", s.weight_decay, std::isfinite(s.weight_decay) && s.weight_decay >= 0,
        "a finite real number >= 0");
  if (s.nesterov && s.momentum == 0) throw py::value_error("nesterov needs momentum > 0");
}

// Whether `value` is a bool, Python's or NumPy's.
inline bool is_bool(py::handle value) {
  static const py::handle numpy_bool = py::object(py::module_::import("numpy").attr("bool_")).release();  // kept
  return PyBool_Check(value.ptr()) || py::isinstance(value, numpy_bool);
}

// The value of the hyper-parameter `name` of `method`, a real number and no bool, as a double.
inline double real_value(py::handle value, const std::string& name, const std::string& method) {
  const std::string what = "hyper-parameter '" + name + "' of optimizer '" + method + "' must be a ";
  if (!is_bool(value)) {
    const double number = PyFloat_AsDouble(value.ptr());
    if (number != -1.0 || !PyErr_Occurred()) return number;
    const bool beyond_float = PyErr_ExceptionMatches(PyExc_OverflowError);  // an int past 1.8e308
    PyErr_Clear();
    if (beyond_float) throw py::value_error(what + "finite real number, got " + std::string(py::repr(value)));
  }
  throw py::type_error(what + "real number, got " + std::string(py::repr(value)));
}

// The settings of `method` with the hyper-parameters `hyper` (name: value), checked, for a
// network of T: eps must not round to 0 in T.
template <class T>
OptimizerSettings optimizer_settings(const std::string& method, const py::dict& hyper) {
  OptimizerSettings s;
  s.method = lookup(method_names, method, "optimizer");
  for (auto [key, value] : hyper) {
    const std::string name = py::str(key);
    if (name == "nesterov") {
      if (!is_bool(value))
        throw py::type_error("hyper-parameter 'nesterov' of optimizer '" + method + "' must be True or False, got " +
                             std::string(py::repr(value)));
      s.nesterov = PyObject_IsTrue(value.ptr()) == 1;
      continue;
    }
    double* field = name == "momentum"       ? &s.momentum
                    : name == "alpha"        ? &s.alpha
                    : name == "beta1"        ? &s.beta1
                    : name == "beta2"        ? &s.beta2
                    : name == "eps"          ? &s.eps
                    : name == "weight_decay" ? &s.weight_decay
                                             : nullptr;
    if (!field) throw py::value_error("unknown hyper-parameter '" + name + "' of optimizer '" + method + "'");
    *field = real_value(value, name, method);
  }
  require_in_range(s, method);
  if (T(s.eps) == 0)
    throw py::value_error("hyper-parameter 'eps' of optimizer '" + method + "' must not round to 0 in " +
                          dtype_name<T>() + ", got " + std::string(py::repr(py::float_(s.eps))));
  return s;
}

template <class T>
void bind_cache(py::module_& m, const std::string& suffix) {
  py::class_<PyCache<T>> cache(m, ("Cache" + suffix).c_str());
  cache.def_property_readonly("m", [](const PyCache<T>& c) { return c.core.m; })
      .def_property_readonly("training", [](const PyCache<T>& c) { return c.core.training; })
      .def_property_readonly("holds_forward", [](const PyCache<T>& c) { return c.core.X.data != nullptr; })
      .def_property_readonly("capacity", [](const PyCache<T>& c) { return c.core.capacity; });
  const auto layer_of = [](auto member) {
    return [member](PyCache<T>& c, index l, py::handle self) { return view<T>((c.core.*member)[l], self); };
  };
  const auto has = [](auto member) {
    return [member](const PyCache<T>& c, index l) { return (c.core.*member).has(l); };
  };
  def_layer_view(cache, "Z", has(&Cache<T>::Z), layer_of(&Cache<T>::Z));
  def_layer_view(cache, "A", has(&Cache<T>::A), layer_of(&Cache<T>::A));
  def_layer_view(cache, "Z_norm", has(&Cache<T>::Z_norm), layer_of(&Cache<T>::Z_norm));
  def_layer_view(cache, "Z_tilde", has(&Cache<T>::Z_tilde), layer_of(&Cache<T>::Z_tilde));
  def_layer_view(cache, "D", has(&Cache<T>::D), layer_of(&Cache<T>::D));
}

template <class T>
void bind_gradients(py::module_& m, const std::string& suffix) {
  using Grads = Gradients<T>;
  py::class_<Grads> grads(m, ("Gradients" + suffix).c_str());
  grads.def_property_readonly("m", [](const Grads& g) { return g.m; })
      .def_property_readonly("capacity", [](const Grads& g) { return g.capacity; });
  const auto any_layer = [](const Grads& g, index l) { return l >= 1 && l <= g.layout.L(); };
  const auto bn_layer = [](const Grads& g, index l) { return l >= 1 && l <= g.layout.L() && g.dZ_tilde.has(l); };
  def_layer_view(grads, "dW", any_layer, [](Grads& g, index l, py::handle self) { return view<T>(g.dW(l), self); });
  def_layer_view(grads, "db", any_layer,
                 [](Grads& g, index l, py::handle self) { return column_view<T>(g.db(l), g.layout.n[l], self); });
  def_layer_view(grads, "dZ", any_layer, [](Grads& g, index l, py::handle self) { return view<T>(g.dZ[l], self); });
  def_layer_view(
      grads, "dA",
      [](const Grads& g, index l) { return (l == 0 && !g.dA0_values.empty()) || (l >= 1 && l <= g.layout.L()); },
      [](Grads& g, index l, py::handle self) { return view<T>(l == 0 ? g.dA0() : g.dA[l], self); });
  def_layer_view(grads, "dgamma", bn_layer,
                 [](Grads& g, index l, py::handle self) { return column_view<T>(g.dgamma(l), g.layout.n[l], self); });
  def_layer_view(grads, "dbeta", bn_layer,
                 [](Grads& g, index l, py::handle self) { return column_view<T>(g.dbeta(l), g.layout.n[l], self); });
}

template <class T>
void bind_network(py::module_& m, const std::string& suffix) {
  using Net = PyNetwork<T>;
  using Grads = Gradients<T>;
  py::class_<Net> net(m, ("Network" + suffix).c_str());
  net.def(py::init(&make_network<T>), py::arg("n"), py::arg("layers"), py::arg("cost"), py::arg("bn_eps"),
          py::arg("bn_momentum"))
      .def_property_readonly("L", &Net::L)
      .def_property_readonly("n", [](const Net& net) { return net.layout.n; })
      .def_readwrite("dropout_seed", &Net::dropout_seed)
      .def_property(
          "training_forwards", [](const Net& net) { return net.training_forwards.load(); },
          [](Net& net, std::uint64_t count) { net.training_forwards = count; })
      .def_property_readonly("params", [](py::object self) {
        auto& net = self.cast<Net&>();
        return flat_view(settled(net, [&] { return extent(net.params); }), self);
      });
  const auto net_layer = [](const Net& net, index l) { return l >= 1 && l <= net.L(); };
  const auto net_bn_layer = [](const Net& net, index l) { return l >= 1 && l <= net.L() && net.layers[l].batch_norm; };
  def_layer_view(net, "W", net_layer, [](Net& net, index l, py::handle self) {
    return view<T>(settled(net, [&] { return net.W(l); }), self);
  });
  def_layer_view(net, "b", net_layer, [](Net& net, index l, py::handle self) {
    return column_view<T>(settled(net, [&] { return net.b(l); }), net.layout.n[l], self);
  });
  def_layer_view(net, "gamma", net_bn_layer, [](Net& net, index l, py::handle self) {
    return column_view<T>(settled(net, [&] { return net.gamma(l); }), net.layout.n[l], self);
  });
  def_layer_view(net, "beta", net_bn_layer, [](Net& net, index l, py::handle self) {
    return column_view<T>(settled(net, [&] { return net.beta(l); }), net.layout.n[l], self);
  });
  def_layer_view(net, "running_mean", net_bn_layer,
                 [](Net& net, index l, py::handle self) { return view<T>(net.running_mean[l], self); });
  def_layer_view(net, "running_var", net_bn_layer,
                 [](Net& net, index l, py::handle self) { return view<T>(net.running_var[l], self); });
  net.def("new_cache", [](const Net& net,
                          const py::int_& m) { return PyCache<T>{Cache<T>(net, capacity(m, "a cache")), py::none()}; })
      .def("new_gradients",
           [](const Net& net, const py::int_& m) { return Grads(net, capacity(m, "a Gradients object")); })
      .def("forward",
           // Forward of X into the cache; returns A[0], a read-only view of X. None, doing nothing,
           // when X is not as input_view takes it or holds another m than the cache's capacity,
           // unless `converted` (X came through _matrix, the cache through _out): then matrix_view
           // says what is wrong with X. Either way what the core refuses (NaN, X in the cache's
           // memory, batch norm of one example) raises.
           [](Net& net, py::handle X, PyCache<T>& cache, bool training, bool converted) -> py::object {
             const std::optional<Input<T>> input = read_input(net, X, converted);
             if (!input || (!converted && input->view.cols != cache.core.capacity)) return py::none();
             const Claim writing(cache.users, Claim::writing, cache_in_use);
             try {
               ReleasedGIL release;
               require(all_finite(input->view), "X contains NaN or inf");
               net.forward(input->view, cache.core, training);
             } catch (const std::invalid_argument&) {
               if (!cache.core.X.data) cache.X = py::none();  // a pass that failed part-way: no forward held
               throw;
             } catch (...) {  // std::bad_alloc, a thread not started: anywhere in the pass, which may have
               cache.core.forget_forward();  // taken X, whose array cache.X does not hold: no forward held
               cache.X = py::none();
               throw;
             }
             cache.X = input->array;
             return read_only_view(input->array);
           })
      .def("predict",
           // predict's answer for X, or None when X is not as input_view takes it, unless
           // `converted` (X came through _matrix): then matrix_view says what is wrong.
           [](Net& net, py::handle X, bool converted) -> py::object {
             const std::optional<Input<T>> input = read_input(net, X, converted);
             if (!input) return py::none();
             const index n_L = net.layout.n[net.L()], m = input->view.cols;
             const PredictCache<T> cache(net, m);
             py::array answer = prediction_array<T>(net.cost, n_L, m);
             void* out = answer.mutable_data();
             {
               ReleasedGIL release;
               require(all_finite(input->view), "X contains NaN or inf");
               net.forward(input->view, *cache, false);
               const Matrix<T> A_L = cache->A[net.L()];
               if (net.cost == Cost::mse) {
                 std::copy_n(A_L.data, A_L.size(), static_cast<T*>(out));
               } else {
                 require(
                     all_finite(ConstMatrix<T>(A_L)),
                     "A[L] contains NaN or inf, of which no label can be predicted: the forward overflowed (look at "
                     "the scale of X and of the parameters)");
                 predicted_labels(net.cost, ConstMatrix<T>(A_L), static_cast<std::int64_t*>(out));
               }
             }
             return std::move(answer);
           })
      .def_property_readonly(
          "predict_cache_capacity",
          [](const Net& net) -> py::object {
            if (!net.predict_cache) return py::none();
            return py::int_(net.predict_cache->capacity);
          },
          "the m of the cache that predict keeps for its next call; None before the first call, and while a call "
          "(on another thread) has it")
      .def_property_readonly(
          "predict_cache_bytes", [](const Net& net) { return net.predict_cache ? net.predict_cache->bytes() : 0; },
          "the bytes of the cache that predict keeps (0 when predict_cache_capacity is None)")
      .def("J",
           [](const Net& net, py::array A_L, py::array Y) {
             const ConstMatrix<T> A = matrix_view<T>(A_L, "A[L]");
             const Targets<T> targets_Y = targets(net, Y);
             ReleasedGIL release;
             require(all_finite(A), "A[L] contains NaN or inf");
             require_valid_targets(net.cost, targets_Y);
             return net.J(A, targets_Y);
           })
      .def("threads", &Net::call_threads, py::arg("m"))
      .def("bytes", &Net::bytes)
      .def_static("reads_in_place",
                  // Whether the core reads the 1-D or 2-D array a of T in native byte order in place
                  // (see unit_stride_view): Python's _matrix copies any other.
                  [](const py::array& a) {
                    return (a.ndim() == 1 || a.ndim() == 2) && has_dtype<T>(a) && unit_stride_view<T>(a).has_value();
                  })
      .def("check_data",
           // Refuses X's NaN and inf unless the trainer is to find them (values_of_X false), and Y's
           // values that the cost does not take; on the calling thread, as fit's epoch of solo steps
           // that may follow goes on (see Trainer::epoch: OpenMP's other thread would spin beside it).
           [](const Net& net, py::array X, py::array Y, bool values_of_X) {
             const ConstMatrix<T> X_view = matrix_view<T>(X, "X");
             const Targets<T> Y_view = targets(net, Y);
             ReleasedGIL release;
             require(!values_of_X || all_finite(X_view, false), "X contains NaN or inf");
             require_valid_targets(net.cost, Y_view, false);
           })
      .def("backward",
           // Backward of the cache against Y into grads; false, doing nothing, when Y is not as
           // targets_view takes it or grads hold another m than the cache's, unless `converted`
           // (Y came through _targets, grads through _out): then `targets` says what is wrong
           // with Y. Either way what the core refuses (labels out of range, a cache of no
           // training forward) raises.
           [](const Net& net, PyCache<T>& cache, py::handle Y, Grads& grads, bool compute_dA0, bool converted) {
             std::optional<Targets<T>> view = targets_view(net, Y);
             if (!converted && (!view || grads.capacity != cache.core.m)) return false;
             const py::array array = Y.cast<py::array>();  // Y itself if view, else what holds the memory read
             const Targets<T> targets_Y = view ? *view : targets(net, array);
             if (targets_Y.dense.cols != cache.core.m)
               throw py::value_error("Y must hold the cache's m = " + std::to_string(cache.core.m) +
                                     " examples, got shape " + shape_of(array));
             const Claim reading(cache.users, Claim::reading, cache_in_use);
             const Claim writing(grads.users, Claim::writing, gradients_in_use);
             ReleasedGIL release;
             require_valid_targets(net.cost, targets_Y);
             net.backward(cache.core, targets_Y, grads, compute_dA0);
             return true;
           })
      .def("update", [](Net& net, Grads& grads, double learning_rate) {
        // false, changing nothing, when an updated parameter would not be finite
        const Claim reading(grads.users, Claim::reading, gradients_in_use);
        ReleasedGIL release;
        require_usable_gradients(grads);
        return net.update(grads, T(learning_rate));
      });
}

// One step of an optimizer outside fit, in place, after a pass that computes the same values
// without writing them: a step that would not be finite (returns false) leaves net.params and s
// as they were, with no spare buffers.
template <class T>
bool step_outside_fit(OptimizerState<T>& s, const std::string& method, const py::dict& hyper, PyNetwork<T>& net,
                      Gradients<T>& grads, double learning_rate) {
  if (grads.network_id != net.id) throw py::value_error("the gradients belong to another network");
  const Claim reading(grads.users, Claim::reading, gradients_in_use);
  const OptimizerSettings settings = optimizer_settings<T>(method, hyper);
  const Range all{0, index(net.params.size())};
  ReleasedGIL release;
  const std::unique_lock writing(net.params_lock);
  net.require_not_fitting();  // before the state is read: a fit swaps it under this lock
  require_state_fits(s, settings, all.end);
  require_usable_gradients(grads);
  const std::int64_t t = s.t + 1;
  if (!step_in_place(settings, T(learning_rate), t, net.params.data(), grads.dparams.data(), s, all)) return false;
  s.t = t;
  return true;
}

template <class T>
void bind_optimizer_state(py::module_& m, const std::string& suffix) {
  using State = OptimizerState<T>;
  py::class_<State> state(m, ("OptimizerState" + suffix).c_str());
  state
      .def(py::init([](const std::string& method, const py::dict& hyper, index size) {
        return State(optimizer_settings<T>(method, hyper), size);
      }))
      .def_property(
          "t", [](const State& s) { return s.t; },
          [](State& s, std::int64_t t) {
            // below 2^62: no run of steps that a machine could take then overflows t
            if (t < 0 || t >= std::int64_t(1) << 62)
              throw py::value_error("t must lie in [0, 2^62), got " + std::to_string(t));
            s.t = t;
          },
          "the number of steps taken; settable, to restore a saved state")
      .def(
          "fits",
          [](const State& s, const std::string& method, const py::dict& hyper, const PyNetwork<T>& net) {
            const OptimizerSettings settings = optimizer_settings<T>(method, hyper);
            return settled(net, [&] { return s.fits(settings, index(net.params.size())); });
          },
          "whether a step of net with these settings finds the buffers it needs; RuntimeError during a fit of net")
      .def(
          "buffers",
          [](py::object self, const PyNetwork<T>& net) {
            auto& s = self.cast<State&>();
            const auto spans = settled(net, [&] { return std::array{extent(s.first), extent(s.second)}; });
            py::list buffers;
            for (const auto& span : spans)
              if (span.second > 0) buffers.append(flat_view(span, self));
            return buffers;
          },
          "views of the state's buffers, used by net; RuntimeError during a fit of net")
      .def("step", &step_outside_fit<T>);
}

// One epoch of fit on X (n[0], m) and Y, with the GIL released, Ctrl-C caught and the hook and
// `progress` called with the GIL taken back; returns the epoch's figures as a dict.
template <class T>
py::dict run_epoch(py::object self, py::array X, py::array Y, index batch_size, double learning_rate, double l2,
                   double clip_norm, double clip_value, bool shuffle, std::uint64_t seed, index epoch_number,
                   py::object hook, bool catch_interrupt, py::object progress, bool keep_gradient) {
  auto& trainer = self.cast<Trainer<T>&>();
  const ConstMatrix<T> X_view = matrix_view<T>(X, "X");
  const Targets<T> Y_view = targets(trainer.network(), Y);
  if (Y_view.dense.cols != X_view.cols || X_view.rows != trainer.network().layout.n[0])
    throw py::value_error("X and Y must be (n[0], m) and (n[L], m) with the same m");
  if (batch_size < 1 || batch_size > trainer.cache().capacity)
    throw py::value_error("batch_size must lie in 1.." + std::to_string(trainer.cache().capacity));
  const TrainSettings settings{batch_size, learning_rate, l2, clip_norm, clip_value, shuffle, seed, keep_gradient};
  const Claim writing(trainer.gradients().users, Claim::writing, gradients_in_use);  // the team writes them
  std::function<void()> call_hook;
  py::object flat_gradient;
  if (!hook.is_none()) {
    auto& g = trainer.gradients();
    flat_gradient = flat_view(extent(g.dparams), self);
    call_hook = [&] {
      wait_for_the_end_if_finalizing();
      py::gil_scoped_acquire acquire;
      hook(flat_gradient);
    };
  }
  std::function<void(index, double)> report;
  if (!progress.is_none())
    report = [&](index steps, double cost) {
      wait_for_the_end_if_finalizing();
      py::gil_scoped_acquire acquire;
      progress(steps, cost);
    };
  EpochResult result;
  {
    InterruptCatcher catcher(catch_interrupt);
    ReleasedGIL release;
    // fit checked Y's values once (check_data), and the trainer checks X's the first time it
    // is given; each epoch re-checks only what keeps memory safe, the labels' range.
    require_labels_in_range(Y_view);
    result = trainer.epoch(X_view, Y_view, settings, epoch_number, call_hook, catcher.stop(), report);
    result.interrupted |= catcher.finish();
  }
  return py::dict(py::arg("cost") = result.cost, py::arg("l2_term") = result.l2_term, py::arg("steps") = result.steps,
                  py::arg("interrupted") = result.interrupted, py::arg("diverged") = result.diverged);
}

template <class T>
void bind_trainer(py::module_& m, const std::string& suffix) {
  using Net = PyNetwork<T>;
  using State = OptimizerState<T>;
  using Train = Trainer<T>;
  using Grads = Gradients<T>;
  py::class_<Train>(m, ("Trainer" + suffix).c_str())
      .def(py::init(
               [](Net& net, const std::string& method, const py::dict& hyper, State& state, index batch_size, index m) {
                 if (batch_size < 1 || m < 1) throw py::value_error("batch_size and m must be >= 1");
                 const OptimizerSettings settings = optimizer_settings<T>(method, hyper);
                 ReleasedGIL release;  // the constructor takes the parameters' lock, and allocates the buffers
                 return std::make_unique<Train>(net, settings, state, batch_size, m);
               }),
           py::keep_alive<1, 2>(), py::keep_alive<1, 5>())
      .def("epoch", &run_epoch<T>)
      .def("threads", &Train::threads_for, py::arg("batch_size"))
      .def(
          "gradients", [](Train& trainer) -> Grads& { return trainer.gradients(); },
          py::return_value_policy::reference_internal)
      .def("memory", [](const Train& trainer) {
        const auto memory = trainer.memory();
        return py::dict(py::arg("gradients") = memory.gradients, py::arg("optimizer_state") = memory.optimizer_state,
                        py::arg("spare_parameters") = memory.spare_parameters, py::arg("workspace") = memory.workspace);
      });
}

// _gemm32 and _gemm64, for the tests of the kernels behind gemm: C = alpha op(A) op(B) + beta C in
// place. A and B as matrix_view takes them (C-ordered ones as transposed views); C F-ordered,
// writable, of T; a Python exception where the shapes do not chain.
template <class T>
void bind_gemm(py::module_& m, const std::string& suffix) {
  m.def(("_gemm" + suffix).c_str(),
        [](bool trans_A, const py::array& A, bool trans_B, const py::array& B, T alpha, T beta, py::array C) {
          const ConstMatrix<T> a = matrix_view<T>(A, "A"), b = matrix_view<T>(B, "B");
          require_dtype<T>(C, "C");
          if (C.ndim() != 2 || !(C.flags() & py::array::f_style) || !C.writeable() || !aligned_to<T>(C))
            throw py::value_error("C must be a writable, aligned 2-D F-ordered array, got shape " + shape_of(C));
          const index rows = trans_A ? a.cols : a.rows, k = trans_A ? a.rows : a.cols;
          if ((trans_B ? b.cols : b.rows) != k || C.shape(0) != rows || C.shape(1) != (trans_B ? b.rows : b.cols))
            throw py::value_error("op(A) op(B) does not fit C: shapes " + shape_of(A) + ", " + shape_of(B) + ", " +
                                  shape_of(C));
          const Matrix<T> c{static_cast<T*>(C.mutable_data()), rows, index(C.shape(1)), std::max<index>(rows, 1)};
          ReleasedGIL release;
          gemm<T>(trans_A, a, trans_B, b, alpha, beta, c);
        },
        py::arg("trans_A"), py::arg("A"), py::arg("trans_B"), py::arg("B"), py::arg("alpha"), py::arg("beta"),
        py::arg("C"), "C = alpha op(A) op(B) + beta C through mlpcore's gemm, in place (for the tests).");
}

// The classes of dtype T, named with `suffix` ("32" or "64"), and its gemm for the tests.
template <class T>
void bind_dtype(py::module_& m, const std::string& suffix) {
  bind_gemm<T>(m, suffix);
  bind_cache<T>(m, suffix);
  bind_gradients<T>(m, suffix);
  bind_network<T>(m, suffix);
  bind_optimizer_state<T>(m, suffix);
  bind_trainer<T>(m, suffix);
}

}  // namespace
}  // namespace mlpcore

PYBIND11_MODULE(_core, m) {
  m.doc() = "mlpcore's C++ core: dense layers on column-major buffers, BLAS for the products, OpenMP for the rest";
  mlpcore::bind_dtype<float>(m, "32");
  mlpcore::bind_dtype<double>(m, "64");
  // A child made by fork has none of its parent's other threads, nor their calls in flight.
  pthread_atfork(nullptr, nullptr, [] { mlpcore::calls_in_flight = 0; });
  m.def(
      "set_num_threads",
      [](long long k) {
        if (k < 1 || k > mlpcore::max_threads())
          throw py::value_error("the thread count must lie in 1.." + std::to_string(mlpcore::max_threads()) +
                                " (the processors available), got " + std::to_string(k));
        mlpcore::set_num_threads(k);
      },
      py::arg("k"), "set_num_threads(k) of mlpcore, past its type check: k in 1..the processors available.");
  m.def(
      "_last_team_size", [] { return mlpcore::last_team_size.load(); },
      "The size of the team of threads that the last training epoch or call of forward or backward ran on.");
  m.def(
      "_threads_started", [] { return mlpcore::threads_started.load(); },
      "Whether this process has started a parallel region of more than one thread (see parallel.hpp).");
  m.def(
      "_inputs_forwards", [] { return mlpcore::inputs_forwards.load(); },
      "The layers that a fit's team of two has computed by W[l]'s columns in this process (see inputs_forward).");
  m.def(
      "_tile_products", [] { return mlpcore::tile_products.load(); },
      "The products of several examples that mlpcore's own AVX-512 tiles have computed in this process (see "
      "blas.cpp).");
  m.def(
      "_panel_products", [] { return mlpcore::panel_products.load(); },
      "The products of several examples that mlpcore's own AVX-512 tiles have computed through copies of op(A)'s "
      "panels in this process (see panel_gemm in blas.cpp).");
  m.def(
      "_transposes_for_tiles",
      [](bool float64, mlpcore::index rows, mlpcore::index cols, mlpcore::index k) {
        return float64 ? mlpcore::tiles_take_transposed<double>(rows, cols, k)
                       : mlpcore::tiles_take_transposed<float>(rows, cols, k);
      },
      py::arg("float64"), py::arg("rows"), py::arg("cols"), py::arg("k"),
      "Whether backward's dA[l-1] = W[l]^T dZ[l] of (rows, cols) a thread, W[l] of (k, rows), goes to the "
      "tiles through W[l]^T transposed (see gemm in blas.hpp).");
  m.def(
      "_tile_parts",
      [](bool float64, mlpcore::index rows, mlpcore::index cols, mlpcore::index k, mlpcore::index bk) {
        return float64 ? mlpcore::tile_parts_taken<double>(rows, cols, k, bk)
                       : mlpcore::tile_parts_taken<float>(rows, cols, k, bk);
      },
      py::arg("float64"), py::arg("rows"), py::arg("cols"), py::arg("k"), py::arg("bk"),
      "The parts of k in which a thread's product of (rows, cols), op(A) of (rows, k) stored column-major and "
      "op(B)'s rows bk apart, goes to the tiles; 0 where it does not (through copies of op(A)'s panels, or on "
      "BLAS: see gemm in blas.hpp).");
  m.def(
      "_steps_in_products", [] { return mlpcore::steps_in_products.load(); },
      "The steps of fit whose plain SGD went into the gradient's products in this process (see Trainer::descended).");
  m.def(
      "_avx512_kernels", [] { return mlpcore::avx512_clones(); },
      "Whether this build runs mlpcore's AVX-512 kernels on this CPU.");
  m.def(
      "_calls_in_flight", [] { return mlpcore::calls_in_flight.load(); },
      "The calls of this process that have released the GIL and not yet taken it back.");
  m.def(
      "_pair_halves", [] { return mlpcore::PairThread::instance().halves_taken.load(); },
      "The halves of one example's products that the pair thread has computed (see pair.hpp).");
  m.def("_time_sgemm", [](int n, int repeats) {
    // Seconds per float32 C = A B of (n, n) matrices through mlpcore's gemm: the roofline of bench/.
    if (n < 1 || n > 8192 || repeats < 1) throw py::value_error("_time_sgemm takes 1 <= n <= 8192 and repeats >= 1");
    std::vector<float> A(std::size_t(n) * n, 1.0f), B(A), C(A);
    const mlpcore::ConstMatrix<float> A_view(A.data(), n, n, n), B_view(B.data(), n, n, n);
    const mlpcore::Matrix<float> C_view{C.data(), n, n, n};
    mlpcore::ReleasedGIL release;
    mlpcore::gemm<float>(false, A_view, false, B_view, 1.0f, 0.0f, C_view);
    const auto start = std::chrono::steady_clock::now();
    for (int r = 0; r < repeats; ++r) mlpcore::gemm<float>(false, A_view, false, B_view, 1.0f, 0.0f, C_view);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / repeats;
  });
  m.def(
      "_stop_for_exit",
      [] {
        // At the interpreter's exit (atexit): a fit in a daemon thread stops after its step, other
        // threads' new calls are refused, and the calls in flight end before the interpreter shuts
        // down (a hook would take the GIL then, and OpenBLAS frees its buffers at exit under a
        // product). Waits at most stop_wait.
        constexpr auto stop_wait = std::chrono::seconds(5);
        mlpcore::exiting_thread = std::this_thread::get_id();
        mlpcore::ReleasedGIL release;
        const auto give_up = std::chrono::steady_clock::now() + stop_wait;
        while (mlpcore::calls_in_flight.load() > 1 /* this call */ && std::chrono::steady_clock::now() < give_up)
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
      },
      "Stops other threads' fits after their step, refuses their new calls, and waits (5 s at most) for\n"
      "the calls in flight; run at exit.");
  m.def("get_num_threads", &mlpcore::get_num_threads,
        "get_num_threads() -> int: mlpcore's thread count: at first OpenMP's count (OMP_NUM_THREADS if\n"
        "set) within the processors available, then what set_num_threads set.");
}
