// The REST API's route table: one row per route. The pipeline in server/api.cc reads only this
// table; docs/openapi.json is checked against it (tests/server/api_test.cc).
#include <string>
#include <vector>

#include "server/internal/api_internal.h"
#include "server/internal/request_parsing.h"

namespace qsapi::server::internal {

const std::vector<Route>& RouteTable() {
  using A = Access;
  using K = KeyIn;
  using O = Operation;
  using W = Where;
  using WK = WorkKind;
  // clang-format off
  static const std::vector<Route> table = {
    // method    pattern                         operation      audit action        access              where        key      work                batch  handler
    {"GET",    "/v1/livez",                    O::kHealth,     "livez",            A::kPublic,         W::kInline, K::kNone, WK::kMetadata,      false, HandleLivez},
    {"GET",    "/v1/health",                   O::kHealth,     "health",           A::kSummaryOpen,    W::kInline, K::kNone, WK::kMetadata,      false, HandleHealth},
    {"GET",    "/metrics",                     O::kMetrics,    "metrics",          A::kAuthenticated,  W::kInline, K::kNone, WK::kMetadata,      false, HandleMetrics},
    {"GET",    "/v1/keys",                     O::kKeysRead,   "keys.list",        A::kAuthenticated,  W::kWorker, K::kNone, WK::kMetadata,      false, HandleKeysList},
    {"POST",   "/v1/keys",                     O::kKeysCreate, "keys.create",      A::kAuthenticated,  W::kWorker, K::kBody, WK::kKeygen,        false, HandleKeysCreate},
    {"GET",    "/v1/keys/{name}",              O::kKeysRead,   "keys.read",        A::kAuthenticated,  W::kWorker, K::kPath, WK::kMetadata,      false, HandleKeyRead},
    {"DELETE", "/v1/keys/{name}",              O::kKeysDestroy,"keys.destroy",     A::kAuthenticated,  W::kWorker, K::kPath, WK::kMetadata,      false, HandleKeyDestroy},
    {"POST",   "/v1/keys/{name}/rotate",       O::kKeysRotate, "keys.rotate",      A::kAuthenticated,  W::kWorker, K::kPath, WK::kKeygen,        false, HandleKeyRotate},
    {"POST",   "/v1/keys/{name}/config",       O::kKeysConfig, "keys.config",      A::kAuthenticated,  W::kWorker, K::kPath, WK::kMetadata,      false, HandleKeyConfig},
    {"GET",    "/v1/keys/{name}/public",       O::kKeysRead,   "keys.public",      A::kAuthenticated,  W::kWorker, K::kPath, WK::kMetadata,      false, HandleKeyPublic},
    {"POST",   "/v1/encrypt/{name}",           O::kEncrypt,    "encrypt",          A::kAuthenticated,  W::kWorker, K::kPath, WK::kEncrypt,       true,  HandleEncrypt},
    {"POST",   "/v1/decrypt/{name}",           O::kDecrypt,    "decrypt",          A::kAuthenticated,  W::kWorker, K::kPath, WK::kDecrypt,       true,  HandleDecrypt},
    {"POST",   "/v1/rewrap/{name}",            O::kRewrap,     "rewrap",           A::kAuthenticated,  W::kWorker, K::kPath, WK::kRewrap,        true,  HandleRewrap},
    {"POST",   "/v1/datakey/{name}",           O::kDatakey,    "datakey",          A::kAuthenticated,  W::kWorker, K::kPath, WK::kDatakey,       false, HandleDatakey},
    {"POST",   "/v1/sign/{name}",              O::kSign,       "sign",             A::kAuthenticated,  W::kWorker, K::kPath, WK::kSign,          true,  HandleSign},
    {"POST",   "/v1/verify/{name}",            O::kVerify,     "verify",           A::kAuthenticated,  W::kWorker, K::kPath, WK::kVerify,        true,  HandleVerify},
    {"POST",   "/v1/kem/{name}/encapsulate",   O::kKem,        "kem.encapsulate",  A::kAuthenticated,  W::kWorker, K::kPath, WK::kEncapsulate,   false, HandleEncapsulate},
    {"POST",   "/v1/kem/{name}/decapsulate",   O::kKem,        "kem.decapsulate",  A::kAuthenticated,  W::kWorker, K::kPath, WK::kDecapsulate,   false, HandleDecapsulate},
    {"POST",   "/v1/seal/{name}",              O::kSeal,       "seal",             A::kAuthenticated,  W::kWorker, K::kPath, WK::kHpkeSeal,      false, HandleSeal},
    {"POST",   "/v1/open/{name}",              O::kOpen,       "open",             A::kAuthenticated,  W::kWorker, K::kPath, WK::kHpkeOpen,      false, HandleOpen},
    {"POST",   "/v1/random",                   O::kRandom,     "random",           A::kAuthenticated,  W::kWorker, K::kNone, WK::kRandom,        false, HandleRandom},
    {"GET",    "/v1/sessions",                 O::kSessions,   "sessions.list",    A::kAuthenticated,  W::kInline, K::kNone, WK::kMetadata,      false, HandleSessionsList},
    {"POST",   "/v1/sessions",                 O::kSessions,   "sessions.create",  A::kAuthenticated,  W::kWorker, K::kNone, WK::kSessionSetup,  false, HandleSessionsCreate},
    {"GET",    "/v1/sessions/{name}",          O::kSessions,   "sessions.read",    A::kAuthenticated,  W::kInline, K::kNone, WK::kMetadata,      false, HandleSessionRead},
    {"DELETE", "/v1/sessions/{name}",          O::kSessions,   "sessions.close",   A::kAuthenticated,  W::kWorker, K::kNone, WK::kMetadata,      false, HandleSessionClose},
    {"POST",   "/v1/sessions/{name}/seal",     O::kSessions,   "sessions.seal",    A::kAuthenticated,  W::kWorker, K::kNone, WK::kSession,       false, HandleSessionSeal},
    {"POST",   "/v1/sessions/{name}/open",     O::kSessions,   "sessions.open",    A::kAuthenticated,  W::kWorker, K::kNone, WK::kSession,       false, HandleSessionOpen},
    {"POST",   "/v1/sessions/{name}/rotate",   O::kSessions,   "sessions.rotate",  A::kAuthenticated,  W::kWorker, K::kNone, WK::kSessionSetup,  false, HandleSessionRotate},
  };
  // clang-format on
  return table;
}

const Route* MatchRoute(std::string_view method, std::string_view path, bool* path_known, std::string* name) {
  const std::vector<std::string> parts = Split(path);
  *path_known = false;
  for (const Route& r : RouteTable()) {
    const std::vector<std::string> want = Split(r.pattern);
    if (want.size() != parts.size()) continue;
    std::string param;
    bool match = true;
    for (std::size_t i = 0; i < want.size() && match; ++i) {
      if (want[i] == "{name}") {
        param = parts[i];
      } else if (want[i] != parts[i]) {
        match = false;
      }
    }
    if (!match) continue;
    *path_known = true;
    if (r.method == method) {
      *name = std::move(param);
      return &r;
    }
  }
  return nullptr;
}

}  // namespace qsapi::server::internal
