// Costs J over m examples, summed over the output units and averaged over the examples,
// and the error A[L] - Y that starts backpropagation.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "kernels.hpp"
#include "matrix.hpp"
#include "parallel.hpp"
#include "require.hpp"

namespace mlpcore {

enum class Cost { mse, bce, cce };

// Y as a dense (n[L], m) matrix, or, for cce, as m class labels (Y(i, j) = 1 where i == labels[j]);
// with labels, dense.data is null and dense.rows, dense.cols still give the shape.
template <class T>
struct Targets {
  ConstMatrix<T> dense;
  const std::int64_t* labels = nullptr;

  T operator()(index i, index j) const { return labels ? T(labels[j] == i) : dense(i, j); }

  // The targets given as the class labels of m examples over n_L output units.
  static Targets from_labels(const std::int64_t* labels, index n_L, index m) {
    return {{nullptr, n_L, m, n_L}, labels};
  }
};

// log is taken of A[L] clamped to [eps, 1 - eps], so J is finite for a finite A[L] (NaN for a NaN one).
template <class T>
constexpr T log_eps();
template <>
constexpr float log_eps<float>() {
  return 1e-7f;
}
template <>
constexpr double log_eps<double>() {
  return 1e-15;
}

// Loss of one unit of one example.
//   mse: (a - y)^2 / 2;  bce: -[y log a + (1 - y) log(1 - a)];  cce: -y log a
template <class T>
inline double loss(Cost cost, T a, T y) {
  const T a_clamped = std::clamp(a, log_eps<T>(), T(1) - log_eps<T>());  // NaN stays NaN, as the cost's
  switch (cost) {
    case Cost::mse:
      return 0.5 * double(a - y) * double(a - y);
    case Cost::bce:
      return -(double(y) * std::log(double(a_clamped)) + (1.0 - double(y)) * std::log(1.0 - double(a_clamped)));
    case Cost::cce:
      return y == 0 ? 0.0 : -double(y) * std::log(double(a_clamped));
  }
  return 0.0;
}

// The loss of example j: sum over i = 1..n[L] of loss(A[L](i, j), Y(i, j)).   A[L], Y: (n[L], m)
// From a label (cce), the one unit whose y is 1: the others' terms are 0. The label is read once
// and compared, never trusted as an index: Python may change it while the core reads it.
template <class T>
double column_loss(Cost cost, ConstMatrix<T> A, Targets<T> Y, index j) {
  if (Y.labels) {
    const std::int64_t label = Y.labels[j];
    return label >= 0 && label < A.rows ? loss(cost, A(index(label), j), T(1)) : 0.0;
  }
  double sum = 0;
  for (index i = 0; i < A.rows; ++i) sum += loss(cost, A(i, j), Y(i, j));
  return sum;
}

// J = (1/m) sum over j = 1..m of the column losses, in this order, so that J is the same
// whatever the thread count.   loss: (m,)
inline double mean_loss(const double* loss, index m) {
  double sum = 0;
  for (index j = 0; j < m; ++j) sum += loss[j];
  return sum / double(m);
}

// J = (1/m) sum over j = 1..m, i = 1..n[L] of loss(A[L](i, j), Y(i, j));  A[L], Y: (n[L], m)
template <class T>
double cost(Cost cost, ConstMatrix<T> A, Targets<T> Y) {
  double sum = 0;  // one thread, in the order of mean_loss
  for (index j = 0; j < A.cols; ++j) sum += column_loss(cost, A, Y, j);
  return sum / double(A.cols);
}

// The columns r of Y, as a view.
template <class T>
Targets<T> columns(Targets<T> Y, Range r) {
  if (Y.labels) return Targets<T>::from_labels(Y.labels + r.begin, Y.dense.rows, r.size());
  return {Y.dense.columns(r), nullptr};
}

// E = A[L] - Y: dZ[L] for the fused pairs (sigmoid + bce, softmax + cce), dA[L] for mse.
//   A[L], Y, E: (n[L], m)
template <class T>
void output_error(ConstMatrix<T> A, Targets<T> Y, Matrix<T> E) {
  for_each_column(E.cols, E.size(), [&](index j) {
    const T* a = A.col(j);
    T* e = E.col(j);
    if (Y.labels) {  // the label compared, never an index: Python may change it while the core reads it
      const std::int64_t label = Y.labels[j];
      for (index i = 0; i < E.rows; ++i) e[i] = a[i] - T(i == label);
    } else if (!Y.dense.transposed) {
      const T* y = Y.dense.col(j);
      for (index i = 0; i < E.rows; ++i) e[i] = a[i] - y[i];
    } else {
      for (index i = 0; i < E.rows; ++i) e[i] = a[i] - Y.dense(i, j);
    }
  });
}

// predict's labels from the output A[L] (n[L], m), all finite (the caller checks):
//   cce: labels[j] = argmax over i of A[L](i, j), the first of equal largest entries;   labels: (m,)
//   bce: labels[i + j n[L]] = 1 where A[L](i, j) >= 0.5, else 0;   labels: (n[L], m), column-major
template <class T>
void predicted_labels(Cost cost, ConstMatrix<T> A, std::int64_t* labels) {
  for (index j = 0; j < A.cols; ++j) {
    const T* a = A.col(j);
    if (cost == Cost::bce) {
      for (index i = 0; i < A.rows; ++i) labels[i + j * A.rows] = a[i] >= T(0.5);
      continue;
    }
    index best = 0;
    for (index i = 1; i < A.rows; ++i)
      if (a[i] > a[best]) best = i;
    labels[j] = best;
  }
}

// Labels index rows of A[L]: one outside 0..n[L]-1 would be a read out of bounds.
template <class T>
void require_labels_in_range(Targets<T> Y) {
  if (!Y.labels) return;
  const index n_L = Y.dense.rows;
  for (index j = 0; j < Y.dense.cols; ++j)
    require(Y.labels[j] >= 0 && Y.labels[j] < n_L, [&] {
      return "cce labels must lie in 0.." + std::to_string(n_L - 1) + ", got " + std::to_string(Y.labels[j]) +
             " at example " + std::to_string(j);
    });
}

// Refuses targets the cost cannot take: NaN or inf; for bce and cce, entries outside [0, 1];
// for cce, columns that do not sum to 1 (dZ[L] = A[L] - Y needs that) and labels outside 0..n[L]-1.
// The NaN and inf on the calling thread alone unless `may_share` (see all_finite).
template <class T>
void require_valid_targets(Cost cost, Targets<T> Y, bool may_share = true) {
  const index n_L = Y.dense.rows;
  if (Y.labels) return require_labels_in_range(Y);
  require(all_finite(Y.dense, may_share), "Y contains NaN or inf");
  if (cost == Cost::mse) return;
  const char* name = cost == Cost::bce ? "bce" : "cce";
  const double tolerance = sizeof(T) == 4 ? 1e-4 : 1e-9;
  for (index j = 0; j < Y.dense.cols; ++j) {
    double sum = 0;
    for (index i = 0; i < n_L; ++i) {
      const T y = Y.dense(i, j);
      require(y >= 0 && y <= 1,
              [&] { return std::string("Y for ") + name + " must lie in [0, 1], got " + std::to_string(y); });
      sum += y;
    }
    require(cost != Cost::cce || std::abs(sum - 1) <= tolerance, [&] {
      return "each column of Y for cce must sum to 1 (one-hot or class probabilities), column " + std::to_string(j) +
             " sums to " + std::to_string(sum);
    });
  }
}

}  // namespace mlpcore
