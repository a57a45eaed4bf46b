// qsapi/secret.h: secret buffers and the strong types built on them.
//
// SecretBytes owns memory that is
//   - locked (mlock: never swapped) where the process may lock memory,
//   - excluded from core dumps (madvise MADV_DONTDUMP),
//   - zeroised when released, moved from or resized,
//   - never copied implicitly (Clone() is explicit) and never compared with operator== (use
//     ConstantTimeEqual).
// It comes from a process-wide arena of locked pages (src/common/secure_memory.cc); small
// allocations share pages, so a secret costs no system call in the common case.
//
// Strong types (Secret<Tag>) keep a KEM shared secret from being passed where an AEAD key is
// expected. Public values (ciphertexts, signatures, public keys) are PublicBytes<Tag>.
#ifndef QSAPI_SECRET_H_
#define QSAPI_SECRET_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace qsapi {

using ByteView = std::span<const std::uint8_t>;
using Bytes = std::vector<std::uint8_t>;

// SecureZero overwrites `size` bytes at `data` with zeros; the compiler cannot elide it.
void SecureZero(void* data, std::size_t size) noexcept;

// ConstantTimeEqual returns whether `a` and `b` hold the same bytes. Its running time depends on
// the lengths (which are treated as public) but not on the contents.
[[nodiscard]] bool ConstantTimeEqual(ByteView a, ByteView b) noexcept;

// SecureMemoryStats reports the secret-memory arena's state (for health output and tests).
struct SecureMemoryStats {
  std::size_t bytes_in_use = 0;    // bytes handed out and not yet released
  std::size_t bytes_reserved = 0;  // bytes mapped by the arena
  std::size_t lock_failures = 0;   // mappings that mlock() refused (RLIMIT_MEMLOCK): not locked, still not dumped
};
SecureMemoryStats GetSecureMemoryStats() noexcept;

// SecretBytes is a move-only, fixed-size buffer of secret bytes (see the file comment).
// Allocation failure terminates the process, as operator new does without exceptions.
// Thread compatibility: like std::vector; distinct objects may be used from distinct threads.
class SecretBytes {
 public:
  SecretBytes() noexcept = default;
  // SecretBytes(n) allocates `n` zero bytes.
  explicit SecretBytes(std::size_t size);
  // CopyFrom copies `data` into a new secret buffer. The caller remains responsible for wiping `data`.
  static SecretBytes CopyFrom(ByteView data);

  SecretBytes(SecretBytes&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)),
        size_(std::exchange(other.size_, 0)),
        capacity_(std::exchange(other.capacity_, 0)) {}
  SecretBytes& operator=(SecretBytes&& other) noexcept;
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;
  ~SecretBytes();

  // Clone returns a copy in fresh secret memory.
  [[nodiscard]] SecretBytes Clone() const { return CopyFrom(view()); }

  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  [[nodiscard]] std::uint8_t* data() noexcept { return data_; }
  [[nodiscard]] const std::uint8_t* data() const noexcept { return data_; }
  [[nodiscard]] ByteView view() const noexcept { return {data_, size_}; }
  [[nodiscard]] std::span<std::uint8_t> span() noexcept { return {data_, size_}; }

  // Shrink reduces the size to `new_size` (<= size()), wiping the bytes cut off.
  void Shrink(std::size_t new_size) noexcept;

 private:
  void Release() noexcept;
  std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;  // the size allocated; Shrink() keeps it
};

// Secret<Tag> is a SecretBytes with a type of its own: a distinct C++ type per kind of secret.
template <typename Tag>
class Secret {
 public:
  Secret() = default;
  explicit Secret(SecretBytes bytes) noexcept : bytes_(std::move(bytes)) {}
  static Secret CopyFrom(ByteView data) { return Secret(SecretBytes::CopyFrom(data)); }

  [[nodiscard]] Secret Clone() const { return Secret(bytes_.Clone()); }
  [[nodiscard]] std::size_t size() const noexcept { return bytes_.size(); }
  [[nodiscard]] ByteView view() const noexcept { return bytes_.view(); }
  [[nodiscard]] const SecretBytes& bytes() const noexcept { return bytes_; }
  // Release hands the bytes over, leaving this Secret empty.
  [[nodiscard]] SecretBytes Release() && noexcept { return std::move(bytes_); }

 private:
  SecretBytes bytes_;
};

// PublicBytes<Tag> is a byte string with a type of its own, for values that are not secret.
template <typename Tag>
class PublicBytes {
 public:
  PublicBytes() = default;
  explicit PublicBytes(Bytes bytes) noexcept : bytes_(std::move(bytes)) {}
  static PublicBytes CopyFrom(ByteView data) { return PublicBytes(Bytes(data.begin(), data.end())); }

  [[nodiscard]] std::size_t size() const noexcept { return bytes_.size(); }
  [[nodiscard]] ByteView view() const noexcept { return bytes_; }
  [[nodiscard]] const Bytes& bytes() const noexcept { return bytes_; }
  [[nodiscard]] Bytes Release() && noexcept { return std::move(bytes_); }
  friend bool operator==(const PublicBytes&, const PublicBytes&) = default;

 private:
  Bytes bytes_;
};

// The kinds of secrets and public values the crypto layer hands out.
using SharedSecret = Secret<struct SharedSecretTag>;        // a KEM's shared secret
using KemSeed = Secret<struct KemSeedTag>;                  // a KEM private key in seed form
using SigningSeed = Secret<struct SigningSeedTag>;          // a signature private key in seed form
using SymmetricKey = Secret<struct SymmetricKeyTag>;        // an AEAD or MAC key
using PseudorandomKey = Secret<struct PseudorandomKeyTag>;  // an HKDF-Extract output (PRK)
using KemCiphertext = PublicBytes<struct KemCiphertextTag>;
using Signature = PublicBytes<struct SignatureTag>;

}  // namespace qsapi

#endif  // QSAPI_SECRET_H_
