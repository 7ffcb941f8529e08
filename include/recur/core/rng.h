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

/// The 24-bit integer behind uniform_at: uniform_at(seed, i) == uniform_bits_at(seed, i) * 2^-24.
inline uint64_t uniform_bits_at(uint64_t seed, uint64_t index) { return mix64(seed ^ mix64(index)) >> 40; }

/// The integer form of `uniform_at(seed, i) < p`: it holds exactly when uniform_bits_at(seed, i) <
/// below_threshold(p) (the bits are a whole number k < 2^24, k * 2^-24 is exact in float, and p * 2^24
/// is exact in double). Integer compares let loops over many indices vectorise.
inline uint64_t below_threshold(float p) {
  if (!(p > 0.0f)) return 0;
  if (p >= 1.0f) return uint64_t{1} << 24;
  const double scaled = static_cast<double>(p) * 16777216.0;
  const auto whole = static_cast<uint64_t>(scaled);
  return static_cast<double>(whole) == scaled ? whole : whole + 1;
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
