// One dense layer: forward and backward over matrix views, with no allocation.
#pragma once

#include "blas.hpp"
#include "kernels.hpp"

namespace mlpcore {

// Z = W A_prev + b,  A = g(Z)
//   W: (n, n_prev), b: (n, 1), A_prev: (n_prev, m), Z, A: (n, m)
template <class T>
void dense_forward(ConstMatrix<T> W, const T* b, ConstMatrix<T> A_prev, ActivationSpec g, Matrix<T> Z, Matrix<T> A) {
  gemm(false, W, false, A_prev, T(1), T(0), Z);
  bias_activation_forward(g, b, Z, A);
}

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
