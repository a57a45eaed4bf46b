// The embedded default: SoftHSM2 with its config and token directory under qsapi's data
// directory, generated PINs in 0600 files, the KEK, and the SQLite database.
//
// Every step is idempotent and each file is written atomically (temporary file, fsync, rename),
// so an interrupted first start is completed by the next one: PIN files without a token get a
// token initialised with those PINs; a token without its KEK gets the KEK.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <iterator>
#include <string>

#include <sodium.h>

#include "common/internal/secret_file.h"
#include "common/internal/text.h"
#include "keystore/internal/metadata_store.h"
#include "keystore/internal/pkcs11_token.h"
#include "qsapi/crypto/random.h"
#include "qsapi/keystore/keystore.h"
#include "qsapi/log.h"

namespace qsapi::keystore {
namespace {

Status MakeDir(const std::filesystem::path& dir) {
  if (::mkdir(dir.c_str(), 0700) == 0) return OkStatus();
  if (errno != EEXIST)
    return Unavailable("cannot create directory " + dir.string() + ": " + qsapi::internal::ErrnoText(errno));
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return FailedPrecondition(dir.string() + " exists and is not a directory");
  }
  return OkStatus();
}

// WriteFileAtomically writes `data` to `path` with mode 0600 (temporary file, fsync, rename,
// fsync of the directory). kAlreadyExists when `path` exists.
Status WriteFileAtomically(const std::filesystem::path& path, ByteView data) {
  if (::access(path.c_str(), F_OK) == 0) return AlreadyExists(path.string() + " exists");
  const std::string tmp = path.string() + ".tmp";
  ::unlink(tmp.c_str());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Unavailable("cannot create " + tmp + ": " + qsapi::internal::ErrnoText(errno));
  std::size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string why = qsapi::internal::ErrnoText(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      return Unavailable("cannot write " + tmp + ": " + why);
    }
    off += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    return Unavailable("cannot sync " + tmp + ": " + qsapi::internal::ErrnoText(errno));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return Unavailable("cannot rename " + tmp + ": " + qsapi::internal::ErrnoText(errno));
  }
  const int dfd = ::open(path.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return OkStatus();
}

Status WriteTextIfMissing(const std::filesystem::path& path, const std::string& text) {
  Status s =
      WriteFileAtomically(path, ByteView(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));  // NOLINT
  if (!s.ok() && s.error().code() == ErrorCode::kAlreadyExists) return OkStatus();
  return s;
}

// NewPin returns a random PIN: 24 random bytes, base64url (32 characters).
Result<SecretBytes> NewPin() {
  QSAPI_ASSIGN_OR_RETURN(SecretBytes raw, crypto::RandomSecret(24));
  SecretBytes pin(sodium_base64_ENCODED_LEN(24, sodium_base64_VARIANT_URLSAFE_NO_PADDING));
  sodium_bin2base64(reinterpret_cast<char*>(pin.data()), pin.size(), raw.data(), raw.size(),  // NOLINT
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  pin.Shrink(32);
  return pin;
}

Result<SecretBytes> EnsurePinFile(const std::filesystem::path& path, bool* created) {
  if (::access(path.c_str(), F_OK) != 0) {
    QSAPI_ASSIGN_OR_RETURN(SecretBytes pin, NewPin());
    Bytes with_newline(pin.view().begin(), pin.view().end());
    with_newline.push_back('\n');
    Status s = WriteFileAtomically(path, with_newline);
    SecureZero(with_newline.data(), with_newline.size());
    QSAPI_RETURN_IF_ERROR(s);
    *created = true;
  }
  TokenOptions o;
  o.pin_file = path.string();
  return internal::ReadPin(o);
}

// Called while the keystore opens, before the PKCS#11 module is loaded and reads the variable, and
// before the process starts threads that read the environment (qsapid and the CLI open it first).
void UseSoftHsmConf(const EmbeddedLayout& layout) {
  ::setenv("SOFTHSM2_CONF", layout.softhsm_conf().c_str(), 1);  // NOLINT(concurrency-mt-unsafe)
}

// SoftHSM2 2.6's file backend rewrites a token's token.object in place (ftruncate, then write) on
// every C_Login, so a process killed between the two leaves an empty file and the token is gone.
// The file's content that matters (label, PIN blobs, the token key) changes only when PINs do,
// which the embedded default never does after init; so init keeps a copy, and every open restores
// an empty or truncated token.object from it before the module is loaded.
std::filesystem::path TokenBackup(const EmbeddedLayout& layout, const std::filesystem::path& token_object) {
  return layout.data_dir / "token-backup" / token_object.parent_path().filename() / "token.object";
}

Status CopyAtomically(const std::filesystem::path& from, const std::filesystem::path& to) {
  std::ifstream in(from, std::ios::binary);
  if (!in) return Unavailable("cannot read " + from.string());
  const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::error_code ec;
  std::filesystem::remove(to, ec);
  return WriteFileAtomically(to, ByteView(reinterpret_cast<const std::uint8_t*>(data.data()), data.size()));  // NOLINT
}

Status BackUpTokens(const EmbeddedLayout& layout) {
  std::error_code ec;
  for (const auto& dir : std::filesystem::directory_iterator(layout.token_dir(), ec)) {
    const auto object = dir.path() / "token.object";
    if (!std::filesystem::is_regular_file(object) || std::filesystem::file_size(object, ec) == 0) continue;
    const auto backup = TokenBackup(layout, object);
    if (std::filesystem::exists(backup)) continue;
    QSAPI_RETURN_IF_ERROR(MakeDir(backup.parent_path().parent_path()));
    QSAPI_RETURN_IF_ERROR(MakeDir(backup.parent_path()));
    QSAPI_RETURN_IF_ERROR(CopyAtomically(object, backup));
  }
  return OkStatus();
}

void RepairTokens(const EmbeddedLayout& layout) {
  std::error_code ec;
  for (const auto& dir : std::filesystem::directory_iterator(layout.token_dir(), ec)) {
    const auto object = dir.path() / "token.object";
    const auto backup = TokenBackup(layout, object);
    if (!std::filesystem::exists(backup, ec)) continue;
    const auto size = std::filesystem::file_size(object, ec);
    if (!ec && size >= std::filesystem::file_size(backup, ec)) continue;
    ec.clear();
    if (Status s = CopyAtomically(backup, object); s.ok()) {
      Log(LogLevel::kWarning, "keystore",
          "restored " + object.string() + " from its copy made at init (SoftHSM2 left it truncated, " +
              "most likely because a process was killed while logging in)");
    } else {
      Log(LogLevel::kError, "keystore", "cannot restore " + object.string() + ": " + s.error().message());
    }
  }
}

}  // namespace

KeystoreOptions EmbeddedOptions(const std::filesystem::path& data_dir) {
  const EmbeddedLayout layout{std::filesystem::absolute(data_dir)};
  UseSoftHsmConf(layout);
  RepairTokens(layout);
  KeystoreOptions o;
  o.token.pin_file = layout.user_pin_file().string();
  o.database = layout.database();
  return o;
}

Result<bool> InitEmbedded(const std::filesystem::path& data_dir, const std::string& module_path) {
  QSAPI_ASSIGN_OR_RETURN(const bool created, InitEmbeddedToken(data_dir, module_path));
  const EmbeddedLayout layout{std::filesystem::absolute(data_dir)};
  QSAPI_ASSIGN_OR_RETURN(std::unique_ptr<internal::MetadataStore> store, internal::OpenSqliteStore(layout.database()));
  if (created) {
    QSAPI_RETURN_IF_ERROR(store->AppendAudit(
        internal::AuditRow{.at = internal::UnixNow(),
                           .actor = "local",
                           .action = "init",
                           .key_name = "",
                           .version = 0,
                           .result = "ok",
                           .detail = "token \"" + TokenOptions{}.token_label + "\" and KEK created"}));
  }
  return created;
}

Result<bool> InitEmbeddedToken(const std::filesystem::path& data_dir, const std::string& module_path) {
  const EmbeddedLayout layout{std::filesystem::absolute(data_dir)};
  QSAPI_RETURN_IF_ERROR(MakeDir(layout.data_dir));
  QSAPI_RETURN_IF_ERROR(MakeDir(layout.token_dir()));
  QSAPI_RETURN_IF_ERROR(MakeDir(layout.so_pin_file().parent_path()));
  QSAPI_RETURN_IF_ERROR(
      WriteTextIfMissing(layout.softhsm_conf(),
                         "# SoftHSM2 configuration of qsapi's embedded default (written by qsapi init)\n"
                         "directories.tokendir = " +
                             layout.token_dir().string() +
                             "\nobjectstore.backend = file\nlog.level = ERROR\n"
                             "slots.removable = false\n"));
  UseSoftHsmConf(layout);

  KeystoreOptions options = EmbeddedOptions(layout.data_dir);
  options.token.module_path = module_path;
  QSAPI_ASSIGN_OR_RETURN(bool exists, internal::TokenExists(module_path, options.token.token_label));
  bool created = false;
  bool pins_created = false;
  if (!exists) {
    QSAPI_ASSIGN_OR_RETURN(SecretBytes so_pin, EnsurePinFile(layout.so_pin_file(), &pins_created));
    QSAPI_ASSIGN_OR_RETURN(SecretBytes user_pin, EnsurePinFile(layout.user_pin_file(), &pins_created));
    internal::FaultPoint("keystore.init.before_token");
    QSAPI_RETURN_IF_ERROR(internal::InitToken(module_path, options.token.token_label, so_pin, user_pin));
    created = true;
    Log(LogLevel::kInfo, "keystore",
        "initialised SoftHSM2 token \"" + options.token.token_label + "\" in " + layout.token_dir().string() +
            " (PINs in " + layout.so_pin_file().parent_path().string() + ", mode 0600)");
  } else if (::access(layout.user_pin_file().c_str(), F_OK) != 0) {
    return FailedPrecondition("the token \"" + options.token.token_label + "\" exists but its user PIN file " +
                              layout.user_pin_file().string() + " is missing");
  }
  QSAPI_RETURN_IF_ERROR(BackUpTokens(layout));
  QSAPI_ASSIGN_OR_RETURN(SecretBytes pin, internal::ReadPin(options.token));
  {
    QSAPI_ASSIGN_OR_RETURN(std::unique_ptr<internal::KeyProtector> protector,
                           internal::OpenTokenProtector(options.token, pin, /*create_kek=*/true));
  }
  return created;
}

Status JoinEmbedded(const std::filesystem::path& from, const std::filesystem::path& data_dir,
                    const std::string& module_path) {
  const EmbeddedLayout source{std::filesystem::absolute(from)};
  const EmbeddedLayout layout{std::filesystem::absolute(data_dir)};
  std::error_code ec;
  if (!std::filesystem::is_directory(source.token_dir(), ec) || std::filesystem::is_empty(source.token_dir(), ec)) {
    return FailedPrecondition(source.token_dir().string() +
                              " holds no token: give the data directory of a node "
                              "of the cluster (copied over a channel you trust, with its tokens/ and pins/)");
  }
  if (::access(source.user_pin_file().c_str(), R_OK) != 0) {
    return FailedPrecondition("the user PIN file " + source.user_pin_file().string() + " is missing");
  }
  if (std::filesystem::is_directory(layout.token_dir(), ec) && !std::filesystem::is_empty(layout.token_dir(), ec)) {
    return FailedPrecondition(layout.token_dir().string() +
                              " already holds a token; a node joins with an empty data directory");
  }
  QSAPI_RETURN_IF_ERROR(MakeDir(layout.data_dir));
  QSAPI_RETURN_IF_ERROR(MakeDir(layout.token_dir()));
  QSAPI_RETURN_IF_ERROR(MakeDir(layout.user_pin_file().parent_path()));
  // The token's files as they are (SoftHSM2 keeps nothing per key in them after init: only the KEK
  // and the token's PINs), then the user PIN; the SO PIN stays with the node that made the token.
  for (const auto& dir : std::filesystem::directory_iterator(source.token_dir(), ec)) {
    if (!dir.is_directory()) continue;
    const std::filesystem::path to = layout.token_dir() / dir.path().filename();
    QSAPI_RETURN_IF_ERROR(MakeDir(to));
    for (const auto& f : std::filesystem::directory_iterator(dir.path(), ec)) {
      if (!f.is_regular_file()) continue;
      QSAPI_RETURN_IF_ERROR(CopyAtomically(f.path(), to / f.path().filename()));
    }
  }
  if (ec) return Unavailable("cannot read " + source.token_dir().string() + ": " + ec.message());
  {
    QSAPI_ASSIGN_OR_RETURN(SecretBytes pin, qsapi::internal::ReadSecretFile(source.user_pin_file(), "user PIN file"));
    QSAPI_RETURN_IF_ERROR(WriteFileAtomically(layout.user_pin_file(), pin.view()));
  }
  QSAPI_ASSIGN_OR_RETURN(const bool created, InitEmbeddedToken(layout.data_dir, module_path));
  if (created) return Internal("the copied token was not found after the copy");
  Log(LogLevel::kInfo, "keystore",
      "copied the token of " + source.data_dir.string() + " into " + layout.token_dir().string());
  return OkStatus();
}

}  // namespace qsapi::keystore
