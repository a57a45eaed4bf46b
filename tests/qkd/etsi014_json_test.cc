// Unit tests of the ETSI 014 JSON objects (src/qkd/etsi014_json.cc) that the loopback tests reach
// only indirectly: the writers, the simulator-side request parsers, and the wiping of bodies.
#include "qkd/internal/etsi014_json.h"

#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "support/test_support.h"

namespace qsapi::qkd::internal {
namespace {

constexpr char kId[] = "6f6b7d57-7d3a-4a38-8e3e-0c5a1c1f2a01";

TEST(Etsi014Json, KeyIdsAreUuids) {
  EXPECT_TRUE(IsValidKeyId(kId));
  EXPECT_TRUE(IsValidKeyId("6F6B7D57-7D3A-4A38-8E3E-0C5A1C1F2A01"));
  EXPECT_FALSE(IsValidKeyId("6f6b7d57-7d3a-4a38-8e3e-0c5a1c1f2a0"));
  EXPECT_FALSE(IsValidKeyId("6f6b7d57_7d3a-4a38-8e3e-0c5a1c1f2a01"));
  EXPECT_FALSE(IsValidKeyId("6f6b7d57-7d3a-4a38-8e3e-0c5a1c1f2a0z"));
  EXPECT_FALSE(IsValidKeyId(""));
}

TEST(Etsi014Json, ContainerRoundTripAndWipe) {
  std::vector<QkdKey> keys;
  keys.push_back(QkdKey{kId, SecretBytes::CopyFrom(qsapi::testing::Hex("00ff10203040506070"))});
  std::string body = KeyContainerJson(keys);
  EXPECT_EQ(body, std::string(R"({"keys":[{"key_ID":")") + kId + R"(","key":"AP8QIDBAUGBw"}]})");
  KeyContainerExpectation expect;
  expect.number = 1;
  expect.size_bits = 72;
  auto parsed = ParseKeyContainer(body, expect);
  QSAPI_ASSERT_OK(parsed);
  EXPECT_TRUE(ConstantTimeEqual((*parsed)[0].key.view(), keys[0].key.view()));
  EXPECT_TRUE(std::all_of(body.begin(), body.end(), [](char c) { return c == 0; })) << "the body was not wiped";
  std::string bad = "{";
  EXPECT_FALSE(ParseKeyContainer(bad, expect).ok());
  EXPECT_EQ(bad, std::string(1, '\0')) << "a rejected body is wiped too";
}

TEST(Etsi014Json, RequestsAsTheClientWritesThemAndTheSimulatorReadsThem) {
  KeyRequest r;
  r.number = 3;
  r.size = 512;
  r.additional_slave_sae_ids = {"C"};
  const std::string json = KeyRequestJson(r);
  EXPECT_EQ(json, R"({"additional_slave_SAE_IDs":["C"],"number":3,"size":512})");
  bool mandatory = true;
  auto back = ParseKeyRequest(json, &mandatory);
  QSAPI_ASSERT_OK(back);
  EXPECT_EQ(back->number, 3U);
  EXPECT_EQ(back->size, 512U);
  EXPECT_EQ(back->additional_slave_sae_ids, std::vector<std::string>{"C"});
  EXPECT_FALSE(mandatory);
  QSAPI_ASSERT_OK(ParseKeyRequest(R"({"extension_mandatory":[{"x":1}]})", &mandatory));
  EXPECT_TRUE(mandatory);
  EXPECT_EQ(ParseKeyRequest("", nullptr)->number, 1U);
  for (const char* bad : {R"({"number":0})", R"({"number":-1})", R"({"number":"2"})", R"({"size":1.5})",
                          R"({"bogus":1})", R"({"additional_slave_SAE_IDs":[1]})", R"([1])", "{"}) {
    EXPECT_EQ(ParseKeyRequest(bad, nullptr).error().code(), ErrorCode::kInvalidArgument) << bad;
  }
  const std::vector<std::string> ids{kId};
  auto parsed_ids = ParseKeyIds(KeyIdsJson(ids));
  QSAPI_ASSERT_OK(parsed_ids);
  EXPECT_EQ(*parsed_ids, ids);
  for (const char* bad : {R"({"key_IDs":[]})", R"({"key_IDs":[{"key_ID":"x"}]})", R"({"key_IDs":[{"id":"x"}]})",
                          R"({"key_IDs":"x"})", "{}"}) {
    EXPECT_EQ(ParseKeyIds(bad).error().code(), ErrorCode::kInvalidArgument) << bad;
  }
}

TEST(Etsi014Json, ErrorMessagesAreCutAndPrintable) {
  EXPECT_EQ(*ErrorMessage(R"({"message":"a\u0007b","details":[{}]})"), "a?b");
  EXPECT_EQ(ErrorMessage(R"({"message":")" + std::string(500, 'x') + R"("})")->size(), 203U);
  EXPECT_FALSE(ErrorMessage("<html>401</html>").has_value());
  EXPECT_FALSE(ErrorMessage(R"({"message":5})").has_value());
  EXPECT_EQ(ErrorJson("x \"y\""), R"({"message":"x \"y\""})");
}

}  // namespace
}  // namespace qsapi::qkd::internal
