// Fuzzes the parsers of the session messages a peer sends (Init, Accept, Confirm, Abort, and on an
// established session RekeyOffer, RekeyDone, RekeyRefuse; docs/PROTOCOL.md). Every input goes to
// all seven parsers.
// Invariants checked: no crash or sanitizer report; a message a parser accepts re-encodes to
// exactly the input bytes (one encoding per message: nothing ignored, nothing ambiguous), with
// every field in range; every failure is INVALID_ARGUMENT or UNIMPLEMENTED with a message.
#include <algorithm>
#include <cstdint>
#include <cstdlib>

#include "fuzz_support.h"
#include "qsapi/qkd/etsi014.h"
#include "session/internal/establishment_messages.h"

namespace {

using qsapi::fuzz::Check;

template <typename T>
void CheckFailure(const qsapi::Result<T>& r) {
  Check(r.error().code() == qsapi::ErrorCode::kInvalidArgument || r.error().code() == qsapi::ErrorCode::kUnimplemented);
  Check(!r.error().message().empty());
}

bool SameBytes(const qsapi::Bytes& a, qsapi::ByteView b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace internal = qsapi::session::internal;
  const qsapi::ByteView in(data, size);
  if (auto m = internal::ParseInit(in); m.ok()) {
    Check(SameBytes(internal::EncodeInit(*m), in));
    Check(m->key_ids.size() <= internal::kMaxKeyIds);
    for (const auto& id : m->key_ids) Check(qsapi::qkd::IsValidKeyId(id));
    Check(!m->sources.empty() && m->sources.front() == qsapi::session::SourceId::kTlsExporter);
  } else {
    CheckFailure(m);
  }
  if (auto m = internal::ParseAccept(in); m.ok()) {
    Check(SameBytes(internal::EncodeAccept(*m), in));
  } else {
    CheckFailure(m);
  }
  if (auto m = internal::ParseConfirm(in); m.ok()) {
    Check(SameBytes(internal::EncodeConfirm(*m), in));
  } else {
    CheckFailure(m);
  }
  if (auto m = internal::ParseAbort(in); m.ok()) {
    Check(SameBytes(internal::EncodeAbort(*m), in));
    Check(m->reason.size() <= internal::kMaxAbortReason);
  } else {
    CheckFailure(m);
  }
  if (auto m = internal::ParseRekeyOffer(in); m.ok()) {
    Check(SameBytes(internal::EncodeRekeyOffer(*m), in));
    Check(!m->key_ids.empty() && m->key_ids.size() <= internal::kMaxKeyIds && m->min_epoch > 0);
    for (const auto& id : m->key_ids) Check(qsapi::qkd::IsValidKeyId(id));
  } else {
    CheckFailure(m);
  }
  if (auto m = internal::ParseRekeyDone(in); m.ok()) {
    Check(SameBytes(internal::EncodeRekeyDone(*m), in));
    Check(m->confirm_envelope.size() == internal::kRekeyConfirmEnvelopeSize && m->epoch > 0);
  } else {
    CheckFailure(m);
  }
  if (auto m = internal::ParseRekeyRefuse(in); m.ok()) {
    Check(SameBytes(internal::EncodeRekeyRefuse(*m), in));
    Check(m->reason.size() <= internal::kMaxAbortReason);
  } else {
    CheckFailure(m);
  }
  return 0;
}
