#include "server/operation.h"

namespace qsapi::server {

std::string_view OperationName(Operation op) noexcept {
  switch (op) {
    case Operation::kKeysCreate: return "keys.create";
    case Operation::kKeysRead: return "keys.read";
    case Operation::kKeysRotate: return "keys.rotate";
    case Operation::kKeysConfig: return "keys.config";
    case Operation::kKeysDestroy: return "keys.destroy";
    case Operation::kEncrypt: return "encrypt";
    case Operation::kDecrypt: return "decrypt";
    case Operation::kRewrap: return "rewrap";
    case Operation::kDatakey: return "datakey";
    case Operation::kSign: return "sign";
    case Operation::kVerify: return "verify";
    case Operation::kKem: return "kem";
    case Operation::kSeal: return "seal";
    case Operation::kOpen: return "open";
    case Operation::kRandom: return "random";
    case Operation::kSessions: return "sessions";
    case Operation::kHealth: return "health";
    case Operation::kMetrics: return "metrics";
  }
  return "unknown";
}

std::optional<Operation> ParseOperation(std::string_view name) noexcept {
  for (const Operation op : kAllOperations) {
    if (OperationName(op) == name) return op;
  }
  return std::nullopt;
}

}  // namespace qsapi::server
