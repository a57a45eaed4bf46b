// The peer link (see qsapi/session/peer_link.h): OpenSSL TLS 1.3 over non-blocking sockets, every
// wait a poll() with a deadline.
//
// Peer checks run inside the certificate verification callback, so that a refused certificate
// ends the handshake with a TLS alert the other side can report (bad_certificate), and the side
// that refuses keeps the precise reason (stored in the connection's ex_data). The negotiated group
// is checked again after the handshake (the group lists already exclude classical groups).
#include "qsapi/session/peer_link.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <arpa/inet.h>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "common/internal/resolve.h"
#include "pki/internal/tls_context.h"
#include "qsapi/pki/pki.h"

namespace qsapi::session {

using Clock = std::chrono::steady_clock;

namespace {

constexpr std::string_view kDefaultGroups = "X25519MLKEM768:SecP384r1MLKEM1024";
constexpr std::string_view kCnsa2Groups = "SecP384r1MLKEM1024";

// The leaf algorithm of a profile, and the algorithms allowed for CAs above it.
std::string_view LeafAlgorithm(PeerProfile p) { return p == PeerProfile::kCnsa2 ? "ML-DSA-87" : "ML-DSA-65"; }
bool CaAlgorithmAllowed(PeerProfile p, const EVP_PKEY* key) {
  if (p == PeerProfile::kCnsa2) return EVP_PKEY_is_a(key, "ML-DSA-87") == 1;
  return EVP_PKEY_is_a(key, "ML-DSA-65") == 1 || EVP_PKEY_is_a(key, "ML-DSA-87") == 1;
}

std::string KeyTypeName(const EVP_PKEY* key) {
  if (key == nullptr) return "unknown";
  const char* n = EVP_PKEY_get0_type_name(key);
  if (n == nullptr) return "unknown";
  std::string s(n);
  if (s == "EC") s = "ECDSA (" + std::to_string(EVP_PKEY_get_bits(key)) + "-bit curve)";
  return s;
}

std::string CommonNameOf(X509* cert) {
  X509_NAME* name = X509_get_subject_name(cert);
  const int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (i < 0) return {};
  const ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),  // NOLINT
                     static_cast<std::size_t>(ASN1_STRING_length(s)));
}

// Printable keeps a peer-supplied name safe to show in a message.
std::string Printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 128)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return out;
}

std::string OpenSslReasonText() {
  const unsigned long e = ERR_peek_last_error();  // NOLINT(google-runtime-int)
  std::string text;
  if (e != 0) {
    const char* r = ERR_reason_error_string(e);
    text = r != nullptr ? r : "error " + std::to_string(ERR_GET_REASON(e));
  }
  ERR_clear_error();
  return text;
}

// Per-connection state the verify callback reads and writes.
struct VerifyState {
  PeerProfile profile = PeerProfile::kDefault;
  std::string expected_name;  // client side: the server's expected CN; server side: empty
  std::string failure;        // why we refused the peer's certificate
};

int VerifyStateIndex() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

int VerifyCallback(int preverify_ok, X509_STORE_CTX* store) {
  auto* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  auto* state = ssl != nullptr ? static_cast<VerifyState*>(SSL_get_ex_data(ssl, VerifyStateIndex())) : nullptr;
  if (state == nullptr) return 0;
  const int depth = X509_STORE_CTX_get_error_depth(store);
  X509* cert = X509_STORE_CTX_get_current_cert(store);
  if (preverify_ok != 1) {
    const int err = X509_STORE_CTX_get_error(store);
    if (state->failure.empty()) {
      std::string why = X509_verify_cert_error_string(err);
      if (err == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY || err == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT ||
          err == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT || err == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN ||
          err == X509_V_ERR_CERT_SIGNATURE_FAILURE) {
        why = "it was not issued by the deployment CA (" + why + ")";
      }
      state->failure = "the peer's certificate" +
                       (cert != nullptr ? " \"" + Printable(CommonNameOf(cert)) + "\"" : std::string()) +
                       " is refused: " + why;
    }
    return 0;
  }
  const EVP_PKEY* key = cert != nullptr ? X509_get0_pubkey(cert) : nullptr;
  auto refuse = [&](std::string why) {
    if (state->failure.empty()) state->failure = std::move(why);
    X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
  };
  if (key == nullptr) return refuse("the peer's certificate has no usable public key");
  if (depth == 0) {
    const std::string_view want = LeafAlgorithm(state->profile);
    if (EVP_PKEY_is_a(key, std::string(want).c_str()) != 1) {
      return refuse("the peer's certificate \"" + Printable(CommonNameOf(cert)) + "\" has key type " +
                    KeyTypeName(key) + "; the " + std::string(PeerProfileName(state->profile)) + " profile requires " +
                    std::string(want) + " (classical certificates are refused)");
    }
    // Peer identities and API client identities are apart: a peer-link certificate is valid for
    // both client and server authentication (qsapi ca issue --peer); an API client certificate
    // (client authentication only) of the same name is not a peer.
    const std::uint32_t xku = X509_get_extended_key_usage(cert);
    if ((xku & XKU_SSL_SERVER) == 0 || (xku & XKU_SSL_CLIENT) == 0) {
      return refuse("the peer's certificate \"" + Printable(CommonNameOf(cert)) +
                    "\" is not a peer-link certificate: it must be valid for both client and server authentication "
                    "(an API client certificate is not; issue one with `qsapi ca issue NAME --peer`)");
    }
    if (!state->expected_name.empty()) {
      const std::string cn = CommonNameOf(cert);
      if (cn != state->expected_name) {
        return refuse("the peer's certificate names \"" + Printable(cn) + "\", but the peer expected here is \"" +
                      state->expected_name + "\"");
      }
    }
  } else if (!CaAlgorithmAllowed(state->profile, key)) {
    return refuse("the CA certificate \"" + Printable(CommonNameOf(cert)) + "\" above the peer's has key type " +
                  KeyTypeName(key) + "; the " + std::string(PeerProfileName(state->profile)) +
                  " profile requires ML-DSA throughout the chain");
  }
  return 1;
}

struct SslCtxDeleter {
  void operator()(SSL_CTX* c) const noexcept { SSL_CTX_free(c); }
};
struct SslDeleter {
  void operator()(SSL* s) const noexcept { SSL_free(s); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;
using SslPtr = std::unique_ptr<SSL, SslDeleter>;

Status ConfigureCommon(SSL_CTX* ctx, PeerProfile profile) {
  // 256-bit AEADs only (a 128-bit key keeps 64 bits against Grover); CNSA 2.0: AES-256-GCM.
  const char* suites =
      profile == PeerProfile::kCnsa2 ? "TLS_AES_256_GCM_SHA384" : "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
  if (SSL_CTX_set_ciphersuites(ctx, suites) != 1) return Internal("TLS: cannot set the TLS 1.3 cipher suites");
  // No resumption: every link is a full handshake with a fresh ML-KEM encapsulation.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  if (SSL_CTX_set_num_tickets(ctx, 0) != 1) return Internal("TLS: cannot disable session tickets");
  SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, VerifyCallback);
  return OkStatus();
}

// WarmCertificateCaches makes OpenSSL compute the cached extension data of the trust anchors and
// our own certificate now, once, instead of lazily during the first concurrent handshakes: OpenSSL
// fills that cache under a lock but reads it without one (a race ThreadSanitizer reports).
void WarmCertificateCaches(SSL_CTX* ctx) {
  if (X509* own = SSL_CTX_get0_certificate(ctx); own != nullptr) (void)X509_check_purpose(own, -1, 0);
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  if (store == nullptr) return;
  STACK_OF(X509)* anchors = X509_STORE_get1_all_certs(store);
  for (int i = 0; anchors != nullptr && i < sk_X509_num(anchors); ++i) {
    (void)X509_check_purpose(sk_X509_value(anchors, i), -1, 0);
  }
  sk_X509_pop_free(anchors, X509_free);
}

std::string FormatAddress(const sockaddr_storage& ss) {
  char host[INET6_ADDRSTRLEN] = {};
  std::uint16_t port = 0;
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);  // NOLINT
    ::inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
    port = ntohs(a->sin_port);
    return std::string(host) + ":" + std::to_string(port);
  }
  if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);  // NOLINT
    ::inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
    port = ntohs(a->sin6_port);
    return "[" + std::string(host) + "]:" + std::to_string(port);
  }
  return "?";
}

int RemainingMs(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left, 1 << 30));  // NOLINT(google-runtime-int)
}

// WaitFd waits for `events` on fd until the deadline: true when ready, false on timeout.
bool WaitFd(int fd, short events, Clock::time_point deadline) {  // NOLINT(google-runtime-int)
  for (;;) {
    pollfd p{.fd = fd, .events = events, .revents = 0};
    const int ms = RemainingMs(deadline);
    const int r = ::poll(&p, 1, ms);
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) return true;  // let the next I/O call report the error
  }
}

// OsError is strerror's text, thread-safely.
std::string OsError(int err) { return std::system_category().message(err); }

// A socket BIO that never raises SIGPIPE: OpenSSL's own socket BIO write()s, and a peer that has
// closed its end would kill a process that does not ignore SIGPIPE. A library must not demand that
// of its host, so this BIO sends with MSG_NOSIGNAL.
int NoSigpipeWrite(BIO* bio, const char* data, int size) {
  const int fd = static_cast<int>(reinterpret_cast<std::intptr_t>(BIO_get_data(bio)));  // NOLINT
  BIO_clear_retry_flags(bio);
  const ssize_t n = ::send(fd, data, static_cast<std::size_t>(size), MSG_NOSIGNAL);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) BIO_set_retry_write(bio);
  return static_cast<int>(n);
}

int NoSigpipeRead(BIO* bio, char* data, int size) {
  const int fd = static_cast<int>(reinterpret_cast<std::intptr_t>(BIO_get_data(bio)));  // NOLINT
  BIO_clear_retry_flags(bio);
  const ssize_t n = ::recv(fd, data, static_cast<std::size_t>(size), 0);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) BIO_set_retry_read(bio);
  return static_cast<int>(n);
}

long NoSigpipeCtrl(BIO* /*bio*/, int cmd, long /*num*/, void* /*ptr*/) {  // NOLINT(google-runtime-int)
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

const BIO_METHOD* NoSigpipeSocketMethod() {
  static BIO_METHOD* method = [] {  // NOLINT(cppcoreguidelines-avoid-non-const-global-variables): OpenSSL's API
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "qsapi peer socket");
    if (m != nullptr) {
      BIO_meth_set_write(m, NoSigpipeWrite);
      BIO_meth_set_read(m, NoSigpipeRead);
      BIO_meth_set_ctrl(m, NoSigpipeCtrl);
      BIO_meth_set_create(m, [](BIO* b) {
        BIO_set_init(b, 1);
        return 1;
      });
    }
    return m;
  }();
  return method;
}

bool SetNonBlocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL, 0);
  return flags >= 0 && ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

void SetNoDelay(int fd) {
  const int one = 1;
  (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

}  // namespace

std::string_view PeerProfileName(PeerProfile profile) noexcept {
  return profile == PeerProfile::kCnsa2 ? "cnsa2" : "default";
}

Result<PeerProfile> ParsePeerProfile(std::string_view name) {
  if (name == "default") return PeerProfile::kDefault;
  if (name == "cnsa2") return PeerProfile::kCnsa2;
  return InvalidArgument("unknown peer profile \"" + Printable(name) + "\"; use default or cnsa2");
}

std::string_view PeerProfileGroups(PeerProfile profile) noexcept {
  return profile == PeerProfile::kCnsa2 ? kCnsa2Groups : kDefaultGroups;
}

// ---------------------------------------------------------------------------------------------
// PeerLinkContext

struct PeerLinkContext::Handles {
  SslCtxPtr client;
  SslCtxPtr server;
};

PeerLinkContext::PeerLinkContext(PeerLinkOptions options, std::unique_ptr<Handles> handles, std::string common_name)
    : options_(std::move(options)), handles_(std::move(handles)), common_name_(std::move(common_name)) {}
PeerLinkContext::~PeerLinkContext() = default;

Result<std::shared_ptr<const PeerLinkContext>> PeerLinkContext::Create(const PeerLinkOptions& options) {
  const std::string who = "peer link: ";
  if (options.certificate_file.empty()) return InvalidArgument(who + "certificate_file is required");
  if (options.private_key_file.empty() && options.private_key == nullptr) {
    return InvalidArgument(who + "a private key is required (private_key_file or private_key)");
  }
  if (options.ca_file.empty()) {
    return InvalidArgument(who + "ca_file (the deployment CA) is required: peers are trusted only through it");
  }
  if (options.connect_timeout.count() <= 0 || options.handshake_timeout.count() <= 0 ||
      options.io_timeout.count() <= 0) {
    return InvalidArgument(who + "timeouts must be positive");
  }
  if (options.max_message_size < 1024 || options.max_message_size > kMaxPeerMessageSizeLimit) {
    return InvalidArgument(who + "max_message_size must be between 1 KiB and 16 MiB");
  }
  // Our own certificate must be what we demand of peers.
  QSAPI_ASSIGN_OR_RETURN(pki::Certificate own, pki::ReadCertificatePem(options.certificate_file));
  const EVP_PKEY* own_key = X509_get0_pubkey(own.native_handle());
  const std::string_view want = LeafAlgorithm(options.profile);
  if (own_key == nullptr || EVP_PKEY_is_a(own_key, std::string(want).c_str()) != 1) {
    return InvalidArgument(who + "our certificate " + options.certificate_file + " has key type " +
                           KeyTypeName(own_key) + "; the " + std::string(PeerProfileName(options.profile)) +
                           " profile requires " + std::string(want));
  }
  QSAPI_ASSIGN_OR_RETURN(std::string cn, own.CommonName());

  pki::TlsOptions tls;
  tls.min_version = pki::TlsVersion::kTls13;
  tls.max_version = pki::TlsVersion::kTls13;
  tls.groups = std::string(PeerProfileGroups(options.profile));
  tls.certificate_file = options.certificate_file;
  tls.private_key_file = options.private_key_file;
  tls.private_key = options.private_key;
  tls.ca_file = options.ca_file;
  tls.verify_peer = pki::PeerVerification::kRequired;
  tls.session_tickets = false;  // one long-lived connection per session; nothing to resume

  auto handles = std::make_unique<Handles>();
  handles->client.reset(SSL_CTX_new(TLS_client_method()));
  handles->server.reset(SSL_CTX_new(TLS_server_method()));
  if (!handles->client || !handles->server) return Internal(who + "cannot create TLS contexts: " + OpenSslReasonText());
  QSAPI_RETURN_IF_ERROR(pki::ConfigureClientContext(handles->client.get(), tls));
  QSAPI_RETURN_IF_ERROR(pki::ConfigureServerContext(handles->server.get(), tls));
  QSAPI_RETURN_IF_ERROR(ConfigureCommon(handles->client.get(), options.profile));
  QSAPI_RETURN_IF_ERROR(ConfigureCommon(handles->server.get(), options.profile));
  WarmCertificateCaches(handles->client.get());
  WarmCertificateCaches(handles->server.get());
  return std::shared_ptr<const PeerLinkContext>(new PeerLinkContext(options, std::move(handles), std::move(cn)));
}

// ---------------------------------------------------------------------------------------------
// IncomingConnection and PeerListener

IncomingConnection::IncomingConnection(IncomingConnection&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), remote_(std::move(other.remote_)) {}
IncomingConnection& IncomingConnection::operator=(IncomingConnection&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    remote_ = std::move(other.remote_);
  }
  return *this;
}
IncomingConnection::~IncomingConnection() {
  if (fd_ >= 0) ::close(fd_);
}
int IncomingConnection::release() noexcept { return std::exchange(fd_, -1); }

Result<std::unique_ptr<PeerListener>> PeerListener::Listen(const std::string& bind_address, std::uint16_t port) {
  QSAPI_ASSIGN_OR_RETURN(auto addrs, internal::ResolveWithDeadline(bind_address, std::to_string(port),
                                                                   Clock::now() + std::chrono::seconds(5)));
  if (addrs.empty()) return Unavailable("peer listener: no address for " + bind_address);
  const auto& a = addrs.front();
  const int fd = ::socket(a.address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Unavailable(std::string("peer listener: socket: ") + OsError(errno));
  const int one = 1;
  (void)::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&a.address), a.length) != 0 ||  // NOLINT
      ::listen(fd, 64) != 0 || !SetNonBlocking(fd)) {
    const int e = errno;
    ::close(fd);
    return Unavailable("peer listener: cannot listen on " + bind_address + ":" + std::to_string(port) + ": " +
                       OsError(e));
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);  // NOLINT
  const std::uint16_t actual = bound.ss_family == AF_INET6
                                   ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)  // NOLINT
                                   : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);   // NOLINT
  std::array<int, 2> pipe_fds{-1, -1};
  if (::pipe2(pipe_fds.data(), O_CLOEXEC | O_NONBLOCK) != 0) {
    ::close(fd);
    return Unavailable("peer listener: pipe failed");
  }
  return std::unique_ptr<PeerListener>(new PeerListener(fd, pipe_fds[0], pipe_fds[1], actual));
}

PeerListener::~PeerListener() {
  ::close(fd_);
  ::close(wake_read_);
  ::close(wake_write_);
}

// Not const: it wakes and closes the listener (the pipe's write end is the state it changes).
void PeerListener::Close() noexcept {  // NOLINT(readability-make-member-function-const)
  const char c = 1;
  if (::write(wake_write_, &c, 1) < 0) {
    // The pipe is non-blocking: a full pipe already holds a wake-up.
  }
}

Result<IncomingConnection> PeerListener::AcceptConnection(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    std::array<pollfd, 2> p{pollfd{.fd = fd_, .events = POLLIN, .revents = 0},
                            pollfd{.fd = wake_read_, .events = POLLIN, .revents = 0}};
    const int r = ::poll(p.data(), p.size(), RemainingMs(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (p[1].revents != 0) return Unavailable("peer listener: closed");
    if (r == 0) return DeadlineExceeded("peer listener: no connection within the timeout");
    sockaddr_storage peer{};
    socklen_t len = sizeof(peer);
    const int c = ::accept4(fd_, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC);  // NOLINT
    if (c < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED) continue;
      return Unavailable(std::string("peer listener: accept: ") + OsError(errno));
    }
    return IncomingConnection(c, FormatAddress(peer));
  }
}

// ---------------------------------------------------------------------------------------------
// PeerLink

struct PeerLink::Conn {
  SslPtr ssl;
  int fd = -1;
  bool closed = false;
  VerifyState verify;
  Conn() = default;
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;
  Conn(Conn&&) = delete;
  Conn& operator=(Conn&&) = delete;
  ~Conn() {
    if (fd >= 0) ::close(fd);
  }
};

PeerLink::PeerLink(std::shared_ptr<const PeerLinkContext> context, std::unique_ptr<Conn> conn, LinkInfo info)
    : context_(std::move(context)), conn_(std::move(conn)), info_(std::move(info)) {}

PeerLink::~PeerLink() { Close(); }

Result<std::unique_ptr<PeerLink>> PeerLink::Connect(std::shared_ptr<const PeerLinkContext> context,
                                                    const std::string& host, std::uint16_t port,
                                                    const std::string& expected_peer_name) {
  if (context == nullptr) return InvalidArgument("peer link: no context");
  if (expected_peer_name.empty()) return InvalidArgument("peer link: the expected peer name is empty");
  const auto& o = context->options();
  const std::string where = host + ":" + std::to_string(port);
  const auto deadline = Clock::now() + o.connect_timeout;
  QSAPI_ASSIGN_OR_RETURN(auto addrs, internal::ResolveWithDeadline(host, std::to_string(port), deadline));
  std::string last_error = "no address";
  for (const auto& a : addrs) {
    const int fd = ::socket(a.address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      last_error = OsError(errno);
      continue;
    }
    if (!SetNonBlocking(fd)) {
      ::close(fd);
      continue;
    }
    int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&a.address), a.length);  // NOLINT
    if (rc != 0 && errno == EINPROGRESS) {
      if (!WaitFd(fd, POLLOUT, deadline)) {
        ::close(fd);
        return DeadlineExceeded("peer link: connecting to " + where + " timed out");
      }
      int err = 0;
      socklen_t len = sizeof(err);
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      rc = err == 0 ? 0 : -1;
      errno = err;
    }
    if (rc != 0) {
      last_error = OsError(errno);
      ::close(fd);
      continue;
    }
    SetNoDelay(fd);
    return Handshake(std::move(context), fd, FormatAddress(a.address), true, host, expected_peer_name);
  }
  return Unavailable("peer link: cannot connect to " + where + ": " + last_error);
}

Result<std::unique_ptr<PeerLink>> PeerLink::Accept(std::shared_ptr<const PeerLinkContext> context,
                                                   IncomingConnection connection) {
  if (context == nullptr) return InvalidArgument("peer link: no context");
  std::string remote = connection.remote_address();
  const int fd = connection.release();
  if (fd < 0) return InvalidArgument("peer link: no connection to accept");
  if (!SetNonBlocking(fd)) {
    ::close(fd);
    return Unavailable("peer link: cannot make the socket non-blocking");
  }
  SetNoDelay(fd);
  return Handshake(std::move(context), fd, std::move(remote), false, {}, {});
}

Result<std::unique_ptr<PeerLink>> PeerLink::Handshake(std::shared_ptr<const PeerLinkContext> context, int fd,
                                                      std::string remote, bool client, const std::string& host,
                                                      const std::string& expected_peer_name) {
  auto conn = std::make_unique<Conn>();
  conn->fd = fd;
  const auto& o = context->options();
  conn->verify.profile = o.profile;
  conn->verify.expected_name = expected_peer_name;
  conn->ssl.reset(SSL_new(client ? context->handles_->client.get() : context->handles_->server.get()));
  if (!conn->ssl) return Internal("peer link: SSL_new failed: " + OpenSslReasonText());
  SSL* ssl = conn->ssl.get();
  BIO* bio = NoSigpipeSocketMethod() != nullptr ? BIO_new(NoSigpipeSocketMethod()) : nullptr;
  if (bio == nullptr) return Internal("peer link: cannot create the socket BIO: " + OpenSslReasonText());
  BIO_set_data(bio, reinterpret_cast<void*>(static_cast<std::intptr_t>(fd)));  // NOLINT
  SSL_set_bio(ssl, bio, bio);                                                  // the SSL owns the BIO now
  if (SSL_set_ex_data(ssl, VerifyStateIndex(), &conn->verify) != 1) {
    return Internal("peer link: cannot set up the connection: " + OpenSslReasonText());
  }
  if (client) QSAPI_RETURN_IF_ERROR(pki::ConfigureClientConnection(ssl, host, false));
  const std::string side = client ? "peer link to " + remote : "peer link from " + remote;
  const auto deadline = Clock::now() + o.handshake_timeout;
  ERR_clear_error();
  for (;;) {
    const int r = client ? SSL_connect(ssl) : SSL_accept(ssl);
    if (r == 1) break;
    const int err = SSL_get_error(ssl, r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      if (!WaitFd(fd, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline)) {
        return DeadlineExceeded(side + ": the TLS handshake timed out");
      }
      continue;
    }
    if (!conn->verify.failure.empty()) {
      ERR_clear_error();
      return PermissionDenied(side + ": " + conn->verify.failure);
    }
    const unsigned long e = ERR_peek_last_error();  // NOLINT(google-runtime-int)
    const int reason = ERR_GET_REASON(e);
    std::string text = OpenSslReasonText();
    if (reason == SSL_R_NO_SUITABLE_KEY_SHARE || reason == SSL_R_NO_SHARED_GROUPS) {
      return PermissionDenied(
          side + ": the peer offered no hybrid post-quantum key-exchange group; this endpoint accepts only " +
          std::string(PeerProfileGroups(o.profile)) + " (classical-only peers are refused; OpenSSL: " + text + ")");
    }
    if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
      return PermissionDenied(side + ": the peer presented no certificate; peer links are mutually authenticated");
    }
    if (text.find("alert") != std::string::npos) {
      return PermissionDenied(
          side + ": the peer refused the TLS handshake (" + text +
          "); it may not accept our certificate or CA, or not support the hybrid groups we offer (" +
          std::string(PeerProfileGroups(o.profile)) + ")");
    }
    if (err == SSL_ERROR_SYSCALL || err == SSL_ERROR_ZERO_RETURN) {
      return Unavailable(side + ": the connection closed during the TLS handshake" +
                         (text.empty() ? std::string() : " (" + text + ")"));
    }
    return PermissionDenied(side + ": the TLS handshake failed: " + (text.empty() ? "unknown" : text));
  }
  // After the handshake: the group (belt and braces: the group lists admit nothing else).
  LinkInfo info;
  info.is_client = client;
  info.remote_address = std::move(remote);
  info.tls_version = pki::ProtocolVersionName(ssl);
  info.tls_group = pki::NegotiatedGroupName(ssl);
  const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl);
  info.tls_cipher = cipher != nullptr ? SSL_CIPHER_get_name(cipher) : "";
  const std::string allowed(PeerProfileGroups(o.profile));
  const bool group_ok = pki::IsPqHybridGroup(info.tls_group) &&
                        (o.profile != PeerProfile::kCnsa2 || info.tls_group == "SecP384r1MLKEM1024");
  if (SSL_version(ssl) != TLS1_3_VERSION || !group_ok) {
    return PermissionDenied(side + ": negotiated " + info.tls_version + " with group \"" + info.tls_group +
                            "\"; only TLS 1.3 with " + allowed + " is allowed");
  }
  X509* peer = SSL_get0_peer_certificate(ssl);
  if (peer == nullptr || SSL_get_verify_result(ssl) != X509_V_OK) {
    return PermissionDenied(side + ": the peer's certificate was not verified");
  }
  info.peer_name = CommonNameOf(peer);
  info.peer_key_algorithm = KeyTypeName(X509_get0_pubkey(peer));
  if (info.peer_name.empty()) return PermissionDenied(side + ": the peer's certificate has no CN");
  return std::unique_ptr<PeerLink>(new PeerLink(std::move(context), std::move(conn), std::move(info)));
}

bool PeerLink::is_open() const {
  std::lock_guard lock(ssl_mu_);
  return !conn_->closed;
}

void PeerLink::Close() {
  std::lock_guard lock(ssl_mu_);
  if (conn_ == nullptr || conn_->closed) return;
  conn_->closed = true;
  ERR_clear_error();
  (void)SSL_shutdown(conn_->ssl.get());  // sends close_notify if the socket takes it; no waiting
  ERR_clear_error();
  ::shutdown(conn_->fd, SHUT_RDWR);  // wakes a thread polling this socket; the fd closes with Conn
}

Status PeerLink::Send(ByteView message, std::chrono::milliseconds timeout) {
  if (message.size() > max_message_size()) {
    return InvalidArgument("peer link: a message of " + std::to_string(message.size()) +
                           " bytes exceeds the bound of " + std::to_string(max_message_size()));
  }
  const auto deadline = Clock::now() + (timeout.count() > 0 ? timeout : context_->options().io_timeout);
  Bytes frame(4 + message.size());
  const auto n = static_cast<std::uint32_t>(message.size());
  frame[0] = static_cast<std::uint8_t>(n >> 24);
  frame[1] = static_cast<std::uint8_t>(n >> 16);
  frame[2] = static_cast<std::uint8_t>(n >> 8);
  frame[3] = static_cast<std::uint8_t>(n);
  if (!message.empty()) std::memcpy(frame.data() + 4, message.data(), message.size());
  std::lock_guard send_lock(send_mu_);
  for (;;) {
    int err = 0;
    {
      std::lock_guard lock(ssl_mu_);
      if (conn_->closed) return Unavailable("peer link to " + info_.peer_name + ": closed");
      ERR_clear_error();
      std::size_t written = 0;
      if (SSL_write_ex(conn_->ssl.get(), frame.data(), frame.size(), &written) == 1) return OkStatus();
      err = SSL_get_error(conn_->ssl.get(), 0);
      if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
        conn_->closed = true;
        ::shutdown(conn_->fd, SHUT_RDWR);
        const std::string text = OpenSslReasonText();
        return Unavailable("peer link to " + info_.peer_name + ": the link broke while sending" +
                           (text.empty() ? std::string() : " (" + text + ")"));
      }
    }
    if (!WaitFd(conn_->fd, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline)) {
      Close();
      return DeadlineExceeded("peer link to " + info_.peer_name + ": sending timed out; link closed");
    }
  }
}

Result<Bytes> PeerLink::Receive(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + (timeout.count() > 0 ? timeout : context_->options().io_timeout);
  bool frame_started = false;  // from its first byte on, a frame gets at least io_timeout to arrive
  std::lock_guard recv_lock(recv_mu_);
  std::array<std::uint8_t, 4> header{};
  Bytes body;
  std::size_t got = 0;
  std::size_t want = header.size();
  bool in_body = false;
  for (;;) {
    int err = 0;
    {
      std::lock_guard lock(ssl_mu_);
      if (conn_->closed) return Unavailable("peer link to " + info_.peer_name + ": closed");
      ERR_clear_error();
      std::size_t n = 0;
      std::uint8_t* dst = in_body ? body.data() + got : header.data() + got;
      const int r = want - got == 0 ? 1 : SSL_read_ex(conn_->ssl.get(), dst, want - got, &n);
      if (r == 1) {
        got += n;
      } else {
        err = SSL_get_error(conn_->ssl.get(), r);
        if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
          conn_->closed = true;
          ::shutdown(conn_->fd, SHUT_RDWR);
          const std::string text = OpenSslReasonText();
          if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && text.empty())) {
            return Unavailable("peer link to " + info_.peer_name + ": the peer closed the link");
          }
          if (text.find("alert") != std::string::npos) {
            return PermissionDenied("peer link to " + info_.peer_name + ": the peer refused the link (" + text +
                                    "); it may not accept our certificate or name");
          }
          return Unavailable("peer link to " + info_.peer_name + ": the link broke while receiving" +
                             (text.empty() ? std::string() : " (" + text + ")"));
        }
      }
    }
    if (!frame_started && (got > 0 || in_body)) {
      frame_started = true;
      deadline = std::max(deadline, Clock::now() + context_->options().io_timeout);
    }
    if (err == 0 && got == want) {
      if (in_body) return body;
      const std::size_t len = (std::size_t{header[0]} << 24) | (std::size_t{header[1]} << 16) |
                              (std::size_t{header[2]} << 8) | std::size_t{header[3]};
      if (len > max_message_size()) {
        Close();
        return ResourceExhausted("peer link to " + info_.peer_name + ": the peer sent a message of " +
                                 std::to_string(len) + " bytes; the bound is " + std::to_string(max_message_size()) +
                                 "; link closed");
      }
      body.resize(len);
      in_body = true;
      got = 0;
      want = len;
      if (len == 0) return body;
      continue;
    }
    if (err == 0) continue;
    if (!WaitFd(conn_->fd, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline)) {
      if (!in_body && got == 0) {
        return DeadlineExceeded("peer link to " + info_.peer_name + ": no message within the timeout");
      }
      Close();
      return DeadlineExceeded("peer link to " + info_.peer_name + ": a message stalled part-way; link closed");
    }
  }
}

Result<SecretBytes> PeerLink::ExportKeyingMaterial(std::string_view label, ByteView context, std::size_t size) const {
  if (size == 0 || size > std::size_t{255} * 48) return InvalidArgument("peer link: bad exporter size");
  SecretBytes out(size);
  std::lock_guard lock(ssl_mu_);
  if (conn_->closed) return Unavailable("peer link to " + info_.peer_name + ": closed");
  static constexpr std::uint8_t kEmpty = 0;
  if (SSL_export_keying_material(conn_->ssl.get(), out.data(), out.size(), label.data(), label.size(),
                                 context.empty() ? &kEmpty : context.data(), context.size(), 1) != 1) {
    return Internal("peer link: the TLS exporter failed: " + OpenSslReasonText());
  }
  return out;
}

}  // namespace qsapi::session
