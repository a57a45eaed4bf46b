// The sealed-message container and its STREAM: round trips, and every way an edited, truncated,
// reordered, duplicated or re-suited message must fail. Also the public-key file format.
#include "qsapi/hpke/container.h"

#include <algorithm>

#include "qsapi/hpke/public_key_file.h"
#include "qsapi/hpke/stream.h"
#include "support/test_support.h"

namespace qsapi::hpke {
namespace {

const Error kAuthFailed = AuthenticationFailed();

Bytes Text(std::string_view s) { return {s.begin(), s.end()}; }

Bytes Pattern(std::size_t n, std::uint8_t salt = 0) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(i * 31 + salt);
  return b;
}

const InMemoryRecipientKey& KeyFor(KemId kem) {
  static std::map<KemId, std::unique_ptr<InMemoryRecipientKey>> keys;
  auto& k = keys[kem];
  if (!k) {
    auto generated = InMemoryRecipientKey::Generate(KemAlgorithmFor(kem));
    if (!generated.ok()) std::abort();
    k = std::move(generated).value();
  }
  return *k;
}

Result<Bytes> SealToBytes(const InMemoryRecipientKey& key, ByteView pt, const SealOptions& options) {
  MemorySource source(pt);
  MemorySink sink;
  QSAPI_RETURN_IF_ERROR(SealStream(key.public_key(), key.key_id(), source, sink, options));
  return sink.bytes();
}

// OpenToBytes opens either format; `released` receives what the sink got even on failure.
Result<Bytes> OpenToBytes(const RecipientKey& key, ByteView container, const OpenOptions& options = {},
                          Bytes* released = nullptr) {
  MemorySource source(container);
  MemorySink sink;
  Status s = OpenAny(source, key, sink, options);
  if (released != nullptr) *released = sink.bytes();
  if (!s.ok()) return s.error();
  return sink.bytes();
}

SealOptions StreamOptions(Suite suite, std::uint32_t chunk) {
  SealOptions o;
  o.suite = suite;
  o.chunk_size = chunk;
  return o;
}

// Splits a STREAM container into its header and its framed chunks.
struct Split {
  Bytes header;
  std::vector<Bytes> chunks;
};
Split SplitStream(const Bytes& container) {
  auto parsed = ParseHeader(container);
  if (!parsed.ok()) std::abort();
  Split s;
  s.header.assign(container.begin(), container.begin() + static_cast<std::ptrdiff_t>(parsed->size));
  std::size_t p = parsed->size;
  while (p < container.size()) {
    const std::size_t len = (std::size_t{container[p + 1]} << 24) | (std::size_t{container[p + 2]} << 16) |
                            (std::size_t{container[p + 3]} << 8) | container[p + 4];
    s.chunks.emplace_back(container.begin() + static_cast<std::ptrdiff_t>(p),
                          container.begin() + static_cast<std::ptrdiff_t>(p + 5 + len));
    p += 5 + len;
  }
  return s;
}
Bytes Join(const Bytes& header, const std::vector<Bytes>& chunks) {
  Bytes out = header;
  for (const Bytes& c : chunks) out.insert(out.end(), c.begin(), c.end());
  return out;
}

class ContainerKemTest : public ::testing::TestWithParam<KemId> {};

TEST_P(ContainerKemTest, SingleRoundTripWithAadAndPsk) {
  const InMemoryRecipientKey& key = KeyFor(GetParam());
  const Bytes aad = Text("request-42");
  for (AeadId aead : {AeadId::kAes256Gcm, AeadId::kChaCha20Poly1305}) {
    SealOptions o;
    o.suite = {GetParam(), KdfId::kHkdfSha384, aead};
    o.aad = aad;
    auto sealed = SealMessage(key.public_key(), key.key_id(), Text("payload"), o);
    QSAPI_ASSERT_OK(sealed);
    OpenOptions oo;
    oo.aad = aad;
    auto opened = OpenMessage(*sealed, key, oo);
    QSAPI_ASSERT_OK(opened);
    EXPECT_EQ(*opened, Text("payload"));
    EXPECT_EQ(OpenMessage(*sealed, key).error(), kAuthFailed);  // aad missing

    SecretBytes psk_bytes(32);
    auto psk = Psk::Create(std::move(psk_bytes), Text("qkd-17"));
    QSAPI_ASSERT_OK(psk);
    o.psk = &*psk;
    o.aad = {};
    auto with_psk = SealMessage(key.public_key(), key.key_id(), Text("payload"), o);
    QSAPI_ASSERT_OK(with_psk);
    auto no_psk = OpenMessage(*with_psk, key);
    ASSERT_FALSE(no_psk.ok());
    EXPECT_EQ(no_psk.error().code(), ErrorCode::kFailedPrecondition);
    OpenOptions po;
    po.psk = &*psk;
    auto opened_psk = OpenMessage(*with_psk, key, po);
    QSAPI_ASSERT_OK(opened_psk);
    SecretBytes other(32);
    other.data()[0] = 1;
    auto wrong = Psk::Create(std::move(other), Text("qkd-17"));
    QSAPI_ASSERT_OK(wrong);
    po.psk = &*wrong;
    EXPECT_EQ(OpenMessage(*with_psk, key, po).error(), kAuthFailed);
  }
}

TEST_P(ContainerKemTest, StreamRoundTripAtEveryBoundary) {
  const InMemoryRecipientKey& key = KeyFor(GetParam());
  constexpr std::uint32_t kChunk = 32;
  for (std::size_t n : {0UL, 1UL, 31UL, 32UL, 33UL, 64UL, 95UL, 96UL, 97UL, 1000UL}) {
    const Bytes pt = Pattern(n);
    std::vector<std::uint64_t> progress;
    SealOptions o = StreamOptions({GetParam(), KdfId::kHkdfSha256, AeadId::kChaCha20Poly1305}, kChunk);
    o.progress = [&](std::uint64_t done) { progress.push_back(done); };
    auto sealed = SealToBytes(key, pt, o);
    QSAPI_ASSERT_OK(sealed);
    const Split split = SplitStream(*sealed);
    EXPECT_EQ(split.chunks.size(), std::max<std::size_t>(1, (n + kChunk - 1) / kChunk)) << n;
    EXPECT_EQ(split.chunks.back()[0], 0x01);
    ASSERT_FALSE(progress.empty());
    EXPECT_EQ(progress.back(), n);
    auto opened = OpenToBytes(key, *sealed);
    QSAPI_ASSERT_OK(opened);
    EXPECT_EQ(*opened, pt) << n;
  }
}

TEST_P(ContainerKemTest, StreamTruncatedReorderedDuplicatedFail) {
  const InMemoryRecipientKey& key = KeyFor(GetParam());
  auto sealed = SealToBytes(key, Pattern(100), StreamOptions({GetParam(), KdfId::kHkdfSha256, AeadId::kAes256Gcm}, 32));
  QSAPI_ASSERT_OK(sealed);
  const Split s = SplitStream(*sealed);
  ASSERT_EQ(s.chunks.size(), 4U);
  QSAPI_ASSERT_OK(OpenToBytes(key, Join(s.header, s.chunks)));

  auto fails = [&](const std::vector<Bytes>& chunks, const char* what) {
    EXPECT_EQ(OpenToBytes(key, Join(s.header, chunks)).error(), kAuthFailed) << what;
  };
  fails({s.chunks[0], s.chunks[1], s.chunks[2]}, "last chunk missing");
  fails({}, "no chunks at all");
  fails({s.chunks[1], s.chunks[0], s.chunks[2], s.chunks[3]}, "reordered");
  fails({s.chunks[0], s.chunks[0], s.chunks[1], s.chunks[2], s.chunks[3]}, "duplicated");
  fails({s.chunks[0], s.chunks[2], s.chunks[3]}, "dropped");
  fails({s.chunks[0], s.chunks[1], s.chunks[2], s.chunks[3], s.chunks[3]}, "last chunk repeated");
  fails({s.chunks[0], s.chunks[1], s.chunks[2], s.chunks[3], Bytes{0}}, "trailing byte");
  // A non-last chunk relabelled as last (flag byte edited): the flag is in the aad.
  Bytes relabelled = s.chunks[2];
  relabelled[0] = 0x01;
  fails({s.chunks[0], s.chunks[1], relabelled}, "early last flag");
  // The last chunk's flag cleared, followed by nothing.
  Bytes unlast = s.chunks[3];
  unlast[0] = 0x00;
  fails({s.chunks[0], s.chunks[1], s.chunks[2], unlast}, "last flag cleared");

  // Every strict prefix of the container fails, and releases at most whole authentic chunks.
  for (std::size_t len = 0; len < sealed->size(); ++len) {
    Bytes released;
    auto r = OpenToBytes(key, ByteView(sealed->data(), len), {}, &released);
    ASSERT_FALSE(r.ok()) << "prefix of " << len << " bytes opened";
    EXPECT_EQ(released.size() % 32, 0U);
    EXPECT_TRUE(std::equal(released.begin(), released.end(), Pattern(100).begin()));
  }
}

TEST_P(ContainerKemTest, EveryFlippedBitFails) {
  const InMemoryRecipientKey& key = KeyFor(GetParam());
  for (bool stream : {false, true}) {
    Result<Bytes> sealed =
        stream ? SealToBytes(key, Pattern(40), StreamOptions({GetParam(), KdfId::kHkdfSha256, AeadId::kAes256Gcm}, 16))
               : SealMessage(key.public_key(), key.key_id(), Pattern(40),
                             StreamOptions({GetParam(), KdfId::kHkdfSha256, AeadId::kAes256Gcm}, 16));
    QSAPI_ASSERT_OK(sealed);
    const std::size_t header_size = ParseHeader(*sealed)->size;
    for (std::size_t i = 0; i < sealed->size(); ++i) {
      Bytes edited = *sealed;
      edited[i] ^= 0x04;
      Bytes released;
      auto r = OpenToBytes(key, edited, {}, &released);
      ASSERT_FALSE(r.ok()) << "byte " << i << " edited, still opens";
      if (i >= header_size) {
        EXPECT_EQ(r.error(), kAuthFailed) << "byte " << i;
      }
      if (!stream) {
        EXPECT_TRUE(released.empty()) << "single format released plaintext, byte " << i;
      }
    }
  }
}

TEST_P(ContainerKemTest, ReSuitedHeaderFails) {
  const InMemoryRecipientKey& key = KeyFor(GetParam());
  const Suite suite{GetParam(), KdfId::kHkdfSha256, AeadId::kAes256Gcm};
  for (bool stream : {false, true}) {
    Result<Bytes> sealed = stream ? SealToBytes(key, Pattern(50), StreamOptions(suite, 16))
                                  : SealMessage(key.public_key(), key.key_id(), Pattern(50), StreamOptions(suite, 16));
    QSAPI_ASSERT_OK(sealed);
    // Offsets: kdf_id at 8..9, aead_id at 10..11 (docs/PROTOCOL.md).
    Bytes kdf_edit = *sealed;
    kdf_edit[9] = 0x02;  // HKDF-SHA384
    EXPECT_EQ(OpenToBytes(key, kdf_edit).error(), kAuthFailed);
    Bytes aead_edit = *sealed;
    aead_edit[11] = 0x03;  // ChaCha20-Poly1305
    EXPECT_EQ(OpenToBytes(key, aead_edit).error(), kAuthFailed);
    Bytes format_edit = *sealed;
    format_edit[5] = stream ? 0x01 : 0x02;
    EXPECT_FALSE(OpenToBytes(key, format_edit).ok());
    // The key id is bound too: ContainerTest.KeyIdIsBoundIntoTheKeySchedule.
  }
}

INSTANTIATE_TEST_SUITE_P(AllKems, ContainerKemTest,
                         ::testing::Values(KemId::kXWing, KemId::kMlKem768, KemId::kMlKem1024, KemId::kMlKem1024P384),
                         [](const auto& param_info) {
                           std::string name(KemName(param_info.param));
                           std::erase_if(name, [](char c) { return !std::isalnum(static_cast<unsigned char>(c)); });
                           return name;
                         });

TEST(ContainerTest, KeyIdIsBoundIntoTheKeySchedule) {
  // The same private key under two ids: a message sealed to id A, with its header edited to say
  // id B, fails even though the key answers to B.
  auto seed = KemSeed::CopyFrom(Pattern(32));
  auto key_a = InMemoryRecipientKey::FromSeed(crypto::KemAlgorithm::kXWing, seed, Text("key-A"));
  auto key_b = InMemoryRecipientKey::FromSeed(crypto::KemAlgorithm::kXWing, seed, Text("key-B"));
  QSAPI_ASSERT_OK(key_a);
  QSAPI_ASSERT_OK(key_b);
  for (bool stream : {false, true}) {
    Result<Bytes> sealed = stream ? SealToBytes(**key_a, Pattern(20), StreamOptions(kDefaultSuite, 16))
                                  : SealMessage((*key_a)->public_key(), (*key_a)->key_id(), Pattern(20));
    QSAPI_ASSERT_OK(sealed);
    QSAPI_ASSERT_OK(OpenToBytes(**key_a, *sealed));
    auto wrong_key = OpenToBytes(**key_b, *sealed);
    ASSERT_FALSE(wrong_key.ok());
    EXPECT_EQ(wrong_key.error().code(), ErrorCode::kFailedPrecondition);
    EXPECT_NE(wrong_key.error().message().find("6b65792d41"), std::string::npos);  // names the id, in hex
    Bytes edited = *sealed;
    edited[18] = 'B';  // "key-A" starts at offset 14
    EXPECT_EQ(OpenToBytes(**key_b, edited).error(), kAuthFailed);
  }
}

TEST(ContainerTest, HeaderBoundsAndErrors) {
  const InMemoryRecipientKey& key = KeyFor(KemId::kXWing);
  auto sealed = SealMessage(key.public_key(), key.key_id(), Text("x"));
  QSAPI_ASSERT_OK(sealed);
  auto parsed = ParseHeader(*sealed);
  QSAPI_ASSERT_OK(parsed);
  EXPECT_EQ(parsed->header.suite, kDefaultSuite);
  EXPECT_EQ(parsed->header.format, ContainerFormat::kSingle);
  EXPECT_EQ(parsed->header.enc.size(), 1120U);
  auto reencoded = SerializeHeader(parsed->header);
  QSAPI_ASSERT_OK(reencoded);
  EXPECT_TRUE(std::equal(reencoded->begin(), reencoded->end(), sealed->begin()));

  Bytes bad = *sealed;
  bad[0] = 'X';
  EXPECT_NE(ParseHeader(bad).error().message().find("magic"), std::string::npos);
  bad = *sealed;
  bad[4] = 2;
  EXPECT_NE(ParseHeader(bad).error().message().find("version 2"), std::string::npos);
  bad = *sealed;
  bad[11] = 0xff;
  bad[10] = 0xff;  // export-only
  EXPECT_FALSE(ParseHeader(bad).ok());
  for (std::size_t len = 0; len < parsed->size; ++len) {
    EXPECT_FALSE(ParseHeader(ByteView(sealed->data(), len)).ok()) << len;
  }
  // Options out of bounds.
  SealOptions o;
  o.chunk_size = kMaxChunkSize + 1;
  MemorySource src(Text("x"));
  MemorySink sink;
  EXPECT_EQ(SealStream(key.public_key(), key.key_id(), src, sink, o).error().code(), ErrorCode::kInvalidArgument);
  o.chunk_size = kMinChunkSize - 1;
  EXPECT_FALSE(SealStream(key.public_key(), key.key_id(), src, sink, o).ok());
  EXPECT_FALSE(SealMessage(key.public_key(), Bytes(kMaxKeyIdSize + 1, 1), Text("x")).ok());
  EXPECT_FALSE(SealMessage(key.public_key(), {}, Text("x")).ok());
  SealOptions export_only;
  export_only.suite = {KemId::kXWing, KdfId::kHkdfSha256, AeadId::kExportOnly};
  EXPECT_FALSE(SealMessage(key.public_key(), key.key_id(), Text("x"), export_only).ok());
  SealOptions wrong_kem;
  wrong_kem.suite = {KemId::kMlKem768, KdfId::kHkdfSha256, AeadId::kAes256Gcm};
  EXPECT_FALSE(SealMessage(key.public_key(), key.key_id(), Text("x"), wrong_kem).ok());
}

TEST(PublicKeyFileTest, RoundTripAndRejections) {
  for (KemId kem : {KemId::kXWing, KemId::kMlKem768, KemId::kMlKem1024, KemId::kMlKem1024P384}) {
    const InMemoryRecipientKey& key = KeyFor(kem);
    auto text = EncodePublicKeyFile(key.public_key(), key.key_id(), "# alice's sealing key");
    QSAPI_ASSERT_OK(text);
    EXPECT_EQ(text->rfind("# alice's sealing key\n-----BEGIN QSAPI PUBLIC KEY-----\n", 0), 0U);
    auto parsed = ParsePublicKeyFile(*text);
    QSAPI_ASSERT_OK(parsed);
    EXPECT_EQ(parsed->key.algorithm(), KemAlgorithmFor(kem));
    EXPECT_TRUE(std::equal(parsed->key.bytes().begin(), parsed->key.bytes().end(), key.public_key().bytes().begin(),
                           key.public_key().bytes().end()));
    EXPECT_EQ(parsed->key_id, Bytes(key.key_id().begin(), key.key_id().end()));
  }
  const InMemoryRecipientKey& key = KeyFor(KemId::kXWing);
  const std::string good = EncodePublicKeyFile(key.public_key(), key.key_id()).value();
  EXPECT_FALSE(ParsePublicKeyFile("").ok());
  EXPECT_FALSE(ParsePublicKeyFile("-----BEGIN QSAPI PUBLIC KEY----------END QSAPI PUBLIC KEY-----").ok());
  EXPECT_FALSE(ParsePublicKeyFile("-----BEGIN QSAPI PUBLIC KEY-----\n \n-----END QSAPI PUBLIC KEY-----\n").ok());
  EXPECT_FALSE(ParsePublicKeyFile(good.substr(0, good.size() / 2)).ok());
  EXPECT_FALSE(ParsePublicKeyFile(good + "trailing\n").ok());
  std::string bad_b64 = good;
  bad_b64[40] = '*';
  EXPECT_FALSE(ParsePublicKeyFile(bad_b64).ok());
  // A key of the wrong length: drop one base64 quantum (3 bytes) from the body.
  std::string shorter = good;
  shorter.erase(shorter.find('\n') + 1 + 64, 4);
  EXPECT_FALSE(ParsePublicKeyFile(shorter).ok());
  EXPECT_FALSE(ParsePublicKeyFile(std::string(kMaxPublicKeyFileSize + 1, ' ')).ok());
  EXPECT_FALSE(EncodePublicKeyFile(key.public_key(), {}).ok());
  EXPECT_FALSE(EncodePublicKeyFile(key.public_key(), key.key_id(), "two\nlines").ok());
}

}  // namespace
}  // namespace qsapi::hpke
