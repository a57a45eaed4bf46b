#include "net/https_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <optional>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/internal/asio_await.h"
#include "pki/internal/tls_context.h"
#include "qsapi/secret.h"

namespace qsapi::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using ErrorCodeT = boost::system::error_code;
using Clock = std::chrono::steady_clock;
using qsapi::internal::Await;
using qsapi::internal::SslErrorReason;

class HttpsClient::Impl {
 public:
  using Stream = asio::ssl::stream<tcp::socket>;

  HttpsClientOptions o;
  std::string host, port;
  asio::io_context ioc;
  asio::ssl::context ssl{asio::ssl::context::tls_client};
  std::unique_ptr<Stream> stream;
  std::uint64_t connections = 0;
  std::string group;

  Error Fail(ErrorCode code, const std::string& what) const { return Error(code, o.base_url + ": " + what); }

  void Drop() {
    if (stream) {
      ErrorCodeT ignored;
      stream->next_layer().close(ignored);
      stream.reset();
    }
    group.clear();
  }

  Status Connect(Clock::time_point deadline) {
    Drop();
    tcp::resolver resolver(ioc);
    tcp::resolver::results_type endpoints;
    ErrorCodeT ec = Await(
        ioc, deadline,
        [&](auto finish) {
          resolver.async_resolve(host, port, [&endpoints, finish](const ErrorCodeT& e, auto results) {
            endpoints = std::move(results);
            finish(e);
          });
        },
        [&] { resolver.cancel(); });
    if (ec == asio::error::timed_out) return Fail(ErrorCode::kDeadlineExceeded, "resolving the host timed out");
    if (ec) return Fail(ErrorCode::kUnavailable, "cannot resolve the host: " + ec.message());
    auto s = std::make_unique<Stream>(ioc, ssl);
    QSAPI_RETURN_IF_ERROR(
        pki::ConfigureClientConnection(s->native_handle(), host, o.tls.verify_peer != pki::PeerVerification::kNone));
    const auto close = [&] {
      ErrorCodeT ignored;
      s->next_layer().close(ignored);
    };
    ec = Await(
        ioc, deadline,
        [&](auto finish) {
          asio::async_connect(s->next_layer(), endpoints, [finish](const ErrorCodeT& e, auto) { finish(e); });
        },
        close);
    if (ec == asio::error::timed_out) return Fail(ErrorCode::kDeadlineExceeded, "no connection in time");
    if (ec) return Fail(ErrorCode::kUnavailable, "cannot connect: " + ec.message());
    ErrorCodeT nodelay;
    s->next_layer().set_option(tcp::no_delay(true), nodelay);
    ec = Await(
        ioc, deadline, [&](auto finish) { s->async_handshake(asio::ssl::stream_base::client, finish); }, close);
    if (ec) {
      const std::string verify = pki::VerifyErrorText(s->native_handle());
      ERR_clear_error();
      if (!verify.empty()) {
        return Fail(ErrorCode::kFailedPrecondition,
                    "the server's certificate does not verify: " + verify + " (check the CA file and the host name)");
      }
      if (ec == asio::error::timed_out) return Fail(ErrorCode::kDeadlineExceeded, "no TLS handshake in time");
      return Fail(ErrorCode::kUnavailable, "TLS handshake failed: " + SslErrorReason(ec) +
                                               " (the server may not accept the offered groups " + o.tls.groups + ")");
    }
    group = pki::NegotiatedGroupName(s->native_handle());
    ++connections;
    stream = std::move(s);
    return OkStatus();
  }

  // Once sends the request and reads the reply on the current connection.
  Result<HttpsReply> Once(const http::request<http::string_body>& req, Clock::time_point deadline, bool* retry) {
    *retry = false;
    const auto close = [&] {
      ErrorCodeT ignored;
      stream->next_layer().close(ignored);
    };
    ErrorCodeT ec = Await(
        ioc, deadline,
        [&](auto finish) {
          http::async_write(*stream, req, [finish](const ErrorCodeT& e, std::size_t) { finish(e); });
        },
        close);
    if (ec) {
      *retry = ec != asio::error::timed_out;
      Drop();
      return ec == asio::error::timed_out
                 ? Fail(ErrorCode::kDeadlineExceeded, "sending the request timed out")
                 : Fail(ErrorCode::kUnavailable, "cannot send the request: " + SslErrorReason(ec));
    }
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(o.max_response_bytes);
    parser.header_limit(64 * 1024);
    ec = Await(
        ioc, deadline,
        [&](auto finish) {
          http::async_read(*stream, buffer, parser, [finish](const ErrorCodeT& e, std::size_t) { finish(e); });
        },
        close);
    if (ec) {
      // A kept-alive connection the server closed before this request: the caller may retry once.
      *retry = ec == http::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset;
      Drop();
      if (ec == asio::error::timed_out) return Fail(ErrorCode::kDeadlineExceeded, "no reply in time");
      if (ec == http::error::body_limit) return Fail(ErrorCode::kResourceExhausted, "the reply is too large");
      return Fail(ErrorCode::kUnavailable, "cannot read the reply: " + SslErrorReason(ec));
    }
    http::response<http::string_body> res = parser.release();
    HttpsReply reply;
    reply.status = res.result_int();
    reply.content_type = std::string(res[http::field::content_type]);
    reply.body = std::move(res.body());
    if (!res.keep_alive()) Drop();
    const auto all = buffer.prepare(buffer.capacity());
    SecureZero(all.data(), all.size());
    return reply;
  }
};

HttpsClient::HttpsClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpsClient::~HttpsClient() { impl_->Drop(); }
void HttpsClient::Close() { impl_->Drop(); }
std::string HttpsClient::tls_group() const { return impl_->group; }
std::uint64_t HttpsClient::connections() const noexcept { return impl_->connections; }

Result<std::unique_ptr<HttpsClient>> HttpsClient::Create(const HttpsClientOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->o = options;
  std::string_view url = options.base_url;
  if (!url.starts_with("https://"))
    return InvalidArgument("the server URL must start with https://, got \"" + options.base_url + "\"");
  url.remove_prefix(8);
  if (url.ends_with("/")) url.remove_suffix(1);
  if (url.empty() || url.find('/') != std::string_view::npos) {
    return InvalidArgument("the server URL must be https://host[:port] without a path, got \"" + options.base_url +
                           "\"");
  }
  std::string_view hostport = url;
  std::string port = "443";
  if (hostport.front() == '[') {
    const std::size_t close = hostport.find(']');
    if (close == std::string_view::npos)
      return InvalidArgument("malformed IPv6 address in \"" + options.base_url + "\"");
    impl->host = std::string(hostport.substr(1, close - 1));
    if (close + 1 < hostport.size()) {
      if (hostport[close + 1] != ':') return InvalidArgument("malformed server URL \"" + options.base_url + "\"");
      port = std::string(hostport.substr(close + 2));
    }
  } else if (const std::size_t colon = hostport.rfind(':'); colon != std::string_view::npos) {
    impl->host = std::string(hostport.substr(0, colon));
    port = std::string(hostport.substr(colon + 1));
  } else {
    impl->host = std::string(hostport);
  }
  if (impl->host.empty() || port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos) {
    return InvalidArgument("malformed server URL \"" + options.base_url + "\" (expected https://host[:port])");
  }
  impl->port = port;
  QSAPI_RETURN_IF_ERROR(pki::ConfigureClientContext(impl->ssl.native_handle(), options.tls));
  return std::unique_ptr<HttpsClient>(new HttpsClient(std::move(impl)));
}

Result<HttpsReply> HttpsClient::Request(std::string_view method, std::string_view target, std::string_view body,
                                        const std::vector<std::pair<std::string, std::string>>& headers) {
  Impl& s = *impl_;
  const http::verb verb = http::string_to_verb(beast::string_view(method.data(), method.size()));
  if (verb == http::verb::unknown) return InvalidArgument("unknown HTTP method \"" + std::string(method) + "\"");
  if (target.empty() || target.front() != '/') return InvalidArgument("the request target must start with '/'");
  http::request<http::string_body> req{verb, std::string(target), 11};
  req.set(http::field::host, s.host);
  req.set(http::field::user_agent, "qsapi");
  req.keep_alive(true);
  for (const auto& [k, v] : headers) req.set(k, v);
  if (!body.empty() || verb == http::verb::post || verb == http::verb::put) {
    req.set(http::field::content_type, "application/json");
    req.body() = std::string(body);
    req.prepare_payload();
  }
  Result<HttpsReply> reply = Unavailable("not sent");
  for (int attempt = 0; attempt < 2; ++attempt) {
    const Clock::time_point deadline = Clock::now() + s.o.timeout;
    const bool fresh = !s.stream;
    if (fresh) {
      if (Status c = s.Connect(deadline); !c.ok()) {
        reply = c.error();
        break;
      }
    }
    bool retry = false;
    reply = s.Once(req, deadline, &retry);
    if (reply.ok() || !retry || fresh) break;  // retry only a reused connection that the server closed
  }
  SecureZero(req.body().data(), req.body().size());
  return reply;
}

}  // namespace qsapi::net
