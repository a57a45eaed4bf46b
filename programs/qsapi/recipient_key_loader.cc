#include "recipient_key_loader.h"

namespace qsapi::cli {
namespace {

// Owning: keeps the keystore open while the key is in use.
class OwningRecipientKey final : public hpke::RecipientKey {
 public:
  OwningRecipientKey(std::shared_ptr<keystore::Keystore> ks, std::unique_ptr<hpke::RecipientKey> inner)
      : ks_(std::move(ks)), inner_(std::move(inner)) {}
  [[nodiscard]] crypto::KemAlgorithm algorithm() const noexcept override { return inner_->algorithm(); }
  [[nodiscard]] ByteView key_id() const noexcept override { return inner_->key_id(); }
  [[nodiscard]] Result<SharedSecret> Decapsulate(ByteView enc) const override { return inner_->Decapsulate(enc); }

 private:
  std::shared_ptr<keystore::Keystore> ks_;
  std::unique_ptr<hpke::RecipientKey> inner_;
};

}  // namespace

Result<std::unique_ptr<hpke::RecipientKey>> LoadRecipientKey(std::shared_ptr<keystore::Keystore> ks,
                                                             std::string_view name, ByteView header_key_id) {
  QSAPI_ASSIGN_OR_RETURN(std::unique_ptr<hpke::RecipientKey> inner,
                         hpke::LoadKeystoreRecipient(*ks, name, header_key_id));
  return std::unique_ptr<hpke::RecipientKey>(std::make_unique<OwningRecipientKey>(std::move(ks), std::move(inner)));
}

}  // namespace qsapi::cli
