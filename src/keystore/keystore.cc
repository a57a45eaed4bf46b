// The keystore: the Keystore API composed from its parts in src/keystore/internal/, on top of a
// KeyProtector (the PKCS#11 token) and a MetadataStore (SQLite or PostgreSQL). See qsapi/keystore/keystore.h.
//
//   RowCache       the metadata rows read on every operation, valid while the store's change
//                  counter stays put
//   UsageLedger    the operations counted per version, leased from the metadata in blocks
//   MaterialCache  unwrapped key material, for a TTL after use
//   Rotation       making versions: create, manual, time-based and usage-based rotation
//   AuditTrails    the audit entries and the trail keys
//   material.h     generating, wrapping (its AAD) and unwrapping a version's material
//
// This file holds what combines them: the API's checks and its locking (Impl::mu). The names and
// the byte formats handed out (ParseHeader, ToText, ...) are in formats.cc.
#include "qsapi/keystore/keystore.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "keystore/internal/audit_trails.h"
#include "keystore/internal/cluster.h"
#include "keystore/internal/formats.h"
#include "keystore/internal/material.h"
#include "keystore/internal/material_cache.h"
#include "keystore/internal/metadata_store.h"
#include "keystore/internal/pkcs11_token.h"
#include "keystore/internal/rotation.h"
#include "keystore/internal/row_cache.h"
#include "keystore/internal/store_choice.h"
#include "keystore/internal/store_rows.h"
#include "keystore/internal/usage_ledger.h"
#include "qsapi/crypto/random.h"

namespace qsapi::keystore {
namespace {

using internal::KeyRow;
using internal::MakeHeader;
using internal::Material;
using internal::ParseVersionState;
using internal::VersionKey;
using internal::VersionRow;

constexpr std::size_t kMaxPlaintext = std::size_t{64} << 20;

Status CheckVersionChange(const KeyRow& row, std::uint32_t version, const char* what) {
  if (version == 0 || version > row.current_version) {
    return NotFound("key \"" + row.name + "\" has no version " + std::to_string(version));
  }
  if (version == row.current_version) {
    return FailedPrecondition(std::string("cannot ") + what + " the current version of key \"" + row.name +
                              "\"; rotate first");
  }
  return OkStatus();
}

Bytes Concat(ByteView a, ByteView b) {
  Bytes out(a.begin(), a.end());
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

}  // namespace

// Impl is the composition of the parts. The token, the store and the audit part are thread-safe
// on their own. `mu` is the keystore's lock: it serialises this handle's lifecycle changes
// (create, rotate, policy, version states, destroy, and the usage reservations that may rotate)
// and guards the row cache, the usage ledger and the material cache, which have no lock of their
// own. It is not held while material is unwrapped for an operation or while the operation runs.
class Keystore::Impl {
 public:
  Impl(const KeystoreOptions& options, std::unique_ptr<internal::KeyProtector> p,
       std::unique_ptr<internal::MetadataStore> s)
      : protector(std::move(p)),
        store(std::move(s)),
        audit(*protector, *store, options.actor),
        rows(*store),
        usage(*store),
        materials(options.cache_ttl, options.cache_max_entries),
        rotation(*protector, *store, audit, usage) {}

  const std::unique_ptr<internal::KeyProtector> protector;  // thread-safe
  const std::unique_ptr<internal::MetadataStore> store;     // thread-safe
  internal::AuditTrails audit;                              // thread-safe

  std::mutex mu;
  internal::RowCache rows;            // guarded by mu
  internal::UsageLedger usage;        // guarded by mu
  internal::MaterialCache materials;  // guarded by mu
  internal::Rotation rotation;        // called with mu held
  std::string store_description;      // set at open
  std::string cluster_id;             // set at open

  // Info is the API's view of `row`, with each version's usage. Caller holds mu.
  Result<KeyInfo> Info(const KeyRow& row) {
    QSAPI_ASSIGN_OR_RETURN(KeyType type, internal::KeyTypeOf(row));
    KeyInfo info;
    info.name = row.name;
    info.id = row.id;
    info.type = type;
    info.policy.auto_rotate_period = std::chrono::seconds(row.auto_rotate_seconds);
    info.policy.max_operations_per_version = internal::EffectiveMaxOps(row, type);
    info.policy.min_decryption_version = row.min_decryption_version;
    info.policy.deletion_allowed = row.deletion_allowed;
    info.created = std::chrono::system_clock::time_point(std::chrono::seconds(row.created));
    info.rotated = std::chrono::system_clock::time_point(std::chrono::seconds(row.rotated));
    info.current_version = row.current_version;
    QSAPI_ASSIGN_OR_RETURN(std::vector<VersionRow> versions, store->GetVersions(row.id));
    for (const VersionRow& v : versions) {
      VersionInfo vi;
      vi.version = v.version;
      QSAPI_ASSIGN_OR_RETURN(vi.state, ParseVersionState(v.state));
      vi.created = std::chrono::system_clock::time_point(std::chrono::seconds(v.created));
      vi.operations = usage.Used({row.id, v.version}).value_or(v.ops_leased);
      vi.public_key = v.public_key;
      info.versions.push_back(std::move(vi));
    }
    return info;
  }

  // LockedRow is the cached row of key `name`. Takes mu.
  Result<KeyRow> LockedRow(std::string_view name) {
    const std::lock_guard<std::mutex> lock(mu);
    return rows.Key(name);
  }

  // RowForBlob finds the key a ciphertext's or signature's header names. Takes mu.
  Result<KeyRow> RowForBlob(std::string_view name, const ParsedHeader& h) {
    std::optional<KeyRow> row;
    {
      const std::lock_guard<std::mutex> lock(mu);
      QSAPI_ASSIGN_OR_RETURN(row, rows.KeyById(h.key_id));
    }
    // With a name given, the answer is the same whether the key id is unknown or names another
    // key: a caller allowed to use one key learns nothing about the others (not even a name).
    if (!name.empty() && (!row || row->name != name)) {
      return InvalidArgument("the input was made with another key, not with \"" + std::string(name) + "\"");
    }
    if (!row) return NotFound("no key with id " + KeyIdHex(h.key_id) + " (destroyed, or another keystore's)");
    return *row;
  }

  // UsableVersion returns a version for decrypt / verify / decapsulate, or why it cannot be used.
  // Every caller has just read `row` through the cache, which checked the change counter: the
  // version is read as of that check (one counter read per operation). Takes mu.
  Result<VersionRow> UsableVersion(const KeyRow& row, std::uint32_t version) {
    if (version == 0) version = row.current_version;
    std::optional<VersionRow> v;
    {
      const std::lock_guard<std::mutex> lock(mu);
      QSAPI_ASSIGN_OR_RETURN(v, rows.VersionAsOfCheck(row.id, version));
    }
    if (!v) return NotFound("key \"" + row.name + "\" has no version " + std::to_string(version));
    QSAPI_ASSIGN_OR_RETURN(VersionState st, ParseVersionState(v->state));
    if (st == VersionState::kDisabled || st == VersionState::kDestroyed) {
      return FailedPrecondition("key \"" + row.name + "\" version " + std::to_string(version) + " is " +
                                std::string(VersionStateName(st)));
    }
    if (version < row.min_decryption_version) {
      return FailedPrecondition("key \"" + row.name + "\" version " + std::to_string(version) +
                                " is below the key's minimum decryption version " +
                                std::to_string(row.min_decryption_version));
    }
    return *v;
  }

  // Load returns a version's material, from the cache or unwrapped by the token. Takes mu for the
  // cache only: the unwrap runs without it.
  Result<std::shared_ptr<const Material>> Load(const KeyRow& row, const VersionRow& v, const KeyType& type) {
    const VersionKey vk{row.id, v.version};
    const auto now = internal::MaterialCache::Clock::now();
    {
      const std::lock_guard<std::mutex> lock(mu);
      if (std::shared_ptr<const Material> hit = materials.Find(vk, now)) return hit;
    }
    if (v.wrapped.empty()) {
      return DataLoss("key \"" + row.name + "\" version " + std::to_string(v.version) +
                      " has no key material in the metadata");
    }
    QSAPI_ASSIGN_OR_RETURN(Material m, internal::UnwrapMaterial(*protector, row, v, type));
    auto shared = std::make_shared<const Material>(std::move(m));
    if (materials.enabled()) {
      const std::lock_guard<std::mutex> lock(mu);
      materials.Insert(vk, shared, now);
    }
    return shared;
  }

  // Forget drops what this handle holds of a destroyed key. Caller holds mu.
  void Forget(const KeyId& id) {
    materials.Forget(id);
    usage.Forget(id);
  }
};

Keystore::Keystore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Keystore::~Keystore() = default;

Result<std::unique_ptr<Keystore>> Keystore::Open(const KeystoreOptions& options) {
  // Every check of the options comes before the token and the database are touched.
  if (!options.cluster_id.empty()) QSAPI_RETURN_IF_ERROR(internal::CheckClusterId(options.cluster_id, "cluster_id"));
  QSAPI_ASSIGN_OR_RETURN(internal::StoreChoice choice, internal::ChooseStore(options));
  std::string store_description = choice.description;
  QSAPI_ASSIGN_OR_RETURN(SecretBytes pin, internal::ReadPin(options.token));
  QSAPI_ASSIGN_OR_RETURN(std::unique_ptr<internal::KeyProtector> protector,
                         internal::OpenTokenProtector(options.token, pin, /*create_kek=*/false));
  QSAPI_ASSIGN_OR_RETURN(std::unique_ptr<internal::MetadataStore> store, internal::OpenStore(std::move(choice)));
  auto impl = std::make_unique<Impl>(options, std::move(protector), std::move(store));
  impl->store_description = std::move(store_description);
  // The node's KEK is checked against the cluster's before anything is written with it.
  QSAPI_ASSIGN_OR_RETURN(internal::ClusterRow cluster,
                         internal::JoinCluster(*impl->protector, *impl->store, impl->audit, options.cluster_id));
  impl->cluster_id = cluster.cluster_id;
  QSAPI_RETURN_IF_ERROR(impl->audit.KeyOwnTrail());
  return std::unique_ptr<Keystore>(new Keystore(std::move(impl)));
}

namespace {

Status CheckRecordKind(std::string_view kind) {
  const bool kind_ok = !kind.empty() && kind.size() <= 32 && std::all_of(kind.begin(), kind.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
  if (!kind_ok) return InvalidArgument("a record kind is 1 to 32 of [a-z0-9-]");
  return OkStatus();
}

Status CheckRecordName(std::string_view kind, std::string_view name) {
  QSAPI_RETURN_IF_ERROR(CheckRecordKind(kind));
  const bool name_ok = !name.empty() && name.size() <= 128 &&
                       std::all_of(name.begin(), name.end(), [](char c) { return c >= 0x21 && c <= 0x7e; });
  if (!name_ok) return InvalidArgument("a record name is 1 to 128 printable ASCII characters without spaces");
  return OkStatus();
}

}  // namespace

Result<StoreMigration> Keystore::Migrate(const KeystoreOptions& from, const KeystoreOptions& to,
                                         const MigrationExtras& extras) {
  const std::string& actor = extras.actor;
  // Every check that needs no device or database first.
  for (const RecordToAdd& r : extras.add) {
    QSAPI_RETURN_IF_ERROR(CheckRecordName(r.kind, r.name));
    if (r.value.empty() || r.value.size() > internal::kMaxRecordValue) {
      return InvalidArgument("a record's value has 1 byte to 64 KiB");
    }
  }
  QSAPI_ASSIGN_OR_RETURN(internal::StoreChoice to_choice, internal::ChooseStore(to));
  QSAPI_ASSIGN_OR_RETURN(std::unique_ptr<Keystore> source, Open(from));
  StoreMigration report;
  report.from = source->store_description();
  report.to = to_choice.description;
  if (report.from == report.to) {
    return FailedPrecondition("the source and the target of the migration are the same store (" + report.from + ")");
  }
  // One snapshot of the source, its trail verified under the trail key Open unwrapped.
  QSAPI_ASSIGN_OR_RETURN(internal::StoreContents contents, source->impl_->store->ExportAll());
  const std::pair<std::uint64_t, Bytes> source_head =
      contents.audit.empty() ? std::pair<std::uint64_t, Bytes>{0, {}}
                             : std::pair<std::uint64_t, Bytes>{contents.audit.back().seq, contents.audit.back().hash};
  for (const RecordToAdd& r : extras.add) {
    const bool taken =
        std::any_of(contents.records.begin(), contents.records.end(),
                    [&](const internal::RecordRow& have) { return have.kind == r.kind && have.name == r.name; });
    if (taken) return FailedPrecondition("the source database already holds a " + r.kind + " named \"" + r.name + "\"");
    contents.records.push_back(
        internal::RecordRow{.kind = r.kind, .name = r.name, .value = r.value, .updated = internal::UnixNow()});
    report.added.push_back(r.kind + " " + r.name);
  }
  for (const auto& rename : extras.rename_trails) {
    const std::string& old_name = rename.first;  // named, not bound: lambdas capture them
    const std::string& new_name = rename.second;
    const auto it = std::find_if(contents.trails.begin(), contents.trails.end(),
                                 [&](const internal::TrailRow& t) { return t.trail == old_name; });
    if (it == contents.trails.end()) continue;  // that node never keyed a trail
    const bool taken = std::any_of(contents.trails.begin(), contents.trails.end(),
                                   [&](const internal::TrailRow& t) { return t.trail == new_name; });
    if (taken) return FailedPrecondition("the source database already holds a trail named \"" + new_name + "\"");
    QSAPI_ASSIGN_OR_RETURN(*it, source->impl_->audit.Renamed(*it, new_name));
    report.added.push_back("trail " + old_name + " -> " + new_name);
  }
  report.cluster_id = source->cluster_id();
  report.keys = contents.keys.size();
  report.versions = contents.versions.size();
  report.records = contents.records.size();
  report.trails = contents.trails.size();
  report.audit_entries = source_head.first;
  if (!to.cluster_id.empty() && to.cluster_id != report.cluster_id) {
    return FailedPrecondition("the source database belongs to cluster " + report.cluster_id +
                              ", and the target is configured for cluster " + to.cluster_id);
  }
  {
    // The target's token must hold the same KEK before anything is written there.
    QSAPI_ASSIGN_OR_RETURN(SecretBytes pin, internal::ReadPin(to.token));
    QSAPI_ASSIGN_OR_RETURN(std::unique_ptr<internal::KeyProtector> to_protector,
                           internal::OpenTokenProtector(to.token, pin, /*create_kek=*/false));
    if (contents.cluster) QSAPI_RETURN_IF_ERROR(internal::CheckCanary(*to_protector, *contents.cluster));
    QSAPI_ASSIGN_OR_RETURN(std::unique_ptr<internal::MetadataStore> target, internal::OpenStore(std::move(to_choice)));
    QSAPI_RETURN_IF_ERROR(target->ImportAll(contents));
  }
  // The copy, opened as a node would open it: its canary unwraps with `to`'s token, its trail
  // verifies, and it ends where the source's did.
  KeystoreOptions to_checked = to;
  to_checked.cluster_id = report.cluster_id;
  const auto copy_failed = [&](const Error& e) {
    return DataLoss("the copy in " + report.to + " does not check (" + e.message() + "); " + report.from +
                    " is unchanged: empty the target database before trying again");
  };
  Result<std::unique_ptr<Keystore>> copy = Open(to_checked);
  if (!copy.ok()) return copy_failed(copy.error());
  if (Status st = (*copy)->impl_->audit.VerifyChain(); !st.ok()) return copy_failed(st.error());
  Result<std::pair<std::uint64_t, Bytes>> copy_head = (*copy)->impl_->store->AuditHead();
  if (!copy_head.ok()) return copy_failed(copy_head.error());
  if (*copy_head != source_head) return copy_failed(DataLoss("its trail does not end at the source's last entry"));
  std::string detail = "from " + report.from + ": " + std::to_string(report.keys) + " keys, " +
                       std::to_string(report.versions) + " versions, " + std::to_string(report.audit_entries) +
                       " audit entries";
  for (const std::string& a : report.added) detail += "; " + a;
  QSAPI_RETURN_IF_ERROR((*copy)->impl_->store->AppendAudit(
      (*copy)->impl_->audit.Entry("store.migrate", "", 0, detail.substr(0, 1000), actor)));
  const Status marked = source->impl_->store->MarkMoved(
      report.to, source->impl_->audit.Entry("store.moved", "", 0, "to " + report.to, actor));
  if (!marked.ok()) {
    return Unavailable("the keystore was copied to " + report.to + " and checked, but " + report.from +
                       " could not be marked as moved (" + marked.error().message() + "): start no node on it again");
  }
  return report;
}

Result<KeyInfo> Keystore::Create(std::string_view name, const KeyType& type, const KeyPolicy& policy) {
  QSAPI_RETURN_IF_ERROR(internal::CheckKeyName(name));
  QSAPI_RETURN_IF_ERROR(internal::CheckPolicyLimits(type, KeyTypeName(type), policy));
  if (policy.min_decryption_version > 1) return InvalidArgument("a new key's min_decryption_version is 1");
  const std::lock_guard<std::mutex> lock(impl_->mu);
  QSAPI_ASSIGN_OR_RETURN(std::optional<KeyRow> existing, impl_->store->GetKey(std::string(name)));
  if (existing) return AlreadyExists("a key named \"" + std::string(name) + "\" exists");
  KeyRow row;
  row.name = std::string(name);
  QSAPI_RETURN_IF_ERROR(crypto::RandomFill(row.id));
  row.type = KeyTypeName(type);
  row.created = row.rotated = impl_->store->Now();
  row.current_version = 1;
  row.auto_rotate_seconds = policy.auto_rotate_period.count();
  row.max_operations = policy.max_operations_per_version;
  row.min_decryption_version = 1;
  row.deletion_allowed = policy.deletion_allowed;
  QSAPI_ASSIGN_OR_RETURN(VersionRow v, impl_->rotation.NewVersion(row.id, 1, type));
  internal::FaultPoint("keystore.create.after_wrap");
  QSAPI_RETURN_IF_ERROR(impl_->store->CreateKey(row, v, impl_->audit.Entry("create", row.name, 1, row.type)));
  internal::FaultPoint("keystore.create.after_commit");
  return impl_->Info(row);
}

Result<KeyInfo> Keystore::Get(std::string_view name) {
  QSAPI_ASSIGN_OR_RETURN(KeyRow row, internal::ReadKeyRow(*impl_->store, name));
  const std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->Info(row);
}

Result<KeyType> Keystore::TypeOf(std::string_view name) {
  const std::lock_guard<std::mutex> lock(impl_->mu);
  QSAPI_ASSIGN_OR_RETURN(KeyRow row, impl_->rows.KeyUnchecked(name));
  return internal::KeyTypeOf(row);
}

Result<std::vector<KeyInfo>> Keystore::List() {
  QSAPI_ASSIGN_OR_RETURN(std::vector<KeyRow> rows, impl_->store->ListKeys());
  const std::lock_guard<std::mutex> lock(impl_->mu);
  std::vector<KeyInfo> out;
  for (const KeyRow& r : rows) {
    QSAPI_ASSIGN_OR_RETURN(KeyInfo info, impl_->Info(r));
    out.push_back(std::move(info));
  }
  return out;
}

Result<KeyInfo> Keystore::Rotate(std::string_view name) {
  const std::lock_guard<std::mutex> lock(impl_->mu);
  QSAPI_ASSIGN_OR_RETURN(KeyRow row, internal::ReadKeyRow(*impl_->store, name));
  QSAPI_ASSIGN_OR_RETURN(row, impl_->rotation.Rotate(row, "manual"));
  return impl_->Info(row);
}

Result<std::vector<std::string>> Keystore::RotateDue() {
  std::vector<std::string> rotated;
  // One node of a cluster sweeps at a time, judging periods by the database's clock.
  QSAPI_ASSIGN_OR_RETURN(const bool ran, impl_->store->RunExclusive("rotation-sweep", [&]() -> Status {
    QSAPI_ASSIGN_OR_RETURN(const std::int64_t now, impl_->store->DatabaseNow());
    QSAPI_ASSIGN_OR_RETURN(std::vector<KeyRow> rows, impl_->store->ListKeys());
    const std::lock_guard<std::mutex> lock(impl_->mu);
    QSAPI_ASSIGN_OR_RETURN(rotated, impl_->rotation.RotateDue(rows, now));
    return OkStatus();
  }));
  if (!ran) rotated.clear();  // another node is sweeping now
  return rotated;
}

Result<KeyInfo> Keystore::UpdatePolicy(std::string_view name, const KeyPolicy& policy) {
  const std::lock_guard<std::mutex> lock(impl_->mu);
  QSAPI_ASSIGN_OR_RETURN(KeyRow row, internal::ReadKeyRow(*impl_->store, name));
  QSAPI_ASSIGN_OR_RETURN(KeyType type, internal::KeyTypeOf(row));
  QSAPI_RETURN_IF_ERROR(internal::CheckPolicyLimits(type, row.type, policy));
  if (policy.min_decryption_version < 1 || policy.min_decryption_version > row.current_version) {
    return InvalidArgument("min_decryption_version must be between 1 and the current version (" +
                           std::to_string(row.current_version) + ")");
  }
  row.auto_rotate_seconds = policy.auto_rotate_period.count();
  row.max_operations = policy.max_operations_per_version;
  row.min_decryption_version = policy.min_decryption_version;
  row.deletion_allowed = policy.deletion_allowed;
  QSAPI_RETURN_IF_ERROR(impl_->store->UpdatePolicy(
      row, impl_->audit.Entry("config", row.name, 0,
                              "auto_rotate_seconds=" + std::to_string(row.auto_rotate_seconds) +
                                  " max_operations=" + std::to_string(row.max_operations) +
                                  " min_decryption_version=" + std::to_string(row.min_decryption_version) +
                                  " deletion_allowed=" + (row.deletion_allowed ? "true" : "false"))));
  return impl_->Info(row);
}

Status Keystore::DisableVersion(std::string_view name, std::uint32_t version) {
  const std::lock_guard<std::mutex> lock(impl_->mu);
  QSAPI_ASSIGN_OR_RETURN(KeyRow row, internal::ReadKeyRow(*impl_->store, name));
  QSAPI_RETURN_IF_ERROR(CheckVersionChange(row, version, "disable"));
  QSAPI_ASSIGN_OR_RETURN(std::optional<VersionRow> v, impl_->store->GetVersion(row.id, version));
  if (v && v->state == VersionStateName(VersionState::kDestroyed)) {
    return FailedPrecondition("key \"" + row.name + "\" version " + std::to_string(version) + " is destroyed");
  }
  QSAPI_RETURN_IF_ERROR(impl_->store->SetVersionState(row.id, version,
                                                      std::string(VersionStateName(VersionState::kDisabled)), false,
                                                      impl_->audit.Entry("disable-version", row.name, version)));
  impl_->materials.Erase({row.id, version});
  return OkStatus();
}

Status Keystore::EnableVersion(std::string_view name, std::uint32_t version) {
  const std::lock_guard<std::mutex> lock(impl_->mu);
  QSAPI_ASSIGN_OR_RETURN(KeyRow row, internal::ReadKeyRow(*impl_->store, name));
  QSAPI_RETURN_IF_ERROR(CheckVersionChange(row, version, "enable"));
  QSAPI_ASSIGN_OR_RETURN(std::optional<VersionRow> v, impl_->store->GetVersion(row.id, version));
  if (!v || v->state != VersionStateName(VersionState::kDisabled)) {
    return FailedPrecondition("key \"" + row.name + "\" version " + std::to_string(version) + " is not disabled");
  }
  return impl_->store->SetVersionState(row.id, version, std::string(VersionStateName(VersionState::kDecryptOnly)),
                                       false, impl_->audit.Entry("enable-version", row.name, version));
}

Status Keystore::DestroyVersion(std::string_view name, std::uint32_t version) {
  const std::lock_guard<std::mutex> lock(impl_->mu);
  QSAPI_ASSIGN_OR_RETURN(KeyRow row, internal::ReadKeyRow(*impl_->store, name));
  if (!row.deletion_allowed) {
    return FailedPrecondition("key \"" + row.name + "\" does not allow deletion (set deletion_allowed in its policy)");
  }
  QSAPI_RETURN_IF_ERROR(CheckVersionChange(row, version, "destroy"));
  QSAPI_RETURN_IF_ERROR(impl_->store->SetVersionState(row.id, version,
                                                      std::string(VersionStateName(VersionState::kDestroyed)), true,
                                                      impl_->audit.Entry("destroy-version", row.name, version)));
  impl_->materials.Erase({row.id, version});
  return OkStatus();
}

Status Keystore::Destroy(std::string_view name) {
  const std::lock_guard<std::mutex> lock(impl_->mu);
  QSAPI_ASSIGN_OR_RETURN(KeyRow row, internal::ReadKeyRow(*impl_->store, name));
  if (!row.deletion_allowed) {
    return FailedPrecondition("key \"" + row.name + "\" does not allow deletion (set deletion_allowed in its policy)");
  }
  QSAPI_RETURN_IF_ERROR(
      impl_->store->DeleteKey(row.name, impl_->audit.Entry("destroy", row.name, 0, KeyIdHex(row.id))));
  impl_->Forget(row.id);
  return OkStatus();
}

Result<Bytes> Keystore::Encrypt(std::string_view name, ByteView plaintext, ByteView associated_data) {
  if (plaintext.size() > kMaxPlaintext) return InvalidArgument("plaintext is larger than 64 MiB");
  KeyRow row;
  KeyType type;
  {
    const std::lock_guard<std::mutex> lock(impl_->mu);
    QSAPI_ASSIGN_OR_RETURN(row, impl_->rows.Key(name));
    QSAPI_ASSIGN_OR_RETURN(type, internal::KeyTypeOf(row));
    if (!type.is_aead()) {
      return FailedPrecondition("key \"" + row.name + "\" is a " + row.type + " key; it cannot encrypt");
    }
    QSAPI_ASSIGN_OR_RETURN(row, impl_->rotation.ReserveOperation(row, type));
  }
  QSAPI_ASSIGN_OR_RETURN(VersionRow v, impl_->UsableVersion(row, row.current_version));
  QSAPI_ASSIGN_OR_RETURN(std::shared_ptr<const Material> m, impl_->Load(row, v, type));
  const Bytes header = MakeHeader(row.id, v.version);
  QSAPI_ASSIGN_OR_RETURN(Bytes sealed, std::get<crypto::Aead>(*m).Encrypt(plaintext, Concat(header, associated_data)));
  return Concat(header, sealed);
}

Result<SecretBytes> Keystore::DecryptSecret(std::string_view name, ByteView ciphertext, ByteView associated_data) {
  QSAPI_ASSIGN_OR_RETURN(ParsedHeader h, ParseHeader(ciphertext));
  QSAPI_ASSIGN_OR_RETURN(KeyRow row, impl_->RowForBlob(name, h));
  QSAPI_ASSIGN_OR_RETURN(KeyType type, internal::KeyTypeOf(row));
  if (!type.is_aead()) {
    return FailedPrecondition("key \"" + row.name + "\" is a " + row.type + " key; it cannot decrypt");
  }
  QSAPI_ASSIGN_OR_RETURN(VersionRow v, impl_->UsableVersion(row, h.version));
  QSAPI_ASSIGN_OR_RETURN(std::shared_ptr<const Material> m, impl_->Load(row, v, type));
  return std::get<crypto::Aead>(*m).DecryptSecret(ciphertext.subspan(kHeaderSize),
                                                  Concat(ciphertext.first(kHeaderSize), associated_data));
}

Result<Bytes> Keystore::Decrypt(std::string_view name, ByteView ciphertext, ByteView associated_data) {
  QSAPI_ASSIGN_OR_RETURN(SecretBytes pt, DecryptSecret(name, ciphertext, associated_data));
  return Bytes(pt.view().begin(), pt.view().end());
}

Result<Bytes> Keystore::Sign(std::string_view name, ByteView message) {
  if (message.size() > kMaxPlaintext) return InvalidArgument("message is larger than 64 MiB");
  KeyRow row;
  KeyType type;
  {
    const std::lock_guard<std::mutex> lock(impl_->mu);
    QSAPI_ASSIGN_OR_RETURN(row, impl_->rows.Key(name));
    QSAPI_ASSIGN_OR_RETURN(type, internal::KeyTypeOf(row));
    if (!type.is_signature()) {
      return FailedPrecondition("key \"" + row.name + "\" is a " + row.type + " key; it cannot sign");
    }
    QSAPI_ASSIGN_OR_RETURN(row, impl_->rotation.ReserveOperation(row, type));
  }
  QSAPI_ASSIGN_OR_RETURN(VersionRow v, impl_->UsableVersion(row, row.current_version));
  QSAPI_ASSIGN_OR_RETURN(std::shared_ptr<const Material> m, impl_->Load(row, v, type));
  const Bytes header = MakeHeader(row.id, v.version);
  QSAPI_ASSIGN_OR_RETURN(Signature sig, std::get<crypto::SigningKey>(*m).Sign(Concat(header, message)));
  return Concat(header, sig.view());
}

Status Keystore::VerifySignature(std::string_view name, ByteView message, ByteView signature) {
  QSAPI_ASSIGN_OR_RETURN(ParsedHeader h, ParseHeader(signature));
  QSAPI_ASSIGN_OR_RETURN(KeyRow row, impl_->RowForBlob(name, h));
  QSAPI_ASSIGN_OR_RETURN(KeyType type, internal::KeyTypeOf(row));
  const std::optional<crypto::SignatureAlgorithm> algorithm = type.signature();
  if (!algorithm) return FailedPrecondition("key \"" + row.name + "\" is a " + row.type + " key; it cannot verify");
  QSAPI_ASSIGN_OR_RETURN(VersionRow v, impl_->UsableVersion(row, h.version));
  QSAPI_ASSIGN_OR_RETURN(crypto::VerifyingKey vk, crypto::VerifyingKey::FromBytes(*algorithm, v.public_key));
  return vk.Verify(Concat(signature.first(kHeaderSize), message), signature.subspan(kHeaderSize));
}

Result<SharedSecret> Keystore::Decapsulate(std::string_view name, std::uint32_t version, ByteView ciphertext) {
  QSAPI_ASSIGN_OR_RETURN(KeyRow row, impl_->LockedRow(name));
  QSAPI_ASSIGN_OR_RETURN(KeyType type, internal::KeyTypeOf(row));
  if (!type.is_kem()) {
    return FailedPrecondition("key \"" + row.name + "\" is a " + row.type + " key; it cannot decapsulate");
  }
  QSAPI_ASSIGN_OR_RETURN(VersionRow v, impl_->UsableVersion(row, version));
  QSAPI_ASSIGN_OR_RETURN(std::shared_ptr<const Material> m, impl_->Load(row, v, type));
  return std::get<crypto::KemPrivateKey>(*m).Decapsulate(ciphertext);
}

Result<Bytes> Keystore::PublicKey(std::string_view name, std::uint32_t version) {
  QSAPI_ASSIGN_OR_RETURN(KeyRow row, impl_->LockedRow(name));
  QSAPI_ASSIGN_OR_RETURN(KeyType type, internal::KeyTypeOf(row));
  if (type.is_aead()) {
    return FailedPrecondition("key \"" + row.name + "\" is a symmetric " + row.type + " key; it has no public key");
  }
  if (version == 0) version = row.current_version;
  std::optional<VersionRow> v;
  {
    const std::lock_guard<std::mutex> lock(impl_->mu);
    QSAPI_ASSIGN_OR_RETURN(v, impl_->rows.VersionAsOfCheck(row.id, version));  // LockedRow checked
  }
  if (!v) return NotFound("key \"" + row.name + "\" has no version " + std::to_string(version));
  return v->public_key;
}

Result<crypto::KemPublicKey> Keystore::KemPublicKey(std::string_view name, std::uint32_t version) {
  QSAPI_ASSIGN_OR_RETURN(KeyRow row, impl_->LockedRow(name));
  QSAPI_ASSIGN_OR_RETURN(KeyType type, internal::KeyTypeOf(row));
  const std::optional<crypto::KemAlgorithm> algorithm = type.kem();
  if (!algorithm) return FailedPrecondition("key \"" + row.name + "\" is not a KEM key");
  QSAPI_ASSIGN_OR_RETURN(Bytes pub, PublicKey(name, version));
  return crypto::KemPublicKey::FromBytes(*algorithm, pub);
}

Result<crypto::VerifyingKey> Keystore::VerifyingKey(std::string_view name, std::uint32_t version) {
  QSAPI_ASSIGN_OR_RETURN(KeyRow row, impl_->LockedRow(name));
  QSAPI_ASSIGN_OR_RETURN(KeyType type, internal::KeyTypeOf(row));
  const std::optional<crypto::SignatureAlgorithm> algorithm = type.signature();
  if (!algorithm) return FailedPrecondition("key \"" + row.name + "\" is not a signature key");
  QSAPI_ASSIGN_OR_RETURN(Bytes pub, PublicKey(name, version));
  return crypto::VerifyingKey::FromBytes(*algorithm, pub);
}

Result<IntegrityReport> Keystore::CheckIntegrity() {
  IntegrityReport report;
  QSAPI_ASSIGN_OR_RETURN(std::vector<KeyRow> rows, impl_->store->ListKeys());
  for (const KeyRow& row : rows) {
    ++report.keys;
    Result<KeyType> type = internal::KeyTypeOf(row);
    if (!type.ok()) {
      report.problems.push_back(type.error().message());
      continue;
    }
    QSAPI_ASSIGN_OR_RETURN(std::vector<VersionRow> versions, impl_->store->GetVersions(row.id));
    bool current_found = false;
    for (const VersionRow& v : versions) {
      if (v.version == row.current_version) {
        current_found = true;
        if (v.state != VersionStateName(VersionState::kActive)) {
          report.problems.push_back("key \"" + row.name + "\": the current version is " + v.state);
        }
      }
      if (v.state == VersionStateName(VersionState::kDestroyed)) {
        if (!v.wrapped.empty()) {
          report.problems.push_back("key \"" + row.name + "\" version " + std::to_string(v.version) +
                                    " is destroyed but still holds wrapped material");
        }
        continue;
      }
      ++report.versions_checked;
      // Unwrap afresh (no cache): this is the check that the token still opens every blob.
      if (Result<Material> m = internal::UnwrapMaterial(*impl_->protector, row, v, *type); !m.ok()) {
        report.problems.push_back(m.error().message());
      }
    }
    if (!current_found) report.problems.push_back("key \"" + row.name + "\" has no row for its current version");
  }
  if (Status s = impl_->audit.VerifyChain(); !s.ok()) report.problems.push_back(s.error().message());
  return report;
}

Result<std::vector<AuditEntry>> Keystore::Audit(std::size_t max_entries) { return impl_->audit.Read(max_entries); }

Result<std::optional<TrailKey>> Keystore::FindTrail(std::string_view name) { return impl_->audit.Find(name); }

Result<TrailKey> Keystore::OpenTrail(std::string_view name, std::uint64_t next_seq) {
  return impl_->audit.Open(name, next_seq);
}

Status Keystore::RecordTrailHead(std::string_view name, std::uint64_t seq, ByteView mac) {
  return impl_->audit.RecordHead(name, seq, mac);
}

Result<TrailKey> Keystore::RestartTrail(std::string_view name, std::uint64_t first_seq, std::string_view why) {
  return impl_->audit.Restart(name, first_seq, why);
}

Result<TrailHead> Keystore::AuditHead() { return impl_->audit.Head(); }

Status Keystore::CheckAuditHead(const TrailHead& head) { return impl_->audit.CheckHead(head); }

Status Keystore::CreateRecord(std::string_view kind, std::string_view name, ByteView value, std::string_view actor) {
  QSAPI_RETURN_IF_ERROR(CheckRecordName(kind, name));
  if (value.empty() || value.size() > internal::kMaxRecordValue) {
    return InvalidArgument("a record's value has 1 byte to 64 KiB");
  }
  const internal::RecordRow row{.kind = std::string(kind),
                                .name = std::string(name),
                                .value = Bytes(value.begin(), value.end()),
                                .updated = internal::UnixNow()};
  return impl_->store->CreateRecord(
      row, impl_->audit.Entry("record.create", "", 0, row.kind + " " + row.name, std::string(actor)));
}

Status Keystore::DeleteRecord(std::string_view kind, std::string_view name, std::string_view actor) {
  QSAPI_RETURN_IF_ERROR(CheckRecordName(kind, name));
  return impl_->store->DeleteRecord(
      std::string(kind), std::string(name),
      impl_->audit.Entry("record.delete", "", 0, std::string(kind) + " " + std::string(name), std::string(actor)));
}

Result<std::vector<Record>> Keystore::ListRecords(std::string_view kind) {
  QSAPI_RETURN_IF_ERROR(CheckRecordKind(kind));
  QSAPI_ASSIGN_OR_RETURN(std::vector<internal::RecordRow> rows, impl_->store->ListRecords(std::string(kind)));
  std::vector<Record> out;
  out.reserve(rows.size());
  for (internal::RecordRow& r : rows) {
    out.push_back(Record{.name = std::move(r.name),
                         .value = std::move(r.value),
                         .updated = std::chrono::system_clock::time_point(std::chrono::seconds(r.updated))});
  }
  return out;
}

Status Keystore::Probe() {
  static constexpr std::uint8_t kProbe[] = {'q', 's', 'a', 'p', 'i'};
  static constexpr std::uint8_t kAad[] = {'p', 'r', 'o', 'b', 'e'};
  QSAPI_ASSIGN_OR_RETURN(Bytes blob, impl_->protector->Wrap(kProbe, kAad));
  QSAPI_ASSIGN_OR_RETURN(SecretBytes back, impl_->protector->Unwrap(blob, kAad));
  if (!ConstantTimeEqual(back.view(), kProbe)) return Internal("the token's wrap/unwrap probe returned other bytes");
  Result<std::uint64_t> counter = impl_->store->ChangeCounter();
  if (!counter.ok()) return counter.error();
  return OkStatus();
}

void Keystore::FlushCache() {
  const std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->materials.Clear();
}

Keystore::CacheStats Keystore::cache_stats() const {
  const std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->materials.stats();
}

std::string Keystore::token_description() const { return impl_->protector->Describe(); }
std::string Keystore::store_description() const { return impl_->store_description; }
const std::string& Keystore::cluster_id() const { return impl_->cluster_id; }

}  // namespace qsapi::keystore
