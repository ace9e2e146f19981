// The GEMM wrapper over CBLAS, which shares large products out over OpenMP's threads, and the thread count.
// On CPUs with AVX-512, one example's products through a column-major op(A) (Z[l] = W[l] a[l-1])
// run on mlpcore's own matrix-vector kernel (column_gemv in blas.cpp); and products of several
// examples through a column-major op(A) (a minibatch's Z[l] = W[l] A[l-1] and dW[l] = (1/m)
// dZ[l] A[l-1]^T) on its tiles, where op(A) fits in half of L2 and op(B)'s strips span little
// enough, or else parts of k long enough do and C fits in a quarter of L2, and op(A) has a
// vector's lanes of rows and more (tile_parts and tile_gemm_took in blas.cpp); and so do products
// whose op(A) is stored row-major (dA[l-1] = W[l]^T dZ[l]) of enough columns, transposed first,
// where the caller asks. The products that the tiles leave, op(A) stored either way with a
// vector's lanes of rows and more and k >= 1, of 16 columns and more (a thread's share, in chunks
// of 512), alpha not 0, run on the tiles through copies of op(A)'s panels, an op(B) whose columns
// are not contiguous (dW[l]'s A[l-1]^T) packed where C has three vectors of rows and more
// (panel_gemm_took), whether the caller asks or not; the rest on BLAS.
#pragma once

#include <atomic>
#include <cstdint>

#include "matrix.hpp"

namespace mlpcore {

// The products that tile_gemm has computed in this process, which the tests read to see it run.
inline std::atomic<std::int64_t> tile_products{0};
// The products that panel_gemm has computed in this process, likewise.
inline std::atomic<std::int64_t> panel_products{0};

// C = alpha op(A) op(B) + beta C, column-major. op(X) is X, or X^T when `trans_X`;
// a ConstMatrix stored transposed flips its flag, so C-ordered inputs need no copy.
// Products of team_work_threshold (2^23) multiply-adds and more are shared out over
// set_num_threads's threads (each on single-threaded BLAS), unless called inside a team (fit's
// steps, large calls of forward and backward), which has shared its work out already. One
// example's products (C.cols = 1) of pair_work (2^16) multiply-adds and more, below that, are
// two parts of k summed (the caller's 53%), the second on the pair thread when it is awake (see pair.hpp).
// With `may_transpose_A`, an op(A) stored row-major goes to the tiles where they would take it
// stored column-major, it fits in an eighth of a core's L2 and C has 16 columns and more (each
// thread's share, where gemm shares the product out; below three vectors of rows, on a k of 32 at
// most), transposed first into a scratch of the thread that computes it (kept for the thread's life).
//   op(A): (C.rows, k), op(B): (k, C.cols)
template <class T>
void gemm(bool trans_A, ConstMatrix<T> A, bool trans_B, ConstMatrix<T> B, T alpha, T beta, Matrix<T> C,
          bool may_transpose_A = false);

// Whether gemm, with may_transpose_A, takes C = op(A) op(B) of (rows, cols), op(A) of (rows, k)
// stored row-major and op(B) column-major, to the tiles (on a CPU that runs the AVX-512 build;
// see transposes and tile_parts in blas.cpp).
template <class T>
bool tiles_take_transposed(index rows, index cols, index k);

// The parts of k in which gemm, on the thread that computes it, takes C = alpha op(A) op(B) of
// (rows, cols), op(A) of (rows, k) stored column-major and op(B)'s rows bk apart, to the tiles
// (on a CPU that runs the AVX-512 build; see tile_parts in blas.cpp); 0 where it does not (the
// panels' copies or BLAS then take it).
template <class T>
index tile_parts_taken(index rows, index cols, index k, index bk);

// The thread count of mlpcore's products and passes, all on OpenMP's threads (BLAS's own pool
// stays at one thread); k in 1..max_threads().
void set_num_threads(int k);
int get_num_threads();
int max_threads();  // the processors available to this process

}  // namespace mlpcore
