// qsapi/source_policy.h: the one policy for an optional key-material source (a QRNG feeding the
// entropy pool, QKD or QRNG contributions to a peer session): off, prefer or require.
//  - off: the source is not used;
//  - prefer: it is used when it works; without it the operation goes on and says so (a degraded
//    health state, a session note), never silently;
//  - require: without it the operation fails with an error that says why.
// The value is the wire byte of the session protocol's Init message.
#ifndef QSAPI_SOURCE_POLICY_H_
#define QSAPI_SOURCE_POLICY_H_

#include <cstdint>
#include <string_view>

#include "qsapi/result.h"

namespace qsapi {

enum class SourcePolicy : std::uint8_t { kOff = 0, kPrefer = 1, kRequire = 2 };

// SourcePolicyName: "off", "prefer", "require".
std::string_view SourcePolicyName(SourcePolicy policy) noexcept;
// ParseSourcePolicy accepts those names; INVALID_ARGUMENT (quoting at most 32 bytes of the input)
// otherwise.
Result<SourcePolicy> ParseSourcePolicy(std::string_view name);

}  // namespace qsapi

#endif  // QSAPI_SOURCE_POLICY_H_
