#pragma once
/// \file Caching host allocator with current/peak byte accounting.
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <vector>

namespace recur {

/// Hands out 64-byte aligned blocks and keeps freed blocks in size-class free lists for reuse.
/// `current_bytes` counts bytes held by live tensors (rounded block sizes), `peak_bytes` its
/// maximum since the last reset_peak(). Set RECUR_NO_CACHE=1 to return every block to the system
/// at once (what the sanitizer builds use, so that use-after-free is caught).
class CachingAllocator {
 public:
  using SystemAlloc = void* (*)(size_t bytes);  // returns null when out of memory
  using SystemFree = void (*)(void* ptr);
  /// Host memory (64-byte aligned).
  CachingAllocator();
  /// Any other memory (the CUDA backend passes cudaMalloc/cudaFree wrappers).
  CachingAllocator(SystemAlloc sys_alloc, SystemFree sys_free);
  ~CachingAllocator();
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  /// Returns a block of at least `bytes` bytes; `*block_bytes` receives its real size.
  void* allocate(size_t bytes, size_t* block_bytes);
  void release(void* ptr, size_t block_bytes);

  int64_t current_bytes() const;
  int64_t peak_bytes() const;
  int64_t cached_bytes() const;
  void reset_peak();
  /// Returns every cached block to the system.
  void empty_cache();

  /// The size class a request of `bytes` is rounded up to.
  static size_t round_size(size_t bytes);

 private:
  SystemAlloc sys_alloc_;
  SystemFree sys_free_;
  mutable std::mutex mu_;
  std::map<size_t, std::vector<void*>> free_;
  int64_t current_ = 0, peak_ = 0, cached_ = 0;
  bool caching_ = true;
};

/// The process-wide CPU allocator (one of the two allowed global objects, with the thread pool).
CachingAllocator& cpu_allocator();

}  // namespace recur
