// OpenMP over the columns (examples) of an element-wise pass, only where the work pays for
// waking the team, and sums over the columns accumulated in double.
#pragma once

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

#include "matrix.hpp"

namespace mlpcore {

// With GCC 12 and later on x86-64 Linux, a function so marked is compiled three times: for the
// x86-64 baseline (SSE2, 4 floats a vector), for x86-64-v3 (AVX2 and FMA, 8) and for x86-64-v4
// (AVX-512, 16), the CPU choosing at load (target_clones); flatten compiles what it calls into
// each. They may differ in the last bit (FMA rounds a * b + c once; sums go over other vector
// widths), as BLAS's kernels do from CPU to CPU. On an AVX-512 Xeon the tiny 2-16-16-1 tanh net's
// step took 3.4-4.3 us with the AVX-512 clone against 4.1-4.9 us with AVX2's (six pairs);
// mnist's fit did not move beyond the noise.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12 && defined(__GLIBC__)
#define MLPCORE_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"), flatten))
#define MLPCORE_AVX512_CLONES 1
#else
#define MLPCORE_VECTOR_CLONES
#define MLPCORE_AVX512_CLONES 0
#endif

// Whether the functions marked MLPCORE_VECTOR_CLONES run their AVX-512 build on this CPU.
inline bool avx512_clones() {
#if MLPCORE_AVX512_CLONES
  static const bool taken = (__builtin_cpu_init(), __builtin_cpu_supports("x86-64-v4"));
  return taken;
#else
  return false;
#endif
}

// Element count below which a pass stays on the calling thread. A team pays only for passes of
// some 100 us: on a machine whose other cores are busy, waking a second thread can cost a
// scheduler time slice (milliseconds), so shorter passes are not worth that risk.
constexpr index parallel_threshold = index(1) << 18;

// Multiply-adds from which work outside fit's team is shared out over the threads: a call of
// forward or backward (m times the weights, see Network::call_threads) or else a product by
// itself (see gemm). Some 200 us and more on one thread: waking a sleeping thread costs 70-150 us
// on a virtual machine, and below this a mnist-sized forward and backward ran slower on 2 threads.
constexpr double team_work_threshold = 1 << 23;

// Multiply-adds from which a team shares a layer's product out by the rows of its result rather
// than by the batch's columns, where the result has twice as many rows as columns and more (see
// Network::tall and by_rows; in a fit's forward on two threads, by W[l]'s columns instead: see
// Network::inputs_forward). By columns, each thread reads (packs) all of W[l] for its columns, and in
// fit half of it comes from the other core, which has just updated it; by rows, half of W[l]
// and all of A[l-1]. Fits on two threads of an AVX-512 Xeon, us a step by columns against by
// rows: 784-256-128-10 on batch 128, 697-719 against 687-693; on 64, 448-462 against 403-414;
// 784-512-512-10 on 32, 951-983 against 843-873; 1024-1024-10 on 64, 1793-1855 against
// 1541-1571; 784-1024-10 on 16, 825-851 against 627-659. From 2^20, 784-100-10 on 32 ran 3-5%
// slower by rows; with the rows only at least the columns, 784-256-128-10 on 128 from 2^22
// (layer 2's product too, 128 rows on 128 columns) took 709-712 us against 687-693. A dA[l-1]
// that the tiles take through W[l]^T goes by rows only from twice this (see Network::dA_by_rows).
constexpr double row_split_work = 1 << 22;

// Multiply-adds from which one example's product is computed in two parts, the second on the
// pair thread (see pair.hpp), below team_work_threshold: a 784-256 layer's W (200,704) and up,
// whose parts take some 3-5 us each, against well under a microsecond to hand one over.
constexpr double pair_work = 1 << 16;

// The thread count of every parallel region, whichever thread starts it (set_num_threads); at
// first OpenMP's (OMP_NUM_THREADS), within the processors as set_num_threads's count is.
inline std::atomic<int> team_size{std::min(omp_get_max_threads(), omp_get_num_procs())};

// Whether this process has started a parallel region of more than one thread. GCC's OpenMP
// runtime cannot start threads in a child made by fork after that (the child would wait forever
// for its parent's threads), so such a child runs on one thread (see blas.cpp).
inline std::atomic<bool> threads_started{false};

// The forks this process descends from, counted in the child (see blas.cpp): what a lock held
// at a fork says is void in the child, where the threads that held it do not exist.
inline std::atomic<unsigned> forks{0};

// The thread count of a parallel region about to start (set_num_threads's by default), noting
// when threads start.
inline int region_threads(int threads = team_size.load()) {
  if (threads > 1) threads_started.store(true, std::memory_order_relaxed);
  return threads;
}

// Whether a pass over `work` elements pays for waking the OpenMP team.
// Never inside a team (see team.hpp), which has shared the work out already.
inline bool worth_a_team(index work) {
  return work >= parallel_threshold && team_size.load() > 1 && !omp_in_parallel();
}

// f(j) for every j = 0..n-1 (the columns of a pass, or the entries of a flat buffer): on the
// team when the pass of `work` elements is worth it, else on the calling thread without
// entering the OpenMP runtime. Each thread runs its own copy of f, so that what f captured
// is loop invariant to the vectoriser.
template <class F>
void for_each_column(index n, index work, const F& f) {
  F body = f;
  if (!worth_a_team(work)) {
    for (index j = 0; j < n; ++j) body(j);
    return;
  }
#pragma omp parallel for schedule(static) firstprivate(body) num_threads(region_threads())
  for (index j = 0; j < n; ++j) body(j);
}

// Thread `id` of `size`'s share of 0..n-1: `size` consecutive ranges as equal as can be.
inline Range share(index n, index id, index size) { return {n * id / size, n * (id + 1) / size}; }

// The calling OpenMP thread's share of 0..n-1 (see share), in a parallel region.
inline Range omp_share(index n) { return share(n, omp_get_thread_num(), omp_get_num_threads()); }

// An element-wise pass over (n, m) matrices that hold their columns back to back (leading
// dimension n, as every cache's and gradient's matrices do): f(cols) for a range of columns whose
// n cols.size() entries it takes as one run, so that short columns still make long vector loops
// (a 16-unit layer's column is two AVX2 vectors); one column a call when `per_column`
// (softmax's). On the team when the pass is worth it, a share of the columns each.
template <class F>
void for_each_run(index n, index m, bool per_column, const F& f) {
  if (per_column) return for_each_column(m, n * m, [&](index j) { f(Range{j, j + 1}); });
  if (!worth_a_team(n * m)) return f(Range{0, m});
#pragma omp parallel num_threads(region_threads())
  f(omp_share(m));
}

// The allocator of the large buffers (parameters, gradient, optimizer state, caches): zeroed
// blocks from calloc, each starting at a cache line (malloc's large blocks start 16 bytes past a
// page, where every 64-byte load of a 784-256 W[1] spans two lines, and one example's forward of
// the mnist net took 10.3-10.9 us instead of 8.3-8.4). calloc zeroes only memory that malloc
// reuses: a block it maps fresh from the system (glibc's blocks of 32 MiB and more, and smaller
// ones until a freed block of their size raises its threshold) is zero already, and its pages
// take memory only where they are first written, by the threads that write them. A buffer of
// such a block that a fit never writes costs next to nothing: wide's trainer (its 67 MB of
// gradient and spare parameters, which plain SGD's steps into the products write only in db)
// took 26-28 ms to make when every page was touched and zeroed first, and its 10-step fit took
// 0.398-0.403 s against 0.420-0.427. Constructing an element without a value leaves its zeros.
template <class T>
struct Zeroed {
  static_assert(std::is_trivially_copyable_v<T>, "a zeroed block holds values whose zero bytes are their zero");
  using value_type = T;
  Zeroed() = default;
  template <class U>
  Zeroed(const Zeroed<U>&) noexcept {}
  static constexpr std::size_t line = 64;

  // line bytes more than asked for, the block's own address kept in the word before the first element
  T* allocate(std::size_t n) {
    if (n > (std::size_t(-1) - line) / sizeof(T)) throw std::bad_array_new_length();
    void* block = std::calloc(n * sizeof(T) + line, 1);
    if (!block) throw std::bad_alloc();
    const std::uintptr_t first = (reinterpret_cast<std::uintptr_t>(block) + line) & ~std::uintptr_t(line - 1);
    reinterpret_cast<void**>(first)[-1] = block;
    return reinterpret_cast<T*>(first);
  }
  void deallocate(T* p, std::size_t) noexcept { std::free(reinterpret_cast<void**>(p)[-1]); }

  template <class U>
  void construct(U*) noexcept {}  // the block's zeros
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

// Any Zeroed frees what another allocated.
template <class T, class U>
bool operator==(const Zeroed<T>&, const Zeroed<U>&) {
  return true;
}
template <class T, class U>
bool operator!=(const Zeroed<T>&, const Zeroed<U>&) {
  return false;
}

// A flat buffer of T, zeroed when made, at a cache line (see Zeroed). Sized once: one shrunk and
// grown again within its capacity (resize, clear) would keep the old values where a std::vector
// would zero them.
template <class T>
using Buffer = std::vector<T, Zeroed<T>>;

// Whether f(k) != 0 for some k in r (f may write as it goes). The loop is an integer
// or-reduction, so that it vectorises, over a copy of f, whose captures are then loop invariant to
// the vectoriser. Compiled for AVX2 and AVX-512 as well (MLPCORE_VECTOR_CLONES): an optimizer's step is such a pass,
// and Adam's square roots and divisions make it compute-bound: a fit with Adam of 256 steps of 16
// examples on a 512-512-256-10 net took 130-154 ms against 199-234 ms on the baseline's SSE2
// (four turns each; plain SGD's step, bound by memory, did not move).
template <class F>
MLPCORE_VECTOR_CLONES bool any_nonzero(Range r, const F& f) {
  F body = f;
  int nonzero = 0;
#pragma omp simd reduction(| : nonzero)
  for (index k = r.begin; k < r.end; ++k) nonzero |= body(k) != 0;
  return nonzero;
}

// True when f(k) == 0 for every k = 0..n-1 (see any_nonzero); on the team when the pass of `work`
// elements is worth it, each thread taking a range through the same code as the calling thread
// alone, so that what f writes does not depend on the threads.
template <class F>
bool all_zero(index n, index work, const F& f) {
  if (!worth_a_team(work)) return !any_nonzero({0, n}, f);
  int nonzero = 0;
#pragma omp parallel reduction(| : nonzero) num_threads(region_threads())
  nonzero |= any_nonzero(omp_share(n), f);
  return !nonzero;
}

// For each row i of an (n, m) matrix: out(i, sum over j of term(i, j)), the sum taken in double,
// sixteen rows at a time so that each column is read a cache line at a time.
template <class Term, class Out>
void for_each_row_sum(index n, index m, Term&& term, Out&& out) {
  constexpr index block = 16;
  for (index i0 = 0; i0 < n; i0 += block) {
    const index rows = std::min(block, n - i0);
    double sum[block] = {};
    const auto add_columns = [&](auto count) {
      for (index j = 0; j < m; ++j)
        for (index r = 0; r < count; ++r) sum[r] += double(term(i0 + r, j));
    };
    // a whole block as a count known at compile time, whose loop the vectoriser unrolls: the
    // tiny 2-16-16-1 fit's step (db of 16 rows) took 4.04-4.13 us so, against 4.13-4.30 (five
    // turns each); the sums, each in the same order, are the same
    if (rows == block) {
      add_columns(std::integral_constant<index, block>{});
    } else {
      add_columns(rows);
    }
    for (index r = 0; r < rows; ++r) out(i0 + r, sum[r]);
  }
}

}  // namespace mlpcore
