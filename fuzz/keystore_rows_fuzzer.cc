// Fuzzes how the keystore reads its metadata rows back from SQLite: a real embedded keystore
// (SoftHSM2 token, KEK, database) is made once with an AES-256-GCM key of two versions, an
// ML-KEM-768 key and an ML-DSA-65 key; for each input a pristine copy of its database is altered
// as the input says, then the keystore is opened on it and every read path runs: List, Get,
// PublicKey, Encrypt, Decrypt, Sign, Verify, Decapsulate, Rotate, Verify (the whole store) and
// the audit trail. This is a database someone edited, or a disk that corrupted it.
//
// Input: one alteration per line, "<table> <row> <column> <kind> [<value>]" with table one of
// keys, key_versions, audit, qsapi_meta; row the 0-based row in rowid order; kind one of int,
// real, text, hex (a blob), null; or "<table> <row> delete". Lines that do not parse are skipped.
//
// Invariants checked: no crash, exception or sanitizer report; a decryption that succeeds returns
// the original plaintext; a signature that verifies is the one made over that message; with no
// alteration, every operation succeeds.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <sqlite3.h>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_support.h"
#include "qsapi/keystore/keystore.h"
#include "qsapi/log.h"

namespace {

namespace ks = qsapi::keystore;

using qsapi::fuzz::Check;

qsapi::ByteView AsBytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};  // NOLINT
}

constexpr std::string_view kPlain1 = "plaintext under version 1";
constexpr std::string_view kPlain2 = "plaintext under version 2";
constexpr std::string_view kMessage = "message signed once";

// Fixture is made once per process: the data directory, a pristine database and the outputs of
// the unaltered keys.
struct Fixture {
  std::filesystem::path dir;
  std::filesystem::path pristine;
  ks::KeystoreOptions options;
  qsapi::Bytes ct1, ct2, signature, kem_ct;

  Fixture() {
    qsapi::SetMinLogLevel(qsapi::LogLevel::kError);  // rotations log at info level
    dir = std::filesystem::temp_directory_path() / ("qsapi-fuzz-keystore-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    Check(ks::InitEmbedded(dir).ok());
    options = ks::EmbeddedOptions(dir);
    options.cache_ttl = std::chrono::seconds(0);  // every use unwraps again: the rows decide
    {
      auto opened = ks::Keystore::Open(options);
      Check(opened.ok());
      ks::Keystore& k = **opened;
      Check(k.Create("enc", *ks::ParseKeyType("AES-256-GCM")).ok());
      ct1 = *k.Encrypt("enc", AsBytes(kPlain1));
      Check(k.Rotate("enc").ok());
      ct2 = *k.Encrypt("enc", AsBytes(kPlain2));
      Check(k.Create("kem", *ks::ParseKeyType("ML-KEM-768")).ok());
      auto enc = k.KemPublicKey("kem")->Encapsulate();
      Check(enc.ok());
      const qsapi::ByteView c = enc->ciphertext.view();
      kem_ct.assign(c.begin(), c.end());
      Check(k.Create("sig", *ks::ParseKeyType("ML-DSA-65")).ok());
      signature = *k.Sign("sig", AsBytes(kMessage));
    }
    pristine = dir / "pristine.db";
    std::filesystem::copy_file(options.database, pristine, std::filesystem::copy_options::overwrite_existing);
  }
  ~Fixture() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  Fixture(const Fixture&) = delete;
  Fixture& operator=(const Fixture&) = delete;
};

Fixture& TheFixture() {
  static Fixture f;
  return f;
}

bool IsIdentifier(std::string_view s) {
  if (s.empty() || s.size() > 32) return false;
  for (const char c : s) {
    if (!((c >= 'a' && c <= 'z') || c == '_')) return false;
  }
  return true;
}

bool HexToBytes(std::string_view hex, std::string& out) {
  if (hex.size() % 2 != 0) return false;
  const auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    const int hi = nibble(hex[i]);
    const int lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<char>(hi * 16 + lo));
  }
  return true;
}

// Apply makes one alteration; returns whether it changed anything.
bool Apply(sqlite3* db, const std::string& line) {
  std::istringstream in(line);
  std::string table, column, kind;
  long long row = -1;
  if (!(in >> table >> row >> column) || row < 0 || row > 64) return false;
  if (table != "keys" && table != "key_versions" && table != "audit" && table != "qsapi_meta") return false;
  const std::string where =
      " WHERE rowid = (SELECT rowid FROM " + table + " ORDER BY rowid LIMIT 1 OFFSET " + std::to_string(row) + ")";
  if (column == "delete") {
    return sqlite3_exec(db, ("DELETE FROM " + table + where).c_str(), nullptr, nullptr, nullptr) == SQLITE_OK &&
           sqlite3_changes(db) > 0;
  }
  if (!IsIdentifier(column) || !(in >> kind)) return false;
  std::string value;
  std::getline(in >> std::ws, value);
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, ("UPDATE " + table + " SET " + column + " = ?" + where).c_str(), -1, &stmt, nullptr) !=
      SQLITE_OK) {
    return false;
  }
  bool bound = true;
  std::string blob;
  if (kind == "int") {
    bound = sqlite3_bind_int64(stmt, 1, std::strtoll(value.c_str(), nullptr, 10)) == SQLITE_OK;
  } else if (kind == "real") {
    bound = sqlite3_bind_double(stmt, 1, std::strtod(value.c_str(), nullptr)) == SQLITE_OK;
  } else if (kind == "text") {
    bound = sqlite3_bind_text(stmt, 1, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT) == SQLITE_OK;
  } else if (kind == "hex") {
    bound = HexToBytes(value, blob) &&
            sqlite3_bind_blob(stmt, 1, blob.data(), static_cast<int>(blob.size()), SQLITE_TRANSIENT) == SQLITE_OK;
  } else if (kind == "null") {
    bound = sqlite3_bind_null(stmt, 1) == SQLITE_OK;
  } else {
    bound = false;
  }
  const bool changed = bound && sqlite3_step(stmt) == SQLITE_DONE && sqlite3_changes(db) > 0;
  sqlite3_finalize(stmt);
  return changed;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 4096) return 0;
  Fixture& f = TheFixture();
  for (const char* suffix : {"-wal", "-shm"}) std::filesystem::remove(f.options.database.string() + suffix);
  std::filesystem::copy_file(f.pristine, f.options.database, std::filesystem::copy_options::overwrite_existing);

  bool altered = false;
  {
    sqlite3* db = nullptr;
    Check(sqlite3_open(f.options.database.c_str(), &db) == SQLITE_OK);
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast)
    std::istringstream lines(std::string(reinterpret_cast<const char*>(data), size));
    std::string line;
    while (std::getline(lines, line)) altered = Apply(db, line) || altered;
    sqlite3_close(db);
  }

  auto opened = ks::Keystore::Open(f.options);
  Check(opened.ok() || altered);
  if (!opened.ok()) return 0;
  ks::Keystore& k = **opened;
  bool all_ok = true;
  const auto note = [&](bool ok) { all_ok = all_ok && ok; };

  if (auto list = k.List(); list.ok()) {
    for (const auto& info : *list) note(k.Get(info.name).ok());
  } else {
    note(false);
  }
  for (const char* name : {"enc", "kem", "sig"}) note(k.Get(name).ok());
  note(k.PublicKey("kem").ok());
  note(k.PublicKey("sig", 1).ok());
  for (const auto& [ct, plain] : {std::pair{&f.ct1, kPlain1}, std::pair{&f.ct2, kPlain2}}) {
    auto pt = k.Decrypt("enc", *ct);
    note(pt.ok());
    if (pt.ok()) Check(*pt == qsapi::Bytes(plain.begin(), plain.end()));
  }
  if (auto ct = k.Encrypt("enc", AsBytes(kPlain1)); ct.ok()) {
    auto pt = k.Decrypt("", *ct);
    if (pt.ok()) Check(*pt == qsapi::Bytes(kPlain1.begin(), kPlain1.end()));
  } else {
    note(false);
  }
  const qsapi::Status verified = k.VerifySignature("sig", AsBytes(kMessage), f.signature);
  note(verified.ok());
  Check(!k.VerifySignature("sig", AsBytes("another message"), f.signature).ok());
  note(k.Sign("sig", AsBytes(kMessage)).ok());
  note(k.Decapsulate("kem", 0, f.kem_ct).ok());
  if (auto report = k.CheckIntegrity(); report.ok()) {
    note(report->problems.empty());
  } else {
    note(false);
  }
  note(k.Audit(8).ok());
  note(k.Rotate("sig").ok());
  note(k.RotateDue().ok());
  Check(all_ok || altered);
  return 0;
}
