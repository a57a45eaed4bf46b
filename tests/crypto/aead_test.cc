#include "qsapi/crypto/aead.h"

#include <algorithm>

#include "support/test_support.h"

namespace qsapi::crypto {
namespace {

class AeadTest : public ::testing::TestWithParam<AeadAlgorithm> {};

INSTANTIATE_TEST_SUITE_P(All, AeadTest,
                         ::testing::Values(AeadAlgorithm::kAes256Gcm, AeadAlgorithm::kXChaCha20Poly1305,
                                           AeadAlgorithm::kChaCha20Poly1305),
                         [](const auto& param_info) {
                           std::string name(AeadAlgorithmName(param_info.param));
                           name.erase(std::remove(name.begin(), name.end(), '-'), name.end());
                           return name;
                         });

const Bytes kPlaintext = {'p', 'a', 'y', 'l', 'o', 'a', 'd', ' ', 'o', 'f', ' ', 'a', 'n', ' ', 'A', 'P', 'I'};
const Bytes kAad = {'k', 'e', 'y', '-', 'i', 'd', ':', '7'};

TEST_P(AeadTest, RoundTripAndLayout) {
  auto aead = Aead::Generate(GetParam());
  QSAPI_ASSERT_OK(aead);
  auto ct = aead->Encrypt(kPlaintext, kAad);
  QSAPI_ASSERT_OK(ct);
  EXPECT_EQ(ct->size(), kPlaintext.size() + aead->Overhead());
  auto pt = aead->Decrypt(*ct, kAad);
  QSAPI_ASSERT_OK(pt);
  EXPECT_EQ(*pt, kPlaintext);
  auto secret = aead->DecryptSecret(*ct, kAad);
  QSAPI_ASSERT_OK(secret);
  EXPECT_EQ(Bytes(secret->view().begin(), secret->view().end()), kPlaintext);
  // Empty plaintext and empty AAD are legal.
  auto empty = aead->Encrypt({}, {});
  QSAPI_ASSERT_OK(empty);
  auto empty_pt = aead->Decrypt(*empty, {});
  QSAPI_ASSERT_OK(empty_pt);
  EXPECT_TRUE(empty_pt->empty());
}

TEST_P(AeadTest, NoncesAreFreshPerMessage) {
  auto aead = Aead::Generate(GetParam());
  QSAPI_ASSERT_OK(aead);
  const std::size_t nonce = GetAeadSizes(GetParam()).nonce;
  auto a = aead->Encrypt(kPlaintext, {});
  auto b = aead->Encrypt(kPlaintext, {});
  QSAPI_ASSERT_OK(a);
  QSAPI_ASSERT_OK(b);
  EXPECT_FALSE(std::equal(a->begin(), a->begin() + static_cast<std::ptrdiff_t>(nonce), b->begin()));
  EXPECT_NE(*a, *b);
}

TEST_P(AeadTest, EveryTamperingFailsAlikeAndReleasesNoPlaintext) {
  SymmetricKey key;
  auto aead = Aead::Generate(GetParam(), &key);
  QSAPI_ASSERT_OK(aead);
  auto ct = aead->Encrypt(kPlaintext, kAad);
  QSAPI_ASSERT_OK(ct);
  for (std::size_t pos = 0; pos < ct->size(); pos += 7) {  // nonce, ciphertext and tag bytes
    Bytes bad = *ct;
    bad[pos] ^= 0x20;
    EXPECT_EQ(aead->Decrypt(bad, kAad).error(), AuthenticationFailed()) << "position " << pos;
  }
  EXPECT_EQ(aead->Decrypt(*ct, Bytes{'x'}).error(), AuthenticationFailed());
  EXPECT_EQ(aead->Decrypt(Bytes(ct->begin(), ct->end() - 1), kAad).error(), AuthenticationFailed());
  EXPECT_EQ(aead->Decrypt(Bytes(3, 0), kAad).error(), AuthenticationFailed());
  EXPECT_EQ(aead->Decrypt({}, kAad).error(), AuthenticationFailed());
  // A different key.
  auto other = Aead::Generate(GetParam());
  QSAPI_ASSERT_OK(other);
  EXPECT_EQ(other->Decrypt(*ct, kAad).error(), AuthenticationFailed());

  // OpenWithNonce wipes the caller's buffer on failure: no partial plaintext.
  const std::size_t n = GetAeadSizes(GetParam()).nonce;
  Bytes bad = *ct;
  bad.back() ^= 1;
  Bytes out(kPlaintext.size(), 0xEE);
  EXPECT_FALSE(aead->OpenWithNonce(ByteView(bad).first(n), ByteView(bad).subspan(n), kAad, out).ok());
  EXPECT_EQ(out, Bytes(kPlaintext.size(), 0));
}

TEST_P(AeadTest, ExplicitNonceApiChecksLengths) {
  auto aead = Aead::Generate(GetParam());
  QSAPI_ASSERT_OK(aead);
  const AeadSizes s = GetAeadSizes(GetParam());
  Bytes out(kPlaintext.size() + s.tag);
  EXPECT_EQ(aead->SealWithNonce(Bytes(s.nonce + 1, 0), kPlaintext, {}, out).error().code(),
            ErrorCode::kInvalidArgument);
  Bytes small(3);
  EXPECT_EQ(aead->SealWithNonce(Bytes(s.nonce, 0), kPlaintext, {}, small).error().code(), ErrorCode::kInvalidArgument);
  QSAPI_EXPECT_OK(aead->SealWithNonce(Bytes(s.nonce, 0), kPlaintext, {}, out));
  Bytes back(kPlaintext.size());
  QSAPI_EXPECT_OK(aead->OpenWithNonce(Bytes(s.nonce, 0), out, {}, back));
  EXPECT_EQ(back, kPlaintext);
  // The same message under another nonce does not open.
  Bytes other_nonce(s.nonce, 0);
  other_nonce[0] = 1;
  EXPECT_EQ(aead->OpenWithNonce(other_nonce, out, {}, back).error(), AuthenticationFailed());
}

TEST_P(AeadTest, KeysMustBe32Bytes) {
  for (std::size_t n : {0, 16, 31, 33}) {
    auto aead = Aead::New(GetParam(), SymmetricKey(SecretBytes(n)));
    ASSERT_FALSE(aead.ok());
    EXPECT_EQ(aead.error().code(), ErrorCode::kInvalidArgument);
  }
}

TEST(AeadNamesTest, RoundTrip) {
  for (auto a : {AeadAlgorithm::kAes256Gcm, AeadAlgorithm::kXChaCha20Poly1305, AeadAlgorithm::kChaCha20Poly1305}) {
    EXPECT_EQ(*ParseAeadAlgorithm(AeadAlgorithmName(a)), a);
  }
  EXPECT_FALSE(ParseAeadAlgorithm("AES-128-GCM").ok());
}

}  // namespace
}  // namespace qsapi::crypto
