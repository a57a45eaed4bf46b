// Fresh QKD keys at rotation, both roles' steps (session/internal/fresh_keys.h).
#include "session/internal/fresh_keys.h"

#include <algorithm>

#include "qsapi/qkd/key_supply.h"

namespace qsapi::session::internal {

namespace {

Bytes LabelledAad(std::string_view label, ByteView tail) {
  Bytes aad(label.begin(), label.end());
  aad.insert(aad.end(), tail.begin(), tail.end());
  return aad;
}

}  // namespace

Bytes RekeyConfirmAad(ByteView offer_message) { return LabelledAad(kRekeyConfirmLabel, offer_message); }

Bytes ReestablishConfirmAad(ByteView context_hash) { return LabelledAad(kReestablishConfirmLabel, context_hash); }

Result<FreshKeyProposal> FreshKeyProposal::Prepare(ByteView session_id, std::uint32_t min_epoch,
                                                   const FreshKeySupply& supply, Clock::time_point now) {
  if (supply.master == nullptr || session_id.size() != kSessionIdSize) {
    return FailedPrecondition("this side has no QKD master key supply for fresh keys");
  }
  auto reserved = supply.master->Reserve(supply.keys_per_epoch);
  if (!reserved.ok()) return Unavailable("our KME could not supply keys: " + reserved.error().ToString());
  QSAPI_ASSIGN_OR_RETURN(SecretBytes material, JoinQkdKeys(reserved->keys));
  FreshKeyProposal p;
  std::copy(session_id.begin(), session_id.end(), p.session_id_.begin());
  RekeyOfferMessage offer{.session_id = p.session_id_, .min_epoch = min_epoch, .key_ids = reserved->key_ids};
  p.offer_ = EncodeRekeyOffer(offer);
  p.material_ = std::move(material);
  p.key_ids_ = std::move(reserved->key_ids);
  p.deadline_ = now + supply.timeout;
  return p;
}

bool FreshKeyProposal::Answers(const SessionId& id) const noexcept { return id == session_id_; }

Status FreshKeyProposal::Complete(SessionChannel& channel, const RekeyDoneMessage& done, const std::string& who) const {
  Status st = channel.CompleteFreshKey(done.epoch, material_.view(), done.confirm_envelope, RekeyConfirmAad(offer_));
  if (st.ok()) return st;
  if (st.error() == AuthenticationFailed()) {
    return DataLoss(who +
                    ": fresh-key confirmation failed: the QKD keys differ between the two "
                    "KMEs (key_IDs " +
                    JoinKeyIds(key_ids_) + ")");
  }
  return Error(st.error().code(), who + ": " + st.error().message());
}

std::variant<OfferedKeys, Refusal> FetchOfferedKeys(const SessionId& session_id, const FreshKeySupply* supply,
                                                    ByteView offer_message) {
  auto offer = ParseRekeyOffer(offer_message);
  if (!offer.ok()) return Refusal{AbortCode::kMalformed, offer.error()};
  if (offer->session_id != session_id) {
    return Refusal{AbortCode::kMalformed, InvalidArgument("the proposal names another session")};
  }
  if (supply == nullptr || supply->slave == nullptr) {
    return Refusal{AbortCode::kPolicy,
                   FailedPrecondition("this side has no QKD link for this session (or qkd_at_rotation is off)")};
  }
  if (offer->key_ids.size() != supply->keys_per_epoch) {
    return Refusal{AbortCode::kPolicy,
                   FailedPrecondition(std::to_string(offer->key_ids.size()) + " key_IDs proposed, " +
                                      std::to_string(supply->keys_per_epoch) + " expected")};
  }
  if (supply->replay_guard != nullptr) {
    if (auto st = supply->replay_guard->CheckAndRecord(offer->key_ids); !st.ok()) {
      return Refusal{AbortCode::kReplayedKeyId, st.error()};
    }
  }
  auto fetched = supply->slave->Fetch(offer->key_ids);
  if (!fetched.ok()) {
    return Refusal{AbortCode::kQkdUnavailable,
                   Unavailable("the responder's KME could not deliver the keys: " + fetched.error().ToString())};
  }
  auto joined = JoinQkdKeys(*fetched);
  if (!joined.ok()) return Refusal{AbortCode::kPolicy, joined.error()};
  return OfferedKeys{.offer = std::move(offer).value(), .material = std::move(joined).value()};
}

Result<std::variant<Bytes, Refusal>> BindOfferedKeys(SessionChannel& channel, const OfferedKeys& keys,
                                                     ByteView offer_message) {
  auto epoch = channel.BindFreshKey(keys.offer.min_epoch, keys.material.view());
  if (!epoch.ok()) {
    const AbortCode code =
        epoch.error().code() == ErrorCode::kFailedPrecondition ? AbortCode::kPolicy : AbortCode::kInternal;
    return std::variant<Bytes, Refusal>(Refusal{code, epoch.error()});
  }
  auto confirm = channel.Seal({}, RekeyConfirmAad(offer_message));
  if (!confirm.ok()) return Internal("cannot seal the confirmation: " + confirm.error().message());
  RekeyDoneMessage done{.session_id = keys.offer.session_id, .epoch = *epoch, .confirm_envelope = std::move(*confirm)};
  return std::variant<Bytes, Refusal>(EncodeRekeyDone(done));
}

}  // namespace qsapi::session::internal
