// AuditTrails is the keystore's side of the audit trails: the entries of its own trail (written
// by the store in the transaction of each change), and the keys of the trails it keys and
// anchors (its own, and those kept elsewhere, such as qsapid's audit log).
//
// A trail's HMAC key exists outside memory only wrapped by the KEK, with the trail's name and
// first keyed entry bound to the wrapping: a row moved to another trail, or a first_seq raised to
// pass forged unkeyed entries off as older than the key, does not unwrap. The keystore's own
// trail is "keystore"; it is keyed at open (KeyOwnTrail) and its key is never handed out.
//
// Thread safety: thread-safe, and needs no lock. It keeps no state but what the constructor fixed
// (the actor), and the store and the token it calls are thread-safe. Trail calls do not take the
// keystore's lock: each change they make is one store transaction, atomic on its own.
#ifndef QSAPI_KEYSTORE_INTERNAL_AUDIT_TRAILS_H_
#define QSAPI_KEYSTORE_INTERNAL_AUDIT_TRAILS_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "keystore/internal/metadata_store.h"
#include "keystore/internal/pkcs11_token.h"
#include "qsapi/keystore/keystore.h"
#include "qsapi/result.h"

namespace qsapi::keystore::internal {

class AuditTrails {
 public:
  // `actor` is who the entries name when a call names nobody else (KeystoreOptions::actor).
  AuditTrails(KeyProtector& protector, MetadataStore& store, std::string actor)
      : protector_(protector), store_(store), actor_(std::move(actor)) {}

  // Entry is the audit row of a successful change, made now: `actor` empty means this handle's.
  [[nodiscard]] AuditRow Entry(std::string action, const std::string& key, std::uint32_t version,
                               std::string detail = {}, const std::string& actor = {}) const;

  // KeyOwnTrail keys the store's own trail with its key, creating the key on first open (in an
  // entry of the trail itself, from which the trail is keyed). kDataLoss when the stored key does
  // not unwrap: the keystore must not open on a trail it cannot check.
  Status KeyOwnTrail();

  // The calls behind Keystore::Audit, FindTrail, OpenTrail, RecordTrailHead, RestartTrail,
  // AuditHead and CheckAuditHead (qsapi/keystore/keystore.h says what each does and returns).
  Result<std::vector<AuditEntry>> Read(std::size_t max_entries);
  Result<std::optional<TrailKey>> Find(std::string_view name);
  Result<TrailKey> Open(std::string_view name, std::uint64_t next_seq);
  Status RecordHead(std::string_view name, std::uint64_t seq, ByteView mac);
  Result<TrailKey> Restart(std::string_view name, std::uint64_t first_seq, std::string_view why);
  Result<TrailHead> Head();
  Status CheckHead(const TrailHead& head);

  // Renamed is `row` under another name: its key unwrapped and wrapped again for `name` (the
  // wrapping binds the name), the rest as it was. kDataLoss when the key does not unwrap.
  Result<TrailRow> Renamed(TrailRow row, std::string_view name);

  // VerifyChain recomputes the own trail's chain (for CheckIntegrity); kDataLoss names the first
  // bad entry.
  Status VerifyChain();

 private:
  KeyProtector& protector_;  // thread-safe
  MetadataStore& store_;     // thread-safe
  const std::string actor_;
};

}  // namespace qsapi::keystore::internal

#endif  // QSAPI_KEYSTORE_INTERNAL_AUDIT_TRAILS_H_
