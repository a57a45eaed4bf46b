// Key material: generation, the wrap AAD, unwrapping and deriving. See material.h.
#include "keystore/internal/material.h"

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>

#include "keystore/internal/formats.h"
#include "qsapi/crypto/random.h"

namespace qsapi::keystore::internal {
namespace {

Status MatchesPublicKey(ByteView derived, ByteView expected) {
  if (!std::equal(derived.begin(), derived.end(), expected.begin(), expected.end())) {
    return DataLoss("unwrapped key does not match its stored public key");
  }
  return OkStatus();
}

// Derive rebuilds the material from what was wrapped; asymmetric keys must reproduce their stored
// public key (a blob that unwraps under the KEK but belongs to another key does not).
Result<Material> Derive(const KeyType& type, const SecretBytes& secret, ByteView expected_public) {
  if (const std::optional<crypto::AeadAlgorithm> aead = type.aead()) {
    QSAPI_ASSIGN_OR_RETURN(crypto::Aead a, crypto::Aead::New(*aead, SymmetricKey::CopyFrom(secret.view())));
    return Material(std::move(a));
  }
  if (const std::optional<crypto::KemAlgorithm> kem = type.kem()) {
    QSAPI_ASSIGN_OR_RETURN(crypto::KemPrivateKey k, crypto::KemPrivateKey::FromSeed(*kem, secret.view()));
    QSAPI_RETURN_IF_ERROR(MatchesPublicKey(k.public_key().bytes(), expected_public));
    return Material(std::move(k));
  }
  if (const std::optional<crypto::SignatureAlgorithm> sig = type.signature()) {
    QSAPI_ASSIGN_OR_RETURN(crypto::SigningKey k, crypto::SigningKey::FromSeed(*sig, secret.view()));
    QSAPI_RETURN_IF_ERROR(MatchesPublicKey(k.verifying_key().bytes(), expected_public));
    return Material(std::move(k));
  }
  return Internal("unknown key purpose");
}

}  // namespace

Result<NewMaterial> Generate(const KeyType& type) {
  NewMaterial m;
  if (type.is_aead()) {
    QSAPI_ASSIGN_OR_RETURN(m.secret, crypto::RandomSecret(32));
    return m;
  }
  if (const std::optional<crypto::KemAlgorithm> kem = type.kem()) {
    QSAPI_ASSIGN_OR_RETURN(crypto::KemPrivateKey k, crypto::KemPrivateKey::Generate(*kem));
    QSAPI_ASSIGN_OR_RETURN(KemSeed seed, k.ExportSeed());
    m.secret = std::move(seed).Release();
    const ByteView pub = k.public_key().bytes();
    m.public_key.assign(pub.begin(), pub.end());
    return m;
  }
  if (const std::optional<crypto::SignatureAlgorithm> sig = type.signature()) {
    QSAPI_ASSIGN_OR_RETURN(crypto::SigningKey k, crypto::SigningKey::Generate(*sig));
    m.secret = k.ExportSeed().Release();
    const ByteView pub = k.verifying_key().bytes();
    m.public_key.assign(pub.begin(), pub.end());
    return m;
  }
  return Internal("unknown key purpose");
}

// "qsapi keystore v1" 0x00 || key id || version (the blob header without its format byte) ||
// type name 0x00 || purpose name.
Bytes WrapAad(const KeyId& id, std::uint32_t version, const KeyType& type) {
  const std::string label = "qsapi keystore v1";
  Bytes aad(label.begin(), label.end());
  aad.push_back(0);
  const Bytes h = MakeHeader(id, version);
  aad.insert(aad.end(), h.begin() + 1, h.end());
  const std::string t = KeyTypeName(type);
  aad.insert(aad.end(), t.begin(), t.end());
  aad.push_back(0);
  const std::string_view p = KeyPurposeName(type.purpose());
  aad.insert(aad.end(), p.begin(), p.end());
  return aad;
}

Result<Material> UnwrapMaterial(KeyProtector& protector, const KeyRow& row, const VersionRow& v, const KeyType& type) {
  const std::string which = "key \"" + row.name + "\" version " + std::to_string(v.version) + ": ";
  Result<SecretBytes> secret = protector.Unwrap(v.wrapped, WrapAad(row.id, v.version, type));
  if (!secret.ok()) return Error(secret.error().code(), which + secret.error().message());
  Result<Material> m = Derive(type, *secret, v.public_key);
  if (!m.ok()) return DataLoss(which + m.error().message());
  return m;
}

}  // namespace qsapi::keystore::internal
