// OpenMP over the columns (examples) of an element-wise pass, only where the work pays for
// waking the team. Never called from inside a BLAS call or another parallel region.
#pragma once

#include "matrix.hpp"

namespace mlpcore {

// Element count below which a pass stays on the calling thread.
constexpr index parallel_threshold = index(1) << 15;

// f(j) for every column j = 0..m-1; `work` is the pass's element count.
template <class F>
void for_each_column(index m, index work, F&& f) {
#pragma omp parallel for schedule(static) if (work >= parallel_threshold)
  for (index j = 0; j < m; ++j) f(j);
}

}  // namespace mlpcore
