// qsapi/pki/tls.h: one place that configures OpenSSL TLS contexts for every link qsapi makes or
// accepts: protocol versions, key-exchange groups, certificates, peer verification, SNI and host
// checks, and what was negotiated.
//
// The group list is the lever of security invariant 1 (PRODUCT.md): our own links offer and accept
// only hybrid post-quantum groups (kPqHybridGroups). QKD key managers are the one documented
// exception: they speak classical TLS today, so a KME client offers kKmeClientGroups (hybrid first,
// then classical) and reports the group it got, so that the caller can warn when it is classical
// (see docs/THREAT_MODEL.md).
//
// The functions configure raw OpenSSL handles (SSL_CTX, SSL) so that they serve Boost.Asio's
// ssl::context as well as plain OpenSSL code. They do not own the handles.
#ifndef QSAPI_PKI_TLS_H_
#define QSAPI_PKI_TLS_H_

#include <memory>
#include <string>
#include <string_view>

#include "qsapi/result.h"

struct ssl_ctx_st;  // OpenSSL's SSL_CTX
struct ssl_st;      // OpenSSL's SSL

namespace qsapi::pki {

class PrivateKey;  // qsapi/pki/pki.h

// kPqHybridGroups: the only groups our own peer links and API accept.
inline constexpr std::string_view kPqHybridGroups = "X25519MLKEM768:SecP384r1MLKEM1024";
// kKmeClientGroups: what a QKD KME client offers: hybrid first, classical for today's KMEs.
inline constexpr std::string_view kKmeClientGroups = "X25519MLKEM768:SecP384r1MLKEM1024:X25519:secp256r1:secp384r1";

enum class TlsVersion { kTls12, kTls13 };

// PeerVerification says whether the other side must present a certificate that chains to ca_file.
enum class PeerVerification {
  kNone,      // no certificate asked for or checked (a test rig; servers without client auth)
  kOptional,  // servers: a client certificate is asked for and, when sent, must verify
  kRequired,  // the peer must present a certificate that verifies
};

// TlsOptions configure one side of a link. Files are PEM.
struct TlsOptions {
  TlsVersion min_version = TlsVersion::kTls13;
  TlsVersion max_version = TlsVersion::kTls13;
  std::string groups = std::string(kPqHybridGroups);  // OpenSSL group list, preference order
  std::string certificate_file;                       // our certificate chain (leaf first); required for servers
  std::string private_key_file;                       // its private key (mode 0600)
  // private_key: the certificate's key held in memory instead of a file (a key the keystore
  // unwrapped at start, so that it never sits on disk in the clear). Set this or private_key_file.
  std::shared_ptr<const PrivateKey> private_key;
  std::string ca_file;                                // trust anchors for the peer; empty: the system's (clients only)
  PeerVerification verify_peer = PeerVerification::kRequired;
  // Servers: issue TLS 1.3 session tickets so that clients can resume (every resumption still runs
  // a fresh hybrid key exchange: psk_dhe_ke only). Off for links whose connections live long and
  // bind channel secrets to the handshake (the peer link).
  bool session_tickets = true;
};

// ConfigureClientContext applies `options` to a client SSL_CTX: versions, groups, our certificate
// and key when given (mutual TLS), and peer verification against ca_file. Errors name the option
// and file at fault.
Status ConfigureClientContext(ssl_ctx_st* ctx, const TlsOptions& options);

// ConfigureServerContext applies `options` to a server SSL_CTX: versions, groups (the server's
// preference wins), certificate and key (required), and client-certificate verification.
Status ConfigureServerContext(ssl_ctx_st* ctx, const TlsOptions& options);

// ConfigureClientConnection sets SNI (host names only, never IP literals; RFC 6066, 3) and, when
// `verify_host` is true, the name or IP address the server certificate must match.
Status ConfigureClientConnection(ssl_st* ssl, std::string_view host, bool verify_host);

// NegotiatedGroupName names the key-exchange group of an established connection
// ("X25519MLKEM768", "x25519", "secp256r1"), or "" when none is known.
std::string NegotiatedGroupName(const ssl_st* ssl);

// IsPqHybridGroup says whether `group` is one of kPqHybridGroups (case-insensitive).
bool IsPqHybridGroup(std::string_view group) noexcept;

// ProtocolVersionName returns "TLSv1.3", "TLSv1.2", ... for an established connection.
std::string ProtocolVersionName(const ssl_st* ssl);

// PeerCommonName returns the CN of the peer's certificate when it was presented and verified;
// NOT_FOUND when there is none, PERMISSION_DENIED when verification failed.
Result<std::string> PeerCommonName(const ssl_st* ssl);
// PeerCertificateServesServers says whether the peer's certificate is also valid for TLS server
// authentication (extendedKeyUsage serverAuth, or no extendedKeyUsage at all): a peer-link or
// server certificate rather than a client-only one. false when no certificate was presented.
bool PeerCertificateServesServers(const ssl_st* ssl);

// VerifyErrorText returns OpenSSL's text for a connection's certificate verification result, or
// "" when verification succeeded or did not run.
std::string VerifyErrorText(const ssl_st* ssl);

}  // namespace qsapi::pki

#endif  // QSAPI_PKI_TLS_H_
