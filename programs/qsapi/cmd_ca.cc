// qsapi ca init|issue|show: the deployment CA (service/server/deployment_ca.h). Its private key lives
// only wrapped by the local keystore, so these commands open the keystore like `qsapi key`.
//
//   qsapi ca init [--profile default|cnsa2]
//   qsapi ca issue site-b --peer --out site-b      -> site-b.pem (leaf + CA), site-b.key (0600)
//   qsapi ca issue billing --client --out billing  -> a client certificate for mutual TLS
//   qsapi ca show
#include <ctime>

#include "commands.h"
#include "common/internal/text.h"
#include "server/config.h"
#include "server/deployment_ca.h"

namespace qsapi::cli {
namespace {

std::string Date(std::chrono::system_clock::time_point t) { return qsapi::internal::FormatUtc(t); }

struct IssueFlags {
  std::string name, out, algorithm, profile = "default";
  std::vector<std::string> dns, ips;
  bool client = false, server = false, peer = false;
  int days = 365;
};

// Where the CA lives for these flags: the data directory (qsapid's configuration names it with
// --config), and whether the CA is a cluster's (a PostgreSQL store: one record that every node
// copies into its data directory, DeploymentCa::OpenShared).
struct CaPlace {
  std::string dir;
  bool shared = false;
};
Result<CaPlace> CaPlaceOf(const StoreFlags& f) {
  if (f.config.empty()) return CaPlace{.dir = f.data_dir.empty() ? DefaultDataDir() : f.data_dir};
  QSAPI_ASSIGN_OR_RETURN(server::Config c, server::LoadConfig(f.config));
  return CaPlace{.dir = c.data_dir.string(), .shared = c.store.backend == keystore::StoreBackend::kPostgresql};
}

}  // namespace

void RegisterCaCommands(CLI::App& app) {
  auto store = std::make_shared<StoreFlags>();
  CLI::App* ca = app.add_subcommand("ca", "The deployment CA: create it, issue peer, server and client certificates");
  ca->require_subcommand(1);

  auto profile = std::make_shared<std::string>("default");
  CLI::App* init = ca->add_subcommand("init", "Create the deployment CA (qsapid's first start does this too)");
  init->add_option("--profile", *profile, "default (ML-DSA-65) or cnsa2 (ML-DSA-87)")->capture_default_str();
  AddStoreFlags(init, *store);
  init->callback([store, profile] {
    auto p = server::TlsProfileNamed(*profile);
    if (!p.ok()) return Fail("ca init", p.error());
    auto ks = OpenStore(*store);
    if (!ks.ok()) return Fail("ca init", ks.error());
    auto place = CaPlaceOf(*store);
    if (!place.ok()) return Fail("ca init", place.error());
    const std::string& dir = place->dir;
    bool created = false;
    auto c = place->shared ? server::DeploymentCa::OpenShared(**ks, dir, *p, &created)
                           : server::DeploymentCa::OpenOrCreate(**ks, dir, *p, &created);
    if (!c.ok()) return Fail("ca init", c.error());
    std::printf("%s %s (%s, valid until %s)\n", created ? "created the deployment CA" : "the deployment CA exists:",
                server::DeploymentCa::CertificatePath(dir).c_str(),
                std::string(pki::KeyAlgorithmName(c->algorithm())).c_str(), Date(c->certificate().NotAfter()).c_str());
  });

  auto f = std::make_shared<IssueFlags>();
  CLI::App* issue = ca->add_subcommand("issue", "Issue a certificate and a fresh key pair for NAME (the CN)");
  issue->add_option("name", f->name, "The certificate's CN: a peer name, a host name or a client name")->required();
  issue->add_option("--out", f->out, "Output prefix: writes PREFIX.pem (leaf then CA) and PREFIX.key (mode 0600)")
      ->required();
  issue->add_flag("--peer", f->peer, "A peer-link certificate (client and server authentication)");
  issue->add_flag("--client", f->client, "A client certificate (mutual TLS to qsapid)");
  issue->add_flag("--server", f->server, "A server certificate");
  issue->add_option("--dns", f->dns, "subjectAltName DNS names (repeatable; the CN is added when it is a host name)");
  issue->add_option("--ip", f->ips, "subjectAltName IP addresses (repeatable)");
  issue->add_option("--algorithm", f->algorithm, "Key algorithm: mldsa65, mldsa87 (default: the CA's)");
  issue->add_option("--days", f->days, "Validity in days")->capture_default_str()->check(CLI::Range(1, 3650));
  AddStoreFlags(issue, *store);
  issue->callback([store, f] {
    if (!f->peer && !f->client && !f->server)
      return Fail("ca issue", "say what the certificate is for: --peer, --client or --server");
    auto ks = OpenStore(*store);
    if (!ks.ok()) return Fail("ca issue", ks.error());
    auto place = CaPlaceOf(*store);
    if (!place.ok()) return Fail("ca issue", place.error());
    // A cluster's CA is the database's record (copied here first); one node's is its files.
    auto c = place->shared ? server::DeploymentCa::OpenSharedExisting(**ks, place->dir)
                           : server::DeploymentCa::Open(**ks, place->dir);
    if (!c.ok()) return Fail("ca issue", c.error());
    pki::KeyAlgorithm alg = c->algorithm();
    if (!f->algorithm.empty()) {
      auto a = pki::ParseKeyAlgorithm(f->algorithm);
      if (!a.ok()) return Fail("ca issue", a.error());
      if (*a == pki::KeyAlgorithm::kEcdsaP256) {
        return Fail("ca issue", "the deployment CA issues ML-DSA certificates only (mldsa44, mldsa65, mldsa87)");
      }
      alg = *a;
    }
    auto key = pki::PrivateKey::Generate(alg);
    if (!key.ok()) return Fail("ca issue", key.error());
    pki::CertificateProfile p;
    p.common_name = f->name;
    p.dns_names = f->dns;
    p.ip_addresses = f->ips;
    if ((f->peer || f->server) && f->dns.empty() && f->ips.empty()) p.dns_names.push_back(f->name);
    p.client_auth = f->peer || f->client;
    p.server_auth = f->peer || f->server;
    p.validity = std::chrono::hours(24) * f->days;
    auto cert = c->Issue(*key, p);
    if (!cert.ok()) return Fail("ca issue", cert.error());
    const std::string key_path = f->out + ".key";
    const std::string cert_path = f->out + ".pem";
    if (Status s = pki::WritePrivateKeyPem(key_path, *key); !s.ok()) return Fail("ca issue", s.error());
    if (Status s = pki::WriteCertificatePem(cert_path, {*cert, c->certificate()}); !s.ok()) {
      return Fail("ca issue", s.error());
    }
    std::printf("issued \"%s\" (%s%s%s, %s, valid until %s)\n  certificate: %s\n  private key: %s (mode 0600)\n",
                f->name.c_str(), f->peer ? "peer" : "", f->client ? " client" : "", f->server ? " server" : "",
                std::string(pki::KeyAlgorithmName(alg)).c_str(), Date(cert->NotAfter()).c_str(), cert_path.c_str(),
                key_path.c_str());
  });

  CLI::App* show = ca->add_subcommand("show", "Show the deployment CA certificate (PEM) and its validity");
  AddStoreFlags(show, *store);
  show->callback([store] {
    auto place = CaPlaceOf(*store);
    if (!place.ok()) return Fail("ca show", place.error());
    const std::string& dir = place->dir;
    auto cert = pki::ReadCertificatePem(server::DeploymentCa::CertificatePath(dir));
    if (!cert.ok()) return Fail("ca show", cert.error());
    auto pem = cert->ToPem();
    if (!pem.ok()) return Fail("ca show", pem.error());
    auto cn = cert->CommonName();
    std::printf("subject CN: %s\nvalid until: %s\n%s", cn.ok() ? cn->c_str() : "-", Date(cert->NotAfter()).c_str(),
                pem->c_str());
  });
}

}  // namespace qsapi::cli
