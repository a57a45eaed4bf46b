// Internal: one-time libsodium initialisation.
#ifndef QSAPI_SRC_CRYPTO_INTERNAL_SODIUM_INIT_H_
#define QSAPI_SRC_CRYPTO_INTERNAL_SODIUM_INIT_H_

#include <cstdio>
#include <cstdlib>

#include <sodium.h>

namespace qsapi::crypto::internal {

// EnsureSodiumInitialized calls sodium_init() once (thread-safe); a failure is fatal, because
// libsodium cannot be used without it.
inline void EnsureSodiumInitialized() {
  static const bool ok = [] {
    if (sodium_init() < 0) {
      std::fputs("qsapi: sodium_init() failed\n", stderr);
      std::abort();
    }
    return true;
  }();
  (void)ok;
}

}  // namespace qsapi::crypto::internal

#endif  // QSAPI_SRC_CRYPTO_INTERNAL_SODIUM_INIT_H_
