// qsapi_session_establish_bench: peer-session establishments per second over loopback, one after
// another, as `openssl s_time -new` counts TLS handshakes (bench/session_establish_bench.sh runs
// both in the same run and prints the ratio; docs/BENCHMARKS.md, "Session establishment").
//
//   qsapi_session_establish_bench pki DIR               write the PKI (ML-DSA-65 CA, node-a, node-b)
//   qsapi_session_establish_bench establish DIR SECONDS full establishments (TLS + Init/Accept/Confirm)
//   qsapi_session_establish_bench link DIR SECONDS      peer links only (TLS handshake + peer checks)
//
// Every establishment is a full TLS 1.3 handshake with X25519MLKEM768 and mutual ML-DSA-65
// certificates (no resumption), the four establishment messages, the exporter and the key
// schedule; qkd and qrng are off (this measures the protocol, not a KME).
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>

#include "qsapi/pki/pki.h"
#include "qsapi/session/peer_link.h"
#include "qsapi/session/peer_session.h"

namespace {

using namespace qsapi;  // NOLINT(google-build-using-namespace)
using Clock = std::chrono::steady_clock;

int Fail(const std::string& what) {
  std::cerr << what << "\n";
  return 1;
}

bool Issue(const pki::Certificate& ca, const pki::PrivateKey& ca_key, const std::string& dir, const std::string& cn) {
  auto key = pki::PrivateKey::Generate(pki::KeyAlgorithm::kMlDsa65);
  if (!key.ok()) return false;
  pki::CertificateProfile p;
  p.common_name = cn;
  p.dns_names = {cn, "localhost"};
  p.ip_addresses = {"127.0.0.1"};
  p.server_auth = true;
  p.client_auth = true;
  auto cert = pki::IssueCertificate(ca, ca_key, *key, p);
  return cert.ok() && pki::WriteCertificatePem(dir + "/" + cn + ".pem", {*cert}).ok() &&
         pki::WritePrivateKeyPem(dir + "/" + cn + "-key.pem", *key, true).ok();
}

int WritePki(const std::string& dir) {
  auto ca_key = pki::PrivateKey::Generate(pki::KeyAlgorithm::kMlDsa65);
  if (!ca_key.ok()) return Fail(ca_key.error().ToString());
  auto ca = pki::CreateSelfSignedCa(*ca_key, "deployment CA");
  if (!ca.ok() || !pki::WriteCertificatePem(dir + "/ca.pem", {*ca}).ok() || !Issue(*ca, *ca_key, dir, "node-a") ||
      !Issue(*ca, *ca_key, dir, "node-b")) {
    return Fail("cannot write the PKI into " + dir);
  }
  return 0;
}

Result<std::shared_ptr<const session::PeerLinkContext>> Context(const std::string& dir, const std::string& name) {
  session::PeerLinkOptions o;
  o.certificate_file = dir + "/" + name + ".pem";
  o.private_key_file = dir + "/" + name + "-key.pem";
  o.ca_file = dir + "/ca.pem";
  return session::PeerLinkContext::Create(o);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return Fail("usage: qsapi_session_establish_bench pki|establish|link DIR [SECONDS]");
  const std::string mode = argv[1];
  const std::string dir = argv[2];
  if (mode == "pki") return WritePki(dir);
  const int seconds = argc > 3 ? std::atoi(argv[3]) : 10;
  const bool full = mode == "establish";
  auto ctx_a = Context(dir, "node-a");
  auto ctx_b = Context(dir, "node-b");
  auto listener = session::PeerListener::Listen("127.0.0.1", 0);
  if (!ctx_a.ok() || !ctx_b.ok() || !listener.ok()) return Fail("cannot set up the endpoints");
  session::PeerConfig to_b;
  to_b.name = "node-b";
  to_b.host = "127.0.0.1";
  to_b.port = (*listener)->port();
  to_b.policy = {.qkd = qsapi::SourcePolicy::kOff, .qrng = qsapi::SourcePolicy::kOff};
  session::PeerConfig to_a = to_b;
  to_a.name = "node-a";
  auto a = session::PeerEndpoint::Create({.link = *ctx_a, .entropy = nullptr}, {to_b});
  auto b = session::PeerEndpoint::Create({.link = *ctx_b, .entropy = nullptr}, {to_a});
  if (!a.ok() || !b.ok()) return Fail("cannot create the endpoints");

  std::atomic<std::uint64_t> responder_failures{0};
  std::thread responder([&] {
    for (;;) {
      auto conn = (*listener)->AcceptConnection(std::chrono::seconds(5));
      if (!conn.ok()) {
        if (conn.error().code() == ErrorCode::kUnavailable) return;
        continue;
      }
      auto link = session::PeerLink::Accept(*ctx_b, std::move(conn).value());
      if (!link.ok()) {
        ++responder_failures;
        continue;
      }
      if (full && !(*b)->Respond(std::move(link).value()).ok()) ++responder_failures;
    }
  });

  auto cpu_seconds = [] {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
  };
  const double cpu_start = cpu_seconds();
  std::uint64_t done = 0;
  std::uint64_t failures = 0;
  const auto start = Clock::now();
  const auto end = start + std::chrono::seconds(seconds);
  while (Clock::now() < end) {
    if (full) {
      auto s = (*a)->Initiate("node-b");
      s.ok() ? ++done : ++failures;
    } else {
      auto l = session::PeerLink::Connect(*ctx_a, "127.0.0.1", (*listener)->port(), "node-b");
      l.ok() ? ++done : ++failures;
    }
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  (*listener)->Close();
  responder.join();
  const double cpu = cpu_seconds() - cpu_start;  // both ends: initiator and responder threads
  std::cout << mode << ": " << done << " in " << elapsed << " s = " << static_cast<double>(done) / elapsed
            << " per second; " << static_cast<double>(done) / cpu << " per CPU second (failures: " << failures
            << " initiator, " << responder_failures.load() << " responder)\n";
  return failures == 0 && responder_failures.load() == 0 ? 0 : 1;
}
