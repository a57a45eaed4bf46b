// qsapi/crypto/self_test.h: a start-up self-test of the crypto layer.
//
// RunSelfTest runs a known-answer test for HKDF (RFC 5869 test case 1) and X-Wing (the draft's
// first vector), and pairwise-consistency tests for every KEM, ML-DSA-65, SLH-DSA-SHA2-128f, the
// ML-DSA-65 + Ed25519 composite and both AEADs (round trip, then a flipped bit must fail).
// It returns the first failure, or one line per passed check.
#ifndef QSAPI_CRYPTO_SELF_TEST_H_
#define QSAPI_CRYPTO_SELF_TEST_H_

#include <string>
#include <vector>

#include "qsapi/result.h"

namespace qsapi::crypto {

struct SelfTestReport {
  std::vector<std::string> lines;
};

Result<SelfTestReport> RunSelfTest();

}  // namespace qsapi::crypto

#endif  // QSAPI_CRYPTO_SELF_TEST_H_
