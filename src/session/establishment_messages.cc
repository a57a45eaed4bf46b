// Encoders and strict parsers of the establishment messages (docs/PROTOCOL.md, "Session
// establishment").
#include "session/internal/establishment_messages.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <set>

#include "qsapi/qkd/etsi014.h"

namespace qsapi::session::internal {
namespace {

void Append(Bytes& out, ByteView data) { out.insert(out.end(), data.begin(), data.end()); }

Error Malformed(std::string_view what, const std::string& why) {
  return InvalidArgument("malformed " + std::string(what) + " message: " + why);
}

// Header checks type and version and consumes them.
Status Header(ByteView& data, std::uint8_t type, std::string_view what) {
  if (data.size() < 2) return Malformed(what, "shorter than its header");
  if (data[0] != type) return Malformed(what, "wrong message type " + std::to_string(data[0]));
  if (data[1] != kProtocolVersion) {
    return Unimplemented(std::string(what) + " message of protocol version " + std::to_string(data[1]) +
                         "; this endpoint speaks version " + std::to_string(kProtocolVersion));
  }
  data = data.subspan(2);
  return OkStatus();
}

template <std::size_t N>
Status Take(ByteView& data, std::array<std::uint8_t, N>& out, std::string_view what, std::string_view field) {
  if (data.size() < N) return Malformed(what, "truncated in " + std::string(field));
  std::memcpy(out.data(), data.data(), N);
  data = data.subspan(N);
  return OkStatus();
}

Result<std::uint8_t> TakeByte(ByteView& data, std::string_view what, std::string_view field) {
  if (data.empty()) return Malformed(what, "truncated in " + std::string(field));
  const std::uint8_t b = data[0];
  data = data.subspan(1);
  return b;
}

Result<SourcePolicy> TakePolicy(ByteView& data, std::string_view what, std::string_view field) {
  QSAPI_ASSIGN_OR_RETURN(std::uint8_t b, TakeByte(data, what, field));
  if (b > static_cast<std::uint8_t>(SourcePolicy::kRequire)) {
    return Malformed(what, std::string(field) + " has unknown value " + std::to_string(b));
  }
  return static_cast<SourcePolicy>(b);
}

Status End(ByteView data, std::string_view what) {
  if (!data.empty()) return Malformed(what, std::to_string(data.size()) + " trailing bytes");
  return OkStatus();
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool Has(const std::vector<SourceId>& v, SourceId id) { return std::find(v.begin(), v.end(), id) != v.end(); }

void AppendKeyIds(Bytes& out, const std::vector<std::string>& key_ids) {
  out.push_back(static_cast<std::uint8_t>(key_ids.size()));
  for (const auto& id : key_ids) {
    Bytes fixed(kKeyIdSize, 0);
    std::memcpy(fixed.data(), id.data(), std::min(id.size(), kKeyIdSize));
    Append(out, fixed);
  }
}

// TakeKeyIds parses k (1) || k fixed-size UUIDs, which must be the rest of `data`.
Result<std::vector<std::string>> TakeKeyIds(ByteView& data, std::string_view what) {
  QSAPI_ASSIGN_OR_RETURN(std::uint8_t k, TakeByte(data, what, "key_ID count"));
  if (k > kMaxKeyIds)
    return Malformed(what, std::to_string(k) + " key_IDs (at most " + std::to_string(kMaxKeyIds) + ")");
  if (data.size() != k * kKeyIdSize) {
    return Malformed(
        what, "key_IDs take " + std::to_string(data.size()) + " bytes, expected " + std::to_string(k * kKeyIdSize));
  }
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (std::size_t i = 0; i < k; ++i) {
    std::string id(reinterpret_cast<const char*>(data.data() + i * kKeyIdSize), kKeyIdSize);  // NOLINT
    if (!qkd::IsValidKeyId(id)) return Malformed(what, "key_ID " + std::to_string(i) + " is not a UUID");
    if (!seen.insert(Lower(id)).second) return Malformed(what, "key_ID " + id + " appears twice");
    out.push_back(std::move(id));
  }
  data = data.subspan(data.size());
  return out;
}

void AppendReason(Bytes& out, const std::string& text) {
  std::string reason = text.substr(0, kMaxAbortReason);
  for (char& c : reason) {
    if (c < 0x20 || c > 0x7e) c = '?';
  }
  out.push_back(static_cast<std::uint8_t>(reason.size() >> 8));
  out.push_back(static_cast<std::uint8_t>(reason.size()));
  out.insert(out.end(), reason.begin(), reason.end());
}

Result<AbortCode> TakeAbortCode(ByteView& data, std::string_view what) {
  QSAPI_ASSIGN_OR_RETURN(std::uint8_t code, TakeByte(data, what, "code"));
  if (code < static_cast<std::uint8_t>(AbortCode::kPolicy) ||
      code > static_cast<std::uint8_t>(AbortCode::kUnknownSession)) {
    return Malformed(what, "unknown code " + std::to_string(code));
  }
  return static_cast<AbortCode>(code);
}

// TakeReason parses len (2) || printable ASCII, which must be the rest of `data`.
Result<std::string> TakeReason(ByteView& data, std::string_view what) {
  if (data.size() < 2) return Malformed(what, "truncated in reason length");
  const std::size_t len = (std::size_t{data[0]} << 8) | data[1];
  data = data.subspan(2);
  if (len > kMaxAbortReason) return Malformed(what, "reason longer than " + std::to_string(kMaxAbortReason));
  if (data.size() != len) return Malformed(what, "reason length does not match");
  std::string reason(reinterpret_cast<const char*>(data.data()), len);  // NOLINT
  for (char c : reason) {
    if (c < 0x20 || c > 0x7e) return Malformed(what, "reason is not printable ASCII");
  }
  data = data.subspan(len);
  return reason;
}

void AppendU32(Bytes& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}

Result<std::uint32_t> TakeU32(ByteView& data, std::string_view what, std::string_view field) {
  if (data.size() < 4) return Malformed(what, "truncated in " + std::string(field));
  const std::uint32_t v = (std::uint32_t{data[0]} << 24) | (std::uint32_t{data[1]} << 16) |
                          (std::uint32_t{data[2]} << 8) | std::uint32_t{data[3]};
  data = data.subspan(4);
  return v;
}

}  // namespace

std::uint8_t MessageType(ByteView message) noexcept { return message.empty() ? 0 : message[0]; }

Result<std::vector<SourceId>> ParseSourceList(ByteView& data, std::string_view what,
                                              std::initializer_list<SourceId> allowed) {
  QSAPI_ASSIGN_OR_RETURN(std::uint8_t n, TakeByte(data, what, "source list"));
  if (n == 0 || n > allowed.size()) {
    return Malformed(what, "source list of " + std::to_string(n) + " entries");
  }
  if (data.size() < n) return Malformed(what, "truncated in source list");
  std::vector<SourceId> out;
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint8_t b = data[i];
    if (std::find_if(allowed.begin(), allowed.end(), [b](SourceId s) { return static_cast<std::uint8_t>(s) == b; }) ==
        allowed.end()) {
      return Malformed(what, "source id " + std::to_string(b) + " is not allowed here");
    }
    if (!out.empty() && b <= static_cast<std::uint8_t>(out.back())) {
      return Malformed(what, "source list not in strictly increasing order");
    }
    out.push_back(static_cast<SourceId>(b));
  }
  if (out.front() != SourceId::kTlsExporter) return Malformed(what, "source list does not start with tls-exporter");
  data = data.subspan(n);
  return out;
}

Bytes EncodeInit(const InitMessage& m) {
  Bytes out{m.reestablish ? kTypeReestablish : kTypeInit, kProtocolVersion};
  Append(out, m.session_id);
  if (m.reestablish) AppendU32(out, m.min_epoch);
  out.push_back(static_cast<std::uint8_t>(m.suite));
  out.push_back(static_cast<std::uint8_t>(m.qkd_policy));
  out.push_back(static_cast<std::uint8_t>(m.qrng_policy));
  Append(out, m.random);
  Append(out, EncodeSourceList(m.sources));
  AppendKeyIds(out, m.key_ids);
  return out;
}

Result<InitMessage> ParseInit(ByteView data) {
  const bool reestablish = MessageType(data) == kTypeReestablish;
  const std::string_view kWhat = reestablish ? "Reestablish" : "Init";
  QSAPI_RETURN_IF_ERROR(Header(data, reestablish ? kTypeReestablish : kTypeInit, kWhat));
  InitMessage m;
  m.reestablish = reestablish;
  QSAPI_RETURN_IF_ERROR(Take(data, m.session_id, kWhat, "session id"));
  if (reestablish) {
    QSAPI_ASSIGN_OR_RETURN(m.min_epoch, TakeU32(data, kWhat, "min_epoch"));
    if (m.min_epoch == 0) return Malformed(kWhat, "min_epoch 0 (epoch 0 is the established one)");
  }
  QSAPI_ASSIGN_OR_RETURN(std::uint8_t suite, TakeByte(data, kWhat, "suite"));
  if (suite != static_cast<std::uint8_t>(AeadSuite::kAes256Gcm) &&
      suite != static_cast<std::uint8_t>(AeadSuite::kXChaCha20Poly1305)) {
    return Unimplemented(std::string(kWhat) + " message proposes unknown suite " + std::to_string(suite));
  }
  m.suite = static_cast<AeadSuite>(suite);
  QSAPI_ASSIGN_OR_RETURN(m.qkd_policy, TakePolicy(data, kWhat, "qkd policy"));
  QSAPI_ASSIGN_OR_RETURN(m.qrng_policy, TakePolicy(data, kWhat, "qrng policy"));
  QSAPI_RETURN_IF_ERROR(Take(data, m.random, kWhat, "random"));
  QSAPI_ASSIGN_OR_RETURN(
      m.sources, ParseSourceList(data, kWhat, {SourceId::kTlsExporter, SourceId::kQkd, SourceId::kQrngInitiator}));
  QSAPI_ASSIGN_OR_RETURN(m.key_ids, TakeKeyIds(data, kWhat));
  const std::size_t k = m.key_ids.size();
  if ((k > 0) != Has(m.sources, SourceId::kQkd)) {
    return Malformed(kWhat, "QKD is offered if and only if key_IDs are present");
  }
  // A policy of require with the source absent is contradictory: the initiator fails before sending.
  if (m.qkd_policy == SourcePolicy::kRequire && k == 0) {
    return Malformed(kWhat, "qkd = require, but no QKD key is offered");
  }
  if (m.qrng_policy == SourcePolicy::kRequire && !Has(m.sources, SourceId::kQrngInitiator)) {
    return Malformed(kWhat, "qrng = require, but no QRNG contribution is offered");
  }
  return m;
}

Bytes EncodeAccept(const AcceptMessage& m) {
  Bytes out{kTypeAccept, kProtocolVersion};
  Append(out, m.session_id);
  Append(out, m.random);
  Append(out, EncodeSourceList(m.sources));
  return out;
}

Result<AcceptMessage> ParseAccept(ByteView data) {
  constexpr std::string_view kWhat = "Accept";
  QSAPI_RETURN_IF_ERROR(Header(data, kTypeAccept, kWhat));
  AcceptMessage m;
  QSAPI_RETURN_IF_ERROR(Take(data, m.session_id, kWhat, "session id"));
  QSAPI_RETURN_IF_ERROR(Take(data, m.random, kWhat, "random"));
  QSAPI_ASSIGN_OR_RETURN(m.sources, ParseSourceList(data, kWhat,
                                                    {SourceId::kTlsExporter, SourceId::kQkd, SourceId::kQrngInitiator,
                                                     SourceId::kQrngResponder}));
  QSAPI_RETURN_IF_ERROR(End(data, kWhat));
  return m;
}

Bytes EncodeConfirm(const ConfirmMessage& m) {
  Bytes out{kTypeConfirm, kProtocolVersion};
  Append(out, m.mac);
  return out;
}

Result<ConfirmMessage> ParseConfirm(ByteView data) {
  constexpr std::string_view kWhat = "Confirm";
  QSAPI_RETURN_IF_ERROR(Header(data, kTypeConfirm, kWhat));
  if (data.size() != kConfirmMacSize) {
    return Malformed(kWhat,
                     "MAC of " + std::to_string(data.size()) + " bytes, expected " + std::to_string(kConfirmMacSize));
  }
  return ConfirmMessage{.mac = Bytes(data.begin(), data.end())};
}

Bytes EncodeAbort(const AbortMessage& m) {
  Bytes out{kTypeAbort, kProtocolVersion, static_cast<std::uint8_t>(m.code)};
  AppendReason(out, m.reason);
  return out;
}

Result<AbortMessage> ParseAbort(ByteView data) {
  constexpr std::string_view kWhat = "Abort";
  QSAPI_RETURN_IF_ERROR(Header(data, kTypeAbort, kWhat));
  AbortMessage m;
  QSAPI_ASSIGN_OR_RETURN(m.code, TakeAbortCode(data, kWhat));
  QSAPI_ASSIGN_OR_RETURN(m.reason, TakeReason(data, kWhat));
  return m;
}

Bytes EncodeRekeyOffer(const RekeyOfferMessage& m) {
  Bytes out{kTypeRekeyOffer, kProtocolVersion};
  Append(out, m.session_id);
  AppendU32(out, m.min_epoch);
  AppendKeyIds(out, m.key_ids);
  return out;
}

Result<RekeyOfferMessage> ParseRekeyOffer(ByteView data) {
  constexpr std::string_view kWhat = "RekeyOffer";
  QSAPI_RETURN_IF_ERROR(Header(data, kTypeRekeyOffer, kWhat));
  RekeyOfferMessage m;
  QSAPI_RETURN_IF_ERROR(Take(data, m.session_id, kWhat, "session id"));
  QSAPI_ASSIGN_OR_RETURN(m.min_epoch, TakeU32(data, kWhat, "min_epoch"));
  if (m.min_epoch == 0) return Malformed(kWhat, "min_epoch 0 (epoch 0 is the established one)");
  QSAPI_ASSIGN_OR_RETURN(m.key_ids, TakeKeyIds(data, kWhat));
  if (m.key_ids.empty()) return Malformed(kWhat, "no key_IDs");
  return m;
}

Bytes EncodeRekeyDone(const RekeyDoneMessage& m) {
  Bytes out{kTypeRekeyDone, kProtocolVersion};
  Append(out, m.session_id);
  AppendU32(out, m.epoch);
  Append(out, m.confirm_envelope);
  return out;
}

Result<RekeyDoneMessage> ParseRekeyDone(ByteView data) {
  constexpr std::string_view kWhat = "RekeyDone";
  QSAPI_RETURN_IF_ERROR(Header(data, kTypeRekeyDone, kWhat));
  RekeyDoneMessage m;
  QSAPI_RETURN_IF_ERROR(Take(data, m.session_id, kWhat, "session id"));
  QSAPI_ASSIGN_OR_RETURN(m.epoch, TakeU32(data, kWhat, "epoch"));
  if (m.epoch == 0) return Malformed(kWhat, "epoch 0");
  if (data.size() != kRekeyConfirmEnvelopeSize) {
    return Malformed(kWhat, "confirmation envelope of " + std::to_string(data.size()) + " bytes, expected " +
                                std::to_string(kRekeyConfirmEnvelopeSize));
  }
  m.confirm_envelope.assign(data.begin(), data.end());
  return m;
}

Bytes EncodeRekeyRefuse(const RekeyRefuseMessage& m) {
  Bytes out{kTypeRekeyRefuse, kProtocolVersion};
  Append(out, m.session_id);
  out.push_back(static_cast<std::uint8_t>(m.code));
  AppendReason(out, m.reason);
  return out;
}

Result<RekeyRefuseMessage> ParseRekeyRefuse(ByteView data) {
  constexpr std::string_view kWhat = "RekeyRefuse";
  QSAPI_RETURN_IF_ERROR(Header(data, kTypeRekeyRefuse, kWhat));
  RekeyRefuseMessage m;
  QSAPI_RETURN_IF_ERROR(Take(data, m.session_id, kWhat, "session id"));
  QSAPI_ASSIGN_OR_RETURN(m.code, TakeAbortCode(data, kWhat));
  QSAPI_ASSIGN_OR_RETURN(m.reason, TakeReason(data, kWhat));
  return m;
}

}  // namespace qsapi::session::internal
