// One peer link (qsapi/session/peer_link.h): OpenSSL TLS 1.3 over a non-blocking socket, every
// wait a poll() with a deadline. The negotiated group is checked again after the handshake (the
// group lists already exclude classical groups). The context and its certificate checks are in
// peer_link_context.cc, the listener in peer_listener.cc.
#include "qsapi/session/peer_link.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "common/internal/resolve.h"
#include "common/internal/text.h"
#include "crypto/internal/openssl_util.h"
#include "pki/internal/tls_context.h"
#include "session/internal/peer_link_internal.h"

namespace qsapi::session {

using internal::Clock;

namespace {

using crypto::internal::OpenSslQueueEnd;
using crypto::internal::SslPtr;
using crypto::internal::TakeOpenSslReason;
using internal::CommonNameOf;
using internal::KeyTypeName;
using internal::SetNoDelay;
using internal::SetNonBlocking;
using internal::VerifyState;
using internal::VerifyStateIndex;
using internal::WaitFd;

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

}  // namespace

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
  QSAPI_ASSIGN_OR_RETURN(auto addrs, qsapi::internal::ResolveWithDeadline(host, std::to_string(port), deadline));
  std::string last_error = "no address";
  for (const auto& a : addrs) {
    const int fd = ::socket(a.address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      last_error = qsapi::internal::ErrnoText(errno);
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
      last_error = qsapi::internal::ErrnoText(errno);
      ::close(fd);
      continue;
    }
    SetNoDelay(fd);
    return Handshake(std::move(context), fd, internal::FormatAddress(a.address), true, host, expected_peer_name);
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
  if (!conn->ssl) return Internal("peer link: SSL_new failed: " + TakeOpenSslReason(OpenSslQueueEnd::kNewest));
  SSL* ssl = conn->ssl.get();
  BIO* bio = NoSigpipeSocketMethod() != nullptr ? BIO_new(NoSigpipeSocketMethod()) : nullptr;
  if (bio == nullptr)
    return Internal("peer link: cannot create the socket BIO: " + TakeOpenSslReason(OpenSslQueueEnd::kNewest));
  BIO_set_data(bio, reinterpret_cast<void*>(static_cast<std::intptr_t>(fd)));  // NOLINT
  SSL_set_bio(ssl, bio, bio);                                                  // the SSL owns the BIO now
  if (SSL_set_ex_data(ssl, VerifyStateIndex(), &conn->verify) != 1) {
    return Internal("peer link: cannot set up the connection: " + TakeOpenSslReason(OpenSslQueueEnd::kNewest));
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
    std::string text = TakeOpenSslReason(OpenSslQueueEnd::kNewest);
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
        const std::string text = TakeOpenSslReason(OpenSslQueueEnd::kNewest);
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
          const std::string text = TakeOpenSslReason(OpenSslQueueEnd::kNewest);
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
    return Internal("peer link: the TLS exporter failed: " + TakeOpenSslReason(OpenSslQueueEnd::kNewest));
  }
  return out;
}

}  // namespace qsapi::session
