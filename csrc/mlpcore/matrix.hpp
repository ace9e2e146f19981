// Matrix views: a pointer, a shape and a leading dimension over memory owned elsewhere.
// Matrices are column-major: element (i, j) of an (rows, cols) matrix is data[i + j * ld],
// so column j (example j) is contiguous.
#pragma once

#include <cstddef>

namespace mlpcore {

using index = std::ptrdiff_t;

template <class T>
struct Matrix {
  T* data;
  index rows, cols, ld;

  T& operator()(index i, index j) const { return data[i + j * ld]; }
  T* col(index j) const { return data + j * ld; }
  index size() const { return rows * cols; }
};

// A read-only view that may be stored transposed: when `transposed`, element (i, j) is
// data[j + i * ld] (a C-ordered NumPy array), which BLAS reads through its transpose flag.
template <class T>
struct ConstMatrix {
  const T* data;
  index rows, cols, ld;
  bool transposed = false;

  ConstMatrix() = default;
  ConstMatrix(const T* data, index rows, index cols, index ld, bool transposed = false)
      : data(data), rows(rows), cols(cols), ld(ld), transposed(transposed) {}
  ConstMatrix(const Matrix<T>& M) : data(M.data), rows(M.rows), cols(M.cols), ld(M.ld) {}

  T operator()(index i, index j) const { return transposed ? data[j + i * ld] : data[i + j * ld]; }
  const T* col(index j) const { return data + j * ld; }  // column j of a view that is not transposed
};

}  // namespace mlpcore
