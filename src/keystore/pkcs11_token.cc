// PKCS#11 through its C API (p11-kit's pkcs11.h for the constants and types).
//
// One process-wide record per module path holds the dlopen handle and the function list;
// C_Initialize runs when the first user opens it (with CKF_OS_LOCKING_OK) and C_Finalize when the
// last one closes it, so that a later open re-reads the module's configuration (SoftHSM2 reads
// SOFTHSM2_CONF in C_Initialize). Sessions are pooled; the user logs in once (PKCS#11 logins are
// per application, not per session); the KEK's object handle is found once and cached.
#include "keystore/internal/pkcs11_token.h"

#include <dlfcn.h>
#include <sys/stat.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <utility>
#include <vector>

#include <p11-kit-1/p11-kit/pkcs11.h>

#include "common/internal/secret_file.h"
#include "qsapi/crypto/random.h"

namespace qsapi::keystore::internal {
namespace {

std::string CkrName(CK_RV rv) {
  switch (rv) {
    case CKR_OK: return "CKR_OK";
    case CKR_HOST_MEMORY: return "CKR_HOST_MEMORY";
    case CKR_GENERAL_ERROR: return "CKR_GENERAL_ERROR";
    case CKR_FUNCTION_FAILED: return "CKR_FUNCTION_FAILED";
    case CKR_ARGUMENTS_BAD: return "CKR_ARGUMENTS_BAD";
    case CKR_DEVICE_ERROR: return "CKR_DEVICE_ERROR";
    case CKR_DEVICE_MEMORY: return "CKR_DEVICE_MEMORY (the token is full)";
    case CKR_DEVICE_REMOVED: return "CKR_DEVICE_REMOVED";
    case CKR_ENCRYPTED_DATA_INVALID: return "CKR_ENCRYPTED_DATA_INVALID";
    case CKR_ENCRYPTED_DATA_LEN_RANGE: return "CKR_ENCRYPTED_DATA_LEN_RANGE";
    case CKR_KEY_HANDLE_INVALID: return "CKR_KEY_HANDLE_INVALID";
    case CKR_MECHANISM_INVALID: return "CKR_MECHANISM_INVALID";
    case CKR_MECHANISM_PARAM_INVALID: return "CKR_MECHANISM_PARAM_INVALID";
    case CKR_OBJECT_HANDLE_INVALID: return "CKR_OBJECT_HANDLE_INVALID";
    case CKR_PIN_INCORRECT: return "CKR_PIN_INCORRECT";
    case CKR_PIN_LOCKED: return "CKR_PIN_LOCKED";
    case CKR_PIN_LEN_RANGE: return "CKR_PIN_LEN_RANGE";
    case CKR_SESSION_HANDLE_INVALID: return "CKR_SESSION_HANDLE_INVALID";
    case CKR_SESSION_CLOSED: return "CKR_SESSION_CLOSED";
    case CKR_SLOT_ID_INVALID: return "CKR_SLOT_ID_INVALID";
    case CKR_TOKEN_NOT_PRESENT: return "CKR_TOKEN_NOT_PRESENT";
    case CKR_TOKEN_NOT_RECOGNIZED: return "CKR_TOKEN_NOT_RECOGNIZED";
    case CKR_TOKEN_WRITE_PROTECTED: return "CKR_TOKEN_WRITE_PROTECTED";
    case CKR_USER_NOT_LOGGED_IN: return "CKR_USER_NOT_LOGGED_IN";
    case CKR_USER_PIN_NOT_INITIALIZED: return "CKR_USER_PIN_NOT_INITIALIZED";
    case CKR_CRYPTOKI_NOT_INITIALIZED: return "CKR_CRYPTOKI_NOT_INITIALIZED";
    case CKR_BUFFER_TOO_SMALL: return "CKR_BUFFER_TOO_SMALL";
    default: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "CKR 0x%08lx", static_cast<unsigned long>(rv));
      return buf;
    }
  }
}

bool IsRemoval(CK_RV rv) {
  return rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT || rv == CKR_SESSION_HANDLE_INVALID ||
         rv == CKR_SESSION_CLOSED || rv == CKR_DEVICE_ERROR || rv == CKR_CRYPTOKI_NOT_INITIALIZED;
}

// A loaded module, shared by every user of the same path in this process.
struct Module {
  void* handle = nullptr;
  CK_FUNCTION_LIST_PTR fns = nullptr;
  int users = 0;
  bool finalize = false;  // we initialised it
};

std::mutex
    g_modules_mu;  // NOLINT(cppcoreguidelines-avoid-non-const-global-variables): guards the process's module table
std::map<std::string, Module>& Modules() {
  static std::map<std::string, Module> modules;
  return modules;
}

// Initialize runs C_Initialize with OS locking (the module may be used from several threads).
CK_RV Initialize(CK_FUNCTION_LIST_PTR fns) {
  CK_C_INITIALIZE_ARGS args{};
  args.flags = CKF_OS_LOCKING_OK;
  return fns->C_Initialize(&args);
}

class ModuleRef {
 public:
  static Result<ModuleRef> Acquire(const std::string& path) {
    const std::lock_guard<std::mutex> lock(g_modules_mu);
    Module& m = Modules()[path];
    if (m.users == 0) {
      struct stat st {};
      if (::stat(path.c_str(), &st) != 0) {
        Modules().erase(path);
        return FailedPrecondition("PKCS#11 module " + path +
                                  " does not exist (install softhsm2 with scripts/setup.sh, or set the module path "
                                  "of your HSM)");
      }
      if (m.handle == nullptr) {
        m.handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (m.handle == nullptr) {
          const char* why = ::dlerror();  // NOLINT(concurrency-mt-unsafe): glibc keeps it per thread
          Modules().erase(path);
          return FailedPrecondition("cannot load PKCS#11 module " + path + ": " + (why != nullptr ? why : "?"));
        }
        // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): dlsym returns void*.
        auto get_list = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(m.handle, "C_GetFunctionList"));
        if (get_list == nullptr || get_list(&m.fns) != CKR_OK || m.fns == nullptr) {
          ::dlclose(m.handle);
          Modules().erase(path);
          return FailedPrecondition(path + " is not a PKCS#11 module (no usable C_GetFunctionList)");
        }
      }
      const CK_RV rv = Initialize(m.fns);
      if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
        return Unavailable("PKCS#11 module " + path + ": C_Initialize failed: " + CkrName(rv) +
                           " (for SoftHSM2: is SOFTHSM2_CONF readable and its token directory present?)");
      }
      m.finalize = rv == CKR_OK;
    }
    ++m.users;
    return ModuleRef(path, m.fns);
  }
  ModuleRef(ModuleRef&& o) noexcept : path_(std::move(o.path_)), fns_(std::exchange(o.fns_, nullptr)) {}
  ModuleRef& operator=(ModuleRef&&) = delete;
  ModuleRef(const ModuleRef&) = delete;
  ModuleRef& operator=(const ModuleRef&) = delete;
  ~ModuleRef() {
    if (fns_ == nullptr) return;
    const std::lock_guard<std::mutex> lock(g_modules_mu);
    Module& m = Modules()[path_];
    if (--m.users == 0 && m.finalize) {
      m.fns->C_Finalize(nullptr);
      m.finalize = false;
    }
  }
  [[nodiscard]] CK_FUNCTION_LIST_PTR fns() const { return fns_; }
  [[nodiscard]] const std::string& path() const { return path_; }

  // Reinitialize finalizes and initializes the module again, when this process initialised it: the
  // only way to make some modules (SoftHSM2) see a token whose storage went away and came back.
  // Every session of every user of the module becomes invalid; they recover as this one does.
  Status Reinitialize() const {
    const std::lock_guard<std::mutex> lock(g_modules_mu);
    Module& m = Modules()[path_];
    if (!m.finalize) return FailedPrecondition("PKCS#11 module " + path_ + " was initialised by another user");
    m.fns->C_Finalize(nullptr);
    const CK_RV rv = Initialize(m.fns);
    if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
      // Still ours: the next recovery attempt initialises it again (C_Finalize on a module that is
      // not initialised only returns an error).
      return Unavailable("PKCS#11 module " + path_ + ": C_Initialize failed: " + CkrName(rv) +
                         " (is the token's storage back?)");
    }
    return OkStatus();
  }

 private:
  ModuleRef(std::string path, CK_FUNCTION_LIST_PTR fns) : path_(std::move(path)), fns_(fns) {}
  std::string path_;
  CK_FUNCTION_LIST_PTR fns_;
};

std::string Trim(const unsigned char* s, std::size_t n) {
  std::string out(reinterpret_cast<const char*>(s), n);  // NOLINT(cppcoreguidelines-pro-type-reinterpret-cast)
  while (!out.empty() && (out.back() == ' ' || out.back() == '\0')) out.pop_back();
  return out;
}

struct FoundToken {
  CK_SLOT_ID slot = 0;
  std::string description;
};

Result<std::optional<FoundToken>> FindToken(CK_FUNCTION_LIST_PTR p11, const std::string& label) {
  CK_ULONG count = 0;
  CK_RV rv = p11->C_GetSlotList(CK_TRUE, nullptr, &count);
  if (rv != CKR_OK) return Unavailable("C_GetSlotList failed: " + CkrName(rv));
  std::vector<CK_SLOT_ID> slots(count);
  rv = p11->C_GetSlotList(CK_TRUE, slots.data(), &count);
  if (rv != CKR_OK) return Unavailable("C_GetSlotList failed: " + CkrName(rv));
  slots.resize(count);
  std::optional<FoundToken> found;
  for (CK_SLOT_ID slot : slots) {
    CK_TOKEN_INFO info{};
    if (p11->C_GetTokenInfo(slot, &info) != CKR_OK) continue;
    if ((info.flags & CKF_TOKEN_INITIALIZED) == 0) continue;
    if (Trim(info.label, sizeof info.label) != label) continue;
    if (found) return FailedPrecondition("more than one token is labelled \"" + label + "\"");
    found = FoundToken{slot, Trim(info.manufacturerID, sizeof info.manufacturerID) + " " +
                                 Trim(info.model, sizeof info.model) + ", slot " + std::to_string(slot) + ", token \"" +
                                 label + "\""};
  }
  return found;
}

CK_UTF8CHAR_PTR Utf8(const SecretBytes& s) {
  // PKCS#11 takes non-const pointers for inputs it does not modify.
  return const_cast<CK_UTF8CHAR_PTR>(s.data());  // NOLINT(cppcoreguidelines-pro-type-const-cast)
}

constexpr std::uint8_t kBlobVersion = 1;
constexpr std::size_t kIvSize = 12;
constexpr std::size_t kTagSize = 16;
constexpr std::size_t kMaxSessions = 8;

class TokenProtector final : public KeyProtector {
 public:
  TokenProtector(ModuleRef module, FoundToken token, std::string token_label, std::string kek_label)
      : module_(std::move(module)),
        token_(std::move(token)),
        slot_(token_.slot),
        token_label_(std::move(token_label)),
        kek_label_(std::move(kek_label)) {}
  ~TokenProtector() override {
    const std::lock_guard<std::mutex> lock(mu_);
    for (CK_SESSION_HANDLE s : idle_) p11()->C_CloseSession(s);
  }
  TokenProtector(const TokenProtector&) = delete;
  TokenProtector& operator=(const TokenProtector&) = delete;
  TokenProtector(TokenProtector&&) = delete;
  TokenProtector& operator=(TokenProtector&&) = delete;

  Status Login(const SecretBytes& pin) {
    pin_ = SecretBytes::CopyFrom(pin.view());  // kept (locked, never dumped) to log in again after a token comes back
    QSAPI_ASSIGN_OR_RETURN(CK_SESSION_HANDLE s, Acquire());
    const CK_RV rv = p11()->C_Login(s, CKU_USER, Utf8(pin), pin.size());
    Release(s, rv);
    if (rv == CKR_PIN_INCORRECT) {
      return PermissionDenied(token_.description + ": the user PIN is wrong (CKR_PIN_INCORRECT)");
    }
    if (rv == CKR_PIN_LOCKED) {
      return PermissionDenied(token_.description + ": the user PIN is locked; the SO must reset it");
    }
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
      return Unavailable(token_.description + ": C_Login failed: " + CkrName(rv));
    }
    return OkStatus();
  }

  Status FindOrCreateKek(bool create) {
    QSAPI_ASSIGN_OR_RETURN(CK_SESSION_HANDLE s, Acquire());
    Status st = FindKek(s);
    if (!st.ok() && st.error().code() == ErrorCode::kNotFound && create) st = CreateKek(s);
    Release(s, CKR_OK);
    return st;
  }

  Result<Bytes> Wrap(ByteView plaintext, ByteView associated_data) override {
    Bytes blob(1 + kIvSize + plaintext.size() + kTagSize);
    blob[0] = kBlobVersion;
    QSAPI_RETURN_IF_ERROR(crypto::RandomFill(std::span<std::uint8_t>(blob).subspan(1, kIvSize)));
    CK_GCM_PARAMS params{};
    params.iv_ptr = blob.data() + 1;
    params.iv_len = kIvSize;
    params.iv_bits = kIvSize * 8;
    params.aad_ptr = const_cast<CK_BYTE_PTR>(associated_data.data());  // NOLINT(cppcoreguidelines-pro-type-const-cast)
    params.aad_len = associated_data.size();
    params.tag_bits = kTagSize * 8;
    CK_MECHANISM mech{CKM_AES_GCM, &params, sizeof params};
    CK_ULONG out_len = 0;
    std::string step;
    const auto attempt = [&]() -> Result<CK_RV> {
      CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
      step = "C_OpenSession";
      if (const CK_RV open = AcquireRv(&s); open != CKR_OK) return open;
      step = "C_Encrypt (CKM_AES_GCM)";
      CK_RV rv = p11()->C_EncryptInit(s, &mech, kek_.load());
      out_len = blob.size() - 1 - kIvSize;
      if (rv == CKR_OK) {
        rv = p11()->C_Encrypt(
            s,
            const_cast<CK_BYTE_PTR>(plaintext.data()),  // NOLINT(cppcoreguidelines-pro-type-const-cast)
            plaintext.size(), blob.data() + 1 + kIvSize, &out_len);
      }
      Release(s, rv);
      return rv;
    };
    QSAPI_ASSIGN_OR_RETURN(CK_RV rv, WithRecovery(attempt));
    if (rv != CKR_OK) return TokenError(step, rv);
    if (out_len != plaintext.size() + kTagSize)
      return Internal(token_.description + ": unexpected AES-GCM output length");
    return blob;
  }

  Result<SecretBytes> Unwrap(ByteView blob, ByteView associated_data) override {
    if (blob.size() < 1 + kIvSize + kTagSize || blob[0] != kBlobVersion) {
      return DataLoss("wrapped key material is malformed (wrong length or format)");
    }
    CK_GCM_PARAMS params{};
    params.iv_ptr = const_cast<CK_BYTE_PTR>(blob.data() + 1);  // NOLINT(cppcoreguidelines-pro-type-const-cast)
    params.iv_len = kIvSize;
    params.iv_bits = kIvSize * 8;
    params.aad_ptr = const_cast<CK_BYTE_PTR>(associated_data.data());  // NOLINT(cppcoreguidelines-pro-type-const-cast)
    params.aad_len = associated_data.size();
    params.tag_bits = kTagSize * 8;
    CK_MECHANISM mech{CKM_AES_GCM, &params, sizeof params};
    const std::size_t ct_len = blob.size() - 1 - kIvSize;
    SecretBytes out(ct_len);  // the module may want room for the tag too
    CK_ULONG out_len = 0;
    std::string step;
    const auto attempt = [&]() -> Result<CK_RV> {
      CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
      step = "C_OpenSession";
      if (const CK_RV open = AcquireRv(&s); open != CKR_OK) return open;
      step = "C_Decrypt (CKM_AES_GCM)";
      CK_RV rv = p11()->C_DecryptInit(s, &mech, kek_.load());
      out_len = out.size();
      if (rv == CKR_OK) {
        rv = p11()->C_Decrypt(s, const_cast<CK_BYTE_PTR>(blob.data() + 1 + kIvSize),  // NOLINT
                              ct_len, out.data(), &out_len);
      }
      Release(s, rv);
      return rv;
    };
    QSAPI_ASSIGN_OR_RETURN(CK_RV rv, WithRecovery(attempt));
    if (rv == CKR_ENCRYPTED_DATA_INVALID || rv == CKR_ENCRYPTED_DATA_LEN_RANGE || rv == CKR_GENERAL_ERROR ||
        rv == CKR_FUNCTION_FAILED) {
      return DataLoss(
          "wrapped key material fails authentication under the KEK (altered, moved to another key or "
          "version, or wrapped by another token)");
    }
    if (rv != CKR_OK) return TokenError(step, rv);
    if (out_len != ct_len - kTagSize) return Internal(token_.description + ": unexpected AES-GCM output length");
    out.Shrink(out_len);
    return out;
  }

  std::string Describe() const override { return token_.description + ", KEK \"" + kek_label_ + "\""; }

 private:
  CK_FUNCTION_LIST_PTR p11() const { return module_.fns(); }

  Error TokenError(const std::string& what, CK_RV rv) const {
    if (IsRemoval(rv)) {
      return Unavailable(token_.description + ": " + what + " failed: " + CkrName(rv) +
                         " (was the token removed or the module restarted?)");
    }
    return Unavailable(token_.description + ": " + what + " failed: " + CkrName(rv));
  }

  // Stale handles after the token went away and came back (SoftHSM2 invalidates object handles
  // when its token directory disappears; a hardware token that is re-inserted invalidates sessions
  // and the login). Such a failure drops the idle sessions, logs in again, finds the KEK again
  // (checking its attributes again) and retries the operation once.
  static bool IsStale(CK_RV rv) {
    return IsRemoval(rv) || rv == CKR_OBJECT_HANDLE_INVALID || rv == CKR_KEY_HANDLE_INVALID ||
           rv == CKR_USER_NOT_LOGGED_IN;
  }
  template <typename Attempt>
  Result<CK_RV> WithRecovery(const Attempt& attempt) {
    QSAPI_ASSIGN_OR_RETURN(CK_RV rv, attempt());
    if (!IsStale(rv)) return rv;
    if (Status r = Recover(); !r.ok()) return r.error();
    return attempt();
  }
  Status Recover() {
    const std::lock_guard<std::mutex> recovering(recover_mu_);
    {
      const std::lock_guard<std::mutex> lock(mu_);
      for (CK_SESSION_HANDLE s : idle_) p11()->C_CloseSession(s);
      open_ -= idle_.size();
      idle_.clear();
    }
    cv_.notify_all();
    Status st = Login(SecretBytes::CopyFrom(pin_.view()));
    if (!st.ok() && st.error().code() != ErrorCode::kPermissionDenied) {
      // The module itself lost the token: initialise it again and find the token anew.
      QSAPI_RETURN_IF_ERROR(module_.Reinitialize());
      {
        const std::lock_guard<std::mutex> lock(mu_);
        idle_.clear();  // handles of the finalized module; nothing to close
        open_ = 0;
      }
      QSAPI_ASSIGN_OR_RETURN(std::optional<FoundToken> token, FindToken(p11(), token_label_));
      if (!token) return Unavailable(token_.description + " is not present (was the token removed?)");
      slot_.store(token->slot);
      st = Login(SecretBytes::CopyFrom(pin_.view()));
    }
    QSAPI_RETURN_IF_ERROR(st);
    return FindOrCreateKek(/*create=*/false);
  }

  // AcquireRv takes an idle session or opens one; returns the C_OpenSession result.
  CK_RV AcquireRv(CK_SESSION_HANDLE* out) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !idle_.empty() || open_ < kMaxSessions; });
    if (!idle_.empty()) {
      *out = idle_.back();
      idle_.pop_back();
      return CKR_OK;
    }
    const CK_RV rv = p11()->C_OpenSession(slot_.load(), CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, out);
    if (rv == CKR_OK) ++open_;
    return rv;
  }
  Result<CK_SESSION_HANDLE> Acquire() {
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
    if (const CK_RV rv = AcquireRv(&s); rv != CKR_OK) return TokenError("C_OpenSession", rv);
    return s;
  }

  // Release returns a session to the pool, or closes it when the last call says it is broken.
  void Release(CK_SESSION_HANDLE s, CK_RV last) {
    {
      const std::lock_guard<std::mutex> lock(mu_);
      if (IsRemoval(last)) {
        p11()->C_CloseSession(s);
        --open_;
      } else {
        idle_.push_back(s);
      }
    }
    cv_.notify_one();
  }

  Status FindKek(CK_SESSION_HANDLE s) {
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE type = CKK_AES;
    std::vector<CK_ATTRIBUTE> tmpl = {
        {CKA_CLASS, &cls, sizeof cls},
        {CKA_KEY_TYPE, &type, sizeof type},
        {CKA_LABEL, kek_label_.data(), kek_label_.size()},
    };
    CK_RV rv = p11()->C_FindObjectsInit(s, tmpl.data(), tmpl.size());
    if (rv != CKR_OK) return TokenError("C_FindObjectsInit", rv);
    CK_OBJECT_HANDLE found[2];
    CK_ULONG n = 0;
    rv = p11()->C_FindObjects(s, found, 2, &n);
    p11()->C_FindObjectsFinal(s);
    if (rv != CKR_OK) return TokenError("C_FindObjects", rv);
    if (n == 0) {
      return NotFound(token_.description + " holds no KEK labelled \"" + kek_label_ +
                      "\" (run `qsapi init`, or check the token and label)");
    }
    if (n > 1)
      return FailedPrecondition(token_.description + " holds more than one KEK labelled \"" + kek_label_ + "\"");
    // The KEK must be what we rely on: sensitive and never extractable.
    CK_BBOOL sensitive = CK_FALSE;
    CK_BBOOL extractable = CK_TRUE;
    CK_ULONG len = 0;
    std::vector<CK_ATTRIBUTE> check = {
        {CKA_SENSITIVE, &sensitive, sizeof sensitive},
        {CKA_EXTRACTABLE, &extractable, sizeof extractable},
        {CKA_VALUE_LEN, &len, sizeof len},
    };
    rv = p11()->C_GetAttributeValue(s, found[0], check.data(), check.size());
    if (rv != CKR_OK) return TokenError("C_GetAttributeValue", rv);
    if (sensitive != CK_TRUE || extractable != CK_FALSE || len != 32) {
      return FailedPrecondition(token_.description + ": the KEK \"" + kek_label_ +
                                "\" is not a sensitive, non-extractable AES-256 key; refusing to use it");
    }
    kek_.store(found[0]);
    return OkStatus();
  }

  Status CreateKek(CK_SESSION_HANDLE s) {
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE type = CKK_AES;
    CK_ULONG len = 32;
    CK_BBOOL yes = CK_TRUE;
    CK_BBOOL no = CK_FALSE;
    std::vector<CK_ATTRIBUTE> tmpl = {
        {CKA_CLASS, &cls, sizeof cls},     {CKA_KEY_TYPE, &type, sizeof type},
        {CKA_VALUE_LEN, &len, sizeof len}, {CKA_LABEL, kek_label_.data(), kek_label_.size()},
        {CKA_TOKEN, &yes, sizeof yes},     {CKA_PRIVATE, &yes, sizeof yes},
        {CKA_SENSITIVE, &yes, sizeof yes}, {CKA_EXTRACTABLE, &no, sizeof no},
        {CKA_ENCRYPT, &yes, sizeof yes},   {CKA_DECRYPT, &yes, sizeof yes},
        {CKA_WRAP, &no, sizeof no},        {CKA_UNWRAP, &no, sizeof no},
        {CKA_MODIFIABLE, &no, sizeof no},
    };
    CK_MECHANISM keygen{CKM_AES_KEY_GEN, nullptr, 0};
    CK_OBJECT_HANDLE created = CK_INVALID_HANDLE;
    const CK_RV rv = p11()->C_GenerateKey(s, &keygen, tmpl.data(), tmpl.size(), &created);
    if (rv == CKR_OK) kek_.store(created);
    if (rv == CKR_DEVICE_MEMORY || rv == CKR_DEVICE_ERROR) {
      return ResourceExhausted(token_.description + ": creating the KEK (C_GenerateKey) failed: " + CkrName(rv) +
                               " (the token cannot store the key: is it full, or its storage not writable?)");
    }
    if (rv != CKR_OK) return TokenError("creating the KEK (C_GenerateKey)", rv);
    return OkStatus();
  }

  ModuleRef module_;
  FoundToken token_;
  std::atomic<CK_SLOT_ID> slot_;
  std::string token_label_;
  std::string kek_label_;
  std::atomic<CK_OBJECT_HANDLE> kek_{CK_INVALID_HANDLE};
  SecretBytes pin_;        // set by Login, read by Recover (under recover_mu_)
  std::mutex recover_mu_;  // one recovery at a time
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<CK_SESSION_HANDLE> idle_;  // guarded by mu_
  std::size_t open_ = 0;                 // guarded by mu_
};

}  // namespace

Result<SecretBytes> ReadPin(const TokenOptions& options) {
  if (options.pin_file.empty() && options.pin_env.empty()) {
    return InvalidArgument("no user PIN source: give a PIN file or an environment variable");
  }
  return qsapi::internal::ReadSecretLine(options.pin_file, options.pin_env, "user PIN");
}

Result<std::unique_ptr<KeyProtector>> OpenTokenProtector(const TokenOptions& options, const SecretBytes& pin,
                                                         bool create_kek) {
  QSAPI_ASSIGN_OR_RETURN(ModuleRef module, ModuleRef::Acquire(options.module_path));
  QSAPI_ASSIGN_OR_RETURN(std::optional<FoundToken> token, FindToken(module.fns(), options.token_label));
  if (!token) {
    return FailedPrecondition("PKCS#11 module " + options.module_path + " shows no token labelled \"" +
                              options.token_label + "\" (run `qsapi init` for the embedded default)");
  }
  auto p =
      std::make_unique<TokenProtector>(std::move(module), std::move(*token), options.token_label, options.kek_label);
  QSAPI_RETURN_IF_ERROR(p->Login(pin));
  QSAPI_RETURN_IF_ERROR(p->FindOrCreateKek(create_kek));
  return std::unique_ptr<KeyProtector>(std::move(p));
}

Result<bool> TokenExists(const std::string& module_path, const std::string& label) {
  QSAPI_ASSIGN_OR_RETURN(ModuleRef module, ModuleRef::Acquire(module_path));
  QSAPI_ASSIGN_OR_RETURN(std::optional<FoundToken> token, FindToken(module.fns(), label));
  return token.has_value();
}

Status InitToken(const std::string& module_path, const std::string& label, const SecretBytes& so_pin,
                 const SecretBytes& user_pin) {
  if (label.empty() || label.size() > 32) return InvalidArgument("a token label has 1 to 32 characters");
  QSAPI_ASSIGN_OR_RETURN(ModuleRef module, ModuleRef::Acquire(module_path));
  CK_FUNCTION_LIST_PTR p11 = module.fns();
  QSAPI_ASSIGN_OR_RETURN(std::optional<FoundToken> existing, FindToken(p11, label));
  if (existing) return AlreadyExists("a token labelled \"" + label + "\" exists already");
  CK_ULONG count = 0;
  CK_RV rv = p11->C_GetSlotList(CK_TRUE, nullptr, &count);
  std::vector<CK_SLOT_ID> slots(count);
  if (rv == CKR_OK) rv = p11->C_GetSlotList(CK_TRUE, slots.data(), &count);
  if (rv != CKR_OK) return Unavailable("C_GetSlotList failed: " + CkrName(rv));
  slots.resize(count);
  std::optional<CK_SLOT_ID> free_slot;
  for (CK_SLOT_ID slot : slots) {
    CK_TOKEN_INFO info{};
    if (p11->C_GetTokenInfo(slot, &info) == CKR_OK && (info.flags & CKF_TOKEN_INITIALIZED) == 0) {
      free_slot = slot;
      break;
    }
  }
  if (!free_slot) return ResourceExhausted("PKCS#11 module " + module_path + " has no free slot for a new token");
  std::array<CK_UTF8CHAR, 32> padded{};
  padded.fill(' ');
  std::memcpy(padded.data(), label.data(), label.size());
  rv = p11->C_InitToken(*free_slot, Utf8(so_pin), so_pin.size(), padded.data());
  if (rv != CKR_OK) {
    return Unavailable("C_InitToken failed: " + CkrName(rv) +
                       (rv == CKR_DEVICE_ERROR || rv == CKR_DEVICE_MEMORY
                            ? " (the token cannot store objects: is its storage full or not writable?)"
                            : ""));
  }
  // SoftHSM2 moves an initialised token to a new slot id: find it again by label.
  QSAPI_ASSIGN_OR_RETURN(std::optional<FoundToken> created, FindToken(p11, label));
  if (!created) return Internal("the token just initialised is not found by its label");
  CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
  rv = p11->C_OpenSession(created->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s);
  if (rv != CKR_OK) return Unavailable("C_OpenSession failed: " + CkrName(rv));
  rv = p11->C_Login(s, CKU_SO, Utf8(so_pin), so_pin.size());
  if (rv == CKR_OK) {
    rv = p11->C_InitPIN(s, Utf8(user_pin), user_pin.size());
    p11->C_Logout(s);
  }
  p11->C_CloseSession(s);
  if (rv != CKR_OK) return Unavailable("setting the user PIN (C_InitPIN) failed: " + CkrName(rv));
  return OkStatus();
}

}  // namespace qsapi::keystore::internal
