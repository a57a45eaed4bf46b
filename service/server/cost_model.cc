#include "server/cost_model.h"

#include <cmath>

namespace qsapi::server {
namespace {

using crypto::KemAlgorithm;
using crypto::SignatureAlgorithm;

// Per-operation figures in microseconds, from `openssl speed` (OpenSSL 3.5.7) on the reference
// machine, rounded up (docs/OPERATIONS.md, "Work limits").
struct SigCost {
  double keygen, sign, verify;
};
SigCost SignatureCost(SignatureAlgorithm a) {
  switch (a) {
    case SignatureAlgorithm::kMlDsa44: return {100, 600, 130};
    case SignatureAlgorithm::kMlDsa65: return {200, 1000, 180};
    case SignatureAlgorithm::kMlDsa87: return {270, 1300, 270};
    case SignatureAlgorithm::kMlDsa65Ed25519: return {260, 1100, 260};
    case SignatureAlgorithm::kSlhDsaSha2_128s: return {33000, 252000, 300};
    case SignatureAlgorithm::kSlhDsaSha2_128f: return {600, 12200, 800};
    case SignatureAlgorithm::kSlhDsaSha2_192s: return {49000, 508000, 450};
    case SignatureAlgorithm::kSlhDsaSha2_192f: return {800, 22000, 1200};
    case SignatureAlgorithm::kSlhDsaSha2_256s: return {33000, 478000, 700};
    case SignatureAlgorithm::kSlhDsaSha2_256f: return {2000, 44500, 1200};
    case SignatureAlgorithm::kSlhDsaShake_128s: return {99000, 744000, 750};
    case SignatureAlgorithm::kSlhDsaShake_128f: return {1600, 36000, 2200};
    case SignatureAlgorithm::kSlhDsaShake_192s: return {144000, 1285000, 1100};
    case SignatureAlgorithm::kSlhDsaShake_192f: return {2300, 57500, 3200};
    case SignatureAlgorithm::kSlhDsaShake_256s: return {95000, 1150000, 1600};
    case SignatureAlgorithm::kSlhDsaShake_256f: return {6000, 119000, 3200};
  }
  return {150000, 1300000, 3200};  // unknown: the most expensive
}

struct KemCost {
  double keygen, encaps, decaps;
};
KemCost KemCostOf(KemAlgorithm a) {
  switch (a) {
    case KemAlgorithm::kMlKem512: return {25, 15, 25};
    case KemAlgorithm::kMlKem768: return {35, 20, 30};
    case KemAlgorithm::kMlKem1024: return {50, 25, 40};
    case KemAlgorithm::kXWing: return {120, 140, 120};            // ML-KEM-768 + X25519
    case KemAlgorithm::kMlKem1024P384: return {1100, 1600, 900};  // ML-KEM-1024 + P-384
  }
  return {1100, 1600, 900};
}

constexpr double kTokenWrap = 150;       // one C_Encrypt / C_Decrypt of the KEK (SoftHSM2)
constexpr double kMetadata = 200;        // one store transaction
constexpr double kAeadBase = 5;          // an AEAD call on a cached key
constexpr double kPerKiB = 1;            // AES-GCM / XChaCha20-Poly1305, about 1 GB/s
constexpr double kSessionSetup = 20000;  // TLS handshake + ML-KEM + confirmation (+ QKD at the KME)

double Bulk(std::size_t bytes) { return kPerKiB * static_cast<double>(bytes) / 1024.0; }

// The algorithms a kind of work is priced with. A key of another kind (or none found: the caller
// passes the default type) makes the request fail later; it is priced as ML-DSA-65 / X-Wing.
SigCost SignatureCostOf(const keystore::KeyType& type) {
  return SignatureCost(type.signature().value_or(SignatureAlgorithm::kMlDsa65));
}
KemCost KemCostOf(const keystore::KeyType& type) { return KemCostOf(type.kem().value_or(KemAlgorithm::kXWing)); }

}  // namespace

double ItemCost(WorkKind kind, const keystore::KeyType& type, std::size_t bytes) {
  switch (kind) {
    case WorkKind::kMetadata: return kMetadata;
    case WorkKind::kKeygen:
      switch (type.purpose()) {
        case keystore::KeyPurpose::kEncrypt: return kMetadata + kTokenWrap;
        case keystore::KeyPurpose::kKem: return kMetadata + kTokenWrap + KemCostOf(type).keygen;
        case keystore::KeyPurpose::kSign: return kMetadata + kTokenWrap + SignatureCostOf(type).keygen;
      }
      return kMetadata + kTokenWrap + 150000;
    case WorkKind::kEncrypt:
    case WorkKind::kDecrypt: return kAeadBase + Bulk(bytes);
    case WorkKind::kRewrap: return 2 * (kAeadBase + Bulk(bytes));
    case WorkKind::kDatakey: return 2 * kAeadBase;
    case WorkKind::kSign: return SignatureCostOf(type).sign + Bulk(bytes);
    case WorkKind::kVerify: return SignatureCostOf(type).verify + Bulk(bytes);
    case WorkKind::kEncapsulate: return KemCostOf(type).encaps;
    case WorkKind::kDecapsulate: return KemCostOf(type).decaps;
    case WorkKind::kHpkeSeal: return KemCostOf(type).encaps + kAeadBase + Bulk(bytes);
    case WorkKind::kHpkeOpen: return KemCostOf(type).decaps + kAeadBase + Bulk(bytes);
    case WorkKind::kRandom: return 10 + 4 * Bulk(bytes);
    case WorkKind::kSession: return kAeadBase + Bulk(bytes);
    case WorkKind::kSessionSetup: return kSessionSetup;
  }
  return 1'000'000;
}

std::string CostText(double cost) {
  if (cost >= 1000.0) return std::to_string(static_cast<long long>(std::ceil(cost / 1000.0))) + " ms";
  return std::to_string(static_cast<long long>(std::ceil(cost))) + " us";
}

}  // namespace qsapi::server
