// qsapi_interop_tool: exposes qsapi's ML-KEM, hybrid KEMs (X-Wing, MLKEM1024-P384) and ML-DSA to an
// interoperability harness written in another language (tests/interop/noble_interop.test.mjs drives
// it against @noble/post-quantum).
//
// Protocol: one JSON object per line on stdin, one JSON object per line on stdout, in order. Every
// byte string is lowercase or uppercase hex. Each request may carry an "id", echoed in the reply.
//
//   {"op":"kem_keygen","alg":"ML-KEM-768","seed":<64-byte d||z>}
//       -> {"status":"ok","pk":..,"dk":<FIPS 203 decapsulation key from ExportExpanded>}
//   {"op":"kem_keygen","alg":"X-Wing" | "MLKEM1024-P384","seed":<32 bytes>}
//       -> {"status":"ok","pk":..,"dk":null}     (a hybrid private key is only its seed)
//   {"op":"kem_encaps","alg":..,"pk":..}                      -> {"status":"ok","ct":..,"ss":..}
//   {"op":"kem_decaps","alg":..,"seed":.. | "dk":..,"ct":..}  -> {"status":"ok","ss":..}
//       ("dk" is for ML-KEM only; a hybrid decapsulation that fails, e.g. on an off-curve P-384
//       point, is {"status":"error","error":"AUTHENTICATION_FAILED: .."})
//   {"op":"sig_keygen","alg":"ML-DSA-65","seed":<32 bytes>}   -> {"status":"ok","pk":..}
//   {"op":"sig_sign","alg":..,"seed":..,"msg":..,"ctx":..}    -> {"status":"ok","sig":..}  (hedged)
//   {"op":"sig_verify","alg":..,"pk":..,"msg":..,"sig":..,"ctx":..} -> {"status":"ok","verified":bool}
//
// A failure is {"status":"error","error":"CODE: message"}; the tool keeps serving. A verification
// that fails with AuthenticationFailed() is not an error: it is "verified":false. "ctx" may be
// omitted (empty context). Secret values are printed on purpose: this is a test tool.
//
// Usage: qsapi_interop_tool            (serve requests until end of input; exit status 0)
//        qsapi_interop_tool '<json>'   (answer one request given as the argument; exit status 1 on error)
#include <cstdint>
#include <exception>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "qsapi/crypto/kem.h"
#include "qsapi/crypto/signature.h"
#include "qsapi/result.h"
#include "qsapi/secret.h"

namespace {

using nlohmann::json;
using qsapi::Bytes;
using qsapi::ByteView;
using qsapi::ErrorCode;
using qsapi::Result;
namespace crypto = qsapi::crypto;

std::string ToHex(ByteView bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const std::uint8_t b : bytes) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0xf]);
  }
  return out;
}

Result<Bytes> FromHex(std::string_view field, std::string_view hex) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (hex.size() % 2 != 0) return qsapi::InvalidArgument(std::string(field) + ": odd-length hex");
  Bytes out;
  out.reserve(hex.size() / 2);
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    const int hi = nibble(hex[i]);
    const int lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return qsapi::InvalidArgument(std::string(field) + ": bad hex digit");
    out.push_back(static_cast<std::uint8_t>(hi * 16 + lo));
  }
  return out;
}

// HexField decodes request[name]; a missing field is an error unless `optional` (then empty).
Result<Bytes> HexField(const json& request, const char* name, bool optional = false) {
  const auto it = request.find(name);
  if (it == request.end()) {
    if (optional) return Bytes{};
    return qsapi::InvalidArgument(std::string("missing field \"") + name + "\"");
  }
  if (!it->is_string()) return qsapi::InvalidArgument(std::string("field \"") + name + "\" is not a string");
  return FromHex(name, it->get_ref<const std::string&>());
}

Result<std::string> StringField(const json& request, const char* name) {
  const auto it = request.find(name);
  if (it == request.end() || !it->is_string()) {
    return qsapi::InvalidArgument(std::string("missing string field \"") + name + "\"");
  }
  return it->get<std::string>();
}

Result<crypto::KemAlgorithm> KemAlg(const json& request) {
  QSAPI_ASSIGN_OR_RETURN(const std::string name, StringField(request, "alg"));
  return crypto::ParseKemAlgorithm(name);  // ML-KEM-512/768/1024, X-Wing, MLKEM1024-P384
}

// IsHybrid: X-Wing and MLKEM1024-P384 keep their private key as a seed only (no expanded form).
bool IsHybrid(crypto::KemAlgorithm alg) {
  return alg == crypto::KemAlgorithm::kXWing || alg == crypto::KemAlgorithm::kMlKem1024P384;
}

Result<crypto::SignatureAlgorithm> SigAlg(const json& request) {
  QSAPI_ASSIGN_OR_RETURN(const std::string name, StringField(request, "alg"));
  QSAPI_ASSIGN_OR_RETURN(const crypto::SignatureAlgorithm alg, crypto::ParseSignatureAlgorithm(name));
  if (alg != crypto::SignatureAlgorithm::kMlDsa44 && alg != crypto::SignatureAlgorithm::kMlDsa65 &&
      alg != crypto::SignatureAlgorithm::kMlDsa87) {
    return qsapi::InvalidArgument("not an ML-DSA algorithm: " + name);
  }
  return alg;
}

Result<json> KemKeygen(const json& request) {
  QSAPI_ASSIGN_OR_RETURN(const crypto::KemAlgorithm alg, KemAlg(request));
  QSAPI_ASSIGN_OR_RETURN(const Bytes seed, HexField(request, "seed"));
  QSAPI_ASSIGN_OR_RETURN(const crypto::KemPrivateKey key, crypto::KemPrivateKey::FromSeed(alg, seed));
  if (IsHybrid(alg)) return json{{"pk", ToHex(key.public_key().bytes())}, {"dk", nullptr}};
  QSAPI_ASSIGN_OR_RETURN(const qsapi::SecretBytes dk, key.ExportExpanded());
  return json{{"pk", ToHex(key.public_key().bytes())}, {"dk", ToHex(dk.view())}};
}

Result<json> KemEncaps(const json& request) {
  QSAPI_ASSIGN_OR_RETURN(const crypto::KemAlgorithm alg, KemAlg(request));
  QSAPI_ASSIGN_OR_RETURN(const Bytes pk_bytes, HexField(request, "pk"));
  QSAPI_ASSIGN_OR_RETURN(const crypto::KemPublicKey pk, crypto::KemPublicKey::FromBytes(alg, pk_bytes));
  QSAPI_ASSIGN_OR_RETURN(const crypto::KemEncapsulation enc, pk.Encapsulate());
  return json{{"ct", ToHex(enc.ciphertext.view())}, {"ss", ToHex(enc.shared_secret.view())}};
}

Result<json> KemDecaps(const json& request) {
  QSAPI_ASSIGN_OR_RETURN(const crypto::KemAlgorithm alg, KemAlg(request));
  QSAPI_ASSIGN_OR_RETURN(const Bytes ct, HexField(request, "ct"));
  const bool has_seed = request.contains("seed");
  if (has_seed == request.contains("dk")) return qsapi::InvalidArgument(R"(give exactly one of "seed" and "dk")");
  QSAPI_ASSIGN_OR_RETURN(const Bytes key_bytes, HexField(request, has_seed ? "seed" : "dk"));
  QSAPI_ASSIGN_OR_RETURN(const crypto::KemPrivateKey key,
                         has_seed ? crypto::KemPrivateKey::FromSeed(alg, key_bytes)
                                  : crypto::KemPrivateKey::FromExpandedBytes(alg, key_bytes));
  QSAPI_ASSIGN_OR_RETURN(const qsapi::SharedSecret ss, key.Decapsulate(ct));
  return json{{"ss", ToHex(ss.view())}};
}

Result<json> SigKeygen(const json& request) {
  QSAPI_ASSIGN_OR_RETURN(const crypto::SignatureAlgorithm alg, SigAlg(request));
  QSAPI_ASSIGN_OR_RETURN(const Bytes seed, HexField(request, "seed"));
  QSAPI_ASSIGN_OR_RETURN(const crypto::SigningKey key, crypto::SigningKey::FromSeed(alg, seed));
  return json{{"pk", ToHex(key.verifying_key().bytes())}};
}

Result<json> SigSign(const json& request) {
  QSAPI_ASSIGN_OR_RETURN(const crypto::SignatureAlgorithm alg, SigAlg(request));
  QSAPI_ASSIGN_OR_RETURN(const Bytes seed, HexField(request, "seed"));
  QSAPI_ASSIGN_OR_RETURN(const Bytes msg, HexField(request, "msg"));
  QSAPI_ASSIGN_OR_RETURN(const Bytes ctx, HexField(request, "ctx", /*optional=*/true));
  QSAPI_ASSIGN_OR_RETURN(const crypto::SigningKey key, crypto::SigningKey::FromSeed(alg, seed));
  QSAPI_ASSIGN_OR_RETURN(const qsapi::Signature sig, key.Sign(msg, ctx));
  return json{{"sig", ToHex(sig.view())}};
}

Result<json> SigVerify(const json& request) {
  QSAPI_ASSIGN_OR_RETURN(const crypto::SignatureAlgorithm alg, SigAlg(request));
  QSAPI_ASSIGN_OR_RETURN(const Bytes pk_bytes, HexField(request, "pk"));
  QSAPI_ASSIGN_OR_RETURN(const Bytes msg, HexField(request, "msg"));
  QSAPI_ASSIGN_OR_RETURN(const Bytes sig, HexField(request, "sig"));
  QSAPI_ASSIGN_OR_RETURN(const Bytes ctx, HexField(request, "ctx", /*optional=*/true));
  QSAPI_ASSIGN_OR_RETURN(const crypto::VerifyingKey pk, crypto::VerifyingKey::FromBytes(alg, pk_bytes));
  const qsapi::Status status = pk.Verify(msg, sig, ctx);
  if (!status.ok() && status.error().code() != ErrorCode::kAuthenticationFailed) return status.error();
  return json{{"verified", status.ok()}};
}

// Handle answers one request line; it never throws.
json Handle(std::string_view line) {
  const json request = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (request.is_discarded() || !request.is_object()) {
    return json{{"status", "error"}, {"error", "INVALID_ARGUMENT: request is not a JSON object"}};
  }
  std::optional<Result<json>> result;
  const auto op_it = request.find("op");
  const std::string op = op_it != request.end() && op_it->is_string() ? op_it->get<std::string>() : "";
  if (op == "kem_keygen") {
    result = KemKeygen(request);
  } else if (op == "kem_encaps") {
    result = KemEncaps(request);
  } else if (op == "kem_decaps") {
    result = KemDecaps(request);
  } else if (op == "sig_keygen") {
    result = SigKeygen(request);
  } else if (op == "sig_sign") {
    result = SigSign(request);
  } else if (op == "sig_verify") {
    result = SigVerify(request);
  } else {
    result = Result<json>(qsapi::InvalidArgument("unknown op \"" + op + "\""));
  }
  json reply;
  if (result->ok()) {
    reply = std::move(*result).value();
    reply["status"] = "ok";
  } else {
    reply = json{{"status", "error"}, {"error", result->error().ToString()}};
  }
  if (const auto id = request.find("id"); id != request.end()) reply["id"] = *id;
  return reply;
}

// Dump serialises a reply; invalid UTF-8 (which a reply should never hold) is replaced, not thrown.
std::string Dump(const json& reply) { return reply.dump(-1, ' ', false, json::error_handler_t::replace); }

int Main(int argc, char** argv) {
  if (argc == 2) {
    const json reply = Handle(argv[1]);
    std::cout << Dump(reply) << '\n';
    return reply.value("status", "") == "ok" ? 0 : 1;
  }
  if (argc != 1) {
    std::cerr << "usage: " << argv[0] << " [request-json]   (without an argument: JSON lines on stdin)\n";
    return 2;
  }
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::cout << Dump(Handle(line)) << '\n' << std::flush;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "qsapi_interop_tool: " << e.what() << '\n';
    return 1;
  }
}
