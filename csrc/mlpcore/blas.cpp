#include "blas.hpp"

#include <cblas.h>
#include <omp.h>

#include <cassert>
#include <initializer_list>

#include "parallel.hpp"

#ifdef MLPCORE_SCIPY_OPENBLAS  // scipy-openblas32: every symbol carries the scipy_ prefix
#define MLPCORE_CBLAS(name) scipy_cblas_##name
#else
#include <dlfcn.h>
#define MLPCORE_CBLAS(name) cblas_##name
#endif

namespace mlpcore {

namespace {

// Multiply-adds below which a product runs on one BLAS thread. OpenBLAS itself keeps products
// under 2^18 on one thread, so the thread count (whose switch costs a few us) is switched only
// for the products in between.
constexpr double gemm_parallel_work = 1 << 22, openblas_single_thread_work = 1 << 18;

CBLAS_TRANSPOSE flag(bool trans, bool stored_transposed) {
  return trans != stored_transposed ? CblasTrans : CblasNoTrans;
}

}  // namespace

void set_blas_threads(int k) {
#ifdef MLPCORE_SCIPY_OPENBLAS
  scipy_openblas_set_num_threads(k);
#else
  // A system CBLAS may be OpenBLAS or MKL, each with its own way; any other keeps its own setting.
  using setter = void (*)(int);
  for (const char* name : {"openblas_set_num_threads", "MKL_Set_Num_Threads"}) {
    if (auto set = reinterpret_cast<setter>(dlsym(RTLD_DEFAULT, name))) return set(k);
  }
#endif
}

namespace {

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

}  // namespace

template <class T>
void gemm(bool trans_A, ConstMatrix<T> A, bool trans_B, ConstMatrix<T> B, T alpha, T beta, Matrix<T> C) {
  const index k = trans_A ? A.rows : A.cols;
  assert(C.rows == (trans_A ? A.cols : A.rows) && C.cols == (trans_B ? B.rows : B.cols));
  assert(k == (trans_B ? B.cols : B.rows));
  if (C.rows == 0 || C.cols == 0) return;
  // BLAS's threads only for products of some 100 us and more (the reason of parallel_threshold).
  const double work = double(C.rows) * double(C.cols) * double(k);
  // Inside a team BLAS is already single-threaded.
  const bool one_thread =
      team_size.load() > 1 && !omp_in_parallel() && work >= openblas_single_thread_work && work < gemm_parallel_work;
  if (one_thread) set_blas_threads(1);
  if (C.cols == 1) {  // one example: a matrix-vector product, which BLAS does without packing
    const int stored_rows = int(A.transposed ? A.cols : A.rows), stored_cols = int(A.transposed ? A.rows : A.cols);
    gemv_call(flag(trans_A, A.transposed), stored_rows, stored_cols, alpha, A.data, int(A.ld), B.data,
              trans_B != B.transposed ? int(B.ld) : 1, beta, C.data);
  } else {
    gemm_call(flag(trans_A, A.transposed), flag(trans_B, B.transposed), int(C.rows), int(C.cols), int(k), alpha, A.data,
              int(A.ld), B.data, int(B.ld), beta, C.data, int(C.ld));
  }
  if (one_thread) set_blas_threads(team_size.load());
}

template void gemm<float>(bool, ConstMatrix<float>, bool, ConstMatrix<float>, float, float, Matrix<float>);
template void gemm<double>(bool, ConstMatrix<double>, bool, ConstMatrix<double>, double, double, Matrix<double>);

void set_num_threads(int k) {
  team_size = k;
  set_blas_threads(k);
}

int get_num_threads() { return team_size; }

int max_threads() { return omp_get_num_procs(); }

}  // namespace mlpcore
