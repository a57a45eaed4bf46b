// The keystore trail's chain. See audit_chain.h.
#include "keystore/internal/audit_chain.h"

#include <string>

#include "qsapi/crypto/kdf.h"
#include "qsapi/secret.h"

namespace qsapi::keystore::internal {
namespace {

void PutField(Bytes& out, ByteView v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<std::uint8_t>(v.size() >> s));
  out.insert(out.end(), v.begin(), v.end());
}
void PutField(Bytes& out, const std::string& v) {
  PutField(out, ByteView(reinterpret_cast<const std::uint8_t*>(v.data()), v.size()));  // NOLINT
}
void PutField(Bytes& out, std::int64_t v) { PutField(out, std::to_string(v)); }

}  // namespace

Result<Bytes> AuditChainValue(ByteView prev, std::int64_t seq, const AuditRow& a, ByteView key) {
  Bytes enc(prev.begin(), prev.end());
  PutField(enc, seq);
  PutField(enc, a.at);
  PutField(enc, a.actor);
  PutField(enc, a.action);
  PutField(enc, a.key_name);
  PutField(enc, static_cast<std::int64_t>(a.version));
  PutField(enc, a.result);
  PutField(enc, a.detail);
  if (!key.empty()) return crypto::Hmac(crypto::HashAlgorithm::kSha256, key, enc);
  return crypto::Hash(crypto::HashAlgorithm::kSha256, enc);
}

Status VerifyStoredChain(const std::vector<StoredAuditEntry>& entries, ByteView key, std::uint64_t first_seq) {
  Bytes prev(kAuditChainSize, 0);
  std::uint64_t expected = 1;
  for (const StoredAuditEntry& e : entries) {
    if (e.seq != expected) return DataLoss("audit trail: entry " + std::to_string(expected) + " is missing");
    const bool keyed = !key.empty() && e.seq >= first_seq;
    QSAPI_ASSIGN_OR_RETURN(Bytes h,
                           AuditChainValue(prev, static_cast<std::int64_t>(e.seq), e.row, keyed ? key : ByteView()));
    if (!ConstantTimeEqual(e.prev_hash, prev) || !ConstantTimeEqual(e.hash, h)) {
      return DataLoss("audit trail: entry " + std::to_string(e.seq) + " was altered (its " + (keyed ? "MAC" : "hash") +
                      " does not chain)");
    }
    prev = std::move(h);
    ++expected;
  }
  return OkStatus();
}

}  // namespace qsapi::keystore::internal
