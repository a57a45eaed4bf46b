// ReplayWindow: the sliding anti-replay window of one receive key (RFC 4303, 3.4.3; RFC 6479's
// ring of bits). It remembers which of the last kReplayWindowSize sequence numbers up to the
// highest one seen have been accepted.
#ifndef QSAPI_SESSION_INTERNAL_REPLAY_WINDOW_H_
#define QSAPI_SESSION_INTERNAL_REPLAY_WINDOW_H_

#include <array>
#include <cstdint>

#include "qsapi/session/envelope.h"

namespace qsapi::session::internal {

class ReplayWindow {
 public:
  enum class Verdict : std::uint8_t { kFresh, kReplayed, kTooOld };

  // Check says whether `seq` may be accepted; it changes nothing.
  [[nodiscard]] Verdict Check(std::uint64_t seq) const noexcept {
    if (!any_ || seq > top_) return Verdict::kFresh;
    if (top_ - seq >= kReplayWindowSize) return Verdict::kTooOld;
    return TestBit(seq) ? Verdict::kReplayed : Verdict::kFresh;
  }

  // Accept marks `seq` as received; call only after Check said kFresh and the envelope authenticated.
  void Accept(std::uint64_t seq) noexcept {
    if (!any_) {
      any_ = true;
      top_ = seq;
      bits_.fill(0);
    } else if (seq > top_) {
      if (seq - top_ >= kReplayWindowSize) {
        bits_.fill(0);
      } else {
        for (std::uint64_t s = top_ + 1; s <= seq; ++s) ClearBit(s);
      }
      top_ = seq;
    }
    SetBit(seq);
  }

  [[nodiscard]] bool any() const noexcept { return any_; }
  [[nodiscard]] std::uint64_t top() const noexcept { return top_; }

 private:
  static constexpr std::size_t kWords = kReplayWindowSize / 64;
  static_assert(kReplayWindowSize % 64 == 0);
  [[nodiscard]] bool TestBit(std::uint64_t seq) const noexcept {
    const std::uint64_t i = seq % kReplayWindowSize;
    return ((bits_[i / 64] >> (i % 64)) & 1U) != 0;
  }
  void SetBit(std::uint64_t seq) noexcept {
    const std::uint64_t i = seq % kReplayWindowSize;
    bits_[i / 64] |= std::uint64_t{1} << (i % 64);
  }
  void ClearBit(std::uint64_t seq) noexcept {
    const std::uint64_t i = seq % kReplayWindowSize;
    bits_[i / 64] &= ~(std::uint64_t{1} << (i % 64));
  }

  bool any_ = false;
  std::uint64_t top_ = 0;
  std::array<std::uint64_t, kWords> bits_{};
};

}  // namespace qsapi::session::internal

#endif  // QSAPI_SESSION_INTERNAL_REPLAY_WINDOW_H_
