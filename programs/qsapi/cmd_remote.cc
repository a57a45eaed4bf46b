// qsapi call: one request to a running qsapid over HTTPS (TLS 1.3, hybrid PQ groups, the
// deployment CA as trust anchor), authenticated by a bearer token or a client certificate.
//
//   qsapi call GET /v1/health
//   qsapi call POST /v1/encrypt/demo --data '{"plaintext":"aGVsbG8="}'
//
// Defaults come from the data directory of the local qsapid: the server https://127.0.0.1:8443
// (or $QSAPI_URL), the CA <data-dir>/ca/ca.pem, and the token in $QSAPI_TOKEN, --token-file or
// <data-dir>/admin-token. The reply body goes to stdout; a non-2xx status exits 1 after printing
// the server's error to stderr.
#include <fstream>
#include <sstream>

#include "commands.h"
#include "net/internal/http_client.h"
#include "remote.h"

namespace qsapi::cli {

void AddRemoteFlags(CLI::App* cmd, RemoteFlags& f) {
  cmd->add_option("--server", f.server, "qsapid URL (default: $QSAPI_URL or https://127.0.0.1:8443)");
  cmd->add_option("--data-dir", f.data_dir,
                  "Data directory of the local qsapid, for the default CA and token files "
                  "(default: $QSAPI_DATA_DIR or ~/.local/share/qsapi)");
  cmd->add_option("--cacert", f.ca_file, "Trust anchor for the server (default: <data-dir>/ca/ca.pem)");
  cmd->add_option("--token-file", f.token_file,
                  "File holding the bearer token (default: $QSAPI_TOKEN, else <data-dir>/admin-token)");
  cmd->add_option("--cert", f.cert_file, "Client certificate chain (PEM) for mutual TLS instead of a token");
  cmd->add_option("--key", f.key_file, "Its private key (PEM, mode 0600)");
  cmd->add_option("--timeout-ms", f.timeout_ms, "Timeout of each step of the request")->capture_default_str();
}

Result<RemoteSession> OpenRemote(const RemoteFlags& f) {
  const std::string dir = f.data_dir.empty() ? DefaultDataDir() : f.data_dir;
  net::HttpClientOptions o;
  o.url = f.server;
  if (o.url.empty()) {
    // NOLINTNEXTLINE(concurrency-mt-unsafe): read on the CLI's main thread, the only one that sets variables
    const char* env = std::getenv("QSAPI_URL");
    o.url = env != nullptr && *env != '\0' ? env : "https://127.0.0.1:8443";
  }
  o.tls.ca_file = f.ca_file.empty() ? dir + "/ca/ca.pem" : f.ca_file;
  if (!std::ifstream(o.tls.ca_file)) {
    return FailedPrecondition("no CA certificate at " + o.tls.ca_file +
                              " (give --cacert, or --data-dir of the qsapid that created it)");
  }
  o.tls.verify_peer = pki::PeerVerification::kRequired;
  o.tls.certificate_file = f.cert_file;
  o.tls.private_key_file = f.key_file;
  if (f.timeout_ms <= 0) return InvalidArgument("--timeout-ms must be positive");
  o.connect_timeout = std::chrono::milliseconds(f.timeout_ms);
  o.request_timeout = o.connect_timeout;

  RemoteSession s;
  if (f.cert_file.empty()) {
    std::string token;
    // NOLINTNEXTLINE(concurrency-mt-unsafe): read on the CLI's main thread, the only one that sets variables
    const char* env = std::getenv("QSAPI_TOKEN");
    if (!f.token_file.empty()) {
      std::ifstream in(f.token_file);
      if (!in) return InvalidArgument("cannot read the token file " + f.token_file);
      std::getline(in, token);
    } else if (env != nullptr && *env != '\0') {
      token = env;
    } else if (std::ifstream in(dir + "/admin-token"); in) {
      std::getline(in, token);
    } else {
      return FailedPrecondition("no API token: set QSAPI_TOKEN, give --token-file, or --cert/--key");
    }
    while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) token.pop_back();
    if (token.empty()) return InvalidArgument("the API token is empty (check --token-file or QSAPI_TOKEN)");
    s.headers.emplace_back("Authorization", "Bearer " + token);
    SecureZero(token.data(), token.size());
  }
  auto client = net::HttpClient::Create(o);
  if (!client.ok()) return Error(client.error().code(), "server " + o.url + ": " + client.error().message());
  s.client = std::move(client).value();
  if (!s.client->url().tls || s.client->url().target != "/") {
    return InvalidArgument("the server URL must be https://host[:port] without a path, got \"" + o.url + "\"");
  }
  return s;
}

RemoteSession::~RemoteSession() {
  for (auto& [k, v] : headers) SecureZero(v.data(), v.size());
}

namespace {

struct CallFlags {
  RemoteFlags remote;
  std::string method, path, data, data_file;
  bool show_status = false;
};

void Call(const CallFlags& f) {
  std::string body = f.data;
  if (!f.data_file.empty()) {
    std::ifstream in(f.data_file, std::ios::binary);
    if (!in) return Fail("call", "cannot read " + f.data_file);
    std::ostringstream s;
    s << in.rdbuf();
    body = s.str();
  }
  auto session = OpenRemote(f.remote);
  if (!session.ok()) return Fail("call", session.error());
  auto reply = session->client->Request(f.method, f.path, body, session->headers);
  SecureZero(body.data(), body.size());
  if (!reply.ok()) return Fail("call", reply.error());
  if (f.show_status) {
    std::fprintf(stderr, "HTTP %u (TLS group %s)\n", reply->status, session->client->tls_group().c_str());
    for (const auto& [name, value] : reply->qsapi_headers)
      std::fprintf(stderr, "%s: %s\n", name.c_str(), value.c_str());
  }
  std::fwrite(reply->body.data(), 1, reply->body.size(), stdout);
  if (!reply->body.empty() && reply->body.back() != '\n') std::fputc('\n', stdout);
  SecureZero(reply->body.data(), reply->body.size());
  if (reply->status >= 300) {
    std::fflush(stdout);
    std::fprintf(stderr, "qsapi call: the server answered HTTP %u\n", reply->status);
    SetExitCode(1);
  }
}

}  // namespace

void RegisterRemoteCommands(CLI::App& app) {
  auto f = std::make_shared<CallFlags>();
  CLI::App* call = app.add_subcommand("call", "Send one request to a running qsapid (see docs/openapi.json)");
  call->add_option("method", f->method, "GET, POST or DELETE")
      ->required()
      ->check(CLI::IsMember({"GET", "POST", "DELETE"}));
  call->add_option("path", f->path, "Request path, e.g. /v1/health")->required();
  call->add_option("--data", f->data, "JSON request body");
  call->add_option("--data-file", f->data_file, "File holding the JSON request body");
  call->add_flag("--status", f->show_status, "Print the HTTP status, the TLS group and the QSAPI-* headers to stderr");
  AddRemoteFlags(call, f->remote);
  call->callback([f] { Call(*f); });
}

}  // namespace qsapi::cli
