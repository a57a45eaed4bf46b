// The public-key file format (public_key_file.h). Base64 is libsodium's (the original RFC 4648
// alphabet with padding).
#include "qsapi/hpke/public_key_file.h"

#include <string>

#include <sodium.h>

#include "qsapi/hpke/hpke.h"

namespace qsapi::hpke {
namespace {

constexpr std::string_view kMagic = "QSPK";
constexpr std::uint8_t kVersion = 1;

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

}  // namespace

Result<std::string> EncodePublicKeyFile(const crypto::KemPublicKey& key, ByteView key_id, std::string_view comment) {
  QSAPI_ASSIGN_OR_RETURN(const KemId kem, KemIdFor(key.algorithm()));
  if (key_id.empty() || key_id.size() > kMaxKeyIdSize) return InvalidArgument("a key id must have 1..64 bytes");
  if (comment.find('\n') != std::string_view::npos || comment.find("-----") != std::string_view::npos) {
    return InvalidArgument("a public-key file comment is one line without \"-----\"");
  }
  Bytes bin(kMagic.begin(), kMagic.end());
  bin.push_back(kVersion);
  bin.push_back(static_cast<std::uint8_t>(static_cast<std::uint16_t>(kem) >> 8));
  bin.push_back(static_cast<std::uint8_t>(static_cast<std::uint16_t>(kem) & 0xff));
  bin.push_back(static_cast<std::uint8_t>(key_id.size()));
  bin.insert(bin.end(), key_id.begin(), key_id.end());
  bin.push_back(static_cast<std::uint8_t>(key.bytes().size() >> 8));
  bin.push_back(static_cast<std::uint8_t>(key.bytes().size() & 0xff));
  bin.insert(bin.end(), key.bytes().begin(), key.bytes().end());

  std::string b64(sodium_base64_encoded_len(bin.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(b64.data(), b64.size(), bin.data(), bin.size(), sodium_base64_VARIANT_ORIGINAL);
  b64.resize(b64.size() - 1);  // the terminating NUL
  std::string out;
  if (!comment.empty()) {
    out.append(comment);
    out.push_back('\n');
  }
  out.append(kPublicKeyBegin);
  out.push_back('\n');
  for (std::size_t i = 0; i < b64.size(); i += 64) {
    out.append(b64.substr(i, 64));
    out.push_back('\n');
  }
  out.append(kPublicKeyEnd);
  out.push_back('\n');
  return out;
}

Result<RecipientPublicKey> ParsePublicKeyFile(std::string_view text) {
  if (text.size() > kMaxPublicKeyFileSize) return InvalidArgument("public-key file is larger than 16 KiB");
  const std::size_t begin = text.find(kPublicKeyBegin);
  if (begin == std::string_view::npos || (begin != 0 && text[begin - 1] != '\n')) {
    return InvalidArgument("not a qsapi public-key file (no \"" + std::string(kPublicKeyBegin) + "\" line)");
  }
  const std::size_t body = begin + kPublicKeyBegin.size();
  const std::size_t end = text.find(kPublicKeyEnd, body);
  if (end == std::string_view::npos) return InvalidArgument("public-key file has no END line");
  for (char c : text.substr(end + kPublicKeyEnd.size())) {
    if (!IsSpace(c)) return InvalidArgument("public-key file has data after its END line");
  }
  const std::string_view b64 = text.substr(body, end - body);
  // (An empty body would pass a null buffer to libsodium: found by fuzz/hpke_container_fuzzer.)
  if (b64.find_first_not_of(" \t\r\n") == std::string_view::npos) return InvalidArgument("public-key file is empty");
  Bytes bin(b64.size());
  std::size_t bin_len = 0;
  const char* b64_end = nullptr;
  if (sodium_base642bin(bin.data(), bin.size(), b64.data(), b64.size(), " \t\r\n", &bin_len, &b64_end,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      b64_end != b64.data() + b64.size()) {
    return InvalidArgument("public-key file body is not valid base64");
  }
  bin.resize(bin_len);
  const ByteView in(bin);
  // "QSPK" | version | kem_id (2) | key_id_len | key_id | pk_len (2) | pk
  if (in.size() < 8 || !std::equal(kMagic.begin(), kMagic.end(), in.begin())) {
    return InvalidArgument("public-key file body does not start with \"QSPK\"");
  }
  if (in[4] != kVersion)
    return InvalidArgument("public-key file version " + std::to_string(in[4]) + " is not supported");
  const auto kem_id = static_cast<std::uint16_t>((in[5] << 8) | in[6]);
  QSAPI_ASSIGN_OR_RETURN(const Suite suite, Suite::FromIds(kem_id, 0x0001, 0x0003));
  const std::size_t key_id_len = in[7];
  if (key_id_len == 0 || key_id_len > kMaxKeyIdSize)
    return InvalidArgument("public-key file key id length is out of bounds");
  if (in.size() < 8 + key_id_len + 2) return InvalidArgument("public-key file body is truncated");
  const ByteView key_id = in.subspan(8, key_id_len);
  const std::size_t pk_len = (std::size_t{in[8 + key_id_len]} << 8) | in[9 + key_id_len];
  const ByteView pk = in.subspan(10 + key_id_len);
  if (pk.size() != pk_len || pk_len != GetSuiteSizes(suite).public_key) {
    return InvalidArgument("public-key file key has the wrong length for " + std::string(KemName(suite.kem)));
  }
  QSAPI_ASSIGN_OR_RETURN(crypto::KemPublicKey key, crypto::KemPublicKey::FromBytes(KemAlgorithmFor(suite.kem), pk));
  return RecipientPublicKey{std::move(key), Bytes(key_id.begin(), key_id.end())};
}

}  // namespace qsapi::hpke
