// Batch normalisation of Z over the examples of a batch (Ioffe and Szegedy, 2015), per unit.
#pragma once

#include <cmath>

#include "matrix.hpp"
#include "parallel.hpp"

namespace mlpcore {

// mu = (1/m) sum over columns of Z,  var = (1/m) sum over columns of (Z - mu)^2 (biased)
//   Z: (n, m), mu, var: (n, 1)
template <class T>
void batch_statistics(ConstMatrix<T> Z, T* mu, T* var) {
  const index n = Z.rows, m = Z.cols;
  for_each_row_sum(n, m, [&](index i, index j) { return Z(i, j); }, [&](index i, double sum) { mu[i] = T(sum / m); });
  for_each_row_sum(
      n, m, [&](index i, index j) { return (Z(i, j) - mu[i]) * (Z(i, j) - mu[i]); },
      [&](index i, double sum) { var[i] = T(sum / m); });
}

// inv_std = 1 / sqrt(var + eps), Z_norm = (Z - mu) inv_std, Z_tilde = gamma Z_norm + beta
//   Z, Z_norm, Z_tilde: (n, m); mu, var, gamma, beta, inv_std: (n, 1)
template <class T>
void batch_norm_forward(ConstMatrix<T> Z, const T* mu, const T* var, T eps, const T* gamma, const T* beta, T* inv_std,
                        Matrix<T> Z_norm, Matrix<T> Z_tilde) {
  for (index i = 0; i < Z.rows; ++i) inv_std[i] = T(1) / std::sqrt(var[i] + eps);
  for (index j = 0; j < Z.cols; ++j)
    for (index i = 0; i < Z.rows; ++i) {
      Z_norm(i, j) = (Z(i, j) - mu[i]) * inv_std[i];
      Z_tilde(i, j) = gamma[i] * Z_norm(i, j) + beta[i];
    }
}

// running_mean = (1 - momentum) running_mean + momentum mu
// running_var = (1 - momentum) running_var + momentum var m / (m - 1)   (the unbiased variance)
//   all (n, 1); m >= 2
template <class T>
void update_running_statistics(const T* mu, const T* var, index n, index m, T momentum, T* running_mean,
                               T* running_var) {
  const T unbiased = T(m) / T(m - 1);
  for (index i = 0; i < n; ++i) {
    running_mean[i] = (1 - momentum) * running_mean[i] + momentum * mu[i];
    running_var[i] = (1 - momentum) * running_var[i] + momentum * unbiased * var[i];
  }
}

// With dZ_tilde = m dJ/dZ_tilde (per-example convention):
// dgamma = (1/m) sum over columns of dZ_tilde * Z_norm,  dbeta = (1/m) sum over columns of dZ_tilde,
// dZ = gamma inv_std (dZ_tilde - dbeta - Z_norm dgamma)   (the exact backward through mu and var)
//   dZ_tilde, Z_norm, dZ: (n, m); gamma, inv_std, dgamma, dbeta: (n, 1)
template <class T>
void batch_norm_backward(ConstMatrix<T> dZ_tilde, ConstMatrix<T> Z_norm, const T* gamma, const T* inv_std, T* dgamma,
                         T* dbeta, Matrix<T> dZ) {
  const index n = dZ.rows, m = dZ.cols;
  for_each_row_sum(
      n, m, [&](index i, index j) { return dZ_tilde(i, j) * Z_norm(i, j); },
      [&](index i, double sum) { dgamma[i] = T(sum / m); });
  for_each_row_sum(
      n, m, [&](index i, index j) { return dZ_tilde(i, j); }, [&](index i, double sum) { dbeta[i] = T(sum / m); });
  for (index j = 0; j < m; ++j)
    for (index i = 0; i < n; ++i)
      dZ(i, j) = gamma[i] * inv_std[i] * (dZ_tilde(i, j) - dbeta[i] - Z_norm(i, j) * dgamma[i]);
}

}  // namespace mlpcore
