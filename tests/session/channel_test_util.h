// A pair of session channels over a shared fake clock, for the session tests.
#ifndef QSAPI_TESTS_SESSION_CHANNEL_TEST_UTIL_H_
#define QSAPI_TESTS_SESSION_CHANNEL_TEST_UTIL_H_

#include <chrono>
#include <memory>
#include <optional>

#include "qsapi/session/envelope.h"
#include "qsapi/session/key_schedule.h"
#include "support/test_support.h"

namespace qsapi::session::testing {

struct FakeClock {
  std::shared_ptr<std::chrono::steady_clock::time_point> now = std::make_shared<std::chrono::steady_clock::time_point>(
      std::chrono::steady_clock::time_point{} + std::chrono::hours(1));
  [[nodiscard]] std::function<std::chrono::steady_clock::time_point()> fn() const {
    return [t = now] { return *t; };
  }
  void Advance(std::chrono::milliseconds d) const { *now += d; }
};

inline Bytes TestSessionId() { return Bytes(kSessionIdSize, 0xa5); }

inline EpochSecret TestEpochSecret(std::uint8_t fill = 0x3c) {
  return EpochSecret::CopyFrom(Bytes(kEpochSecretSize, fill));
}

struct ChannelPair {
  FakeClock clock;
  std::optional<SessionChannel> initiator;
  std::optional<SessionChannel> responder;
};

inline ChannelPair MakePair(AeadSuite suite = AeadSuite::kAes256Gcm, ChannelConfig config = {}) {
  ChannelPair pair;
  config.clock = pair.clock.fn();
  auto i = SessionChannel::New(SessionRole::kInitiator, suite, TestSessionId(), TestEpochSecret(), config);
  auto r = SessionChannel::New(SessionRole::kResponder, suite, TestSessionId(), TestEpochSecret(), config);
  EXPECT_TRUE(i.ok() && r.ok());
  if (i.ok()) pair.initiator.emplace(std::move(*i));
  if (r.ok()) pair.responder.emplace(std::move(*r));
  return pair;
}

}  // namespace qsapi::session::testing

#endif  // QSAPI_TESTS_SESSION_CHANNEL_TEST_UTIL_H_
