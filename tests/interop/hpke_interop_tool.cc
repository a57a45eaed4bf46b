// qsapi_hpke_interop_tool: exposes qsapi's HPKE (and the sealed-message container) to an
// interoperability harness in another language (tests/interop/hpke_interop.test.mjs drives it
// against hpke-js with @hpke/ml-kem and @hpke/hybridkem-x-wing).
//
// Protocol: one JSON object per line on stdin, one per line on stdout, in order. Byte strings are
// hex; suite ids are numbers (RFC 9180 registry values). "psk" and "psk_id" are optional (both or
// neither: PSK mode).
//
//   {"op":"keygen","kem":<id>,"seed":..}                     -> {"status":"ok","pk":..,"key_id":..}
//   {"op":"context_seal","kem":..,"kdf":..,"aead":..,"pk":..,"info":..,["psk":..,"psk_id":..,]
//    "messages":[{"pt":..,"aad":..},..],"exports":[{"ctx":..,"L":n},..]}
//       -> {"status":"ok","enc":..,"cts":[..],"exports":[..]}
//   {"op":"context_open","kem":..,"kdf":..,"aead":..,"seed":..,"enc":..,"info":..,[psk..,]
//    "messages":[{"ct":..,"aad":..},..],"exports":[..]}
//       -> {"status":"ok","pts":[..],"exports":[..]}
//   {"op":"container_seal","kem":..,"kdf":..,"aead":..,"pk":..,"key_id":..,"pt":..,
//    "chunk_size":n | absent for the single-shot format}    -> {"status":"ok","container":..}
//   {"op":"container_open","kem":..,"seed":..,"key_id":..,"container":..} -> {"status":"ok","pt":..}
//
// A failure is {"status":"error","error":"CODE: message"}; the tool keeps serving. Secret values
// are printed on purpose: this is a test tool.
#include <cstdint>
#include <exception>
#include <iostream>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "qsapi/hpke/container.h"
#include "qsapi/hpke/hpke.h"
#include "qsapi/hpke/stream.h"
#include "qsapi/result.h"
#include "qsapi/secret.h"

namespace {

using nlohmann::json;
using qsapi::Bytes;
using qsapi::ByteView;
using qsapi::Result;
namespace hpke = qsapi::hpke;

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

Result<Bytes> FromHex(std::string_view hex) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (hex.size() % 2 != 0) return qsapi::InvalidArgument("odd-length hex");
  Bytes out;
  out.reserve(hex.size() / 2);
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    const int hi = nibble(hex[i]);
    const int lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return qsapi::InvalidArgument("bad hex digit");
    out.push_back(static_cast<std::uint8_t>(hi * 16 + lo));
  }
  return out;
}

Result<Bytes> HexField(const json& j, const char* name, bool optional = false) {
  const auto it = j.find(name);
  if (it == j.end() || it->is_null()) {
    if (optional) return Bytes{};
    return qsapi::InvalidArgument(std::string("missing field \"") + name + "\"");
  }
  if (!it->is_string()) return qsapi::InvalidArgument(std::string("field \"") + name + "\" is not a string");
  return FromHex(it->get_ref<const std::string&>());
}

Result<hpke::Suite> SuiteOf(const json& j) {
  if (!j.contains("kem") || !j.contains("kdf") || !j.contains("aead")) {
    return qsapi::InvalidArgument("kem, kdf and aead ids are required");
  }
  return hpke::Suite::FromIds(j["kem"].get<std::uint16_t>(), j["kdf"].get<std::uint16_t>(),
                              j["aead"].get<std::uint16_t>());
}

Result<hpke::KemId> KemOf(const json& j) {
  QSAPI_ASSIGN_OR_RETURN(const hpke::Suite s, hpke::Suite::FromIds(j["kem"].get<std::uint16_t>(), 1, 3));
  return s.kem;
}

// PskOf returns an empty optional in base mode.
Result<std::optional<hpke::Psk>> PskOf(const json& j) {
  if (!j.contains("psk") && !j.contains("psk_id")) return std::optional<hpke::Psk>{};
  QSAPI_ASSIGN_OR_RETURN(const Bytes psk, HexField(j, "psk"));
  QSAPI_ASSIGN_OR_RETURN(const Bytes id, HexField(j, "psk_id"));
  QSAPI_ASSIGN_OR_RETURN(hpke::Psk p, hpke::Psk::Create(qsapi::SecretBytes::CopyFrom(psk), id));
  return std::optional<hpke::Psk>(std::move(p));
}

Result<std::unique_ptr<hpke::InMemoryRecipientKey>> RecipientOf(const json& j) {
  QSAPI_ASSIGN_OR_RETURN(const hpke::KemId kem, KemOf(j));
  QSAPI_ASSIGN_OR_RETURN(const Bytes seed, HexField(j, "seed"));
  QSAPI_ASSIGN_OR_RETURN(const Bytes key_id, HexField(j, "key_id", true));
  return hpke::InMemoryRecipientKey::FromSeed(hpke::KemAlgorithmFor(kem), qsapi::KemSeed::CopyFrom(seed), key_id);
}

Result<json> Exports(const hpke::Context& context, const json& request) {
  json out = json::array();
  for (const auto& e : request.value("exports", json::array())) {
    QSAPI_ASSIGN_OR_RETURN(const Bytes ctx, HexField(e, "ctx"));
    QSAPI_ASSIGN_OR_RETURN(const qsapi::SecretBytes secret, context.Export(ctx, e["L"].get<std::size_t>()));
    out.push_back(ToHex(secret.view()));
  }
  return out;
}

Result<json> Keygen(const json& j) {
  QSAPI_ASSIGN_OR_RETURN(auto key, RecipientOf(j));
  return json{{"pk", ToHex(key->public_key().bytes())}, {"key_id", ToHex(key->key_id())}};
}

Result<json> ContextSeal(const json& j) {
  QSAPI_ASSIGN_OR_RETURN(const hpke::Suite suite, SuiteOf(j));
  QSAPI_ASSIGN_OR_RETURN(const Bytes pk_bytes, HexField(j, "pk"));
  QSAPI_ASSIGN_OR_RETURN(const qsapi::crypto::KemPublicKey pk,
                         qsapi::crypto::KemPublicKey::FromBytes(hpke::KemAlgorithmFor(suite.kem), pk_bytes));
  QSAPI_ASSIGN_OR_RETURN(const Bytes info, HexField(j, "info", true));
  QSAPI_ASSIGN_OR_RETURN(const std::optional<hpke::Psk> psk, PskOf(j));
  QSAPI_ASSIGN_OR_RETURN(hpke::SenderSetup setup, hpke::SetupSender(suite, pk, info, psk ? &*psk : nullptr));
  json cts = json::array();
  for (const auto& m : j.value("messages", json::array())) {
    QSAPI_ASSIGN_OR_RETURN(const Bytes pt, HexField(m, "pt", true));
    QSAPI_ASSIGN_OR_RETURN(const Bytes aad, HexField(m, "aad", true));
    QSAPI_ASSIGN_OR_RETURN(const Bytes ct, setup.context.Seal(pt, aad));
    cts.push_back(ToHex(ct));
  }
  QSAPI_ASSIGN_OR_RETURN(json exports, Exports(setup.context, j));
  return json{{"enc", ToHex(setup.enc)}, {"cts", cts}, {"exports", exports}};
}

Result<json> ContextOpen(const json& j) {
  QSAPI_ASSIGN_OR_RETURN(const hpke::Suite suite, SuiteOf(j));
  QSAPI_ASSIGN_OR_RETURN(auto key, RecipientOf(j));
  QSAPI_ASSIGN_OR_RETURN(const Bytes enc, HexField(j, "enc"));
  QSAPI_ASSIGN_OR_RETURN(const Bytes info, HexField(j, "info", true));
  QSAPI_ASSIGN_OR_RETURN(const std::optional<hpke::Psk> psk, PskOf(j));
  QSAPI_ASSIGN_OR_RETURN(hpke::RecipientContext context,
                         hpke::SetupRecipient(suite, enc, *key, info, psk ? &*psk : nullptr));
  json pts = json::array();
  for (const auto& m : j.value("messages", json::array())) {
    QSAPI_ASSIGN_OR_RETURN(const Bytes ct, HexField(m, "ct"));
    QSAPI_ASSIGN_OR_RETURN(const Bytes aad, HexField(m, "aad", true));
    QSAPI_ASSIGN_OR_RETURN(const Bytes pt, context.Open(ct, aad));
    pts.push_back(ToHex(pt));
  }
  QSAPI_ASSIGN_OR_RETURN(json exports, Exports(context, j));
  return json{{"pts", pts}, {"exports", exports}};
}

Result<json> ContainerSeal(const json& j) {
  QSAPI_ASSIGN_OR_RETURN(const hpke::Suite suite, SuiteOf(j));
  QSAPI_ASSIGN_OR_RETURN(const Bytes pk_bytes, HexField(j, "pk"));
  QSAPI_ASSIGN_OR_RETURN(const qsapi::crypto::KemPublicKey pk,
                         qsapi::crypto::KemPublicKey::FromBytes(hpke::KemAlgorithmFor(suite.kem), pk_bytes));
  QSAPI_ASSIGN_OR_RETURN(const Bytes key_id, HexField(j, "key_id"));
  QSAPI_ASSIGN_OR_RETURN(const Bytes pt, HexField(j, "pt", true));
  hpke::SealOptions options;
  options.suite = suite;
  if (!j.contains("chunk_size")) {
    QSAPI_ASSIGN_OR_RETURN(const Bytes container, hpke::SealMessage(pk, key_id, pt, options));
    return json{{"container", ToHex(container)}};
  }
  options.chunk_size = j["chunk_size"].get<std::uint32_t>();
  hpke::MemorySource source(pt);
  hpke::MemorySink sink;
  QSAPI_RETURN_IF_ERROR(hpke::SealStream(pk, key_id, source, sink, options));
  return json{{"container", ToHex(sink.bytes())}};
}

Result<json> ContainerOpen(const json& j) {
  QSAPI_ASSIGN_OR_RETURN(auto key, RecipientOf(j));
  QSAPI_ASSIGN_OR_RETURN(const Bytes container, HexField(j, "container"));
  hpke::MemorySource source(container);
  hpke::MemorySink sink;
  QSAPI_RETURN_IF_ERROR(hpke::OpenAny(source, *key, sink, {}));
  return json{{"pt", ToHex(sink.bytes())}};
}

json Serve(const std::string& line) {
  json reply;
  try {
    const json request = json::parse(line);
    const std::string op = request.value("op", "");
    Result<json> r = qsapi::InvalidArgument("unknown op \"" + op + "\"");
    if (op == "keygen") r = Keygen(request);
    if (op == "context_seal") r = ContextSeal(request);
    if (op == "context_open") r = ContextOpen(request);
    if (op == "container_seal") r = ContainerSeal(request);
    if (op == "container_open") r = ContainerOpen(request);
    if (r.ok()) {
      reply = std::move(r).value();
      reply["status"] = "ok";
    } else {
      reply = json{{"status", "error"}, {"error", r.error().ToString()}};
    }
    if (request.contains("id")) reply["id"] = request["id"];
  } catch (const std::exception& e) {
    reply = json{{"status", "error"}, {"error", std::string("INVALID_ARGUMENT: bad request: ") + e.what()}};
  }
  return reply;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2) {
    const json reply = Serve(argv[1]);
    std::cout << reply.dump() << "\n";
    return reply["status"] == "ok" ? 0 : 1;
  }
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;
    std::cout << Serve(line).dump() << std::endl;
  }
  return 0;
}
