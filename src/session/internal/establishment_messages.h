// Internal to the session part: the binary messages of session establishment (docs/PROTOCOL.md,
// "Session establishment"), their encoders and strict parsers. Fuzzed by
// fuzz/session_handshake_fuzzer.cc.
//
// Every parser checks the exact length, the type and version bytes, every enumerated value, the
// order and content of source lists and the form of every key_ID, and reports the first problem
// as INVALID_ARGUMENT naming the message and the field (never quoting more than a key_ID, which is
// not secret).
#ifndef QSAPI_SRC_SESSION_INTERNAL_ESTABLISHMENT_MESSAGES_H_
#define QSAPI_SRC_SESSION_INTERNAL_ESTABLISHMENT_MESSAGES_H_

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "qsapi/result.h"
#include "qsapi/secret.h"
#include "qsapi/session/key_schedule.h"
#include "qsapi/session/peer_session.h"

namespace qsapi::session::internal {

inline constexpr std::uint8_t kProtocolVersion = 1;
inline constexpr std::uint8_t kTypeInit = 0x01;
inline constexpr std::uint8_t kTypeAccept = 0x02;
inline constexpr std::uint8_t kTypeConfirm = 0x03;
// Reestablish: an Init for an existing session (its id), with the lowest epoch the new keys may
// enter; the responder answers Accept, Confirm and then RekeyDone (docs/PROTOCOL.md).
inline constexpr std::uint8_t kTypeReestablish = 0x04;
inline constexpr std::uint8_t kTypeAbort = 0x7f;
// Fresh QKD keys at rotation, on an established session's link (docs/PROTOCOL.md).
inline constexpr std::uint8_t kTypeRekeyOffer = 0x10;
inline constexpr std::uint8_t kTypeRekeyDone = 0x11;
inline constexpr std::uint8_t kTypeRekeyRefuse = 0x12;
inline constexpr std::size_t kRandomSize = kQrngContributionSize;  // 32
inline constexpr std::size_t kKeyIdSize = 36;                      // UUID text, 8-4-4-4-12
inline constexpr std::size_t kMaxKeyIds = 4;
inline constexpr std::size_t kMaxAbortReason = 512;

using SessionId = std::array<std::uint8_t, kSessionIdSize>;

struct InitMessage {
  SessionId session_id{};
  AeadSuite suite = AeadSuite::kAes256Gcm;
  SourcePolicy qkd_policy = SourcePolicy::kOff;
  SourcePolicy qrng_policy = SourcePolicy::kOff;
  std::array<std::uint8_t, kRandomSize> random{};
  std::vector<SourceId> sources;     // offered: tls-exporter [, qkd] [, qrng-initiator]
  std::vector<std::string> key_ids;  // present iff qkd is offered
  bool reestablish = false;          // type 0x04: re-establishes session_id ...
  std::uint32_t min_epoch = 0;       // ... into an epoch >= min_epoch (>= 1)
};

struct AcceptMessage {
  SessionId session_id{};
  std::array<std::uint8_t, kRandomSize> random{};
  std::vector<SourceId> sources;  // accepted: the session's sources, in key-schedule order
};

struct ConfirmMessage {
  Bytes mac;  // kConfirmMacSize bytes
};

struct AbortMessage {
  AbortCode code = AbortCode::kInternal;
  std::string reason;  // printable ASCII, at most kMaxAbortReason bytes
};

// RekeyOffer: the session initiator proposes fresh QKD keys (its KME reserved them) for an epoch
// at or after min_epoch.
struct RekeyOfferMessage {
  SessionId session_id{};
  std::uint32_t min_epoch = 0;
  std::vector<std::string> key_ids;  // 1..kMaxKeyIds
};

// RekeyDone: the responder fetched the keys, entered `epoch` with them mixed in and sealed an
// empty envelope of that epoch (associated data: kRekeyConfirmLabel || the RekeyOffer message).
struct RekeyDoneMessage {
  SessionId session_id{};
  std::uint32_t epoch = 0;
  Bytes confirm_envelope;  // exactly kRekeyConfirmEnvelopeSize bytes
};
inline constexpr std::size_t kRekeyConfirmEnvelopeSize = 37 + 16;  // an envelope header and tag, no payload
inline constexpr std::string_view kRekeyConfirmLabel = "qsapi session v1 rekey confirm";
// After a Reestablish, the confirmation's associated data is this label || the new context hash.
inline constexpr std::string_view kReestablishConfirmLabel = "qsapi session v1 reestablish confirm";

// RekeyRefuse: the responder bound nothing; the session goes on with the ratchet alone.
struct RekeyRefuseMessage {
  SessionId session_id{};
  AbortCode code = AbortCode::kInternal;
  std::string reason;  // printable ASCII, at most kMaxAbortReason bytes
};

Bytes EncodeInit(const InitMessage& m);
Bytes EncodeAccept(const AcceptMessage& m);
Bytes EncodeConfirm(const ConfirmMessage& m);
// EncodeAbort truncates the reason to kMaxAbortReason and replaces unprintable characters.
Bytes EncodeAbort(const AbortMessage& m);

// MessageType returns the type byte of a message (0 for an empty one).
std::uint8_t MessageType(ByteView message) noexcept;

// ParseInit parses an Init (0x01) or a Reestablish (0x04) message.
Result<InitMessage> ParseInit(ByteView data);
Result<AcceptMessage> ParseAccept(ByteView data);
Result<ConfirmMessage> ParseConfirm(ByteView data);
Result<AbortMessage> ParseAbort(ByteView data);

Bytes EncodeRekeyOffer(const RekeyOfferMessage& m);
Bytes EncodeRekeyDone(const RekeyDoneMessage& m);
// EncodeRekeyRefuse truncates and cleans the reason like EncodeAbort.
Bytes EncodeRekeyRefuse(const RekeyRefuseMessage& m);
Result<RekeyOfferMessage> ParseRekeyOffer(ByteView data);
Result<RekeyDoneMessage> ParseRekeyDone(ByteView data);
Result<RekeyRefuseMessage> ParseRekeyRefuse(ByteView data);

// ParseSourceList parses n (1) || ids (n) at the start of `data`, consuming it; `what` names the
// message in errors. The list must start with tls-exporter, be strictly increasing and contain
// only ids in `allowed`.
Result<std::vector<SourceId>> ParseSourceList(ByteView& data, std::string_view what,
                                              std::initializer_list<SourceId> allowed);

}  // namespace qsapi::session::internal

#endif  // QSAPI_SRC_SESSION_INTERNAL_ESTABLISHMENT_MESSAGES_H_
