// session/internal/peer_link_internal.h: what the three parts of the peer link share
// (peer_link_context.cc: profiles, certificate checks and the SSL_CTX pair; peer_listener.cc:
// accepting connections; peer_link.cc: one connection). Internal to the library.
#ifndef QSAPI_SESSION_INTERNAL_PEER_LINK_INTERNAL_H_
#define QSAPI_SESSION_INTERNAL_PEER_LINK_INTERNAL_H_

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string>
#include <string_view>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "crypto/internal/openssl_util.h"
#include "qsapi/session/peer_link.h"

namespace qsapi::session {

// The pair of TLS contexts of a PeerLinkContext, one per role.
struct PeerLinkContext::Handles {
  crypto::internal::SslCtxPtr client;
  crypto::internal::SslCtxPtr server;
};

namespace internal {

using Clock = std::chrono::steady_clock;

// Per-connection state the verify callback reads and writes.
struct VerifyState {
  PeerProfile profile = PeerProfile::kDefault;
  std::string expected_name;  // client side: the server's expected CN; server side: empty
  std::string failure;        // why we refused the peer's certificate
};

// VerifyStateIndex is the SSL ex_data slot that holds a connection's VerifyState.
int VerifyStateIndex();

// KeyTypeName names a public key's type for messages ("ML-DSA-65", "ECDSA (256-bit curve)").
std::string KeyTypeName(const EVP_PKEY* key);
// CommonNameOf returns the subject CN of a certificate, "" when it has none.
std::string CommonNameOf(X509* cert);
// Printable keeps a peer-supplied name safe to show in a message (printable ASCII, 128 characters).
std::string Printable(std::string_view s);
// FormatAddress writes an IPv4 or IPv6 socket address as host:port ("[::1]:443").
std::string FormatAddress(const sockaddr_storage& ss);

inline int RemainingMs(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left, 1 << 30));  // NOLINT(google-runtime-int)
}

// WaitFd waits for `events` on fd until the deadline: true when ready, false on timeout.
inline bool WaitFd(int fd, short events, Clock::time_point deadline) {  // NOLINT(google-runtime-int)
  for (;;) {
    pollfd p{.fd = fd, .events = events, .revents = 0};
    const int ms = RemainingMs(deadline);
    const int r = ::poll(&p, 1, ms);
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) return true;  // let the next I/O call report the error
  }
}

inline bool SetNonBlocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL, 0);
  return flags >= 0 && ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

inline void SetNoDelay(int fd) {
  const int one = 1;
  (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

}  // namespace internal
}  // namespace qsapi::session

#endif  // QSAPI_SESSION_INTERNAL_PEER_LINK_INTERNAL_H_
