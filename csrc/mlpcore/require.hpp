// The core's one way to refuse a call: std::invalid_argument (ValueError in Python), raised
// before any state is touched. A message that has to be put together is given as a function
// that makes it, so that a check that passes costs no allocation.
#pragma once

#include <stdexcept>
#include <string>
#include <type_traits>

namespace mlpcore {

inline void require(bool condition, const char* message) {
  if (!condition) throw std::invalid_argument(message);
}

template <class Describe, class = std::enable_if_t<std::is_invocable_v<Describe>>>
void require(bool condition, Describe&& describe) {
  if (!condition) throw std::invalid_argument(std::string(describe()));
}

}  // namespace mlpcore
