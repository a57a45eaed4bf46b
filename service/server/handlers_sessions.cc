// Handlers of the peer-session routes (/v1/sessions...): server/sessions.h does the work.
#include <chrono>

#include "server/internal/api_internal.h"
#include "server/internal/request_parsing.h"
#include "server/sessions.h"

namespace qsapi::server::internal {
namespace {

std::int64_t Seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

// Sessions returns the manager, or the error that says how to configure one.
Result<SessionManager*> Sessions(Request& r) {
  SessionManager* sm = r.api.parts().sessions;
  if (sm == nullptr) {
    return FailedPrecondition(
        "peer sessions are not configured on this node ([session] and [[peer]] in the configuration; "
        "docs/OPERATIONS.md)");
  }
  return sm;
}

// AnswerElsewhere turns "no session X on this node" into the cluster's answer when another node
// holds X: 421 Misdirected Request naming that node (and its API address) in the message and in
// the QSAPI-Session-Node / QSAPI-Session-Node-Url headers, so that a client or a router can resend
// it there (docs/OPERATIONS.md, "Peer sessions on several nodes").
void AnswerElsewhere(Request& r, Outcome& out) {
  if (out.result.ok() || out.result.error().code() != ErrorCode::kNotFound) return;
  SessionManager* sm = r.api.parts().sessions;
  if (sm == nullptr) return;
  const std::optional<SessionHolder> h = sm->Holder(r.name);
  if (!h) return;
  out.result = FailedPrecondition("session " + r.name + " is held by node " + h->node +
                                  (h->api.empty() ? std::string() : " (" + h->api + ")") +
                                  ": a peer session stays on the node that holds its link; send its requests there");
  out.error_status = 421;
  out.error_headers = {{"QSAPI-Session-Node", h->node}};
  if (!h->api.empty()) out.error_headers.emplace_back("QSAPI-Session-Node-Url", h->api);
}

template <typename T>
Result<json> AsJson(const Result<T>& got) {
  if (!got.ok()) return got.error();
  return SessionJson(*got);
}

}  // namespace

json SessionJson(const SessionInfo& s) {
  return json{{"id", s.id},
              {"peer", s.peer},
              {"role", s.role},
              {"suite", s.suite},
              {"sources", s.sources},
              {"qkd", s.qkd},
              {"qrng", s.qrng},
              {"degraded", s.degraded},
              {"notes", s.notes},
              {"qkd_keys", s.qkd_keys},
              {"tls_group", s.tls_group},
              {"tls_cipher", s.tls_cipher},
              {"peer_key_algorithm", s.peer_key_algorithm},
              {"established", Seconds(s.established)},
              {"epoch", s.stats.epoch},
              {"messages_sealed", s.stats.messages_sealed},
              {"messages_opened", s.stats.messages_opened},
              {"rotations", s.stats.rotations},
              {"failed_decryptions", s.stats.failed_decryptions},
              {"replays_rejected", s.stats.replays_rejected},
              {"fresh_qkd",
               {{"enabled", s.fresh_keys},
                {"epochs", s.stats.fresh_key_epochs},
                {"agreed", s.fresh.agreed},
                {"refused", s.fresh.refused},
                {"skipped", s.fresh.skipped},
                {"last_problem", s.fresh.last_problem}}},
              {"link", s.link},
              {"reestablishments", s.stats.reestablishments},
              {"reestablished", Seconds(s.reestablished)},
              {"closed", s.stats.closed}};
}

Outcome HandleSessionsList(Request& r) {
  Outcome out;
  out.result = [&]() -> Result<json> {
    QSAPI_ASSIGN_OR_RETURN(SessionManager * sm, Sessions(r));
    json list = json::array();
    for (const SessionInfo& si : sm->List()) list.push_back(SessionJson(si));
    return json{{"node", sm->node_name()}, {"sessions", list}};
  }();
  return out;
}

Outcome HandleSessionsCreate(Request& r) {
  Outcome out;
  out.status = 201;
  out.result = [&]() -> Result<json> {
    QSAPI_ASSIGN_OR_RETURN(SessionManager * sm, Sessions(r));
    QSAPI_ASSIGN_OR_RETURN(std::string peer, StringField(r.body, "peer", true, 128));
    out.key = peer;
    QSAPI_ASSIGN_OR_RETURN(SessionInfo created, sm->Create(peer));
    out.detail = "session " + created.id + " (" + created.sources + ")";
    return SessionJson(created);
  }();
  return out;
}

Outcome HandleSessionRead(Request& r) {
  Outcome out;
  out.detail = "session " + r.name;
  out.result = [&]() -> Result<json> {
    QSAPI_ASSIGN_OR_RETURN(SessionManager * sm, Sessions(r));
    return AsJson(sm->Get(r.name));
  }();
  AnswerElsewhere(r, out);
  return out;
}

Outcome HandleSessionClose(Request& r) {
  Outcome out;
  out.detail = "session " + r.name;
  out.result = [&]() -> Result<json> {
    QSAPI_ASSIGN_OR_RETURN(SessionManager * sm, Sessions(r));
    QSAPI_RETURN_IF_ERROR(sm->Close(r.name));
    return json{{"closed", r.name}};
  }();
  AnswerElsewhere(r, out);
  return out;
}

Outcome HandleSessionRotate(Request& r) {
  Outcome out;
  out.detail = "session " + r.name;
  out.result = [&]() -> Result<json> {
    QSAPI_ASSIGN_OR_RETURN(SessionManager * sm, Sessions(r));
    bool require_fresh = false;
    bool reestablish = false;
    for (const char* field : {"fresh_qkd", "reestablish"}) {
      if (r.body.contains(field)) {
        if (!r.body[field].is_boolean()) {
          return InvalidArgument("field \"" + std::string(field) + "\" must be true or false");
        }
        (std::string_view(field) == "fresh_qkd" ? require_fresh : reestablish) = r.body[field].get<bool>();
      }
    }
    if (require_fresh && reestablish) return InvalidArgument("give fresh_qkd or reestablish, not both");
    return AsJson(reestablish ? sm->Reestablish(r.name) : sm->Rotate(r.name, require_fresh));
  }();
  AnswerElsewhere(r, out);
  return out;
}

Outcome HandleSessionSeal(Request& r) {
  Outcome out;
  out.detail = "session " + r.name;
  out.result = [&]() -> Result<json> {
    QSAPI_ASSIGN_OR_RETURN(SessionManager * sm, Sessions(r));
    QSAPI_ASSIGN_OR_RETURN(SecretBytes pt, SecretField(r.body, "plaintext", true));
    QSAPI_ASSIGN_OR_RETURN(Bytes aad, BytesField(r.body, "associated_data", false));
    QSAPI_ASSIGN_OR_RETURN(std::string env, sm->Seal(r.name, pt.view(), aad));
    return json{{"envelope", env}};
  }();
  AnswerElsewhere(r, out);
  return out;
}

Outcome HandleSessionOpen(Request& r) {
  Outcome out;
  out.detail = "session " + r.name;
  out.result = [&]() -> Result<json> {
    QSAPI_ASSIGN_OR_RETURN(SessionManager * sm, Sessions(r));
    QSAPI_ASSIGN_OR_RETURN(std::string env, StringField(r.body, "envelope", true, std::size_t{3} << 20));
    QSAPI_ASSIGN_OR_RETURN(Bytes aad, BytesField(r.body, "associated_data", false));
    QSAPI_ASSIGN_OR_RETURN(Bytes pt, sm->Open(r.name, env, aad));
    const WipeOnExit wipe(pt);
    return json{{"plaintext", B64(pt)}};
  }();
  AnswerElsewhere(r, out);
  return out;
}

}  // namespace qsapi::server::internal
