// net/internal/http_client.h: the one HTTP/1.1 client of qsapi, blocking and bounded, over
// Boost.Beast and Asio's OpenSSL stream. Every outgoing HTTP(S) link uses it: the QRNG HTTP source
// (entropy/source_http.cc), the ETSI GS QKD 014 client (qkd/etsi014_client.cc), and the qsapi CLI,
// tests and benchmarks talking to qsapid.
//
// What it guarantees, so that no caller has to:
// - Every step runs against a deadline on a private io_context: resolving (ResolveWithDeadline:
//   getaddrinfo cannot be cancelled), connecting and the TLS handshake against connect_timeout,
//   sending the request and reading the whole response against request_timeout; a missed deadline
//   closes the socket.
// - https: TLS through pki::ConfigureClientContext (versions, groups, client certificate, the
//   server's chain verified against ca_file or the system's anchors) and the host name checked and
//   sent as SNI (pki::ConfigureClientConnection).
// - The response head and body are bounded; a Content-Length over the limit is refused before any
//   body is buffered.
// - Secrets do not linger: the request (its header values, which may hold an API key, and its body)
//   and every buffer that held response bytes are wiped before they are freed, on every path. The
//   body handed back is the caller's to wipe.
// - A kept-alive connection that the server closed while idle (the write fails, or the read ends
//   before one byte of the answer) is replaced and the request sent again, once: the server cannot
//   have acted on a request it never read. A fresh connection is never retried here; retries with
//   backoff are the caller's policy.
//
// Errors carry a Failure kind (failure()) besides the usual code, so that a caller can choose its
// own code for a kind without parsing messages. Messages name the step and never hold a header
// value or a body. Not thread-safe: one client per thread, or a lock around it.
#ifndef QSAPI_NET_INTERNAL_HTTP_CLIENT_H_
#define QSAPI_NET_INTERNAL_HTTP_CLIENT_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "qsapi/pki/tls_options.h"
#include "qsapi/result.h"

namespace qsapi::net {

// Url is an http:// or https:// URL parsed strictly: printable ASCII only, no user information,
// no fragment, a host that is a DNS name (letters, digits, '-', '.') or a bracketed IPv6 address,
// a port in 1..65535 (default 80 or 443).
struct Url {
  bool tls = true;
  std::string host;         // without brackets: what the resolver and TLS get
  std::string port;         // decimal
  std::string target;       // path and query; "/" when the URL has neither
  std::string host_header;  // the Host header: host, and the port when it is not the default
  std::string origin;       // scheme://host:port, what errors name (never the query: it may hold a credential)
};

// ParseUrl returns the parts of `url`, or INVALID_ARGUMENT saying what is wrong with it (without
// repeating the URL: the caller names it).
Result<Url> ParseUrl(std::string_view url);

// Failure says at which step and how a request failed; the default code of each is in brackets.
enum class Failure {
  kNone,
  kTimeout,      // a deadline passed (DEADLINE_EXCEEDED)
  kResolve,      // the host name does not resolve (UNAVAILABLE)
  kConnect,      // no TCP connection (UNAVAILABLE)
  kCertificate,  // the server's certificate does not verify, or not for this host (FAILED_PRECONDITION)
  kTlsRefused,   // the server refused the TLS session with an alert about certificates (PERMISSION_DENIED)
  kTls,          // another TLS failure: no common group or version, a broken record (UNAVAILABLE)
  kRefused,      // on_connect refused the connection (its own error)
  kSend,         // the request could not be written (UNAVAILABLE)
  kUnanswered,   // the connection closed before one byte of an answer (UNAVAILABLE)
  kTooLarge,     // the response head or body is over its limit (DATA_LOSS)
  kCutOff,       // the response ended before it was complete (DATA_LOSS)
  kMalformed,    // the response is not HTTP/1.1 (DATA_LOSS)
};

// ConnectionInfo describes the current connection (empty strings over plain http).
struct ConnectionInfo {
  std::string tls_version;       // "TLSv1.3"
  std::string tls_group;         // "X25519MLKEM768", "x25519"
  bool pq_hybrid = false;        // tls_group is one of pki::kPqHybridGroups
  std::string peer_common_name;  // the CN of the server's verified certificate, "" if none
};

struct HttpClientOptions {
  std::string url;      // http:// or https://; its path and query are the caller's (url().target)
  pki::TlsOptions tls;  // https: what is offered and checked; verify_peer kNone skips the host check too
  std::chrono::milliseconds connect_timeout{10000};  // resolve + connect + TLS handshake
  std::chrono::milliseconds request_timeout{10000};  // send the request + read the whole response
  std::size_t max_response_bytes = std::size_t{64} << 20;
  std::size_t max_header_bytes = std::size_t{16} << 10;
  bool keep_alive = true;  // false: one connection per request, closed after the response
  std::string user_agent = "qsapi";
  // on_connect runs after every TLS handshake, before the connection is used; an error closes the
  // connection and fails the request with it (Failure::kRefused). For checks on the server's
  // identity and for warnings about the link.
  std::function<Status(const ConnectionInfo&)> on_connect;
};

struct HttpClientRequest {
  std::string_view method = "GET";
  std::string_view target = "/";  // origin-form: starts with '/'
  std::string_view body;
  std::string_view content_type;  // set when non-empty; "application/json" for a body without one
  std::vector<std::pair<std::string, std::string>> headers;  // may hold credentials: wiped after use
};

struct HttpReply {
  unsigned status = 0;
  std::string content_type;
  std::string body;  // the caller wipes it when it is secret
  // The answer's headers whose names start with "QSAPI-" (case as sent), e.g. the holder of a
  // peer session that another node holds (421).
  std::vector<std::pair<std::string, std::string>> qsapi_headers;
};

class HttpClient {
 public:
  using Clock = std::chrono::steady_clock;

  // Create checks the options, parses the URL and prepares TLS; it connects on the first request.
  static Result<std::unique_ptr<HttpClient>> Create(const HttpClientOptions& options);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;
  HttpClient(HttpClient&&) = delete;
  HttpClient& operator=(HttpClient&&) = delete;

  // Send sends one request and reads its response, whatever its status. No step runs past
  // `deadline` (besides the per-step timeouts). On an error, failure() says which step failed.
  Result<HttpReply> Send(const HttpClientRequest& request, Clock::time_point deadline = Clock::time_point::max());
  // Request is Send with the request's parts as arguments (a JSON body when body is not empty).
  Result<HttpReply> Request(std::string_view method, std::string_view target, std::string_view body = {},
                            std::vector<std::pair<std::string, std::string>> headers = {});

  // failure is the kind of the last Send's error, kNone after a success.
  [[nodiscard]] Failure failure() const noexcept;
  // Close drops the connection; the next request makes a new one.
  void Close();
  [[nodiscard]] const Url& url() const noexcept;
  // connection describes the current connection, or the last one after it closed.
  [[nodiscard]] const ConnectionInfo& connection() const noexcept;
  // tls_group is connection().tls_group while connected, else "".
  [[nodiscard]] std::string tls_group() const;
  // connections counts the connections made so far (TLS handshakes, over https).
  [[nodiscard]] std::uint64_t connections() const noexcept;

 private:
  class Impl;
  explicit HttpClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace qsapi::net

#endif  // QSAPI_NET_INTERNAL_HTTP_CLIENT_H_
