// qsapi_peer_listen: a listening peer-link endpoint for tests that drive it with other TLS clients
// (openssl s_client). It writes a fresh deployment PKI into DIR (ca.pem; node-a.pem / node-b.pem
// and their keys, ML-DSA-65; ecdsa-node.pem, ECDSA P-256 from the same CA), listens on
// 127.0.0.1:0 as node-b, writes the port to DIR/port, and for each of COUNT connections runs the
// TLS handshake and the peer checks and prints one line: "accepted: <group> <peer>" or
// "refused: <error>". Test-only; not installed.
//   qsapi_peer_listen DIR COUNT
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>

#include "qsapi/pki/pki.h"
#include "qsapi/session/peer_link.h"

namespace {

using namespace qsapi;  // NOLINT(google-build-using-namespace)

bool Issue(const pki::Certificate& ca, const pki::PrivateKey& ca_key, pki::KeyAlgorithm alg, const std::string& dir,
           const std::string& cn) {
  auto key = pki::PrivateKey::Generate(alg);
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

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: qsapi_peer_listen DIR COUNT\n";
    return 2;
  }
  const std::string dir = argv[1];
  const int count = std::atoi(argv[2]);
  auto ca_key = pki::PrivateKey::Generate(pki::KeyAlgorithm::kMlDsa65);
  auto ca = ca_key.ok() ? pki::CreateSelfSignedCa(*ca_key, "deployment CA") : Result<pki::Certificate>(ca_key.error());
  if (!ca.ok() || !pki::WriteCertificatePem(dir + "/ca.pem", {*ca}).ok() ||
      !Issue(*ca, *ca_key, pki::KeyAlgorithm::kMlDsa65, dir, "node-a") ||
      !Issue(*ca, *ca_key, pki::KeyAlgorithm::kMlDsa65, dir, "node-b") ||
      !Issue(*ca, *ca_key, pki::KeyAlgorithm::kEcdsaP256, dir, "ecdsa-node")) {
    std::cerr << "cannot write the PKI into " << dir << "\n";
    return 1;
  }
  session::PeerLinkOptions o;
  o.certificate_file = dir + "/node-b.pem";
  o.private_key_file = dir + "/node-b-key.pem";
  o.ca_file = dir + "/ca.pem";
  auto ctx = session::PeerLinkContext::Create(o);
  auto listener = session::PeerListener::Listen("127.0.0.1", 0);
  if (!ctx.ok() || !listener.ok()) {
    std::cerr << (ctx.ok() ? listener.error().ToString() : ctx.error().ToString()) << "\n";
    return 1;
  }
  {
    std::ofstream port_file(dir + "/port.tmp");
    port_file << (*listener)->port() << "\n";
  }
  std::rename((dir + "/port.tmp").c_str(), (dir + "/port").c_str());
  for (int i = 0; i < count; ++i) {
    auto conn = (*listener)->AcceptConnection(std::chrono::seconds(30));
    if (!conn.ok()) {
      std::cout << "error: " << conn.error().ToString() << std::endl;
      return 1;
    }
    auto link = session::PeerLink::Accept(*ctx, std::move(conn).value());
    if (link.ok()) {
      std::cout << "accepted: " << (*link)->info().tls_group << " " << (*link)->info().peer_name << std::endl;
    } else {
      std::cout << "refused: " << link.error().ToString() << std::endl;
    }
  }
  return 0;
}
