// Key pairs and X.509 certificates over OpenSSL 3.5's EVP and X509 APIs (see qsapi/pki/pki.h).
//
// Certificates are built the way `openssl req -x509` / `openssl x509 -req` build them, through
// X509V3_EXT_conf_nid, so that the extensions are encoded by OpenSSL's own code: basicConstraints,
// keyUsage, extendedKeyUsage, subjectAltName, subjectKeyIdentifier, authorityKeyIdentifier.
// DNS names and IP addresses are validated before they reach the configuration string, so that a
// name cannot inject another extension value (a comma in "a,IP:1.2.3.4" would).
#include "qsapi/pki/pki.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <arpa/inet.h>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <string>
#include <system_error>
#include <utility>

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "pki/internal/pki_util.h"

namespace qsapi::pki {
namespace {
// OsError is strerror's text, thread-safely.
std::string OsError(int err) { return std::system_category().message(err); }
}  // namespace

namespace internal {

Result<EvpPkeyPtr> PkeyFromPem(ByteView pem, std::string_view what) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return Internal("cannot allocate a memory BIO");
  // A callback that supplies no passphrase: OpenSSL's default would prompt on the terminal.
  auto no_passphrase = [](char*, int, int, void*) -> int { return 0; };
  EVP_PKEY* raw = PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr);
  if (raw == nullptr) {
    const std::string reason = OpenSslReason();
    return InvalidArgument(std::string(what) + " is not an unencrypted PEM private key" + reason);
  }
  return EvpPkeyPtr(raw);
}

}  // namespace internal

namespace {

using internal::BioPtr;
using internal::BnPtr;
using internal::EvpPkeyPtr;
using internal::OpenSslReason;
using internal::PkiAccess;
using internal::X509ExtPtr;
using internal::X509Ptr;

const char* OpenSslName(KeyAlgorithm a) {
  switch (a) {
    case KeyAlgorithm::kEcdsaP256: return "EC";
    case KeyAlgorithm::kMlDsa44: return "ML-DSA-44";
    case KeyAlgorithm::kMlDsa65: return "ML-DSA-65";
    case KeyAlgorithm::kMlDsa87: return "ML-DSA-87";
  }
  return "?";
}

Result<KeyAlgorithm> AlgorithmOf(const EVP_PKEY* pkey) {
  for (KeyAlgorithm a : {KeyAlgorithm::kMlDsa44, KeyAlgorithm::kMlDsa65, KeyAlgorithm::kMlDsa87}) {
    if (EVP_PKEY_is_a(pkey, OpenSslName(a)) == 1) return a;
  }
  if (EVP_PKEY_is_a(pkey, "EC") == 1) {
    char group[64] = {};
    std::size_t len = 0;
    if (EVP_PKEY_get_group_name(pkey, group, sizeof group, &len) == 1 &&
        (std::string_view(group) == "prime256v1" || std::string_view(group) == "P-256")) {
      return KeyAlgorithm::kEcdsaP256;
    }
    return InvalidArgument("EC keys are supported on P-256 only");
  }
  return InvalidArgument("unsupported key type (supported: ecdsa-p256, mldsa44, mldsa65, mldsa87)");
}

// SigningDigest: ECDSA signs with SHA-256; ML-DSA signs the message itself (no digest).
const EVP_MD* SigningDigest(KeyAlgorithm a) { return a == KeyAlgorithm::kEcdsaP256 ? EVP_sha256() : nullptr; }

bool IsDnsName(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '*';
  });
}

bool IsIpAddress(const std::string& ip) {
  unsigned char buf[16];
  return ::inet_pton(AF_INET, ip.c_str(), buf) == 1 || ::inet_pton(AF_INET6, ip.c_str(), buf) == 1;
}

Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    return Internal("cannot add the certificate extension " + std::string(OBJ_nid2sn(nid)) + OpenSslReason());
  }
  return OkStatus();
}

// NewCertificate creates an unsigned v3 certificate with a random serial, the subject CN, the
// public key of `subject_key` and the validity period.
Result<X509Ptr> NewCertificate(std::string_view common_name, const EVP_PKEY* subject_key,
                               std::chrono::seconds validity) {
  if (common_name.empty() || common_name.size() > 64) {
    return InvalidArgument("a certificate's common name must have 1 to 64 characters");
  }
  // No control characters: a CN is shown in logs, audit lines and policies, where a newline or an
  // escape sequence would forge or hide what follows.
  if (std::any_of(common_name.begin(), common_name.end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) {
    return InvalidArgument("a certificate's common name may not contain control characters (newline, tab, escape)");
  }
  if (validity.count() <= 0) return InvalidArgument("a certificate's validity must be positive");
  X509Ptr cert(X509_new());
  BnPtr serial(BN_new());
  if (!cert || !serial) return Internal("out of memory creating a certificate");
  // 127 random bits: positive, at most 20 octets (RFC 5280, 4.1.2.2), unpredictable.
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1 ||
      BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) == nullptr) {
    return Internal("cannot set the certificate serial number" + OpenSslReason());
  }
  if (X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(validity.count())) == nullptr) {  // NOLINT
    return Internal("cannot set the certificate validity" + OpenSslReason());
  }
  X509_NAME* name = X509_get_subject_name(cert.get());
  const std::string cn(common_name);
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): OpenSSL takes unsigned char.
  if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                 0) != 1) {
    return InvalidArgument("cannot use \"" + cn + "\" as a common name" + OpenSslReason());
  }
  // X509_set_pubkey takes a non-const key but only reads (and up-refs) it.
  if (X509_set_pubkey(cert.get(), const_cast<EVP_PKEY*>(subject_key)) != 1) {  // NOLINT
    return Internal("cannot set the certificate's public key" + OpenSslReason());
  }
  return cert;
}

Status Sign(X509* cert, const PrivateKey& key) {
  if (X509_sign(cert, key.native_handle(), SigningDigest(key.algorithm())) <= 0) {
    return Internal("cannot sign the certificate" + OpenSslReason());
  }
  return OkStatus();
}

Status WriteFileAtomically(const std::filesystem::path& path, ByteView data, mode_t mode, bool overwrite,
                           std::string_view what) {
  static std::atomic<unsigned> counter{0};
  const std::filesystem::path tmp =
      path.string() + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter.fetch_add(1));
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) {
    return PermissionDenied("cannot create " + std::string(what) + " " + tmp.string() + ": " + OsError(errno));
  }
  bool ok = ::fchmod(fd, mode) == 0;  // the umask may have narrowed it; never widened beyond `mode`
  std::size_t done = 0;
  while (ok && done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ok = false;
      break;
    }
    done += static_cast<std::size_t>(n);
  }
  ok = ok && ::fsync(fd) == 0;
  const int saved = errno;
  ::close(fd);
  if (!ok) {
    ::unlink(tmp.c_str());
    return Unavailable("cannot write " + std::string(what) + " " + path.string() + ": " + OsError(saved));
  }
  // link() fails if the target exists: no check-then-create race. rename() replaces atomically.
  const int rc = overwrite ? ::rename(tmp.c_str(), path.c_str()) : ::link(tmp.c_str(), path.c_str());
  const int link_errno = errno;
  if (!overwrite || rc != 0) ::unlink(tmp.c_str());
  if (rc != 0) {
    if (link_errno == EEXIST) {
      return AlreadyExists(std::string(what) + " " + path.string() + " exists already");
    }
    return Unavailable("cannot create " + std::string(what) + " " + path.string() + ": " + OsError(link_errno));
  }
  return OkStatus();
}

}  // namespace

std::string_view KeyAlgorithmName(KeyAlgorithm algorithm) noexcept {
  switch (algorithm) {
    case KeyAlgorithm::kEcdsaP256: return "ecdsa-p256";
    case KeyAlgorithm::kMlDsa44: return "mldsa44";
    case KeyAlgorithm::kMlDsa65: return "mldsa65";
    case KeyAlgorithm::kMlDsa87: return "mldsa87";
  }
  return "?";
}

Result<KeyAlgorithm> ParseKeyAlgorithm(std::string_view name) {
  for (KeyAlgorithm a :
       {KeyAlgorithm::kEcdsaP256, KeyAlgorithm::kMlDsa44, KeyAlgorithm::kMlDsa65, KeyAlgorithm::kMlDsa87}) {
    if (name == KeyAlgorithmName(a)) return a;
  }
  return InvalidArgument("unknown key algorithm \"" + std::string(name) +
                         "\" (accepted: ecdsa-p256, mldsa44, mldsa65, mldsa87)");
}

// --- PrivateKey ---

Result<PrivateKey> PrivateKey::Generate(KeyAlgorithm algorithm) {
  EVP_PKEY* raw = algorithm == KeyAlgorithm::kEcdsaP256 ? EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")
                                                        : EVP_PKEY_Q_keygen(nullptr, nullptr, OpenSslName(algorithm));
  if (raw == nullptr) {
    return Internal("cannot generate a " + std::string(KeyAlgorithmName(algorithm)) + " key" + OpenSslReason());
  }
  return PrivateKey(raw, algorithm);
}

Result<PrivateKey> PrivateKey::FromPem(ByteView pem) {
  QSAPI_ASSIGN_OR_RETURN(EvpPkeyPtr pkey, internal::PkeyFromPem(pem, "the private key"));
  QSAPI_ASSIGN_OR_RETURN(KeyAlgorithm algorithm, AlgorithmOf(pkey.get()));
  return PrivateKey(pkey.release(), algorithm);
}

PrivateKey::PrivateKey(PrivateKey&& other) noexcept
    : pkey_(std::exchange(other.pkey_, nullptr)), algorithm_(other.algorithm_) {}

PrivateKey& PrivateKey::operator=(PrivateKey&& other) noexcept {
  if (this != &other) {
    EVP_PKEY_free(pkey_);
    pkey_ = std::exchange(other.pkey_, nullptr);
    algorithm_ = other.algorithm_;
  }
  return *this;
}

PrivateKey::~PrivateKey() { EVP_PKEY_free(pkey_); }

Result<SecretBytes> PrivateKey::ToPem() const {
  // A secure-memory BIO: OpenSSL cleanses its buffer when it is freed.
  BioPtr bio(BIO_new(BIO_s_secmem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), pkey_, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return Internal("cannot encode the private key as PEM" + OpenSslReason());
  }
  const char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);  // NOLINT(google-runtime-int)
  if (len <= 0 || data == nullptr) return Internal("cannot encode the private key as PEM");
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast)
  return SecretBytes::CopyFrom(ByteView(reinterpret_cast<const std::uint8_t*>(data), static_cast<std::size_t>(len)));
}

// --- Certificate ---

Result<Certificate> Certificate::FromPem(std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return Internal("cannot allocate a memory BIO");
  X509* raw = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
  if (raw == nullptr) return InvalidArgument("not a PEM certificate" + OpenSslReason());
  return Certificate(raw);
}

Certificate::Certificate(const Certificate& other) noexcept : x509_(other.x509_) {
  if (x509_ != nullptr) X509_up_ref(x509_);
}
Certificate& Certificate::operator=(const Certificate& other) noexcept {
  if (this != &other) {
    if (other.x509_ != nullptr) X509_up_ref(other.x509_);
    X509_free(x509_);
    x509_ = other.x509_;
  }
  return *this;
}
Certificate::Certificate(Certificate&& other) noexcept : x509_(std::exchange(other.x509_, nullptr)) {}
Certificate& Certificate::operator=(Certificate&& other) noexcept {
  if (this != &other) {
    X509_free(x509_);
    x509_ = std::exchange(other.x509_, nullptr);
  }
  return *this;
}
Certificate::~Certificate() { X509_free(x509_); }

Result<std::string> Certificate::ToPem() const {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), x509_) != 1)
    return Internal("cannot encode a certificate" + OpenSslReason());
  const char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);  // NOLINT(google-runtime-int)
  return std::string(data, static_cast<std::size_t>(len));
}

Result<std::string> Certificate::CommonName() const {
  const X509_NAME* name = X509_get_subject_name(x509_);
  const int index = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (index < 0) return NotFound("the certificate has no common name");
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index));
  unsigned char* utf8 = nullptr;
  const int len = ASN1_STRING_to_UTF8(&utf8, data);
  if (len < 0) return InvalidArgument("the certificate's common name is not valid text");
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast)
  std::string cn(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(len));
  OPENSSL_free(utf8);
  return cn;
}

std::chrono::system_clock::time_point Certificate::NotAfter() const {
  std::tm tm{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(x509_), &tm) != 1) return {};
  return std::chrono::system_clock::from_time_t(::timegm(&tm));
}

// --- Issuing ---

Result<Certificate> CreateSelfSignedCa(const PrivateKey& key, std::string_view common_name,
                                       std::chrono::seconds validity) {
  QSAPI_ASSIGN_OR_RETURN(X509Ptr cert, NewCertificate(common_name, key.native_handle(), validity));
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get())) != 1) {
    return Internal("cannot set the CA's issuer name" + OpenSslReason());
  }
  QSAPI_RETURN_IF_ERROR(AddExtension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE"));
  QSAPI_RETURN_IF_ERROR(AddExtension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign"));
  QSAPI_RETURN_IF_ERROR(AddExtension(cert.get(), cert.get(), NID_subject_key_identifier, "hash"));
  QSAPI_RETURN_IF_ERROR(Sign(cert.get(), key));
  return PkiAccess::WrapCertificate(std::move(cert));
}

Result<Certificate> IssueCertificate(const Certificate& issuer, const PrivateKey& issuer_key,
                                     const PrivateKey& subject_key, const CertificateProfile& profile) {
  if (!profile.server_auth && !profile.client_auth) {
    return InvalidArgument("a certificate needs serverAuth or clientAuth (or both)");
  }
  std::string san;
  for (const std::string& dns : profile.dns_names) {
    if (!IsDnsName(dns)) return InvalidArgument("\"" + dns + "\" is not a valid DNS name for a certificate");
    san += (san.empty() ? "DNS:" : ",DNS:") + dns;
  }
  for (const std::string& ip : profile.ip_addresses) {
    if (!IsIpAddress(ip)) return InvalidArgument("\"" + ip + "\" is not an IPv4 or IPv6 address");
    san += (san.empty() ? "IP:" : ",IP:") + ip;
  }
  QSAPI_ASSIGN_OR_RETURN(X509Ptr cert,
                         NewCertificate(profile.common_name, subject_key.native_handle(), profile.validity));
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer.native_handle())) != 1) {
    return Internal("cannot set the issuer name" + OpenSslReason());
  }
  X509* ca = issuer.native_handle();
  QSAPI_RETURN_IF_ERROR(AddExtension(cert.get(), ca, NID_basic_constraints, "critical,CA:FALSE"));
  const bool ec = subject_key.algorithm() == KeyAlgorithm::kEcdsaP256;
  QSAPI_RETURN_IF_ERROR(AddExtension(cert.get(), ca, NID_key_usage,
                                     ec ? "critical,digitalSignature,keyAgreement" : "critical,digitalSignature"));
  std::string eku;
  if (profile.server_auth) eku = "serverAuth";
  if (profile.client_auth) eku += eku.empty() ? "clientAuth" : ",clientAuth";
  QSAPI_RETURN_IF_ERROR(AddExtension(cert.get(), ca, NID_ext_key_usage, eku));
  if (!san.empty()) QSAPI_RETURN_IF_ERROR(AddExtension(cert.get(), ca, NID_subject_alt_name, san));
  QSAPI_RETURN_IF_ERROR(AddExtension(cert.get(), ca, NID_subject_key_identifier, "hash"));
  QSAPI_RETURN_IF_ERROR(AddExtension(cert.get(), ca, NID_authority_key_identifier, "keyid:always"));
  QSAPI_RETURN_IF_ERROR(Sign(cert.get(), issuer_key));
  return PkiAccess::WrapCertificate(std::move(cert));
}

// --- Files ---

Status WriteProtectedFile(const std::filesystem::path& path, ByteView data, unsigned mode, bool overwrite) {
  return WriteFileAtomically(path, data, static_cast<mode_t>(mode), overwrite, "file");
}

Status WritePrivateKeyPem(const std::filesystem::path& path, const PrivateKey& key, bool overwrite) {
  QSAPI_ASSIGN_OR_RETURN(SecretBytes pem, key.ToPem());
  return WriteFileAtomically(path, pem.view(), 0600, overwrite, "private key file");
}

Status WriteCertificatePem(const std::filesystem::path& path, const std::vector<Certificate>& certs) {
  std::string pem;
  for (const Certificate& c : certs) {
    QSAPI_ASSIGN_OR_RETURN(std::string one, c.ToPem());
    pem += one;
  }
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast)
  return WriteFileAtomically(path, ByteView(reinterpret_cast<const std::uint8_t*>(pem.data()), pem.size()), 0644, true,
                             "certificate file");
}

Result<PrivateKey> ReadPrivateKeyPem(const std::filesystem::path& path) {
  QSAPI_ASSIGN_OR_RETURN(SecretBytes pem, internal::ReadSecretFile(path, "private key file"));
  Result<PrivateKey> key = PrivateKey::FromPem(pem.view());
  if (!key.ok()) return Error(key.error().code(), path.string() + ": " + key.error().message());
  return key;
}

Result<Certificate> ReadCertificatePem(const std::filesystem::path& path) {
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) {
    ERR_clear_error();
    return NotFound("cannot read certificate file " + path.string());
  }
  X509* raw = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
  if (raw == nullptr) return InvalidArgument(path.string() + " holds no PEM certificate" + OpenSslReason());
  return PkiAccess::WrapCertificate(X509Ptr(raw));
}

}  // namespace qsapi::pki
