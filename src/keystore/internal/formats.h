// The internal halves of the keystore's names and formats (src/keystore/formats.cc): writing the
// header that ParseHeader reads, and reading the version states that VersionStateName writes.
#ifndef QSAPI_KEYSTORE_INTERNAL_FORMATS_H_
#define QSAPI_KEYSTORE_INTERNAL_FORMATS_H_

#include <cstdint>
#include <string_view>

#include "qsapi/keystore/keystore.h"
#include "qsapi/result.h"
#include "qsapi/secret.h"

namespace qsapi::keystore::internal {

// MakeHeader is the kHeaderSize-byte header of a ciphertext or signature made by key version
// (`id`, `version`): format, key id, version big-endian (qsapi/keystore/keystore.h).
Bytes MakeHeader(const KeyId& id, std::uint32_t version);

// ParseVersionState reads a VersionStateName back; kDataLoss for a stored state that is none.
Result<VersionState> ParseVersionState(std::string_view s);

}  // namespace qsapi::keystore::internal

#endif  // QSAPI_KEYSTORE_INTERNAL_FORMATS_H_
