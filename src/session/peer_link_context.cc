// The peer link's context (qsapi/session/peer_link.h): the two profiles, the checks on a peer's
// certificate and the pair of TLS contexts every link of a node is made from.
//
// Peer checks run inside the certificate verification callback, so that a refused certificate
// ends the handshake with a TLS alert the other side can report (bad_certificate), and the side
// that refuses keeps the precise reason (stored in the connection's ex_data).
#include <string>
#include <utility>

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "pki/internal/tls_context.h"
#include "qsapi/pki/pki.h"
#include "qsapi/session/peer_link.h"
#include "session/internal/peer_link_internal.h"

namespace qsapi::session {

namespace internal {

int VerifyStateIndex() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

std::string KeyTypeName(const EVP_PKEY* key) {
  if (key == nullptr) return "unknown";
  const char* n = EVP_PKEY_get0_type_name(key);
  if (n == nullptr) return "unknown";
  std::string s(n);
  if (s == "EC") s = "ECDSA (" + std::to_string(EVP_PKEY_get_bits(key)) + "-bit curve)";
  return s;
}

std::string CommonNameOf(X509* cert) {
  X509_NAME* name = X509_get_subject_name(cert);
  const int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (i < 0) return {};
  const ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),  // NOLINT
                     static_cast<std::size_t>(ASN1_STRING_length(s)));
}

std::string Printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 128)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return out;
}

}  // namespace internal

namespace {

using internal::CommonNameOf;
using internal::KeyTypeName;
using internal::Printable;
using internal::VerifyState;
using internal::VerifyStateIndex;

constexpr std::string_view kDefaultGroups = "X25519MLKEM768:SecP384r1MLKEM1024";
constexpr std::string_view kCnsa2Groups = "SecP384r1MLKEM1024";

// The leaf algorithm of a profile, and the algorithms allowed for CAs above it.
std::string_view LeafAlgorithm(PeerProfile p) { return p == PeerProfile::kCnsa2 ? "ML-DSA-87" : "ML-DSA-65"; }
bool CaAlgorithmAllowed(PeerProfile p, const EVP_PKEY* key) {
  if (p == PeerProfile::kCnsa2) return EVP_PKEY_is_a(key, "ML-DSA-87") == 1;
  return EVP_PKEY_is_a(key, "ML-DSA-65") == 1 || EVP_PKEY_is_a(key, "ML-DSA-87") == 1;
}

int VerifyCallback(int preverify_ok, X509_STORE_CTX* store) {
  auto* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  auto* state = ssl != nullptr ? static_cast<VerifyState*>(SSL_get_ex_data(ssl, VerifyStateIndex())) : nullptr;
  if (state == nullptr) return 0;
  const int depth = X509_STORE_CTX_get_error_depth(store);
  X509* cert = X509_STORE_CTX_get_current_cert(store);
  if (preverify_ok != 1) {
    const int err = X509_STORE_CTX_get_error(store);
    if (state->failure.empty()) {
      std::string why = X509_verify_cert_error_string(err);
      if (err == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY || err == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT ||
          err == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT || err == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN ||
          err == X509_V_ERR_CERT_SIGNATURE_FAILURE) {
        why = "it was not issued by the deployment CA (" + why + ")";
      }
      state->failure = "the peer's certificate" +
                       (cert != nullptr ? " \"" + Printable(CommonNameOf(cert)) + "\"" : std::string()) +
                       " is refused: " + why;
    }
    return 0;
  }
  const EVP_PKEY* key = cert != nullptr ? X509_get0_pubkey(cert) : nullptr;
  auto refuse = [&](std::string why) {
    if (state->failure.empty()) state->failure = std::move(why);
    X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
  };
  if (key == nullptr) return refuse("the peer's certificate has no usable public key");
  if (depth == 0) {
    const std::string_view want = LeafAlgorithm(state->profile);
    if (EVP_PKEY_is_a(key, std::string(want).c_str()) != 1) {
      return refuse("the peer's certificate \"" + Printable(CommonNameOf(cert)) + "\" has key type " +
                    KeyTypeName(key) + "; the " + std::string(PeerProfileName(state->profile)) + " profile requires " +
                    std::string(want) + " (classical certificates are refused)");
    }
    // Peer identities and API client identities are apart: a peer-link certificate is valid for
    // both client and server authentication (qsapi ca issue --peer); an API client certificate
    // (client authentication only) of the same name is not a peer.
    const std::uint32_t xku = X509_get_extended_key_usage(cert);
    if ((xku & XKU_SSL_SERVER) == 0 || (xku & XKU_SSL_CLIENT) == 0) {
      return refuse("the peer's certificate \"" + Printable(CommonNameOf(cert)) +
                    "\" is not a peer-link certificate: it must be valid for both client and server authentication "
                    "(an API client certificate is not; issue one with `qsapi ca issue NAME --peer`)");
    }
    if (!state->expected_name.empty()) {
      const std::string cn = CommonNameOf(cert);
      if (cn != state->expected_name) {
        return refuse("the peer's certificate names \"" + Printable(cn) + "\", but the peer expected here is \"" +
                      state->expected_name + "\"");
      }
    }
  } else if (!CaAlgorithmAllowed(state->profile, key)) {
    return refuse("the CA certificate \"" + Printable(CommonNameOf(cert)) + "\" above the peer's has key type " +
                  KeyTypeName(key) + "; the " + std::string(PeerProfileName(state->profile)) +
                  " profile requires ML-DSA throughout the chain");
  }
  return 1;
}

Status ConfigureCommon(SSL_CTX* ctx, PeerProfile profile) {
  // 256-bit AEADs only (a 128-bit key keeps 64 bits against Grover); CNSA 2.0: AES-256-GCM.
  const char* suites =
      profile == PeerProfile::kCnsa2 ? "TLS_AES_256_GCM_SHA384" : "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
  if (SSL_CTX_set_ciphersuites(ctx, suites) != 1) return Internal("TLS: cannot set the TLS 1.3 cipher suites");
  // No resumption: every link is a full handshake with a fresh ML-KEM encapsulation.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  if (SSL_CTX_set_num_tickets(ctx, 0) != 1) return Internal("TLS: cannot disable session tickets");
  SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, VerifyCallback);
  return OkStatus();
}

// WarmCertificateCaches makes OpenSSL compute the cached extension data of the trust anchors and
// our own certificate now, once, instead of lazily during the first concurrent handshakes: OpenSSL
// fills that cache under a lock but reads it without one (a race ThreadSanitizer reports).
void WarmCertificateCaches(SSL_CTX* ctx) {
  if (X509* own = SSL_CTX_get0_certificate(ctx); own != nullptr) (void)X509_check_purpose(own, -1, 0);
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  if (store == nullptr) return;
  STACK_OF(X509)* anchors = X509_STORE_get1_all_certs(store);
  for (int i = 0; anchors != nullptr && i < sk_X509_num(anchors); ++i) {
    (void)X509_check_purpose(sk_X509_value(anchors, i), -1, 0);
  }
  sk_X509_pop_free(anchors, X509_free);
}

}  // namespace

std::string_view PeerProfileName(PeerProfile profile) noexcept {
  return profile == PeerProfile::kCnsa2 ? "cnsa2" : "default";
}

Result<PeerProfile> ParsePeerProfile(std::string_view name) {
  if (name == "default") return PeerProfile::kDefault;
  if (name == "cnsa2") return PeerProfile::kCnsa2;
  return InvalidArgument("unknown peer profile \"" + Printable(name) + "\"; use default or cnsa2");
}

std::string_view PeerProfileGroups(PeerProfile profile) noexcept {
  return profile == PeerProfile::kCnsa2 ? kCnsa2Groups : kDefaultGroups;
}

PeerLinkContext::PeerLinkContext(PeerLinkOptions options, std::unique_ptr<Handles> handles, std::string common_name)
    : options_(std::move(options)), handles_(std::move(handles)), common_name_(std::move(common_name)) {}
PeerLinkContext::~PeerLinkContext() = default;

Result<std::shared_ptr<const PeerLinkContext>> PeerLinkContext::Create(const PeerLinkOptions& options) {
  const std::string who = "peer link: ";
  if (options.certificate_file.empty()) return InvalidArgument(who + "certificate_file is required");
  if (options.private_key_file.empty() && options.private_key == nullptr) {
    return InvalidArgument(who + "a private key is required (private_key_file or private_key)");
  }
  if (options.ca_file.empty()) {
    return InvalidArgument(who + "ca_file (the deployment CA) is required: peers are trusted only through it");
  }
  if (options.connect_timeout.count() <= 0 || options.handshake_timeout.count() <= 0 ||
      options.io_timeout.count() <= 0) {
    return InvalidArgument(who + "timeouts must be positive");
  }
  if (options.max_message_size < 1024 || options.max_message_size > kMaxPeerMessageSizeLimit) {
    return InvalidArgument(who + "max_message_size must be between 1 KiB and 16 MiB");
  }
  // Our own certificate must be what we demand of peers.
  QSAPI_ASSIGN_OR_RETURN(pki::Certificate own, pki::ReadCertificatePem(options.certificate_file));
  const EVP_PKEY* own_key = X509_get0_pubkey(own.native_handle());
  const std::string_view want = LeafAlgorithm(options.profile);
  if (own_key == nullptr || EVP_PKEY_is_a(own_key, std::string(want).c_str()) != 1) {
    return InvalidArgument(who + "our certificate " + options.certificate_file + " has key type " +
                           KeyTypeName(own_key) + "; the " + std::string(PeerProfileName(options.profile)) +
                           " profile requires " + std::string(want));
  }
  QSAPI_ASSIGN_OR_RETURN(std::string cn, own.CommonName());

  pki::TlsOptions tls;
  tls.min_version = pki::TlsVersion::kTls13;
  tls.max_version = pki::TlsVersion::kTls13;
  tls.groups = std::string(PeerProfileGroups(options.profile));
  tls.certificate_file = options.certificate_file;
  tls.private_key_file = options.private_key_file;
  tls.private_key = options.private_key;
  tls.ca_file = options.ca_file;
  tls.verify_peer = pki::PeerVerification::kRequired;
  tls.session_tickets = false;  // one long-lived connection per session; nothing to resume

  auto handles = std::make_unique<Handles>();
  handles->client.reset(SSL_CTX_new(TLS_client_method()));
  handles->server.reset(SSL_CTX_new(TLS_server_method()));
  if (!handles->client || !handles->server)
    return Internal(who + "cannot create TLS contexts: " + crypto::internal::TakeOpenSslReason());
  QSAPI_RETURN_IF_ERROR(pki::ConfigureClientContext(handles->client.get(), tls));
  QSAPI_RETURN_IF_ERROR(pki::ConfigureServerContext(handles->server.get(), tls));
  QSAPI_RETURN_IF_ERROR(ConfigureCommon(handles->client.get(), options.profile));
  QSAPI_RETURN_IF_ERROR(ConfigureCommon(handles->server.get(), options.profile));
  WarmCertificateCaches(handles->client.get());
  WarmCertificateCaches(handles->server.get());
  return std::shared_ptr<const PeerLinkContext>(new PeerLinkContext(options, std::move(handles), std::move(cn)));
}

}  // namespace qsapi::session
