// The constant-time test: runs the secret-comparison, MAC-check, AEAD (key schedule, seal and tag
// check), key-derivation and API-token paths under valgrind's memcheck with the secrets marked
// undefined (memcheck client requests), so that any branch or memory index that depends on a
// secret is reported as a use of an uninitialised value and valgrind exits non-zero.
//
//   qsapi_ct_test            every covered path; clean under valgrind (ctest ct.valgrind_secrets)
//   qsapi_ct_test negative   a comparison that returns at the first differing byte; valgrind must
//                            report it (ctest ct.valgrind_catches_early_exit_compare)
//
// Results that are public by definition (whether a comparison or tag check succeeded, the bytes
// a test compares with what it expects) are marked defined before anything branches on them:
// inside the library by qsapi::internal::Declassify (src/common/internal/constant_time.h), here
// by Public(). Outputs of key derivation are checked to be still undefined, which shows that the
// marking reached them (a test that lost its taint would pass vacuously).
// What is covered and what is not: docs/RELIABILITY.md, "Constant time".
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <valgrind/memcheck.h>

#include "qsapi/crypto/aead.h"
#include "qsapi/crypto/kdf.h"
#include "qsapi/crypto/random.h"
#include "qsapi/secret.h"
#include "server/tokens.h"

#pragma GCC diagnostic ignored "-Wold-style-cast"  // the memcheck.h macros

namespace {

using qsapi::Bytes;
using qsapi::ByteView;
using qsapi::SecretBytes;

int failures = 0;

void Expect(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "ct: FAILED: %s\n", what);
    ++failures;
  }
}

// Secret marks bytes as undefined: from here on, memcheck reports a branch or an address that
// depends on them.
void Secret(const void* p, std::size_t n) { (void)VALGRIND_MAKE_MEM_UNDEFINED(p, n); }
// Public marks bytes as defined (declassified) before the test branches on them.
template <typename T>
const T& Public(const T& v) {
  (void)VALGRIND_MAKE_MEM_DEFINED(&v, sizeof v);
  return v;
}
void PublicBytes(const void* p, std::size_t n) { (void)VALGRIND_MAKE_MEM_DEFINED(p, n); }
// StillSecret tells whether any bit of the bytes is undefined (without reporting an error).
bool StillSecret(const void* p, std::size_t n) {
  std::string vbits(n, '\0');
  if (VALGRIND_GET_VBITS(p, vbits.data(), n) != 1) return false;
  for (const char c : vbits) {
    if (c != 0) return true;
  }
  return false;
}

ByteView AsBytes(const std::string& s) { return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()}; }

SecretBytes RandomSecret(std::size_t n) {
  auto r = qsapi::crypto::RandomSecret(n);
  if (!r.ok()) std::abort();
  return std::move(*r);
}

void ConstantTimeEqualPath() {
  SecretBytes a = RandomSecret(32);
  SecretBytes b = a.Clone();
  SecretBytes c = a.Clone();
  c.data()[31] ^= 1;
  Secret(a.data(), a.size());
  Secret(b.data(), b.size());
  Secret(c.data(), c.size());
  Expect(qsapi::ConstantTimeEqual(a.view(), b.view()), "ConstantTimeEqual of equal secrets");
  Expect(!qsapi::ConstantTimeEqual(a.view(), c.view()), "ConstantTimeEqual of different secrets");
}

void HmacVerifyPath() {
  using qsapi::crypto::HashAlgorithm;
  const std::string data = "message authenticated with a secret key";
  for (const HashAlgorithm h : {HashAlgorithm::kSha256, HashAlgorithm::kSha384, HashAlgorithm::kSha512}) {
    for (const std::size_t key_len : {std::size_t{32}, std::size_t{200}}) {  // 200: longer than a block, hashed first
      SecretBytes key = RandomSecret(key_len);
      const Bytes tag = *qsapi::crypto::Hmac(h, key.view(), AsBytes(data));
      Bytes bad = tag;
      bad[0] ^= 0x80;
      Secret(key.data(), key.size());
      Expect(Public(qsapi::crypto::HmacVerify(h, key.view(), AsBytes(data), tag).ok()), "HmacVerify, right tag");
      Expect(!Public(qsapi::crypto::HmacVerify(h, key.view(), AsBytes(data), bad).ok()), "HmacVerify, wrong tag");
      auto mac = qsapi::crypto::Hmac(h, key.view(), AsBytes(data));
      Expect(mac.ok() && StillSecret(mac->data(), mac->size()), "HMAC output carries the key's taint");
    }
  }
}

void KeyDerivationPaths() {
  using qsapi::crypto::HashAlgorithm;
  const std::string salt = "salt", info = "info";
  for (const HashAlgorithm h : {HashAlgorithm::kSha256, HashAlgorithm::kSha384, HashAlgorithm::kSha512}) {
    SecretBytes ikm = RandomSecret(64);
    Secret(ikm.data(), ikm.size());
    auto okm = qsapi::crypto::Hkdf(h, AsBytes(salt), ikm.view(), AsBytes(info), 96);
    Expect(okm.ok(), "Hkdf");
    Expect(okm.ok() && StillSecret(okm->data(), okm->size()), "Hkdf output carries the IKM's taint");
    auto prk = qsapi::crypto::HkdfExtract(h, AsBytes(salt), ikm.view());
    Expect(prk.ok() && StillSecret(prk->view().data(), prk->size()), "HkdfExtract");
    if (!prk.ok()) continue;
    auto expanded = qsapi::crypto::HkdfExpand(h, *prk, AsBytes(info), 200);
    Expect(expanded.ok() && StillSecret(expanded->data(), expanded->size()), "HkdfExpand");
    auto labelled = qsapi::crypto::HkdfExpandLabel(h, *prk, "ct test", AsBytes(info), 48);
    Expect(labelled.ok() && StillSecret(labelled->data(), labelled->size()), "HkdfExpandLabel");
  }
}

void AeadPaths() {
  using qsapi::crypto::AeadAlgorithm;
  const std::string plaintext = "plaintext under a secret key", ad = "associated data";
  for (const AeadAlgorithm alg : {AeadAlgorithm::kAes256Gcm, AeadAlgorithm::kXChaCha20Poly1305}) {
    SecretBytes raw = RandomSecret(32);
    Secret(raw.data(), raw.size());
    auto aead = qsapi::crypto::Aead::New(alg, qsapi::SymmetricKey::CopyFrom(raw.view()));  // the key schedule
    Expect(aead.ok(), "Aead::New");
    if (!aead.ok()) continue;
    auto ct = aead->Encrypt(AsBytes(plaintext), AsBytes(ad));
    Expect(ct.ok(), "Aead::Encrypt");
    if (!ct.ok()) continue;
    Expect(StillSecret(ct->data() + 24, ct->size() - 24), "the ciphertext carries the key's taint");
    // The ciphertext is public once it leaves: the receiver branches on nothing else.
    PublicBytes(ct->data(), ct->size());
    auto pt = aead->Decrypt(*ct, AsBytes(ad));
    Expect(Public(pt.ok()), "Aead::Decrypt, intact");
    if (pt.ok()) {
      Expect(StillSecret(pt->data(), pt->size()), "the plaintext carries the key's taint");
      PublicBytes(pt->data(), pt->size());
      Expect(*pt == Bytes(plaintext.begin(), plaintext.end()), "Aead::Decrypt returns the plaintext");
    }
    Bytes forged = *ct;
    forged.back() ^= 1;
    auto refused = aead->Decrypt(forged, AsBytes(ad));
    Expect(!Public(refused.ok()), "Aead::Decrypt refuses a forged tag");
  }
}

void ApiTokenPath() {
  const std::filesystem::path file =
      std::filesystem::temp_directory_path() / ("qsapi-ct-tokens-" + std::to_string(::getpid()) + ".json");
  std::filesystem::remove(file);
  auto store = qsapi::server::TokenStore::Load(file);
  if (!store.ok()) std::abort();
  auto token = store->Create("ct", qsapi::server::Policy{{"*"}, {"*"}});
  if (!token.ok()) std::abort();
  auto loaded = qsapi::server::TokenStore::Load(file);
  std::filesystem::remove(file);
  if (!loaded.ok()) std::abort();
  // The stored hashes and the secret part of the presented token (after "qsapi_<id>_") are secret.
  for (const auto& e : loaded->entries()) Secret(e.hash.data(), e.hash.size());
  std::string presented(qsapi::server::TokenText(*token));
  std::string wrong = presented;
  wrong.back() = wrong.back() == 'A' ? 'B' : 'A';
  Secret(presented.data() + 15, presented.size() - 15);
  Secret(wrong.data() + 15, wrong.size() - 15);
  Expect(Public(loaded->Authenticate(presented).ok()), "TokenStore::Authenticate, right token");
  Expect(!Public(loaded->Authenticate(wrong).ok()), "TokenStore::Authenticate, wrong secret");
}

// EarlyExitCompare is the comparison the library must not use: it returns at the first differing
// byte, so its running time tells how long a prefix matched.
__attribute__((noinline)) bool EarlyExitCompare(ByteView a, ByteView b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i] != b[i]) return false;
  }
  return true;
}

void NegativeControl() {
  SecretBytes a = RandomSecret(32);
  SecretBytes b = a.Clone();
  Secret(a.data(), a.size());
  Expect(Public(EarlyExitCompare(a.view(), b.view())), "EarlyExitCompare of equal bytes");
}

}  // namespace

int main(int argc, char** argv) {
  if (RUNNING_ON_VALGRIND == 0) {
    std::fprintf(stderr, "qsapi_ct_test: run under valgrind (ctest does): outside it nothing is checked\n");
    return 2;
  }
  if (argc > 1 && std::strcmp(argv[1], "negative") == 0) {  // NOLINT
    NegativeControl();
  } else {
    ConstantTimeEqualPath();
    HmacVerifyPath();
    KeyDerivationPaths();
    AeadPaths();
    ApiTokenPath();
  }
  std::printf("qsapi_ct_test: %s, %d failed expectations\n", argc > 1 ? "negative control" : "all paths", failures);
  return failures == 0 ? 0 : 1;
}
