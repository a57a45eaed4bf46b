// Our ETSI GS QKD 014 client against our KME simulator pair, over real HTTPS with mutual TLS on
// loopback (ephemeral ports, every certificate generated into a temporary directory): every
// endpoint in its POST and GET forms, exactly-once delivery to the slave, the SAE and KME_ID
// checks, mTLS refusal, every fault mode, retries, the prefetching key supplies, the negotiated
// hybrid group, ML-DSA certificates, and that no key reaches a message or a log line.
#include <chrono>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <sodium.h>

#include "kmesim/kme_simulator.h"
#include "net/test_tls.h"
#include "qkd/qkd_test_util.h"
#include "qsapi/qkd/etsi014.h"
#include "qsapi/qkd/key_supply.h"
#include "support/test_support.h"

namespace qsapi::qkd {
namespace {

using qsapi::testing::FastOptions;
using qsapi::testing::LogCapture;
using qsapi::testing::MakeClient;
using qsapi::testing::TempDir;

std::string Base64(ByteView b) {
  std::string out(sodium_base64_encoded_len(b.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), b.data(), b.size(), sodium_base64_VARIANT_ORIGINAL);
  out.resize(out.size() - 1);
  return out;
}

class SimulatorTest : public ::testing::Test {
 protected:
  void StartSim(KmeSimulatorOptions o = {}) {
    o.dir = dir_.path() / "kme";
    if (o.keys_per_second == 100) o.keys_per_second = 0;  // a fixed pool unless a test asks for a rate
    auto sim = KmeSimulator::Start(o);
    ASSERT_TRUE(sim.ok()) << sim.error().ToString();
    sim_ = std::move(sim).value();
  }
  [[nodiscard]] Etsi014ClientOptions OptionsA() const {
    const auto& f = sim_->files();
    return FastOptions(sim_->url_a(), f.ca.string(), f.sae_a_cert.string(), f.sae_a_key.string());
  }
  [[nodiscard]] Etsi014ClientOptions OptionsB() const {
    const auto& f = sim_->files();
    return FastOptions(sim_->url_b(), f.ca.string(), f.sae_b_cert.string(), f.sae_b_key.string());
  }
  void SetUp() override { StartSim(); }

  TempDir dir_;
  std::unique_ptr<KmeSimulator> sim_;
};

TEST_F(SimulatorTest, WritesTheCredentialFilesWithPrivateKeysOwnerOnly) {
  const auto& f = sim_->files();
  for (const auto& p : {f.ca, f.kme_a_cert, f.kme_b_cert, f.sae_a_cert, f.sae_b_cert}) {
    EXPECT_TRUE(std::filesystem::exists(p)) << p;
  }
  for (const auto& p : {f.kme_a_key, f.kme_b_key, f.sae_a_key, f.sae_b_key}) {
    const auto perms = std::filesystem::status(p).permissions();
    EXPECT_EQ(perms & std::filesystem::perms::all,
              std::filesystem::perms::owner_read | std::filesystem::perms::owner_write)
        << p;
  }
  EXPECT_EQ(*pki::ReadCertificatePem(f.sae_b_cert)->CommonName(), "SAE-B");
}

TEST_F(SimulatorTest, StatusIsSpecConformantAndTlsIsHybrid) {
  auto a = MakeClient(OptionsA());
  auto status = a->GetStatus("SAE-B");
  QSAPI_ASSERT_OK(status);
  EXPECT_EQ(status->source_kme_id, "KME-A");
  EXPECT_EQ(status->target_kme_id, "KME-B");
  EXPECT_EQ(status->master_sae_id, "SAE-A");
  EXPECT_EQ(status->slave_sae_id, "SAE-B");
  EXPECT_EQ(status->key_size, 256U);
  EXPECT_EQ(status->stored_key_count, 1000U);
  EXPECT_EQ(status->max_key_count, 1000U);
  EXPECT_EQ(status->max_key_per_request, 128U);
  EXPECT_EQ(status->min_key_size, 64U);
  EXPECT_EQ(status->max_key_size, 8192U);
  EXPECT_EQ(status->max_sae_id_count, 0U);
  const LinkInfo link = a->link();
  EXPECT_EQ(link.tls_group, "X25519MLKEM768");
  EXPECT_EQ(link.tls_version, "TLSv1.3");
  EXPECT_TRUE(link.pq_hybrid);
  EXPECT_EQ(link.kme_common_name, "KME-A");
  EXPECT_EQ(link.connections, 1U);
}

TEST_F(SimulatorTest, EncKeysPostThenDecKeysPostDeliversTheSameKeysExactlyOnce) {
  auto a = MakeClient(OptionsA());
  auto b = MakeClient(OptionsB());
  KeyRequest req;
  req.number = 3;
  req.size = 256;
  auto keys = a->GetKey("SAE-B", req);
  QSAPI_ASSERT_OK(keys);
  ASSERT_EQ(keys->size(), 3U);
  std::vector<std::string> ids;
  for (const auto& k : *keys) {
    EXPECT_TRUE(IsValidKeyId(k.key_id)) << k.key_id;
    EXPECT_EQ(k.key.size(), 32U);
    ids.push_back(k.key_id);
  }
  EXPECT_EQ(sim_->stored_key_count(), 997U);
  EXPECT_EQ(sim_->reserved_key_count(), 3U);
  // Ask in another order: the keys come back in the order asked.
  const std::vector<std::string> asked{ids[2], ids[0], ids[1]};
  auto got = b->GetKeyWithKeyIds("SAE-A", asked, 256);
  QSAPI_ASSERT_OK(got);
  ASSERT_EQ(got->size(), 3U);
  EXPECT_EQ((*got)[0].key_id, ids[2]);
  EXPECT_TRUE(ConstantTimeEqual((*got)[0].key.view(), (*keys)[2].key.view()));
  EXPECT_TRUE(ConstantTimeEqual((*got)[1].key.view(), (*keys)[0].key.view()));
  EXPECT_TRUE(ConstantTimeEqual((*got)[2].key.view(), (*keys)[1].key.view()));
  EXPECT_EQ(sim_->reserved_key_count(), 0U);
  // Exactly once: the second fetch fails, with the spec's message.
  auto again = b->GetKeyWithKeyIds("SAE-A", asked, 256);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), ErrorCode::kInvalidArgument) << again.error().ToString();
  EXPECT_NE(again.error().message().find("not found on KME"), std::string::npos) << again.error().message();
  EXPECT_NE(again.error().message().find("HTTP 400"), std::string::npos);
  EXPECT_NE(again.error().message().find(sim_->url_b()), std::string::npos);
  // Both calls shared one kept-alive connection per client.
  EXPECT_EQ(b->link().connections, 1U);
  EXPECT_EQ(b->link().requests, 2U);
}

TEST_F(SimulatorTest, GetFormsOfEncKeysAndDecKeys) {
  auto a = MakeClient(OptionsA());
  auto b = MakeClient(OptionsB());
  KeyRequest req;
  req.number = 2;
  req.size = 512;
  req.use_get = true;
  auto keys = a->GetKey("SAE-B", req);
  QSAPI_ASSERT_OK(keys);
  ASSERT_EQ(keys->size(), 2U);
  EXPECT_EQ((*keys)[0].key.size(), 64U);
  for (const auto& k : *keys) {
    auto got = b->GetKeyWithKeyIds("SAE-A", std::vector<std::string>{k.key_id}, 512, /*use_get=*/true);
    QSAPI_ASSERT_OK(got);
    EXPECT_TRUE(ConstantTimeEqual((*got)[0].key.view(), k.key.view()));
  }
  // The default size (size 0) is the KME's key_size.
  auto def = a->GetKey("SAE-B", KeyRequest{});
  QSAPI_ASSERT_OK(def);
  EXPECT_EQ((*def)[0].key.size(), 32U);
}

TEST_F(SimulatorTest, OneClientSharedByThreads) {
  std::shared_ptr<Etsi014Client> a = MakeClient(OptionsA());
  std::vector<std::vector<std::string>> ids(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        auto keys = a->GetKey("SAE-B", KeyRequest{});
        if (keys.ok()) ids[t].push_back((*keys)[0].key_id);
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<std::string> unique;
  for (const auto& v : ids) unique.insert(v.begin(), v.end());
  EXPECT_EQ(unique.size(), 40U);
  EXPECT_EQ(sim_->reserved_key_count(), 40U);
  EXPECT_EQ(a->link().connections, 1U);
}

TEST_F(SimulatorTest, BothDirectionsWork) {
  auto a = MakeClient(OptionsA());
  auto b = MakeClient(OptionsB());
  auto keys = b->GetKey("SAE-A", KeyRequest{});
  QSAPI_ASSERT_OK(keys);
  auto got = a->GetKeyWithKeyIds("SAE-B", std::vector<std::string>{(*keys)[0].key_id});
  QSAPI_ASSERT_OK(got);
  EXPECT_TRUE(ConstantTimeEqual((*got)[0].key.view(), (*keys)[0].key.view()));
}

TEST_F(SimulatorTest, OnlyTheNamedSlaveGetsTheKeys) {
  auto a = MakeClient(OptionsA());
  auto keys = a->GetKey("SAE-B", KeyRequest{});
  QSAPI_ASSERT_OK(keys);
  // SAE-A asking its own KME for keys it reserved for SAE-B: not its keys.
  auto wrong = a->GetKeyWithKeyIds("SAE-B", std::vector<std::string>{(*keys)[0].key_id});
  ASSERT_FALSE(wrong.ok());
  // SAE-B's certificate at KME A: 401.
  auto f = sim_->files();
  auto b_at_a = MakeClient(FastOptions(sim_->url_a(), f.ca.string(), f.sae_b_cert.string(), f.sae_b_key.string()));
  auto r = b_at_a->GetKeyWithKeyIds("SAE-A", std::vector<std::string>{(*keys)[0].key_id});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_NE(r.error().message().find("HTTP 401"), std::string::npos) << r.error().message();
  EXPECT_EQ(sim_->reserved_key_count(), 1U) << "a refused call must not consume the key";
}

TEST_F(SimulatorTest, AThirdSaeWithAValidCertificateGets401) {
  const std::string cert = dir_.File("sae-c.pem");
  const std::string key = dir_.File("sae-c-key.pem");
  QSAPI_ASSERT_OK(sim_->IssueClientCertificate("SAE-C", cert, key));
  auto c = MakeClient(FastOptions(sim_->url_a(), sim_->files().ca.string(), cert, key));
  for (int op = 0; op < 3; ++op) {
    Status s = OkStatus();
    if (op == 0) {
      auto r = c->GetStatus("SAE-B");
      if (!r.ok()) s = r.error();
    } else if (op == 1) {
      auto r = c->GetKey("SAE-B", KeyRequest{});
      if (!r.ok()) s = r.error();
    } else {
      auto r = c->GetKeyWithKeyIds("SAE-A", std::vector<std::string>{"0a6c2c47-8bd8-4f36-bd5d-3f9d6b3c8f11"});
      if (!r.ok()) s = r.error();
    }
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code(), ErrorCode::kPermissionDenied) << s.error().ToString();
    EXPECT_NE(s.error().message().find("401"), std::string::npos);
  }
  EXPECT_EQ(sim_->stored_key_count(), 1000U);
}

TEST_F(SimulatorTest, MutualTlsRefusesACertificateFromAnotherCa) {
  const auto rogue = qsapi::testing::MakeTestPki(dir_);  // "client" from a CA the KMEs do not know
  auto c = MakeClient(FastOptions(sim_->url_a(), sim_->files().ca.string(), rogue.rogue_cert, rogue.rogue_key));
  auto r = c->GetStatus("SAE-B");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kPermissionDenied) << r.error().ToString();
  EXPECT_NE(r.error().message().find("refused the TLS session"), std::string::npos) << r.error().message();
}

TEST_F(SimulatorTest, TheKmeCertificateMustVerify) {
  const auto other = qsapi::testing::MakeTestPki(dir_);  // other.ca did not issue the KME's certificate
  const auto& f = sim_->files();
  auto c = MakeClient(FastOptions(sim_->url_a(), other.ca, f.sae_a_cert.string(), f.sae_a_key.string()));
  auto r = c->GetStatus("SAE-B");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kFailedPrecondition) << r.error().ToString();
  EXPECT_NE(r.error().message().find("verification"), std::string::npos);
  // A host name in the URL is matched against the certificate's SANs ("localhost" is one).
  auto o = OptionsA();
  o.kme_url = "https://localhost:" + o.kme_url.substr(o.kme_url.rfind(':') + 1);
  QSAPI_EXPECT_OK(MakeClient(o)->GetStatus("SAE-B"));
}

TEST_F(SimulatorTest, KmeIdCheck) {
  auto o = OptionsA();
  o.expected_kme_id = "KME-A";
  QSAPI_EXPECT_OK(MakeClient(o)->GetStatus("SAE-B"));
  o.expected_kme_id = "KME-B";
  auto r = MakeClient(o)->GetKey("SAE-B", KeyRequest{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_NE(r.error().message().find("KME_ID mismatch"), std::string::npos) << r.error().message();
  EXPECT_EQ(sim_->stored_key_count(), 1000U) << "no request may reach a KME with the wrong KME_ID";
}

TEST_F(SimulatorTest, RequestsTheKmeRejectsAreInvalidArgument) {
  auto a = MakeClient(OptionsA());
  KeyRequest req;
  req.size = 32;  // below min_key_size
  auto small = a->GetKey("SAE-B", req);
  ASSERT_FALSE(small.ok());
  EXPECT_EQ(small.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(small.error().message().find("min_key_size"), std::string::npos) << small.error().message();
  req.size = 256;
  req.number = 129;  // above max_key_per_request
  EXPECT_EQ(a->GetKey("SAE-B", req).error().code(), ErrorCode::kInvalidArgument);
  req.number = 1;
  req.additional_slave_sae_ids = {"SAE-C"};
  EXPECT_EQ(a->GetKey("SAE-B", req).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(a->GetStatus("SAE-Z").error().code(), ErrorCode::kInvalidArgument);
  // Checked before anything is sent.
  req = KeyRequest{};
  req.size = 12;
  EXPECT_EQ(a->GetKey("SAE-B", req).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(a->GetKeyWithKeyIds("SAE-B", std::vector<std::string>{"not-a-uuid"}).error().code(),
            ErrorCode::kInvalidArgument);
  const std::string id = "0a6c2c47-8bd8-4f36-bd5d-3f9d6b3c8f11";
  EXPECT_EQ(a->GetKeyWithKeyIds("SAE-B", std::vector<std::string>{id, id}).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(sim_->stored_key_count(), 1000U);
}

TEST_F(SimulatorTest, OutageIsUnavailableAfterBoundedRetries) {
  sim_->SetFaults(KmeFaults{.outage = true, .latency = {}, .exhausted = false, .corrupt = false});
  auto a = MakeClient(OptionsA());
  auto r = a->GetKey("SAE-B", KeyRequest{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(r.error().message().find("HTTP 503"), std::string::npos);
  EXPECT_NE(r.error().message().find("simulated outage"), std::string::npos) << "the KME's message is quoted";
  EXPECT_NE(r.error().message().find("gave up after 3 attempts"), std::string::npos) << r.error().message();
  EXPECT_EQ(a->link().requests, 3U);
  EXPECT_EQ(a->link().retries, 2U);
  sim_->SetFaults({});
  QSAPI_EXPECT_OK(a->GetKey("SAE-B", KeyRequest{}));
}

TEST_F(SimulatorTest, ExhaustedPoolIsResourceExhaustedAndRetried) {
  sim_->SetFaults(KmeFaults{.outage = false, .latency = {}, .exhausted = true, .corrupt = false});
  auto a = MakeClient(OptionsA());
  auto r = a->GetKey("SAE-B", KeyRequest{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kResourceExhausted);
  EXPECT_NE(r.error().message().find("try again later"), std::string::npos) << r.error().message();
  EXPECT_EQ(a->link().requests, 3U);
  auto status = a->GetStatus("SAE-B");
  QSAPI_ASSERT_OK(status);
  EXPECT_EQ(status->stored_key_count, 0U);
}

TEST(SimulatorPool, KeysAppearAtTheRateUpToMaxKeyCountAndRetriesWaitForThem) {
  TempDir dir;
  KmeSimulatorOptions o;
  o.dir = dir.path();
  o.initial_key_count = 2;
  o.max_key_count = 10;
  o.keys_per_second = 10;  // one key per 100 ms: eight take 800 ms, longer than a request under load
  auto sim = KmeSimulator::Start(o);
  QSAPI_ASSERT_OK(sim);
  auto opts = FastOptions((*sim)->url_a(), (*sim)->files().ca.string(), (*sim)->files().sae_a_cert.string(),
                          (*sim)->files().sae_a_key.string());
  opts.max_attempts = 1;
  auto a = MakeClient(opts);
  KeyRequest two;
  two.number = 2;
  QSAPI_ASSERT_OK(a->GetKey("SAE-B", two));
  KeyRequest eight;
  eight.number = 8;
  auto empty = a->GetKey("SAE-B", eight);
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error().code(), ErrorCode::kResourceExhausted);
  // With retries and backoff the client waits for the link to produce the keys. The patient
  // client is made first and the pool drained just before its request, so that the keys cannot
  // all have appeared while it was being set up (however slow the build, e.g. under TSan).
  opts.max_attempts = 8;
  opts.initial_backoff = std::chrono::milliseconds(40);
  opts.max_backoff = std::chrono::milliseconds(200);
  auto patient = MakeClient(opts);
  auto stored = a->GetStatus("SAE-B");
  QSAPI_ASSERT_OK(stored);
  if (stored->stored_key_count > 0) {
    KeyRequest drain;
    drain.number = static_cast<decltype(drain.number)>(stored->stored_key_count);
    QSAPI_ASSERT_OK(a->GetKey("SAE-B", drain));
  }
  QSAPI_ASSERT_OK(patient->GetKey("SAE-B", eight));
  EXPECT_GE(patient->link().retries, 1U);
  // The pool never exceeds max_key_count.
  std::this_thread::sleep_for(std::chrono::milliseconds(1300));
  EXPECT_EQ((*sim)->stored_key_count(), 10U);
}

TEST_F(SimulatorTest, LatencyWithinAndBeyondTheTimeout) {
  sim_->SetFaults(
      KmeFaults{.outage = false, .latency = std::chrono::milliseconds(150), .exhausted = false, .corrupt = false});
  auto o = OptionsA();
  const auto start = std::chrono::steady_clock::now();
  QSAPI_EXPECT_OK(MakeClient(o)->GetStatus("SAE-B"));
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(150));
  o.request_timeout = std::chrono::milliseconds(60);
  auto r = MakeClient(o)->GetKey("SAE-B", KeyRequest{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kDeadlineExceeded) << r.error().ToString();
}

TEST_F(SimulatorTest, CorruptModeHandsTheSlaveADifferentKey) {
  sim_->SetFaults(KmeFaults{.outage = false, .latency = {}, .exhausted = false, .corrupt = true});
  auto a = MakeClient(OptionsA());
  auto b = MakeClient(OptionsB());
  auto keys = a->GetKey("SAE-B", KeyRequest{});
  QSAPI_ASSERT_OK(keys);
  auto got = b->GetKeyWithKeyIds("SAE-A", std::vector<std::string>{(*keys)[0].key_id});
  QSAPI_ASSERT_OK(got);
  EXPECT_EQ((*got)[0].key.size(), (*keys)[0].key.size());
  EXPECT_FALSE(ConstantTimeEqual((*got)[0].key.view(), (*keys)[0].key.view()));
}

TEST_F(SimulatorTest, MasterAndSlaveKeySuppliesWithPrefetch) {
  std::shared_ptr<Etsi014Client> a = MakeClient(OptionsA());
  std::shared_ptr<Etsi014Client> b = MakeClient(OptionsB());
  MasterKeySupplyOptions mo;
  mo.slave_sae_id = "SAE-B";
  mo.key_size_bits = 256;
  mo.prefetch = 4;
  auto master = MasterKeySupply::Create(a, mo);
  QSAPI_ASSERT_OK(master);
  SlaveKeySupply slave(b, "SAE-A", 256);

  auto r1 = (*master)->Reserve(2);
  QSAPI_ASSERT_OK(r1);
  EXPECT_EQ((*master)->buffered(), 4U);  // fetched 2 + 4 in one request
  EXPECT_EQ(a->link().requests, 1U);
  auto r2 = (*master)->Reserve(3);  // from the buffer, no request
  QSAPI_ASSERT_OK(r2);
  EXPECT_EQ(a->link().requests, 1U);
  EXPECT_EQ((*master)->buffered(), 1U);

  for (auto* r : {&*r1, &*r2}) {
    auto keys = slave.Fetch(r->key_ids);
    QSAPI_ASSERT_OK(keys);
    ASSERT_EQ(keys->size(), r->keys.size());
    for (std::size_t i = 0; i < keys->size(); ++i) EXPECT_TRUE(ConstantTimeEqual((*keys)[i].view(), r->keys[i].view()));
  }
  QSAPI_ASSERT_OK((*master)->Prefetch());
  EXPECT_EQ((*master)->buffered(), 4U);
  (*master)->Clear();
  EXPECT_EQ((*master)->buffered(), 0U);

  // A failed fetch loses no buffered key.
  QSAPI_ASSERT_OK((*master)->Prefetch());
  sim_->SetFaults(KmeFaults{.outage = true, .latency = {}, .exhausted = false, .corrupt = false});
  EXPECT_FALSE((*master)->Reserve(6).ok());
  EXPECT_EQ((*master)->buffered(), 4U);
  QSAPI_EXPECT_OK((*master)->Reserve(4));
}

TEST_F(SimulatorTest, NoKeyReachesAnErrorMessageOrALogLine) {
  LogCapture logs;
  auto a = MakeClient(OptionsA());
  auto b = MakeClient(OptionsB());
  KeyRequest req;
  req.number = 4;
  auto keys = a->GetKey("SAE-B", req);
  QSAPI_ASSERT_OK(keys);
  std::vector<std::string> messages;
  std::vector<std::string> ids;
  for (const auto& k : *keys) ids.push_back(k.key_id);
  // Fetch with a wrong expected size: the keys arrive, then are refused.
  auto wrong = b->GetKeyWithKeyIds("SAE-A", ids, 128);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().code(), ErrorCode::kDataLoss);
  messages.push_back(wrong.error().ToString());
  auto gone = b->GetKeyWithKeyIds("SAE-A", ids, 256);
  ASSERT_FALSE(gone.ok());
  messages.push_back(gone.error().ToString());
  for (const auto& line : logs.Lines()) messages.push_back(line);
  for (const auto& k : *keys) {
    for (const auto& m : messages) {
      EXPECT_EQ(m.find(Base64(k.key.view())), std::string::npos) << m;
      EXPECT_EQ(m.find(qsapi::testing::ToHex(k.key.view())), std::string::npos) << m;
    }
  }
}

TEST(SimulatorPool, UnfetchedReservationsExpire) {
  TempDir dir;
  KmeSimulatorOptions o;
  o.dir = dir.path();
  o.reservation_ttl = std::chrono::seconds(0);  // a KME that discards reserved keys at once
  auto sim = KmeSimulator::Start(o);
  QSAPI_ASSERT_OK(sim);
  const auto& f = (*sim)->files();
  auto a = MakeClient(FastOptions((*sim)->url_a(), f.ca.string(), f.sae_a_cert.string(), f.sae_a_key.string()));
  auto b = MakeClient(FastOptions((*sim)->url_b(), f.ca.string(), f.sae_b_cert.string(), f.sae_b_key.string()));
  auto keys = a->GetKey("SAE-B", KeyRequest{});
  QSAPI_ASSERT_OK(keys);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ((*sim)->reserved_key_count(), 0U);
  auto late = b->GetKeyWithKeyIds("SAE-A", std::vector<std::string>{(*keys)[0].key_id});
  ASSERT_FALSE(late.ok());
  EXPECT_NE(late.error().message().find("not found on KME"), std::string::npos);
}

TEST_F(SimulatorTest, PrefetchedKeysOlderThanMaxAgeAreNotUsed) {
  std::shared_ptr<Etsi014Client> a = MakeClient(OptionsA());
  MasterKeySupplyOptions mo;
  mo.slave_sae_id = "SAE-B";
  mo.prefetch = 3;
  mo.max_age = std::chrono::seconds(0);
  auto master = MasterKeySupply::Create(a, mo);
  QSAPI_ASSERT_OK(master);
  QSAPI_ASSERT_OK((*master)->Prefetch());
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  auto r = (*master)->Reserve(1);  // the stale three are dropped, fresh keys are fetched
  QSAPI_ASSERT_OK(r);
  EXPECT_EQ(a->link().requests, 2U);
  EXPECT_EQ(sim_->stored_key_count(), 1000U - 3 - 4);
  EXPECT_EQ(MasterKeySupply::Create(a, MasterKeySupplyOptions{}).error().code(), ErrorCode::kInvalidArgument);
}

TEST(SimulatorPki, MlDsaCertificatesWork) {
  TempDir dir;
  KmeSimulatorOptions o;
  o.dir = dir.path();
  o.cert_algorithm = pki::KeyAlgorithm::kMlDsa65;
  auto sim = KmeSimulator::Start(o);
  QSAPI_ASSERT_OK(sim);
  const auto& f = (*sim)->files();
  auto a = MakeClient(FastOptions((*sim)->url_a(), f.ca.string(), f.sae_a_cert.string(), f.sae_a_key.string()));
  auto b = MakeClient(FastOptions((*sim)->url_b(), f.ca.string(), f.sae_b_cert.string(), f.sae_b_key.string()));
  auto keys = a->GetKey("SAE-B", KeyRequest{});
  QSAPI_ASSERT_OK(keys);
  QSAPI_ASSERT_OK(b->GetKeyWithKeyIds("SAE-A", std::vector<std::string>{(*keys)[0].key_id}));
  EXPECT_EQ(a->link().tls_version, "TLSv1.3");
  EXPECT_TRUE(a->link().pq_hybrid);
}

TEST(SimulatorTls, AClassicalOnlyKmeGivesOneWarningPerLink) {
  TempDir dir;
  KmeSimulatorOptions o;
  o.dir = dir.path();
  o.groups = "X25519:secp256r1";  // a KME of today
  auto sim = KmeSimulator::Start(o);
  QSAPI_ASSERT_OK(sim);
  LogCapture logs;
  const auto& f = (*sim)->files();
  auto opts = FastOptions((*sim)->url_a(), f.ca.string(), f.sae_a_cert.string(), f.sae_a_key.string());
  opts.keep_alive = false;  // a new TLS session per call
  auto a = MakeClient(opts);
  QSAPI_ASSERT_OK(a->GetStatus("SAE-B"));
  QSAPI_ASSERT_OK(a->GetKey("SAE-B", KeyRequest{}));
  EXPECT_EQ(a->link().connections, 2U);
  EXPECT_EQ(a->link().tls_group, "x25519");
  EXPECT_FALSE(a->link().pq_hybrid);
  EXPECT_EQ(logs.Count("WARNING qkd: KME link " + (*sim)->url_a()), 1U);
  EXPECT_EQ(logs.Count("classical"), 1U);
  // A second link warns once for itself.
  QSAPI_ASSERT_OK(MakeClient(opts)->GetStatus("SAE-B"));
  EXPECT_EQ(logs.Count("classical"), 2U);
}

TEST(SimulatorTls, AHybridKmeGivesNoWarning) {
  TempDir dir;
  KmeSimulatorOptions o;
  o.dir = dir.path();
  auto sim = KmeSimulator::Start(o);
  QSAPI_ASSERT_OK(sim);
  LogCapture logs;
  const auto& f = (*sim)->files();
  QSAPI_ASSERT_OK(MakeClient(FastOptions((*sim)->url_a(), f.ca.string(), f.sae_a_cert.string(), f.sae_a_key.string()))
                      ->GetStatus("SAE-B"));
  EXPECT_EQ(logs.Count("WARNING"), 0U);
}

TEST(SimulatorOptions, AreChecked) {
  TempDir dir;
  KmeSimulatorOptions o;
  o.dir = dir.path();
  o.key_size = 100;
  EXPECT_EQ(KmeSimulator::Start(o).error().code(), ErrorCode::kInvalidArgument);
  o.key_size = 256;
  o.sae_b_id = "SAE-A";
  EXPECT_EQ(KmeSimulator::Start(o).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(Etsi014Client::Create(Etsi014ClientOptions{}).error().code(), ErrorCode::kInvalidArgument);
  Etsi014ClientOptions c;
  c.kme_url = "http://127.0.0.1:1";
  EXPECT_EQ(Etsi014Client::Create(c).error().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace qsapi::qkd
