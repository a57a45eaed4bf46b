// PLACEHOLDER (replaced before commit)
#include "crypto/internal/kem_impl.h"
namespace qsapi::crypto::internal {
Result<KemKeyPair> MlKem1024P384FromSeed(ByteView) { return Unimplemented("p384"); }
Result<std::shared_ptr<const KemPublicImpl>> MlKem1024P384PublicFromBytes(ByteView) { return Unimplemented("p384"); }
}
