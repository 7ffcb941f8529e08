#include "recur/core/allocator.h"

#include <cstdlib>
#include <cstring>
#include <new>

namespace recur {

namespace {
void* host_alloc(size_t bytes) { return std::aligned_alloc(64, bytes); }
void host_free(void* p) { std::free(p); }
}  // namespace

CachingAllocator::CachingAllocator() : CachingAllocator(host_alloc, host_free) {}

CachingAllocator::CachingAllocator(SystemAlloc sys_alloc, SystemFree sys_free)
    : sys_alloc_(sys_alloc), sys_free_(sys_free) {
  const char* env = std::getenv("RECUR_NO_CACHE");
  caching_ = !(env && std::strcmp(env, "0") != 0 && *env);
}

CachingAllocator::~CachingAllocator() { empty_cache(); }

size_t CachingAllocator::round_size(size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (bytes <= 4096) return (bytes + 255) & ~size_t(255);
  // Above 4 KiB: round up to a quarter of the enclosing power of two, so a freed block serves
  // requests within 25% of its size.
  size_t p = 4096;
  while (p < bytes) p <<= 1;
  size_t q = p / 4;
  return (bytes + q - 1) / q * q;
}

void* CachingAllocator::allocate(size_t bytes, size_t* block_bytes) {
  size_t sz = round_size(bytes);
  *block_bytes = sz;
  {
    std::lock_guard<std::mutex> lock(mu_);
    current_ += static_cast<int64_t>(sz);
    if (current_ > peak_) peak_ = current_;
    auto it = free_.find(sz);
    if (it != free_.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      cached_ -= static_cast<int64_t>(sz);
      return p;
    }
  }
  void* p = sys_alloc_(sz);
  if (!p) {
    empty_cache();
    p = sys_alloc_(sz);
  }
  if (!p) {
    std::lock_guard<std::mutex> lock(mu_);
    current_ -= static_cast<int64_t>(sz);
    throw std::bad_alloc();
  }
  return p;
}

void CachingAllocator::release(void* ptr, size_t block_bytes) {
  if (!ptr) return;
  std::lock_guard<std::mutex> lock(mu_);
  current_ -= static_cast<int64_t>(block_bytes);
  if (!caching_) {
    sys_free_(ptr);
    return;
  }
  free_[block_bytes].push_back(ptr);
  cached_ += static_cast<int64_t>(block_bytes);
}

int64_t CachingAllocator::current_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return current_;
}
int64_t CachingAllocator::peak_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return peak_;
}
int64_t CachingAllocator::cached_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cached_;
}
void CachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mu_);
  peak_ = current_;
}
void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [sz, list] : free_)
    for (void* p : list) sys_free_(p);
  free_.clear();
  cached_ = 0;
}

CachingAllocator& cpu_allocator() {
  static CachingAllocator* a = new CachingAllocator();  // never destroyed: tensors may outlive main
  return *a;
}

}  // namespace recur
