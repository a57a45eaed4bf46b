// The operations an API principal's policy can name, one per kind of work the REST API does. A
// route maps to exactly one operation (server/routes.h); policies in the token file and in
// [[client]] sections name them by their text form ("encrypt", "keys.create", ...; "*" for all).
#ifndef QSAPI_SRC_SERVER_OPERATION_H_
#define QSAPI_SRC_SERVER_OPERATION_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace qsapi::server {

enum class Operation : std::uint8_t {
  kKeysCreate,
  kKeysRead,
  kKeysRotate,
  kKeysConfig,
  kKeysDestroy,
  kEncrypt,
  kDecrypt,
  kRewrap,
  kDatakey,
  kSign,
  kVerify,
  kKem,
  kSeal,
  kOpen,
  kRandom,
  kSessions,
  kHealth,
  kMetrics,
};

inline constexpr std::array<Operation, 18> kAllOperations = {
    Operation::kKeysCreate,  Operation::kKeysRead, Operation::kKeysRotate, Operation::kKeysConfig,
    Operation::kKeysDestroy, Operation::kEncrypt,  Operation::kDecrypt,    Operation::kRewrap,
    Operation::kDatakey,     Operation::kSign,     Operation::kVerify,     Operation::kKem,
    Operation::kSeal,        Operation::kOpen,     Operation::kRandom,     Operation::kSessions,
    Operation::kHealth,      Operation::kMetrics,
};

// OperationName is the policy's text form ("keys.create").
std::string_view OperationName(Operation op) noexcept;
// ParseOperation reads that text form; nullopt for anything else (including "*").
std::optional<Operation> ParseOperation(std::string_view name) noexcept;

}  // namespace qsapi::server

#endif  // QSAPI_SRC_SERVER_OPERATION_H_
