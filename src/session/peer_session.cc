// Session establishment (see qsapi/session/peer_session.h and docs/PROTOCOL.md, "Session
// establishment"): the initiator's and the responder's state machines over a PeerLink.
#include "qsapi/session/peer_session.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <utility>

#include "common/internal/text.h"
#include "qsapi/crypto/kdf.h"
#include "qsapi/crypto/random.h"
#include "qsapi/entropy/pool.h"
#include "qsapi/log.h"
#include "qsapi/qkd/key_supply.h"
#include "session/internal/establishment_messages.h"

namespace qsapi::session {

using Clock = std::chrono::steady_clock;
using namespace internal;  // NOLINT(google-build-using-namespace): the message types of this file

// SessionBuilder fills a PeerSession's private fields.
struct SessionBuilder {
  static PeerSession Build(SessionRole role, const SessionId& id, AeadSuite suite, std::vector<SourceId> sources,
                           std::vector<std::string> notes, std::vector<std::string> key_ids, SessionKeys keys,
                           std::unique_ptr<PeerLink> link) {
    PeerSession s;
    s.session_id_.assign(id.begin(), id.end());
    s.role_ = role;
    s.suite_ = suite;
    s.sources_ = std::move(sources);
    s.notes_ = std::move(notes);
    s.qkd_key_ids_ = std::move(key_ids);
    s.link_info_ = link->info();
    s.established_at_ = std::chrono::system_clock::now();
    s.keys_ = std::move(keys);
    s.link_ = std::move(link);
    return s;
  }
};

namespace {

constexpr std::string_view kLog = "session";

bool Has(const std::vector<SourceId>& v, SourceId id) { return std::find(v.begin(), v.end(), id) != v.end(); }

std::string SourcesText(const std::vector<SourceId>& v) {
  std::string out;
  for (SourceId id : v) out += (out.empty() ? "" : "+") + std::string(SourceIdName(id));
  return out;
}

std::chrono::milliseconds Remaining(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return std::max(left, std::chrono::milliseconds(1));
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

// Exchange runs one side's messages over a link with one deadline and turns every failure into
// an Error (after telling the peer with an Abort when the link still works).
class Exchange {
 public:
  Exchange(PeerLink& link, std::string peer, Clock::time_point deadline)
      : link_(link), peer_(std::move(peer)), deadline_(deadline) {}

  Status Send(const Bytes& message) { return link_.Send(message, Remaining(deadline_)); }

  // Receive returns the next message of type `type`; an Abort from the peer becomes its error.
  Result<Bytes> Receive(std::uint8_t type, std::string_view what) {
    auto m = link_.Receive(Remaining(deadline_));
    if (!m.ok()) {
      const Error& e = m.error();
      if (e.code() == ErrorCode::kDeadlineExceeded) {
        return Error(ErrorCode::kDeadlineExceeded,
                     "session with " + peer_ + ": no " + std::string(what) + " message before the deadline");
      }
      if (e.code() == ErrorCode::kUnavailable) {
        return Unavailable("session with " + peer_ + ": the peer closed the link while we waited for its " +
                           std::string(what) + " message (it may have refused us; see its log)");
      }
      return e;
    }
    if (MessageType(*m) == kTypeAbort) {
      auto abort = ParseAbort(*m);
      link_.Close();
      if (!abort.ok()) return Error(ErrorCode::kInternal, "session with " + peer_ + ": " + abort.error().message());
      return Error(CodeForAbort(abort->code), "session with " + peer_ + ": the peer aborted (" +
                                                  std::string(AbortCodeName(abort->code)) + "): " + abort->reason);
    }
    if (MessageType(*m) != type) {
      return Fail(AbortCode::kMalformed,
                  InvalidArgument("session with " + peer_ + ": expected a " + std::string(what) +
                                  " message, got type " + std::to_string(MessageType(*m))));
    }
    return m;
  }

  // Fail sends an Abort with `code` and the error's message (best effort), closes the link and
  // returns the error.
  Error Fail(AbortCode code, Error error) {
    if (link_.is_open()) {
      (void)link_.Send(EncodeAbort(AbortMessage{.code = code, .reason = error.message()}),
                       std::chrono::milliseconds(1000));
      link_.Close();
    }
    Log(LogLevel::kWarning, kLog, error.message());
    return error;
  }

  [[nodiscard]] const std::string& peer() const { return peer_; }

 private:
  PeerLink& link_;
  std::string peer_;
  Clock::time_point deadline_;
};

struct Contribution {
  std::array<std::uint8_t, kRandomSize> bytes{};
  bool qrng = false;
  std::string note;  // set when qrng = prefer fell back to the OS CSPRNG
};

Result<Contribution> DrawContribution(SourcePolicy policy, entropy::EntropyPool* pool, const std::string& peer,
                                      std::string_view side) {
  Contribution c;
  if (policy != SourcePolicy::kOff) {
    std::string reason;
    if (pool == nullptr) {
      reason = "no entropy pool with a QRNG source is configured at the " + std::string(side);
    } else {
      auto d = pool->Draw(kRandomSize);
      if (d.ok() && !d->qrng_sources.empty()) {
        std::memcpy(c.bytes.data(), d->bytes.data(), kRandomSize);
        c.qrng = true;
        return c;
      }
      reason = d.ok() ? "no healthy QRNG source fed the " + std::string(side) + "'s entropy pool"
                      : "the " + std::string(side) + "'s entropy pool failed: " + d.error().message();
    }
    if (policy == SourcePolicy::kRequire) {
      return FailedPrecondition("session with " + peer + ": qrng = require, but " + reason);
    }
    c.note = "qrng = prefer, but " + reason + "; the " + std::string(side) + "'s random came from the OS CSPRNG";
  }
  QSAPI_RETURN_IF_ERROR(crypto::RandomFill(c.bytes));
  return c;
}

Result<Bytes> ContextHash(const Bytes& init, const Bytes& accept) {
  Bytes transcript;
  transcript.reserve(init.size() + accept.size());
  transcript.insert(transcript.end(), init.begin(), init.end());
  transcript.insert(transcript.end(), accept.begin(), accept.end());
  return crypto::Hash(crypto::HashAlgorithm::kSha384, transcript);
}

// Concat joins QKD keys into one secret buffer, checking the key schedule's size range.
Result<SecretBytes> Concat(const std::vector<SecretBytes>& keys) {
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

std::string JoinIds(const std::vector<std::string>& ids) {
  std::string out;
  for (const auto& id : ids) out += (out.empty() ? "" : ", ") + id;
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

std::string_view SourcePolicyName(SourcePolicy policy) noexcept {
  switch (policy) {
    case SourcePolicy::kOff: return "off";
    case SourcePolicy::kPrefer: return "prefer";
    case SourcePolicy::kRequire: return "require";
  }
  return "unknown";
}

Result<SourcePolicy> ParseSourcePolicy(std::string_view name) {
  if (name == "off") return SourcePolicy::kOff;
  if (name == "prefer") return SourcePolicy::kPrefer;
  if (name == "require") return SourcePolicy::kRequire;
  return InvalidArgument("unknown source policy \"" + std::string(name.substr(0, 32)) + "\"; use off, prefer or require");
}

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
  }
  return "unknown";
}

Status KeyIdReplayGuard::CheckAndRecord(std::span<const std::string> key_ids) {
  std::vector<std::string> folded;
  folded.reserve(key_ids.size());
  for (const auto& id : key_ids) {
    std::string f = id;
    for (char& c : f) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    folded.push_back(std::move(f));
  }
  std::lock_guard lock(mu_);
  for (std::size_t i = 0; i < folded.size(); ++i) {
    const bool dup_here = std::find(folded.begin(), folded.begin() + static_cast<std::ptrdiff_t>(i), folded[i]) !=
                          folded.begin() + static_cast<std::ptrdiff_t>(i);
    if (seen_.contains(folded[i]) || dup_here) {
      return Error(ErrorCode::kPermissionDenied,
                   "QKD key_ID " + folded[i] + " was already used in an earlier session (replay refused)");
    }
  }
  for (auto& f : folded) {
    seen_.insert(f);
    order_.push_back(std::move(f));
    if (order_.size() > capacity_) {
      seen_.erase(order_.front());
      order_.pop_front();
    }
  }
  return OkStatus();
}

std::size_t KeyIdReplayGuard::size() const {
  std::lock_guard lock(mu_);
  return order_.size();
}

std::string PeerSession::session_id_hex() const { return qsapi::internal::HexEncode(session_id_); }

bool PeerSession::uses(SourceId id) const noexcept { return Has(sources_, id); }

std::string PeerSession::SourcesText() const { return session::SourcesText(sources_); }

bool PeerSession::ReestablishDue(std::chrono::seconds interval) const {
  return std::chrono::system_clock::now() - established_at_ >= interval;
}

// ---------------------------------------------------------------------------------------------

Result<std::unique_ptr<PeerChannel>> PeerChannel::Create(PeerSession session, ChannelConfig config) {
  if (session.link() == nullptr || !session.link()->is_open()) {
    return FailedPrecondition("peer channel: the session has no open link");
  }
  if (session.keys().epoch_secret.empty()) return FailedPrecondition("peer channel: the session's keys were taken");
  SessionKeys keys = session.TakeKeys();
  QSAPI_ASSIGN_OR_RETURN(SessionChannel channel,
                         SessionChannel::New(session.role() == SessionRole::kInitiator, session.suite(),
                                             session.session_id(), std::move(keys.epoch_secret), std::move(config)));
  return std::unique_ptr<PeerChannel>(new PeerChannel(std::move(session), std::move(channel)));
}

Status PeerChannel::Send(ByteView plaintext, ByteView aad) {
  Bytes envelope;
  {
    std::lock_guard lock(mu_);
    QSAPI_RETURN_IF_ERROR(channel_.SealTo(plaintext, aad, envelope));
  }
  return session_.link()->Send(envelope);
}

Result<Bytes> PeerChannel::Receive(std::chrono::milliseconds timeout, ByteView aad) {
  QSAPI_ASSIGN_OR_RETURN(Bytes envelope, session_.link()->Receive(timeout));
  std::lock_guard lock(mu_);
  return channel_.Open(envelope, aad);
}

Status PeerChannel::Rotate() {
  std::lock_guard lock(mu_);
  return channel_.Rotate();
}

ChannelStats PeerChannel::stats() const {
  std::lock_guard lock(mu_);
  return channel_.stats();
}

void PeerChannel::Close() {
  {
    std::lock_guard lock(mu_);
    channel_.Close();
  }
  if (session_.link() != nullptr) session_.link()->Close();
}

Result<std::unique_ptr<PeerEndpoint>> PeerEndpoint::Create(Options options, std::vector<PeerConfig> peers) {
  if (options.link == nullptr) return InvalidArgument("peer endpoint: a peer link context is required");
  std::map<std::string, PeerConfig, std::less<>> by_name;
  for (auto& p : peers) {
    const std::string who = "peer \"" + p.name + "\": ";
    if (p.name.empty()) return InvalidArgument("peer endpoint: a peer has an empty name");
    if (p.accepted_suites.empty()) return InvalidArgument(who + "accepted_suites is empty");
    for (AeadSuite s : p.accepted_suites) {
      if (NonceSize(s) == 0) return InvalidArgument(who + "unknown suite in accepted_suites");
    }
    if (NonceSize(p.suite) == 0) return InvalidArgument(who + "unknown suite");
    if (p.qkd_keys_per_session < 1 || p.qkd_keys_per_session > kMaxKeyIds) {
      return InvalidArgument(who + "qkd_keys_per_session must be 1.." + std::to_string(kMaxKeyIds));
    }
    if (p.policy.qkd == SourcePolicy::kRequire && p.qkd_master == nullptr && p.qkd_slave == nullptr) {
      return InvalidArgument(who + "qkd = require, but no QKD key supply (master or slave) is configured");
    }
    if (p.policy.qrng == SourcePolicy::kRequire && options.entropy == nullptr) {
      return InvalidArgument(who + "qrng = require, but no entropy pool is configured");
    }
    if (p.establishment_timeout.count() <= 0) return InvalidArgument(who + "establishment_timeout must be positive");
    std::string name = p.name;
    if (by_name.contains(name)) return InvalidArgument("peer endpoint: two peers are named \"" + name + "\"");
    by_name.emplace(std::move(name), std::move(p));
  }
  return std::unique_ptr<PeerEndpoint>(new PeerEndpoint(std::move(options), std::move(by_name)));
}

const PeerConfig* PeerEndpoint::FindPeer(std::string_view name) const {
  auto it = peers_.find(name);
  return it == peers_.end() ? nullptr : &it->second;
}

Result<PeerSession> PeerEndpoint::Initiate(std::string_view peer_name) {
  const PeerConfig* peer = FindPeer(peer_name);
  if (peer == nullptr) return Error(ErrorCode::kNotFound, "no peer named \"" + std::string(peer_name) + "\" is configured");
  QSAPI_ASSIGN_OR_RETURN(auto link, PeerLink::Connect(options_.link, peer->host, peer->port, peer->name));
  return InitiateOver(std::move(link), peer_name);
}

Result<PeerSession> PeerEndpoint::InitiateOver(std::unique_ptr<PeerLink> link, std::string_view peer_name) {
  if (link == nullptr) return InvalidArgument("session: no link");
  const PeerConfig* peer = FindPeer(peer_name);
  if (peer == nullptr) return Error(ErrorCode::kNotFound, "no peer named \"" + std::string(peer_name) + "\" is configured");
  Exchange ex(*link, peer->name, Clock::now() + peer->establishment_timeout);
  if (link->info().peer_name != peer->name) {
    return ex.Fail(AbortCode::kUnknownPeer, Error(ErrorCode::kPermissionDenied,
                                                  "session: the link's peer is \"" + link->info().peer_name +
                                                      "\", not \"" + peer->name + "\""));
  }
  std::vector<std::string> notes;

  InitMessage init;
  QSAPI_RETURN_IF_ERROR(crypto::RandomFill(init.session_id));
  init.suite = peer->suite;
  init.qkd_policy = peer->policy.qkd;
  init.qrng_policy = peer->policy.qrng;
  auto contribution = DrawContribution(peer->policy.qrng, options_.entropy.get(), peer->name, "initiator");
  if (!contribution.ok()) return ex.Fail(AbortCode::kPolicy, contribution.error());
  init.random = contribution->bytes;
  if (!contribution->note.empty()) notes.push_back(contribution->note);

  // QKD: reserve keys at our KME for this peer.
  SecretBytes qkd_material;
  if (peer->policy.qkd != SourcePolicy::kOff) {
    std::string reason;
    if (peer->qkd_master == nullptr) {
      reason = "no QKD link (master key supply) to this peer is configured";
    } else {
      auto reserved = peer->qkd_master->Reserve(peer->qkd_keys_per_session);
      if (reserved.ok()) {
        auto joined = Concat(reserved->keys);
        if (joined.ok()) {
          qkd_material = std::move(joined).value();
          init.key_ids = reserved->key_ids;
        } else {
          reason = joined.error().message();
        }
      } else {
        reason = "our KME could not supply keys: " + reserved.error().ToString();
      }
    }
    if (!reason.empty()) {
      if (peer->policy.qkd == SourcePolicy::kRequire) {
        return ex.Fail(AbortCode::kQkdUnavailable,
                       Unavailable("session with " + peer->name + ": qkd = require, but " + reason));
      }
      notes.emplace_back("qkd = prefer, but " + reason + "; the session is without QKD");
    }
  }
  init.sources.push_back(SourceId::kTlsExporter);
  if (!init.key_ids.empty()) init.sources.push_back(SourceId::kQkd);
  if (contribution->qrng) init.sources.push_back(SourceId::kQrngInitiator);

  const Bytes init_bytes = EncodeInit(init);
  QSAPI_RETURN_IF_ERROR(ex.Send(init_bytes));

  QSAPI_ASSIGN_OR_RETURN(Bytes accept_bytes, ex.Receive(kTypeAccept, "Accept"));
  auto accept = ParseAccept(accept_bytes);
  if (!accept.ok()) return ex.Fail(AbortForError(accept.error()), accept.error());
  if (!std::equal(accept->session_id.begin(), accept->session_id.end(), init.session_id.begin())) {
    return ex.Fail(AbortCode::kMalformed, InvalidArgument("session with " + peer->name +
                                                          ": the Accept message names another session id"));
  }
  const auto& acc = accept->sources;
  const bool offered_qkd = Has(init.sources, SourceId::kQkd);
  if (Has(acc, SourceId::kQkd) && !offered_qkd) {
    return ex.Fail(AbortCode::kMalformed, InvalidArgument("session with " + peer->name +
                                                          ": the peer accepted QKD, which we did not offer"));
  }
  if (Has(acc, SourceId::kQrngInitiator) != Has(init.sources, SourceId::kQrngInitiator)) {
    return ex.Fail(AbortCode::kPolicy,
                   FailedPrecondition("session with " + peer->name + ": downgraded source list: we offered " +
                                      SourcesText(init.sources) + " and the peer accepted " + SourcesText(acc) +
                                      ", changing our QRNG contribution"));
  }
  if (offered_qkd && !Has(acc, SourceId::kQkd)) {
    if (peer->policy.qkd == SourcePolicy::kRequire) {
      return ex.Fail(AbortCode::kPolicy,
                     FailedPrecondition("session with " + peer->name + ": downgraded source list refused: the peer "
                                        "accepted " + SourcesText(acc) + " without qkd, but qkd = require"));
    }
    notes.emplace_back("qkd = prefer, but the peer did not accept QKD (see its log); the session is without QKD");
  }

  auto exporter = link->ExportKeyingMaterial(kExporterLabel, init.session_id, kExporterSize);
  if (!exporter.ok()) return ex.Fail(AbortCode::kInternal, exporter.error());
  auto context_hash = ContextHash(init_bytes, accept_bytes);
  if (!context_hash.ok()) return ex.Fail(AbortCode::kInternal, context_hash.error());
  const bool qkd_used = Has(acc, SourceId::kQkd);
  KeyScheduleInput in{
      .session_id = init.session_id,
      .suite = init.suite,
      .tls_exporter = exporter->view(),
      .qkd_key = qkd_used ? qkd_material.view() : ByteView(),
      .qrng_initiator = Has(acc, SourceId::kQrngInitiator) ? ByteView(init.random) : ByteView(),
      .qrng_responder = Has(acc, SourceId::kQrngResponder) ? ByteView(accept->random) : ByteView(),
      .context_hash = *context_hash,
  };
  auto keys = DeriveSessionKeys(in);
  qkd_material = SecretBytes();  // use-once: wiped now
  if (!keys.ok()) return ex.Fail(AbortCode::kInternal, keys.error());
  if (keys->sources != acc) {
    return ex.Fail(AbortCode::kInternal, Internal("session: the key schedule used " + SourcesText(keys->sources) +
                                                  ", not the accepted " + SourcesText(acc)));
  }
  auto mac = ConfirmationMac(keys->confirm_key_initiator.view(), true, *context_hash);
  if (!mac.ok()) return ex.Fail(AbortCode::kInternal, mac.error());
  QSAPI_RETURN_IF_ERROR(ex.Send(EncodeConfirm(ConfirmMessage{.mac = *mac})));

  QSAPI_ASSIGN_OR_RETURN(Bytes confirm_bytes, ex.Receive(kTypeConfirm, "Confirm"));
  auto confirm = ParseConfirm(confirm_bytes);
  if (!confirm.ok()) return ex.Fail(AbortForError(confirm.error()), confirm.error());
  if (!VerifyConfirmationMac(keys->confirm_key_responder.view(), false, *context_hash, confirm->mac).ok()) {
    link->Close();
    if (qkd_used) {
      return Error(ErrorCode::kDataLoss, "session with " + peer->name +
                                             ": key confirmation failed: the QKD keys differ between the two KMEs "
                                             "(key_IDs " + JoinIds(init.key_ids) + ")");
    }
    return AuthenticationFailed();
  }
  if (!notes.empty()) {
    Log(LogLevel::kWarning, kLog, "session with " + peer->name + " established without a preferred source: " + notes.front());
  }
  return SessionBuilder::Build(SessionRole::kInitiator, init.session_id, init.suite, acc, std::move(notes),
                               qkd_used ? init.key_ids : std::vector<std::string>{}, std::move(keys).value(),
                               std::move(link));
}

Result<PeerSession> PeerEndpoint::Respond(std::unique_ptr<PeerLink> link) {
  if (link == nullptr) return InvalidArgument("session: no link");
  const std::string name = link->info().peer_name;
  const PeerConfig* peer = FindPeer(name);
  if (peer == nullptr) {
    Exchange ex(*link, name, Clock::now() + std::chrono::seconds(1));
    return ex.Fail(AbortCode::kUnknownPeer,
                   Error(ErrorCode::kPermissionDenied, "session: the peer \"" + name + "\" (from " +
                                                           link->info().remote_address +
                                                           ") is not a configured peer of " +
                                                           options_.link->common_name()));
  }
  Exchange ex(*link, peer->name, Clock::now() + peer->establishment_timeout);
  std::vector<std::string> notes;

  QSAPI_ASSIGN_OR_RETURN(Bytes init_bytes, ex.Receive(kTypeInit, "Init"));
  auto init = ParseInit(init_bytes);
  if (!init.ok()) return ex.Fail(AbortForError(init.error()), init.error());
  if (std::find(peer->accepted_suites.begin(), peer->accepted_suites.end(), init->suite) ==
      peer->accepted_suites.end()) {
    return ex.Fail(AbortCode::kUnsupported, Error(ErrorCode::kUnimplemented,
                                                  "session with " + peer->name + ": suite " +
                                                      std::string(AeadSuiteName(init->suite)) +
                                                      " is not accepted for this peer"));
  }

  std::vector<SourceId> accepted{SourceId::kTlsExporter};
  SecretBytes qkd_material;
  const bool offered_qkd = Has(init->sources, SourceId::kQkd);
  const bool initiator_requires_qkd = init->qkd_policy == SourcePolicy::kRequire;
  if (offered_qkd) {
    std::string reason;
    if (peer->policy.qkd == SourcePolicy::kOff) {
      reason = "qkd = off at the responder for this peer";
    } else if (peer->qkd_slave == nullptr) {
      reason = "no QKD link (slave key supply) to this peer is configured at the responder";
    } else {
      if (auto st = replay_guard_.CheckAndRecord(init->key_ids); !st.ok()) {
        return ex.Fail(AbortCode::kReplayedKeyId,
                       Error(ErrorCode::kPermissionDenied, "session with " + peer->name + ": " + st.error().message()));
      }
      auto fetched = peer->qkd_slave->Fetch(init->key_ids);
      if (fetched.ok()) {
        auto joined = Concat(*fetched);
        if (joined.ok()) {
          qkd_material = std::move(joined).value();
          accepted.push_back(SourceId::kQkd);
        } else {
          reason = joined.error().message();
        }
      } else {
        reason = "the responder's KME could not deliver the keys: " + fetched.error().ToString();
      }
    }
    if (!reason.empty()) {
      if (peer->policy.qkd == SourcePolicy::kRequire || initiator_requires_qkd) {
        const AbortCode code = peer->policy.qkd == SourcePolicy::kOff || peer->qkd_slave == nullptr
                                   ? AbortCode::kPolicy
                                   : AbortCode::kQkdUnavailable;
        return ex.Fail(code, Error(code == AbortCode::kPolicy ? ErrorCode::kFailedPrecondition : ErrorCode::kUnavailable,
                                   "session with " + peer->name + ": qkd = require (" +
                                       (initiator_requires_qkd ? "initiator" : "responder") + "), but " + reason));
      }
      if (peer->policy.qkd == SourcePolicy::kPrefer) notes.emplace_back("qkd = prefer, but " + reason);
    }
  } else if (peer->policy.qkd == SourcePolicy::kRequire) {
    return ex.Fail(AbortCode::kPolicy,
                   FailedPrecondition("session with " + peer->name +
                                      ": qkd = require at the responder, but the initiator offered no QKD keys (" +
                                      SourcesText(init->sources) + ")"));
  } else if (peer->policy.qkd == SourcePolicy::kPrefer) {
    notes.emplace_back("qkd = prefer, but the initiator offered no QKD keys; the session is without QKD");
  }
  if (Has(init->sources, SourceId::kQrngInitiator)) accepted.push_back(SourceId::kQrngInitiator);
  auto contribution = DrawContribution(peer->policy.qrng, options_.entropy.get(), peer->name, "responder");
  if (!contribution.ok()) return ex.Fail(AbortCode::kPolicy, contribution.error());
  if (!contribution->note.empty()) notes.push_back(contribution->note);
  if (contribution->qrng) accepted.push_back(SourceId::kQrngResponder);

  AcceptMessage accept{.session_id = init->session_id, .random = contribution->bytes, .sources = accepted};
  const Bytes accept_bytes = EncodeAccept(accept);
  QSAPI_RETURN_IF_ERROR(ex.Send(accept_bytes));

  auto exporter = link->ExportKeyingMaterial(kExporterLabel, init->session_id, kExporterSize);
  if (!exporter.ok()) return ex.Fail(AbortCode::kInternal, exporter.error());
  auto context_hash = ContextHash(init_bytes, accept_bytes);
  if (!context_hash.ok()) return ex.Fail(AbortCode::kInternal, context_hash.error());
  const bool qkd_used = Has(accepted, SourceId::kQkd);
  KeyScheduleInput in{
      .session_id = init->session_id,
      .suite = init->suite,
      .tls_exporter = exporter->view(),
      .qkd_key = qkd_used ? qkd_material.view() : ByteView(),
      .qrng_initiator = Has(accepted, SourceId::kQrngInitiator) ? ByteView(init->random) : ByteView(),
      .qrng_responder = Has(accepted, SourceId::kQrngResponder) ? ByteView(accept.random) : ByteView(),
      .context_hash = *context_hash,
  };
  auto keys = DeriveSessionKeys(in);
  qkd_material = SecretBytes();  // use-once: wiped now
  if (!keys.ok()) return ex.Fail(AbortCode::kInternal, keys.error());
  if (keys->sources != accepted) {
    return ex.Fail(AbortCode::kInternal, Internal("session: the key schedule used " + SourcesText(keys->sources) +
                                                  ", not the accepted " + SourcesText(accepted)));
  }

  QSAPI_ASSIGN_OR_RETURN(Bytes confirm_bytes, ex.Receive(kTypeConfirm, "Confirm"));
  auto confirm = ParseConfirm(confirm_bytes);
  if (!confirm.ok()) return ex.Fail(AbortForError(confirm.error()), confirm.error());
  if (!VerifyConfirmationMac(keys->confirm_key_initiator.view(), true, *context_hash, confirm->mac).ok()) {
    if (qkd_used) {
      return ex.Fail(AbortCode::kQkdKeyMismatch,
                     Error(ErrorCode::kDataLoss, "session with " + peer->name +
                                                     ": key confirmation failed: the QKD keys differ between the two "
                                                     "KMEs (key_IDs " + JoinIds(init->key_ids) + ")"));
    }
    (void)ex.Fail(AbortCode::kConfirmFailed, Error(ErrorCode::kAuthenticationFailed,
                                                   "session with " + peer->name + ": key confirmation failed"));
    return AuthenticationFailed();
  }
  auto mac = ConfirmationMac(keys->confirm_key_responder.view(), false, *context_hash);
  if (!mac.ok()) return ex.Fail(AbortCode::kInternal, mac.error());
  QSAPI_RETURN_IF_ERROR(ex.Send(EncodeConfirm(ConfirmMessage{.mac = *mac})));
  if (!notes.empty()) {
    Log(LogLevel::kWarning, kLog, "session with " + peer->name + " established without a preferred source: " + notes.front());
  }
  return SessionBuilder::Build(SessionRole::kResponder, init->session_id, init->suite, accepted, std::move(notes),
                               qkd_used ? init->key_ids : std::vector<std::string>{}, std::move(keys).value(),
                               std::move(link));
}

Result<PeerSession> PeerEndpoint::AcceptAndRespond(PeerListener& listener, std::chrono::milliseconds timeout) {
  QSAPI_ASSIGN_OR_RETURN(IncomingConnection conn, listener.AcceptConnection(timeout));
  QSAPI_ASSIGN_OR_RETURN(auto link, PeerLink::Accept(options_.link, std::move(conn)));
  return Respond(std::move(link));
}

}  // namespace qsapi::session
