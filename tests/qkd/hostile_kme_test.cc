// The ETSI 014 client against a hostile KME: a real TLS server on loopback (mutual TLS, a test
// PKI) that answers with scripted raw bytes: every HTTP status real KMEs send, malformed and
// strange bodies, oversized heads and bodies, truncated, slow and absent answers, stale
// kept-alive connections, and classical-only TLS 1.2. Each case must end in its typed error,
// within its bound, without a crash and with the right number of attempts.
#include <sys/socket.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <chrono>
#include <functional>
#include <mutex>
#include <poll.h>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "net/test_tls.h"
#include "pki/internal/tls_context.h"
#include "qkd/qkd_test_util.h"
#include "qsapi/qkd/etsi014.h"
#include "support/test_support.h"

namespace qsapi::qkd {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using qsapi::testing::FastOptions;
using qsapi::testing::LogCapture;
using qsapi::testing::MakeClient;
using qsapi::testing::TempDir;
using qsapi::testing::TestPki;

constexpr char kId1[] = "6f6b7d57-7d3a-4a38-8e3e-0c5a1c1f2a01";
constexpr char kId2[] = "6f6b7d57-7d3a-4a38-8e3e-0c5a1c1f2a02";
// 32 bytes of 0x01 / 16 bytes of 0x01, base64.
constexpr char kKey256[] = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
constexpr char kKey128[] = "AQEBAQEBAQEBAQEBAQEBAQ==";

// Behaviour is what the hostile server does after it has read a request.
struct Behaviour {
  std::string bytes;                  // written as they are
  std::chrono::milliseconds drip{0};  // > 0: one byte per interval
  bool hang = false;                  // never answer (until the client goes away)
  bool keep_open = false;             // keep the connection for another request
};

Behaviour Send(std::string bytes) {
  Behaviour b;
  b.bytes = std::move(bytes);
  return b;
}
Behaviour Hang() {
  Behaviour b;
  b.hang = true;
  return b;
}
Behaviour Drip(std::string bytes, std::chrono::milliseconds interval) {
  Behaviour b = Send(std::move(bytes));
  b.drip = interval;
  return b;
}

std::string Http(int status, const std::string& body, const std::string& type = "application/json", bool close = true) {
  return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: " + type +
         "\r\nContent-Length: " + std::to_string(body.size()) + (close ? "\r\nConnection: close" : "") + "\r\n\r\n" +
         body;
}

std::string Container(const std::string& id, const std::string& key) {
  return std::string(R"({"keys":[{"key_ID":")") + id + R"(","key":")" + key + R"("}]})";
}

class HostileKme {
 public:
  HostileKme(const TestPki& pki, std::function<Behaviour(const std::string&)> script,
             const std::string& groups = std::string(pki::kKmeClientGroups),
             pki::TlsVersion max_version = pki::TlsVersion::kTls13)
      : script_(std::move(script)), ssl_(asio::ssl::context::tls_server), acceptor_(ioc_) {
    pki::TlsOptions o;
    o.min_version = pki::TlsVersion::kTls12;
    o.max_version = max_version;
    o.groups = groups;
    o.certificate_file = pki.server_cert;
    o.private_key_file = pki.server_key;
    o.ca_file = pki.ca;
    o.verify_peer = pki::PeerVerification::kRequired;
    const Status s = pki::ConfigureServerContext(ssl_.native_handle(), o);
    EXPECT_TRUE(s.ok()) << s.error().ToString();
    const tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(ep.protocol());
    acceptor_.bind(ep);
    acceptor_.listen();
    acceptor_.non_blocking(true);
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { Serve(); });
  }
  ~HostileKme() {
    stop_ = true;
    thread_.join();
  }
  HostileKme(const HostileKme&) = delete;
  HostileKme& operator=(const HostileKme&) = delete;

  [[nodiscard]] std::string Url() const { return "https://127.0.0.1:" + std::to_string(port_); }
  int requests() const { return requests_; }
  int connections() const { return connections_; }

 private:
  bool Readable(int fd, int ms) {
    pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
    return ::poll(&p, 1, ms) > 0;
  }

  void Serve() {
    while (!stop_) {
      if (!Readable(acceptor_.native_handle(), 10)) continue;
      boost::system::error_code ec;
      tcp::socket socket(ioc_);
      acceptor_.accept(socket, ec);
      if (ec) continue;
      ++connections_;
      timeval tv{.tv_sec = 3, .tv_usec = 0};
      ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      asio::ssl::stream<tcp::socket&> tls(socket, ssl_);
      tls.handshake(asio::ssl::stream_base::server, ec);
      if (ec) continue;
      while (!stop_) {
        std::string request;
        if (!ReadRequest(tls, request)) break;
        ++requests_;
        const Behaviour b = script_(request);
        if (b.hang) {
          while (!stop_) {
            if (Readable(socket.native_handle(), 10)) {
              char c;
              if (::recv(socket.native_handle(), &c, 1, MSG_PEEK) <= 0) break;  // the client went away
            }
          }
          break;
        }
        bool ok = true;
        if (b.drip.count() > 0) {
          for (std::size_t i = 0; i < b.bytes.size() && ok && !stop_; ++i) {
            asio::write(tls, asio::buffer(&b.bytes[i], 1), ec);
            ok = !ec;
            std::this_thread::sleep_for(b.drip);
          }
        } else {
          asio::write(tls, asio::buffer(b.bytes), ec);
          ok = !ec;
        }
        if (!ok || !b.keep_open) break;
      }
      tls.shutdown(ec);
      socket.close(ec);
    }
  }

  // ReadRequest reads a head and a Content-Length body.
  static bool ReadRequest(asio::ssl::stream<tcp::socket&>& tls, std::string& out) {
    char buf[4096];
    boost::system::error_code ec;
    while (out.find("\r\n\r\n") == std::string::npos) {
      const std::size_t n = tls.read_some(asio::buffer(buf), ec);
      if (ec || n == 0) return false;
      out.append(buf, n);
    }
    std::size_t length = 0;
    if (const std::size_t p = out.find("Content-Length: "); p != std::string::npos)
      length = std::stoul(out.substr(p + 16));
    const std::size_t head = out.find("\r\n\r\n") + 4;
    while (out.size() < head + length) {
      const std::size_t n = tls.read_some(asio::buffer(buf), ec);
      if (ec || n == 0) return false;
      out.append(buf, n);
    }
    return true;
  }

  std::function<Behaviour(const std::string&)> script_;
  asio::io_context ioc_;
  asio::ssl::context ssl_;
  tcp::acceptor acceptor_;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::atomic<int> connections_{0};
  std::thread thread_;
};

class HostileTest : public ::testing::Test {
 protected:
  HostileTest() : pki_(qsapi::testing::MakeTestPki(dir_)) {}
  Etsi014ClientOptions Options(const HostileKme& kme) const {
    return FastOptions(kme.Url(), pki_.ca, pki_.client_cert, pki_.client_key);
  }
  // GetOneKey asks for one 256-bit key by POST enc_keys.
  Result<std::vector<QkdKey>> GetOneKey(const Etsi014ClientOptions& o) {
    auto client = MakeClient(o);
    KeyRequest r;
    r.size = 256;
    return client->GetKey("SAE-B", r);
  }
  TempDir dir_;
  TestPki pki_;
};

struct StatusCase {
  int status;
  std::string body;
  std::string type;
  ErrorCode code;
  int attempts;
  std::string needle;
};

TEST_F(HostileTest, EveryHttpStatusBecomesItsTypedError) {
  const StatusCase cases[] = {
      {400, R"({"message":"Not enough keys available. Try again later."})", "application/json",
       ErrorCode::kResourceExhausted, 3, "Try again later"},
      {400, R"({"message":"size shall be a multiple of 8","details":[{"size":"12"}]})", "application/json",
       ErrorCode::kInvalidArgument, 1, "size shall be a multiple of 8"},
      {401, "<html><body><h1>401 Unauthorized</h1></body></html>", "text/html", ErrorCode::kPermissionDenied, 1,
       "non-JSON body"},
      {401, "", "application/json", ErrorCode::kPermissionDenied, 1, "HTTP 401"},
      {403, R"({"message":"keys expired"})", "application/json", ErrorCode::kPermissionDenied, 1, "keys expired"},
      {404, R"({"message":"not found"})", "application/json", ErrorCode::kNotFound, 1, "HTTP 404"},
      {409, R"({"message":"remote KME not synced"})", "application/json", ErrorCode::kFailedPrecondition, 1,
       "remote KME not synced"},
      {412, "", "application/json", ErrorCode::kFailedPrecondition, 1, "HTTP 412"},
      {500, R"({"message":"internal"})", "application/json", ErrorCode::kUnavailable, 3, "HTTP 500"},
      {503, R"({"message":"server error"})", "application/json", ErrorCode::kUnavailable, 3, "server error"},
      {504, R"({"message":"remote KME down"})", "application/json", ErrorCode::kUnavailable, 3, "remote KME down"},
      {418, "", "text/plain", ErrorCode::kDataLoss, 1, "HTTP 418"},
  };
  for (const StatusCase& c : cases) {
    SCOPED_TRACE("HTTP " + std::to_string(c.status) + " " + c.body);
    HostileKme kme(pki_, [&](const std::string&) { return Send(Http(c.status, c.body, c.type)); });
    auto r = GetOneKey(Options(kme));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), c.code) << r.error().ToString();
    EXPECT_NE(r.error().message().find(c.needle), std::string::npos) << r.error().message();
    EXPECT_NE(r.error().message().find(kme.Url()), std::string::npos) << "the message names the KME";
    EXPECT_EQ(kme.requests(), c.attempts);
  }
}

TEST_F(HostileTest, MalformedKeyContainersAreDataLoss) {
  const std::pair<std::string, std::string> cases[] = {
      {"this is not json", "not valid JSON"},
      {"[]", "not a JSON object"},
      {R"({"keys":[]})", "holds no keys"},
      {R"({"keys":{}})", "wrong type"},
      {R"({"nokeys":[]})", "unexpected member"},
      {R"({"keys":[{"key":")" + std::string(kKey256) + R"("}]})", "lacks the member \"key_ID\""},
      {Container("abc", kKey256), "malformed key_ID"},
      {Container("6f6b7d57-7d3a-4a38-8e3e-0c5a1c1f2a0g", kKey256), "malformed key_ID"},
      {R"({"keys":[{"key_ID":5,"key":")" + std::string(kKey256) + R"("}]})", "wrong type"},
      {Container(kId1, "!!!!not*base64!!!!"), "not valid base64"},
      {Container(kId1, ""), "not valid base64"},
      {Container(kId1, kKey128), "has 128 bits, 256 were requested"},
      {R"({"keys":[{"key_ID":")" + std::string(kId1) + R"(","key":")" + kKey256 + R"(","colour":"red"}]})",
       "unexpected member \"colour\""},
      {R"({"keys":[{"key_ID":")" + std::string(kId1) + R"(","key":")" + kKey256 + R"("},{"key_ID":")" + kId2 +
           R"(","key":")" + kKey256 + R"("}]})",
       "holds 2 keys, 1 were requested"},
      {R"({"keys":[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]})", "nests deeper"},
  };
  for (const auto& c : cases) {
    const std::string& body = c.first;  // not a structured binding: clang 14 cannot capture those
    const std::string& needle = c.second;
    SCOPED_TRACE(body);
    HostileKme kme(pki_, [&](const std::string&) { return Send(Http(200, body)); });
    auto r = GetOneKey(Options(kme));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ErrorCode::kDataLoss) << r.error().ToString();
    EXPECT_NE(r.error().message().find(needle), std::string::npos) << r.error().message();
    EXPECT_EQ(r.error().message().find(kKey256), std::string::npos) << "a key leaked into the message";
    EXPECT_EQ(kme.requests(), 1);
  }
}

TEST_F(HostileTest, DuplicateKeyIdsInOneResponseAreRejected) {
  const std::string body = R"({"keys":[{"key_ID":")" + std::string(kId1) + R"(","key":")" + kKey256 +
                           R"("},{"key_ID":")" + std::string(kId1) + R"(","key":")" + kKey256 + R"("}]})";
  HostileKme kme(pki_, [&](const std::string&) { return Send(Http(200, body)); });
  auto client = MakeClient(Options(kme));
  KeyRequest req;
  req.number = 2;
  auto r = client->GetKey("SAE-B", req);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kDataLoss);
  EXPECT_NE(r.error().message().find("duplicate key_ID"), std::string::npos) << r.error().message();
}

TEST_F(HostileTest, DecKeysMustReturnTheKeyIdsAskedFor) {
  HostileKme kme(pki_, [&](const std::string&) { return Send(Http(200, Container(kId2, kKey256))); });
  auto client = MakeClient(Options(kme));
  auto r = client->GetKeyWithKeyIds("SAE-A", std::vector<std::string>{kId1});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kDataLoss);
  EXPECT_NE(r.error().message().find(kId1), std::string::npos);
}

TEST_F(HostileTest, TolerantWhereTheSpecIsExtensibleAndSendsWhatTheSpecSays) {
  std::string request;
  std::mutex mu;
  // Extension members with any content; "\/" escapes in base64; unpadded base64; upper-case key_IDs.
  const std::string body =
      R"({"keys":[{"key_ID":"6F6B7D57-7D3A-4A38-8E3E-0C5A1C1F2A01","key_ID_extension":{"x":[1,{"y":null}]},)"
      R"("key":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE","key_extension":{}}],)"
      R"("key_container_extension":{"vendor":"\/x"}})";
  HostileKme kme(pki_, [&](const std::string& req) {
    std::lock_guard lock(mu);
    request = req;
    return Send(Http(200, body));
  });
  auto client = MakeClient(Options(kme));
  KeyRequest req;
  req.number = 1;
  req.size = 256;
  auto r = client->GetKey("SAE B/1", req);
  QSAPI_ASSERT_OK(r);
  EXPECT_EQ((*r)[0].key.size(), 32U);
  std::lock_guard lock(mu);
  EXPECT_EQ(request.rfind("POST /api/v1/keys/SAE%20B%2F1/enc_keys HTTP/1.1\r\n", 0), 0U) << request;
  EXPECT_NE(request.find("Content-Type: application/json"), std::string::npos);
  EXPECT_NE(request.find(R"({"number":1,"size":256})"), std::string::npos) << request;
}

TEST_F(HostileTest, StatusMustHaveTheSpecsMembersAndTypes) {
  const std::string good =
      R"({"source_KME_ID":"K1","target_KME_ID":"K2","master_SAE_ID":"A","slave_SAE_ID":"B","key_size":256,)"
      R"("stored_key_count":5,"max_key_count":10,"max_key_per_request":2,"max_key_size":1024,"min_key_size":64,)"
      R"("max_SAE_ID_count":0,"status_extension":{"any":"thing"}})";
  std::string body = good;
  HostileKme kme(pki_, [&](const std::string&) { return Send(Http(200, body)); });
  auto ok = MakeClient(Options(kme))->GetStatus("B");
  QSAPI_ASSERT_OK(ok);
  EXPECT_EQ(ok->stored_key_count, 5U);
  for (const std::string& bad : {
           std::string(R"({"source_KME_ID":"K1"})"),
           std::string(good).replace(good.find("256"), 3, "-256"),
           std::string(good).replace(good.find("256"), 3, "\"256\""),
           std::string(good).replace(good.find("256"), 3, "256.5"),
           std::string(good).replace(good.find("\"K1\""), 4, "null"),
           std::string(good).insert(1, R"("surprise":1,)"),
       }) {
    SCOPED_TRACE(bad);
    body = bad;
    auto r = MakeClient(Options(kme))->GetStatus("B");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ErrorCode::kDataLoss) << r.error().ToString();
  }
}

TEST_F(HostileTest, OversizedResponsesAreBounded) {
  Etsi014ClientOptions o;
  {  // A Content-Length over the limit is refused before the body is read.
    HostileKme kme(pki_, [](const std::string&) {
      return Send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n{");
    });
    o = Options(kme);
    o.max_response_bytes = 64 * 1024;
    auto r = GetOneKey(o);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ErrorCode::kDataLoss);
    EXPECT_NE(r.error().message().find("limit of 65536"), std::string::npos) << r.error().message();
  }
  {  // A chunked body that grows past the limit.
    std::string chunked = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    const std::string chunk(8192, 'A');
    for (int i = 0; i < 12; ++i) chunked += "2000\r\n" + chunk + "\r\n";
    chunked += "0\r\n\r\n";
    HostileKme kme(pki_, [&](const std::string&) { return Send(chunked); });
    o = Options(kme);
    o.max_response_bytes = 64 * 1024;
    auto r = GetOneKey(o);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ErrorCode::kDataLoss);
    EXPECT_NE(r.error().message().find("exceeds the limit"), std::string::npos) << r.error().message();
  }
  {  // A head over 16 KiB.
    const std::string head =
        "HTTP/1.1 200 OK\r\nX-Junk: " + std::string(20000, 'x') + "\r\nContent-Length: 2\r\n\r\n{}";
    HostileKme kme(pki_, [&](const std::string&) { return Send(head); });
    auto r = GetOneKey(Options(kme));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ErrorCode::kDataLoss);
    EXPECT_NE(r.error().message().find("head exceeds"), std::string::npos) << r.error().message();
  }
}

TEST_F(HostileTest, TruncatedAndGarbageResponses) {
  {
    HostileKme kme(pki_, [](const std::string&) {
      return Send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"keys\":");
    });
    auto r = GetOneKey(Options(kme));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ErrorCode::kDataLoss) << r.error().ToString();
    EXPECT_NE(r.error().message().find("cut off"), std::string::npos) << r.error().message();
    EXPECT_EQ(kme.requests(), 1) << "a truncated answer is not retried: the KME may have released keys";
  }
  {
    HostileKme kme(pki_, [](const std::string&) { return Send("SMTP READY\r\n\r\n"); });
    auto r = GetOneKey(Options(kme));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ErrorCode::kDataLoss) << r.error().ToString();
    EXPECT_NE(r.error().message().find("malformed HTTP response"), std::string::npos) << r.error().message();
  }
  {  // Closed without a byte of answer, on a fresh connection: UNAVAILABLE, retried.
    HostileKme kme(pki_, [](const std::string&) { return Behaviour{}; });
    auto r = GetOneKey(Options(kme));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable) << r.error().ToString();
    EXPECT_EQ(kme.requests(), 3);
  }
}

TEST_F(HostileTest, ASilentKmeHitsTheDeadlineOnceWithoutRetry) {
  HostileKme kme(pki_, [](const std::string&) { return Hang(); });
  auto o = Options(kme);
  o.request_timeout = std::chrono::milliseconds(200);
  const auto start = std::chrono::steady_clock::now();
  auto r = GetOneKey(o);
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kDeadlineExceeded) << r.error().ToString();
  EXPECT_GE(took, std::chrono::milliseconds(200));
  EXPECT_LT(took, std::chrono::milliseconds(1500));
  EXPECT_EQ(kme.requests(), 1);
}

TEST_F(HostileTest, ASlowDripHitsTheDeadline) {
  const std::string answer = Http(200, Container(kId1, kKey256));
  HostileKme kme(pki_, [&](const std::string&) { return Drip(answer, std::chrono::milliseconds(20)); });
  auto o = Options(kme);
  o.request_timeout = std::chrono::milliseconds(300);
  const auto start = std::chrono::steady_clock::now();
  auto r = GetOneKey(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kDeadlineExceeded) << r.error().ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1500));
}

TEST_F(HostileTest, TheTotalDeadlineBoundsRetries) {
  HostileKme kme(pki_, [](const std::string&) { return Send(Http(503, R"({"message":"busy"})")); });
  auto o = Options(kme);
  o.max_attempts = 10;
  o.initial_backoff = std::chrono::milliseconds(300);
  o.max_backoff = std::chrono::milliseconds(300);
  o.total_timeout = std::chrono::milliseconds(1000);
  auto r = GetOneKey(o);
  ASSERT_FALSE(r.ok());
  // At most total / backoff + 1 attempts, far below max_attempts. On a loaded machine (sanitizers,
  // parallel tests) the deadline may run out inside a request rather than between two.
  EXPECT_LE(kme.requests(), 4);
  EXPECT_GE(kme.requests(), 1);
  if (r.error().code() == ErrorCode::kUnavailable) {
    EXPECT_NE(r.error().message().find("no time left"), std::string::npos) << r.error().message();
  } else {
    EXPECT_EQ(r.error().code(), ErrorCode::kDeadlineExceeded) << r.error().ToString();
  }
}

TEST_F(HostileTest, AStaleKeptAliveConnectionIsReplacedTransparently) {
  // The answer claims keep-alive, then the server closes the connection anyway.
  HostileKme kme(pki_, [&](const std::string&) {
    return Send(Http(200, Container(kId1, kKey256), "application/json", /*close=*/false));
  });
  auto client = MakeClient(Options(kme));
  KeyRequest r;
  r.size = 256;
  QSAPI_ASSERT_OK(client->GetKey("SAE-B", r));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  QSAPI_ASSERT_OK(client->GetKey("SAE-B", r));
  EXPECT_EQ(kme.connections(), 2);
  EXPECT_EQ(client->link().retries, 0U);
}

TEST_F(HostileTest, AClassicalTls12KmeIsAllowedWithOneWarning) {
  LogCapture logs;
  HostileKme kme(
      pki_, [](const std::string&) { return Send(Http(200, Container(kId1, kKey256))); }, "X25519:secp256r1",
      pki::TlsVersion::kTls12);
  auto client = MakeClient(Options(kme));
  KeyRequest r;
  r.size = 256;
  QSAPI_ASSERT_OK(client->GetKey("SAE-B", r));
  QSAPI_ASSERT_OK(client->GetKey("SAE-B", r));
  EXPECT_EQ(kme.connections(), 2);
  EXPECT_EQ(client->link().tls_version, "TLSv1.2");
  EXPECT_FALSE(client->link().pq_hybrid);
  EXPECT_EQ(logs.Count("WARNING qkd:"), 1U);
  EXPECT_EQ(logs.Count(kKey256), 0U);
  // A client that insists on TLS 1.3 does not connect.
  auto o = Options(kme);
  o.allow_tls12 = false;
  auto strict = GetOneKey(o);
  ASSERT_FALSE(strict.ok());
}

}  // namespace
}  // namespace qsapi::qkd
