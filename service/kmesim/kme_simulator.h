// kmesim/kme_simulator.h: a pair of ETSI GS QKD 014 key management entities (KME A and KME B) in
// one process, for tests, demos and benchmarks. Target `qsapi_kmesim` (links qsapi_net; not part
// of libqsapi, which knows no HTTP server).
//
// Start() writes a fresh PKI into options.dir (PEM; private keys mode 0600):
//   ca.pem                      the CA that issued every certificate below (trust anchor for all)
//   kme-a.pem, kme-a-key.pem    KME A's server certificate (CN = kme_a_id; SANs localhost, 127.0.0.1, ::1)
//   kme-b.pem, kme-b-key.pem    KME B's
//   sae-a.pem, sae-a-key.pem    SAE A's client certificate (CN = sae_a_id): the SAE behind KME A
//   sae-b.pem, sae-b-key.pem    SAE B's
// and serves each KME over HTTPS with mandatory client certificates; the SAE_ID of a caller is its
// certificate's CN. Any ETSI 014 client can use these files.
//
// Behaviour (ETSI GS QKD 014 V1.1.1):
//  - A QKD link fills a shared pool at keys_per_second, up to max_key_count (it starts with
//    initial_key_count). enc_keys at KME X by its own SAE, naming the other SAE as slave, takes keys
//    from the pool and reserves them for that slave at the other KME; dec_keys there by the slave,
//    naming the master, delivers each reserved key exactly once. Any other caller gets 401.
//  - status reports the spec's Status; errors carry the spec's {"message": ...} body.
//  - An empty pool is answered as real KMEs do: 400 {"message": "... try again later"}.
// Fault injection (SetFaults, at any time): outage (503 on every call), latency (every answer
// delayed), exhausted (the pool reports empty), corrupt (KME B hands out a different key than A,
// which key confirmation in the session layer must catch).
#ifndef QSAPI_SRC_QKD_KME_SIMULATOR_H_
#define QSAPI_SRC_QKD_KME_SIMULATOR_H_

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "qsapi/pki/pki.h"
#include "qsapi/pki/tls_options.h"
#include "qsapi/result.h"

namespace qsapi::qkd {

struct KmeFaults {
  bool outage = false;
  std::chrono::milliseconds latency{0};
  bool exhausted = false;
  bool corrupt = false;
};

struct KmeSimulatorOptions {
  std::filesystem::path dir;  // created if missing; the PEM files are (re)written
  std::string bind_address = "127.0.0.1";
  std::uint16_t port_a = 0;  // 0: ephemeral
  std::uint16_t port_b = 0;
  pki::KeyAlgorithm cert_algorithm = pki::KeyAlgorithm::kEcdsaP256;
  std::string kme_a_id = "KME-A";
  std::string kme_b_id = "KME-B";
  std::string sae_a_id = "SAE-A";
  std::string sae_b_id = "SAE-B";
  std::uint32_t key_size = 256;  // default key size, bits
  std::uint32_t min_key_size = 64;
  std::uint32_t max_key_size = 8192;
  std::uint32_t max_key_per_request = 128;
  std::uint64_t max_key_count = 1000;
  std::uint64_t initial_key_count = 1000;
  double keys_per_second = 100;
  // Keys a master reserved and its slave never fetched are discarded after this long (real KMEs
  // do the same); it also bounds the simulator's memory.
  std::chrono::seconds reservation_ttl{600};
  // TLS of the KMEs: 1.2 and 1.3; hybrid PQ groups first, classical ones for classical clients.
  pki::TlsVersion min_tls_version = pki::TlsVersion::kTls12;
  std::string groups = std::string(pki::kKmeClientGroups);
  KmeFaults faults;
  // reuse_pki: when `dir` holds the files of an earlier run (ca-key.pem included), use them instead
  // of issuing new ones.
  bool reuse_pki = false;
};

// KmeSimulatorFiles names the files Start() wrote.
struct KmeSimulatorFiles {
  std::filesystem::path ca;
  std::filesystem::path kme_a_cert, kme_a_key, kme_b_cert, kme_b_key;
  std::filesystem::path sae_a_cert, sae_a_key, sae_b_cert, sae_b_key;
};

class KmeSimulator {
 public:
  static Result<std::unique_ptr<KmeSimulator>> Start(const KmeSimulatorOptions& options);
  virtual ~KmeSimulator() = default;

  [[nodiscard]] virtual std::string url_a() const = 0;  // "https://127.0.0.1:PORT"
  [[nodiscard]] virtual std::string url_b() const = 0;
  [[nodiscard]] virtual const KmeSimulatorFiles& files() const = 0;
  [[nodiscard]] virtual const KmeSimulatorOptions& options() const = 0;

  virtual void SetFaults(const KmeFaults& faults) = 0;
  // stored_key_count: keys in the pool now (after refilling for the time elapsed).
  [[nodiscard]] virtual std::uint64_t stored_key_count() = 0;
  // reserved_key_count: keys reserved by a master and not yet fetched by the slave.
  [[nodiscard]] virtual std::uint64_t reserved_key_count() = 0;

  // IssueClientCertificate issues another client certificate from the simulator's CA (for tests of
  // SAEs the KMEs must refuse) and writes it to `cert` / `key`.
  virtual Status IssueClientCertificate(const std::string& common_name, const std::filesystem::path& cert,
                                        const std::filesystem::path& key) = 0;

  // Stop drains requests in flight and stops both KMEs.
  virtual void Stop() = 0;
};

}  // namespace qsapi::qkd

#endif  // QSAPI_SRC_QKD_KME_SIMULATOR_H_
