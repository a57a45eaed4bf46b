// Internal to the qkd part: the ETSI GS QKD 014 JSON objects, parsed strictly and written
// canonically. The client parses responses (Status, Key container, error bodies) and writes
// requests (Key request, Key IDs); the KME simulator does the opposite. One file for both sides
// keeps the member names in one place. Parsers of responses are fuzzed
// (fuzz/etsi014_response_fuzzer.cc).
//
// Strictness: bodies are bounded and their nesting depth is checked before parsing; every member
// must have the spec's type; unknown members are rejected except inside the spec's extension
// members (`*_extension`, `extension_*`, `details`), whose content is free. Errors are DATA_LOSS
// for responses (the KME sent something wrong) and INVALID_ARGUMENT for requests (the SAE did);
// they never quote a key.
#ifndef QSAPI_SRC_QKD_INTERNAL_ETSI014_JSON_H_
#define QSAPI_SRC_QKD_INTERNAL_ETSI014_JSON_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "qsapi/qkd/etsi014.h"
#include "qsapi/result.h"

namespace qsapi::qkd::internal {

inline constexpr std::size_t kMaxKeysPerContainer = 4096;
inline constexpr std::uint32_t kMaxKeySizeBits = 65536;

// ParseStatus parses a Status object.
Result<KmeStatus> ParseStatus(std::string_view body);

// KeyContainerExpectation says what a Key container must hold.
struct KeyContainerExpectation {
  std::size_t number = 0;                // exactly this many keys (0: at least one)
  std::uint32_t size_bits = 0;           // every key this size (0: any, but all equal)
  std::span<const std::string> key_ids;  // when not empty: exactly these IDs (any order)
};

// ParseKeyContainer parses a Key container into keys in secret memory, wiping the body and
// every copy of the base64 text the parser made, on success and on failure. With expected key_ids
// the keys come back in the order of those IDs.
Result<std::vector<QkdKey>> ParseKeyContainer(std::string& body, const KeyContainerExpectation& expect);

// ErrorMessage returns the `message` member of an error body, cut to 200 printable ASCII
// characters, or nothing when the body is not such a JSON object (an HTML page, say).
std::optional<std::string> ErrorMessage(std::string_view body);

// Requests, as the client writes them.
std::string KeyRequestJson(const KeyRequest& request);
std::string KeyIdsJson(std::span<const std::string> key_ids);

// Requests, as the simulator parses them (INVALID_ARGUMENT on anything malformed).
Result<KeyRequest> ParseKeyRequest(std::string_view body, bool* has_mandatory_extensions);
Result<std::vector<std::string>> ParseKeyIds(std::string_view body);

// Responses, as the simulator writes them.
std::string StatusJson(const KmeStatus& status);
std::string KeyContainerJson(std::span<const QkdKey> keys);
std::string ErrorJson(std::string_view message);

}  // namespace qsapi::qkd::internal

#endif  // QSAPI_SRC_QKD_INTERNAL_ETSI014_JSON_H_
