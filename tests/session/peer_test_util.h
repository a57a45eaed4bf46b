// Helpers of the peer-link and establishment tests: a deployment PKI for two nodes (and the
// certificates tests must see refused), written into a temporary directory by qsapi::pki.
#ifndef QSAPI_TESTS_SESSION_PEER_TEST_UTIL_H_
#define QSAPI_TESTS_SESSION_PEER_TEST_UTIL_H_

#include <string>

#include <gtest/gtest.h>

#include "net/test_tls.h"
#include "qsapi/pki/pki.h"

namespace qsapi::testing {

// PeerPki: a deployment CA (ca.pem) and, for each name, <name>.pem / <name>-key.pem.
//   node-a, node-b        ML-DSA-65 (or ML-DSA-87 for cnsa2) from the deployment CA
//   ecdsa-node            ECDSA P-256 from the deployment CA (a classical certificate)
//   rogue-a               CN "node-a", ML-DSA-65, from another CA (rogue-ca.pem)
//   client-a              CN "node-a" from the deployment CA, client authentication only (an API
//                         client certificate of that name: not a peer)
struct PeerPki {
  std::string dir;
  std::string ca, rogue_ca;
  [[nodiscard]] std::string Cert(const std::string& name) const { return dir + "/" + name + ".pem"; }
  [[nodiscard]] std::string Key(const std::string& name) const { return dir + "/" + name + "-key.pem"; }
};

inline void IssuePeer(const pki::Certificate& ca, const pki::PrivateKey& ca_key, pki::KeyAlgorithm alg,
                      const std::string& cn, const std::string& cert_path, const std::string& key_path,
                      bool server_auth = true) {
  auto key = pki::PrivateKey::Generate(alg);
  ASSERT_TRUE(key.ok()) << key.error().ToString();
  pki::CertificateProfile p;
  p.common_name = cn;
  p.dns_names = {cn, "localhost"};
  p.ip_addresses = {"127.0.0.1"};
  p.server_auth = server_auth;
  p.client_auth = true;
  auto cert = pki::IssueCertificate(ca, ca_key, *key, p);
  ASSERT_TRUE(cert.ok()) << cert.error().ToString();
  ASSERT_TRUE(pki::WriteCertificatePem(cert_path, {*cert}).ok());
  ASSERT_TRUE(pki::WritePrivateKeyPem(key_path, *key, true).ok());
}

inline PeerPki MakePeerPki(const TempDir& dir, bool cnsa2 = false) {
  PeerPki t;
  t.dir = dir.path().string();
  t.ca = dir.File("ca.pem");
  t.rogue_ca = dir.File("rogue-ca.pem");
  const auto alg = cnsa2 ? pki::KeyAlgorithm::kMlDsa87 : pki::KeyAlgorithm::kMlDsa65;
  auto ca_key = pki::PrivateKey::Generate(alg);
  EXPECT_TRUE(ca_key.ok());
  auto ca = pki::CreateSelfSignedCa(*ca_key, "deployment CA");
  EXPECT_TRUE(ca.ok());
  EXPECT_TRUE(pki::WriteCertificatePem(t.ca, {*ca}).ok());
  IssuePeer(*ca, *ca_key, alg, "node-a", t.Cert("node-a"), t.Key("node-a"));
  IssuePeer(*ca, *ca_key, alg, "node-b", t.Cert("node-b"), t.Key("node-b"));
  IssuePeer(*ca, *ca_key, pki::KeyAlgorithm::kEcdsaP256, "ecdsa-node", t.Cert("ecdsa-node"), t.Key("ecdsa-node"));
  IssuePeer(*ca, *ca_key, alg, "node-a", t.Cert("client-a"), t.Key("client-a"), /*server_auth=*/false);
  auto rogue_key = pki::PrivateKey::Generate(alg);
  auto rogue = pki::CreateSelfSignedCa(*rogue_key, "another CA");
  EXPECT_TRUE(pki::WriteCertificatePem(t.rogue_ca, {*rogue}).ok());
  IssuePeer(*rogue, *rogue_key, alg, "node-a", t.Cert("rogue-a"), t.Key("rogue-a"));
  return t;
}

}  // namespace qsapi::testing

#endif  // QSAPI_TESTS_SESSION_PEER_TEST_UTIL_H_
