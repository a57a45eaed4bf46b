// TLS context configuration shared by every client and server qsapi runs (see pki/internal/tls_context.h).
//
// Private keys are loaded through ReadSecretFile (mode 0600 enforced, bytes in secret memory and
// wiped) rather than SSL_CTX_use_PrivateKey_file, which would read the file into ordinary heap.
// Any key type OpenSSL accepts is allowed here (a KME may hand out RSA or P-384 SAE keys).
#include <algorithm>
#include <arpa/inet.h>
#include <cctype>
#include <string>

#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "pki/internal/pki_util.h"
#include "pki/internal/tls_context.h"
#include "qsapi/pki/pki.h"

namespace qsapi::pki {
namespace {

using internal::OpenSslReason;

int OpenSslVersion(TlsVersion v) { return v == TlsVersion::kTls12 ? TLS1_2_VERSION : TLS1_3_VERSION; }

// CacheCertificateExtensions makes OpenSSL decode and cache the extensions of every certificate
// the context holds (its own chain and the trust anchors) now, while one thread configures it.
// Otherwise the first handshakes do it lazily, and concurrent handshakes on several threads write
// the cache of a shared certificate while others read it: a data race ThreadSanitizer reports in
// HttpsServerTest.ConcurrentClientsOnSeveralThreads (OpenSSL issues #25202, #32609).
void CacheCertificateExtensions(SSL_CTX* ctx) {
  const auto cache = [](X509* x) {
    if (x != nullptr) (void)X509_check_purpose(x, -1, 0);  // -1: only cache the extensions
  };
  cache(SSL_CTX_get0_certificate(ctx));
  STACK_OF(X509)* chain = nullptr;
  // SSL_CTX_get0_chain_certs is this call behind an old-style cast.
  if (SSL_CTX_ctrl(ctx, SSL_CTRL_GET_CHAIN_CERTS, 0, &chain) == 1 && chain != nullptr) {
    for (int i = 0; i < sk_X509_num(chain); ++i) cache(sk_X509_value(chain, i));
  }
  if (X509_STORE* store = SSL_CTX_get_cert_store(ctx); store != nullptr) {
    STACK_OF(X509)* anchors = X509_STORE_get1_all_certs(store);
    for (int i = 0; i < sk_X509_num(anchors); ++i) cache(sk_X509_value(anchors, i));
    sk_X509_pop_free(anchors, X509_free);
  }
}

Status ApplyCommon(SSL_CTX* ctx, const TlsOptions& o, std::string_view side) {
  const std::string who = "TLS " + std::string(side) + ": ";
  if (o.min_version == TlsVersion::kTls13 && o.max_version == TlsVersion::kTls12) {
    return InvalidArgument(who + "min_version is newer than max_version");
  }
  if (SSL_CTX_set_min_proto_version(ctx, OpenSslVersion(o.min_version)) != 1 ||
      SSL_CTX_set_max_proto_version(ctx, OpenSslVersion(o.max_version)) != 1) {
    return Internal(who + "cannot set the protocol versions" + OpenSslReason());
  }
  if (o.groups.empty()) return InvalidArgument(who + "the group list is empty");
  // SSL_CTX_set1_groups_list is this call behind an old-style cast.
  if (SSL_CTX_ctrl(ctx, SSL_CTRL_SET_GROUPS_LIST, 0, const_cast<char*>(o.groups.c_str())) != 1) {  // NOLINT
    return InvalidArgument(who + "OpenSSL rejects the group list \"" + o.groups + "\"" + OpenSslReason());
  }
  const bool has_key = !o.private_key_file.empty() || o.private_key != nullptr;
  if (!o.private_key_file.empty() && o.private_key != nullptr) {
    return InvalidArgument(who + "give the private key as a file or in memory, not both");
  }
  if (!o.certificate_file.empty() || has_key) {
    if (o.certificate_file.empty() || !has_key) {
      return InvalidArgument(who + "a certificate needs its private key and vice versa");
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, o.certificate_file.c_str()) != 1) {
      return InvalidArgument(who + "cannot load the certificate chain " + o.certificate_file + OpenSslReason());
    }
    const std::string key_name = o.private_key != nullptr ? "held in memory" : o.private_key_file;
    internal::EvpPkeyPtr from_file;
    EVP_PKEY* key = nullptr;
    if (o.private_key != nullptr) {
      key = o.private_key->native_handle();
    } else {
      QSAPI_ASSIGN_OR_RETURN(SecretBytes pem, internal::ReadSecretFile(o.private_key_file, "private key file"));
      QSAPI_ASSIGN_OR_RETURN(from_file, internal::PkeyFromPem(pem.view(), "private key file " + o.private_key_file));
      key = from_file.get();
    }
    // SSL_CTX_use_PrivateKey takes its own reference to the key.
    if (key == nullptr || SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
      return InvalidArgument(who + "the private key " + key_name + " does not match the certificate " +
                             o.certificate_file + OpenSslReason());
    }
  }
  if (!o.ca_file.empty() && SSL_CTX_load_verify_locations(ctx, o.ca_file.c_str(), nullptr) != 1) {
    return InvalidArgument(who + "cannot load the trust anchors " + o.ca_file + OpenSslReason());
  }
  CacheCertificateExtensions(ctx);
  return OkStatus();
}

}  // namespace

Status ConfigureClientContext(ssl_ctx_st* ctx, const TlsOptions& options) {
  QSAPI_RETURN_IF_ERROR(ApplyCommon(ctx, options, "client"));
  if (options.verify_peer == PeerVerification::kNone) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    return OkStatus();
  }
  if (options.ca_file.empty() && SSL_CTX_set_default_verify_paths(ctx) != 1) {
    return Unavailable("TLS client: cannot load the system's trust anchors" + OpenSslReason());
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  return OkStatus();
}

Status ConfigureServerContext(ssl_ctx_st* ctx, const TlsOptions& options) {
  if (options.certificate_file.empty()) return InvalidArgument("TLS server: a certificate file is required");
  QSAPI_RETURN_IF_ERROR(ApplyCommon(ctx, options, "server"));
  // Plaintext records are wiped from OpenSSL's buffers once read.
  SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION | SSL_OP_CLEANSE_PLAINTEXT);
  // Resumption. A server that asks for client certificates must name a session id context, or
  // OpenSSL refuses every resumption with an internal_error alert. The context names what a
  // session was verified against (mode and trust anchors), so that a session is never resumed
  // under other verification settings. Resumption without a fresh key exchange (psk_ke) stays
  // refused (SSL_OP_ALLOW_NO_DHE_KEX is not set): a resumed connection runs the same hybrid group.
  {
    const std::string sid_input =
        "qsapi tls server v1|" + std::to_string(static_cast<int>(options.verify_peer)) + "|" + options.ca_file;
    unsigned char sid[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(sid_input.data()), sid_input.size(), sid);  // NOLINT
    if (SSL_CTX_set_session_id_context(ctx, sid, sizeof sid) != 1) {
      return Internal("TLS server: cannot set the session id context" + OpenSslReason());
    }
  }
  if (options.session_tickets) {
    SSL_CTX_set_timeout(ctx, 3600);  // a ticket is good for an hour; then a full handshake
  } else {
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  }
  switch (options.verify_peer) {
    case PeerVerification::kNone: SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr); break;
    case PeerVerification::kOptional:
    case PeerVerification::kRequired: {
      if (options.ca_file.empty()) {
        return InvalidArgument("TLS server: client certificates need a ca_file to verify them against");
      }
      STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(options.ca_file.c_str());
      if (names == nullptr) return InvalidArgument("TLS server: no CA names in " + options.ca_file + OpenSslReason());
      SSL_CTX_set_client_CA_list(ctx, names);
      const int mode = options.verify_peer == PeerVerification::kRequired
                           ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                           : SSL_VERIFY_PEER;
      SSL_CTX_set_verify(ctx, mode, nullptr);
      break;
    }
  }
  return OkStatus();
}

Status ConfigureClientConnection(ssl_st* ssl, std::string_view host, bool verify_host) {
  const std::string h(host);
  unsigned char buf[16];
  const bool is_ip = ::inet_pton(AF_INET, h.c_str(), buf) == 1 || ::inet_pton(AF_INET6, h.c_str(), buf) == 1;
  if (verify_host) {
    // SSL_set1_host matches DNS names; IP literals go through the verify parameters as addresses.
    const int ok =
        is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), h.c_str()) : SSL_set1_host(ssl, h.c_str());
    if (ok != 1) return Internal("TLS client: cannot set the host name to check" + OpenSslReason());
  }
  // SNI carries host names only (RFC 6066, section 3), never IP literals. SSL_set_tlsext_host_name
  // is this call behind an old-style cast.
  if (!is_ip && SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                         const_cast<char*>(h.c_str())) != 1) {  // NOLINT
    return Internal("TLS client: cannot set the server name (SNI)" + OpenSslReason());
  }
  return OkStatus();
}

std::string NegotiatedGroupName(const ssl_st* ssl) {
  // SSL_get0_group_name takes a non-const SSL but only reads it.
  const char* name = SSL_get0_group_name(const_cast<SSL*>(ssl));  // NOLINT
  return name == nullptr ? std::string() : std::string(name);
}

bool IsPqHybridGroup(std::string_view group) noexcept {
  const auto iequal = [](std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
             return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
  };
  return iequal(group, "X25519MLKEM768") || iequal(group, "SecP384r1MLKEM1024");
}

std::string ProtocolVersionName(const ssl_st* ssl) { return SSL_get_version(ssl); }

Result<std::string> PeerCommonName(const ssl_st* ssl) {
  X509* peer = SSL_get0_peer_certificate(ssl);
  if (peer == nullptr) return NotFound("the peer presented no certificate");
  if (SSL_get_verify_result(ssl) != X509_V_OK) {
    return PermissionDenied("the peer's certificate did not verify");
  }
  X509_up_ref(peer);
  return internal::PkiAccess::WrapCertificate(internal::X509Ptr(peer)).CommonName();
}

bool PeerCertificateServesServers(const ssl_st* ssl) {
  X509* peer = SSL_get0_peer_certificate(ssl);
  return peer != nullptr && (X509_get_extended_key_usage(peer) & XKU_SSL_SERVER) != 0;
}

std::string VerifyErrorText(const ssl_st* ssl) {
  const long v = SSL_get_verify_result(ssl);  // NOLINT(google-runtime-int)
  if (v == X509_V_OK) return {};
  return X509_verify_cert_error_string(v);
}

}  // namespace qsapi::pki
