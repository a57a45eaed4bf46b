// The ETSI GS QKD 014 client (qsapi/qkd/etsi014.h) over the library's HTTP client
// (net/internal/http_client.h: deadlines on every step, bounded responses, TLS through pki, the
// buffers wiped), with one kept-alive connection per client.
//
// Each call runs up to max_attempts attempts within total_timeout. An attempt reuses the open
// connection; if that connection turns out to be stale (the KME closed it while idle), the HTTP
// client reconnects and resends once, which is safe because the KME cannot have processed a
// request it never answered on a closed connection. Connect, resolve and TLS handshake run against
// connect_timeout; sending the request and reading the whole response against request_timeout.
//
// What is retried and what is not is decided by the error code alone (see the header): a timeout
// after the request was sent is not retried, because the KME may have released keys already.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "net/internal/http_client.h"
#include "qkd/internal/etsi014_json.h"
#include "qsapi/log.h"
#include "qsapi/qkd/etsi014.h"

namespace qsapi::qkd {
namespace {

using Clock = std::chrono::steady_clock;

struct KmeUrl {
  std::string prefix;   // path before /api/v1, without a trailing '/'
  std::string display;  // https://host:port/prefix
};

Result<KmeUrl> ParseKmeUrl(std::string_view url) {
  const std::string who = "ETSI 014 client: kme_url \"" + std::string(url) + "\" ";
  if (!url.starts_with("https://")) return InvalidArgument(who + "must start with https://");
  if (url.find_first_of("?@") != std::string_view::npos) {
    return InvalidArgument(who + "must not hold a query or user information");
  }
  Result<net::Url> u = net::ParseUrl(url);
  if (!u.ok()) return InvalidArgument(who + u.error().message());
  KmeUrl k;
  k.prefix = u->target;
  while (!k.prefix.empty() && k.prefix.back() == '/') k.prefix.pop_back();
  k.display = u->origin + k.prefix;
  return k;
}

// PercentEncode encodes everything but RFC 3986 unreserved characters (SAE IDs in paths).
std::string PercentEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) != 0 || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    }
  }
  return out;
}

bool LooksLikePoolEmpty(std::string_view message) {
  std::string m(message);
  std::transform(m.begin(), m.end(), m.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  constexpr std::string_view kPhrases[] = {"try again", "not enough",  "no key", "insufficient",
                                           "exhausted", "no more key", "empty"};
  return std::any_of(std::begin(kPhrases), std::end(kPhrases),
                     [&](std::string_view p) { return m.find(p) != std::string::npos; });
}

bool Retryable(const Error& e) {
  return e.code() == ErrorCode::kResourceExhausted || e.code() == ErrorCode::kUnavailable;
}

class Etsi014ClientImpl final : public Etsi014Client {
 public:
  Etsi014ClientImpl(Etsi014ClientOptions o, KmeUrl url) : o_(std::move(o)), url_(std::move(url)) {
    info_.kme_url = url_.display;
  }
  Etsi014ClientImpl(const Etsi014ClientImpl&) = delete;
  Etsi014ClientImpl& operator=(const Etsi014ClientImpl&) = delete;
  Etsi014ClientImpl(Etsi014ClientImpl&&) = delete;
  Etsi014ClientImpl& operator=(Etsi014ClientImpl&&) = delete;
  ~Etsi014ClientImpl() override = default;

  Status Init() {
    net::HttpClientOptions c;
    c.url = o_.kme_url;
    c.tls.min_version = o_.allow_tls12 ? pki::TlsVersion::kTls12 : pki::TlsVersion::kTls13;
    c.tls.max_version = pki::TlsVersion::kTls13;
    c.tls.groups = o_.groups.empty() ? std::string(pki::kKmeClientGroups) : o_.groups;
    c.tls.certificate_file = o_.certificate_file;
    c.tls.private_key_file = o_.private_key_file;
    c.tls.ca_file = o_.ca_file;
    c.tls.verify_peer = pki::PeerVerification::kRequired;
    c.connect_timeout = o_.connect_timeout;
    c.request_timeout = o_.request_timeout;
    c.max_response_bytes = o_.max_response_bytes;
    c.keep_alive = o_.keep_alive;
    c.on_connect = [this](const net::ConnectionInfo& link) { return OnConnect(link); };
    Result<std::unique_ptr<net::HttpClient>> client = net::HttpClient::Create(c);
    if (!client.ok()) return Error(client.error().code(), "KME " + url_.display + ": " + client.error().message());
    http_ = std::move(client).value();
    return OkStatus();
  }

  Result<KmeStatus> GetStatus(std::string_view slave_sae_id) override {
    if (slave_sae_id.empty()) return InvalidArgument("ETSI 014 client: the slave SAE_ID is empty");
    const std::string call = "status for slave SAE " + std::string(slave_sae_id);
    const std::string target = url_.prefix + "/api/v1/keys/" + PercentEncode(slave_sae_id) + "/status";
    std::lock_guard lock(mu_);
    QSAPI_ASSIGN_OR_RETURN(std::string body, Call("GET", target, "", call));
    Result<KmeStatus> status = internal::ParseStatus(body);
    if (!status.ok()) return Error(status.error().code(), Who(call) + ": " + status.error().message());
    if (!o_.expected_kme_id.empty() && status->source_kme_id != o_.expected_kme_id) {
      return PermissionDenied(Who(call) + ": KME_ID mismatch: expected \"" + o_.expected_kme_id +
                              "\", the KME's status names source_KME_ID \"" + status->source_kme_id + "\"");
    }
    return status;
  }

  Result<std::vector<QkdKey>> GetKey(std::string_view slave_sae_id, const KeyRequest& request) override {
    if (slave_sae_id.empty()) return InvalidArgument("ETSI 014 client: the slave SAE_ID is empty");
    if (request.number < 1 || request.number > internal::kMaxKeysPerContainer) {
      return InvalidArgument("ETSI 014 client: number must be between 1 and 4096");
    }
    if (request.size % 8 != 0 || request.size > internal::kMaxKeySizeBits) {
      return InvalidArgument("ETSI 014 client: size must be a multiple of 8 bits, at most 65536");
    }
    if (request.use_get && !request.additional_slave_sae_ids.empty()) {
      return InvalidArgument("ETSI 014 client: additional slave SAE_IDs need a POST request");
    }
    const std::string call = "enc_keys for slave SAE " + std::string(slave_sae_id);
    std::string target = url_.prefix + "/api/v1/keys/" + PercentEncode(slave_sae_id) + "/enc_keys";
    std::string body;
    if (request.use_get) {
      target += "?number=" + std::to_string(request.number);
      if (request.size != 0) target += "&size=" + std::to_string(request.size);
    } else {
      body = internal::KeyRequestJson(request);
    }
    std::lock_guard lock(mu_);
    QSAPI_ASSIGN_OR_RETURN(std::string reply, Call(request.use_get ? "GET" : "POST", target, body, call));
    internal::KeyContainerExpectation expect;
    expect.number = request.number;
    expect.size_bits = request.size;
    Result<std::vector<QkdKey>> keys = internal::ParseKeyContainer(reply, expect);
    if (!keys.ok()) return Error(keys.error().code(), Who(call) + ": " + keys.error().message());
    return keys;
  }

  Result<std::vector<QkdKey>> GetKeyWithKeyIds(std::string_view master_sae_id, std::span<const std::string> key_ids,
                                               std::uint32_t expected_size_bits, bool use_get) override {
    if (master_sae_id.empty()) return InvalidArgument("ETSI 014 client: the master SAE_ID is empty");
    if (key_ids.empty() || key_ids.size() > internal::kMaxKeysPerContainer) {
      return InvalidArgument("ETSI 014 client: between 1 and 4096 key_IDs must be asked for");
    }
    std::set<std::string> seen;
    for (const std::string& id : key_ids) {
      if (!IsValidKeyId(id)) return InvalidArgument("ETSI 014 client: key_ID \"" + id + "\" is not a UUID");
      std::string lower = id;
      std::transform(lower.begin(), lower.end(), lower.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      if (!seen.insert(lower).second) return InvalidArgument("ETSI 014 client: key_ID " + id + " is asked for twice");
    }
    if (use_get && key_ids.size() != 1) {
      return InvalidArgument("ETSI 014 client: GET dec_keys takes exactly one key_ID; use POST for more");
    }
    if (expected_size_bits % 8 != 0) return InvalidArgument("ETSI 014 client: key sizes are multiples of 8 bits");
    const std::string call = "dec_keys for master SAE " + std::string(master_sae_id);
    std::string target = url_.prefix + "/api/v1/keys/" + PercentEncode(master_sae_id) + "/dec_keys";
    std::string body;
    if (use_get) {
      target += "?key_ID=" + key_ids.front();
    } else {
      body = internal::KeyIdsJson(key_ids);
    }
    std::lock_guard lock(mu_);
    QSAPI_ASSIGN_OR_RETURN(std::string reply, Call(use_get ? "GET" : "POST", target, body, call));
    internal::KeyContainerExpectation expect;
    expect.number = key_ids.size();
    expect.size_bits = expected_size_bits;
    expect.key_ids = key_ids;
    Result<std::vector<QkdKey>> keys = internal::ParseKeyContainer(reply, expect);
    if (!keys.ok()) return Error(keys.error().code(), Who(call) + ": " + keys.error().message());
    return keys;
  }

  [[nodiscard]] LinkInfo link() const override {
    std::lock_guard lock(mu_);
    return info_;
  }

 private:
  [[nodiscard]] std::string Who(const std::string& call) const { return "KME " + url_.display + " " + call; }

  // Call sends one request with retries; it returns the body of a 200 response.
  Result<std::string> Call(std::string_view method, const std::string& target, const std::string& body,
                           const std::string& call) {
    const Clock::time_point total_deadline = Clock::now() + o_.total_timeout;
    std::chrono::milliseconds backoff = o_.initial_backoff;
    for (int attempt = 1;; ++attempt) {
      Result<net::HttpReply> reply = Exchange(method, target, body, call, total_deadline);
      std::optional<Error> failure;
      if (reply.ok()) {
        if (reply->status == 200) return std::move(reply->body);
        failure = HttpError(reply->status, reply->body, call);
        SecureZero(reply->body.data(), reply->body.size());
      } else {
        failure = reply.error();
      }
      if (!Retryable(*failure) || attempt >= o_.max_attempts) {
        if (attempt > 1 && Retryable(*failure)) {
          return Error(failure->code(),
                       failure->message() + " (gave up after " + std::to_string(attempt) + " attempts)");
        }
        return *failure;
      }
      if (Clock::now() + backoff >= total_deadline) {
        return Error(failure->code(), failure->message() + " (no time left for attempt " + std::to_string(attempt + 1) +
                                          " within " + std::to_string(o_.total_timeout.count()) + " ms)");
      }
      ++info_.retries;
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, o_.max_backoff);
    }
  }

  Error HttpError(unsigned status, const std::string& body, const std::string& call) const {
    const std::optional<std::string> message = internal::ErrorMessage(body);
    std::string text = Who(call) + ": HTTP " + std::to_string(status);
    if (message) {
      text += ": \"" + *message + "\"";
    } else if (!body.empty()) {
      text += " (with a non-JSON body of " + std::to_string(body.size()) + " bytes)";
    }
    switch (status) {
      case 400:
        if (message && LooksLikePoolEmpty(*message)) {
          return ResourceExhausted(text + " - the KME has not enough keys; try again later");
        }
        return InvalidArgument(text + " - the KME rejected the request");
      case 401: return PermissionDenied(text + " - unauthorised: this SAE may not make this call");
      case 403: return PermissionDenied(text + " - forbidden");
      case 404: return NotFound(text + " - not found");
      case 409:
      case 412: return FailedPrecondition(text + " - the KME is not ready for this request (conflict / precondition)");
      case 500:
      case 502:
      case 503:
      case 504:
        if (message && LooksLikePoolEmpty(*message)) {
          return ResourceExhausted(text + " - the KME has not enough keys; try again later");
        }
        return Unavailable(text + " - KME server error");
      default: return DataLoss(text + " - an HTTP status the ETSI 014 API does not use");
    }
  }

  // OnConnect runs after each TLS handshake: the KME's identity, the link's figures, and one
  // warning per client when the key exchange is classical.
  Status OnConnect(const net::ConnectionInfo& link) {
    ++info_.connections;
    info_.tls_version = link.tls_version;
    info_.tls_group = link.tls_group;
    info_.pq_hybrid = link.pq_hybrid;
    info_.kme_common_name = link.peer_common_name;
    if (!o_.expected_kme_id.empty() && info_.kme_common_name != o_.expected_kme_id) {
      return PermissionDenied("KME_ID mismatch: expected \"" + o_.expected_kme_id +
                              "\", the KME's certificate names \"" + info_.kme_common_name + "\"");
    }
    if (!info_.pq_hybrid && !warned_classical_) {
      warned_classical_ = true;
      Log(LogLevel::kWarning, "qkd",
          "KME link " + url_.display + ": TLS key exchange is classical (" +
              (info_.tls_group.empty() ? std::string("unknown group") : info_.tls_group) + ", " + info_.tls_version +
              "); the KME offers no hybrid post-quantum group. Keys fetched over this link are protected by "
              "classical TLS only: the documented KME exception (docs/THREAT_MODEL.md)");
    }
    return OkStatus();
  }

  // Exchange runs one attempt. The HTTP client's codes are the KME client's, except that a
  // response too large or malformed is DATA_LOSS (the KME is broken, not unreachable).
  Result<net::HttpReply> Exchange(std::string_view method, const std::string& target, const std::string& body,
                                  const std::string& call, Clock::time_point total_deadline) {
    net::HttpClientRequest req;
    req.method = method;
    req.target = target;
    req.body = body;
    req.headers.emplace_back("Accept", "application/json");
    ++info_.requests;
    Result<net::HttpReply> reply = http_->Send(req, total_deadline);
    if (!reply.ok()) return Error(reply.error().code(), Who(call) + ": " + reply.error().message());
    return reply;
  }

  const Etsi014ClientOptions o_;
  const KmeUrl url_;
  std::unique_ptr<net::HttpClient> http_;
  bool warned_classical_ = false;
  mutable std::mutex mu_;
  LinkInfo info_;
};

}  // namespace

Result<std::unique_ptr<Etsi014Client>> Etsi014Client::Create(const Etsi014ClientOptions& options) {
  QSAPI_ASSIGN_OR_RETURN(KmeUrl url, ParseKmeUrl(options.kme_url));
  const std::string who = "ETSI 014 client for " + url.display + ": ";
  if (options.ca_file.empty()) return InvalidArgument(who + "ca_file (the KME's trust anchors) is required");
  if (options.certificate_file.empty() || options.private_key_file.empty()) {
    return InvalidArgument(who + "certificate_file and private_key_file (this SAE's client certificate) are required");
  }
  if (options.connect_timeout.count() <= 0 || options.request_timeout.count() <= 0 ||
      options.total_timeout.count() <= 0) {
    return InvalidArgument(who + "timeouts must be positive");
  }
  if (options.max_attempts < 1 || options.max_attempts > 10) return InvalidArgument(who + "max_attempts must be 1..10");
  if (options.initial_backoff.count() < 0 || options.max_backoff < options.initial_backoff) {
    return InvalidArgument(who + "backoff must satisfy 0 <= initial_backoff <= max_backoff");
  }
  if (options.max_response_bytes < 1024 || options.max_response_bytes > (std::size_t{64} << 20)) {
    return InvalidArgument(who + "max_response_bytes must be between 1 KiB and 64 MiB");
  }
  std::unique_ptr<Etsi014ClientImpl> client;
  try {
    client = std::make_unique<Etsi014ClientImpl>(options, std::move(url));
  } catch (const std::exception& e) {
    return Internal(who + "cannot create the TLS context: " + e.what());
  }
  QSAPI_RETURN_IF_ERROR(client->Init());
  return std::unique_ptr<Etsi014Client>(std::move(client));
}

}  // namespace qsapi::qkd
