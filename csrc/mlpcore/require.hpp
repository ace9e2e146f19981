// The core's one way to refuse a call: std::invalid_argument (ValueError in Python), raised
// before any state is touched.
#pragma once

#include <stdexcept>
#include <string>

namespace mlpcore {

inline void require(bool condition, const std::string& message) {
  if (!condition) throw std::invalid_argument(message);
}

}  // namespace mlpcore
