// net/https_client.h: a small blocking HTTPS/1.1 client with keep-alive, for the qsapi CLI talking
// to qsapid, the two-site demo, tests and benchmarks. TLS through pki::ConfigureClientContext, so
// it offers only what TlsOptions say (hybrid PQ groups by default) and verifies the server's chain
// and name. Every step (resolve, connect, handshake, write, read) runs against `timeout`; response
// bodies are bounded. Not thread-safe: one client per thread.
#ifndef QSAPI_SRC_NET_HTTPS_CLIENT_H_
#define QSAPI_SRC_NET_HTTPS_CLIENT_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "qsapi/pki/tls_options.h"
#include "qsapi/result.h"

namespace qsapi::net {

struct HttpsClientOptions {
  std::string base_url;  // "https://host:port" (a path after it is not allowed)
  pki::TlsOptions tls;   // client side: ca_file to verify the server; certificate for mutual TLS
  std::chrono::milliseconds timeout{10000};
  std::size_t max_response_bytes = std::size_t{64} << 20;
};

struct HttpsReply {
  unsigned status = 0;
  std::string content_type;
  std::string body;
};

class HttpsClient {
 public:
  // Create checks the options and parses the URL; it connects on the first Request.
  static Result<std::unique_ptr<HttpsClient>> Create(const HttpsClientOptions& options);
  ~HttpsClient();
  HttpsClient(const HttpsClient&) = delete;
  HttpsClient& operator=(const HttpsClient&) = delete;

  // Request sends one request on the kept-alive connection (connecting, or reconnecting once when
  // the server closed it), and returns the reply. kUnavailable for connection and TLS failures
  // (the message says which step failed and why), kDeadlineExceeded for a timeout.
  Result<HttpsReply> Request(std::string_view method, std::string_view target, std::string_view body = {},
                             const std::vector<std::pair<std::string, std::string>>& headers = {});

  // Close drops the connection; the next Request makes a new one (a new TLS handshake).
  void Close();
  // tls_group names the key-exchange group of the current connection ("" when not connected).
  [[nodiscard]] std::string tls_group() const;
  // connections counts the TLS handshakes made so far.
  [[nodiscard]] std::uint64_t connections() const noexcept;

  class Impl;

 private:
  explicit HttpsClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace qsapi::net

#endif  // QSAPI_SRC_NET_HTTPS_CLIENT_H_
