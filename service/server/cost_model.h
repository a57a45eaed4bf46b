// What a request costs, in cost units: microseconds of one core of the reference machine (2-core
// x86-64, OpenSSL 3.5.7; the figures and how they were measured are in docs/OPERATIONS.md,
// "Work limits"). The scheduler charges a principal's budget with it (server/work_scheduler.h),
// so that one SLH-DSA-SHA2-128s signature (a quarter of a second) is not priced like an AES-GCM
// encryption (a few microseconds), and a batch is limited by what it costs, not by its length.
//
// The figures are estimates for admission, not measurements of each request: they only need to be
// right within a small factor, and on the expensive side.
#ifndef QSAPI_SRC_SERVER_COST_MODEL_H_
#define QSAPI_SRC_SERVER_COST_MODEL_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "qsapi/keystore/keystore.h"

namespace qsapi::server {

// The kind of work a route does per item.
enum class WorkKind : std::uint8_t {
  kMetadata,  // read or change key metadata (one store transaction)
  kKeygen,    // a new key or version: key generation and a wrap in the token
  kEncrypt,   // AEAD seal under the key
  kDecrypt,   // AEAD open
  kRewrap,    // open, then seal under the current version
  kDatakey,   // a fresh 256-bit key sealed under the key
  kSign,
  kVerify,
  kEncapsulate,
  kDecapsulate,
  kHpkeSeal,  // encapsulate + AEAD
  kHpkeOpen,  // decapsulate + AEAD
  kRandom,
  kSession,       // seal / open / read a peer session
  kSessionSetup,  // a new session, a rotation with fresh QKD keys or a re-establishment
};

// ItemCost is the cost of one item of `kind` on a key of `type` (ignored for kinds that use no
// key) with `bytes` of input.
double ItemCost(WorkKind kind, const keystore::KeyType& type, std::size_t bytes);

// CostText says a cost as a person reads it ("240 ms").
std::string CostText(double cost);

}  // namespace qsapi::server

#endif  // QSAPI_SRC_SERVER_COST_MODEL_H_
