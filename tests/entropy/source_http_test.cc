// Tests of the QRNG HTTP source against a real local HTTP server (a thread with a plain socket on
// 127.0.0.1) and of the payload parser. No https server is run here: https is covered only by a
// handshake against the plain server failing cleanly.
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <netinet/in.h>
#include <poll.h>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "entropy/internal/qrng_payload.h"
#include "qsapi/entropy/source.h"

namespace qsapi::entropy {
namespace {

constexpr char kApiKey[] = "s3cr3t-api-key-value";

// LocalServer answers each connection with handler(request head); an empty answer means "never
// answer" (the connection is held open until the server stops).
class LocalServer {
 public:
  explicit LocalServer(std::function<std::string(const std::string&)> handler) : handler_(std::move(handler)) {
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
  }
  LocalServer(const LocalServer&) = delete;
  LocalServer& operator=(const LocalServer&) = delete;

  [[nodiscard]] std::string Url(const std::string& path = "/api") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
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
      std::string head;
      char buf[4096];
      while (head.find("\r\n\r\n") == std::string::npos && WaitReadable(c)) {
        const ssize_t n = ::read(c, buf, sizeof buf);
        if (n <= 0) break;
        head.append(buf, static_cast<std::size_t>(n));
      }
      {
        std::lock_guard lock(mu_);
        requests_.push_back(head);
      }
      const std::string answer = handler_(head);
      if (answer.empty()) {
        while (WaitReadable(c)) {
          if (::read(c, buf, sizeof buf) <= 0) break;
        }
      } else {
        std::size_t off = 0;
        while (off < answer.size()) {
          const ssize_t n = ::send(c, answer.data() + off, answer.size() - off, MSG_NOSIGNAL);
          if (n <= 0) break;
          off += static_cast<std::size_t>(n);
        }
      }
      ::close(c);
    }
  }

  std::function<std::string(const std::string&)> handler_;
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
  EXPECT_NE(s.error().message().find("127.0.0.1"), std::string::npos) << s.error().message();
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

TEST(HttpSource, RejectsBadOptions) {
  const std::vector<std::string> urls = {"",
                                         "ftp://example.com/",
                                         "http://",
                                         "http://user:pw@example.com/",
                                         "http://example.com:0/",
                                         "http://example.com:70000/",
                                         "http://exa mple.com/",
                                         "http://example.com/#frag",
                                         "http://[::1/"};
  for (const std::string& url : urls) {
    HttpSourceOptions o;
    o.url = url;
    auto r = OpenHttpSource(o);
    ASSERT_FALSE(r.ok()) << url;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument) << url;
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
