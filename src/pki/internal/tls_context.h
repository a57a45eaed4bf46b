// pki/internal/tls_context.h: one place that configures OpenSSL TLS contexts for every link qsapi
// makes or accepts (from the plain options of qsapi/pki/tls_options.h): protocol versions,
// key-exchange groups, certificates, peer verification, SNI and host checks, and what was
// negotiated. Internal: it takes raw OpenSSL handles (SSL_CTX, SSL), so that it serves Boost.Asio's
// ssl::context as well as plain OpenSSL code; it does not own them. Used by the library's links
// (peer link, KME client) and by the service's HTTPS server and client.
#ifndef QSAPI_PKI_INTERNAL_TLS_CONTEXT_H_
#define QSAPI_PKI_INTERNAL_TLS_CONTEXT_H_

#include <string>
#include <string_view>

#include "qsapi/pki/tls_options.h"
#include "qsapi/result.h"

struct ssl_ctx_st;  // OpenSSL's SSL_CTX
struct ssl_st;      // OpenSSL's SSL

namespace qsapi::pki {

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

#endif  // QSAPI_PKI_INTERNAL_TLS_CONTEXT_H_
