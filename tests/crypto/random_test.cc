#include "qsapi/crypto/random.h"

#include <atomic>

#include "qsapi/crypto/aead.h"
#include "qsapi/crypto/kem.h"
#include "qsapi/crypto/signature.h"
#include "support/test_support.h"

namespace qsapi::crypto {
namespace {

// CountingSource counts the bytes it serves, so that tests can see who draws through the interface.
class CountingSource final : public RandomSource {
 public:
  Status Fill(std::span<std::uint8_t> out) override {
    if (fail_) return Unavailable("no healthy source (test)");
    bytes_ += out.size();
    return OpenSslRandomSource()->Fill(out);
  }
  std::string_view Name() const noexcept override { return "counting"; }
  std::atomic<std::size_t> bytes_{0};
  bool fail_ = false;
};

class RandomSourceTest : public ::testing::Test {
 protected:
  void SetUp() override { SetRandomSource(source_); }
  void TearDown() override { SetRandomSource(nullptr); }
  std::shared_ptr<CountingSource> source_ = std::make_shared<CountingSource>();
};

TEST_F(RandomSourceTest, KeyGenerationAndNoncesDrawThroughTheInstalledSource) {
  ASSERT_TRUE(KemPrivateKey::Generate(KemAlgorithm::kMlKem768).ok());
  EXPECT_EQ(source_->bytes_, 64U);  // the ML-KEM seed d || z
  ASSERT_TRUE(SigningKey::Generate(SignatureAlgorithm::kMlDsa65).ok());
  EXPECT_EQ(source_->bytes_, 64U + 32U);
  auto aead = Aead::Generate(AeadAlgorithm::kAes256Gcm);
  ASSERT_TRUE(aead.ok());
  EXPECT_EQ(source_->bytes_, 64U + 32U + 32U);
  ASSERT_TRUE(aead->Encrypt(Bytes{1}, {}).ok());
  EXPECT_EQ(source_->bytes_, 64U + 32U + 32U + 12U);  // the nonce
}

TEST_F(RandomSourceTest, ASourceThatRefusesStopsKeyGenerationWithItsError) {
  source_->fail_ = true;
  auto key = KemPrivateKey::Generate(KemAlgorithm::kXWing);
  ASSERT_FALSE(key.ok());
  EXPECT_EQ(key.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(key.error().message().find("no healthy source"), std::string::npos);
}

TEST(RandomTest, DefaultSourceProducesDistinctOutputs) {
  EXPECT_EQ(GetRandomSource()->Name(), "openssl-drbg");
  auto a = RandomBytes(32);
  auto b = RandomBytes(32);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  EXPECT_NE(*a, Bytes(32, 0));
}

}  // namespace
}  // namespace qsapi::crypto
