// Wycheproof AEAD vectors (AES-GCM, ChaCha20-Poly1305, XChaCha20-Poly1305) through qsapi::crypto::Aead.
//
// qsapi supports only 256-bit keys, the algorithm's one nonce size (12 bytes; 24 for XChaCha) and
// 16-byte tags. The files also hold AES-128/192 keys, other IV sizes and (in other revisions)
// truncated tags; for those the test asserts that the API refuses them, which counts as executed.
#include <algorithm>
#include <ostream>

#include "qsapi/crypto/aead.h"
#include "wycheproof/wycheproof_harness.h"

namespace qsapi::crypto {
namespace {

using testing::wycheproof::HexOf;
using testing::wycheproof::TestCase;
using testing::wycheproof::TestVectorFile;

// Output buffers start filled with this byte, so that finding one all zero after a failed open
// proves it was wiped rather than left untouched.
constexpr std::uint8_t kPoison = 0xa5;

bool AllZero(ByteView bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](std::uint8_t b) { return b == 0; });
}

struct AeadFile {
  const char* file;
  AeadAlgorithm algorithm;
  const char* wycheproof_algorithm;  // the file's "algorithm" field
};

// PrintTo names the file in gtest and ctest output (instead of the struct's bytes).
void PrintTo(const AeadFile& param, std::ostream* os) { *os << param.file; }

class AeadWycheproofTest : public ::testing::TestWithParam<AeadFile> {};

// ExpectOpenFails opens `ct_and_tag` into a poisoned buffer and expects AuthenticationFailed() with
// the buffer wiped.
void ExpectOpenFails(const Aead& aead, ByteView nonce, ByteView ct_and_tag, ByteView aad, std::size_t tag_size) {
  Bytes out(ct_and_tag.size() >= tag_size ? ct_and_tag.size() - tag_size : 0, kPoison);
  const Status opened = aead.OpenWithNonce(nonce, ct_and_tag, aad, out);
  ASSERT_FALSE(opened.ok()) << "a forged or unsupported ciphertext opened";
  EXPECT_EQ(opened.error().code(), ErrorCode::kAuthenticationFailed) << opened.error().ToString();
  EXPECT_TRUE(AllZero(out)) << "plaintext left behind after a failed open: " << HexOf(out);
}

bool RunAeadCase(AeadAlgorithm algorithm, const TestCase& tc) {
  if (tc.group().value("type", "") != "AeadTest") return false;
  const AeadSizes sizes = GetAeadSizes(algorithm);
  const Bytes key = tc.Bytes("key");
  const Bytes iv = tc.Bytes("iv");
  const Bytes aad = tc.Bytes("aad");
  const Bytes msg = tc.Bytes("msg");
  const Bytes ct = tc.Bytes("ct");
  const Bytes tag = tc.Bytes("tag");
  Bytes ct_and_tag = ct;
  ct_and_tag.insert(ct_and_tag.end(), tag.begin(), tag.end());

  Result<Aead> aead = Aead::New(algorithm, SymmetricKey::CopyFrom(key));
  if (key.size() != sizes.key) {
    // AES-128 / AES-192: not offered, and New must say so rather than pad or truncate the key.
    EXPECT_FALSE(aead.ok()) << "a " << key.size() << "-byte key was accepted";
    if (!aead.ok()) {
      EXPECT_EQ(aead.error().code(), ErrorCode::kInvalidArgument) << aead.error().ToString();
    }
    return true;
  }
  EXPECT_TRUE(aead.ok()) << aead.error().ToString();
  if (!aead.ok()) return true;

  if (iv.size() != sizes.nonce) {
    // Unsupported nonce size (GCM's hashed long/short IVs, an empty IV, a 12-byte nonce given to
    // XChaCha): neither direction may go ahead with some other nonce.
    Bytes sealed(msg.size() + sizes.tag, kPoison);
    const Status seal = aead->SealWithNonce(iv, msg, aad, sealed);
    EXPECT_FALSE(seal.ok()) << "sealed under a " << iv.size() << "-byte nonce";
    if (!seal.ok()) {
      EXPECT_EQ(seal.error().code(), ErrorCode::kInvalidArgument) << seal.error().ToString();
    }
    ExpectOpenFails(*aead, iv, ct_and_tag, aad, sizes.tag);
    return true;
  }

  if (tag.size() != sizes.tag) {
    // A truncated tag: ct || short tag must not open as a 16-byte-tag ciphertext (the split is
    // wrong, so the tag check must fail) and must not open at all when shorter than a tag.
    ExpectOpenFails(*aead, iv, ct_and_tag, aad, sizes.tag);
    return true;
  }

  if (tc.valid()) {
    Bytes sealed(msg.size() + sizes.tag, kPoison);
    const Status seal = aead->SealWithNonce(iv, msg, aad, sealed);
    EXPECT_TRUE(seal.ok()) << seal.error().ToString();
    EXPECT_EQ(HexOf(sealed), HexOf(ct_and_tag));
    Bytes opened(ct.size(), kPoison);
    const Status open = aead->OpenWithNonce(iv, ct_and_tag, aad, opened);
    EXPECT_TRUE(open.ok()) << open.error().ToString();
    EXPECT_EQ(HexOf(opened), HexOf(msg));
  } else if (tc.invalid()) {
    ExpectOpenFails(*aead, iv, ct_and_tag, aad, sizes.tag);
  } else {
    // Acceptable: either outcome, but a success must give the message.
    Bytes opened(ct.size(), kPoison);
    if (aead->OpenWithNonce(iv, ct_and_tag, aad, opened).ok()) {
      EXPECT_EQ(HexOf(opened), HexOf(msg));
    }
  }
  return true;
}

TEST_P(AeadWycheproofTest, AllVectors) {
  const TestVectorFile file = TestVectorFile::Load(GetParam().file);
  EXPECT_EQ(file.algorithm(), GetParam().wycheproof_algorithm);
  const auto summary = file.Run([&](const TestCase& tc) { return RunAeadCase(GetParam().algorithm, tc); });
  ExpectAllExecuted(summary);
}

INSTANTIATE_TEST_SUITE_P(Wycheproof, AeadWycheproofTest,
                         ::testing::Values(AeadFile{"aes_gcm_test.json", AeadAlgorithm::kAes256Gcm, "AES-GCM"},
                                           AeadFile{"chacha20_poly1305_test.json", AeadAlgorithm::kChaCha20Poly1305,
                                                    "CHACHA20-POLY1305"},
                                           AeadFile{"xchacha20_poly1305_test.json", AeadAlgorithm::kXChaCha20Poly1305,
                                                    "XCHACHA20-POLY1305"}),
                         [](const auto& param_info) { return testing::wycheproof::ParamName(param_info.param.file); });

}  // namespace
}  // namespace qsapi::crypto
