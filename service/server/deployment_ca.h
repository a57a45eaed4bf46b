// The deployment CA and qsapid's own TLS credentials, with private keys kept wrapped by the
// keystore.
//
// A deployment has one CA of its own (`qsapi ca`, or created by qsapid's first start). It issues
// the qsapid server certificate, client certificates for API clients, and the peer certificates of
// the session layer. Its private key, like qsapid's TLS server key, is stored only as a keystore
// ciphertext: the PKCS#8 PEM encrypted under the reserved keystore key "qsapid.files" (AES-256-GCM,
// itself wrapped by the HSM's KEK), with associated data that names the file's purpose, so that a
// wrapped CA key cannot be passed off as a server key. The clear key exists only in memory while a
// process uses it (OpenSSL needs it to sign), never on disk.
//
// Layout under the data directory:
//   ca/ca.pem               the CA certificate (0644): the trust anchor clients and peers install
//   ca/ca.key.wrapped       the CA private key, wrapped (0600)
//   tls/server.pem          qsapid's certificate chain: leaf, then the CA (0644)
//   tls/server.key.wrapped  its private key, wrapped (0600)
//   tls/server.names        the names the leaf was issued for (so that a change re-issues it)
//   tls/peer.*              the same for this node's peer-link certificate (CN = its peer name)
#ifndef QSAPI_SRC_SERVER_DEPLOYMENT_CA_H_
#define QSAPI_SRC_SERVER_DEPLOYMENT_CA_H_

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "qsapi/keystore/keystore.h"
#include "qsapi/pki/pki.h"
#include "qsapi/result.h"

namespace qsapi::server {

// TlsProfile: the signature algorithm of certificates and the key-exchange groups of links.
struct TlsProfile {
  std::string name;             // "default" or "cnsa2"
  pki::KeyAlgorithm algorithm;  // ML-DSA-65 (default) or ML-DSA-87 (cnsa2)
  std::string groups;           // OpenSSL group list: hybrid PQ groups only
};
// TlsProfileNamed returns the profile called `name`; INVALID_ARGUMENT naming the valid ones.
Result<TlsProfile> TlsProfileNamed(std::string_view name);

// kFileWrapKey is the reserved keystore key (see api.h, kReservedKeyPrefix) that wraps key files.
inline constexpr std::string_view kFileWrapKey = "qsapid.files";

// WriteWrappedPrivateKey encrypts `key`'s PKCS#8 PEM under kFileWrapKey (created on first use)
// with associated data naming `purpose`, and writes the keystore text form to `path` (0600,
// atomic). ALREADY_EXISTS when `path` exists and `overwrite` is false.
Status WriteWrappedPrivateKey(keystore::Keystore& keystore, const std::filesystem::path& path,
                              const pki::PrivateKey& key, std::string_view purpose, bool overwrite);
// ReadWrappedPrivateKey reverses it. NOT_FOUND for a missing file, AUTHENTICATION_FAILED for a
// file that was edited or wrapped for another purpose; messages never quote the file.
Result<pki::PrivateKey> ReadWrappedPrivateKey(keystore::Keystore& keystore, const std::filesystem::path& path,
                                              std::string_view purpose);

class DeploymentCa {
 public:
  static std::filesystem::path CertificatePath(const std::filesystem::path& data_dir) {
    return data_dir / "ca" / "ca.pem";
  }
  static std::filesystem::path KeyPath(const std::filesystem::path& data_dir) {
    return data_dir / "ca" / "ca.key.wrapped";
  }

  // Open loads the CA of `data_dir`; NOT_FOUND when there is none.
  static Result<DeploymentCa> Open(keystore::Keystore& keystore, const std::filesystem::path& data_dir);
  // Create makes a new CA (key pair of the profile's algorithm, self-signed certificate valid
  // `validity`); ALREADY_EXISTS when there is one.
  static Result<DeploymentCa> Create(keystore::Keystore& keystore, const std::filesystem::path& data_dir,
                                     const TlsProfile& profile, std::string_view common_name,
                                     std::chrono::seconds validity = std::chrono::hours(24 * 365 * 10));
  // OpenOrCreate opens it, creating it first when missing; `created` says which happened.
  static Result<DeploymentCa> OpenOrCreate(keystore::Keystore& keystore, const std::filesystem::path& data_dir,
                                           const TlsProfile& profile, bool* created = nullptr);
  // LocalRecord is the record OpenShared would publish from this data directory's ca/ (nullopt
  // when it holds no CA), for `qsapi store migrate`.
  static Result<std::optional<keystore::RecordToAdd>> LocalRecord(const std::filesystem::path& data_dir);
  // OpenShared is OpenOrCreate for a node of a cluster: the CA is the one record of kind
  // "deployment-ca" in the keystore's database (its certificate and its wrapped key: the KEK is the
  // cluster's, so every node unwraps it), copied into this node's ca/ directory. The first node to
  // start makes it (or publishes the one its data directory holds); a node that loses that race
  // uses the winner's. kDataLoss for a record that is not a CA.
  static Result<DeploymentCa> OpenShared(keystore::Keystore& keystore, const std::filesystem::path& data_dir,
                                         const TlsProfile& profile, bool* created = nullptr);
  // OpenSharedExisting is OpenShared that never makes one: NOT_FOUND when the database holds no CA
  // (`qsapi ca issue --config` on a cluster node).
  static Result<DeploymentCa> OpenSharedExisting(keystore::Keystore& keystore, const std::filesystem::path& data_dir);

  [[nodiscard]] const pki::Certificate& certificate() const noexcept { return certificate_; }
  [[nodiscard]] pki::KeyAlgorithm algorithm() const noexcept { return key_->algorithm(); }

  // Issue signs a certificate for `subject_key` as `profile` describes.
  [[nodiscard]] Result<pki::Certificate> Issue(const pki::PrivateKey& subject_key,
                                               const pki::CertificateProfile& profile) const;

 private:
  DeploymentCa(pki::Certificate certificate, std::shared_ptr<const pki::PrivateKey> key)
      : certificate_(std::move(certificate)), key_(std::move(key)) {}
  pki::Certificate certificate_;
  std::shared_ptr<const pki::PrivateKey> key_;
};

// ServerCredentials: what the HTTPS server needs.
struct ServerCredentials {
  std::filesystem::path chain_file;            // leaf then CA, PEM
  std::shared_ptr<const pki::PrivateKey> key;  // unwrapped, in memory only
  std::chrono::system_clock::time_point not_after;
  bool issued_now = false;
};

// EnsureServerCertificate returns qsapid's TLS credentials under `data_dir`/tls, issuing a new
// leaf (CN = names[0], every name as a DNS or IP subjectAltName, serverAuth, valid `validity`) when
// there is none, when the one there expires within `renew_before`, when it was issued for other
// names, or when its key's algorithm is not the profile's.
Result<ServerCredentials> EnsureServerCertificate(keystore::Keystore& keystore, const DeploymentCa& ca,
                                                  const std::filesystem::path& data_dir, const TlsProfile& profile,
                                                  const std::vector<std::string>& names,
                                                  std::chrono::seconds validity = std::chrono::hours(24 * 90),
                                                  std::chrono::seconds renew_before = std::chrono::hours(24 * 30));

// EnsurePeerCertificate is the same for this node's peer-link certificate (tls/peer.*): CN and
// DNS name `node_name`, client and server authentication (a peer link is mutual TLS).
Result<ServerCredentials> EnsurePeerCertificate(keystore::Keystore& keystore, const DeploymentCa& ca,
                                                const std::filesystem::path& data_dir, const TlsProfile& profile,
                                                const std::string& node_name,
                                                std::chrono::seconds validity = std::chrono::hours(24 * 90),
                                                std::chrono::seconds renew_before = std::chrono::hours(24 * 30));

// DefaultServerNames: "localhost", "127.0.0.1", "::1", this machine's host name, and `listen_host`
// when it is a specific address or name.
std::vector<std::string> DefaultServerNames(std::string_view listen_host);

}  // namespace qsapi::server

#endif  // QSAPI_SRC_SERVER_DEPLOYMENT_CA_H_
