// The establishment's message exchange and shared helpers (session/internal/exchange.h).
#include "session/internal/exchange.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "qsapi/log.h"
#include "session/internal/establishment_messages.h"

namespace qsapi::session::internal {

bool HasSource(std::span<const SourceId> sources, SourceId id) {
  return std::find(sources.begin(), sources.end(), id) != sources.end();
}

std::string JoinSources(std::span<const SourceId> sources) {
  std::string out;
  for (SourceId id : sources) out += (out.empty() ? "" : "+") + std::string(SourceIdName(id));
  return out;
}

std::string JoinKeyIds(std::span<const std::string> ids) {
  std::string out;
  for (const auto& id : ids) out += (out.empty() ? "" : ", ") + id;
  return out;
}

ErrorCode CodeForAbort(AbortCode code) {
  switch (code) {
    case AbortCode::kPolicy: return ErrorCode::kFailedPrecondition;
    case AbortCode::kQkdUnavailable: return ErrorCode::kUnavailable;
    case AbortCode::kQkdKeyMismatch: return ErrorCode::kDataLoss;
    case AbortCode::kConfirmFailed: return ErrorCode::kAuthenticationFailed;
    case AbortCode::kReplayedKeyId:
    case AbortCode::kUnknownPeer: return ErrorCode::kPermissionDenied;
    case AbortCode::kMalformed: return ErrorCode::kInvalidArgument;
    case AbortCode::kUnsupported: return ErrorCode::kUnimplemented;
    case AbortCode::kInternal: return ErrorCode::kInternal;
    case AbortCode::kUnknownSession: return ErrorCode::kNotFound;
  }
  return ErrorCode::kInternal;
}

AbortCode AbortForError(const Error& e) {
  switch (e.code()) {
    case ErrorCode::kUnimplemented: return AbortCode::kUnsupported;
    case ErrorCode::kInvalidArgument: return AbortCode::kMalformed;
    default: return AbortCode::kInternal;
  }
}

Error PeerAbortError(std::string_view who, std::string_view verb, AbortCode code, std::string_view reason) {
  return {CodeForAbort(code), std::string(who) + ": the peer " + std::string(verb) + " (" +
                                  std::string(AbortCodeName(code)) + "): " + std::string(reason)};
}

Result<SecretBytes> JoinQkdKeys(std::span<const SecretBytes> keys) {
  std::size_t total = 0;
  for (const auto& k : keys) total += k.size();
  if (total < kQkdKeyMinSize || total > kQkdKeyMaxSize) {
    return FailedPrecondition("the QKD keys total " + std::to_string(total) + " bytes; the key schedule takes " +
                              std::to_string(kQkdKeyMinSize) + ".." + std::to_string(kQkdKeyMaxSize) +
                              " (set key sizes and keys per session to match)");
  }
  SecretBytes out(total);
  std::size_t at = 0;
  for (const auto& k : keys) {
    if (k.size() > 0) std::memcpy(out.data() + at, k.data(), k.size());
    at += k.size();
  }
  return out;
}

std::chrono::milliseconds Exchange::Remaining() const {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now());
  return std::max(left, std::chrono::milliseconds(1));
}

Status Exchange::Send(const Bytes& message) { return link_.Send(message, Remaining()); }

Result<Bytes> Exchange::Receive(std::uint8_t type, std::string_view what, std::uint8_t also) {
  auto m = link_.Receive(Remaining());
  if (!m.ok()) {
    const Error& e = m.error();
    if (e.code() == ErrorCode::kDeadlineExceeded) {
      return DeadlineExceeded("session with " + peer_ + ": no " + std::string(what) + " message before the deadline");
    }
    if (e.code() == ErrorCode::kUnavailable) {
      return Unavailable("session with " + peer_ + ": the peer closed the link while we waited for its " +
                         std::string(what) + " message (it may have refused us; see its log)");
    }
    return e;
  }
  if (MessageType(*m) == kTypeAbort) {
    peer_aborted_ = true;
    auto abort = ParseAbort(*m);
    link_.Close();
    if (!abort.ok()) return Internal("session with " + peer_ + ": " + abort.error().message());
    return PeerAbortError("session with " + peer_, "aborted", abort->code, abort->reason);
  }
  if (MessageType(*m) != type && (also == 0 || MessageType(*m) != also)) {
    return Fail(AbortCode::kMalformed, InvalidArgument("session with " + peer_ + ": expected a " + std::string(what) +
                                                       " message, got type " + std::to_string(MessageType(*m))));
  }
  return m;
}

Error Exchange::Fail(Refusal refusal) {
  if (link_.is_open()) {
    (void)link_.Send(EncodeAbort(AbortMessage{.code = refusal.code, .reason = refusal.error.message()}),
                     std::chrono::milliseconds(1000));
    link_.Close();
  }
  Log(LogLevel::kWarning, kLogComponent, refusal.error.message());
  return std::move(refusal.error);
}

}  // namespace qsapi::session::internal
