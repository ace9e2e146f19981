#include "blas.hpp"

#include <cblas.h>
#include <omp.h>
#include <pthread.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <array>
#include <atomic>
#include <cassert>
#include <cmath>
#include <initializer_list>
#include <new>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "pair.hpp"
#include "team.hpp"

#ifdef MLPCORE_SCIPY_OPENBLAS  // scipy-openblas32: every symbol carries the scipy_ prefix
#define MLPCORE_CBLAS(name) scipy_cblas_##name
#else
#include <dlfcn.h>
#define MLPCORE_CBLAS(name) cblas_##name
#endif

namespace mlpcore {

namespace {

CBLAS_TRANSPOSE flag(bool trans, bool stored_transposed) {
  return trans != stored_transposed ? CblasTrans : CblasNoTrans;
}

void gemm_call(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha, const float* A, int lda,
               const float* B, int ldb, float beta, float* C, int ldc) {
  MLPCORE_CBLAS(sgemm)(CblasColMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm_call(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, double alpha, const double* A, int lda,
               const double* B, int ldb, double beta, double* C, int ldc) {
  MLPCORE_CBLAS(dgemm)(CblasColMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemv_call(CBLAS_TRANSPOSE ta, int M, int N, float alpha, const float* A, int lda, const float* x, int incx,
               float beta, float* y) {
  MLPCORE_CBLAS(sgemv)(CblasColMajor, ta, M, N, alpha, A, lda, x, incx, beta, y, 1);
}

void gemv_call(CBLAS_TRANSPOSE ta, int M, int N, double alpha, const double* A, int lda, const double* x, int incx,
               double beta, double* y) {
  MLPCORE_CBLAS(dgemv)(CblasColMajor, ta, M, N, alpha, A, lda, x, incx, beta, y, 1);
}

// The BLAS calls of this process's threads in flight, and whether a fork waits for them to end
// (see fork_handlers_at_load): in a child made by fork, a thread that was inside OpenBLAS does
// not exist, and what it had half changed of OpenBLAS's state (its buffers, its locks) could
// keep the child's products waiting forever.
std::atomic<int> blas_calls_in_flight{0};
std::atomic<bool> fork_waiting{false};

// A BLAS call in flight, for its lifetime; waits while a fork is under way.
class InsideBlas {
 public:
  InsideBlas() {
    for (;;) {
      while (fork_waiting.load()) std::this_thread::yield();
      ++blas_calls_in_flight;
      if (!fork_waiting.load()) return;
      --blas_calls_in_flight;
    }
  }
  ~InsideBlas() { --blas_calls_in_flight; }
  InsideBlas(const InsideBlas&) = delete;
  InsideBlas& operator=(const InsideBlas&) = delete;
};

// The step in B's memory from op(B)(k, j) to op(B)(k + 1, j): B.ld where op(B)'s rows are B's
// stored columns, else 1.
template <class T>
index k_step(bool trans_B, ConstMatrix<T> B) {
  return trans_B != B.transposed ? B.ld : 1;
}

#if MLPCORE_AVX512_CLONES
#define MLPCORE_AVX512 __attribute__((target("avx512f")))

// AVX-512 vectors of T, for column_gemv and tile: `lanes` entries each; loads and stores masked to the
// first n lanes; nonzero(v), the lanes of v that are not 0 (NaN included), as bits.
template <class T>
struct Zmm;
template <>
struct Zmm<float> {
  using Vec = __m512;
  static constexpr int lanes = 16;
  MLPCORE_AVX512 static Vec zero() { return _mm512_setzero_ps(); }
  MLPCORE_AVX512 static Vec load(const float* p) { return _mm512_loadu_ps(p); }
  MLPCORE_AVX512 static Vec load(unsigned n, const float* p) {
    return _mm512_maskz_loadu_ps(__mmask16((1u << n) - 1), p);
  }
  MLPCORE_AVX512 static Vec fma(Vec a, float x, Vec c) { return _mm512_fmadd_ps(a, _mm512_set1_ps(x), c); }
  MLPCORE_AVX512 static void store(float* p, Vec v) { _mm512_storeu_ps(p, v); }
  MLPCORE_AVX512 static void store(unsigned n, float* p, Vec v) {
    _mm512_mask_storeu_ps(p, __mmask16((1u << n) - 1), v);
  }
  MLPCORE_AVX512 static Vec scale(float x, Vec v) { return _mm512_mul_ps(_mm512_set1_ps(x), v); }
  MLPCORE_AVX512 static unsigned nonzero(Vec v) { return _mm512_cmp_ps_mask(v, zero(), _CMP_NEQ_UQ); }
  // transpose_registers's swaps within the 128-bit quarters: of single entries, then of pairs
  MLPCORE_AVX512 static void swap_within_quarters(Vec (&v)[lanes]) {
    Vec t[lanes];
    for (int i = 0; i < lanes; i += 2) {
      t[i] = _mm512_unpacklo_ps(v[i], v[i + 1]);
      t[i + 1] = _mm512_unpackhi_ps(v[i], v[i + 1]);
    }
    for (int i = 0; i < lanes; i += 4)
      for (int h = 0; h < 2; ++h) {
        const __m512d a = _mm512_castps_pd(t[i + h]), b = _mm512_castps_pd(t[i + h + 2]);
        v[i + 2 * h] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
        v[i + 2 * h + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
      }
  }
  // The 128-bit quarters of a and b that imm picks (two bits each: a's two, then b's two).
  template <int imm>
  MLPCORE_AVX512 static Vec quarters(Vec a, Vec b) {
    return _mm512_shuffle_f32x4(a, b, imm);
  }
};
template <>
struct Zmm<double> {
  using Vec = __m512d;
  static constexpr int lanes = 8;
  MLPCORE_AVX512 static Vec zero() { return _mm512_setzero_pd(); }
  MLPCORE_AVX512 static Vec load(const double* p) { return _mm512_loadu_pd(p); }
  MLPCORE_AVX512 static Vec load(unsigned n, const double* p) {
    return _mm512_maskz_loadu_pd(__mmask8((1u << n) - 1), p);
  }
  MLPCORE_AVX512 static Vec fma(Vec a, double x, Vec c) { return _mm512_fmadd_pd(a, _mm512_set1_pd(x), c); }
  MLPCORE_AVX512 static void store(double* p, Vec v) { _mm512_storeu_pd(p, v); }
  MLPCORE_AVX512 static void store(unsigned n, double* p, Vec v) {
    _mm512_mask_storeu_pd(p, __mmask8((1u << n) - 1), v);
  }
  MLPCORE_AVX512 static Vec scale(double x, Vec v) { return _mm512_mul_pd(_mm512_set1_pd(x), v); }
  MLPCORE_AVX512 static unsigned nonzero(Vec v) { return _mm512_cmp_pd_mask(v, zero(), _CMP_NEQ_UQ); }
  // transpose_registers's swaps within the 128-bit quarters: of single entries
  MLPCORE_AVX512 static void swap_within_quarters(Vec (&v)[lanes]) {
    for (int i = 0; i < lanes; i += 2) {
      const Vec low = _mm512_unpacklo_pd(v[i], v[i + 1]);
      v[i + 1] = _mm512_unpackhi_pd(v[i], v[i + 1]);
      v[i] = low;
    }
  }
  // The 128-bit quarters of a and b that imm picks (two bits each: a's two, then b's two).
  template <int imm>
  MLPCORE_AVX512 static Vec quarters(Vec a, Vec b) {
    return _mm512_shuffle_f64x2(a, b, imm);
  }
};

// Of each pair of vectors d apart, the first takes both vectors' even 128-bit quarters (its own,
// then the other's), the second their odd ones.
template <class T, int d>
MLPCORE_AVX512 inline void swap_apart(typename Zmm<T>::Vec (&v)[Zmm<T>::lanes]) {
#pragma GCC unroll 8
  for (int i = 0; i < Zmm<T>::lanes; i += 2 * d)
#pragma GCC unroll 8
    for (int h = 0; h < d; ++h) {
      const typename Zmm<T>::Vec low = Zmm<T>::template quarters<0x88>(v[i + h], v[i + h + d]);
      v[i + h + d] = Zmm<T>::template quarters<0xdd>(v[i + h], v[i + h + d]);
      v[i + h] = low;
    }
}

// v[i][j] = v[j][i] for a vector's lanes of vectors: the swaps within the 128-bit quarters (of
// entries, and in float32 of pairs; Zmm's swap_within_quarters), then of quarters between
// vectors lanes/4 apart and of halves between vectors lanes/2 apart.
template <class T>
MLPCORE_AVX512 inline void transpose_registers(typename Zmm<T>::Vec (&v)[Zmm<T>::lanes]) {
  Zmm<T>::swap_within_quarters(v);
  swap_apart<T, Zmm<T>::lanes / 4>(v);
  swap_apart<T, Zmm<T>::lanes / 2>(v);
}

// Vector v of a column's V vectors of rows, the last of which holds `last` rows (its load masked to them).
template <class T, int V>
MLPCORE_AVX512 typename Zmm<T>::Vec column_vector(const T* column, int v, unsigned last) {
  const T* p = column + v * Zmm<T>::lanes;
  return v < V - 1 ? Zmm<T>::load(p) : Zmm<T>::load(last, p);
}

// sum += x column: the V vectors of a column of M rows in ((V - 1) lanes, V lanes], the last `last`.
template <class T, int V>
MLPCORE_AVX512 inline __attribute__((always_inline)) void add_column(typename Zmm<T>::Vec (&sum)[V], const T* column,
                                                                     unsigned last, T x) {
#pragma GCC unroll 16
  for (int v = 0; v < V; ++v) sum[v] = Zmm<T>::fma(column_vector<T, V>(column, v, last), x, sum[v]);
}

// sum += x[k] A(:, k) for the first k of `terms` (bits from k0), which it then leaves out.
template <class T, int V>
MLPCORE_AVX512 inline __attribute__((always_inline)) void add_next_term(typename Zmm<T>::Vec (&sum)[V],
                                                                        std::uint64_t& terms, index k0, const T* a,
                                                                        index lda, unsigned last, const T* x) {
  const index k = k0 + __builtin_ctzll(terms);
  terms &= terms - 1;
  add_column<T, V>(sum, a + k * lda, last, x[k]);
}

// x's entries in groups of 64, for column_gemv: the size of the group from x[k0] on.
constexpr index group = 64;
inline int group_size(index K, index k0) { return int(std::min(group, K - k0)); }

// The entries of x[0 .. count) (1 <= count <= 64) that are not 0, NaN and inf among them, as bits (bit k for x[k]).
template <class T>
MLPCORE_AVX512 inline __attribute__((always_inline)) std::uint64_t nonzero_bits(const T* x, int count) {
  std::uint64_t bits = 0;
  for (int k = 0; k < count; k += Zmm<T>::lanes)
    bits |= std::uint64_t(Zmm<T>::nonzero(Zmm<T>::load(unsigned(std::min(Zmm<T>::lanes, count - k)), x + k))) << k;
  return bits;
}

// Whether x[0 .. K) holds a 0.
template <class T>
MLPCORE_AVX512 bool holds_zero(const T* x, index K) {
  for (index k = 0; k < K; k += group) {
    const int count = group_size(K, k);
    if (nonzero_bits(x + k, count) != ~std::uint64_t(0) >> (group - count)) return true;
  }
  return false;
}

// y = alpha A x + beta y (beta = 0: y is not read) for M in ((V - 1) lanes, V lanes], V <= 16, K >= 1:
//   A: (M, K) column-major, leading dimension lda;  x: (K, 1), stride incx;  y: (M, 1)
// V vectors of sums in registers over all K, the M entries of a column of A (of two, into two
// sets of sums under eight vectors, so that enough FMAs are in flight for their latency) at a
// time, so that A is read once, and y once; the last vector's loads masked to the rows that are
// there. Used where the CPU runs the AVX-512 build (avx512_clones). There OpenBLAS's sgemv runs
// 8-float vectors: in a C loop on an AVX-512 Xeon, it took 7.3-7.6 us for a 784-256 W[1], sums
// in registers four vectors of rows at a time 5.7-5.9 us; the 256x415 part of W[1] that
// predict's caller takes (from its L2), in sixteen vectors (the whole column) 3.04 us against
// 3.22 in four. Elsewhere BLAS's gemv: own AVX2 kernels were slower than OpenBLAS's on an AMD
// EPYC (bench/README.md, "Tried and not kept").
// With skip_zeros (x contiguous and holding a 0, which column_gemv_rows looks for once a
// product), the columns whose x[k] is 0 are skipped, found 64 at a time: after a relu about
// half of an example's A[l-1] is 0, as most of the pixels in many images' X are. Each term left
// goes into the set of sums that takes it over every column, in the same order, so the sums are
// those over every column bit for bit: s + a 0 = s for finite a, but where s is -0 (a product
// that underflowed to -0), which the + 0 of the sums at the end makes +0 either way. A NaN or
// inf weight in a skipped column is left out with its 0 (0 * inf would have been NaN). predict
// of one example on the mnist net (784-256-128-10, relu) took 6.19 us against 6.61 (medians of
// five processes, taking turns), 3.83 against 6.25 where 80% of X is 0, in float64 10.15
// against 10.97; one thread's 256-128 layer, half of x 0, 1.36 us against 1.79, 300-32 0.81
// against 1.00, 300-16 0.76 against 0.81. Where x holds no 0, the look for one costs 1-4%
// (784-256, 128-10, 256-128), and the columns go one after the other: in groups of 64 instead,
// 784-256 took 5% longer (each group's loop ends in a branch, likely mispredicted, behind which
// the loads of A in flight are lost).
template <class T, int V>
MLPCORE_AVX512 void column_gemv(index M, index K, T alpha, const T* a, index lda, const T* x, index incx, T beta, T* y,
                                bool skip_zeros) {
  using Z = Zmm<T>;
  constexpr int sets = V < 8 ? 2 : 1;
  const unsigned last = unsigned(M - (V - 1) * Z::lanes);
  typename Z::Vec sum[sets][V];
#pragma GCC unroll 2
  for (int s = 0; s < sets; ++s)
#pragma GCC unroll 16
    for (int v = 0; v < V; ++v) sum[s][v] = Z::zero();
  if (skip_zeros) {
    for (index k0 = 0; k0 < K; k0 += group) {
      // the group's terms whose x[k] is not 0, each into the set of sums that takes it over
      // every column (with two, that of k's parity), one of each set in turn, then the rest
      const std::uint64_t terms = nonzero_bits(x + k0, group_size(K, k0));
      if constexpr (sets == 2) {
        std::uint64_t even = terms & 0x5555555555555555u, odd = terms & ~even;
        while (even && odd) {
          add_next_term<T, V>(sum[0], even, k0, a, lda, last, x);
          add_next_term<T, V>(sum[1], odd, k0, a, lda, last, x);
        }
        while (even) add_next_term<T, V>(sum[0], even, k0, a, lda, last, x);
        while (odd) add_next_term<T, V>(sum[1], odd, k0, a, lda, last, x);
      } else {
        std::uint64_t left = terms;
        while (left) add_next_term<T, V>(sum[0], left, k0, a, lda, last, x);
      }
    }
  } else {
    index k = 0;
    for (; k + sets <= K; k += sets, a += sets * lda)
#pragma GCC unroll 2
      for (int s = 0; s < sets; ++s) add_column<T, V>(sum[s], a + s * lda, last, x[(k + s) * incx]);
    if (k < K) add_column<T, V>(sum[0], a, last, x[k * incx]);  // an odd K's last column, with two sets
  }
  T sums[V * Z::lanes];
#pragma GCC unroll 16
  for (int v = 0; v < V; ++v)  // + 0: a sum of 0 is +0 whichever terms were skipped (see above)
    Z::store(sums + v * Z::lanes, (sets == 2 ? sum[0][v] + sum[sets - 1][v] : sum[0][v]) + Z::zero());
  for (index r = 0; r < M; ++r) y[r] = alpha * sums[r] + (beta == T(0) ? T(0) : beta * y[r]);
}

// The columns ahead of the one it reads from which a copying tile (see tile) fetches A's column
// into L2: far enough for a fetch from L3 to land before its use. One thread's float32
// 2016x256x2048 product through copies (panel_gemm) ran at 99-103 GFLOP/s with 8 to 96 ahead.
constexpr index copy_ahead = 32;

// The lines of a column of V vectors of rows, the last of which holds `last` rows, fetched into
// L1 (into_L1) or L2: those of each vector's first row and of the last row, which lies a line
// further where the column does not start at a line (lda not a multiple of a line's entries).
// Unfetched, that line of op(A)'s columns was met in memory once a column by the copying tiles:
// one thread's float32 3000x1024x3000 product through copies (lda = 3000) ran at 0.975 times
// OpenBLAS's rate, against 1.015 with it fetched.
template <class T, int V, bool into_L1>
MLPCORE_AVX512 inline __attribute__((always_inline)) void fetch_column(const T* column, unsigned last) {
  constexpr auto hint = into_L1 ? _MM_HINT_T0 : _MM_HINT_T1;
#pragma GCC unroll 4
  for (int v = 0; v < V; ++v) _mm_prefetch(reinterpret_cast<const char*>(column + v * Zmm<T>::lanes), hint);
  _mm_prefetch(reinterpret_cast<const char*>(column + (V - 1) * Zmm<T>::lanes + last - 1), hint);
}

// The terms before the end of a tile's sums from which it fetches C's columns, one a term: late
// enough that they stay in L1 until the sums go out, early enough for a fetch from memory. One
// thread's float32 products through copies (see panel_gemm) against OpenBLAS: 2048x1024x256 with
// beta = 1 (C read, as plain SGD's step into dW's product reads W[l]) at 0.94-0.95 times its rate
// with C unfetched, 1.01-1.02 fetched over the first terms, 1.04 over the last 64; with beta = 0
// (C only written) 1.04-1.05 unfetched, 1.08 over the first terms; 2048x256x1024 1.11 over the
// first terms, 1.12-1.13 over the last 64 (1.13 over the last 128, and over the last 32),
// 256x2048x784 1.08-1.10 against 1.12-1.13, TN 1024x256x2048 1.12-1.13 against 1.14.
constexpr index C_fetch_terms = 64;

// C = alpha A op(B) + beta C (beta = 0: C is not read) for M in ((V - 1) lanes, V lanes] and NR columns:
//   A: (M, K) column-major, leading dimension lda;  op(B)(k, j) = b[k bk + j bj];  C: (M, NR), ldc
// V NR vectors of sums in registers over all of K (24 of AVX-512's 32 for V = 3, NR = 8), a
// column of A's V vectors and NR entries of op(B) a time; the last vector's loads and stores
// masked to the rows that are there. (GCC keeps the sums in registers only with every loop over
// them unrolled.) With Copies, each column of A also goes to `copy` as it is read, V vectors a
// column (copy: (V lanes, K), leading dimension V lanes, 0 past M's rows), for the strips of C
// after this one to read (see panel_gemm), and A's column copy_ahead on is fetched into L2 meanwhile.
// C's columns are fetched one a term from C_fetch_terms before the end, so that their lines are
// in L1 when the sums go out: a tile's columns lie ldc apart, often in different pages, where the
// CPU does not fetch ahead by itself.
template <class T, int V, int NR, bool Copies>
MLPCORE_AVX512 void tile(index M, index K, T alpha, const T* a, index lda, const T* b, index bk, index bj, T beta, T* c,
                         index ldc, T* copy) {
  using Z = Zmm<T>;
  const unsigned last = unsigned(M - (V - 1) * Z::lanes);
  typename Z::Vec sum[V][NR];
#pragma GCC unroll 4
  for (int v = 0; v < V; ++v)
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) sum[v][j] = Z::zero();
  const index fetch_from = std::max(index(0), K - C_fetch_terms);
  for (index k = 0; k < K; ++k, a += lda, b += bk) {
    if (k >= fetch_from && k < fetch_from + NR) fetch_column<T, V, true>(c + (k - fetch_from) * ldc, last);
    typename Z::Vec column[V];
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) column[v] = column_vector<T, V>(a, v, last);
    if constexpr (Copies) {
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) Z::store(copy + k * V * Z::lanes + v * Z::lanes, column[v]);
      if (k + copy_ahead < K) fetch_column<T, V, false>(a + copy_ahead * lda, last);
    }
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j)
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) sum[v][j] = Z::fma(column[v], b[j * bj], sum[v][j]);
  }
#pragma GCC unroll 8
  for (int j = 0; j < NR; ++j)
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) {
      const unsigned rows = v < V - 1 ? unsigned(Z::lanes) : last;
      T* out = c + j * ldc + v * Z::lanes;
      const typename Z::Vec product = Z::scale(alpha, sum[v][j]);
      Z::store(rows, out, beta == T(0) ? product : Z::fma(Z::load(rows, out), beta, product));
    }
}

// tile's instances, for tables of them.
template <class T>
using TileKernel = void (*)(index, index, T, const T*, index, const T*, index, index, T, T*, index, T*);

// The columns of C that a tile takes at most.
constexpr index strip_columns = 8;

// A strip's tiles of V vectors of rows, for 1 to strip_columns columns.
template <class T, bool Copies, int V, int... NR>
constexpr std::array<TileKernel<T>, strip_columns> strip_tiles(std::integer_sequence<int, NR...>) {
  return {tile<T, V, NR + 1, Copies>...};
}

// The tile, copying or not, for `rows` rows (one to three vectors) and `cols` columns (1 to 8).
template <class T, bool Copies = false>
TileKernel<T> tile_kernel(index rows, index cols) {
  constexpr auto columns = std::make_integer_sequence<int, strip_columns>{};
  static constexpr std::array<std::array<TileKernel<T>, strip_columns>, 3> kernels{
      strip_tiles<T, Copies, 1>(columns), strip_tiles<T, Copies, 2>(columns), strip_tiles<T, Copies, 3>(columns)};
  return kernels[(rows - 1) / Zmm<T>::lanes][cols - 1];
}

// The panels of M >= lanes rows that the tiles take, calling visit(first row, rows) for each:
// three vectors of rows a panel and a last one of two or three (of one where M is one vector);
// where three at a time would leave one vector, the last four go as two and two (one vector's NR
// sums, a load of op(B) for each FMA, ran at two thirds of three vectors' rate: 256 rows in float32).
template <class T, class Visit>
void row_panels(index M, Visit visit) {
  constexpr index lanes = Zmm<T>::lanes;
  assert(M >= lanes);
  const auto one_left = [&](index i) { return M - i > 3 * lanes && M - i <= 4 * lanes; };
  index i = 0;
  for (; M - i >= 3 * lanes && !one_left(i); i += 3 * lanes) visit(i, 3 * lanes);
  if (one_left(i)) {
    visit(i, 2 * lanes);
    i += 2 * lanes;
  }
  if (i < M) visit(i, M - i);
}

// C = alpha A op(B) + beta C (beta = 0: C is not read), strip by strip of eight columns, each
// panel by panel of rows (see row_panels), reading A in place.
//   A: (M, K) column-major, lda;  op(B)(k, j) = B[k bk + j bj];  C: (M, N), ldc
template <class T>
void tile_gemm(index M, index N, index K, T alpha, const T* A, index lda, const T* B, index bk, index bj, T beta, T* C,
               index ldc) {
  for (index j = 0; j < N; j += strip_columns) {
    const index cols = std::min(strip_columns, N - j);
    row_panels<T>(M, [&](index i, index rows) {
      tile_kernel<T>(rows, cols)(rows, K, alpha, A + i, lda, B + j * bj, bk, bj, beta, C + i + j * ldc, ldc, nullptr);
    });
  }
}

// Part p of k's `parts` parts of equal length, the first k % parts of them one longer.
inline Range part_of(index k, index parts, index p) {
  const index begin = p * (k / parts) + std::min(p, k % parts);
  return {begin, begin + k / parts + index(p < k % parts)};
}

// The largest op(A) (or part of one, see tile_parts) that tile_gemm takes, in bytes: half of a
// core's L2 as sysconf gives it (512 KiB where the system does not say), kept there while each
// strip of eight columns of op(B) passes.
const double tile_A_bytes = [] {
  const long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
  return l2 > 0 ? double(l2) / 2 : double(1 << 19);
}();

// The widest span of op(B)'s strips that tile_gemm takes where op(B)'s rows lie a row of B apart
// (bk > 1: C-ordered data, or op(B) = A[l-1]^T): read in place, K rows a strip spread over pages
// and over few sets of L1, the tiles took 1.1-1.6 times OpenBLAS's time in float32 from 1 MiB
// (copying each strip together first was slower still), and were faster in float64 up to 2 MiB
// (OpenBLAS's dgemm runs at a lower share of the vector peak than its sgemm: 784-64 C-ordered
// on 128 examples 189 us against 266, and mnist's fit 7-8% faster with dW[1]'s 800 KiB).
template <class T>
constexpr double tile_B_span = sizeof(T) == 4 ? 1 << 19 : 1 << 21;

// out = the transpose of a block of `rows` rows and `cols` columns of A, each at most a vector's lanes:
//   out(j, i) = A(i, j);  A: column-major, lda;  out: column-major, ldo
// The block's columns are loaded as vectors (masked to its rows; 0 past its columns), transposed
// in registers, and its rows stored (masked to its columns).
template <class T>
MLPCORE_AVX512 void transpose_block(const T* a, index lda, unsigned rows, unsigned cols, T* out, index ldo) {
  using Z = Zmm<T>;
  typename Z::Vec v[Z::lanes];
  for (unsigned j = 0; j < unsigned(Z::lanes); ++j) v[j] = j < cols ? Z::load(rows, a + j * lda) : Z::zero();
  transpose_registers<T>(v);
  for (unsigned i = 0; i < rows; ++i) Z::store(cols, out + i * ldo, v[i]);
}

// copy = rows [i, i + rows) of op(A) over the terms r of k, from an op(A) stored row-major (for the
// tiles whole, see tile_gemm_took, or a panel's part, see panel_gemm), block by block of a
// vector's lanes of k and of rows (see transpose_block), along k a vector of rows at a time: a
// vector's lanes of streams through memory, which the CPU fetches ahead. Through panel_gemm, one
// thread's float32 1024x256x2048 product ran 10-15% faster than OpenBLAS's so, 4-9% with the rows
// of a panel at a time (48 streams), 9-12% so and fetching each stream's lines ahead in software.
//   op(A)(i, k) = a[k + i lda];  copy: (rows, r.size()) column-major, copy_ld
template <class T>
void copy_transposed(const T* a, index lda, index i, index rows, Range r, T* copy, index copy_ld) {
  constexpr index lanes = Zmm<T>::lanes;
  for (index q = 0; q < rows; q += lanes)
    for (index k = r.begin; k < r.end; k += lanes)
      transpose_block(a + k + (i + q) * lda, lda, unsigned(std::min(lanes, r.end - k)),
                      unsigned(std::min(lanes, rows - q)), copy + q + (k - r.begin) * copy_ld, copy_ld);
}

// The shortest part of k that tile_gemm_took cuts a product into (see tile_parts): each part
// after the first reads and writes C once more. With parts of 64, on an AMD EPYC (Zen 4) with 1
// MiB of L2 a core, the float32 2048-cube product (2048 rows a thread) went to the tiles and ran
// at 169-175 GFLOP/s on two threads against OpenBLAS's 206-209, and the 2048-2048-2048-10 fit's
// steps at 170-174 against 186-192; with 128, both stay off the tiles. Parts of 128 took the
// 1024-cube (1024 rows a thread): 97-98 GFLOP/s against 102-104 on one thread, 202 against 205-206
// on two (its C now leaves the tiles' parts, see tile_C_parts_bytes); a network's layers in parts of
// 128 to 200 ran as fast as on OpenBLAS or up to 9% faster.
constexpr index tile_min_part = 128;

// The longest part of k (see tile_parts): each sum of a part is one chain of FMAs, whose float32
// rounding grows with its length. With parts as long as half of L2 allowed (8,192 terms for 16
// rows on a 1 MiB L2), a float32 forward of a 16-unit layer on k = 30,000 inputs was off from the
// float64 product by 1.03 times the tests' tolerance (rtol 1e-4, atol 1e-6 of the largest; 1.31
// with 4 MiB of L2), OpenBLAS's by 0.13-0.23 (it sums blocks of a few hundred terms apart).
// In parts of 512 at most, 0.22 times it on k = 5,000, 0.39 on 30,000 (parts of 2,048: 0.39 and
// 0.73). An extra part costs a read and a write of C per 512 multiply-adds of each of its
// entries; mnist's layer 1 (k = 784) goes in parts of 392 already.
constexpr index tile_max_part = 512;

// The largest C that tile_gemm takes in more than one part, in bytes: a quarter of a core's L2
// (half of tile_A_bytes). Each part reads and writes the whole of C once more, which costs little
// while C stays in L2 beside the part of op(A). On an AVX-512 Xeon with 2 MiB of L2 a core, one
// thread, GFLOP/s on the tiles in parts against OpenBLAS (rows x columns x k, C's bytes):
// 512x128x784 (256 KiB) 155 against 131, 768x128x784 (384 KiB) 148-149 against 130-134,
// 1024x128x784 (512 KiB) 145-149 against 127; but 640x256x640 (640 KiB) 92-93 against 102-130,
// 768x256x768 94-140 against 104-149, 1024x256x1024 82-123 against 102-143, wide's 2048x256x2048
// (2 MiB, in parts of 128) 71-114 against 94-135, and the 2048-cube 116 against 152. On the 1 MiB
// L2s where the parts were measured first, every C they gained on was of 256 KiB and less, and the
// 1024-cube lost (4 MiB on one thread, 2 MiB a thread on two). A team's threads, whose shares of
// C's columns may differ by one, may fall on either side of the limit: each takes its own share.
const double tile_C_parts_bytes = tile_A_bytes / 2;

// The parts of k in which tile_gemm takes a product of C = (rows, cols) over k, with an op(A)
// stored column-major of a vector's lanes of rows and more and an op(B) whose rows lie bk apart;
// 0 where it does not take it. A part has tile_max_part terms at most, its op(A), (rows, part),
// fits in tile_A_bytes and its strips of op(B) span tile_B_span at most: one part where the whole
// of them do, else, where C fits in tile_C_parts_bytes, the fewest parts of equal length (the
// first k % parts of them one longer) that do, each of tile_min_part terms and more. alpha = 0 is
// left to BLAS, which then reads neither factor.
// From one vector of rows (16 in float32, 8 in float64) to three, the tiles beat BLAS's call and
// packing on a tiny network's products and OpenBLAS's kernels on a small hidden layer's larger
// ones. On an AMD EPYC (Zen 5), one thread, in ns on the tiles against OpenBLAS's SkylakeX kernels
// (its small-matrix ones): in float32, 16x32x16 (rows, columns, k) 127 against 151, 16x8x128 189
// against 262, 16x128x512 11,319 against 14,273, 32x128x512 15,675 against 21,700; in float64,
// 8x32x16 116 against 121, 23x128x512 23,350 against 63,831; but 16x128x128 in float64 4,221
// against 3,892, and below one vector 8x32x128 in float32 699 against 415 (a vector costs as much
// for 8 rows as for 16). Fits of an epoch of 15,360 examples, ms on one thread: in float32,
// 784-32-10 on batches of 128 8.8-9.4 against 12.6-13.2 (on two threads 5.7-7.3 against 8.0-8.3),
// 784-40-10 on 64 12.1-12.5 against 15.8-16.2, 784-16-10 on 256 6.8-7.6 against 9.3-9.4; in
// float64, 784-32-10 16.3-16.9 against 16.4-17.1, 64-24-24-10 3.3-4.3 against 3.6-3.8. The tiny
// benchmark's fit (2-16-16-1 on 32) ran at 447-455 thousand steps/s against 399-401, and with
// OpenBLAS held to its AVX2 kernels (OPENBLAS_CORETYPE=Haswell) at 407 against 298-300.
template <class T>
index tile_parts(index rows, index cols, index k, index bk, T alpha) {
  if (alpha == T(0) || cols < 2 || rows < Zmm<T>::lanes) return 0;
  const double longest = std::floor(std::min(
      {tile_A_bytes / (double(rows) * sizeof(T)), tile_B_span<T> / (double(bk) * sizeof(T)), double(tile_max_part)}));
  if (double(k) <= longest) return 1;
  if (double(rows) * double(cols) * sizeof(T) > tile_C_parts_bytes) return 0;  // each part reads C again
  if (longest < double(tile_min_part)) return 0;
  const index parts = index(std::ceil(double(k) / longest));
  return k / parts >= tile_min_part ? parts : 0;
}

// Columns of C from which tile_gemm may take a row-major op(A), transposed first (see transposes).
constexpr index transposition_min_columns = 16;

// The longest k for which tile_gemm may take a row-major op(A) of fewer rows than three vectors,
// transposed first. On an AMD EPYC (Zen 5), one thread, in ns on the tiles against OpenBLAS's
// product with op(A) row-major: k = 16, 8x32x16 in float64 183 against 390, 16x32x16 in float32 130
// against 265; k = 32, 16x32x32 in float32 225 against 284, 8x16x32 in float64 158 against 152; but
// k = 64, 16x16x64 in float32 233 against 215, 8x16x64 in float64 233 against 176.
constexpr index transposition_few_rows_k = 32;

// Columns of C from which panel_gemm takes a product that the tiles do not: its copies pay from
// the second strip on.
constexpr index panel_min_columns = 16;

// The most columns of C that panel_gemm takes at a time (a chunk; see chunk_width): each panel of
// a chunk reads all of op(B)'s part in the chunk's columns (1 MiB at most in float32, 2 MiB in
// float64). One thread, float32, medians of eleven ratios of OpenBLAS's time to panel_gemm's, in
// chunks of 512 and of 256 columns: NN 256x2048x784 1.10 and 1.10 (1.08 in one chunk of 2048),
// 2048x1024x2048 1.03 and 1.04 (1.01 in one chunk), 784x2048x784 1.05 and 1.06, 100x4000x300 1.03
// and 1.06; TN (each chunk transposes op(A)'s panels again) 1000x1000x1000 1.04 and 1.02,
// 1024x1024x1024 1.05 in chunks of 256 (1.07 in one chunk); on two threads, TN 1024x2048x1024 1.06
// and 1.07 (1.07 in one chunk), 2048x2048x2048 1.06 and 1.05.
constexpr index panel_chunk_columns = 512;

// The columns of each of the fewest chunks of N columns (the last of fewer): of equal width
// rounded up to a strip's, so that no chunk is left with a few columns that copy op(A)'s panels
// (or pack op(B)) for little use.
inline index chunk_width(index N) {
  const index chunks = (N + panel_chunk_columns - 1) / panel_chunk_columns;
  return ((N + chunks - 1) / chunks + strip_columns - 1) / strip_columns * strip_columns;
}

// Whether tile_gemm, with may_transpose_A (see gemm), takes a row-major op(A) of (rows, k) for C of
// (rows, cols): from transposition_min_columns columns, within a quarter of tile_A_bytes (below
// three vectors of rows, of transposition_few_rows_k terms at most). Elsewhere the transposition (a
// read and a write of op(A)) cost more than the tiles saved. One thread's backward of 64-n1-n2 relu
// networks, whose dA[1] has an op(A) of (n1, n2), in us on BLAS against transposed, on an AVX-512
// Xeon with 2 MiB of L2: in float32, 256x256 (256 KiB) 17 against 35 on 4 examples, 45 against 38
// on 8, 57 against 53 on 16, 88 against 82 on 32; 256x128 24 against 20 on 8, 50 against 45 on 32;
// but 512x256 (512 KiB) 174 against 192 on 32 and 590 against 638 on 128, 512x512 350 against 419
// on 32. In float64, 128x128 11-14 against 21 on 8 and 30 against 30 on 16; 181x181 (256 KiB) 42
// against 41 on 8, 60 against 57 on 16, 96 against 89 on 32; but 256x256 (512 KiB) 172 against 206
// on 32.
template <class T>
bool transposes(index rows, index cols, index k) {
  return cols >= transposition_min_columns && double(rows) * double(k) * sizeof(T) <= tile_A_bytes / 4 &&
         (rows >= 3 * Zmm<T>::lanes || k <= transposition_few_rows_k);
}

// The calling thread's scratch of at least `size` entries, for an op(A) transposed for the tiles
// (a quarter of tile_A_bytes at most) or a panel's copies and a chunk's packed op(B) (see
// panel_gemm): grown to the largest asked for, kept for the thread's life, as BLAS keeps the
// buffers it packs into; nullptr where it cannot grow (BLAS then takes the
// product: a team's thread must not throw).
template <class T>
T* thread_scratch(index size) {
  thread_local std::vector<T> scratch;
  if (index(scratch.size()) < size) {  // once per thread and size
    try {
      scratch.resize(size);
    } catch (const std::bad_alloc&) {
      return nullptr;
    }
  }
  return scratch.data();
}

// Whether tile_gemm took C = alpha op(A) op(B) + beta C (see product, tile_parts): op(A) stored
// column-major, in parts of k where it is larger than the tiles take whole,
//   C = alpha op(A)(:, k1) op(B)(k1, :) + beta C,  C += alpha op(A)(:, k2) op(B)(k2, :), ...
// or else, with may_transpose_A (see transposes), whole and transposed into the thread's scratch
// first (dA[l-1] = W[l]^T dZ[l]; see Network::dA_by_rows).
// In parts, on the AMD EPYC (Zen 4) with 1 MiB of L2 a core, where mnist's 784-256 W[1] (784 KiB
// in float32) is beyond half of L2: one thread's epoch of mnist's fit took 284-286 ms against
// 303-304 on OpenBLAS, in float64 572-576 against 608-613; a step of 784-512-512-10 on 128
// examples 4.00 ms against 4.23, of 1000-300-10 on 64 in float64 1.55 against 1.67.
// Whole, on an AVX-512 Xeon, one thread, a layer's forward (and backward) against OpenBLAS's,
// in the tiles' first version: in float32, 784-256 on 128 examples 322 us (382) against 399
// (364), 256-128 58 (61) against 73 (71), 512-512 420 (469) against 514 (515); in float64,
// 784-64 on 128 examples 160 (219) against 244 (229), 256-128 108 (114) against 148 (151).
template <class T>
bool tile_gemm_took(bool trans_A, ConstMatrix<T> A, bool trans_B, ConstMatrix<T> B, T alpha, T beta, Matrix<T> C,
                    bool may_transpose_A) {
  const index k = trans_A ? A.rows : A.cols;
  const index bk = k_step(trans_B, B), bj = bk == 1 ? B.ld : 1;
  const bool column_major = trans_A == A.transposed;
  const index parts = tile_parts(C.rows, C.cols, k, bk, alpha);
  if (parts == 0) return false;
  if (!column_major && !(parts == 1 && may_transpose_A && transposes<T>(C.rows, C.cols, k))) return false;
  const T* a = A.data;
  index lda = A.ld;
  if (!column_major) {  // op(A)^T is stored column-major: (k, C.rows)
    T* At = thread_scratch<T>(C.rows * k);
    if (!At) return false;
    copy_transposed(A.data, A.ld, 0, C.rows, Range{0, k}, At, C.rows);
    a = At;
    lda = C.rows;
  }
  tile_products.fetch_add(1, std::memory_order_relaxed);
  for (index p = 0; p < parts; ++p) {
    const Range r = part_of(k, parts, p);
    tile_gemm(C.rows, C.cols, r.size(), alpha, a + r.begin * lda, lda, B.data + r.begin * bk, bk, bj,
              p == 0 ? beta : T(1), C.data, C.ld);
  }
  return true;
}

// op(B)'s rows r in the columns [j0, j1), packed strip by strip of eight columns (the last of
// fewer), each strip's rows one after the other, for the tiles to read a row of a strip at a time
// (with bk = the strip's columns, bj = 1), from an op(B) whose rows are contiguous:
//   op(B)(k, j) = B[k bk + j];  strip of columns [j, j + cols): at packed + (j - j0) |r|, (|r|, cols) row-major
template <class T>
void pack_strips(const T* B, index bk, Range r, index j0, index j1, T* packed) {
  for (index j = j0; j < j1; j += strip_columns) {
    const index cols = std::min(strip_columns, j1 - j);
    T* strip = packed + (j - j0) * r.size();
    const T* row = B + r.begin * bk + j;
    const auto copy_rows = [&](auto count) {
      for (index k = 0; k < r.size(); ++k, row += bk, strip += count)
        for (index jj = 0; jj < count; ++jj) strip[jj] = row[jj];
    };
    // a full strip's count known at compile time, whose loop the compiler makes a vector's move
    // (std::copy_n, a call of memmove a row, made one thread's float32 48x512x2048 product 20% slower)
    if (cols == strip_columns) {
      copy_rows(std::integral_constant<index, strip_columns>{});
    } else {
      copy_rows(cols);
    }
  }
}

// C = alpha op(A) op(B) + beta C (beta = 0: C is not read), chunk by chunk of columns (see
// chunk_width), each in parts of k of tile_max_part terms at most, each part panel by panel of
// rows (see row_panels), every strip of eight columns of the chunk but the first reading a copy of
// the panel's part of op(A), contiguous, instead of op(A): an op(A) stored column-major is copied
// by that first strip as it reads it (tile with Copies), one stored row-major transposed into the
// copy before it (copy_transposed). With `packed`, op(B)'s part of the chunk is packed first (see
// pack_strips), for an op(B) whose columns are not contiguous (bj = 1).
//   op(A)(i, k) = A[i + k lda] (column-major) or A[k + i lda] (row-major): (M, K);
//   op(B)(k, j) = B[k bk + j bj];  C: (M, N), ldc;  copy: 3 lanes min(K, tile_max_part) entries;
//   packed: nullptr, or min(K, tile_max_part) min(N, panel_chunk_columns) entries
template <class T>
void panel_gemm(index M, index N, index K, T alpha, const T* A, index lda, bool row_major, const T* B, index bk,
                index bj, T beta, T* C, index ldc, T* copy, T* packed) {
  constexpr index lanes = Zmm<T>::lanes;
  const index parts = (K + tile_max_part - 1) / tile_max_part, width = chunk_width(N);
  for (index chunk = 0; chunk < N; chunk += width) {
    const index chunk_end = std::min(N, chunk + width);
    for (index p = 0; p < parts; ++p) {
      const Range r = part_of(K, parts, p);
      const T part_beta = p == 0 ? beta : T(1);
      if (packed) pack_strips(B, bk, r, chunk, chunk_end, packed);
      row_panels<T>(M, [&](index i, index rows) {
        const index copy_ld = (rows + lanes - 1) / lanes * lanes;
        if (row_major) copy_transposed(A, lda, i, rows, r, copy, copy_ld);
        for (index j = chunk; j < chunk_end; j += strip_columns) {
          const index cols = std::min(strip_columns, chunk_end - j);
          const T* b = packed ? packed + (j - chunk) * r.size() : B + r.begin * bk + j * bj;
          const index strip_bk = packed ? cols : bk, strip_bj = packed ? 1 : bj;
          T* c = C + i + j * ldc;
          if (j == chunk && !row_major)
            tile_kernel<T, true>(rows, cols)(rows, r.size(), alpha, A + i + r.begin * lda, lda, b, strip_bk, strip_bj,
                                             part_beta, c, ldc, copy);
          else
            tile_kernel<T>(rows, cols)(rows, r.size(), alpha, copy, copy_ld, b, strip_bk, strip_bj, part_beta, c, ldc,
                                       nullptr);
        }
      });
    }
  }
}

// Whether panel_gemm took C = alpha op(A) op(B) + beta C (see product), a product that the tiles
// did not take: op(A), stored either way, of a vector's lanes of rows and more and k >= 1, C of
// panel_min_columns columns and more, alpha not 0 (BLAS then reads neither factor); an op(B)
// whose columns are not contiguous (dW[l]'s A[l-1]^T) packed, where C has three vectors of rows
// and more: below, the tiles of one and two vectors lost to OpenBLAS in float32 (16x512x512 0.91
// times its rate, 24x512x512 0.90, 32x512x512 0.99), their packing paid for by few rows.
// On an AMD EPYC (Zen 4), one thread, medians of eleven ratios of OpenBLAS's time to
// panel_gemm's, taken in turn, on buffers that start at a cache line as mlpcore's do: in float32,
// NN 1024x256x1024 1.14, 2048x256x2048 1.12, 784x128x784 1.13, 4000x100x300 1.17, 256x2048x784
// 1.13, 300x2000x1000 1.13, 2048x1024x2048 1.05, 3000x1024x3000 1.04, 2048x1024x256 with beta = 1
// 1.04; TN (op(A) row-major, which the tiles' transposition turns away: transposes)
// 1024x256x2048 1.14, 512x32x512 1.24, 512x128x512 1.11, 16x16x64 1.05; NT (op(B) packed)
// 2048x1024x256 1.08, with beta = 1 1.03-1.05, 256x392x2048 1.08, 256x784x2048 with beta = 1
// 1.05, 1024x512x512 1.11, 512x64x512 1.11, 48x512x2048 1.09; in float64, NN 1024x64x1024 1.17,
// 1024x256x1024 1.06, 784x128x784 1.10, 300x512x1000 1.12, 256x2048x784 1.24, 1024x1024x1024
// 1.05; TN 1024x256x1024 1.06, 512x32x512 1.30, but 16x16x64 0.95; NT 1024x512x256 with beta = 1
// 1.04, 256x392x2048 1.13, 512x64x512 1.11, 24x512x512 1.24.
template <class T>
bool panel_gemm_took(bool trans_A, ConstMatrix<T> A, bool trans_B, ConstMatrix<T> B, T alpha, T beta, Matrix<T> C) {
  const index k = trans_A ? A.rows : A.cols;
  const index bk = k_step(trans_B, B), bj = bk == 1 ? B.ld : 1;
  const index min_rows = bk == 1 ? Zmm<T>::lanes : 3 * Zmm<T>::lanes;
  if (k == 0 || alpha == T(0) || C.rows < min_rows || C.cols < panel_min_columns) return false;
  const index part = std::min(k, tile_max_part), copy_size = 3 * Zmm<T>::lanes * part;
  const index packed_size = bk == 1 ? 0 : part * std::min(C.cols, panel_chunk_columns);
  T* copy = thread_scratch<T>(copy_size + packed_size);
  if (!copy) return false;
  panel_products.fetch_add(1, std::memory_order_relaxed);
  panel_gemm(C.rows, C.cols, k, alpha, A.data, A.ld, trans_A != A.transposed, B.data, bk, bj, beta, C.data, C.ld, copy,
             packed_size ? copy + copy_size : nullptr);
  return true;
}

// Rows from which column_gemv takes the rows past its last block: below, BLAS's gemv was as fast
// or faster (its dot product for one row).
constexpr index column_min_rows = 4;

// The rows of y = alpha A x + beta y (M rows, see column_gemv) that column_gemv computed, from
// the first: blocks of rows, then the rows left unless they are fewer than column_min_rows (left
// to BLAS); on a CPU that runs the AVX-512 build (product asks only there), 0 in builds without
// AVX-512 clones. Blocks of sixteen vectors where A fits in tile_A_bytes (half of a core's L2),
// else of four: read from the L3, a 1000x1000 float32 A took 185-188 us in blocks of sixteen
// against 131-134 in four (the 2048-2048-2048-10 net's predict 832-891 us against 712-715). On
// an AVX-512 Xeon, in C loops: the mnist net's 10x128 W[3] in 0.07 us against OpenBLAS's sgemv
// 0.27 us.
template <class T>
index column_gemv_rows(index M, index K, T alpha, const T* A, index lda, const T* x, index incx, T beta, T* y) {
  using Kernel = void (*)(index, index, T, const T*, index, const T*, index, T, T*, bool);
  constexpr Kernel vectors[] = {column_gemv<T, 1>,  column_gemv<T, 2>,  column_gemv<T, 3>,  column_gemv<T, 4>,
                                column_gemv<T, 5>,  column_gemv<T, 6>,  column_gemv<T, 7>,  column_gemv<T, 8>,
                                column_gemv<T, 9>,  column_gemv<T, 10>, column_gemv<T, 11>, column_gemv<T, 12>,
                                column_gemv<T, 13>, column_gemv<T, 14>, column_gemv<T, 15>, column_gemv<T, 16>};
  const index block_vectors = double(M) * double(K) * sizeof(T) <= tile_A_bytes ? 16 : 4;
  const index block = block_vectors * Zmm<T>::lanes;
  const bool skip_zeros = M >= column_min_rows && incx == 1 && holds_zero(x, K);
  index i = 0;
  for (; M - i >= block; i += block)
    vectors[block_vectors - 1](block, K, alpha, A + i, lda, x, incx, beta, y + i, skip_zeros);
  if (M - i < column_min_rows) return i;
  vectors[(M - i - 1) / Zmm<T>::lanes](M - i, K, alpha, A + i, lda, x, incx, beta, y + i, skip_zeros);
  return M;
}
#else
template <class T>
index column_gemv_rows(index, index, T, const T*, index, const T*, index, T, T*) {
  return 0;
}
template <class T>
bool tile_gemm_took(bool, ConstMatrix<T>, bool, ConstMatrix<T>, T, T, Matrix<T>, bool) {
  return false;
}
template <class T>
bool panel_gemm_took(bool, ConstMatrix<T>, bool, ConstMatrix<T>, T, T, Matrix<T>) {
  return false;
}
#endif

// C = alpha op(A) op(B) + beta C on the calling thread (may_transpose_A: see gemm).
template <class T>
void product(bool trans_A, ConstMatrix<T> A, bool trans_B, ConstMatrix<T> B, T alpha, T beta, Matrix<T> C,
             bool may_transpose_A = false) {
  const index k = trans_A ? A.rows : A.cols;
  const index incx = k_step(trans_B, B);  // when op(B) is one column: x
  // one example, op(A) stored column-major: column_gemv, and BLAS's gemv the rows it leaves
  if (C.cols == 1 && trans_A == A.transposed && avx512_clones()) {
    const Range rest{column_gemv_rows(C.rows, k, alpha, A.data, A.ld, B.data, incx, beta, C.data), C.rows};
    if (rest.size() == 0) return;
    A = trans_A ? A.columns(rest) : A.row_block(rest);
    C = C.row_block(rest);
  }
  if (avx512_clones() && (tile_gemm_took(trans_A, A, trans_B, B, alpha, beta, C, may_transpose_A) ||
                          panel_gemm_took(trans_A, A, trans_B, B, alpha, beta, C)))
    return;
  const InsideBlas in_flight;
  if (C.cols == 1) {  // one example: a matrix-vector product, which BLAS does without packing
    const int stored_rows = int(A.transposed ? A.cols : A.rows), stored_cols = int(A.transposed ? A.rows : A.cols);
    gemv_call(flag(trans_A, A.transposed), stored_rows, stored_cols, alpha, A.data, int(A.ld), B.data, int(incx), beta,
              C.data);
    return;
  }
  gemm_call(flag(trans_A, A.transposed), flag(trans_B, B.transposed), int(C.rows), int(C.cols), int(k), alpha, A.data,
            int(A.ld), B.data, int(B.ld), beta, C.data, int(C.ld));
}

// BLAS's own pool stays at one thread: mlpcore shares products out over OpenMP's threads
// itself, so that one pool serves the products, the element-wise passes and fit's team. Two
// pools would fight for the cores: OpenBLAS's threads spin for some 0.1 s after its last
// threaded call, and a fit started in that time ran at 40% of its speed. Called at load and
// before every product (another library, threadpoolctl say, may have raised the count since);
// a look at the count, which costs nanoseconds, unless it has to set it.
void set_blas_single_threaded() {
#ifdef MLPCORE_SCIPY_OPENBLAS
  if (scipy_openblas_get_num_threads() != 1) scipy_openblas_set_num_threads(1);
#else
  // A system CBLAS may be OpenBLAS or MKL, each with its own way; any other keeps its own setting.
  using setter = void (*)(int);
  using getter = int (*)();
  struct Controls {
    setter set = nullptr;
    getter get = nullptr;
  };
  static const Controls controls = [] {
    for (const auto& [set, get] : {std::pair{"openblas_set_num_threads", "openblas_get_num_threads"},
                                   std::pair{"MKL_Set_Num_Threads", "MKL_Get_Max_Threads"}}) {
      if (void* found = dlsym(RTLD_DEFAULT, set))
        return Controls{reinterpret_cast<setter>(found), reinterpret_cast<getter>(dlsym(RTLD_DEFAULT, get))};
    }
    return Controls{};
  }();
  if (controls.set && (!controls.get || controls.get() != 1)) controls.set(1);
#endif
}

const bool blas_single_threaded_at_load = (set_blas_single_threaded(), true);  // before any product

// One example's product of pair_work multiply-adds and more, as two parts k1, k2 of the inner
// dimension k (k >= 2, so that neither part is empty, which BLAS would skip without scaling c
// by beta):  c = alpha op(A)[:, k1] b[k1] + beta c,  then c += alpha op(A)[:, k2] b[k2],
// the second part on the pair thread when it is free and spinning (set_num_threads(k > 1),
// outside a team), into a scratch column of this thread's. The sum is the same whoever
// computes the parts, so the results do not depend on it.
//   op(A): (c.rows, k), b: (k, 1), c: (c.rows, 1)
template <class T>
void halved_product(bool trans_A, ConstMatrix<T> A, bool trans_B, ConstMatrix<T> B, T alpha, T beta, Matrix<T> C) {
  const index k = trans_A ? A.rows : A.cols;
  thread_local std::vector<T> scratch;
  if (index(scratch.size()) < C.rows) scratch.resize(C.rows);  // once per thread and size
  const Matrix<T> second{scratch.data(), C.rows, 1, C.rows};
  // The caller's part is the larger: the pair thread begins its own after the hand-over, some
  // 0.2 us later, and ran 3-7% slower a column in timings of the mnist net's W[1] on an AVX-512
  // Xeon. With 53% of k to the caller, predict of one example on that net took 7.13-7.37 us
  // against 7.45-7.74 with halves (six pairs of 400,000 calls).
  const index cut = std::clamp(k * 53 / 100, index(1), k - 1);
  const auto half = [&](int h) {
    const Range r = h == 0 ? Range{0, cut} : Range{cut, k};
    product(trans_A, trans_A ? A.row_block(r) : A.columns(r), trans_B, trans_B ? B.columns(r) : B.row_block(r), alpha,
            h == 0 ? beta : T(0), h == 0 ? C : second);
  };
  if (team_size.load() > 1 && !omp_in_parallel()) {
    PairThread::instance().run(half);
  } else {
    half(0);
    half(1);
  }
  for (index i = 0; i < C.rows; ++i) C.data[i] += second.data[i];
}

}  // namespace

template <class T>
void gemm(bool trans_A, ConstMatrix<T> A, bool trans_B, ConstMatrix<T> B, T alpha, T beta, Matrix<T> C,
          bool may_transpose_A) {
  const index k = trans_A ? A.rows : A.cols;
  assert(C.rows == (trans_A ? A.cols : A.rows) && C.cols == (trans_B ? B.rows : B.cols));
  assert(k == (trans_B ? B.cols : B.rows));
  if (C.rows == 0 || C.cols == 0) return;
  set_blas_single_threaded();
  const double work = double(C.rows) * double(C.cols) * double(k);
  if (C.cols == 1 && k >= 2 && work >= pair_work && work < team_work_threshold)
    return halved_product(trans_A, A, trans_B, B, alpha, beta, C);
  if (work < team_work_threshold || team_size.load() == 1 || omp_in_parallel())
    return product(trans_A, A, trans_B, B, alpha, beta, C, may_transpose_A);
  // Each thread takes its share of C's longer side: C's columns with op(B)'s, or C's rows with op(A)'s.
  const bool by_columns = C.cols >= C.rows;
#pragma omp parallel num_threads(region_threads())
  {
    const Team team{omp_get_thread_num(), omp_get_num_threads()};
    const Range r = team.share(by_columns ? C.cols : C.rows);
    if (by_columns) {
      product(trans_A, A, trans_B, trans_B ? B.row_block(r) : B.columns(r), alpha, beta, C.columns(r), may_transpose_A);
    } else {
      product(trans_A, trans_A ? A.columns(r) : A.row_block(r), trans_B, B, alpha, beta, C.row_block(r),
              may_transpose_A);
    }
  }
}

template <class T>
bool tiles_take_transposed([[maybe_unused]] index rows, [[maybe_unused]] index cols, [[maybe_unused]] index k) {
#if MLPCORE_AVX512_CLONES
  return avx512_clones() && transposes<T>(rows, cols, k) && tile_parts(rows, cols, k, 1, T(1)) == 1;
#else
  return false;
#endif
}

template <class T>
index tile_parts_taken([[maybe_unused]] index rows, [[maybe_unused]] index cols, [[maybe_unused]] index k,
                       [[maybe_unused]] index bk) {
#if MLPCORE_AVX512_CLONES
  return avx512_clones() ? tile_parts(rows, cols, k, bk, T(1)) : 0;
#else
  return 0;
#endif
}

template void gemm<float>(bool, ConstMatrix<float>, bool, ConstMatrix<float>, float, float, Matrix<float>, bool);
template void gemm<double>(bool, ConstMatrix<double>, bool, ConstMatrix<double>, double, double, Matrix<double>, bool);
template bool tiles_take_transposed<float>(index, index, index);
template bool tiles_take_transposed<double>(index, index, index);
template index tile_parts_taken<float>(index, index, index, index);
template index tile_parts_taken<double>(index, index, index, index);

// In a child made by fork after this process started threads: one thread for good, since GCC's
// OpenMP runtime cannot start threads there (see threads_started).
std::atomic<bool> threads_lost_in_fork{false};

namespace {

// Before a fork, the BLAS calls in flight end and new ones wait (these handlers, registered after
// OpenBLAS's own, run before its); after it, they go on, and in the child none is in flight.
void wait_for_blas_calls() {
  fork_waiting = true;
  while (blas_calls_in_flight.load() > 0) std::this_thread::yield();
}
void let_blas_calls_go() { fork_waiting = false; }
void start_the_child() {
  blas_calls_in_flight = 0;
  fork_waiting = false;
  ++forks;
  if (!threads_started.load()) return;
  team_size = 1;
  threads_lost_in_fork = true;
}
const bool fork_handlers_at_load = (pthread_atfork(wait_for_blas_calls, let_blas_calls_go, start_the_child), true);

}  // namespace

void set_num_threads(int k) {
  if (k > 1 && threads_lost_in_fork.load())
    throw std::runtime_error(
        "this process was made by fork after mlpcore had run on several threads in its parent; OpenMP cannot "
        "start threads in it, so mlpcore runs on one here (start processes with 'spawn' or 'forkserver' to "
        "have threads in them)");
  team_size = k;
  set_blas_single_threaded();
}

int get_num_threads() { return team_size; }

int max_threads() { return omp_get_num_procs(); }

}  // namespace mlpcore
