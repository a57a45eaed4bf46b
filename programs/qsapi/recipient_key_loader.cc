// PENDING (keystore, issue #5): LoadRecipientKey is replaced by a keystore lookup when the keystore
// lands. See recipient_key_loader.h.
#include "recipient_key_loader.h"

#include <string>

namespace qsapi::cli {

Result<std::unique_ptr<hpke::RecipientKey>> LoadRecipientKey(std::string_view name) {
  return Unavailable("cannot load key \"" + std::string(name) +
                     "\": the keystore is not available in this build (pending, issue #5); "
                     "private keys are only ever loaded from the keystore, never from a file");
}

}  // namespace qsapi::cli
