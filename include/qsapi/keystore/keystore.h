// qsapi/keystore/keystore.h: named, versioned keys whose private material lives only under an HSM.
//
// Model (like Vault Transit's, with an HSM underneath):
//   - A key has a name, a random 16-byte key id, a type (an AEAD, a KEM or a signature
//     algorithm), a policy and numbered versions 1, 2, ... The newest version is the current one:
//     it encrypts, signs and is the public key handed out. Older versions stay usable for
//     decrypt / verify / decapsulate ("decrypt-only") until disabled, destroyed or below the
//     policy's minimum decryption version.
//   - Private material (an AEAD key, a KEM seed, a signature seed) exists in clear only in locked,
//     zeroised memory. At rest it is a ciphertext made by the HSM: C_Encrypt with CKM_AES_GCM under
//     a sensitive, non-extractable AES-256 KEK that never leaves the token, with associated data
//     binding key id, version, type and purpose (a blob moved to another key or version fails).
//   - Metadata (keys, versions, policy, usage counters, audit trail) lives behind a small store
//     interface; SQLite (WAL, synchronous=FULL) is the embedded default.
//   - Every ciphertext and signature made here starts with a header naming the key id and version,
//     so that decrypt and verify pick the right version.
//   - Rotation: manual (Rotate), time-based (the policy's period, checked on use and by
//     RotateDue) and usage-based: a version never exceeds max_operations_per_version; the
//     operation that would exceed it first rotates. Usage is leased in blocks that are persisted
//     before use, so a crash can over-count but never under-count.
//   - Create, Rotate and Destroy are each one metadata transaction; nothing is written to the
//     token per key. A kill -9 at any point leaves either the old or the new state.
//
// Thread-safe.
#ifndef QSAPI_KEYSTORE_KEYSTORE_H_
#define QSAPI_KEYSTORE_KEYSTORE_H_

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "qsapi/crypto/aead.h"
#include "qsapi/crypto/kem.h"
#include "qsapi/crypto/signature.h"
#include "qsapi/result.h"
#include "qsapi/secret.h"

namespace qsapi::keystore {

// What a key is for, fixed by its type.
enum class KeyPurpose : std::uint8_t { kEncrypt, kKem, kSign };
std::string_view KeyPurposeName(KeyPurpose purpose) noexcept;  // "encrypt", "kem", "sign"

// KeyType is one algorithm of the crypto core: an AEAD (an encryption key), a KEM or a signature
// algorithm. The kind it holds is the key's purpose. aead(), kem() and signature() return the
// algorithm of their kind, nullopt for a type of another kind. The default is AES-256-GCM.
class KeyType {
 public:
  using Algorithm = std::variant<crypto::AeadAlgorithm, crypto::KemAlgorithm, crypto::SignatureAlgorithm>;

  constexpr KeyType() noexcept = default;
  constexpr explicit KeyType(crypto::AeadAlgorithm a) noexcept : algorithm_(a) {}
  constexpr explicit KeyType(crypto::KemAlgorithm k) noexcept : algorithm_(k) {}
  constexpr explicit KeyType(crypto::SignatureAlgorithm s) noexcept : algorithm_(s) {}

  [[nodiscard]] constexpr const Algorithm& algorithm() const noexcept { return algorithm_; }
  [[nodiscard]] constexpr KeyPurpose purpose() const noexcept {
    if (is_kem()) return KeyPurpose::kKem;
    if (is_signature()) return KeyPurpose::kSign;
    return KeyPurpose::kEncrypt;
  }

  [[nodiscard]] constexpr bool is_aead() const noexcept {
    return std::holds_alternative<crypto::AeadAlgorithm>(algorithm_);
  }
  [[nodiscard]] constexpr bool is_kem() const noexcept {
    return std::holds_alternative<crypto::KemAlgorithm>(algorithm_);
  }
  [[nodiscard]] constexpr bool is_signature() const noexcept {
    return std::holds_alternative<crypto::SignatureAlgorithm>(algorithm_);
  }

  [[nodiscard]] constexpr std::optional<crypto::AeadAlgorithm> aead() const noexcept {
    return Get<crypto::AeadAlgorithm>();
  }
  [[nodiscard]] constexpr std::optional<crypto::KemAlgorithm> kem() const noexcept {
    return Get<crypto::KemAlgorithm>();
  }
  [[nodiscard]] constexpr std::optional<crypto::SignatureAlgorithm> signature() const noexcept {
    return Get<crypto::SignatureAlgorithm>();
  }

  friend constexpr bool operator==(const KeyType&, const KeyType&) = default;

 private:
  template <typename A>
  [[nodiscard]] constexpr std::optional<A> Get() const noexcept {
    if (const A* a = std::get_if<A>(&algorithm_)) return *a;
    return std::nullopt;
  }

  Algorithm algorithm_{crypto::AeadAlgorithm::kAes256Gcm};
};
// KeyTypeName returns the crypto core's name ("AES-256-GCM", "ML-KEM-768", "ML-DSA-65", ...).
std::string KeyTypeName(const KeyType& type);
// ParseKeyType accepts those names, case-insensitively. kInvalidArgument lists the valid ones.
Result<KeyType> ParseKeyType(std::string_view name);

enum class VersionState : std::uint8_t { kActive, kDecryptOnly, kDisabled, kDestroyed };
std::string_view VersionStateName(VersionState state) noexcept;  // "active", "decrypt-only", ...

using KeyId = std::array<std::uint8_t, 16>;
std::string KeyIdHex(const KeyId& id);

struct KeyPolicy {
  std::chrono::seconds auto_rotate_period{0};  // 0: no time-based rotation
  // 0: the type's default (AES-256-GCM with random nonces: 2^31, half the SP 800-38D bound;
  // XChaCha20-Poly1305: 2^48; KEM and signature keys: unlimited). Never above the type's bound.
  std::uint64_t max_operations_per_version = 0;
  std::uint32_t min_decryption_version = 1;
  bool deletion_allowed = false;
};

struct VersionInfo {
  std::uint32_t version = 0;
  VersionState state = VersionState::kActive;
  std::chrono::system_clock::time_point created;
  std::uint64_t operations = 0;  // an upper bound: leased blocks count in full
  Bytes public_key;              // KEM and signature keys; empty for AEAD keys
};

struct KeyInfo {
  std::string name;
  KeyId id{};
  KeyType type;
  KeyPolicy policy;  // with max_operations_per_version resolved to the effective value
  std::chrono::system_clock::time_point created;
  std::chrono::system_clock::time_point rotated;
  std::uint32_t current_version = 0;
  std::vector<VersionInfo> versions;  // oldest first
};

// Where the token is and how to log in.
struct TokenOptions {
  std::string module_path = "/usr/lib/softhsm/libsofthsm2.so";
  std::string token_label = "qsapi";
  std::string kek_label = "qsapi-kek";
  std::string pin_file;  // a file holding the user PIN (mode 0600 or stricter is required)
  std::string pin_env;   // or an environment variable holding it (used when pin_file is empty)
};

// Where the metadata lives: one SQLite file (one node, the embedded default) or a PostgreSQL
// database shared by several nodes (docs/OPERATIONS.md, "Several nodes").
enum class StoreBackend : std::uint8_t { kSqlite, kPostgresql };
// ParseStoreBackend accepts "sqlite" and "postgresql"; StoreBackendName gives them back.
Result<StoreBackend> ParseStoreBackend(std::string_view name);
std::string_view StoreBackendName(StoreBackend backend) noexcept;

struct PostgresOptions {
  // A libpq connection string ("host=db1,db2 port=5432 dbname=qsapi user=qsapi") or URI. It may
  // not hold a password (kInvalidArgument): that comes from password_file (mode 0600) or
  // password_env, or from libpq's own passfile; none of them is ever in a message.
  std::string conninfo;
  std::string password_file;
  std::string password_env;
  int pool_size = 4;  // connections per node, 1 to 64
  std::chrono::seconds connect_timeout{5};
};

struct KeystoreOptions {
  TokenOptions token;
  StoreBackend backend = StoreBackend::kSqlite;
  std::filesystem::path database;  // kSqlite: the SQLite file
  PostgresOptions postgres;        // kPostgresql
  // The cluster this node belongs to (32 hex characters, as `qsapi cluster init` prints it). Empty:
  // whichever the database holds, made at the first open of an empty database. Set, a database of
  // another cluster, or one with no identity yet, is refused.
  std::string cluster_id;
  std::chrono::seconds cache_ttl{30};  // how long unwrapped material stays in memory after use
  std::size_t cache_max_entries = 256;
  std::string actor = "local";  // who the audit trail names for operations of this handle
};

// EmbeddedLayout is the default under a data directory: SoftHSM2 config and token directory, the
// PIN files and the database.
struct EmbeddedLayout {
  std::filesystem::path data_dir;
  [[nodiscard]] std::filesystem::path softhsm_conf() const { return data_dir / "softhsm2.conf"; }
  [[nodiscard]] std::filesystem::path token_dir() const { return data_dir / "tokens"; }
  [[nodiscard]] std::filesystem::path so_pin_file() const { return data_dir / "pins" / "so.pin"; }
  [[nodiscard]] std::filesystem::path user_pin_file() const { return data_dir / "pins" / "user.pin"; }
  [[nodiscard]] std::filesystem::path database() const { return data_dir / "keystore.db"; }
};

// InitEmbedded creates, if missing, the embedded default under `data_dir`: the directory (0700),
// a SoftHSM2 config, an initialised token labelled "qsapi" with generated SO and user PINs kept in
// 0600 files, the KEK inside the token and the database. Idempotent: returns true when it created
// the token now, false when everything existed. Sets SOFTHSM2_CONF for this process.
// `module_path` may name another SoftHSM2 build.
Result<bool> InitEmbedded(const std::filesystem::path& data_dir,
                          const std::string& module_path = "/usr/lib/softhsm/libsofthsm2.so");
// InitEmbeddedToken is InitEmbedded without the SQLite database: for a node whose metadata is in
// PostgreSQL (the token's KEK must then be the cluster's: see `qsapi cluster join`).
Result<bool> InitEmbeddedToken(const std::filesystem::path& data_dir,
                               const std::string& module_path = "/usr/lib/softhsm/libsofthsm2.so");

// JoinEmbedded gives the node under `data_dir` (empty, or without a token) a copy of the token
// of the node whose data directory is `from`, so that both hold the cluster's KEK: the token's
// files and the user PIN file (mode 0600). Keystore::Open then checks the KEK against the
// cluster's canary. kFailedPrecondition when `from` has no token or `data_dir` has one already.
Status JoinEmbedded(const std::filesystem::path& from, const std::filesystem::path& data_dir,
                    const std::string& module_path = "/usr/lib/softhsm/libsofthsm2.so");

// EmbeddedOptions returns the KeystoreOptions for an embedded data directory (and sets
// SOFTHSM2_CONF for this process so that the module finds its token).
KeystoreOptions EmbeddedOptions(const std::filesystem::path& data_dir);

// An AEAD ciphertext or a signature made by the keystore: a header naming the key and version,
// then the algorithm's output. Binary layout (docs/PROTOCOL.md):
//   byte 0       format (1)
//   bytes 1..16  key id
//   bytes 17..20 version, big-endian
//   bytes 21..   AEAD: nonce || ciphertext || tag; signature: the signature
// The header is associated data of the AEAD; a signature covers it too (the signed message is
// header || message), so neither can be moved to another key or version.
inline constexpr std::size_t kHeaderSize = 21;
inline constexpr std::uint8_t kFormatVersion = 1;
struct ParsedHeader {
  KeyId key_id{};
  std::uint32_t version = 0;
};
Result<ParsedHeader> ParseHeader(ByteView blob);
// The text form "qsapi:v<version>:<base64url, no padding>" of a binary blob, and back.
std::string ToText(ByteView blob);
Result<Bytes> FromText(std::string_view text);

struct AuditEntry {
  std::uint64_t seq = 0;
  std::chrono::system_clock::time_point at;
  std::string actor, action, key_name;
  std::uint32_t version = 0;  // 0: not about one version
  std::string result;         // "ok" or an error code name
  std::string detail;         // never data or secrets
};

// An audit trail kept outside the keystore (qsapid's audit log) that the keystore keys and
// anchors: the trail's HMAC-SHA-256 key, which exists outside memory only wrapped by the KEK; the
// first entry that carries a MAC (entries before it were written before the trail was keyed);
// and the head recorded last, which the trail must still contain (head_seq 0: none recorded).
struct TrailKey {
  SecretBytes key{};
  std::uint64_t first_seq = 1;
  std::uint64_t head_seq = 0;
  Bytes head_mac{};
};

// The keystore's own trail's newest entry: its seq and chain value (seq 0: an empty trail).
struct TrailHead {
  std::uint64_t seq = 0;
  Bytes value{};
};

// A record of the deployment's shared state kept beside the keys, in the same database, so that
// every node of a cluster reads the same (qsapid keeps its API tokens here on PostgreSQL). The
// value is the caller's (at most 64 KiB, never a secret in clear: a token's hash, not the token).
struct Record {
  std::string name;
  Bytes value;
  std::chrono::system_clock::time_point updated;
};

// A record to write into the target of a migration (Keystore::Migrate): state that lived outside
// the database on one node (qsapid's token file) and lives in it on several.
struct RecordToAdd {
  std::string kind, name;
  Bytes value;
};

// What Keystore::Migrate does besides copying: records to add, audit trails to rename (a node's
// trail is "qsapid.audit" on one node and "qsapid.audit@<node>" in a cluster; the trail key is
// re-wrapped under its new name, nothing else), and who the audit entries name.
struct MigrationExtras {
  std::vector<RecordToAdd> add;
  std::vector<std::pair<std::string, std::string>> rename_trails;  // (old name, new name)
  std::string actor;
};

// StoreMigration is what Keystore::Migrate moved.
struct StoreMigration {
  std::string from, to;  // store descriptions
  std::string cluster_id;
  std::size_t keys = 0, versions = 0, records = 0, trails = 0;
  std::uint64_t audit_entries = 0;  // the trail's length before the migration's own entry
  std::vector<std::string> added;   // "<kind> <name>" of each RecordToAdd, "trail <old> -> <new>"
};

// IntegrityReport is what CheckIntegrity found.
struct IntegrityReport {
  std::size_t keys = 0;
  std::size_t versions_checked = 0;
  std::vector<std::string> problems;  // empty when consistent
};

// Errors. Every call may fail with kUnavailable (the token or the database cannot be reached or
// written: retry later; nothing was changed) and kDataLoss (stored state fails its checks: an
// altered row, a blob that does not unwrap, a broken trail); a name that is not valid is
// kInvalidArgument, an unknown one kNotFound. What else a call returns is said beside it. A failed
// call changes nothing stored.
class Keystore {
 public:
  // Open loads the PKCS#11 module, logs in to the token, opens the database and checks that the
  // token's KEK is the cluster's (the canary of the database's identity unwraps). Errors say what
  // is wrong and what to do: module missing, token not found, wrong PIN, KEK missing, a database
  // that is not ours, a database of another cluster (kFailedPrecondition), this node's KEK not the
  // cluster's (kFailedPrecondition), a database that cannot be reached (kUnavailable).
  static Result<std::unique_ptr<Keystore>> Open(const KeystoreOptions& options);
  // Migrate moves the whole store of `from` into the store of `to`, which must hold nothing yet
  // (`qsapi store migrate`: one node's SQLite file to the cluster's PostgreSQL). Nothing is
  // re-wrapped: both must name the same token (the same KEK), which Open checks against the
  // source's canary and then the copy's. Steps: the source is read in one snapshot and its trail
  // verified; everything (and `add`) is written in one transaction; the copy is opened, its trail
  // verified and compared with the source's head; the copy's trail records the migration; the
  // source is marked moved, so that every later Open of it is refused with an error naming `to`.
  // kFailedPrecondition for a target that is not empty or the same store; a failure before the
  // copy is committed changes nothing.
  static Result<StoreMigration> Migrate(const KeystoreOptions& from, const KeystoreOptions& to,
                                        const MigrationExtras& extras = {});
  ~Keystore();
  Keystore(const Keystore&) = delete;
  Keystore& operator=(const Keystore&) = delete;
  Keystore(Keystore&&) = delete;
  Keystore& operator=(Keystore&&) = delete;

  // Key lifecycle. Names: 1-64 of [a-z0-9._-], starting with a letter or digit.
  // Create: kAlreadyExists for a name in use; kInvalidArgument for a policy out of range (an
  // operation limit above the AEAD bound, a negative period).
  Result<KeyInfo> Create(std::string_view name, const KeyType& type, const KeyPolicy& policy = {});
  Result<KeyInfo> Get(std::string_view name);
  // TypeOf is a key's type, from the row cache when it holds the key (no database read): a key's
  // type never changes, but a name destroyed and made again with another type may be answered with
  // the old one until the next operation on it. For estimates (qsapid prices each request by it),
  // never for a check; kNotFound for an unknown name.
  Result<KeyType> TypeOf(std::string_view name);
  Result<std::vector<KeyInfo>> List();
  // Rotate: kFailedPrecondition when the key has used every version number.
  Result<KeyInfo> Rotate(std::string_view name);
  // UpdatePolicy changes the policy; min_decryption_version may not exceed the current version
  // (kInvalidArgument, as for values out of range).
  Result<KeyInfo> UpdatePolicy(std::string_view name, const KeyPolicy& policy);
  // DisableVersion / EnableVersion: a disabled version cannot be used (reversible). The current
  // version cannot be disabled (rotate first): kFailedPrecondition, as for a destroyed version or
  // enabling one that is not disabled; kNotFound for an unknown version.
  Status DisableVersion(std::string_view name, std::uint32_t version);
  Status EnableVersion(std::string_view name, std::uint32_t version);
  // DestroyVersion wipes one non-current version's material (irreversible). Destroy wipes every
  // version and retires the name; both need the policy's deletion_allowed (kFailedPrecondition
  // without it, or for the current version).
  Status DestroyVersion(std::string_view name, std::uint32_t version);
  Status Destroy(std::string_view name);
  // RotateDue rotates every key whose time-based period has elapsed by the database's clock;
  // returns the names rotated. On a database shared by several nodes one node sweeps at a time:
  // a call while another node sweeps returns an empty list and changes nothing.
  Result<std::vector<std::string>> RotateDue();

  // Operations. A version of 0 means the current one. A key of the wrong purpose (encrypting with
  // a signature key) is kFailedPrecondition, and so is a disabled or destroyed version or one below
  // min_decryption_version; a ciphertext or signature that does not verify is kAuthenticationFailed
  // (one error, whatever was wrong); one made with another key is kInvalidArgument without naming it.
  Result<Bytes> Encrypt(std::string_view name, ByteView plaintext, ByteView associated_data = {});
  // Decrypt picks the key by the id in the header (`name` must match it when non-empty).
  Result<Bytes> Decrypt(std::string_view name, ByteView ciphertext, ByteView associated_data = {});
  Result<SecretBytes> DecryptSecret(std::string_view name, ByteView ciphertext, ByteView associated_data = {});
  Result<Bytes> Sign(std::string_view name, ByteView message);
  Status VerifySignature(std::string_view name, ByteView message, ByteView signature);
  Result<SharedSecret> Decapsulate(std::string_view name, std::uint32_t version, ByteView ciphertext);
  Result<crypto::KemPublicKey> KemPublicKey(std::string_view name, std::uint32_t version = 0);
  Result<crypto::VerifyingKey> VerifyingKey(std::string_view name, std::uint32_t version = 0);
  // PublicKey returns the raw public key of a KEM or signature key version.
  Result<Bytes> PublicKey(std::string_view name, std::uint32_t version = 0);

  // CheckIntegrity unwraps every live version in the token and checks it against its public key
  // (or that it unwraps at all, for AEAD keys), and checks the audit chain. What it finds is in
  // the report's problems; the call itself fails only when it cannot read.
  Result<IntegrityReport> CheckIntegrity();
  Result<std::vector<AuditEntry>> Audit(std::size_t max_entries = 100);
  // OpenTrail returns trail `name`'s key, creating it when the trail is new (random, wrapped by
  // the KEK with name and first_seq = next_seq bound to it, the creation in this keystore's trail).
  // kDataLoss when the stored key does not unwrap (its row was altered or moved).
  Result<TrailKey> OpenTrail(std::string_view name, std::uint64_t next_seq);
  // FindTrail is OpenTrail without creating: nullopt for a trail never keyed.
  Result<std::optional<TrailKey>> FindTrail(std::string_view name);
  // RecordTrailHead records the trail's newest entry; kFailedPrecondition for one older than the
  // head already recorded (a head moves back only through RestartTrail).
  Status RecordTrailHead(std::string_view name, std::uint64_t seq, ByteView mac);
  // RestartTrail gives the trail a new key, keyed from first_seq, and forgets its head: a new
  // chain begun after a broken one was moved aside. Recorded in this keystore's trail with `why`.
  Result<TrailKey> RestartTrail(std::string_view name, std::uint64_t first_seq, std::string_view why);
  // AuditHead is this keystore's own trail's newest entry, for anchoring it elsewhere (qsapid
  // writes it into its audit log); CheckAuditHead says kDataLoss when the trail no longer holds
  // that entry with that value (cut short or rolled back since it was anchored).
  Result<TrailHead> AuditHead();
  Status CheckAuditHead(const TrailHead& head);

  // Records of `kind` (1-32 of [a-z0-9-]); names of 1-128 printable ASCII characters. Each change
  // is one transaction with its entry in the trail, naming `actor` (empty: this handle's).
  // CreateRecord: kAlreadyExists for a name in use (on any node). DeleteRecord: kNotFound.
  Status CreateRecord(std::string_view kind, std::string_view name, ByteView value, std::string_view actor = {});
  Status DeleteRecord(std::string_view kind, std::string_view name, std::string_view actor = {});
  Result<std::vector<Record>> ListRecords(std::string_view kind);

  // Probe is the cheap liveness check for health output: one wrap and unwrap in the token and one
  // metadata read. (CheckIntegrity is the thorough one: it unwraps every version.)
  Status Probe();

  // FlushCache wipes every unwrapped key held in memory.
  void FlushCache();
  struct CacheStats {
    std::uint64_t hits = 0, misses = 0;
    std::size_t entries = 0;
  };
  [[nodiscard]] CacheStats cache_stats() const;
  [[nodiscard]] std::string token_description() const;  // "SoftHSM slot 123 'qsapi' (SoftHSM2 2.6)"
  [[nodiscard]] std::string store_description() const;  // "SQLite /var/lib/qsapi/keystore.db", "PostgreSQL host=..."
  [[nodiscard]] const std::string& cluster_id() const;  // the database's cluster (32 hex)

  class Impl;

 private:
  explicit Keystore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace qsapi::keystore

#endif  // QSAPI_KEYSTORE_KEYSTORE_H_
