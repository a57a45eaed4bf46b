// The HTTPS server of net/https_server.h: one acceptor, one strand per connection, Beast's
// tcp_stream timers for every timeout, and a registry of live sessions for the graceful stop.
#include "net/https_server.h"

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <condition_variable>
#include <exception>
#include <list>
#include <mutex>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <optional>
#include <thread>
#include <unordered_map>

#include <openssl/ssl.h>

#include "pki/internal/tls_context.h"
#include "qsapi/log.h"
#include "qsapi/secret.h"

namespace qsapi::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using ErrorCodeT = boost::system::error_code;

namespace {

bool IEqual(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string_view HttpRequest::Header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (IEqual(n, name)) return v;
  }
  return {};
}

Result<std::string> PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return InvalidArgument("truncated percent escape");
    const int hi = HexValue(s[i + 1]);
    const int lo = HexValue(s[i + 2]);
    if (hi < 0 || lo < 0) return InvalidArgument("malformed percent escape");
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

Result<std::vector<std::pair<std::string, std::string>>> QueryParameters(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view part = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (part.empty()) continue;
    const std::size_t eq = part.find('=');
    QSAPI_ASSIGN_OR_RETURN(std::string name, PercentDecode(part.substr(0, eq)));
    std::string value;
    if (eq != std::string_view::npos) {
      QSAPI_ASSIGN_OR_RETURN(value, PercentDecode(part.substr(eq + 1)));
    }
    out.emplace_back(std::move(name), std::move(value));
  }
  return out;
}

class Session;

class HttpsServer::Impl : public std::enable_shared_from_this<HttpsServer::Impl> {
 public:
  Impl(HttpsServerOptions options, HttpAsyncHandler handler)
      : options_(std::move(options)),
        handler_(std::move(handler)),
        ioc_(std::max(1, options_.threads)),
        ssl_(asio::ssl::context::tls_server),
        acceptor_(asio::make_strand(ioc_)) {}

  Status Open();
  void Run();
  void Stop(std::chrono::milliseconds drain);

  void DoAccept();
  void CountHandshakeError(bool timeout, bool aborted) {
    const std::lock_guard lock(mu_);
    if (timeout) {
      ++counters_.handshake_timeouts;
    } else if (!aborted) {
      ++counters_.handshake_failures;
    }
  }

  // PostToSession runs `f` on a session's strand unless the server has stopped (then it is dropped:
  // a late responder must not queue work that would keep the session and this Impl alive).
  template <typename F>
  void PostToSession(const asio::any_io_executor& ex, F&& f) {
    const std::lock_guard lock(post_mu_);
    if (!closed_) asio::post(ex, std::forward<F>(f));
  }

  const HttpsServerOptions options_;
  const HttpAsyncHandler handler_;
  std::mutex post_mu_;
  bool closed_ = false;  // guarded by post_mu_
  asio::io_context ioc_;
  asio::ssl::context ssl_;
  tcp::acceptor acceptor_;
  std::uint16_t port_ = 0;
  std::vector<std::thread> threads_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> stopped_{false};

  // Admission (see the file comment of https_server.h). Every connection has a Conn in conns_,
  // from admission until its Session is destroyed; all of it is guarded by mu_.
  enum class Phase : std::uint8_t { kHandshake, kWaiting, kBusy, kShed };
  struct Conn {
    std::weak_ptr<Session> session;
    std::string source;
    Phase phase = Phase::kHandshake;
    std::chrono::steady_clock::time_point since;
  };
  struct SourceCount {
    std::size_t open = 0;
    std::size_t unfinished = 0;
  };
  using ConnIt = std::list<Conn>::iterator;

  // Admit makes room for a new connection from `source` (shedding older ones) and returns its
  // slot, or nothing when every candidate is busy.
  std::optional<ConnIt> Admit(const std::string& source);
  void SetPhase(ConnIt it, Phase phase);
  void Forget(ConnIt it);

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::size_t active_ = 0;  // Sessions alive (Stop waits for none); guarded by mu_
  std::list<Conn> conns_;
  std::unordered_map<std::string, SourceCount> sources_;
  std::size_t open_ = 0;                        // conns_ not shed
  std::size_t unfinished_ = 0;                  // of which in their handshake
  HttpsServerStats counters_;                   // the counter fields only
  std::vector<std::shared_ptr<Session>> shed_;  // chosen by ShedOne, closed outside mu_

 private:
  // Leave takes a connection out of the counts (it stays in conns_ until its Session goes).
  void Leave(Conn& c);
  // Shed closes the connection chosen by `pick` among the sheddable ones (nullptr: none).
  bool ShedOne(const std::string* only_source, bool unfinished_only);
};

// Session is one TLS connection: handshake, then read / handle / write until close.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(std::shared_ptr<HttpsServer::Impl> server, tcp::socket socket, HttpsServer::Impl::ConnIt slot,
          std::string remote)
      : server_(std::move(server)),
        slot_(slot),
        remote_(std::move(remote)),
        stream_(beast::tcp_stream(std::move(socket)), server_->ssl_),
        delay_(stream_.get_executor()) {}
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  Session(Session&&) = delete;
  Session& operator=(Session&&) = delete;
  // NOLINTNEXTLINE(bugprone-exception-escape): it wipes in place (prepare() within the capacity does not throw)
  ~Session() {
    SecureZero(res_.body().data(), res_.body().size());
    WipeRequestCopies();
    const auto unread = buffer_.data();
    SecureZero(static_cast<std::uint8_t*>(unread.data()), unread.size());
    server_->Forget(slot_);
  }

  void Start() {
    // Small responses go out at once: with Nagle's algorithm a response written as several TLS
    // records waits for the client's delayed ACK (40 ms on Linux).
    ErrorCodeT ignored;
    beast::get_lowest_layer(stream_).socket().set_option(tcp::no_delay(true), ignored);
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->Handshake(); });
  }

  // PostStop schedules OnStop on the session's strand; PostClose closes the connection whatever
  // it is doing.
  void PostStop() {
    asio::post(stream_.get_executor(), [self = shared_from_this()] { self->OnStop(); });
  }
  void PostClose() {
    asio::post(stream_.get_executor(), [self = shared_from_this()] { self->Close(); });
  }

  // OnStop runs on the session's strand when the server stops: an idle connection is closed now,
  // a busy one after its response (stopping_ turns keep-alive off).
  void OnStop() {
    if (idle_) Close();
  }

  // Answer runs on the strand when a responder is called (or dropped: 500).
  void Answer(HttpResponse out, bool keep_alive) { Respond(std::move(out), keep_alive); }
  [[nodiscard]] asio::any_io_executor executor() { return stream_.get_executor(); }
  HttpsServer::Impl& server() { return *server_; }

  static std::string RemoteAddress(const tcp::socket& socket) {
    ErrorCodeT ec;
    const tcp::endpoint ep = socket.remote_endpoint(ec);
    if (ec) return {};
    const asio::ip::address a = ep.address();
    if (a.is_v6() && a.to_v6().is_v4_mapped())
      return asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6()).to_string();
    return a.to_string();
  }

 private:
  using Phase = HttpsServer::Impl::Phase;
  void SetPhase(Phase phase) {
    const std::lock_guard lock(server_->mu_);
    server_->SetPhase(slot_, phase);
  }

  const HttpsServerOptions& opt() const { return server_->options_; }

  void Handshake() {
    beast::get_lowest_layer(stream_).expires_after(opt().handshake_timeout);
    stream_.async_handshake(asio::ssl::stream_base::server, [self = shared_from_this()](const ErrorCodeT& ec) {
      if (ec) {
        self->server_->CountHandshakeError(ec == beast::error::timeout, ec == asio::error::operation_aborted);
        return self->Close();
      }
      SSL* ssl = self->stream_.native_handle();
      self->group_ = pki::NegotiatedGroupName(ssl);
      self->version_ = pki::ProtocolVersionName(ssl);
      if (Result<std::string> cn = pki::PeerCommonName(ssl); cn.ok()) {
        self->peer_cn_ = *cn;
        self->peer_serves_servers_ = pki::PeerCertificateServesServers(ssl);
      }
      self->Read(true);
    });
  }

  // WipeRequestCopies wipes what is left of the last request in memory the handler never owned:
  // the parser's header fields (an Authorization value) and body, and the bytes read so far beyond
  // those not parsed yet (the raw request in the read buffer; a pipelined next request is kept).
  void WipeRequestCopies() {
    if (parser_) {
      for (auto& field : parser_->get()) {
        const beast::string_view v = field.value();
        SecureZero(const_cast<char*>(v.data()), v.size());  // NOLINT(cppcoreguidelines-pro-type-const-cast)
      }
      std::string& body = parser_->get().body();
      SecureZero(body.data(), body.size());
    }
    // prepare() within the capacity never reallocates: it may move the unparsed bytes to the front,
    // and hands out everything else.
    const auto spare = buffer_.prepare(buffer_.capacity() - buffer_.size());
    SecureZero(static_cast<std::uint8_t*>(spare.data()), spare.size());
  }

  void Read(bool first) {
    if (server_->stopping_) return Close();
    WipeRequestCopies();
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(opt().max_header_bytes));
    parser_->body_limit(opt().max_body_bytes);
    beast::get_lowest_layer(stream_).expires_after(first ? opt().request_timeout : opt().idle_timeout);
    idle_ = true;
    SetPhase(Phase::kWaiting);
    ReadHeaderBytes();
  }

  // ReadHeaderBytes reads until the whole header block is in buffer_, so that it can be checked
  // for what Beast's parser accepts and RFC 9112 says a server must refuse (obs-fold), then lets
  // Beast parse it without reading further.
  void ReadHeaderBytes() {
    const auto bytes = buffer_.data();
    const std::string_view text(static_cast<const char*>(bytes.data()), bytes.size());
    const std::size_t end = text.find("\r\n\r\n");
    if (end != std::string_view::npos) {
      for (std::size_t i = text.find("\r\n"); i < end; i = text.find("\r\n", i + 2)) {
        if (text[i + 2] == ' ' || text[i + 2] == '\t') {
          idle_ = false;
          return Refuse(400, "obsolete line folding (a header line starting with white space) is not accepted");
        }
      }
      return http::async_read_header(
          stream_, buffer_, *parser_,
          [self = shared_from_this()](const ErrorCodeT& ec, std::size_t) { self->OnHeader(ec); });
    }
    if (text.size() >= opt().max_header_bytes) {
      idle_ = false;
      return Refuse(431, "request header too large");
    }
    stream_.async_read_some(
        buffer_.prepare(std::min<std::size_t>(4096, opt().max_header_bytes + 4 - text.size())),
        [self = shared_from_this()](const ErrorCodeT& ec, std::size_t n) {
          self->buffer_.commit(n);
          if (ec) {
            // A request cut short while its header was arriving is end_of_stream too.
            return self->OnRead(ec == asio::error::eof ? ErrorCodeT(http::error::end_of_stream) : ec);
          }
          self->ReadHeaderBytes();
        });
  }

  // OnHeader refuses framing that Beast reads one way and another server or proxy might read
  // another (request smuggling): several or non-numeric Content-Length values, a Transfer-Encoding
  // other than exactly "chunked", both at once, and a missing or repeated Host.
  void OnHeader(const ErrorCodeT& ec) {
    if (ec) return OnRead(ec);
    idle_ = false;
    const auto& h = parser_->get();
    const auto count = [&](http::field f) { return std::distance(h.equal_range(f).first, h.equal_range(f).second); };
    const auto lengths = count(http::field::content_length);
    const auto encodings = count(http::field::transfer_encoding);
    if (lengths > 1) return Refuse(400, "more than one Content-Length header");
    if (lengths == 1) {
      const beast::string_view v = h[http::field::content_length];
      if (v.empty() || !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return Refuse(400, "Content-Length must be one decimal number");
      }
    }
    if (encodings > 0) {
      if (lengths > 0) return Refuse(400, "both Content-Length and Transfer-Encoding");
      std::string v(h[http::field::transfer_encoding]);
      std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      if (encodings > 1 || v != "chunked") return Refuse(501, "only Transfer-Encoding: chunked is supported");
    }
    const auto hosts = count(http::field::host);
    if (hosts > 1 || (h.version() >= 11 && hosts != 1)) {
      return Refuse(400, "an HTTP/1.1 request needs exactly one Host header");
    }
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](const ErrorCodeT& e, std::size_t) { self->OnRead(e); });
  }

  void OnRead(const ErrorCodeT& ec) {
    idle_ = false;
    if (ec == http::error::end_of_stream || ec == asio::ssl::error::stream_truncated) return Shutdown();
    if (ec == http::error::body_limit) return Refuse(413, "request body too large");
    if (ec == http::error::header_limit) return Refuse(431, "request header too large");
    if (ec == beast::error::timeout || ec == asio::error::operation_aborted) return Close();
    if (ec) {
      // A parse error: say so if the connection still works, then close.
      if (&ec.category() == &http::make_error_code(http::error::bad_method).category() &&
          ec != http::error::partial_message) {
        return Refuse(400, "malformed request");
      }
      return Close();
    }
    ++requests_;
    SetPhase(Phase::kBusy);
    auto& msg = parser_->get();
    HttpRequest req;
    req.method = std::string(msg.method_string());
    req.target = std::string(msg.target());
    const std::size_t q = req.target.find('?');
    req.path = req.target.substr(0, q);
    if (q != std::string::npos) req.query = req.target.substr(q + 1);
    for (const auto& field : msg) {
      req.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    req.body = std::move(msg.body());
    req.peer_common_name = peer_cn_;
    req.peer_certificate_serves_servers = peer_serves_servers_;
    req.tls_group = group_;
    req.tls_version = version_;
    req.remote_address = remote_;
    const bool keep_alive = msg.keep_alive();
    HttpResponder respond(MakeResponderState(keep_alive));
    try {
      server_->handler_(std::move(req), respond);
    } catch (const std::exception& e) {
      Log(LogLevel::kError, "net", std::string("request handler failed: ") + e.what());
      HttpResponse out;
      out.status = 500;
      out.body = R"({"message":"internal error"})";
      out.close = true;
      respond(std::move(out));
    }
  }

  std::shared_ptr<HttpResponder::State> MakeResponderState(bool keep_alive);

  void Refuse(unsigned status, const char* message) {
    HttpResponse out;
    out.status = status;
    out.body = std::string(R"({"message":")") + message + "\"}";
    out.close = true;
    Respond(std::move(out), false);
  }

  void Respond(HttpResponse out, bool keep_alive) {
    res_ = {};
    res_.version(11);
    res_.result(out.status);
    res_.set(http::field::server, opt().server_header);
    res_.set(http::field::content_type, out.content_type);
    for (const auto& [name, value] : out.headers) res_.set(name, value);
    res_.body() = std::move(out.body);
    res_.keep_alive(keep_alive && !out.close && !server_->stopping_ && requests_ < opt().max_requests_per_connection);
    res_.prepare_payload();
    if (out.delay.count() > 0) {
      beast::get_lowest_layer(stream_).expires_after(opt().request_timeout + out.delay);
      delay_.expires_after(out.delay);
      delay_.async_wait([self = shared_from_this()](const ErrorCodeT& ec) {
        if (ec) return self->Close();
        self->Write();
      });
      return;
    }
    Write();
  }

  void Write() {
    // A stop that began while the answer was delayed still closes the connection after it.
    if (server_->stopping_ && res_.keep_alive()) res_.keep_alive(false);
    beast::get_lowest_layer(stream_).expires_after(opt().request_timeout);
    http::async_write(stream_, res_, [self = shared_from_this()](const ErrorCodeT& ec, std::size_t) {
      SecureZero(self->res_.body().data(), self->res_.body().size());
      if (ec) return self->Close();
      if (!self->res_.keep_alive()) return self->Shutdown();
      self->Read(false);
    });
  }

  void Shutdown() {
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(1));
    stream_.async_shutdown([self = shared_from_this()](const ErrorCodeT&) { self->Close(); });
  }

  void Close() {
    ErrorCodeT ignored;
    beast::get_lowest_layer(stream_).socket().shutdown(tcp::socket::shutdown_both, ignored);
    beast::get_lowest_layer(stream_).close();
    delay_.cancel();
  }

  std::shared_ptr<HttpsServer::Impl> server_;
  const HttpsServer::Impl::ConnIt slot_;
  const std::string remote_;
  asio::ssl::stream<beast::tcp_stream> stream_;
  asio::steady_timer delay_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
  std::string peer_cn_;
  bool peer_serves_servers_ = false;
  std::string group_;
  std::string version_;
  std::size_t requests_ = 0;
  bool idle_ = false;
};

// One request's answer: the session it goes to, once.
struct HttpResponder::State {
  std::shared_ptr<Session> session;
  bool keep_alive = false;
  std::atomic<bool> answered{false};
  // While an answer is outstanding the connection has no I/O pending; this keeps the I/O threads
  // running for it (once the acceptor is closed by Stop, nothing else would).
  std::optional<asio::executor_work_guard<asio::any_io_executor>> work;

  void Deliver(HttpResponse response) {
    if (answered.exchange(true)) return;
    std::shared_ptr<Session> s = std::move(session);
    if (!s) return;
    HttpsServer::Impl& server = s->server();
    const asio::any_io_executor ex = s->executor();
    server.PostToSession(ex, [s, r = std::move(response), ka = keep_alive]() mutable { s->Answer(std::move(r), ka); });
    work.reset();
  }
  State() = default;
  State(const State&) = delete;
  State& operator=(const State&) = delete;
  State(State&&) = delete;
  State& operator=(State&&) = delete;
  ~State() {
    if (!answered.load() && session) {
      HttpResponse out;
      out.status = 500;
      out.body = R"({"message":"internal error: the request was not answered"})";
      out.close = true;
      Deliver(std::move(out));
    }
  }
};

void HttpResponder::operator()(HttpResponse response) const {
  if (state_) state_->Deliver(std::move(response));
}

std::shared_ptr<HttpResponder::State> Session::MakeResponderState(bool keep_alive) {
  auto state = std::make_shared<HttpResponder::State>();
  state->session = shared_from_this();
  state->keep_alive = keep_alive;
  state->work.emplace(asio::make_work_guard(stream_.get_executor()));
  return state;
}

Status HttpsServer::Impl::Open() {
  QSAPI_RETURN_IF_ERROR(pki::ConfigureServerContext(ssl_.native_handle(), options_.tls));
  ErrorCodeT ec;
  const asio::ip::address address = asio::ip::make_address(options_.bind_address, ec);
  if (ec) return InvalidArgument("server: \"" + options_.bind_address + "\" is not an IP address to bind");
  const tcp::endpoint endpoint(address, options_.port);
  const std::string where = options_.bind_address + ":" + std::to_string(options_.port);
  if (acceptor_.open(endpoint.protocol(), ec); ec) return Unavailable("server: cannot open a socket: " + ec.message());
  if (acceptor_.set_option(asio::socket_base::reuse_address(true), ec); ec) {
    return Unavailable("server: cannot set SO_REUSEADDR: " + ec.message());
  }
  if (acceptor_.bind(endpoint, ec); ec) return Unavailable("server: cannot bind " + where + ": " + ec.message());
#ifdef TCP_DEFER_ACCEPT
  // The kernel keeps a connection that has sent nothing (it completes the TCP handshake but does
  // not wake us) for up to the handshake timeout: a silent connection costs no slot here.
  const int defer_seconds = static_cast<int>(
      std::max<std::int64_t>(1, std::chrono::duration_cast<std::chrono::seconds>(options_.handshake_timeout).count()));
  if (::setsockopt(acceptor_.native_handle(), IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer_seconds, sizeof defer_seconds) !=
      0) {
    return Unavailable("server: cannot set TCP_DEFER_ACCEPT on " + where);
  }
#endif
  if (acceptor_.listen(asio::socket_base::max_listen_connections, ec); ec) {
    return Unavailable("server: cannot listen on " + where + ": " + ec.message());
  }
  port_ = acceptor_.local_endpoint(ec).port();
  return OkStatus();
}

void HttpsServer::Impl::Run() {
  DoAccept();
  for (int i = 0; i < std::max(1, options_.threads); ++i) {
    threads_.emplace_back([this] { ioc_.run(); });
  }
}

void HttpsServer::Impl::DoAccept() {
  acceptor_.async_accept(asio::make_strand(ioc_), [self = shared_from_this()](const ErrorCodeT& ec, tcp::socket s) {
    if (ec == asio::error::operation_aborted || self->stopping_ || !self->acceptor_.is_open()) return;
    if (!ec) {
      std::shared_ptr<Session> session;
      std::vector<std::shared_ptr<Session>> shed;
      std::string remote = Session::RemoteAddress(s);
      {
        const std::lock_guard lock(self->mu_);
        if (const std::optional<ConnIt> slot = self->Admit(remote)) {
          try {
            session = std::make_shared<Session>(self, std::move(s), *slot, std::move(remote));
            (*slot)->session = session;
          } catch (const std::exception& e) {  // SSL_new failed: give the slot back
            self->Leave(**slot);
            self->conns_.erase(*slot);
            --self->active_;
            Log(LogLevel::kError, "net", std::string("cannot set up a connection: ") + e.what());
          }
        } else {
          ErrorCodeT ignored;
          s.close(ignored);  // refused (the socket was not handed to a Session)
        }
        shed.swap(self->shed_);
      }
      for (const auto& victim : shed) victim->PostClose();
      if (session) session->Start();
    }
    self->DoAccept();
  });
}

std::optional<HttpsServer::Impl::ConnIt> HttpsServer::Impl::Admit(const std::string& source) {
  // The newcomer counts for its address from here, so that ShedOne never erases this entry.
  SourceCount& mine = sources_[source];
  ++mine.open;
  if (mine.unfinished >= options_.max_unfinished_per_source) ShedOne(&source, true);
  if (unfinished_ >= options_.max_unfinished) ShedOne(nullptr, true);
  bool room = mine.open <= options_.max_connections_per_source || ShedOne(&source, false);
  room = room && (open_ < options_.max_connections || ShedOne(nullptr, false));
  if (!room) {
    if (--mine.open == 0) sources_.erase(source);
    ++counters_.refused;
    return std::nullopt;
  }
  ++mine.unfinished;
  ++open_;
  ++unfinished_;
  ++active_;
  ++counters_.accepted;
  conns_.push_back(Conn{{}, source, Phase::kHandshake, std::chrono::steady_clock::now()});
  return std::prev(conns_.end());
}

bool HttpsServer::Impl::ShedOne(const std::string* only_source, bool unfinished_only) {
  // The victim: among connections in their handshake (or, unless unfinished_only, waiting for a
  // request), one of the address holding the most such connections, the longest in its state.
  Conn* victim = nullptr;
  std::size_t victim_weight = 0;
  for (Conn& c : conns_) {
    const bool candidate = c.phase == Phase::kHandshake || (!unfinished_only && c.phase == Phase::kWaiting);
    if (!candidate || (only_source != nullptr && c.source != *only_source)) continue;
    const SourceCount& sc = sources_.at(c.source);
    const std::size_t weight = unfinished_only ? sc.unfinished : sc.open;
    if (victim == nullptr || weight > victim_weight || (weight == victim_weight && c.since < victim->since)) {
      victim = &c;
      victim_weight = weight;
    }
  }
  if (victim == nullptr) return false;
  ++(victim->phase == Phase::kHandshake ? counters_.shed_unfinished : counters_.shed_idle);
  Leave(*victim);
  victim->phase = Phase::kShed;
  // Closed by the accept handler once mu_ is released: the last reference to a Session must never
  // go while mu_ is held (its destructor takes mu_).
  if (std::shared_ptr<Session> s = victim->session.lock()) shed_.push_back(std::move(s));
  return true;
}

void HttpsServer::Impl::Leave(Conn& c) {
  if (c.phase == Phase::kShed) return;
  auto it = sources_.find(c.source);
  if (c.phase == Phase::kHandshake) {
    --it->second.unfinished;
    --unfinished_;
  }
  --open_;
  if (--it->second.open == 0) sources_.erase(it);
}

void HttpsServer::Impl::SetPhase(ConnIt it, Phase phase) {
  if (it->phase == Phase::kShed) return;
  if (it->phase == Phase::kHandshake && phase != Phase::kHandshake) {
    --sources_.at(it->source).unfinished;
    --unfinished_;
  }
  it->phase = phase;
  it->since = std::chrono::steady_clock::now();
}

void HttpsServer::Impl::Forget(ConnIt it) {
  {
    const std::lock_guard lock(mu_);
    Leave(*it);
    conns_.erase(it);
    --active_;
  }
  cv_.notify_all();
}

void HttpsServer::Impl::Stop(std::chrono::milliseconds drain) {
  if (stopped_.exchange(true)) return;
  stopping_ = true;
  asio::post(acceptor_.get_executor(), [self = shared_from_this()] {
    ErrorCodeT ignored;
    self->acceptor_.close(ignored);
  });
  const auto for_each_session = [this](auto&& f) {
    std::vector<std::shared_ptr<Session>> live;
    {
      std::lock_guard lock(mu_);
      for (const Conn& c : conns_) {
        if (auto s = c.session.lock()) live.push_back(std::move(s));
      }
    }
    for (auto& s : live) f(*s);
  };
  for_each_session([](Session& s) { s.PostStop(); });
  {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, drain, [this] { return active_ == 0; });
  }
  // Past the drain time: close whatever is left, give the aborted handlers a moment to run.
  for_each_session([](Session& s) { s.PostClose(); });
  {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(500), [this] { return active_ == 0; });
  }
  {
    // From here a late responder drops its answer instead of queueing it.
    const std::lock_guard lock(post_mu_);
    closed_ = true;
  }
  ioc_.stop();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  // Handlers still queued hold sessions, which hold this Impl: run them out to break the cycle.
  ioc_.restart();
  ioc_.poll();
}

Result<std::unique_ptr<HttpsServer>> HttpsServer::Start(const HttpsServerOptions& options, HttpHandler handler) {
  if (!handler) return InvalidArgument("server: no request handler");
  return Start(options,
               HttpAsyncHandler([h = std::move(handler)](const HttpRequest& request, const HttpResponder& respond) {
                 respond(h(request));
               }));
}

Result<std::unique_ptr<HttpsServer>> HttpsServer::Start(const HttpsServerOptions& options, HttpAsyncHandler handler) {
  if (!handler) return InvalidArgument("server: no request handler");
  if (options.max_connections == 0 || options.max_connections_per_source == 0 || options.max_unfinished == 0 ||
      options.max_unfinished_per_source == 0 || options.max_header_bytes == 0 || options.threads < 1 ||
      options.handshake_timeout.count() <= 0 || options.request_timeout.count() <= 0 ||
      options.idle_timeout.count() <= 0) {
    return InvalidArgument("server: limits and timeouts must be positive");
  }
  std::shared_ptr<Impl> impl;
  try {
    impl = std::make_shared<Impl>(options, std::move(handler));
  } catch (const std::exception& e) {
    return Internal(std::string("server: cannot create the I/O context: ") + e.what());
  }
  QSAPI_RETURN_IF_ERROR(impl->Open());
  impl->Run();
  return std::unique_ptr<HttpsServer>(new HttpsServer(std::move(impl)));
}

HttpsServer::~HttpsServer() {
  try {
    Stop(std::chrono::seconds(2));
  } catch (const std::exception& e) {  // std::thread::join can throw; a destructor must not
    Log(LogLevel::kError, "net", std::string("server stop failed: ") + e.what());
  }
}

std::uint16_t HttpsServer::port() const noexcept { return impl_->port_; }

std::size_t HttpsServer::active_connections() const noexcept {
  std::lock_guard lock(impl_->mu_);
  return impl_->active_;
}

HttpsServerStats HttpsServer::stats() const {
  const std::lock_guard lock(impl_->mu_);
  HttpsServerStats out = impl_->counters_;
  out.open = impl_->open_;
  out.unfinished = impl_->unfinished_;
  out.sources = impl_->sources_.size();
  for (const auto& c : impl_->conns_) out.busy += c.phase == Impl::Phase::kBusy ? 1 : 0;
  return out;
}

void HttpsServer::Stop(std::chrono::milliseconds drain) { impl_->Stop(drain); }

}  // namespace qsapi::net
