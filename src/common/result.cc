#include "qsapi/result.h"

namespace qsapi {

std::string_view ErrorCodeName(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "INVALID_ARGUMENT";
    case ErrorCode::kAuthenticationFailed: return "AUTHENTICATION_FAILED";
    case ErrorCode::kFailedPrecondition: return "FAILED_PRECONDITION";
    case ErrorCode::kNotFound: return "NOT_FOUND";
    case ErrorCode::kAlreadyExists: return "ALREADY_EXISTS";
    case ErrorCode::kResourceExhausted: return "RESOURCE_EXHAUSTED";
    case ErrorCode::kUnavailable: return "UNAVAILABLE";
    case ErrorCode::kDeadlineExceeded: return "DEADLINE_EXCEEDED";
    case ErrorCode::kPermissionDenied: return "PERMISSION_DENIED";
    case ErrorCode::kDataLoss: return "DATA_LOSS";
    case ErrorCode::kUnimplemented: return "UNIMPLEMENTED";
    case ErrorCode::kInternal: return "INTERNAL";
  }
  return "UNKNOWN";
}

std::string Error::ToString() const {
  std::string s(ErrorCodeName(code_));
  s += ": ";
  s += message_;
  return s;
}

Error AuthenticationFailed() { return {ErrorCode::kAuthenticationFailed, "authentication failed"}; }
Error InvalidArgument(std::string message) { return {ErrorCode::kInvalidArgument, std::move(message)}; }
Error FailedPrecondition(std::string message) { return {ErrorCode::kFailedPrecondition, std::move(message)}; }
Error Internal(std::string message) { return {ErrorCode::kInternal, std::move(message)}; }
Error Unavailable(std::string message) { return {ErrorCode::kUnavailable, std::move(message)}; }
Error ResourceExhausted(std::string message) { return {ErrorCode::kResourceExhausted, std::move(message)}; }
Error Unimplemented(std::string message) { return {ErrorCode::kUnimplemented, std::move(message)}; }
Error NotFound(std::string message) { return {ErrorCode::kNotFound, std::move(message)}; }
Error PermissionDenied(std::string message) { return {ErrorCode::kPermissionDenied, std::move(message)}; }
Error AlreadyExists(std::string message) { return {ErrorCode::kAlreadyExists, std::move(message)}; }
Error DataLoss(std::string message) { return {ErrorCode::kDataLoss, std::move(message)}; }
Error DeadlineExceeded(std::string message) { return {ErrorCode::kDeadlineExceeded, std::move(message)}; }

}  // namespace qsapi
