// Optimizers: one pass over the flat parameter buffer, with state buffers laid out like it.
// The formulas and defaults are those of torch.optim (one parameter group, no dampening).
#pragma once

#include <cmath>
#include <cstdint>

#include "parallel.hpp"
#include "require.hpp"

namespace mlpcore {

enum class Method { sgd, rmsprop, adam, adamw };

struct OptimizerSettings {
  Method method = Method::sgd;
  double momentum = 0;      // sgd
  bool nesterov = false;    // sgd
  double alpha = 0.99;      // rmsprop
  double beta1 = 0.9;       // adam, adamw
  double beta2 = 0.999;     // adam, adamw
  double eps = 1e-8;        // rmsprop, adam, adamw
  double weight_decay = 0;  // adamw
};

// The entries of the state's two buffers for `size` parameters under `settings`.
inline index first_size(const OptimizerSettings& settings, index size) {
  return settings.method == Method::sgd && settings.momentum == 0 ? 0 : size;
}
inline index second_size(const OptimizerSettings& settings, index size) {
  return settings.method == Method::adam || settings.method == Method::adamw ? size : 0;
}

// The state of an optimizer: the step count t and up to two buffers laid out like the
// parameters (sgd with momentum: first = buf; rmsprop: first = v; adam, adamw: first = m1, second = v).
template <class T>
struct OptimizerState {
  OptimizerState(const OptimizerSettings& settings, index size)
      : first(first_size(settings, size)), second(second_size(settings, size)) {}

  // Whether a step under `settings` on `size` parameters finds the buffers it reads and writes:
  // not when the state was made for another network, or before momentum changed to or from 0.
  bool fits(const OptimizerSettings& settings, index size) const {
    return index(first.size()) == first_size(settings, size) && index(second.size()) == second_size(settings, size);
  }

  std::int64_t t = 0;
  Buffer<T> first, second;
};

// Refuses a state that does not fit (see OptimizerState::fits).
template <class T>
void require_state_fits(const OptimizerState<T>& state, const OptimizerSettings& settings, index size) {
  require(state.fits(settings, size),
          "this optimizer's state was made for a network of another size or for other hyper-parameters (momentum "
          "changed to or from 0); call reset() first");
}

// for k in 0..size-1: f(k) writes the new values of entry k and returns their residue (x - x
// summed over them: 0 when all are finite). Returns true when every new value is finite.
template <class F>
bool for_each_parameter(index size, const F& f) {
  return all_zero(size, size, f);
}

// One step at count t (in.t + 1), from parameters p and gradient g (after L2 and clipping):
//   sgd:      buf = momentum buf + g (buf = g at t = 1);  d = g + momentum buf (nesterov) or buf;
//             without momentum d = g;  p = p - lr d
//   rmsprop:  v = alpha v + (1 - alpha) g^2;  p = p - lr g / (sqrt(v) + eps)
//   adam:     m1 = beta1 m1 + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2;
//             p = p - lr (m1 / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
//   adamw:    p = p (1 - lr weight_decay), then the adam step
// into p_out and out's buffers (which may be p and in's themselves), over the entries r of the
// flat buffers (a team shares them out); the caller sets out.t = t. Returns true when every new
// value is finite. With Write false, it computes the same values and writes nothing: whether a
// step would be finite, before one that writes in place.
//   p, g, p_out: flat buffers laid out like the parameters
template <class T, bool Write = true>
bool optimizer_step(const OptimizerSettings& s, T lr, std::int64_t t, const T* p, const T* g,
                    const OptimizerState<T>& in, T* p_out, OptimizerState<T>& out, Range r) {
  // out[k] = value (unless Write is false); returns value
  const auto put = [](T* out, index k, T value) {
    if constexpr (Write) out[k] = value;
    return value;
  };
  const auto at = [&](auto& buffer) { return buffer.empty() ? nullptr : buffer.data() + r.begin; };
  const index size = r.size();
  p += r.begin;
  g += r.begin;
  p_out += r.begin;
  const T* s1 = at(in.first);
  const T* s2 = at(in.second);
  T* s1_out = at(out.first);
  T* s2_out = at(out.second);
  switch (s.method) {
    case Method::sgd: {
      const T momentum = T(s.momentum);
      const bool first = t == 1, nesterov = s.nesterov;
      if (momentum == 0)
        return for_each_parameter(size, [=](index k) {
          const T p_new = put(p_out, k, p[k] - lr * g[k]);
          return p_new - p_new;
        });
      return for_each_parameter(size, [=](index k) {
        const T buf = put(s1_out, k, first ? g[k] : momentum * s1[k] + g[k]);
        const T p_new = put(p_out, k, p[k] - lr * (nesterov ? g[k] + momentum * buf : buf));
        return (p_new - p_new) + (buf - buf);
      });
    }
    case Method::rmsprop: {
      // 1 - alpha taken in double, as torch does: in float32 an alpha near 1 rounds to 1
      const T alpha = T(s.alpha), one_minus_alpha = T(1 - s.alpha), eps = T(s.eps);
      return for_each_parameter(size, [=](index k) {
        const T v = put(s1_out, k, alpha * s1[k] + one_minus_alpha * g[k] * g[k]);
        const T p_new = put(p_out, k, p[k] - lr * g[k] / (std::sqrt(v) + eps));
        return (p_new - p_new) + (v - v);
      });
    }
    case Method::adam:
    case Method::adamw: {
      const T beta1 = T(s.beta1), beta2 = T(s.beta2), eps = T(s.eps);
      const T one_minus_beta1 = T(1 - s.beta1), one_minus_beta2 = T(1 - s.beta2);  // in double, as for rmsprop
      const T decay = s.method == Method::adamw ? T(1) - lr * T(s.weight_decay) : T(1);
      // as torch computes it: step = lr / (1 - beta1^t), denominator = sqrt(v) / sqrt(1 - beta2^t) + eps
      const T step = lr / T(1 - std::pow(s.beta1, double(t)));
      const T inverse_root_correction2 = T(1 / std::sqrt(1 - std::pow(s.beta2, double(t))));
      return for_each_parameter(size, [=](index k) {
        const T m1 = put(s1_out, k, beta1 * s1[k] + one_minus_beta1 * g[k]);
        const T v = put(s2_out, k, beta2 * s2[k] + one_minus_beta2 * g[k] * g[k]);
        const T p_new = put(p_out, k, p[k] * decay - step * m1 / (std::sqrt(v) * inverse_root_correction2 + eps));
        return (p_new - p_new) + (m1 - m1) + (v - v);
      });
    }
  }
  return false;
}

// One step at count t in place (p and the state both read and written), after a pass that
// computes the same values without writing them: false, writing nothing, when a new value
// would not be finite (see optimizer_step). A step outside fit, with no spare buffers.
template <class T>
bool step_in_place(const OptimizerSettings& s, T lr, std::int64_t t, T* p, const T* g, OptimizerState<T>& state,
                   Range r) {
  if (!optimizer_step<T, false>(s, lr, t, p, g, state, p, state, r)) return false;
  optimizer_step<T, true>(s, lr, t, p, g, state, p, state, r);
  return true;
}

// Gradient clipping over the whole flat gradient g of `size` entries:
//   by norm: g = g clip_norm / ||g||_2 where ||g||_2 > clip_norm;  by value: g = min(max(g, -clip_value), clip_value)
// A bound of 0 turns that clipping off; by norm comes first.
template <class T>
void clip_gradient(T* g, index size, double clip_norm, double clip_value) {
  if (clip_norm > 0) {
    double squares = 0;  // one thread, so the norm is the same whatever the thread count
    for (index k = 0; k < size; ++k) squares += double(g[k]) * g[k];
    const double norm = std::sqrt(squares);
    if (norm > clip_norm)
      for (index k = 0; k < size; ++k) g[k] *= T(clip_norm / norm);
  }
  if (clip_value > 0)
    for (index k = 0; k < size; ++k) g[k] = std::fmin(std::fmax(g[k], T(-clip_value)), T(clip_value));
}

}  // namespace mlpcore
