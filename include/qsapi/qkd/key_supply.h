// qsapi/qkd/key_supply.h: QKD keys for the session layer, on top of an Etsi014Client.
//
// The two ends of a peer link share keys through their KMEs: the *master* end reserves keys from
// its KME (enc_keys) and sends the key_IDs to the other end in its handshake; the *slave* end
// fetches the same keys from its own KME by those key_IDs (dec_keys). Both then mix the keys into
// their key schedule next to the PQ KEM secret; a key-confirmation step there detects a KME pair
// that handed out different keys (the simulator's corrupt mode tests exactly that).
//
// Use-once: a key is handed out once (QkdKey / SecretBytes are move-only), lives only in secret
// memory, and is wiped when the caller drops it. The optional prefetch buffer of a MasterKeySupply
// holds at most `prefetch` keys for one peer, drops (and wipes) keys older than max_age (KMEs may
// discard reserved keys a slave never fetched), and is wiped by Clear() and on destruction.
// Nothing here writes a key to disk or to a log line.
//
// Thread safety: both classes may be used from several threads; calls are serialised.
#ifndef QSAPI_QKD_KEY_SUPPLY_H_
#define QSAPI_QKD_KEY_SUPPLY_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "qsapi/qkd/etsi014.h"
#include "qsapi/result.h"
#include "qsapi/secret.h"

namespace qsapi::qkd {

// ReservedKeys are keys the master end reserved: key_ids[i] names keys[i].
struct ReservedKeys {
  std::vector<std::string> key_ids;
  std::vector<SecretBytes> keys;
};

struct MasterKeySupplyOptions {
  std::string slave_sae_id;           // the peer's SAE_ID at its KME
  std::uint32_t key_size_bits = 256;  // the size of every key
  std::size_t prefetch = 0;           // keys to keep ready for this peer (0: fetch on demand only)
  std::uint32_t max_keys_per_request = 128;
  std::chrono::seconds max_age{300};  // older buffered keys are dropped, not used
};

// MasterKeySupply reserves keys for one slave SAE.
class MasterKeySupply {
 public:
  // Create checks the options; it does not contact the KME.
  static Result<std::unique_ptr<MasterKeySupply>> Create(std::shared_ptr<Etsi014Client> client,
                                                         const MasterKeySupplyOptions& options);
  MasterKeySupply(const MasterKeySupply&) = delete;
  MasterKeySupply& operator=(const MasterKeySupply&) = delete;
  MasterKeySupply(MasterKeySupply&&) = delete;
  MasterKeySupply& operator=(MasterKeySupply&&) = delete;
  ~MasterKeySupply();

  // Reserve returns `count` keys, from the prefetch buffer first, then from the KME. On failure
  // no key is lost: keys taken from the buffer go back into it.
  Result<ReservedKeys> Reserve(std::size_t count);
  // Prefetch tops the buffer up to options.prefetch keys (no-op when prefetch is 0).
  Status Prefetch();
  // buffered returns how many keys are ready in the buffer.
  [[nodiscard]] std::size_t buffered() const;
  // Clear wipes and drops every buffered key.
  void Clear();

 private:
  struct Buffered {
    QkdKey key;
    std::chrono::steady_clock::time_point fetched;
  };
  MasterKeySupply(std::shared_ptr<Etsi014Client> client, MasterKeySupplyOptions options)
      : client_(std::move(client)), options_(std::move(options)) {}
  Status FetchInto(std::size_t count, std::deque<Buffered>& out);
  void DropExpired();

  std::shared_ptr<Etsi014Client> client_;
  const MasterKeySupplyOptions options_;
  mutable std::mutex mu_;
  std::deque<Buffered> buffer_;  // guarded by mu_
};

// SlaveKeySupply fetches, by key_ID, keys a master SAE reserved for us.
class SlaveKeySupply {
 public:
  SlaveKeySupply(std::shared_ptr<Etsi014Client> client, std::string master_sae_id, std::uint32_t key_size_bits)
      : client_(std::move(client)), master_sae_id_(std::move(master_sae_id)), key_size_bits_(key_size_bits) {}

  // Fetch returns the keys named by `key_ids`, in that order, each of key_size_bits.
  Result<std::vector<SecretBytes>> Fetch(std::span<const std::string> key_ids);

 private:
  std::shared_ptr<Etsi014Client> client_;
  std::string master_sae_id_;
  std::uint32_t key_size_bits_;
};

}  // namespace qsapi::qkd

#endif  // QSAPI_QKD_KEY_SUPPLY_H_
