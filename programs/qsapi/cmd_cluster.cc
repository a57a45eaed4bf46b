// qsapi cluster init|join|status: several qsapid nodes on one database with one KEK.
//   init    on the first node: its token (the embedded default, or the configured HSM) and the
//           database's identity (cluster id + KEK canary), printed for every node's [store]
//   join    on each other node: a copy of the first node's token (embedded default), then the
//           check every start makes (the database's cluster, the canary under this KEK)
//   status  what this node's configuration reaches: the store, the cluster, the token
// qsapi store migrate: one node's SQLite database (and its token file and CA) into the database
// of its new configuration (PostgreSQL), unchanged and verified, the SQLite file then retired.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "commands.h"
#include "server/config.h"
#include "server/deployment_ca.h"
#include "server/service.h"
#include "server/tokens.h"

namespace qsapi::cli {
namespace {

struct ClusterFlags {
  std::string config;
  std::string from;
};

// Migrate moves the single-node store under the configuration's data directory (or `from_file`)
// into the store the configuration names.
void Migrate(const std::string& config_path, const std::string& from_file) {
  constexpr std::string_view kCommand = "store migrate";
  auto config = server::LoadConfig(config_path);
  if (!config.ok()) return Fail(kCommand, config.error());
  if (config->store.backend == keystore::StoreBackend::kSqlite) {
    return Fail(kCommand, config_path +
                              " names a SQLite store: give the configuration the node will run with, with [store] "
                              "backend = \"postgresql\"");
  }
  // qsapid must not run on this data directory meanwhile: its writes would miss the copy.
  auto lock = server::DataDirLock::Acquire(config->data_dir);
  if (!lock.ok()) return Fail(kCommand, lock.error());
  auto to = server::KeystoreOptionsFor(*config, /*create=*/false, nullptr);
  if (!to.ok()) return Fail(kCommand, to.error());
  keystore::KeystoreOptions from = *to;
  from.backend = keystore::StoreBackend::kSqlite;
  from.database = from_file.empty() ? config->data_dir / "keystore.db" : std::filesystem::path(from_file);
  from.cluster_id.clear();
  if (!std::filesystem::exists(from.database)) {
    return Fail(kCommand, "no SQLite keystore database at " + from.database.string() + " (give it with --from)");
  }
  keystore::MigrationExtras extras;
  extras.actor = "qsapi store migrate";
  auto tokens = server::TokenStore::Load(server::TokenFilePath(config->data_dir));
  if (!tokens.ok()) return Fail(kCommand, tokens.error());
  extras.add = tokens->AsRecords();
  auto ca = server::DeploymentCa::LocalRecord(config->data_dir);
  if (!ca.ok()) return Fail(kCommand, ca.error());
  if (*ca) extras.add.push_back(std::move(**ca));
  extras.rename_trails.emplace_back(server::kSingleNodeAuditTrail, server::AuditTrailName(*config));
  auto moved = keystore::Keystore::Migrate(from, *to, extras);
  if (!moved.ok()) return Fail(kCommand, moved.error());
  std::printf("moved the keystore from %s to %s\n", moved->from.c_str(), moved->to.c_str());
  std::printf("  cluster:  %s\n", moved->cluster_id.c_str());
  std::printf("  keys:     %zu (%zu versions), records: %zu, trails: %zu\n", moved->keys, moved->versions,
              moved->records, moved->trails);
  std::printf("  audit:    %llu entries, verified in both\n", static_cast<unsigned long long>(moved->audit_entries));
  for (const std::string& a : moved->added) std::printf("  added:    %s\n", a.c_str());
  std::printf(
      "  %s is kept as a backup; every later open of it is refused\n"
      "  start qsapid with %s; add [store] cluster_id = \"%s\" to it, and give other nodes\n"
      "  `qsapi cluster join` (docs/OPERATIONS.md, \"Moving one node to PostgreSQL\")\n",
      moved->from.c_str(), config_path.c_str(), moved->cluster_id.c_str());
}

bool Embedded(const server::Config& c) { return c.keystore.pin_file.empty() && c.keystore.pin_env.empty(); }

void PrintNode(const server::Config& c, keystore::Keystore& ks) {
  std::printf("  cluster: %s\n", ks.cluster_id().c_str());
  std::printf("  store:   %s\n", ks.store_description().c_str());
  std::printf("  token:   %s\n", ks.token_description().c_str());
  if (c.store.cluster_id.empty()) {
    std::printf("  add to the [store] table of every node's configuration:\n    cluster_id = \"%s\"\n",
                ks.cluster_id().c_str());
  }
}

}  // namespace

void RegisterClusterCommands(CLI::App& app) {
  auto f = std::make_shared<ClusterFlags>();
  CLI::App* cluster = app.add_subcommand("cluster", "Several qsapid nodes on one database: init, join, status");
  cluster->require_subcommand(1);

  CLI::App* init = cluster->add_subcommand(
      "init", "On the first node: create its token and KEK (embedded default) and the database's cluster identity");
  init->add_option("--config", f->config, "This node's qsapid configuration ([store] names the database)")->required();
  init->callback([f] {
    auto config = server::LoadConfig(f->config);
    if (!config.ok()) return Fail("cluster init", config.error());
    if (!config->store.cluster_id.empty()) {
      return Fail("cluster init", "the configuration already names cluster " + config->store.cluster_id +
                                      "; `qsapi cluster status` shows it, `qsapi cluster join` adds a node");
    }
    bool created = false;
    auto ks = server::OpenKeystoreFor(*config, /*create=*/true, &created);
    if (!ks.ok()) return Fail("cluster init", ks.error());
    std::printf("cluster %s is ready%s\n", (*ks)->cluster_id().c_str(), created ? " (token and KEK created now)" : "");
    PrintNode(*config, **ks);
    if (Embedded(*config)) {
      std::printf(
          "  then, on each other node (with an empty data directory and a copy of %s):\n"
          "    qsapi cluster join --from <the copy> --config <that node's configuration>\n",
          config->data_dir.c_str());
    }
  });

  CLI::App* join = cluster->add_subcommand(
      "join", "On another node: copy the first node's token (embedded default), then check this node's KEK");
  join->add_option("--config", f->config, "This node's qsapid configuration, with [store] cluster_id")->required();
  join->add_option("--from", f->from,
                   "A copy of the first node's data directory (its tokens/ and pins/; embedded default only)");
  join->callback([f] {
    auto config = server::LoadConfig(f->config);
    if (!config.ok()) return Fail("cluster join", config.error());
    if (config->store.cluster_id.empty()) {
      return Fail("cluster join", "set [store] cluster_id in " + f->config +
                                      " to the id `qsapi cluster init` printed: a node joins a named cluster");
    }
    if (!f->from.empty()) {
      if (!Embedded(*config)) {
        return Fail("cluster join",
                    "--from copies the embedded default's token; with your own HSM, give this node "
                    "the slot that holds the cluster's KEK (docs/OPERATIONS.md) and omit --from");
      }
      if (Status s = keystore::JoinEmbedded(f->from, config->data_dir, config->keystore.pkcs11_module); !s.ok()) {
        return Fail("cluster join", s.error());
      }
    }
    auto ks = server::OpenKeystoreFor(*config, /*create=*/false, nullptr);
    if (!ks.ok()) return Fail("cluster join", ks.error());
    std::printf("this node holds the KEK of cluster %s\n", (*ks)->cluster_id().c_str());
    PrintNode(*config, **ks);
  });

  CLI::App* store = app.add_subcommand("store", "The keystore's database: move one node's SQLite file to PostgreSQL");
  store->require_subcommand(1);
  CLI::App* migrate = store->add_subcommand(
      "migrate",
      "Copy this node's SQLite keystore, API tokens and CA into the PostgreSQL database its configuration names, "
      "verified, without re-wrapping a key; qsapid must be stopped");
  migrate->add_option("--config", f->config, "The configuration the node will run with ([store] backend = postgresql)")
      ->required();
  migrate->add_option("--from", f->from, "The SQLite database (default: keystore.db in the data directory)");
  migrate->callback([f] { Migrate(f->config, f->from); });

  CLI::App* status =
      cluster->add_subcommand("status", "The store, cluster and token this node's configuration reaches");
  status->add_option("--config", f->config, "This node's qsapid configuration")->required();
  status->callback([f] {
    auto config = server::LoadConfig(f->config);
    if (!config.ok()) return Fail("cluster status", config.error());
    auto ks = server::OpenKeystoreFor(*config, /*create=*/false, nullptr);
    if (!ks.ok()) return Fail("cluster status", ks.error());
    std::printf("cluster %s\n", (*ks)->cluster_id().c_str());
    PrintNode(*config, **ks);
  });
}

}  // namespace qsapi::cli
