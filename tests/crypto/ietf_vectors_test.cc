// Third-party vectors from the IETF drafts our hybrids follow (tests/data/ietf/README.md).
#include <nlohmann/json.hpp>

#include "crypto/internal/kem_impl.h"
#include "qsapi/crypto/kem.h"
#include "qsapi/crypto/signature.h"
#include "support/test_support.h"

namespace qsapi::crypto {
namespace {

using testing::Hex;
using testing::ToHex;

nlohmann::json Load(std::string_view name) { return nlohmann::json::parse(testing::ReadFile(testing::DataPath(name))); }

Bytes Text(const std::string& s) { return {s.begin(), s.end()}; }

// draft-ietf-lamps-pq-composite-sigs-15 Appendix E: the key from its 64-byte private key, and the
// published signatures (with and without context) verify through our API.
TEST(CompositeVectorTest, Draft15AppendixE) {
  const nlohmann::json v = Load("ietf/composite_mldsa65_ed25519_sha512.json");
  auto key = SigningKey::FromSeed(SignatureAlgorithm::kMlDsa65Ed25519, Hex(v["sk"].get<std::string>()));
  QSAPI_ASSERT_OK(key);
  EXPECT_EQ(ToHex(key->verifying_key().bytes()), v["pk"].get<std::string>());

  auto pub = VerifyingKey::FromBytes(SignatureAlgorithm::kMlDsa65Ed25519, Hex(v["pk"].get<std::string>()));
  QSAPI_ASSERT_OK(pub);
  const Bytes m = Text(v["m"].get<std::string>());
  const Bytes ctx = Text(v["ctx"].get<std::string>());
  const Bytes s = Hex(v["s"].get<std::string>());
  const Bytes s_ctx = Hex(v["sWithContext"].get<std::string>());
  QSAPI_EXPECT_OK(pub->Verify(m, s));
  QSAPI_EXPECT_OK(pub->Verify(m, s_ctx, ctx));
  // Each signature is bound to its context, and to the message.
  EXPECT_FALSE(pub->Verify(m, s, ctx).ok());
  EXPECT_FALSE(pub->Verify(m, s_ctx).ok());
  Bytes other = m;
  other.back() = '!';
  EXPECT_FALSE(pub->Verify(other, s).ok());
  // Our signatures verify under the published key's verifier too (hedged, so not byte-equal).
  auto ours = key->Sign(m, ctx);
  QSAPI_ASSERT_OK(ours);
  QSAPI_EXPECT_OK(pub->Verify(m, ours->view(), ctx));
}

// draft-ietf-hpke-pq-05 Appendix A.6: MLKEM1024-P384 key from its seed, decapsulation of the
// published encapsulation, and encapsulation with the published randomness.
TEST(MlKem1024P384VectorTest, HpkePq05AppendixA6) {
  const nlohmann::json v = Load("ietf/mlkem1024_p384_hpke_pq_a6.json");
  auto key = KemPrivateKey::FromSeed(KemAlgorithm::kMlKem1024P384, Hex(v["skRm"].get<std::string>()));
  QSAPI_ASSERT_OK(key);
  EXPECT_EQ(ToHex(key->public_key().bytes()), v["pkRm"].get<std::string>());
  auto ss = key->Decapsulate(Hex(v["enc"].get<std::string>()));
  QSAPI_ASSERT_OK(ss);
  EXPECT_EQ(ToHex(ss->view()), v["shared_secret"].get<std::string>());
  auto enc = internal::EncapsulateDeterministicForTesting(key->public_key(), Hex(v["ikmE"].get<std::string>()));
  QSAPI_ASSERT_OK(enc);
  EXPECT_EQ(ToHex(enc->ciphertext.view()), v["enc"].get<std::string>());
  EXPECT_EQ(ToHex(enc->shared_secret.view()), v["shared_secret"].get<std::string>());
}

}  // namespace
}  // namespace qsapi::crypto
