// Tests of the qsapi_net HTTPS server over real TLS on loopback: the handler's view of a request
// (verified client CN, negotiated group), client-certificate policy, hybrid-only groups, size
// limits, keep-alive, idle and request timeouts, the connection limit, delayed answers and the
// graceful stop that lets a request in flight finish.
#include "net/https_server.h"

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "net/test_tls.h"
#include "pki/internal/tls_context.h"
#include "support/test_support.h"

namespace qsapi::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using ErrorCodeT = boost::system::error_code;
using qsapi::testing::TempDir;
using qsapi::testing::TestPki;

// TestClient: one TLS connection, every step bounded by a 5-second run of its io_context.
class TestClient {
 public:
  TestClient(const TestPki& t, const std::string& cert, const std::string& key,
             const std::string& groups = std::string(pki::kPqHybridGroups))
      : ctx_(asio::ssl::context::tls_client) {
    pki::TlsOptions o;
    o.min_version = pki::TlsVersion::kTls12;
    o.groups = groups;
    o.certificate_file = cert;
    o.private_key_file = key;
    o.ca_file = t.ca;
    const Status s = pki::ConfigureClientContext(ctx_.native_handle(), o);
    EXPECT_TRUE(s.ok()) << s.error().ToString();
  }

  // Connect returns the handshake's error (none on success).
  ErrorCodeT Connect(std::uint16_t port) {
    stream_.emplace(ioc_, ctx_);
    EXPECT_TRUE(pki::ConfigureClientConnection(stream_->native_handle(), "127.0.0.1", true).ok());
    ErrorCodeT ec;
    stream_->next_layer().connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
    if (ec) return ec;
    return Run([&](auto done) { stream_->async_handshake(asio::ssl::stream_base::client, done); });
  }

  // Request sends one request and reads the response; the error says why it failed.
  ErrorCodeT Request(http::verb verb, const std::string& target, const std::string& body,
                     http::response<http::string_body>& res, const std::string& extra_header = "") {
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, "127.0.0.1");
    if (!extra_header.empty()) req.set("X-Extra", extra_header);
    req.body() = body;
    req.prepare_payload();
    ErrorCodeT ec = Run(
        [&](auto done) { http::async_write(*stream_, req, [done](const ErrorCodeT& e, std::size_t) { done(e); }); });
    if (ec) return ec;
    buffer_.clear();
    return Run([&](auto done) {
      http::async_read(*stream_, buffer_, res, [done](const ErrorCodeT& e, std::size_t) { done(e); });
    });
  }

  // Raw writes `bytes` as they are (framing no well-behaved client would send) and reads one response.
  ErrorCodeT Raw(const std::string& bytes, http::response<http::string_body>& res) {
    ErrorCodeT ec = Run([&](auto done) {
      asio::async_write(*stream_, asio::buffer(bytes), [done](const ErrorCodeT& e, std::size_t) { done(e); });
    });
    if (ec) return ec;
    buffer_.clear();
    return Run([&](auto done) {
      http::async_read(*stream_, buffer_, res, [done](const ErrorCodeT& e, std::size_t) { done(e); });
    });
  }

  // WaitClosed tells whether the server closes the connection within `limit`.
  bool WaitClosed(std::chrono::milliseconds limit) {
    char c;
    std::optional<ErrorCodeT> result;
    stream_->async_read_some(asio::buffer(&c, 1), [&](const ErrorCodeT& e, std::size_t) { result = e; });
    ioc_.restart();
    ioc_.run_for(limit);
    if (!result) {
      stream_->next_layer().close();
      ioc_.restart();
      ioc_.run();
      return false;
    }
    return static_cast<bool>(*result);
  }

  SSL* ssl() { return stream_->native_handle(); }

 private:
  template <typename Start>
  ErrorCodeT Run(Start&& start) {
    std::optional<ErrorCodeT> result;
    start([&result](const ErrorCodeT& e) { result = e; });
    ioc_.restart();
    ioc_.run_for(std::chrono::seconds(5));
    if (!result) {
      stream_->next_layer().close();
      ioc_.restart();
      ioc_.run();
      return asio::error::timed_out;
    }
    return *result;
  }

  asio::io_context ioc_;
  asio::ssl::context ctx_;
  std::optional<asio::ssl::stream<tcp::socket>> stream_;
  beast::flat_buffer buffer_;
};

class HttpsServerTest : public ::testing::Test {
 protected:
  HttpsServerTest() : pki_(qsapi::testing::MakeTestPki(dir_)) {}

  HttpsServerOptions Options(pki::PeerVerification verify = pki::PeerVerification::kRequired) const {
    HttpsServerOptions o;
    o.tls.certificate_file = pki_.server_cert;
    o.tls.private_key_file = pki_.server_key;
    o.tls.ca_file = pki_.ca;
    o.tls.verify_peer = verify;
    o.request_timeout = std::chrono::milliseconds(2000);
    o.idle_timeout = std::chrono::milliseconds(2000);
    return o;
  }

  std::unique_ptr<HttpsServer> Start(const HttpsServerOptions& o, HttpHandler h) {
    auto s = HttpsServer::Start(o, std::move(h));
    EXPECT_TRUE(s.ok()) << s.error().ToString();
    return s.ok() ? std::move(s).value() : nullptr;
  }

  static HttpResponse Echo(const HttpRequest& r) {
    HttpResponse out;
    out.body = r.method + " " + r.path + " ?" + r.query + " cn=" + r.peer_common_name + " group=" + r.tls_group +
               " body=" + r.body + " extra=" + std::string(r.Header("x-extra"));
    return out;
  }

  TempDir dir_;
  TestPki pki_;
};

TEST_F(HttpsServerTest, HandlerSeesTheRequestTheVerifiedCnAndTheHybridGroup) {
  auto server = Start(Options(), Echo);
  TestClient c(pki_, pki_.client_cert, pki_.client_key);
  ASSERT_FALSE(c.Connect(server->port()));
  EXPECT_EQ(pki::NegotiatedGroupName(c.ssl()), "X25519MLKEM768");
  http::response<http::string_body> res;
  ASSERT_FALSE(c.Request(http::verb::post, "/a/b%20c?x=1&y=%2F", "hello", res, "v1"));
  EXPECT_EQ(res.result_int(), 200U);
  EXPECT_EQ(res.body(), "POST /a/b%20c ?x=1&y=%2F cn=client group=X25519MLKEM768 body=hello extra=v1");
  EXPECT_EQ(res[http::field::content_type], "application/json");
  // Keep-alive: a second request on the same connection.
  http::response<http::string_body> res2;
  ASSERT_FALSE(c.Request(http::verb::get, "/again", "", res2));
  EXPECT_EQ(res2.body().rfind("GET /again ?", 0), 0U);
}

TEST_F(HttpsServerTest, RequiredClientCertificatesAreEnforced) {
  auto server = Start(Options(), Echo);
  {  // No certificate: the handshake (or, in TLS 1.3, the first read) fails.
    TestClient c(pki_, "", "");
    http::response<http::string_body> res;
    const bool failed = c.Connect(server->port()) || c.Request(http::verb::get, "/", "", res);
    EXPECT_TRUE(failed);
  }
  {  // A certificate from a CA the server does not trust.
    TestClient c(pki_, pki_.rogue_cert, pki_.rogue_key);
    http::response<http::string_body> res;
    const bool failed = c.Connect(server->port()) || c.Request(http::verb::get, "/", "", res);
    EXPECT_TRUE(failed);
  }
}

TEST_F(HttpsServerTest, OptionalClientCertificates) {
  auto server = Start(Options(pki::PeerVerification::kOptional), Echo);
  TestClient anonymous(pki_, "", "");
  ASSERT_FALSE(anonymous.Connect(server->port()));
  http::response<http::string_body> res;
  ASSERT_FALSE(anonymous.Request(http::verb::get, "/", "", res));
  EXPECT_NE(res.body().find(" cn= "), std::string::npos) << res.body();
  TestClient named(pki_, pki_.client_cert, pki_.client_key);
  ASSERT_FALSE(named.Connect(server->port()));
  ASSERT_FALSE(named.Request(http::verb::get, "/", "", res));
  EXPECT_NE(res.body().find(" cn=client "), std::string::npos) << res.body();
}

TEST_F(HttpsServerTest, AHybridOnlyServerRefusesAClassicalOnlyClient) {
  auto server = Start(Options(), Echo);  // default groups: kPqHybridGroups
  TestClient classical(pki_, pki_.client_cert, pki_.client_key, "X25519:secp256r1");
  EXPECT_TRUE(classical.Connect(server->port()));
}

TEST_F(HttpsServerTest, TheSecondHybridGroupAndTls13Only) {
  auto server = Start(Options(), Echo);
  TestClient c(pki_, pki_.client_cert, pki_.client_key, "SecP384r1MLKEM1024");
  ASSERT_FALSE(c.Connect(server->port()));
  EXPECT_EQ(pki::NegotiatedGroupName(c.ssl()), "SecP384r1MLKEM1024");
  EXPECT_EQ(pki::ProtocolVersionName(c.ssl()), "TLSv1.3");
}

TEST_F(HttpsServerTest, ConcurrentClientsOnSeveralThreads) {
  auto o = Options();
  o.threads = 2;
  std::atomic<int> handled{0};
  auto server = Start(o, [&](const HttpRequest& r) {
    ++handled;
    return Echo(r);
  });
  std::vector<std::future<int>> results;
  for (int t = 0; t < 4; ++t) {
    results.push_back(std::async(std::launch::async, [&] {
      TestClient c(pki_, pki_.client_cert, pki_.client_key);
      if (c.Connect(server->port())) return 0;
      int ok = 0;
      for (int i = 0; i < 10; ++i) {
        http::response<http::string_body> res;
        if (!c.Request(http::verb::get, "/n", "", res) && res.result_int() == 200) ++ok;
      }
      return ok;
    }));
  }
  int total = 0;
  for (auto& r : results) total += r.get();
  EXPECT_EQ(total, 40);
  EXPECT_EQ(handled, 40);
}

TEST_F(HttpsServerTest, SizeLimits) {
  auto o = Options();
  o.max_body_bytes = 1024;
  o.max_header_bytes = 2048;
  auto server = Start(o, Echo);
  {
    TestClient c(pki_, pki_.client_cert, pki_.client_key);
    ASSERT_FALSE(c.Connect(server->port()));
    http::response<http::string_body> res;
    ASSERT_FALSE(c.Request(http::verb::post, "/", std::string(2000, 'x'), res));
    EXPECT_EQ(res.result_int(), 413U);
    EXPECT_FALSE(res.keep_alive());
  }
  {
    TestClient c(pki_, pki_.client_cert, pki_.client_key);
    ASSERT_FALSE(c.Connect(server->port()));
    http::response<http::string_body> res;
    ASSERT_FALSE(c.Request(http::verb::get, "/", "", res, std::string(4000, 'h')));
    EXPECT_EQ(res.result_int(), 431U);
  }
}

TEST_F(HttpsServerTest, IdleAndRequestTimeoutsCloseConnections) {
  auto o = Options();
  o.idle_timeout = std::chrono::milliseconds(150);
  o.request_timeout = std::chrono::milliseconds(300);
  auto server = Start(o, Echo);
  {  // Idle after a request: closed after idle_timeout.
    TestClient c(pki_, pki_.client_cert, pki_.client_key);
    ASSERT_FALSE(c.Connect(server->port()));
    http::response<http::string_body> res;
    ASSERT_FALSE(c.Request(http::verb::get, "/", "", res));
    EXPECT_TRUE(c.WaitClosed(std::chrono::milliseconds(2000)));
  }
  {  // Connected, never sends a request: closed after request_timeout.
    TestClient c(pki_, pki_.client_cert, pki_.client_key);
    ASSERT_FALSE(c.Connect(server->port()));
    const auto start = std::chrono::steady_clock::now();
    EXPECT_TRUE(c.WaitClosed(std::chrono::milliseconds(2000)));
    EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(250));
  }
  // The session is released just after its socket closes.
  for (int i = 0; i < 100 && server->active_connections() != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(server->active_connections(), 0U);
}

// At the connection limit a newcomer is admitted by shedding a connection that waits for a request;
// a connection whose request is being handled is never shed (then the newcomer is refused).
TEST_F(HttpsServerTest, ConnectionLimitShedsAWaitingConnectionNeverABusyOne) {
  auto o = Options();
  o.max_connections = 1;
  std::promise<HttpResponder> held;
  auto s = HttpsServer::Start(o, HttpAsyncHandler([&](HttpRequest r, HttpResponder respond) {
                                if (r.path == "/hold") return held.set_value(respond);
                                HttpResponse out;
                                out.body = "ok";
                                respond(std::move(out));
                              }));
  ASSERT_TRUE(s.ok());
  const std::uint16_t port = (*s)->port();
  // A client has its answer a moment before the server reads again (its connection is busy until
  // then): wait for that, so that the connection is waiting when the next one arrives.
  const auto until_waiting = [&] {
    for (int i = 0; i < 500 && (*s)->stats().busy > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    ASSERT_EQ((*s)->stats().busy, 0U);
  };
  http::response<http::string_body> res;
  TestClient first(pki_, pki_.client_cert, pki_.client_key);
  ASSERT_FALSE(first.Connect(port));
  ASSERT_FALSE(first.Request(http::verb::get, "/", "", res));  // now it waits for its next request
  until_waiting();
  TestClient second(pki_, pki_.client_cert, pki_.client_key);
  ASSERT_FALSE(second.Connect(port));
  res = {};
  ASSERT_FALSE(second.Request(http::verb::get, "/", "", res));
  EXPECT_EQ(res.body(), "ok");
  EXPECT_TRUE(first.Request(http::verb::get, "/", "", res)) << "the older, waiting connection was shed";
  EXPECT_EQ((*s)->stats().shed_idle, 1U);
  until_waiting();

  // `second` now waits; a third connection takes its place and starts a request that is held.
  std::future<std::string> busy = std::async(std::launch::async, [&] {
    TestClient third(pki_, pki_.client_cert, pki_.client_key);
    if (third.Connect(port)) return std::string("connect failed");
    http::response<http::string_body> r;
    if (auto ec = third.Request(http::verb::get, "/hold", "", r)) return ec.message();
    return r.body();
  });
  std::future<HttpResponder> arrived = held.get_future();
  if (arrived.wait_for(std::chrono::seconds(20)) != std::future_status::ready) {
    FAIL() << "the held request never reached the handler: " << busy.get();
  }
  HttpResponder respond = arrived.get();
  EXPECT_EQ((*s)->stats().busy, 1U);
  TestClient fourth(pki_, pki_.client_cert, pki_.client_key);
  EXPECT_TRUE(fourth.Connect(port) || fourth.Request(http::verb::get, "/", "", res)) << "refused: only a busy one";
  EXPECT_GE((*s)->stats().refused, 1U);
  HttpResponse out;
  out.body = "held";
  respond(std::move(out));
  EXPECT_EQ(busy.get(), "held");
  const HttpsServerStats st = (*s)->stats();
  EXPECT_EQ(st.shed_idle, 2U);
  EXPECT_EQ(st.accepted, 3U);
}

// One address may hold at most max_unfinished_per_source unfinished handshakes: a newcomer from it
// sheds its own oldest, and a client that finishes its handshake is not affected.
TEST_F(HttpsServerTest, UnfinishedHandshakesArePerSourceBounded) {
  auto o = Options();
  o.max_unfinished_per_source = 2;
  o.handshake_timeout = std::chrono::milliseconds(1500);
  auto server = Start(o, Echo);
  asio::io_context ioc;  // declared first: the sockets below must be destroyed before it
  std::vector<tcp::socket> stalled;
  for (int i = 0; i < 3; ++i) {
    tcp::socket sock(ioc);
    sock.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server->port()));
    const unsigned char partial[] = {0x16, 0x03, 0x01};  // the start of a record: the kernel hands it over
    asio::write(sock, asio::buffer(partial));
    stalled.push_back(std::move(sock));
    for (int w = 0; w < 100 && server->stats().accepted < static_cast<std::uint64_t>(i + 1); ++w) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  HttpsServerStats st = server->stats();
  EXPECT_EQ(st.accepted, 3U);
  EXPECT_EQ(st.shed_unfinished, 1U);
  EXPECT_EQ(st.unfinished, 2U);
  EXPECT_EQ(st.sources, 1U);
  // The first one was shed: the server closed it.
  char c = 0;
  ErrorCodeT ec;
  stalled[0].read_some(asio::buffer(&c, 1), ec);
  EXPECT_TRUE(ec) << "the oldest stalled handshake was closed";
  TestClient good(pki_, pki_.client_cert, pki_.client_key);
  ASSERT_FALSE(good.Connect(server->port()));
  http::response<http::string_body> res;
  ASSERT_FALSE(good.Request(http::verb::get, "/", "", res));
  EXPECT_EQ(res.result_int(), 200U);
  // The rest time out in their handshake.
  for (int w = 0; w < 300 && server->stats().handshake_timeouts < 1; ++w) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_GE(server->stats().handshake_timeouts, 1U);
}

// Framing that one server reads one way and a proxy in front of it another (request smuggling)
// is refused before any handler sees it, and the connection closed; plain HTTP/1.0 without Host
// and a real chunked body still work.
TEST_F(HttpsServerTest, AmbiguousFramingIsRefused) {
  std::atomic<int> handled{0};
  auto server = Start(Options(), [&](const HttpRequest& r) {
    ++handled;
    return Echo(r);
  });
  struct Case {
    std::string bytes;
    unsigned status;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501,
       "only Transfer-Encoding: chunked"},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501,
       "only Transfer-Encoding: chunked"},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400, ""},
      {"GET / HTTP/1.1\r\nHost: a\r\nX-Extra: one\r\n two\r\n\r\n", 400, "obsolete line folding"},
      {"GET / HTTP/1.1\r\nHost: a\r\nX-Extra: one\r\n\ttwo\r\n\r\n", 400, "obsolete line folding"},
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2, 2\r\n\r\nhi", 400, ""},
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi", 400, ""},
      {"GET / HTTP/1.1\r\n\r\n", 400, "exactly one Host"},
      {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "exactly one Host"},
  };
  for (const Case& c : cases) {
    TestClient client(pki_, pki_.client_cert, pki_.client_key);
    ASSERT_FALSE(client.Connect(server->port()));
    http::response<http::string_body> res;
    ASSERT_FALSE(client.Raw(c.bytes, res)) << c.bytes;
    EXPECT_EQ(res.result_int(), c.status) << c.bytes << " -> " << res.body();
    if (!c.says.empty()) {
      EXPECT_NE(res.body().find(c.says), std::string::npos) << c.bytes << " -> " << res.body();
    }
    EXPECT_FALSE(res.keep_alive()) << c.bytes;
  }
  EXPECT_EQ(handled.load(), 0) << "no refused request reached the handler";
  // What is well framed still works.
  for (const std::string& ok :
       std::vector<std::string>{"GET /old HTTP/1.0\r\n\r\n",
                                "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
                                "POST /l HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi"}) {
    TestClient client(pki_, pki_.client_cert, pki_.client_key);
    ASSERT_FALSE(client.Connect(server->port()));
    http::response<http::string_body> res;
    ASSERT_FALSE(client.Raw(ok, res)) << ok;
    EXPECT_EQ(res.result_int(), 200U) << ok << " -> " << res.body();
  }
  EXPECT_EQ(handled.load(), 3);
}

TEST_F(HttpsServerTest, GracefulStopLetsARequestInFlightFinish) {
  std::atomic<bool> in_handler{false};
  auto server = Start(Options(), [&](const HttpRequest& r) {
    in_handler = true;
    HttpResponse out = Echo(r);
    out.delay = std::chrono::milliseconds(300);  // the answer is still pending when Stop() begins
    return out;
  });
  TestClient idle(pki_, pki_.client_cert, pki_.client_key);
  ASSERT_FALSE(idle.Connect(server->port()));
  auto result = std::async(std::launch::async, [&] {
    TestClient c(pki_, pki_.client_cert, pki_.client_key);
    http::response<http::string_body> res;
    if (c.Connect(server->port()) || c.Request(http::verb::get, "/slow", "", res)) return std::string("failed");
    return std::to_string(res.result_int()) + (res.keep_alive() ? " keep-alive" : " close");
  });
  while (!in_handler) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  server->Stop(std::chrono::seconds(3));
  EXPECT_EQ(result.get(), "200 close");
  EXPECT_TRUE(idle.WaitClosed(std::chrono::milliseconds(500)));
  EXPECT_EQ(server->active_connections(), 0U);
  // Nothing listens any more.
  TestClient late(pki_, pki_.client_cert, pki_.client_key);
  EXPECT_TRUE(late.Connect(server->port()));
}

TEST_F(HttpsServerTest, StartErrors) {
  auto o = Options();
  o.tls.certificate_file = dir_.File("missing.pem");
  EXPECT_EQ(HttpsServer::Start(o, Echo).error().code(), ErrorCode::kInvalidArgument);
  o = Options();
  o.bind_address = "not-an-ip";
  EXPECT_EQ(HttpsServer::Start(o, Echo).error().code(), ErrorCode::kInvalidArgument);
  auto first = Start(Options(), Echo);
  o = Options();
  o.port = first->port();
  o.bind_address = "127.0.0.1";
  // SO_REUSEADDR does not allow two listeners on one port.
  EXPECT_EQ(HttpsServer::Start(o, Echo).error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(HttpsServer::Start(Options(), HttpHandler{}).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(HttpsServer::Start(Options(), HttpAsyncHandler{}).error().code(), ErrorCode::kInvalidArgument);
}

// The asynchronous handler: an answer from another thread, later than request_timeout, does not
// hold the I/O thread (a second connection is served meanwhile on the only I/O thread).
TEST_F(HttpsServerTest, AsyncAnswersFromAnotherThreadDoNotHoldTheIoThread) {
  HttpsServerOptions o = Options();
  o.threads = 1;
  o.request_timeout = std::chrono::milliseconds(300);
  std::vector<std::thread> workers;
  std::mutex mu;
  auto s = HttpsServer::Start(o, HttpAsyncHandler([&](HttpRequest r, HttpResponder respond) {
                                if (r.path == "/slow") {
                                  const std::lock_guard lock(mu);
                                  workers.emplace_back([respond, addr = r.remote_address] {
                                    std::this_thread::sleep_for(std::chrono::milliseconds(800));
                                    HttpResponse out;
                                    out.body = "slow from " + addr;
                                    respond(out);
                                    respond(HttpResponse{});  // a second call is ignored
                                  });
                                  return;
                                }
                                HttpResponse out;
                                out.body = "fast";
                                respond(std::move(out));
                              }));
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  std::future<std::string> slow = std::async(std::launch::async, [&] {
    TestClient c(pki_, pki_.client_cert, pki_.client_key);
    if (c.Connect((*s)->port())) return std::string("connect failed");
    http::response<http::string_body> res;
    if (auto ec = c.Request(http::verb::get, "/slow", "", res)) return ec.message();
    return res.body();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const auto t0 = std::chrono::steady_clock::now();
  TestClient c(pki_, pki_.client_cert, pki_.client_key);
  ASSERT_FALSE(c.Connect((*s)->port()));
  http::response<http::string_body> res;
  ASSERT_FALSE(c.Request(http::verb::get, "/fast", "", res));
  EXPECT_EQ(res.body(), "fast");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(700)) << "served while /slow waited";
  EXPECT_EQ(slow.get(), "slow from 127.0.0.1");
  (*s)->Stop();
  for (auto& w : workers) w.join();
}

// A responder dropped without a call answers 500; one called after Stop is harmless.
TEST_F(HttpsServerTest, DroppedAndLateRespondersAreSafe) {
  std::promise<HttpResponder> kept;
  std::atomic<bool> kept_once{false};
  auto s = HttpsServer::Start(Options(), HttpAsyncHandler([&](HttpRequest r, HttpResponder respond) {
                                if (r.path == "/drop") return;  // never answered
                                if (!kept_once.exchange(true)) kept.set_value(respond);
                              }));
  ASSERT_TRUE(s.ok());
  {
    TestClient c(pki_, pki_.client_cert, pki_.client_key);
    ASSERT_FALSE(c.Connect((*s)->port()));
    http::response<http::string_body> res;
    ASSERT_FALSE(c.Request(http::verb::get, "/drop", "", res));
    EXPECT_EQ(res.result_int(), 500U);
  }
  std::thread client([&] {
    TestClient c(pki_, pki_.client_cert, pki_.client_key);
    if (c.Connect((*s)->port())) return;
    http::response<http::string_body> res;
    (void)c.Request(http::verb::get, "/kept", "", res);  // answered late or never: either is fine
  });
  HttpResponder late = kept.get_future().get();
  (*s)->Stop(std::chrono::milliseconds(200));  // drain expires with the request outstanding
  late(HttpResponse{});                        // after Stop: dropped, nothing breaks
  client.join();
}

// Stop(drain) waits for an outstanding asynchronous request and its answer is still written.
TEST_F(HttpsServerTest, StopWaitsForAnOutstandingAsyncRequest) {
  std::vector<std::thread> workers;
  std::mutex mu;
  std::promise<void> arrived;
  auto s = HttpsServer::Start(Options(), HttpAsyncHandler([&](HttpRequest, HttpResponder respond) {
                                const std::lock_guard lock(mu);
                                arrived.set_value();
                                workers.emplace_back([respond] {
                                  std::this_thread::sleep_for(std::chrono::milliseconds(300));
                                  HttpResponse out;
                                  out.body = "done";
                                  respond(out);
                                });
                              }));
  ASSERT_TRUE(s.ok());
  std::future<std::string> answer = std::async(std::launch::async, [&] {
    TestClient c(pki_, pki_.client_cert, pki_.client_key);
    if (c.Connect((*s)->port())) return std::string("connect failed");
    http::response<http::string_body> res;
    if (auto ec = c.Request(http::verb::get, "/x", "", res)) return ec.message();
    return res.body();
  });
  arrived.get_future().wait();
  const auto t0 = std::chrono::steady_clock::now();
  (*s)->Stop(std::chrono::seconds(5));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3)) << "Stop returns once it is answered";
  EXPECT_EQ(answer.get(), "done");
  for (auto& w : workers) w.join();
}

TEST(HttpUtil, PercentDecodeAndQueryParameters) {
  EXPECT_EQ(*PercentDecode("SAE%20B%2f1+x"), "SAE B/1+x");
  EXPECT_FALSE(PercentDecode("%2").ok());
  EXPECT_FALSE(PercentDecode("%zz").ok());
  EXPECT_FALSE(PercentDecode("abc%").ok());
  auto q = QueryParameters("number=2&size=256&&key_ID=a%2Db&flag");
  QSAPI_ASSERT_OK(q);
  ASSERT_EQ(q->size(), 4U);
  EXPECT_EQ((*q)[0], (std::pair<std::string, std::string>{"number", "2"}));
  EXPECT_EQ((*q)[2], (std::pair<std::string, std::string>{"key_ID", "a-b"}));
  EXPECT_EQ((*q)[3], (std::pair<std::string, std::string>{"flag", ""}));
}

}  // namespace
}  // namespace qsapi::net
