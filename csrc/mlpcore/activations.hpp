// Activation functions g and their derivatives g', each defined once as a pair of scalar
// functions; `with_activation` turns the run-time kind into a compile-time one, so that each
// element-wise loop is written once and compiled for every g without a branch per element.
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

// For each kind: value(z) = g(z), and prime(z, a) = g'(z) written through a = g(z) where that
// is cheaper (sigmoid' = a (1 - a), tanh' = 1 - a^2, elu' = a + alpha for z <= 0).
template <Activation kind>
struct G;

template <>
struct G<Activation::identity> {
  template <class T> static T value(T z, T) { return z; }
  template <class T> static T prime(T, T, T) { return 1; }
};

// step: 1 for z >= 0, else 0; g' = 0 (a decision layer: nothing below it learns through it)
template <>
struct G<Activation::step> {
  template <class T> static T value(T z, T) { return z >= 0 ? T(1) : T(0); }
  template <class T> static T prime(T, T, T) { return 0; }
};

// sigmoid(z) = 1 / (1 + e^-z), from e = e^-|z| so that no exponent overflows:
// z >= 0: 1 / (1 + e);  z < 0: e / (1 + e)
template <>
struct G<Activation::sigmoid> {
  template <class T> static T value(T z, T) {
    const T e = std::exp(-std::abs(z));
    return (z >= 0 ? T(1) : e) / (T(1) + e);
  }
  template <class T> static T prime(T, T a, T) { return a * (T(1) - a); }
};

template <>
struct G<Activation::tanh> {
  template <class T> static T value(T z, T) { return std::tanh(z); }
  template <class T> static T prime(T, T a, T) { return T(1) - a * a; }
};

// relu: max(z, 0); g'(0) = 0
template <>
struct G<Activation::relu> {
  template <class T> static T value(T z, T) { return z > 0 ? z : T(0); }
  template <class T> static T prime(T z, T, T) { return z > 0 ? T(1) : T(0); }
};

template <>
struct G<Activation::leaky_relu> {
  template <class T> static T value(T z, T alpha) { return z > 0 ? z : alpha * z; }
  template <class T> static T prime(T z, T, T alpha) { return z > 0 ? T(1) : alpha; }
};

// elu: z for z > 0, alpha (e^z - 1) otherwise (expm1 of min(z, 0): no overflow for large z)
template <>
struct G<Activation::elu> {
  template <class T> static T value(T z, T alpha) { return z > 0 ? z : alpha * std::expm1(std::min(z, T(0))); }
  template <class T> static T prime(T z, T a, T alpha) { return z > 0 ? T(1) : a + alpha; }
};

// f(G<kind>{}) for the element-wise kinds; softmax is column-wise and handled by its callers.
template <class F>
void with_activation(Activation kind, F&& f) {
  switch (kind) {
    case Activation::identity: return f(G<Activation::identity>{});
    case Activation::step: return f(G<Activation::step>{});
    case Activation::sigmoid: return f(G<Activation::sigmoid>{});
    case Activation::tanh: return f(G<Activation::tanh>{});
    case Activation::relu: return f(G<Activation::relu>{});
    case Activation::leaky_relu: return f(G<Activation::leaky_relu>{});
    case Activation::elu: return f(G<Activation::elu>{});
    case Activation::softmax: return;
  }
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

}  // namespace mlpcore
