// The library's HTTP client (src/net/internal/http_client.h) against a scripted plain-HTTP server
// on loopback (one thread, one connection at a time, each answered by a script), and over TLS
// against qsapi_net's HttpsServer with a test PKI.
#include "net/internal/http_client.h"

#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <atomic>
#include <functional>
#include <mutex>
#include <netinet/in.h>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "net/https_server.h"
#include "net/test_tls.h"

namespace qsapi::net {
namespace {

using std::chrono::milliseconds;

// ScriptedServer accepts connections one after the other; connection i is handed to scripts[i]
// (the last script serves every further connection), which reads and writes the socket itself.
class ScriptedServer {
 public:
  using Script = std::function<void(int fd)>;
  explicit ScriptedServer(std::vector<Script> scripts) : scripts_(std::move(scripts)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast)
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(fd_, 8), 0);
    socklen_t len = sizeof addr;
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast)
    EXPECT_EQ(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] {
      for (std::size_t i = 0;; ++i) {
        const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0 || stop_) {
          if (c >= 0) ::close(c);
          return;
        }
        ++accepted_;
        scripts_[std::min(i, scripts_.size() - 1)](c);
        ::close(c);
      }
    });
  }
  ~ScriptedServer() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  ScriptedServer(const ScriptedServer&) = delete;
  ScriptedServer& operator=(const ScriptedServer&) = delete;
  ScriptedServer(ScriptedServer&&) = delete;
  ScriptedServer& operator=(ScriptedServer&&) = delete;

  [[nodiscard]] std::string Url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  [[nodiscard]] int accepted() const { return accepted_; }

  // ReadRequest reads one request head (and no body) from fd; "" when the peer closed.
  static std::string ReadRequest(int fd) {
    std::string in;
    char buf[4096];
    while (in.find("\r\n\r\n") == std::string::npos) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return {};
      in.append(buf, static_cast<std::size_t>(n));
    }
    return in;
  }
  static void Write(int fd, const std::string& s) { (void)::send(fd, s.data(), s.size(), MSG_NOSIGNAL); }
  static std::string Ok(const std::string& body, bool keep_alive = true) {
    return "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
           (keep_alive ? "\r\n" : "\r\nConnection: close\r\n") + "\r\n" + body;
  }

 private:
  std::vector<Script> scripts_;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

std::unique_ptr<HttpClient> Client(const std::string& url, milliseconds timeout = milliseconds(2000),
                                   std::size_t max_response = 1024) {
  HttpClientOptions o;
  o.url = url;
  o.connect_timeout = timeout;
  o.request_timeout = timeout;
  o.max_response_bytes = max_response;
  auto c = HttpClient::Create(o);
  EXPECT_TRUE(c.ok()) << c.error().ToString();
  return c.ok() ? std::move(c).value() : nullptr;
}

TEST(ParseUrlTest, AcceptsWhatIsWellFormedAndNamesWhatIsNot) {
  auto u = ParseUrl("https://[::1]:8443/api/v1?x=1");
  ASSERT_TRUE(u.ok()) << u.error().ToString();
  EXPECT_TRUE(u->tls);
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, "8443");
  EXPECT_EQ(u->target, "/api/v1?x=1");
  EXPECT_EQ(u->host_header, "[::1]:8443");
  EXPECT_EQ(u->origin, "https://[::1]:8443");
  u = ParseUrl("http://qrng.example?n=1");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->port, "80");
  EXPECT_EQ(u->target, "/?n=1");
  EXPECT_EQ(u->host_header, "qrng.example");
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"ftp://example.com/", "must start with"},
      {"http://", "has no host"},
      {"http://user:pw@example.com/", "user information"},
      {"http://example.com:0/", "invalid port"},
      {"http://example.com:/", "invalid port"},
      {"http://example.com:70000/", "invalid port"},
      {"http://exa mple.com/", "spaces"},
      {"http://example.com/#frag", "fragment"},
      {"http://[::1/", "unterminated"},
      {"http://[nope]/", "invalid IPv6"},
      {"http://exa_mple.com/", "invalid host"},
  };
  for (const auto& [url, why] : bad) {
    auto r = ParseUrl(url);
    ASSERT_FALSE(r.ok()) << url;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument) << url;
    EXPECT_NE(r.error().message().find(why), std::string::npos) << url << ": " << r.error().message();
  }
}

TEST(HttpClientTest, AKeptAliveConnectionTheServerClosedIsReplacedOnce) {
  // Connection 1 answers one request and then closes while the client holds it idle; connection 2
  // answers everything.
  ScriptedServer server({[](int fd) {
                           ScriptedServer::ReadRequest(fd);
                           ScriptedServer::Write(fd, ScriptedServer::Ok("one"));
                         },
                         [](int fd) {
                           while (!ScriptedServer::ReadRequest(fd).empty()) {
                             ScriptedServer::Write(fd, ScriptedServer::Ok("two"));
                           }
                         }});
  auto c = Client(server.Url());
  auto first = c->Request("GET", "/");
  ASSERT_TRUE(first.ok()) << first.error().ToString();
  EXPECT_EQ(first->body, "one");
  std::this_thread::sleep_for(milliseconds(100));  // the server has closed connection 1 by now
  auto second = c->Request("GET", "/");
  ASSERT_TRUE(second.ok()) << second.error().ToString();
  EXPECT_EQ(second->body, "two");
  EXPECT_EQ(c->connections(), 2U);
  EXPECT_EQ(c->failure(), Failure::kNone);
}

TEST(HttpClientTest, AFreshConnectionClosedWithoutAnAnswerIsNotRetried) {
  ScriptedServer server({[](int fd) { ScriptedServer::ReadRequest(fd); }});  // read, then close
  auto c = Client(server.Url());
  auto r = c->Request("POST", "/keys", "{}");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable) << r.error().ToString();
  EXPECT_EQ(c->failure(), Failure::kUnanswered);
  EXPECT_EQ(server.accepted(), 1);  // one connection, one attempt: the caller decides on retries
}

TEST(HttpClientTest, EachBrokenAnswerHasItsKind) {
  struct Case {
    std::string name;
    std::string answer;  // written after the request head, then the connection closes
    Failure failure;
    ErrorCode code;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"announced too large", "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\nabc", Failure::kTooLarge,
       ErrorCode::kDataLoss, "exceeds the limit of 1024"},
      {"chunked too large",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n" + std::string(2048, 'x') + "\r\n0\r\n\r\n",
       Failure::kTooLarge, ErrorCode::kDataLoss, "exceeds the limit"},
      {"head too large", "HTTP/1.1 200 OK\r\nX-Pad: " + std::string(20000, 'a') + "\r\n\r\n", Failure::kTooLarge,
       ErrorCode::kDataLoss, "head exceeds"},
      {"cut off", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this", Failure::kCutOff, ErrorCode::kDataLoss,
       "cut off"},
      {"not HTTP", "SSH-2.0-OpenSSH_9.2\r\n\r\n", Failure::kMalformed, ErrorCode::kDataLoss, "malformed HTTP"},
  };
  for (const Case& t : cases) {
    ScriptedServer server({[&](int fd) {
      ScriptedServer::ReadRequest(fd);
      ScriptedServer::Write(fd, t.answer);
    }});
    auto c = Client(server.Url());
    auto r = c->Request("GET", "/", {}, {{"x-api-key", "s3cret-key"}});
    ASSERT_FALSE(r.ok()) << t.name;
    EXPECT_EQ(c->failure(), t.failure) << t.name << ": " << r.error().ToString();
    EXPECT_EQ(r.error().code(), t.code) << t.name;
    EXPECT_NE(r.error().message().find(t.says), std::string::npos) << t.name << ": " << r.error().message();
    EXPECT_EQ(r.error().message().find("s3cret"), std::string::npos) << t.name;
  }
}

TEST(HttpClientTest, AServerThatNeverAnswersMeetsTheDeadline) {
  std::atomic<bool> release{false};
  ScriptedServer server({[&](int fd) {
    ScriptedServer::ReadRequest(fd);
    while (!release) std::this_thread::sleep_for(milliseconds(10));
  }});
  auto c = Client(server.Url(), milliseconds(300));
  const auto start = std::chrono::steady_clock::now();
  auto r = c->Request("GET", "/");
  const auto took = std::chrono::steady_clock::now() - start;
  release = true;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kDeadlineExceeded);
  EXPECT_EQ(c->failure(), Failure::kTimeout);
  EXPECT_NE(r.error().message().find("no response within 300 ms (while reading the response)"), std::string::npos)
      << r.error().message();
  EXPECT_LT(took, std::chrono::seconds(3));
  // A caller's deadline shorter than the timeouts wins.
  release = false;
  const auto start2 = std::chrono::steady_clock::now();
  HttpClientRequest req;
  auto r2 = c->Send(req, std::chrono::steady_clock::now() + milliseconds(100));
  release = true;
  ASSERT_FALSE(r2.ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start2, milliseconds(290));
}

TEST(HttpClientTest, RequestsThatCannotBeSentAreRefusedBeforeConnecting) {
  ScriptedServer server({[](int fd) { ScriptedServer::ReadRequest(fd); }});
  auto c = Client(server.Url());
  EXPECT_EQ(c->Request("FETCH", "/").error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(c->Request("GET", "no-slash").error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(c->Request("GET", "/a b").error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(server.accepted(), 0);
  HttpClientOptions o;
  o.url = "http://127.0.0.1:1/";
  o.request_timeout = milliseconds(0);
  EXPECT_EQ(HttpClient::Create(o).error().code(), ErrorCode::kInvalidArgument);
  o.request_timeout = milliseconds(100);
  o.url = "gopher://x/?token=s3cret";
  auto bad = HttpClient::Create(o);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad.error().message().find("s3cret"), std::string::npos) << "a URL's query may hold a credential";
}

// Over TLS: qsapi_net's server with a test PKI (ECDSA, hybrid groups).
class HttpClientTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pki_ = qsapi::testing::MakeTestPki(dir_);
    HttpsServerOptions o;
    o.bind_address = "127.0.0.1";
    o.port = 0;
    o.tls.certificate_file = pki_.server_cert;
    o.tls.private_key_file = pki_.server_key;
    o.tls.ca_file = pki_.ca;
    o.tls.verify_peer = pki::PeerVerification::kRequired;
    auto s = HttpsServer::Start(o, [](const HttpRequest& r) {
      HttpResponse res;
      res.status = 200;
      res.body = "hello " + r.peer_common_name;
      return res;
    });
    ASSERT_TRUE(s.ok()) << s.error().ToString();
    server_ = std::move(s).value();
  }
  HttpClientOptions Options(const std::string& cert, const std::string& key) const {
    HttpClientOptions o;
    o.url = "https://127.0.0.1:" + std::to_string(server_->port());
    o.tls.ca_file = pki_.ca;
    o.tls.certificate_file = cert;
    o.tls.private_key_file = key;
    return o;
  }

  qsapi::testing::TempDir dir_;
  qsapi::testing::TestPki pki_;
  std::unique_ptr<HttpsServer> server_;
};

TEST_F(HttpClientTlsTest, MutualTlsOnAHybridGroupAndTheHookSeesTheLink) {
  HttpClientOptions o = Options(pki_.client_cert, pki_.client_key);
  std::vector<ConnectionInfo> seen;
  o.on_connect = [&](const ConnectionInfo& link) {
    seen.push_back(link);
    return OkStatus();
  };
  auto c = HttpClient::Create(o).value();
  auto r = c->Request("GET", "/");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->body, "hello client");
  ASSERT_EQ(seen.size(), 1U);
  EXPECT_EQ(seen[0].tls_version, "TLSv1.3");
  EXPECT_EQ(seen[0].tls_group, "X25519MLKEM768");
  EXPECT_TRUE(seen[0].pq_hybrid);
  EXPECT_EQ(seen[0].peer_common_name, "server");
  EXPECT_EQ(c->tls_group(), "X25519MLKEM768");
}

TEST_F(HttpClientTlsTest, TheHookCanRefuseAServer) {
  HttpClientOptions o = Options(pki_.client_cert, pki_.client_key);
  o.on_connect = [](const ConnectionInfo& link) {
    return PermissionDenied("expected \"kme-a\", the server is \"" + link.peer_common_name + "\"");
  };
  auto c = HttpClient::Create(o).value();
  auto r = c->Request("GET", "/");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_EQ(c->failure(), Failure::kRefused);
  EXPECT_EQ(c->tls_group(), "");  // the connection was dropped
}

TEST_F(HttpClientTlsTest, AServerFromAnotherCaOrAClientItDoesNotTrustHasItsKind) {
  HttpClientOptions o = Options(pki_.client_cert, pki_.client_key);
  o.tls.ca_file = pki_.server_cert;  // not the CA: the server's chain does not verify
  auto c = HttpClient::Create(o).value();
  auto r = c->Request("GET", "/");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(c->failure(), Failure::kCertificate) << r.error().ToString();
  EXPECT_EQ(r.error().code(), ErrorCode::kFailedPrecondition);

  auto rogue = HttpClient::Create(Options(pki_.rogue_cert, pki_.rogue_key)).value();
  r = rogue->Request("GET", "/");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(rogue->failure(), Failure::kTlsRefused) << r.error().ToString();
  EXPECT_EQ(r.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_NE(r.error().message().find("refused the TLS session"), std::string::npos) << r.error().message();
}

}  // namespace
}  // namespace qsapi::net
