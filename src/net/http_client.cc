// The one HTTP/1.1 client (net/internal/http_client.h): Beast over a TCP socket or Asio's OpenSSL
// stream, on a private io_context driven step by step against deadlines (Await below).
#include "net/internal/http_client.h"

#include <algorithm>
#include <arpa/inet.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <cstring>
#include <exception>
#include <limits>
#include <optional>

#include <openssl/ssl.h>

#include "common/internal/resolve.h"
#include "crypto/internal/openssl_util.h"
#include "pki/internal/tls_context.h"
#include "qsapi/secret.h"

namespace qsapi::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using ErrorCodeT = boost::system::error_code;
using Clock = std::chrono::steady_clock;
using SslStream = asio::ssl::stream<tcp::socket>;

// Await starts one asynchronous operation, `start(done)`, and runs the io_context until it
// completes or the deadline passes; then `cancel()` closes the socket and the aborted handler
// runs. A missed deadline returns boost::asio::error::timed_out.
template <typename Start, typename Cancel>
ErrorCodeT Await(asio::io_context& ioc, Clock::time_point deadline, Start&& start, Cancel&& cancel) {
  std::optional<ErrorCodeT> result;
  std::forward<Start>(start)([&result](const ErrorCodeT& ec) { result = ec; });
  ioc.restart();
  ioc.run_until(deadline);
  if (!result) {
    std::forward<Cancel>(cancel)();
    ioc.restart();
    ioc.run();
    return asio::error::timed_out;
  }
  return *result;
}

bool IsDnsHostChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

// TlsReason is OpenSSL's reason text for a TLS error code from Asio, else the error's message.
std::string TlsReason(const ErrorCodeT& ec) {
  if (ec.category() == asio::error::get_ssl_category()) {
    std::string reason = crypto::internal::OpenSslReasonText(
        static_cast<unsigned long>(ec.value()));  // NOLINT(google-runtime-int): OpenSSL's type
    if (!reason.empty()) return reason;
  }
  return ec.message();
}

// WipeBuffer zeroes all the memory of a flat_buffer (the consumed part too: it held the response).
void WipeBuffer(beast::flat_buffer& buffer) {
  buffer.consume(buffer.size());
  const auto all = buffer.prepare(buffer.capacity());
  SecureZero(all.data(), all.size());
}

// WipeRequest zeroes the header values and the body of a request before it is freed.
void WipeRequest(bhttp::request<bhttp::string_body>& req) {
  for (auto& field : req) {
    const beast::string_view v = field.value();
    SecureZero(const_cast<char*>(v.data()),
               v.size());  // NOLINT(cppcoreguidelines-pro-type-const-cast): the fields own it
  }
  SecureZero(req.body().data(), req.body().size());
}

std::string Ms(std::chrono::milliseconds t) { return std::to_string(t.count()) + " ms"; }

}  // namespace

Result<Url> ParseUrl(std::string_view url) {
  Url u;
  std::string_view rest;
  if (url.starts_with("https://")) {
    rest = url.substr(8);
  } else if (url.starts_with("http://")) {
    u.tls = false;
    rest = url.substr(7);
  } else {
    return InvalidArgument("must start with http:// or https://");
  }
  if (!std::all_of(url.begin(), url.end(), [](char c) { return c > 0x20 && c < 0x7f; })) {
    return InvalidArgument("contains spaces or control characters");
  }
  if (url.find('#') != std::string_view::npos) return InvalidArgument("must not have a fragment");
  const std::size_t path_start = rest.find_first_of("/?");
  const std::string_view authority = rest.substr(0, path_start);
  std::string target = path_start == std::string_view::npos ? "/" : std::string(rest.substr(path_start));
  if (target.front() == '?') target.insert(0, "/");
  if (authority.find('@') != std::string_view::npos) return InvalidArgument("must not contain user information");
  std::string_view port;
  bool has_port = false;
  if (authority.starts_with("[")) {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return InvalidArgument("has an unterminated IPv6 address");
    u.host = std::string(authority.substr(1, close - 1));
    unsigned char buf[16];
    if (::inet_pton(AF_INET6, u.host.c_str(), buf) != 1) return InvalidArgument("has an invalid IPv6 address");
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return InvalidArgument("has junk after the IPv6 address");
      port = after.substr(1);
      has_port = true;
    }
  } else {
    const std::size_t colon = authority.find(':');
    u.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      has_port = true;
    }
    if (!std::all_of(u.host.begin(), u.host.end(), IsDnsHostChar)) return InvalidArgument("has an invalid host");
  }
  if (u.host.empty()) return InvalidArgument("has no host");
  const unsigned default_port = u.tls ? 443 : 80;
  unsigned value = default_port;
  if (has_port) {
    const auto [end, err] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || err != std::errc() || end != port.data() + port.size() || value < 1 || value > 65535) {
      return InvalidArgument("has an invalid port (1..65535)");
    }
  }
  u.port = std::to_string(value);
  const std::string bracketed = u.host.find(':') != std::string::npos ? "[" + u.host + "]" : u.host;
  u.host_header = value == default_port ? bracketed : bracketed + ":" + u.port;
  u.target = std::move(target);
  u.origin = (u.tls ? "https://" : "http://") + bracketed + ":" + u.port;
  return u;
}

class HttpClient::Impl {
 public:
  Impl(HttpClientOptions o, Url url) : o_(std::move(o)), url_(std::move(url)) {}
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  Impl(Impl&&) = delete;
  Impl& operator=(Impl&&) = delete;
  ~Impl() { Drop(); }

  Status Init() {
    if (!url_.tls) return OkStatus();
    try {
      ssl_ = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
    } catch (const std::exception& e) {
      return Internal(std::string("cannot create a TLS context: ") + e.what());
    }
    return pki::ConfigureClientContext(ssl_->native_handle(), o_.tls);
  }

  Result<HttpReply> Send(const HttpClientRequest& request, Clock::time_point deadline) {
    failure_ = Failure::kNone;
    const bhttp::verb verb = bhttp::string_to_verb(beast::string_view(request.method.data(), request.method.size()));
    if (verb == bhttp::verb::unknown) {
      return InvalidArgument("unknown HTTP method \"" + std::string(request.method) + "\"");
    }
    if (request.target.empty() || request.target.front() != '/') {
      return InvalidArgument("the request target must start with '/'");
    }
    if (request.target.find_first_of(" \r\n") != std::string_view::npos) {
      return InvalidArgument("the request target holds spaces or line breaks");
    }
    bhttp::request<bhttp::string_body> req{verb, std::string(request.target), 11};
    req.set(bhttp::field::host, url_.host_header);
    req.set(bhttp::field::user_agent, o_.user_agent);
    req.keep_alive(o_.keep_alive);
    for (const auto& [name, value] : request.headers) req.set(name, value);
    if (!request.body.empty() || verb == bhttp::verb::post || verb == bhttp::verb::put) {
      req.set(bhttp::field::content_type,
              request.content_type.empty() ? "application/json" : std::string(request.content_type));
      req.body() = std::string(request.body);
      req.prepare_payload();
    }
    Result<HttpReply> reply = Attempt(req, deadline);
    WipeRequest(req);
    return reply;
  }

  void Drop() {
    ErrorCodeT ignored;
    if (tls_) tls_->next_layer().close(ignored);
    if (plain_) plain_->close(ignored);
    tls_.reset();
    plain_.reset();
  }

  [[nodiscard]] bool connected() const { return tls_ != nullptr || plain_ != nullptr; }
  [[nodiscard]] const Url& url() const noexcept { return url_; }
  [[nodiscard]] Failure failure() const noexcept { return failure_; }
  void set_failure(Failure f) noexcept { failure_ = f; }
  [[nodiscard]] const ConnectionInfo& info() const noexcept { return info_; }
  [[nodiscard]] std::uint64_t connections() const noexcept { return connections_; }

 private:
  Error Fail(Failure kind, ErrorCode code, std::string message) {
    failure_ = kind;
    return {code, std::move(message)};
  }

  // Attempt sends on the open connection, or on a new one; a reused connection that the server
  // had closed is replaced once.
  Result<HttpReply> Attempt(bhttp::request<bhttp::string_body>& req, Clock::time_point deadline) {
    for (int round = 0; round < 2; ++round) {
      failure_ = Failure::kNone;
      const bool reused = connected();
      if (!reused) {
        if (Status c = Connect(std::min(Clock::now() + o_.connect_timeout, deadline)); !c.ok()) {
          if (failure_ == Failure::kNone) failure_ = Failure::kConnect;  // setting up the connection failed
          return c.error();
        }
      }
      const Clock::time_point until = std::min(Clock::now() + o_.request_timeout, deadline);
      bool stale = false;
      Result<HttpReply> reply = tls_ ? Exchange(*tls_, req, until, stale) : Exchange(*plain_, req, until, stale);
      if (!reply.ok()) Drop();
      if (reply.ok() || !(reused && stale)) return reply;
    }
    return Fail(Failure::kUnanswered, ErrorCode::kUnavailable, "the connection closed twice before an answer");
  }

  tcp::socket& Socket() { return tls_ ? tls_->next_layer() : *plain_; }

  void CloseSocket() {
    ErrorCodeT ignored;
    Socket().close(ignored);
  }

  Status Connect(Clock::time_point deadline) {
    Drop();
    const auto timed_out = [&](std::string_view step) {
      return Fail(Failure::kTimeout, ErrorCode::kDeadlineExceeded,
                  "no connection within " + Ms(o_.connect_timeout) + " (while " + std::string(step) + ")");
    };
    Result<std::vector<qsapi::internal::ResolvedAddress>> addresses =
        qsapi::internal::ResolveWithDeadline(url_.host, url_.port, deadline);
    if (!addresses.ok()) {
      if (addresses.error().code() == ErrorCode::kDeadlineExceeded) return timed_out("resolving the host");
      return Fail(Failure::kResolve, ErrorCode::kUnavailable, addresses.error().message());
    }
    std::vector<tcp::endpoint> endpoints;
    for (const qsapi::internal::ResolvedAddress& a : *addresses) {
      tcp::endpoint ep;
      std::memcpy(ep.data(), &a.address, a.length);
      ep.resize(a.length);
      endpoints.push_back(ep);
    }
    if (url_.tls) {
      tls_ = std::make_unique<SslStream>(ioc_, *ssl_);
      QSAPI_RETURN_IF_ERROR(pki::ConfigureClientConnection(tls_->native_handle(), url_.host,
                                                           o_.tls.verify_peer != pki::PeerVerification::kNone));
    } else {
      plain_ = std::make_unique<tcp::socket>(ioc_);
    }
    ErrorCodeT ec = Await(
        ioc_, deadline,
        [&](auto finish) {
          asio::async_connect(Socket(), endpoints, [finish](const ErrorCodeT& e, auto) { finish(e); });
        },
        [&] { CloseSocket(); });
    if (ec) {
      Drop();
      if (ec == asio::error::timed_out) return timed_out("connecting");
      return Fail(Failure::kConnect, ErrorCode::kUnavailable, "cannot connect: " + ec.message());
    }
    ErrorCodeT nodelay;  // best effort: no Nagle delay on small requests
    Socket().set_option(tcp::no_delay(true), nodelay);
    info_ = ConnectionInfo{};
    if (tls_) {
      ec = Await(
          ioc_, deadline, [&](auto finish) { tls_->async_handshake(asio::ssl::stream_base::client, finish); },
          [&] { CloseSocket(); });
      if (ec) {
        Status s = HandshakeFailure(ec);
        Drop();
        return s;
      }
      SSL* ssl = tls_->native_handle();
      info_.tls_version = pki::ProtocolVersionName(ssl);
      info_.tls_group = pki::NegotiatedGroupName(ssl);
      info_.pq_hybrid = pki::IsPqHybridGroup(info_.tls_group);
      Result<std::string> cn = pki::PeerCommonName(ssl);
      info_.peer_common_name = cn.ok() ? *cn : "";
    }
    ++connections_;
    if (o_.on_connect) {
      if (Status s = o_.on_connect(info_); !s.ok()) {
        Drop();
        failure_ = Failure::kRefused;
        return s;
      }
    }
    return OkStatus();
  }

  Error HandshakeFailure(const ErrorCodeT& ec) {
    const std::string verify = pki::VerifyErrorText(tls_->native_handle());
    if (!verify.empty()) {
      crypto::internal::ClearOpenSslErrors();
      return Fail(Failure::kCertificate, ErrorCode::kFailedPrecondition,
                  "TLS certificate verification failed: " + verify + " (check the CA file and the host name)");
    }
    if (ec == asio::error::timed_out) {
      return Fail(Failure::kTimeout, ErrorCode::kDeadlineExceeded,
                  "no connection within " + Ms(o_.connect_timeout) + " (while the TLS handshake)");
    }
    return TlsFailure(ec, "the TLS handshake");
  }

  // TlsFailure classifies a TLS error: an alert about certificates means the server refused us.
  Error TlsFailure(const ErrorCodeT& ec, std::string_view step) {
    const std::string reason = TlsReason(ec);
    crypto::internal::ClearOpenSslErrors();
    if (reason.find("certificate") != std::string::npos || reason.find("unknown ca") != std::string::npos ||
        reason.find("access denied") != std::string::npos) {
      return Fail(Failure::kTlsRefused, ErrorCode::kPermissionDenied,
                  "the server refused the TLS session during " + std::string(step) + ": " + reason +
                      " (is the client certificate issued by a CA the server trusts?)");
    }
    return Fail(Failure::kTls, ErrorCode::kUnavailable,
                std::string(step) + " failed: " + reason + " (offered groups " + o_.tls.groups + ")");
  }

  template <typename Stream>
  Result<HttpReply> Exchange(Stream& stream, bhttp::request<bhttp::string_body>& req, Clock::time_point deadline,
                             bool& stale) {
    const auto timed_out = [&](std::string_view step) {
      return Fail(Failure::kTimeout, ErrorCode::kDeadlineExceeded,
                  "no response within " + Ms(o_.request_timeout) + " (while " + std::string(step) + ")");
    };
    ErrorCodeT ec = Await(
        ioc_, deadline,
        [&](auto finish) {
          bhttp::async_write(stream, req, [finish](const ErrorCodeT& e, std::size_t) { finish(e); });
        },
        [&] { CloseSocket(); });
    if (ec == asio::error::timed_out) return timed_out("sending the request");
    if (ec) {
      stale = true;
      return Fail(Failure::kSend, ErrorCode::kUnavailable, "sending the request failed: " + TlsReason(ec));
    }

    beast::flat_buffer buffer;
    bhttp::response_parser<bhttp::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(o_.max_header_bytes));
    parser.body_limit(o_.max_response_bytes);
    const auto wipe = [&] {
      auto& partial = parser.get().body();
      SecureZero(partial.data(), partial.size());
      WipeBuffer(buffer);
    };
    const auto too_large = [&] {
      wipe();
      return Fail(Failure::kTooLarge, ErrorCode::kDataLoss,
                  "the response body exceeds the limit of " + std::to_string(o_.max_response_bytes) + " bytes");
    };
    // The head first: a Content-Length over the limit is refused before any body is buffered
    // (string_body reserves the announced length; Beast 1.74 does not always hold body_limit
    // against Content-Length itself).
    ec = Await(
        ioc_, deadline,
        [&](auto finish) {
          bhttp::async_read_header(stream, buffer, parser, [finish](const ErrorCodeT& e, std::size_t) { finish(e); });
        },
        [&] { CloseSocket(); });
    const bool nothing_read = buffer.size() == 0 && !parser.got_some();
    if (!ec && parser.content_length() && *parser.content_length() > o_.max_response_bytes) return too_large();
    if (!ec && !parser.is_done()) {
      ec = Await(
          ioc_, deadline,
          [&](auto finish) {
            bhttp::async_read(stream, buffer, parser, [finish](const ErrorCodeT& e, std::size_t) { finish(e); });
          },
          [&] { CloseSocket(); });
    }
    if (ec == bhttp::error::body_limit || (!ec && parser.get().body().size() > o_.max_response_bytes)) {
      return too_large();
    }
    if (ec) {
      wipe();
      if (ec == asio::error::timed_out) return timed_out("reading the response");
      if (ec == bhttp::error::header_limit) {
        return Fail(Failure::kTooLarge, ErrorCode::kDataLoss,
                    "the response head exceeds " + std::to_string(o_.max_header_bytes) + " bytes");
      }
      const bool closed = ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
                          ec == asio::error::connection_reset || ec == asio::ssl::error::stream_truncated;
      if (nothing_read && closed) {
        stale = true;
        return Fail(Failure::kUnanswered, ErrorCode::kUnavailable,
                    "the server closed the connection without answering");
      }
      if (ec.category() == asio::error::get_ssl_category()) return TlsFailure(ec, "reading the response");
      if (closed || ec == bhttp::error::partial_message) {
        return Fail(Failure::kCutOff, ErrorCode::kDataLoss, "the response was cut off (" + ec.message() + ")");
      }
      return Fail(Failure::kMalformed, ErrorCode::kDataLoss, "malformed HTTP response (" + ec.message() + ")");
    }
    HttpReply reply;
    reply.status = parser.get().result_int();
    reply.content_type = std::string(parser.get()[bhttp::field::content_type]);
    for (const auto& field : parser.get()) {
      const boost::beast::string_view name = field.name_string();
      if (name.size() > 6 && boost::beast::iequals(name.substr(0, 6), "qsapi-")) {
        reply.qsapi_headers.emplace_back(std::string(name), std::string(field.value()));
      }
    }
    reply.body = std::move(parser.get().body());
    const bool keep = parser.get().keep_alive() && o_.keep_alive;
    WipeBuffer(buffer);
    if (!keep) Drop();
    return reply;
  }

  HttpClientOptions o_;
  Url url_;
  Failure failure_ = Failure::kNone;
  ConnectionInfo info_;
  std::uint64_t connections_ = 0;
  asio::io_context ioc_{1};
  std::unique_ptr<asio::ssl::context> ssl_;  // https only
  std::unique_ptr<SslStream> tls_;           // the connection over https
  std::unique_ptr<tcp::socket> plain_;       // the connection over http
};

HttpClient::HttpClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpClient::~HttpClient() = default;

Result<std::unique_ptr<HttpClient>> HttpClient::Create(const HttpClientOptions& options) {
  Result<Url> url = ParseUrl(options.url);
  // The URL is not repeated: its query may hold a credential (the caller names what it configured).
  if (!url.ok()) return InvalidArgument("the URL " + url.error().message());
  if (options.connect_timeout.count() <= 0 || options.request_timeout.count() <= 0) {
    return InvalidArgument("HTTP client timeouts must be positive");
  }
  if (options.max_response_bytes < 1 || options.max_header_bytes < 1024 ||
      options.max_header_bytes > std::numeric_limits<std::uint32_t>::max()) {
    return InvalidArgument("HTTP client limits: max_response_bytes >= 1, max_header_bytes >= 1024");
  }
  auto impl = std::make_unique<Impl>(options, std::move(url).value());
  QSAPI_RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<HttpClient>(new HttpClient(std::move(impl)));
}

Result<HttpReply> HttpClient::Send(const HttpClientRequest& request, Clock::time_point deadline) {
  try {
    return impl_->Send(request, deadline);
  } catch (const std::exception& e) {
    // Asio and Beast report through error codes here; this is a backstop (std::bad_alloc).
    impl_->Drop();
    impl_->set_failure(Failure::kSend);
    return Unavailable(std::string("the request failed: ") + e.what());
  }
}

Result<HttpReply> HttpClient::Request(std::string_view method, std::string_view target, std::string_view body,
                                      std::vector<std::pair<std::string, std::string>> headers) {
  HttpClientRequest request;
  request.method = method;
  request.target = target;
  request.body = body;
  request.headers = std::move(headers);
  Result<HttpReply> reply = Send(request);
  for (auto& [name, value] : request.headers) SecureZero(value.data(), value.size());
  return reply;
}

Failure HttpClient::failure() const noexcept { return impl_->failure(); }
void HttpClient::Close() { impl_->Drop(); }
const Url& HttpClient::url() const noexcept { return impl_->url(); }
const ConnectionInfo& HttpClient::connection() const noexcept { return impl_->info(); }
std::string HttpClient::tls_group() const { return impl_->connected() ? impl_->info().tls_group : std::string(); }
std::uint64_t HttpClient::connections() const noexcept { return impl_->connections(); }

}  // namespace qsapi::net
