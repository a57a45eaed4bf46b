// qsapi token create|list|revoke (API bearer tokens of the local qsapid), qsapi audit verify|repair.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "commands.h"
#include "server/audit_log.h"
#include "server/config.h"
#include "server/service.h"
#include "server/tokens.h"

namespace qsapi::cli {
namespace {

std::string DataDir(const std::string& flag) { return flag.empty() ? DefaultDataDir() : flag; }

// ConfigFor reads qsapid's configuration when a file is given, else the defaults for the data
// directory: --data-dir, else the directory of the audit log named, else the default one.
Result<server::Config> ConfigFor(const std::string& file, const std::string& data_dir, const std::string& log) {
  if (!file.empty()) return server::LoadConfig(file);
  if (data_dir.empty() && !log.empty()) {
    const std::filesystem::path parent = std::filesystem::absolute(log).parent_path();
    return server::DefaultConfig(parent);
  }
  return server::DefaultConfig(DataDir(data_dir));
}

std::vector<std::string> SplitComma(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

// The API tokens a command works on: the token file of a data directory, or, with a configuration
// whose store is PostgreSQL, the records in the cluster's database (the keystore stays open for
// as long as the store is used).
struct TokenAccess {
  std::unique_ptr<keystore::Keystore> keystore;
  server::TokenStore store;
};

Result<TokenAccess> OpenTokens(const std::string& config_file, const std::string& data_dir) {
  TokenAccess a;
  if (config_file.empty()) {
    QSAPI_ASSIGN_OR_RETURN(a.store,
                           server::TokenStore::Load(std::filesystem::path(DataDir(data_dir)) / "api-tokens.json"));
    return a;
  }
  QSAPI_ASSIGN_OR_RETURN(server::Config config, server::LoadConfig(config_file));
  if (config.store.backend == keystore::StoreBackend::kSqlite) {
    QSAPI_ASSIGN_OR_RETURN(a.store, server::TokenStore::Load(server::TokenFilePath(config.data_dir)));
    return a;
  }
  QSAPI_ASSIGN_OR_RETURN(a.keystore, server::OpenKeystoreFor(config, /*create=*/false, nullptr));
  QSAPI_ASSIGN_OR_RETURN(a.store, server::OpenTokensFor(config, *a.keystore));
  return a;
}

}  // namespace

void RegisterAdminCommands(CLI::App& app) {
  auto data_dir = std::make_shared<std::string>();
  auto token_config = std::make_shared<std::string>();
  CLI::App* token = app.add_subcommand("token", "API bearer tokens of the local qsapid (stored hashed)");
  token->require_subcommand(1);
  token->add_option("--data-dir", *data_dir, "Data directory (default: $QSAPI_DATA_DIR or ~/.local/share/qsapi)");
  const auto add_config = [&token_config](CLI::App* cmd) {
    cmd->add_option("--config", *token_config,
                    "qsapid's configuration: with a PostgreSQL [store], the tokens every node of the cluster shares");
  };

  struct CreateFlags {
    std::string name, keys = "*", operations;
  };
  auto cf = std::make_shared<CreateFlags>();
  CLI::App* create = token->add_subcommand("create", "Create a token; it is printed once and never stored");
  create->add_option("name", cf->name, "Who the token is for (shown in audit lines)")->required();
  create->add_option("--keys", cf->keys, "Comma-separated key names or prefixes ending in '*'")->capture_default_str();
  create
      ->add_option("--operations", cf->operations,
                   "Comma-separated operations: encrypt, decrypt, rewrap, datakey, sign, verify, kem, random, "
                   "keys.create, keys.read, keys.rotate, keys.config, keys.destroy, health, metrics, or *")
      ->required();
  add_config(create);
  create->callback([data_dir, token_config, cf] {
    auto access = OpenTokens(*token_config, *data_dir);
    if (!access.ok()) return Fail("token create", access.error());
    auto t = access->store.Create(cf->name, server::Policy{SplitComma(cf->keys), SplitComma(cf->operations)});
    if (!t.ok()) return Fail("token create", t.error());
    const std::string_view text = server::TokenText(*t);
    std::printf("%.*s\n", static_cast<int>(text.size()), text.data());
    std::fflush(stdout);
    std::fprintf(
        stderr,
        "qsapi token create: shown once; qsapid stores only its hash. Use it as \"Authorization: Bearer <token>\".\n");
  });

  CLI::App* list = token->add_subcommand("list", "List tokens (names and policies, never tokens)");
  add_config(list);
  list->callback([data_dir, token_config] {
    auto access = OpenTokens(*token_config, *data_dir);
    if (!access.ok()) return Fail("token list", access.error());
    std::printf("%-24s %-10s %-22s %-30s %s\n", "name", "id", "created", "keys", "operations");
    for (const auto& e : access->store.entries()) {
      std::string keys;
      std::string ops;
      for (const auto& k : e.policy.keys) keys += (keys.empty() ? "" : ",") + k;
      for (const auto& o : e.policy.operations) ops += (ops.empty() ? "" : ",") + o;
      std::printf("%-24s %-10s %-22s %-30s %s\n", e.name.c_str(), e.id.c_str(), e.created.c_str(), keys.c_str(),
                  ops.c_str());
    }
  });

  auto name = std::make_shared<std::string>();
  CLI::App* revoke = token->add_subcommand("revoke", "Revoke a token by name");
  revoke->add_option("name", *name, "Token name")->required();
  add_config(revoke);
  revoke->callback([data_dir, token_config, name] {
    auto access = OpenTokens(*token_config, *data_dir);
    if (!access.ok()) return Fail("token revoke", access.error());
    if (Status s = access->store.Revoke(*name); !s.ok()) return Fail("token revoke", s.error());
    std::printf("token \"%s\" revoked\n", name->c_str());
  });

  CLI::App* audit = app.add_subcommand("audit", "qsapid's audit log");
  audit->require_subcommand(1);
  auto file = std::make_shared<std::string>();
  auto config_file = std::make_shared<std::string>();
  CLI::App* verify = audit->add_subcommand(
      "verify", "Check the audit trail's chain (its MACs, with the key from the keystore) and recorded heads");
  verify->add_option("file", *file, "The log (default: <data-dir>/audit.log)");
  verify->add_option("--data-dir", *data_dir, "Data directory (default: the log's, else the default one)");
  verify->add_option("--config", *config_file, "qsapid's configuration (for its keystore)");
  verify->callback([data_dir, file, config_file] {
    auto config = ConfigFor(*config_file, *data_dir, *file);
    if (!config.ok()) return Fail("audit verify", config.error());
    const std::filesystem::path path = file->empty() ? config->data_dir / "audit.log" : std::filesystem::path(*file);
    auto ks = server::OpenKeystoreFor(*config, /*create=*/false, nullptr);
    if (!ks.ok()) {
      return Fail("audit verify", Error(ks.error().code(),
                                        "the trail's MACs are checked with its key from the "
                                        "keystore, which did not open: " +
                                            ks.error().message()));
    }
    auto r = server::VerifyAuditTrail(**ks, path, server::AuditTrailName(*config));
    if (!r.ok()) return Fail("audit verify", r.error());
    std::printf(
        "%s: %llu lines in %llu file(s)%s, the chain holds (%llu MACs checked%s)\n", path.c_str(),
        static_cast<unsigned long long>(r->lines), static_cast<unsigned long long>(r->files),
        r->first_seq > 1 ? (" from seq " + std::to_string(r->first_seq) + " (older files removed)").c_str() : "",
        static_cast<unsigned long long>(r->macs), r->head_checked ? "; the head the keystore recorded is in it" : "");
  });

  CLI::App* repair =
      audit->add_subcommand("repair", "Move a partial last line (a crash or a full disk) aside; the repair is audited");
  repair->add_option("file", *file, "The log (default: <data-dir>/audit.log)");
  repair->add_option("--data-dir", *data_dir, "Data directory (default: the log's, else the default one)");
  repair->add_option("--config", *config_file, "qsapid's configuration (for its keystore)");
  repair->callback([data_dir, file, config_file] {
    auto config = ConfigFor(*config_file, *data_dir, *file);
    if (!config.ok()) return Fail("audit repair", config.error());
    const std::filesystem::path path = file->empty() ? config->data_dir / "audit.log" : std::filesystem::path(*file);
    // Not under a running qsapid: it holds the data directory's lock while it appends.
    auto lock = server::DataDirLock::Acquire(config->data_dir);
    if (!lock.ok()) return Fail("audit repair", lock.error());
    auto ks = server::OpenKeystoreFor(*config, /*create=*/false, nullptr);
    if (!ks.ok()) return Fail("audit repair", ks.error());
    // NOLINTNEXTLINE(concurrency-mt-unsafe): read on the CLI's main thread, the only one that sets variables
    const char* user = std::getenv("USER");
    auto r = server::RepairAuditTrail(**ks, path, std::string("cli:") + (user != nullptr ? user : "unknown"),
                                      server::AuditTrailName(*config));
    if (!r.ok()) return Fail("audit repair", r.error());
    std::printf("%s: removed a partial last line of %llu bytes (saved to %s); the repair is the log's last line\n",
                path.c_str(), static_cast<unsigned long long>(r->bytes_removed), r->saved_to.c_str());
  });
}

}  // namespace qsapi::cli
