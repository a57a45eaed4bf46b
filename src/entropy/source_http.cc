// A QRNG HTTP(S) service as an entropy source: Boost.Beast over Boost.Asio (+ Asio SSL on OpenSSL).
//
// Each ReadRaw issues GET <url>?<length_param>=<n> requests, n <= max_bytes_per_request, on a
// fresh connection each (no keep-alive: a QRNG request is rare and a stale pooled connection is
// one more failure mode), until the buffer is full. Every asynchronous step of a request (resolve,
// connect, TLS handshake, write, read) runs on a private io_context against one deadline,
// now + timeout; when the deadline passes the socket is closed and the request fails. The response
// body is bounded (max_response_bytes) by Beast's parser, so a hostile server cannot make us
// buffer without limit.
//
// https: TLS 1.2 or later, the peer's chain verified (SSL_VERIFY_PEER) against ca_file or the
// default verify paths, the host name checked (SSL_set1_host) and sent as SNI. verify_tls = false
// switches verification off (a test rig only).
//
// The API key travels in a request header only. It is never put in a message; errors name the
// source id and the URL without its query.
#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "common/internal/asio_await.h"
#include "common/internal/resolve.h"
#include "entropy/internal/qrng_payload.h"
#include "qsapi/entropy/source.h"
#include "qsapi/log.h"
#include "qsapi/secret.h"

namespace qsapi::entropy {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using ErrorCodeT = boost::system::error_code;
using Clock = std::chrono::steady_clock;
using qsapi::internal::Await;

constexpr std::size_t kMaxBytesPerRequest = std::size_t{1} << 20;  // 1 MiB of random bytes per GET
constexpr std::size_t kMaxResponseBytes = std::size_t{64} << 20;   // 64 MiB
constexpr std::uint32_t kMaxHeaderBytes = 16 * 1024;

struct ParsedUrl {
  bool tls = false;
  std::string host;    // without brackets: what the resolver and TLS get
  std::string port;    // decimal
  std::string target;  // path[?query]
  std::string host_header;
  std::string display;  // scheme://host:port/path, without the query (it may carry credentials)
};

bool IsTokenChar(char c) {
  // RFC 9110 tchar.
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool IsToken(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), IsTokenChar); }

bool IsPrintableAscii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

Result<ParsedUrl> ParseUrl(std::string_view url, const std::string& who) {
  ParsedUrl u;
  std::string_view rest;
  if (url.starts_with("https://")) {
    u.tls = true;
    rest = url.substr(8);
  } else if (url.starts_with("http://")) {
    rest = url.substr(7);
  } else {
    return InvalidArgument(who + "option url must start with http:// or https://");
  }
  if (!IsPrintableAscii(url)) return InvalidArgument(who + "option url contains spaces or control characters");
  if (url.find('#') != std::string_view::npos) return InvalidArgument(who + "option url must not have a fragment");
  const std::size_t path_start = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, path_start);
  std::string target = path_start == std::string_view::npos ? "/" : std::string(rest.substr(path_start));
  if (target.front() == '?') target.insert(0, "/");
  if (authority.find('@') != std::string_view::npos) {
    return InvalidArgument(who + "option url must not contain user information (use api_key)");
  }
  std::string_view port;
  if (authority.starts_with("[")) {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return InvalidArgument(who + "option url has an unterminated IPv6 host");
    u.host = std::string(authority.substr(1, close - 1));
    ErrorCodeT ec;
    (void)asio::ip::make_address_v6(u.host, ec);
    if (ec) return InvalidArgument(who + "option url has an invalid IPv6 host");
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return InvalidArgument(who + "option url has junk after the IPv6 host");
      port = after.substr(1);
      if (port.empty()) return InvalidArgument(who + "option url has an empty port");
    }
  } else {
    const std::size_t colon = authority.find(':');
    u.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      if (port.empty()) return InvalidArgument(who + "option url has an empty port");
    }
    const bool host_ok = std::all_of(u.host.begin(), u.host.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
    });
    if (!host_ok) return InvalidArgument(who + "option url has an invalid host");
  }
  if (u.host.empty()) return InvalidArgument(who + "option url has no host");
  if (port.empty()) {
    u.port = u.tls ? "443" : "80";
  } else {
    unsigned value = 0;
    const auto [end, err] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (err != std::errc() || end != port.data() + port.size() || value < 1 || value > 65535) {
      return InvalidArgument(who + "option url has an invalid port (1..65535)");
    }
    u.port = std::to_string(value);
  }
  const bool ipv6 = u.host.find(':') != std::string::npos;
  const std::string bracketed = ipv6 ? "[" + u.host + "]" : u.host;
  const bool default_port = u.port == (u.tls ? "443" : "80");
  u.host_header = default_port ? bracketed : bracketed + ":" + u.port;
  u.target = std::move(target);
  u.display = (u.tls ? "https://" : "http://") + bracketed + ":" + u.port + u.target.substr(0, u.target.find('?'));
  return u;
}

class HttpSource final : public EntropySource {
 public:
  HttpSource(const HttpSourceOptions& o, ParsedUrl url, std::unique_ptr<asio::ssl::context> ssl)
      : id_(o.id),
        url_(std::move(url)),
        api_key_header_(o.api_key_header),
        api_key_(o.api_key),
        json_field_(o.json_field),
        length_param_(o.length_param),
        min_entropy_(o.min_entropy),
        max_bytes_per_request_(o.max_bytes_per_request),
        max_response_bytes_(o.max_response_bytes),
        timeout_(o.timeout),
        verify_tls_(o.verify_tls),
        ssl_(std::move(ssl)) {}
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
      // Asio and Beast report through error codes here; this is a backstop (e.g. std::bad_alloc).
      status = Unavailable(Name() + ": request failed: " + e.what());
    }
    if (!status.ok()) SecureZero(out.data(), out.size());
    return status;
  }

 private:
  [[nodiscard]] std::string Name() const { return "entropy source \"" + id_ + "\" (" + url_.display + ")"; }

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

  Error TransportError(std::string_view step, const ErrorCodeT& ec, std::size_t done, std::size_t total) const {
    if (ec == asio::error::timed_out) {
      return Unavailable(Name() + ": no response within " + std::to_string(timeout_.count()) + " ms (while " +
                         std::string(step) + ")" + Progress(done, total));
    }
    return Unavailable(Name() + ": " + std::string(step) + " failed: " + ec.message() + Progress(done, total));
  }

  // RequestInto fetches exactly out.size() bytes with one GET.
  Status RequestInto(std::span<std::uint8_t> out, std::size_t done, std::size_t total) {
    const Clock::time_point deadline = Clock::now() + timeout_;
    asio::io_context ioc;
    // Resolution is bounded by the same deadline (getaddrinfo itself cannot be cancelled).
    Result<std::vector<qsapi::internal::ResolvedAddress>> addresses =
        qsapi::internal::ResolveWithDeadline(url_.host, url_.port, deadline);
    if (!addresses.ok()) {
      if (addresses.error().code() == ErrorCode::kDeadlineExceeded) {
        return TransportError("resolving the host", asio::error::timed_out, done, total);
      }
      return Unavailable(Name() + ": " + addresses.error().message() + Progress(done, total));
    }
    std::vector<tcp::endpoint> endpoints;
    for (const qsapi::internal::ResolvedAddress& a : *addresses) {
      tcp::endpoint ep;
      std::memcpy(ep.data(), &a.address, a.length);
      ep.resize(a.length);
      endpoints.push_back(ep);
    }
    ErrorCodeT ec;

    http::request<http::empty_body> req{http::verb::get, Target(out.size()), 11};
    req.set(http::field::host, url_.host_header);
    req.set(http::field::user_agent, "qsapi");
    req.set(http::field::accept, "application/json, text/plain");
    req.keep_alive(false);
    if (!api_key_header_.empty()) req.set(api_key_header_, api_key_);

    std::string body;
    unsigned status = 0;
    if (url_.tls) {
      asio::ssl::stream<tcp::socket> stream(ioc, *ssl_);
      QSAPI_RETURN_IF_ERROR(ConfigureTls(stream.native_handle()));
      QSAPI_RETURN_IF_ERROR(Connect(ioc, deadline, stream.next_layer(), endpoints, done, total));
      ec = Await(
          ioc, deadline, [&](auto finish) { stream.async_handshake(asio::ssl::stream_base::client, finish); },
          [&] { CloseSocket(stream.next_layer()); });
      if (ec) {
        const long verify = SSL_get_verify_result(stream.native_handle());
        if (verify_tls_ && verify != X509_V_OK) {
          return Unavailable(Name() + ": TLS certificate verification failed: " +
                             X509_verify_cert_error_string(verify) + Progress(done, total));
        }
        return TransportError("the TLS handshake", ec, done, total);
      }
      WarnOnceIfClassical(stream.native_handle());
      QSAPI_RETURN_IF_ERROR(Exchange(ioc, deadline, stream, stream.next_layer(), req, body, status, done, total));
    } else {
      tcp::socket socket(ioc);
      QSAPI_RETURN_IF_ERROR(Connect(ioc, deadline, socket, endpoints, done, total));
      QSAPI_RETURN_IF_ERROR(Exchange(ioc, deadline, socket, socket, req, body, status, done, total));
    }
    // The request held the key: wipe its copy in the header block before it is freed.
    if (!api_key_header_.empty()) {
      if (auto it = req.find(api_key_header_); it != req.end()) {
        const boost::beast::string_view v = it->value();
        SecureZero(const_cast<char*>(v.data()), v.size());  // NOLINT(cppcoreguidelines-pro-type-const-cast)
      }
    }

    if (status != 200) {
      SecureZero(body.data(), body.size());
      return Unavailable(Name() + ": HTTP status " + std::to_string(status) + " (expected 200)" +
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
    const char sep = url_.target.find('?') == std::string::npos ? '?' : '&';
    return url_.target + sep + length_param_ + "=" + std::to_string(n);
  }

  // A QRNG service is not ours: it may offer only classical key exchange. Its bytes are mixed with
  // the OS CSPRNG and never used alone, so such a link is allowed, and said once per source.
  void WarnOnceIfClassical(SSL* ssl) {
    const int nid = SSL_get_negotiated_group(ssl);
    const char* name = nid != NID_undef ? SSL_group_to_name(ssl, nid) : nullptr;
    const std::string group = name != nullptr ? name : "unknown";
    negotiated_group_ = group;
    std::string upper = group;
    std::transform(upper.begin(), upper.end(), upper.begin(), [](unsigned char c) { return std::toupper(c); });
    if (upper.find("MLKEM") != std::string::npos || warned_classical_) return;
    warned_classical_ = true;
    Log(LogLevel::kWarning, "entropy",
        Name() + ": the TLS link uses the classical key exchange " + group +
            " (no hybrid post-quantum group offered by the service); its bytes are still mixed with the OS CSPRNG");
  }

  static void CloseSocket(tcp::socket& socket) {
    ErrorCodeT ignored;
    socket.close(ignored);
  }

  Status ConfigureTls(SSL* ssl) const {
    if (verify_tls_) {
      SSL_set_verify(ssl, SSL_VERIFY_PEER, nullptr);
      if (SSL_set1_host(ssl, url_.host.c_str()) != 1) {
        return Internal(Name() + ": cannot set the TLS host name to check");
      }
    } else {
      SSL_set_verify(ssl, SSL_VERIFY_NONE, nullptr);
    }
    ErrorCodeT ec;
    (void)asio::ip::make_address(url_.host, ec);
    // SNI carries host names only (RFC 6066, section 3), never IP literals.
    if (ec && SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                       // SSL_set_tlsext_host_name is this call behind an old-style cast.
                       const_cast<char*>(url_.host.c_str())) != 1) {
      return Internal(Name() + ": cannot set the TLS server name (SNI)");
    }
    return OkStatus();
  }

  Status Connect(asio::io_context& ioc, Clock::time_point deadline, tcp::socket& socket,
                 const std::vector<tcp::endpoint>& endpoints, std::size_t done, std::size_t total) const {
    const ErrorCodeT ec = Await(
        ioc, deadline,
        [&](auto finish) {
          asio::async_connect(socket, endpoints, [finish](const ErrorCodeT& e, auto) { finish(e); });
        },
        [&] { CloseSocket(socket); });
    if (ec) return TransportError("connecting", ec, done, total);
    return OkStatus();
  }

  template <typename Stream>
  Status Exchange(asio::io_context& ioc, Clock::time_point deadline, Stream& stream, tcp::socket& socket,
                  http::request<http::empty_body>& req, std::string& body, unsigned& status, std::size_t done,
                  std::size_t total) const {
    ErrorCodeT ec = Await(
        ioc, deadline,
        [&](auto finish) { http::async_write(stream, req, [finish](const ErrorCodeT& e, std::size_t) { finish(e); }); },
        [&] { CloseSocket(socket); });
    if (ec) return TransportError("sending the request", ec, done, total);

    boost::beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.header_limit(kMaxHeaderBytes);
    parser.body_limit(max_response_bytes_);
    // The head first: a Content-Length over the limit is refused before any body is buffered
    // (string_body reserves the announced length). Beast 1.74 does not always enforce body_limit
    // against Content-Length itself, so it is checked here as well.
    ec = Await(
        ioc, deadline,
        [&](auto finish) {
          http::async_read_header(stream, buffer, parser, [finish](const ErrorCodeT& e, std::size_t) { finish(e); });
        },
        [&] { CloseSocket(socket); });
    const auto too_large = [&] {
      return Unavailable(Name() + ": response body exceeds the limit of " + std::to_string(max_response_bytes_) +
                         " bytes" + Progress(done, total));
    };
    if (!ec && parser.content_length() && *parser.content_length() > max_response_bytes_) return too_large();
    if (!ec && !parser.is_done()) {
      ec = Await(
          ioc, deadline,
          [&](auto finish) {
            http::async_read(stream, buffer, parser, [finish](const ErrorCodeT& e, std::size_t) { finish(e); });
          },
          [&] { CloseSocket(socket); });
    }
    if (ec == http::error::body_limit || (!ec && parser.get().body().size() > max_response_bytes_)) {
      auto& partial = parser.get().body();
      SecureZero(partial.data(), partial.size());
      return too_large();
    }
    if (ec) {
      auto& partial = parser.get().body();
      SecureZero(partial.data(), partial.size());
      return TransportError("reading the response", ec, done, total);
    }
    status = parser.get().result_int();
    body = std::move(parser.get().body());
    CloseSocket(socket);
    return OkStatus();
  }

  std::string id_;
  ParsedUrl url_;
  std::string api_key_header_;
  std::string api_key_;
  std::string json_field_;
  std::string length_param_;
  double min_entropy_;
  std::size_t max_bytes_per_request_;
  std::size_t max_response_bytes_;
  std::chrono::milliseconds timeout_;
  bool verify_tls_;
  bool warned_classical_ = false;
  std::string negotiated_group_;
  std::unique_ptr<asio::ssl::context> ssl_;  // https only
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

Result<std::unique_ptr<asio::ssl::context>> MakeTlsContext(const HttpSourceOptions& o, const std::string& who) {
  std::unique_ptr<asio::ssl::context> ctx;
  try {
    ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
  } catch (const std::exception& e) {
    return Internal(who + "cannot create a TLS context: " + e.what());
  }
  if (SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION) != 1) {
    return Internal(who + "cannot require TLS 1.2 or later");
  }
  if (o.verify_tls) {
    ErrorCodeT ec;
    if (o.ca_file.empty()) {
      ctx->set_default_verify_paths(ec);
      if (ec) return Unavailable(who + "cannot load the default TLS trust anchors: " + ec.message());
    } else {
      ctx->load_verify_file(o.ca_file, ec);
      if (ec) return InvalidArgument(who + "cannot load option ca_file " + o.ca_file + ": " + ec.message());
    }
  }
  return ctx;
}

}  // namespace

Result<std::unique_ptr<EntropySource>> OpenHttpSource(const HttpSourceOptions& options) {
  const std::string who = "entropy source \"" + options.id + "\": ";
  QSAPI_RETURN_IF_ERROR(CheckOptions(options, who));
  Result<ParsedUrl> url = ParseUrl(options.url, who);
  if (!url.ok()) return url.error();
  std::unique_ptr<asio::ssl::context> ssl;
  if (url->tls) {
    Result<std::unique_ptr<asio::ssl::context>> ctx = MakeTlsContext(options, who);
    if (!ctx.ok()) return ctx.error();
    ssl = std::move(ctx).value();
  }
  return std::unique_ptr<EntropySource>(std::make_unique<HttpSource>(options, std::move(url).value(), std::move(ssl)));
}

}  // namespace qsapi::entropy
