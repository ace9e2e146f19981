// The training loop: minibatches of an epoch, each a training forward, backward, L2 term,
// clipping and optimizer step, with no allocation in a step and no Python but the hook's and
// `progress`'s calls (see epoch), on a team of threads when the step is large enough.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
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
  std::uint64_t seed = 0;      // draws the order of each epoch
  bool keep_gradient = false;  // each step's gradient stays in gradients() (fit's diagnostics read the last)
};

struct EpochResult {
  double cost = 0;     // mean of the minibatch costs J (with the L2 term), each weighted by its examples
  double l2_term = 0;  // the mean, so weighted, of the L2 terms in those costs
  index steps = 0;     // steps taken; the step that diverged is not one of them
  bool interrupted = false;
  std::string diverged;  // what became NaN or inf, empty if nothing did
};

// Steps whose plain SGD was taken into the gradient's products (see Trainer::descended), for the tests.
inline std::atomic<std::int64_t> steps_in_products{0};

// At the interpreter's exit, the thread that exits it (else the default id): an epoch on any
// other thread stops after its current step (a fit in a daemon thread would otherwise call its
// hook, or BLAS, while the interpreter and the libraries shut down).
inline std::atomic<std::thread::id> exiting_thread{};

// Whether the interpreter exits and the calling thread is not the one that exits it.
inline bool other_thread_than_the_exiting_one() {
  const std::thread::id exiting = exiting_thread.load();
  return exiting != std::thread::id() && exiting != std::this_thread::get_id();
}

template <class T>
class Trainer {
 public:
  static constexpr std::chrono::milliseconds report_interval{250};
  // Multiply-adds of a step (batch size times weights) from which a team of threads takes it on:
  // steps of some 50 us and more on one thread, against about a microsecond per sync.
  static constexpr double team_step_work = 1 << 20;
  // Multiply-adds of a step from which plain SGD goes into the products (see descended): below,
  // the weights and their update stay in the L1 and L2, and the bound's passes cost more than the
  // update's traffic saves (the tiny 2-16-16-1 fit's step took 4.43-4.46 us so, against 4.10-4.21).
  static constexpr double products_step_work = 1 << 20;

  // For epochs over m examples in batches of up to batch_size, with the optimizer's state `state`.
  Trainer(Network<T>& net, const OptimizerSettings& optimizer, OptimizerState<T>& state, index batch_size, index m)
      : net_(net),
        optimizer_(optimizer),
        state_(state),
        cache_(net, batch_size, team_size.load() == 2),
        grads_(net, batch_size),
        X_batch_(net.layout.n[0] * batch_size),
        Y_batch_(net.layout.n[net.L()] * batch_size),
        labels_batch_(batch_size),
        order_(m),
        loss_(batch_size),
        finite_(max_threads()),
        bias_finite_(max_threads()),
        extents_(max_threads() * (net.L() + 1)),
        W_bound_(net.L() + 1),
        spare_params_(net.params.size()),
        spare_state_(optimizer, 0) {
    // Under the lock a fit's steps take to swap the parameters and the state: another fit of net
    // is refused here, before its state is read mid-swap.
    require(!net.any_batch_norm() || std::min(batch_size, m) >= 2,
            "batch normalisation needs minibatches of at least 2 examples (one example has no batch variance)");
    const std::shared_lock reading(net.params_lock);
    net.require_not_fitting();
    require_state_fits(state, optimizer, index(net.params.size()));
    spare_state_ = state;
    home_params_ = net.params.data();
    home_first_ = state.first.data();
    home_second_ = state.second.data();
  }

  // One epoch over X (n[0], m) and Y (n[L], m); the hook, if any, is called with each step's
  // flat gradient in gradients().dparams (with the L2 term, before clipping) and may change it.
  // Stops after the step during which `stop` was set, or before the update of a step whose cost,
  // gradient or updated parameters are not all finite, leaving the network and the optimizer as
  // after the last good step. `progress`, if any, is told the steps done and their mean cost at
  // most every quarter second. Steps of enough work run on a team of threads (see threads_for);
  // the hook and `progress` are called on the calling thread, and what they throw is rethrown
  // after the step. Refuses an X with NaN or inf (std::invalid_argument) the first time it is
  // given, the parameters and step count as they were at the epoch's start (see check_X; the
  // caller puts back what else its steps changed, dropout's count of training forwards).
  EpochResult epoch(ConstMatrix<T> X, Targets<T> Y, const TrainSettings& settings, index epoch_number,
                    const std::function<void()>& hook, const std::atomic<bool>& stop,
                    const std::function<void(index, double)>& progress = {}) {
    {
      const std::unique_lock starting(net_.params_lock);
      net_.require_not_fitting();
      net_.fitting = forks.load() + 1;
    }
    struct Settle {  // whatever happens, the parameters and state end in the buffers they began in,
                     // and the network is free for another fit
      Trainer& trainer;
      ~Settle() { trainer.settle(); }
    } settle_at_exit{*this};
    const index m = X.cols;
    require(m == index(order_.size()), [&] {
      return "the trainer was made for m = " + std::to_string(order_.size()) + " examples, X has " + std::to_string(m);
    });
    draw_order(settings, epoch_number);
    Epoch run{X, Y, settings, hook, stop, progress};
    run.in_products = optimizer_.method == Method::sgd && optimizer_.momentum == 0 && !hook &&
                      settings.clip_norm == 0 && settings.clip_value == 0 && !settings.keep_gradient &&
                      !net_.any_batch_norm() && net_.work(settings.batch_size) >= products_step_work;
    const bool unchecked = !checked(X);
    run.checking_X = unchecked && run.in_products && X.rows * m > 2 * index(net_.params.size());
    const int threads = threads_for(settings.batch_size);
    if (run.checking_X) {
      hold_start();
    } else if (unchecked) {
      // Before an epoch on the calling thread alone, X is checked there too: after a check on
      // OpenMP's threads, the other thread spins for milliseconds (GCC's OpenMP), where the OS
      // may leave it, on the calling thread's core. Two threads' fit of 100-40-40-1 on 15,360
      // examples in steps of 64 (solo) took 8.9-9.6 ms so, against 3.5-3.9 on one thread.
      check_X(X, all_finite(X, threads > 1), false);
    }
    W_bound_known_ = false;
    run.next_report = std::chrono::steady_clock::now() + report_interval;
    run_team(threads, [&](const Team& team) { run_epoch(run, team); });
    if (run.failure) std::rethrow_exception(run.failure);
    // every column was in a step's extents, unless Ctrl-C or `stop` ended the epoch early
    if (run.checking_X) check_X(X, !run.finished || all_finite(X, threads > 1), true);
    if (run.result.steps) {
      run.result.cost /= double(run.examples);
      run.result.l2_term /= double(run.examples);
    }
    return run.result;
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
                      order_.size() * sizeof(index) + loss_.size() * sizeof(double) + finite_.size())};
  }

  // The threads that take on steps of batch_size examples: a team of set_num_threads's count for
  // steps of team_step_work multiply-adds and more, else the calling thread alone; never more
  // than finite_ has places for (the processors when the trainer was made: CPU affinity may
  // have shrunk them since set_num_threads).
  int threads_for(index batch_size) const {
    return net_.work(batch_size) >= team_step_work ? std::min(team_size.load(), int(finite_.size())) : 1;
  }

  Network<T>& network() { return net_; }
  Gradients<T>& gradients() { return grads_; }
  Cache<T>& cache() { return cache_; }

 private:
  // What the threads of a team share during an epoch; the master alone writes it, between syncs.
  struct Epoch {
    ConstMatrix<T> X;
    Targets<T> Y;
    const TrainSettings& settings;
    const std::function<void()>& hook;
    const std::atomic<bool>& stop;
    const std::function<void(index, double)>& progress;
    EpochResult result{};
    std::chrono::steady_clock::time_point next_report{};
    double J = 0;                  // the cost of the current step
    double l2_term = 0;            // its L2 term, l2 / (2 m) sum ||W[l]||^2
    index examples = 0;            // the examples of the steps kept
    bool finished = false;         // the epoch ends after the current step
    bool in_products = false;      // plain SGD whose steps may go into the products (see descended)
    bool checking_X = false;       // steps into the products check their columns of X (see check_X)
    std::exception_ptr failure{};  // what the hook or `progress` threw
  };

  // The epoch's steps, on every thread of the team.
  void run_epoch(Epoch& run, const Team& team) {
    const index m = run.X.cols, batch_size = run.settings.batch_size;
    for (index start = 0; start < m && !run.finished; start += batch_size) {
      const index batch_m = std::min(batch_size, m - start);
      if (batch_m == 1 && net_.any_batch_norm()) break;  // one example has no batch variance
      step(run, team, start, batch_m);
    }
  }

  // One step on the examples order_[start .. start + batch_m - 1] (start .. start + batch_m - 1
  // without shuffling), on every thread of the team: forward, the column losses and backward's
  // deltas on each thread's columns; the gradient on its columns of each dW[l]; the master's
  // cost J, and its hook and clipping, which need the whole gradient; the optimizer on the
  // entries of the gradient each thread computed, written into the spares; the master keeps
  // the step if everything it wrote is finite. Without hook and clipping, each thread updates
  // its entries while they are in its cache, without waiting for the others.
  void step(Epoch& run, const Team& team, index start, index batch_m) {
    const TrainSettings& settings = run.settings;
    const Range cols = team.share(batch_m);
    const ConstMatrix<T> X_b = settings.shuffle ? ConstMatrix<T>(X_batch_.data(), run.X.rows, batch_m, run.X.rows)
                                                : run.X.columns({start, start + batch_m});
    const Targets<T> Y_b =
        settings.shuffle ? gathered_targets(run.Y, batch_m) : columns(run.Y, {start, start + batch_m});
    if (settings.shuffle) gather(run.X, run.Y, start, cols);
    if (team.master()) {
      forward_key_ = net_.start_forward(X_b, cache_, true);
      net_.start_backward(cache_, grads_, false);
      spare_state_.t = state_.t + 1;
    }
    team.sync();
    net_.forward_layers(cache_, forward_key_, team);
    for (index j = cols.begin; j < cols.end; ++j) loss_[j] = column_loss<T>(net_.cost, cache_.A[net_.L()], Y_b, j);
    net_.backward_deltas(cache_, Y_b, grads_, false, team);
    if (run.in_products) record_extents(team);
    team.sync();
    if (team.master()) {  // the losses are in, and W is as the step found it
      run.l2_term = l2_term(settings, batch_m);
      run.J = mean_loss(loss_.data(), batch_m) + run.l2_term;
    }
    if (run.in_products && descended(run, team, batch_m)) return;
    if (run.checking_X) {  // the usual path writes the spares, which hold the parameters as they were
      check_rest_of_X(run, team);
      if (run.failure) return;
    }
    net_.parameter_gradients(cache_, grads_, T(settings.l2), team);
    if (run.hook || settings.clip_norm > 0 || settings.clip_value > 0) {
      team.sync();
      if (team.master()) run_safely(run, [&] { hook_and_clipping(run); });
      team.sync();
    }
    bool finite = true;
    net_.for_each_gradient_run(team, [&](Range r) {
      finite &= optimizer_step(optimizer_, T(settings.learning_rate), spare_state_.t, net_.params.data(),
                               grads_.dparams.data(), state_, spare_params_.data(), spare_state_, r);
    });
    finite_[team.id] = finite;
    team.sync();
    if (team.master()) run_safely(run, [&] { finish_step(run, team.size, batch_m); });
    team.sync();
  }

  struct Extent {
    double dZ = 0, A = 0;  // the largest |dZ[l]| and |A[l-1]| of a share of the batch's columns
  };

  // Plain SGD's step taken into the gradient's products (Network::descend_in_products: dW is
  // not formed, and neither the step nor the spare parameters go over the weights again), on every
  // thread of the team after backward_deltas, when the step is sure to be finite (see
  // sure_to_be_finite): false, having changed nothing, when it is not, and the usual path takes
  // the step. The master holds the parameters' lock while the team writes them in place.
  bool descended(Epoch& run, const Team& team, index batch_m) {
    const T lr = T(run.settings.learning_rate);
    std::unique_lock<WriterFirstLock> writing;
    if (team.master()) {
      writing = std::unique_lock(net_.params_lock);
      if (!W_bound_known_) measure_W_bound();
    }
    net_.bias_gradients(cache_, grads_, team);
    bool finite = true;  // whether b[l] - lr db[l] is, on this thread's rows
    net_.for_each_bias_run(team, [&](Range r) {
      finite &= optimizer_step<T, false>(optimizer_, lr, 1, net_.params.data(), grads_.dparams.data(), state_,
                                         net_.params.data(), state_, r);
    });
    bias_finite_[team.id] = finite;
    team.sync();
    if (!sure_to_be_finite(run, team.size, batch_m)) return false;  // every thread reads the same
    net_.descend_in_products(cache_, grads_, lr, T(run.settings.l2), team);
    net_.for_each_bias_run(team, [&](Range r) {
      optimizer_step(optimizer_, lr, 1, net_.params.data(), grads_.dparams.data(), state_, net_.params.data(), state_,
                     r);
    });
    team.sync();
    if (team.master()) {
      writing.unlock();
      grow_W_bound(run.settings, team.size, batch_m);
      ++state_.t;
      steps_in_products.fetch_add(1, std::memory_order_relaxed);
      run_safely(run, [&] { count_step(run, batch_m); });
    }
    team.sync();
    return true;
  }

  // Whether X's entries are all finite, an O(n[0] m) pass over it, is known before a step
  // updates the parameters from them. Before the epoch's first step, X is checked whole; where
  // the steps go into the products and X is larger than twice the parameters, each step checks
  // its own columns instead, as it finds their largest |A[0]| (see record_extents), with which
  // it does not go into the products if one is NaN or inf. X is then read once instead of
  // twice, which took 2.7-2.9% off mnist's epoch of 30,000 examples as the benchmark times it,
  // in float32 and float64 (the whole pass over float32's 94 MB X took 3.8-5.4 ms of 0.12-0.13
  // s: X had left the caches by then). Those steps keep the parameters of the epoch's start in
  // the spares (see hold_start), whose copy costs a pass over the parameters only.
  //
  // check_X(X, finite, held) concludes: X is known finite, or the parameters go back to those
  // that hold_start kept when `held`, and std::invalid_argument is thrown.
  void check_X(ConstMatrix<T> X, bool finite, bool held) {
    if (!finite && held) {
      const std::unique_lock writing(net_.params_lock);
      std::copy(spare_params_.begin(), spare_params_.end(), net_.params.begin());
      state_.t = t_start_;
    }
    require(finite, "X contains NaN or inf");
    checked_X_ = X;
  }

  // Whether the flags of a team's first `threads` threads (finite_, bias_finite_) are all set.
  static bool all_set(const std::vector<char>& flags, int threads) {
    return std::all_of(flags.begin(), flags.begin() + threads, [](char flag) { return flag; });
  }

  // Whether check_X found X finite: the same view (where it starts, its shape and layout), its
  // entries taken as unchanged (fit holds one X for all its epochs).
  bool checked(ConstMatrix<T> X) const {
    const ConstMatrix<T>& c = checked_X_;
    return X.data == c.data && X.rows == c.rows && X.cols == c.cols && X.ld == c.ld && X.transposed == c.transposed;
  }

  // The parameters and the step count at the start of an epoch whose steps into the products
  // check X as they go: into the spares, which those steps do not write (plain SGD keeps no
  // other state).
  void hold_start() {
    std::copy(net_.params.begin(), net_.params.end(), spare_params_.begin());
    t_start_ = state_.t;
  }

  // Before the usual path takes a step of an epoch that checks X as it goes: all of X,
  // each thread of the team its share of the columns.
  void check_rest_of_X(Epoch& run, const Team& team) {
    finite_[team.id] = all_finite(run.X.columns(team.share(run.X.cols)), false);
    team.sync();
    if (team.master()) {
      run.checking_X = false;
      const bool finite = all_set(finite_, team.size);
      run_safely(run, [&] { check_X(run.X, finite, true); });
    }
    team.sync();
  }

  // What a step into the products needs to know that it stays finite: the largest |dZ[l]| and
  // |A[l-1]| of each layer on this thread's columns, into extents_.
  void record_extents(const Team& team) {
    const Range cols = team.share(cache_.m);
    for (index l = 1; l <= net_.L(); ++l)
      extents_[extent_at(team.id, l)] = {max_abs(ConstMatrix<T>(grads_.dZ[l].columns(cols))),
                                         max_abs(cache_.A_in(l - 1).columns(cols))};
  }

  // Whether plain SGD's step into the products is sure to give finite parameters: J finite, b[l] -
  // lr db[l] finite (bias_finite_), and for each layer, with D and A the largest |dZ[l]| and |A[l-1]|,
  // the products' sums within m D A and the new weights within |1 - lr lambda/m| W_bound + lr D A,
  // each under a quarter of T's largest (a margin for rounding). NaN or inf fails every comparison.
  bool sure_to_be_finite(const Epoch& run, int threads, index batch_m) const {
    if (!std::isfinite(run.J) || !all_set(bias_finite_, threads)) return false;
    const double limit = double(std::numeric_limits<T>::max()) / 4;
    for (index l = 1; l <= net_.L(); ++l) {
      const Extent e = layer_extent(l, threads);
      if (!(double(batch_m) * e.dZ * e.A <= limit && next_W_bound(run.settings, l, e, batch_m) <= limit)) return false;
    }
    return true;
  }

  // An upper bound of |W[l]| after a step into the products: |beta| W_bound + lr D A (see
  // sure_to_be_finite), with beta = 1 - (lr/m) lambda rounded in T as descend_in_products takes
  // it, and room for rounding: a sum of m products within (1 + m eps) of its terms' sum, then
  // a product and a sum of T, and a sum more for each further part of m that the tiles add in
  // (see tile_parts in blas.cpp; fewer than m).
  double next_W_bound(const TrainSettings& settings, index l, Extent e, index batch_m) const {
    const T beta = Network<T>::decay_factor(T(settings.learning_rate), T(settings.l2), batch_m);
    const double eps = std::numeric_limits<T>::epsilon();
    return (1 + (3 + double(batch_m)) * eps) *
           (std::abs(double(beta)) * W_bound_[l] + (1 + double(batch_m) * eps) * settings.learning_rate * e.dZ * e.A);
  }

  void grow_W_bound(const TrainSettings& settings, int threads, index batch_m) {
    for (index l = 1; l <= net_.L(); ++l) W_bound_[l] = next_W_bound(settings, l, layer_extent(l, threads), batch_m);
  }

  // W_bound_ = the largest |W[l]| of each layer, read from the parameters (at an epoch's first
  // step into the products, and after a step the usual path took).
  void measure_W_bound() {
    for (index l = 1; l <= net_.L(); ++l) W_bound_[l] = max_abs(ConstMatrix<T>(net_.W(l)));
    W_bound_known_ = true;
  }

  // Where thread `thread`'s extent of layer l lies in extents_.
  index extent_at(int thread, index l) const { return thread * (net_.L() + 1) + l; }
  // The layer's extent over the columns of the team's `threads` threads.
  Extent layer_extent(index l, int threads) const {
    Extent e;
    for (int t = 0; t < threads; ++t) {
      const Extent& part = extents_[extent_at(t, l)];
      e = {std::max(e.dZ, part.dZ), std::max(e.A, part.A)};
    }
    return e;
  }

  // The L2 term of the cost J of a step of batch_m examples: l2 / (2 batch_m) sum over l of ||W[l]||^2.
  double l2_term(const TrainSettings& settings, index batch_m) const {
    return settings.l2 > 0 ? settings.l2 / (2.0 * double(batch_m)) * net_.squared_weights() : 0.0;
  }

  // If J is finite, the hook (before clipping: a gradient summed across processes is clipped
  // whole) and the clipping of the gradient.
  void hook_and_clipping(Epoch& run) {
    if (!std::isfinite(run.J)) return;
    T* dparams = grads_.dparams.data();
    const index size = index(grads_.dparams.size());
    if (run.hook) run.hook();
    clip_gradient(dparams, size, run.settings.clip_norm, run.settings.clip_value);
  }

  // Keeps the step of batch_m examples (the spares become the parameters and state) unless what it
  // computed is not all finite; counts it, reports progress, and ends the epoch on divergence or `stop`.
  void finish_step(Epoch& run, int threads, index batch_m) {
    EpochResult& result = run.result;
    if (!std::isfinite(run.J)) {
      result.diverged = "the cost";
    } else if (!net_.batch_statistics_finite(cache_)) {  // which the running statistics would take in
      result.diverged = "a batch-norm layer's batch mean or variance";
    } else if (!all_set(finite_, threads)) {
      // A NaN or inf in the gradient makes the update NaN or inf too, so one check of what the
      // step wrote covers both.
      result.diverged =
          all_finite(grads_.dparams.data(), index(grads_.dparams.size())) ? "the updated parameters" : "the gradient";
    }
    if (!result.diverged.empty()) {
      run.finished = true;
      return;
    }
    {
      const std::unique_lock swapping(net_.params_lock);  // the state too: an optimizer's step reads it under it
      std::swap(net_.params, spare_params_);
      std::swap(state_, spare_state_);
      net_.update_running_statistics(cache_);
    }
    W_bound_known_ = false;
    count_step(run, batch_m);
  }

  // Counts a step kept, reports progress, and ends the epoch on `stop`.
  void count_step(Epoch& run, index batch_m) {
    EpochResult& result = run.result;
    result.cost += run.J * double(batch_m);
    result.l2_term += run.l2_term * double(batch_m);
    run.examples += batch_m;
    ++result.steps;
    if (run.progress && std::chrono::steady_clock::now() >= run.next_report) {
      run.progress(result.steps, result.cost / double(run.examples));
      run.next_report = std::chrono::steady_clock::now() + report_interval;
    }
    if (run.stop.load() || other_thread_than_the_exiting_one()) {
      result.interrupted = true;
      run.finished = true;
    }
  }

  // f() on the master; what it throws ends the epoch, to be rethrown once the team is done.
  template <class F>
  static void run_safely(Epoch& run, const F& f) {
    if (run.failure) return;
    try {
      f();
    } catch (...) {
      run.failure = std::current_exception();
      run.finished = true;
    }
  }

  // order_ = 0..m-1, shuffled (Fisher-Yates) from the seed and the epoch when asked.
  void draw_order(const TrainSettings& settings, index epoch_number) {
    for (index k = 0; k < index(order_.size()); ++k) order_[k] = k;
    if (!settings.shuffle) return;
    const std::uint64_t key = mix64(settings.seed ^ mix64(std::uint64_t(epoch_number)));
    for (index k = index(order_.size()) - 1; k > 0; --k)
      std::swap(order_[k], order_[index(uniform(key, std::uint64_t(k)) * double(k + 1))]);
  }

  // The columns order_[start + c] of X and Y for c in cols, copied into the columns cols of the
  // batch buffers (X_batch_: (n[0], batch), Y_batch_: (n[L], batch) or labels_batch_: (batch,)).
  void gather(ConstMatrix<T> X, Targets<T> Y, index start, Range cols) {
    for (index c = cols.begin; c < cols.end; ++c) {
      const index j = order_[start + c];
      copy_column(X, j, X_batch_.data() + c * X.rows);
      if (Y.labels) {
        labels_batch_[c] = Y.labels[j];
      } else {
        copy_column(Y.dense, j, Y_batch_.data() + c * Y.dense.rows);
      }
    }
  }

  static void copy_column(ConstMatrix<T> M, index j, T* out) {
    if (!M.transposed) {
      std::copy_n(M.col(j), M.rows, out);
      return;
    }
    for (index i = 0; i < M.rows; ++i) out[i] = M(i, j);
  }

  // The gathered targets of a batch of `count` examples.
  Targets<T> gathered_targets(Targets<T> Y, index count) const {
    if (Y.labels) return Targets<T>::from_labels(labels_batch_.data(), Y.dense.rows, count);
    return {{Y_batch_.data(), Y.dense.rows, count, Y.dense.rows}, nullptr};
  }

  // Steps swap the parameters and state with their spares; this puts the current values back
  // in the buffers they began in, which Python's views of them point into.
  // The epoch's end, too: the network is free for another fit.
  void settle() {
    const std::unique_lock swapping(net_.params_lock);
    settle_buffer(net_.params, spare_params_, home_params_);
    settle_buffer(state_.first, spare_state_.first, home_first_);
    settle_buffer(state_.second, spare_state_.second, home_second_);
    net_.fitting = 0;
  }

  static void settle_buffer(Buffer<T>& current, Buffer<T>& spare, const T* home) {
    if (current.data() == home) return;
    std::copy(current.begin(), current.end(), spare.begin());
    std::swap(current, spare);
  }

  Network<T>& net_;
  OptimizerSettings optimizer_;
  OptimizerState<T>& state_;
  Cache<T> cache_;
  Gradients<T> grads_;
  Buffer<T> X_batch_, Y_batch_;
  std::vector<std::int64_t> labels_batch_;
  std::vector<index> order_;
  std::vector<double> loss_;       // the loss of each example of the batch
  std::vector<char> finite_;       // per thread of a team: whether its share of the update is finite
  std::vector<char> bias_finite_;  // per thread: whether b[l] - lr db[l] is finite on its rows (see descended)
  std::vector<Extent> extents_;    // per thread and layer 0..L (0 unused): see record_extents
  std::vector<double> W_bound_;    // per layer 0..L (0 unused): at least the largest |W[l]|, when W_bound_known_
  bool W_bound_known_ = false;
  std::uint64_t forward_key_ = 0;
  Buffer<T> spare_params_;
  OptimizerState<T> spare_state_;
  ConstMatrix<T> checked_X_{nullptr, 0, 0, 0};  // the X whose entries are known finite (see check_X)
  std::int64_t t_start_ = 0;                    // state_.t when hold_start kept the parameters
  const T *home_params_ = nullptr, *home_first_ = nullptr, *home_second_ = nullptr;  // where the buffers began
};

}  // namespace mlpcore
