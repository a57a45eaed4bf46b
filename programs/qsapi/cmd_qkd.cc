// qsapi qkd status|get-key|get-key-with-id: an ETSI GS QKD 014 client for any KME (ours or a
// real one). Prints key IDs, never keys, unless --show-key is given for debugging (with a warning:
// a key on a terminal is a key outside secret memory, and a QKD key must be used once).
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "qsapi/qkd/etsi014.h"

namespace qsapi::cli {
namespace {

struct QkdFlags {
  std::string kme_url;
  std::string ca;
  std::string cert;
  std::string key;
  std::string kme_id;
  int timeout_ms = 5000;
  bool tls13_only = false;
};

void AddQkdFlags(CLI::App* cmd, QkdFlags& f) {
  cmd->add_option("--kme-url", f.kme_url, "The KME's base URL, https://host:port")->required();
  cmd->add_option("--ca", f.ca, "PEM trust anchors for the KME's certificate")->required();
  cmd->add_option("--cert", f.cert, "This SAE's client certificate (PEM)")->required();
  cmd->add_option("--key", f.key, "This SAE's private key (PEM, mode 0600)")->required();
  cmd->add_option("--kme-id", f.kme_id, "Expected KME_ID (the KME certificate's CN)");
  cmd->add_option("--timeout-ms", f.timeout_ms, "Connect and request timeout")->capture_default_str();
  cmd->add_flag("--tls13-only", f.tls13_only, "Refuse TLS 1.2");
}

Result<std::unique_ptr<qkd::Etsi014Client>> MakeClient(const QkdFlags& f) {
  if (f.timeout_ms <= 0) return InvalidArgument("--timeout-ms must be positive");
  qkd::Etsi014ClientOptions o;
  o.kme_url = f.kme_url;
  o.ca_file = f.ca;
  o.certificate_file = f.cert;
  o.private_key_file = f.key;
  o.expected_kme_id = f.kme_id;
  o.allow_tls12 = !f.tls13_only;
  o.connect_timeout = std::chrono::milliseconds(f.timeout_ms);
  o.request_timeout = std::chrono::milliseconds(f.timeout_ms);
  o.total_timeout = std::chrono::milliseconds(3 * f.timeout_ms);
  return qkd::Etsi014Client::Create(o);
}

void PrintLink(const qkd::LinkInfo& l) {
  std::printf("link: %s %s group %s (%s), KME certificate CN \"%s\"\n", l.kme_url.c_str(), l.tls_version.c_str(),
              l.tls_group.c_str(), l.pq_hybrid ? "hybrid post-quantum" : "CLASSICAL", l.kme_common_name.c_str());
}

void PrintKeys(const std::vector<qkd::QkdKey>& keys, bool show) {
  if (show) {
    std::fprintf(stderr,
                 "qsapi qkd: warning: --show-key prints key material; a QKD key shown is no longer secret and "
                 "must not be used\n");
  }
  for (const auto& k : keys) {
    if (show) {
      std::printf("%s %zu bits %s\n", k.key_id.c_str(), k.key.size() * 8, Hex(k.key.view()).c_str());
    } else {
      std::printf("%s %zu bits\n", k.key_id.c_str(), k.key.size() * 8);
    }
  }
}

void Status(const QkdFlags& f, const std::string& slave) {
  auto client = MakeClient(f);
  if (!client.ok()) return Fail("qkd status", client.error());
  auto s = (*client)->GetStatus(slave);
  if (!s.ok()) return Fail("qkd status", s.error());
  std::printf("source_KME_ID: %s\ntarget_KME_ID: %s\nmaster_SAE_ID: %s\nslave_SAE_ID: %s\n", s->source_kme_id.c_str(),
              s->target_kme_id.c_str(), s->master_sae_id.c_str(), s->slave_sae_id.c_str());
  std::printf("key_size: %llu\nstored_key_count: %llu\nmax_key_count: %llu\nmax_key_per_request: %llu\n",
              static_cast<unsigned long long>(s->key_size), static_cast<unsigned long long>(s->stored_key_count),
              static_cast<unsigned long long>(s->max_key_count),
              static_cast<unsigned long long>(s->max_key_per_request));
  std::printf("max_key_size: %llu\nmin_key_size: %llu\nmax_SAE_ID_count: %llu\n",
              static_cast<unsigned long long>(s->max_key_size), static_cast<unsigned long long>(s->min_key_size),
              static_cast<unsigned long long>(s->max_sae_id_count));
  PrintLink((*client)->link());
}

void GetKey(const QkdFlags& f, const std::string& slave, std::uint32_t number, std::uint32_t size, bool use_get,
            bool show) {
  auto client = MakeClient(f);
  if (!client.ok()) return Fail("qkd get-key", client.error());
  qkd::KeyRequest r;
  r.number = number;
  r.size = size;
  r.use_get = use_get;
  auto keys = (*client)->GetKey(slave, r);
  if (!keys.ok()) return Fail("qkd get-key", keys.error());
  PrintKeys(*keys, show);
}

void GetKeyWithId(const QkdFlags& f, const std::string& master, const std::vector<std::string>& ids, std::uint32_t size,
                  bool use_get, bool show) {
  auto client = MakeClient(f);
  if (!client.ok()) return Fail("qkd get-key-with-id", client.error());
  auto keys = (*client)->GetKeyWithKeyIds(master, ids, size, use_get);
  if (!keys.ok()) return Fail("qkd get-key-with-id", keys.error());
  PrintKeys(*keys, show);
}

}  // namespace

void RegisterQkdCommands(CLI::App& app) {
  CLI::App* qkd = app.add_subcommand("qkd", "ETSI GS QKD 014 client: status and keys from a KME");
  qkd->require_subcommand(1);
  auto flags = std::make_shared<QkdFlags>();

  struct KeyFlags {
    std::string sae;
    std::uint32_t number = 1;
    std::uint32_t size = 0;
    std::vector<std::string> ids;
    bool use_get = false;
    bool show = false;
  };
  auto k = std::make_shared<KeyFlags>();

  CLI::App* status = qkd->add_subcommand("status", "Get status (master side): the KME's Status for a slave SAE");
  AddQkdFlags(status, *flags);
  status->add_option("--slave", k->sae, "The slave SAE_ID")->required();
  status->callback([flags, k] { Status(*flags, k->sae); });

  CLI::App* get = qkd->add_subcommand("get-key", "Get key (master side, enc_keys): prints the key_IDs");
  AddQkdFlags(get, *flags);
  get->add_option("--slave", k->sae, "The slave SAE_ID")->required();
  get->add_option("--number", k->number, "How many keys")->capture_default_str();
  get->add_option("--size", k->size, "Key size in bits (0: the KME's default)")->capture_default_str();
  get->add_flag("--get", k->use_get, "Use GET with query parameters instead of POST");
  get->add_flag("--show-key", k->show, "DEBUG ONLY: also print the keys in hex");
  get->callback([flags, k] { GetKey(*flags, k->sae, k->number, k->size, k->use_get, k->show); });

  CLI::App* with_id =
      qkd->add_subcommand("get-key-with-id", "Get key with key IDs (slave side, dec_keys): prints the key_IDs");
  AddQkdFlags(with_id, *flags);
  with_id->add_option("--master", k->sae, "The master SAE_ID")->required();
  with_id->add_option("--key-id", k->ids, "A key_ID (repeatable)")->required();
  with_id->add_option("--size", k->size, "Expected key size in bits (0: any)")->capture_default_str();
  with_id->add_flag("--get", k->use_get, "Use GET with ?key_ID= (one key_ID only)");
  with_id->add_flag("--show-key", k->show, "DEBUG ONLY: also print the keys in hex");
  with_id->callback([flags, k] { GetKeyWithId(*flags, k->sae, k->ids, k->size, k->use_get, k->show); });
}

}  // namespace qsapi::cli
