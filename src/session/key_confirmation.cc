// Key derivation and confirmation shared by both roles (session/internal/key_confirmation.h).
#include "session/internal/key_confirmation.h"

#include <algorithm>

#include "qsapi/crypto/kdf.h"

namespace qsapi::session::internal {

Result<DerivedKeys> DeriveKeys(PeerLink& link, const Transcript& t) {
  QSAPI_ASSIGN_OR_RETURN(SecretBytes exporter, link.ExportKeyingMaterial(kExporterLabel, t.session_id, kExporterSize));
  Bytes transcript;
  transcript.reserve(t.init_message.size() + t.accept_message.size());
  transcript.insert(transcript.end(), t.init_message.begin(), t.init_message.end());
  transcript.insert(transcript.end(), t.accept_message.begin(), t.accept_message.end());
  QSAPI_ASSIGN_OR_RETURN(Bytes context_hash, crypto::Hash(crypto::HashAlgorithm::kSha384, transcript));
  const KeyScheduleInput in{
      .session_id = t.session_id,
      .suite = t.suite,
      .tls_exporter = exporter.view(),
      .qkd_key = HasSource(t.accepted, SourceId::kQkd) ? t.qkd_key : ByteView(),
      .qrng_initiator = HasSource(t.accepted, SourceId::kQrngInitiator) ? t.initiator_random : ByteView(),
      .qrng_responder = HasSource(t.accepted, SourceId::kQrngResponder) ? t.responder_random : ByteView(),
      .context_hash = context_hash,
  };
  QSAPI_ASSIGN_OR_RETURN(SessionKeys keys, DeriveSessionKeys(in));
  if (!std::equal(keys.sources.begin(), keys.sources.end(), t.accepted.begin(), t.accepted.end())) {
    return Internal("session: the key schedule used " + JoinSources(keys.sources) + ", not the accepted " +
                    JoinSources(t.accepted));
  }
  return DerivedKeys{.keys = std::move(keys), .context_hash = std::move(context_hash)};
}

Result<Bytes> EncodeOwnConfirm(const DerivedKeys& derived, SessionRole own_role) {
  QSAPI_ASSIGN_OR_RETURN(Bytes mac, own_role == SessionRole::kInitiator
                                        ? ConfirmationMac(derived.keys.confirm_key_initiator, derived.context_hash)
                                        : ConfirmationMac(derived.keys.confirm_key_responder, derived.context_hash));
  return EncodeConfirm(ConfirmMessage{.mac = std::move(mac)});
}

std::optional<Refusal> CheckPeerConfirm(const DerivedKeys& derived, SessionRole own_role, const Bytes& confirm_message,
                                        const std::string& peer, std::span<const std::string> qkd_key_ids) {
  auto confirm = ParseConfirm(confirm_message);
  if (!confirm.ok()) return Refusal{AbortForError(confirm.error()), confirm.error()};
  const Status verified =
      own_role == SessionRole::kResponder
          ? VerifyConfirmationMac(derived.keys.confirm_key_initiator, derived.context_hash, confirm->mac)
          : VerifyConfirmationMac(derived.keys.confirm_key_responder, derived.context_hash, confirm->mac);
  if (verified.ok()) return std::nullopt;
  if (!qkd_key_ids.empty()) {
    return Refusal{AbortCode::kQkdKeyMismatch,
                   DataLoss("session with " + peer +
                            ": key confirmation failed: the QKD keys differ between the two "
                            "KMEs (key_IDs " +
                            JoinKeyIds(qkd_key_ids) + ")")};
  }
  return Refusal{AbortCode::kConfirmFailed,
                 Error(ErrorCode::kAuthenticationFailed, "session with " + peer + ": key confirmation failed")};
}

}  // namespace qsapi::session::internal
