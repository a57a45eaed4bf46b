// LoadRecipientKey: where `qsapi open --key NAME` gets its private key: the keystore.
//
// A keystore KEM key seals under HPKE with the key id KeystoreHpkeKeyId(key id, version) =
// the keystore's 16-byte key id || the version (4 bytes, big-endian), which is what
// `qsapi key public NAME --format hpke` writes into the public-key file. Opening reads that id
// from the message's header, checks that it belongs to NAME, and decapsulates with that version
// inside the keystore (the seed is unwrapped under the token's KEK; it never reaches a file).
#ifndef QSAPI_PROGRAMS_QSAPI_RECIPIENT_KEY_LOADER_H_
#define QSAPI_PROGRAMS_QSAPI_RECIPIENT_KEY_LOADER_H_

#include <memory>
#include <string_view>

#include "qsapi/hpke/recipient_key.h"
#include "qsapi/keystore/keystore.h"
#include "qsapi/result.h"

namespace qsapi::cli {

Bytes KeystoreHpkeKeyId(const keystore::KeyId& id, std::uint32_t version);

// LoadRecipientKey returns the version of keystore key `name` that `header_key_id` names.
// kInvalidArgument when the id belongs to another key; kNotFound for no such key or version.
Result<std::unique_ptr<hpke::RecipientKey>> LoadRecipientKey(std::shared_ptr<keystore::Keystore> keystore,
                                                             std::string_view name, ByteView header_key_id);

}  // namespace qsapi::cli

#endif  // QSAPI_PROGRAMS_QSAPI_RECIPIENT_KEY_LOADER_H_
