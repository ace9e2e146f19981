// Matrix views: a pointer, a shape and a leading dimension over memory owned elsewhere.
// Matrices are column-major: element (i, j) of an (rows, cols) matrix is data[i + j * ld],
// so column j (example j) is contiguous.
#pragma once

#include <cstddef>

namespace mlpcore {

using index = std::ptrdiff_t;

// The half-open range begin .. end - 1 of columns, rows or entries that one thread works on.
struct Range {
  index begin, end;
  index size() const { return end - begin; }
};

template <class T>
struct Matrix {
  T* data;
  index rows, cols, ld;

  T& operator()(index i, index j) const { return data[i + j * ld]; }
  T* col(index j) const { return data + j * ld; }
  index size() const { return rows * cols; }
  Matrix columns(Range r) const { return {data + r.begin * ld, rows, r.size(), ld}; }
  Matrix row_block(Range r) const { return {data + r.begin, r.size(), cols, ld}; }
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
  // One past the last element the view reaches, in memory order.
  const T* end() const { return data + (transposed ? (rows - 1) * ld + cols : (cols - 1) * ld + rows); }
  ConstMatrix columns(Range r) const {
    return {data + r.begin * (transposed ? 1 : ld), rows, r.size(), ld, transposed};
  }
  ConstMatrix row_block(Range r) const {
    return {data + r.begin * (transposed ? ld : 1), r.size(), cols, ld, transposed};
  }
};

}  // namespace mlpcore
