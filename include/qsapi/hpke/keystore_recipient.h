// qsapi/hpke/keystore_recipient.h: keystore KEM keys as HPKE recipients.
//
// A keystore KEM key seals under HPKE with the key id KeystoreHpkeKeyId(key id, version) = the
// keystore's 16-byte key id || the version (4 bytes, big-endian); that is what
// `qsapi key public NAME --format hpke` writes into the public-key file and what qsapid's
// /v1/seal/{name} uses. Opening reads the id from the message's header, checks that it belongs to
// the named key, and decapsulates with that version inside the keystore (the seed is unwrapped
// under the token's KEK; it never reaches a file), so messages sealed before a rotation still open.
#ifndef QSAPI_HPKE_KEYSTORE_RECIPIENT_H_
#define QSAPI_HPKE_KEYSTORE_RECIPIENT_H_

#include <cstdint>
#include <memory>
#include <string_view>

#include "qsapi/hpke/recipient_key.h"
#include "qsapi/keystore/keystore.h"
#include "qsapi/result.h"

namespace qsapi::hpke {

// KeystoreHpkeKeyId is the HPKE key id of version `version` of a keystore key.
Bytes KeystoreHpkeKeyId(const keystore::KeyId& id, std::uint32_t version);

// LoadKeystoreRecipient returns the version of keystore key `name` that `header_key_id` names.
// The returned key refers to `keystore`, which must outlive it. kInvalidArgument when the id
// belongs to another key, kFailedPrecondition for a key that is not a KEM key, kNotFound for no
// such key.
Result<std::unique_ptr<RecipientKey>> LoadKeystoreRecipient(keystore::Keystore& keystore, std::string_view name,
                                                            ByteView header_key_id);

}  // namespace qsapi::hpke

#endif  // QSAPI_HPKE_KEYSTORE_RECIPIENT_H_
