#include "qsapi/crypto/kem.h"

#include "crypto/internal/kem_impl.h"
#include "support/test_support.h"

namespace qsapi::crypto {
namespace {

class KemTest : public ::testing::TestWithParam<KemAlgorithm> {};

INSTANTIATE_TEST_SUITE_P(All, KemTest,
                         ::testing::Values(KemAlgorithm::kMlKem512, KemAlgorithm::kMlKem768, KemAlgorithm::kMlKem1024,
                                           KemAlgorithm::kXWing, KemAlgorithm::kMlKem1024P384),
                         [](const auto& param_info) {
                           std::string name(KemAlgorithmName(param_info.param));
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

TEST_P(KemTest, RoundTripWithTheAdvertisedSizes) {
  const KemSizes sizes = GetKemSizes(GetParam());
  auto key = KemPrivateKey::Generate(GetParam());
  QSAPI_ASSERT_OK(key);
  EXPECT_EQ(key->public_key().bytes().size(), sizes.public_key);
  auto enc = key->public_key().Encapsulate();
  QSAPI_ASSERT_OK(enc);
  EXPECT_EQ(enc->ciphertext.size(), sizes.ciphertext);
  EXPECT_EQ(enc->shared_secret.size(), sizes.shared_secret);
  auto ss = key->Decapsulate(enc->ciphertext.view());
  QSAPI_ASSERT_OK(ss);
  EXPECT_TRUE(ConstantTimeEqual(ss->view(), enc->shared_secret.view()));
  // Two encapsulations never give the same secret.
  auto enc2 = key->public_key().Encapsulate();
  QSAPI_ASSERT_OK(enc2);
  EXPECT_FALSE(ConstantTimeEqual(enc->shared_secret.view(), enc2->shared_secret.view()));
}

TEST_P(KemTest, SeedDeterminesTheKeyAndExportsBack) {
  auto key = KemPrivateKey::Generate(GetParam());
  QSAPI_ASSERT_OK(key);
  auto seed = key->ExportSeed();
  QSAPI_ASSERT_OK(seed);
  EXPECT_EQ(seed->size(), GetKemSizes(GetParam()).seed);
  auto again = KemPrivateKey::FromSeed(GetParam(), seed->view());
  QSAPI_ASSERT_OK(again);
  EXPECT_EQ(testing::ToHex(again->public_key().bytes()), testing::ToHex(key->public_key().bytes()));
  // A public key imported from its bytes encapsulates to the same private key.
  auto pub = KemPublicKey::FromBytes(GetParam(), key->public_key().bytes());
  QSAPI_ASSERT_OK(pub);
  auto enc = pub->Encapsulate();
  QSAPI_ASSERT_OK(enc);
  auto ss = again->Decapsulate(enc->ciphertext.view());
  QSAPI_ASSERT_OK(ss);
  EXPECT_TRUE(ConstantTimeEqual(ss->view(), enc->shared_secret.view()));
}

TEST_P(KemTest, WrongLengthsAreRejected) {
  const KemSizes sizes = GetKemSizes(GetParam());
  for (std::size_t n : {std::size_t{0}, sizes.seed - 1, sizes.seed + 1}) {
    auto key = KemPrivateKey::FromSeed(GetParam(), Bytes(n, 7));
    ASSERT_FALSE(key.ok()) << n;
    EXPECT_EQ(key.error().code(), ErrorCode::kInvalidArgument);
  }
  auto key = KemPrivateKey::Generate(GetParam());
  QSAPI_ASSERT_OK(key);
  Bytes pk(key->public_key().bytes().begin(), key->public_key().bytes().end());
  for (Bytes bad : {Bytes(pk.begin(), pk.end() - 1), Bytes(pk.size() + 1, 0), Bytes()}) {
    auto pub = KemPublicKey::FromBytes(GetParam(), bad);
    ASSERT_FALSE(pub.ok());
    EXPECT_EQ(pub.error().code(), ErrorCode::kInvalidArgument);
  }
  auto enc = key->public_key().Encapsulate();
  QSAPI_ASSERT_OK(enc);
  Bytes ct = enc->ciphertext.bytes();
  for (Bytes bad : {Bytes(ct.begin(), ct.end() - 1), Bytes(ct.size() + 1, 0), Bytes()}) {
    auto ss = key->Decapsulate(bad);
    ASSERT_FALSE(ss.ok());
    EXPECT_EQ(ss.error(), AuthenticationFailed());
  }
}

TEST_P(KemTest, TamperedCiphertextNeverYieldsTheSharedSecret) {
  auto key = KemPrivateKey::Generate(GetParam());
  QSAPI_ASSERT_OK(key);
  auto enc = key->public_key().Encapsulate();
  QSAPI_ASSERT_OK(enc);
  const Bytes ct = enc->ciphertext.bytes();
  // Flip one bit in the first byte, the middle and the last byte (the classical part of a hybrid).
  for (std::size_t pos : {std::size_t{0}, ct.size() / 2, ct.size() - 1}) {
    Bytes bad = ct;
    bad[pos] ^= 0x01;
    auto ss = key->Decapsulate(bad);
    // ML-KEM rejects implicitly (a pseudorandom secret); a hybrid may also fail outright when the
    // tampered classical part is not a valid point. Either way the secret is not the sender's.
    if (ss.ok()) {
      EXPECT_FALSE(ConstantTimeEqual(ss->view(), enc->shared_secret.view())) << "position " << pos;
    } else {
      EXPECT_EQ(ss.error(), AuthenticationFailed());
    }
  }
}

TEST_P(KemTest, NamesRoundTrip) {
  auto parsed = ParseKemAlgorithm(KemAlgorithmName(GetParam()));
  QSAPI_ASSERT_OK(parsed);
  EXPECT_EQ(*parsed, GetParam());
}

TEST(KemTest, UnknownNameIsAClearError) {
  auto parsed = ParseKemAlgorithm("Kyber768");
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(parsed.error().message().find("ML-KEM-768"), std::string::npos);
}

TEST(MlKemTest, ExpandedKeyRoundTripsAndHasNoSeed) {
  auto key = KemPrivateKey::Generate(KemAlgorithm::kMlKem768);
  QSAPI_ASSERT_OK(key);
  auto expanded = key->ExportExpanded();
  QSAPI_ASSERT_OK(expanded);
  EXPECT_EQ(expanded->size(), 2400U);
  auto imported = KemPrivateKey::FromExpandedBytes(KemAlgorithm::kMlKem768, expanded->view());
  QSAPI_ASSERT_OK(imported);
  EXPECT_EQ(testing::ToHex(imported->public_key().bytes()), testing::ToHex(key->public_key().bytes()));
  EXPECT_EQ(imported->ExportSeed().error().code(), ErrorCode::kFailedPrecondition);
  // FIPS 203 7.3: the hash check H(ek) inside dk must hold; a corrupted dk is refused.
  SecretBytes corrupt = expanded->Clone();
  corrupt.data()[1152 + 1184 + 5] ^= 1;  // inside H(ek)
  EXPECT_EQ(KemPrivateKey::FromExpandedBytes(KemAlgorithm::kMlKem768, corrupt.view()).error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(KemPrivateKey::FromExpandedBytes(KemAlgorithm::kXWing, expanded->view()).error().code(),
            ErrorCode::kUnimplemented);
}

TEST(KemDeterministicTest, SameEncapsulationSeedSameCiphertext) {
  for (auto a : {KemAlgorithm::kMlKem768, KemAlgorithm::kXWing, KemAlgorithm::kMlKem1024P384}) {
    auto key = KemPrivateKey::Generate(a);
    QSAPI_ASSERT_OK(key);
    const Bytes eseed(internal::EncapsulationSeedSize(a), 0x42);
    auto e1 = internal::EncapsulateDeterministicForTesting(key->public_key(), eseed);
    auto e2 = internal::EncapsulateDeterministicForTesting(key->public_key(), eseed);
    QSAPI_ASSERT_OK(e1);
    QSAPI_ASSERT_OK(e2);
    EXPECT_EQ(e1->ciphertext, e2->ciphertext) << KemAlgorithmName(a);
    auto ss = key->Decapsulate(e1->ciphertext.view());
    QSAPI_ASSERT_OK(ss);
    EXPECT_TRUE(ConstantTimeEqual(ss->view(), e1->shared_secret.view()));
  }
}

}  // namespace
}  // namespace qsapi::crypto
