// qsapi/pki/pki.h: key pairs and X.509 certificates for TLS links (OpenSSL 3.5 EVP + X509).
//
// What the project needs from a PKI, and nothing more: generate a key pair (ECDSA P-256 for
// compatibility with classical peers such as today's QKD key managers, ML-DSA-44/65/87 for our own
// post-quantum links), create a self-signed CA, issue end-entity certificates with a CN, DNS / IP
// subjectAltNames and serverAuth / clientAuth extended key usage, read and write PEM, and read a
// certificate's CN and expiry. The KME simulator, the peer link and `qsapi ca` all build on it.
//
// Private keys leave memory only as PEM in secret buffers or as files written with mode 0600:
// created under a temporary name with open(O_CREAT | O_EXCL, 0600), written, fsync'ed and renamed
// into place, so that no reader ever sees a partly written key or a key with looser permissions.
//
// Thread safety: PrivateKey and Certificate are immutable after creation; const methods may be
// called from several threads.
#ifndef QSAPI_PKI_PKI_H_
#define QSAPI_PKI_PKI_H_

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "qsapi/result.h"
#include "qsapi/secret.h"

struct evp_pkey_st;  // OpenSSL's EVP_PKEY
struct x509_st;      // OpenSSL's X509

namespace qsapi::pki {
namespace internal {
struct PkiAccess;  // src/pki: wraps OpenSSL handles into the public types
}  // namespace internal

// The signature algorithms of keys and certificates.
enum class KeyAlgorithm {
  kEcdsaP256,  // ECDSA on P-256 with SHA-256: what every classical TLS stack accepts
  kMlDsa44,    // FIPS 204 ML-DSA-44
  kMlDsa65,    // FIPS 204 ML-DSA-65
  kMlDsa87,    // FIPS 204 ML-DSA-87
};

// KeyAlgorithmName returns "ecdsa-p256", "mldsa44", "mldsa65" or "mldsa87".
std::string_view KeyAlgorithmName(KeyAlgorithm algorithm) noexcept;
// ParseKeyAlgorithm parses those names; anything else is INVALID_ARGUMENT naming the accepted ones.
Result<KeyAlgorithm> ParseKeyAlgorithm(std::string_view name);

// PrivateKey is a key pair held by OpenSSL. Move-only; the key is freed (and cleansed by OpenSSL)
// on destruction.
class PrivateKey {
 public:
  // Generate creates a fresh key pair from OpenSSL's DRBG.
  static Result<PrivateKey> Generate(KeyAlgorithm algorithm);
  // FromPem reads a PKCS#8 PEM private key ("-----BEGIN PRIVATE KEY-----") of a supported
  // algorithm. Errors never quote the input.
  static Result<PrivateKey> FromPem(ByteView pem);

  PrivateKey(PrivateKey&& other) noexcept;
  PrivateKey& operator=(PrivateKey&& other) noexcept;
  PrivateKey(const PrivateKey&) = delete;
  PrivateKey& operator=(const PrivateKey&) = delete;
  ~PrivateKey();

  [[nodiscard]] KeyAlgorithm algorithm() const noexcept { return algorithm_; }
  // ToPem returns the unencrypted PKCS#8 PEM form in secret memory.
  [[nodiscard]] Result<SecretBytes> ToPem() const;
  // native_handle is the EVP_PKEY, owned by this object (for TLS set-up).
  [[nodiscard]] evp_pkey_st* native_handle() const noexcept { return pkey_; }

 private:
  friend struct internal::PkiAccess;
  PrivateKey(evp_pkey_st* pkey, KeyAlgorithm algorithm) noexcept : pkey_(pkey), algorithm_(algorithm) {}
  evp_pkey_st* pkey_ = nullptr;
  KeyAlgorithm algorithm_ = KeyAlgorithm::kEcdsaP256;
};

// Certificate is an X.509 certificate. Copyable (reference-counted by OpenSSL); immutable.
class Certificate {
 public:
  // FromPem reads the first certificate of a PEM text.
  static Result<Certificate> FromPem(std::string_view pem);

  Certificate(const Certificate& other) noexcept;
  Certificate& operator=(const Certificate& other) noexcept;
  Certificate(Certificate&& other) noexcept;
  Certificate& operator=(Certificate&& other) noexcept;
  ~Certificate();

  // ToPem returns the PEM form ("-----BEGIN CERTIFICATE-----...").
  [[nodiscard]] Result<std::string> ToPem() const;
  // CommonName returns the subject's CN; NOT_FOUND when it has none.
  [[nodiscard]] Result<std::string> CommonName() const;
  // NotAfter returns the end of the validity period.
  [[nodiscard]] std::chrono::system_clock::time_point NotAfter() const;
  // native_handle is the X509, owned by this object.
  [[nodiscard]] x509_st* native_handle() const noexcept { return x509_; }

 private:
  friend struct internal::PkiAccess;
  explicit Certificate(x509_st* x509) noexcept : x509_(x509) {}
  x509_st* x509_ = nullptr;
};

// CertificateProfile describes an end-entity certificate to issue.
struct CertificateProfile {
  std::string common_name;                // the subject CN (for example an SAE or KME ID)
  std::vector<std::string> dns_names;     // subjectAltName dNSName entries
  std::vector<std::string> ip_addresses;  // subjectAltName iPAddress entries ("127.0.0.1", "::1")
  bool server_auth = false;               // extendedKeyUsage serverAuth
  bool client_auth = false;               // extendedKeyUsage clientAuth
  std::chrono::seconds validity = std::chrono::hours(24 * 365);
};

// CreateSelfSignedCa creates a CA certificate (basicConstraints CA:TRUE, keyCertSign, cRLSign)
// for `key`, valid from one minute ago for `validity`. ML-DSA keys sign with their pure form,
// ECDSA with SHA-256.
Result<Certificate> CreateSelfSignedCa(const PrivateKey& key, std::string_view common_name,
                                       std::chrono::seconds validity = std::chrono::hours(24 * 365 * 5));

// IssueCertificate issues a certificate for the public half of `subject_key`, signed by
// `issuer_key`, whose certificate is `issuer`. The serial number is 127 random bits.
// INVALID_ARGUMENT for an empty CN, a malformed IP address or DNS name, or no extended key usage.
Result<Certificate> IssueCertificate(const Certificate& issuer, const PrivateKey& issuer_key,
                                     const PrivateKey& subject_key, const CertificateProfile& profile);

// WritePrivateKeyPem writes `key` as PKCS#8 PEM to `path` with mode 0600, atomically (see the file
// comment). Fails with ALREADY_EXISTS when `path` exists and `overwrite` is false.
Status WritePrivateKeyPem(const std::filesystem::path& path, const PrivateKey& key, bool overwrite = false);
// WriteCertificatePem writes `certs` (a chain, leaf first) to `path` with mode 0644, atomically.
Status WriteCertificatePem(const std::filesystem::path& path, const std::vector<Certificate>& certs);

// WriteProtectedFile writes `data` to `path` atomically (a temporary file in the same directory,
// fsync, then link(), or rename() when `overwrite`) with permission bits `mode` (0600 for anything
// secret or wrapped). ALREADY_EXISTS when `path` exists and `overwrite` is false.
Status WriteProtectedFile(const std::filesystem::path& path, ByteView data, unsigned mode, bool overwrite);

// ReadPrivateKeyPem reads a PEM private key file; the file's bytes are wiped after parsing.
// Refuses (PERMISSION_DENIED) a file that group or others may read.
Result<PrivateKey> ReadPrivateKeyPem(const std::filesystem::path& path);
// ReadCertificatePem reads the first certificate of a PEM file.
Result<Certificate> ReadCertificatePem(const std::filesystem::path& path);

}  // namespace qsapi::pki

#endif  // QSAPI_PKI_PKI_H_
