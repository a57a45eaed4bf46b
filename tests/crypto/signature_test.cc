#include "qsapi/crypto/signature.h"

#include "crypto/internal/signature_impl.h"
#include "support/test_support.h"

namespace qsapi::crypto {
namespace {

class SignatureTest : public ::testing::TestWithParam<SignatureAlgorithm> {};

// The slow SLH-DSA "s" sets are covered by one representative each (sign takes ~0.5 s).
INSTANTIATE_TEST_SUITE_P(All, SignatureTest,
                         ::testing::Values(SignatureAlgorithm::kMlDsa44, SignatureAlgorithm::kMlDsa65,
                                           SignatureAlgorithm::kMlDsa87, SignatureAlgorithm::kSlhDsaSha2_128s,
                                           SignatureAlgorithm::kSlhDsaSha2_128f, SignatureAlgorithm::kSlhDsaShake_128f,
                                           SignatureAlgorithm::kSlhDsaShake_256f, SignatureAlgorithm::kMlDsa65Ed25519),
                         [](const auto& param_info) {
                           std::string name(SignatureAlgorithmName(param_info.param));
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

const Bytes kMessage = {'t', 'r', 'a', 'n', 's', 'f', 'e', 'r', ' ', '1', '0', '0'};
const Bytes kContext = {'q', 's', 'a', 'p', 'i', '/', 'v', '1'};

TEST_P(SignatureTest, SignVerifyWithTheAdvertisedSizes) {
  const SignatureSizes sizes = GetSignatureSizes(GetParam());
  auto key = SigningKey::Generate(GetParam());
  QSAPI_ASSERT_OK(key);
  EXPECT_EQ(key->verifying_key().bytes().size(), sizes.public_key);
  auto sig = key->Sign(kMessage, kContext);
  QSAPI_ASSERT_OK(sig);
  EXPECT_EQ(sig->size(), sizes.signature);
  QSAPI_EXPECT_OK(key->verifying_key().Verify(kMessage, sig->view(), kContext));
  // A key re-imported from bytes verifies too.
  auto pub = VerifyingKey::FromBytes(GetParam(), key->verifying_key().bytes());
  QSAPI_ASSERT_OK(pub);
  QSAPI_EXPECT_OK(pub->Verify(kMessage, sig->view(), kContext));
}

TEST_P(SignatureTest, EveryTamperingFailsWithTheSameError) {
  auto key = SigningKey::Generate(GetParam());
  QSAPI_ASSERT_OK(key);
  auto sig = key->Sign(kMessage, kContext);
  QSAPI_ASSERT_OK(sig);
  const VerifyingKey& pub = key->verifying_key();

  Bytes bad_msg = kMessage;
  bad_msg.back() ^= 1;
  EXPECT_EQ(pub.Verify(bad_msg, sig->view(), kContext).error(), AuthenticationFailed());
  EXPECT_EQ(pub.Verify(kMessage, sig->view(), Bytes{'o', 't', 'h', 'e', 'r'}).error(), AuthenticationFailed());
  EXPECT_EQ(pub.Verify(kMessage, sig->view(), {}).error(), AuthenticationFailed());
  const Bytes& s = sig->bytes();
  for (std::size_t pos : {std::size_t{0}, s.size() / 2, s.size() - 1}) {
    Bytes bad = s;
    bad[pos] ^= 0x80;
    EXPECT_EQ(pub.Verify(kMessage, bad, kContext).error(), AuthenticationFailed()) << "position " << pos;
  }
  EXPECT_EQ(pub.Verify(kMessage, Bytes(s.begin(), s.end() - 1), kContext).error(), AuthenticationFailed());
  Bytes longer = s;
  longer.push_back(0);
  EXPECT_EQ(pub.Verify(kMessage, longer, kContext).error(), AuthenticationFailed());
  EXPECT_EQ(pub.Verify(kMessage, {}, kContext).error(), AuthenticationFailed());
  // Another key's signature.
  auto other = SigningKey::Generate(GetParam());
  QSAPI_ASSERT_OK(other);
  auto other_sig = other->Sign(kMessage, kContext);
  QSAPI_ASSERT_OK(other_sig);
  EXPECT_EQ(pub.Verify(kMessage, other_sig->view(), kContext).error(), AuthenticationFailed());
}

TEST_P(SignatureTest, ContextLongerThan255BytesIsRefused) {
  auto key = SigningKey::Generate(GetParam());
  QSAPI_ASSERT_OK(key);
  const Bytes long_ctx(256, 'c');
  EXPECT_EQ(key->Sign(kMessage, long_ctx).error().code(), ErrorCode::kInvalidArgument);
  auto sig = key->Sign(kMessage, Bytes(255, 'c'));
  QSAPI_ASSERT_OK(sig);
  EXPECT_FALSE(key->verifying_key().Verify(kMessage, sig->view(), long_ctx).ok());
}

TEST_P(SignatureTest, SeedDeterminesTheKey) {
  auto key = SigningKey::Generate(GetParam());
  QSAPI_ASSERT_OK(key);
  SigningSeed seed = key->ExportSeed();
  EXPECT_EQ(seed.size(), GetSignatureSizes(GetParam()).seed);
  auto again = SigningKey::FromSeed(GetParam(), seed.view());
  QSAPI_ASSERT_OK(again);
  EXPECT_EQ(testing::ToHex(again->verifying_key().bytes()), testing::ToHex(key->verifying_key().bytes()));
  EXPECT_EQ(SigningKey::FromSeed(GetParam(), Bytes(seed.size() + 1, 1)).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(VerifyingKey::FromBytes(GetParam(), Bytes(3, 0)).error().code(), ErrorCode::kInvalidArgument);
}

TEST(MlDsaTest, SigningIsHedgedByDefaultAndDeterministicOnlyOnRequest) {
  auto key = SigningKey::Generate(SignatureAlgorithm::kMlDsa65);
  QSAPI_ASSERT_OK(key);
  auto a = key->Sign(kMessage);
  auto b = key->Sign(kMessage);
  QSAPI_ASSERT_OK(a);
  QSAPI_ASSERT_OK(b);
  EXPECT_NE(a->bytes(), b->bytes());
  internal::SigningMode deterministic;
  deterministic.deterministic = true;
  auto c = internal::SignForTesting(*key, kMessage, {}, deterministic);
  auto d = internal::SignForTesting(*key, kMessage, {}, deterministic);
  QSAPI_ASSERT_OK(c);
  QSAPI_ASSERT_OK(d);
  EXPECT_EQ(c->bytes(), d->bytes());
}

TEST(CompositeTest, BothComponentsMustVerify) {
  // Layout (draft-ietf-lamps-pq-composite-sigs): signature = ML-DSA-65 (3309) || Ed25519 (64).
  auto key = SigningKey::Generate(SignatureAlgorithm::kMlDsa65Ed25519);
  QSAPI_ASSERT_OK(key);
  auto sig = key->Sign(kMessage, kContext);
  QSAPI_ASSERT_OK(sig);
  Bytes ml_dsa_broken = sig->bytes();
  ml_dsa_broken[100] ^= 1;
  Bytes ed25519_broken = sig->bytes();
  ed25519_broken[3309 + 10] ^= 1;
  EXPECT_FALSE(key->verifying_key().Verify(kMessage, ml_dsa_broken, kContext).ok());
  EXPECT_FALSE(key->verifying_key().Verify(kMessage, ed25519_broken, kContext).ok());
}

}  // namespace
}  // namespace qsapi::crypto
