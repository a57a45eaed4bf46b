// net/https_server.h: a small HTTPS/1.1 server on Boost.Beast/Asio over our OpenSSL 3.5.
//
// This is the `qsapi_net` static library: programs and tests link it, libqsapi does not (PRODUCT.md:
// nothing in the library knows about HTTP servers; docs/DECISIONS.md). It serves the KME simulator
// today and the qsapid API and peer link later, so it is generic: a handler maps an HttpRequest
// to an HttpResponse.
//
// What it guarantees:
//  - TLS through pki::ConfigureServerContext (versions, groups, certificate, client-certificate
//    policy). The handler sees the CN of a *verified* client certificate, never of an unverified one.
//  - Bounded input: request head (max_header_bytes) and body (max_body_bytes); over-limit requests
//    get 431 / 413 and the connection is closed.
//  - Timeouts: handshake_timeout bounds the TLS handshake; request_timeout bounds reading the
//    first request and writing each response; idle_timeout bounds the wait for (and the reading
//    of) each further request on a kept-alive connection. An expired timer closes the connection.
//  - Fair admission under a connection flood (docs/OPERATIONS.md, "Connection limits"): the
//    kernel hands over a connection only once its first bytes arrived (TCP_DEFER_ACCEPT); at most
//    max_unfinished connections are in their handshake at once and max_unfinished_per_source from
//    one address; at most max_connections in all and max_connections_per_source from one address.
//    When a limit is reached the new connection is kept and an older one is shed instead: the
//    oldest unfinished (or waiting, idle) connection of the address that holds the most. A
//    connection whose request is being handled is never shed. stats() counts what happened.
//  - Keep-alive up to max_requests_per_connection requests.
//  - Stop(drain) stops accepting, closes idle connections, lets requests in flight finish and
//    their responses be written, and waits up to `drain` before tearing everything down.
//  - Response bodies are wiped after they are written (a response may carry key material).
//
// Thread safety: Start/Stop/port may be called from any thread; the handler runs on the server's
// I/O threads (options.threads of them), possibly concurrently for different connections; an
// asynchronous handler's responder may be called from any thread.
#ifndef QSAPI_SRC_NET_HTTPS_SERVER_H_
#define QSAPI_SRC_NET_HTTPS_SERVER_H_

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

// HttpRequest is one parsed request and what TLS established about its connection.
struct HttpRequest {
  std::string method;                                        // "GET", "POST", ...
  std::string target;                                        // as sent: "/api/v1/keys/SAE-B/enc_keys?number=2"
  std::string path;                                          // target before '?', still percent-encoded
  std::string query;                                         // target after '?', still percent-encoded; "" when none
  std::vector<std::pair<std::string, std::string>> headers;  // names as sent
  std::string body;
  std::string peer_common_name;                  // CN of the verified client certificate; "" when none was presented
  bool peer_certificate_serves_servers = false;  // that certificate is also valid for server authentication
  std::string tls_group;                         // negotiated key-exchange group ("X25519MLKEM768")
  std::string tls_version;                       // "TLSv1.3"
  std::string remote_address;                    // the client's IP address ("127.0.0.1", "::1")

  // Header returns the first value of a header (case-insensitive name), or "".
  [[nodiscard]] std::string_view Header(std::string_view name) const;
};

// HttpResponse is what a handler returns.
struct HttpResponse {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::chrono::milliseconds delay{0};  // wait this long (without blocking a thread) before answering
  bool close = false;                  // close the connection after this response
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

// HttpResponder completes one request: call it once, from any thread (later calls are ignored).
// Destroying every copy without a call answers 500 and closes the connection. A call after the
// server stopped is harmless (the answer is dropped). Copyable; thread-safe.
class HttpResponder {
 public:
  void operator()(HttpResponse response) const;

  struct State;
  explicit HttpResponder(std::shared_ptr<State> state) : state_(std::move(state)) {}

 private:
  std::shared_ptr<State> state_;
};

// HttpAsyncHandler gets each request on an I/O thread and answers through `respond`, at once or
// later from another thread (a worker pool), so that slow work never holds an I/O thread. While a
// request is outstanding its connection reads nothing more; Stop(drain) waits for it.
using HttpAsyncHandler = std::function<void(HttpRequest request, HttpResponder respond)>;

struct HttpsServerOptions {
  std::string bind_address = "127.0.0.1";
  std::uint16_t port = 0;  // 0: an ephemeral port (see HttpsServer::port())
  pki::TlsOptions tls;     // server side; tls.verify_peer is the client-certificate policy
  std::size_t max_header_bytes = std::size_t{8} * 1024;
  std::size_t max_body_bytes = std::size_t{64} * 1024;
  std::chrono::milliseconds handshake_timeout{5000};
  std::chrono::milliseconds request_timeout{10000};
  std::chrono::milliseconds idle_timeout{30000};
  std::size_t max_connections = 128;
  std::size_t max_connections_per_source = 64;
  std::size_t max_unfinished = 64;
  std::size_t max_unfinished_per_source = 8;
  std::size_t max_requests_per_connection = 10000;
  int threads = 1;
  std::string server_header = "qsapi";
};

// HttpsServerStats: what the listener did since Start (counters) and holds now (gauges).
struct HttpsServerStats {
  std::uint64_t accepted = 0;            // connections admitted
  std::uint64_t refused = 0;             // closed at once: nothing older could be shed for them
  std::uint64_t shed_unfinished = 0;     // closed in their handshake to admit a newer connection
  std::uint64_t shed_idle = 0;           // closed while waiting for a request, for the same reason
  std::uint64_t handshake_timeouts = 0;  // handshake not finished within handshake_timeout
  std::uint64_t handshake_failures = 0;  // handshake refused or broken (not shed, not timed out)
  std::size_t open = 0;                  // connections open now
  std::size_t unfinished = 0;            // of which in their handshake
  std::size_t busy = 0;                  // of which with a request being answered
  std::size_t sources = 0;               // distinct client addresses among them
};

// HttpsServer serves HTTPS until Stop() or destruction.
class HttpsServer {
 public:
  // Start binds, listens and starts the I/O threads. INVALID_ARGUMENT for bad options or TLS
  // files, UNAVAILABLE when the address cannot be bound.
  static Result<std::unique_ptr<HttpsServer>> Start(const HttpsServerOptions& options, HttpHandler handler);
  // Start with an asynchronous handler (see HttpAsyncHandler).
  static Result<std::unique_ptr<HttpsServer>> Start(const HttpsServerOptions& options, HttpAsyncHandler handler);

  HttpsServer(const HttpsServer&) = delete;
  HttpsServer& operator=(const HttpsServer&) = delete;
  HttpsServer(HttpsServer&&) = delete;
  HttpsServer& operator=(HttpsServer&&) = delete;
  // The destructor calls Stop(std::chrono::seconds(2)).
  ~HttpsServer();

  // port is the bound port (the ephemeral one when options.port was 0).
  [[nodiscard]] std::uint16_t port() const noexcept;
  // active_connections counts connections currently open.
  [[nodiscard]] std::size_t active_connections() const noexcept;
  // stats: see HttpsServerStats. Thread-safe.
  [[nodiscard]] HttpsServerStats stats() const;
  // Stop: see the file comment. Idempotent. Must not be called from a handler (it joins the I/O
  // threads).
  void Stop(std::chrono::milliseconds drain = std::chrono::seconds(5));

  class Impl;

 private:
  explicit HttpsServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

// PercentDecode decodes %XX escapes (RFC 3986, 2.1); INVALID_ARGUMENT on a malformed escape.
// '+' stays '+' (this is not form decoding).
Result<std::string> PercentDecode(std::string_view s);

// QueryParameters splits "a=1&b=2&a=3" into decoded (name, value) pairs, in order.
Result<std::vector<std::pair<std::string, std::string>>> QueryParameters(std::string_view query);

}  // namespace qsapi::net

#endif  // QSAPI_SRC_NET_HTTPS_SERVER_H_
