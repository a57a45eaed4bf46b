// One conformance suite for every MetadataStore backend: the same calls, the same answers, against
// a real SQLite file and a real PostgreSQL 15 server started by the suite. Then what only the
// PostgreSQL backend has: several nodes on one database, bad connection settings, a schema from
// another version.
#include "keystore/internal/metadata_store.h"

#include <algorithm>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <sqlite3.h>
#include <string>
#include <thread>
#include <vector>

#include "keystore/internal/audit_chain.h"
#include "keystore/internal/pg_store.h"
#include "support/postgres_server.h"
#include "support/test_support.h"

namespace qsapi::keystore::internal {
namespace {

// One PostgreSQL server for the whole binary; each test gets a database of its own.
testing::PostgresServer* Postgres() {
  static std::unique_ptr<testing::PostgresServer> server = testing::PostgresServer::Start();
  return server.get();
}

PostgresStoreOptions PgOptions(std::string conninfo, std::string display = {}) {
  PostgresStoreOptions o;
  o.conninfo = std::move(conninfo);
  o.display = std::move(display);
  return o;
}

KeyId Id(std::uint8_t b) {
  KeyId id{};
  id.fill(b);
  return id;
}

AuditRow Audit(const std::string& action, const std::string& key = "k") {
  return AuditRow{
      .at = UnixNow(), .actor = "test", .action = action, .key_name = key, .version = 1, .result = "ok", .detail = "d"};
}

KeyRow Key(const std::string& name, std::uint8_t id) {
  return KeyRow{.name = name,
                .id = Id(id),
                .type = "AES-256-GCM",
                .created = UnixNow(),
                .rotated = UnixNow(),
                .current_version = 1,
                .auto_rotate_seconds = 0,
                .max_operations = 0,
                .min_decryption_version = 1,
                .deletion_allowed = false};
}

VersionRow Version(std::uint8_t id, std::uint32_t v) {
  return VersionRow{.key_id = Id(id),
                    .version = v,
                    .state = "active",
                    .created = UnixNow(),
                    .ops_leased = 0,
                    .public_key = {},
                    .wrapped = Bytes(60, static_cast<std::uint8_t>(v))};
}

class MetadataStoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "sqlite") {
      // The test's name is "Name/sqlite": one directory, not a parent left behind by TearDown.
      std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
      std::replace(name.begin(), name.end(), '/', '-');
      dir_ = std::filesystem::temp_directory_path() / ("qsapi-store-" + std::to_string(::getpid()) + "-" + name);
      std::filesystem::remove_all(dir_);
      std::filesystem::create_directories(dir_);
    } else {
      ASSERT_NE(Postgres(), nullptr);
      db_ = Postgres()->CreateDatabase();
    }
    store_ = Open();
    ASSERT_NE(store_, nullptr);
  }
  void TearDown() override {
    store_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // Open opens another handle on the same store (another node, or the same node again).
  std::unique_ptr<MetadataStore> Open() {
    Result<std::unique_ptr<MetadataStore>> s =
        GetParam() == "sqlite" ? OpenSqliteStore(dir_ / "keystore.db")
                               : OpenPostgresStore(PgOptions(Postgres()->ConnInfo(db_), "test database " + db_));
    EXPECT_TRUE(s.ok()) << s.error().ToString();
    return s.ok() ? std::move(s).value() : nullptr;
  }

  // Sql alters the stored rows behind the store's back (a hand edit, a corrupted disk).
  void Sql(const std::string& sql) {
    if (GetParam() == "sqlite") {
      sqlite3* db = nullptr;
      ASSERT_EQ(sqlite3_open((dir_ / "keystore.db").c_str(), &db), SQLITE_OK);
      EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
      sqlite3_close(db);
    } else {
      ASSERT_EQ(std::system((Postgres()->Psql(db_) + " -q -c \"" + sql + "\" >/dev/null").c_str()), 0)
          << sql;  // NOLINT
    }
  }

  std::filesystem::path dir_;
  std::string db_;
  std::unique_ptr<MetadataStore> store_;
};

TEST_P(MetadataStoreTest, KeysAndVersionsRoundTrip) {
  KeyRow k = Key("orders", 1);
  k.max_operations = 1000;
  k.auto_rotate_seconds = 3600;
  QSAPI_ASSERT_OK(store_->CreateKey(k, Version(1, 1), Audit("create", "orders")));
  EXPECT_EQ(store_->CreateKey(Key("orders", 2), Version(2, 1), Audit("create", "orders")).error().code(),
            ErrorCode::kAlreadyExists);
  auto got = store_->GetKey("orders");
  QSAPI_ASSERT_OK(got);
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->id, Id(1));
  EXPECT_EQ((*got)->max_operations, 1000U);
  EXPECT_EQ((*got)->auto_rotate_seconds, 3600);
  EXPECT_FALSE(store_->GetKey("none")->has_value());
  EXPECT_EQ((*store_->GetKeyById(Id(1)))->name, "orders");
  auto v = store_->GetVersion(Id(1), 1);
  QSAPI_ASSERT_OK(v);
  ASSERT_TRUE(v->has_value());
  EXPECT_EQ((*v)->wrapped, Bytes(60, 1));
  EXPECT_TRUE((*v)->public_key.empty());
  EXPECT_FALSE(store_->GetVersion(Id(1), 2)->has_value());
  QSAPI_ASSERT_OK(store_->CreateKey(Key("alpha", 3), Version(3, 1), Audit("create", "alpha")));
  auto all = store_->ListKeys();
  QSAPI_ASSERT_OK(all);
  ASSERT_EQ(all->size(), 2U);
  EXPECT_EQ((*all)[0].name, "alpha");  // by name
}

TEST_P(MetadataStoreTest, AVersionIsMadeCurrentOnceAndChangesAreAudited) {
  QSAPI_ASSERT_OK(store_->CreateKey(Key("k", 1), Version(1, 1), Audit("create")));
  QSAPI_ASSERT_OK(store_->AddVersion("k", Version(1, 2), "decrypt-only", UnixNow(), Audit("rotate")));
  // A second writer that read version 1 as current: refused, nothing written.
  EXPECT_EQ(store_->AddVersion("k", Version(1, 2), "decrypt-only", UnixNow(), Audit("rotate")).error().code(),
            ErrorCode::kFailedPrecondition);
  EXPECT_EQ(store_->AddVersion("nope", Version(9, 2), "decrypt-only", UnixNow(), Audit("rotate")).error().code(),
            ErrorCode::kNotFound);
  EXPECT_EQ((*store_->GetKey("k"))->current_version, 2U);
  auto versions = store_->GetVersions(Id(1));
  QSAPI_ASSERT_OK(versions);
  ASSERT_EQ(versions->size(), 2U);
  EXPECT_EQ((*versions)[0].state, "decrypt-only");
  EXPECT_EQ((*versions)[1].state, "active");
  QSAPI_ASSERT_OK(store_->SetVersionState(Id(1), 1, "destroyed", true, Audit("destroy-version")));
  EXPECT_TRUE((*store_->GetVersion(Id(1), 1))->wrapped.empty());
  EXPECT_EQ(store_->SetVersionState(Id(1), 7, "destroyed", true, Audit("x")).error().code(), ErrorCode::kNotFound);
  KeyRow policy = **store_->GetKey("k");
  policy.min_decryption_version = 2;
  policy.deletion_allowed = true;
  QSAPI_ASSERT_OK(store_->UpdatePolicy(policy, Audit("config")));
  EXPECT_EQ((*store_->GetKey("k"))->min_decryption_version, 2U);
  QSAPI_ASSERT_OK(store_->DeleteKey("k", Audit("destroy")));
  EXPECT_FALSE(store_->GetKey("k")->has_value());
  EXPECT_TRUE(store_->GetVersions(Id(1))->empty());
  EXPECT_EQ(store_->DeleteKey("k", Audit("destroy")).error().code(), ErrorCode::kNotFound);
  // Every successful change, and only those, is in the trail, in order.
  auto trail = store_->ReadAudit(100);
  QSAPI_ASSERT_OK(trail);
  std::vector<std::string> actions;
  for (const auto& e : *trail) actions.push_back(e.action);
  EXPECT_EQ(actions, (std::vector<std::string>{"create", "rotate", "destroy-version", "config", "destroy"}));
  EXPECT_EQ(trail->back().seq, 5U);
  QSAPI_EXPECT_OK(store_->VerifyAuditChain());
}

TEST_P(MetadataStoreTest, OperationBlocksNeverOverlapNorPassTheLimit) {
  QSAPI_ASSERT_OK(store_->CreateKey(Key("k", 1), Version(1, 1), Audit("create")));
  auto g = store_->GrantOperations(Id(1), 1, 100, 250);
  QSAPI_ASSERT_OK(g);
  EXPECT_EQ(**g, 100U);
  EXPECT_EQ(**store_->GrantOperations(Id(1), 1, 100, 250), 200U);
  EXPECT_FALSE(store_->GrantOperations(Id(1), 1, 100, 250)->has_value());  // only 50 left: nothing changes
  EXPECT_EQ((*store_->GetVersion(Id(1), 1))->ops_leased, 200U);
  EXPECT_EQ(**store_->GrantOperations(Id(1), 1, 50, 250), 250U);
  EXPECT_FALSE(store_->GrantOperations(Id(1), 1, 1, 250)->has_value());
  EXPECT_FALSE(store_->GrantOperations(Id(1), 9, 1, 250)->has_value());  // no such version
  EXPECT_EQ(store_->GrantOperations(Id(1), 1, 0, 250).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(store_->GrantOperations(Id(1), 1, 300, 250).error().code(), ErrorCode::kInvalidArgument);

  // Several handles (nodes) and threads at once: every block is its own, and together they stop
  // exactly at the limit.
  QSAPI_ASSERT_OK(store_->CreateKey(Key("busy", 2), Version(2, 1), Audit("create", "busy")));
  constexpr std::uint64_t kMax = 5000;
  std::vector<std::unique_ptr<MetadataStore>> nodes;
  for (int i = 0; i < 3; ++i) nodes.push_back(Open());
  std::mutex mu;
  std::vector<std::uint64_t> ends;
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      MetadataStore& s = *nodes[static_cast<std::size_t>(t) % nodes.size()];
      for (;;) {
        auto r = s.GrantOperations(Id(2), 1, 64, kMax);
        ASSERT_TRUE(r.ok()) << r.error().ToString();
        if (!r->has_value()) return;
        const std::lock_guard lock(mu);
        ends.push_back(**r);
      }
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::uint64_t> distinct(ends.begin(), ends.end());
  EXPECT_EQ(distinct.size(), ends.size()) << "two grants ended at the same place: overlapping blocks";
  EXPECT_EQ(ends.size(), kMax / 64);
  EXPECT_LE(*distinct.rbegin(), kMax);
}

TEST_P(MetadataStoreTest, TheTrailIsChainedKeyedAndAlterationsAreFound) {
  const auto counter0 = store_->ChangeCounter();
  QSAPI_ASSERT_OK(counter0);
  QSAPI_ASSERT_OK(store_->AppendAudit(Audit("a")));
  const auto counter1 = store_->ChangeCounter();
  QSAPI_ASSERT_OK(counter1);
  EXPECT_NE(*counter1, *counter0);
  EXPECT_EQ(*store_->ChangeCounter(), *counter1) << "a read does not move the counter";
  // Key the trail from entry 2 on (as the keystore does with its trail key).
  store_->UseAuditKey(SecretBytes::CopyFrom(Bytes(32, 7)), 2);
  QSAPI_ASSERT_OK(store_->AppendAudit(Audit("b")));
  QSAPI_ASSERT_OK(store_->AppendAudit(Audit("c")));
  QSAPI_EXPECT_OK(store_->VerifyAuditChain());
  auto head = store_->AuditHead();
  QSAPI_ASSERT_OK(head);
  EXPECT_EQ(head->first, 3U);
  // The chain is the shared one: entry 1 recomputed here, independently of the backend.
  auto first = store_->ReadAudit(3);
  QSAPI_ASSERT_OK(first);
  AuditRow a{.at = std::chrono::duration_cast<std::chrono::seconds>((*first)[0].at.time_since_epoch()).count(),
             .actor = "test",
             .action = "a",
             .key_name = "k",
             .version = 1,
             .result = "ok",
             .detail = "d"};
  auto c1 = AuditChainValue(Bytes(kAuditChainSize, 0), 1, a);
  QSAPI_ASSERT_OK(c1);
  EXPECT_TRUE(*store_->HasAuditEntry(1, *c1));
  EXPECT_FALSE(*store_->HasAuditEntry(1, Bytes(32, 1)));
  EXPECT_TRUE(*store_->HasAuditEntry(3, head->second));
  // Another handle without the key cannot verify the keyed entries; with it, it can.
  auto other = Open();
  EXPECT_EQ(other->VerifyAuditChain().error().code(), ErrorCode::kDataLoss);
  other->UseAuditKey(SecretBytes::CopyFrom(Bytes(32, 7)), 2);
  QSAPI_EXPECT_OK(other->VerifyAuditChain());
  // An edited entry is found and named.
  Sql("UPDATE audit SET detail = 'rewritten' WHERE seq = 2");
  auto st = store_->VerifyAuditChain();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kDataLoss);
  EXPECT_NE(st.error().message().find("entry 2"), std::string::npos) << st.error().message();
}

TEST_P(MetadataStoreTest, TrailsHaveOneRowAndHeadsOnlyMoveOn) {
  TrailRow row{.trail = "qsapid", .wrapped = {}, .first_seq = 1, .head_seq = 0, .head_mac = {}, .updated = UnixNow()};
  auto wrap = [](std::uint64_t first) -> Result<Bytes> { return Bytes(40, static_cast<std::uint8_t>(first)); };
  auto first = store_->CreateTrail(row, Audit("trail.create"), nullptr, wrap);
  QSAPI_ASSERT_OK(first);
  EXPECT_EQ(*first, 1U);
  EXPECT_EQ(store_->CreateTrail(row, Audit("trail.create"), nullptr, wrap).error().code(), ErrorCode::kAlreadyExists);
  // Our own trail: keyed from the entry that records its creation.
  const SecretBytes key = SecretBytes::CopyFrom(Bytes(32, 9));
  TrailRow own = row;
  own.trail = "keystore";
  auto own_first = store_->CreateTrail(own, Audit("trail.create"), &key, wrap);
  QSAPI_ASSERT_OK(own_first);
  EXPECT_EQ(*own_first, 2U);
  QSAPI_EXPECT_OK(store_->VerifyAuditChain());
  auto got = store_->GetTrail("keystore");
  QSAPI_ASSERT_OK(got);
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->first_seq, 2U);
  EXPECT_EQ((*got)->wrapped, Bytes(40, 2));
  QSAPI_ASSERT_OK(store_->SetTrailHead("qsapid", 10, Bytes(32, 1)));
  QSAPI_ASSERT_OK(store_->SetTrailHead("qsapid", 10, Bytes(32, 1)));
  EXPECT_EQ(store_->SetTrailHead("qsapid", 9, Bytes(32, 1)).error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(store_->SetTrailHead("none", 9, Bytes(32, 1)).error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ((*store_->GetTrail("qsapid"))->head_seq, 10U);
  TrailRow fresh = row;
  fresh.first_seq = 5;
  fresh.wrapped = Bytes(40, 5);
  QSAPI_ASSERT_OK(store_->ReplaceTrail(fresh, Audit("trail.replace")));
  EXPECT_EQ((*store_->GetTrail("qsapid"))->head_seq, 0U);
  fresh.trail = "none";
  EXPECT_EQ(store_->ReplaceTrail(fresh, Audit("trail.replace")).error().code(), ErrorCode::kNotFound);
  EXPECT_FALSE(store_->GetTrail("none")->has_value());
}

TEST_P(MetadataStoreTest, CorruptRowsAreDataLossNotValues) {
  QSAPI_ASSERT_OK(store_->CreateKey(Key("k", 1), Version(1, 1), Audit("create")));
  Sql("UPDATE keys SET current_version = 0 WHERE name = 'k'");
  auto k = store_->GetKey("k");
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.error().code(), ErrorCode::kDataLoss);
  EXPECT_NE(k.error().message().find("current_version"), std::string::npos);
  Sql("UPDATE key_versions SET ops_leased = -5");
  EXPECT_EQ(store_->GetVersion(Id(1), 1).error().code(), ErrorCode::kDataLoss);
}

TEST_P(MetadataStoreTest, RecordsAreWrittenOnceListedByKindAndDeletedWithTheirAuditEntries) {
  const auto rec = [](const std::string& kind, const std::string& name, std::uint8_t b) {
    return RecordRow{.kind = kind, .name = name, .value = Bytes(10, b), .updated = 1700000000};
  };
  QSAPI_ASSERT_OK(store_->CreateRecord(rec("api-token", "zeta", 1), Audit("record.create")));
  QSAPI_ASSERT_OK(store_->CreateRecord(rec("api-token", "alpha", 2), Audit("record.create")));
  QSAPI_ASSERT_OK(store_->CreateRecord(rec("deployment-ca", "alpha", 3), Audit("record.create")));
  std::unique_ptr<MetadataStore> other = Open();  // another node
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(other->CreateRecord(rec("api-token", "alpha", 9), Audit("record.create")).error().code(),
            ErrorCode::kAlreadyExists);
  Result<std::vector<RecordRow>> tokens = other->ListRecords("api-token");
  QSAPI_ASSERT_OK(tokens);
  ASSERT_EQ(tokens->size(), 2U);
  EXPECT_EQ((*tokens)[0].name, "alpha");
  EXPECT_EQ((*tokens)[0].value, Bytes(10, 2)) << "the losing writer changed nothing";
  EXPECT_EQ((*tokens)[1].name, "zeta");
  EXPECT_EQ((*tokens)[1].updated, 1700000000);
  QSAPI_ASSERT_OK(other->DeleteRecord("api-token", "zeta", Audit("record.delete")));
  EXPECT_EQ(store_->DeleteRecord("api-token", "zeta", Audit("record.delete")).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->ListRecords("api-token")->size(), 1U);
  EXPECT_EQ(store_->ListRecords("deployment-ca")->size(), 1U);
  EXPECT_TRUE(store_->ListRecords("nothing")->empty());
  QSAPI_EXPECT_OK(store_->VerifyAuditChain());
  Sql("UPDATE records SET updated = -1 WHERE name = 'alpha' AND kind = 'api-token'");
  Result<std::vector<RecordRow>> bad = store_->ListRecords("api-token");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kDataLoss);
}

TEST_P(MetadataStoreTest, TheClusterIdentityIsWrittenOnceAndReadStrictly) {
  EXPECT_FALSE(store_->GetCluster()->has_value());
  const ClusterRow row{.cluster_id = "0123456789abcdef0123456789abcdef", .canary = Bytes(60, 7), .created = 1700000000};
  QSAPI_ASSERT_OK(store_->CreateCluster(row, Audit("cluster.init")));
  // A second node racing to write its own identity loses cleanly, and nothing of it is kept.
  std::unique_ptr<MetadataStore> other = Open();
  ASSERT_NE(other, nullptr);
  const ClusterRow theirs{.cluster_id = "ffffffffffffffffffffffffffffffff", .canary = Bytes(60, 9), .created = 1};
  EXPECT_EQ(other->CreateCluster(theirs, Audit("cluster.init")).error().code(), ErrorCode::kAlreadyExists);
  Result<std::optional<ClusterRow>> back = other->GetCluster();
  QSAPI_ASSERT_OK(back);
  ASSERT_TRUE(back->has_value());
  EXPECT_EQ((*back)->cluster_id, row.cluster_id);
  EXPECT_EQ((*back)->canary, row.canary);
  EXPECT_EQ((*back)->created, row.created);
  QSAPI_EXPECT_OK(store_->VerifyAuditChain());
  // Hand-edited identities are DATA_LOSS naming the value, never an identity of another shape.
  Sql("UPDATE qsapi_meta SET value = 'zz' WHERE name = 'cluster_canary'");
  Result<std::optional<ClusterRow>> bad = store_->GetCluster();
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kDataLoss);
  EXPECT_NE(bad.error().message().find("cluster_canary"), std::string::npos) << bad.error().message();
  Sql("DELETE FROM qsapi_meta WHERE name = 'cluster_canary'");
  EXPECT_EQ(store_->GetCluster().error().code(), ErrorCode::kDataLoss);
  Sql("UPDATE qsapi_meta SET value = '0123456789ABCDEF0123456789ABCDEF' WHERE name = 'cluster_id'");
  EXPECT_EQ(store_->GetCluster().error().code(), ErrorCode::kDataLoss);
}

// ExpectSameRows compares two lists of rows whole (each row type compares every field), naming the
// first row that differs.
template <typename Row, typename Name>
void ExpectSameRows(const std::vector<Row>& a, const std::vector<Row>& b, const char* what, Name name) {
  ASSERT_EQ(a.size(), b.size()) << what << " rows";
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(a[i] == b[i]) << what << " " << name(a[i]) << " differs";
}

// Every row the two exports hold.
void ExpectSameContents(const StoreContents& a, const StoreContents& b) {
  EXPECT_TRUE(a.cluster == b.cluster) << "the cluster identity differs";
  ExpectSameRows(a.keys, b.keys, "key", [](const KeyRow& r) { return r.name; });
  ExpectSameRows(a.versions, b.versions, "version", [](const VersionRow& r) { return std::to_string(r.version); });
  ExpectSameRows(a.records, b.records, "record", [](const RecordRow& r) { return r.kind + " " + r.name; });
  ExpectSameRows(a.trails, b.trails, "trail", [](const TrailRow& r) { return r.trail; });
  ExpectSameRows(a.audit, b.audit, "audit entry", [](const StoredAuditEntry& r) { return std::to_string(r.seq); });
}

TEST_P(MetadataStoreTest, EverythingMovesToTheOtherBackendUnchangedAndTheSourceIsRetired) {
  QSAPI_ASSERT_OK(store_->AppendAudit(Audit("before-the-key")));
  store_->UseAuditKey(SecretBytes::CopyFrom(Bytes(32, 7)), 2);
  const ClusterRow cluster{.cluster_id = "0123456789abcdef0123456789abcdef", .canary = Bytes(60, 7), .created = 7};
  QSAPI_ASSERT_OK(store_->CreateCluster(cluster, Audit("cluster.init")));
  QSAPI_ASSERT_OK(store_->CreateKey(Key("orders", 1), Version(1, 1), Audit("create", "orders")));
  VersionRow v2 = Version(1, 2);
  v2.public_key = Bytes(32, 9);
  QSAPI_ASSERT_OK(store_->AddVersion("orders", v2, "decrypt-only", 42, Audit("rotate", "orders")));
  QSAPI_ASSERT_OK(store_->GrantOperations(Id(1), 2, 100, 1000));
  QSAPI_ASSERT_OK(store_->CreateRecord({.kind = "api-token", .name = "app", .value = Bytes{'{', '}'}, .updated = 5},
                                       Audit("record.create")));
  const auto made =
      store_->CreateTrail(TrailRow{.trail = "qsapid.audit@n1", .first_seq = 3, .updated = 6}, Audit("trail.create"),
                          nullptr, [](std::uint64_t) -> Result<Bytes> { return Bytes(40, 3); });
  QSAPI_ASSERT_OK(made);
  QSAPI_ASSERT_OK(store_->SetTrailHead("qsapid.audit@n1", 9, Bytes(32, 4)));
  const auto out = store_->ExportAll();
  QSAPI_ASSERT_OK(out);
  EXPECT_EQ(out->audit.size(), 6U);
  EXPECT_EQ(out->versions.size(), 2U);
  EXPECT_EQ(out->versions[1].ops_leased, 100U);

  // Into a fresh store of the other backend.
  std::filesystem::path other_dir;
  std::string other_db;
  Result<std::unique_ptr<MetadataStore>> other = [&]() -> Result<std::unique_ptr<MetadataStore>> {
    if (GetParam() == "sqlite") {
      other_db = Postgres()->CreateDatabase();
      return OpenPostgresStore(PgOptions(Postgres()->ConnInfo(other_db), "test database " + other_db));
    }
    other_dir = std::filesystem::temp_directory_path() / ("qsapi-store-other-" + std::to_string(::getpid()));
    std::filesystem::remove_all(other_dir);
    std::filesystem::create_directories(other_dir);
    return OpenSqliteStore(other_dir / "keystore.db");
  }();
  QSAPI_ASSERT_OK(other);
  QSAPI_ASSERT_OK((*other)->ImportAll(*out));
  (*other)->UseAuditKey(SecretBytes::CopyFrom(Bytes(32, 7)), 2);
  QSAPI_EXPECT_OK((*other)->VerifyAuditChain());
  const auto back = (*other)->ExportAll();
  QSAPI_ASSERT_OK(back);
  ExpectSameContents(*out, *back);
  const auto head = (*other)->AuditHead();
  QSAPI_ASSERT_OK(head);
  EXPECT_EQ(head->first, 6U);
  EXPECT_EQ(head->second, out->audit.back().hash);
  // The copy goes on from where the source stopped, and grants operations after the copied ones.
  QSAPI_ASSERT_OK((*other)->AppendAudit(Audit("after")));
  QSAPI_EXPECT_OK((*other)->VerifyAuditChain());
  const auto granted = (*other)->GrantOperations(Id(1), 2, 100, 1000);
  QSAPI_ASSERT_OK(granted);
  EXPECT_EQ(granted->value_or(0), 200U);
  // A second import finds rows and writes nothing.
  const auto again = (*other)->ImportAll(*out);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(again.error().message().find("not empty"), std::string::npos) << again.error().message();
  EXPECT_EQ((*other)->ExportAll()->audit.size(), 7U);
  other->reset();
  if (!other_dir.empty()) std::filesystem::remove_all(other_dir);

  // The source, marked moved, refuses every later open and names where its contents went.
  QSAPI_ASSERT_OK(store_->MarkMoved("PostgreSQL host=elsewhere", Audit("store.moved")));
  store_.reset();
  Result<std::unique_ptr<MetadataStore>> reopened =
      GetParam() == "sqlite" ? OpenSqliteStore(dir_ / "keystore.db")
                             : OpenPostgresStore(PgOptions(Postgres()->ConnInfo(db_), "test database " + db_));
  ASSERT_FALSE(reopened.ok());
  EXPECT_EQ(reopened.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(reopened.error().message().find("was moved to PostgreSQL host=elsewhere"), std::string::npos)
      << reopened.error().message();
}

TEST_P(MetadataStoreTest, AnExportChecksTheTrailAndEveryRow) {
  store_->UseAuditKey(SecretBytes::CopyFrom(Bytes(32, 7)), 1);
  QSAPI_ASSERT_OK(store_->CreateKey(Key("orders", 1), Version(1, 1), Audit("create", "orders")));
  QSAPI_ASSERT_OK(store_->AppendAudit(Audit("second")));
  QSAPI_ASSERT_OK(store_->ExportAll());
  Sql("UPDATE audit SET actor = 'mallory' WHERE seq = 2");
  const auto altered = store_->ExportAll();
  ASSERT_FALSE(altered.ok());
  EXPECT_EQ(altered.error().code(), ErrorCode::kDataLoss);
  EXPECT_NE(altered.error().message().find("entry 2 was altered"), std::string::npos) << altered.error().message();
  Sql("UPDATE audit SET actor = 'test' WHERE seq = 2");
  QSAPI_ASSERT_OK(store_->ExportAll());
  Sql("DELETE FROM audit WHERE seq = 1");
  EXPECT_NE(store_->ExportAll().error().message().find("entry 1 is missing"), std::string::npos);
  Sql("UPDATE key_versions SET ops_leased = -1");
  const auto bad_row = store_->ExportAll();
  ASSERT_FALSE(bad_row.ok());
  EXPECT_NE(bad_row.error().message().find("ops_leased"), std::string::npos) << bad_row.error().message();
}

INSTANTIATE_TEST_SUITE_P(Backends, MetadataStoreTest, ::testing::Values("sqlite", "postgresql"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

// PostgreSQL only.
class PostgresStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_NE(Postgres(), nullptr); }
};

TEST_F(PostgresStoreTest, TwoNodesSeeEachOthersChanges) {
  const std::string db = Postgres()->CreateDatabase();
  auto a = OpenPostgresStore(PgOptions(Postgres()->ConnInfo(db)));
  auto b = OpenPostgresStore(PgOptions(Postgres()->ConnInfo(db)));
  QSAPI_ASSERT_OK(a);
  QSAPI_ASSERT_OK(b);
  const std::uint64_t before = *(*b)->ChangeCounter();
  QSAPI_ASSERT_OK((*a)->CreateKey(Key("shared", 4), Version(4, 1), Audit("create", "shared")));
  EXPECT_NE(*(*b)->ChangeCounter(), before) << "node b must notice node a's change";
  EXPECT_TRUE((*b)->GetKey("shared")->has_value());
  // Both nodes rotate from version 1: exactly one new version.
  auto ra = (*a)->AddVersion("shared", Version(4, 2), "decrypt-only", UnixNow(), Audit("rotate", "shared"));
  auto rb = (*b)->AddVersion("shared", Version(4, 2), "decrypt-only", UnixNow(), Audit("rotate", "shared"));
  EXPECT_NE(ra.ok(), rb.ok());
  EXPECT_EQ((*(*a)->GetVersions(Id(4))).size(), 2U);
  QSAPI_EXPECT_OK((*b)->VerifyAuditChain());
}

TEST_F(PostgresStoreTest, BadSettingsAreClearErrorsWithoutThePassword) {
  PostgresStoreOptions o =
      PgOptions("host=" + Postgres()->dir().string() + " port=1 dbname=x user=qsapi", "the test database");
  o.password = SecretBytes::CopyFrom(Bytes{'h', 'u', 'n', 't', 'e', 'r', '2'});
  o.connect_timeout = std::chrono::seconds(2);
  auto wrong = OpenPostgresStore(std::move(o));
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(wrong.error().message().find("the test database"), std::string::npos) << wrong.error().message();
  EXPECT_EQ(wrong.error().message().find("hunter2"), std::string::npos);
  auto no_db = OpenPostgresStore(PgOptions(Postgres()->ConnInfo("does_not_exist")));
  ASSERT_FALSE(no_db.ok());
  EXPECT_NE(no_db.error().message().find("does_not_exist"), std::string::npos) << no_db.error().message();
  EXPECT_EQ(OpenPostgresStore(PostgresStoreOptions{}).error().code(), ErrorCode::kInvalidArgument);
  PostgresStoreOptions no_pool = PgOptions("x");
  no_pool.pool_size = 0;
  EXPECT_EQ(OpenPostgresStore(std::move(no_pool)).error().code(), ErrorCode::kInvalidArgument);
}

TEST(PostgresDisplayNameTest, NamesTheDatabaseAndRefusesAPassword) {
  Result<std::string> d = PostgresDisplayName("host=db1,db2 port=5432,5433 dbname=qsapi user=svc sslmode=require");
  QSAPI_ASSERT_OK(d);
  EXPECT_EQ(*d, "host=db1,db2 port=5432,5433 dbname=qsapi user=svc");
  Result<std::string> uri = PostgresDisplayName("postgresql://svc@db1:5432/qsapi?target_session_attrs=read-write");
  QSAPI_ASSERT_OK(uri);
  EXPECT_EQ(*uri, "host=db1 port=5432 dbname=qsapi user=svc");
  for (const char* with_password : {"host=db password=hunter2", "postgresql://svc:hunter2@db1/qsapi"}) {
    Result<std::string> p = PostgresDisplayName(with_password);
    ASSERT_FALSE(p.ok()) << with_password;
    EXPECT_EQ(p.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(p.error().message().find("hunter2"), std::string::npos) << p.error().message();
    EXPECT_NE(p.error().message().find("password"), std::string::npos) << p.error().message();
  }
  Result<std::string> broken = PostgresDisplayName("host=db hunter2");
  ASSERT_FALSE(broken.ok());
  EXPECT_EQ(broken.error().message().find("hunter2"), std::string::npos) << broken.error().message();
}

TEST_F(PostgresStoreTest, ASchemaOfAnotherVersionIsRefusedAndLeftAlone) {
  const std::string db = Postgres()->CreateDatabase();
  QSAPI_ASSERT_OK(OpenPostgresStore(PgOptions(Postgres()->ConnInfo(db))));
  ASSERT_EQ(std::system((Postgres()->Psql(db) +  // NOLINT(cert-env33-c)
                         " -q -c \"UPDATE qsapi_meta SET value = '99' WHERE name = 'schema_version'\"")
                            .c_str()),
            0);
  auto s = OpenPostgresStore(PgOptions(Postgres()->ConnInfo(db)));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(s.error().message().find("schema version 99"), std::string::npos) << s.error().message();
}

}  // namespace
}  // namespace qsapi::keystore::internal
