#include "qsapi/hpke/recipient_key.h"

#include <string>

#include "qsapi/crypto/kdf.h"
#include "qsapi/hpke/hpke.h"

namespace qsapi::hpke {
namespace {

Result<Bytes> ResolveKeyId(const crypto::KemPublicKey& key, ByteView key_id) {
  if (key_id.empty()) return DefaultKeyId(key);
  if (key_id.size() > kMaxKeyIdSize) {
    return InvalidArgument("a key id may have at most " + std::to_string(kMaxKeyIdSize) + " bytes");
  }
  return Bytes(key_id.begin(), key_id.end());
}

}  // namespace

Result<Bytes> DefaultKeyId(const crypto::KemPublicKey& key) {
  QSAPI_ASSIGN_OR_RETURN(const KemId kem, KemIdFor(key.algorithm()));
  constexpr std::string_view kLabel = "qsapi hpke key id v1";
  Bytes input(kLabel.begin(), kLabel.end());
  input.push_back(static_cast<std::uint8_t>(static_cast<std::uint16_t>(kem) >> 8));
  input.push_back(static_cast<std::uint8_t>(static_cast<std::uint16_t>(kem) & 0xff));
  input.insert(input.end(), key.bytes().begin(), key.bytes().end());
  QSAPI_ASSIGN_OR_RETURN(Bytes digest, crypto::Hash(crypto::HashAlgorithm::kSha256, input));
  digest.resize(kDefaultKeyIdSize);
  return digest;
}

Result<std::unique_ptr<InMemoryRecipientKey>> InMemoryRecipientKey::FromPrivateKey(crypto::KemPrivateKey key,
                                                                                   ByteView key_id) {
  QSAPI_RETURN_IF_ERROR(KemIdFor(key.algorithm()));  // HPKE's KEMs only (not ML-KEM-512)
  QSAPI_ASSIGN_OR_RETURN(Bytes id, ResolveKeyId(key.public_key(), key_id));
  return std::make_unique<InMemoryRecipientKey>(std::move(key), std::move(id));
}

Result<std::unique_ptr<InMemoryRecipientKey>> InMemoryRecipientKey::FromSeed(crypto::KemAlgorithm algorithm,
                                                                             const KemSeed& seed, ByteView key_id) {
  QSAPI_ASSIGN_OR_RETURN(crypto::KemPrivateKey key, crypto::KemPrivateKey::FromSeed(algorithm, seed.view()));
  return FromPrivateKey(std::move(key), key_id);
}

Result<std::unique_ptr<InMemoryRecipientKey>> InMemoryRecipientKey::Generate(crypto::KemAlgorithm algorithm) {
  QSAPI_ASSIGN_OR_RETURN(crypto::KemPrivateKey key, crypto::KemPrivateKey::Generate(algorithm));
  return FromPrivateKey(std::move(key));
}

}  // namespace qsapi::hpke
