// Talking to a running qsapid: the flags every remote command shares and the session they open.
#ifndef QSAPI_PROGRAMS_QSAPI_REMOTE_H_
#define QSAPI_PROGRAMS_QSAPI_REMOTE_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "net/internal/http_client.h"
#include "qsapi/result.h"

namespace qsapi::cli {

struct RemoteFlags {
  std::string server, data_dir, ca_file, token_file, cert_file, key_file;
  int timeout_ms = 10000;
};
void AddRemoteFlags(CLI::App* cmd, RemoteFlags& flags);

struct RemoteSession {
  RemoteSession() = default;
  RemoteSession(const RemoteSession&) = delete;
  RemoteSession& operator=(const RemoteSession&) = delete;
  RemoteSession(RemoteSession&&) = default;
  RemoteSession& operator=(RemoteSession&&) = default;
  ~RemoteSession();  // wipes the Authorization header
  std::unique_ptr<net::HttpClient> client;
  std::vector<std::pair<std::string, std::string>> headers;  // Authorization, when a token is used
};
Result<RemoteSession> OpenRemote(const RemoteFlags& flags);

}  // namespace qsapi::cli

#endif  // QSAPI_PROGRAMS_QSAPI_REMOTE_H_
