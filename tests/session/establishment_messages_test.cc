// The establishment messages' encoders and strict parsers: round trips, and every malformation
// the parsers must refuse with a clear error.
#include "session/internal/establishment_messages.h"

#include <string>

#include <gtest/gtest.h>

#include "support/test_support.h"

namespace qsapi::session::internal {
namespace {

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

InitMessage SampleInit() {
  InitMessage m;
  m.session_id.fill(0x11);
  m.suite = AeadSuite::kXChaCha20Poly1305;
  m.qkd_policy = SourcePolicy::kRequire;
  m.qrng_policy = SourcePolicy::kPrefer;
  m.random.fill(0x22);
  m.sources = {SourceId::kTlsExporter, SourceId::kQkd, SourceId::kQrngInitiator};
  m.key_ids = {"0b4b4d8c-1f6a-4d5e-9a3b-2c1d0e9f8a7b", "1B4B4D8C-1F6A-4D5E-9A3B-2C1D0E9F8A7B"};
  return m;
}

TEST(EstablishmentMessagesTest, InitRoundTripsWithTheDocumentedLayout) {
  const Bytes b = EncodeInit(SampleInit());
  ASSERT_EQ(b.size(), 2 + 16 + 1 + 1 + 1 + 32 + 4 + 1 + 2 * 36U);
  EXPECT_EQ(b[0], kTypeInit);
  EXPECT_EQ(b[1], 1);
  EXPECT_EQ(b[18], 2);  // suite XChaCha20-Poly1305
  EXPECT_EQ(b[19], 2);  // qkd require
  EXPECT_EQ(b[20], 1);  // qrng prefer
  EXPECT_EQ(b[53], 3);  // three sources
  EXPECT_EQ(b[57], 2);  // two key_IDs
  auto m = ParseInit(b);
  ASSERT_TRUE(m.ok()) << m.error().ToString();
  EXPECT_EQ(m->key_ids, SampleInit().key_ids);
  EXPECT_EQ(m->sources, SampleInit().sources);
  EXPECT_EQ(m->suite, AeadSuite::kXChaCha20Poly1305);
}

TEST(EstablishmentMessagesTest, InitMalformationsAreRefused) {
  const Bytes good = EncodeInit(SampleInit());
  for (std::size_t n = 0; n < good.size(); ++n) {
    EXPECT_FALSE(ParseInit(ByteView(good).first(n)).ok()) << "truncated to " << n;
  }
  Bytes trailing = good;
  trailing.push_back(0);
  EXPECT_FALSE(ParseInit(trailing).ok());
  auto expect_error = [&](std::size_t at, std::uint8_t value, const std::string& text) {
    Bytes b = good;
    b[at] = value;
    auto r = ParseInit(b);
    ASSERT_FALSE(r.ok()) << "byte " << at;
    EXPECT_TRUE(Contains(r.error().message(), text)) << r.error().ToString();
  };
  expect_error(1, 2, "protocol version 2");
  expect_error(18, 9, "unknown suite 9");
  expect_error(19, 3, "qkd policy has unknown value 3");
  expect_error(54, 2, "strictly increasing");         // tls-exporter, qkd, qkd
  expect_error(56, 4, "source id 4 is not allowed");  // qrng-responder in an Init
  expect_error(57, 1, "key_IDs take");
  expect_error(58 + 8, 'x', "not a UUID");
  // The same key_ID twice (case-insensitively).
  InitMessage dup = SampleInit();
  dup.key_ids[1] = "0B4B4D8C-1F6A-4D5E-9A3B-2C1D0E9F8A7B";
  auto r = ParseInit(EncodeInit(dup));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Contains(r.error().message(), "appears twice")) << r.error().ToString();
  // QKD offered without key_IDs, and require without the source.
  InitMessage no_ids = SampleInit();
  no_ids.key_ids.clear();
  EXPECT_TRUE(Contains(ParseInit(EncodeInit(no_ids)).error().message(), "if and only if"));
  no_ids.sources = {SourceId::kTlsExporter, SourceId::kQrngInitiator};
  EXPECT_TRUE(Contains(ParseInit(EncodeInit(no_ids)).error().message(), "qkd = require, but no QKD key"));
}

TEST(EstablishmentMessagesTest, AcceptConfirmAndAbortParseStrictly) {
  AcceptMessage a;
  a.session_id.fill(3);
  a.random.fill(4);
  a.sources = {SourceId::kTlsExporter, SourceId::kQrngResponder};
  const Bytes ab = EncodeAccept(a);
  ASSERT_EQ(ab.size(), 2 + 16 + 32 + 3U);
  auto pa = ParseAccept(ab);
  ASSERT_TRUE(pa.ok()) << pa.error().ToString();
  EXPECT_EQ(pa->sources, a.sources);
  Bytes bad = ab;
  bad[50] = 0;  // an empty source list
  EXPECT_FALSE(ParseAccept(bad).ok());
  bad = ab;
  bad[51] = 2;  // a list that does not start with tls-exporter
  EXPECT_TRUE(Contains(ParseAccept(bad).error().message(), "tls-exporter"));
  EXPECT_FALSE(ParseAccept(EncodeInit(SampleInit())).ok());

  const Bytes cb = EncodeConfirm({.mac = Bytes(kConfirmMacSize, 5)});
  EXPECT_TRUE(ParseConfirm(cb).ok());
  EXPECT_FALSE(ParseConfirm(ByteView(cb).first(cb.size() - 1)).ok());

  const Bytes xb = EncodeAbort({.code = AbortCode::kReplayedKeyId, .reason = "replay\n of X"});
  auto px = ParseAbort(xb);
  ASSERT_TRUE(px.ok()) << px.error().ToString();
  EXPECT_EQ(px->code, AbortCode::kReplayedKeyId);
  EXPECT_EQ(px->reason, "replay? of X");
  Bytes unknown = xb;
  unknown[2] = 0x40;
  EXPECT_FALSE(ParseAbort(unknown).ok());
  EXPECT_EQ(EncodeAbort({.code = AbortCode::kInternal, .reason = std::string(2000, 'a')}).size(), 5 + kMaxAbortReason);
}

TEST(EstablishmentMessagesTest, RekeyMessagesRoundTripWithTheDocumentedLayout) {
  RekeyOfferMessage offer;
  offer.session_id.fill(0x33);
  offer.min_epoch = 0x01020304;
  offer.key_ids = {"0b4b4d8c-1f6a-4d5e-9a3b-2c1d0e9f8a7b"};
  const Bytes o = EncodeRekeyOffer(offer);
  ASSERT_EQ(o.size(), 2 + 16 + 4 + 1 + 36U);
  EXPECT_EQ(o[0], kTypeRekeyOffer);
  EXPECT_EQ(o[18], 0x01);
  EXPECT_EQ(o[21], 0x04);
  EXPECT_EQ(o[22], 1);
  auto po = ParseRekeyOffer(o);
  ASSERT_TRUE(po.ok()) << po.error().ToString();
  EXPECT_EQ(po->min_epoch, 0x01020304U);
  EXPECT_EQ(po->key_ids, offer.key_ids);
  for (std::size_t n = 0; n < o.size(); ++n) EXPECT_FALSE(ParseRekeyOffer(ByteView(o).first(n)).ok()) << n;
  Bytes zero_epoch = o;
  zero_epoch[18] = zero_epoch[19] = zero_epoch[20] = zero_epoch[21] = 0;
  EXPECT_TRUE(Contains(ParseRekeyOffer(zero_epoch).error().message(), "min_epoch 0"));
  RekeyOfferMessage none = offer;
  none.key_ids.clear();
  EXPECT_TRUE(Contains(ParseRekeyOffer(EncodeRekeyOffer(none)).error().message(), "no key_IDs"));
  Bytes bad_uuid = o;
  bad_uuid[30] = 'z';
  EXPECT_TRUE(Contains(ParseRekeyOffer(bad_uuid).error().message(), "not a UUID"));
  EXPECT_FALSE(ParseRekeyOffer(EncodeInit(SampleInit())).ok());  // another type

  RekeyDoneMessage done;
  done.session_id.fill(0x44);
  done.epoch = 7;
  done.confirm_envelope = Bytes(kRekeyConfirmEnvelopeSize, 0x55);
  const Bytes d = EncodeRekeyDone(done);
  ASSERT_EQ(d.size(), 2 + 16 + 4 + 53U);
  auto pd = ParseRekeyDone(d);
  ASSERT_TRUE(pd.ok()) << pd.error().ToString();
  EXPECT_EQ(pd->epoch, 7U);
  EXPECT_EQ(pd->confirm_envelope, done.confirm_envelope);
  Bytes long_done = d;
  long_done.push_back(0);
  EXPECT_TRUE(Contains(ParseRekeyDone(long_done).error().message(), "confirmation envelope of 54 bytes"));
  EXPECT_FALSE(ParseRekeyDone(ByteView(d).first(d.size() - 1)).ok());

  RekeyRefuseMessage refuse;
  refuse.session_id.fill(0x66);
  refuse.code = AbortCode::kQkdUnavailable;
  refuse.reason = "the KME is down\n";
  const Bytes r = EncodeRekeyRefuse(refuse);
  auto pr = ParseRekeyRefuse(r);
  ASSERT_TRUE(pr.ok()) << pr.error().ToString();
  EXPECT_EQ(pr->code, AbortCode::kQkdUnavailable);
  EXPECT_EQ(pr->reason, "the KME is down?");  // unprintable characters are replaced
  Bytes bad_code = r;
  bad_code[18] = 0;
  EXPECT_TRUE(Contains(ParseRekeyRefuse(bad_code).error().message(), "unknown code"));
}

TEST(EstablishmentMessagesTest, ReestablishIsAnInitWithTheSessionAndALowestEpoch) {
  InitMessage m = SampleInit();
  m.reestablish = true;
  m.min_epoch = 7;
  const Bytes b = EncodeInit(m);
  ASSERT_EQ(b.size(), EncodeInit(SampleInit()).size() + 4);
  EXPECT_EQ(b[0], kTypeReestablish);
  EXPECT_EQ(b[21], 7);  // min_epoch right after the session id
  EXPECT_EQ(b[22], 2);  // then the Init fields: suite XChaCha20-Poly1305
  auto p = ParseInit(b);
  ASSERT_TRUE(p.ok()) << p.error().ToString();
  EXPECT_TRUE(p->reestablish);
  EXPECT_EQ(p->min_epoch, 7U);
  EXPECT_EQ(p->key_ids, SampleInit().key_ids);
  for (std::size_t n = 0; n < b.size(); ++n) EXPECT_FALSE(ParseInit(ByteView(b).first(n)).ok()) << n;
  Bytes zero = b;
  zero[18] = zero[19] = zero[20] = zero[21] = 0;
  EXPECT_TRUE(Contains(ParseInit(zero).error().message(), "Reestablish message: min_epoch 0"))
      << ParseInit(zero).error().ToString();
  auto plain = ParseInit(EncodeInit(SampleInit()));
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->reestablish);
  // The abort code for a re-establishment of a session the responder does not hold.
  auto abort = ParseAbort(EncodeAbort(AbortMessage{.code = AbortCode::kUnknownSession, .reason = "no such session"}));
  ASSERT_TRUE(abort.ok()) << abort.error().ToString();
  EXPECT_EQ(abort->code, AbortCode::kUnknownSession);
  Bytes eleven = EncodeAbort(AbortMessage{.code = AbortCode::kUnknownSession, .reason = ""});
  eleven[2] = 11;
  EXPECT_FALSE(ParseAbort(eleven).ok());
}

}  // namespace
}  // namespace qsapi::session::internal
