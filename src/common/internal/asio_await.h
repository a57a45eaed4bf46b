// Blocking calls with a deadline on top of Boost.Asio's asynchronous operations, shared by the
// HTTPS clients (the QRNG HTTP source, the ETSI 014 client, net/https_client).
#ifndef QSAPI_COMMON_INTERNAL_ASIO_AWAIT_H_
#define QSAPI_COMMON_INTERNAL_ASIO_AWAIT_H_

#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <optional>
#include <string>

#include <openssl/err.h>

namespace qsapi::internal {

// Await starts one asynchronous operation, `start(done)`, and runs the io_context until it
// completes or the deadline passes; then `cancel()` closes the socket (or cancels the resolver)
// and the aborted handler runs. A missed deadline returns boost::asio::error::timed_out.
template <typename Start, typename Cancel>
boost::system::error_code Await(boost::asio::io_context& ioc, std::chrono::steady_clock::time_point deadline,
                                Start&& start, Cancel&& cancel) {
  std::optional<boost::system::error_code> result;
  start([&result](const boost::system::error_code& ec) { result = ec; });
  ioc.restart();
  ioc.run_until(deadline);
  if (!result) {
    cancel();
    ioc.restart();
    ioc.run();
    return boost::asio::error::timed_out;
  }
  return *result;
}

// SslErrorReason is OpenSSL's reason text for a TLS error code, else the error's message.
inline std::string SslErrorReason(const boost::system::error_code& ec) {
  if (ec.category() == boost::asio::error::get_ssl_category()) {
    const char* r = ERR_reason_error_string(static_cast<unsigned long>(ec.value()));  // NOLINT(google-runtime-int)
    if (r != nullptr) return r;
  }
  return ec.message();
}

}  // namespace qsapi::internal

#endif  // QSAPI_COMMON_INTERNAL_ASIO_AWAIT_H_
