// Sealing and opening files and streams for `qsapi seal` / `qsapi open`: the file handling around
// the library's STREAM (qsapi/hpke/stream.h).
//
//   - Input: a file or "-" (standard input), read in chunks; any size.
//   - Output: a file or "-" (standard output). A file is written atomically: to a temporary file
//     created with O_EXCL (mode 0600) in the target's directory, fsync'ed, then renamed over the
//     target; on any failure, or on SIGINT / SIGTERM / SIGHUP, the temporary file is removed, so no
//     partial output (in particular no partial plaintext) is ever left under the target's name.
//     Standard output cannot be taken back: `open --out -` writes each chunk once it is
//     authenticated, and a failure later in the stream is reported by the error and exit status.
//   - Progress: a bar on standard error, only when standard error is a terminal.
//   - Memory: bounded by the chunk size (a few MiB at most), whatever the input size.
#ifndef QSAPI_PROGRAMS_QSAPI_SEALED_FILES_H_
#define QSAPI_PROGRAMS_QSAPI_SEALED_FILES_H_

#include <functional>
#include <memory>
#include <string>

#include "qsapi/hpke/container.h"
#include "qsapi/hpke/public_key_file.h"
#include "qsapi/hpke/recipient_key.h"
#include "qsapi/result.h"

namespace qsapi::cli {

// ReadPublicKeyFile reads and parses a public-key file (at most kMaxPublicKeyFileSize bytes).
Result<hpke::RecipientPublicKey> ReadPublicKeyFile(const std::string& path);

// SealFile seals `in` ("-" for standard input) to `recipient` in the STREAM format, writing `out`
// ("-" for standard output) atomically. options.progress is set by SealFile when `progress` is true
// and standard error is a terminal.
Status SealFile(const hpke::RecipientPublicKey& recipient, const std::string& in, const std::string& out,
                hpke::SealOptions options, bool progress = true);

// OpenFile opens the sealed message in `in` (either format) with `recipient`, writing the
// plaintext to `out` atomically.
Status OpenFile(const hpke::RecipientKey& recipient, const std::string& in, const std::string& out,
                hpke::OpenOptions options = {}, bool progress = true);

// OpenFileWith is OpenFile with the recipient chosen after the header is read: `load` gets the
// header's recipient key id (the keystore picks the key version from it).
using RecipientLoader = std::function<Result<std::unique_ptr<hpke::RecipientKey>>(ByteView key_id)>;
Status OpenFileWith(const RecipientLoader& load, const std::string& in, const std::string& out,
                    hpke::OpenOptions options = {}, bool progress = true);

}  // namespace qsapi::cli

#endif  // QSAPI_PROGRAMS_QSAPI_SEALED_FILES_H_
