// The ETSI GS QKD 014 client (qsapi/qkd/etsi014.h): Boost.Beast HTTP/1.1 over Asio's OpenSSL
// stream, on a private io_context driven synchronously step by step against deadlines (the
// pattern of src/entropy/source_http.cc), with one kept-alive connection per client.
//
// Each call runs up to max_attempts attempts within total_timeout. An attempt reuses the open
// connection; if that connection turns out to be stale (the KME closed it while idle: the write
// fails, or the read ends before a single byte of the response), it reconnects and resends once,
// which is safe because the KME cannot have processed a request it never answered on a closed
// connection. Connect, resolve and TLS handshake run against connect_timeout; sending the
// request and reading the whole response against request_timeout.
//
// What is retried and what is not is decided by the error code alone (see the header): a timeout
// after the request was sent is not retried, because the KME may have released keys already.
#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
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

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/internal/asio_await.h"
#include "pki/internal/tls_context.h"
#include "qkd/internal/etsi014_json.h"
#include "qsapi/log.h"
#include "qsapi/qkd/etsi014.h"

namespace qsapi::qkd {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using ErrorCodeT = boost::system::error_code;
using Clock = std::chrono::steady_clock;
using qsapi::internal::Await;
using qsapi::internal::SslErrorReason;
using SslStream = asio::ssl::stream<tcp::socket>;

constexpr std::uint32_t kMaxHeaderBytes = 16 * 1024;

struct KmeUrl {
  std::string host;    // without brackets
  std::string port;    // decimal
  std::string prefix;  // path before /api/v1, without a trailing '/'
  std::string host_header;
  std::string display;  // https://host:port/prefix
};

Result<KmeUrl> ParseKmeUrl(std::string_view url) {
  const std::string who = "ETSI 014 client: kme_url \"" + std::string(url) + "\" ";
  if (!url.starts_with("https://")) return InvalidArgument(who + "must start with https://");
  if (url.find_first_of("?#@ \t\r\n") != std::string_view::npos) {
    return InvalidArgument(who + "must not hold a query, fragment, user information or spaces");
  }
  std::string_view rest = url.substr(8);
  const std::size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string prefix = slash == std::string_view::npos ? "" : std::string(rest.substr(slash));
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  KmeUrl u;
  std::string_view port;
  if (authority.starts_with("[")) {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return InvalidArgument(who + "has an unterminated IPv6 address");
    u.host = std::string(authority.substr(1, close - 1));
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return InvalidArgument(who + "has junk after the IPv6 address");
      port = after.substr(1);
    }
  } else {
    const std::size_t colon = authority.find(':');
    u.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (u.host.empty()) return InvalidArgument(who + "has no host");
  unsigned value = 443;
  if (!port.empty()) {
    const auto [end, err] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (err != std::errc() || end != port.data() + port.size() || value < 1 || value > 65535) {
      return InvalidArgument(who + "has an invalid port");
    }
  }
  u.port = std::to_string(value);
  const std::string bracketed = u.host.find(':') != std::string::npos ? "[" + u.host + "]" : u.host;
  u.host_header = value == 443 ? bracketed : bracketed + ":" + u.port;
  u.prefix = std::move(prefix);
  u.display = "https://" + bracketed + ":" + u.port + u.prefix;
  return u;
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

// WipeBuffer zeroes all the memory of a flat_buffer (the consumed part too: it held the response).
void WipeBuffer(boost::beast::flat_buffer& buffer) {
  buffer.consume(buffer.size());
  const auto all = buffer.prepare(buffer.capacity());
  SecureZero(all.data(), all.size());
}

struct HttpReply {
  unsigned status = 0;
  std::string body;
};

class Etsi014ClientImpl final : public Etsi014Client {
 public:
  Etsi014ClientImpl(Etsi014ClientOptions o, KmeUrl url) : o_(std::move(o)), url_(std::move(url)) {
    info_.kme_url = url_.display;
  }
  Etsi014ClientImpl(const Etsi014ClientImpl&) = delete;
  Etsi014ClientImpl& operator=(const Etsi014ClientImpl&) = delete;
  Etsi014ClientImpl(Etsi014ClientImpl&&) = delete;
  Etsi014ClientImpl& operator=(Etsi014ClientImpl&&) = delete;
  ~Etsi014ClientImpl() override { Drop(); }

  Status Init() {
    pki::TlsOptions tls;
    tls.min_version = o_.allow_tls12 ? pki::TlsVersion::kTls12 : pki::TlsVersion::kTls13;
    tls.max_version = pki::TlsVersion::kTls13;
    tls.groups = o_.groups.empty() ? std::string(pki::kKmeClientGroups) : o_.groups;
    tls.certificate_file = o_.certificate_file;
    tls.private_key_file = o_.private_key_file;
    tls.ca_file = o_.ca_file;
    tls.verify_peer = pki::PeerVerification::kRequired;
    Status s = pki::ConfigureClientContext(ssl_.native_handle(), tls);
    if (!s.ok()) return Error(s.error().code(), "KME " + url_.display + ": " + s.error().message());
    return OkStatus();
  }

  Result<KmeStatus> GetStatus(std::string_view slave_sae_id) override {
    if (slave_sae_id.empty()) return InvalidArgument("ETSI 014 client: the slave SAE_ID is empty");
    const std::string call = "status for slave SAE " + std::string(slave_sae_id);
    const std::string target = url_.prefix + "/api/v1/keys/" + PercentEncode(slave_sae_id) + "/status";
    std::lock_guard lock(mu_);
    QSAPI_ASSIGN_OR_RETURN(std::string body, Call(http::verb::get, target, "", call));
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
    QSAPI_ASSIGN_OR_RETURN(std::string reply,
                           Call(request.use_get ? http::verb::get : http::verb::post, target, body, call));
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
    QSAPI_ASSIGN_OR_RETURN(std::string reply, Call(use_get ? http::verb::get : http::verb::post, target, body, call));
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
  Result<std::string> Call(http::verb verb, const std::string& target, const std::string& body,
                           const std::string& call) {
    const Clock::time_point total_deadline = Clock::now() + o_.total_timeout;
    std::chrono::milliseconds backoff = o_.initial_backoff;
    for (int attempt = 1;; ++attempt) {
      Result<HttpReply> reply = Exchange(verb, target, body, call, total_deadline);
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

  void Drop() {
    if (stream_) {
      ErrorCodeT ignored;
      stream_->next_layer().close(ignored);
      stream_.reset();
    }
  }

  Status Connect(Clock::time_point deadline) {
    Drop();
    tcp::resolver resolver(ioc_);
    tcp::resolver::results_type endpoints;
    ErrorCodeT ec = Await(
        ioc_, deadline,
        [&](auto finish) {
          resolver.async_resolve(url_.host, url_.port, [&endpoints, finish](const ErrorCodeT& e, auto results) {
            endpoints = std::move(results);
            finish(e);
          });
        },
        [&] { resolver.cancel(); });
    if (ec == asio::error::timed_out) return DeadlineExceeded("KME " + url_.display + ": resolving the host timed out");
    if (ec) return Unavailable("KME " + url_.display + ": cannot resolve the host: " + ec.message());

    auto stream = std::make_unique<SslStream>(ioc_, ssl_);
    QSAPI_RETURN_IF_ERROR(pki::ConfigureClientConnection(stream->native_handle(), url_.host, true));
    ec = Await(
        ioc_, deadline,
        [&](auto finish) {
          asio::async_connect(stream->next_layer(), endpoints, [finish](const ErrorCodeT& e, auto) { finish(e); });
        },
        [&] {
          ErrorCodeT ignored;
          stream->next_layer().close(ignored);
        });
    if (ec == asio::error::timed_out) {
      return DeadlineExceeded("KME " + url_.display + ": no connection within " +
                              std::to_string(o_.connect_timeout.count()) + " ms");
    }
    if (ec) return Unavailable("KME " + url_.display + ": cannot connect: " + ec.message());
    ErrorCodeT nodelay_ec;  // best effort: no Nagle delay on small requests
    stream->next_layer().set_option(tcp::no_delay(true), nodelay_ec);
    ec = Await(
        ioc_, deadline, [&](auto finish) { stream->async_handshake(asio::ssl::stream_base::client, finish); },
        [&] {
          ErrorCodeT ignored;
          stream->next_layer().close(ignored);
        });
    if (ec) {
      const std::string verify = pki::VerifyErrorText(stream->native_handle());
      ERR_clear_error();
      if (!verify.empty()) {
        return FailedPrecondition("KME " + url_.display + ": TLS certificate verification of the KME failed: " +
                                  verify + " (check ca_file and the host name in kme_url)");
      }
      if (ec == asio::error::timed_out) {
        return DeadlineExceeded("KME " + url_.display + ": no TLS handshake within " +
                                std::to_string(o_.connect_timeout.count()) + " ms");
      }
      return TlsRefused(ec, "the TLS handshake");
    }
    ++info_.connections;
    SSL* ssl = stream->native_handle();
    info_.tls_version = pki::ProtocolVersionName(ssl);
    info_.tls_group = pki::NegotiatedGroupName(ssl);
    info_.pq_hybrid = pki::IsPqHybridGroup(info_.tls_group);
    Result<std::string> cn = pki::PeerCommonName(ssl);
    info_.kme_common_name = cn.ok() ? *cn : "";
    if (!o_.expected_kme_id.empty() && info_.kme_common_name != o_.expected_kme_id) {
      ErrorCodeT ignored;
      stream->next_layer().close(ignored);
      return PermissionDenied("KME " + url_.display + ": KME_ID mismatch: expected \"" + o_.expected_kme_id +
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
    stream_ = std::move(stream);
    return OkStatus();
  }

  Error TlsRefused(const ErrorCodeT& ec, std::string_view step) const {
    const std::string reason = SslErrorReason(ec);
    ERR_clear_error();
    if (reason.find("certificate") != std::string::npos || reason.find("alert") != std::string::npos) {
      return PermissionDenied("KME " + url_.display + ": the KME refused the TLS session during " + std::string(step) +
                              ": " + reason + " (is this SAE's client certificate issued by a CA the KME trusts?)");
    }
    return Unavailable("KME " + url_.display + ": " + std::string(step) + " failed: " + reason);
  }

  // Exchange runs one attempt: (re)connect when needed, send, read. A stale kept-alive connection
  // is replaced once.
  Result<HttpReply> Exchange(http::verb verb, const std::string& target, const std::string& body,
                             const std::string& call, Clock::time_point total_deadline) {
    for (int round = 0; round < 2; ++round) {
      const bool reused = stream_ != nullptr;
      if (!reused) {
        QSAPI_RETURN_IF_ERROR(Connect(std::min(Clock::now() + o_.connect_timeout, total_deadline)));
      }
      bool stale = false;
      Result<HttpReply> reply =
          SendReceive(verb, target, body, call, std::min(Clock::now() + o_.request_timeout, total_deadline), stale);
      if (!reply.ok()) Drop();
      if (reply.ok() || !(reused && stale)) return reply;
    }
    return Unavailable(Who(call) + ": the connection closed twice before an answer");
  }

  Result<HttpReply> SendReceive(http::verb verb, const std::string& target, const std::string& body,
                                const std::string& call, Clock::time_point deadline, bool& stale) {
    SslStream& stream = *stream_;
    const auto close = [&] {
      ErrorCodeT ignored;
      stream.next_layer().close(ignored);
    };
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, url_.host_header);
    req.set(http::field::user_agent, "qsapi");
    req.set(http::field::accept, "application/json");
    if (verb == http::verb::post) req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.keep_alive(o_.keep_alive);
    req.prepare_payload();
    ++info_.requests;
    ErrorCodeT ec = Await(
        ioc_, deadline,
        [&](auto finish) { http::async_write(stream, req, [finish](const ErrorCodeT& e, std::size_t) { finish(e); }); },
        close);
    if (ec == asio::error::timed_out) {
      return DeadlineExceeded(Who(call) + ": the request could not be sent within " +
                              std::to_string(o_.request_timeout.count()) + " ms");
    }
    if (ec) {
      stale = true;
      return Unavailable(Who(call) + ": sending the request failed: " + SslErrorReason(ec));
    }

    boost::beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.header_limit(kMaxHeaderBytes);
    parser.body_limit(o_.max_response_bytes);
    const auto wipe = [&] {
      auto& partial = parser.get().body();
      SecureZero(partial.data(), partial.size());
      WipeBuffer(buffer);
    };
    ec = Await(
        ioc_, deadline,
        [&](auto finish) {
          http::async_read_header(stream, buffer, parser, [finish](const ErrorCodeT& e, std::size_t) { finish(e); });
        },
        close);
    const bool nothing_read = buffer.size() == 0 && !parser.got_some();
    if (!ec && parser.content_length() && *parser.content_length() > o_.max_response_bytes) {
      wipe();
      return DataLoss(Who(call) + ": the response announces " + std::to_string(*parser.content_length()) +
                      " bytes, more than the limit of " + std::to_string(o_.max_response_bytes));
    }
    if (!ec && !parser.is_done()) {
      ec = Await(
          ioc_, deadline,
          [&](auto finish) {
            http::async_read(stream, buffer, parser, [finish](const ErrorCodeT& e, std::size_t) { finish(e); });
          },
          close);
    }
    if (ec) {
      wipe();
      if (ec == asio::error::timed_out) {
        return DeadlineExceeded(Who(call) + ": no complete response within " +
                                std::to_string(o_.request_timeout.count()) + " ms");
      }
      if (ec == http::error::body_limit) {
        return DataLoss(Who(call) + ": the response body exceeds the limit of " +
                        std::to_string(o_.max_response_bytes) + " bytes");
      }
      if (ec == http::error::header_limit) {
        return DataLoss(Who(call) + ": the response head exceeds 16 KiB");
      }
      if (nothing_read && (ec == http::error::end_of_stream || ec == asio::error::eof ||
                           ec == asio::error::connection_reset || ec == asio::ssl::error::stream_truncated)) {
        stale = true;
        return Unavailable(Who(call) + ": the KME closed the connection without answering");
      }
      if (ec.category() == asio::error::get_ssl_category()) return TlsRefused(ec, "reading the response");
      if (ec == http::error::partial_message || ec == asio::error::eof || ec == http::error::end_of_stream ||
          ec == asio::ssl::error::stream_truncated || ec == asio::error::connection_reset) {
        return DataLoss(Who(call) + ": the response was cut off (" + ec.message() + ")");
      }
      return DataLoss(Who(call) + ": malformed HTTP response (" + ec.message() + ")");
    }
    HttpReply reply;
    reply.status = parser.get().result_int();
    reply.body = std::move(parser.get().body());
    const bool keep = parser.get().keep_alive() && o_.keep_alive;
    WipeBuffer(buffer);
    if (!keep) Drop();
    return reply;
  }

  const Etsi014ClientOptions o_;
  const KmeUrl url_;
  asio::io_context ioc_{1};
  asio::ssl::context ssl_{asio::ssl::context::tls_client};
  std::unique_ptr<SslStream> stream_;
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
