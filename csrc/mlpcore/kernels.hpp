// Element-wise kernels of a dense layer, each one pass over its matrices.
#pragma once

#include <cmath>

#include "activations.hpp"
#include "parallel.hpp"

namespace mlpcore {

// Z = Z + b (b broadcast over the columns), A = g(Z), in one pass after the GEMM.
//   b: (n, 1), Z, A: (n, m)
template <class T>
void bias_activation_forward(ActivationSpec g, const T* b, Matrix<T> Z, Matrix<T> A) {
  for_each_column(Z.cols, Z.size(), [&](index j) {
    T* z = Z.col(j);
    for (index i = 0; i < Z.rows; ++i) z[i] += b[i];
    g_column(g, z, A.col(j), Z.rows);
  });
}

// dZ = dA * g'(Z)
//   Z, A, dA, dZ: (n, m)
template <class T>
void activation_backward(ActivationSpec g, ConstMatrix<T> Z, ConstMatrix<T> A, ConstMatrix<T> dA, Matrix<T> dZ) {
  for_each_column(dZ.cols, dZ.size(), [&](index j) {
    g_prime_column(g, Z.data + j * Z.ld, A.data + j * A.ld, dA.data + j * dA.ld, dZ.col(j), dZ.rows);
  });
}

// db = scale * sum over the columns of dZ
//   dZ: (n, m), db: (n, 1)
template <class T>
void column_sum(ConstMatrix<T> dZ, T scale, T* db) {
  for (index i = 0; i < dZ.rows; ++i) db[i] = 0;
  for (index j = 0; j < dZ.cols; ++j) {
    const T* dz = dZ.data + j * dZ.ld;
    for (index i = 0; i < dZ.rows; ++i) db[i] += dz[i];
  }
  for (index i = 0; i < dZ.rows; ++i) db[i] *= scale;
}

// x = x - alpha y, over two flat buffers of `size` entries (a gradient-descent step).
template <class T>
void subtract_scaled(T* x, const T* y, T alpha, index size) {
#pragma omp parallel for schedule(static) if (size >= parallel_threshold)
  for (index k = 0; k < size; ++k) x[k] -= alpha * y[k];
}

// True when no entry of M is NaN or infinite: x - x is 0 for a finite x and NaN otherwise.
template <class T>
bool all_finite(ConstMatrix<T> M) {
  const index outer = M.transposed ? M.rows : M.cols, inner = M.transposed ? M.cols : M.rows;
  T residue = 0;
#pragma omp parallel for schedule(static) reduction(+ : residue) if (M.rows * M.cols >= parallel_threshold)
  for (index j = 0; j < outer; ++j)
    for (index i = 0; i < inner; ++i) residue += M.data[i + j * M.ld] - M.data[i + j * M.ld];
  return residue == 0;
}

}  // namespace mlpcore
