#include "qsapi/crypto/self_test.h"

#include <array>
#include <string>

#include "crypto/internal/kem_impl.h"
#include "qsapi/crypto/aead.h"
#include "qsapi/crypto/kdf.h"
#include "qsapi/crypto/kem.h"
#include "qsapi/crypto/signature.h"

namespace qsapi::crypto {
namespace {

Status KemRoundTrip(KemAlgorithm algorithm) {
  QSAPI_ASSIGN_OR_RETURN(KemPrivateKey key, KemPrivateKey::Generate(algorithm));
  QSAPI_ASSIGN_OR_RETURN(KemEncapsulation enc, key.public_key().Encapsulate());
  QSAPI_ASSIGN_OR_RETURN(SharedSecret ss, key.Decapsulate(enc.ciphertext.view()));
  if (!ConstantTimeEqual(ss.view(), enc.shared_secret.view())) {
    return Internal(std::string(KemAlgorithmName(algorithm)) + ": decapsulated secret differs");
  }
  return OkStatus();
}

Status SignatureRoundTrip(SignatureAlgorithm algorithm) {
  static constexpr std::array<std::uint8_t, 3> kMessage = {'q', 's', 'a'};
  static constexpr std::array<std::uint8_t, 4> kContext = {'t', 'e', 's', 't'};
  QSAPI_ASSIGN_OR_RETURN(SigningKey key, SigningKey::Generate(algorithm));
  QSAPI_ASSIGN_OR_RETURN(Signature sig, key.Sign(kMessage, kContext));
  QSAPI_RETURN_IF_ERROR(key.verifying_key().Verify(kMessage, sig.view(), kContext));
  Bytes bad = sig.bytes();
  bad[0] ^= 1;
  if (key.verifying_key().Verify(kMessage, bad, kContext).ok()) {
    return Internal(std::string(SignatureAlgorithmName(algorithm)) + ": a tampered signature verified");
  }
  return OkStatus();
}

Status AeadRoundTrip(AeadAlgorithm algorithm) {
  static constexpr std::array<std::uint8_t, 5> kPlaintext = {'h', 'e', 'l', 'l', 'o'};
  QSAPI_ASSIGN_OR_RETURN(Aead aead, Aead::Generate(algorithm));
  QSAPI_ASSIGN_OR_RETURN(Bytes ct, aead.Encrypt(kPlaintext, {}));
  QSAPI_ASSIGN_OR_RETURN(Bytes pt, aead.Decrypt(ct, {}));
  if (pt != Bytes(kPlaintext.begin(), kPlaintext.end())) return Internal("AEAD round trip differs");
  ct.back() ^= 1;
  if (aead.Decrypt(ct, {}).ok()) return Internal(std::string(AeadAlgorithmName(algorithm)) + ": a forgery decrypted");
  return OkStatus();
}

Status HkdfKnownAnswer() {
  // RFC 5869, A.1.
  Bytes ikm(22, 0x0b);
  const Bytes salt = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c};
  const Bytes info = {0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9};
  const Bytes expected_prefix = {0x3c, 0xb2, 0x5f, 0x25, 0xfa, 0xac, 0xd5, 0x7a};
  QSAPI_ASSIGN_OR_RETURN(SecretBytes okm, Hkdf(HashAlgorithm::kSha256, salt, ikm, info, 42));
  if (!ConstantTimeEqual(okm.view().first(expected_prefix.size()), expected_prefix)) {
    return Internal("HKDF-SHA-256 known answer differs");
  }
  return OkStatus();
}

Status XWingKnownAnswer() {
  // draft-connolly-cfrg-xwing-kem, the first test vector: seed, eseed and the shared secret.
  // Exercises ML-KEM-768 (keygen and encapsulation), X25519, SHAKE256 and SHA3-256 in one check.
  static constexpr std::array<std::uint8_t, 32> kSeed = {
      0x7f, 0x9c, 0x2b, 0xa4, 0xe8, 0x8f, 0x82, 0x7d, 0x61, 0x60, 0x45, 0x50, 0x76, 0x05, 0x85, 0x3e,
      0xd7, 0x3b, 0x80, 0x93, 0xf6, 0xef, 0xbc, 0x88, 0xeb, 0x1a, 0x6e, 0xac, 0xfa, 0x66, 0xef, 0x26};
  static constexpr std::array<std::uint8_t, 64> kEseed = {
      0x3c, 0xb1, 0xee, 0xa9, 0x88, 0x00, 0x4b, 0x93, 0x10, 0x3c, 0xfb, 0x0a, 0xee, 0xfd, 0x2a, 0x68,
      0x6e, 0x01, 0xfa, 0x4a, 0x58, 0xe8, 0xa3, 0x63, 0x9c, 0xa8, 0xa1, 0xe3, 0xf9, 0xae, 0x57, 0xe2,
      0x35, 0xb8, 0xcc, 0x87, 0x3c, 0x23, 0xdc, 0x62, 0xb8, 0xd2, 0x60, 0x16, 0x9a, 0xfa, 0x2f, 0x75,
      0xab, 0x91, 0x6a, 0x58, 0xd9, 0x74, 0x91, 0x88, 0x35, 0xd2, 0x5e, 0x6a, 0x43, 0x50, 0x85, 0xb2};
  static constexpr std::array<std::uint8_t, 32> kSharedSecret = {
      0xd2, 0xdf, 0x05, 0x22, 0x12, 0x8f, 0x09, 0xdd, 0x8e, 0x2c, 0x92, 0xb1, 0xe9, 0x05, 0xc7, 0x93,
      0xd8, 0xf5, 0x7a, 0x54, 0xc3, 0xda, 0x25, 0x86, 0x1f, 0x10, 0xbf, 0x4c, 0xa6, 0x13, 0xe3, 0x84};
  QSAPI_ASSIGN_OR_RETURN(KemPrivateKey key, KemPrivateKey::FromSeed(KemAlgorithm::kXWing, kSeed));
  QSAPI_ASSIGN_OR_RETURN(KemEncapsulation enc, internal::EncapsulateDeterministicForTesting(key.public_key(), kEseed));
  QSAPI_ASSIGN_OR_RETURN(SharedSecret ss, key.Decapsulate(enc.ciphertext.view()));
  if (!ConstantTimeEqual(enc.shared_secret.view(), kSharedSecret) || !ConstantTimeEqual(ss.view(), kSharedSecret)) {
    return Internal("X-Wing known answer differs");
  }
  return OkStatus();
}

}  // namespace

Result<SelfTestReport> RunSelfTest() {
  SelfTestReport report;
  QSAPI_RETURN_IF_ERROR(HkdfKnownAnswer());
  report.lines.emplace_back("HKDF-SHA-256 known answer (RFC 5869 A.1)");
  QSAPI_RETURN_IF_ERROR(XWingKnownAnswer());
  report.lines.emplace_back("X-Wing known answer (draft-connolly-cfrg-xwing-kem, vector 1)");
  for (auto a : {KemAlgorithm::kMlKem512, KemAlgorithm::kMlKem768, KemAlgorithm::kMlKem1024, KemAlgorithm::kXWing,
                 KemAlgorithm::kMlKem1024P384}) {
    QSAPI_RETURN_IF_ERROR(KemRoundTrip(a));
    report.lines.push_back(std::string(KemAlgorithmName(a)) + " encapsulate / decapsulate");
  }
  for (auto a :
       {SignatureAlgorithm::kMlDsa65, SignatureAlgorithm::kSlhDsaSha2_128f, SignatureAlgorithm::kMlDsa65Ed25519}) {
    QSAPI_RETURN_IF_ERROR(SignatureRoundTrip(a));
    report.lines.push_back(std::string(SignatureAlgorithmName(a)) + " sign / verify / reject");
  }
  for (auto a : {AeadAlgorithm::kAes256Gcm, AeadAlgorithm::kXChaCha20Poly1305}) {
    QSAPI_RETURN_IF_ERROR(AeadRoundTrip(a));
    report.lines.push_back(std::string(AeadAlgorithmName(a)) + " seal / open / reject");
  }
  return report;
}

}  // namespace qsapi::crypto
