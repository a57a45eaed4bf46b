// The keystore trail's chain, shared by every MetadataStore backend so that a trail moved from one
// backend to another verifies unchanged: entry n stores c_n = F(c_{n-1} || encode(n, entry)) with
// c_0 = 32 zero bytes and encode() length-prefixing every field (docs/PROTOCOL.md, "Audit trails").
// F is HMAC-SHA-256 under the trail key from the entry that keyed the trail on, SHA-256 before.
#ifndef QSAPI_KEYSTORE_INTERNAL_AUDIT_CHAIN_H_
#define QSAPI_KEYSTORE_INTERNAL_AUDIT_CHAIN_H_

#include <cstdint>
#include <vector>

#include "keystore/internal/metadata_store.h"
#include "qsapi/result.h"
#include "qsapi/secret.h"

namespace qsapi::keystore::internal {

inline constexpr std::size_t kAuditChainSize = 32;

// AuditChainValue is c_seq for entry `a` after `prev`; `key` empty: SHA-256, else HMAC-SHA-256.
Result<Bytes> AuditChainValue(ByteView prev, std::int64_t seq, const AuditRow& a, ByteView key = {});

// VerifyStoredChain checks entries 1..n of a trail as read (in seq order): no gap, each entry's
// prev_hash the one before's hash, each hash recomputed (HMAC under `key` from first_seq on, SHA-256
// before). kDataLoss names the first entry that fails.
Status VerifyStoredChain(const std::vector<StoredAuditEntry>& entries, ByteView key, std::uint64_t first_seq);

}  // namespace qsapi::keystore::internal

#endif  // QSAPI_KEYSTORE_INTERNAL_AUDIT_CHAIN_H_
