// Activation functions g and their derivatives g', one column (one example) at a time.
#pragma once

#include <algorithm>
#include <cmath>

#include "matrix.hpp"

namespace mlpcore {

enum class Activation { identity, step, sigmoid, tanh, relu, leaky_relu, elu, softmax };

struct ActivationSpec {
  Activation kind;
  double alpha;  // slope of leaky_relu for Z < 0, scale of elu for Z < 0; unused by the others
};

// sigmoid(z) = 1 / (1 + e^-z), from e = e^-|z| so that no exponent overflows:
// z >= 0: 1 / (1 + e);  z < 0: e / (1 + e).
template <class T>
inline T sigmoid(T z) {
  const T e = std::exp(-std::abs(z));
  return (z >= 0 ? T(1) : e) / (T(1) + e);
}

// softmax over one column: a_i = e^(z_i - max z) / sum_k e^(z_k - max z)
template <class T>
inline void softmax_column(const T* z, T* a, index n) {
  const T z_max = *std::max_element(z, z + n);
  T sum = 0;
  for (index i = 0; i < n; ++i) sum += a[i] = std::exp(z[i] - z_max);
  const T inverse = T(1) / sum;
  for (index i = 0; i < n; ++i) a[i] *= inverse;
}

// a = g(z) for one column of n units.
template <class T>
inline void g_column(ActivationSpec g, const T* z, T* a, index n) {
  const T alpha = T(g.alpha);
  switch (g.kind) {
    case Activation::identity: std::copy(z, z + n, a); return;
    case Activation::step: for (index i = 0; i < n; ++i) a[i] = z[i] >= 0 ? T(1) : T(0); return;
    case Activation::sigmoid: for (index i = 0; i < n; ++i) a[i] = sigmoid(z[i]); return;
    case Activation::tanh: for (index i = 0; i < n; ++i) a[i] = std::tanh(z[i]); return;
    case Activation::relu: for (index i = 0; i < n; ++i) a[i] = z[i] > 0 ? z[i] : T(0); return;
    case Activation::leaky_relu: for (index i = 0; i < n; ++i) a[i] = z[i] > 0 ? z[i] : alpha * z[i]; return;
    case Activation::elu:
      for (index i = 0; i < n; ++i) a[i] = z[i] > 0 ? z[i] : alpha * std::expm1(std::min(z[i], T(0)));
      return;
    case Activation::softmax: softmax_column(z, a, n); return;
  }
}

// dz = da * g'(z) for one column, with g' written through a = g(z) where that is cheaper:
// sigmoid' = a (1 - a), tanh' = 1 - a^2, elu' = a + alpha for z <= 0.
// softmax has no element-wise g'; it only ever ends in the fused dZ[L] = A[L] - Y.
template <class T>
inline void g_prime_column(ActivationSpec g, const T* z, const T* a, const T* da, T* dz, index n) {
  const T alpha = T(g.alpha);
  switch (g.kind) {
    case Activation::identity: std::copy(da, da + n, dz); return;
    case Activation::step: std::fill(dz, dz + n, T(0)); return;
    case Activation::sigmoid: for (index i = 0; i < n; ++i) dz[i] = da[i] * a[i] * (T(1) - a[i]); return;
    case Activation::tanh: for (index i = 0; i < n; ++i) dz[i] = da[i] * (T(1) - a[i] * a[i]); return;
    case Activation::relu: for (index i = 0; i < n; ++i) dz[i] = z[i] > 0 ? da[i] : T(0); return;
    case Activation::leaky_relu: for (index i = 0; i < n; ++i) dz[i] = z[i] > 0 ? da[i] : alpha * da[i]; return;
    case Activation::elu: for (index i = 0; i < n; ++i) dz[i] = z[i] > 0 ? da[i] : da[i] * (a[i] + alpha); return;
    case Activation::softmax: return;  // never reached: Network admits softmax only with cce
  }
}

}  // namespace mlpcore
