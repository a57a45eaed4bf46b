// The X-Wing draft's test vectors (draft-connolly-cfrg-xwing-kem, test-vectors.json in
// tests/data/xwing/): seed, eseed, pk, sk, ct, ss. Not a Wycheproof file (a plain array), but run
// the same way: every vector, with a count check.
#include <iostream>

#include <nlohmann/json.hpp>

#include "crypto/internal/kem_impl.h"
#include "qsapi/crypto/kem.h"
#include "support/test_support.h"

namespace qsapi::crypto {
namespace {

using testing::Hex;
using testing::ToHex;

Bytes Field(const nlohmann::json& vector, const char* key) {
  const auto it = vector.find(key);
  if (it == vector.end() || !it->is_string()) {
    ADD_FAILURE() << "vector has no \"" << key << "\"";
    return {};
  }
  return Hex(it->get_ref<const std::string&>());
}

TEST(XWingVectorsTest, AllVectors) {
  const nlohmann::json vectors =
      nlohmann::json::parse(testing::ReadFile(testing::DataPath("xwing/test-vectors.json")), nullptr, false);
  ASSERT_TRUE(vectors.is_array()) << "xwing/test-vectors.json is not a JSON array";
  ASSERT_FALSE(vectors.empty());
  std::size_t executed = 0;
  for (std::size_t i = 0; i < vectors.size(); ++i) {
    SCOPED_TRACE("X-Wing vector " + std::to_string(i));
    const nlohmann::json& v = vectors[i];
    const Bytes seed = Field(v, "seed");
    const Bytes pk = Field(v, "pk");
    const Bytes ct = Field(v, "ct");
    const Bytes ss = Field(v, "ss");

    Result<KemPrivateKey> key = KemPrivateKey::FromSeed(KemAlgorithm::kXWing, seed);
    QSAPI_EXPECT_OK(key);
    if (!key.ok()) continue;
    EXPECT_EQ(ToHex(key->public_key().bytes()), ToHex(pk));
    // The draft's private key is the seed itself.
    Result<KemSeed> exported = key->ExportSeed();
    QSAPI_EXPECT_OK(exported);
    if (exported.ok()) {
      EXPECT_EQ(ToHex(exported->view()), ToHex(Field(v, "sk")));
    }

    // Encapsulate to the published pk as a peer would: imported from its bytes.
    Result<KemPublicKey> pub = KemPublicKey::FromBytes(KemAlgorithm::kXWing, pk);
    QSAPI_EXPECT_OK(pub);
    if (pub.ok()) {
      Result<KemEncapsulation> enc = internal::EncapsulateDeterministicForTesting(*pub, Field(v, "eseed"));
      QSAPI_EXPECT_OK(enc);
      if (enc.ok()) {
        EXPECT_EQ(ToHex(enc->ciphertext.view()), ToHex(ct));
        EXPECT_EQ(ToHex(enc->shared_secret.view()), ToHex(ss));
      }
    }

    Result<SharedSecret> decapsulated = key->Decapsulate(ct);
    QSAPI_EXPECT_OK(decapsulated);
    if (decapsulated.ok()) {
      EXPECT_EQ(ToHex(decapsulated->view()), ToHex(ss));
    }
    ++executed;
  }
  EXPECT_EQ(executed, vectors.size());
  std::cout << "[xwing] test-vectors.json: " << executed << "/" << vectors.size() << " vectors executed\n";
}

}  // namespace
}  // namespace qsapi::crypto
