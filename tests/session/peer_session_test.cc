// The peer link and session establishment over real TLS 1.3 on loopback, with every certificate
// generated into a temporary directory and, for QKD, the KME simulator pair: establishment with
// and without QKD and QRNG, prefer vs require when the KME is down, corrupt QKD keys, replayed
// key_IDs, downgraded source lists, certificates from another CA, classical certificates, wrong
// peer names, classical-only clients, the cnsa2 profile, framing bounds and deadlines.
#include "qsapi/session/peer_session.h"

#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <future>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "kmesim/kme_simulator.h"
#include "net/test_tls.h"
#include "qkd/qkd_test_util.h"
#include "qsapi/entropy/pool.h"
#include "qsapi/entropy/source.h"
#include "qsapi/qkd/key_supply.h"
#include "qsapi/session/peer_channel.h"
#include "qsapi/session/peer_link.h"
#include "session/internal/establishment_messages.h"
#include "session/peer_test_util.h"
#include "support/test_support.h"

namespace qsapi::session {
namespace {

using namespace std::chrono_literals;
using qsapi::testing::MakePeerPki;
using qsapi::testing::PeerPki;
using qsapi::testing::TempDir;

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

template <typename S>
std::string Hex(const S& s) {
  return qsapi::testing::ToHex(s.view());
}

PeerLinkOptions LinkOptions(const PeerPki& pki, const std::string& name, PeerProfile profile = PeerProfile::kDefault) {
  PeerLinkOptions o;
  o.profile = profile;
  o.certificate_file = pki.Cert(name);
  o.private_key_file = pki.Key(name);
  o.ca_file = pki.ca;
  o.handshake_timeout = 8s;
  o.io_timeout = 8s;
  return o;
}

std::shared_ptr<const PeerLinkContext> MakeContext(const PeerLinkOptions& o) {
  auto c = PeerLinkContext::Create(o);
  EXPECT_TRUE(c.ok()) << c.error().ToString();
  return c.ok() ? *c : nullptr;
}

// A raw OpenSSL client, for peers our own link code would never be: classical groups, classical
// certificates. Returns whether the handshake and a first read succeeded.
bool RawClient(std::uint16_t port, const std::string& groups, const std::string& cert, const std::string& key,
               const std::string& ca, bool read_after = true) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set1_groups_list(ctx, groups.c_str());
  SSL_CTX_use_certificate_chain_file(ctx, cert.c_str());
  SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM);
  SSL_CTX_load_verify_locations(ctx, ca.c_str(), nullptr);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  BIO* bio = BIO_new_ssl_connect(ctx);
  BIO_set_conn_hostname(bio, ("127.0.0.1:" + std::to_string(port)).c_str());
  bool ok = BIO_do_connect(bio) == 1 && BIO_do_handshake(bio) == 1;
  if (ok && read_after) {
    char c = 0;
    ok = BIO_read(bio, &c, 1) > 0;  // the server refuses after its checks: the read sees the close
  }
  BIO_free_all(bio);
  SSL_CTX_free(ctx);
  ERR_clear_error();
  return ok;
}

// Two nodes on loopback: A initiates, B responds (on a thread).
class PeerSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pki_ = MakePeerPki(dir_);
    auto listener = PeerListener::Listen("127.0.0.1", 0);
    ASSERT_TRUE(listener.ok()) << listener.error().ToString();
    listener_ = std::move(listener).value();
    ctx_a_ = MakeContext(LinkOptions(pki_, "node-a"));
    ctx_b_ = MakeContext(LinkOptions(pki_, "node-b"));
    peer_b_.name = "node-b";
    peer_b_.host = "127.0.0.1";
    peer_b_.port = listener_->port();
    peer_b_.policy = {.qkd = SourcePolicy::kOff, .qrng = SourcePolicy::kOff};
    peer_b_.establishment_timeout = 10s;
    peer_a_.name = "node-a";
    peer_a_.policy = {.qkd = SourcePolicy::kOff, .qrng = SourcePolicy::kOff};
    peer_a_.establishment_timeout = 10s;
  }

  void StartKmes(qkd::KmeSimulatorOptions o = {}) {
    o.dir = dir_.path() / "kme";
    o.keys_per_second = 0;
    auto sim = qkd::KmeSimulator::Start(o);
    ASSERT_TRUE(sim.ok()) << sim.error().ToString();
    sim_ = std::move(sim).value();
    const auto& f = sim_->files();
    std::shared_ptr<qkd::Etsi014Client> a = qsapi::testing::MakeClient(
        qsapi::testing::FastOptions(sim_->url_a(), f.ca.string(), f.sae_a_cert.string(), f.sae_a_key.string()));
    std::shared_ptr<qkd::Etsi014Client> b = qsapi::testing::MakeClient(
        qsapi::testing::FastOptions(sim_->url_b(), f.ca.string(), f.sae_b_cert.string(), f.sae_b_key.string()));
    auto master = qkd::MasterKeySupply::Create(a, {.slave_sae_id = "SAE-B"});
    ASSERT_TRUE(master.ok()) << master.error().ToString();
    peer_b_.qkd_master = std::move(master).value();
    peer_a_.qkd_slave = std::make_shared<qkd::SlaveKeySupply>(b, "SAE-A", 256);
  }

  std::unique_ptr<PeerEndpoint> Endpoint(std::shared_ptr<const PeerLinkContext> ctx, PeerConfig peer,
                                         std::shared_ptr<entropy::EntropyPool> pool = nullptr) {
    auto e = PeerEndpoint::Create({.link = std::move(ctx), .entropy = std::move(pool)}, {std::move(peer)});
    EXPECT_TRUE(e.ok()) << e.error().ToString();
    return e.ok() ? std::move(e).value() : nullptr;
  }

  struct Pair {
    Result<PeerSession> initiator = Error(ErrorCode::kInternal, "not run");
    Result<PeerSession> responder = Error(ErrorCode::kInternal, "not run");
  };

  // Run establishes one session from A to B with the current configs.
  Pair Run(std::shared_ptr<entropy::EntropyPool> pool_a = nullptr,
           std::shared_ptr<entropy::EntropyPool> pool_b = nullptr) {
    auto a = Endpoint(ctx_a_, peer_b_, std::move(pool_a));
    auto b = Endpoint(ctx_b_, peer_a_, std::move(pool_b));
    Pair p;
    if (a == nullptr || b == nullptr) return p;
    auto responder = std::async(std::launch::async, [&] { return b->AcceptAndRespond(*listener_, 15s); });
    p.initiator = a->Initiate("node-b");
    p.responder = responder.get();
    return p;
  }

  struct Channels {
    std::unique_ptr<PeerChannel> initiator, responder;
  };
  // QkdChannels starts the KMEs, establishes one session from A to B with qkd = require on both
  // sides and makes the two channels.
  Channels QkdChannels(const ChannelConfig& config = {}) {
    StartKmes();
    peer_b_.policy.qkd = SourcePolicy::kRequire;
    peer_a_.policy.qkd = SourcePolicy::kRequire;
    auto p = Run();
    EXPECT_TRUE(p.initiator.ok() && p.responder.ok());
    if (!p.initiator.ok() || !p.responder.ok()) return {};
    auto ci = PeerChannel::Create(std::move(p.initiator).value(), config);
    auto cr = PeerChannel::Create(std::move(p.responder).value(), config);
    EXPECT_TRUE(ci.ok() && cr.ok());
    if (!ci.ok() || !cr.ok()) return {};
    return {std::move(ci).value(), std::move(cr).value()};
  }

  // Serve runs the server side of one link (handshake and checks only) and returns its result.
  std::future<Result<std::unique_ptr<PeerLink>>> ServeOneLink(std::shared_ptr<const PeerLinkContext> ctx) {
    return std::async(std::launch::async, [this, ctx]() -> Result<std::unique_ptr<PeerLink>> {
      QSAPI_ASSIGN_OR_RETURN(auto conn, listener_->AcceptConnection(15s));
      return PeerLink::Accept(ctx, std::move(conn));
    });
  }

  TempDir dir_;
  PeerPki pki_;
  std::unique_ptr<PeerListener> listener_;
  std::shared_ptr<const PeerLinkContext> ctx_a_, ctx_b_;
  PeerConfig peer_a_, peer_b_;  // A's view of B, B's view of A
  std::unique_ptr<qkd::KmeSimulator> sim_;
};

void ExpectSameKeys(const PeerSession& i, const PeerSession& r) {
  EXPECT_EQ(Hex(i.keys().epoch_secret), Hex(r.keys().epoch_secret));
  EXPECT_EQ(Hex(i.keys().confirm_key_initiator), Hex(r.keys().confirm_key_initiator));
  EXPECT_EQ(qsapi::testing::ToHex(i.session_id()), qsapi::testing::ToHex(r.session_id()));
  EXPECT_EQ(i.sources(), r.sources());
}

TEST_F(PeerSessionTest, EstablishesWithoutQkdOverHybridTlsWithMlDsaCertificates) {
  auto p = Run();
  ASSERT_TRUE(p.initiator.ok()) << p.initiator.error().ToString();
  ASSERT_TRUE(p.responder.ok()) << p.responder.error().ToString();
  ExpectSameKeys(*p.initiator, *p.responder);
  EXPECT_EQ(p.initiator->sources(), std::vector<SourceId>{SourceId::kTlsExporter});
  EXPECT_FALSE(p.initiator->degraded()) << "qkd and qrng are off: nothing preferred is missing";
  EXPECT_EQ(p.initiator->tls_group(), "X25519MLKEM768");
  EXPECT_EQ(p.initiator->link_info().tls_version, "TLSv1.3");
  EXPECT_EQ(p.initiator->link_info().tls_cipher, "TLS_AES_256_GCM_SHA384");
  EXPECT_EQ(p.initiator->link_info().peer_key_algorithm, "ML-DSA-65");
  EXPECT_EQ(p.initiator->peer_name(), "node-b");
  EXPECT_EQ(p.responder->peer_name(), "node-a");
  EXPECT_EQ(p.initiator->role(), SessionRole::kInitiator);
  EXPECT_EQ(p.responder->role(), SessionRole::kResponder);
  EXPECT_EQ(p.initiator->session_id().size(), kSessionIdSize);
  EXPECT_EQ(p.initiator->keys().epoch_secret.size(), kEpochSecretSize);
  // The link stays usable after establishment, in both directions.
  const Bytes hello{1, 2, 3};
  ASSERT_TRUE(p.initiator->link()->Send(hello).ok());
  auto got = p.responder->link()->Receive(5s);
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(*got, hello);

  // A second establishment (re-establishment) is a new handshake with new keys and a new id.
  auto q = Run();
  ASSERT_TRUE(q.initiator.ok()) << q.initiator.error().ToString();
  EXPECT_NE(Hex(q.initiator->keys().epoch_secret), Hex(p.initiator->keys().epoch_secret));
  EXPECT_NE(q.initiator->session_id_hex(), p.initiator->session_id_hex());
}

TEST_F(PeerSessionTest, ChannelsCarryEnvelopesBothWaysAcrossRotationsAndRefuseTampering) {
  auto p = Run();
  ASSERT_TRUE(p.initiator.ok()) << p.initiator.error().ToString();
  ASSERT_TRUE(p.responder.ok()) << p.responder.error().ToString();
  ChannelConfig config;
  config.rotation.max_messages = 16;  // several epochs in 100 messages
  auto ci = PeerChannel::Create(std::move(p.initiator).value(), config);
  auto cr = PeerChannel::Create(std::move(p.responder).value(), config);
  ASSERT_TRUE(ci.ok()) << ci.error().ToString();
  ASSERT_TRUE(cr.ok()) << cr.error().ToString();
  auto echo = std::async(std::launch::async, [&]() -> Status {
    for (int i = 0; i < 100; ++i) {
      QSAPI_ASSIGN_OR_RETURN(Bytes m, (*cr)->Receive(5s));
      QSAPI_RETURN_IF_ERROR((*cr)->Send(m));
    }
    return OkStatus();
  });
  for (int i = 0; i < 100; ++i) {
    const Bytes m(static_cast<std::size_t>(1 + i * 37), static_cast<std::uint8_t>(i));
    ASSERT_TRUE((*ci)->Send(m).ok());
    auto back = (*ci)->Receive(5s);
    ASSERT_TRUE(back.ok()) << back.error().ToString();
    ASSERT_EQ(*back, m);
  }
  ASSERT_TRUE(echo.get().ok());
  EXPECT_GE((*ci)->stats().rotations, 5U);
  EXPECT_GE((*cr)->stats().rotations, 5U);
  EXPECT_EQ((*ci)->fresh_key_stats().agreed, 0U) << "no QKD: the ratchet alone";
  {
    auto s = PeerChannel::Create(PeerSession(), config);
    EXPECT_FALSE(s.ok()) << "a session without link and keys makes no channel";
  }
  // Envelopes injected on the link (as a man in the middle of the session, not of TLS, could):
  // a tampered one is refused and the channel goes on; a good one opens once, never twice; one
  // sealed before the last opened one is refused as out of order.
  auto raw = (*ci)->Seal(Bytes{9, 9, 9});
  ASSERT_TRUE(raw.ok()) << raw.error().ToString();
  auto later = (*ci)->Seal(Bytes{8});
  ASSERT_TRUE(later.ok());
  Bytes sealed = *raw;
  sealed.back() ^= 1;
  ASSERT_TRUE((*ci)->session().link()->Send(sealed).ok());
  auto bad = (*cr)->Receive(5s);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error(), AuthenticationFailed());
  ASSERT_TRUE((*ci)->session().link()->Send(*raw).ok());
  auto good = (*cr)->Receive(5s);
  ASSERT_TRUE(good.ok()) << good.error().ToString();
  EXPECT_EQ(*good, (Bytes{9, 9, 9}));
  ASSERT_TRUE((*ci)->session().link()->Send(*raw).ok());
  auto replay = (*cr)->Receive(5s);
  ASSERT_FALSE(replay.ok());
  EXPECT_EQ(replay.error().code(), ErrorCode::kFailedPrecondition);
  auto newest = (*ci)->Seal(Bytes{7});
  ASSERT_TRUE((*ci)->session().link()->Send(*newest).ok());
  ASSERT_TRUE((*cr)->Receive(5s).ok());
  ASSERT_TRUE((*ci)->session().link()->Send(*later).ok());  // sealed before `newest`
  auto reordered = (*cr)->Receive(5s);
  ASSERT_FALSE(reordered.ok());
  EXPECT_TRUE(Contains(reordered.error().message(), "out of order")) << reordered.error().ToString();
  EXPECT_EQ((*cr)->stats().reordered_rejected, 1U);
  Bytes truncated = *newest;
  truncated.resize(truncated.size() - 5);
  ASSERT_TRUE((*ci)->session().link()->Send(truncated).ok());
  auto cut = (*cr)->Receive(5s);
  ASSERT_FALSE(cut.ok());
  EXPECT_EQ(cut.error().code(), ErrorCode::kInvalidArgument) << cut.error().ToString();
  ASSERT_TRUE((*ci)->Send(Bytes{6}).ok());  // and the channel goes on
  auto after = (*cr)->Receive(5s);
  ASSERT_TRUE(after.ok()) << after.error().ToString();
  EXPECT_EQ(*after, Bytes{6});
  // Closing one side: the other sees the link closed, with a clear reason.
  (*ci)->Close();
  auto closed = (*cr)->Receive(5s);
  ASSERT_FALSE(closed.ok());
  EXPECT_EQ(closed.error().code(), ErrorCode::kUnavailable) << closed.error().ToString();
  EXPECT_TRUE(Contains(closed.error().message(), "closed the link")) << closed.error().ToString();
  // A closed link alone is not a failure: the keys stay for envelopes that travel another way.
  EXPECT_TRUE((*cr)->failure().ok());
  EXPECT_EQ((*cr)->link_status().error().code(), ErrorCode::kUnavailable);
  EXPECT_TRUE((*cr)->Seal(Bytes{5}).ok());
  EXPECT_EQ((*cr)->Send(Bytes{5}).error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ((*ci)->Seal(Bytes{5}).error().code(), ErrorCode::kFailedPrecondition) << "closed by its owner";
}

// Detached channels (the link closed after establishment), for envelopes carried by the
// application: Seal and Open in any order within the window; no Send, Receive or fresh keys.
TEST_F(PeerSessionTest, DetachedChannelsSealAndOpenEnvelopesCarriedAnotherWay) {
  auto p = Run();
  ASSERT_TRUE(p.initiator.ok() && p.responder.ok());
  p.initiator->TakeLink().reset();
  p.responder->TakeLink().reset();
  auto ci = PeerChannel::Create(std::move(p.initiator).value(), {}, Ordering::kWindow);
  auto cr = PeerChannel::Create(std::move(p.responder).value(), {}, Ordering::kWindow);
  ASSERT_TRUE(ci.ok() && cr.ok());
  auto e1 = (*ci)->Seal(Bytes{1});
  auto e2 = (*ci)->Seal(Bytes{2});
  ASSERT_TRUE(e1.ok() && e2.ok());
  auto m2 = (*cr)->Open(*e2);
  ASSERT_TRUE(m2.ok()) << m2.error().ToString();
  auto m1 = (*cr)->Open(*e1);
  ASSERT_TRUE(m1.ok()) << m1.error().ToString();
  EXPECT_EQ(*m1, Bytes{1});
  EXPECT_EQ((*cr)->Open(*e1).error().code(), ErrorCode::kFailedPrecondition) << "a replay";
  EXPECT_EQ((*ci)->Send(Bytes{3}).error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ((*ci)->Receive(10ms).error().code(), ErrorCode::kFailedPrecondition);
  ASSERT_TRUE((*ci)->Rotate().ok());
  auto e3 = (*ci)->Seal(Bytes{3});
  ASSERT_TRUE((*cr)->Open(*e3).ok());
  EXPECT_EQ((*cr)->stats().epoch, 1U);
}

// Fresh QKD keys at rotation: the sessions used QKD, so every epoch the initiator enters mixes
// fresh keys agreed over the link (RekeyOffer/RekeyDone), under sustained traffic both ways.
TEST_F(PeerSessionTest, RotationsUnderSustainedTrafficMixFreshQkdKeysAgreedOverTheLink) {
  ChannelConfig config;
  config.rotation.max_messages = 8;
  auto [initiator, responder] = QkdChannels(config);
  ASSERT_TRUE(initiator && responder);
  auto* ci = &initiator;
  auto* cr = &responder;
  const std::uint64_t keys_before = sim_->stored_key_count();
  // The responder sends its own stream while echoing: both directions rotate.
  auto echo = std::async(std::launch::async, [&]() -> Status {
    for (int i = 0; i < 120; ++i) {
      QSAPI_ASSIGN_OR_RETURN(Bytes m, (*cr)->Receive(10s));
      QSAPI_RETURN_IF_ERROR((*cr)->Send(m));
    }
    return OkStatus();
  });
  for (int i = 0; i < 120; ++i) {
    const Bytes m(static_cast<std::size_t>(1 + i * 13), static_cast<std::uint8_t>(i));
    ASSERT_TRUE((*ci)->Send(m).ok()) << (*ci)->failure().error().ToString();
    auto back = (*ci)->Receive(10s);
    ASSERT_TRUE(back.ok()) << back.error().ToString();
    ASSERT_EQ(*back, m);
  }
  ASSERT_TRUE(echo.get().ok());
  const FreshKeyStats fi = (*ci)->fresh_key_stats();
  const FreshKeyStats fr = (*cr)->fresh_key_stats();
  // The initiator leads at half the limit; how many of the epochs come with fresh keys depends on
  // how fast the answers come back (a slow answer holds the epoch), but every agreement enters an
  // epoch on both sides and none fails.
  EXPECT_GE(fi.agreed, 3U) << fi.last_problem;
  EXPECT_EQ(fi.agreed, fr.agreed);
  EXPECT_EQ(fi.refused + fi.skipped, 0U) << fi.last_problem;
  EXPECT_EQ((*ci)->stats().fresh_key_epochs, fi.agreed);
  EXPECT_EQ((*cr)->stats().fresh_key_epochs, fr.agreed);
  EXPECT_EQ((*ci)->stats().epoch, (*cr)->stats().epoch);
  EXPECT_EQ(sim_->reserved_key_count(), 0U) << "every reserved key was fetched by the responder";
  EXPECT_LT(sim_->stored_key_count(), keys_before) << "fresh keys came from the KMEs";

  // An explicit rotation with fresh keys, from the initiator; the responder cannot propose.
  const std::uint32_t epoch = (*ci)->stats().epoch;
  ASSERT_TRUE((*ci)->RotateWithFreshQkd().ok()) << (*ci)->failure().error().ToString();
  EXPECT_GT((*ci)->stats().epoch, epoch);
  EXPECT_EQ((*cr)->RotateWithFreshQkd().error().code(), ErrorCode::kFailedPrecondition);
  ASSERT_TRUE((*ci)->Send(Bytes{1}).ok());
  auto m = (*cr)->Receive(5s);
  ASSERT_TRUE(m.ok()) << m.error().ToString();
  ASSERT_TRUE((*cr)->Send(Bytes{2}).ok());
  ASSERT_TRUE((*ci)->Receive(5s).ok());
}

// Time-based rotation of an initiator that sends nothing: its reader proposes fresh keys once
// half the epoch's maximum age has passed, and the responder's envelopes then use the new epoch.
TEST_F(PeerSessionTest, AnIdleInitiatorStillLeadsTimeBasedRotationsWithFreshKeys) {
  auto now = std::make_shared<std::atomic<std::int64_t>>(0);
  ChannelConfig config;
  config.rotation.max_age = 120s;
  config.clock = [now] { return std::chrono::steady_clock::time_point{} + std::chrono::seconds(now->load()); };
  auto [initiator, responder] = QkdChannels(config);
  ASSERT_TRUE(initiator && responder);
  auto* ci = &initiator;
  auto* cr = &responder;
  now->store(59);
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ((*ci)->fresh_key_stats().agreed, 0U) << "not yet half of max_age";
  now->store(61);
  for (int i = 0; i < 50 && (*cr)->fresh_key_stats().agreed == 0; ++i) std::this_thread::sleep_for(100ms);
  EXPECT_EQ((*cr)->fresh_key_stats().agreed, 1U);
  ASSERT_TRUE((*cr)->Send(Bytes{42}).ok());
  auto m = (*ci)->Receive(5s);
  ASSERT_TRUE(m.ok()) << m.error().ToString();
  EXPECT_EQ((*ci)->stats().epoch, 1U);
  EXPECT_EQ((*ci)->stats().fresh_key_epochs, 1U);
}

// Re-establishment in place: a new link (TLS handshake, ML-KEM), a Reestablish naming the session,
// new QKD keys and randoms, and the new secret mixed into the next epoch of the same session.
TEST_F(PeerSessionTest, ReestablishmentRenewsTheKeysInPlaceOverANewHandshake) {
  StartKmes();
  peer_b_.policy.qkd = SourcePolicy::kRequire;
  peer_a_.policy.qkd = SourcePolicy::kRequire;
  auto a = Endpoint(ctx_a_, peer_b_);
  auto b = Endpoint(ctx_b_, peer_a_);
  auto responded = std::async(std::launch::async, [&] { return b->AcceptAndRespond(*listener_, 15s); });
  auto si = a->Initiate("node-b");
  auto sr = responded.get();
  ASSERT_TRUE(si.ok() && sr.ok());
  const std::string id = si->session_id_hex();
  auto ci = PeerChannel::Create(std::move(si).value());
  auto cr = PeerChannel::Create(std::move(sr).value());
  ASSERT_TRUE(ci.ok() && cr.ok());
  ASSERT_TRUE((*ci)->Send(Bytes{1}).ok());
  ASSERT_TRUE((*cr)->Receive(5s).ok());
  const std::uint64_t keys_before = sim_->stored_key_count();

  auto accepted = std::async(std::launch::async, [&]() -> Status {
    QSAPI_ASSIGN_OR_RETURN(PeerSession s, b->AcceptAndRespond(*listener_, 15s));
    if (!s.reestablishes()) return Internal("not a re-establishment");
    if (s.session_id_hex() != id) return Internal("another session id");
    return (*cr)->AcceptReestablishment(std::move(s));
  });
  auto st = a->Reestablish(**ci);
  ASSERT_TRUE(st.ok()) << st.error().ToString();
  auto acc = accepted.get();
  ASSERT_TRUE(acc.ok()) << acc.error().ToString();
  EXPECT_EQ((*ci)->stats().epoch, 1U);
  EXPECT_EQ((*ci)->stats().reestablishments, 1U);
  EXPECT_EQ((*ci)->stats().fresh_key_epochs, 0U);
  EXPECT_EQ((*cr)->stats().reestablishments, 1U);
  EXPECT_EQ((*ci)->fresh_key_stats().reestablished, 1U);
  EXPECT_EQ((*ci)->fresh_key_stats().reestablished_sources, "tls-exporter+qkd");
  EXPECT_EQ(sim_->reserved_key_count(), 0U) << "the responder fetched the new QKD key";
  EXPECT_LT(sim_->stored_key_count(), keys_before);
  // The same session (id, channel) carries on in the new epoch, both ways.
  ASSERT_TRUE((*ci)->Send(Bytes{2}).ok());
  auto m = (*cr)->Receive(5s);
  ASSERT_TRUE(m.ok()) << m.error().ToString();
  ASSERT_TRUE((*cr)->Send(Bytes{3}).ok());
  auto back = (*ci)->Receive(5s);
  ASSERT_TRUE(back.ok()) << back.error().ToString();
  EXPECT_EQ((*cr)->stats().epoch, 1U);

  // A responder that holds no such session refuses; the initiator's session goes on unchanged.
  auto refused = std::async(std::launch::async, [&]() -> Status {
    QSAPI_ASSIGN_OR_RETURN(PeerSession s, b->AcceptAndRespond(*listener_, 15s));
    PeerChannel::RefuseReestablishment(std::move(s), "no session " + id + " here");
    return OkStatus();
  });
  auto no = a->Reestablish(**ci);
  ASSERT_TRUE(refused.get().ok());
  ASSERT_FALSE(no.ok());
  EXPECT_EQ(no.error().code(), ErrorCode::kNotFound) << no.error().ToString();
  EXPECT_TRUE(Contains(no.error().message(), "unknown-session")) << no.error().ToString();
  EXPECT_TRUE((*ci)->failure().ok());
  EXPECT_EQ((*ci)->stats().epoch, 1U);
  ASSERT_TRUE((*ci)->Send(Bytes{4}).ok());
  ASSERT_TRUE((*cr)->Receive(5s).ok());
  // Only the initiator re-establishes; a re-establishment of another session is refused.
  EXPECT_EQ(b->Reestablish(**cr).error().code(), ErrorCode::kFailedPrecondition);
  // The peer unreachable: a clear error, and the session goes on under its keys.
  PeerConfig unreachable = peer_b_;
  unreachable.port = 1;
  auto a2 = Endpoint(ctx_a_, unreachable);
  auto down = a2->Reestablish(**ci);
  ASSERT_FALSE(down.ok());
  EXPECT_EQ(down.error().code(), ErrorCode::kUnavailable) << down.error().ToString();
  EXPECT_TRUE(Contains(down.error().message(), "re-establishment failed")) << down.error().ToString();
  ASSERT_TRUE((*ci)->Send(Bytes{5}).ok());
  ASSERT_TRUE((*cr)->Receive(5s).ok());
}

TEST_F(PeerSessionTest, FreshKeysAtRotationThatDifferCloseTheSessionSayingSo) {
  auto [initiator, responder] = QkdChannels();
  ASSERT_TRUE(initiator && responder);
  auto* ci = &initiator;
  auto* cr = &responder;
  ASSERT_TRUE((*ci)->Send(Bytes{1}).ok());
  ASSERT_TRUE((*cr)->Receive(5s).ok());
  sim_->SetFaults({.corrupt = true});
  auto st = (*ci)->RotateWithFreshQkd();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kDataLoss);
  EXPECT_TRUE(Contains(st.error().message(), "the QKD keys differ")) << st.error().ToString();
  EXPECT_EQ((*ci)->Send(Bytes{2}).error().code(), ErrorCode::kDataLoss) << "the session is closed";
  auto r = (*cr)->Receive(5s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kDataLoss) << r.error().ToString();
  EXPECT_TRUE(Contains(r.error().message(), "qkd-key-mismatch")) << r.error().ToString();
}

TEST_F(PeerSessionTest, WithoutFreshKeysARotationUsesTheRatchetAloneAndSaysWhy) {
  StartKmes();
  peer_b_.policy.qkd = SourcePolicy::kPrefer;
  peer_a_.policy.qkd = SourcePolicy::kPrefer;
  peer_a_.qkd_at_rotation = false;  // the responder refuses proposals
  auto p = Run();
  ASSERT_TRUE(p.initiator.ok() && p.responder.ok());
  EXPECT_TRUE(p.initiator->qkd_used());
  ASSERT_NE(p.initiator->fresh_key_supply(), nullptr);
  EXPECT_EQ(p.responder->fresh_key_supply(), nullptr);
  ChannelConfig config;
  config.rotation.max_messages = 4;
  auto ci = PeerChannel::Create(std::move(p.initiator).value(), config);
  auto cr = PeerChannel::Create(std::move(p.responder).value(), config);
  ASSERT_TRUE(ci.ok() && cr.ok());
  // The peer refuses: RotateWithFreshQkd says why; Rotate falls back to the ratchet.
  auto refused = (*ci)->RotateWithFreshQkd();
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), ErrorCode::kFailedPrecondition) << refused.error().ToString();
  EXPECT_TRUE(Contains(refused.error().message(), "qkd_at_rotation")) << refused.error().ToString();
  ASSERT_TRUE((*ci)->Rotate().ok());
  EXPECT_EQ((*ci)->stats().epoch, 1U);
  EXPECT_EQ((*ci)->fresh_key_stats().refused, 2U);
  EXPECT_EQ((*cr)->fresh_key_stats().refused, 2U);
  // Traffic across policy rotations: each proposal is refused once, then the ratchet rotates.
  // (How many envelopes that takes depends on when the refusal arrives: the epoch is held until.)
  for (int i = 0; i < 400 && (*ci)->stats().epoch < 3; ++i) {
    ASSERT_TRUE((*ci)->Send(Bytes{static_cast<std::uint8_t>(i)}).ok());
    auto m = (*cr)->Receive(5s);
    ASSERT_TRUE(m.ok()) << m.error().ToString();
  }
  EXPECT_GE((*ci)->stats().epoch, 3U);
  EXPECT_GE((*ci)->fresh_key_stats().refused, 4U);
  EXPECT_EQ((*ci)->stats().fresh_key_epochs, 0U);
  EXPECT_TRUE(Contains((*ci)->fresh_key_stats().last_problem, "refused")) << (*ci)->fresh_key_stats().last_problem;
  // Our own KME down: the rotation is skipped (no proposal) and the ratchet goes on.
  sim_->SetFaults({.outage = true});
  const auto skipped = (*ci)->fresh_key_stats().skipped;
  const auto epoch_before = (*ci)->stats().epoch;
  for (int i = 0; i < 400 && ((*ci)->fresh_key_stats().skipped == skipped || (*ci)->stats().epoch < epoch_before + 2);
       ++i) {
    ASSERT_TRUE((*ci)->Send(Bytes{1}).ok());
    ASSERT_TRUE((*cr)->Receive(5s).ok());
  }
  EXPECT_GE((*ci)->stats().epoch, epoch_before + 2) << "the ratchet goes on";
  EXPECT_GT((*ci)->fresh_key_stats().skipped, skipped)
      << "epoch " << (*ci)->stats().epoch << ", refused " << (*ci)->fresh_key_stats().refused << ", agreed "
      << (*ci)->fresh_key_stats().agreed << ", rotations " << (*ci)->stats().rotations;
  EXPECT_TRUE(Contains((*ci)->fresh_key_stats().last_problem, "KME")) << (*ci)->fresh_key_stats().last_problem;
  // A session without QKD cannot propose at all.
  EXPECT_EQ((*cr)->RotateWithFreshQkd().error().code(), ErrorCode::kFailedPrecondition);
}

TEST_F(PeerSessionTest, OneEndpointServesConcurrentEstablishments) {
  StartKmes();
  peer_b_.policy.qkd = SourcePolicy::kRequire;
  peer_a_.policy.qkd = SourcePolicy::kRequire;
  auto a = Endpoint(ctx_a_, peer_b_);
  auto b = Endpoint(ctx_b_, peer_a_);
  constexpr int kEach = 3;
  std::vector<std::future<std::vector<std::string>>> responders;
  std::vector<std::future<std::vector<std::string>>> initiators;
  for (int t = 0; t < 2; ++t) {
    responders.push_back(std::async(std::launch::async, [&] {
      std::vector<std::string> ids;
      for (int i = 0; i < kEach; ++i) {
        auto s = b->AcceptAndRespond(*listener_, 20s);
        ids.push_back(s.ok() ? s->session_id_hex() + " " + s->qkd_key_ids().front() : s.error().ToString());
      }
      return ids;
    }));
    initiators.push_back(std::async(std::launch::async, [&] {
      std::vector<std::string> ids;
      for (int i = 0; i < kEach; ++i) {
        auto s = a->Initiate("node-b");
        ids.push_back(s.ok() ? s->session_id_hex() + " " + s->qkd_key_ids().front() : s.error().ToString());
      }
      return ids;
    }));
  }
  std::set<std::string> initiated, responded;
  for (auto& f : initiators) {
    for (auto& id : f.get()) initiated.insert(id);
  }
  for (auto& f : responders) {
    for (auto& id : f.get()) responded.insert(id);
  }
  EXPECT_EQ(initiated.size(), 2U * kEach) << "distinct sessions, each with its own QKD key";
  EXPECT_EQ(initiated, responded);
  EXPECT_EQ(b->replay_guard().size(), 2U * kEach);
}

TEST_F(PeerSessionTest, EstablishesWithQkdKeysFetchedByKeyIdAtTheOtherKme) {
  StartKmes();
  peer_b_.policy.qkd = SourcePolicy::kRequire;
  peer_a_.policy.qkd = SourcePolicy::kRequire;
  auto p = Run();
  ASSERT_TRUE(p.initiator.ok()) << p.initiator.error().ToString();
  ASSERT_TRUE(p.responder.ok()) << p.responder.error().ToString();
  ExpectSameKeys(*p.initiator, *p.responder);
  EXPECT_TRUE(p.initiator->qkd_used());
  EXPECT_EQ(p.initiator->SourcesText(), "tls-exporter+qkd");
  ASSERT_EQ(p.initiator->qkd_key_ids().size(), 1U);
  EXPECT_EQ(p.initiator->qkd_key_ids(), p.responder->qkd_key_ids());
  EXPECT_EQ(sim_->reserved_key_count(), 0U) << "the responder fetched the reserved key";
  EXPECT_FALSE(p.initiator->degraded());
}

TEST_F(PeerSessionTest, QkdPreferWithTheKmeDownCreatesASessionMarkedWithoutQkd) {
  StartKmes();
  peer_b_.policy.qkd = SourcePolicy::kPrefer;
  peer_a_.policy.qkd = SourcePolicy::kPrefer;
  sim_->SetFaults({.outage = true});
  auto p = Run();
  ASSERT_TRUE(p.initiator.ok()) << p.initiator.error().ToString();
  ASSERT_TRUE(p.responder.ok()) << p.responder.error().ToString();
  ExpectSameKeys(*p.initiator, *p.responder);
  EXPECT_FALSE(p.initiator->qkd_used());
  EXPECT_TRUE(p.initiator->degraded());
  ASSERT_FALSE(p.initiator->notes().empty());
  EXPECT_TRUE(Contains(p.initiator->notes().front(), "qkd = prefer")) << p.initiator->notes().front();
  EXPECT_TRUE(Contains(p.initiator->notes().front(), "KME")) << p.initiator->notes().front();
  EXPECT_TRUE(p.responder->degraded()) << "the responder marks it too";
}

TEST_F(PeerSessionTest, QkdRequireWithTheKmeDownFailsWithAClearError) {
  StartKmes();
  peer_b_.policy.qkd = SourcePolicy::kRequire;
  peer_a_.policy.qkd = SourcePolicy::kPrefer;
  sim_->SetFaults({.outage = true});
  auto p = Run();
  ASSERT_FALSE(p.initiator.ok());
  EXPECT_EQ(p.initiator.error().code(), ErrorCode::kUnavailable) << p.initiator.error().ToString();
  EXPECT_TRUE(Contains(p.initiator.error().message(), "qkd = require")) << p.initiator.error().ToString();
  ASSERT_FALSE(p.responder.ok());
  EXPECT_TRUE(Contains(p.responder.error().message(), "qkd = require")) << p.responder.error().ToString();
}

TEST_F(PeerSessionTest, ResponderRequiringQkdRefusesAnInitiatorThatOffersNone) {
  peer_a_.policy.qkd = SourcePolicy::kRequire;
  peer_a_.qkd_slave = std::make_shared<qkd::SlaveKeySupply>(nullptr, "SAE-A", 256);  // never called
  auto p = Run();
  ASSERT_FALSE(p.responder.ok());
  EXPECT_EQ(p.responder.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_TRUE(Contains(p.responder.error().message(), "offered no QKD keys")) << p.responder.error().ToString();
  ASSERT_FALSE(p.initiator.ok());
  EXPECT_EQ(p.initiator.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_TRUE(Contains(p.initiator.error().message(), "offered no QKD keys")) << p.initiator.error().ToString();
}

TEST_F(PeerSessionTest, InitiatorRequiringQkdRefusesAResponderWithQkdOff) {
  StartKmes();
  peer_b_.policy.qkd = SourcePolicy::kRequire;
  peer_a_.policy.qkd = SourcePolicy::kOff;
  auto p = Run();
  ASSERT_FALSE(p.initiator.ok());
  EXPECT_EQ(p.initiator.error().code(), ErrorCode::kFailedPrecondition) << p.initiator.error().ToString();
  EXPECT_TRUE(Contains(p.initiator.error().message(), "qkd = off at the responder")) << p.initiator.error().ToString();
  ASSERT_FALSE(p.responder.ok());
}

TEST_F(PeerSessionTest, CorruptQkdKeysFailKeyConfirmationSayingTheKeysDiffer) {
  StartKmes();
  peer_b_.policy.qkd = SourcePolicy::kPrefer;
  peer_a_.policy.qkd = SourcePolicy::kPrefer;
  sim_->SetFaults({.corrupt = true});
  auto p = Run();
  ASSERT_FALSE(p.responder.ok());
  EXPECT_EQ(p.responder.error().code(), ErrorCode::kDataLoss);
  EXPECT_TRUE(Contains(p.responder.error().message(), "the QKD keys differ")) << p.responder.error().ToString();
  ASSERT_FALSE(p.initiator.ok());
  EXPECT_EQ(p.initiator.error().code(), ErrorCode::kDataLoss);
  EXPECT_TRUE(Contains(p.initiator.error().message(), "the QKD keys differ")) << p.initiator.error().ToString();
}

TEST_F(PeerSessionTest, AReplayedKeyIdIsRefusedBeforeTheKmeIsAsked) {
  StartKmes();
  peer_b_.policy.qkd = SourcePolicy::kRequire;
  peer_a_.policy.qkd = SourcePolicy::kRequire;
  auto a = Endpoint(ctx_a_, peer_b_);
  auto b = Endpoint(ctx_b_, peer_a_);
  auto responder = std::async(std::launch::async, [&] { return b->AcceptAndRespond(*listener_, 15s); });
  auto first = a->Initiate("node-b");
  ASSERT_TRUE(first.ok()) << first.error().ToString();
  ASSERT_TRUE(responder.get().ok());
  EXPECT_EQ(b->replay_guard().size(), 1U);

  // A second Init that reuses the first session's key_ID (in upper case) over a fresh link.
  responder = std::async(std::launch::async, [&] { return b->AcceptAndRespond(*listener_, 15s); });
  auto link = PeerLink::Connect(ctx_a_, "127.0.0.1", listener_->port(), "node-b");
  ASSERT_TRUE(link.ok()) << link.error().ToString();
  internal::InitMessage init;
  init.session_id.fill(7);
  init.qkd_policy = SourcePolicy::kRequire;
  init.sources = {SourceId::kTlsExporter, SourceId::kQkd};
  std::string replayed = first->qkd_key_ids().front();
  for (char& c : replayed) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  init.key_ids = {replayed};
  ASSERT_TRUE((*link)->Send(internal::EncodeInit(init)).ok());
  auto answer = (*link)->Receive(10s);
  ASSERT_TRUE(answer.ok()) << answer.error().ToString();
  auto abort = internal::ParseAbort(*answer);
  ASSERT_TRUE(abort.ok()) << abort.error().ToString();
  EXPECT_EQ(abort->code, AbortCode::kReplayedKeyId);
  auto r = responder.get();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_TRUE(Contains(r.error().message(), "already used")) << r.error().ToString();
}

TEST_F(PeerSessionTest, TheInitiatorRefusesAnAcceptThatDropsRequiredQkd) {
  // A responder that ignores the protocol and accepts without QKD although QKD was offered.
  StartKmes();
  peer_b_.policy.qkd = SourcePolicy::kRequire;
  auto a = Endpoint(ctx_a_, peer_b_);
  auto fake = std::async(std::launch::async, [&]() -> Status {
    QSAPI_ASSIGN_OR_RETURN(auto conn, listener_->AcceptConnection(15s));
    QSAPI_ASSIGN_OR_RETURN(auto link, PeerLink::Accept(ctx_b_, std::move(conn)));
    QSAPI_ASSIGN_OR_RETURN(Bytes init_bytes, link->Receive(10s));
    QSAPI_ASSIGN_OR_RETURN(auto init, internal::ParseInit(init_bytes));
    EXPECT_EQ(init.key_ids.size(), 1U);
    internal::AcceptMessage acc{.session_id = init.session_id, .random = {}, .sources = {SourceId::kTlsExporter}};
    QSAPI_RETURN_IF_ERROR(link->Send(internal::EncodeAccept(acc)));
    QSAPI_ASSIGN_OR_RETURN(Bytes answer, link->Receive(10s));
    QSAPI_ASSIGN_OR_RETURN(auto abort, internal::ParseAbort(answer));
    EXPECT_EQ(abort.code, AbortCode::kPolicy);
    return OkStatus();
  });
  auto r = a->Initiate("node-b");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_TRUE(Contains(r.error().message(), "downgraded source list refused")) << r.error().ToString();
  auto st = fake.get();
  EXPECT_TRUE(st.ok()) << st.error().ToString();
}

TEST_F(PeerSessionTest, QrngContributionsOfBothSidesEnterTheKeySchedule) {
  auto pool = [] {
    std::vector<std::unique_ptr<entropy::EntropySource>> sources;
    auto dev = entropy::OpenDeviceSource({.id = "qrng0", .path = "/dev/urandom"});  // a healthy stand-in
    EXPECT_TRUE(dev.ok());
    sources.push_back(std::move(dev).value());
    auto p = entropy::EntropyPool::Create({}, std::move(sources));
    EXPECT_TRUE(p.ok());
    return *p;
  };
  peer_b_.policy.qrng = SourcePolicy::kRequire;
  peer_a_.policy.qrng = SourcePolicy::kRequire;
  auto p = Run(pool(), pool());
  ASSERT_TRUE(p.initiator.ok()) << p.initiator.error().ToString();
  ASSERT_TRUE(p.responder.ok()) << p.responder.error().ToString();
  ExpectSameKeys(*p.initiator, *p.responder);
  EXPECT_EQ(p.initiator->SourcesText(), "tls-exporter+qrng-initiator+qrng-responder");
}

TEST_F(PeerSessionTest, QrngRequireWithoutAHealthyQrngFailsAndPreferMarksTheSession) {
  auto no_qrng = [] {
    auto p = entropy::EntropyPool::Create({}, {});
    EXPECT_TRUE(p.ok());
    return *p;
  };
  peer_b_.policy.qrng = SourcePolicy::kRequire;
  auto p = Run(no_qrng(), no_qrng());
  ASSERT_FALSE(p.initiator.ok());
  EXPECT_EQ(p.initiator.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_TRUE(Contains(p.initiator.error().message(), "qrng = require")) << p.initiator.error().ToString();
  ASSERT_FALSE(p.responder.ok());

  peer_b_.policy.qrng = SourcePolicy::kPrefer;
  auto q = Run(no_qrng(), no_qrng());
  ASSERT_TRUE(q.initiator.ok()) << q.initiator.error().ToString();
  EXPECT_FALSE(q.initiator->qrng_used());
  EXPECT_TRUE(q.initiator->degraded());
  EXPECT_TRUE(Contains(q.initiator->notes().front(), "qrng = prefer")) << q.initiator->notes().front();
}

TEST_F(PeerSessionTest, ACertificateFromAnotherCaIsRefused) {
  auto rogue = MakeContext(LinkOptions(pki_, "rogue-a"));  // CN node-a, another CA
  auto server = ServeOneLink(ctx_b_);
  auto client = PeerLink::Connect(rogue, "127.0.0.1", listener_->port(), "node-b");
  auto s = server.get();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_TRUE(Contains(s.error().message(), "not issued by the deployment CA")) << s.error().ToString();
  // The client learns it at the latest on its first read.
  if (client.ok()) {
    auto r = (*client)->Receive(5s);
    EXPECT_FALSE(r.ok());
  }
}

TEST_F(PeerSessionTest, AServerFromAnotherCaIsRefusedByTheInitiator) {
  auto rogue = MakeContext(LinkOptions(pki_, "rogue-a"));
  auto server = ServeOneLink(rogue);
  auto client = PeerLink::Connect(ctx_b_, "127.0.0.1", listener_->port(), "node-a");
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_TRUE(Contains(client.error().message(), "not issued by the deployment CA")) << client.error().ToString();
  (void)server.get();
}

// API client identities and peer identities are apart: an API client certificate from the same
// deployment CA, named like a peer, does not authenticate as that peer.
TEST_F(PeerSessionTest, AnApiClientCertificateNamedLikeAPeerIsRefused) {
  auto server = ServeOneLink(ctx_b_);
  EXPECT_FALSE(RawClient(listener_->port(), "X25519MLKEM768", pki_.Cert("client-a"), pki_.Key("client-a"), pki_.ca));
  auto s = server.get();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_TRUE(Contains(s.error().message(), "is not a peer-link certificate")) << s.error().ToString();
}

TEST_F(PeerSessionTest, AClassicalEcdsaCertificateIsRefused) {
  // Our own context refuses to be configured with one ...
  auto own = PeerLinkContext::Create(LinkOptions(pki_, "ecdsa-node"));
  ASSERT_FALSE(own.ok());
  EXPECT_TRUE(Contains(own.error().message(), "requires ML-DSA-65")) << own.error().ToString();
  // ... and a peer presenting one (from the deployment CA, over a hybrid group) is refused.
  auto server = ServeOneLink(ctx_b_);
  EXPECT_FALSE(
      RawClient(listener_->port(), "X25519MLKEM768", pki_.Cert("ecdsa-node"), pki_.Key("ecdsa-node"), pki_.ca));
  auto s = server.get();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_TRUE(Contains(s.error().message(), "ECDSA")) << s.error().ToString();
  EXPECT_TRUE(Contains(s.error().message(), "requires ML-DSA-65")) << s.error().ToString();
}

TEST_F(PeerSessionTest, AClassicalOnlyClientIsRefused) {
  auto server = ServeOneLink(ctx_b_);
  EXPECT_FALSE(RawClient(listener_->port(), "X25519:secp256r1", pki_.Cert("node-a"), pki_.Key("node-a"), pki_.ca));
  auto s = server.get();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_TRUE(Contains(s.error().message(), "no hybrid post-quantum key-exchange group")) << s.error().ToString();

  // The same raw client with a hybrid group gets through (the test can tell the difference).
  auto ok_server = ServeOneLink(ctx_b_);
  EXPECT_TRUE(RawClient(listener_->port(), "X25519MLKEM768", pki_.Cert("node-a"), pki_.Key("node-a"), pki_.ca,
                        /*read_after=*/false));
  auto s2 = ok_server.get();
  ASSERT_TRUE(s2.ok()) << s2.error().ToString();
  EXPECT_EQ((*s2)->info().tls_group, "X25519MLKEM768");
  EXPECT_EQ((*s2)->info().peer_name, "node-a");
}

TEST_F(PeerSessionTest, AClassicalOnlyServerIsRefusedByTheInitiator) {
  // A raw OpenSSL server with a valid ML-DSA-65 certificate that speaks only X25519.
  auto server = std::async(std::launch::async, [&] {
    auto conn = listener_->AcceptConnection(15s);
    if (!conn.ok()) return false;
    const int fd = conn->release();
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_set1_groups_list(ctx, "X25519");
    SSL_CTX_use_certificate_chain_file(ctx, pki_.Cert("node-b").c_str());
    SSL_CTX_use_PrivateKey_file(ctx, pki_.Key("node-b").c_str(), SSL_FILETYPE_PEM);
    SSL* ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    const bool ok = SSL_accept(ssl) == 1;
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    ::close(fd);
    ERR_clear_error();
    return ok;
  });
  auto client = PeerLink::Connect(ctx_a_, "127.0.0.1", listener_->port(), "node-b");
  EXPECT_FALSE(server.get());
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_TRUE(Contains(client.error().message(), "hybrid groups we offer (X25519MLKEM768:SecP384r1MLKEM1024)"))
      << client.error().ToString();
}

TEST_F(PeerSessionTest, APeerWhoseNameIsNotTheExpectedOneIsRefused) {
  auto server = ServeOneLink(ctx_b_);
  auto client = PeerLink::Connect(ctx_a_, "127.0.0.1", listener_->port(), "node-c");
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_TRUE(Contains(client.error().message(), "names \"node-b\", but the peer expected here is \"node-c\""))
      << client.error().ToString();
  (void)server.get();
}

TEST_F(PeerSessionTest, AnUnknownPeerIsRefusedByTheResponder) {
  peer_a_.name = "node-x";  // B knows no node-a
  auto p = Run();
  ASSERT_FALSE(p.responder.ok());
  EXPECT_EQ(p.responder.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_TRUE(Contains(p.responder.error().message(), "\"node-a\"")) << p.responder.error().ToString();
  ASSERT_FALSE(p.initiator.ok());
  EXPECT_EQ(p.initiator.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_TRUE(Contains(p.initiator.error().message(), "unknown-peer")) << p.initiator.error().ToString();
}

// A peer that goes away mid-establishment (closes the link after reading Init) or stalls (reads
// Init and never answers): the initiator fails promptly with an error naming what happened, and a
// later establishment with a working peer succeeds.
TEST_F(PeerSessionTest, APeerGoneOrStalledMidEstablishmentFailsClearly) {
  peer_b_.establishment_timeout = 2s;
  auto a = Endpoint(ctx_a_, peer_b_);
  ASSERT_NE(a, nullptr);
  {
    auto server = ServeOneLink(ctx_b_);
    auto closer = std::async(std::launch::async, [&] {
      auto link = server.get();
      if (link.ok()) {
        (void)(*link)->Receive(5s);  // the Init
        (*link)->Close();            // and gone
      }
    });
    const auto t0 = std::chrono::steady_clock::now();
    auto s = a->Initiate("node-b");
    closer.get();
    ASSERT_FALSE(s.ok());
    EXPECT_TRUE(s.error().code() == ErrorCode::kUnavailable || s.error().code() == ErrorCode::kDeadlineExceeded)
        << s.error().ToString();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  }
  {
    auto server = ServeOneLink(ctx_b_);
    std::promise<void> release;
    auto staller = std::async(std::launch::async, [&] {
      auto link = server.get();
      if (link.ok()) {
        (void)(*link)->Receive(5s);  // the Init, then silence
        release.get_future().wait_for(std::chrono::seconds(20));
      }
    });
    auto s = a->Initiate("node-b");
    release.set_value();
    staller.get();
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code(), ErrorCode::kDeadlineExceeded) << s.error().ToString();
  }
  auto ok = Run();
  EXPECT_TRUE(ok.initiator.ok()) << ok.initiator.error().ToString();
}

TEST_F(PeerSessionTest, FramesAboveTheBoundCloseTheLinkAndTimeoutsKeepItUsable) {
  auto server = ServeOneLink(ctx_b_);
  auto client = PeerLink::Connect(ctx_a_, "127.0.0.1", listener_->port(), "node-b");
  ASSERT_TRUE(client.ok()) << client.error().ToString();
  auto s = server.get();
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  // No message: DEADLINE_EXCEEDED and the link stays open.
  auto none = (*s)->Receive(50ms);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code(), ErrorCode::kDeadlineExceeded);
  EXPECT_TRUE((*s)->is_open());
  // A message at the bound passes; one above is refused by the sender.
  Bytes big((*client)->max_message_size(), 0xab);
  ASSERT_TRUE((*client)->Send(big).ok());
  auto got = (*s)->Receive(5s);
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(got->size(), big.size());
  big.push_back(0);
  EXPECT_EQ((*client)->Send(big).error().code(), ErrorCode::kInvalidArgument);
  // The exporter agrees on both ends and depends on the context.
  auto e1 = (*client)->ExportKeyingMaterial(kExporterLabel, Bytes(16, 1), 48);
  auto e2 = (*s)->ExportKeyingMaterial(kExporterLabel, Bytes(16, 1), 48);
  auto e3 = (*s)->ExportKeyingMaterial(kExporterLabel, Bytes(16, 2), 48);
  ASSERT_TRUE(e1.ok() && e2.ok() && e3.ok());
  EXPECT_EQ(Hex(*e1), Hex(*e2));
  EXPECT_NE(Hex(*e2), Hex(*e3));
}

TEST_F(PeerSessionTest, OneThreadSendsWhileAnotherReceivesOnTheSameLink) {
  auto server = ServeOneLink(ctx_b_);
  auto client = PeerLink::Connect(ctx_a_, "127.0.0.1", listener_->port(), "node-b");
  ASSERT_TRUE(client.ok()) << client.error().ToString();
  auto s = server.get();
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  PeerLink& a = **client;
  PeerLink& b = **s;
  constexpr int kCount = 200;
  // b echoes; on a, one thread sends while another receives the echoes.
  auto echo = std::async(std::launch::async, [&]() -> Status {
    for (int i = 0; i < kCount; ++i) {
      QSAPI_ASSIGN_OR_RETURN(Bytes m, b.Receive(10s));
      QSAPI_RETURN_IF_ERROR(b.Send(m));
    }
    return OkStatus();
  });
  auto sender = std::async(std::launch::async, [&]() -> Status {
    for (int i = 0; i < kCount; ++i) {
      QSAPI_RETURN_IF_ERROR(a.Send(Bytes(static_cast<std::size_t>(100 + i * 50), static_cast<std::uint8_t>(i))));
    }
    return OkStatus();
  });
  for (int i = 0; i < kCount; ++i) {
    auto m = a.Receive(10s);
    ASSERT_TRUE(m.ok()) << i << ": " << m.error().ToString();
    ASSERT_EQ(m->size(), static_cast<std::size_t>(100 + i * 50));
    ASSERT_EQ(m->front(), static_cast<std::uint8_t>(i));
  }
  EXPECT_TRUE(sender.get().ok());
  EXPECT_TRUE(echo.get().ok());
}

TEST_F(PeerSessionTest, AnOversizedFrameHeaderClosesTheReceivingLink) {
  PeerLinkOptions small = LinkOptions(pki_, "node-b");
  small.max_message_size = 1024;
  auto ctx_small = MakeContext(small);
  auto server = ServeOneLink(ctx_small);
  auto client = PeerLink::Connect(ctx_a_, "127.0.0.1", listener_->port(), "node-b");
  ASSERT_TRUE(client.ok());
  auto s = server.get();
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE((*client)->Send(Bytes(2048, 1)).ok());
  auto r = (*s)->Receive(5s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kResourceExhausted);
  EXPECT_FALSE((*s)->is_open());
}

TEST(PeerSessionCnsa2Test, Cnsa2UsesMlDsa87AndSecP384r1MlKem1024Only) {
  TempDir dir;
  auto pki = MakePeerPki(dir, /*cnsa2=*/true);
  auto listener = PeerListener::Listen("127.0.0.1", 0);
  ASSERT_TRUE(listener.ok());
  auto ctx_a = MakeContext(LinkOptions(pki, "node-a", PeerProfile::kCnsa2));
  auto ctx_b = MakeContext(LinkOptions(pki, "node-b", PeerProfile::kCnsa2));
  ASSERT_NE(ctx_a, nullptr);
  // ML-DSA-87 certificates are not the default profile's.
  EXPECT_FALSE(PeerLinkContext::Create(LinkOptions(pki, "node-a", PeerProfile::kDefault)).ok());
  auto server = std::async(std::launch::async, [&]() -> Result<std::unique_ptr<PeerLink>> {
    QSAPI_ASSIGN_OR_RETURN(auto conn, (*listener)->AcceptConnection(15s));
    return PeerLink::Accept(ctx_b, std::move(conn));
  });
  auto client = PeerLink::Connect(ctx_a, "127.0.0.1", (*listener)->port(), "node-b");
  ASSERT_TRUE(client.ok()) << client.error().ToString();
  auto s = server.get();
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  EXPECT_EQ((*client)->info().tls_group, "SecP384r1MLKEM1024");
  EXPECT_EQ((*client)->info().peer_key_algorithm, "ML-DSA-87");
  EXPECT_EQ((*client)->info().tls_cipher, "TLS_AES_256_GCM_SHA384");
  // A client offering only X25519MLKEM768 (hybrid, but not CNSA 2.0) is refused too.
  auto server2 = std::async(std::launch::async, [&]() -> Result<std::unique_ptr<PeerLink>> {
    QSAPI_ASSIGN_OR_RETURN(auto conn, (*listener)->AcceptConnection(15s));
    return PeerLink::Accept(ctx_b, std::move(conn));
  });
  EXPECT_FALSE(RawClient((*listener)->port(), "X25519MLKEM768", pki.Cert("node-a"), pki.Key("node-a"), pki.ca));
  auto s2 = server2.get();
  ASSERT_FALSE(s2.ok());
  EXPECT_TRUE(Contains(s2.error().message(), "SecP384r1MLKEM1024")) << s2.error().ToString();
}

TEST(PeerEndpointTest, ConfigurationErrorsNameTheProblem) {
  TempDir dir;
  auto pki = MakePeerPki(dir);
  auto ctx = MakeContext(LinkOptions(pki, "node-a"));
  PeerConfig p;
  p.name = "node-b";
  p.policy.qkd = SourcePolicy::kRequire;
  auto e = PeerEndpoint::Create({.link = ctx, .entropy = nullptr}, {p});
  ASSERT_FALSE(e.ok());
  EXPECT_TRUE(Contains(e.error().message(), "no QKD key supply")) << e.error().ToString();
  p.policy = {.qkd = SourcePolicy::kOff, .qrng = SourcePolicy::kRequire};
  e = PeerEndpoint::Create({.link = ctx, .entropy = nullptr}, {p});
  ASSERT_FALSE(e.ok());
  EXPECT_TRUE(Contains(e.error().message(), "no entropy pool")) << e.error().ToString();
  p.policy.qrng = SourcePolicy::kOff;
  e = PeerEndpoint::Create({.link = ctx, .entropy = nullptr}, {p, p});
  ASSERT_FALSE(e.ok());
  EXPECT_TRUE(Contains(e.error().message(), "two peers")) << e.error().ToString();
  EXPECT_FALSE(PeerLinkContext::Create([&] {
                 auto o = LinkOptions(pki, "node-a");
                 o.ca_file.clear();
                 return o;
               }())
                   .ok());
  EXPECT_EQ(*ParseSourcePolicy("prefer"), SourcePolicy::kPrefer);
  EXPECT_FALSE(ParseSourcePolicy("sometimes").ok());
  EXPECT_EQ(*ParsePeerProfile("cnsa2"), PeerProfile::kCnsa2);
}

TEST(KeyIdReplayGuardTest, RefusesRepeatsCaseInsensitivelyAndForgetsTheOldest) {
  KeyIdReplayGuard g(2);
  const std::vector<std::string> a{"aaaaaaaa-0000-0000-0000-000000000001"};
  const std::vector<std::string> b{"aaaaaaaa-0000-0000-0000-000000000002"};
  const std::vector<std::string> c{"aaaaaaaa-0000-0000-0000-000000000003"};
  ASSERT_TRUE(g.CheckAndRecord(a).ok());
  const std::vector<std::string> a_upper{"AAAAAAAA-0000-0000-0000-000000000001"};
  EXPECT_EQ(g.CheckAndRecord(a_upper).error().code(), ErrorCode::kPermissionDenied);
  // A batch with one replayed id records none of the others.
  const std::vector<std::string> mixed{c[0], a[0]};
  EXPECT_FALSE(g.CheckAndRecord(mixed).ok());
  EXPECT_EQ(g.size(), 1U);
  ASSERT_TRUE(g.CheckAndRecord(b).ok());
  ASSERT_TRUE(g.CheckAndRecord(c).ok());  // evicts a
  EXPECT_TRUE(g.CheckAndRecord(a).ok());
  EXPECT_FALSE(g.CheckAndRecord(c).ok());
}

}  // namespace
}  // namespace qsapi::session
