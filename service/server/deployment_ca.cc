#include "server/deployment_ca.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <arpa/inet.h>
#include <fstream>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>
#include <openssl/x509.h>

#include "pki/internal/tls_context.h"
#include "qsapi/log.h"

namespace qsapi::server {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t kMaxWrappedFile = std::size_t{64} * 1024;

ByteView View(std::string_view s) { return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()}; }  // NOLINT

Bytes AssociatedData(std::string_view purpose) {
  const std::string ad = "qsapi wrapped private key v1" + std::string(1, '\0') + std::string(purpose);
  return {ad.begin(), ad.end()};
}

Status MakePrivateDir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Unavailable("cannot create " + dir.string() + ": " + ec.message());
  if (::chmod(dir.c_str(), 0700) != 0) return Unavailable("cannot set the mode of " + dir.string());
  return OkStatus();
}

Result<std::string> ReadSmallFile(const fs::path& path, std::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(std::string(what) + " " + path.string() + " does not exist");
  std::string text(kMaxWrappedFile + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (text.size() > kMaxWrappedFile) return InvalidArgument(std::string(what) + " " + path.string() + " is too large");
  return text;
}

bool IsIpLiteral(const std::string& s) {
  unsigned char buf[16];
  return ::inet_pton(AF_INET, s.c_str(), buf) == 1 || ::inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += n + "\n";
  return out;
}

}  // namespace

Result<TlsProfile> TlsProfileNamed(std::string_view name) {
  if (name == "default") return TlsProfile{"default", pki::KeyAlgorithm::kMlDsa65, std::string(pki::kPqHybridGroups)};
  if (name == "cnsa2") return TlsProfile{"cnsa2", pki::KeyAlgorithm::kMlDsa87, "SecP384r1MLKEM1024"};
  return InvalidArgument("unknown TLS profile \"" + std::string(name) + "\"; valid profiles: default, cnsa2");
}

Status WriteWrappedPrivateKey(keystore::Keystore& keystore, const fs::path& path, const pki::PrivateKey& key,
                              std::string_view purpose, bool overwrite) {
  if (!overwrite && fs::exists(path)) {
    return AlreadyExists("key file " + path.string() + " exists already");
  }
  if (Result<keystore::KeyInfo> k = keystore.Get(kFileWrapKey); !k.ok()) {
    if (k.error().code() != ErrorCode::kNotFound) return k.error();
    Result<keystore::KeyInfo> created = keystore.Create(kFileWrapKey, keystore::KeyType{});
    if (!created.ok() && created.error().code() != ErrorCode::kAlreadyExists) return created.error();
  }
  QSAPI_ASSIGN_OR_RETURN(SecretBytes pem, key.ToPem());
  QSAPI_ASSIGN_OR_RETURN(Bytes wrapped, keystore.Encrypt(kFileWrapKey, pem.view(), AssociatedData(purpose)));
  const std::string text = keystore::ToText(wrapped) + "\n";
  return pki::WriteProtectedFile(path, View(text), 0600, overwrite);
}

Result<pki::PrivateKey> ReadWrappedPrivateKey(keystore::Keystore& keystore, const fs::path& path,
                                              std::string_view purpose) {
  QSAPI_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(path, "key file"));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  Result<Bytes> wrapped = keystore::FromText(text);
  if (!wrapped.ok())
    return InvalidArgument("key file " + path.string() + " is not a wrapped key: " + wrapped.error().message());
  Result<SecretBytes> pem = keystore.DecryptSecret(kFileWrapKey, *wrapped, AssociatedData(purpose));
  if (!pem.ok()) {
    return Error(pem.error().code(), "cannot unwrap key file " + path.string() + " (" + std::string(purpose) +
                                         "): " + pem.error().message());
  }
  return pki::PrivateKey::FromPem(pem->view());
}

Result<DeploymentCa> DeploymentCa::Open(keystore::Keystore& keystore, const fs::path& data_dir) {
  const fs::path cert_path = CertificatePath(data_dir);
  if (!fs::exists(cert_path)) {
    return NotFound("no deployment CA in " + data_dir.string() + " (create one with `qsapi ca init`)");
  }
  QSAPI_ASSIGN_OR_RETURN(pki::Certificate cert, pki::ReadCertificatePem(cert_path));
  QSAPI_ASSIGN_OR_RETURN(pki::PrivateKey key, ReadWrappedPrivateKey(keystore, KeyPath(data_dir), "deployment CA"));
  if (X509_check_private_key(cert.native_handle(), key.native_handle()) != 1) {
    return FailedPrecondition("the deployment CA's key " + KeyPath(data_dir).string() +
                              " does not match its certificate " + cert_path.string());
  }
  auto shared = std::make_shared<const pki::PrivateKey>(std::move(key));
  DeploymentCa ca(std::move(cert), shared);
  return ca;
}

Result<DeploymentCa> DeploymentCa::Create(keystore::Keystore& keystore, const fs::path& data_dir,
                                          const TlsProfile& profile, std::string_view common_name,
                                          std::chrono::seconds validity) {
  if (fs::exists(CertificatePath(data_dir)) || fs::exists(KeyPath(data_dir))) {
    return AlreadyExists("a deployment CA exists already in " + (data_dir / "ca").string());
  }
  QSAPI_RETURN_IF_ERROR(MakePrivateDir(data_dir / "ca"));
  QSAPI_ASSIGN_OR_RETURN(pki::PrivateKey key, pki::PrivateKey::Generate(profile.algorithm));
  QSAPI_ASSIGN_OR_RETURN(pki::Certificate cert, pki::CreateSelfSignedCa(key, common_name, validity));
  // Key first, certificate last: the certificate's presence means "a CA exists", and a crash in
  // between leaves a key file without a certificate, which the next Create replaces.
  QSAPI_RETURN_IF_ERROR(WriteWrappedPrivateKey(keystore, KeyPath(data_dir), key, "deployment CA", /*overwrite=*/true));
  QSAPI_RETURN_IF_ERROR(pki::WriteCertificatePem(CertificatePath(data_dir), {cert}));
  return DeploymentCa(std::move(cert), std::make_shared<const pki::PrivateKey>(std::move(key)));
}

Result<DeploymentCa> DeploymentCa::OpenOrCreate(keystore::Keystore& keystore, const fs::path& data_dir,
                                                const TlsProfile& profile, bool* created) {
  if (created != nullptr) *created = false;
  if (fs::exists(CertificatePath(data_dir))) return Open(keystore, data_dir);
  std::error_code ec;
  fs::remove(KeyPath(data_dir), ec);  // a key without its certificate: an interrupted Create
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  QSAPI_ASSIGN_OR_RETURN(DeploymentCa ca,
                         Create(keystore, data_dir, profile, "qsapi deployment CA " + std::string(host)));
  if (created != nullptr) *created = true;
  return ca;
}

namespace {

constexpr std::string_view kCaRecordKind = "deployment-ca";
constexpr std::string_view kCaRecordName = "ca";

// The CA record: {"certificate": PEM, "key": the wrapped key's text form}, nothing in clear.
Result<std::string> CaRecordValue(const fs::path& data_dir) {
  QSAPI_ASSIGN_OR_RETURN(std::string cert, ReadSmallFile(DeploymentCa::CertificatePath(data_dir), "CA certificate"));
  QSAPI_ASSIGN_OR_RETURN(std::string key, ReadSmallFile(DeploymentCa::KeyPath(data_dir), "CA key file"));
  return nlohmann::json{{"certificate", cert}, {"key", key}}.dump();
}

Status PublishCa(keystore::Keystore& keystore, const fs::path& data_dir) {
  QSAPI_ASSIGN_OR_RETURN(std::string value, CaRecordValue(data_dir));
  return keystore.CreateRecord(kCaRecordKind, kCaRecordName, View(value));
}

// InstallCa writes the record's files into this node's ca/ directory (replacing what was there).
Status InstallCa(const keystore::Record& record, const fs::path& data_dir) {
  const nlohmann::json j = nlohmann::json::parse(record.value.begin(), record.value.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("certificate") || !j.contains("key") ||
      !j["certificate"].is_string() || !j["key"].is_string()) {
    return DataLoss(
        "the deployment CA record in the keystore database is not a CA (expected its certificate and "
        "wrapped key)");
  }
  QSAPI_RETURN_IF_ERROR(MakePrivateDir(data_dir / "ca"));
  const std::string cert = j["certificate"].get<std::string>();
  const std::string key = j["key"].get<std::string>();
  QSAPI_RETURN_IF_ERROR(pki::WriteProtectedFile(DeploymentCa::KeyPath(data_dir), View(key), 0600, true));
  return pki::WriteProtectedFile(DeploymentCa::CertificatePath(data_dir), View(cert), 0644, true);
}

Result<std::optional<keystore::Record>> FindCaRecord(keystore::Keystore& keystore) {
  QSAPI_ASSIGN_OR_RETURN(std::vector<keystore::Record> records, keystore.ListRecords(kCaRecordKind));
  for (keystore::Record& r : records) {
    if (r.name == kCaRecordName) return std::optional<keystore::Record>(std::move(r));
  }
  return std::optional<keystore::Record>();
}

}  // namespace

Result<DeploymentCa> DeploymentCa::OpenShared(keystore::Keystore& keystore, const fs::path& data_dir,
                                              const TlsProfile& profile, bool* created) {
  if (created != nullptr) *created = false;
  QSAPI_ASSIGN_OR_RETURN(std::optional<keystore::Record> record, FindCaRecord(keystore));
  if (!record) {
    bool made = false;
    QSAPI_ASSIGN_OR_RETURN(DeploymentCa local, OpenOrCreate(keystore, data_dir, profile, &made));
    const Status published = PublishCa(keystore, data_dir);
    if (published.ok()) {
      if (created != nullptr) *created = made;
      return local;
    }
    if (published.error().code() != ErrorCode::kAlreadyExists) return published.error();
    QSAPI_ASSIGN_OR_RETURN(record, FindCaRecord(keystore));  // another node published first
    if (!record) return Unavailable("the deployment CA another node published cannot be read back; retry");
  }
  QSAPI_RETURN_IF_ERROR(InstallCa(*record, data_dir));
  return Open(keystore, data_dir);
}

Result<DeploymentCa> DeploymentCa::OpenSharedExisting(keystore::Keystore& keystore, const fs::path& data_dir) {
  QSAPI_ASSIGN_OR_RETURN(std::optional<keystore::Record> record, FindCaRecord(keystore));
  if (!record) {
    return NotFound(
        "the cluster's database holds no deployment CA yet (start a node once, or run qsapi ca init "
        "--config)");
  }
  QSAPI_RETURN_IF_ERROR(InstallCa(*record, data_dir));
  return Open(keystore, data_dir);
}

Result<std::optional<keystore::RecordToAdd>> DeploymentCa::LocalRecord(const fs::path& data_dir) {
  if (!fs::exists(CertificatePath(data_dir)) && !fs::exists(KeyPath(data_dir))) {
    return std::optional<keystore::RecordToAdd>();
  }
  QSAPI_ASSIGN_OR_RETURN(std::string value, CaRecordValue(data_dir));
  return std::optional<keystore::RecordToAdd>(keystore::RecordToAdd{.kind = std::string(kCaRecordKind),
                                                                    .name = std::string(kCaRecordName),
                                                                    .value = Bytes(value.begin(), value.end())});
}

Result<pki::Certificate> DeploymentCa::Issue(const pki::PrivateKey& subject_key,
                                             const pki::CertificateProfile& profile) const {
  return pki::IssueCertificate(certificate_, *key_, subject_key, profile);
}

std::vector<std::string> DefaultServerNames(std::string_view listen_host) {
  std::vector<std::string> names{"localhost", "127.0.0.1", "::1"};
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) == 0 && host[0] != '\0') names.emplace_back(host);
  const std::string listen(listen_host);
  if (!listen.empty() && listen != "0.0.0.0" && listen != "::") names.push_back(listen);
  std::vector<std::string> unique;
  for (const std::string& n : names) {
    if (std::find(unique.begin(), unique.end(), n) == unique.end()) unique.push_back(n);
  }
  return unique;
}

namespace {

struct LeafSpec {
  std::string stem;     // "server" -> tls/server.pem, tls/server.key.wrapped, tls/server.names
  std::string purpose;  // the wrapped key's purpose
  bool server_auth = false, client_auth = false;
};

Result<ServerCredentials> EnsureLeaf(keystore::Keystore& keystore, const DeploymentCa& ca, const fs::path& data_dir,
                                     const TlsProfile& profile, const std::vector<std::string>& names,
                                     std::chrono::seconds validity, std::chrono::seconds renew_before,
                                     const LeafSpec& spec) {
  if (names.empty()) return InvalidArgument("the " + spec.stem + " certificate needs at least one name");
  const fs::path dir = data_dir / "tls";
  const fs::path chain = dir / (spec.stem + ".pem");
  const fs::path key_path = dir / (spec.stem + ".key.wrapped");
  const fs::path names_path = dir / (spec.stem + ".names");
  QSAPI_RETURN_IF_ERROR(MakePrivateDir(dir));

  std::string reason;
  if (fs::exists(chain) && fs::exists(key_path)) {
    Result<pki::Certificate> leaf = pki::ReadCertificatePem(chain);
    Result<pki::PrivateKey> key = ReadWrappedPrivateKey(keystore, key_path, spec.purpose);
    Result<std::string> old_names = ReadSmallFile(names_path, "names file");
    if (!leaf.ok() || !key.ok()) {
      return !leaf.ok() ? leaf.error() : key.error();  // damaged credentials are not silently replaced
    }
    if (X509_check_private_key(leaf->native_handle(), key->native_handle()) != 1) {
      reason = "its key does not match the certificate (an interrupted renewal)";
    } else if (key->algorithm() != profile.algorithm) {
      reason = "the TLS profile changed to " + profile.name;
    } else if (leaf->NotAfter() - std::chrono::system_clock::now() < renew_before) {
      reason = "the certificate expires within the renewal window";
    } else if (!old_names.ok() || *old_names != JoinNames(names)) {
      reason = "the server names changed";
    } else {
      return ServerCredentials{chain, std::make_shared<const pki::PrivateKey>(std::move(*key)), leaf->NotAfter(),
                               false};
    }
  }
  if (!reason.empty()) Log(LogLevel::kInfo, "qsapid", "issuing a new " + spec.stem + " certificate: " + reason);

  QSAPI_ASSIGN_OR_RETURN(pki::PrivateKey key, pki::PrivateKey::Generate(profile.algorithm));
  pki::CertificateProfile p;
  p.common_name = names.front();
  for (const std::string& n : names) (IsIpLiteral(n) ? p.ip_addresses : p.dns_names).push_back(n);
  p.server_auth = spec.server_auth;
  p.client_auth = spec.client_auth;
  p.validity = validity;
  QSAPI_ASSIGN_OR_RETURN(pki::Certificate leaf, ca.Issue(key, p));
  // Key, then names, then the chain: a crash before the chain is written leaves the old chain with
  // the new key, which the next start detects (the key does not match) and repairs by issuing again.
  QSAPI_RETURN_IF_ERROR(WriteWrappedPrivateKey(keystore, key_path, key, spec.purpose, /*overwrite=*/true));
  const std::string joined = JoinNames(names);
  QSAPI_RETURN_IF_ERROR(pki::WriteProtectedFile(names_path, View(joined), 0644, true));
  QSAPI_RETURN_IF_ERROR(pki::WriteCertificatePem(chain, {leaf, ca.certificate()}));
  return ServerCredentials{chain, std::make_shared<const pki::PrivateKey>(std::move(key)), leaf.NotAfter(), true};
}

}  // namespace

Result<ServerCredentials> EnsureServerCertificate(keystore::Keystore& keystore, const DeploymentCa& ca,
                                                  const fs::path& data_dir, const TlsProfile& profile,
                                                  const std::vector<std::string>& names, std::chrono::seconds validity,
                                                  std::chrono::seconds renew_before) {
  return EnsureLeaf(keystore, ca, data_dir, profile, names, validity, renew_before,
                    {"server", "qsapid TLS server", /*server_auth=*/true, /*client_auth=*/false});
}

Result<ServerCredentials> EnsurePeerCertificate(keystore::Keystore& keystore, const DeploymentCa& ca,
                                                const fs::path& data_dir, const TlsProfile& profile,
                                                const std::string& node_name, std::chrono::seconds validity,
                                                std::chrono::seconds renew_before) {
  return EnsureLeaf(keystore, ca, data_dir, profile, {node_name}, validity, renew_before,
                    {"peer", "qsapid peer link", /*server_auth=*/true, /*client_auth=*/true});
}

}  // namespace qsapi::server
