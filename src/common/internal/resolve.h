// Host-name resolution with a deadline.
//
// getaddrinfo() cannot be cancelled, and Asio's asynchronous resolver runs it on a service thread
// that the io_context joins on destruction, so neither bounds how long a request waits on a slow
// DNS server. ResolveWithDeadline runs the lookup on a detached worker thread and stops waiting at
// the deadline; the worker finishes (and frees its state) whenever the lookup returns. At most
// kMaxPendingLookups lookups may be outstanding at once, so a dead resolver cannot pile up
// threads: beyond that, a lookup fails at once.
#ifndef QSAPI_COMMON_INTERNAL_RESOLVE_H_
#define QSAPI_COMMON_INTERNAL_RESOLVE_H_

#include <sys/socket.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "qsapi/result.h"

namespace qsapi::internal {

struct ResolvedAddress {
  sockaddr_storage address{};
  socklen_t length = 0;
};

inline constexpr int kMaxPendingLookups = 8;

// A Lookup resolves host and port (numeric service) to TCP addresses, or returns an error message.
using Lookup = std::function<Result<std::vector<ResolvedAddress>>(const std::string& host, const std::string& port)>;

// PendingLookups returns how many lookups are still running (for health output and tests).
int PendingLookups() noexcept;

// SystemLookup is getaddrinfo(host, port, {AF_UNSPEC, SOCK_STREAM, AI_NUMERICSERV | AI_ADDRCONFIG}).
Result<std::vector<ResolvedAddress>> SystemLookup(const std::string& host, const std::string& port);

// ResolveWithDeadline returns the addresses of host:port. IP literals are converted without a
// lookup. kDeadlineExceeded when `lookup` has not answered by `deadline`; kUnavailable when it
// fails or too many lookups are pending. `lookup` is a parameter for tests; it must be callable
// from another thread.
Result<std::vector<ResolvedAddress>> ResolveWithDeadline(const std::string& host, const std::string& port,
                                                         std::chrono::steady_clock::time_point deadline,
                                                         const Lookup& lookup = SystemLookup);

}  // namespace qsapi::internal

#endif  // QSAPI_COMMON_INTERNAL_RESOLVE_H_
