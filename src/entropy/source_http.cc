// A QRNG HTTP(S) service as an entropy source, over the library's HTTP client
// (net/internal/http_client.h: deadlines on every step, bounded responses, TLS through pki).
//
// Each ReadRaw issues GET <url>?<length_param>=<n> requests, n <= max_bytes_per_request, on a
// fresh connection each (no keep-alive: a QRNG request is rare and a stale pooled connection is
// one more failure mode), until the buffer is full. Each request runs against one deadline,
// now + timeout, for all its steps.
//
// https: TLS 1.2 or later (a QRNG service is not ours), the hybrid post-quantum groups offered
// first, the peer's chain verified against ca_file or the system's anchors, the host name checked
// and sent as SNI. verify_tls = false switches verification off (a test rig only).
//
// The API key travels in a request header only; the client wipes its copy. It is never put in a
// message; errors name the source id and the URL without its query.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "entropy/internal/qrng_payload.h"
#include "net/internal/http_client.h"
#include "qsapi/entropy/source.h"
#include "qsapi/log.h"
#include "qsapi/secret.h"

namespace qsapi::entropy {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxBytesPerRequest = std::size_t{1} << 20;  // 1 MiB of random bytes per GET
constexpr std::size_t kMaxResponseBytes = std::size_t{64} << 20;   // 64 MiB

bool IsTokenChar(char c) {
  // RFC 9110 tchar.
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool IsToken(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), IsTokenChar); }

class HttpSource final : public EntropySource {
 public:
  HttpSource(const HttpSourceOptions& o, std::unique_ptr<net::HttpClient> client)
      : id_(o.id),
        display_(client->url().origin + client->url().target.substr(0, client->url().target.find('?'))),
        api_key_header_(o.api_key_header),
        api_key_(o.api_key),
        json_field_(o.json_field),
        length_param_(o.length_param),
        min_entropy_(o.min_entropy),
        max_bytes_per_request_(o.max_bytes_per_request),
        max_response_bytes_(o.max_response_bytes),
        timeout_(o.timeout),
        client_(std::move(client)) {}
  HttpSource(const HttpSource&) = delete;
  HttpSource& operator=(const HttpSource&) = delete;
  HttpSource(HttpSource&&) = delete;
  HttpSource& operator=(HttpSource&&) = delete;
  ~HttpSource() override { SecureZero(api_key_.data(), api_key_.size()); }

  std::string_view id() const noexcept override { return id_; }
  double claimed_min_entropy() const noexcept override { return min_entropy_; }
  bool is_qrng() const noexcept override { return true; }

  Status ReadRaw(std::span<std::uint8_t> out) override {
    Status status = OkStatus();
    try {
      status = Fill(out);
    } catch (const std::exception& e) {
      status = Unavailable(Name() + ": request failed: " + e.what());  // a backstop (std::bad_alloc)
    }
    if (!status.ok()) SecureZero(out.data(), out.size());
    return status;
  }

 private:
  [[nodiscard]] std::string Name() const { return "entropy source \"" + id_ + "\" (" + display_ + ")"; }

  Status Fill(std::span<std::uint8_t> out) {
    std::size_t done = 0;
    while (done < out.size()) {
      const std::size_t want = std::min(out.size() - done, max_bytes_per_request_);
      QSAPI_RETURN_IF_ERROR(RequestInto(out.subspan(done, want), done, out.size()));
      done += want;
    }
    return OkStatus();
  }

  [[nodiscard]] static std::string Progress(std::size_t done, std::size_t total) {
    return " (after " + std::to_string(done) + " of " + std::to_string(total) + " bytes)";
  }

  // RequestInto fetches exactly out.size() bytes with one GET.
  Status RequestInto(std::span<std::uint8_t> out, std::size_t done, std::size_t total) {
    net::HttpClientRequest req;
    const std::string target = Target(out.size());
    req.target = target;
    req.headers.emplace_back("Accept", "application/json, text/plain");
    if (!api_key_header_.empty()) req.headers.emplace_back(api_key_header_, api_key_);
    Result<net::HttpReply> reply = client_->Send(req, Clock::now() + timeout_);
    for (auto& [name, value] : req.headers) SecureZero(value.data(), value.size());
    // Every transport failure is UNAVAILABLE for an entropy source: the pool falls back or fails.
    if (!reply.ok()) return Unavailable(Name() + ": " + reply.error().message() + Progress(done, total));
    WarnOnceIfClassical();
    std::string& body = reply->body;
    if (reply->status != 200) {
      SecureZero(body.data(), body.size());
      return Unavailable(Name() + ": HTTP status " + std::to_string(reply->status) + " (expected 200)" +
                         Progress(done, total));
    }
    Result<Bytes> bytes = internal::ParseQrngPayload(body, out.size(), json_field_, max_response_bytes_);
    SecureZero(body.data(), body.size());
    if (!bytes.ok()) {
      return Error(bytes.error().code(), Name() + ": " + bytes.error().message() + Progress(done, total));
    }
    std::copy(bytes->begin(), bytes->end(), out.begin());
    SecureZero(bytes->data(), bytes->size());
    return OkStatus();
  }

  [[nodiscard]] std::string Target(std::size_t n) const {
    const std::string& base = client_->url().target;
    const char sep = base.find('?') == std::string::npos ? '?' : '&';
    return base + sep + length_param_ + "=" + std::to_string(n);
  }

  // A QRNG service is not ours: it may offer only classical key exchange. Its bytes are mixed with
  // the OS CSPRNG and never used alone, so such a link is allowed, and said once per source.
  void WarnOnceIfClassical() {
    if (!client_->url().tls || warned_classical_) return;
    const net::ConnectionInfo& link = client_->connection();
    if (link.pq_hybrid) return;
    warned_classical_ = true;
    Log(LogLevel::kWarning, "entropy",
        Name() + ": the TLS link uses the classical key exchange " +
            (link.tls_group.empty() ? std::string("unknown") : link.tls_group) +
            " (no hybrid post-quantum group offered by the service); its bytes are still mixed with the OS CSPRNG");
  }

  std::string id_;
  std::string display_;
  std::string api_key_header_;
  std::string api_key_;
  std::string json_field_;
  std::string length_param_;
  double min_entropy_;
  std::size_t max_bytes_per_request_;
  std::size_t max_response_bytes_;
  std::chrono::milliseconds timeout_;
  bool warned_classical_ = false;
  std::unique_ptr<net::HttpClient> client_;
};

Status CheckOptions(const HttpSourceOptions& o, const std::string& who) {
  if (o.id.empty()) return InvalidArgument("entropy source option id must not be empty");
  if (!(o.min_entropy > 0.0 && o.min_entropy <= 8.0)) {
    return InvalidArgument(who + "option min_entropy must be in (0, 8] bits per byte, got " +
                           std::to_string(o.min_entropy));
  }
  if (o.max_bytes_per_request < 1 || o.max_bytes_per_request > kMaxBytesPerRequest) {
    return InvalidArgument(who + "option max_bytes_per_request must be in [1, " + std::to_string(kMaxBytesPerRequest) +
                           "], got " + std::to_string(o.max_bytes_per_request));
  }
  if (o.max_response_bytes < 1 || o.max_response_bytes > kMaxResponseBytes) {
    return InvalidArgument(who + "option max_response_bytes must be in [1, " + std::to_string(kMaxResponseBytes) +
                           "], got " + std::to_string(o.max_response_bytes));
  }
  if (o.timeout <= std::chrono::milliseconds::zero()) {
    return InvalidArgument(who + "option timeout must be positive, got " + std::to_string(o.timeout.count()) + " ms");
  }
  if (!IsToken(o.length_param)) return InvalidArgument(who + "option length_param must be a non-empty token");
  if (o.json_field.empty()) return InvalidArgument(who + "option json_field must not be empty");
  if (!o.api_key_header.empty() && !IsToken(o.api_key_header)) {
    return InvalidArgument(who + "option api_key_header is not a valid HTTP header name");
  }
  if (!o.api_key.empty() && o.api_key_header.empty()) {
    return InvalidArgument(who + "option api_key is set but api_key_header is empty");
  }
  // Not quoted: the key is a secret. CR, LF or NUL would split the request (header injection).
  const bool key_ok = std::all_of(o.api_key.begin(), o.api_key.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u == '\t' || (u >= 0x20 && u != 0x7f);
  });
  if (!key_ok) return InvalidArgument(who + "option api_key contains control characters");
  return OkStatus();
}

}  // namespace

Result<std::unique_ptr<EntropySource>> OpenHttpSource(const HttpSourceOptions& options) {
  const std::string who = "entropy source \"" + options.id + "\": ";
  QSAPI_RETURN_IF_ERROR(CheckOptions(options, who));
  net::HttpClientOptions c;
  c.url = options.url;
  c.tls.min_version = pki::TlsVersion::kTls12;
  c.tls.max_version = pki::TlsVersion::kTls13;
  c.tls.groups = std::string(pki::kKmeClientGroups);  // hybrid first; classical for services that have nothing else
  c.tls.ca_file = options.ca_file;
  c.tls.verify_peer = options.verify_tls ? pki::PeerVerification::kRequired : pki::PeerVerification::kNone;
  c.connect_timeout = options.timeout;
  c.request_timeout = options.timeout;
  c.max_response_bytes = options.max_response_bytes;
  c.keep_alive = false;
  Result<std::unique_ptr<net::HttpClient>> client = net::HttpClient::Create(c);
  if (!client.ok()) return Error(client.error().code(), who + client.error().message());  // "the URL ..." or TLS
  return std::unique_ptr<EntropySource>(std::make_unique<HttpSource>(options, std::move(client).value()));
}

}  // namespace qsapi::entropy
