// The training loop: minibatches of an epoch, each a training forward, backward, L2 term,
// clipping and optimizer step, with no allocation and no Python in a step.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "network.hpp"
#include "optimizers.hpp"

namespace mlpcore {

struct TrainSettings {
  index batch_size;
  double learning_rate;
  double l2 = 0;          // lambda of the L2 term lambda/(2m) sum ||W[l]||^2
  double clip_norm = 0;   // 0: no clipping by norm
  double clip_value = 0;  // 0: no clipping by value
  bool shuffle = true;
  std::uint64_t seed = 0;  // draws the order of each epoch
};

struct EpochResult {
  double cost = 0;  // mean of the minibatch costs J (with the L2 term)
  index steps = 0;  // steps taken; the step that diverged is not one of them
  bool interrupted = false;
  std::string diverged;  // what became NaN or inf, empty if nothing did
};

template <class T>
class Trainer {
 public:
  static constexpr std::chrono::milliseconds report_interval{250};

  // For epochs over m examples in batches of up to batch_size, with the optimizer's state `state`.
  Trainer(Network<T>& net, const OptimizerSettings& optimizer, OptimizerState<T>& state, index batch_size, index m)
      : net_(net),
        optimizer_(optimizer),
        state_(state),
        cache_(net, batch_size),
        grads_(net, batch_size),
        X_batch_(net.layout.n[0] * batch_size),
        Y_batch_(net.layout.n[net.L()] * batch_size),
        labels_batch_(batch_size),
        order_(m),
        spare_params_(net.params.size()),
        spare_state_(state),
        home_params_(net.params.data()),
        home_first_(state.first.data()),
        home_second_(state.second.data()) {}

  // One epoch over X (n[0], m) and Y (n[L], m); the hook, if any, sees the flat gradient of
  // each step (with the L2 term, before clipping) and may change it. Stops after the step during which `stop`
  // was set, or before the update of a step whose cost, gradient or updated parameters are
  // not all finite, leaving the network and the optimizer as after the last good step.
  // `progress`, if any, is told the steps done and their mean cost at most every quarter second.
  EpochResult epoch(ConstMatrix<T> X, Targets<T> Y, const TrainSettings& settings, index epoch_number,
                    const std::function<void(T*, index)>& hook, const std::atomic<bool>& stop,
                    const std::function<void(index, double)>& progress = {}) {
    struct Settle {  // whatever happens, the parameters and state end in the buffers they began in
      Trainer& trainer;
      ~Settle() { trainer.settle(); }
    } settle_at_exit{*this};
    const index m = X.cols;
    require(m == index(order_.size()), [&] {
      return "the trainer was made for m = " + std::to_string(order_.size()) + " examples, X has " + std::to_string(m);
    });
    draw_order(settings, epoch_number);
    EpochResult result;
    auto next_report = std::chrono::steady_clock::now() + report_interval;
    for (index start = 0; start < m; start += settings.batch_size) {
      const index batch_m = std::min(settings.batch_size, m - start);
      if (batch_m == 1 && m > 1 && net_.any_batch_norm()) break;  // one example has no batch variance
      const double J = step(X, Y, settings, start, batch_m, hook, result.diverged);
      if (!result.diverged.empty()) break;
      result.cost += J;
      ++result.steps;
      if (progress && std::chrono::steady_clock::now() >= next_report) {
        progress(result.steps, result.cost / double(result.steps));
        next_report = std::chrono::steady_clock::now() + report_interval;
      }
      if (stop.load()) {
        result.interrupted = true;
        break;
      }
    }
    if (result.steps) result.cost /= double(result.steps);
    return result;
  }

  // The bytes of what a fit holds besides the network: the gradient, the optimizer's state and
  // the spares a step writes into, and the workspace of one batch (cache, dZ, dA, the gathered
  // minibatch and the order of the epoch).
  struct Memory {
    index gradients, optimizer_state, spare_parameters, workspace;
  };
  Memory memory() const {
    const auto state_bytes = [](const OptimizerState<T>& s) {
      return index((s.first.size() + s.second.size()) * sizeof(T));
    };
    return {grads_.dparams_bytes(), state_bytes(state_) + state_bytes(spare_state_),
            index(spare_params_.size() * sizeof(T)),
            cache_.bytes() + grads_.delta_bytes() +
                index((X_batch_.size() + Y_batch_.size()) * sizeof(T) + labels_batch_.size() * sizeof(std::int64_t) +
                      order_.size() * sizeof(index))};
  }

  Network<T>& network() { return net_; }
  Gradients<T>& gradients() { return grads_; }
  Cache<T>& cache() { return cache_; }

 private:
  // One step on the examples order_[start .. start + batch_m - 1] (start .. start + batch_m - 1
  // without shuffling); returns J, or sets `diverged`.
  double step(ConstMatrix<T> X, Targets<T> Y, const TrainSettings& settings, index start, index batch_m,
              const std::function<void(T*, index)>& hook, std::string& diverged) {
    const ConstMatrix<T> X_b = settings.shuffle ? gather(X, start, batch_m, X_batch_.data()) : block(X, start, batch_m);
    const Targets<T> Y_b = settings.shuffle ? gather_targets(Y, start, batch_m) : block_targets(Y, start, batch_m);
    net_.forward(X_b, cache_, true, false);
    double J = net_.J(cache_.A[net_.L()], Y_b);
    if (settings.l2 > 0) J += settings.l2 / (2.0 * double(batch_m)) * net_.squared_weights();
    if (!std::isfinite(J)) {
      diverged = "the cost";
      return J;
    }
    net_.backward(cache_, Y_b, grads_, false);
    if (settings.l2 > 0) net_.add_l2_gradient(grads_, T(settings.l2));
    T* dparams = grads_.dparams.data();
    const index size = index(grads_.dparams.size());
    if (hook) hook(dparams, size);  // before clipping: a gradient summed across processes is clipped whole
    clip_gradient(dparams, size, settings.clip_norm, settings.clip_value);
    // A NaN or inf in the gradient makes the update NaN or inf too, so one check of what the
    // step writes (into the spares, so nothing is lost) covers both.
    if (!optimizer_step(optimizer_, T(settings.learning_rate), net_.params.data(), dparams, state_,
                        spare_params_.data(), spare_state_, size)) {
      diverged = all_finite(dparams, size) ? "the updated parameters" : "the gradient";
      return J;
    }
    std::swap(net_.params, spare_params_);
    std::swap(state_, spare_state_);
    net_.update_running_statistics(cache_);
    return J;
  }

  // order_ = 0..m-1, shuffled (Fisher-Yates) from the seed and the epoch when asked.
  void draw_order(const TrainSettings& settings, index epoch_number) {
    for (index k = 0; k < index(order_.size()); ++k) order_[k] = k;
    if (!settings.shuffle) return;
    const std::uint64_t key = mix64(settings.seed ^ mix64(std::uint64_t(epoch_number)));
    for (index k = index(order_.size()) - 1; k > 0; --k)
      std::swap(order_[k], order_[index(uniform(key, std::uint64_t(k)) * double(k + 1))]);
  }

  // The columns order_[start .. start + count - 1] of X, copied into `out` as an (X.rows, count)
  // column-major matrix.
  ConstMatrix<T> gather(ConstMatrix<T> X, index start, index count, T* out) const {
    const index* columns = order_.data() + start;
    for (index c = 0; c < count; ++c) {
      T* column = out + c * X.rows;
      if (!X.transposed) {
        std::copy_n(X.col(columns[c]), X.rows, column);
        continue;
      }
      for (index i = 0; i < X.rows; ++i) column[i] = X(i, columns[c]);
    }
    return {out, X.rows, count, X.rows};
  }

  Targets<T> gather_targets(Targets<T> Y, index start, index count) {
    if (!Y.labels) return {gather(Y.Y, start, count, Y_batch_.data()), nullptr};
    for (index c = 0; c < count; ++c) labels_batch_[c] = Y.labels[order_[start + c]];
    return {{nullptr, Y.Y.rows, count, Y.Y.rows}, labels_batch_.data()};
  }

  // The columns start .. start + count - 1 of X in place (an epoch without shuffling).
  static ConstMatrix<T> block(ConstMatrix<T> X, index start, index count) {
    return {X.data + (X.transposed ? start : start * X.ld), X.rows, count, X.ld, X.transposed};
  }

  static Targets<T> block_targets(Targets<T> Y, index start, index count) {
    if (Y.labels) return {{nullptr, Y.Y.rows, count, Y.Y.rows}, Y.labels + start};
    return {block(Y.Y, start, count), nullptr};
  }

  // Steps swap the parameters and state with their spares; this puts the current values back
  // in the buffers they began in, which Python's views of them point into.
  void settle() {
    settle_buffer(net_.params, spare_params_, home_params_);
    settle_buffer(state_.first, spare_state_.first, home_first_);
    settle_buffer(state_.second, spare_state_.second, home_second_);
  }

  static void settle_buffer(std::vector<T>& current, std::vector<T>& spare, const T* home) {
    if (current.data() == home) return;
    std::copy(current.begin(), current.end(), spare.begin());
    std::swap(current, spare);
  }

  Network<T>& net_;
  OptimizerSettings optimizer_;
  OptimizerState<T>& state_;
  Cache<T> cache_;
  Gradients<T> grads_;
  std::vector<T> X_batch_, Y_batch_;
  std::vector<std::int64_t> labels_batch_;
  std::vector<index> order_;
  std::vector<T> spare_params_;
  OptimizerState<T> spare_state_;
  const T *home_params_, *home_first_, *home_second_;
};

}  // namespace mlpcore
