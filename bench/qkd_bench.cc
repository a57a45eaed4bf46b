// Key fetch latency and keys/s through our ETSI GS QKD 014 client and the KME simulator pair on
// loopback, next to a baseline measured in the same run: a plain HTTPS/1.1 round trip (GET, tiny
// JSON answer) on a kept-alive TLS 1.3 X25519MLKEM768 connection to the same server framework.
// The ratio to the baseline is the cost of the ETSI 014 layer itself (JSON, base64 into secret
// memory, key bookkeeping in the simulator). All times are wall-clock (client and server threads).
#include <stdlib.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include <benchmark/benchmark.h>

#include "kmesim/kme_simulator.h"
#include "net/https_server.h"
#include "pki/internal/tls_context.h"
#include "qsapi/qkd/etsi014.h"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using qsapi::qkd::Etsi014Client;
using qsapi::qkd::KeyRequest;

// Fixture: one simulator pair for the whole run (its files in a temporary directory), one client per SAE.
struct Rig {
  Rig() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "qsapi-bench-XXXXXX").string();
    dir = ::mkdtemp(tmpl.data());
    qsapi::qkd::KmeSimulatorOptions o;
    o.dir = dir;
    o.max_key_count = 1'000'000'000;
    o.initial_key_count = 1'000'000'000;
    o.keys_per_second = 0;
    sim = qsapi::qkd::KmeSimulator::Start(o).value();
    a = MakeClient(sim->url_a(), sim->files().sae_a_cert, sim->files().sae_a_key, true);
    b = MakeClient(sim->url_b(), sim->files().sae_b_cert, sim->files().sae_b_key, true);
  }
  ~Rig() {
    a.reset();
    b.reset();
    sim->Stop();
    std::filesystem::remove_all(dir);
  }
  Rig(const Rig&) = delete;
  Rig& operator=(const Rig&) = delete;

  std::unique_ptr<Etsi014Client> MakeClient(const std::string& url, const std::filesystem::path& cert,
                                            const std::filesystem::path& key, bool keep_alive) const {
    qsapi::qkd::Etsi014ClientOptions o;
    o.kme_url = url;
    o.ca_file = sim->files().ca.string();
    o.certificate_file = cert.string();
    o.private_key_file = key.string();
    o.keep_alive = keep_alive;
    return Etsi014Client::Create(o).value();
  }

  std::filesystem::path dir;
  std::unique_ptr<qsapi::qkd::KmeSimulator> sim;
  std::unique_ptr<Etsi014Client> a, b;
};

Rig& TheRig() {
  static Rig* rig = new Rig();  // lives until exit; the OS reclaims it
  return *rig;
}

// Baseline: a plain HTTPS GET round trip, same server framework, same TLS (mTLS, X25519MLKEM768).
void BM_Baseline_HttpsRoundTrip(benchmark::State& state) {
  Rig& rig = TheRig();
  const auto& f = rig.sim->files();
  qsapi::net::HttpsServerOptions so;
  so.tls.min_version = qsapi::pki::TlsVersion::kTls13;
  so.tls.groups = std::string(qsapi::pki::kKmeClientGroups);
  so.tls.certificate_file = f.kme_a_cert.string();
  so.tls.private_key_file = f.kme_a_key.string();
  so.tls.ca_file = f.ca.string();
  so.max_requests_per_connection = std::size_t{1} << 40;  // one connection for the whole run
  auto server = qsapi::net::HttpsServer::Start(so, [](const qsapi::net::HttpRequest&) {
                  qsapi::net::HttpResponse r;
                  r.body = R"({"message":"ok"})";
                  return r;
                }).value();
  asio::io_context ioc;
  asio::ssl::context ctx(asio::ssl::context::tls_client);
  qsapi::pki::TlsOptions co;
  co.groups = std::string(qsapi::pki::kKmeClientGroups);
  co.certificate_file = f.sae_a_cert.string();
  co.private_key_file = f.sae_a_key.string();
  co.ca_file = f.ca.string();
  if (!qsapi::pki::ConfigureClientContext(ctx.native_handle(), co).ok()) std::abort();
  asio::ssl::stream<asio::ip::tcp::socket> stream(ioc, ctx);
  (void)qsapi::pki::ConfigureClientConnection(stream.native_handle(), "127.0.0.1", true);
  stream.next_layer().connect({asio::ip::make_address("127.0.0.1"), server->port()});
  stream.next_layer().set_option(asio::ip::tcp::no_delay(true));
  stream.handshake(asio::ssl::stream_base::client);
  beast::flat_buffer buffer;
  for (auto _ : state) {
    http::request<http::empty_body> req{http::verb::get, "/api/v1/keys/SAE-B/status", 11};
    req.set(http::field::host, "127.0.0.1");
    http::write(stream, req);
    http::response<http::string_body> res;
    http::read(stream, buffer, res);
    if (res.result_int() != 200) state.SkipWithError("baseline request failed");
  }
  state.SetLabel(qsapi::pki::NegotiatedGroupName(stream.native_handle()));
}
BENCHMARK(BM_Baseline_HttpsRoundTrip)->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_Qkd_Status(benchmark::State& state) {
  Rig& rig = TheRig();
  for (auto _ : state) {
    if (!rig.a->GetStatus("SAE-B").ok()) state.SkipWithError("status failed");
  }
}
BENCHMARK(BM_Qkd_Status)->UseRealTime()->Unit(benchmark::kMicrosecond);

// enc_keys (master side): `number` keys of 256 bits per request; items = keys.
void BM_Qkd_EncKeys(benchmark::State& state) {
  Rig& rig = TheRig();
  KeyRequest r;
  r.number = static_cast<std::uint32_t>(state.range(0));
  r.size = 256;
  for (auto _ : state) {
    auto keys = rig.a->GetKey("SAE-B", r);
    if (!keys.ok()) state.SkipWithError("enc_keys failed");
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_Qkd_EncKeys)->Arg(1)->Arg(16)->Arg(128)->UseRealTime()->Unit(benchmark::kMicrosecond);

// dec_keys (slave side): fetch `number` reserved keys by ID; the reservation is not timed.
void BM_Qkd_DecKeys(benchmark::State& state) {
  Rig& rig = TheRig();
  KeyRequest r;
  r.number = static_cast<std::uint32_t>(state.range(0));
  r.size = 256;
  for (auto _ : state) {
    state.PauseTiming();
    auto keys = rig.a->GetKey("SAE-B", r);
    std::vector<std::string> ids;
    if (keys.ok()) {
      for (const auto& k : *keys) ids.push_back(k.key_id);
    }
    state.ResumeTiming();
    if (ids.empty() || !rig.b->GetKeyWithKeyIds("SAE-A", ids, 256).ok()) state.SkipWithError("dec_keys failed");
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_Qkd_DecKeys)->Arg(1)->Arg(16)->Arg(128)->UseRealTime()->Unit(benchmark::kMicrosecond);

// A shared key end to end: the master reserves one key, the slave fetches it by ID.
void BM_Qkd_SharedKeyEndToEnd(benchmark::State& state) {
  Rig& rig = TheRig();
  KeyRequest r;
  r.size = 256;
  for (auto _ : state) {
    auto keys = rig.a->GetKey("SAE-B", r);
    if (!keys.ok()) {
      state.SkipWithError("enc_keys failed");
      break;
    }
    const std::vector<std::string> ids{(*keys)[0].key_id};
    if (!rig.b->GetKeyWithKeyIds("SAE-A", ids, 256).ok()) state.SkipWithError("dec_keys failed");
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_Qkd_SharedKeyEndToEnd)->UseRealTime()->Unit(benchmark::kMicrosecond);

// One key per new connection (no keep-alive): a full mTLS X25519MLKEM768 handshake per request.
void BM_Qkd_EncKeys_NewConnection(benchmark::State& state) {
  Rig& rig = TheRig();
  auto client = rig.MakeClient(rig.sim->url_a(), rig.sim->files().sae_a_cert, rig.sim->files().sae_a_key, false);
  KeyRequest r;
  r.size = 256;
  for (auto _ : state) {
    if (!client->GetKey("SAE-B", r).ok()) state.SkipWithError("enc_keys failed");
  }
}
BENCHMARK(BM_Qkd_EncKeys_NewConnection)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
