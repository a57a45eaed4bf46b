// Accepting peer-link connections (qsapi/session/peer_link.h): a non-blocking listening socket
// and a self-pipe, so that Close wakes a thread waiting in AcceptConnection.
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <array>
#include <cerrno>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <string>
#include <utility>

#include "common/internal/resolve.h"
#include "common/internal/text.h"
#include "qsapi/session/peer_link.h"
#include "session/internal/peer_link_internal.h"

namespace qsapi::session {

using internal::Clock;
using internal::RemainingMs;
using internal::SetNonBlocking;

namespace internal {

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

}  // namespace internal

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
  QSAPI_ASSIGN_OR_RETURN(auto addrs, qsapi::internal::ResolveWithDeadline(bind_address, std::to_string(port),
                                                                          Clock::now() + std::chrono::seconds(5)));
  if (addrs.empty()) return Unavailable("peer listener: no address for " + bind_address);
  const auto& a = addrs.front();
  const int fd = ::socket(a.address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Unavailable(std::string("peer listener: socket: ") + qsapi::internal::ErrnoText(errno));
  const int one = 1;
  (void)::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&a.address), a.length) != 0 ||  // NOLINT
      ::listen(fd, 64) != 0 || !SetNonBlocking(fd)) {
    const int e = errno;
    ::close(fd);
    return Unavailable("peer listener: cannot listen on " + bind_address + ":" + std::to_string(port) + ": " +
                       qsapi::internal::ErrnoText(e));
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
      return Unavailable(std::string("peer listener: accept: ") + qsapi::internal::ErrnoText(errno));
    }
    return IncomingConnection(c, internal::FormatAddress(peer));
  }
}

}  // namespace qsapi::session
