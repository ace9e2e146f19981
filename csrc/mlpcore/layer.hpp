// The backward of a dense layer Z = W A_prev + b over matrix views, with no allocation.
#pragma once

#include "blas.hpp"
#include "kernels.hpp"

namespace mlpcore {

// dW = (1/m) dZ A_prev^T,  db = (1/m) sum over columns of dZ,  dA_prev = W^T dZ (skipped when dA_prev is null)
//   W, dW: (n, n_prev), A_prev, dA_prev: (n_prev, m), dZ: (n, m), db: (n, 1)
template <class T>
void dense_backward(ConstMatrix<T> W, ConstMatrix<T> A_prev, ConstMatrix<T> dZ, Matrix<T> dW, T* db,
                    Matrix<T>* dA_prev) {
  const T one_over_m = T(1) / T(dZ.cols);
  gemm(false, dZ, true, A_prev, one_over_m, T(0), dW);
  column_sum(dZ, one_over_m, db);
  if (dA_prev) gemm(true, W, false, dZ, T(1), T(0), *dA_prev);
}

}  // namespace mlpcore
