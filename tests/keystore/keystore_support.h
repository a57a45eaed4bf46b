// Shared fixture of the keystore tests: a fresh embedded keystore (SoftHSM2 token, KEK, PINs,
// SQLite database) in a temporary data directory per test.
#ifndef QSAPI_TESTS_KEYSTORE_KEYSTORE_SUPPORT_H_
#define QSAPI_TESTS_KEYSTORE_KEYSTORE_SUPPORT_H_

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <sqlite3.h>
#include <string>

#include "qsapi/keystore/keystore.h"
#include "support/test_support.h"

namespace qsapi::keystore {

class KeystoreFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    dir_ = std::filesystem::temp_directory_path() /
           ("qsapi-keystore-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(dir_);
    auto created = InitEmbedded(dir_);
    ASSERT_TRUE(created.ok()) << created.error().ToString();
    ASSERT_TRUE(*created);
    Reopen();
  }
  void TearDown() override {
    ks_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  void Reopen(KeystoreOptions o) {
    ks_.reset();
    auto ks = Keystore::Open(o);
    ASSERT_TRUE(ks.ok()) << ks.error().ToString();
    ks_ = std::move(*ks);
  }
  void Reopen() { Reopen(EmbeddedOptions(dir_)); }

  std::filesystem::path dir_;
  std::unique_ptr<Keystore> ks_;
};

// Sql alters a SQLite keystore database behind the keystore's back (a hand edit, a bad disk).
inline void Sql(const std::filesystem::path& db, const std::string& sql) {
  sqlite3* h = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &h), SQLITE_OK);
  char* err = nullptr;
  EXPECT_EQ(sqlite3_exec(h, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
  sqlite3_free(err);
  sqlite3_close(h);
}

inline ByteView AsBytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};  // NOLINT
}

}  // namespace qsapi::keystore

#endif  // QSAPI_TESTS_KEYSTORE_KEYSTORE_SUPPORT_H_
