// The network: architecture, one flat parameter buffer with W[l], b[l] as views, and the
// per-batch buffers (Cache: Z, A; Gradients: dW, db, dZ, dA) that forward and backward fill.
#pragma once

#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "costs.hpp"
#include "layer.hpp"

namespace mlpcore {

// Where W[l] and b[l] lie in one flat buffer: W[1], b[1], W[2], b[2], ..., W[L], b[L];
// W[l] column-major (n[l], n[l-1]), b[l] (n[l], 1). Gradients use the same layout.
struct ParameterLayout {
  std::vector<index> n;                   // n[0..L]
  std::vector<index> W_offset, b_offset;  // by layer 1..L; entry 0 unused
  index size = 0;

  explicit ParameterLayout(std::vector<index> sizes) : n(std::move(sizes)), W_offset(n.size()), b_offset(n.size()) {
    for (index l = 1; l < index(n.size()); ++l) {
      W_offset[l] = size;
      b_offset[l] = size += n[l] * n[l - 1];
      size += n[l];
    }
  }
  index L() const { return index(n.size()) - 1; }
  template <class T>
  Matrix<T> W(T* base, index l) const { return {base + W_offset[l], n[l], n[l - 1], n[l]}; }
  template <class T>
  T* b(T* base, index l) const { return base + b_offset[l]; }
};

// Layers 1..L of (n[l], m) matrices packed in one flat buffer.
template <class T>
class LayerMatrices {
 public:
  LayerMatrices(const std::vector<index>& n, index m) : n_(n), m_(m), offset_(n.size() + 1) {
    for (index l = 1; l < index(n.size()); ++l) offset_[l + 1] = offset_[l] + n[l] * m;
    values_.resize(offset_.back());
  }
  Matrix<T> operator[](index l) { return {values_.data() + offset_[l], n_[l], m_, n_[l]}; }
  ConstMatrix<T> operator[](index l) const { return {values_.data() + offset_[l], n_[l], m_, n_[l]}; }
  index L() const { return index(n_.size()) - 1; }

 private:
  std::vector<index> n_;
  index m_;
  std::vector<index> offset_;  // offset_[l]: start of layer l; offset_[0] and offset_[1] are 0
  std::vector<T> values_;
};

template <class T>
class Network;

// What forward keeps for backward: Z[l], A[l] for l = 1..L of a batch of m examples; A[0] is X.
template <class T>
struct Cache {
  Cache(const Network<T>& net, index m) : network_id(net.id), m(m), Z(net.layout.n, m), A(net.layout.n, m) {}

  ConstMatrix<T> A_in(index l) const { return l == 0 ? X : A[l]; }  // A[l], X for l = 0

  std::uint64_t network_id;
  index m;
  ConstMatrix<T> X{nullptr, 0, 0, 1};  // set by forward; memory owned by the caller
  LayerMatrices<T> Z, A;
};

// What backward computes: dW[l], db[l] in a flat buffer laid out like the parameters, and
// dZ[l], dA[l] for l = 1..L (dA[L] only for mse); dA[0] only when asked for.
template <class T>
struct Gradients {
  Gradients(const Network<T>& net, index m)
      : network_id(net.id), m(m), layout(net.layout), dparams(net.layout.size), dZ(net.layout.n, m),
        dA(net.layout.n, m) {}

  Matrix<T> dW(index l) { return layout.W(dparams.data(), l); }
  T* db(index l) { return layout.b(dparams.data(), l); }
  Matrix<T> dA0() { return {dA0_values.data(), layout.n[0], m, layout.n[0]}; }

  std::uint64_t network_id;
  index m;
  ParameterLayout layout;
  std::vector<T> dparams;
  LayerMatrices<T> dZ, dA;
  std::vector<T> dA0_values;  // sized by the first backward that asks for dA[0]
};

template <class T>
class Network {
 public:
  // n: n[0..L]; g: the activations of layers 1..L.
  Network(std::vector<index> n, std::vector<ActivationSpec> g, Cost cost)
      : layout(check_sizes(std::move(n))), g(check_activations(layout, std::move(g), cost)), cost(cost),
        params(layout.size), id(++last_id) {}
  Network(const Network&) = delete;
  Network& operator=(const Network&) = delete;

  index L() const { return layout.L(); }
  Matrix<T> W(index l) { return layout.W(params.data(), l); }
  ConstMatrix<T> W(index l) const { return layout.W(const_cast<T*>(params.data()), l); }
  const T* b(index l) const { return layout.b(params.data(), l); }

  // For l = 1..L: Z[l] = W[l] A[l-1] + b[l], A[l] = g[l](Z[l]), with A[0] = X.
  //   X: (n[0], m); cache: made for this network and m
  void forward(ConstMatrix<T> X, Cache<T>& cache) const {
    require(X.rows == layout.n[0], "X must have n[0] = " + std::to_string(layout.n[0]) + " rows, got " +
                                       std::to_string(X.rows));
    require_batch(cache.network_id, cache.m, X.cols, "cache's buffers");
    cache.X = X;
    for (index l = 1; l <= L(); ++l) dense_forward<T>(W(l), b(l), cache.A_in(l - 1), g[l], cache.Z[l], cache.A[l]);
  }

  // J of the output A[L] against Y.   A_L: (n[L], m), Y: (n[L], m)
  double J(ConstMatrix<T> A_L, Targets<T> Y) const {
    require(A_L.rows == layout.n[L()], "A[L] must have n[L] = " + std::to_string(layout.n[L()]) + " rows, got " +
                                           std::to_string(A_L.rows));
    require_targets(Y, A_L.cols);
    return mlpcore::cost(cost, A_L, Y);
  }

  // dZ[L] = A[L] - Y (sigmoid + bce, softmax + cce) or dA[L] = A[L] - Y, dZ[L] = dA[L] * g'(Z[L]) (mse);
  // then for l = L..1: dW[l], db[l], dA[l-1] = W[l]^T dZ[l] (dA[0] only if asked), dZ[l-1] = dA[l-1] * g'(Z[l-1]).
  //   Y: (n[L], m) with the cache's m
  void backward(const Cache<T>& cache, Targets<T> Y, Gradients<T>& grads, bool compute_dA0) const {
    require_batch(cache.network_id, cache.m, cache.m, "cache's buffers");
    require(cache.X.data != nullptr, "the cache holds no forward pass");
    require_batch(grads.network_id, grads.m, cache.m, "gradients' buffers");
    require_targets(Y, cache.m);
    if (compute_dA0) grads.dA0_values.resize(layout.n[0] * cache.m);
    if (cost == Cost::mse) {
      output_error<T>(cache.A_in(L()), Y, grads.dA[L()]);
      activation_backward<T>(g[L()], cache.Z[L()], cache.A[L()], grads.dA[L()], grads.dZ[L()]);
    } else {
      output_error<T>(cache.A_in(L()), Y, grads.dZ[L()]);
    }
    for (index l = L(); l >= 1; --l) {
      Matrix<T> dA_prev = l > 1 ? grads.dA[l - 1] : grads.dA0();
      dense_backward<T>(W(l), cache.A_in(l - 1), grads.dZ[l], grads.dW(l), grads.db(l),
                     l > 1 || compute_dA0 ? &dA_prev : nullptr);
      if (l > 1) activation_backward<T>(g[l - 1], cache.Z[l - 1], cache.A[l - 1], grads.dA[l - 1], grads.dZ[l - 1]);
    }
  }

  // W[l] -= alpha dW[l], b[l] -= alpha db[l] for every l: one pass over the flat buffer.
  void update(const Gradients<T>& grads, T learning_rate) {
    require(grads.network_id == id, "the gradients belong to another network");
    subtract_scaled(params.data(), grads.dparams.data(), learning_rate, layout.size);
  }

  const ParameterLayout layout;
  const std::vector<ActivationSpec> g;  // g[1..L]; g[0] unused
  const Cost cost;
  std::vector<T> params;
  const std::uint64_t id;  // tells this network's caches and gradients from others'

 private:
  static inline std::atomic<std::uint64_t> last_id{0};

  static void require(bool condition, const std::string& message) {
    if (!condition) throw std::invalid_argument(message);
  }

  void require_batch(std::uint64_t owner, index m_have, index m_want, const char* what) const {
    require(owner == id, std::string("the ") + what + " belong to another network");
    require(m_have == m_want, std::string("the ") + what + " hold m = " + std::to_string(m_have) +
                                  " examples, the batch has m = " + std::to_string(m_want));
  }

  void require_targets(const Targets<T>& Y, index m) const {
    require(Y.Y.rows == layout.n[L()] && Y.Y.cols == m,
            "Y must be (n[L], m) = (" + std::to_string(layout.n[L()]) + ", " + std::to_string(m) + "), got (" +
                std::to_string(Y.Y.rows) + ", " + std::to_string(Y.Y.cols) + ")");
  }

  static std::vector<index> check_sizes(std::vector<index> n) {
    require(n.size() >= 2, "a network needs n[0] and at least one layer");
    for (index units : n) require(units >= 1, "every layer needs at least one unit");
    return n;
  }

  // softmax only as the output, only with cce and n[L] >= 2; cce only after softmax;
  // bce only after sigmoid; mse after anything but softmax.
  static std::vector<ActivationSpec> check_activations(const ParameterLayout& layout,
                                                       std::vector<ActivationSpec> g, Cost cost) {
    const index L = layout.L();
    require(index(g.size()) == L, "one activation per layer is needed: " + std::to_string(L) + ", got " +
                                      std::to_string(g.size()));
    for (index l = 1; l < L; ++l) require(g[l - 1].kind != Activation::softmax, "softmax is for the output layer only");
    const Activation output = g.back().kind;
    require(cost != Cost::cce || (output == Activation::softmax && layout.n[L] >= 2),
            "cce needs a softmax output layer with at least 2 units");
    require(cost != Cost::bce || output == Activation::sigmoid, "bce needs a sigmoid output layer");
    require(cost != Cost::mse || output != Activation::softmax, "softmax pairs with cce only");
    g.insert(g.begin(), ActivationSpec{Activation::identity, 0.0});
    return g;
  }
};

}  // namespace mlpcore
