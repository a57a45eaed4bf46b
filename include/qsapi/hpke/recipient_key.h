// qsapi/hpke/recipient_key.h: the private side of a sealed message, as an interface.
//
// Opening a sealed message needs one operation of the recipient's private key: Decapsulate(enc).
// RecipientKey is that operation behind an interface, so that the key may live anywhere: in this
// process (InMemoryRecipientKey, from a seed), or in the keystore (PKCS#11, where the seed is
// unwrapped under the HSM's KEK only for the decapsulation). The HPKE and container code never
// sees a seed.
//
// Key ids: a sealed message names its recipient key by an opaque id of 1..kMaxKeyIdSize bytes.
// DefaultKeyId(public key) is the id qsapi uses unless the keystore supplies its own:
//   SHA-256("qsapi hpke key id v1" || I2OSP(kem_id, 2) || public key)[0:16].
//
// Thread safety: implementations must be safe to call from several threads at once.
#ifndef QSAPI_HPKE_RECIPIENT_KEY_H_
#define QSAPI_HPKE_RECIPIENT_KEY_H_

#include <cstddef>
#include <memory>

#include "qsapi/crypto/kem.h"
#include "qsapi/result.h"
#include "qsapi/secret.h"

namespace qsapi::hpke {

// kMaxKeyIdSize bounds a key id (it travels in the container header and the public-key file).
inline constexpr std::size_t kMaxKeyIdSize = 64;
// kDefaultKeyIdSize is the length of DefaultKeyId's output.
inline constexpr std::size_t kDefaultKeyIdSize = 16;

// DefaultKeyId returns the default key id of `key` (see the file comment). kInvalidArgument for a
// KEM that HPKE does not use here (ML-KEM-512).
Result<Bytes> DefaultKeyId(const crypto::KemPublicKey& key);

// RecipientKey is a private KEM key that can decapsulate, and its public identity.
class RecipientKey {
 public:
  virtual ~RecipientKey() = default;
  // algorithm is the KEM of the key.
  [[nodiscard]] virtual crypto::KemAlgorithm algorithm() const noexcept = 0;
  // key_id is the id sealed messages to this key carry.
  [[nodiscard]] virtual ByteView key_id() const noexcept = 0;
  // Decapsulate recovers the KEM shared secret from `enc`; AuthenticationFailed() on any failure.
  [[nodiscard]] virtual Result<SharedSecret> Decapsulate(ByteView enc) const = 0;
};

// InMemoryRecipientKey holds a KemPrivateKey (a seed in secret memory) in this process. For tests,
// for keys generated in-process, and as what the keystore hands out after unwrapping a seed.
class InMemoryRecipientKey final : public RecipientKey {
 public:
  // FromSeed derives the key from its seed (KemPrivateKey::FromSeed). An empty `key_id` means
  // DefaultKeyId; otherwise it must have 1..kMaxKeyIdSize bytes.
  static Result<std::unique_ptr<InMemoryRecipientKey>> FromSeed(crypto::KemAlgorithm algorithm, const KemSeed& seed,
                                                                ByteView key_id = {});
  // FromPrivateKey wraps an existing key (shares its immutable implementation).
  static Result<std::unique_ptr<InMemoryRecipientKey>> FromPrivateKey(crypto::KemPrivateKey key, ByteView key_id = {});
  // Generate creates a fresh key (for tests and in-process use; the seed never leaves memory).
  static Result<std::unique_ptr<InMemoryRecipientKey>> Generate(crypto::KemAlgorithm algorithm);

  [[nodiscard]] crypto::KemAlgorithm algorithm() const noexcept override { return key_.algorithm(); }
  [[nodiscard]] ByteView key_id() const noexcept override { return key_id_; }
  [[nodiscard]] Result<SharedSecret> Decapsulate(ByteView enc) const override { return key_.Decapsulate(enc); }

  [[nodiscard]] const crypto::KemPublicKey& public_key() const noexcept { return key_.public_key(); }

  InMemoryRecipientKey(crypto::KemPrivateKey key, Bytes key_id) noexcept
      : key_(std::move(key)), key_id_(std::move(key_id)) {}

 private:
  crypto::KemPrivateKey key_;
  Bytes key_id_;
};

}  // namespace qsapi::hpke

#endif  // QSAPI_HPKE_RECIPIENT_KEY_H_
