// qsapi/session/peer_link.h: the peer link: a mutually authenticated TLS 1.3 connection between
// two qsapi endpoints that carries length-prefixed messages.
//
// What a link guarantees once Connect() or Accept() returns it (docs/PROTOCOL.md, "Session
// establishment"; docs/THREAT_MODEL.md, "Peer link"):
//  - TLS 1.3 only; key exchange restricted to the profile's hybrid post-quantum groups
//    (`default`: X25519MLKEM768, then SecP384r1MLKEM1024; `cnsa2`: SecP384r1MLKEM1024 only). A peer
//    that offers only classical groups fails the handshake.
//  - Both sides present certificates that chain to the deployment CA (ca_file) and whose keys are
//    ML-DSA: the leaf ML-DSA-65 (`default`) or ML-DSA-87 (`cnsa2`), every CA above it ML-DSA too.
//    A classical certificate, one from another CA or one whose CN is not the expected peer name is
//    refused with an error that says which.
//  - TLS 1.3 cipher suites with 256-bit keys only: TLS_AES_256_GCM_SHA384 and
//    TLS_CHACHA20_POLY1305_SHA256 (`cnsa2`: TLS_AES_256_GCM_SHA384 only).
//  - No session resumption (no tickets, no session cache): every link runs a full handshake with a
//    fresh ML-KEM encapsulation, so re-establishment is simply a new link.
//  - Messages are framed as a 4-byte big-endian length and that many bytes, at most
//    max_message_size; a larger announced length closes the link. Every call has a deadline.
//
// Implementation: plain OpenSSL over non-blocking sockets and poll() (no Boost.Asio), so that the
// link is part of libqsapi (docs/DECISIONS.md, "The peer link: blocking calls over OpenSSL").
//
// Thread safety: a PeerLinkContext is immutable and shared. One thread may Send while another
// Receives on the same PeerLink; two concurrent Sends (or Receives) are serialised.
#ifndef QSAPI_SESSION_PEER_LINK_H_
#define QSAPI_SESSION_PEER_LINK_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "qsapi/result.h"
#include "qsapi/secret.h"

namespace qsapi::pki {
class PrivateKey;
}  // namespace qsapi::pki

namespace qsapi::session {

// PeerProfile selects certificate algorithm and TLS groups of peer links.
enum class PeerProfile : std::uint8_t {
  kDefault,  // ML-DSA-65 certificates; X25519MLKEM768 (preferred) or SecP384r1MLKEM1024
  kCnsa2,    // ML-DSA-87 certificates; SecP384r1MLKEM1024 only (CNSA 2.0 levels)
};
std::string_view PeerProfileName(PeerProfile profile) noexcept;  // "default", "cnsa2"
Result<PeerProfile> ParsePeerProfile(std::string_view name);
// PeerProfileGroups returns the OpenSSL group list of a profile, in preference order.
std::string_view PeerProfileGroups(PeerProfile profile) noexcept;

inline constexpr std::size_t kDefaultMaxPeerMessageSize = std::size_t{1} << 20;  // 1 MiB
inline constexpr std::size_t kMaxPeerMessageSizeLimit = std::size_t{16} << 20;   // 16 MiB

// PeerLinkOptions configure this endpoint's side of every link (both as client and as server).
struct PeerLinkOptions {
  PeerProfile profile = PeerProfile::kDefault;
  std::string certificate_file;                        // our certificate chain, PEM, leaf first (ML-DSA of the profile)
  std::string private_key_file;                        // its private key (mode 0600); or:
  std::shared_ptr<const pki::PrivateKey> private_key;  // the key held in memory (unwrapped by the keystore)
  std::string ca_file;                                 // the deployment CA (PEM): the only trust anchor
  std::chrono::milliseconds connect_timeout{5000};     // TCP connect (name resolution included)
  std::chrono::milliseconds handshake_timeout{5000};   // the TLS handshake and the peer checks
  std::chrono::milliseconds io_timeout{10000};         // default deadline of one Send / Receive
  std::size_t max_message_size = kDefaultMaxPeerMessageSize;  // at most kMaxPeerMessageSizeLimit
};

// PeerLinkContext holds the configured OpenSSL contexts of one endpoint (certificate, key, trust
// anchor, groups). Create it once; links share it.
class PeerLinkContext {
 public:
  // Create checks the options and loads the files. INVALID_ARGUMENT names the option at fault:
  // a certificate whose key is not the profile's ML-DSA, a key that does not match, no ca_file,
  // bad timeouts or message bound.
  static Result<std::shared_ptr<const PeerLinkContext>> Create(const PeerLinkOptions& options);
  ~PeerLinkContext();
  PeerLinkContext(const PeerLinkContext&) = delete;
  PeerLinkContext& operator=(const PeerLinkContext&) = delete;
  PeerLinkContext(PeerLinkContext&&) = delete;
  PeerLinkContext& operator=(PeerLinkContext&&) = delete;

  [[nodiscard]] const PeerLinkOptions& options() const noexcept { return options_; }
  // common_name is the CN of our own certificate (our peer name as others see it).
  [[nodiscard]] const std::string& common_name() const noexcept { return common_name_; }

  struct Handles;  // src/session: the SSL_CTX pair

 private:
  PeerLinkContext(PeerLinkOptions options, std::unique_ptr<Handles> handles, std::string common_name);
  friend class PeerLink;
  PeerLinkOptions options_;
  std::unique_ptr<Handles> handles_;
  std::string common_name_;
};

// LinkInfo describes an established link (for session objects, status and logs).
struct LinkInfo {
  std::string peer_name;           // the CN of the peer's verified certificate
  std::string tls_version;         // "TLSv1.3"
  std::string tls_group;           // "X25519MLKEM768" or "SecP384r1MLKEM1024"
  std::string tls_cipher;          // "TLS_AES_256_GCM_SHA384" or "TLS_CHACHA20_POLY1305_SHA256"
  std::string peer_key_algorithm;  // "ML-DSA-65" / "ML-DSA-87"
  std::string remote_address;      // "127.0.0.1:40123"
  bool is_client = false;          // we initiated the TCP connection
};

// IncomingConnection is an accepted TCP connection before its TLS handshake (move-only; closes
// the socket on destruction). Hand it to PeerLink::Accept, typically on a worker thread, so that a
// slow client cannot hold up the accept loop.
class IncomingConnection {
 public:
  IncomingConnection() = default;
  IncomingConnection(int fd, std::string remote) noexcept : fd_(fd), remote_(std::move(remote)) {}
  IncomingConnection(IncomingConnection&& other) noexcept;
  IncomingConnection& operator=(IncomingConnection&& other) noexcept;
  IncomingConnection(const IncomingConnection&) = delete;
  IncomingConnection& operator=(const IncomingConnection&) = delete;
  ~IncomingConnection();
  [[nodiscard]] const std::string& remote_address() const noexcept { return remote_; }
  // release hands the socket over.
  [[nodiscard]] int release() noexcept;

 private:
  int fd_ = -1;
  std::string remote_;
};

// PeerListener is a listening TCP socket for peer links.
class PeerListener {
 public:
  // Listen binds host:port (port 0: ephemeral) with SO_REUSEADDR and listens.
  static Result<std::unique_ptr<PeerListener>> Listen(const std::string& bind_address, std::uint16_t port);
  ~PeerListener();
  PeerListener(const PeerListener&) = delete;
  PeerListener& operator=(const PeerListener&) = delete;
  PeerListener(PeerListener&&) = delete;
  PeerListener& operator=(PeerListener&&) = delete;

  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  // AcceptConnection waits up to `timeout` for a TCP connection. DEADLINE_EXCEEDED when none came,
  // UNAVAILABLE after Close().
  Result<IncomingConnection> AcceptConnection(std::chrono::milliseconds timeout);
  // Close makes pending and later AcceptConnection calls return UNAVAILABLE (thread-safe).
  void Close() noexcept;

 private:
  PeerListener(int fd, int wake_read, int wake_write, std::uint16_t port)
      : fd_(fd), wake_read_(wake_read), wake_write_(wake_write), port_(port) {}
  int fd_;
  int wake_read_;
  int wake_write_;
  std::uint16_t port_;
};

// PeerLink is one established link. Closing (or destroying) it sends TLS close_notify.
class PeerLink {
 public:
  // Connect opens a link to host:port and checks that the server is `expected_peer_name`.
  // UNAVAILABLE when it cannot connect; DEADLINE_EXCEEDED on a timeout; PERMISSION_DENIED when the
  // TLS handshake or a peer check fails (the message says which: group, CA, algorithm, name).
  static Result<std::unique_ptr<PeerLink>> Connect(std::shared_ptr<const PeerLinkContext> context,
                                                   const std::string& host, std::uint16_t port,
                                                   const std::string& expected_peer_name);
  // Accept runs the server side of the handshake on an accepted connection and the peer checks
  // (CA, algorithm, group). The peer's name is not known in advance: the caller looks it up in
  // info().peer_name and refuses names it does not know.
  static Result<std::unique_ptr<PeerLink>> Accept(std::shared_ptr<const PeerLinkContext> context,
                                                  IncomingConnection connection);
  ~PeerLink();
  PeerLink(const PeerLink&) = delete;
  PeerLink& operator=(const PeerLink&) = delete;
  PeerLink(PeerLink&&) = delete;
  PeerLink& operator=(PeerLink&&) = delete;

  // Send writes one message (at most max_message_size bytes) before the deadline (io_timeout
  // when zero). UNAVAILABLE when the link is closed or broken; DEADLINE_EXCEEDED on timeout
  // (the link is then closed: a partly written frame cannot be resumed).
  Status Send(ByteView message, std::chrono::milliseconds timeout = std::chrono::milliseconds(0));
  // Receive reads one message. `timeout` bounds the wait for a message to start; once its first
  // byte has arrived, the message gets at least io_timeout to complete (so a short poll does not
  // cut a large message). DEADLINE_EXCEEDED when none arrived in time (the link stays usable if no
  // byte of a frame had arrived, otherwise it is closed); UNAVAILABLE when the peer closed;
  // RESOURCE_EXHAUSTED (and the link closed) for a frame above max_message_size.
  Result<Bytes> Receive(std::chrono::milliseconds timeout = std::chrono::milliseconds(0));

  // ExportKeyingMaterial returns the TLS 1.3 exporter value (RFC 8446, 7.5) for `label` and
  // `context`: bound to this handshake and so to its ML-KEM shared secret.
  Result<SecretBytes> ExportKeyingMaterial(std::string_view label, ByteView context, std::size_t size) const;

  [[nodiscard]] const LinkInfo& info() const noexcept { return info_; }
  [[nodiscard]] std::size_t max_message_size() const noexcept { return context_->options().max_message_size; }
  [[nodiscard]] std::chrono::milliseconds io_timeout() const noexcept { return context_->options().io_timeout; }
  [[nodiscard]] bool is_open() const;
  // Close sends close_notify (best effort, bounded) and closes the socket. Idempotent.
  void Close();

  struct Conn;  // src/session: SSL handle and socket

 private:
  PeerLink(std::shared_ptr<const PeerLinkContext> context, std::unique_ptr<Conn> conn, LinkInfo info);
  static Result<std::unique_ptr<PeerLink>> Handshake(std::shared_ptr<const PeerLinkContext> context, int fd,
                                                     std::string remote, bool client, const std::string& host,
                                                     const std::string& expected_peer_name);

  std::shared_ptr<const PeerLinkContext> context_;
  std::unique_ptr<Conn> conn_;
  LinkInfo info_;
  mutable std::mutex ssl_mu_;  // guards every call on the SSL handle
  std::mutex send_mu_;         // one frame at a time
  std::mutex recv_mu_;
};

}  // namespace qsapi::session

#endif  // QSAPI_SESSION_PEER_LINK_H_
