// The source policy's names (qsapi/source_policy.h).
#include "qsapi/source_policy.h"

#include <string>

namespace qsapi {

std::string_view SourcePolicyName(SourcePolicy policy) noexcept {
  switch (policy) {
    case SourcePolicy::kOff: return "off";
    case SourcePolicy::kPrefer: return "prefer";
    case SourcePolicy::kRequire: return "require";
  }
  return "unknown";
}

Result<SourcePolicy> ParseSourcePolicy(std::string_view name) {
  if (name == "off") return SourcePolicy::kOff;
  if (name == "prefer") return SourcePolicy::kPrefer;
  if (name == "require") return SourcePolicy::kRequire;
  return InvalidArgument("unknown source policy \"" + std::string(name.substr(0, 32)) +
                         "\"; use off, prefer or require");
}

}  // namespace qsapi
