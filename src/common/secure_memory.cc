// The secret-memory arena behind SecretBytes.
//
// Small buffers (<= kMaxSmall bytes) come from size-class free lists carved out of 64 KiB chunks;
// larger ones get their own mapping. Every mapping is mlock()ed (best effort: a refusal is counted,
// not fatal, so that an unprivileged process with a low RLIMIT_MEMLOCK still works) and marked
// MADV_DONTDUMP. Buffers are zeroised before they return to a free list or are unmapped.
// Chunks are never returned to the system: a long-running service reaches a steady state.
#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include <sodium/utils.h>

#include "common/internal/constant_time.h"
#include "qsapi/secret.h"

namespace qsapi {
namespace {

constexpr std::size_t kMinClass = 16;
constexpr std::size_t kMaxSmall = 4096;
constexpr std::size_t kNumClasses = 9;  // 16, 32, ..., 4096
constexpr std::size_t kChunkSize = std::size_t{64} * 1024;

struct FreeBlock {
  FreeBlock* next;
};

class Arena {
 public:
  void* Allocate(std::size_t size) {
    if (size > kMaxSmall) return AllocateLarge(size);
    const std::size_t cls = ClassOf(size);
    std::lock_guard<std::mutex> lock(mu_);
    if (free_[cls] == nullptr) Refill(cls);
    FreeBlock* block = free_[cls];
    free_[cls] = block->next;
    block->next = nullptr;  // the block is handed out zeroed
    stats_.bytes_in_use += ClassSize(cls);
    return block;
  }

  void Free(void* p, std::size_t size) noexcept {
    if (p == nullptr) return;
    if (size > kMaxSmall) {
      FreeLarge(p, size);
      return;
    }
    const std::size_t cls = ClassOf(size);
    sodium_memzero(p, ClassSize(cls));
    std::lock_guard<std::mutex> lock(mu_);
    auto* block = static_cast<FreeBlock*>(p);
    block->next = free_[cls];
    free_[cls] = block;
    stats_.bytes_in_use -= ClassSize(cls);
  }

  SecureMemoryStats Stats() noexcept {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

 private:
  static std::size_t ClassOf(std::size_t size) noexcept {
    const std::size_t rounded = std::bit_ceil(size < kMinClass ? kMinClass : size);
    return static_cast<std::size_t>(std::countr_zero(rounded) - std::countr_zero(kMinClass));
  }
  static std::size_t ClassSize(std::size_t cls) noexcept { return kMinClass << cls; }

  void* MapLocked(std::size_t bytes) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) std::abort();  // out of memory: as operator new without exceptions
    if (mlock(p, bytes) != 0) ++stats_.lock_failures;
#ifdef MADV_DONTDUMP
    (void)madvise(p, bytes, MADV_DONTDUMP);
#endif
    stats_.bytes_reserved += bytes;
    return p;
  }

  // Refill carves a fresh chunk into blocks of class `cls`. Called with mu_ held.
  void Refill(std::size_t cls) {
    auto* base = static_cast<std::uint8_t*>(MapLocked(kChunkSize));
    const std::size_t block = ClassSize(cls);
    for (std::size_t off = kChunkSize; off >= block; off -= block) {
      auto* b =
          reinterpret_cast<FreeBlock*>(base + off - block);  // NOLINT(cppcoreguidelines-pro-type-reinterpret-cast)
      b->next = free_[cls];
      free_[cls] = b;
    }
  }

  static std::size_t PageRound(std::size_t size) noexcept {
    static const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    return (size + page - 1) / page * page;
  }

  void* AllocateLarge(std::size_t size) {
    const std::size_t bytes = PageRound(size);
    std::lock_guard<std::mutex> lock(mu_);
    void* p = MapLocked(bytes);
    stats_.bytes_in_use += bytes;
    return p;
  }

  void FreeLarge(void* p, std::size_t size) noexcept {
    const std::size_t bytes = PageRound(size);
    sodium_memzero(p, bytes);
    (void)munlock(p, bytes);
    (void)munmap(p, bytes);
    std::lock_guard<std::mutex> lock(mu_);
    stats_.bytes_in_use -= bytes;
    stats_.bytes_reserved -= bytes;
  }

  std::mutex mu_;
  std::array<FreeBlock*, kNumClasses> free_{};
  SecureMemoryStats stats_;
};

Arena& GetArena() {
  // Never destroyed: secrets may be released during static destruction.
  static auto* arena = new Arena();  // NOLINT(cppcoreguidelines-avoid-non-const-global-variables)
  return *arena;
}

}  // namespace

void SecureZero(void* data, std::size_t size) noexcept {
  if (size != 0) sodium_memzero(data, size);
}

bool ConstantTimeEqual(ByteView a, ByteView b) noexcept {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  // sodium_memcmp runs in time that depends only on the length. Its outcome is public (the caller
  // branches on it), so it is declassified for the constant-time test.
  const bool equal = sodium_memcmp(a.data(), b.data(), a.size()) == 0;
  internal::Declassify(&equal, sizeof equal);
  return equal;
}

SecureMemoryStats GetSecureMemoryStats() noexcept { return GetArena().Stats(); }

SecretBytes::SecretBytes(std::size_t size) : size_(size), capacity_(size) {
  if (size != 0) data_ = static_cast<std::uint8_t*>(GetArena().Allocate(size));
}

SecretBytes SecretBytes::CopyFrom(ByteView data) {
  SecretBytes out(data.size());
  if (!data.empty() && out.data_ != nullptr) std::memcpy(out.data_, data.data(), data.size());
  return out;
}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    Release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    capacity_ = std::exchange(other.capacity_, 0);
  }
  return *this;
}

SecretBytes::~SecretBytes() { Release(); }

void SecretBytes::Release() noexcept {
  if (data_ != nullptr) GetArena().Free(data_, capacity_);
  data_ = nullptr;
  size_ = 0;
  capacity_ = 0;
}

void SecretBytes::Shrink(std::size_t new_size) noexcept {
  if (new_size >= size_) return;
  SecureZero(data_ + new_size, size_ - new_size);
  size_ = new_size;
}

}  // namespace qsapi
