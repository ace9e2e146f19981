// Activation functions g and their derivatives g', each defined once as a pair of scalar
// functions; `with_activation` turns the run-time kind into a compile-time one, so that each
// element-wise loop is written once and compiled for every g without a branch per element.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "matrix.hpp"

namespace mlpcore {

enum class Activation { identity, step, sigmoid, tanh, relu, leaky_relu, elu, softmax };

struct ActivationSpec {
  Activation kind;
  double alpha;  // slope of leaky_relu for Z < 0, scale of elu for Z < 0; unused by the others
};

// e^x in double for x in [-708, 709], without branches or library calls, so that a loop of it
// vectorises: x = k ln2 + r with |r| <= ln2/2 (ln2 in two parts), e^r by its Taylor polynomial
// to r^13 (truncation below 2e-16 relative), 2^k put into the exponent bits.
inline double exp_double(double x) {
  constexpr double round_bias = 0x1.8p52;  // adding it rounds to an integer held in the low bits
  x = x < -708.0 ? -708.0 : x > 709.0 ? 709.0 : x;
  const double biased = x * 1.4426950408889634 + round_bias;
  const double k = biased - round_bias;
  const double r = (x - k * 0.693147180369123816490) - k * 1.90821492927058770002e-10;
  // e^r = sum of r^n / n! for n = 0..13, by Horner's rule
  double p = 1.0 / 6227020800.0;
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  std::int64_t k_bits, round_bits;
  std::memcpy(&k_bits, &biased, sizeof k_bits);
  std::memcpy(&round_bits, &round_bias, sizeof round_bits);
  const std::int64_t scale_bits = (k_bits - round_bits + 1023) << 52;
  double scale;
  std::memcpy(&scale, &scale_bits, sizeof scale);
  return p * scale;
}

// For each kind: value(z) = g(z), and prime(z, a) = g'(z) written through a = g(z) where that
// is cheaper (sigmoid' = a (1 - a), tanh' = 1 - a^2, elu' = a + alpha for z <= 0).
template <Activation kind>
struct G;

template <>
struct G<Activation::identity> {
  template <class T>
  static T value(T z, T) {
    return z;
  }
  template <class T>
  static T prime(T, T, T) {
    return 1;
  }
};

// step: 1 for z >= 0, else 0; g' = 0 (a decision layer: nothing below it learns through it)
template <>
struct G<Activation::step> {
  template <class T>
  static T value(T z, T) {
    return z >= 0 ? T(1) : T(0);
  }
  template <class T>
  static T prime(T, T, T) {
    return 0;
  }
};

// sigmoid(z) = 1 / (1 + e^-z), from e = e^-|z| so that no exponent overflows:
// z >= 0: 1 / (1 + e);  z < 0: e / (1 + e)
template <>
struct G<Activation::sigmoid> {
  template <class T>
  static T value(T z, T) {
    const double e = exp_double(-std::abs(double(z)));
    return T((z >= 0 ? 1.0 : e) / (1.0 + e));
  }
  template <class T>
  static T prime(T, T a, T) {
    return a * (T(1) - a);
  }
};

// tanh(z) = sign(z) (1 - e) / (1 + e) with e = e^-2|z|, in double: exact to float32's precision;
// float64 keeps the library's tanh, whose relative accuracy near 0 the formula lacks.
template <>
struct G<Activation::tanh> {
  template <class T>
  static T value(T z, T) {
    if constexpr (std::is_same_v<T, double>) return std::tanh(z);
    const double e = exp_double(-2 * std::abs(double(z))), t = (1 - e) / (1 + e);
    return T(z < 0 ? -t : t);
  }
  template <class T>
  static T prime(T, T a, T) {
    return T(1) - a * a;
  }
};

// relu: max(z, 0); g'(0) = 0
template <>
struct G<Activation::relu> {
  template <class T>
  static T value(T z, T) {
    return z > 0 ? z : T(0);
  }
  template <class T>
  static T prime(T z, T, T) {
    return z > 0 ? T(1) : T(0);
  }
};

template <>
struct G<Activation::leaky_relu> {
  template <class T>
  static T value(T z, T alpha) {
    return z > 0 ? z : alpha * z;
  }
  template <class T>
  static T prime(T z, T, T alpha) {
    return z > 0 ? T(1) : alpha;
  }
};

// elu: z for z > 0, alpha (e^z - 1) otherwise (expm1 of min(z, 0): no overflow for large z)
template <>
struct G<Activation::elu> {
  template <class T>
  static T value(T z, T alpha) {
    if constexpr (std::is_same_v<T, double>) return z > 0 ? z : alpha * std::expm1(std::min(z, T(0)));
    return z > 0 ? z : T(double(alpha) * (exp_double(std::min(double(z), 0.0)) - 1));
  }
  template <class T>
  static T prime(T z, T a, T alpha) {
    return z > 0 ? T(1) : a + alpha;
  }
};

// f(G<kind>{}) for the element-wise kinds; softmax is column-wise and handled by its callers.
template <class F>
void with_activation(Activation kind, F&& f) {
  switch (kind) {
    case Activation::identity:
      return f(G<Activation::identity>{});
    case Activation::step:
      return f(G<Activation::step>{});
    case Activation::sigmoid:
      return f(G<Activation::sigmoid>{});
    case Activation::tanh:
      return f(G<Activation::tanh>{});
    case Activation::relu:
      return f(G<Activation::relu>{});
    case Activation::leaky_relu:
      return f(G<Activation::leaky_relu>{});
    case Activation::elu:
      return f(G<Activation::elu>{});
    case Activation::softmax:
      return;
  }
}

// softmax over one column: a_i = e^(z_i - max z) / sum_k e^(z_k - max z)
template <class T>
inline void softmax_column(const T* z, T* a, index n) {
  const T z_max = *std::max_element(z, z + n);
  T sum = 0;
  for (index i = 0; i < n; ++i) sum += a[i] = T(exp_double(double(z[i] - z_max)));
  const T inverse = T(1) / sum;
  for (index i = 0; i < n; ++i) a[i] *= inverse;
}

}  // namespace mlpcore
