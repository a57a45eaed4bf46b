// Handlers of the cryptographic routes: encrypt, decrypt, rewrap, datakey, sign, verify, KEM,
// sealed messages and random bytes. Plaintexts are decoded into SecretBytes, so every path wipes
// them.
#include "qsapi/crypto/random.h"
#include "qsapi/hpke/container.h"
#include "qsapi/hpke/keystore_recipient.h"
#include "server/internal/api_internal.h"
#include "server/internal/request_parsing.h"

namespace qsapi::server::internal {
namespace {

json Versioned(std::string_view field, ByteView blob) {
  return json{{std::string(field), keystore::ToText(blob)}, {"version", keystore::ParseHeader(blob)->version}};
}

}  // namespace

Outcome HandleEncrypt(Request& r) {
  Outcome out;
  keystore::Keystore& ks = r.api.parts().keystore;
  out.result = r.Batch([&](const json& item) -> Result<json> {
    QSAPI_ASSIGN_OR_RETURN(SecretBytes pt, SecretField(item, "plaintext", true));
    QSAPI_ASSIGN_OR_RETURN(Bytes ad, BytesField(item, "associated_data", false));
    QSAPI_ASSIGN_OR_RETURN(Bytes ct, ks.Encrypt(r.name, pt.view(), ad));
    return Versioned("ciphertext", ct);
  });
  return out;
}

Outcome HandleDecrypt(Request& r) {
  Outcome out;
  keystore::Keystore& ks = r.api.parts().keystore;
  out.result = r.Batch([&](const json& item) -> Result<json> {
    QSAPI_ASSIGN_OR_RETURN(std::string text, StringField(item, "ciphertext", true, std::size_t{96} << 20));
    QSAPI_ASSIGN_OR_RETURN(Bytes ad, BytesField(item, "associated_data", false));
    QSAPI_ASSIGN_OR_RETURN(Bytes ct, keystore::FromText(text));
    QSAPI_ASSIGN_OR_RETURN(SecretBytes pt, ks.DecryptSecret(r.name, ct, ad));
    return json{{"plaintext", B64(pt.view())}, {"version", keystore::ParseHeader(ct)->version}};
  });
  return out;
}

Outcome HandleRewrap(Request& r) {
  Outcome out;
  keystore::Keystore& ks = r.api.parts().keystore;
  out.result = r.Batch([&](const json& item) -> Result<json> {
    QSAPI_ASSIGN_OR_RETURN(std::string text, StringField(item, "ciphertext", true, std::size_t{96} << 20));
    QSAPI_ASSIGN_OR_RETURN(Bytes ad, BytesField(item, "associated_data", false));
    QSAPI_ASSIGN_OR_RETURN(Bytes ct, keystore::FromText(text));
    QSAPI_ASSIGN_OR_RETURN(SecretBytes pt, ks.DecryptSecret(r.name, ct, ad));
    QSAPI_ASSIGN_OR_RETURN(Bytes fresh, ks.Encrypt(r.name, pt.view(), ad));
    return Versioned("ciphertext", fresh);
  });
  return out;
}

Outcome HandleDatakey(Request& r) {
  Outcome out;
  out.result = [&]() -> Result<json> {
    bool with_plaintext = true;
    if (r.body.contains("plaintext")) {
      if (!r.body["plaintext"].is_boolean()) return InvalidArgument("field \"plaintext\" must be true or false");
      with_plaintext = r.body["plaintext"].get<bool>();
    }
    QSAPI_ASSIGN_OR_RETURN(SecretBytes key, crypto::RandomSecret(32));
    QSAPI_ASSIGN_OR_RETURN(Bytes wrapped, r.api.parts().keystore.Encrypt(r.name, key.view(), {}));
    json answer = {{"ciphertext", keystore::ToText(wrapped)}, {"bits", 256}};
    if (with_plaintext) answer["plaintext"] = B64(key.view());
    return answer;
  }();
  return out;
}

Outcome HandleSign(Request& r) {
  Outcome out;
  keystore::Keystore& ks = r.api.parts().keystore;
  out.result = r.Batch([&](const json& item) -> Result<json> {
    QSAPI_ASSIGN_OR_RETURN(Bytes msg, BytesField(item, "message", true));
    QSAPI_ASSIGN_OR_RETURN(Bytes sig, ks.Sign(r.name, msg));
    return Versioned("signature", sig);
  });
  return out;
}

Outcome HandleVerify(Request& r) {
  Outcome out;
  keystore::Keystore& ks = r.api.parts().keystore;
  out.result = r.Batch([&](const json& item) -> Result<json> {
    QSAPI_ASSIGN_OR_RETURN(Bytes msg, BytesField(item, "message", true));
    QSAPI_ASSIGN_OR_RETURN(std::string text, StringField(item, "signature", true, 1 << 20));
    QSAPI_ASSIGN_OR_RETURN(Bytes sig, keystore::FromText(text));
    const Status s = ks.VerifySignature(r.name, msg, sig);
    if (!s.ok() && s.error().code() != ErrorCode::kAuthenticationFailed) return s.error();
    return json{{"valid", s.ok()}};
  });
  return out;
}

Outcome HandleEncapsulate(Request& r) {
  Outcome out;
  out.version = r.query_version;
  keystore::Keystore& ks = r.api.parts().keystore;
  out.result = [&]() -> Result<json> {
    QSAPI_ASSIGN_OR_RETURN(crypto::KemPublicKey pub, ks.KemPublicKey(r.name, r.query_version));
    QSAPI_ASSIGN_OR_RETURN(crypto::KemEncapsulation enc, pub.Encapsulate());
    QSAPI_ASSIGN_OR_RETURN(keystore::KeyInfo info, ks.Get(r.name));
    return json{{"ciphertext", B64(enc.ciphertext.view())},
                {"shared_secret", B64(enc.shared_secret.view())},
                {"version", r.query_version == 0 ? info.current_version : r.query_version}};
  }();
  return out;
}

Outcome HandleDecapsulate(Request& r) {
  Outcome out;
  out.version = r.query_version;
  out.result = [&]() -> Result<json> {
    QSAPI_ASSIGN_OR_RETURN(Bytes ct, BytesField(r.body, "ciphertext", true));
    std::uint32_t version = r.query_version;
    if (r.body.contains("version")) {
      if (!r.body["version"].is_number_unsigned() || r.body["version"].get<std::uint64_t>() > 0xffffffffULL) {
        return InvalidArgument("field \"version\" must be a positive integer below 2^32");
      }
      version = r.body["version"].get<std::uint32_t>();
    }
    QSAPI_ASSIGN_OR_RETURN(SharedSecret ss, r.api.parts().keystore.Decapsulate(r.name, version, ct));
    return json{{"shared_secret", B64(ss.view())}};
  }();
  return out;
}

// HPKE to the key's current (or ?version=) public key.
Outcome HandleSeal(Request& r) {
  Outcome out;
  keystore::Keystore& ks = r.api.parts().keystore;
  out.result = [&]() -> Result<json> {
    QSAPI_ASSIGN_OR_RETURN(SecretBytes pt, SecretField(r.body, "plaintext", true));
    QSAPI_ASSIGN_OR_RETURN(Bytes aad, BytesField(r.body, "associated_data", false));
    QSAPI_ASSIGN_OR_RETURN(keystore::KeyInfo info, ks.Get(r.name));
    out.version = r.query_version == 0 ? info.current_version : r.query_version;
    QSAPI_ASSIGN_OR_RETURN(crypto::KemPublicKey pk, ks.KemPublicKey(r.name, out.version));
    hpke::SealOptions o;
    QSAPI_ASSIGN_OR_RETURN(o.suite, hpke::DefaultSuiteFor(pk.algorithm()));
    o.aad = aad;
    QSAPI_ASSIGN_OR_RETURN(Bytes sealed,
                           hpke::SealMessage(pk, hpke::KeystoreHpkeKeyId(info.id, out.version), pt.view(), o));
    return json{{"sealed", B64(sealed)}, {"version", out.version}};
  }();
  return out;
}

// The version comes from the message's recipient key id.
Outcome HandleOpen(Request& r) {
  Outcome out;
  out.result = [&]() -> Result<json> {
    QSAPI_ASSIGN_OR_RETURN(Bytes sealed, BytesField(r.body, "sealed", true));
    QSAPI_ASSIGN_OR_RETURN(Bytes aad, BytesField(r.body, "associated_data", false));
    QSAPI_ASSIGN_OR_RETURN(hpke::ParsedHeader header, hpke::ParseHeader(sealed));
    QSAPI_ASSIGN_OR_RETURN(std::unique_ptr<hpke::RecipientKey> key,
                           hpke::LoadKeystoreRecipient(r.api.parts().keystore, r.name, header.header.key_id));
    hpke::OpenOptions o;
    o.aad = aad;
    QSAPI_ASSIGN_OR_RETURN(Bytes pt, hpke::OpenMessage(sealed, *key, o));
    const WipeOnExit wipe(pt);
    return json{{"plaintext", B64(pt)}};
  }();
  return out;
}

Outcome HandleRandom(Request& r) {
  Outcome out;
  const ApiOptions& options = r.api.parts().options;
  entropy::EntropyPool& pool = r.api.parts().pool;
  out.result = [&]() -> Result<json> {
    std::size_t n = 32;
    if (r.body.contains("bytes")) {
      if (!r.body["bytes"].is_number_unsigned() || r.body["bytes"].get<std::uint64_t>() == 0 ||
          r.body["bytes"].get<std::uint64_t>() > options.max_random_bytes) {
        return InvalidArgument("field \"bytes\" must be an integer 1.." + std::to_string(options.max_random_bytes));
      }
      n = r.body["bytes"].get<std::size_t>();
    }
    QSAPI_ASSIGN_OR_RETURN(std::string source, StringField(r.body, "source", false, 64));
    if (source.empty() || source == "pool") {
      QSAPI_ASSIGN_OR_RETURN(entropy::PoolDraw draw, pool.Draw(n));
      json sources = json::array({"os"});
      for (const auto& q : draw.qrng_sources) sources.push_back(q);
      return json{{"random", B64(draw.bytes.view())}, {"sources", sources}, {"conditioned", true}};
    }
    QSAPI_ASSIGN_OR_RETURN(SecretBytes raw, pool.SampleSource(source, n));
    return json{{"random", B64(raw.view())}, {"sources", json::array({source})}, {"conditioned", false}};
  }();
  return out;
}

}  // namespace qsapi::server::internal
