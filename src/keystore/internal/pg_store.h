// The PostgreSQL backend of MetadataStore (pg_store.cc): several qsapid nodes on one database.
#ifndef QSAPI_KEYSTORE_INTERNAL_PG_STORE_H_
#define QSAPI_KEYSTORE_INTERNAL_PG_STORE_H_

#include <chrono>
#include <memory>
#include <string>

#include "keystore/internal/metadata_store.h"
#include "qsapi/result.h"
#include "qsapi/secret.h"

namespace qsapi::keystore::internal {

struct PostgresStoreOptions {
  // conninfo is a libpq connection string or URI, several hosts allowed ("host=a,b port=5432
  // dbname=qsapi user=qsapi"); it should not hold the password: that is `password`.
  std::string conninfo;
  SecretBytes password;  // empty: none (peer or trust authentication, a .pgpass file)
  std::string display;   // what errors name the database by (the conninfo without secrets)
  int pool_size = 4;     // connections kept open per node
  std::chrono::seconds connect_timeout{5};
};

// PostgresDisplayName parses a libpq connection string (keywords or URI) and returns what errors
// and health output name the database by: its host(s), port(s), dbname and user. kInvalidArgument
// for a string libpq does not parse (libpq's message is not repeated: it may quote the string) or
// one that holds a password.
Result<std::string> PostgresDisplayName(const std::string& conninfo);

// OpenPostgresStore connects, creates the schema when the database has none (one node at a time:
// an advisory lock) and checks its version. UNAVAILABLE when the database cannot be reached,
// FAILED_PRECONDITION for a schema of another version.
Result<std::unique_ptr<MetadataStore>> OpenPostgresStore(PostgresStoreOptions options);

}  // namespace qsapi::keystore::internal

#endif  // QSAPI_KEYSTORE_INTERNAL_PG_STORE_H_
