// Fuzzes every entry point of the crypto layer that takes bytes from outside: public-key imports
// (KEM and signature), decapsulation, signature verification and AEAD decryption.
// The first input byte selects the algorithm and operation; the rest is the untrusted input.
// Invariants checked: no crash or sanitizer report; a verify or decrypt of fuzzed input never
// succeeds with a wrong key, and a failure is always AuthenticationFailed().
#include <cstdint>
#include <cstdlib>
#include <span>

#include "fuzz_support.h"
#include "qsapi/crypto/aead.h"
#include "qsapi/crypto/kem.h"
#include "qsapi/crypto/signature.h"

namespace {

using namespace qsapi;          // NOLINT(google-build-using-namespace): a fuzz target's local scope
using namespace qsapi::crypto;  // NOLINT(google-build-using-namespace)

constexpr KemAlgorithm kKems[] = {KemAlgorithm::kMlKem512, KemAlgorithm::kMlKem768, KemAlgorithm::kMlKem1024,
                                  KemAlgorithm::kXWing, KemAlgorithm::kMlKem1024P384};
constexpr SignatureAlgorithm kSigs[] = {SignatureAlgorithm::kMlDsa44, SignatureAlgorithm::kMlDsa65,
                                        SignatureAlgorithm::kMlDsa87, SignatureAlgorithm::kSlhDsaSha2_128f,
                                        SignatureAlgorithm::kMlDsa65Ed25519};

using qsapi::fuzz::Check;

// Fixed keys, derived from constant seeds once.
const KemPrivateKey& FixedKem(KemAlgorithm a) {
  static const auto* keys = [] {
    auto* v = new std::vector<KemPrivateKey>();
    for (KemAlgorithm k : kKems) {
      v->push_back(KemPrivateKey::FromSeed(k, Bytes(GetKemSizes(k).seed, 0x11)).value());
    }
    return v;
  }();
  for (std::size_t i = 0; i < std::size(kKems); ++i) {
    if (kKems[i] == a) return (*keys)[i];
  }
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t selector = data[0];
  const ByteView input(data + 1, size - 1);  // NOLINT(cppcoreguidelines-pro-bounds-pointer-arithmetic)
  switch (selector % 4) {
    case 0: {  // KEM public-key import, then encapsulation to it
      const KemAlgorithm a = kKems[(selector / 4) % std::size(kKems)];
      Result<KemPublicKey> pub = KemPublicKey::FromBytes(a, input);
      if (pub.ok()) {
        Check(pub->bytes().size() == GetKemSizes(a).public_key);
        (void)pub->Encapsulate();
      } else {
        Check(pub.error().code() == ErrorCode::kInvalidArgument);
      }
      break;
    }
    case 1: {  // decapsulation of untrusted ciphertext
      const KemAlgorithm a = kKems[(selector / 4) % std::size(kKems)];
      Result<SharedSecret> ss = FixedKem(a).Decapsulate(input);
      if (!ss.ok()) Check(ss.error() == AuthenticationFailed());
      if (input.size() != GetKemSizes(a).ciphertext) Check(!ss.ok());
      break;
    }
    case 2: {  // signature public-key import and verification of an untrusted signature
      const SignatureAlgorithm a = kSigs[(selector / 4) % std::size(kSigs)];
      const std::size_t pk_len = GetSignatureSizes(a).public_key;
      if (input.size() < pk_len) {
        Check(!VerifyingKey::FromBytes(a, input).ok());
        break;
      }
      Result<VerifyingKey> pub = VerifyingKey::FromBytes(a, input.first(pk_len));
      if (!pub.ok()) break;
      const ByteView rest = input.subspan(pk_len);
      const Status s = pub->Verify(rest.first(rest.size() / 2), rest.subspan(rest.size() / 2));
      if (!s.ok()) Check(s.error() == AuthenticationFailed());
      break;
    }
    default: {  // AEAD decryption of untrusted ciphertext under a fixed key: must never succeed
      const AeadAlgorithm a = (selector / 4) % 2 == 0 ? AeadAlgorithm::kAes256Gcm : AeadAlgorithm::kXChaCha20Poly1305;
      static const Aead gcm = Aead::New(AeadAlgorithm::kAes256Gcm, SymmetricKey(SecretBytes(32))).value();
      static const Aead xchacha = Aead::New(AeadAlgorithm::kXChaCha20Poly1305, SymmetricKey(SecretBytes(32))).value();
      const Result<Bytes> pt = (a == AeadAlgorithm::kAes256Gcm ? gcm : xchacha).Decrypt(input, {});
      Check(!pt.ok() && pt.error() == AuthenticationFailed());
      break;
    }
  }
  return 0;
}
