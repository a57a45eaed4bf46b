// Tests of the QRNG HTTP source against a real local HTTP(S) server (a thread with a socket on
// 127.0.0.1; for https it speaks TLS through OpenSSL with a CA and a server certificate the test
// generates), of host-name resolution with a deadline, and of the payload parser.
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <netinet/in.h>
#include <poll.h>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/internal/resolve.h"
#include "entropy/internal/qrng_payload.h"
#include "qsapi/entropy/source.h"
#include "qsapi/log.h"
#include "support/test_support.h"

namespace qsapi::entropy {
namespace {

constexpr char kApiKey[] = "s3cr3t-api-key-value";

// TestPki is a CA and a server certificate it issued (for "localhost" and 127.0.0.1 unless told
// otherwise), generated with OpenSSL for one test, in PEM files under a temporary directory.
class TestPki {
 public:
  struct Options {
    const char* key_type = "ML-DSA-65";  // or "EC" (P-256)
    std::vector<std::string> dns = {"localhost"};
    std::vector<std::string> ips = {"127.0.0.1"};
    long not_before_days = -1;
    long not_after_days = 30;
  };
  TestPki() : TestPki(Options{}) {}
  explicit TestPki(const Options& o) {
    dir_ = std::filesystem::temp_directory_path() /
           ("qsapi-http-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    std::filesystem::create_directories(dir_);
    EVP_PKEY* ca_key = NewKey(o.key_type);
    X509* ca = NewCert(ca_key, ca_key, nullptr, "qsapi test CA", "critical,CA:TRUE", "", -1, 30);
    EVP_PKEY* key = NewKey(o.key_type);
    std::string san;
    for (const auto& d : o.dns) san += (san.empty() ? "" : ",") + std::string("DNS:") + d;
    for (const auto& i : o.ips) san += (san.empty() ? "" : ",") + std::string("IP:") + i;
    X509* cert =
        NewCert(key, ca_key, ca, "qsapi test server", "critical,CA:FALSE", san, o.not_before_days, o.not_after_days);
    WritePem(ca_file(), [&](BIO* b) { return PEM_write_bio_X509(b, ca); });
    WritePem(cert_file(), [&](BIO* b) { return PEM_write_bio_X509(b, cert); });
    WritePem(key_file(),
             [&](BIO* b) { return PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr); });
    X509_free(cert);
    X509_free(ca);
    EVP_PKEY_free(key);
    EVP_PKEY_free(ca_key);
  }
  ~TestPki() { std::filesystem::remove_all(dir_); }
  TestPki(const TestPki&) = delete;
  TestPki& operator=(const TestPki&) = delete;

  [[nodiscard]] std::string ca_file() const { return (dir_ / "ca.pem").string(); }
  [[nodiscard]] std::string cert_file() const { return (dir_ / "server.pem").string(); }
  [[nodiscard]] std::string key_file() const { return (dir_ / "server.key").string(); }

 private:
  static EVP_PKEY* NewKey(const char* type) {
    EVP_PKEY* k = std::string_view(type) == "EC" ? EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")
                                                 : EVP_PKEY_Q_keygen(nullptr, nullptr, type);
    EXPECT_NE(k, nullptr);
    return k;
  }
  static X509* NewCert(EVP_PKEY* key, EVP_PKEY* signer, X509* issuer, const char* cn, const char* bc,
                       const std::string& san, long from_days, long to_days) {
    X509* x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), static_cast<long>(++serial_));
    X509_gmtime_adj(X509_getm_notBefore(x), from_days * 86400);
    X509_gmtime_adj(X509_getm_notAfter(x), to_days * 86400);
    X509_NAME* name = X509_get_subject_name(x);
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast)
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
    X509_set_issuer_name(x, issuer != nullptr ? X509_get_subject_name(issuer) : name);
    X509_set_pubkey(x, key);
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer != nullptr ? issuer : x, x, nullptr, nullptr, 0);
    auto add = [&](int nid, const std::string& value) {
      X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
      EXPECT_NE(e, nullptr) << value;
      X509_add_ext(x, e, -1);
      X509_EXTENSION_free(e);
    };
    add(NID_basic_constraints, bc);
    if (issuer == nullptr) {
      add(NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
      add(NID_key_usage, "critical,digitalSignature");
      add(NID_ext_key_usage, "serverAuth");
      if (!san.empty()) add(NID_subject_alt_name, san);
    }
    const bool ec = EVP_PKEY_is_a(signer, "EC") != 0;
    EXPECT_GT(X509_sign(x, signer, ec ? EVP_sha256() : nullptr), 0);
    return x;
  }
  template <typename F>
  static void WritePem(const std::string& path, F write) {
    BIO* b = BIO_new_file(path.c_str(), "w");
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(write(b), 1);
    BIO_free(b);
  }
  static inline int counter_ = 0;
  static inline int serial_ = 0;
  std::filesystem::path dir_;
};

// LocalServer answers each connection with handler(request head); an empty answer means "never
// answer" (the connection is held open until the server stops). Given a TestPki it speaks TLS 1.3
// with that server certificate.
class LocalServer {
 public:
  explicit LocalServer(std::function<std::string(const std::string&)> handler, const TestPki* pki = nullptr,
                       const char* groups = nullptr)
      : handler_(std::move(handler)) {
    if (pki != nullptr) {
      tls_ = SSL_CTX_new(TLS_server_method());
      EXPECT_EQ(SSL_CTX_use_certificate_chain_file(tls_, pki->cert_file().c_str()), 1);
      EXPECT_EQ(SSL_CTX_use_PrivateKey_file(tls_, pki->key_file().c_str(), SSL_FILETYPE_PEM), 1);
      SSL_CTX_set_min_proto_version(tls_, TLS1_3_VERSION);
      if (groups != nullptr) {
        EXPECT_EQ(SSL_CTX_set1_groups_list(tls_, groups), 1);
      }
    }
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast)
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(fd_, 16), 0);
    socklen_t len = sizeof addr;
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast)
    EXPECT_EQ(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~LocalServer() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
    SSL_CTX_free(tls_);
  }
  LocalServer(const LocalServer&) = delete;
  LocalServer& operator=(const LocalServer&) = delete;

  [[nodiscard]] std::string Url(const std::string& path = "/api", const std::string& host = "127.0.0.1") const {
    return std::string(tls_ != nullptr ? "https://" : "http://") + host + ":" + std::to_string(port_) + path;
  }
  // Handshakes counts the TLS handshakes that completed on the server side.
  [[nodiscard]] int Handshakes() const { return handshakes_.load(); }
  std::vector<std::string> Requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  bool WaitReadable(int fd) {
    while (!stop_) {
      pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
      if (::poll(&p, 1, 20) > 0) return true;
    }
    return false;
  }
  void Serve() {
    while (WaitReadable(fd_)) {
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      SSL* ssl = nullptr;
      if (tls_ != nullptr) {
        // Blocking TLS with a receive timeout, so that a client that stalls cannot hang the server.
        timeval tv{.tv_sec = 2, .tv_usec = 0};
        ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ssl = SSL_new(tls_);
        SSL_set_fd(ssl, c);
        if (SSL_accept(ssl) != 1) {  // e.g. the client refused our certificate
          SSL_free(ssl);
          ::close(c);
          continue;
        }
        ++handshakes_;
      }
      const auto read_some = [&](char* buf, std::size_t n) -> ssize_t {
        if (ssl != nullptr) return SSL_read(ssl, buf, static_cast<int>(n));
        return WaitReadable(c) ? ::read(c, buf, n) : 0;
      };
      const auto write_some = [&](const char* buf, std::size_t n) -> ssize_t {
        if (ssl != nullptr) return SSL_write(ssl, buf, static_cast<int>(n));
        return ::send(c, buf, n, MSG_NOSIGNAL);
      };
      std::string head;
      char buf[4096];
      while (head.find("\r\n\r\n") == std::string::npos && !stop_) {
        const ssize_t n = read_some(buf, sizeof buf);
        if (n <= 0) break;
        head.append(buf, static_cast<std::size_t>(n));
      }
      {
        std::lock_guard lock(mu_);
        requests_.push_back(head);
      }
      const std::string answer = handler_(head);
      if (answer.empty()) {
        while (!stop_) {
          if (ssl == nullptr && !WaitReadable(c)) break;
          const ssize_t n = read_some(buf, sizeof buf);
          if (n == 0 || (n < 0 && ssl == nullptr)) break;
          if (n < 0 && SSL_get_error(ssl, static_cast<int>(n)) != SSL_ERROR_WANT_READ &&
              !(errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
          }
        }
      } else {
        std::size_t off = 0;
        while (off < answer.size()) {
          const ssize_t n = write_some(answer.data() + off, answer.size() - off);
          if (n <= 0) break;
          off += static_cast<std::size_t>(n);
        }
      }
      if (ssl != nullptr) {
        SSL_shutdown(ssl);
        SSL_free(ssl);
      }
      ::close(c);
    }
  }

  std::function<std::string(const std::string&)> handler_;
  SSL_CTX* tls_ = nullptr;
  std::atomic<int> handshakes_{0};
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> requests_;
};

std::string Response(int status, const std::string& body) {
  return "HTTP/1.1 " + std::to_string(status) +
         " X\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\n\r\n" + body;
}

// RequestedLength reads length=N from the request line.
std::size_t RequestedLength(const std::string& head) {
  const std::size_t p = head.find("length=");
  if (p == std::string::npos) return 0;
  return std::stoul(head.substr(p + 7));
}

std::string JsonArray(std::size_t n, int value) {
  std::string s = "{\"success\":true,\"type\":\"uint8\",\"length\":" + std::to_string(n) + ",\"data\":[";
  for (std::size_t i = 0; i < n; ++i) s += (i ? "," : "") + std::to_string((value + static_cast<int>(i)) % 256);
  return s + "]}";
}

HttpSourceOptions Options(const LocalServer& server) {
  HttpSourceOptions o;
  o.id = "qrng-test";
  o.url = server.Url();
  o.api_key_header = "x-api-key";
  o.api_key = kApiKey;
  o.timeout = std::chrono::milliseconds(1000);
  return o;
}

// ExpectFailure reads into a 0xAA-filled buffer, expects `code`, a wiped buffer, and a message that
// names the id and the URL but never the key; it returns the message.
std::string ExpectFailure(const HttpSourceOptions& o, std::size_t n, ErrorCode code) {
  auto source = OpenHttpSource(o);
  EXPECT_TRUE(source.ok()) << source.error().ToString();
  if (!source.ok()) return {};
  std::vector<std::uint8_t> out(n, 0xAA);
  const Status s = (*source)->ReadRaw(out);
  EXPECT_FALSE(s.ok());
  if (s.ok()) return {};
  EXPECT_EQ(s.error().code(), code) << s.error().ToString();
  EXPECT_EQ(out, std::vector<std::uint8_t>(n, 0)) << "buffer not wiped";
  EXPECT_NE(s.error().message().find("qrng-test"), std::string::npos) << s.error().message();
  const std::string host =
      o.url.substr(o.url.find("://") + 3, o.url.find(':', o.url.find("://") + 3) - o.url.find("://") - 3);
  EXPECT_NE(s.error().message().find(host), std::string::npos) << s.error().message();
  EXPECT_EQ(s.error().message().find(kApiKey), std::string::npos) << "API key leaked";
  return s.error().message();
}

TEST(HttpSource, JsonArrayPayloadAndApiKeyHeader) {
  LocalServer server([](const std::string& head) { return Response(200, JsonArray(RequestedLength(head), 7)); });
  auto source = OpenHttpSource(Options(server));
  ASSERT_TRUE(source.ok()) << source.error().ToString();
  EXPECT_TRUE((*source)->is_qrng());
  EXPECT_EQ((*source)->id(), "qrng-test");
  std::vector<std::uint8_t> out(16);
  ASSERT_TRUE((*source)->ReadRaw(out).ok());
  for (std::size_t i = 0; i < out.size(); ++i) EXPECT_EQ(out[i], 7 + i);
  const auto requests = server.Requests();
  ASSERT_EQ(requests.size(), 1U);
  EXPECT_EQ(requests[0].rfind("GET /api?length=16 HTTP/1.1\r\n", 0), 0U) << requests[0];
  EXPECT_NE(requests[0].find(std::string("x-api-key: ") + kApiKey + "\r\n"), std::string::npos) << requests[0];
}

TEST(HttpSource, HexPayload) {
  LocalServer server([](const std::string& head) {
    return Response(200, "{\"data\":\"" + std::string(RequestedLength(head) * 2, 'f') + "\"}");
  });
  auto source = OpenHttpSource(Options(server));
  ASSERT_TRUE(source.ok());
  std::vector<std::uint8_t> out(8);
  ASSERT_TRUE((*source)->ReadRaw(out).ok());
  EXPECT_EQ(out, std::vector<std::uint8_t>(8, 0xff));
}

TEST(HttpSource, ManyRequestsFillALargeBuffer) {
  LocalServer server([](const std::string& head) { return Response(200, JsonArray(RequestedLength(head), 1)); });
  HttpSourceOptions o = Options(server);
  o.max_bytes_per_request = 100;
  o.url = server.Url("/api?type=uint8");
  auto source = OpenHttpSource(o);
  ASSERT_TRUE(source.ok());
  std::vector<std::uint8_t> out(1050);
  ASSERT_TRUE((*source)->ReadRaw(out).ok());
  const auto requests = server.Requests();
  ASSERT_EQ(requests.size(), 11U);
  EXPECT_NE(requests[0].find("GET /api?type=uint8&length=100 "), std::string::npos);
  EXPECT_NE(requests[10].find("length=50 "), std::string::npos);
  EXPECT_EQ(out[100], 1);
  EXPECT_EQ(out[1049], 50);
}

TEST(HttpSource, BadPayloadsFailWithWipedBuffer) {
  struct Case {
    std::string body;
    ErrorCode code;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {"[1,2,3]", ErrorCode::kInvalidArgument, "expected 8"},
      {"[1,2,3,4,5,6,7,256]", ErrorCode::kInvalidArgument, "0..255"},
      {"{\"data\":[1,2,", ErrorCode::kInvalidArgument, "not valid JSON"},
      {"{\"success\":false,\"data\":[]}", ErrorCode::kUnavailable, "success"},
  };
  for (const Case& c : cases) {
    LocalServer server([&](const std::string&) { return Response(200, c.body); });
    const std::string msg = ExpectFailure(Options(server), 8, c.code);
    EXPECT_NE(msg.find(c.needle), std::string::npos) << msg;
  }
}

TEST(HttpSource, Http500) {
  LocalServer server([](const std::string&) { return Response(500, "{\"error\":\"down\"}"); });
  EXPECT_NE(ExpectFailure(Options(server), 8, ErrorCode::kUnavailable).find("HTTP status 500"), std::string::npos);
}

TEST(HttpSource, OversizedBody) {
  LocalServer server([](const std::string&) { return Response(200, std::string(5000, '0')); });
  HttpSourceOptions o = Options(server);
  o.max_response_bytes = 4096;
  EXPECT_NE(ExpectFailure(o, 8, ErrorCode::kUnavailable).find("exceeds the limit"), std::string::npos);
}

TEST(HttpSource, OversizedChunkedBody) {
  LocalServer server([](const std::string&) {
    const std::string chunk(3000, '0');
    return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nbb8\r\n" + chunk + "\r\nbb8\r\n" + chunk +
           "\r\n0\r\n\r\n";
  });
  HttpSourceOptions o = Options(server);
  o.max_response_bytes = 4096;
  EXPECT_NE(ExpectFailure(o, 8, ErrorCode::kUnavailable).find("exceeds the limit"), std::string::npos);
}

TEST(HttpSource, ServerThatNeverAnswersTimesOut) {
  LocalServer server([](const std::string&) { return std::string(); });
  HttpSourceOptions o = Options(server);
  o.timeout = std::chrono::milliseconds(300);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_NE(ExpectFailure(o, 8, ErrorCode::kUnavailable).find("no response within 300 ms"), std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}

TEST(HttpSource, ConnectionRefused) {
  HttpSourceOptions o;
  {
    LocalServer server([](const std::string&) { return std::string(); });
    o = Options(server);
  }  // closed: nothing listens on the port now
  ExpectFailure(o, 8, ErrorCode::kUnavailable);
}

TEST(HttpSource, HttpsAgainstPlainServerFailsCleanly) {
  LocalServer server([](const std::string&) { return Response(400, "no"); });
  HttpSourceOptions o = Options(server);
  o.url = "https" + o.url.substr(4);
  ExpectFailure(o, 8, ErrorCode::kUnavailable);
}

// https against a real TLS 1.3 server whose certificate chain (ML-DSA-65 by default) the test made.
std::string OkHandler(const std::string& head) { return Response(200, JsonArray(RequestedLength(head), 3)); }

Status ReadOnce(const HttpSourceOptions& o, std::size_t n = 16) {
  auto source = OpenHttpSource(o);
  if (!source.ok()) return source.error();
  std::vector<std::uint8_t> out(n, 0xAA);
  return (*source)->ReadRaw(out);
}

TEST(HttpSourceTls, VerifiedChainAndHostName) {
  const TestPki pki;
  LocalServer server(OkHandler, &pki);
  HttpSourceOptions o = Options(server);
  o.url = server.Url("/api", "localhost");
  o.ca_file = pki.ca_file();
  auto source = OpenHttpSource(o);
  QSAPI_ASSERT_OK(source);
  std::vector<std::uint8_t> out(16, 0);
  QSAPI_ASSERT_OK((*source)->ReadRaw(out));
  EXPECT_EQ(out[0], 3);
  EXPECT_EQ(server.Handshakes(), 1);
  ASSERT_EQ(server.Requests().size(), 1U);
  EXPECT_NE(server.Requests()[0].find(std::string("x-api-key: ") + kApiKey), std::string::npos);
}

TEST(HttpSourceTls, IpLiteralCheckedAgainstIpAddressSan) {
  const TestPki pki;
  LocalServer server(OkHandler, &pki);
  HttpSourceOptions o = Options(server);
  o.url = server.Url("/api", "127.0.0.1");
  o.ca_file = pki.ca_file();
  QSAPI_EXPECT_OK(ReadOnce(o));
}

TEST(HttpSourceTls, EcdsaCertificateToo) {
  TestPki::Options po;
  po.key_type = "EC";
  const TestPki pki(po);
  LocalServer server(OkHandler, &pki);
  HttpSourceOptions o = Options(server);
  o.ca_file = pki.ca_file();
  QSAPI_EXPECT_OK(ReadOnce(o));
}

TEST(HttpSourceTls, HostNameMismatchIsRefused) {
  TestPki::Options po;
  po.dns = {"qrng.example"};
  po.ips = {};
  const TestPki pki(po);
  LocalServer server(OkHandler, &pki);
  HttpSourceOptions o = Options(server);
  o.ca_file = pki.ca_file();
  const std::string m = ExpectFailure(o, 8, ErrorCode::kUnavailable);
  EXPECT_NE(m.find("TLS certificate verification failed"), std::string::npos) << m;
  EXPECT_NE(m.find("mismatch"), std::string::npos) << m;
  EXPECT_EQ(server.Requests().size(), 0U) << "no request may be sent to an unverified server";
}

TEST(HttpSourceTls, UnknownCaIsRefused) {
  const TestPki pki;
  const TestPki other;  // a different CA: the server's chain does not lead to it
  LocalServer server(OkHandler, &pki);
  HttpSourceOptions o = Options(server);
  o.ca_file = other.ca_file();
  const std::string m = ExpectFailure(o, 8, ErrorCode::kUnavailable);
  EXPECT_NE(m.find("TLS certificate verification failed"), std::string::npos) << m;
  EXPECT_EQ(server.Requests().size(), 0U);
}

TEST(HttpSourceTls, ExpiredCertificateIsRefused) {
  TestPki::Options po;
  po.not_before_days = -10;
  po.not_after_days = -1;
  const TestPki pki(po);
  LocalServer server(OkHandler, &pki);
  HttpSourceOptions o = Options(server);
  o.ca_file = pki.ca_file();
  const std::string m = ExpectFailure(o, 8, ErrorCode::kUnavailable);
  EXPECT_NE(m.find("expired"), std::string::npos) << m;
}

TEST(HttpSourceTls, VerificationOffIsATestRigSwitch) {
  const TestPki pki;
  LocalServer server(OkHandler, &pki);
  HttpSourceOptions o = Options(server);
  o.verify_tls = false;  // no CA given: only works because verification is off
  QSAPI_EXPECT_OK(ReadOnce(o));
  o.verify_tls = true;
  EXPECT_FALSE(ReadOnce(o).ok()) << "the system trust store must not know the test CA";
}

// The client offers OpenSSL's default groups, hybrid first: a hybrid link is silent; a service
// that offers only a classical group gets one warning per source, not one per request.
TEST(HttpSourceTls, AClassicalOnlyServiceIsWarnedAboutOnce) {
  const TestPki pki;
  std::vector<std::string> lines;
  SetLogSink([&lines](LogLevel, std::string_view, std::string_view m) { lines.emplace_back(m); });
  {
    LocalServer hybrid(OkHandler, &pki);
    HttpSourceOptions o = Options(hybrid);
    o.ca_file = pki.ca_file();
    QSAPI_EXPECT_OK(ReadOnce(o));
  }
  EXPECT_TRUE(lines.empty()) << lines.front();
  LocalServer classical(OkHandler, &pki, "X25519");
  HttpSourceOptions o = Options(classical);
  o.ca_file = pki.ca_file();
  o.max_bytes_per_request = 8;
  QSAPI_EXPECT_OK(ReadOnce(o, 32));  // four requests
  SetLogSink(nullptr);
  ASSERT_EQ(lines.size(), 1U);
  EXPECT_NE(lines[0].find("classical key exchange x25519"), std::string::npos) << lines[0];
  EXPECT_EQ(lines[0].find(kApiKey), std::string::npos);
}

TEST(ResolveWithDeadline, ASlowResolverIsCutOffAtTheDeadline) {
  const auto slow = [](const std::string&,
                       const std::string&) -> Result<std::vector<qsapi::internal::ResolvedAddress>> {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    return Unavailable("late");
  };
  const auto start = std::chrono::steady_clock::now();
  auto r = qsapi::internal::ResolveWithDeadline("qrng.example", "443", start + std::chrono::milliseconds(100), slow);
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kDeadlineExceeded);
  EXPECT_LT(took, std::chrono::milliseconds(1000));
}

TEST(ResolveWithDeadline, PendingLookupsAreBounded) {
  const auto slow = [](const std::string&,
                       const std::string&) -> Result<std::vector<qsapi::internal::ResolvedAddress>> {
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
    return Unavailable("late");
  };
  const auto drain = [] {
    for (int i = 0; i < 300 && qsapi::internal::PendingLookups() > 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return qsapi::internal::PendingLookups();
  };
  ASSERT_EQ(drain(), 0) << "lookups of an earlier test still pending";
  for (int i = 0; i < qsapi::internal::kMaxPendingLookups; ++i) {
    auto r = qsapi::internal::ResolveWithDeadline(
        "qrng.example", "443", std::chrono::steady_clock::now() + std::chrono::milliseconds(10), slow);
    EXPECT_EQ(r.error().code(), ErrorCode::kDeadlineExceeded);
  }
  auto refused = qsapi::internal::ResolveWithDeadline("qrng.example", "443",
                                                      std::chrono::steady_clock::now() + std::chrono::seconds(5), slow);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(refused.error().message().find("too many"), std::string::npos);
  EXPECT_EQ(drain(), 0) << "the workers must finish and free their slots";
  QSAPI_EXPECT_OK(qsapi::internal::ResolveWithDeadline("localhost", "80",
                                                       std::chrono::steady_clock::now() + std::chrono::seconds(5)));
}

TEST(ResolveWithDeadline, IpLiteralsNeedNoLookup) {
  const auto never = [](const std::string&,
                        const std::string&) -> Result<std::vector<qsapi::internal::ResolvedAddress>> {
    ADD_FAILURE() << "lookup called for an IP literal";
    return Unavailable("no");
  };
  for (const char* host : {"127.0.0.1", "::1"}) {
    auto r = qsapi::internal::ResolveWithDeadline(host, "8443", std::chrono::steady_clock::now(), never);
    QSAPI_ASSERT_OK(r);
    EXPECT_EQ(r->size(), 1U);
  }
  auto bad = qsapi::internal::ResolveWithDeadline("no-such-host.invalid", "80",
                                                  std::chrono::steady_clock::now() + std::chrono::seconds(5));
  EXPECT_FALSE(bad.ok());
}

TEST(HttpSource, RejectsBadOptions) {
  const std::vector<std::string> urls = {"",
                                         "ftp://example.com/",
                                         "http://",
                                         "http://user:pw@example.com/",
                                         "http://example.com:0/",
                                         "http://example.com:70000/",
                                         "http://exa mple.com/",
                                         "http://example.com/#frag",
                                         "http://[::1/",
                                         "http://example.com/#s3cret",
                                         "ftp://example.com/?key=s3cret"};
  for (const std::string& url : urls) {
    HttpSourceOptions o;
    o.url = url;
    auto r = OpenHttpSource(o);
    ASSERT_FALSE(r.ok()) << url;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument) << url;
    EXPECT_EQ(r.error().message().find("s3cret"), std::string::npos) << r.error().message();  // never the URL's parts
  }
  HttpSourceOptions o;
  o.url = "http://127.0.0.1/";
  o.api_key_header = "x-api-key";
  o.api_key = std::string(kApiKey) + "\r\nX-Evil: 1";
  auto r = OpenHttpSource(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message().find(kApiKey), std::string::npos);
  o.api_key = kApiKey;
  o.timeout = std::chrono::milliseconds(0);
  EXPECT_FALSE(OpenHttpSource(o).ok());
  o.timeout = std::chrono::milliseconds(100);
  o.url = "https://127.0.0.1/";
  o.ca_file = "/nonexistent/ca.pem";
  EXPECT_EQ(OpenHttpSource(o).error().code(), ErrorCode::kInvalidArgument);
  o.url = "http://[::1]:8080/x?y=1";
  EXPECT_TRUE(OpenHttpSource(o).ok());
}

using internal::ParseQrngPayload;

TEST(QrngPayload, AcceptsTheFormats) {
  const Bytes want = {0, 1, 254, 255};
  EXPECT_EQ(*ParseQrngPayload("{\"success\":true,\"type\":\"uint8\",\"length\":4,\"data\":[0,1,254,255]}", 4), want);
  EXPECT_EQ(*ParseQrngPayload(" [0, 1, 254, 255]\n", 4), want);
  EXPECT_EQ(*ParseQrngPayload("0001feFF\r\n", 4), want);
  EXPECT_EQ(*ParseQrngPayload("\"0001fefF\"", 4), want);
  EXPECT_EQ(*ParseQrngPayload("{\"data\":\"0001feff\"}", 4), want);
  EXPECT_EQ(*ParseQrngPayload("{\"random\":[0,1,254,255]}", 4, "random"), want);
  EXPECT_TRUE(ParseQrngPayload("[]", 0).ok());
}

TEST(QrngPayload, RejectsBadPayloadsWithoutQuotingThem) {
  const std::vector<std::string> bad = {"",
                                        "   ",
                                        "[1,2,3]",
                                        "[1,2,3,256]",
                                        "[1,2,3,-1]",
                                        "[1,2,3,1.5]",
                                        "[1,2,3,\"4\"]",
                                        "[1,2,3,true]",
                                        "[1,2,3,",
                                        "00112",
                                        "0011223g",
                                        "0x112233",
                                        "{\"data\":\"0011zz33\"}",
                                        "{\"other\":[1,2,3,4]}",
                                        "{\"data\":{}}",
                                        "42",
                                        "[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]"};
  for (const std::string& body : bad) {
    const Result<Bytes> r = ParseQrngPayload(body, 4);
    ASSERT_FALSE(r.ok()) << body;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument) << body;
    EXPECT_FALSE(r.error().message().empty());
  }
  const Result<Bytes> leak = ParseQrngPayload("{\"data\":\"a1b2c3d4e5f6a7\"}", 4);
  ASSERT_FALSE(leak.ok());
  EXPECT_EQ(leak.error().message().find("a1b2c3"), std::string::npos);
}

TEST(QrngPayload, SuccessFalseAndSizeLimit) {
  const Result<Bytes> r = ParseQrngPayload("{\"success\":false,\"data\":[1,2,3,4]}", 4);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(r.error().message().find("\"success\": false"), std::string::npos);
  EXPECT_FALSE(ParseQrngPayload("[1,2,3,4]", 4, "data", 8).ok());
  EXPECT_TRUE(ParseQrngPayload("[1,2,3,4]", 4, "data", 9).ok());
  EXPECT_FALSE(ParseQrngPayload(std::string(internal::kDefaultMaxPayloadBytes + 2, '0'), 0).ok());
}

}  // namespace
}  // namespace qsapi::entropy
