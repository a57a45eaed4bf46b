#include "keystore/internal/store_choice.h"

#include <utility>

#include "common/internal/secret_file.h"

namespace qsapi::keystore {

Result<StoreBackend> ParseStoreBackend(std::string_view name) {
  if (name == "sqlite") return StoreBackend::kSqlite;
  if (name == "postgresql") return StoreBackend::kPostgresql;
  return InvalidArgument("store backend: expected one of sqlite, postgresql, got \"" + std::string(name) + "\"");
}

std::string_view StoreBackendName(StoreBackend backend) noexcept {
  return backend == StoreBackend::kPostgresql ? "postgresql" : "sqlite";
}

namespace internal {

Result<StoreChoice> ChooseStore(const KeystoreOptions& options) {
  StoreChoice c;
  c.backend = options.backend;
  if (options.backend == StoreBackend::kSqlite) {
    if (options.database.empty()) return InvalidArgument("the keystore needs a database path");
    c.sqlite_path = options.database;
    c.description = "SQLite " + c.sqlite_path.string();
    return c;
  }
  const PostgresOptions& p = options.postgres;
  if (p.conninfo.empty()) {
    return InvalidArgument(
        "the postgresql store needs a connection string (conninfo), for example "
        "\"host=db.example port=5432 dbname=qsapi user=qsapi\"");
  }
  if (p.pool_size < 1 || p.pool_size > 64) return InvalidArgument("the store's pool_size must be 1 to 64");
  if (p.connect_timeout.count() < 1 || p.connect_timeout.count() > 600) {
    return InvalidArgument("the store's connect_timeout must be 1 s to 10 min");
  }
  QSAPI_ASSIGN_OR_RETURN(c.postgres.display, PostgresDisplayName(p.conninfo));
  c.postgres.conninfo = p.conninfo;
  if (!p.password_file.empty() || !p.password_env.empty()) {
    QSAPI_ASSIGN_OR_RETURN(c.postgres.password,
                           qsapi::internal::ReadSecretLine(p.password_file, p.password_env, "database password"));
  }
  c.postgres.pool_size = p.pool_size;
  c.postgres.connect_timeout = p.connect_timeout;
  c.description = "PostgreSQL " + c.postgres.display;
  return c;
}

Result<std::unique_ptr<MetadataStore>> OpenStore(StoreChoice choice) {
  if (choice.backend == StoreBackend::kSqlite) return OpenSqliteStore(choice.sqlite_path);
  return OpenPostgresStore(std::move(choice.postgres));
}

}  // namespace internal
}  // namespace qsapi::keystore
