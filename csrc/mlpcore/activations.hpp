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

// e^x without branches or library calls, so that a loop of it vectorises: x = k ln2 + r with
// |r| <= ln2/2 (ln2 in two parts, so k ln2 is exact), e^r by its Taylor polynomial to r^degree,
// and 2^k written into the exponent bits. float: degree 7 (truncation 5e-9 relative), double:
// degree 13 (2e-16). x is clamped to [low, high]: low gives k = -exponent_bias, the exponent
// field 0 and thus 2^k = 0, so that below about the smallest normal number e^x is 0 (its true
// value is a subnormal number or 0 there).
template <class T>
struct ExpConstants;
template <>
struct ExpConstants<float> {
  using Bits = std::uint32_t;  // unsigned: a NaN x gives any bits, which must not overflow a signed shift
  static constexpr int degree = 7, mantissa_bits = 23, exponent_bias = 127;
  static constexpr float low = -88.0f, high = 88.7f, ln2_high = 0.693359375f, ln2_low = -2.12194440e-4f;
  static constexpr float round_bias = 0x1.8p23f;  // adding it rounds to an integer held in the low bits
};
template <>
struct ExpConstants<double> {
  using Bits = std::uint64_t;
  static constexpr int degree = 13, mantissa_bits = 52, exponent_bias = 1023;
  static constexpr double low = -709.0, high = 709.0, ln2_high = 0.693147180369123816490,
                          ln2_low = 1.90821492927058770002e-10;
  static constexpr double round_bias = 0x1.8p52;
};

template <class T>
inline T exp_poly(T x) {
  using E = ExpConstants<T>;
  using Bits = typename E::Bits;
  x = x < E::low ? E::low : x > E::high ? E::high : x;
  const T biased = x * T(1.4426950408889634) + E::round_bias;
  const T k = biased - E::round_bias;
  const T r = (x - k * E::ln2_high) - k * E::ln2_low;
  T p = 1;  // e^r = sum over n = 0..degree of r^n / n!, by Horner's rule: p = 1 + r/n (p) for n = degree..1
#pragma GCC unroll 16
  for (int n = E::degree; n >= 1; --n) p = T(1) + r * p * (T(1) / T(n));
  Bits k_bits, round_bits;
  std::memcpy(&k_bits, &biased, sizeof k_bits);
  const T round_bias = E::round_bias;
  std::memcpy(&round_bits, &round_bias, sizeof round_bits);
  const Bits scale_bits = (k_bits - round_bits + E::exponent_bias) << E::mantissa_bits;
  T scale;
  std::memcpy(&scale, &scale_bits, sizeof scale);
  return p * scale;
}

// For each kind: value(z) = g(z), and prime(z, a) = g'(z) written through a = g(z) where that
// is cheaper and as exact (sigmoid' = a (1 - a), tanh' = 1 - a^2).
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
    const T e = exp_poly(-std::abs(z));
    return (z >= 0 ? T(1) : e) / (T(1) + e);
  }
  template <class T>
  static T prime(T, T a, T) {
    return a * (T(1) - a);
  }
};

// float32: tanh(z) = sign(z) (1 - e) / (1 + e) with e = e^-2|z|, and z - z^3/3 + 2 z^5/15 for
// |z| < 1/16, where 1 - e would cancel (both within 3e-7 relative); float64 keeps the library's.
template <>
struct G<Activation::tanh> {
  template <class T>
  static T value(T z, T) {
    if constexpr (std::is_same_v<T, double>) return std::tanh(z);
    const T e = exp_poly(-2 * std::abs(z)), t = (1 - e) / (1 + e), z2 = z * z;
    const T near_zero = z * (1 - z2 * (T(1) / 3 - z2 * (T(2) / 15)));
    return std::abs(z) < T(0.0625) ? near_zero : z < 0 ? -t : t;
  }
  template <class T>
  static T prime(T, T a, T) {
    return T(1) - a * a;
  }
};

// relu: max(z, 0), NaN for a NaN z (as numpy.maximum: a forward that overflowed shows); g'(0) = 0
template <>
struct G<Activation::relu> {
  template <class T>
  static T value(T z, T) {
    return z < 0 ? T(0) : z;
  }
  template <class T>
  static T prime(T z, T, T) {
    return z > 0 ? T(1) : T(0);
  }
};

// leaky_relu: z for z > 0, alpha z otherwise; g' = 1 or alpha
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

// elu: z for z > 0, alpha (e^z - 1) otherwise; float32 takes e^z - 1 = z + z^2/2 + z^3/6 + z^4/24
// for |z| < 1/16, where it would cancel; float64 keeps the library's expm1.
// g' = 1 for z > 0, alpha e^z otherwise: not a + alpha, which cancels where a is near -alpha
// (float32: 3% off at z = -15, 0 from z = -17).
template <>
struct G<Activation::elu> {
  template <class T>
  static T value(T z, T alpha) {
    if constexpr (std::is_same_v<T, double>) return z > 0 ? z : alpha * std::expm1(std::min(z, T(0)));
    const T negative = std::min(z, T(0));
    const T near_zero = negative * (1 + negative * (T(0.5) + negative * (T(1) / 6 + negative * (T(1) / 24))));
    const T expm1 = negative > T(-0.0625) ? near_zero : exp_poly(negative) - 1;
    return z > 0 ? z : alpha * expm1;
  }
  template <class T>
  static T prime(T z, T, T alpha) {
    return z > 0 ? T(1) : alpha * exp_poly(std::min(z, T(0)));
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
  for (index i = 0; i < n; ++i) sum += a[i] = exp_poly(z[i] - z_max);
  const T inverse = T(1) / sum;
  for (index i = 0; i < n; ++i) a[i] *= inverse;
}

}  // namespace mlpcore
