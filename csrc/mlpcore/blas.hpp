// The GEMM wrapper over CBLAS and the thread controls shared by BLAS and OpenMP.
#pragma once

#include "matrix.hpp"

namespace mlpcore {

// C = alpha op(A) op(B) + beta C, column-major. op(X) is X, or X^T when `trans_X`;
// a ConstMatrix stored transposed flips its flag, so C-ordered inputs need no copy.
//   op(A): (C.rows, k), op(B): (k, C.cols)
template <class T>
void gemm(bool trans_A, ConstMatrix<T> A, bool trans_B, ConstMatrix<T> B, T alpha, T beta, Matrix<T> C);

// One thread count for BLAS's pool and OpenMP's; the two never run nested. k in 1..max_threads().
void set_num_threads(int k);
int get_num_threads();
int max_threads();  // the processors available to this process
// BLAS's own thread count alone (a team runs BLAS single-threaded); set_num_threads sets both.
void set_blas_threads(int k);

}  // namespace mlpcore
