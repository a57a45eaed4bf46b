// Reading secrets (private keys, PINs, passwords) from files and environment variables, straight
// into secret memory (not part of the public API).
#ifndef QSAPI_COMMON_INTERNAL_SECRET_FILE_H_
#define QSAPI_COMMON_INTERNAL_SECRET_FILE_H_

#include <filesystem>
#include <string>
#include <string_view>

#include "qsapi/result.h"
#include "qsapi/secret.h"

namespace qsapi::internal {

// ReadSecretFile reads a regular file of at most 1 MiB into secret memory, refusing one that group
// or others may read or write (PERMISSION_DENIED, naming the chmod to run). `what` names the file
// in errors ("private key file", "database password file"); no error holds any of its bytes.
// NOT_FOUND for a missing file.
Result<SecretBytes> ReadSecretFile(const std::filesystem::path& path, std::string_view what);

// ReadSecretLine reads a one-line secret (a PIN, a password) from `file` when it is not empty,
// otherwise from the environment variable `env`; the trailing CR/LF of a file is dropped.
// FAILED_PRECONDITION for an unset variable or an empty secret, INVALID_ARGUMENT when both sources
// are empty or the secret holds a NUL or a line break inside.
Result<SecretBytes> ReadSecretLine(const std::string& file, const std::string& env, std::string_view what);

}  // namespace qsapi::internal

#endif  // QSAPI_COMMON_INTERNAL_SECRET_FILE_H_
