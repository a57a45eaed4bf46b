// The KME simulator pair (qkd/kme_simulator.h) on the qsapi_net HTTPS server.
//
// One state for both KMEs, under one mutex: the pool (a count that refills with time, as a QKD
// link would produce key material) and the reservations (key_ID -> master, slave, key bytes).
// Key bytes are drawn when a master reserves them and live in SecretBytes until the slave fetches
// them; nothing is written anywhere. The HTTPS layer wipes every response body after sending it.
#include "kmesim/kme_simulator.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <system_error>
#include <utility>
#include <vector>

#include <openssl/rand.h>

#include "net/https_server.h"
#include "pki/internal/tls_context.h"
#include "qkd/internal/etsi014_json.h"
#include "qsapi/qkd/etsi014.h"

namespace qsapi::qkd {
namespace {

using net::HttpRequest;
using net::HttpResponse;

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

SecretBytes RandomKey(std::size_t bytes) {
  SecretBytes key(bytes);
  if (RAND_bytes(key.data(), static_cast<int>(key.size())) != 1) std::abort();  // the DRBG cannot fail here
  return key;
}

std::string RandomUuid() {
  std::uint8_t b[16];
  if (RAND_bytes(b, sizeof b) != 1) std::abort();
  b[6] = static_cast<std::uint8_t>((b[6] & 0x0f) | 0x40);  // version 4 (RFC 4122, 4.4)
  b[8] = static_cast<std::uint8_t>((b[8] & 0x3f) | 0x80);  // variant 10
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s.push_back('-');
    s.push_back(kHex[b[i] >> 4]);
    s.push_back(kHex[b[i] & 15]);
  }
  return s;
}

HttpResponse Json(unsigned status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

HttpResponse ErrorResponse(unsigned status, std::string_view message) {
  return Json(status, internal::ErrorJson(message));
}

struct Reservation {
  std::string master;
  std::string slave;
  SecretBytes key;
};

using Clock = std::chrono::steady_clock;

class Simulator final : public KmeSimulator {
 public:
  explicit Simulator(KmeSimulatorOptions o)
      : o_(std::move(o)),
        pool_(static_cast<double>(std::min(o_.initial_key_count, o_.max_key_count))),
        last_refill_(Clock::now()) {}
  Simulator(const Simulator&) = delete;
  Simulator& operator=(const Simulator&) = delete;
  Simulator(Simulator&&) = delete;
  Simulator& operator=(Simulator&&) = delete;
  ~Simulator() override { Stop(); }

  Status Init() {
    std::error_code ec;
    std::filesystem::create_directories(o_.dir, ec);
    if (ec) return Unavailable("kme-sim: cannot create " + o_.dir.string() + ": " + ec.message());
    files_.ca = o_.dir / "ca.pem";
    files_.kme_a_cert = o_.dir / "kme-a.pem";
    files_.kme_a_key = o_.dir / "kme-a-key.pem";
    files_.kme_b_cert = o_.dir / "kme-b.pem";
    files_.kme_b_key = o_.dir / "kme-b-key.pem";
    files_.sae_a_cert = o_.dir / "sae-a.pem";
    files_.sae_a_key = o_.dir / "sae-a-key.pem";
    files_.sae_b_cert = o_.dir / "sae-b.pem";
    files_.sae_b_key = o_.dir / "sae-b-key.pem";

    const std::filesystem::path ca_key_path = o_.dir / "ca-key.pem";
    const std::filesystem::path all[] = {files_.ca,         ca_key_path,      files_.kme_a_cert, files_.kme_a_key,
                                         files_.kme_b_cert, files_.kme_b_key, files_.sae_a_cert, files_.sae_a_key,
                                         files_.sae_b_cert, files_.sae_b_key};
    const bool have_all = std::all_of(std::begin(all), std::end(all),
                                      [](const std::filesystem::path& f) { return std::filesystem::exists(f); });
    if (o_.reuse_pki && have_all) {
      // A restarted simulator keeps its CA and certificates, so that SAEs configured with them
      // keep working (a KME outage and recovery, or a switch of fault modes).
      QSAPI_ASSIGN_OR_RETURN(pki::PrivateKey ca_key, pki::ReadPrivateKeyPem(ca_key_path));
      QSAPI_ASSIGN_OR_RETURN(pki::Certificate ca, pki::ReadCertificatePem(files_.ca));
      ca_key_ = std::make_unique<pki::PrivateKey>(std::move(ca_key));
      ca_ = std::make_unique<pki::Certificate>(std::move(ca));
    } else {
      QSAPI_ASSIGN_OR_RETURN(pki::PrivateKey ca_key, pki::PrivateKey::Generate(o_.cert_algorithm));
      QSAPI_ASSIGN_OR_RETURN(pki::Certificate ca, pki::CreateSelfSignedCa(ca_key, "qsapi KME simulator CA"));
      ca_key_ = std::make_unique<pki::PrivateKey>(std::move(ca_key));
      ca_ = std::make_unique<pki::Certificate>(std::move(ca));
      QSAPI_RETURN_IF_ERROR(pki::WritePrivateKeyPem(ca_key_path, *ca_key_, /*overwrite=*/true));
      QSAPI_RETURN_IF_ERROR(pki::WriteCertificatePem(files_.ca, {*ca_}));
      QSAPI_RETURN_IF_ERROR(Issue(o_.kme_a_id, true, files_.kme_a_cert, files_.kme_a_key));
      QSAPI_RETURN_IF_ERROR(Issue(o_.kme_b_id, true, files_.kme_b_cert, files_.kme_b_key));
      QSAPI_RETURN_IF_ERROR(Issue(o_.sae_a_id, false, files_.sae_a_cert, files_.sae_a_key));
      QSAPI_RETURN_IF_ERROR(Issue(o_.sae_b_id, false, files_.sae_b_cert, files_.sae_b_key));
    }

    for (int i = 0; i < 2; ++i) {
      net::HttpsServerOptions so;
      so.bind_address = o_.bind_address;
      so.port = i == 0 ? o_.port_a : o_.port_b;
      // ML-DSA certificates exist in TLS 1.3 only.
      so.tls.min_version =
          o_.cert_algorithm == pki::KeyAlgorithm::kEcdsaP256 ? o_.min_tls_version : pki::TlsVersion::kTls13;
      so.tls.max_version = pki::TlsVersion::kTls13;
      so.tls.groups = o_.groups;
      so.tls.certificate_file = (i == 0 ? files_.kme_a_cert : files_.kme_b_cert).string();
      so.tls.private_key_file = (i == 0 ? files_.kme_a_key : files_.kme_b_key).string();
      so.tls.ca_file = files_.ca.string();
      so.tls.verify_peer = pki::PeerVerification::kRequired;
      so.max_body_bytes = std::size_t{256} * 1024;
      so.server_header = "qsapi-kme-sim";
      Result<std::unique_ptr<net::HttpsServer>> server =
          net::HttpsServer::Start(so, [this, i](const HttpRequest& req) { return Handle(i, req); });
      if (!server.ok()) {
        return Error(server.error().code(),
                     "kme-sim: KME " + std::string(i == 0 ? "A" : "B") + ": " + server.error().message());
      }
      servers_[i] = std::move(server).value();
    }
    return OkStatus();
  }

  [[nodiscard]] std::string url_a() const override { return Url(0); }
  [[nodiscard]] std::string url_b() const override { return Url(1); }
  [[nodiscard]] const KmeSimulatorFiles& files() const override { return files_; }
  [[nodiscard]] const KmeSimulatorOptions& options() const override { return o_; }

  void SetFaults(const KmeFaults& faults) override {
    std::lock_guard lock(mu_);
    o_.faults = faults;
  }

  std::uint64_t stored_key_count() override {
    std::lock_guard lock(mu_);
    Refill();
    return static_cast<std::uint64_t>(pool_);
  }

  std::uint64_t reserved_key_count() override {
    std::lock_guard lock(mu_);
    ExpireReservations();
    return reserved_.size();
  }

  Status IssueClientCertificate(const std::string& common_name, const std::filesystem::path& cert,
                                const std::filesystem::path& key) override {
    std::lock_guard lock(mu_);
    return Issue(common_name, false, cert, key);
  }

  void Stop() override {
    for (auto& s : servers_) {
      if (s) s->Stop(std::chrono::seconds(2));
    }
  }

 private:
  [[nodiscard]] std::string Url(int i) const {
    const bool v6 = o_.bind_address.find(':') != std::string::npos;
    const std::string host = v6 ? "[" + o_.bind_address + "]" : o_.bind_address;
    return "https://" + host + ":" + std::to_string(servers_[i] ? servers_[i]->port() : 0);
  }

  Status Issue(const std::string& cn, bool server, const std::filesystem::path& cert_path,
               const std::filesystem::path& key_path) {
    QSAPI_ASSIGN_OR_RETURN(pki::PrivateKey key, pki::PrivateKey::Generate(o_.cert_algorithm));
    pki::CertificateProfile p;
    p.common_name = cn;
    if (server) {
      p.server_auth = true;
      p.dns_names = {"localhost"};
      p.ip_addresses = {"127.0.0.1", "::1"};
      if (o_.bind_address != "127.0.0.1" && o_.bind_address != "::1" && o_.bind_address != "0.0.0.0" &&
          o_.bind_address != "::") {
        p.ip_addresses.push_back(o_.bind_address);
      }
    } else {
      p.client_auth = true;
    }
    p.validity = std::chrono::hours(24 * 30);
    QSAPI_ASSIGN_OR_RETURN(pki::Certificate c, pki::IssueCertificate(*ca_, *ca_key_, key, p));
    QSAPI_RETURN_IF_ERROR(pki::WriteCertificatePem(cert_path, {c}));
    return pki::WritePrivateKeyPem(key_path, key, /*overwrite=*/true);
  }

  // Refill adds the keys the link produced since the last call. Caller holds mu_.
  void Refill() {
    const auto now = std::chrono::steady_clock::now();
    const double seconds = std::chrono::duration<double>(now - last_refill_).count();
    last_refill_ = now;
    pool_ = std::min(static_cast<double>(o_.max_key_count), pool_ + seconds * o_.keys_per_second);
  }

  // ExpireReservations discards (and wipes) reservations older than reservation_ttl. Caller holds mu_.
  void ExpireReservations() {
    const auto cutoff = Clock::now() - o_.reservation_ttl;
    while (!expiry_.empty() && expiry_.front().first <= cutoff) {
      reserved_.erase(expiry_.front().second);  // a no-op when the slave fetched it already
      expiry_.pop_front();
    }
  }

  HttpResponse Handle(int kme, const HttpRequest& req) {
    std::lock_guard lock(mu_);
    ExpireReservations();
    HttpResponse r = Route(kme, req);
    r.delay = o_.faults.latency;
    return r;
  }

  HttpResponse Route(int kme, const HttpRequest& req) {
    const std::string& local_sae = kme == 0 ? o_.sae_a_id : o_.sae_b_id;
    const std::string& peer_sae = kme == 0 ? o_.sae_b_id : o_.sae_a_id;
    if (o_.faults.outage) return ErrorResponse(503, "KME unavailable (simulated outage)");
    // The caller's SAE_ID is its verified certificate's CN; each KME serves its own SAE only.
    if (req.peer_common_name != local_sae) {
      HttpResponse r;
      r.status = 401;
      return r;
    }
    // /api/v1/keys/{SAE_ID}/{status|enc_keys|dec_keys}
    constexpr std::string_view kPrefix = "/api/v1/keys/";
    if (!std::string_view(req.path).starts_with(kPrefix)) return ErrorResponse(404, "unknown path");
    const std::string_view rest = std::string_view(req.path).substr(kPrefix.size());
    const std::size_t slash = rest.find('/');
    if (slash == std::string_view::npos) return ErrorResponse(404, "unknown path");
    Result<std::string> sae = net::PercentDecode(rest.substr(0, slash));
    if (!sae.ok()) return ErrorResponse(400, "malformed SAE_ID in the path");
    const std::string_view op = rest.substr(slash + 1);
    if (op == "status") {
      if (req.method != "GET") return ErrorResponse(405, "status takes GET");
      if (*sae != peer_sae) return ErrorResponse(400, "slave_SAE_ID " + *sae + " is not reachable through this KME");
      return Json(200, internal::StatusJson(StatusFor(kme)));
    }
    if (op == "enc_keys") {
      if (req.method != "GET" && req.method != "POST") return ErrorResponse(405, "enc_keys takes GET or POST");
      if (*sae != peer_sae) return ErrorResponse(400, "slave_SAE_ID " + *sae + " is not reachable through this KME");
      return EncKeys(req, local_sae, peer_sae);
    }
    if (op == "dec_keys") {
      if (req.method != "GET" && req.method != "POST") return ErrorResponse(405, "dec_keys takes GET or POST");
      if (*sae != peer_sae) return ErrorResponse(400, "master_SAE_ID " + *sae + " is not known to this KME");
      return DecKeys(req, peer_sae, local_sae);
    }
    return ErrorResponse(404, "unknown path");
  }

  KmeStatus StatusFor(int kme) {
    Refill();
    KmeStatus s;
    s.source_kme_id = kme == 0 ? o_.kme_a_id : o_.kme_b_id;
    s.target_kme_id = kme == 0 ? o_.kme_b_id : o_.kme_a_id;
    s.master_sae_id = kme == 0 ? o_.sae_a_id : o_.sae_b_id;
    s.slave_sae_id = kme == 0 ? o_.sae_b_id : o_.sae_a_id;
    s.key_size = o_.key_size;
    s.stored_key_count = o_.faults.exhausted ? 0 : static_cast<std::uint64_t>(pool_);
    s.max_key_count = o_.max_key_count;
    s.max_key_per_request = o_.max_key_per_request;
    s.max_key_size = o_.max_key_size;
    s.min_key_size = o_.min_key_size;
    s.max_sae_id_count = 0;
    return s;
  }

  static Result<std::uint32_t> ParseCount(std::string_view v) {
    std::uint32_t n = 0;
    const auto [end, err] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (err != std::errc() || end != v.data() + v.size() || v.empty()) return InvalidArgument("not a number");
    return n;
  }

  HttpResponse EncKeys(const HttpRequest& req, const std::string& master, const std::string& slave) {
    KeyRequest kr;
    bool mandatory = false;
    if (req.method == "GET") {
      Result<std::vector<std::pair<std::string, std::string>>> q = net::QueryParameters(req.query);
      if (!q.ok()) return ErrorResponse(400, "malformed query");
      for (const auto& [name, value] : *q) {
        Result<std::uint32_t> n = ParseCount(value);
        if (!n.ok()) return ErrorResponse(400, name + " must be a non-negative integer");
        if (name == "number") {
          kr.number = *n;
        } else if (name == "size") {
          kr.size = *n;
        } else {
          return ErrorResponse(400, "unknown query parameter " + name);
        }
      }
    } else {
      Result<KeyRequest> parsed = internal::ParseKeyRequest(req.body, &mandatory);
      if (!parsed.ok()) return ErrorResponse(400, parsed.error().message());
      kr = std::move(parsed).value();
    }
    const std::uint32_t size = kr.size == 0 ? o_.key_size : kr.size;
    if (kr.number < 1) return ErrorResponse(400, "number shall be at least 1");
    if (kr.number > o_.max_key_per_request) {
      return ErrorResponse(400, "number exceeds max_key_per_request (" + std::to_string(o_.max_key_per_request) + ")");
    }
    if (size % 8 != 0) return ErrorResponse(400, "size shall be a multiple of 8");
    if (size < o_.min_key_size || size > o_.max_key_size) {
      return ErrorResponse(400, "size shall be between min_key_size and max_key_size");
    }
    if (!kr.additional_slave_sae_ids.empty()) {
      return ErrorResponse(400, "additional_slave_SAE_IDs are not supported (max_SAE_ID_count is 0)");
    }
    if (mandatory) return ErrorResponse(400, "not all extension_mandatory parameters are supported");
    Refill();
    if (o_.faults.exhausted || pool_ < kr.number) {
      return ErrorResponse(400, "not enough keys available; try again later");
    }
    pool_ -= kr.number;
    std::vector<QkdKey> keys;
    keys.reserve(kr.number);
    for (std::uint32_t i = 0; i < kr.number; ++i) {
      QkdKey k{RandomUuid(), RandomKey(size / 8)};
      reserved_.emplace(k.key_id, Reservation{master, slave, k.key.Clone()});
      expiry_.emplace_back(Clock::now(), k.key_id);
      keys.push_back(std::move(k));
    }
    return Json(200, internal::KeyContainerJson(keys));
  }

  HttpResponse DecKeys(const HttpRequest& req, const std::string& master, const std::string& slave) {
    std::vector<std::string> ids;
    if (req.method == "GET") {
      Result<std::vector<std::pair<std::string, std::string>>> q = net::QueryParameters(req.query);
      if (!q.ok()) return ErrorResponse(400, "malformed query");
      for (const auto& [name, value] : *q) {
        if (name != "key_ID") return ErrorResponse(400, "unknown query parameter " + name);
        ids.push_back(value);
      }
      if (ids.size() != 1) return ErrorResponse(400, "GET dec_keys takes exactly one key_ID");
      if (!IsValidKeyId(ids.front())) return ErrorResponse(400, "key_ID is not a UUID");
    } else {
      Result<std::vector<std::string>> parsed = internal::ParseKeyIds(req.body);
      if (!parsed.ok()) return ErrorResponse(400, parsed.error().message());
      ids = std::move(parsed).value();
    }
    std::set<std::string> unique;
    for (auto& id : ids) {
      id = Lower(id);
      if (!unique.insert(id).second) return ErrorResponse(400, "key_ID " + id + " is listed twice");
    }
    for (const auto& id : ids) {
      const auto it = reserved_.find(id);
      if (it == reserved_.end() || it->second.master != master || it->second.slave != slave) {
        return ErrorResponse(400, "one or more keys specified are not found on KME");
      }
    }
    std::vector<QkdKey> keys;
    keys.reserve(ids.size());
    for (const auto& id : ids) {
      auto node = reserved_.extract(id);  // delivered once, then gone
      SecretBytes key = std::move(node.mapped().key);
      if (o_.faults.corrupt) key = RandomKey(key.size());  // a key the master never saw
      keys.push_back(QkdKey{id, std::move(key)});
    }
    return Json(200, internal::KeyContainerJson(keys));
  }

  KmeSimulatorOptions o_;
  KmeSimulatorFiles files_;
  std::unique_ptr<pki::PrivateKey> ca_key_;
  std::unique_ptr<pki::Certificate> ca_;
  std::unique_ptr<net::HttpsServer> servers_[2];

  std::mutex mu_;
  double pool_ = 0;
  std::chrono::steady_clock::time_point last_refill_;
  std::map<std::string, Reservation> reserved_;
  std::deque<std::pair<Clock::time_point, std::string>> expiry_;  // reservation times, oldest first
};

}  // namespace

Result<std::unique_ptr<KmeSimulator>> KmeSimulator::Start(const KmeSimulatorOptions& options) {
  if (options.dir.empty()) return InvalidArgument("kme-sim: a directory for the certificates is required");
  if (options.key_size % 8 != 0 || options.min_key_size % 8 != 0 || options.max_key_size % 8 != 0 ||
      options.min_key_size == 0 || options.min_key_size > options.key_size || options.key_size > options.max_key_size ||
      options.max_key_size > internal::kMaxKeySizeBits) {
    return InvalidArgument(
        "kme-sim: key sizes must be multiples of 8 with 0 < min_key_size <= key_size <= "
        "max_key_size <= 65536 bits");
  }
  if (options.max_key_per_request < 1 || options.max_key_per_request > internal::kMaxKeysPerContainer) {
    return InvalidArgument("kme-sim: max_key_per_request must be between 1 and 4096");
  }
  if (!(options.keys_per_second >= 0)) return InvalidArgument("kme-sim: the key rate must not be negative");
  const std::set<std::string> ids{options.kme_a_id, options.kme_b_id, options.sae_a_id, options.sae_b_id};
  if (ids.size() != 4 || ids.contains("")) return InvalidArgument("kme-sim: the four KME and SAE IDs must be distinct");
  auto sim = std::make_unique<Simulator>(options);
  QSAPI_RETURN_IF_ERROR(sim->Init());
  return std::unique_ptr<KmeSimulator>(std::move(sim));
}

}  // namespace qsapi::qkd
