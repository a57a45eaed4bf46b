// The values of qsapi/session/peer_session.h: policy and abort names, PeerSession's accessors.
// The establishment is in establishment.cc, the channel in peer_channel.cc.
#include "qsapi/session/peer_session.h"

#include "common/internal/text.h"
#include "session/internal/exchange.h"

namespace qsapi::session {

std::vector<AeadSuite> AllAeadSuites() { return {AeadSuite::kAes256Gcm, AeadSuite::kXChaCha20Poly1305}; }

std::string_view AbortCodeName(AbortCode code) noexcept {
  switch (code) {
    case AbortCode::kPolicy: return "policy";
    case AbortCode::kQkdUnavailable: return "qkd-unavailable";
    case AbortCode::kQkdKeyMismatch: return "qkd-key-mismatch";
    case AbortCode::kConfirmFailed: return "confirmation-failed";
    case AbortCode::kReplayedKeyId: return "replayed-key-id";
    case AbortCode::kUnknownPeer: return "unknown-peer";
    case AbortCode::kMalformed: return "malformed";
    case AbortCode::kUnsupported: return "unsupported";
    case AbortCode::kInternal: return "internal";
    case AbortCode::kUnknownSession: return "unknown-session";
  }
  return "unknown";
}

std::string PeerSession::session_id_hex() const { return qsapi::internal::HexEncode(session_id_); }

bool PeerSession::uses(SourceId id) const noexcept { return internal::HasSource(sources_, id); }

std::string PeerSession::SourcesText() const { return internal::JoinSources(sources_); }

}  // namespace qsapi::session
