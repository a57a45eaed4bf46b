// qsapi/result.h: the error model of the public API.
//
// No exception crosses the public API. Every fallible function returns a [[nodiscard]] Result<T>
// (or Status = Result<void>) that holds either a value or an Error with a canonical code and a
// message a person can act on. Messages never contain secret material.
//
// Every failed decrypt, decapsulate, unwrap or verify returns the same Error,
// AuthenticationFailed(), whatever the cause (bad tag, bad padding, wrong key, truncated input
// of a valid length), so that a caller cannot learn which check failed.
#ifndef QSAPI_RESULT_H_
#define QSAPI_RESULT_H_

#include <cstdlib>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace qsapi {

// Canonical error codes (a subset of the gRPC / absl canonical codes, same meanings).
enum class ErrorCode {
  kInvalidArgument,       // the caller passed something malformed: a wrong length, an unknown algorithm
  kAuthenticationFailed,  // a decrypt, decapsulate or verify failed; deliberately uninformative
  kFailedPrecondition,    // the operation is not allowed in the current state (policy, lifecycle)
  kNotFound,              // a named object does not exist
  kAlreadyExists,         // a named object exists already
  kResourceExhausted,     // a usage limit, a size bound or a pool is exhausted
  kUnavailable,           // a dependency (HSM, KME, entropy source) cannot be reached now; retrying may help
  kDeadlineExceeded,      // an operation took longer than its bound
  kPermissionDenied,      // the caller is not allowed to do this
  kDataLoss,              // stored data is corrupt
  kUnimplemented,         // the operation or algorithm is not supported by this build
  kInternal,              // a broken invariant or an unexpected failure of a dependency
};

// ErrorCodeName returns a stable, upper-snake-case name for `code` ("INVALID_ARGUMENT").
std::string_view ErrorCodeName(ErrorCode code) noexcept;

// Error is an error code and a human-readable message. Copyable; cheap to move.
class Error {
 public:
  Error(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  [[nodiscard]] ErrorCode code() const noexcept { return code_; }
  [[nodiscard]] const std::string& message() const noexcept { return message_; }
  // ToString returns "CODE_NAME: message".
  [[nodiscard]] std::string ToString() const;

  friend bool operator==(const Error& a, const Error& b) { return a.code_ == b.code_ && a.message_ == b.message_; }

 private:
  ErrorCode code_;
  std::string message_;
};

// AuthenticationFailed returns the one error every failed decrypt, decapsulate or verify returns.
Error AuthenticationFailed();

// InvalidArgument, FailedPrecondition, ... are shorthands for Error(ErrorCode::k..., message).
Error InvalidArgument(std::string message);
Error FailedPrecondition(std::string message);
Error Internal(std::string message);
Error Unavailable(std::string message);
Error ResourceExhausted(std::string message);
Error Unimplemented(std::string message);
Error NotFound(std::string message);
Error PermissionDenied(std::string message);
Error AlreadyExists(std::string message);
Error DataLoss(std::string message);
Error DeadlineExceeded(std::string message);

// Result<T> holds a T or an Error. Accessing value() of an error Result aborts the process:
// that is a programming error, not something input can cause, so it is not an exception.
template <typename T>
class [[nodiscard]] Result {
 public:
  using value_type = T;

  // NOLINTBEGIN(google-explicit-constructor,hicpp-explicit-conversions): implicit by design, as absl::StatusOr.
  Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}
  Result(Error error) : state_(std::in_place_index<1>, std::move(error)) {}
  // NOLINTEND(google-explicit-constructor,hicpp-explicit-conversions)

  [[nodiscard]] bool ok() const noexcept { return state_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  [[nodiscard]] T& value() & {
    CheckOk();
    return std::get<0>(state_);
  }
  [[nodiscard]] const T& value() const& {
    CheckOk();
    return std::get<0>(state_);
  }
  [[nodiscard]] T&& value() && {
    CheckOk();
    return std::get<0>(std::move(state_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  // error() is only valid when !ok(); otherwise the process aborts.
  [[nodiscard]] const Error& error() const& {
    if (ok()) std::abort();
    return std::get<1>(state_);
  }

 private:
  void CheckOk() const {
    if (!ok()) std::abort();
  }
  std::variant<T, Error> state_;
};

// Status is the Result of an operation that returns nothing but success or an Error.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  // NOLINTNEXTLINE(google-explicit-constructor,hicpp-explicit-conversions): implicit by design.
  Result(Error error) : error_(std::move(error)), has_error_(true) {}

  [[nodiscard]] bool ok() const noexcept { return !has_error_; }
  explicit operator bool() const noexcept { return ok(); }
  [[nodiscard]] const Error& error() const& {
    if (ok()) std::abort();
    return error_;
  }

 private:
  Error error_{ErrorCode::kInternal, {}};
  bool has_error_ = false;
};

using Status = Result<void>;

// OkStatus returns a successful Status.
inline Status OkStatus() { return {}; }

}  // namespace qsapi

// QSAPI_RETURN_IF_ERROR(expr): evaluates a Status-returning expression and returns its Error.
#define QSAPI_RETURN_IF_ERROR(expr)                           \
  do {                                                        \
    if (const auto& qsapi_status_ = (expr); !qsapi_status_) { \
      return qsapi_status_.error();                           \
    }                                                         \
  } while (false)

#define QSAPI_CONCAT_INNER_(a, b) a##b
#define QSAPI_CONCAT_(a, b) QSAPI_CONCAT_INNER_(a, b)

// QSAPI_ASSIGN_OR_RETURN(lhs, expr): evaluates a Result-returning expression; on error returns
// its Error, otherwise moves the value into `lhs` (which may be a declaration).
// lhs may be a declaration, which cannot be parenthesised.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define QSAPI_ASSIGN_OR_RETURN(lhs, expr)                  \
  auto QSAPI_CONCAT_(qsapi_result_, __LINE__) = (expr);    \
  if (!QSAPI_CONCAT_(qsapi_result_, __LINE__)) {           \
    return QSAPI_CONCAT_(qsapi_result_, __LINE__).error(); \
  }                                                        \
  lhs = std::move(QSAPI_CONCAT_(qsapi_result_, __LINE__)).value()
// NOLINTEND(bugprone-macro-parentheses)

#endif  // QSAPI_RESULT_H_
