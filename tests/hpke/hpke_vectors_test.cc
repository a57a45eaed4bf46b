// draft-ietf-hpke-pq-05 Appendix A (tests/data/ietf/hpke_pq_05_vectors.json): the KEM with the
// published encapsulation randomness, the RFC 9180 key schedule, the first encryptions and the
// exports, for every vector whose KEM qsapi offers.
#include <algorithm>
#include <map>

#include <nlohmann/json.hpp>

#include "crypto/internal/kem_impl.h"
#include "hpke/internal/context_state.h"
#include "qsapi/hpke/hpke.h"
#include "support/test_support.h"

namespace qsapi::hpke {
namespace {

using testing::Hex;
using testing::ToHex;

std::string S(const nlohmann::json& v, const char* field) { return v[field].get<std::string>(); }

class HpkePqVectorTest : public ::testing::TestWithParam<std::string> {
 protected:
  static nlohmann::json Vector(const std::string& section) {
    const auto doc = nlohmann::json::parse(testing::ReadFile(testing::DataPath("ietf/hpke_pq_05_vectors.json")));
    for (const auto& v : doc["vectors"]) {
      if (v["section"] == section) return v;
    }
    ADD_FAILURE() << "no vector " << section;
    return {};
  }
};

TEST_P(HpkePqVectorTest, KemKeyScheduleEncryptionsExports) {
  const nlohmann::json v = Vector(GetParam());
  ASSERT_FALSE(v.is_null());
  const auto kem = static_cast<KemId>(v["kem_id"].get<int>());
  const crypto::KemAlgorithm alg = KemAlgorithmFor(kem);
  auto recipient = InMemoryRecipientKey::FromSeed(alg, KemSeed::CopyFrom(Hex(S(v, "skRm"))));
  QSAPI_ASSERT_OK(recipient);
  auto encap = crypto::internal::EncapsulateDeterministicForTesting((*recipient)->public_key(), Hex(S(v, "ikmE")));
  QSAPI_ASSERT_OK(encap);
  EXPECT_EQ(ToHex(encap->shared_secret.view()), S(v, "shared_secret"));
  // The recipient decapsulates the same enc to the same secret.
  auto ss = (*recipient)->Decapsulate(encap->ciphertext.view());
  QSAPI_ASSERT_OK(ss);
  EXPECT_EQ(ToHex(ss->view()), S(v, "shared_secret"));

  // The key schedule on the raw suite (A.2 uses AES-128-GCM: Nk = 16).
  const auto aead_id = static_cast<std::uint16_t>(v["aead_id"].get<int>());
  const internal::RawSuite raw{static_cast<std::uint16_t>(v["kem_id"].get<int>()),
                               static_cast<std::uint16_t>(v["kdf_id"].get<int>()), aead_id,
                               std::size_t{aead_id == 1 ? 16U : 32U}, 12};
  const Bytes info = Hex(S(v, "info"));
  auto ks = internal::KeySchedule(raw, encap->shared_secret.view(), info, nullptr);
  QSAPI_ASSERT_OK(ks);
  EXPECT_EQ(ToHex(ks->key.view()), S(v, "key"));
  EXPECT_EQ(ToHex(ks->base_nonce.view()), S(v, "base_nonce"));
  EXPECT_EQ(ToHex(ks->exporter_secret.view()), S(v, "exporter_secret"));

  if (aead_id == 1) return;  // AES-128-GCM: not offered, so no context to run.
  auto suite = Suite::FromIds(raw.kem_id, raw.kdf_id, raw.aead_id);
  QSAPI_ASSERT_OK(suite);
  auto sender = internal::SetupSenderWithEncapsulationForTesting(*suite, *encap, info, nullptr);
  QSAPI_ASSERT_OK(sender);
  auto receiver = SetupRecipient(*suite, sender->enc, **recipient, info);
  QSAPI_ASSERT_OK(receiver);

  // Seal and open messages 0..9 in order; compare those the vector lists.
  std::map<std::uint64_t, nlohmann::json> listed;
  for (const auto& e : v["encryptions"]) listed[e["seq"].get<std::uint64_t>()] = e;
  ASSERT_FALSE(listed.empty());
  const Bytes pt = Hex(S(v["encryptions"][0], "pt"));
  for (std::uint64_t seq = 0; seq <= listed.rbegin()->first; ++seq) {
    const std::string aad_text = "Count-" + std::to_string(seq);
    const Bytes aad(aad_text.begin(), aad_text.end());
    auto ct = sender->context.Seal(pt, aad);
    QSAPI_ASSERT_OK(ct);
    if (listed.count(seq) != 0) {
      EXPECT_EQ(ToHex(aad), S(listed[seq], "aad"));
      EXPECT_EQ(ToHex(*ct), S(listed[seq], "ct")) << "sequence number " << seq;
    }
    auto opened = receiver->Open(*ct, aad);
    QSAPI_ASSERT_OK(opened);
    EXPECT_EQ(*opened, pt);
  }
  for (const auto& e : v["exports"]) {
    const Bytes ctx = Hex(S(e, "exporter_context"));
    auto s = sender->context.Export(ctx, e["L"].get<std::size_t>());
    auto r = receiver->Export(ctx, e["L"].get<std::size_t>());
    QSAPI_ASSERT_OK(s);
    QSAPI_ASSERT_OK(r);
    EXPECT_EQ(ToHex(s->view()), S(e, "exported_value"));
    EXPECT_EQ(ToHex(r->view()), S(e, "exported_value"));
  }
}

INSTANTIATE_TEST_SUITE_P(Draft05, HpkePqVectorTest, ::testing::Values("A.2", "A.3", "A.5", "A.6"),
                         [](const auto& param_info) {
                           std::string name = param_info.param;
                           name.erase(std::remove(name.begin(), name.end(), '.'), name.end());
                           return name;
                         });

}  // namespace
}  // namespace qsapi::hpke
