// Wycheproof ML-KEM vectors (FIPS 203) through qsapi::crypto::KemPrivateKey / KemPublicKey.
//
// Decapsulation files (mlkem_{768,1024}_test.json): seed (d || z), ek, c, K. Their invalid tests
// are all malformed lengths: a seed that is not 64 bytes ("Private key too short/long"), which
// FromSeed must refuse, and a ciphertext that is not the parameter set's length ("Ciphertext too
// short/long"), which Decapsulate must refuse. A well-formed but wrong ciphertext is *valid*
// (implicit rejection gives the pseudorandom K the file lists).
//
// Encapsulation file (mlkem_768_encaps_test.json): ek, m, c, K. Its invalid tests are encapsulation
// keys with a coefficient >= q (ModulusOverflow, "Public key not reduced"; FIPS 203 7.2 modulus
// check) or of the wrong length, which KemPublicKey::FromBytes must refuse.
#include <ostream>

#include "crypto/internal/kem_impl.h"
#include "qsapi/crypto/kem.h"
#include "wycheproof/wycheproof_harness.h"

namespace qsapi::crypto {
namespace {

using testing::wycheproof::HexOf;
using testing::wycheproof::TestCase;
using testing::wycheproof::TestVectorFile;

struct MlKemFile {
  const char* file;
  KemAlgorithm algorithm;
};

// PrintTo names the file in gtest and ctest output (instead of the struct's bytes).
void PrintTo(const MlKemFile& param, std::ostream* os) { *os << param.file; }

class MlKemDecapsWycheproofTest : public ::testing::TestWithParam<MlKemFile> {};

bool RunDecapsCase(KemAlgorithm algorithm, const TestCase& tc) {
  if (tc.group().value("type", "") != "MLKEMTest" ||
      tc.group().value("parameterSet", "") != KemAlgorithmName(algorithm)) {
    return false;
  }
  const KemSizes sizes = GetKemSizes(algorithm);
  const Bytes seed = tc.Bytes("seed");
  Result<KemPrivateKey> key = KemPrivateKey::FromSeed(algorithm, seed);
  if (seed.size() != sizes.seed) {
    EXPECT_TRUE(tc.invalid()) << "the file lists a " << seed.size() << "-byte seed as usable";
    EXPECT_FALSE(key.ok()) << "a " << seed.size() << "-byte seed was accepted";
    if (!key.ok()) {
      EXPECT_EQ(key.error().code(), ErrorCode::kInvalidArgument) << key.error().ToString();
    }
    return true;
  }
  EXPECT_TRUE(key.ok()) << key.error().ToString();
  if (!key.ok()) return true;
  if (tc.Has("ek")) {
    EXPECT_EQ(HexOf(key->public_key().bytes()), HexOf(tc.Bytes("ek")));
  }

  const Bytes c = tc.Bytes("c");
  Result<SharedSecret> ss = key->Decapsulate(c);
  if (tc.invalid()) {
    EXPECT_NE(c.size(), sizes.ciphertext) << "an invalid test of a kind this test does not know";
    EXPECT_FALSE(ss.ok()) << "decapsulated a " << c.size() << "-byte ciphertext";
    if (!ss.ok()) {
      EXPECT_EQ(ss.error().code(), ErrorCode::kAuthenticationFailed) << ss.error().ToString();
    }
  } else {
    // Valid (including the Strcmp vectors, whose K is the implicit-rejection secret).
    EXPECT_TRUE(ss.ok()) << ss.error().ToString();
    if (ss.ok()) {
      EXPECT_EQ(HexOf(ss->view()), HexOf(tc.Bytes("K")));
    }
  }
  return true;
}

TEST_P(MlKemDecapsWycheproofTest, AllVectors) {
  const TestVectorFile file = TestVectorFile::Load(GetParam().file);
  EXPECT_EQ(file.algorithm(), "ML-KEM");
  ExpectAllExecuted(file.Run([&](const TestCase& tc) { return RunDecapsCase(GetParam().algorithm, tc); }));
}

INSTANTIATE_TEST_SUITE_P(Wycheproof, MlKemDecapsWycheproofTest,
                         ::testing::Values(MlKemFile{"mlkem_768_test.json", KemAlgorithm::kMlKem768},
                                           MlKemFile{"mlkem_1024_test.json", KemAlgorithm::kMlKem1024}),
                         [](const auto& param_info) { return testing::wycheproof::ParamName(param_info.param.file); });

bool RunEncapsCase(const TestCase& tc) {
  if (tc.group().value("type", "") != "MLKEMEncapsTest" || tc.group().value("parameterSet", "") != "ML-KEM-768") {
    return false;
  }
  const Bytes ek = tc.Bytes("ek");
  Result<KemPublicKey> key = KemPublicKey::FromBytes(KemAlgorithm::kMlKem768, ek);
  if (tc.invalid()) {
    if (!key.ok()) {
      EXPECT_EQ(key.error().code(), ErrorCode::kInvalidArgument) << key.error().ToString();
      return true;
    }
    // FromBytes should have refused it; failing that, encapsulation must not go ahead.
    ADD_FAILURE() << "KemPublicKey::FromBytes accepted an invalid " << ek.size() << "-byte encapsulation key";
    EXPECT_FALSE(internal::EncapsulateDeterministicForTesting(*key, tc.Bytes("m")).ok());
    return true;
  }
  EXPECT_TRUE(key.ok()) << key.error().ToString();
  if (!key.ok()) return true;
  EXPECT_EQ(HexOf(key->bytes()), HexOf(ek));
  Result<KemEncapsulation> enc = internal::EncapsulateDeterministicForTesting(*key, tc.Bytes("m"));
  EXPECT_TRUE(enc.ok()) << enc.error().ToString();
  if (!enc.ok()) return true;
  EXPECT_EQ(HexOf(enc->ciphertext.view()), HexOf(tc.Bytes("c")));
  EXPECT_EQ(HexOf(enc->shared_secret.view()), HexOf(tc.Bytes("K")));
  return true;
}

TEST(MlKemEncapsWycheproofTest, AllVectors) {
  const TestVectorFile file = TestVectorFile::Load("mlkem_768_encaps_test.json");
  EXPECT_EQ(file.algorithm(), "ML-KEM");
  ExpectAllExecuted(file.Run(RunEncapsCase));
}

}  // namespace
}  // namespace qsapi::crypto
