// qsapi/hpke/container.h: the sealed-message container (docs/PROTOCOL.md, "Sealed messages").
//
// A sealed message is HPKE's output (enc, then ciphertexts) inside a small versioned header that
// names the suite, the mode, the recipient key id and, in PSK mode, the PSK id:
//
//   header = "QSHP" | version (1) | format (1) | kem_id (2) | kdf_id (2) | aead_id (2) | mode (1)
//            | key_id_len (1) | key_id | psk_id_len (1) | psk_id | chunk_size (4) | enc_len (2) | enc
//
// followed by either one HPKE ciphertext (format kSingle) or a STREAM of chunks (format kStream,
// stream.h). Integers are big-endian. The header up to enc_len is HPKE's `info` (so the suite,
// mode, key id and framing are bound into the key schedule), and SHA-256(header) is bound into
// the associated data of every ciphertext. Every field is bounded; a parser never allocates more
// than kMaxHeaderSize bytes for a header.
//
// SealMessage / OpenMessage are the in-memory, single-ciphertext form for payloads up to
// kMaxSingleShotSize. Use stream.h for anything larger or of unknown size.
#ifndef QSAPI_HPKE_CONTAINER_H_
#define QSAPI_HPKE_CONTAINER_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>

#include "qsapi/crypto/kem.h"
#include "qsapi/hpke/hpke.h"
#include "qsapi/result.h"
#include "qsapi/secret.h"

namespace qsapi::hpke {

inline constexpr std::array<std::uint8_t, 4> kContainerMagic = {'Q', 'S', 'H', 'P'};
inline constexpr std::uint8_t kContainerVersion = 1;

enum class ContainerFormat : std::uint8_t {
  kSingle = 0x01,  // one HPKE ciphertext
  kStream = 0x02,  // a STREAM of chunks
};

// Bounds.
inline constexpr std::uint32_t kMinChunkSize = 16;
inline constexpr std::uint32_t kMaxChunkSize = 1U << 20;                  // 1 MiB of plaintext per chunk
inline constexpr std::uint32_t kDefaultChunkSize = 1U << 16;              // 64 KiB
inline constexpr std::size_t kMaxSingleShotSize = std::size_t{64} << 20;  // 64 MiB
inline constexpr std::size_t kMaxEncSize = 1665;                          // MLKEM1024-P384, the largest
inline constexpr std::size_t kMaxHeaderSize = 4 + 1 + 1 + 6 + 1 + 1 + 64 + 1 + 255 + 4 + 2 + kMaxEncSize;

// ContainerHeader is a parsed (or to-be-written) header.
struct ContainerHeader {
  ContainerFormat format = ContainerFormat::kSingle;
  Suite suite = kDefaultSuite;
  Mode mode = Mode::kBase;
  Bytes key_id;                  // 1..kMaxKeyIdSize bytes
  Bytes psk_id;                  // empty in base mode; 1..kMaxPskIdSize bytes in PSK mode
  std::uint32_t chunk_size = 0;  // kStream: kMinChunkSize..kMaxChunkSize; kSingle: 0
  Bytes enc;                     // Nenc bytes of the suite's KEM
};

// SerializeHeader writes `header`; kInvalidArgument when a field is out of bounds.
Result<Bytes> SerializeHeader(const ContainerHeader& header);

// ParsedHeader is a header and the number of bytes it took.
struct ParsedHeader {
  ContainerHeader header;
  std::size_t size = 0;
};

// ParseHeader reads a header from the start of `input`. kInvalidArgument with a message that says
// what is wrong (not a sealed message, unsupported version, unknown suite, a field out of bounds,
// truncated). It checks structure only; nothing is authenticated until a ciphertext opens.
Result<ParsedHeader> ParseHeader(ByteView input);

// HeaderInfo returns the HPKE info of a header: its encoding up to (not including) enc_len.
Result<Bytes> HeaderInfo(const ContainerHeader& header);

// SealOptions: the suite, the STREAM chunk size, an optional PSK (mode_psk), an optional
// associated data (single-shot format only), and a progress callback (plaintext bytes so far).
struct SealOptions {
  Suite suite = kDefaultSuite;
  std::uint32_t chunk_size = kDefaultChunkSize;
  const Psk* psk = nullptr;
  ByteView aad;
  std::function<void(std::uint64_t)> progress;
};

// OpenOptions: the PSK when the message was sealed in PSK mode (its id must match the header's),
// the associated data it was sealed with, and a progress callback.
struct OpenOptions {
  const Psk* psk = nullptr;
  ByteView aad;
  std::function<void(std::uint64_t)> progress;
};

// SealMessage seals `plaintext` (at most kMaxSingleShotSize bytes) to `recipient` in the
// single-ciphertext format, naming the recipient key by `key_id`. kInvalidArgument for an
// export-only suite, a key of another KEM, or bad sizes.
Result<Bytes> SealMessage(const crypto::KemPublicKey& recipient, ByteView key_id, ByteView plaintext,
                          const SealOptions& options = {});

// OpenMessage opens a single-ciphertext container. A header that does not parse is
// kInvalidArgument; a header for another key is kFailedPrecondition (the message names both key
// ids); a missing or wrong PSK id is kFailedPrecondition; everything else that fails, including
// every tampered byte after the header's structure, is AuthenticationFailed(), with no plaintext.
Result<Bytes> OpenMessage(ByteView container, const RecipientKey& recipient, const OpenOptions& options = {});

}  // namespace qsapi::hpke

#endif  // QSAPI_HPKE_CONTAINER_H_
