// The pair thread: a second thread for one example's large products, predict's case. W[1] of a
// 784-256 layer (784 KB) takes one core some 6-8 us to read even from its L2 (2 MiB on an
// AVX-512 Xeon), and does not fit in it on many CPUs (512 KiB on an AMD EPYC, where it came from
// the L3 at every call); in two parts on two cores, each core reads its part, which stays in its
// L2 from call to call. The thread spins for a while after its last part, so that a loop of calls
// finds it awake, then sleeps; a call never waits for it to wake, and takes its part back if it
// has not begun.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "team.hpp"

namespace mlpcore {

class PairThread {
 public:
  // How long the thread spins after its last half, and how soon after the last call a call
  // that finds it asleep wakes it (a loop of calls, not one call now and then).
  static constexpr std::chrono::microseconds spin_time{2000}, loop_gap{1000};

  // The thread of this process, made at the first call (a fork's child makes its own: the count
  // of forks tells it; getpid's system call had cost predict of one example on the mnist net 0.1-0.3
  // us of its 7.0-7.5). No lock: a fork while another thread held one would leave it locked in
  // the child.
  static PairThread& instance() {
    static std::atomic<PairThread*> current{nullptr};
    PairThread* pair = current.load(std::memory_order_acquire);
    while (!pair || pair->forks_ != forks.load(std::memory_order_acquire)) {
      auto* fresh = new PairThread;  // never deleted once started: the thread may outlive static destruction
      if (current.compare_exchange_strong(pair, fresh, std::memory_order_acq_rel)) {
        std::thread([fresh] { fresh->loop(); }).detach();
        return *fresh;
      }
      delete fresh;  // another call made one first, which `pair` now holds
    }
    return *pair;
  }

  // half(0) on the calling thread and half(1) on the pair thread when it is spinning and no
  // other call has it, else on the calling thread too; returns once both are done.
  template <class F>
  void run(const F& half) {
    std::unique_lock<std::mutex> caller(callers_, std::try_to_lock);
    if (!caller || !spinning_.load(std::memory_order_acquire)) {
      half(0);
      half(1);
      if (caller) wake_in_a_loop();
      return;
    }
    job_ = [](const void* f, int i) { (*static_cast<const F*>(f))(i); };
    context_ = &half;
    state_.store(posted, std::memory_order_release);
    half(0);
    int expected = posted;
    if (state_.compare_exchange_strong(expected, idle, std::memory_order_acq_rel)) {
      half(1);  // the thread had not taken it
    } else {
      // the thread may be preempted in its half: back_off lets it back in
      for (long spins = 0; state_.load(std::memory_order_acquire) != done; ++spins) back_off(spins);
      state_.store(idle, std::memory_order_relaxed);
      ++halves_taken;
    }
    last_call_ = std::chrono::steady_clock::now();
  }

  // Halves the pair thread has computed, which the tests read to see that it works.
  std::atomic<long> halves_taken{0};

 private:
  enum State { idle, posted, taken, done };

  // its thread starts once it is the process's (see instance)
  PairThread() : forks_(forks.load(std::memory_order_acquire)) {}

  // A call that found the thread asleep: wakes it if the last call was a moment ago.
  void wake_in_a_loop() {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_call_ < loop_gap) {
      const std::lock_guard<std::mutex> lock(sleep_);
      wake_ = true;
      woken_.notify_one();
    }
    last_call_ = now;
  }

  void loop() {
    for (;;) {
      spinning_.store(true, std::memory_order_release);
      auto until = std::chrono::steady_clock::now() + spin_time;
      for (long spins = 0;; ++spins) {
        int expected = posted;
        if (state_.load(std::memory_order_acquire) == posted &&
            state_.compare_exchange_strong(expected, taken, std::memory_order_acq_rel)) {
          job_(context_, 1);
          state_.store(done, std::memory_order_release);
          until = std::chrono::steady_clock::now() + spin_time;
        } else if (spins % 1024 == 0 && std::chrono::steady_clock::now() > until) {
          break;
        } else {
          cpu_pause();
        }
      }
      spinning_.store(false, std::memory_order_release);
      std::unique_lock<std::mutex> lock(sleep_);
      woken_.wait(lock, [this] { return wake_; });
      wake_ = false;
    }
  }

  const unsigned forks_;  // the fork count of the process it was made in
  std::mutex callers_;    // one call at a time has the thread
  std::atomic<int> state_{idle};
  std::atomic<bool> spinning_{false};
  void (*job_)(const void*, int) = nullptr;
  const void* context_ = nullptr;
  std::chrono::steady_clock::time_point last_call_{};  // written by the caller holding callers_
  std::mutex sleep_;
  std::condition_variable woken_;
  bool wake_ = false;
};

}  // namespace mlpcore
