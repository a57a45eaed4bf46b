// Proves that SoftHSM2, which links the system's libcrypto.so.3 (OpenSSL 3.0 on Debian 12), and
// qsapi's statically linked, hidden OpenSSL 3.5 live in one process without clashing: the module
// is dlopen()ed the way the keystore will load any PKCS#11 module, a token is initialised, and an
// operation runs on each side (AES-256-GCM and SHA-256 in the token; ML-KEM and ML-DSA in qsapi),
// before and after each other.
#include <dlfcn.h>
#include <stdlib.h>

#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include <openssl/crypto.h>
#include <p11-kit-1/p11-kit/pkcs11.h>

#include "qsapi/crypto/kdf.h"
#include "qsapi/crypto/kem.h"
#include "qsapi/crypto/signature.h"
#include "support/test_support.h"

namespace qsapi {
namespace {

using crypto::KemAlgorithm;
using crypto::KemPrivateKey;
using crypto::SignatureAlgorithm;
using crypto::SigningKey;

std::string ModulePath() {
  const char* env = std::getenv("QSAPI_TEST_PKCS11_MODULE");
  return env != nullptr ? env : "/usr/lib/softhsm/libsofthsm2.so";
}

// Runs the library's own crypto: an ML-KEM-768 round trip and an ML-DSA-65 signature.
void ExerciseQsapiCrypto() {
  auto kem = KemPrivateKey::Generate(KemAlgorithm::kMlKem768);
  QSAPI_ASSERT_OK(kem);
  auto enc = kem->public_key().Encapsulate();
  QSAPI_ASSERT_OK(enc);
  auto ss = kem->Decapsulate(enc->ciphertext.view());
  QSAPI_ASSERT_OK(ss);
  EXPECT_TRUE(ConstantTimeEqual(ss->view(), enc->shared_secret.view()));

  auto signer = SigningKey::Generate(SignatureAlgorithm::kMlDsa65);
  QSAPI_ASSERT_OK(signer);
  const Bytes msg = {1, 2, 3};
  auto sig = signer->Sign(msg);
  QSAPI_ASSERT_OK(sig);
  QSAPI_EXPECT_OK(signer->verifying_key().Verify(msg, sig->view()));
}

class SoftHsmCoexistenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("qsapi-softhsm-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_ / "tokens");
    const auto conf = dir_ / "softhsm2.conf";
    std::ofstream(conf) << "directories.tokendir = " << (dir_ / "tokens").string()
                        << "\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n";
    ASSERT_EQ(::setenv("SOFTHSM2_CONF", conf.c_str(), 1), 0);

    module_ = ::dlopen(ModulePath().c_str(), RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(module_, nullptr) << "cannot load " << ModulePath() << ": " << ::dlerror()
                                << " (install softhsm2: scripts/setup.sh)";
    auto get_list = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(module_, "C_GetFunctionList"));  // NOLINT
    ASSERT_NE(get_list, nullptr);
    ASSERT_EQ(get_list(&p11_), CKR_OK);
    ASSERT_EQ(p11_->C_Initialize(nullptr), CKR_OK);
    initialized_ = true;
  }

  void TearDown() override {
    if (session_ != CK_INVALID_HANDLE) p11_->C_CloseSession(session_);
    if (initialized_) p11_->C_Finalize(nullptr);
    if (module_ != nullptr) ::dlclose(module_);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Initialises a token in the first free slot and logs in as its user.
  void OpenUserSession() {
    CK_ULONG count = 0;
    ASSERT_EQ(p11_->C_GetSlotList(CK_TRUE, nullptr, &count), CKR_OK);
    ASSERT_GE(count, 1U);
    std::vector<CK_SLOT_ID> slots(count);
    ASSERT_EQ(p11_->C_GetSlotList(CK_TRUE, slots.data(), &count), CKR_OK);

    std::array<CK_UTF8CHAR, 32> label{};
    label.fill(' ');
    std::memcpy(label.data(), "qsapi-test", 10);
    std::string so_pin = "so-pin-1234";
    std::string user_pin = "user-pin-1234";
    auto pin = [](std::string& s) { return reinterpret_cast<CK_UTF8CHAR_PTR>(s.data()); };  // NOLINT
    ASSERT_EQ(p11_->C_InitToken(slots[0], pin(so_pin), so_pin.size(), label.data()), CKR_OK);

    // SoftHSM2 moves an initialised token to a new slot id: find it again by label.
    ASSERT_EQ(p11_->C_GetSlotList(CK_TRUE, nullptr, &count), CKR_OK);
    slots.resize(count);
    ASSERT_EQ(p11_->C_GetSlotList(CK_TRUE, slots.data(), &count), CKR_OK);
    CK_SLOT_ID slot = 0;
    bool found = false;
    for (CK_ULONG i = 0; i < count && !found; ++i) {
      CK_TOKEN_INFO info{};
      if (p11_->C_GetTokenInfo(slots[i], &info) == CKR_OK && std::memcmp(info.label, label.data(), label.size()) == 0) {
        slot = slots[i];
        found = true;
      }
    }
    ASSERT_TRUE(found);
    ASSERT_EQ(p11_->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &session_), CKR_OK);
    ASSERT_EQ(p11_->C_Login(session_, CKU_SO, pin(so_pin), so_pin.size()), CKR_OK);
    ASSERT_EQ(p11_->C_InitPIN(session_, pin(user_pin), user_pin.size()), CKR_OK);
    ASSERT_EQ(p11_->C_Logout(session_), CKR_OK);
    ASSERT_EQ(p11_->C_Login(session_, CKU_USER, pin(user_pin), user_pin.size()), CKR_OK);
  }

  std::filesystem::path dir_;
  void* module_ = nullptr;
  CK_FUNCTION_LIST_PTR p11_ = nullptr;
  bool initialized_ = false;
  CK_SESSION_HANDLE session_ = CK_INVALID_HANDLE;
};

TEST_F(SoftHsmCoexistenceTest, BothOpenSslsWorkInOneProcess) {
  ExerciseQsapiCrypto();  // before the token does anything
  OpenUserSession();

  // A sensitive, non-extractable AES-256 key inside the token, as the keystore's KEK will be.
  CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
  CK_KEY_TYPE type = CKK_AES;
  CK_ULONG len = 32;
  CK_BBOOL yes = CK_TRUE;
  CK_BBOOL no = CK_FALSE;
  std::array<CK_ATTRIBUTE, 7> tmpl = {{
      {CKA_CLASS, &cls, sizeof(cls)},
      {CKA_KEY_TYPE, &type, sizeof(type)},
      {CKA_VALUE_LEN, &len, sizeof(len)},
      {CKA_TOKEN, &no, sizeof(no)},
      {CKA_SENSITIVE, &yes, sizeof(yes)},
      {CKA_EXTRACTABLE, &no, sizeof(no)},
      {CKA_ENCRYPT, &yes, sizeof(yes)},
  }};
  CK_MECHANISM keygen{CKM_AES_KEY_GEN, nullptr, 0};
  CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
  ASSERT_EQ(p11_->C_GenerateKey(session_, &keygen, tmpl.data(), tmpl.size(), &key), CKR_OK);

  // The token's AES-GCM (SoftHSM2 -> system libcrypto 3.0).
  std::array<CK_BYTE, 12> iv{};
  std::array<CK_BYTE, 4> aad = {'q', 's', 'a', 'p'};
  CK_GCM_PARAMS gcm{iv.data(), iv.size(), 96, aad.data(), aad.size(), 128};
  CK_MECHANISM mech{CKM_AES_GCM, &gcm, sizeof(gcm)};
  std::array<CK_BYTE, 16> plaintext = {'k', 'e', 'y', ' ', 'm', 'a', 't', 'e', 'r', 'i', 'a', 'l'};
  std::array<CK_BYTE, 32> ciphertext{};
  CK_ULONG ct_len = ciphertext.size();
  ASSERT_EQ(p11_->C_EncryptInit(session_, &mech, key), CKR_OK);
  ASSERT_EQ(p11_->C_Encrypt(session_, plaintext.data(), plaintext.size(), ciphertext.data(), &ct_len), CKR_OK);
  EXPECT_EQ(ct_len, plaintext.size() + 16);

  // The token's SHA-256 must agree with qsapi's SHA-256: same answer from two OpenSSLs.
  std::array<CK_BYTE, 3> abc = {'a', 'b', 'c'};
  std::array<CK_BYTE, 32> token_digest{};
  CK_ULONG digest_len = token_digest.size();
  CK_MECHANISM sha{CKM_SHA256, nullptr, 0};
  ASSERT_EQ(p11_->C_DigestInit(session_, &sha), CKR_OK);
  ASSERT_EQ(p11_->C_Digest(session_, abc.data(), abc.size(), token_digest.data(), &digest_len), CKR_OK);
  auto ours = crypto::Hash(crypto::HashAlgorithm::kSha256, abc);
  QSAPI_ASSERT_OK(ours);
  EXPECT_EQ(testing::ToHex(*ours), testing::ToHex(ByteView(token_digest.data(), digest_len)));

  ExerciseQsapiCrypto();  // after the token's OpenSSL has been initialised and used
}

TEST_F(SoftHsmCoexistenceTest, TheTwoOpenSslsAreSeparate) {
  // The module resolves OpenSSL through its own dependency (the system libcrypto.so.3) ...
  using VersionFn = const char* (*)(int);
  auto module_version = reinterpret_cast<VersionFn>(::dlsym(module_, "OpenSSL_version"));  // NOLINT
  ASSERT_NE(module_version, nullptr) << "the PKCS#11 module does not link libcrypto";
  const std::string theirs = module_version(OPENSSL_VERSION);
  const std::string ours = OpenSSL_version(OPENSSL_VERSION);
  EXPECT_EQ(ours.rfind("OpenSSL 3.5", 0), 0U) << ours;
  EXPECT_NE(theirs, ours) << "both resolve to one OpenSSL; the test machine's system OpenSSL is not 3.0?";
  // ... and qsapi's static copy is not in the process's global symbol table, so the module can
  // never bind to it by accident (-Wl,--exclude-libs,libcrypto.a:libssl.a and no -rdynamic).
  // A binary that loads libpq (the PostgreSQL store; linkers that do not drop unused libraries
  // keep it in every binary) has the system libcrypto in its global scope through libpq: then
  // what the global scope finds must be the system's, never ours.
  auto global_version = reinterpret_cast<VersionFn>(::dlsym(RTLD_DEFAULT, "OpenSSL_version"));  // NOLINT
  if (::dlsym(RTLD_DEFAULT, "PQlibVersion") == nullptr) {
    EXPECT_EQ(::dlsym(RTLD_DEFAULT, "EVP_PKEY_encapsulate"), nullptr);
    EXPECT_EQ(global_version, nullptr);
  } else if (global_version != nullptr) {
    EXPECT_EQ(std::string(global_version(OPENSSL_VERSION)), theirs) << "the global scope reaches qsapi's OpenSSL";
  }
}

}  // namespace
}  // namespace qsapi
