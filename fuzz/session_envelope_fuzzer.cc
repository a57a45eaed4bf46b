// Fuzzes the session envelope (qsapi/session/envelope.h): the binary parser, the text form, and
// opening with real channels whose keys are those of tests/data/session/vectors.json (cases 0
// and 1), so that corpus entries taken from the vectors reach decryption and the epoch logic.
// Invariants checked: no crash or sanitizer report; a parsed header re-encodes to exactly the
// bytes it came from; the text form round-trips; an open either succeeds with exactly
// ct_len - 16 bytes of plaintext or fails with INVALID_ARGUMENT, FAILED_PRECONDITION or
// AuthenticationFailed(); a failed open leaves the channel's counters of opened messages and its
// epoch unchanged.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>

#include "fuzz_support.h"
#include "qsapi/session/envelope.h"

namespace {

using namespace qsapi;           // NOLINT(google-build-using-namespace): a fuzz target's local scope
using namespace qsapi::session;  // NOLINT(google-build-using-namespace)

using qsapi::fuzz::Check;

Bytes FromHex(std::string_view hex) {
  Bytes out(hex.size() / 2);
  for (std::size_t i = 0; i < out.size(); ++i)
    out[i] = static_cast<std::uint8_t>(std::stoi(std::string(hex.substr(2 * i, 2)), nullptr, 16));
  return out;
}

// Responder is the responder of vectors.json case 0 or 1; with `fresh_epoch_two` it has bound the
// case's fresh QKD key to epoch 2 (as its peer's proposal would make it), so that the vectors'
// epoch 2 envelopes open.
SessionChannel Responder(AeadSuite suite, bool fresh_epoch_two) {
  // Epoch 0 secrets of vectors.json case 0 (AES-256-GCM) and case 1 (XChaCha20-Poly1305).
  const Bytes secret =
      FromHex(suite == AeadSuite::kAes256Gcm
                  ? "2743c81008230a48fcb5ff2a128b8150d3efdaf3707c4676494ef7b430adca9d0fec8b64f270db0d9653963f70d9b325"
                  : "eb2afdc66a9e6de1b0f6827275c126535ca23e8c29db9076ab636dc116fa3a28335a47419b01869b9d5034834820e85f");
  const Bytes sid = FromHex("000102030405060708090a0b0c0d0e0f");
  auto ch = SessionChannel::New(SessionRole::kResponder, suite, sid, EpochSecret::CopyFrom(secret));
  Check(ch.ok());
  if (fresh_epoch_two) {
    Check(ch->BindFreshKey(2, FromHex("404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f")).ok());
  }
  return std::move(*ch);
}

bool ExpectedFailure(const Error& e) {
  return e.code() == ErrorCode::kInvalidArgument || e.code() == ErrorCode::kFailedPrecondition ||
         e == AuthenticationFailed();
}

void TryOpen(ByteView input) {
  auto parsed = ParseEnvelope(input);
  if (parsed.ok()) {
    const Bytes header = EncodeEnvelopeHeader(parsed->header, parsed->ciphertext.size() - kEnvelopeTagSize);
    Check(ByteView(header).size() == parsed->header_bytes.size() &&
          std::equal(header.begin(), header.end(), parsed->header_bytes.begin()));
    Check(parsed->header_bytes.size() + parsed->ciphertext.size() == input.size());
  }
  const AeadSuite suite = input.size() > 3 && input[3] == 2 ? AeadSuite::kXChaCha20Poly1305 : AeadSuite::kAes256Gcm;
  for (const bool fresh_epoch_two : {false, true}) {
    SessionChannel ch = Responder(suite, fresh_epoch_two);
    for (const ByteView aad : {ByteView(), ByteView(reinterpret_cast<const std::uint8_t*>("ad"), 2)}) {  // NOLINT
      const ChannelStats before = ch.stats();
      auto r = ch.Open(input, aad);
      if (r.ok()) {
        Check(parsed.ok() && r->size() == parsed->ciphertext.size() - kEnvelopeTagSize);
      } else {
        Check(ExpectedFailure(r.error()));
        const ChannelStats after = ch.stats();
        Check(after.messages_opened == before.messages_opened && after.epoch == before.epoch);
      }
    }
  }
  SessionChannel sc = Responder(suite, false);
  EnvelopeStreamReader reader(sc);
  auto chunk = reader.Read(input);
  if (chunk.ok()) {
    Check(parsed.ok() && parsed->header.is_stream_chunk() && parsed->header.chunk_index == 0);
  } else {
    Check(ExpectedFailure(chunk.error()));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const ByteView input(data, size);
  TryOpen(input);
  // The text form of the input round-trips; text input is decoded and opened too.
  const std::string text = EnvelopeToText(input);
  auto back = EnvelopeFromText(text, kMaxEnvelopePayloadLimit);
  Check(back.ok() && Bytes(input.begin(), input.end()) == *back);
  auto decoded = EnvelopeFromText(std::string_view(reinterpret_cast<const char*>(data), size));  // NOLINT
  if (decoded.ok()) TryOpen(*decoded);
  return 0;
}
