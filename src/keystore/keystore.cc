// The keystore: key lifecycle, rotation, usage accounting and the operations on top of a
// KeyProtector (the PKCS#11 token) and a MetadataStore (SQLite). See qsapi/keystore/keystore.h.
#include "qsapi/keystore/keystore.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <utility>
#include <variant>

#include <sodium.h>

#include "common/internal/text.h"
#include "keystore/internal/metadata_store.h"
#include "keystore/internal/pkcs11_token.h"
#include "qsapi/crypto/random.h"
#include "qsapi/log.h"

namespace qsapi::keystore {

using internal::AuditRow;
using internal::KeyRow;
using internal::VersionRow;

// ---- names -------------------------------------------------------------------------------

std::string_view KeyPurposeName(KeyPurpose purpose) noexcept {
  switch (purpose) {
    case KeyPurpose::kEncrypt: return "encrypt";
    case KeyPurpose::kKem: return "kem";
    case KeyPurpose::kSign: return "sign";
  }
  return "unknown";
}

std::string_view VersionStateName(VersionState state) noexcept {
  switch (state) {
    case VersionState::kActive: return "active";
    case VersionState::kDecryptOnly: return "decrypt-only";
    case VersionState::kDisabled: return "disabled";
    case VersionState::kDestroyed: return "destroyed";
  }
  return "unknown";
}

namespace {

Result<VersionState> ParseVersionState(std::string_view s) {
  for (VersionState v :
       {VersionState::kActive, VersionState::kDecryptOnly, VersionState::kDisabled, VersionState::kDestroyed}) {
    if (VersionStateName(v) == s) return v;
  }
  return Error(ErrorCode::kDataLoss, "keystore metadata holds an unknown version state \"" + std::string(s) + "\"");
}

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::vector<KeyType> AllKeyTypes() {
  std::vector<KeyType> all;
  for (auto a : {crypto::AeadAlgorithm::kAes256Gcm, crypto::AeadAlgorithm::kXChaCha20Poly1305}) {
    all.push_back(KeyType{.purpose = KeyPurpose::kEncrypt, .aead = a});
  }
  for (auto k : {crypto::KemAlgorithm::kMlKem512, crypto::KemAlgorithm::kMlKem768, crypto::KemAlgorithm::kMlKem1024,
                 crypto::KemAlgorithm::kXWing, crypto::KemAlgorithm::kMlKem1024P384}) {
    all.push_back(KeyType{.purpose = KeyPurpose::kKem, .kem = k});
  }
  for (int s = 0; s <= static_cast<int>(crypto::SignatureAlgorithm::kMlDsa65Ed25519); ++s) {
    all.push_back(KeyType{.purpose = KeyPurpose::kSign, .sig = static_cast<crypto::SignatureAlgorithm>(s)});
  }
  return all;
}

}  // namespace

std::string KeyTypeName(const KeyType& type) {
  switch (type.purpose) {
    case KeyPurpose::kEncrypt: return std::string(crypto::AeadAlgorithmName(type.aead));
    case KeyPurpose::kKem: return std::string(crypto::KemAlgorithmName(type.kem));
    case KeyPurpose::kSign: return std::string(crypto::SignatureAlgorithmName(type.sig));
  }
  return "unknown";
}

Result<KeyType> ParseKeyType(std::string_view name) {
  std::string valid;
  for (const KeyType& t : AllKeyTypes()) {
    if (Lower(KeyTypeName(t)) == Lower(name)) return t;
    valid += (valid.empty() ? "" : ", ") + KeyTypeName(t);
  }
  return InvalidArgument("unknown key type \"" + std::string(name) + "\"; valid types: " + valid);
}

std::string KeyIdHex(const KeyId& id) { return qsapi::internal::HexEncode(id); }

// ---- blob headers and the text form ------------------------------------------------------

namespace {

Bytes MakeHeader(const KeyId& id, std::uint32_t version) {
  Bytes h;
  h.reserve(kHeaderSize);
  h.push_back(kFormatVersion);
  h.insert(h.end(), id.begin(), id.end());
  for (int s = 24; s >= 0; s -= 8) h.push_back(static_cast<std::uint8_t>(version >> s));
  return h;
}

Bytes Concat(ByteView a, ByteView b) {
  Bytes out(a.begin(), a.end());
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

}  // namespace

Result<ParsedHeader> ParseHeader(ByteView blob) {
  if (blob.size() < kHeaderSize) return InvalidArgument("ciphertext or signature is too short to carry a key header");
  if (blob[0] != kFormatVersion) {
    return InvalidArgument("ciphertext or signature has format " + std::to_string(blob[0]) + "; this build reads " +
                           std::to_string(kFormatVersion));
  }
  ParsedHeader h;
  std::copy(blob.begin() + 1, blob.begin() + 17, h.key_id.begin());
  h.version = (std::uint32_t{blob[17]} << 24) | (std::uint32_t{blob[18]} << 16) | (std::uint32_t{blob[19]} << 8) |
              std::uint32_t{blob[20]};
  if (h.version == 0) return InvalidArgument("ciphertext or signature names key version 0");
  return h;
}

std::string ToText(ByteView blob) {
  std::uint32_t version = 0;
  if (auto h = ParseHeader(blob); h.ok()) version = h->version;
  std::string b64(sodium_base64_ENCODED_LEN(blob.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING), '\0');
  sodium_bin2base64(b64.data(), b64.size(), blob.data(), blob.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  b64.resize(std::strlen(b64.c_str()));
  return "qsapi:v" + std::to_string(version) + ":" + b64;
}

Result<Bytes> FromText(std::string_view text) {
  constexpr std::size_t kMaxText = std::size_t{96} << 20;
  if (text.size() > kMaxText) return InvalidArgument("text ciphertext is longer than 96 MiB");
  if (!text.starts_with("qsapi:v")) return InvalidArgument("text ciphertext must start with \"qsapi:v\"");
  const std::size_t colon = text.find(':', 7);
  if (colon == std::string_view::npos || colon == 7 || colon > 17) {
    return InvalidArgument("text ciphertext must look like qsapi:v<version>:<base64url>");
  }
  const std::string_view vtext = text.substr(7, colon - 7);
  if (!std::all_of(vtext.begin(), vtext.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return InvalidArgument("text ciphertext has a non-numeric version");
  }
  const std::string_view b64 = text.substr(colon + 1);
  Bytes out(b64.size() * 3 / 4 + 3);
  std::size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(out.data(), out.size(), b64.data(), b64.size(), nullptr, &len, &end,
                        sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
      end != b64.data() + b64.size()) {
    return InvalidArgument("text ciphertext is not valid base64url (no padding)");
  }
  out.resize(len);
  QSAPI_ASSIGN_OR_RETURN(ParsedHeader h, ParseHeader(out));
  if (std::to_string(h.version) != vtext) {
    return InvalidArgument("text ciphertext's version prefix v" + std::string(vtext) +
                           " disagrees with its header (version " + std::to_string(h.version) + ")");
  }
  return out;
}

// ---- the keystore ------------------------------------------------------------------------

namespace {

constexpr std::uint64_t kLeaseBlock = 1024;
constexpr std::uint64_t kAesGcmBound = std::uint64_t{1} << 32;  // SP 800-38D 8.3, random nonces
constexpr std::uint64_t kAesGcmDefault = std::uint64_t{1} << 31;
constexpr std::uint64_t kXChaChaDefault = std::uint64_t{1} << 48;
constexpr std::size_t kMaxPlaintext = std::size_t{64} << 20;

std::uint64_t DefaultMaxOps(const KeyType& t) {
  if (t.purpose != KeyPurpose::kEncrypt) return 0;
  return t.aead == crypto::AeadAlgorithm::kAes256Gcm ? kAesGcmDefault : kXChaChaDefault;
}
std::uint64_t BoundMaxOps(const KeyType& t) {
  if (t.purpose != KeyPurpose::kEncrypt) return 0;
  return t.aead == crypto::AeadAlgorithm::kAes256Gcm ? kAesGcmBound : kXChaChaDefault;
}

std::int64_t Now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

Status CheckName(std::string_view name) {
  const bool ok = !name.empty() && name.size() <= 64 && std::isalnum(static_cast<unsigned char>(name[0])) &&
                  std::all_of(name.begin(), name.end(), [](char c) {
                    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
                  });
  if (!ok) {
    return InvalidArgument(
        "a key name has 1 to 64 characters of a-z, 0-9, '.', '_' and '-', and starts with a letter "
        "or digit");
  }
  return OkStatus();
}

// The associated data that binds a wrapped blob to its key, version, type and purpose.
// TrailAad binds a trail key's wrapping to the trail's name and first keyed entry, so that a row
// moved to another trail, or a first_seq raised to pass forged unkeyed entries off, does not unwrap.
Bytes TrailAad(std::string_view trail, std::uint64_t first_seq) {
  const std::string text = std::string("qsapi trail key v1") + '\0' + std::string(trail) + '\0' +
                           std::to_string(first_seq);
  return Bytes(text.begin(), text.end());
}

constexpr std::size_t kTrailKeySize = 32;
constexpr const char* kOwnTrail = "keystore";

Result<TrailKey> UnwrapTrail(internal::KeyProtector& protector, const internal::TrailRow& row) {
  Result<SecretBytes> key = protector.Unwrap(row.wrapped, TrailAad(row.trail, row.first_seq));
  if (!key.ok() || key->size() != kTrailKeySize) {
    return DataLoss("the key of audit trail \"" + row.trail +
                    "\" does not unwrap with this token's KEK (its row in the keystore database was altered, or "
                    "the database belongs to another token)");
  }
  return TrailKey{.key = std::move(*key), .first_seq = row.first_seq, .head_seq = row.head_seq, .head_mac = row.head_mac};
}

// KeyOwnTrail keys the store's own audit trail, creating its key on first open.
Status KeyOwnTrail(internal::KeyProtector& protector, internal::MetadataStore& store, const std::string& actor) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    QSAPI_ASSIGN_OR_RETURN(std::optional<internal::TrailRow> row, store.GetTrail(kOwnTrail));
    if (row) {
      QSAPI_ASSIGN_OR_RETURN(TrailKey k, UnwrapTrail(protector, *row));
      store.UseAuditKey(std::move(k.key), k.first_seq);
      return OkStatus();
    }
    SecretBytes key(kTrailKeySize);
    QSAPI_RETURN_IF_ERROR(crypto::RandomFill(key.span()));
    Result<std::uint64_t> made = store.CreateTrail(
        internal::TrailRow{.trail = kOwnTrail, .updated = Now()},
        internal::AuditRow{.at = Now(),
                           .actor = actor,
                           .action = "trail.create",
                           .key_name = "",
                           .version = 0,
                           .result = "ok",
                           .detail = "this trail is keyed from here on (HMAC-SHA-256, key wrapped by the KEK)"},
        &key, [&](std::uint64_t first) { return protector.Wrap(key.view(), TrailAad(kOwnTrail, first)); });
    if (made.ok()) return OkStatus();
    if (made.error().code() != ErrorCode::kAlreadyExists) return made.error();
    // Another process keyed it first: read its row.
  }
  return Unavailable("the keystore audit trail's key could not be read or created");
}

Bytes WrapAad(const KeyId& id, std::uint32_t version, const KeyType& type) {
  const std::string label = "qsapi keystore v1";
  Bytes aad(label.begin(), label.end());
  aad.push_back(0);
  const Bytes h = MakeHeader(id, version);
  aad.insert(aad.end(), h.begin() + 1, h.end());
  const std::string t = KeyTypeName(type);
  aad.insert(aad.end(), t.begin(), t.end());
  aad.push_back(0);
  const std::string_view p = KeyPurposeName(type.purpose);
  aad.insert(aad.end(), p.begin(), p.end());
  return aad;
}

// Material is a version's private key, ready to use.
using Material = std::variant<crypto::Aead, crypto::KemPrivateKey, crypto::SigningKey>;

struct NewMaterial {
  SecretBytes secret;  // what gets wrapped: AEAD key or seed
  Bytes public_key;
};

Result<NewMaterial> Generate(const KeyType& t) {
  NewMaterial m;
  switch (t.purpose) {
    case KeyPurpose::kEncrypt: {
      QSAPI_ASSIGN_OR_RETURN(m.secret, crypto::RandomSecret(32));
      return m;
    }
    case KeyPurpose::kKem: {
      QSAPI_ASSIGN_OR_RETURN(crypto::KemPrivateKey k, crypto::KemPrivateKey::Generate(t.kem));
      QSAPI_ASSIGN_OR_RETURN(KemSeed seed, k.ExportSeed());
      m.secret = std::move(seed).Release();
      const ByteView pub = k.public_key().bytes();
      m.public_key.assign(pub.begin(), pub.end());
      return m;
    }
    case KeyPurpose::kSign: {
      QSAPI_ASSIGN_OR_RETURN(crypto::SigningKey k, crypto::SigningKey::Generate(t.sig));
      m.secret = k.ExportSeed().Release();
      const ByteView pub = k.verifying_key().bytes();
      m.public_key.assign(pub.begin(), pub.end());
      return m;
    }
  }
  return Internal("unknown key purpose");
}

Result<Material> Derive(const KeyType& t, const SecretBytes& secret, ByteView expected_public) {
  switch (t.purpose) {
    case KeyPurpose::kEncrypt: {
      QSAPI_ASSIGN_OR_RETURN(crypto::Aead a, crypto::Aead::New(t.aead, SymmetricKey::CopyFrom(secret.view())));
      return Material(std::move(a));
    }
    case KeyPurpose::kKem: {
      QSAPI_ASSIGN_OR_RETURN(crypto::KemPrivateKey k, crypto::KemPrivateKey::FromSeed(t.kem, secret.view()));
      const ByteView pub = k.public_key().bytes();
      if (!std::equal(pub.begin(), pub.end(), expected_public.begin(), expected_public.end())) {
        return Error(ErrorCode::kDataLoss, "unwrapped key does not match its stored public key");
      }
      return Material(std::move(k));
    }
    case KeyPurpose::kSign: {
      QSAPI_ASSIGN_OR_RETURN(crypto::SigningKey k, crypto::SigningKey::FromSeed(t.sig, secret.view()));
      const ByteView pub = k.verifying_key().bytes();
      if (!std::equal(pub.begin(), pub.end(), expected_public.begin(), expected_public.end())) {
        return Error(ErrorCode::kDataLoss, "unwrapped key does not match its stored public key");
      }
      return Material(std::move(k));
    }
  }
  return Internal("unknown key purpose");
}

using VersionKey = std::pair<KeyId, std::uint32_t>;

}  // namespace

class Keystore::Impl {
 public:
  Impl(KeystoreOptions o, std::unique_ptr<internal::KeyProtector> p, std::unique_ptr<internal::MetadataStore> s)
      : opts(std::move(o)), protector(std::move(p)), store(std::move(s)) {}

  KeystoreOptions opts;
  std::unique_ptr<internal::KeyProtector> protector;
  std::unique_ptr<internal::MetadataStore> store;

  std::mutex mu;  // guards everything below and serialises lifecycle changes
  struct CacheEntry {
    std::shared_ptr<const Material> material;
    std::chrono::steady_clock::time_point expires;
  };
  std::map<VersionKey, CacheEntry> cache;
  struct Usage {
    std::uint64_t used = 0;
    std::uint64_t leased = 0;
  };
  std::map<VersionKey, Usage> usage;
  CacheStats stats;
  // Metadata rows read on the hot path, valid while the store's change counter stays put.
  std::uint64_t rows_seen_at = ~std::uint64_t{0};
  std::map<std::string, KeyRow, std::less<>> key_rows;
  std::map<VersionKey, VersionRow> version_rows;

  // FreshRows drops the cached rows if the metadata changed since they were read. Caller holds mu.
  Status FreshRows() {
    QSAPI_ASSIGN_OR_RETURN(std::uint64_t now, store->ChangeCounter());
    if (now != rows_seen_at) {
      key_rows.clear();
      version_rows.clear();
      rows_seen_at = now;
    }
    return OkStatus();
  }

  AuditRow Audit(std::string action, const std::string& key, std::uint32_t version, std::string detail = {},
                 std::string actor = {}) const {
    return AuditRow{.at = Now(),
                    .actor = actor.empty() ? opts.actor : std::move(actor),
                    .action = std::move(action),
                    .key_name = key,
                    .version = version,
                    .result = "ok",
                    .detail = std::move(detail)};
  }

  Result<KeyRow> GetRow(std::string_view name) {
    QSAPI_RETURN_IF_ERROR(CheckName(name));
    QSAPI_ASSIGN_OR_RETURN(std::optional<KeyRow> row, store->GetKey(std::string(name)));
    if (!row) return Error(ErrorCode::kNotFound, "no key named \"" + std::string(name) + "\"");
    return *row;
  }

  // CachedRow / CachedVersion are GetRow / GetVersion through the row cache. Caller holds mu.
  Result<KeyRow> CachedRow(std::string_view name) {
    QSAPI_RETURN_IF_ERROR(FreshRows());
    if (auto it = key_rows.find(name); it != key_rows.end()) return it->second;
    QSAPI_ASSIGN_OR_RETURN(KeyRow row, GetRow(name));
    key_rows[row.name] = row;
    return row;
  }
  Result<std::optional<VersionRow>> CachedVersion(const KeyId& id, std::uint32_t version) {
    QSAPI_RETURN_IF_ERROR(FreshRows());
    if (auto it = version_rows.find({id, version}); it != version_rows.end())
      return std::optional<VersionRow>(it->second);
    QSAPI_ASSIGN_OR_RETURN(std::optional<VersionRow> v, store->GetVersion(id, version));
    if (v) version_rows[{id, version}] = *v;
    return v;
  }

  static Result<KeyType> TypeOf(const KeyRow& row) {
    Result<KeyType> t = ParseKeyType(row.type);
    if (!t.ok()) return Error(ErrorCode::kDataLoss, "key \"" + row.name + "\" has a corrupt type in the metadata");
    return t;
  }

  std::uint64_t EffectiveMaxOps(const KeyRow& row, const KeyType& t) const {
    return row.max_operations != 0 ? row.max_operations : DefaultMaxOps(t);
  }

  Result<KeyInfo> Info(const KeyRow& row) {
    QSAPI_ASSIGN_OR_RETURN(KeyType type, TypeOf(row));
    KeyInfo info;
    info.name = row.name;
    info.id = row.id;
    info.type = type;
    info.policy.auto_rotate_period = std::chrono::seconds(row.auto_rotate_seconds);
    info.policy.max_operations_per_version = EffectiveMaxOps(row, type);
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
      const auto u = usage.find({row.id, v.version});
      vi.operations = u != usage.end() ? u->second.used : v.ops_leased;
      vi.public_key = v.public_key;
      info.versions.push_back(std::move(vi));
    }
    return info;
  }

  Result<VersionRow> NewVersion(const KeyId& id, std::uint32_t version, const KeyType& type) {
    QSAPI_ASSIGN_OR_RETURN(NewMaterial m, Generate(type));
    QSAPI_ASSIGN_OR_RETURN(Bytes wrapped, protector->Wrap(m.secret.view(), WrapAad(id, version, type)));
    return VersionRow{.key_id = id,
                      .version = version,
                      .state = std::string(VersionStateName(VersionState::kActive)),
                      .created = Now(),
                      .ops_leased = 0,
                      .public_key = std::move(m.public_key),
                      .wrapped = std::move(wrapped)};
  }

  // RotateLocked adds version current+1. Caller holds mu.
  Result<KeyRow> RotateLocked(const KeyRow& row, const std::string& why, const std::string& actor = {}) {
    QSAPI_ASSIGN_OR_RETURN(KeyType type, TypeOf(row));
    if (row.current_version == UINT32_MAX) {
      return FailedPrecondition("key \"" + row.name + "\" has used every version number; create a new key");
    }
    const std::uint32_t next = row.current_version + 1;
    QSAPI_ASSIGN_OR_RETURN(VersionRow v, NewVersion(row.id, next, type));
    internal::FaultPoint("keystore.rotate.after_wrap");
    QSAPI_RETURN_IF_ERROR(store->AddVersion(row.name, v, std::string(VersionStateName(VersionState::kDecryptOnly)),
                                            Now(), Audit("rotate", row.name, next, why, actor)));
    Log(LogLevel::kInfo, "keystore",
        "key \"" + row.name + "\" rotated to version " + std::to_string(next) + " (" + why + ")");
    KeyRow out = row;
    out.current_version = next;
    out.rotated = Now();
    return out;
  }

  // ReserveOperation counts one operation on the current version, rotating first when the time
  // period has elapsed or the version's budget is spent. Returns the row to use. Caller holds mu.
  Result<KeyRow> ReserveOperation(KeyRow row, const KeyType& type) {
    if (row.auto_rotate_seconds > 0 && Now() - row.rotated >= row.auto_rotate_seconds) {
      QSAPI_ASSIGN_OR_RETURN(row, RotateLocked(row, "time-based: the rotation period elapsed", "policy"));
    }
    const std::uint64_t max = EffectiveMaxOps(row, type);
    if (max == 0) return row;
    for (int attempt = 0; attempt < 2; ++attempt) {
      const VersionKey vk{row.id, row.current_version};
      auto it = usage.find(vk);
      if (it == usage.end()) {
        QSAPI_ASSIGN_OR_RETURN(std::optional<VersionRow> v, store->GetVersion(row.id, row.current_version));
        if (!v) return Error(ErrorCode::kDataLoss, "key \"" + row.name + "\" has no row for its current version");
        // Whatever was leased before this process is counted as used: a crash over-counts.
        it = usage.emplace(vk, Usage{v->ops_leased, v->ops_leased}).first;
      }
      Usage& u = it->second;
      if (u.used >= max) {
        QSAPI_ASSIGN_OR_RETURN(row, RotateLocked(row,
                                                 "usage-based: version " + std::to_string(row.current_version) +
                                                     " reached its limit of " + std::to_string(max) + " operations",
                                                 "policy"));
        continue;
      }
      if (u.used == u.leased) {
        const std::uint64_t next = std::min(u.leased + kLeaseBlock, max);
        QSAPI_RETURN_IF_ERROR(store->LeaseOperations(row.id, row.current_version, next));
        u.leased = next;
      }
      ++u.used;
      return row;
    }
    return Internal("key \"" + row.name + "\": no usable version after rotation");
  }

  // UsableVersion returns a version for decrypt / verify / decapsulate, or why it cannot be used.
  Result<VersionRow> UsableVersion(const KeyRow& row, std::uint32_t version) {
    if (version == 0) version = row.current_version;
    std::optional<VersionRow> v;
    {
      const std::lock_guard<std::mutex> lock(mu);
      QSAPI_ASSIGN_OR_RETURN(v, CachedVersion(row.id, version));
    }
    if (!v) return Error(ErrorCode::kNotFound, "key \"" + row.name + "\" has no version " + std::to_string(version));
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

  // Load returns a version's material, from the cache or unwrapped by the token.
  Result<std::shared_ptr<const Material>> Load(const KeyRow& row, const VersionRow& v, const KeyType& type) {
    const VersionKey vk{row.id, v.version};
    const auto now = std::chrono::steady_clock::now();
    {
      const std::lock_guard<std::mutex> lock(mu);
      EvictExpired(now);
      if (auto it = cache.find(vk); it != cache.end()) {
        ++stats.hits;
        it->second.expires = now + opts.cache_ttl;
        return it->second.material;
      }
      ++stats.misses;
    }
    if (v.wrapped.empty()) {
      return Error(ErrorCode::kDataLoss, "key \"" + row.name + "\" version " + std::to_string(v.version) +
                                             " has no key material in the metadata");
    }
    Result<SecretBytes> secret = protector->Unwrap(v.wrapped, WrapAad(row.id, v.version, type));
    if (!secret.ok()) {
      return Error(secret.error().code(),
                   "key \"" + row.name + "\" version " + std::to_string(v.version) + ": " + secret.error().message());
    }
    Result<Material> m = Derive(type, *secret, v.public_key);
    if (!m.ok()) {
      return Error(ErrorCode::kDataLoss,
                   "key \"" + row.name + "\" version " + std::to_string(v.version) + ": " + m.error().message());
    }
    auto shared = std::make_shared<const Material>(std::move(*m));
    if (opts.cache_ttl.count() > 0 && opts.cache_max_entries > 0) {
      const std::lock_guard<std::mutex> lock(mu);
      if (cache.size() >= opts.cache_max_entries) {
        auto oldest = std::min_element(cache.begin(), cache.end(), [](const auto& a, const auto& b) {
          return a.second.expires < b.second.expires;
        });
        cache.erase(oldest);
      }
      cache[vk] = CacheEntry{shared, now + opts.cache_ttl};
    }
    return shared;
  }

  void EvictExpired(std::chrono::steady_clock::time_point now) {
    for (auto it = cache.begin(); it != cache.end();) {
      it = it->second.expires <= now ? cache.erase(it) : std::next(it);
    }
  }

  void Forget(const KeyId& id) {
    for (auto it = cache.begin(); it != cache.end();) it = it->first.first == id ? cache.erase(it) : std::next(it);
    for (auto it = usage.begin(); it != usage.end();) it = it->first.first == id ? usage.erase(it) : std::next(it);
  }

  Result<KeyRow> RowForBlob(std::string_view name, const ParsedHeader& h) {
    std::optional<KeyRow> row;
    {
      const std::lock_guard<std::mutex> lock(mu);
      QSAPI_RETURN_IF_ERROR(FreshRows());
      for (const auto& [n, r] : key_rows) {
        if (r.id == h.key_id) row = r;
      }
      if (!row) {
        QSAPI_ASSIGN_OR_RETURN(row, store->GetKeyById(h.key_id));
        if (row) key_rows[row->name] = *row;
      }
    }
    // With a name given, the answer is the same whether the key id is unknown or names another
    // key: a caller allowed to use one key learns nothing about the others (not even a name).
    if (!name.empty() && (!row || row->name != name)) {
      return InvalidArgument("the input was made with another key, not with \"" + std::string(name) + "\"");
    }
    if (!row)
      return Error(ErrorCode::kNotFound,
                   "no key with id " + KeyIdHex(h.key_id) + " (destroyed, or another keystore's)");
    return *row;
  }

  Result<KeyRow> LockedRow(std::string_view name) {
    const std::lock_guard<std::mutex> lock(mu);
    return CachedRow(name);
  }
};

Keystore::Keystore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Keystore::~Keystore() = default;

Result<std::unique_ptr<Keystore>> Keystore::Open(const KeystoreOptions& options) {
  if (options.database.empty()) return InvalidArgument("the keystore needs a database path");
  QSAPI_ASSIGN_OR_RETURN(SecretBytes pin, internal::ReadPin(options.token));
  QSAPI_ASSIGN_OR_RETURN(std::unique_ptr<internal::KeyProtector> protector,
                         internal::OpenTokenProtector(options.token, pin, /*create_kek=*/false));
  QSAPI_ASSIGN_OR_RETURN(std::unique_ptr<internal::MetadataStore> store, internal::OpenSqliteStore(options.database));
  QSAPI_RETURN_IF_ERROR(KeyOwnTrail(*protector, *store, options.actor));
  return std::unique_ptr<Keystore>(
      new Keystore(std::make_unique<Impl>(options, std::move(protector), std::move(store))));
}

Result<KeyInfo> Keystore::Create(std::string_view name, const KeyType& type, const KeyPolicy& policy) {
  QSAPI_RETURN_IF_ERROR(CheckName(name));
  const std::uint64_t bound = BoundMaxOps(type);
  if (bound == 0 && policy.max_operations_per_version != 0) {
    return InvalidArgument("max_operations_per_version applies to encryption keys only");
  }
  if (bound != 0 && policy.max_operations_per_version > bound) {
    return InvalidArgument("max_operations_per_version for " + KeyTypeName(type) + " may not exceed " +
                           std::to_string(bound));
  }
  if (policy.auto_rotate_period.count() < 0) return InvalidArgument("auto_rotate_period must not be negative");
  if (policy.min_decryption_version > 1) return InvalidArgument("a new key's min_decryption_version is 1");
  const std::lock_guard<std::mutex> lock(impl_->mu);
  QSAPI_ASSIGN_OR_RETURN(std::optional<KeyRow> existing, impl_->store->GetKey(std::string(name)));
  if (existing) return Error(ErrorCode::kAlreadyExists, "a key named \"" + std::string(name) + "\" exists");
  KeyRow row;
  row.name = std::string(name);
  QSAPI_RETURN_IF_ERROR(crypto::RandomFill(row.id));
  row.type = KeyTypeName(type);
  row.created = row.rotated = Now();
  row.current_version = 1;
  row.auto_rotate_seconds = policy.auto_rotate_period.count();
  row.max_operations = policy.max_operations_per_version;
  row.min_decryption_version = 1;
  row.deletion_allowed = policy.deletion_allowed;
  QSAPI_ASSIGN_OR_RETURN(VersionRow v, impl_->NewVersion(row.id, 1, type));
  internal::FaultPoint("keystore.create.after_wrap");
  QSAPI_RETURN_IF_ERROR(impl_->store->CreateKey(row, v, impl_->Audit("create", row.name, 1, row.type)));
  internal::FaultPoint("keystore.create.after_commit");
  return impl_->Info(row);
}

Result<KeyInfo> Keystore::Get(std::string_view name) {
  QSAPI_ASSIGN_OR_RETURN(KeyRow row, impl_->GetRow(name));
  const std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->Info(row);
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
  QSAPI_ASSIGN_OR_RETURN(KeyRow row, impl_->GetRow(name));
  QSAPI_ASSIGN_OR_RETURN(row, impl_->RotateLocked(row, "manual"));
  return impl_->Info(row);
}

Result<std::vector<std::string>> Keystore::RotateDue() {
  QSAPI_ASSIGN_OR_RETURN(std::vector<KeyRow> rows, impl_->store->ListKeys());
  const std::lock_guard<std::mutex> lock(impl_->mu);
  std::vector<std::string> rotated;
  for (const KeyRow& r : rows) {
    if (r.auto_rotate_seconds > 0 && Now() - r.rotated >= r.auto_rotate_seconds) {
      Result<KeyRow> done = impl_->RotateLocked(r, "time-based: the rotation period elapsed", "policy");
      if (!done.ok()) return done.error();
      rotated.push_back(r.name);
    }
  }
  return rotated;
}

Result<KeyInfo> Keystore::UpdatePolicy(std::string_view name, const KeyPolicy& policy) {
  const std::lock_guard<std::mutex> lock(impl_->mu);
  QSAPI_ASSIGN_OR_RETURN(KeyRow row, impl_->GetRow(name));
  QSAPI_ASSIGN_OR_RETURN(KeyType type, Impl::TypeOf(row));
  const std::uint64_t bound = BoundMaxOps(type);
  if (bound == 0 && policy.max_operations_per_version != 0) {
    return InvalidArgument("max_operations_per_version applies to encryption keys only");
  }
  if (policy.max_operations_per_version > bound) {
    return InvalidArgument("max_operations_per_version for " + row.type + " may not exceed " + std::to_string(bound));
  }
  if (policy.auto_rotate_period.count() < 0) return InvalidArgument("auto_rotate_period must not be negative");
  if (policy.min_decryption_version < 1 || policy.min_decryption_version > row.current_version) {
    return InvalidArgument("min_decryption_version must be between 1 and the current version (" +
                           std::to_string(row.current_version) + ")");
  }
  row.auto_rotate_seconds = policy.auto_rotate_period.count();
  row.max_operations = policy.max_operations_per_version;
  row.min_decryption_version = policy.min_decryption_version;
  row.deletion_allowed = policy.deletion_allowed;
  QSAPI_RETURN_IF_ERROR(impl_->store->UpdatePolicy(
      row, impl_->Audit("config", row.name, 0,
                        "auto_rotate_seconds=" + std::to_string(row.auto_rotate_seconds) +
                            " max_operations=" + std::to_string(row.max_operations) +
                            " min_decryption_version=" + std::to_string(row.min_decryption_version) +
                            " deletion_allowed=" + (row.deletion_allowed ? "true" : "false"))));
  return impl_->Info(row);
}

namespace {
Status CheckVersionChange(const KeyRow& row, std::uint32_t version, const char* what) {
  if (version == 0 || version > row.current_version) {
    return Error(ErrorCode::kNotFound, "key \"" + row.name + "\" has no version " + std::to_string(version));
  }
  if (version == row.current_version) {
    return FailedPrecondition(std::string("cannot ") + what + " the current version of key \"" + row.name +
                              "\"; rotate first");
  }
  return OkStatus();
}
}  // namespace

Status Keystore::DisableVersion(std::string_view name, std::uint32_t version) {
  const std::lock_guard<std::mutex> lock(impl_->mu);
  QSAPI_ASSIGN_OR_RETURN(KeyRow row, impl_->GetRow(name));
  QSAPI_RETURN_IF_ERROR(CheckVersionChange(row, version, "disable"));
  QSAPI_ASSIGN_OR_RETURN(std::optional<VersionRow> v, impl_->store->GetVersion(row.id, version));
  if (v && v->state == VersionStateName(VersionState::kDestroyed)) {
    return FailedPrecondition("key \"" + row.name + "\" version " + std::to_string(version) + " is destroyed");
  }
  QSAPI_RETURN_IF_ERROR(impl_->store->SetVersionState(row.id, version,
                                                      std::string(VersionStateName(VersionState::kDisabled)), false,
                                                      impl_->Audit("disable-version", row.name, version)));
  impl_->cache.erase({row.id, version});
  return OkStatus();
}

Status Keystore::EnableVersion(std::string_view name, std::uint32_t version) {
  const std::lock_guard<std::mutex> lock(impl_->mu);
  QSAPI_ASSIGN_OR_RETURN(KeyRow row, impl_->GetRow(name));
  QSAPI_RETURN_IF_ERROR(CheckVersionChange(row, version, "enable"));
  QSAPI_ASSIGN_OR_RETURN(std::optional<VersionRow> v, impl_->store->GetVersion(row.id, version));
  if (!v || v->state != VersionStateName(VersionState::kDisabled)) {
    return FailedPrecondition("key \"" + row.name + "\" version " + std::to_string(version) + " is not disabled");
  }
  return impl_->store->SetVersionState(row.id, version, std::string(VersionStateName(VersionState::kDecryptOnly)),
                                       false, impl_->Audit("enable-version", row.name, version));
}

Status Keystore::DestroyVersion(std::string_view name, std::uint32_t version) {
  const std::lock_guard<std::mutex> lock(impl_->mu);
  QSAPI_ASSIGN_OR_RETURN(KeyRow row, impl_->GetRow(name));
  if (!row.deletion_allowed) {
    return FailedPrecondition("key \"" + row.name + "\" does not allow deletion (set deletion_allowed in its policy)");
  }
  QSAPI_RETURN_IF_ERROR(CheckVersionChange(row, version, "destroy"));
  QSAPI_RETURN_IF_ERROR(impl_->store->SetVersionState(row.id, version,
                                                      std::string(VersionStateName(VersionState::kDestroyed)), true,
                                                      impl_->Audit("destroy-version", row.name, version)));
  impl_->cache.erase({row.id, version});
  return OkStatus();
}

Status Keystore::Destroy(std::string_view name) {
  const std::lock_guard<std::mutex> lock(impl_->mu);
  QSAPI_ASSIGN_OR_RETURN(KeyRow row, impl_->GetRow(name));
  if (!row.deletion_allowed) {
    return FailedPrecondition("key \"" + row.name + "\" does not allow deletion (set deletion_allowed in its policy)");
  }
  QSAPI_RETURN_IF_ERROR(impl_->store->DeleteKey(row.name, impl_->Audit("destroy", row.name, 0, KeyIdHex(row.id))));
  impl_->Forget(row.id);
  return OkStatus();
}

Result<Bytes> Keystore::Encrypt(std::string_view name, ByteView plaintext, ByteView associated_data) {
  if (plaintext.size() > kMaxPlaintext) return InvalidArgument("plaintext is larger than 64 MiB");
  KeyRow row;
  KeyType type;
  {
    const std::lock_guard<std::mutex> lock(impl_->mu);
    QSAPI_ASSIGN_OR_RETURN(row, impl_->CachedRow(name));
    QSAPI_ASSIGN_OR_RETURN(type, Impl::TypeOf(row));
    if (type.purpose != KeyPurpose::kEncrypt) {
      return FailedPrecondition("key \"" + row.name + "\" is a " + row.type + " key; it cannot encrypt");
    }
    QSAPI_ASSIGN_OR_RETURN(row, impl_->ReserveOperation(row, type));
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
  QSAPI_ASSIGN_OR_RETURN(KeyType type, Impl::TypeOf(row));
  if (type.purpose != KeyPurpose::kEncrypt) {
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
    QSAPI_ASSIGN_OR_RETURN(row, impl_->CachedRow(name));
    QSAPI_ASSIGN_OR_RETURN(type, Impl::TypeOf(row));
    if (type.purpose != KeyPurpose::kSign) {
      return FailedPrecondition("key \"" + row.name + "\" is a " + row.type + " key; it cannot sign");
    }
    QSAPI_ASSIGN_OR_RETURN(row, impl_->ReserveOperation(row, type));
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
  QSAPI_ASSIGN_OR_RETURN(KeyType type, Impl::TypeOf(row));
  if (type.purpose != KeyPurpose::kSign) {
    return FailedPrecondition("key \"" + row.name + "\" is a " + row.type + " key; it cannot verify");
  }
  QSAPI_ASSIGN_OR_RETURN(VersionRow v, impl_->UsableVersion(row, h.version));
  QSAPI_ASSIGN_OR_RETURN(crypto::VerifyingKey vk, crypto::VerifyingKey::FromBytes(type.sig, v.public_key));
  return vk.Verify(Concat(signature.first(kHeaderSize), message), signature.subspan(kHeaderSize));
}

Result<SharedSecret> Keystore::Decapsulate(std::string_view name, std::uint32_t version, ByteView ciphertext) {
  QSAPI_ASSIGN_OR_RETURN(KeyRow row, impl_->LockedRow(name));
  QSAPI_ASSIGN_OR_RETURN(KeyType type, Impl::TypeOf(row));
  if (type.purpose != KeyPurpose::kKem) {
    return FailedPrecondition("key \"" + row.name + "\" is a " + row.type + " key; it cannot decapsulate");
  }
  QSAPI_ASSIGN_OR_RETURN(VersionRow v, impl_->UsableVersion(row, version));
  QSAPI_ASSIGN_OR_RETURN(std::shared_ptr<const Material> m, impl_->Load(row, v, type));
  return std::get<crypto::KemPrivateKey>(*m).Decapsulate(ciphertext);
}

Result<Bytes> Keystore::PublicKey(std::string_view name, std::uint32_t version) {
  QSAPI_ASSIGN_OR_RETURN(KeyRow row, impl_->LockedRow(name));
  QSAPI_ASSIGN_OR_RETURN(KeyType type, Impl::TypeOf(row));
  if (type.purpose == KeyPurpose::kEncrypt) {
    return FailedPrecondition("key \"" + row.name + "\" is a symmetric " + row.type + " key; it has no public key");
  }
  if (version == 0) version = row.current_version;
  std::optional<VersionRow> v;
  {
    const std::lock_guard<std::mutex> lock(impl_->mu);
    QSAPI_ASSIGN_OR_RETURN(v, impl_->CachedVersion(row.id, version));
  }
  if (!v) return Error(ErrorCode::kNotFound, "key \"" + row.name + "\" has no version " + std::to_string(version));
  return v->public_key;
}

Result<crypto::KemPublicKey> Keystore::KemPublicKey(std::string_view name, std::uint32_t version) {
  QSAPI_ASSIGN_OR_RETURN(KeyRow row, impl_->LockedRow(name));
  QSAPI_ASSIGN_OR_RETURN(KeyType type, Impl::TypeOf(row));
  if (type.purpose != KeyPurpose::kKem) return FailedPrecondition("key \"" + row.name + "\" is not a KEM key");
  QSAPI_ASSIGN_OR_RETURN(Bytes pub, PublicKey(name, version));
  return crypto::KemPublicKey::FromBytes(type.kem, pub);
}

Result<crypto::VerifyingKey> Keystore::VerifyingKey(std::string_view name, std::uint32_t version) {
  QSAPI_ASSIGN_OR_RETURN(KeyRow row, impl_->LockedRow(name));
  QSAPI_ASSIGN_OR_RETURN(KeyType type, Impl::TypeOf(row));
  if (type.purpose != KeyPurpose::kSign) return FailedPrecondition("key \"" + row.name + "\" is not a signature key");
  QSAPI_ASSIGN_OR_RETURN(Bytes pub, PublicKey(name, version));
  return crypto::VerifyingKey::FromBytes(type.sig, pub);
}

Result<IntegrityReport> Keystore::CheckIntegrity() {
  IntegrityReport report;
  QSAPI_ASSIGN_OR_RETURN(std::vector<KeyRow> rows, impl_->store->ListKeys());
  for (const KeyRow& row : rows) {
    ++report.keys;
    Result<KeyType> type = Impl::TypeOf(row);
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
      Result<SecretBytes> secret = impl_->protector->Unwrap(v.wrapped, WrapAad(row.id, v.version, *type));
      if (!secret.ok()) {
        report.problems.push_back("key \"" + row.name + "\" version " + std::to_string(v.version) + ": " +
                                  secret.error().message());
        continue;
      }
      if (Result<Material> m = Derive(*type, *secret, v.public_key); !m.ok()) {
        report.problems.push_back("key \"" + row.name + "\" version " + std::to_string(v.version) + ": " +
                                  m.error().message());
      }
    }
    if (!current_found) report.problems.push_back("key \"" + row.name + "\" has no row for its current version");
  }
  if (Status s = impl_->store->VerifyAuditChain(); !s.ok()) report.problems.push_back(s.error().message());
  return report;
}

Result<std::vector<AuditEntry>> Keystore::Audit(std::size_t max_entries) {
  return impl_->store->ReadAudit(max_entries);
}

Result<std::optional<TrailKey>> Keystore::FindTrail(std::string_view name) {
  if (name.empty() || name == kOwnTrail) return InvalidArgument("not a trail name: \"" + std::string(name) + "\"");
  QSAPI_ASSIGN_OR_RETURN(std::optional<internal::TrailRow> row, impl_->store->GetTrail(std::string(name)));
  if (!row) return std::optional<TrailKey>();
  QSAPI_ASSIGN_OR_RETURN(TrailKey k, UnwrapTrail(*impl_->protector, *row));
  return std::optional<TrailKey>(std::move(k));
}

Result<TrailKey> Keystore::OpenTrail(std::string_view name, std::uint64_t next_seq) {
  if (next_seq == 0) return InvalidArgument("a trail's first entry is 1 or later");
  for (int attempt = 0; attempt < 2; ++attempt) {
    QSAPI_ASSIGN_OR_RETURN(std::optional<TrailKey> found, FindTrail(name));
    if (found) return std::move(*found);
    SecretBytes key(kTrailKeySize);
    QSAPI_RETURN_IF_ERROR(crypto::RandomFill(key.span()));
    Result<std::uint64_t> made = impl_->store->CreateTrail(
        internal::TrailRow{.trail = std::string(name), .first_seq = next_seq, .updated = Now()},
        impl_->Audit("trail.create", "", 0,
                     "audit trail \"" + std::string(name) + "\" keyed from its entry " + std::to_string(next_seq)),
        nullptr, [&](std::uint64_t first) { return impl_->protector->Wrap(key.view(), TrailAad(name, first)); });
    if (made.ok()) return TrailKey{.key = std::move(key), .first_seq = next_seq};
    if (made.error().code() != ErrorCode::kAlreadyExists) return made.error();
  }
  return Unavailable("the key of audit trail \"" + std::string(name) + "\" could not be read or created");
}

Status Keystore::RecordTrailHead(std::string_view name, std::uint64_t seq, ByteView mac) {
  if (name.empty() || name == kOwnTrail) return InvalidArgument("not a trail name: \"" + std::string(name) + "\"");
  return impl_->store->SetTrailHead(std::string(name), seq, mac);
}

Result<TrailKey> Keystore::RestartTrail(std::string_view name, std::uint64_t first_seq, std::string_view why) {
  if (name.empty() || name == kOwnTrail) return InvalidArgument("not a trail name: \"" + std::string(name) + "\"");
  if (first_seq == 0) return InvalidArgument("a trail's first entry is 1 or later");
  SecretBytes key(kTrailKeySize);
  QSAPI_RETURN_IF_ERROR(crypto::RandomFill(key.span()));
  QSAPI_ASSIGN_OR_RETURN(Bytes wrapped, impl_->protector->Wrap(key.view(), TrailAad(name, first_seq)));
  const Status st = impl_->store->ReplaceTrail(
      internal::TrailRow{.trail = std::string(name), .wrapped = std::move(wrapped), .first_seq = first_seq,
                         .updated = Now()},
      impl_->Audit("trail.restart", "", 0, "audit trail \"" + std::string(name) + "\": " + std::string(why)));
  if (st.ok()) return TrailKey{.key = std::move(key), .first_seq = first_seq};
  if (st.error().code() != ErrorCode::kNotFound) return st.error();
  return OpenTrail(name, first_seq);  // never keyed before: key it now
}

Result<TrailHead> Keystore::AuditHead() {
  QSAPI_ASSIGN_OR_RETURN(auto head, impl_->store->AuditHead());
  return TrailHead{.seq = head.first, .value = std::move(head.second)};
}

Status Keystore::CheckAuditHead(const TrailHead& head) {
  if (head.seq == 0) return OkStatus();
  QSAPI_ASSIGN_OR_RETURN(bool has, impl_->store->HasAuditEntry(head.seq, head.value));
  if (has) return OkStatus();
  return DataLoss("the keystore's audit trail no longer holds its entry " + std::to_string(head.seq) +
                  " as qsapid's audit log recorded it (the keystore database was cut short or rolled back)");
}

Status Keystore::Probe() {
  static constexpr std::uint8_t kProbe[] = {'q', 's', 'a', 'p', 'i'};
  static constexpr std::uint8_t kAad[] = {'p', 'r', 'o', 'b', 'e'};
  QSAPI_ASSIGN_OR_RETURN(Bytes blob, impl_->protector->Wrap(kProbe, kAad));
  QSAPI_ASSIGN_OR_RETURN(SecretBytes back, impl_->protector->Unwrap(blob, kAad));
  if (!ConstantTimeEqual(back.view(), kProbe)) return Internal("the token's wrap/unwrap probe returned other bytes");
  return impl_->store->ChangeCounter().ok() ? OkStatus() : impl_->store->ChangeCounter().error();
}

void Keystore::FlushCache() {
  const std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->cache.clear();
}

Keystore::CacheStats Keystore::cache_stats() const {
  const std::lock_guard<std::mutex> lock(impl_->mu);
  CacheStats s = impl_->stats;
  s.entries = impl_->cache.size();
  return s;
}

std::string Keystore::token_description() const { return impl_->protector->Describe(); }

}  // namespace qsapi::keystore
