// Fuzzes the sealed-message container (qsapi/hpke/container.h, stream.h): the header parser, the
// streaming header reader, and opening either body format with a fixed key of the header's KEM;
// and the public-key file parser (qsapi/hpke/public_key_file.h) on the same bytes.
// Invariants checked: no crash or sanitizer report; ParseHeader and ReadHeader agree, and a parsed
// header re-encodes to exactly the bytes it came from; an open that fails is AuthenticationFailed()
// unless the header itself was refused (kInvalidArgument) or names a PSK the fuzzer lacks
// (kFailedPrecondition); an open never releases more plaintext than the input could carry.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>
#include <string_view>

#include "fuzz_support.h"
#include "qsapi/hpke/container.h"
#include "qsapi/hpke/public_key_file.h"
#include "qsapi/hpke/stream.h"

namespace {

using namespace qsapi;        // NOLINT(google-build-using-namespace): a fuzz target's local scope
using namespace qsapi::hpke;  // NOLINT(google-build-using-namespace)

using qsapi::fuzz::Check;

// FuzzKey is a fixed private key (seed 0x11...) that answers to whatever key id the header names,
// so that the fuzzer reaches the key schedule and the body.
class FuzzKey final : public RecipientKey {
 public:
  FuzzKey(const crypto::KemPrivateKey& key, ByteView key_id) : key_(key), key_id_(key_id) {}
  crypto::KemAlgorithm algorithm() const noexcept override { return key_.algorithm(); }
  ByteView key_id() const noexcept override { return key_id_; }
  Result<SharedSecret> Decapsulate(ByteView enc) const override { return key_.Decapsulate(enc); }

 private:
  const crypto::KemPrivateKey& key_;
  ByteView key_id_;
};

const crypto::KemPrivateKey& FixedKey(KemId kem) {
  static const auto* keys = [] {
    auto* v = new std::vector<std::pair<KemId, crypto::KemPrivateKey>>();
    for (KemId k : {KemId::kXWing, KemId::kMlKem768, KemId::kMlKem1024, KemId::kMlKem1024P384}) {
      const crypto::KemAlgorithm a = KemAlgorithmFor(k);
      v->emplace_back(k, crypto::KemPrivateKey::FromSeed(a, Bytes(crypto::GetKemSizes(a).seed, 0x11)).value());
    }
    return v;
  }();
  for (const auto& [id, key] : *keys) {
    if (id == kem) return key;
  }
  std::abort();
}

const Psk& FixedPsk(ByteView id) {
  static std::unique_ptr<Psk> psk;
  psk = std::make_unique<Psk>(Psk::Create(SecretBytes(32), id).value());
  return *psk;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const ByteView input(data, size);
  static_cast<void>(ParsePublicKeyFile(std::string_view(reinterpret_cast<const char*>(data), size)));  // NOLINT

  const Result<ParsedHeader> parsed = ParseHeader(input);
  MemorySource header_source(input);
  const Result<ParsedHeader> read = ReadHeader(header_source);
  Check(parsed.ok() == read.ok());
  if (!parsed.ok()) return 0;
  Check(parsed->size == read->size && parsed->size <= kMaxHeaderSize);
  const Result<Bytes> reencoded = SerializeHeader(parsed->header);
  Check(reencoded.ok() && reencoded->size() == parsed->size &&
        std::equal(reencoded->begin(), reencoded->end(), input.begin()));

  const ContainerHeader& header = parsed->header;
  const FuzzKey key(FixedKey(header.suite.kem), header.key_id);
  OpenOptions options;
  if (header.mode == Mode::kPsk) options.psk = &FixedPsk(header.psk_id);
  MemorySource source(input);
  MemorySink sink;
  const Status s = OpenAny(source, key, sink, options);
  Check(sink.bytes().size() <= size);
  if (!s.ok()) {
    const ErrorCode code = s.error().code();
    Check(s.error() == AuthenticationFailed() || code == ErrorCode::kFailedPrecondition ||
          code == ErrorCode::kInvalidArgument);
  }
  return 0;
}
