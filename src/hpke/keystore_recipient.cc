#include "qsapi/hpke/keystore_recipient.h"

#include <algorithm>
#include <optional>
#include <string>

namespace qsapi::hpke {
namespace {

class KeystoreRecipientKey final : public RecipientKey {
 public:
  KeystoreRecipientKey(keystore::Keystore& ks, std::string name, std::uint32_t version, crypto::KemAlgorithm algorithm,
                       Bytes key_id)
      : ks_(ks), name_(std::move(name)), version_(version), algorithm_(algorithm), key_id_(std::move(key_id)) {}
  [[nodiscard]] crypto::KemAlgorithm algorithm() const noexcept override { return algorithm_; }
  [[nodiscard]] ByteView key_id() const noexcept override { return key_id_; }
  [[nodiscard]] Result<SharedSecret> Decapsulate(ByteView enc) const override {
    return ks_.Decapsulate(name_, version_, enc);
  }

 private:
  keystore::Keystore& ks_;
  std::string name_;
  std::uint32_t version_;
  crypto::KemAlgorithm algorithm_;
  Bytes key_id_;
};

}  // namespace

Bytes KeystoreHpkeKeyId(const keystore::KeyId& id, std::uint32_t version) {
  Bytes out(id.begin(), id.end());
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<std::uint8_t>(version >> s));
  return out;
}

Result<std::unique_ptr<RecipientKey>> LoadKeystoreRecipient(keystore::Keystore& keystore, std::string_view name,
                                                            ByteView header_key_id) {
  QSAPI_ASSIGN_OR_RETURN(keystore::KeyInfo info, keystore.Get(name));
  const std::optional<crypto::KemAlgorithm> kem = info.type.kem();
  if (!kem) {
    return FailedPrecondition("key \"" + info.name + "\" is a " + keystore::KeyTypeName(info.type) +
                              " key; opening sealed messages needs a KEM key");
  }
  if (header_key_id.size() != info.id.size() + 4 ||
      !std::equal(info.id.begin(), info.id.end(), header_key_id.begin())) {
    return InvalidArgument("the message is not sealed to key \"" + info.name + "\" (its recipient key id differs)");
  }
  const std::uint32_t version = (std::uint32_t{header_key_id[16]} << 24) | (std::uint32_t{header_key_id[17]} << 16) |
                                (std::uint32_t{header_key_id[18]} << 8) | std::uint32_t{header_key_id[19]};
  return std::unique_ptr<RecipientKey>(std::make_unique<KeystoreRecipientKey>(
      keystore, info.name, version, *kem, Bytes(header_key_id.begin(), header_key_id.end())));
}

}  // namespace qsapi::hpke
