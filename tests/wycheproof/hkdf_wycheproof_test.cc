// Wycheproof HKDF vectors (RFC 5869 with SHA-256/384/512) through qsapi::crypto::Hkdf.
#include <ostream>

#include "qsapi/crypto/kdf.h"
#include "wycheproof/wycheproof_harness.h"

namespace qsapi::crypto {
namespace {

using testing::wycheproof::HexOf;
using testing::wycheproof::TestCase;
using testing::wycheproof::TestVectorFile;

struct HkdfFile {
  const char* file;
  HashAlgorithm hash;
  const char* wycheproof_algorithm;
};

// PrintTo names the file in gtest and ctest output (instead of the struct's bytes).
void PrintTo(const HkdfFile& param, std::ostream* os) { *os << param.file; }

class HkdfWycheproofTest : public ::testing::TestWithParam<HkdfFile> {};

bool RunHkdfCase(HashAlgorithm hash, const TestCase& tc) {
  if (tc.group().value("type", "") != "HkdfTest") return false;
  const auto size_field = tc.test().find("size");
  if (size_field == tc.test().end() || !size_field->is_number_unsigned()) return false;
  const std::size_t size = size_field->get<std::size_t>();
  Result<SecretBytes> okm = Hkdf(hash, tc.Bytes("salt"), tc.Bytes("ikm"), tc.Bytes("info"), size);
  if (tc.invalid()) {
    // The only invalid vectors ask for more than 255 * HashLen bytes (SizeTooLarge).
    EXPECT_FALSE(okm.ok()) << "derived " << size << " bytes";
    if (!okm.ok()) {
      EXPECT_EQ(okm.error().code(), ErrorCode::kInvalidArgument) << okm.error().ToString();
    }
    return true;
  }
  if (!okm.ok()) {
    EXPECT_TRUE(tc.acceptable()) << okm.error().ToString();
    return true;
  }
  EXPECT_EQ(HexOf(okm->view()), HexOf(tc.Bytes("okm")));
  return true;
}

TEST_P(HkdfWycheproofTest, AllVectors) {
  const TestVectorFile file = TestVectorFile::Load(GetParam().file);
  EXPECT_EQ(file.algorithm(), GetParam().wycheproof_algorithm);
  const auto summary = file.Run([&](const TestCase& tc) { return RunHkdfCase(GetParam().hash, tc); });
  ExpectAllExecuted(summary);
}

INSTANTIATE_TEST_SUITE_P(Wycheproof, HkdfWycheproofTest,
                         ::testing::Values(HkdfFile{"hkdf_sha256_test.json", HashAlgorithm::kSha256, "HKDF-SHA-256"},
                                           HkdfFile{"hkdf_sha384_test.json", HashAlgorithm::kSha384, "HKDF-SHA-384"},
                                           HkdfFile{"hkdf_sha512_test.json", HashAlgorithm::kSha512, "HKDF-SHA-512"}),
                         [](const auto& param_info) { return testing::wycheproof::ParamName(param_info.param.file); });

}  // namespace
}  // namespace qsapi::crypto
