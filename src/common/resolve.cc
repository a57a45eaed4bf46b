#include "common/internal/resolve.h"

#include <arpa/inet.h>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <netdb.h>
#include <netinet/in.h>
#include <optional>
#include <thread>
#include <utility>

namespace qsapi::internal {
namespace {

std::atomic<int> g_pending{0};  // NOLINT(cppcoreguidelines-avoid-non-const-global-variables): process-wide count

std::optional<ResolvedAddress> NumericAddress(const std::string& host, const std::string& port) {
  char* end = nullptr;
  const unsigned long p = std::strtoul(port.c_str(), &end, 10);
  if (port.empty() || *end != '\0' || p > 65535) return std::nullopt;
  ResolvedAddress r;
  in_addr v4{};
  in6_addr v6{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(p));
    a.sin_addr = v4;
    std::memcpy(&r.address, &a, sizeof a);
    r.length = sizeof a;
    return r;
  }
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(static_cast<std::uint16_t>(p));
    a.sin6_addr = v6;
    std::memcpy(&r.address, &a, sizeof a);
    r.length = sizeof a;
    return r;
  }
  return std::nullopt;
}

struct PendingLookup {
  std::mutex mu;
  std::condition_variable cv;
  std::optional<Result<std::vector<ResolvedAddress>>> result;  // guarded by mu
};

}  // namespace

int PendingLookups() noexcept { return g_pending.load(); }

Result<std::vector<ResolvedAddress>> SystemLookup(const std::string& host, const std::string& port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
  addrinfo* list = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &list);
  if (rc != 0) return Unavailable("cannot resolve host \"" + host + "\": " + ::gai_strerror(rc));
  std::vector<ResolvedAddress> out;
  for (const addrinfo* a = list; a != nullptr; a = a->ai_next) {
    if (a->ai_addrlen > sizeof(sockaddr_storage)) continue;
    ResolvedAddress r;
    std::memcpy(&r.address, a->ai_addr, a->ai_addrlen);
    r.length = a->ai_addrlen;
    out.push_back(r);
  }
  ::freeaddrinfo(list);
  if (out.empty()) return Unavailable("host \"" + host + "\" has no address");
  return out;
}

Result<std::vector<ResolvedAddress>> ResolveWithDeadline(const std::string& host, const std::string& port,
                                                         std::chrono::steady_clock::time_point deadline,
                                                         const Lookup& lookup) {
  if (std::optional<ResolvedAddress> numeric = NumericAddress(host, port)) {
    return std::vector<ResolvedAddress>{*numeric};
  }
  if (g_pending.fetch_add(1) >= kMaxPendingLookups) {
    g_pending.fetch_sub(1);
    return Unavailable("cannot resolve host \"" + host + "\": too many host-name lookups are still pending " +
                       "(is the DNS resolver answering?)");
  }
  auto state = std::make_shared<PendingLookup>();
  try {
    std::thread([state, lookup, host, port] {
      Result<std::vector<ResolvedAddress>> r = lookup(host, port);
      {
        const std::lock_guard<std::mutex> lock(state->mu);
        state->result.emplace(std::move(r));
      }
      state->cv.notify_all();
      g_pending.fetch_sub(1);
    }).detach();
  } catch (const std::system_error&) {
    g_pending.fetch_sub(1);
    return Unavailable("cannot resolve host \"" + host + "\": no thread for the lookup");
  }
  std::unique_lock<std::mutex> lock(state->mu);
  if (!state->cv.wait_until(lock, deadline, [&] { return state->result.has_value(); })) {
    return DeadlineExceeded("resolving host \"" + host + "\" took longer than the deadline");
  }
  return std::move(*state->result);
}

}  // namespace qsapi::internal
