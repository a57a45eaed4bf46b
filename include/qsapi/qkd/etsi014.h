// qsapi/qkd/etsi014.h: a client for the ETSI GS QKD 014 V1.1.1 REST key-delivery API.
//
// An SAE (us) asks its local KME for keys it shares with a peer SAE. The *master* SAE calls
// Get status and Get key (enc_keys) naming the slave; the *slave* SAE calls Get key with key IDs
// (dec_keys) naming the master and the key_IDs the master sent it. Keys are deleted from the KME
// once delivered. Facts: docs/reference (ETSI GS QKD 014 fact sheet) and docs/ARCHITECTURE.md.
//
// Security properties (PRODUCT.md invariants 1, 3 and 6):
//  - Mutual TLS: the client presents an SAE certificate and key and verifies the KME's certificate
//    chain against ca_file and the host name or IP of the URL; optionally the KME's certificate CN
//    must equal expected_kme_id (and a status's source_KME_ID too).
//  - KMEs speak classical TLS today: the client offers pki::kKmeClientGroups (hybrid PQ groups
//    first) and logs one WARNING per client when the group it gets is classical. This is the one
//    documented exception to "no classical-only key establishment" (docs/THREAT_MODEL.md).
//  - Keys are decoded from base64 straight into SecretBytes (locked, never dumped, wiped on
//    release); the response buffers that held them in base64 are wiped. QkdKey is move-only: a key
//    is handed out once. Nothing here writes a key anywhere; no error or log line contains one.
//  - Every response is bounded (header and body size), strictly parsed (key_IDs must be UUIDs,
//    no duplicates, the number and size of keys must match the request) and every malformed one
//    is a typed error, never a crash.
//
// Errors (Result / Status; messages name the KME URL, the call, the HTTP status and the KME's
// `message` member when there is one):
//   RESOURCE_EXHAUSTED  the KME has not enough keys ("try again later"; 400 or 503 with such a message) - retried
//   UNAVAILABLE         500, 503, 504, or the KME cannot be reached - retried
//   PERMISSION_DENIED   401 / 403 (this SAE may not do that), the KME refused our TLS client
//                       certificate, or KME_ID mismatch
//   NOT_FOUND           404
//   FAILED_PRECONDITION 409 / 412 (e.g. remote KME not synchronised), or the KME's TLS
//                       certificate failed verification
//   INVALID_ARGUMENT    another 400 (the request was wrong), or bad arguments to the client
//   DATA_LOSS           a malformed, truncated or oversized response; keys of the wrong size,
//                       malformed or duplicate key IDs, invalid base64
//   DEADLINE_EXCEEDED   no complete response in time - not retried (the KME may have released keys)
// Retries: only RESOURCE_EXHAUSTED and UNAVAILABLE, at most max_attempts attempts in all, with
// exponential backoff, and never past total_timeout.
//
// Thread safety: an Etsi014Client may be shared between threads; calls are serialised (one
// keep-alive connection per client).
#ifndef QSAPI_QKD_ETSI014_H_
#define QSAPI_QKD_ETSI014_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "qsapi/result.h"
#include "qsapi/secret.h"

namespace qsapi::qkd {

// KmeStatus is the spec's Status object (sizes in bits).
struct KmeStatus {
  std::string source_kme_id;
  std::string target_kme_id;
  std::string master_sae_id;
  std::string slave_sae_id;
  std::uint64_t key_size = 0;
  std::uint64_t stored_key_count = 0;
  std::uint64_t max_key_count = 0;
  std::uint64_t max_key_per_request = 0;
  std::uint64_t max_key_size = 0;
  std::uint64_t min_key_size = 0;
  std::uint64_t max_sae_id_count = 0;
};

// QkdKey is one delivered key: its key_ID (a UUID, not secret) and the key bytes (secret).
// Move-only; the bytes are wiped when the key is destroyed or moved from.
struct QkdKey {
  std::string key_id;
  SecretBytes key;
};

// KeyRequest is the spec's Key request. number = 1 and size = 0 (the KME's default key_size) by
// default; size is in bits and must be a multiple of 8.
struct KeyRequest {
  std::uint32_t number = 1;
  std::uint32_t size = 0;
  std::vector<std::string> additional_slave_sae_ids;
  bool use_get = false;  // GET with ?number=&size= instead of POST (no additional SAE IDs then)
};

struct Etsi014ClientOptions {
  std::string kme_url;           // "https://kme-a.example:8443" (a path prefix before /api/v1 is allowed)
  std::string ca_file;           // PEM trust anchors for the KME's certificate (required)
  std::string certificate_file;  // this SAE's client certificate chain, PEM (required)
  std::string private_key_file;  // its private key, PEM, mode 0600 (required)
  std::string expected_kme_id;   // when set: the KME's certificate CN (and status source_KME_ID) must equal it
  bool allow_tls12 = true;       // KMEs may speak only TLS 1.2 (the spec's minimum)
  std::string groups;            // default pki::kKmeClientGroups
  std::chrono::milliseconds connect_timeout{3000};  // resolve + connect + TLS handshake
  std::chrono::milliseconds request_timeout{5000};  // send the request + read the whole response
  std::chrono::milliseconds total_timeout{15000};   // a call, all attempts and backoff included
  int max_attempts = 3;                             // attempts per call (1 = no retry)
  std::chrono::milliseconds initial_backoff{100};   // doubled after each failed attempt
  std::chrono::milliseconds max_backoff{2000};
  std::size_t max_response_bytes = 1 << 20;  // body limit; the head is limited to 16 KiB
  bool keep_alive = true;                    // reuse one connection between calls
};

// LinkInfo describes the TLS link of a client (for status output and diagnostics).
struct LinkInfo {
  std::string kme_url;
  std::string tls_version;      // "TLSv1.3" once connected, else ""
  std::string tls_group;        // "X25519MLKEM768", "x25519", ...
  bool pq_hybrid = false;       // the group is a hybrid post-quantum one
  std::string kme_common_name;  // CN of the KME's verified certificate
  std::uint64_t requests = 0;   // HTTP requests sent
  std::uint64_t retries = 0;    // attempts after a retryable failure
  std::uint64_t connections = 0;
};

// Etsi014Client talks to one KME (one "link").
class Etsi014Client {
 public:
  // Create checks the options and loads the TLS files; it does not connect.
  static Result<std::unique_ptr<Etsi014Client>> Create(const Etsi014ClientOptions& options);
  virtual ~Etsi014Client() = default;

  // GetStatus: GET /api/v1/keys/{slave_SAE_ID}/status.
  virtual Result<KmeStatus> GetStatus(std::string_view slave_sae_id) = 0;
  // GetKey: POST (or GET) /api/v1/keys/{slave_SAE_ID}/enc_keys. Returns exactly request.number keys
  // of request.size bits (when size is 0: all of one size, the KME's default).
  virtual Result<std::vector<QkdKey>> GetKey(std::string_view slave_sae_id, const KeyRequest& request) = 0;
  // GetKeyWithKeyIds: POST /api/v1/keys/{master_SAE_ID}/dec_keys with these key_IDs (or, with
  // use_get and exactly one ID, GET ?key_ID=). Returns the keys in the order of `key_ids`;
  // expected_size_bits (0: any, all equal) is checked.
  virtual Result<std::vector<QkdKey>> GetKeyWithKeyIds(std::string_view master_sae_id,
                                                       std::span<const std::string> key_ids,
                                                       std::uint32_t expected_size_bits = 0, bool use_get = false) = 0;
  // link returns what is known about the TLS link so far.
  [[nodiscard]] virtual LinkInfo link() const = 0;
};

// IsValidKeyId tells whether `id` is a UUID in the 8-4-4-4-12 hex form (RFC 4122 text; either case).
bool IsValidKeyId(std::string_view id) noexcept;

}  // namespace qsapi::qkd

#endif  // QSAPI_QKD_ETSI014_H_
