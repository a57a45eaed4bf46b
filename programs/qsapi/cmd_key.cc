// qsapi init and qsapi key ...: the local keystore (PKCS#11 token + metadata database).
//
// By default both work on the embedded keystore under the data directory (--data-dir, else
// $QSAPI_DATA_DIR, else ~/.local/share/qsapi). With --pkcs11-module and --pin-file / --pin-env
// they use an operator's own HSM, with the metadata in --database.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include <sodium.h>

#include "commands.h"
#include "common/internal/text.h"
#include "qsapi/hpke/public_key_file.h"
#include "qsapi/keystore/keystore.h"
#include "recipient_key_loader.h"
#include "server/config.h"
#include "server/service.h"

namespace qsapi::cli {
namespace {

std::string FormatTime(std::chrono::system_clock::time_point t) { return qsapi::internal::FormatUtc(t); }

// ParseDuration accepts 0, or a number with a unit s, m, h or d.
Result<std::chrono::seconds> ParseDuration(const std::string& s) {
  if (s == "0") return std::chrono::seconds(0);
  if (s.size() < 2)
    return InvalidArgument("a duration is a number and a unit (s, m, h, d), e.g. 30d; got \"" + s + "\"");
  const char unit = s.back();
  const std::string num = s.substr(0, s.size() - 1);
  if (num.empty() || num.find_first_not_of("0123456789") != std::string::npos || num.size() > 9) {
    return InvalidArgument("a duration is a number and a unit (s, m, h, d), e.g. 30d; got \"" + s + "\"");
  }
  const long long n = std::stoll(num);
  switch (unit) {
    case 's': return std::chrono::seconds(n);
    case 'm': return std::chrono::seconds(n * 60);
    case 'h': return std::chrono::seconds(n * 3600);
    case 'd': return std::chrono::seconds(n * 86400);
    default: return InvalidArgument("unknown duration unit '" + std::string(1, unit) + "' (use s, m, h or d)");
  }
}

std::string FormatDuration(std::chrono::seconds s) {
  const auto n = s.count();
  if (n == 0) return "off";
  if (n % 86400 == 0) return std::to_string(n / 86400) + "d";
  if (n % 3600 == 0) return std::to_string(n / 3600) + "h";
  if (n % 60 == 0) return std::to_string(n / 60) + "m";
  return std::to_string(n) + "s";
}

void PrintKey(const keystore::KeyInfo& k) {
  std::printf("name:                   %s\n", k.name.c_str());
  std::printf("id:                     %s\n", keystore::KeyIdHex(k.id).c_str());
  std::printf("type:                   %s (%s)\n", keystore::KeyTypeName(k.type).c_str(),
              std::string(keystore::KeyPurposeName(k.type.purpose())).c_str());
  std::printf("created:                %s\n", FormatTime(k.created).c_str());
  std::printf("rotated:                %s\n", FormatTime(k.rotated).c_str());
  std::printf("current version:        %u\n", k.current_version);
  std::printf("auto-rotate period:     %s\n", FormatDuration(k.policy.auto_rotate_period).c_str());
  if (k.policy.max_operations_per_version != 0) {
    std::printf("max operations/version: %llu\n", static_cast<unsigned long long>(k.policy.max_operations_per_version));
  } else {
    std::printf("max operations/version: unlimited\n");
  }
  std::printf("min decryption version: %u\n", k.policy.min_decryption_version);
  std::printf("deletion allowed:       %s\n", k.policy.deletion_allowed ? "yes" : "no");
  std::printf("versions:\n");
  for (const auto& v : k.versions) {
    std::printf("  v%-4u %-12s created %s  operations <= %llu\n", v.version,
                std::string(keystore::VersionStateName(v.state)).c_str(), FormatTime(v.created).c_str(),
                static_cast<unsigned long long>(v.operations));
  }
}

std::string Base64(ByteView b) {
  std::string out(sodium_base64_ENCODED_LEN(b.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), b.data(), b.size(), sodium_base64_VARIANT_ORIGINAL);
  out.resize(out.size() - 1);
  return out;
}

template <typename F>
void WithStore(const char* command, const StoreFlags& f, F body) {
  auto store = OpenStore(f);
  if (!store.ok()) return Fail(command, store.error());
  body(**store);
}

}  // namespace

std::string DefaultDataDir() {
  // NOLINTBEGIN(concurrency-mt-unsafe): read on the CLI's main thread, the only one that sets variables
  if (const char* d = std::getenv("QSAPI_DATA_DIR"); d != nullptr && *d != '\0') return d;
  const char* home = std::getenv("HOME");
  // NOLINTEND(concurrency-mt-unsafe)
  return std::string(home != nullptr ? home : ".") + "/.local/share/qsapi";
}

void AddStoreFlags(CLI::App* cmd, StoreFlags& f) {
  cmd->add_option("--data-dir", f.data_dir,
                  "Data directory of the embedded keystore (default: $QSAPI_DATA_DIR or ~/.local/share/qsapi)");
  cmd->add_option("--pkcs11-module", f.module, "PKCS#11 module to load")->capture_default_str();
  cmd->add_option("--token-label", f.token_label, "Label of the token that holds the KEK")->capture_default_str();
  cmd->add_option("--pin-file", f.pin_file, "Your HSM's user PIN, in a file of mode 0600 (not the embedded default)");
  cmd->add_option("--pin-env", f.pin_env,
                  "Environment variable that holds your HSM's user PIN (not the embedded default)");
  cmd->add_option("--database", f.database, "Metadata database (default: <data-dir>/keystore.db)");
  cmd->add_option("--config", f.config,
                  "qsapid's configuration file: use its [keystore] and [store] (a PostgreSQL cluster's database)")
      ->excludes("--database");
}

static bool External(const StoreFlags& f) { return !f.pin_file.empty() || !f.pin_env.empty(); }

Result<std::unique_ptr<keystore::Keystore>> OpenStore(const StoreFlags& f) {
  if (!f.config.empty()) {
    QSAPI_ASSIGN_OR_RETURN(server::Config config, server::LoadConfig(f.config));
    return server::OpenKeystoreFor(config, /*create=*/false, nullptr);
  }
  const std::string dir = f.data_dir.empty() ? DefaultDataDir() : f.data_dir;
  keystore::KeystoreOptions o;
  if (External(f)) {
    o.token.pin_file = f.pin_file;
    o.token.pin_env = f.pin_env;
    o.database = f.database.empty() ? std::filesystem::path(dir) / "keystore.db" : std::filesystem::path(f.database);
  } else {
    if (!std::filesystem::exists(std::filesystem::path(dir) / "softhsm2.conf")) {
      return FailedPrecondition("no keystore in " + dir + "; run `qsapi init --data-dir " + dir + "` first");
    }
    o = keystore::EmbeddedOptions(dir);
    if (!f.database.empty()) o.database = f.database;
  }
  o.token.module_path = f.module;
  o.token.token_label = f.token_label;
  return keystore::Keystore::Open(o);
}

void RegisterKeyCommands(CLI::App& app) {
  auto flags = std::make_shared<StoreFlags>();

  CLI::App* init = app.add_subcommand("init", "Create the embedded keystore: SoftHSM2 token, KEK, PINs, database");
  AddStoreFlags(init, *flags);
  init->callback([flags] {
    const std::string dir = flags->data_dir.empty() ? DefaultDataDir() : flags->data_dir;
    Result<bool> created = keystore::InitEmbedded(dir, flags->module);
    if (!created.ok()) return Fail("init", created.error());
    const keystore::EmbeddedLayout layout{std::filesystem::absolute(dir)};
    std::printf("%s %s\n", *created ? "created the keystore in" : "the keystore exists in", layout.data_dir.c_str());
    std::printf("  token:    SoftHSM2 token \"qsapi\" in %s\n", layout.token_dir().c_str());
    std::printf("  PINs:     %s, %s (mode 0600; keep them safe)\n", layout.so_pin_file().c_str(),
                layout.user_pin_file().c_str());
    std::printf("  metadata: %s\n", layout.database().c_str());
  });

  CLI::App* key = app.add_subcommand("key", "Keys in the keystore: create, list, show, rotate, public, destroy, ...");
  key->require_subcommand(1);

  struct CreateFlags {
    std::string name, type = "AES-256-GCM", rotate = "0";
    std::uint64_t max_ops = 0;
    bool deletion = false;
  };
  auto cf = std::make_shared<CreateFlags>();
  CLI::App* create = key->add_subcommand("create", "Create a key (version 1)");
  AddStoreFlags(create, *flags);
  create->add_option("name", cf->name, "Key name")->required();
  create->add_option("--type", cf->type, "AES-256-GCM, XChaCha20-Poly1305, ML-KEM-768, X-Wing, ML-DSA-65, ...")
      ->capture_default_str();
  create->add_option("--auto-rotate", cf->rotate, "Rotation period (e.g. 30d, 12h; 0 = off)")->capture_default_str();
  create->add_option("--max-operations", cf->max_ops, "Operations per version before rotation (0 = type default)");
  create->add_flag("--allow-deletion", cf->deletion, "Allow destroy and destroy-version");
  create->callback([flags, cf] {
    Result<keystore::KeyType> type = keystore::ParseKeyType(cf->type);
    if (!type.ok()) return Fail("key create", type.error());
    Result<std::chrono::seconds> period = ParseDuration(cf->rotate);
    if (!period.ok()) return Fail("key create", period.error());
    WithStore("key create", *flags, [&](keystore::Keystore& ks) {
      keystore::KeyPolicy p;
      p.auto_rotate_period = *period;
      p.max_operations_per_version = cf->max_ops;
      p.deletion_allowed = cf->deletion;
      auto info = ks.Create(cf->name, *type, p);
      if (!info.ok()) return Fail("key create", info.error());
      PrintKey(*info);
    });
  });

  CLI::App* list = key->add_subcommand("list", "List keys");
  AddStoreFlags(list, *flags);
  list->callback([flags] {
    WithStore("key list", *flags, [](keystore::Keystore& ks) {
      auto keys = ks.List();
      if (!keys.ok()) return Fail("key list", keys.error());
      std::printf("%-24s %-22s %-8s %-8s %s\n", "name", "type", "version", "rotate", "id");
      for (const auto& k : *keys) {
        std::printf("%-24s %-22s %-8u %-8s %s\n", k.name.c_str(), keystore::KeyTypeName(k.type).c_str(),
                    k.current_version, FormatDuration(k.policy.auto_rotate_period).c_str(),
                    keystore::KeyIdHex(k.id).c_str());
      }
    });
  });

  auto name = std::make_shared<std::string>();
  auto version = std::make_shared<std::uint32_t>(0);
  CLI::App* show = key->add_subcommand("show", "Show a key, its policy and versions");
  AddStoreFlags(show, *flags);
  show->add_option("name", *name, "Key name")->required();
  show->callback([flags, name] {
    WithStore("key show", *flags, [&](keystore::Keystore& ks) {
      auto info = ks.Get(*name);
      if (!info.ok()) return Fail("key show", info.error());
      PrintKey(*info);
    });
  });

  CLI::App* rotate = key->add_subcommand("rotate", "Add a new version and make it current");
  AddStoreFlags(rotate, *flags);
  rotate->add_option("name", *name, "Key name")->required();
  rotate->callback([flags, name] {
    WithStore("key rotate", *flags, [&](keystore::Keystore& ks) {
      auto info = ks.Rotate(*name);
      if (!info.ok()) return Fail("key rotate", info.error());
      std::printf("key \"%s\" is now at version %u\n", info->name.c_str(), info->current_version);
    });
  });

  CLI::App* pub = key->add_subcommand("public", "Print a KEM or signature key's public key (base64)");
  AddStoreFlags(pub, *flags);
  pub->add_option("name", *name, "Key name")->required();
  pub->add_option("--version", *version, "Version (default: current)");
  auto format = std::make_shared<std::string>("base64");
  pub->add_option("--format", *format,
                  "base64 (raw key), or hpke: a public-key file for `qsapi seal --to` (HPKE KEMs: X-Wing, "
                  "ML-KEM-768/1024, MLKEM1024-P384)")
      ->capture_default_str();
  pub->callback([flags, name, version, format] {
    if (*format != "base64" && *format != "hpke") return Fail("key public", "--format must be base64 or hpke");
    WithStore("key public", *flags, [&](keystore::Keystore& ks) {
      if (*format == "hpke") {
        auto info = ks.Get(*name);
        if (!info.ok()) return Fail("key public", info.error());
        const std::uint32_t v = *version == 0 ? info->current_version : *version;
        auto pk = ks.KemPublicKey(*name, v);
        if (!pk.ok()) return Fail("key public", pk.error());
        auto file = hpke::EncodePublicKeyFile(*pk, KeystoreHpkeKeyId(info->id, v));
        if (!file.ok()) return Fail("key public", file.error());
        std::fputs(file->c_str(), stdout);
        return;
      }
      auto p = ks.PublicKey(*name, *version);
      if (!p.ok()) return Fail("key public", p.error());
      std::printf("%s\n", Base64(*p).c_str());
    });
  });

  CLI::App* destroy = key->add_subcommand("destroy", "Destroy a key (all versions), or one old version");
  AddStoreFlags(destroy, *flags);
  destroy->add_option("name", *name, "Key name")->required();
  destroy->add_option("--version", *version, "Destroy only this (non-current) version");
  destroy->callback([flags, name, version] {
    WithStore("key destroy", *flags, [&](keystore::Keystore& ks) {
      const Status s = *version == 0 ? ks.Destroy(*name) : ks.DestroyVersion(*name, *version);
      if (!s.ok()) return Fail("key destroy", s.error());
      if (*version == 0) {
        std::printf("key \"%s\" destroyed\n", name->c_str());
      } else {
        std::printf("key \"%s\" version %u destroyed\n", name->c_str(), *version);
      }
    });
  });

  struct ConfigFlags {
    std::optional<std::string> rotate;
    std::optional<std::uint64_t> max_ops;
    std::optional<std::uint32_t> min_decrypt;
    std::optional<bool> deletion;
  };
  auto cfg = std::make_shared<ConfigFlags>();
  CLI::App* config = key->add_subcommand("config", "Change a key's policy");
  AddStoreFlags(config, *flags);
  config->add_option("name", *name, "Key name")->required();
  config->add_option("--auto-rotate", cfg->rotate, "Rotation period (e.g. 30d; 0 = off)");
  config->add_option("--max-operations", cfg->max_ops, "Operations per version before rotation (0 = type default)");
  config->add_option("--min-decryption-version", cfg->min_decrypt, "Oldest version that may still decrypt");
  config->add_option("--allow-deletion", cfg->deletion, "true or false");
  config->callback([flags, name, cfg] {
    WithStore("key config", *flags, [&](keystore::Keystore& ks) {
      auto info = ks.Get(*name);
      if (!info.ok()) return Fail("key config", info.error());
      keystore::KeyPolicy p = info->policy;
      if (info->type.is_aead()) {
        // Keep an explicit limit only if it was explicit: the stored 0 means the type default.
      } else {
        p.max_operations_per_version = 0;
      }
      if (cfg->rotate) {
        auto d = ParseDuration(*cfg->rotate);
        if (!d.ok()) return Fail("key config", d.error());
        p.auto_rotate_period = *d;
      }
      if (cfg->max_ops) p.max_operations_per_version = *cfg->max_ops;
      if (cfg->min_decrypt) p.min_decryption_version = *cfg->min_decrypt;
      if (cfg->deletion) p.deletion_allowed = *cfg->deletion;
      auto updated = ks.UpdatePolicy(*name, p);
      if (!updated.ok()) return Fail("key config", updated.error());
      PrintKey(*updated);
    });
  });

  CLI::App* verify =
      key->add_subcommand("verify", "Check that the token opens every live key version and the audit chain holds");
  AddStoreFlags(verify, *flags);
  verify->callback([flags] {
    WithStore("key verify", *flags, [](keystore::Keystore& ks) {
      auto r = ks.CheckIntegrity();
      if (!r.ok()) return Fail("key verify", r.error());
      std::printf("%zu keys, %zu versions checked in %s\n", r->keys, r->versions_checked,
                  ks.token_description().c_str());
      for (const auto& p : r->problems) std::printf("problem: %s\n", p.c_str());
      if (!r->problems.empty()) return Fail("key verify", std::to_string(r->problems.size()) + " problem(s) found");
      std::printf("ok\n");
    });
  });

  auto max_entries = std::make_shared<std::size_t>(50);
  CLI::App* audit = key->add_subcommand("audit", "Show the newest entries of the keystore's audit trail");
  AddStoreFlags(audit, *flags);
  audit->add_option("-n", *max_entries, "How many entries")->capture_default_str();
  audit->callback([flags, max_entries] {
    WithStore("key audit", *flags, [&](keystore::Keystore& ks) {
      auto entries = ks.Audit(*max_entries);
      if (!entries.ok()) return Fail("key audit", entries.error());
      for (const auto& e : *entries) {
        std::printf("%6llu %s %-8s %-16s %-24s v%-4u %s %s\n", static_cast<unsigned long long>(e.seq),
                    FormatTime(e.at).c_str(), e.actor.c_str(), e.action.c_str(), e.key_name.c_str(), e.version,
                    e.result.c_str(), e.detail.c_str());
      }
    });
  });
}

}  // namespace qsapi::cli
