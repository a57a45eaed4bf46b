// One KEK and one identity for every node on a database: the cluster id and its canary, checked at
// every open, against a real SQLite file and a real PostgreSQL 15 server; several keystore handles
// ("nodes") on one PostgreSQL database serving the same keys; the store options' bad inputs.
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sqlite3.h>
#include <thread>

#include <gmock/gmock.h>

#include "keystore/internal/pkcs11_token.h"
#include "keystore_support.h"
#include "support/postgres_server.h"

namespace qsapi::keystore {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

testing::PostgresServer* Postgres() {
  static std::unique_ptr<testing::PostgresServer> server = testing::PostgresServer::Start();
  return server.get();
}

std::string ToString(const Bytes& b) { return {b.begin(), b.end()}; }

// Output is what a shell command prints on stdout.
std::string Output(const std::string& command) {
  std::string out;
  FILE* p = ::popen(command.c_str(), "r");
  if (p == nullptr) return out;
  char buf[256];
  while (std::fgets(buf, sizeof buf, p) != nullptr) out += buf;
  ::pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

// Rows counts every row of every keystore table of PostgreSQL database `db` but the schema's own.
std::string Rows(const std::string& db) {
  return Output(Postgres()->Psql(db) +
                " -tAc \"SELECT (SELECT count(*) FROM keys) + (SELECT count(*) FROM key_versions) + (SELECT count(*) "
                "FROM audit) + (SELECT count(*) FROM records) + (SELECT count(*) FROM trails) + (SELECT count(*) FROM "
                "qsapi_meta WHERE name <> 'schema_version')\"");
}

void WriteSecretFile(const std::filesystem::path& path, const std::string& text, mode_t mode) {
  std::ofstream(path, std::ios::trunc) << text;
  ASSERT_EQ(::chmod(path.c_str(), mode), 0);
}

class ClusterTest : public KeystoreFixture {
 protected:
  // OtherToken makes a second token with a KEK of its own beside the fixture's ("another node
  // with another KEK"); SoftHSM2 keeps both in the fixture's token directory.
  KeystoreOptions OtherToken() {
    const std::filesystem::path so = dir_ / "other-so.pin";
    const std::filesystem::path user = dir_ / "other-user.pin";
    WriteSecretFile(so, "other-so-pin", 0600);
    WriteSecretFile(user, "other-user-pin", 0600);
    KeystoreOptions o = EmbeddedOptions(dir_);
    o.token.token_label = "other";
    o.token.pin_file = user.string();
    const Status init =
        internal::InitToken(o.token.module_path, "other", SecretBytes::CopyFrom(AsBytes("other-so-pin")),
                            SecretBytes::CopyFrom(AsBytes("other-user-pin")));
    EXPECT_TRUE(init.ok()) << init.error().ToString();
    auto kek = internal::OpenTokenProtector(o.token, SecretBytes::CopyFrom(AsBytes("other-user-pin")), true);
    EXPECT_TRUE(kek.ok()) << kek.error().ToString();
    return o;
  }

  KeystoreOptions OnPostgres(const std::string& db) {
    KeystoreOptions o = EmbeddedOptions(dir_);
    o.backend = StoreBackend::kPostgresql;
    o.postgres.conninfo = Postgres()->ConnInfo(db);
    return o;
  }
};

TEST_F(ClusterTest, TheIdentityIsMadeAtTheFirstOpenAndKeptAfter) {
  const std::string id = ks_->cluster_id();
  ASSERT_EQ(id.size(), 32U);
  EXPECT_THAT(ks_->store_description(), HasSubstr("SQLite "));
  Reopen();
  EXPECT_EQ(ks_->cluster_id(), id);
  KeystoreOptions o = EmbeddedOptions(dir_);
  o.cluster_id = id;
  Reopen(o);  // the configured id matches
  const auto entries = ks_->Audit(1000);
  QSAPI_ASSERT_OK(entries);
  int inits = 0;
  for (const AuditEntry& e : *entries) {
    if (e.action == "cluster.init") {
      ++inits;
      EXPECT_THAT(e.detail, HasSubstr(id));
    }
  }
  EXPECT_EQ(inits, 1);
}

TEST_F(ClusterTest, ADatabaseOfAnotherClusterOrAMalformedIdIsRefused) {
  const std::size_t before = ks_->Audit(1000)->size();
  ks_.reset();
  KeystoreOptions o = EmbeddedOptions(dir_);
  o.cluster_id = "00000000000000000000000000000000";
  auto other = Keystore::Open(o);
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_THAT(other.error().message(), HasSubstr("belongs to cluster "));
  EXPECT_THAT(other.error().message(), HasSubstr("configured for cluster 00000000000000000000000000000000"));
  o.cluster_id = "not-hex";
  auto bad = Keystore::Open(o);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
  Reopen();
  EXPECT_EQ(ks_->Audit(1000)->size(), before) << "a refused open writes nothing";
}

TEST_F(ClusterTest, ANodeWithAnotherKekStopsBeforeWriting) {
  QSAPI_ASSERT_OK(ks_->Create("orders", ParseKeyType("AES-256-GCM").value()));
  const std::size_t before = ks_->Audit(1000)->size();
  ks_.reset();
  auto other = Keystore::Open(OtherToken());
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_THAT(other.error().message(), HasSubstr("this node's KEK is not the cluster's"));
  EXPECT_THAT(other.error().message(), HasSubstr("token \"other\""));
  Reopen();
  EXPECT_EQ(ks_->Audit(1000)->size(), before);
  QSAPI_EXPECT_OK(ks_->Encrypt("orders", AsBytes("still ours")));
}

// Coherence costs one change-counter read per operation, and an operation must cost no more than
// that on the database: pg_stat_statements counts the statements 300 warm operations make (the
// first benchmark of several nodes found four per encryption).
TEST_F(ClusterTest, AWarmOperationIsOneDatabaseStatement) {
  ASSERT_NE(Postgres(), nullptr);
  const std::string db = Postgres()->CreateDatabase();
  auto ks = Keystore::Open(OnPostgres(db));
  QSAPI_ASSERT_OK(ks);
  QSAPI_ASSERT_OK((*ks)->Create("hot", ParseKeyType("AES-256-GCM").value()));
  QSAPI_ASSERT_OK((*ks)->Create("sig", ParseKeyType("ML-DSA-65").value()));
  auto warm = (*ks)->Encrypt("hot", AsBytes("m"));  // leases a block, caches rows and material
  QSAPI_ASSERT_OK(warm);
  auto sig = (*ks)->Sign("sig", AsBytes("m"));
  QSAPI_ASSERT_OK(sig);
  const std::string psql = Postgres()->Psql(db);
  ASSERT_EQ(std::system((psql + " -q -c 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements' -c "
                                "'SELECT pg_stat_statements_reset()' >/dev/null")
                            .c_str()),
            0);
  for (int i = 0; i < 100; ++i) {
    QSAPI_ASSERT_OK((*ks)->Encrypt("hot", AsBytes("m")));
    QSAPI_ASSERT_OK((*ks)->Decrypt("hot", *warm));
    QSAPI_ASSERT_OK((*ks)->VerifySignature("sig", AsBytes("m"), *sig));
    QSAPI_ASSERT_OK((*ks)->TypeOf("hot"));  // the server's pricing: no statement at all
  }
  const std::filesystem::path out = dir_ / "statements.txt";
  ASSERT_EQ(std::system((psql +
                         " -At -c \"SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE dbid = "
                         "(SELECT oid FROM pg_database WHERE datname = current_database()) AND query NOT LIKE "
                         "'%pg_stat_statements%'\" >'" +
                         out.string() + "'")
                            .c_str()),
            0);
  std::ifstream in(out);
  long statements = -1;
  in >> statements;
  EXPECT_EQ(statements, 300) << "300 operations: one change-counter read each";
}

TEST_F(ClusterTest, NodesOnOnePostgresDatabaseServeTheSameKeys) {
  ASSERT_NE(Postgres(), nullptr);
  const std::string db = Postgres()->CreateDatabase();
  auto a = Keystore::Open(OnPostgres(db));
  QSAPI_ASSERT_OK(a);
  KeystoreOptions ob = OnPostgres(db);
  ob.cluster_id = (*a)->cluster_id();
  auto b = Keystore::Open(ob);
  QSAPI_ASSERT_OK(b);
  EXPECT_EQ((*b)->cluster_id(), (*a)->cluster_id());
  EXPECT_THAT((*b)->store_description(), HasSubstr("PostgreSQL host="));
  EXPECT_THAT((*b)->store_description(), HasSubstr("dbname=" + db));

  QSAPI_ASSERT_OK((*a)->Create("shared", ParseKeyType("AES-256-GCM").value()));
  auto ct1 = (*a)->Encrypt("shared", AsBytes("one"));
  QSAPI_ASSERT_OK(ct1);
  EXPECT_EQ(ToString((*b)->Decrypt("shared", *ct1).value()), "one");
  // A rotation on b is what a's next encryption uses; a's old ciphertext still opens on b.
  QSAPI_ASSERT_OK((*b)->Rotate("shared"));
  auto ct2 = (*a)->Encrypt("shared", AsBytes("two"));
  QSAPI_ASSERT_OK(ct2);
  EXPECT_EQ(ParseHeader(*ct2)->version, 2U);
  // A raised minimum decryption version on a is refused by b.
  KeyPolicy policy = (*a)->Get("shared")->policy;
  policy.min_decryption_version = 2;
  QSAPI_ASSERT_OK((*a)->UpdatePolicy("shared", policy));
  auto old = (*b)->Decrypt("shared", *ct1);
  ASSERT_FALSE(old.ok());
  EXPECT_EQ(old.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(ToString((*b)->Decrypt("shared", *ct2).value()), "two");
  // One trail for the whole cluster, verified from either node.
  EXPECT_TRUE((*b)->CheckIntegrity()->problems.empty());

  // A node with another KEK, and a node configured for a cluster on an empty database, stop.
  auto stranger = OtherToken();
  stranger.backend = StoreBackend::kPostgresql;
  stranger.postgres.conninfo = Postgres()->ConnInfo(db);
  auto c = Keystore::Open(stranger);
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.error().message(), HasSubstr("this node's KEK is not the cluster's"));
  KeystoreOptions lost = OnPostgres(Postgres()->CreateDatabase());
  lost.cluster_id = (*a)->cluster_id();
  auto d = Keystore::Open(lost);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_THAT(d.error().message(), HasSubstr("holds no cluster identity"));
}

TEST_F(ClusterTest, ThePasswordComesFromAPrivateFileOrTheEnvironmentAndIsNeverShown) {
  ASSERT_NE(Postgres(), nullptr);
  const std::string db = Postgres()->CreateDatabase();
  Postgres()->AddPasswordUser("node_pw", "s3cret-Pa55", db);
  KeystoreOptions o = OnPostgres(db);
  o.postgres.conninfo = "host=" + Postgres()->dir().string() + " port=55432 dbname=" + db + " user=node_pw";
  const std::filesystem::path pw = dir_ / "db.password";

  WriteSecretFile(pw, "s3cret-Pa55\n", 0644);
  o.postgres.password_file = pw.string();
  auto loose = Keystore::Open(o);
  ASSERT_FALSE(loose.ok());
  EXPECT_EQ(loose.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_THAT(loose.error().message(), HasSubstr("chmod 600"));

  WriteSecretFile(pw, "wrong-password\n", 0600);
  auto wrong = Keystore::Open(o);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().code(), ErrorCode::kUnavailable);
  EXPECT_THAT(wrong.error().message(), HasSubstr("password authentication failed"));
  EXPECT_THAT(wrong.error().message(), Not(HasSubstr("wrong-password")));

  WriteSecretFile(pw, "s3cret-Pa55\n", 0600);
  QSAPI_ASSERT_OK(Keystore::Open(o));

  o.postgres.password_file.clear();
  o.postgres.password_env = "QSAPI_TEST_DB_PASSWORD";
  ::unsetenv("QSAPI_TEST_DB_PASSWORD");
  auto unset = Keystore::Open(o);
  ASSERT_FALSE(unset.ok());
  EXPECT_THAT(unset.error().message(), HasSubstr("QSAPI_TEST_DB_PASSWORD"));
  ::setenv("QSAPI_TEST_DB_PASSWORD", "s3cret-Pa55", 1);
  QSAPI_EXPECT_OK(Keystore::Open(o));
  ::unsetenv("QSAPI_TEST_DB_PASSWORD");

  KeystoreOptions inline_password = o;
  inline_password.postgres.conninfo += " password=s3cret-Pa55";
  auto refused = Keystore::Open(inline_password);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(refused.error().message(), Not(HasSubstr("s3cret")));
}

TEST_F(ClusterTest, OneNodeSweepsAtATimeAndASweepNeverRotatesTwice) {
  ASSERT_NE(Postgres(), nullptr);
  const std::string db = Postgres()->CreateDatabase();
  auto a = Keystore::Open(OnPostgres(db));
  QSAPI_ASSERT_OK(a);
  auto b = Keystore::Open(OnPostgres(db));
  QSAPI_ASSERT_OK(b);
  KeyPolicy policy;
  policy.auto_rotate_period = std::chrono::seconds(1);
  QSAPI_ASSERT_OK((*a)->Create("swept", ParseKeyType("AES-256-GCM").value(), policy));
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));
  // Another node holds the sweep's lock (psql in its place): this node's sweep does nothing.
  const std::string hold = Postgres()->Psql(db) +
                           " -q -c \"BEGIN\" -c \"SELECT pg_advisory_xact_lock(7140518, hashtext('rotation-sweep'))\""
                           " -c \"SELECT pg_sleep(2)\" -c \"COMMIT\" >/dev/null 2>&1 &";
  ASSERT_EQ(std::system(hold.c_str()), 0);  // NOLINT(cert-env33-c)
  // Waits (10 s at most) until that session holds the lock, or has let it go.
  const auto wait_for_lock = [&](bool held) {
    const std::string count =
        Postgres()->Psql(db) + " -tA -c \"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted\"";
    for (int i = 0; i < 200; ++i) {
      std::FILE* p = ::popen(count.c_str(), "r");  // NOLINT(cert-env33-c)
      char line[16] = {};
      const bool got = p != nullptr && std::fgets(line, sizeof line, p) != nullptr;
      if (p != nullptr) ::pclose(p);
      if (got && (line[0] == '1') == held) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  };
  ASSERT_TRUE(wait_for_lock(true)) << "the other session never took the sweep's lock";
  auto skipped = (*b)->RotateDue();
  QSAPI_ASSERT_OK(skipped);
  EXPECT_TRUE(skipped->empty());
  EXPECT_EQ((*a)->Get("swept")->current_version, 1U);
  ASSERT_TRUE(wait_for_lock(false)) << "the other session never let the lock go";
  // The lock is free: one sweep rotates, the next (on the other node, same rows read before) does not.
  auto swept = (*b)->RotateDue();
  QSAPI_ASSERT_OK(swept);
  ASSERT_EQ(swept->size(), 1U);
  auto again = (*a)->RotateDue();
  QSAPI_ASSERT_OK(again);
  EXPECT_TRUE(again->empty());
  EXPECT_EQ((*a)->Get("swept")->current_version, 2U);
}

TEST_F(ClusterTest, RecordsAreCheckedAndAudited) {
  const std::size_t before = ks_->Audit(1000)->size();
  EXPECT_EQ(ks_->CreateRecord("Bad Kind", "x", AsBytes("v")).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ks_->CreateRecord("api-token", "two words", AsBytes("v")).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ks_->CreateRecord("api-token", "x", {}).error().code(), ErrorCode::kInvalidArgument);
  const Bytes big(64 * 1024 + 1, 'x');
  EXPECT_EQ(ks_->CreateRecord("api-token", "x", big).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ks_->Audit(1000)->size(), before) << "a refused record writes nothing";
  QSAPI_ASSERT_OK(ks_->CreateRecord("api-token", "app", AsBytes("{}"), "cli:alice"));
  EXPECT_EQ(ks_->CreateRecord("api-token", "app", AsBytes("{}")).error().code(), ErrorCode::kAlreadyExists);
  const auto records = ks_->ListRecords("api-token");
  QSAPI_ASSERT_OK(records);
  ASSERT_EQ(records->size(), 1U);
  EXPECT_EQ((*records)[0].name, "app");
  QSAPI_ASSERT_OK(ks_->DeleteRecord("api-token", "app"));
  EXPECT_EQ(ks_->DeleteRecord("api-token", "app").error().code(), ErrorCode::kNotFound);
  const auto entries = ks_->Audit(1000);
  ASSERT_EQ(entries->size(), before + 2);
  EXPECT_EQ((*entries)[before].action, "record.create");
  EXPECT_EQ((*entries)[before].actor, "cli:alice");
  EXPECT_EQ((*entries)[before].detail, "api-token app");
  EXPECT_EQ((*entries)[before + 1].action, "record.delete");
}

TEST_F(ClusterTest, StoreOptionsOutOfRangeAreRefusedBeforeAnythingIsTouched) {
  KeystoreOptions o = OnPostgres("unused");
  o.postgres.conninfo.clear();
  EXPECT_EQ(Keystore::Open(o).error().code(), ErrorCode::kInvalidArgument);
  o = OnPostgres("unused");
  o.postgres.pool_size = 0;
  EXPECT_EQ(Keystore::Open(o).error().code(), ErrorCode::kInvalidArgument);
  o = OnPostgres("unused");
  o.postgres.connect_timeout = std::chrono::seconds(0);
  EXPECT_EQ(Keystore::Open(o).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ParseStoreBackend("mysql").error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(StoreBackendName(ParseStoreBackend("postgresql").value()), "postgresql");
}

}  // namespace
}  // namespace qsapi::keystore

namespace qsapi::keystore {
namespace {

TEST_F(ClusterTest, StoreMigrateMovesOneNodeToPostgresUnchangedAndRetiresTheSqliteFile) {
  ASSERT_NE(Postgres(), nullptr);
  const KeyType aes = ParseKeyType("AES-256-GCM").value();
  QSAPI_ASSERT_OK(ks_->Create("orders", aes));
  const auto v1 = ks_->Encrypt("orders", AsBytes("written on one node"));
  QSAPI_ASSERT_OK(v1);
  QSAPI_ASSERT_OK(ks_->Rotate("orders"));
  const auto v2 = ks_->Encrypt("orders", AsBytes("after a rotation"));
  QSAPI_ASSERT_OK(v2);
  QSAPI_ASSERT_OK(ks_->CreateRecord("api-token", "app", AsBytes("{\"hash\":\"x\"}")));
  const auto trail = ks_->OpenTrail("qsapid.audit", 1);
  QSAPI_ASSERT_OK(trail);
  const std::string cluster = ks_->cluster_id();
  const auto head = ks_->AuditHead();
  QSAPI_ASSERT_OK(head);
  const auto before = ks_->Audit(1000);
  QSAPI_ASSERT_OK(before);
  ks_.reset();

  const std::string db = Postgres()->CreateDatabase();
  MigrationExtras extras;
  extras.add.push_back({.kind = "deployment-ca", .name = "ca", .value = Bytes{'{', '}'}});
  extras.rename_trails.emplace_back("qsapid.audit", "qsapid.audit@n1");
  extras.actor = "migrate-test";
  const auto moved = Keystore::Migrate(EmbeddedOptions(dir_), OnPostgres(db), extras);
  ASSERT_TRUE(moved.ok()) << moved.error().ToString();
  EXPECT_EQ(moved->cluster_id, cluster);
  EXPECT_EQ(moved->keys, 1U);
  EXPECT_EQ(moved->versions, 2U);
  EXPECT_EQ(moved->records, 2U);
  EXPECT_EQ(moved->trails, 2U);  // the keystore's own and the renamed one
  EXPECT_EQ(moved->audit_entries, head->seq);
  EXPECT_THAT(moved->from, HasSubstr("SQLite "));
  EXPECT_THAT(moved->to, HasSubstr("PostgreSQL"));
  EXPECT_THAT(moved->added, ::testing::ElementsAre("deployment-ca ca", "trail qsapid.audit -> qsapid.audit@n1"));

  // The copy serves what the file held: the same cluster, ciphertexts of both versions, the
  // same trail up to the migration's own entry, the renamed trail under the same key.
  auto pg = Keystore::Open(OnPostgres(db));
  ASSERT_TRUE(pg.ok()) << pg.error().ToString();
  EXPECT_EQ((*pg)->cluster_id(), cluster);
  EXPECT_EQ(ToString((*pg)->Decrypt("orders", *v1).value()), "written on one node");
  EXPECT_EQ(ToString((*pg)->Decrypt("orders", *v2).value()), "after a rotation");
  EXPECT_EQ((*pg)->Get("orders")->current_version, 2U);
  const auto report = (*pg)->CheckIntegrity();
  QSAPI_ASSERT_OK(report);
  EXPECT_THAT(report->problems, ::testing::IsEmpty());
  QSAPI_EXPECT_OK((*pg)->CheckAuditHead(*head));
  const auto after = (*pg)->Audit(1000);
  QSAPI_ASSERT_OK(after);
  ASSERT_EQ(after->size(), before->size() + 1);
  for (std::size_t i = 0; i < before->size(); ++i) {
    EXPECT_EQ((*after)[i].seq, (*before)[i].seq);
    EXPECT_EQ((*after)[i].action, (*before)[i].action);
    EXPECT_EQ((*after)[i].detail, (*before)[i].detail);
  }
  EXPECT_EQ(after->back().action, "store.migrate");
  EXPECT_EQ(after->back().actor, "migrate-test");
  EXPECT_THAT(after->back().detail, HasSubstr("1 keys, 2 versions"));
  const auto renamed = (*pg)->FindTrail("qsapid.audit@n1");
  QSAPI_ASSERT_OK(renamed);
  ASSERT_TRUE(renamed->has_value());
  EXPECT_TRUE(ConstantTimeEqual((*renamed)->key.view(), trail->key.view()));
  EXPECT_EQ((*renamed)->first_seq, trail->first_seq);
  EXPECT_FALSE((*pg)->FindTrail("qsapid.audit")->has_value());
  const auto records = (*pg)->ListRecords("api-token");
  QSAPI_ASSERT_OK(records);
  ASSERT_EQ(records->size(), 1U);
  EXPECT_EQ((*records)[0].name, "app");
  // The copy is a store like any other: it takes writes.
  QSAPI_EXPECT_OK((*pg)->Rotate("orders"));

  // The SQLite file is retired: every open says where its contents went, and writes nothing.
  auto old = Keystore::Open(EmbeddedOptions(dir_));
  ASSERT_FALSE(old.ok());
  EXPECT_EQ(old.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_THAT(old.error().message(), HasSubstr("was moved to " + moved->to));
  auto again = Keystore::Migrate(EmbeddedOptions(dir_), OnPostgres(Postgres()->CreateDatabase()));
  ASSERT_FALSE(again.ok());
  EXPECT_THAT(again.error().message(), HasSubstr("was moved to"));
}

TEST_F(ClusterTest, AMigrationThatCannotBeCheckedWritesNothing) {
  ASSERT_NE(Postgres(), nullptr);
  QSAPI_ASSERT_OK(ks_->Create("orders", ParseKeyType("AES-256-GCM").value()));
  const std::size_t entries = ks_->Audit(1000)->size();
  ks_.reset();

  // A target that already holds a keystore (here: another cluster's).
  const std::string used = Postgres()->CreateDatabase();
  {
    auto other = Keystore::Open(OnPostgres(used));
    QSAPI_ASSERT_OK(other);
  }
  const std::string used_rows = Rows(used);
  auto into_used = Keystore::Migrate(EmbeddedOptions(dir_), OnPostgres(used));
  ASSERT_FALSE(into_used.ok());
  EXPECT_EQ(into_used.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_THAT(into_used.error().message(), HasSubstr("is not empty"));
  EXPECT_EQ(Rows(used), used_rows);

  // A target whose token holds another KEK: refused before anything is written there.
  const std::string fresh = Postgres()->CreateDatabase();
  KeystoreOptions other_kek = OtherToken();
  other_kek.backend = StoreBackend::kPostgresql;
  other_kek.postgres.conninfo = Postgres()->ConnInfo(fresh);
  auto wrong_kek = Keystore::Migrate(EmbeddedOptions(dir_), other_kek);
  ASSERT_FALSE(wrong_kek.ok());
  EXPECT_THAT(wrong_kek.error().message(), HasSubstr("this node's KEK is not the cluster's"));

  // A target configured for another cluster.
  KeystoreOptions other_cluster = OnPostgres(fresh);
  other_cluster.cluster_id = "00000000000000000000000000000000";
  auto wrong_cluster = Keystore::Migrate(EmbeddedOptions(dir_), other_cluster);
  ASSERT_FALSE(wrong_cluster.ok());
  EXPECT_THAT(wrong_cluster.error().message(), HasSubstr("configured for cluster 00000000000000000000000000000000"));

  // The same store on both sides.
  auto same = Keystore::Migrate(EmbeddedOptions(dir_), EmbeddedOptions(dir_));
  ASSERT_FALSE(same.ok());
  EXPECT_THAT(same.error().message(), HasSubstr("are the same store"));

  // A source whose trail was altered: it does not move.
  Reopen();
  EXPECT_EQ(ks_->Audit(1000)->size(), entries) << "a refused migration leaves the source as it was";
  ks_.reset();
  Sql(dir_ / "keystore.db", "UPDATE audit SET detail = 'edited' WHERE seq = 1");
  auto tampered = Keystore::Migrate(EmbeddedOptions(dir_), OnPostgres(fresh));
  ASSERT_FALSE(tampered.ok());
  EXPECT_EQ(tampered.error().code(), ErrorCode::kDataLoss);
  EXPECT_THAT(tampered.error().message(), HasSubstr("entry 1 was altered"));
  EXPECT_EQ(Output(Postgres()->Psql(fresh) +
                   " -tAc \"SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'\""),
            "0")
      << "the refused migrations never touched the target";
}

}  // namespace
}  // namespace qsapi::keystore
