// Choosing and opening the metadata backend that KeystoreOptions names (SQLite or PostgreSQL).
#ifndef QSAPI_KEYSTORE_INTERNAL_STORE_CHOICE_H_
#define QSAPI_KEYSTORE_INTERNAL_STORE_CHOICE_H_

#include <filesystem>
#include <memory>
#include <string>

#include "keystore/internal/metadata_store.h"
#include "keystore/internal/pg_store.h"
#include "qsapi/keystore/keystore.h"
#include "qsapi/result.h"

namespace qsapi::keystore::internal {

// StoreChoice is a backend with its options checked and its password read (secret memory).
struct StoreChoice {
  StoreBackend backend = StoreBackend::kSqlite;
  std::filesystem::path sqlite_path;
  PostgresStoreOptions postgres;
  std::string description;  // "SQLite <path>" / "PostgreSQL <display>": no secret
};

// ChooseStore checks the store options (a path for SQLite; for PostgreSQL a valid connection
// string without a password, a pool of 1 to 64, a connect timeout of 1 s to 10 min) and reads the
// password. kInvalidArgument names the option; no message holds the password.
Result<StoreChoice> ChooseStore(const KeystoreOptions& options);
// OpenStore opens the chosen backend.
Result<std::unique_ptr<MetadataStore>> OpenStore(StoreChoice choice);

}  // namespace qsapi::keystore::internal

#endif  // QSAPI_KEYSTORE_INTERNAL_STORE_CHOICE_H_
