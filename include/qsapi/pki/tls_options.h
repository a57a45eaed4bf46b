// qsapi/pki/tls_options.h: what a TLS link of qsapi offers and checks, as plain data: protocol
// versions, key-exchange groups, certificates and peer verification. The code that applies these
// options to OpenSSL handles is internal to the library (src/pki/internal/tls_context.h).
//
// The group list is the lever of security invariant 1 (PRODUCT.md): our own links offer and accept
// only hybrid post-quantum groups (kPqHybridGroups). QKD key managers are the one documented
// exception: they speak classical TLS today, so a KME client offers kKmeClientGroups (hybrid first,
// then classical) and reports the group it got, so that the caller can warn when it is classical
// (see docs/THREAT_MODEL.md).
#ifndef QSAPI_PKI_TLS_OPTIONS_H_
#define QSAPI_PKI_TLS_OPTIONS_H_

#include <memory>
#include <string>
#include <string_view>

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
  std::string ca_file;  // trust anchors for the peer; empty: the system's (clients only)
  PeerVerification verify_peer = PeerVerification::kRequired;
  // Servers: issue TLS 1.3 session tickets so that clients can resume (every resumption still runs
  // a fresh hybrid key exchange: psk_dhe_ke only). Off for links whose connections live long and
  // bind channel secrets to the handshake (the peer link).
  bool session_tickets = true;
};

// IsPqHybridGroup says whether `group` is one of kPqHybridGroups (case-insensitive).
bool IsPqHybridGroup(std::string_view group) noexcept;

}  // namespace qsapi::pki

#endif  // QSAPI_PKI_TLS_OPTIONS_H_
