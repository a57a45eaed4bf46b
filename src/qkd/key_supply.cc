// Master and slave key supplies for the session layer (qsapi/qkd/key_supply.h).
#include "qsapi/qkd/key_supply.h"

#include <algorithm>
#include <utility>

namespace qsapi::qkd {

Result<std::unique_ptr<MasterKeySupply>> MasterKeySupply::Create(std::shared_ptr<Etsi014Client> client,
                                                                 const MasterKeySupplyOptions& options) {
  if (!client) return InvalidArgument("QKD master key supply: no ETSI 014 client");
  if (options.slave_sae_id.empty()) return InvalidArgument("QKD master key supply: slave_sae_id is empty");
  if (options.key_size_bits == 0 || options.key_size_bits % 8 != 0) {
    return InvalidArgument("QKD master key supply: key_size_bits must be a positive multiple of 8");
  }
  if (options.max_keys_per_request == 0) {
    return InvalidArgument("QKD master key supply: max_keys_per_request must be positive");
  }
  if (options.prefetch > 4096) return InvalidArgument("QKD master key supply: prefetch is limited to 4096 keys");
  return std::unique_ptr<MasterKeySupply>(new MasterKeySupply(std::move(client), options));
}

MasterKeySupply::~MasterKeySupply() { Clear(); }

void MasterKeySupply::DropExpired() {
  const auto now = std::chrono::steady_clock::now();
  // SecretBytes wipes itself when the element is destroyed.
  while (!buffer_.empty() && now - buffer_.front().fetched > options_.max_age) buffer_.pop_front();
}

Status MasterKeySupply::FetchInto(std::size_t count, std::deque<Buffered>& out) {
  while (count > 0) {
    KeyRequest request;
    request.number = static_cast<std::uint32_t>(std::min<std::size_t>(count, options_.max_keys_per_request));
    request.size = options_.key_size_bits;
    QSAPI_ASSIGN_OR_RETURN(std::vector<QkdKey> keys, client_->GetKey(options_.slave_sae_id, request));
    const auto now = std::chrono::steady_clock::now();
    for (QkdKey& k : keys) out.push_back(Buffered{std::move(k), now});
    count -= request.number;
  }
  return OkStatus();
}

Result<ReservedKeys> MasterKeySupply::Reserve(std::size_t count) {
  if (count == 0 || count > 4096) return InvalidArgument("QKD master key supply: reserve 1 to 4096 keys");
  std::lock_guard lock(mu_);
  DropExpired();
  std::deque<Buffered> taken;
  while (!buffer_.empty() && taken.size() < count) {
    taken.push_back(std::move(buffer_.front()));
    buffer_.pop_front();
  }
  // Fetch what is missing, plus enough to refill the buffer, in as few requests as possible.
  const std::size_t missing = count - taken.size();
  std::size_t to_fetch = missing;
  if (missing > 0 && options_.prefetch > 0) to_fetch += options_.prefetch - std::min(options_.prefetch, buffer_.size());
  if (to_fetch > 0) {
    std::deque<Buffered> fetched;
    Status s = FetchInto(to_fetch, fetched);
    if (!s.ok() && fetched.size() < missing) {
      // Put the keys back, in order, and keep whatever arrived for later.
      // NOLINTNEXTLINE(modernize-loop-convert): clang-tidy 14 cannot parse reverse_view over libstdc++ 12
      for (auto it = taken.rbegin(); it != taken.rend(); ++it) buffer_.push_front(std::move(*it));
      for (auto& f : fetched) buffer_.push_back(std::move(f));
      return s.error();
    }
    for (auto& f : fetched) {
      if (taken.size() < count) {
        taken.push_back(std::move(f));
      } else {
        buffer_.push_back(std::move(f));
      }
    }
  }
  ReservedKeys out;
  out.key_ids.reserve(count);
  out.keys.reserve(count);
  for (Buffered& b : taken) {
    out.key_ids.push_back(std::move(b.key.key_id));
    out.keys.push_back(std::move(b.key.key));
  }
  return out;
}

Status MasterKeySupply::Prefetch() {
  std::lock_guard lock(mu_);
  DropExpired();
  if (buffer_.size() >= options_.prefetch) return OkStatus();
  return FetchInto(options_.prefetch - buffer_.size(), buffer_);
}

std::size_t MasterKeySupply::buffered() const {
  std::lock_guard lock(mu_);
  return buffer_.size();
}

void MasterKeySupply::Clear() {
  std::lock_guard lock(mu_);
  buffer_.clear();
}

Result<std::vector<SecretBytes>> SlaveKeySupply::Fetch(std::span<const std::string> key_ids) {
  if (!client_) return InvalidArgument("QKD slave key supply: no ETSI 014 client");
  QSAPI_ASSIGN_OR_RETURN(std::vector<QkdKey> keys, client_->GetKeyWithKeyIds(master_sae_id_, key_ids, key_size_bits_));
  std::vector<SecretBytes> out;
  out.reserve(keys.size());
  for (QkdKey& k : keys) out.push_back(std::move(k.key));
  return out;
}

}  // namespace qsapi::qkd
