// qsapi/session/peer_session.h: session establishment between two endpoints over a peer link.
//
// The initiator proposes a session (Init: id, suite, policy, its random and, when a QKD link to the
// peer is configured, the key_IDs it reserved at its KME); the responder fetches the same keys by
// key_ID from its own KME and answers (Accept: its random and the source list it accepts); both
// derive the session keys (qsapi/session/key_schedule.h) over the TLS exporter, the QKD keys and
// the QRNG contributions, with SHA-384(Init || Accept) as context hash, and confirm them with MACs,
// the responder first (with Accept). docs/PROTOCOL.md, "Session establishment", has the bytes and the state
// machine.
//
// Policy per peer (qkd and qrng, each off | prefer | require):
//  - qkd: the initiator reserves QKD keys when qkd != off and a master key supply is configured;
//    the responder uses the offered keys when qkd != off and a slave key supply is configured.
//    `require` on either side fails establishment, with an error that says why, when the session
//    would be without QKD (no supply configured, KME down or exhausted, the peer did not offer or
//    accept QKD). `prefer` creates the session without QKD and says so (PeerSession::sources(),
//    notes(), degraded()) — never silently.
//  - qrng: each side's 32-byte random comes from the entropy pool; it counts as a QRNG contribution
//    (and enters the key schedule as qrng-initiator / qrng-responder) only when a healthy QRNG
//    source fed that draw. `require` fails when none did; `prefer` falls back to the OS CSPRNG and
//    marks the session.
//
// Failures that the protocol detects, all with a clear error on both sides (the side that detects
// sends an Abort carrying the reason): mismatched QKD keys (confirmation fails: DATA_LOSS, "the QKD
// keys differ"), a replayed key_ID (PERMISSION_DENIED), a downgraded source list or unmet policy
// (FAILED_PRECONDITION), an unknown peer (PERMISSION_DENIED), a malformed message
// (INVALID_ARGUMENT), a timeout (DEADLINE_EXCEEDED).
//
// Thread safety: PeerEndpoint may be used from several threads (Initiate and Respond for different
// links concurrently). A PeerSession is a value owned by one thread at a time. PeerChannel, the
// established session carrying traffic, is in qsapi/session/peer_channel.h.
#ifndef QSAPI_SESSION_PEER_SESSION_H_
#define QSAPI_SESSION_PEER_SESSION_H_

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "qsapi/result.h"
#include "qsapi/secret.h"
#include "qsapi/session/envelope.h"
#include "qsapi/session/key_schedule.h"
#include "qsapi/session/peer_link.h"
#include "qsapi/source_policy.h"

namespace qsapi::entropy {
class EntropyPool;
}  // namespace qsapi::entropy
namespace qsapi::qkd {
class MasterKeySupply;
class SlaveKeySupply;
}  // namespace qsapi::qkd

namespace qsapi::session {

// Each optional source (QKD, QRNG) has a qsapi::SourcePolicy (qsapi/source_policy.h); its value
// is the wire byte.

struct PeerPolicy {
  SourcePolicy qkd = SourcePolicy::kPrefer;
  SourcePolicy qrng = SourcePolicy::kPrefer;
};

// AbortCode says why a side aborted establishment; its value is the wire byte of an Abort.
enum class AbortCode : std::uint8_t {
  kPolicy = 1,           // a source one side requires is missing, or the source list was downgraded
  kQkdUnavailable = 2,   // the responder could not fetch the QKD keys and QKD is required
  kQkdKeyMismatch = 3,   // key confirmation failed and QKD keys were mixed in: the KMEs' keys differ
  kConfirmFailed = 4,    // key confirmation failed without QKD (tampering or a bug)
  kReplayedKeyId = 5,    // a key_ID was already used in an earlier session
  kUnknownPeer = 6,      // the peer's certificate names no configured peer
  kMalformed = 7,        // a message did not parse
  kUnsupported = 8,      // protocol version or suite not supported
  kInternal = 9,         // anything else (the reason says what)
  kUnknownSession = 10,  // a Reestablish names no session this side holds with that peer
};
std::string_view AbortCodeName(AbortCode code) noexcept;

// KeyIdReplayGuard remembers the last `capacity` QKD key_IDs a responder accepted (case-folded)
// and refuses any of them a second time. Thread-safe.
class KeyIdReplayGuard {
 public:
  explicit KeyIdReplayGuard(std::size_t capacity = 65536) : capacity_(capacity == 0 ? 1 : capacity) {}
  // CheckAndRecord fails with PERMISSION_DENIED, naming the key_ID, when any of `key_ids` was seen
  // before (and then records none of them); otherwise records them all, evicting the oldest.
  Status CheckAndRecord(std::span<const std::string> key_ids);
  [[nodiscard]] std::size_t size() const;

 private:
  std::size_t capacity_;
  mutable std::mutex mu_;
  std::deque<std::string> order_;         // guarded by mu_
  std::unordered_set<std::string> seen_;  // guarded by mu_
};

// AllAeadSuites lists every suite (the default accepted_suites).
std::vector<AeadSuite> AllAeadSuites();

// PeerConfig describes one peer of this endpoint (both roles).
struct PeerConfig {
  std::string name;  // the CN of the peer's certificate: its identity
  std::string host;  // where to reach it when initiating
  std::uint16_t port = 0;
  PeerPolicy policy;
  AeadSuite suite = AeadSuite::kAes256Gcm;                   // proposed when initiating
  std::vector<AeadSuite> accepted_suites = AllAeadSuites();  // responding
  // QKD towards this peer: this end's SAE as master (reserves keys when initiating) and as slave
  // (fetches the keys the peer reserved when it initiates). Either may be null: no QKD in that role.
  std::shared_ptr<qkd::MasterKeySupply> qkd_master;
  std::shared_ptr<qkd::SlaveKeySupply> qkd_slave;
  std::size_t qkd_keys_per_session = 1;  // 1..4; their total size must be 32..64 bytes
  // qkd_at_rotation: in a session that used QKD, each new epoch the initiator's PeerChannel enters
  // mixes fresh QKD keys, agreed over the link (docs/PROTOCOL.md, "Fresh QKD keys at rotation");
  // as responder, accept such proposals. Best effort: a rotation whose fresh keys cannot be had
  // uses the ratchet alone and is counted and logged (PeerChannel::fresh_key_stats()).
  bool qkd_at_rotation = true;
  std::chrono::milliseconds establishment_timeout{15000};  // the whole exchange after the TLS handshake
  // reestablish_interval: how often the initiator should re-establish a session in place (new TLS
  // handshake, new ML-KEM; PeerEndpoint::Reestablish) when PeerChannel::age() reaches it. The
  // caller's timer runs it (qsapid's maintenance thread does); 0: only on request.
  std::chrono::seconds reestablish_interval{3600};
};

// FreshKeySupply is what a session needs to agree fresh QKD keys at rotation: the initiator's
// master supply, or the responder's slave supply and key_ID replay guard. Null when the session
// is without QKD or qkd_at_rotation is off.
struct FreshKeySupply {
  std::shared_ptr<qkd::MasterKeySupply> master;
  std::shared_ptr<qkd::SlaveKeySupply> slave;
  std::shared_ptr<KeyIdReplayGuard> replay_guard;
  std::size_t keys_per_epoch = 1;
  std::chrono::milliseconds timeout{15000};  // for the peer's answer to a proposal
};

// Reestablishment is what a re-establishment of an existing session adds to the PeerSession the
// establishment returns (docs/PROTOCOL.md, "Re-establishment"): the new session secret (its
// keys().epoch_secret) enters the existing channel's epoch chain instead of starting a channel.
struct Reestablishment {
  std::uint32_t min_epoch = 0;  // the lowest epoch the new secret may enter (>= 1)
  Bytes context_hash;           // SHA-384(Reestablish || Accept): the confirmation's associated data
  Bytes rekey_done;             // the initiator's: the responder's RekeyDone, with its confirmation
};

// PeerSession is an established session: its identity, what it was built from, its keys and the
// link it runs over. Move-only (it owns secrets and the link).
class PeerSession {
 public:
  PeerSession() = default;
  PeerSession(PeerSession&&) noexcept = default;
  PeerSession& operator=(PeerSession&&) noexcept = default;
  PeerSession(const PeerSession&) = delete;
  PeerSession& operator=(const PeerSession&) = delete;
  ~PeerSession() = default;

  [[nodiscard]] ByteView session_id() const noexcept { return session_id_; }
  [[nodiscard]] std::string session_id_hex() const;
  [[nodiscard]] SessionRole role() const noexcept { return role_; }
  [[nodiscard]] AeadSuite suite() const noexcept { return suite_; }
  // sources: the sources the keys were derived from, in key-schedule order (always tls-exporter).
  [[nodiscard]] const std::vector<SourceId>& sources() const noexcept { return sources_; }
  [[nodiscard]] bool uses(SourceId id) const noexcept;
  [[nodiscard]] bool qkd_used() const noexcept { return uses(SourceId::kQkd); }
  [[nodiscard]] bool qrng_used() const noexcept {
    return uses(SourceId::kQrngInitiator) || uses(SourceId::kQrngResponder);
  }
  // SourcesText: "tls-exporter+qkd+qrng-initiator".
  [[nodiscard]] std::string SourcesText() const;
  // degraded: a source the policy prefers was not used; notes() says which and why.
  [[nodiscard]] bool degraded() const noexcept { return !notes_.empty(); }
  [[nodiscard]] const std::vector<std::string>& notes() const noexcept { return notes_; }
  [[nodiscard]] const std::vector<std::string>& qkd_key_ids() const noexcept { return qkd_key_ids_; }
  [[nodiscard]] const std::string& peer_name() const noexcept { return link_info_.peer_name; }
  [[nodiscard]] const std::string& tls_group() const noexcept { return link_info_.tls_group; }
  [[nodiscard]] const LinkInfo& link_info() const noexcept { return link_info_; }
  [[nodiscard]] std::chrono::system_clock::time_point established_at() const noexcept { return established_at_; }

  // keys: the derived session keys (epoch 0 secret and the confirmation keys). TakeKeys hands
  // them over (to an envelope channel), leaving this session without them.
  [[nodiscard]] const SessionKeys& keys() const noexcept { return keys_; }
  [[nodiscard]] SessionKeys TakeKeys() noexcept { return std::move(keys_); }
  // link: the peer link the session was established over (null after TakeLink()).
  [[nodiscard]] PeerLink* link() const noexcept { return link_.get(); }
  [[nodiscard]] std::unique_ptr<PeerLink> TakeLink() noexcept { return std::move(link_); }
  // reestablishment: set when this is a re-establishment of the existing session with this id (a
  // responder's PeerEndpoint::Respond returns it: hand it to that session's
  // PeerChannel::AcceptReestablishment; the initiator's PeerEndpoint::RunReestablishment returns it
  // for PeerChannel::FinishReestablishment).
  [[nodiscard]] const std::optional<Reestablishment>& reestablishment() const noexcept { return reestablishment_; }
  [[nodiscard]] bool reestablishes() const noexcept { return reestablishment_.has_value(); }
  // fresh_key_supply: null unless the session can agree fresh QKD keys at rotation.
  [[nodiscard]] const std::shared_ptr<const FreshKeySupply>& fresh_key_supply() const noexcept {
    return fresh_key_supply_;
  }

 private:
  friend struct SessionBuilder;  // the establishment fills the fields (establishment.cc)
  Bytes session_id_;
  SessionRole role_ = SessionRole::kInitiator;
  AeadSuite suite_ = AeadSuite::kAes256Gcm;
  std::vector<SourceId> sources_;
  std::vector<std::string> notes_;
  std::vector<std::string> qkd_key_ids_;
  LinkInfo link_info_;
  std::chrono::system_clock::time_point established_at_{};
  SessionKeys keys_;
  std::unique_ptr<PeerLink> link_;
  std::shared_ptr<const FreshKeySupply> fresh_key_supply_;
  std::optional<Reestablishment> reestablishment_;
};

class PeerChannel;

// ReestablishTicket is a channel's request to be re-established in place
// (PeerChannel::BeginReestablishment): which session, and the epoch the channel holds for it.
struct ReestablishTicket {
  std::array<std::uint8_t, kSessionIdSize> session_id{};
  AeadSuite suite = AeadSuite::kAes256Gcm;
  std::uint32_t min_epoch = 0;
  std::string peer_name;
};

// ReestablishOutcome is what PeerEndpoint::RunReestablishment gave, for
// PeerChannel::FinishReestablishment. `uncertain`: the exchange failed after our confirmation went
// out and the peer did not abort, so the peer may have entered the new epoch.
struct ReestablishOutcome {
  Result<PeerSession> session = Error(ErrorCode::kInternal, "no re-establishment ran");
  bool uncertain = false;
};

// PeerEndpoint is this node's side of peer sessions: its link context, its peers, its entropy
// pool and the responder's key_ID replay guard.
class PeerEndpoint {
 public:
  struct Options {
    std::shared_ptr<const PeerLinkContext> link;    // required
    std::shared_ptr<entropy::EntropyPool> entropy;  // the randoms' source; null: OS CSPRNG only (no QRNG)
    std::size_t replay_guard_capacity = 65536;      // key_IDs remembered by the responder
  };

  // Create checks the options and every peer (non-empty unique names, suites, key counts, policy
  // consistent with the configured supplies: qkd = require needs a master or slave supply).
  static Result<std::unique_ptr<PeerEndpoint>> Create(Options options, std::vector<PeerConfig> peers);

  // Initiate connects to the named peer and establishes a session over a new link.
  Result<PeerSession> Initiate(std::string_view peer_name);
  // InitiateOver establishes a session over an existing link (whose peer must be `peer_name`).
  Result<PeerSession> InitiateOver(std::unique_ptr<PeerLink> link, std::string_view peer_name);
  // Respond answers an initiator on a link this endpoint accepted (PeerLink::Accept). The peer is
  // looked up by the CN of its certificate; unknown names are refused. When the initiator
  // re-establishes an existing session, the result has reestablishes() set: give it to that
  // session's PeerChannel::AcceptReestablishment, or to RefuseReestablishment when there is none
  // (PeerChannel::Create refuses it).
  Result<PeerSession> Respond(std::unique_ptr<PeerLink> link);
  // Reestablish renews an established session's keys in place (docs/PROTOCOL.md,
  // "Re-establishment"): a new link to the peer (new TLS handshake, new hybrid ML-KEM exchange),
  // a Reestablish message naming the session, the establishment's policy, checks, QKD keys, QRNG
  // randoms and key schedule, and the new session secret mixed into the channel's next epoch once
  // the responder confirms it. The session keeps its id; envelopes keep flowing (the initiator's
  // epoch is held meanwhile). The channel's max_session_age restarts. Only the session's initiator
  // calls it; the responder's Respond returns a PeerSession with reestablishes() set, for
  // PeerChannel::AcceptReestablishment. On failure the session goes on under its current keys,
  // unless the outcome is uncertain (no answer after our confirmation), when it is closed.
  // It is BeginReestablishment, RunReestablishment and FinishReestablishment in a row.
  Status Reestablish(PeerChannel& channel);
  // RunReestablishment is the exchange alone: a new link to the ticket's peer and a Reestablish
  // exchange that ends with the responder's RekeyDone. It changes no channel.
  ReestablishOutcome RunReestablishment(const ReestablishTicket& ticket);
  // AcceptAndRespond takes the next connection of `listener`, runs the TLS handshake and Respond.
  Result<PeerSession> AcceptAndRespond(PeerListener& listener, std::chrono::milliseconds timeout);

  [[nodiscard]] const PeerConfig* FindPeer(std::string_view name) const;
  [[nodiscard]] const std::shared_ptr<const PeerLinkContext>& link_context() const noexcept { return options_.link; }
  [[nodiscard]] KeyIdReplayGuard& replay_guard() noexcept { return *replay_guard_; }

 private:
  PeerEndpoint(Options options, std::map<std::string, PeerConfig, std::less<>> peers)
      : options_(std::move(options)),
        peers_(std::move(peers)),
        replay_guard_(std::make_shared<KeyIdReplayGuard>(options_.replay_guard_capacity)) {}
  std::shared_ptr<const FreshKeySupply> FreshKeysFor(const PeerConfig& peer, SessionRole role, bool qkd_used) const;
  struct ReestablishRequest {
    std::array<std::uint8_t, kSessionIdSize> session_id{};
    AeadSuite suite = AeadSuite::kAes256Gcm;
    std::uint32_t min_epoch = 0;
  };
  struct EstablishOutcome {
    bool confirm_sent = false;  // our Confirm went out
    bool peer_aborted = false;  // the peer said Abort (it bound nothing)
  };
  Result<PeerSession> Establish(std::unique_ptr<PeerLink> link, const PeerConfig& peer, const ReestablishRequest* re,
                                EstablishOutcome& outcome);

  Options options_;
  std::map<std::string, PeerConfig, std::less<>> peers_;
  std::shared_ptr<KeyIdReplayGuard> replay_guard_;  // shared with the sessions' fresh-key supplies
};

}  // namespace qsapi::session

#endif  // QSAPI_SESSION_PEER_SESSION_H_
