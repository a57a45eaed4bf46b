// PLACEHOLDER (replaced before commit)
#include "crypto/internal/signature_impl.h"
namespace qsapi::crypto::internal {
Result<SigningKeyPair> CompositeSigningFromSeed(ByteView) { return Unimplemented("composite"); }
Result<std::shared_ptr<const VerifyingImpl>> CompositeVerifyingFromBytes(ByteView) { return Unimplemented("composite"); }
}
