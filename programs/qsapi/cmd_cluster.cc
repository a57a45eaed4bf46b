// qsapi cluster init|join|status: several qsapid nodes on one database with one KEK.
//   init    on the first node: its token (the embedded default, or the configured HSM) and the
//           database's identity (cluster id + KEK canary), printed for every node's [store]
//   join    on each other node: a copy of the first node's token (embedded default), then the
//           check every start makes (the database's cluster, the canary under this KEK)
//   status  what this node's configuration reaches: the store, the cluster, the token
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "commands.h"
#include "server/config.h"
#include "server/service.h"

namespace qsapi::cli {
namespace {

struct ClusterFlags {
  std::string config;
  std::string from;
};

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
