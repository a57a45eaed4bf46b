#include "crypto/internal/ecc.h"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

namespace qsapi::crypto::internal {
namespace {

Result<EvpPkeyPtr> RawPrivate(int type, ByteView key, const char* what) {
  if (key.size() != 32) return InvalidArgument(std::string(what) + " private key must be 32 bytes");
  EVP_PKEY* p = EVP_PKEY_new_raw_private_key_ex(nullptr, type == EVP_PKEY_X25519 ? "X25519" : "ED25519", nullptr,
                                                key.data(), key.size());
  if (p == nullptr) return OpenSslError(std::string("cannot import an ") + what + " private key");
  return EvpPkeyPtr(p);
}

Result<Bytes> RawPublic(const EVP_PKEY* key) {
  Bytes out(32);
  std::size_t len = out.size();
  if (EVP_PKEY_get_raw_public_key(key, out.data(), &len) != 1 || len != out.size()) {
    return OpenSslError("cannot read a raw public key");
  }
  return out;
}

}  // namespace

Result<SecretBytes> PkeyDerive(const EVP_PKEY* key, const EVP_PKEY* peer, std::size_t size) {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, const_cast<EVP_PKEY*>(key), nullptr));  // NOLINT
  if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1) return OpenSslError("key agreement init");
  if (EVP_PKEY_derive_set_peer_ex(ctx.get(), const_cast<EVP_PKEY*>(peer), 1) != 1) {  // NOLINT
    ClearOpenSslErrors();
    return InvalidArgument("the peer's public key is not valid for key agreement");
  }
  SecretBytes out(size);
  std::size_t len = out.size();
  if (EVP_PKEY_derive(ctx.get(), out.data(), &len) != 1 || len != out.size()) {
    ClearOpenSslErrors();
    return InvalidArgument("key agreement failed (low-order or invalid peer key)");
  }
  return out;
}

Result<EvpPkeyPtr> X25519PrivateKey(ByteView private_key) { return RawPrivate(EVP_PKEY_X25519, private_key, "X25519"); }

Result<EvpPkeyPtr> X25519PublicKey(ByteView public_key) {
  if (public_key.size() != kX25519KeySize) return InvalidArgument("X25519 public key must be 32 bytes");
  EvpPkeyPtr key(EVP_PKEY_new_raw_public_key_ex(nullptr, "X25519", nullptr, public_key.data(), public_key.size()));
  if (!key) return OpenSslError("cannot import an X25519 public key");
  return key;
}

Result<Bytes> X25519PublicBytes(const EVP_PKEY* key) { return RawPublic(key); }

Result<SecretBytes> X25519(ByteView private_key, ByteView peer_public_key) {
  if (peer_public_key.size() != kX25519KeySize) return InvalidArgument("X25519 public key must be 32 bytes");
  QSAPI_ASSIGN_OR_RETURN(EvpPkeyPtr key, RawPrivate(EVP_PKEY_X25519, private_key, "X25519"));
  EvpPkeyPtr peer(
      EVP_PKEY_new_raw_public_key_ex(nullptr, "X25519", nullptr, peer_public_key.data(), peer_public_key.size()));
  if (!peer) return OpenSslError("cannot import an X25519 public key");
  return PkeyDerive(key.get(), peer.get(), kX25519KeySize);
}

Result<Bytes> Ed25519PublicFromPrivate(ByteView private_key) {
  QSAPI_ASSIGN_OR_RETURN(EvpPkeyPtr key, RawPrivate(EVP_PKEY_ED25519, private_key, "Ed25519"));
  return RawPublic(key.get());
}

Result<Bytes> Ed25519Sign(ByteView private_key, ByteView message) {
  QSAPI_ASSIGN_OR_RETURN(EvpPkeyPtr key, RawPrivate(EVP_PKEY_ED25519, private_key, "Ed25519"));
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  Bytes sig(64);
  std::size_t len = sig.size();
  if (!ctx || EVP_DigestSignInit_ex(ctx.get(), nullptr, nullptr, nullptr, nullptr, key.get(), nullptr) != 1 ||
      EVP_DigestSign(ctx.get(), sig.data(), &len, NonNull(message), message.size()) != 1 || len != sig.size()) {
    return OpenSslError("Ed25519 signing failed");
  }
  return sig;
}

Status Ed25519Verify(ByteView public_key, ByteView message, ByteView signature) {
  if (public_key.size() != 32 || signature.size() != 64) return AuthenticationFailed();
  EvpPkeyPtr key(EVP_PKEY_new_raw_public_key_ex(nullptr, "ED25519", nullptr, public_key.data(), public_key.size()));
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  if (!key || !ctx || EVP_DigestVerifyInit_ex(ctx.get(), nullptr, nullptr, nullptr, nullptr, key.get(), nullptr) != 1 ||
      EVP_DigestVerify(ctx.get(), signature.data(), signature.size(), NonNull(message), message.size()) != 1) {
    ClearOpenSslErrors();
    return AuthenticationFailed();
  }
  return OkStatus();
}

Result<EvpPkeyPtr> P384PrivateFromScalar(ByteView scalar) {
  if (scalar.size() != kP384ScalarSize) return InvalidArgument("P-384 scalar must be 48 bytes");
  BIGNUM* d = BN_secure_new();
  if (d == nullptr || BN_bin2bn(scalar.data(), static_cast<int>(scalar.size()), d) == nullptr) {
    BN_clear_free(d);
    return OpenSslError("P-384 scalar");
  }
  std::unique_ptr<BIGNUM, Deleter<BN_clear_free>> d_owner(d);
  // Compute the public point d*G so the key pair is complete.
  std::unique_ptr<EC_GROUP, Deleter<EC_GROUP_free>> group(EC_GROUP_new_by_curve_name(NID_secp384r1));
  if (!group) return OpenSslError("P-384 group");
  if (BN_is_zero(d) != 0 || BN_cmp(d, EC_GROUP_get0_order(group.get())) >= 0) {
    return InvalidArgument("P-384 scalar out of range");
  }
  std::unique_ptr<EC_POINT, Deleter<EC_POINT_free>> q(EC_POINT_new(group.get()));
  std::array<std::uint8_t, kP384PointSize> point{};
  if (!q || EC_POINT_mul(group.get(), q.get(), d, nullptr, nullptr, nullptr) != 1 ||
      EC_POINT_point2oct(group.get(), q.get(), POINT_CONVERSION_UNCOMPRESSED, point.data(), point.size(), nullptr) !=
          point.size()) {
    return OpenSslError("P-384 public point");
  }
  // OSSL_PKEY_PARAM_PRIV_KEY takes the scalar as a native-endian BIGNUM parameter.
  std::array<std::uint8_t, kP384ScalarSize> native{};
  if (BN_bn2nativepad(d, native.data(), static_cast<int>(native.size())) < 0) return OpenSslError("P-384 scalar");
  char group_name[] = "P-384";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group_name, 0),
      OSSL_PARAM_construct_BN(OSSL_PKEY_PARAM_PRIV_KEY, native.data(), native.size()),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()),
      OSSL_PARAM_construct_end(),
  };
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY* raw = nullptr;
  const bool ok = ctx && EVP_PKEY_fromdata_init(ctx.get()) == 1 &&
                  EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_KEYPAIR, params) == 1 && raw != nullptr;
  SecureZero(native.data(), native.size());
  if (!ok) return OpenSslError("cannot import a P-384 private key");
  return EvpPkeyPtr(raw);
}

Result<EvpPkeyPtr> P384PublicFromPoint(ByteView point) {
  if (point.size() != kP384PointSize || point[0] != 0x04) {
    return InvalidArgument("P-384 public key must be an uncompressed point (97 bytes, 0x04 || X || Y)");
  }
  char group_name[] = "P-384";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group_name, 0),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, const_cast<std::uint8_t*>(point.data()),  // NOLINT
                                        point.size()),
      OSSL_PARAM_construct_end(),
  };
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY* raw = nullptr;
  if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params) != 1 || raw == nullptr) {
    ClearOpenSslErrors();
    return InvalidArgument("not a valid P-384 point");
  }
  EvpPkeyPtr key(raw);
  // fromdata decodes the point; make sure it is on the curve (SP 800-56A 5.6.2.3.3 partial check).
  EvpPkeyCtxPtr check(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
  if (!check || EVP_PKEY_public_check(check.get()) != 1) {
    ClearOpenSslErrors();
    return InvalidArgument("P-384 point is not on the curve");
  }
  return key;
}

Result<Bytes> P384PublicPoint(const EVP_PKEY* key) {
  Bytes out(kP384PointSize);
  std::size_t len = 0;
  if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, out.data(), out.size(), &len) != 1 ||
      len != out.size()) {
    return OpenSslError("cannot encode a P-384 point");
  }
  return out;
}

}  // namespace qsapi::crypto::internal
