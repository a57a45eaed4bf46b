// A real PostgreSQL 15 server for tests (Debian's postgresql-15, installed by scripts/setup.sh):
// initdb into a temporary directory (as the `postgres` user when the tests run as root: initdb
// refuses root), listening on a unix socket in that directory only (no TCP port, so no clash with
// anything), trust authentication for the user `qsapi`. Stopped by the PID in postmaster.pid.
#ifndef QSAPI_TESTS_SUPPORT_POSTGRES_SERVER_H_
#define QSAPI_TESTS_SUPPORT_POSTGRES_SERVER_H_

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <signal.h>
#include <string>
#include <thread>

#include <gtest/gtest.h>

namespace qsapi::testing {

inline constexpr const char* kPostgresBin = "/usr/lib/postgresql/15/bin";

class PostgresServer {
 public:
  // Start returns a running server, or nullptr after a test failure that says why.
  static std::unique_ptr<PostgresServer> Start() {
    auto s = std::unique_ptr<PostgresServer>(new PostgresServer());
    if (!s->Run()) return nullptr;
    return s;
  }
  ~PostgresServer() { Stop(); }
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;
  PostgresServer(PostgresServer&&) = delete;
  PostgresServer& operator=(PostgresServer&&) = delete;

  // ConnInfo is a libpq connection string for database `db` as user qsapi.
  [[nodiscard]] std::string ConnInfo(const std::string& db) const {
    return "host=" + dir_.string() + " port=" + std::to_string(kPort) + " dbname=" + db + " user=qsapi";
  }
  // CreateDatabase makes a fresh, empty database and returns its name.
  std::string CreateDatabase() {
    static std::atomic<int> counter{0};
    const std::string name = "t" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
    EXPECT_EQ(Sh(Psql("postgres") + " -q -c 'CREATE DATABASE " + name + "'"), 0) << "CREATE DATABASE " << name;
    return name;
  }
  // Psql is the psql command line for database `db` (for tests that alter rows by hand).
  [[nodiscard]] std::string Psql(const std::string& db) const {
    return std::string(kPostgresBin) + "/psql -X -v ON_ERROR_STOP=1 -h " + dir_.string() + " -p " +
           std::to_string(kPort) + " -U qsapi -d " + db;
  }
  [[nodiscard]] const std::filesystem::path& dir() const { return dir_; }

  // AddPasswordUser creates a login role that must authenticate with `password` (SCRAM-SHA-256;
  // every other user stays on trust) and owns database `db`.
  void AddPasswordUser(const std::string& user, const std::string& password, const std::string& db) {
    EXPECT_EQ(
        Sh(Psql("postgres") + " -q -c \"CREATE ROLE " + user + " LOGIN PASSWORD '" + password +
           "'\" -c 'ALTER DATABASE " + db + " OWNER TO " + user + "' -c 'GRANT ALL ON SCHEMA public TO " + user + "'"),
        0);
    EXPECT_EQ(Sh(Psql(db) + " -q -c 'GRANT ALL ON SCHEMA public TO " + user + "'"), 0);
    const std::filesystem::path hba = dir_ / "data" / "pg_hba.conf";
    const std::string rest = Read(hba);
    std::ofstream(hba, std::ios::trunc) << "local all " << user << " scram-sha-256\n" << rest;
    EXPECT_EQ(
        Sh(AsOwner(std::string(kPostgresBin) + "/pg_ctl -D '" + (dir_ / "data").string() + "' reload >/dev/null 2>&1")),
        0);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the postmaster rereads pg_hba.conf
  }

  // Stop shuts the server down (fast shutdown by its PID) and removes its directory.
  void Stop() {
    if (dir_.empty()) return;
    if (const pid_t pid = Pid(); pid > 0) {
      ::kill(pid, SIGINT);
      for (int i = 0; i < 300 && ::kill(pid, 0) == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
      if (::kill(pid, 0) == 0) ::kill(pid, SIGKILL);
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    dir_.clear();
  }

 private:
  static constexpr int kPort = 55432;  // only the socket file's name: listen_addresses is empty

  PostgresServer() = default;

  static int Sh(const std::string& command) { return std::system(command.c_str()); }  // NOLINT(cert-env33-c)

  // AsOwner runs a command as the data directory's owner (postgres when we are root).
  [[nodiscard]] static std::string AsOwner(const std::string& command) {
    return ::geteuid() == 0 ? "runuser -u postgres -- " + command : command;
  }

  bool Run() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base != nullptr ? base : "/tmp") + "/qsapi-pg-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp failed";
      return false;
    }
    dir_ = tmpl;
    if (::geteuid() == 0 && Sh("chown postgres: '" + dir_.string() + "'") != 0) {
      ADD_FAILURE() << "cannot hand " << dir_ << " to the postgres user";
      return false;
    }
    const std::string data = (dir_ / "data").string();
    if (Sh(AsOwner(std::string(kPostgresBin) + "/initdb -D '" + data +
                   "' -U qsapi -A trust --no-sync --no-instructions >'" + (dir_ / "initdb.log").string() + "' 2>&1")) !=
        0) {
      ADD_FAILURE() << "initdb failed: " << Read(dir_ / "initdb.log")
                    << " (is postgresql-15 installed? scripts/setup.sh)";
      return false;
    }
    const std::string options = "-c listen_addresses='' -k " + dir_.string() + " -p " + std::to_string(kPort) +
                                " -c fsync=off -c client_connection_check_interval=1000"
                                " -c shared_preload_libraries=pg_stat_statements";  // counts each statement
    if (Sh(AsOwner(std::string(kPostgresBin) + "/pg_ctl -D '" + data + "' -w -t 30 -l '" +
                   (dir_ / "server.log").string() + "' -o \"" + options + "\" start >/dev/null 2>&1")) != 0) {
      ADD_FAILURE() << "PostgreSQL did not start: " << Read(dir_ / "server.log");
      return false;
    }
    // A watchdog stops the server (by its PID) and removes its directory if this process dies
    // without Stop() (a crash, an abort, a timeout's SIGKILL), so that no server outlives its test.
    // It reads the PID from postmaster.pid, which exists only while the server runs, so that it
    // never signals a process that reused the number.
    const std::string pid_file = (dir_ / "data" / "postmaster.pid").string();
    Sh("(while kill -0 " + std::to_string(::getpid()) + " 2>/dev/null; do sleep 1; done; if [ -f '" + pid_file +
       "' ]; then kill -INT $(head -1 '" + pid_file + "'); sleep 3; fi; rm -rf '" + dir_.string() +
       "') >/dev/null 2>&1 &");
    return true;
  }

  [[nodiscard]] pid_t Pid() const {
    std::ifstream in(dir_ / "data" / "postmaster.pid");
    pid_t pid = 0;
    in >> pid;
    return pid;
  }

  static std::string Read(const std::filesystem::path& p) {
    std::ifstream in(p);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

  std::filesystem::path dir_;
};

}  // namespace qsapi::testing

#endif  // QSAPI_TESTS_SUPPORT_POSTGRES_SERVER_H_
