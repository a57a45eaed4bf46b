// qsapid's configuration: a full file parses; every kind of mistake names the key (and line).
#include "server/config.h"

#include <gmock/gmock.h>

#include "support/test_support.h"

namespace qsapi::server {
namespace {

using ::testing::HasSubstr;

constexpr char kFull[] = R"(
data_dir = "/var/lib/qsapi"

[server]
listen = "0.0.0.0:9443"
profile = "cnsa2"
client_certificates = "required"
max_body_bytes = 2097152
threads = 4
max_unfinished = 32
max_unfinished_per_source = 4
max_connections_per_source = 16
handshake_timeout_ms = 2500

[keystore]
pkcs11_module = "/usr/lib/softhsm/libsofthsm2.so"
pin_env = "QSAPI_PKCS11_PIN"

[rotation]
sweep_interval_seconds = 30
[work]
workers = 3
max_running_per_principal = 2
cpu_ms_per_second = 500
burst_cpu_ms = 3000
max_request_cpu_ms = 1500
max_auth_failures_per_source = 10
[audit]
max_file_mib = 16
keep_files = 5
min_free_mib = 32
verify_interval_seconds = 60

[entropy]
qrng = "require"
[[entropy.device]]
path = "/dev/qrandom0"
min_entropy = 7.5
[[entropy.http]]
url = "https://qrng.example/api"
api_key_header = "x-api-key"
api_key_env = "QRNG_KEY"

[[kme]]
name = "kme-a"
url = "https://kme-a.example:8443"
sae_id = "SAE-A"
cert_file = "sae-a.pem"
key_file = "sae-a.key"
ca_file = "ca.pem"

[[peer]]
name = "site-b"
address = "site-b.example:9444"
kme = "kme-a"
remote_sae_id = "SAE-B"
qkd = "require"
qrng = "prefer"
qkd_at_rotation = false
)";

TEST(ConfigTest, AFullFileParses) {
  auto c = ParseConfig(kFull, "qsapid.toml");
  QSAPI_ASSERT_OK(c);
  EXPECT_EQ(c->data_dir, "/var/lib/qsapi");
  EXPECT_EQ(c->server.listen_host, "0.0.0.0");
  EXPECT_EQ(c->server.listen_port, 9443);
  EXPECT_EQ(c->server.profile, "cnsa2");
  EXPECT_EQ(c->server.client_certificates, "required");
  EXPECT_EQ(c->server.threads, 4);
  EXPECT_EQ(c->server.max_unfinished, 32U);
  EXPECT_EQ(c->server.max_unfinished_per_source, 4U);
  EXPECT_EQ(c->server.max_connections_per_source, 16U);
  EXPECT_EQ(c->server.handshake_timeout, std::chrono::milliseconds(2500));
  EXPECT_EQ(c->keystore.pin_env, "QSAPI_PKCS11_PIN");
  EXPECT_EQ(c->rotation.sweep_interval, std::chrono::seconds(30));
  EXPECT_EQ(c->work.workers, 3);
  EXPECT_EQ(c->work.max_running_per_principal, 2U);
  EXPECT_EQ(c->work.cpu_ms_per_second, 500);
  EXPECT_EQ(c->work.max_request_cpu_ms, 1500);
  EXPECT_EQ(c->work.max_auth_failures_per_source, 10U);
  EXPECT_EQ(c->audit.max_file_mib, 16U);
  EXPECT_EQ(c->audit.keep_files, 5U);
  EXPECT_EQ(c->audit.min_free_mib, 32U);
  EXPECT_EQ(c->audit.verify_interval, std::chrono::seconds(60));
  EXPECT_EQ(c->entropy.qrng, SourcePolicy::kRequire);
  ASSERT_EQ(c->entropy.devices.size(), 1U);
  EXPECT_EQ(c->entropy.devices[0].id, "qrng0");
  EXPECT_DOUBLE_EQ(c->entropy.devices[0].min_entropy, 7.5);
  ASSERT_EQ(c->entropy.http.size(), 1U);
  EXPECT_EQ(c->entropy.http[0].api_key_env, "QRNG_KEY");
  ASSERT_EQ(c->kmes.size(), 1U);
  ASSERT_EQ(c->peers.size(), 1U);
  EXPECT_EQ(c->peers[0].qkd, SourcePolicy::kRequire);
  EXPECT_FALSE(c->peers[0].qkd_at_rotation);
  auto d = ParseConfig("data_dir = \"/d\"\n[[peer]]\nname = \"p\"\naddress = \"p:9444\"\n", "peer.toml");
  QSAPI_ASSERT_OK(d);
  EXPECT_TRUE(d->peers[0].qkd_at_rotation) << "on by default";
  EXPECT_EQ(d->session.reestablish_after, std::chrono::seconds(3600));
}

TEST(ConfigTest, DefaultsNeedOnlyTheDataDir) {
  auto c = ParseConfig("data_dir = \"/d\"\n", "min.toml");
  QSAPI_ASSERT_OK(c);
  EXPECT_EQ(c->server.listen_port, 8443);
  EXPECT_EQ(c->server.profile, "default");
  EXPECT_EQ(c->entropy.qrng, SourcePolicy::kPrefer);
}

struct BadCase {
  const char* toml;
  const char* expect;
};

TEST(ConfigTest, MistakesNameTheKey) {
  const BadCase cases[] = {
      {"data_dir = \"/d\"\n[server]\nlisten = \"nohostport\"\n", "server.listen: expected \"host:port\""},
      {"data_dir = \"/d\"\n[server]\nlisten = \"h:99999\"\n", "server.listen: expected a port"},
      {"data_dir = \"/d\"\n[server]\nprofile = \"fast\"\n",
       "server.profile: expected one of default, cnsa2, got \"fast\""},
      {"data_dir = \"/d\"\n[server]\nthreads = 0\n", "server.threads: expected 1..256, got 0"},
      {"data_dir = \"/d\"\n[server]\nmax_unfinished_per_source = 0\n",
       "server.max_unfinished_per_source: expected 1..100000, got 0"},
      {"data_dir = \"/d\"\n[server]\nhandshake_timeout_ms = 10\n", "server.handshake_timeout_ms: expected"},
      {"data_dir = \"/d\"\n[server]\nthreads = \"4\"\n", "server.threads: expected an integer"},
      {"data_dir = \"/d\"\n[server]\nlisten_port = 1\n", "server.listen_port: unknown key"},
      {"data_dir = \"/d\"\n[sever]\n", "sever: unknown key"},
      {"data_dir = \"/d\"\n[work]\nworkers = 300\n", "work.workers: expected 0..256, got 300"},
      {"data_dir = \"/d\"\n[work]\nburst_cpu_ms = 100\nmax_request_cpu_ms = 200\n",
       "work.max_request_cpu_ms: may not exceed burst_cpu_ms"},
      {"data_dir = \"/d\"\n[work]\ncpu_budget = 1\n", "work.cpu_budget: unknown key"},
      {"data_dir = \"/d\"\n[audit]\nmax_file_mib = 0\n", "audit.max_file_mib: expected 1..1048576, got 0"},
      {"data_dir = \"/d\"\n[audit]\nverify_interval_seconds = 0\n", "audit.verify_interval_seconds: expected 1..86400"},
      {"data_dir = \"/d\"\n[keystore]\npin_file = \"a\"\npin_env = \"B\"\n",
       "keystore.pin_env: give pin_file or pin_env, not both"},
      {"data_dir = \"/d\"\n[keystore]\ndatabase = \"/x.db\"\n", "keystore.database: moved to [store] path"},
      {"data_dir = \"/d\"\n[store]\nbackend = \"mysql\"\n",
       "store.backend: expected one of sqlite, postgresql, got \"mysql\""},
      {"data_dir = \"/d\"\n[store]\nbackend = \"postgresql\"\n",
       "store.conninfo: is required with backend \"postgresql\""},
      {"data_dir = \"/d\"\n[store]\nconninfo = \"host=db\"\n", "store.conninfo: is a key of backend \"postgresql\""},
      {"data_dir = \"/d\"\n[store]\nbackend = \"postgresql\"\nconninfo = \"host=db\"\npath = \"/x.db\"\n",
       "store.path: is a key of backend \"sqlite\""},
      {"data_dir = \"/d\"\n[store]\nbackend = \"postgresql\"\nconninfo = \"host=db\"\npassword_file = "
       "\"/p\"\npassword_env = \"P\"\n",
       "store.password_env: give password_file or password_env, not both"},
      {"data_dir = \"/d\"\n[store]\nbackend = \"postgresql\"\nconninfo = \"host=db\"\npool_size = 0\n",
       "store.pool_size: expected 1..64, got 0"},
      {"data_dir = \"/d\"\n[store]\ncluster_id = \"ABC\"\n", "store.cluster_id: must be 32 lower-case hex"},
      {"data_dir = \"/d\"\n[store]\npassword = \"s3cret\"\n", "store.password: unknown key"},
      {"data_dir = \"/d\"\n[entropy]\nqrng = \"sometimes\"\n", "entropy.qrng: expected one of off, prefer, require"},
      {"data_dir = \"/d\"\n[[entropy.device]]\nmin_entropy = 7\n", "entropy.device[0].path: is required"},
      {"data_dir = \"/d\"\n[[entropy.device]]\npath = \"/x\"\nmin_entropy = 9\n",
       "entropy.device[0].min_entropy: expected a number in"},
      {"data_dir = \"/d\"\n[[entropy.http]]\nurl = \"https://q\"\napi_key = \"s3cret\"\n",
       "entropy.http[0].api_key: API keys are not written in the config"},
      {"data_dir = \"/d\"\n[[entropy.device]]\npath = \"/a\"\nid = \"q\"\n[[entropy.device]]\npath = \"/b\"\nid = "
       "\"q\"\n",
       "entropy.device[1].id: \"q\" is used twice"},
      {"data_dir = \"/d\"\n[[kme]]\nname = \"k\"\nurl = \"http://k\"\nsae_id = \"S\"\ncert_file = \"c\"\nkey_file = "
       "\"k\"\nca_file = \"a\"\n",
       "kme[0].url: must start with https://"},
      {"data_dir = \"/d\"\n[[peer]]\nname = \"p\"\naddress = \"p:9444\"\nqkd = \"prefer\"\n",
       "peer[0].kme: is required when qkd is prefer or require"},
      {"data_dir = \"/d\"\n[[peer]]\nname = \"p\"\naddress = \"p:9444\"\nqkd = \"prefer\"\nkme = "
       "\"nope\"\nremote_sae_id = \"S\"\n",
       "peer[0].kme: names no [[kme]]"},
      {"data_dir = \"/d\"\n[tls]\ncert_file = \"c.pem\"\n", "tls.key_file: cert_file and key_file go together"},
      {"data_dir = \"/d\"\n[tls]\nserver_names = [\"a\", 3]\n", "tls.server_names: expected an array of non-empty"},
      {"data_dir = \"/d\"\n[[client]]\ncommon_name = \"c\"\nkeys = [\"*\"]\noperations = [\"encrypt\", \"fly\"]\n",
       "client[0].operations: unknown operation \"fly\""},
      {"data_dir = \"/d\"\n[[client]]\ncommon_name = \"c\"\noperations = [\"encrypt\"]\n",
       "client[0].keys: is required"},
      {"data_dir = \"/d\"\n[[client]]\ncommon_name = \"c\"\nkeys = [\"*\"]\noperations = "
       "[\"*\"]\n[[client]]\ncommon_name "
       "= \"c\"\nkeys = [\"*\"]\noperations = [\"*\"]\n",
       "client[1].common_name: \"c\" is used twice"},
      {"data_dir = \"/d\"\n[[peer]]\nname = \"p\"\naddress = \"https://p\"\n",
       "peer[0].address: expected the peer link's"},
      {"data_dir = \"/d\"\n[[peer]]\nname = \"p\"\naddress = \"p:9444\"\nqkd_at_rotation = \"yes\"\n",
       "peer[0].qkd_at_rotation: expected true or false"},
      {"data_dir = \"/d\"\n[session]\nsuite = \"DES\"\n",
       "session.suite: expected one of AES-256-GCM, XChaCha20-Poly1305"},
      {"data_dir = \"/d\"\n[session]\nrotate_after_messages = 0\n", "session.rotate_after_messages: expected 1.."},
      {"data_dir = \"/d\"\n[session]\nmax_session_age_seconds = 600\nreestablish_after_seconds = 600\n",
       "session.reestablish_after_seconds: must be below max_session_age_seconds (600)"},
      {"[server]\n", "data_dir is required"},
      {"data_dir = \"/d\"\n[server\n", "bad.toml:2"},
      // toml++ 3.3 mishandles these (marzer/tomlplusplus#301, #295, #190): refused before it parses.
      {"data_dir = \"/d\"\n[[[entropy.device]]\n", "bad.toml:2: a table header must name a table"},
      {"data_dir = \"/d\"\n  [[ [a]]]\n", "bad.toml:2: a table header must name a table"},
      {"[[=\n", "bad.toml:1: a table header must name a table"},
      {"data_dir = \"/d\"\n[]\n", "bad.toml:2: a table header must name a table"},
      {"data_dir = \"/d\"\nqrng\xd0\x8b = 1\n", "bad.toml:2: a non-ASCII character (the file is ASCII"},
      {"data_dir = \"/d\"\n\xcc\xaa\n", "bad.toml:2: a non-ASCII character"},
      {"data_dir = \"/d\"\nx = \"\"\"\\\n  \xc2\xa7\"\"\"\n", "bad.toml:3: a non-ASCII character"},
      {"data_dir = \"/d\"\nA = 333b\"\xc2\xa7\"\"\"\n", "bad.toml:2: a non-ASCII character"},
      {"# \xc2\xa7\ndata_dir = \"/d\"\n", "bad.toml:1: a non-ASCII character"},
  };
  for (const BadCase& c : cases) {
    auto r = ParseConfig(c.toml, "bad.toml");
    ASSERT_FALSE(r.ok()) << c.toml;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_THAT(r.error().message(), HasSubstr(c.expect)) << c.toml;
    EXPECT_THAT(r.error().message(), ::testing::Not(HasSubstr("s3cret")));
  }
}

TEST(ConfigTest, TheStoreIsSqliteByDefaultOrAPostgresDatabase) {
  auto d = ParseConfig("data_dir = \"/d\"\n", "x.toml");
  QSAPI_ASSERT_OK(d);
  EXPECT_EQ(d->store.backend, keystore::StoreBackend::kSqlite);
  EXPECT_TRUE(d->store.path.empty());
  auto pg = ParseConfig(
      "data_dir = \"/d\"\n[store]\nbackend = \"postgresql\"\nconninfo = \"host=db1,db2 dbname=qsapi\"\n"
      "password_file = \"/etc/qsapi/db.password\"\npool_size = 8\nconnect_timeout_seconds = 3\n"
      "cluster_id = \"0123456789abcdef0123456789abcdef\"\n",
      "x.toml");
  QSAPI_ASSERT_OK(pg);
  EXPECT_EQ(pg->store.backend, keystore::StoreBackend::kPostgresql);
  EXPECT_EQ(pg->store.conninfo, "host=db1,db2 dbname=qsapi");
  EXPECT_EQ(pg->store.password_file, "/etc/qsapi/db.password");
  EXPECT_EQ(pg->store.pool_size, 8);
  EXPECT_EQ(pg->store.connect_timeout, std::chrono::seconds(3));
  EXPECT_EQ(pg->store.cluster_id, "0123456789abcdef0123456789abcdef");
  auto file = ParseConfig("data_dir = \"/d\"\n[store]\npath = \"/srv/k.db\"\n", "x.toml");
  QSAPI_ASSERT_OK(file);
  EXPECT_EQ(file->store.path, "/srv/k.db");
}

TEST(ConfigTest, ClientsAndListenAddresses) {
  auto r = ParseConfig(
      "data_dir = \"/d\"\n[[client]]\ncommon_name = \"reporting\"\nkeys = [\"rep-*\"]\noperations = [\"encrypt\", "
      "\"decrypt\"]\n[tls]\nserver_names = [\"api.example\", \"10.0.0.5\"]\n",
      "ok.toml");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  ASSERT_EQ(r->clients.size(), 1U);
  EXPECT_EQ(r->clients[0].common_name, "reporting");
  EXPECT_EQ(r->clients[0].keys, std::vector<std::string>{"rep-*"});
  EXPECT_EQ(r->clients[0].operations.size(), 2U);
  EXPECT_EQ(r->tls.server_names.size(), 2U);
  auto v6 = ParseListenAddress("[::1]:0");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->first, "::1");
  EXPECT_EQ(v6->second, 0);
  EXPECT_FALSE(ParseListenAddress(":8443").ok());
  EXPECT_FALSE(ParseListenAddress("host").ok());
  EXPECT_FALSE(ParseListenAddress("host:65536").ok());
}

// Other characters than ASCII are written in strings as escapes.
TEST(ConfigTest, NonAsciiIsWrittenAsEscapes) {
  auto r = ParseConfig("# qsapid\ndata_dir = \"/srv/qsapi-\\u00e9t\\u00e9\"\n", "ok.toml");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->data_dir, "/srv/qsapi-\xc3\xa9t\xc3\xa9");
}

TEST(ConfigTest, ErrorsCarryTheLine) {
  auto r = ParseConfig("data_dir = \"/d\"\n\n[server]\nthreads = 0\n", "f.toml");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message(), HasSubstr("config f.toml:4: server.threads"));
}

}  // namespace
}  // namespace qsapi::server
