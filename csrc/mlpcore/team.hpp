// A team of threads that shares out one training step, or one large call of forward or backward:
// the columns (examples) of a batch, the rows of a batch-norm layer, the columns of each dW[l]
// and the parameters whose gradient it computed; each thread calls single-threaded BLAS (see
// blas.cpp), so products never nest teams.
#pragma once

#include <omp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <new>
#include <thread>

#include "matrix.hpp"
#include "parallel.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace mlpcore {

// A moment's pause in a spin loop, which lets the core's other work go on.
inline void cpu_pause() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

// The wait of the spins-th round of a loop waiting for another thread: a pause, after 4096
// rounds a yield, after 65536 a sleep of 50 us, so that a thread kept waiting long (a Python
// hook, a preempted thread, a busy machine) gives its core away.
inline void back_off(long spins) {
  if (spins < 4096) {
    cpu_pause();
  } else if (spins < 65536) {
    std::this_thread::yield();
  } else {
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

// A barrier that spins (a wake-up through the OS costs tens of us on a virtual machine), then
// yields, then sleeps, so that a thread kept waiting long (a Python hook, a busy machine)
// gives its core away.
class SpinBarrier {
 public:
  void reset(int size) { size_ = size; }

  void wait() {
    const unsigned generation = generation_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) == size_ - 1) {
      arrived_.store(0, std::memory_order_relaxed);
      generation_.store(generation + 1, std::memory_order_release);
      return;
    }
    for (long spins = 0; generation_.load(std::memory_order_acquire) == generation; ++spins) back_off(spins);
  }

 private:
  std::atomic<int> arrived_{0};
  std::atomic<unsigned> generation_{0};
  int size_ = 1;
};

// A shared lock (for std::shared_lock and std::unique_lock) that lets a waiting writer in before
// new readers: the writer waits only for the readers already in. std::shared_mutex lets readers
// in first, and a fit that swaps the parameters under it between steps ran 230 times slower
// beside three threads predicting with the same network in a loop. Not recursive. In a child
// made by fork it starts afresh: a reader in another thread at the fork would have kept the
// child's first writer waiting forever.
class WriterFirstLock {
 public:
  void lock_shared() {
    forget_other_processes();
    std::unique_lock lock(mutex_);
    turn_.wait(lock, [&] { return writers_ == 0; });
    ++readers_;
  }
  void unlock_shared() {
    const std::lock_guard lock(mutex_);
    if (--readers_ == 0 && writers_ > 0) turn_.notify_all();  // only writers wait for readers
  }
  void lock() {
    forget_other_processes();
    std::unique_lock lock(mutex_);
    ++writers_;  // waiting or writing: readers wait from now on
    turn_.wait(lock, [&] { return readers_ == 0 && !writing_; });
    writing_ = true;
  }
  void unlock() {
    const std::lock_guard lock(mutex_);
    writing_ = false;
    --writers_;
    turn_.notify_all();
  }

 private:
  // After a fork, the state the parent's threads left (made anew, as after construction), by
  // the first thread of the child to take the lock; another one meanwhile waits for it.
  void forget_other_processes() {
    const unsigned now = forks.load(std::memory_order_acquire);
    for (unsigned seen = forks_.load(std::memory_order_acquire); seen != now;
         seen = forks_.load(std::memory_order_acquire)) {
      if (seen != resetting && forks_.compare_exchange_strong(seen, resetting)) {
        new (&mutex_) std::mutex;
        new (&turn_) std::condition_variable;
        readers_ = writers_ = 0;
        writing_ = false;
        forks_.store(now, std::memory_order_release);
        return;
      }
      cpu_pause();
    }
  }
  static constexpr unsigned resetting = ~0u;  // forks_ while a thread makes the state anew

  std::mutex mutex_;
  std::condition_variable turn_;
  int readers_ = 0, writers_ = 0;
  bool writing_ = false;
  std::atomic<unsigned> forks_{forks.load()};  // the fork count of the process this state belongs to
};

// Thread `id` of a team of `size`; the solo team (one thread, no barrier) is the default.
struct Team {
  int id = 0, size = 1;
  SpinBarrier* barrier = nullptr;

  // This thread's share of 0..n-1 (see mlpcore::share).
  Range share(index n) const { return mlpcore::share(n, id, size); }
  void sync() const {
    if (barrier) barrier->wait();
  }
  bool master() const { return id == 0; }
};

// The size of the team that run_team ran last (1 for the calling thread alone), which the
// tests read to see which path a call took.
inline std::atomic<int> last_team_size{1};

// f(team) on each thread of a team of `threads`, the calling thread being the master (id 0);
// f(Team{}) on the calling thread alone when threads is 1. f must not throw.
template <class F>
void run_team(int threads, const F& f) {
  if (threads <= 1) {
    last_team_size = 1;
    return f(Team{});
  }
  SpinBarrier barrier;
#pragma omp parallel num_threads(region_threads(threads))
  {
#pragma omp single
    {
      barrier.reset(omp_get_num_threads());  // the runtime may grant fewer threads than asked
      last_team_size = omp_get_num_threads();
    }
    f(Team{omp_get_thread_num(), omp_get_num_threads(), &barrier});
  }
}

}  // namespace mlpcore
