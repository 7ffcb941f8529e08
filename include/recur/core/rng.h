#pragma once
/// \file Seeded, counter-based random numbers: the same (seed, counter) gives the same value on
/// every thread count and (later) on the GPU.
#include <cstdint>

namespace recur {

/// SplitMix64 finaliser: a good 64-bit mix of one word.
inline uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

/// Uniform float in [0, 1) from (seed, index).
inline float uniform_at(uint64_t seed, uint64_t index) {
  uint64_t r = mix64(seed ^ mix64(index));
  return static_cast<float>(r >> 40) * (1.0f / 16777216.0f);
}

/// A stream of random numbers; `next_seed()` hands out a fresh seed per op call (e.g. dropout).
class Rng {
 public:
  explicit Rng(uint64_t seed = 0) : seed_(seed) {}
  uint64_t next_u64() { return mix64(seed_ ^ mix64(counter_++)); }
  uint64_t next_seed() { return next_u64(); }
  /// Uniform in [0, 1).
  double uniform() { return static_cast<double>(next_u64() >> 11) * (1.0 / 9007199254740992.0); }
  /// Standard normal (Box-Muller).
  double normal();
  /// Uniform integer in [0, n).
  uint64_t below(uint64_t n) { return n ? next_u64() % n : 0; }
  uint64_t seed() const { return seed_; }
  uint64_t counter() const { return counter_; }
  void set_counter(uint64_t c) { counter_ = c; }

 private:
  uint64_t seed_;
  uint64_t counter_ = 0;
};

}  // namespace recur
