// The network: architecture, one flat parameter buffer with W[l], b[l], gamma[l], beta[l] as
// views, batch-norm running statistics, and the per-batch buffers that forward and backward
// fill (Cache: Z, A, ...; Gradients: dW, db, dZ, dA, ...).
#pragma once

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdint>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "batch_norm.hpp"
#include "blas.hpp"
#include "costs.hpp"
#include "kernels.hpp"
#include "optimizers.hpp"
#include "require.hpp"
#include "team.hpp"

namespace mlpcore {

// Whether the contiguous values (a vector) and the memory from first to last (exclusive) overlap.
template <class Values>
bool overlaps(const Values& values, const void* first, const void* last) {
  const auto address = [](const void* p) { return reinterpret_cast<std::uintptr_t>(p); };
  return !values.empty() && address(values.data()) < address(last) &&
         address(first) < address(values.data() + values.size());
}

// What a layer l = 1..L computes besides Z = W A + b: its activation, whether Z is batch
// normalised before it, and the drop probability of inverted dropout on its output A.
struct LayerSpec {
  ActivationSpec g;
  bool batch_norm = false;
  double dropout = 0;
};

// Where each layer's parameters lie in one flat buffer: W[1], b[1] (, gamma[1], beta[1]), W[2], ...
// W[l] column-major (n[l], n[l-1]); b[l], gamma[l], beta[l] (n[l], 1); gamma and beta only in
// batch-norm layers. Gradients and optimizer state use the same layout.
struct ParameterLayout {
  std::vector<index> n;                                              // n[0..L]
  std::vector<index> W_offset, b_offset, gamma_offset, beta_offset;  // by layer 1..L; entry 0 unused
  index size = 0;

  ParameterLayout(std::vector<index> sizes, const std::vector<bool>& batch_norm)
      : n(std::move(sizes)), W_offset(n.size()), b_offset(n.size()), gamma_offset(n.size()), beta_offset(n.size()) {
    for (index l = 1; l < index(n.size()); ++l) {
      W_offset[l] = size;
      size += n[l] * n[l - 1];
      b_offset[l] = size;
      size += n[l];
      if (!batch_norm[l]) continue;
      gamma_offset[l] = size;
      size += n[l];
      beta_offset[l] = size;
      size += n[l];
    }
  }
  index L() const { return index(n.size()) - 1; }
  template <class T>
  Matrix<T> W(T* base, index l) const {
    return {base + W_offset[l], n[l], n[l - 1], n[l]};
  }
  template <class T>
  ConstMatrix<T> W(const T* base, index l) const {
    return {base + W_offset[l], n[l], n[l - 1], n[l]};
  }
  template <class T>
  T* b(T* base, index l) const {
    return base + b_offset[l];
  }
  template <class T>
  T* gamma(T* base, index l) const {
    return base + gamma_offset[l];
  }
  template <class T>
  T* beta(T* base, index l) const {
    return base + beta_offset[l];
  }
};

// One (rows[l], m) matrix for each layer l with rows[l] > 0, packed in one flat buffer made
// for up to `capacity` columns; set_cols(m) uses the first m columns without reallocating.
template <class T>
class LayerMatrices {
 public:
  LayerMatrices(std::vector<index> rows, index capacity)
      : rows_(std::move(rows)), cols_(capacity), offset_(rows_.size() + 1) {
    for (index l = 0; l < index(rows_.size()); ++l) offset_[l + 1] = offset_[l] + rows_[l] * capacity;
    values_.resize(offset_.back());
  }
  Matrix<T> operator[](index l) { return {values_.data() + offset_[l], rows_[l], cols_, rows_[l]}; }
  ConstMatrix<T> operator[](index l) const { return {values_.data() + offset_[l], rows_[l], cols_, rows_[l]}; }
  bool has(index l) const { return l >= 0 && l < index(rows_.size()) && rows_[l] > 0; }
  void set_cols(index m) { cols_ = m; }
  index bytes() const { return index(values_.size() * sizeof(T)); }
  // Whether these matrices' memory and the memory from first to last (exclusive) overlap.
  bool overlaps(const void* first, const void* last) const { return mlpcore::overlaps(values_, first, last); }

 private:
  std::vector<index> rows_;
  index cols_;
  std::vector<index> offset_;
  Buffer<T> values_;
};

// rows[l] = n[l] for the layers 1..L that `chosen` picks, 0 for the others and for layer 0.
template <class Choose>
std::vector<index> rows_where(const std::vector<index>& n, Choose chosen) {
  std::vector<index> rows(n.size(), 0);
  for (index l = 1; l < index(n.size()); ++l) rows[l] = chosen(l) ? n[l] : 0;
  return rows;
}

template <class T>
class Network;

// The layers that Network::inputs_forward has computed in this process, which the tests read to
// see which path a fit took.
inline std::atomic<std::int64_t> inputs_forwards{0};

// What forward keeps for backward, for a batch of up to `capacity` examples: Z[l], A[l] for
// l = 1..L (A[0] is X); Z_norm[l], Z_tilde[l] and the batch's mu, var, inv_std (n[l], 1) of
// batch-norm layers; the 0/1 dropout masks D[l] of a training forward. With `partial_sums`
// (the cache of a fit on two threads), P[l] (n[l], m) of the layers that the team shares out by
// their inputs on batches where their product is tall (see Network::rows_split_by_inputs and
// inputs_forward): the second thread's part of Z[l].
template <class T>
struct Cache {
  Cache(const Network<T>& net, index capacity, bool partial_sums = false)
      : network_id(net.id),
        m(capacity),
        Z(net.rows_all(), capacity),
        A(net.rows_all(), capacity),
        Z_norm(net.rows_batch_norm(), capacity),
        Z_tilde(net.rows_batch_norm(), capacity),
        D(net.rows_dropout(), capacity),
        P(partial_sums ? net.rows_split_by_inputs(capacity) : std::vector<index>(net.layout.n.size(), 0), capacity),
        mu(net.rows_batch_norm(), 1),
        var(net.rows_batch_norm(), 1),
        inv_std(net.rows_batch_norm(), 1),
        capacity(capacity) {}

  ConstMatrix<T> A_in(index l) const { return l == 0 ? X : A[l]; }  // A[l], X for l = 0
  // The activation's input: Z_tilde[l] in a batch-norm layer, Z[l] elsewhere.
  ConstMatrix<T> U(index l) const { return Z_tilde.has(l) ? Z_tilde[l] : Z[l]; }

  void set_batch(index batch_m) {
    m = batch_m;
    for (LayerMatrices<T>* matrices : {&Z, &A, &Z_norm, &Z_tilde, &D, &P}) matrices->set_cols(batch_m);
  }

  index bytes() const {
    index total = 0;
    for (const LayerMatrices<T>* matrices : {&Z, &A, &Z_norm, &Z_tilde, &D, &P, &mu, &var, &inv_std})
      total += matrices->bytes();
    return total;
  }

  // Whether the matrix M lies partly in memory this cache writes.
  bool overlaps(ConstMatrix<T> M) const {
    for (const LayerMatrices<T>* matrices : {&Z, &A, &Z_norm, &Z_tilde, &D, &P, &mu, &var, &inv_std})
      if (matrices->overlaps(M.data, M.end())) return true;
    return false;
  }

  // After a forward that failed part-way: backward refuses the cache.
  void forget_forward() {
    X = {nullptr, 0, 0, 1};
    training = false;
  }

  std::uint64_t network_id;
  index m;
  ConstMatrix<T> X{nullptr, 0, 0, 1};  // set by forward; memory owned by the caller
  bool training = false;               // whether X went through a training-mode forward
  LayerMatrices<T> Z, A, Z_norm, Z_tilde, D, P, mu, var, inv_std;
  index capacity;
};

// What backward computes: dW[l], db[l] (dgamma[l], dbeta[l]) in a flat buffer laid out like the
// parameters; dZ[l], dA[l] for l = 1..L (dA[L] only for mse), dZ_tilde[l] of batch-norm layers;
// dA[0] only when asked for.
template <class T>
struct Gradients {
  Gradients(const Network<T>& net, index capacity)
      : network_id(net.id),
        m(capacity),
        layout(net.layout),
        dparams(net.layout.size),
        dZ(net.rows_all(), capacity),
        dA(net.rows_all(), capacity),
        dZ_tilde(net.rows_batch_norm(), capacity),
        capacity(capacity) {}

  Matrix<T> dW(index l) { return layout.W(dparams.data(), l); }
  T* db(index l) { return layout.b(dparams.data(), l); }
  T* dgamma(index l) { return layout.gamma(dparams.data(), l); }
  T* dbeta(index l) { return layout.beta(dparams.data(), l); }
  Matrix<T> dA0() { return {dA0_values.data(), layout.n[0], m, layout.n[0]}; }
  Matrix<T> dU(index l) { return dZ_tilde.has(l) ? dZ_tilde[l] : dZ[l]; }  // m dJ/dU[l]

  // A backward's start: the gradients take its batch, and hold a backward from then on.
  void set_batch(index batch_m) {
    m = batch_m;
    filled = true;
    for (LayerMatrices<T>* matrices : {&dZ, &dA, &dZ_tilde}) matrices->set_cols(batch_m);
  }

  index delta_bytes() const {
    return dZ.bytes() + dA.bytes() + dZ_tilde.bytes() + index(dA0_values.size() * sizeof(T));
  }
  index dparams_bytes() const { return index(dparams.size() * sizeof(T)); }

  // Whether the memory from first to last (exclusive) lies partly in memory a backward into these
  // gradients writes.
  bool overlaps(const void* first, const void* last) const {
    for (const LayerMatrices<T>* matrices : {&dZ, &dA, &dZ_tilde})
      if (matrices->overlaps(first, last)) return true;
    return mlpcore::overlaps(dparams, first, last) || mlpcore::overlaps(dA0_values, first, last);
  }
  bool overlaps(ConstMatrix<T> M) const { return overlaps(M.data, M.end()); }

  std::uint64_t network_id;
  index m;
  ParameterLayout layout;
  Buffer<T> dparams;
  LayerMatrices<T> dZ, dA, dZ_tilde;
  std::vector<T> dA0_values;  // (n[0], capacity), sized by the first backward that asks for dA[0]
  index capacity;
  bool filled = false;  // whether a backward has computed them (see set_batch)
  int users = 0;  // the Python calls using these gradients: -1 a writer, n > 0 n readers (see Claim in module.cpp)
};

template <class T>
class Network {
 public:
  // n: n[0..L]; layers: the specs of layers 1..L.
  Network(std::vector<index> n, std::vector<LayerSpec> layers, Cost cost, double bn_eps, double bn_momentum)
      : layout(check_sizes(std::move(n), layers.size()), batch_norm_flags(layers)),
        layers(check_layers(layout, std::move(layers), cost)),
        cost(cost),
        bn_eps(T(bn_eps)),
        bn_momentum(T(bn_momentum)),
        params(layout.size),
        running_mean(rows_batch_norm(), 1),
        running_var(rows_batch_norm(), 1),
        id(++last_id) {
    for (index l = 1; l <= L(); ++l) {
      if (!this->layers[l].batch_norm) continue;
      std::fill_n(gamma(l), layout.n[l], T(1));
      std::fill_n(running_var[l].data, layout.n[l], T(1));
    }
  }
  Network(const Network&) = delete;
  Network& operator=(const Network&) = delete;

  index L() const { return layout.L(); }
  Matrix<T> W(index l) { return layout.W(params.data(), l); }
  ConstMatrix<T> W(index l) const { return layout.W(params.data(), l); }
  T* b(index l) { return layout.b(params.data(), l); }
  const T* b(index l) const { return layout.b(params.data(), l); }
  T* gamma(index l) { return layout.gamma(params.data(), l); }
  const T* gamma(index l) const { return layout.gamma(params.data(), l); }
  T* beta(index l) { return layout.beta(params.data(), l); }
  const T* beta(index l) const { return layout.beta(params.data(), l); }

  std::vector<index> rows_all() const {
    return rows_where(layout.n, [](index) { return true; });
  }
  std::vector<index> rows_batch_norm() const {
    return rows_where(layout.n, [&](index l) { return layers[l].batch_norm; });
  }
  std::vector<index> rows_dropout() const {
    return rows_where(layout.n, [&](index l) { return layers[l].dropout > 0; });
  }
  // The plain layers (see plain) of two inputs and more whose product is tall (see tall) on a
  // team of two for some batch of up to `capacity` examples: for min(capacity, n[l] / 2), the
  // largest batch with twice as many rows as columns, the one of the most multiply-adds.
  std::vector<index> rows_split_by_inputs(index capacity) const {
    const Team two{0, 2};
    return rows_where(layout.n, [&](index l) {
      return plain(l) && layout.n[l - 1] >= 2 &&
             tall(layout.n[l], layout.n[l - 1], std::min(capacity, layout.n[l] / 2), two);
    });
  }

  // Whether layer l is Z = W A + b and A = g(Z) alone, element by element: no batch norm, dropout
  // or softmax, which need whole columns or rows of Z.
  bool plain(index l) const {
    const LayerSpec& layer = layers[l];
    return !layer.batch_norm && layer.dropout == 0 && layer.g.kind != Activation::softmax;
  }

  // For l = 1..L, with A[0] = X:
  //   Z[l] = W[l] A[l-1] + b[l]
  //   batch-norm layers: Z_norm[l] = (Z[l] - mu) / sqrt(var + eps), Z_tilde[l] = gamma[l] Z_norm[l] + beta[l],
  //     with the batch's mu, var in training, the running statistics in inference
  //   A[l] = g[l](Z_tilde[l] or Z[l]); in training, dropout: A[l] = A[l] D[l] / (1 - p[l])
  //   X: (n[0], m), m <= the cache's capacity; training with batch norm needs m >= 2.
  // A training forward updates the running statistics (fit's steps do it apart, in
  // Trainer::finish_step, only for a step that succeeds). One whose batch statistics are not
  // finite leaves the cache holding no forward (X, which it must not outlive, forgotten) and the
  // count of training forwards (the key of the next one's dropout masks) as it was (unless another
  // training forward of the network ran meanwhile: the next may then draw that one's key).
  void forward(ConstMatrix<T> X, Cache<T>& cache, bool training) {
    forward_reading(X, cache, training);
    if (training) {
      if (!batch_statistics_finite(cache)) {
        cache.forget_forward();
        training_forwards.fetch_sub(1, std::memory_order_relaxed);  // the count of the forwards kept
      }
      require(cache.training,
              "a batch-norm layer's batch mean or variance is NaN or inf (X too large for the network's dtype?); "
              "the running statistics are left as they were, and the cache holds no forward");
      const std::unique_lock writing(params_lock);
      update_running_statistics(cache);
    }
  }

  // The multiply-adds of a forward's products on m examples: m times the weights.
  double work(index m) const {
    double weights = 0;
    for (index l = 1; l <= L(); ++l) weights += double(layout.n[l]) * double(layout.n[l - 1]);
    return double(m) * weights;
  }

  // Columns a thread needs for a share of a call's batch: with fewer, each thread would read all
  // of W[l] for a few examples, and the products shared out by rows (see gemm) read it once.
  static constexpr index team_min_columns = 16;

  // The threads that take on a call of forward or backward on m examples: for
  // team_work_threshold multiply-adds and more, set_num_threads's count or as many as have
  // team_min_columns each, else the calling thread alone (whose large products gemm shares out);
  // one thread inside a team. A team for the whole call wakes the threads once and shares every
  // product and pass out.
  int call_threads(index m) const {
    if (work(m) < team_work_threshold || omp_in_parallel()) return 1;
    return int(std::clamp<index>(m / team_min_columns, 1, team_size.load()));
  }

  // What a forward does before its layers: the cache takes X's batch; returns the key of a
  // training forward's dropout masks (0 in inference).
  std::uint64_t start_forward(ConstMatrix<T> X, Cache<T>& cache, bool training) {
    cache.set_batch(X.cols);
    cache.X = X;
    cache.training = training;
    return training ? mix64(dropout_seed ^ mix64(training_forwards.fetch_add(1, std::memory_order_relaxed))) : 0;
  }

  // The layers of forward, each thread of the team on its share of the columns (and of the
  // rows of batch-norm layers; of the rows or inputs of a tall product: see layer_forward), after
  // start_forward.
  void forward_layers(Cache<T>& cache, std::uint64_t forward_key, const Team& team) const {
    for (index l = 1; l <= L(); ++l) layer_forward(l, cache, forward_key, team);
  }

  // Whether the batch mu and var of every batch-norm layer in the cache of a training forward are
  // finite: a variance that overflows (X of 1e20 in float32) would make the running variance inf.
  bool batch_statistics_finite(const Cache<T>& cache) const {
    for (index l = 1; l <= L(); ++l)
      if (layers[l].batch_norm &&
          !(all_finite(ConstMatrix<T>(cache.mu[l])) && all_finite(ConstMatrix<T>(cache.var[l]))))
        return false;
    return true;
  }

  // running = (1 - momentum) running + momentum (the cache's batch mu, unbiased var), for every batch-norm layer
  void update_running_statistics(const Cache<T>& cache) {
    for (index l = 1; l <= L(); ++l)
      if (layers[l].batch_norm)
        mlpcore::update_running_statistics(cache.mu[l].data, cache.var[l].data, layout.n[l], cache.m, bn_momentum,
                                           running_mean[l].data, running_var[l].data);
  }

  // J of the output A[L] against Y.   A_L: (n[L], m), Y: (n[L], m)
  double J(ConstMatrix<T> A_L, Targets<T> Y) const {
    require(A_L.rows == layout.n[L()], [&] {
      return "A[L] must have n[L] = " + std::to_string(layout.n[L()]) + " rows, got " + std::to_string(A_L.rows);
    });
    require_targets(Y, A_L.cols);
    return mlpcore::cost(cost, A_L, Y);
  }

  // sum over l of ||W[l]||^2, for the L2 term lambda/(2m) sum ||W[l]||^2 of J
  double squared_weights() const {
    double sum = 0;
    for (index l = 1; l <= L(); ++l) {
      const ConstMatrix<T> W_l = W(l);
      for (index k = 0; k < W_l.rows * W_l.cols; ++k) sum += double(W_l.data[k]) * W_l.data[k];
    }
    return sum;
  }

  // dZ[L] = A[L] - Y (sigmoid + bce, softmax + cce) or dA[L] = A[L] - Y (mse), then layer by
  // layer down to 1: dW[l], db[l] (dgamma[l], dbeta[l]), dA[l-1] (dA[0] only if asked).
  //   Y: (n[L], m) with the cache's m; the cache from a training forward.
  void backward(const Cache<T>& cache, Targets<T> Y, Gradients<T>& grads, bool compute_dA0) const {
    const std::shared_lock reading(params_lock);
    require_own(cache.network_id, "cache");
    require_own(grads.network_id, "gradients");
    require(cache.X.data != nullptr && cache.training,
            "backward needs a cache from a training-mode forward: net.forward(X) (training=True, the default; not "
            "training=False, nor a cache that no forward has filled)");
    require(!grads.overlaps(cache.X),
            "the cache's X shares memory with the gradients the backward writes into (a dA[0] of theirs?): "
            "forward a copy of X");
    require(cache.m <= grads.capacity, [&] {
      return "the gradients hold m = " + std::to_string(grads.capacity) +
             " examples, the cache has m = " + std::to_string(cache.m);
    });
    require_targets(Y, cache.m);
    require(!(Y.labels ? grads.overlaps(Y.labels, Y.labels + cache.m) : grads.overlaps(Y.dense)),
            "Y shares memory with the gradients the backward writes into (a dZ[L] of theirs?): pass a copy of Y");
    start_backward(cache, grads, compute_dA0);
    run_team(call_threads(cache.m),
             [&](const Team& team) { backward_layers(cache, Y, grads, compute_dA0, T(0), team); });
  }

  // What a backward does before its layers: the gradients take the cache's batch.
  void start_backward(const Cache<T>& cache, Gradients<T>& grads, bool compute_dA0) const {
    grads.set_batch(cache.m);
    // dA[0] for the capacity, once: a later backward of other m neither moves nor outgrows it
    if (compute_dA0 && grads.dA0_values.empty()) grads.dA0_values.resize(layout.n[0] * grads.capacity);
  }

  // The layers of backward after start_backward, on every thread of the team: backward_deltas,
  // then, once every thread has its deltas, parameter_gradients with the L2 term lambda.
  void backward_layers(const Cache<T>& cache, Targets<T> Y, Gradients<T>& grads, bool compute_dA0, T lambda,
                       const Team& team) const {
    backward_deltas(cache, Y, grads, compute_dA0, team);
    team.sync();
    parameter_gradients(cache, grads, lambda, team);
  }

  // The first half of backward, each thread of the team on its share of the columns (and of the
  // rows of batch-norm layers): from dZ[L] = A[L] - Y (or dA[L]) down to dZ[1] and dA[0] if asked,
  //   dU[l] = dA[l] (D[l] / (1 - p)) * g'(U[l]);  batch norm: dgamma[l], dbeta[l], dZ[l] from dU[l];
  //   dA[l-1] = W[l]^T dZ[l]
  void backward_deltas(const Cache<T>& cache, Targets<T> Y, Gradients<T>& grads, bool compute_dA0,
                       const Team& team) const {
    const Range cols = team.share(cache.m);
    const ConstMatrix<T> A_L = cache.A[L()].columns(cols);
    if (cost == Cost::mse) {
      output_error<T>(A_L, columns(Y, cols), grads.dA[L()].columns(cols));
      activation_backward<T>(layers[L()].g, cache.U(L()).columns(cols), A_L, grads.dA[L()].columns(cols),
                             grads.dU(L()).columns(cols));
    } else {
      output_error<T>(A_L, columns(Y, cols), grads.dU(L()).columns(cols));
    }
    for (index l = L(); l >= 1; --l) layer_deltas(l, cache, grads, compute_dA0, team);
  }

  // The second half of backward, each thread of the team on its share of the columns of every
  // dW[l] and of the rows of every db[l], after backward_deltas has finished on every thread:
  //   dW[l] = (1/m) dZ[l] A[l-1]^T + (lambda/m) W[l],  db[l] = (1/m) sum over columns of dZ[l]
  // (db[l] = 0 in batch-norm layers: normalisation subtracts the batch mean of Z, and b with it;
  // 0 exactly, not the rounding noise of a sum that an adaptive optimizer would divide by sqrt(v) + eps).
  void parameter_gradients(const Cache<T>& cache, Gradients<T>& grads, T lambda, const Team& team) const {
    const T one_over_m = T(1) / T(cache.m);
    for (index l = 1; l <= L(); ++l) {
      const Range units = gradient_share(l, team).units;
      const Matrix<T> dW = grads.dW(l).columns(units);
      gemm(false, ConstMatrix<T>(grads.dZ[l]), true, cache.A_in(l - 1).row_block(units), one_over_m, T(0), dW);
      if (lambda > 0) add_scaled(dW, W(l).columns(units), lambda * one_over_m);
    }
    bias_gradients(cache, grads, team);
  }

  // db[l] = (1/m) sum over columns of dZ[l] on this thread's rows of every layer (see parameter_gradients).
  void bias_gradients(const Cache<T>& cache, Gradients<T>& grads, const Team& team) const {
    for (index l = 1; l <= L(); ++l) {
      const Range rows = gradient_share(l, team).rows;
      T* db = grads.db(l) + rows.begin;
      if (layers[l].batch_norm) {
        std::fill_n(db, rows.size(), T(0));
      } else {
        column_sum(ConstMatrix<T>(grads.dZ[l].row_block(rows)), T(1) / T(cache.m), db);
      }
    }
  }

  // Plain SGD's step on the weights taken into the products of parameter_gradients, in place and
  // without forming dW[l], on this thread's columns `units` of every W[l] (after backward_deltas
  // on every thread):
  //   W[l] = (1 - lr lambda/m) W[l] - (lr/m) dZ[l] A[l-1]^T,  the same as W[l] - lr dW[l] up to rounding
  //   dZ[l]: (n[l], m), A[l-1]: (n[l-1], m), W[l]: (n[l], n[l-1]), of which (n[l], |units|) here
  void descend_in_products(const Cache<T>& cache, const Gradients<T>& grads, T lr, T lambda, const Team& team) {
    const T step = lr / T(cache.m);
    for (index l = 1; l <= L(); ++l) {
      const Range units = gradient_share(l, team).units;
      gemm(false, ConstMatrix<T>(grads.dZ[l]), true, cache.A_in(l - 1).row_block(units), -step,
           decay_factor(lr, lambda, cache.m), W(l).columns(units));
    }
  }

  // The factor of W[l] in descend_in_products, 1 - (lr/m) lambda, as it rounds in T.
  static T decay_factor(T lr, T lambda, index m) { return T(1) - lr / T(m) * lambda; }

  // f(r) for the run r of b[l]'s entries in the flat buffer that are this thread's (gradient_share's rows), each l.
  template <class F>
  void for_each_bias_run(const Team& team, const F& f) const {
    for (index l = 1; l <= L(); ++l) {
      const Range rows = gradient_share(l, team).rows;
      f(Range{layout.b_offset[l] + rows.begin, layout.b_offset[l] + rows.end});
    }
  }

  // This thread's share of layer l's gradient: the columns `units` of dW[l] (units of layer
  // l-1), and the rows of db[l], dgamma[l] and dbeta[l].
  struct GradientShare {
    Range units, rows;
  };
  GradientShare gradient_share(index l, const Team& team) const {
    return {team.share(layout.n[l - 1]), team.share(layout.n[l])};
  }

  // f(r) for each run r of consecutive entries of the flat gradient that this thread of the
  // team writes in backward_layers (its gradient_share of every layer), in order; a solo team
  // writes them all, one run.
  template <class F>
  void for_each_gradient_run(const Team& team, const F& f) const {
    Range run{0, 0};
    const auto add = [&](index offset, Range r) {
      if (offset + r.begin != run.end) {
        if (run.size()) f(run);
        run.begin = offset + r.begin;
      }
      run.end = offset + r.end;
    };
    for (index l = 1; l <= L(); ++l) {
      const auto [units, rows] = gradient_share(l, team);
      add(layout.W_offset[l], {units.begin * layout.n[l], units.end * layout.n[l]});
      add(layout.b_offset[l], rows);
      if (!layers[l].batch_norm) continue;
      add(layout.gamma_offset[l], rows);
      add(layout.beta_offset[l], rows);
    }
    if (run.size()) f(run);
  }

  // W[l] -= learning_rate dW[l], b[l] -= learning_rate db[l] (and gamma, beta) for every l, over
  // the flat buffer, through plain SGD's step (so that it rounds as fit's does); false, changing
  // nothing, when an updated parameter would not be finite.
  bool update(const Gradients<T>& grads, T learning_rate) {
    require_own(grads.network_id, "gradients");
    const std::unique_lock writing(params_lock);
    require_not_fitting();
    const OptimizerSettings sgd;
    OptimizerState<T> none(sgd, 0);
    return step_in_place(sgd, learning_rate, 1, params.data(), grads.dparams.data(), none, {0, layout.size});
  }

  bool any_batch_norm() const {
    for (index l = 1; l <= L(); ++l)
      if (layers[l].batch_norm) return true;
    return false;
  }

  index bytes() const { return index(params.size() * sizeof(T)) + running_mean.bytes() + running_var.bytes(); }

  const ParameterLayout layout;
  const std::vector<LayerSpec> layers;  // layers[1..L]; layers[0] unused
  const Cost cost;
  const T bn_eps, bn_momentum;
  Buffer<T> params;
  LayerMatrices<T> running_mean, running_var;       // (n[l], 1) of batch-norm layers: state, not parameters
  std::uint64_t dropout_seed = 0;                   // with the count of training forwards, draws the masks
  std::atomic<std::uint64_t> training_forwards{0};  // counted by concurrent forwards too
  const std::uint64_t id;                           // tells this network's caches and gradients from others'
  // Held shared by the calls that read the parameters (forward, backward), and exclusively by
  // those that write them (update, an optimizer's step, and fit's trainer while it swaps them
  // with its spares and updates the running statistics): a call from another thread never reads
  // half an update, or a buffer that moves or is freed under it when a fit ends.
  mutable WriterFirstLock params_lock;
  // While an epoch of fit runs (see Trainer::epoch), whose steps swap the parameters and the
  // optimizer's state with spares: 1 + the fork count of the process it runs in (see forks),
  // else 0. Another fit, update or optimizer step of the network is refused until it ends; set
  // and read under the exclusive lock, so that none slips in as the epoch starts.
  unsigned fitting = 0;

  // Refuses a call that would write the parameters during an epoch (under the exclusive lock).
  void require_not_fitting() const {
    if (fitting == 0) return;
    if (fitting != forks.load() + 1)
      throw std::runtime_error(
          "this process was forked while a thread of its parent was fitting this network, so its parameters "
          "may be those of a step in progress; train a copy made before the fork, or load a saved one");
    throw std::runtime_error(
        "a fit of this network is running (on another thread, or this call comes from its gradient hook); "
        "call this once it has ended");
  }

 private:
  static inline std::atomic<std::uint64_t> last_id{0};

  // forward but for the running statistics, under the parameters' shared lock.
  void forward_reading(ConstMatrix<T> X, Cache<T>& cache, bool training) {
    const std::shared_lock reading(params_lock);
    require(X.rows == layout.n[0], [&] {
      return "X must have n[0] = " + std::to_string(layout.n[0]) + " rows, got " + std::to_string(X.rows);
    });
    require_own(cache.network_id, "cache");
    require(!cache.overlaps(X),
            "X shares memory with the cache the forward writes into (a Z[l] or A[l] of its own?): "
            "pass a copy of X");
    require(X.cols <= cache.capacity, [&] {
      return "the cache holds m = " + std::to_string(cache.capacity) +
             " examples, the batch has m = " + std::to_string(X.cols);
    });
    require(!training || X.cols >= 2 || !any_batch_norm(),
            "batch normalisation needs m >= 2 examples in a training forward (the variance of one is undefined)");
    const std::uint64_t forward_key = start_forward(X, cache, training);
    run_team(call_threads(X.cols), [&](const Team& team) { forward_layers(cache, forward_key, team); });
  }

  // Layer l of forward (see forward) on this thread's columns; a batch-norm layer's statistics
  // need every column, so the team shares its rows out between two syncs. A plain layer's tall
  // product (see tall) goes by W[l]'s columns in a fit on two threads (inputs_forward, whose
  // cache has P[l]), else by rows where by_rows says so (rows_forward).
  void layer_forward(index l, Cache<T>& cache, std::uint64_t forward_key, const Team& team) const {
    const LayerSpec& layer = layers[l];
    if (plain(l) && team.size == 2 && cache.P.has(l) && tall(layout.n[l], layout.n[l - 1], cache.m, team))
      return inputs_forward(l, cache, team);
    if (plain(l) && by_rows(layout.n[l], layout.n[l - 1], cache.m, team)) return rows_forward(l, cache, team);
    const Range cols = team.share(cache.m);
    const Matrix<T> Z = cache.Z[l].columns(cols), A = cache.A[l].columns(cols);
    gemm<T>(false, W(l), false, cache.A_in(l - 1).columns(cols), T(1), T(0), Z);
    if (layer.batch_norm) {
      bias_add(b(l), Z);
      team.sync();
      batch_norm_rows(l, cache, team.share(layout.n[l]));
      team.sync();
      activation_forward<T>(layer.g, cache.Z_tilde[l].columns(cols), A);
    } else {
      bias_activation_forward(layer.g, b(l), Z, A);
    }
    if (cache.training && layer.dropout > 0)
      dropout_forward(mix64(forward_key + std::uint64_t(l)), T(1 - layer.dropout), A, cache.D[l].columns(cols),
                      cols.begin);
  }

  // Whether a product of (rows, k) by (k, m) on a team is tall: of row_split_work multiply-adds
  // and more (see there), with twice as many rows as columns and more in its result, so that the
  // (rows, k) operand is twice the (k, m) one and more, all of which each thread reads when the
  // team shares the product out by the columns of its result. A tall product is shared out by
  // rows (see by_rows) or, in a fit's forward on two threads, by its inputs (inputs_forward); a
  // dA[l-1] that the tiles take through W[l]^T only from twice row_split_work (see dA_by_rows).
  static bool tall(index rows, index k, index m, const Team& team) {
    return team.size > 1 && rows >= 2 * m && double(rows) * double(k) * double(m) >= row_split_work;
  }

  // Whether a tall product (see tall) is shared out by the rows of its result: each thread then
  // reads half of the (rows, k) operand and all of the (k, m) one (a 784-256 layer on 1,340
  // examples, not tall, ran 5-30% slower by rows); in float64 only from 256 rows a thread: fits of
  // 784-256-128-10 on batch 64 and 128 (128 rows a thread) ran 1-5% slower by rows, of 784-384-10
  // on 64 alike, of 784-512-10 on 64 and 128 3-5% faster. Every thread decides alike.
  static bool by_rows(index rows, index k, index m, const Team& team) {
    return tall(rows, k, m, team) && (sizeof(T) == sizeof(float) || rows >= 256 * index(team.size));
  }

  // Layer l of forward for this thread's rows r and every column, between a sync after which
  // every column of A[l-1] is in (A[0] = X is from the start) and one after which every row of
  // A[l] is:
  //   Z[l](r, :) = W[l](r, :) A[l-1] + b[l](r),  A[l](r, :) = g(Z[l](r, :))
  void rows_forward(index l, Cache<T>& cache, const Team& team) const {
    const Range r = team.share(layout.n[l]);
    if (l > 1) team.sync();
    gemm<T>(false, W(l).row_block(r), false, cache.A_in(l - 1), T(1), T(0), cache.Z[l].row_block(r));
    bias_activation_forward(layers[l].g, b(l) + r.begin, cache.Z[l].row_block(r), cache.A[l].row_block(r));
    team.sync();
  }

  // Layer l of forward in fit's steps on a team of two, for a plain tall product (see tall): each
  // thread multiplies its share u of W[l]'s columns (layer l-1's units), the columns of W[l] that
  // it updated itself in the step before (see gradient_share), by the rows u of A[l-1], the
  // master into Z[l], the other into P[l]; after a sync, each adds the two parts and b[l] in its
  // columns of Z[l], and applies g:
  //   Z[l] = W[l](:, u0) A[l-1](u0, :) + W[l](:, u1) A[l-1](u1, :) + b[l],  A[l] = g(Z[l])
  //   W[l](:, u): (n[l], |u|), A[l-1](u, :): (|u|, m), Z[l], P[l]: (n[l], m)
  // What reads A[l] next reads this thread's columns (a layer by columns, the deltas) or syncs
  // first (a layer by rows or by inputs), so no sync ends it.
  // By rows, each thread read half of W[l], half of that half just written by the other core. In
  // mnist's fit (784-256-128-10 on 128 examples, float32), a thread's product of layer 1 took
  // 494-507 thousand cycles of the 2.3 GHz time-stamp counter so, against 543-553 thousand by
  // rows. Its epoch took 0.152-0.167 s (median 0.158) against 0.165-0.187 (0.170) by rows, and
  // 0.157-0.172 (0.164) with the parts added in each thread's rows and a sync after (eight turns each).
  // In float64, where by_rows leaves fewer than 256 rows a thread to the columns, steps of
  // 784-256-128-10 on 64 and 128 examples took 3% less time so than by columns, of 784-384-10 5-8%
  // less; where by_rows takes them, of 784-512-10 on 128 and 784-1024-10 on 16 1-5% less than by rows.
  void inputs_forward(index l, Cache<T>& cache, const Team& team) const {
    const Range u = team.share(layout.n[l - 1]), cols = team.share(cache.m);
    if (team.master()) inputs_forwards.fetch_add(1, std::memory_order_relaxed);
    if (l > 1) team.sync();
    gemm<T>(false, W(l).columns(u), false, cache.A_in(l - 1).row_block(u), T(1), T(0),
            team.master() ? cache.Z[l] : cache.P[l]);
    team.sync();
    bias_activation_forward(layers[l].g, b(l), cache.Z[l].columns(cols), cache.A[l].columns(cols),
                            cache.P[l].columns(cols).data);
  }

  // Batch normalisation of the rows r of Z[l] (see forward): with the batch's mu and var in
  // training, the running statistics in inference.
  void batch_norm_rows(index l, Cache<T>& cache, Range r) const {
    T *mu = cache.mu[l].data + r.begin, *var = cache.var[l].data + r.begin;
    const ConstMatrix<T> Z = cache.Z[l].row_block(r);
    if (cache.training) batch_statistics<T>(Z, mu, var);
    const T* mean = cache.training ? mu : running_mean[l].data + r.begin;
    const T* variance = cache.training ? var : running_var[l].data + r.begin;
    batch_norm_forward<T>(Z, mean, variance, bn_eps, gamma(l) + r.begin, beta(l) + r.begin,
                          cache.inv_std[l].data + r.begin, cache.Z_norm[l].row_block(r), cache.Z_tilde[l].row_block(r));
  }

  // Layer l of backward_deltas, from dA[l] (or, for l = L, from the dU[L] that the cost gave), on
  // this thread's columns; a batch-norm layer's rows are shared out between two syncs, as is a
  // large product's dA[l-1] (see dA_by_rows).
  void layer_deltas(index l, const Cache<T>& cache, Gradients<T>& grads, bool compute_dA0, const Team& team) const {
    const LayerSpec& layer = layers[l];
    const Range cols = team.share(cache.m);
    if (l < L()) {
      const ConstMatrix<T> D = cache.D[l].columns(cols);  // no rows where the layer has no dropout
      activation_backward<T>(layer.g, cache.U(l).columns(cols), cache.A[l].columns(cols), grads.dA[l].columns(cols),
                             grads.dU(l).columns(cols), layer.dropout > 0 ? &D : nullptr, T(1 - layer.dropout));
    }
    if (layer.batch_norm) {
      team.sync();
      const Range r = gradient_share(l, team).rows;
      batch_norm_backward<T>(grads.dZ_tilde[l].row_block(r), cache.Z_norm[l].row_block(r), gamma(l) + r.begin,
                             cache.inv_std[l].data + r.begin, grads.dgamma(l) + r.begin, grads.dbeta(l) + r.begin,
                             grads.dZ[l].row_block(r));
      team.sync();
    }
    if (l == 1 && !compute_dA0) return;
    const Matrix<T> dA_prev = l > 1 ? grads.dA[l - 1] : grads.dA0();
    // the same on every thread of the team, whose shares of the columns are m / size and one more
    const bool transposing = tiles_take_transposed<T>(layout.n[l - 1], cache.m / team.size, layout.n[l]);
    if (dA_by_rows(layout.n[l - 1], layout.n[l], cache.m, team, transposing)) return rows_dA(l, grads, dA_prev, team);
    gemm(true, W(l), false, ConstMatrix<T>(grads.dZ[l].columns(cols)), T(1), T(0), dA_prev.columns(cols), transposing);
  }

  // Whether dA[l-1] = W[l]^T dZ[l] of (rows, k) by (k, m) is shared out by rows: where by_rows says
  // so, and, when W[l]^T goes to the tiles (`transposing`), only from twice row_split_work. By
  // columns, each thread transposes all of W[l] and reads the columns of dZ[l] it has just written;
  // by rows, BLAS (or panel_gemm, on AVX-512) copies half of W[l] and reads all of dZ[l], half of it
  // from the other core.
  // Measured on two threads: in mnist's fit (dA[1] of 2^22 multiply-adds, 256 rows on 128 columns),
  // backward_deltas of layers 2 and 1 took 108 thousand cycles of the time-stamp counter a step so,
  // against 138 thousand by rows on OpenBLAS, and the epoch 1-2% less time; from 2^23, by columns
  // so was slower: 784-256-256-10 on 128 examples took 704-715 us a step against 681-698 by rows.
  static bool dA_by_rows(index rows, index k, index m, const Team& team, bool transposing) {
    return by_rows(rows, k, m, team) && (!transposing || double(rows) * double(k) * double(m) >= 2 * row_split_work);
  }

  // dA[l-1] of layer l for this thread's rows r and every column, between a sync after which
  // every column of dZ[l] is in and one after which every row of dA[l-1] is:
  //   dA[l-1](r, :) = W[l](:, r)^T dZ[l]
  void rows_dA(index l, const Gradients<T>& grads, Matrix<T> dA_prev, const Team& team) const {
    const Range r = team.share(layout.n[l - 1]);
    team.sync();
    gemm(true, W(l).columns(r), false, ConstMatrix<T>(grads.dZ[l]), T(1), T(0), dA_prev.row_block(r));
    team.sync();
  }

  void require_own(std::uint64_t owner, const char* what) const {
    require(owner == id, [&] { return std::string("the ") + what + " belong to another network"; });
  }

  void require_targets(const Targets<T>& Y, index m) const {
    require(Y.dense.rows == layout.n[L()] && Y.dense.cols == m, [&] {
      if (Y.labels)
        return "Y's labels must be of shape (m,) = (" + std::to_string(m) + ",), got (" + std::to_string(Y.dense.cols) +
               ",)";
      return "Y must be (n[L], m) = (" + std::to_string(layout.n[L()]) + ", " + std::to_string(m) + "), got (" +
             std::to_string(Y.dense.rows) + ", " + std::to_string(Y.dense.cols) + ")";
    });
  }

  // n[0..L], each layer's units and W's entries within BLAS's ints; one spec per layer (given before
  // batch_norm_flags reads them).
  static std::vector<index> check_sizes(std::vector<index> n, std::size_t specs) {
    require(n.size() >= 2, "a network needs n[0] and at least one layer");
    require(specs == n.size() - 1, [&] {
      return "one activation per layer is needed: " + std::to_string(n.size() - 1) + ", got " + std::to_string(specs);
    });
    for (index units : n) require(units >= 1 && units <= INT_MAX, "every layer needs 1..2^31-1 units");
    for (std::size_t l = 1; l < n.size(); ++l)
      require(n[l] <= INT_MAX / n[l - 1], [&] { return "W[" + std::to_string(l) + "] has more than 2^31-1 entries"; });
    return n;
  }

  static std::vector<bool> batch_norm_flags(const std::vector<LayerSpec>& layers) {
    std::vector<bool> flags{false};
    for (const LayerSpec& layer : layers) flags.push_back(layer.batch_norm);
    return flags;
  }

  // softmax only as the output, only with cce and n[L] >= 2; cce only after softmax;
  // bce only after sigmoid; mse after anything but softmax; dropout in [0, 1) on hidden layers only.
  static std::vector<LayerSpec> check_layers(const ParameterLayout& layout, std::vector<LayerSpec> layers, Cost cost) {
    const index L = layout.L();
    for (index l = 1; l < L; ++l) {
      require(layers[l - 1].g.kind != Activation::softmax, "softmax is for the output layer only");
      require(layers[l - 1].dropout >= 0 && layers[l - 1].dropout < 1, "a drop probability must lie in [0, 1)");
    }
    require(layers.back().dropout == 0, "dropout is for hidden layers only");
    const Activation output = layers.back().g.kind;
    require(cost != Cost::cce || (output == Activation::softmax && layout.n[L] >= 2),
            "cce needs a softmax output layer with at least 2 units");
    require(cost != Cost::bce || output == Activation::sigmoid, "bce needs a sigmoid output layer");
    require(cost != Cost::mse || output != Activation::softmax, "softmax pairs with cce only");
    layers.insert(layers.begin(), LayerSpec{{Activation::identity, 0.0}, false, 0.0});
    return layers;
  }
};

}  // namespace mlpcore
