// qsapi_session_rotation_bench: what fresh QKD keys at rotation cost (docs/BENCHMARKS.md, "Fresh
// QKD keys at rotation"), next to the two alternatives measured in the same run:
//
//   ratchet     PeerChannel::Rotate on a session without fresh keys: one local ratchet step (what
//               each side does when no fresh keys are agreed)
//   fresh       PeerChannel::RotateWithFreshQkd: reserve a key at KME A (ETSI 014 enc_keys over
//               HTTPS), RekeyOffer over the peer link, fetch at KME B (dec_keys), bind, confirmation
//               envelope, RekeyDone, complete; one round trip on the link and one KME call per side
//   establish   a whole new session with QKD (the other way to get fresh QKD keys): TLS 1.3 with
//               X25519MLKEM768 and ML-DSA-65 both ways, Init/Accept/Confirm, one KME call per side
//   reestablish PeerEndpoint::Reestablish of the existing session in place: the same handshake and
//               exchange, then binding, confirmation envelope and RekeyDone (the session keeps its id)
//
//   qsapi_session_rotation_bench DIR SECONDS ROUNDS
//
// Everything runs in this process over loopback: both endpoints, both KMEs (the simulator, ECDSA
// P-256 KME certificates, hybrid TLS groups, keep-alive) and the peer link. Each round runs the
// three measurements one after another for SECONDS each; the medians of the rounds are printed
// with the ratios. Rates are per second of wall-clock time (the operations are sequential).
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "kmesim/kme_simulator.h"
#include "qsapi/pki/pki.h"
#include "qsapi/qkd/etsi014.h"
#include "qsapi/qkd/key_supply.h"
#include "qsapi/session/peer_channel.h"
#include "qsapi/session/peer_link.h"
#include "qsapi/session/peer_session.h"

namespace {

using namespace qsapi;  // NOLINT(google-build-using-namespace)
using Clock = std::chrono::steady_clock;

[[noreturn]] void Die(const std::string& what) {
  std::cerr << "qsapi_session_rotation_bench: " << what << "\n";
  std::exit(1);
}

template <typename T>
T Must(Result<T> r, const std::string& what) {
  if (!r.ok()) Die(what + ": " + r.error().ToString());
  return std::move(r).value();
}

void Must(const Status& s, const std::string& what) {
  if (!s.ok()) Die(what + ": " + s.error().ToString());
}

void Issue(const pki::Certificate& ca, const pki::PrivateKey& ca_key, const std::string& dir, const std::string& cn) {
  auto key = Must(pki::PrivateKey::Generate(pki::KeyAlgorithm::kMlDsa65), "key");
  pki::CertificateProfile p;
  p.common_name = cn;
  p.dns_names = {cn, "localhost"};
  p.ip_addresses = {"127.0.0.1"};
  p.server_auth = true;
  p.client_auth = true;
  auto cert = Must(pki::IssueCertificate(ca, ca_key, key, p), "certificate");
  Must(pki::WriteCertificatePem(dir + "/" + cn + ".pem", {cert}), "write certificate");
  Must(pki::WritePrivateKeyPem(dir + "/" + cn + "-key.pem", key, true), "write key");
}

std::shared_ptr<const session::PeerLinkContext> Context(const std::string& dir, const std::string& name) {
  session::PeerLinkOptions o;
  o.certificate_file = dir + "/" + name + ".pem";
  o.private_key_file = dir + "/" + name + "-key.pem";
  o.ca_file = dir + "/ca.pem";
  return Must(session::PeerLinkContext::Create(o), "link context " + name);
}

std::shared_ptr<qkd::Etsi014Client> Client(const qkd::KmeSimulator& sim, const std::string& url,
                                           const std::filesystem::path& cert, const std::filesystem::path& key) {
  qkd::Etsi014ClientOptions o;
  o.kme_url = url;
  o.ca_file = sim.files().ca.string();
  o.certificate_file = cert.string();
  o.private_key_file = key.string();
  return std::shared_ptr<qkd::Etsi014Client>(Must(qkd::Etsi014Client::Create(o), "ETSI 014 client"));
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Rate runs `op` for `seconds` and returns operations per second.
double Rate(int seconds, const std::function<void()>& op) {
  std::uint64_t n = 0;
  const auto start = Clock::now();
  const auto end = start + std::chrono::seconds(seconds);
  while (Clock::now() < end) {
    op();
    ++n;
  }
  return static_cast<double>(n) / std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) Die("usage: qsapi_session_rotation_bench DIR SECONDS ROUNDS");
  const std::string dir = argv[1];
  const int seconds = std::max(1, std::atoi(argv[2]));
  const int rounds = std::max(1, std::atoi(argv[3]));
  std::filesystem::create_directories(dir);

  auto ca_key = Must(pki::PrivateKey::Generate(pki::KeyAlgorithm::kMlDsa65), "CA key");
  auto ca = Must(pki::CreateSelfSignedCa(ca_key, "deployment CA"), "CA");
  Must(pki::WriteCertificatePem(dir + "/ca.pem", {ca}), "write CA");
  Issue(ca, ca_key, dir, "node-a");
  Issue(ca, ca_key, dir, "node-b");

  qkd::KmeSimulatorOptions so;
  so.dir = std::filesystem::path(dir) / "kme";
  so.max_key_count = 1'000'000'000;
  so.initial_key_count = 1'000'000'000;
  so.keys_per_second = 0;
  auto sim = Must(qkd::KmeSimulator::Start(so), "KME simulator");
  const auto& f = sim->files();
  auto kme_a = Client(*sim, sim->url_a(), f.sae_a_cert, f.sae_a_key);
  auto kme_b = Client(*sim, sim->url_b(), f.sae_b_cert, f.sae_b_key);

  auto ctx_a = Context(dir, "node-a");
  auto ctx_b = Context(dir, "node-b");
  auto listener = Must(session::PeerListener::Listen("127.0.0.1", 0), "listener");
  session::PeerConfig to_b;
  to_b.name = "node-b";
  to_b.host = "127.0.0.1";
  to_b.port = listener->port();
  to_b.policy = {.qkd = qsapi::SourcePolicy::kRequire, .qrng = qsapi::SourcePolicy::kOff};
  to_b.qkd_master = Must(qkd::MasterKeySupply::Create(kme_a, {.slave_sae_id = "SAE-B"}), "master supply");
  session::PeerConfig to_a;
  to_a.name = "node-a";
  to_a.policy = to_b.policy;
  to_a.qkd_slave = std::make_shared<qkd::SlaveKeySupply>(kme_b, "SAE-A", 256);
  auto a = Must(session::PeerEndpoint::Create({.link = ctx_a, .entropy = nullptr}, {to_b}), "endpoint a");
  auto b = Must(session::PeerEndpoint::Create({.link = ctx_b, .entropy = nullptr}, {to_a}), "endpoint b");

  // Establish one session (and keep answering establishments for the "establish" measurement).
  std::atomic<bool> serving{true};
  std::vector<session::PeerSession> responded;
  std::mutex responded_mu;
  std::atomic<session::PeerChannel*> responder_channel{nullptr};
  std::thread responder([&] {
    while (serving.load()) {
      auto s = b->AcceptAndRespond(*listener, std::chrono::milliseconds(500));
      if (!s.ok()) continue;
      if (s->reestablishes()) {
        if (session::PeerChannel* c = responder_channel.load()) Must(c->AcceptReestablishment(std::move(*s)), "accept");
        continue;
      }
      std::lock_guard lock(responded_mu);
      responded.push_back(std::move(s).value());
    }
  });
  auto initiate = [&] { return Must(a->Initiate("node-b"), "establishment"); };
  session::PeerSession si = initiate();
  session::PeerSession sr;
  for (;;) {
    std::lock_guard lock(responded_mu);
    if (!responded.empty()) {
      sr = std::move(responded.back());
      responded.clear();
      break;
    }
  }
  session::ChannelConfig config;
  config.rotation.max_messages = std::uint64_t{1} << 40;  // no policy rotations during the run
  config.rotation.max_age = std::chrono::hours(1);
  config.max_receive_epochs = 3;
  auto ci = Must(session::PeerChannel::Create(std::move(si), config), "initiator channel");
  auto cr = Must(session::PeerChannel::Create(std::move(sr), config), "responder channel");
  responder_channel.store(cr.get());
  // The ratchet baseline: a channel of the same kind whose session has no fresh-key supply.
  session::PeerSession plain = initiate();
  {
    std::lock_guard lock(responded_mu);
    responded.clear();
  }
  plain.TakeLink().reset();
  auto cp = Must(session::PeerChannel::Create(std::move(plain), config, session::Ordering::kWindow), "plain channel");

  std::vector<double> ratchet, fresh, establish, reestablish;
  for (int r = 0; r < rounds; ++r) {
    ratchet.push_back(Rate(seconds, [&] { Must(cp->Rotate(), "ratchet rotation"); }));
    fresh.push_back(Rate(seconds, [&] { Must(ci->RotateWithFreshQkd(), "fresh-key rotation"); }));
    establish.push_back(Rate(seconds, [&] {
      (void)initiate();
      std::lock_guard lock(responded_mu);
      responded.clear();
    }));
    reestablish.push_back(Rate(seconds, [&] { Must(a->Reestablish(*ci), "re-establishment"); }));
    std::cout << "round " << r + 1 << ": ratchet " << ratchet.back() << "/s, fresh " << fresh.back() << "/s, establish "
              << establish.back() << "/s, reestablish " << reestablish.back() << "/s\n";
  }
  const auto stats = ci->fresh_key_stats();
  const double fr = Median(fresh);
  std::cout << "medians of " << rounds << " rounds of " << seconds << " s:\n"
            << "  ratchet rotation (local)            " << Median(ratchet) << " per second\n"
            << "  fresh-key rotation (KMEs + link)    " << fr << " per second, " << 1000.0 / fr << " ms each\n"
            << "  new session with QKD                " << Median(establish) << " per second, "
            << 1000.0 / Median(establish) << " ms each\n"
            << "  re-establishment in place           " << Median(reestablish) << " per second, "
            << 1000.0 / Median(reestablish) << " ms each\n"
            << "  fresh / establish                   " << fr / Median(establish) << "\n"
            << "  reestablish / establish             " << Median(reestablish) / Median(establish) << "\n"
            << "agreements: " << stats.agreed << " agreed, " << stats.refused << " refused, " << stats.skipped
            << " skipped; responder " << cr->fresh_key_stats().agreed << " agreed\n";
  responder_channel.store(nullptr);
  serving.store(false);
  listener->Close();
  responder.join();
  ci->Close();
  cr->Close();
  return stats.refused + stats.skipped == 0 ? 0 : 1;
}
