// Wycheproof ML-DSA vectors (FIPS 204) through qsapi::crypto::VerifyingKey / SigningKey and the
// deterministic signing hooks of crypto/internal/signature_impl.h.
#include <ostream>

#include "crypto/internal/signature_impl.h"
#include "qsapi/crypto/signature.h"
#include "wycheproof/wycheproof_harness.h"

namespace qsapi::crypto {
namespace {

using testing::wycheproof::HexOf;
using testing::wycheproof::TestCase;
using testing::wycheproof::TestVectorFile;

struct MlDsaFile {
  const char* file;
  SignatureAlgorithm algorithm;
};

// PrintTo names the file in gtest and ctest output (instead of the struct's bytes).
void PrintTo(const MlDsaFile& param, std::ostream* os) { *os << param.file; }

class MlDsaVerifyWycheproofTest : public ::testing::TestWithParam<MlDsaFile> {};

bool RunVerifyCase(SignatureAlgorithm algorithm, const TestCase& tc) {
  if (tc.group().value("type", "") != "MlDsaVerify") return false;
  const Bytes pk = tc.GroupBytes("publicKey");
  Result<VerifyingKey> key = VerifyingKey::FromBytes(algorithm, pk);
  if (!key.ok()) {
    // Only a public key of the wrong length (IncorrectPublicKeyLength) may be refused on import.
    EXPECT_TRUE(tc.invalid()) << key.error().ToString();
    EXPECT_NE(pk.size(), GetSignatureSizes(algorithm).public_key) << key.error().ToString();
    EXPECT_EQ(key.error().code(), ErrorCode::kInvalidArgument) << key.error().ToString();
    return true;
  }
  const Bytes ctx = tc.Bytes("ctx");  // absent means the empty context
  const Status verified = key->Verify(tc.Bytes("msg"), tc.Bytes("sig"), ctx);
  if (tc.valid()) {
    EXPECT_TRUE(verified.ok()) << verified.error().ToString();
  } else if (tc.invalid()) {
    EXPECT_FALSE(verified.ok()) << "an invalid signature verified";
    if (!verified.ok()) {
      // signature.h: kInvalidArgument only for an over-long context, AuthenticationFailed otherwise.
      EXPECT_EQ(verified.error().code(),
                ctx.size() > kMaxContextSize ? ErrorCode::kInvalidArgument : ErrorCode::kAuthenticationFailed)
          << verified.error().ToString();
    }
  }
  return true;
}

TEST_P(MlDsaVerifyWycheproofTest, AllVectors) {
  const TestVectorFile file = TestVectorFile::Load(GetParam().file);
  EXPECT_EQ(file.algorithm(), SignatureAlgorithmName(GetParam().algorithm));
  ExpectAllExecuted(file.Run([&](const TestCase& tc) { return RunVerifyCase(GetParam().algorithm, tc); }));
}

INSTANTIATE_TEST_SUITE_P(Wycheproof, MlDsaVerifyWycheproofTest,
                         ::testing::Values(MlDsaFile{"mldsa_65_verify_test.json", SignatureAlgorithm::kMlDsa65},
                                           MlDsaFile{"mldsa_87_verify_test.json", SignatureAlgorithm::kMlDsa87}),
                         [](const auto& param_info) { return testing::wycheproof::ParamName(param_info.param.file); });

// mldsa_65_sign_seed_test.json: keys from 32-byte seeds, signatures that must be reproduced
// exactly. Deterministic signing (rnd = 0^32) unless the test gives rnd; tests flagged Internal
// give only mu (FIPS 204 Algorithm 7 line 6) and are signed through SignMuForTesting.
bool RunSignCase(const TestCase& tc) {
  if (tc.group().value("type", "") != "MlDsaSign") return false;
  const Bytes seed = tc.GroupBytes("privateSeed");
  Result<SigningKey> key = SigningKey::FromSeed(SignatureAlgorithm::kMlDsa65, seed);
  if (!key.ok()) {
    EXPECT_TRUE(tc.invalid() && tc.HasFlag("IncorrectPrivateKeyLength")) << key.error().ToString();
    EXPECT_EQ(key.error().code(), ErrorCode::kInvalidArgument) << key.error().ToString();
    return true;
  }
  EXPECT_FALSE(tc.HasFlag("IncorrectPrivateKeyLength")) << "a " << seed.size() << "-byte seed was accepted";
  if (tc.group().contains("publicKey") && !tc.group()["publicKey"].is_null()) {
    EXPECT_EQ(HexOf(key->verifying_key().bytes()), HexOf(tc.GroupBytes("publicKey")));
  }

  const Bytes rnd = tc.Bytes("rnd");
  internal::SigningMode mode;
  if (tc.Has("rnd")) {
    mode.rnd = rnd;
  } else {
    mode.deterministic = true;
  }
  const Bytes ctx = tc.Bytes("ctx");
  const Bytes expected = tc.Bytes("sig");

  if (tc.invalid()) {
    // The remaining invalid kind is a context longer than 255 bytes (InvalidContext).
    EXPECT_TRUE(tc.Has("msg")) << "an invalid test of a kind this test does not know";
    Result<Signature> sig = internal::SignForTesting(*key, tc.Bytes("msg"), ctx, mode);
    EXPECT_FALSE(sig.ok()) << "signed under a " << ctx.size() << "-byte context";
    if (!sig.ok()) {
      EXPECT_EQ(sig.error().code(), ErrorCode::kInvalidArgument) << sig.error().ToString();
    }
    // The public API refuses it too.
    Result<Signature> hedged = key->Sign(tc.Bytes("msg"), ctx);
    EXPECT_FALSE(hedged.ok());
    return true;
  }

  EXPECT_TRUE(tc.Has("msg") || tc.Has("mu")) << "neither msg nor mu";
  if (tc.Has("msg")) {
    const Bytes msg = tc.Bytes("msg");
    Result<Signature> sig = internal::SignForTesting(*key, msg, ctx, mode);
    EXPECT_TRUE(sig.ok()) << sig.error().ToString();
    if (sig.ok()) {
      EXPECT_EQ(HexOf(sig->view()), HexOf(expected));
      const Status verified = key->verifying_key().Verify(msg, sig->view(), ctx);
      EXPECT_TRUE(verified.ok()) << verified.error().ToString();
    }
  }
  if (tc.Has("mu")) {
    // mu = H(tr || M') commits to the message and the context, so signing mu must give the same
    // signature. (For Internal tests there is no message, so the public Verify cannot be run; the
    // exact match with the published signature is the check.)
    Result<Signature> sig = internal::SignMuForTesting(*key, tc.Bytes("mu"), mode);
    EXPECT_TRUE(sig.ok()) << sig.error().ToString();
    if (sig.ok()) {
      EXPECT_EQ(HexOf(sig->view()), HexOf(expected));
    }
  }
  return true;
}

TEST(MlDsaSignWycheproofTest, AllVectors) {
  const TestVectorFile file = TestVectorFile::Load("mldsa_65_sign_seed_test.json");
  EXPECT_EQ(file.algorithm(), "ML-DSA-65");
  ExpectAllExecuted(file.Run(RunSignCase));
}

}  // namespace
}  // namespace qsapi::crypto
