// Costs J over m examples, summed over the output units and averaged over the examples,
// and the error A[L] - Y that starts backpropagation.
#pragma once

#include <cmath>
#include <cstdint>

#include "matrix.hpp"
#include "parallel.hpp"

namespace mlpcore {

enum class Cost { mse, bce, cce };

// Y as a dense (n[L], m) matrix, or, for cce, as m class labels (Y(i, j) = 1 where i == labels[j]);
// with labels, Y.data is null and Y.rows, Y.cols still give the shape.
template <class T>
struct Targets {
  ConstMatrix<T> Y;
  const std::int64_t* labels = nullptr;

  T operator()(index i, index j) const { return labels ? T(labels[j] == i) : Y(i, j); }
};

// log is taken of A[L] clamped to [eps, 1 - eps], so J is never inf or NaN.
template <class T>
constexpr T log_eps();
template <>
constexpr float log_eps<float>() { return 1e-7f; }
template <>
constexpr double log_eps<double>() { return 1e-15; }

// Loss of one unit of one example.
//   mse: (a - y)^2 / 2;  bce: -[y log a + (1 - y) log(1 - a)];  cce: -y log a
template <class T>
inline double loss(Cost cost, T a, T y) {
  const T a_clamped = std::fmin(std::fmax(a, log_eps<T>()), T(1) - log_eps<T>());
  switch (cost) {
    case Cost::mse: return 0.5 * double(a - y) * double(a - y);
    case Cost::bce:
      return -(double(y) * std::log(double(a_clamped)) + (1.0 - double(y)) * std::log(1.0 - double(a_clamped)));
    case Cost::cce: return y == 0 ? 0.0 : -double(y) * std::log(double(a_clamped));
  }
  return 0.0;
}

// J = (1/m) sum over j = 1..m, i = 1..n[L] of loss(A[L](i, j), Y(i, j));  A[L], Y: (n[L], m)
template <class T>
double cost(Cost cost, ConstMatrix<T> A, Targets<T> Y) {
  double sum = 0;
#pragma omp parallel for schedule(static) reduction(+ : sum) if (A.rows * A.cols >= parallel_threshold)
  for (index j = 0; j < A.cols; ++j)
    for (index i = 0; i < A.rows; ++i) sum += loss(cost, A(i, j), Y(i, j));
  return sum / double(A.cols);
}

// E = A[L] - Y: dZ[L] for the fused pairs (sigmoid + bce, softmax + cce), dA[L] for mse.
//   A[L], Y, E: (n[L], m)
template <class T>
void output_error(ConstMatrix<T> A, Targets<T> Y, Matrix<T> E) {
  for_each_column(E.cols, E.size(), [&](index j) {
    for (index i = 0; i < E.rows; ++i) E(i, j) = A(i, j) - Y(i, j);
  });
}

}  // namespace mlpcore
