// LoadRecipientKey: where `qsapi open --key NAME` gets its private key.
//
// This is the one function the keystore (PKCS#11, issue #5) replaces: it must return a RecipientKey
// whose Decapsulate runs with the key named NAME (its seed unwrapped under the HSM's KEK only for
// the operation), and whose key_id() is the id that key's public-key file carries. Until then it
// fails with kUnavailable and says so; private keys are never read from plain files.
#ifndef QSAPI_PROGRAMS_QSAPI_RECIPIENT_KEY_LOADER_H_
#define QSAPI_PROGRAMS_QSAPI_RECIPIENT_KEY_LOADER_H_

#include <memory>
#include <string_view>

#include "qsapi/hpke/recipient_key.h"
#include "qsapi/result.h"

namespace qsapi::cli {

Result<std::unique_ptr<hpke::RecipientKey>> LoadRecipientKey(std::string_view name);

}  // namespace qsapi::cli

#endif  // QSAPI_PROGRAMS_QSAPI_RECIPIENT_KEY_LOADER_H_
