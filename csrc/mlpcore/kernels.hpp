// Element-wise kernels of a dense layer, each one pass over its matrices, no allocation.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "activations.hpp"
#include "parallel.hpp"

namespace mlpcore {

// g_run and g_prime_run are compiled for AVX-512 and for AVX2 and FMA as well as for the baseline
// (MLPCORE_VECTOR_CLONES, see parallel.hpp), with_activation and each g in each, and take runs of
// whole columns (see for_each_run). The exp of sigmoid, tanh, elu and softmax dominates a small
// network's step: on the AMD machine of rounds 1-12 the tiny 2-16-16-1 tanh net's fit took 10.3
// us a step on the baseline, 7.9-8.2 us with AVX2 column by column, 6.1-6.4 us with AVX2 over
// runs of columns. The kernels below take matrices whose columns are back to back (leading
// dimension = rows), but for bias_activation_forward's blocks of rows.

// a = g(u) for n entries: one column of softmax's, or a run of any other g's.
template <class T>
MLPCORE_VECTOR_CLONES void g_run(ActivationSpec g, const T* u, T* a, index n) {
  if (g.kind == Activation::softmax) return softmax_column(u, a, n);
  const T alpha = T(g.alpha);
  with_activation(g.kind, [&](auto G) {
    for (index i = 0; i < n; ++i) a[i] = G.value(u[i], alpha);
  });
}

// A = g(U).   U, A: (n, m)
template <class T>
void activation_forward(ActivationSpec g, ConstMatrix<T> U, Matrix<T> A) {
  for_each_run(A.rows, A.cols, g.kind == Activation::softmax,
               [&](Range cols) { g_run(g, U.col(cols.begin), A.col(cols.begin), A.rows * cols.size()); });
}

// z = z + b for one column: a bias, or another column to add.   b, z: (n, 1)
template <class T>
inline void add_bias(const T* b, T* z, index n) {
  for (index i = 0; i < n; ++i) z[i] += b[i];
}

// The adds of bias_activation_forward, compiled for the vector widths (MLPCORE_VECTOR_CLONES) as
// g_run is, the same bit for bit in each (adds alone, in the same order): on the baseline's
// 4-float vectors they took 1.4-1.8% of the samples of mnist's float32 fit (perf, 2 threads), on
// AVX-512 0.9-1.2%.
//   b: (n, 1), Z, Q: (n, m) with the same leading dimension
template <class T>
MLPCORE_VECTOR_CLONES void add_biases(const T* b, const T* Q, Matrix<T> Z) {
  for (index j = 0; j < Z.cols; ++j) {
    if (Q) add_bias(Q + j * Z.ld, Z.col(j), Z.rows);
    add_bias(b, Z.col(j), Z.rows);
  }
}

// Z = Z + Q + b (Z = Z + b without Q; b broadcast over the columns), then A = g(Z), after the
// GEMM, a block of some 2,048 entries at a time (8 KB in float32, 16 KB in float64, which the L1
// keeps between the two loops); a column at a time for a block of rows (Z.ld > Z.rows), whose
// columns are not back to back.
//   b: (n, 1), Z, A, Q: (n, m) with the same leading dimension
template <class T>
void bias_activation_forward(ActivationSpec g, const T* b, Matrix<T> Z, Matrix<T> A, const T* Q = nullptr) {
  const index block = Z.ld == Z.rows ? std::max<index>(1, 2048 / Z.rows) : 1;  // columns
  for_each_run(Z.rows, Z.cols, g.kind == Activation::softmax, [&](Range cols) {
    for (index first = cols.begin; first < cols.end; first += block) {
      const index last = std::min(cols.end, first + block);
      add_biases(b, Q ? Q + first * Z.ld : nullptr, Z.columns({first, last}));
      g_run(g, Z.col(first), A.col(first), Z.rows * (last - first));
    }
  });
}

// Z = Z + b.   b: (n, 1), Z: (n, m)
template <class T>
void bias_add(const T* b, Matrix<T> Z) {
  for_each_column(Z.cols, Z.size(), [&](index j) { add_bias(b, Z.col(j), Z.rows); });
}

// du = da * g'(u) for a run of n entries, with g' through a = g(u); with a dropout mask d of
// keep probability `keep`, du = d / keep * da * g'(u) with g(u) = a * keep.
template <class T>
MLPCORE_VECTOR_CLONES void g_prime_run(ActivationSpec g, const T* u, const T* a, const T* da, const T* d, T keep, T* du,
                                       index n) {
  const T alpha = T(g.alpha), inverse_keep = T(1) / keep;
  with_activation(g.kind, [&](auto G) {
    if (!d) {
      for (index i = 0; i < n; ++i) du[i] = da[i] * G.prime(u[i], a[i], alpha);
      return;
    }
    for (index i = 0; i < n; ++i) du[i] = d[i] * inverse_keep * da[i] * G.prime(u[i], a[i] * keep, alpha);
  });
}

// dU = dA * g'(U), with g' through A = g(U).   U, A, dA, dU: (n, m)
// With inverted dropout of keep probability `keep` and 0/1 mask D (n, m), the layer's output was
// A = g(U) * D / keep, so dU = dA * D / keep * g'(U) with g(U) = A * keep where D = 1.
template <class T>
void activation_backward(ActivationSpec g, ConstMatrix<T> U, ConstMatrix<T> A, ConstMatrix<T> dA, Matrix<T> dU,
                         const ConstMatrix<T>* D = nullptr, T keep = 1) {
  for_each_run(dU.rows, dU.cols, false, [&](Range cols) {
    const index j = cols.begin;
    g_prime_run(g, U.col(j), A.col(j), dA.col(j), D ? D->col(j) : nullptr, keep, dU.col(j), dU.rows * cols.size());
  });
}

// The splitmix64 mix: a bijection of 64-bit words that scatters neighbouring inputs.
inline std::uint64_t mix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// One uniform draw in [0, 1) per (key, counter), so that random masks and orders are the same
// whatever the thread count and the order in which entries are visited.
inline double uniform(std::uint64_t key, std::uint64_t counter) {
  return double(mix64(key + counter * 0xD1B54A32D192ED03ull) >> 11) * 0x1.0p-53;
}

// Inverted dropout: D = 1 with probability keep (else 0), A = A * D / keep.   A, D: (n, m),
// the columns first_column .. of the batch, whose entry (i, j) draws with counter i + j n.
template <class T>
void dropout_forward(std::uint64_t key, T keep, Matrix<T> A, Matrix<T> D, index first_column) {
  const T inverse_keep = T(1) / keep;
  for_each_column(A.cols, A.size(), [&](index j) {
    T* a = A.col(j);
    T* d = D.col(j);
    const std::uint64_t counter = std::uint64_t((first_column + j) * A.rows);
    for (index i = 0; i < A.rows; ++i) {
      d[i] = uniform(key, counter + std::uint64_t(i)) < keep ? T(1) : T(0);
      a[i] *= d[i] * inverse_keep;
    }
  });
}

// db = scale * sum over the columns of dZ, compiled for the vector widths (MLPCORE_VECTOR_CLONES):
// each row's sum goes over the columns in the same order in each, so db is the same bit for bit;
// mnist's db took 0.4-0.8% of its float32 fit's samples on AVX-512, 1.2-1.6% on the baseline's vectors.
//   dZ: (n, m), db: (n, 1)
template <class T>
MLPCORE_VECTOR_CLONES void column_sum(ConstMatrix<T> dZ, T scale, T* db) {
  for_each_row_sum(
      dZ.rows, dZ.cols, [&](index i, index j) { return dZ.col(j)[i]; },
      [&](index i, double sum) { db[i] = T(scale * sum); });
}

// out = out + scale in (the L2 term of dW[l]: dW[l] += (lambda / m) W[l]).   in, out: (rows, cols)
template <class T>
void add_scaled(Matrix<T> out, ConstMatrix<T> in, T scale) {
  for_each_column(out.cols, out.size(), [&](index j) {
    T* y = out.col(j);
    const T* x = in.col(j);
    for (index i = 0; i < out.rows; ++i) y[i] += scale * x[i];
  });
}

// True when no entry of M is NaN or infinite: x - x is 0 for a finite x and NaN otherwise
// (an integer or-reduction, so that the loop vectorises); on the calling thread alone unless
// `may_share` (see all_zero).
template <class T>
bool all_finite(ConstMatrix<T> M, bool may_share = true) {
  const index outer = M.transposed ? M.rows : M.cols, inner = M.transposed ? M.cols : M.rows;
  return all_zero(outer, may_share ? M.rows * M.cols : 0, [=](index j) {
    const T* column = M.data + j * M.ld;
    int not_finite = 0;
    for (index i = 0; i < inner; ++i) not_finite |= column[i] - column[i] != 0;
    return not_finite;
  });
}

// The largest |x[k]| of x[0..n), with x[k] - x[k] summed into `residue` (0 only while every x[k] is finite).
// From long_run entries on, the first 4q as four runs of q, each with its own largest and sum, then
// the rest: with one vector of maxima and one of sums over all of x, each vector's max and add
// wait for the one before (4 cycles a vector on an AVX-512 Xeon). q is a whole number of 64-byte
// lines, so that each run begins where the first does within a line (runs a quarter of 50,180
// doubles long, three of them begun mid-line, read two lines a load: 7.8 us against 4.5). In a C
// loop, the AVX-512 clone, x in the L2: 50,176 floats 2.3 us so against 4.3, 50,176 doubles 4.5
// against 8.8, 1,024 doubles 0.11 against 0.14; below long_run, the runs' set-up cost more than
// they saved. The extents of mnist's steps into the products (see Trainer) took 2.4-2.8% of
// the float64 fit's samples so, against 3.8-4.2%; 1.5-1.7% of float32's against 2.2-2.3%.
template <class T>
MLPCORE_VECTOR_CLONES T max_abs_run(const T* x, index n, T& residue) {
  constexpr index long_run = 8192 / sizeof(T);  // 2,048 floats, 1,024 doubles
  constexpr index line = 64 / sizeof(T);
  const auto take = [](T v, T& largest, T& sum) {
    largest = std::max(largest, std::abs(v));
    sum += v - v;
  };
  T largest = 0, sum = 0;
  const index q = n >= long_run ? n / (4 * line) * line : 0;
  if (q > 0) {
    T l0 = 0, l1 = 0, l2 = 0, l3 = 0, s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(max : l0, l1, l2, l3) reduction(+ : s0, s1, s2, s3)
    for (index k = 0; k < q; ++k) {
      take(x[k], l0, s0);
      take(x[k + q], l1, s1);
      take(x[k + 2 * q], l2, s2);
      take(x[k + 3 * q], l3, s3);
    }
    largest = std::max(std::max(l0, l1), std::max(l2, l3));
    sum = (s0 + s1) + (s2 + s3);
  }
#pragma omp simd reduction(max : largest) reduction(+ : sum)
  for (index k = 4 * q; k < n; ++k) take(x[k], largest, sum);  // the last n - 4q, or all of a short x
  residue += sum;
  return largest;
}

// The largest |M(i, j)|, or infinity when an entry is NaN or infinite, on the calling thread;
// columns back to back (leading dimension = rows) as one run.
template <class T>
double max_abs(ConstMatrix<T> M) {
  index outer = M.transposed ? M.rows : M.cols, inner = M.transposed ? M.cols : M.rows;
  if (M.ld == inner) {
    inner *= outer;
    outer = 1;
  }
  T largest = 0, residue = 0;
  for (index j = 0; j < outer; ++j) largest = std::max(largest, max_abs_run(M.data + j * M.ld, inner, residue));
  return residue == 0 ? double(largest) : std::numeric_limits<double>::infinity();
}

template <class T>
bool all_finite(const T* x, index size) {
  return all_zero(size, size, [=](index k) { return x[k] - x[k] != 0; });
}

}  // namespace mlpcore
