// The keystore's names (key types, purposes, version states, key ids) and the byte formats of
// what it hands out: the header of its ciphertexts and signatures, and their text form. See
// qsapi/keystore/keystore.h and docs/PROTOCOL.md.
#include "keystore/internal/formats.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <sodium.h>

#include "common/internal/text.h"
#include "qsapi/keystore/keystore.h"

namespace qsapi::keystore {

// ---- names -------------------------------------------------------------------------------

std::string_view KeyPurposeName(KeyPurpose purpose) noexcept {
  switch (purpose) {
    case KeyPurpose::kEncrypt: return "encrypt";
    case KeyPurpose::kKem: return "kem";
    case KeyPurpose::kSign: return "sign";
  }
  return "unknown";
}

std::string_view VersionStateName(VersionState state) noexcept {
  switch (state) {
    case VersionState::kActive: return "active";
    case VersionState::kDecryptOnly: return "decrypt-only";
    case VersionState::kDisabled: return "disabled";
    case VersionState::kDestroyed: return "destroyed";
  }
  return "unknown";
}

Result<VersionState> internal::ParseVersionState(std::string_view s) {
  for (VersionState v :
       {VersionState::kActive, VersionState::kDecryptOnly, VersionState::kDisabled, VersionState::kDestroyed}) {
    if (VersionStateName(v) == s) return v;
  }
  return DataLoss("keystore metadata holds an unknown version state \"" + std::string(s) + "\"");
}

namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::vector<KeyType> AllKeyTypes() {
  std::vector<KeyType> all;
  for (auto a : {crypto::AeadAlgorithm::kAes256Gcm, crypto::AeadAlgorithm::kXChaCha20Poly1305}) {
    all.emplace_back(a);
  }
  for (auto k : {crypto::KemAlgorithm::kMlKem512, crypto::KemAlgorithm::kMlKem768, crypto::KemAlgorithm::kMlKem1024,
                 crypto::KemAlgorithm::kXWing, crypto::KemAlgorithm::kMlKem1024P384}) {
    all.emplace_back(k);
  }
  for (int s = 0; s <= static_cast<int>(crypto::SignatureAlgorithm::kMlDsa65Ed25519); ++s) {
    all.emplace_back(static_cast<crypto::SignatureAlgorithm>(s));
  }
  return all;
}

}  // namespace

std::string KeyTypeName(const KeyType& type) {
  if (const std::optional<crypto::AeadAlgorithm> a = type.aead()) return std::string(crypto::AeadAlgorithmName(*a));
  if (const std::optional<crypto::KemAlgorithm> k = type.kem()) return std::string(crypto::KemAlgorithmName(*k));
  if (const std::optional<crypto::SignatureAlgorithm> s = type.signature()) {
    return std::string(crypto::SignatureAlgorithmName(*s));
  }
  return "unknown";
}

Result<KeyType> ParseKeyType(std::string_view name) {
  std::string valid;
  for (const KeyType& t : AllKeyTypes()) {
    if (Lower(KeyTypeName(t)) == Lower(name)) return t;
    valid += (valid.empty() ? "" : ", ") + KeyTypeName(t);
  }
  return InvalidArgument("unknown key type \"" + std::string(name) + "\"; valid types: " + valid);
}

std::string KeyIdHex(const KeyId& id) { return qsapi::internal::HexEncode(id); }

// ---- blob headers and the text form ------------------------------------------------------

Bytes internal::MakeHeader(const KeyId& id, std::uint32_t version) {
  Bytes h;
  h.reserve(kHeaderSize);
  h.push_back(kFormatVersion);
  h.insert(h.end(), id.begin(), id.end());
  for (int s = 24; s >= 0; s -= 8) h.push_back(static_cast<std::uint8_t>(version >> s));
  return h;
}

Result<ParsedHeader> ParseHeader(ByteView blob) {
  if (blob.size() < kHeaderSize) return InvalidArgument("ciphertext or signature is too short to carry a key header");
  if (blob[0] != kFormatVersion) {
    return InvalidArgument("ciphertext or signature has format " + std::to_string(blob[0]) + "; this build reads " +
                           std::to_string(kFormatVersion));
  }
  ParsedHeader h;
  std::copy(blob.begin() + 1, blob.begin() + 17, h.key_id.begin());
  h.version = (std::uint32_t{blob[17]} << 24) | (std::uint32_t{blob[18]} << 16) | (std::uint32_t{blob[19]} << 8) |
              std::uint32_t{blob[20]};
  if (h.version == 0) return InvalidArgument("ciphertext or signature names key version 0");
  return h;
}

std::string ToText(ByteView blob) {
  std::uint32_t version = 0;
  if (auto h = ParseHeader(blob); h.ok()) version = h->version;
  std::string b64(sodium_base64_ENCODED_LEN(blob.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING), '\0');
  sodium_bin2base64(b64.data(), b64.size(), blob.data(), blob.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  b64.resize(std::strlen(b64.c_str()));
  return "qsapi:v" + std::to_string(version) + ":" + b64;
}

Result<Bytes> FromText(std::string_view text) {
  constexpr std::size_t kMaxText = std::size_t{96} << 20;
  if (text.size() > kMaxText) return InvalidArgument("text ciphertext is longer than 96 MiB");
  if (!text.starts_with("qsapi:v")) return InvalidArgument("text ciphertext must start with \"qsapi:v\"");
  const std::size_t colon = text.find(':', 7);
  if (colon == std::string_view::npos || colon == 7 || colon > 17) {
    return InvalidArgument("text ciphertext must look like qsapi:v<version>:<base64url>");
  }
  const std::string_view vtext = text.substr(7, colon - 7);
  if (!std::all_of(vtext.begin(), vtext.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return InvalidArgument("text ciphertext has a non-numeric version");
  }
  const std::string_view b64 = text.substr(colon + 1);
  Bytes out(b64.size() * 3 / 4 + 3);
  std::size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(out.data(), out.size(), b64.data(), b64.size(), nullptr, &len, &end,
                        sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
      end != b64.data() + b64.size()) {
    return InvalidArgument("text ciphertext is not valid base64url (no padding)");
  }
  out.resize(len);
  QSAPI_ASSIGN_OR_RETURN(ParsedHeader h, ParseHeader(out));
  if (std::to_string(h.version) != vtext) {
    return InvalidArgument("text ciphertext's version prefix v" + std::string(vtext) +
                           " disagrees with its header (version " + std::to_string(h.version) + ")");
  }
  return out;
}

}  // namespace qsapi::keystore
