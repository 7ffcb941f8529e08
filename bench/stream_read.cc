// Read bandwidth per core for a working set of a given size, both cores at once: the floor of a
// batch-1 recurrent step, which must read all of W_hh. Build and run (see docs/BENCHMARKS.md):
//   g++ -O2 -march=native bench/stream_read.cc -o /tmp/stream_read -lpthread && /tmp/stream_read
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

typedef float v16 __attribute__((vector_size(64)));

// sawtooth: every other pass runs backwards, so a pass starts on what the last one read most
// recently (what an LRU cache still holds when the working set is a little larger than it).
static float sum_passes(const float* p, long n, int passes, bool sawtooth) {
  v16 a0 = {}, a1 = {}, a2 = {}, a3 = {};
  const v16* v = reinterpret_cast<const v16*>(p);
  for (int r = 0; r < passes; ++r)
    if (sawtooth && (r & 1))
      for (long i = n / 16 - 4; i >= 0; i -= 4) {
        a0 += v[i], a1 += v[i + 1], a2 += v[i + 2], a3 += v[i + 3];
      }
    else
      for (long i = 0; i < n / 16; i += 4) {
        a0 += v[i], a1 += v[i + 1], a2 += v[i + 2], a3 += v[i + 3];
      }
  v16 s = a0 + a1 + a2 + a3;
  float t = 0;
  for (int k = 0; k < 16; ++k) t += s[k];
  return t;
}

int main() {
  for (bool saw : {false, true})
  for (long kb : {512L, 1024L, 1536L, 2048L, 4096L}) {
    const long n = kb * 1024 / 4;
    std::vector<v16> a(static_cast<size_t>(n / 16)), b(static_cast<size_t>(n / 16));
    for (auto& x : a) x = v16{} + 1.0f;
    for (auto& x : b) x = v16{} + 1.0f;
    const int passes = static_cast<int>(4000000L / kb);
    float s1 = 0, s2 = 0;
    auto t0 = std::chrono::steady_clock::now();
    std::thread t([&] { s2 = sum_passes(reinterpret_cast<const float*>(b.data()), n, passes, saw); });
    s1 = sum_passes(reinterpret_cast<const float*>(a.data()), n, passes, saw);
    t.join();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%s %5ld KiB per core: %6.1f us per pass, %5.1f GB/s per core (checksum %g)\n", saw ? "sawtooth" : "forward ", kb, s / passes * 1e6,
                kb * 1024.0 * passes / s / 1e9, static_cast<double>(s1 + s2));
  }
}
