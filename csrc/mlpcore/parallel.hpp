// OpenMP over the columns (examples) of an element-wise pass, only where the work pays for
// waking the team, and sums over the columns accumulated in double.
#pragma once

#include <omp.h>

#include <algorithm>
#include <atomic>

#include "matrix.hpp"

namespace mlpcore {

// Element count below which a pass stays on the calling thread.
constexpr index parallel_threshold = index(1) << 15;

// The thread count of every parallel region, whichever thread starts it (set_num_threads).
inline std::atomic<int> team_size{omp_get_max_threads()};

// f(j) for every column j = 0..m-1; `work` is the pass's element count.
template <class F>
void for_each_column(index m, index work, const F& f) {
  F body = f;  // each thread's own copy (firstprivate): what it captured is then loop invariant
#pragma omp parallel for schedule(static) firstprivate(body) \
    num_threads(team_size.load()) if (work >= parallel_threshold)
  for (index j = 0; j < m; ++j) body(j);
}

// For each row i of an (n, m) matrix: out(i, sum over j of term(i, j)), the sum taken in double,
// sixteen rows at a time so that each column is read a cache line at a time.
template <class Term, class Out>
void for_each_row_sum(index n, index m, Term&& term, Out&& out) {
  constexpr index block = 16;
  for (index i0 = 0; i0 < n; i0 += block) {
    const index rows = std::min(block, n - i0);
    double sum[block] = {};
    for (index j = 0; j < m; ++j)
      for (index r = 0; r < rows; ++r) sum[r] += double(term(i0 + r, j));
    for (index r = 0; r < rows; ++r) out(i0 + r, sum[r]);
  }
}

}  // namespace mlpcore
