// LoadRecipientKey: where `qsapi open --key NAME` gets its private key: the keystore
// (qsapi/hpke/keystore_recipient.h), kept alive for as long as the returned key lives.
#ifndef QSAPI_PROGRAMS_QSAPI_RECIPIENT_KEY_LOADER_H_
#define QSAPI_PROGRAMS_QSAPI_RECIPIENT_KEY_LOADER_H_

#include <memory>
#include <string_view>

#include "qsapi/hpke/keystore_recipient.h"
#include "qsapi/hpke/recipient_key.h"
#include "qsapi/keystore/keystore.h"
#include "qsapi/result.h"

namespace qsapi::cli {

using hpke::KeystoreHpkeKeyId;

// LoadRecipientKey returns the version of keystore key `name` that `header_key_id` names.
// kInvalidArgument when the id belongs to another key; kNotFound for no such key or version.
Result<std::unique_ptr<hpke::RecipientKey>> LoadRecipientKey(std::shared_ptr<keystore::Keystore> ks,
                                                             std::string_view name, ByteView header_key_id);

}  // namespace qsapi::cli

#endif  // QSAPI_PROGRAMS_QSAPI_RECIPIENT_KEY_LOADER_H_
