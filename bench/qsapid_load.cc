// qsapid_load: a closed-loop load generator for qsapid (bench/qsapid_bench.sh drives it).
//
//   qsapid_load --url https://127.0.0.1:PORT --ca ca.pem --token-file T --mode encrypt --threads 2 --seconds 10
//
// Modes:
//   livez      GET /v1/livez on kept-alive connections (the server's floor: TLS record + HTTP + router)
//   encrypt    POST /v1/encrypt/KEY with a --payload-bytes plaintext on kept-alive connections
//   handshake  a new TLS connection (full handshake, X25519MLKEM768, ML-DSA-65 chain verified) for
//              every GET /v1/livez
//   mixed      rounds of encrypt, decrypt (checked), sign with --sign-key, verify (checked); for the
//              soak (bench/soak.sh)
//   decrypt    every ciphertext of --ciphertexts-in (lines "version ciphertext", as --ciphertexts
//              writes them) decrypted once, the plaintext and the version checked; for the cluster
//              fault tests (nothing encrypted is lost)
// Prints one JSON object: requests, errors (and errors by kind), seconds, requests_per_second,
// p50_us, p99_us, error_max_us (the slowest failed request), per_version (encrypt: successful
// encryptions by key version), and with --timeline-ms the successes and errors of each interval.
// With --ciphertexts FILE, encrypt mode writes every ciphertext it got ("version ciphertext").
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <sodium.h>

#include "net/internal/http_client.h"

namespace {

std::string Base64(const std::string& in) {
  std::string out(sodium_base64_ENCODED_LEN(in.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(in.data()), in.size(),  // NOLINT
                    sodium_base64_VARIANT_ORIGINAL);
  out.resize(out.size() - 1);  // the terminating NUL
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"qsapid_load: closed-loop load against qsapid"};
  std::string url, ca, token_file, mode = "encrypt", key = "bench", sign_key = "bench-sig";
  int threads = 1;
  double seconds = 5;
  std::size_t payload = 1024;
  std::string ciphertexts_out, ciphertexts_in;
  int timeline_ms = 0;
  app.add_option("--url", url)->required();
  app.add_option("--ca", ca)->required();
  app.add_option("--token-file", token_file);
  app.add_option("--mode", mode)->check(CLI::IsMember({"livez", "encrypt", "handshake", "mixed", "decrypt"}));
  app.add_option("--key", key);
  app.add_option("--sign-key", sign_key);
  app.add_option("--threads", threads)->check(CLI::Range(1, 64));
  app.add_option("--seconds", seconds)->check(CLI::Range(0.1, 600.0));
  app.add_option("--payload-bytes", payload);
  app.add_option("--ciphertexts", ciphertexts_out, "encrypt: write each ciphertext and its version to this file");
  app.add_option("--ciphertexts-in", ciphertexts_in, "decrypt: the file --ciphertexts wrote");
  app.add_option("--timeline-ms", timeline_ms, "count successes and errors per interval of this length")
      ->check(CLI::Range(0, 60000));
  CLI11_PARSE(app, argc, argv);

  std::string token;
  if (!token_file.empty()) {
    std::ifstream in(token_file);
    std::getline(in, token);
  }
  const std::vector<std::pair<std::string, std::string>> headers =
      token.empty() ? std::vector<std::pair<std::string, std::string>>{}
                    : std::vector<std::pair<std::string, std::string>>{{"Authorization", "Bearer " + token}};
  const std::string body = R"({"plaintext":")" + Base64(std::string(payload, 'x')) + R"("})";
  const std::string target = mode == "encrypt" ? "/v1/encrypt/" + key : "/v1/livez";
  const std::string method = mode == "encrypt" ? "POST" : "GET";

  // decrypt: the work list, shared by the threads (next index taken atomically).
  std::vector<std::pair<std::uint32_t, std::string>> to_decrypt;
  if (mode == "decrypt") {
    std::ifstream in(ciphertexts_in);
    if (!in) {
      std::fprintf(stderr, "qsapid_load: cannot read --ciphertexts-in %s\n", ciphertexts_in.c_str());
      return 2;
    }
    std::uint32_t v = 0;
    std::string ct;
    while (in >> v >> ct) to_decrypt.emplace_back(v, ct);
  }
  std::atomic<std::size_t> next_decrypt{0};
  std::ofstream ciphertexts;
  if (!ciphertexts_out.empty()) ciphertexts.open(ciphertexts_out, std::ios::trunc);
  std::map<std::uint32_t, std::uint64_t> per_version;                       // guarded by error_mu
  std::map<std::size_t, std::pair<std::uint64_t, std::uint64_t>> timeline;  // guarded by error_mu
  double error_max_us = 0;                                                  // guarded by error_mu

  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> errors{0};
  std::vector<std::vector<double>> latencies(static_cast<std::size_t>(threads));
  std::vector<std::thread> workers;
  std::string first_error;
  std::map<std::string, std::uint64_t> kinds;  // "http 503", "UNAVAILABLE", "wrong plaintext", ...
  std::mutex error_mu;
  const auto start = std::chrono::steady_clock::now();
  const auto slot = [&](std::chrono::steady_clock::time_point t) {
    return timeline_ms == 0
               ? std::size_t{0}
               : static_cast<std::size_t>(std::chrono::duration_cast<std::chrono::milliseconds>(t - start).count() /
                                          timeline_ms);
  };
  const auto record_error = [&](const std::string& kind, const std::string& detail, double us = 0) {
    ++errors;
    const std::lock_guard<std::mutex> lock(error_mu);
    error_max_us = std::max(error_max_us, us);
    if (timeline_ms != 0) ++timeline[slot(std::chrono::steady_clock::now())].second;
    ++kinds[kind];
    if (first_error.empty()) first_error = detail.substr(0, 300);
  };
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      qsapi::net::HttpClientOptions o;
      o.url = url;
      o.tls.ca_file = ca;
      auto client = qsapi::net::HttpClient::Create(o);
      if (!client.ok()) {
        record_error("client", client.error().ToString());
        return;
      }
      auto& lat = latencies[static_cast<std::size_t>(t)];
      // One timed request; returns the body on 200, nullopt (recorded) otherwise.
      const auto call = [&](const std::string& m, const std::string& path,
                            const std::string& b) -> std::optional<std::string> {
        const auto t0 = std::chrono::steady_clock::now();
        auto r = (*client)->Request(m, path, b, headers);
        const auto t1 = std::chrono::steady_clock::now();
        const double us = std::chrono::duration<double, std::micro>(t1 - t0).count();
        if (!r.ok()) {
          record_error(std::string(qsapi::ErrorCodeName(r.error().code())), r.error().ToString(), us);
          // No connection (a node down): wait a little before the next attempt instead of spinning.
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          return std::nullopt;
        }
        if (r->status != 200) {
          record_error("http " + std::to_string(r->status), r->body, us);
          return std::nullopt;
        }
        lat.push_back(us);
        if (timeline_ms != 0) {
          const std::lock_guard<std::mutex> lock(error_mu);
          ++timeline[slot(t1)].first;
        }
        return std::move(r->body);
      };
      const auto field = [](const std::string& json, const std::string& name) {
        const std::string k = "\"" + name + "\":\"";
        const std::size_t a = json.find(k);
        if (a == std::string::npos) return std::string();
        const std::size_t b = json.find('"', a + k.size());
        return json.substr(a + k.size(), b - a - k.size());
      };
      const auto number = [](const std::string& json, const std::string& name) -> std::uint32_t {
        const std::string k = "\"" + name + "\":";
        const std::size_t a = json.find(k);
        return a == std::string::npos
                   ? 0
                   : static_cast<std::uint32_t>(std::strtoul(json.c_str() + a + k.size(), nullptr, 10));
      };
      const std::string plaintext = field(body, "plaintext");
      while (!stop.load(std::memory_order_relaxed)) {
        if (mode == "decrypt") {
          const std::size_t i = next_decrypt++;
          if (i >= to_decrypt.size()) break;
          const auto& [version, ct] = to_decrypt[i];
          auto d = call("POST", "/v1/decrypt/" + key, "{\"ciphertext\":\"" + ct + "\"}");
          if (d && (field(*d, "plaintext") != plaintext || number(*d, "version") != version)) {
            record_error("wrong plaintext or version", *d);
          }
          continue;
        }
        if (mode == "encrypt") {
          auto e = call(method, target, body);
          if (!e) continue;
          const std::uint32_t version = number(*e, "version");
          const std::lock_guard<std::mutex> lock(error_mu);
          ++per_version[version];
          if (ciphertexts.is_open()) ciphertexts << version << " " << field(*e, "ciphertext") << "\n";
          continue;
        }
        if (mode != "mixed") {
          (void)call(method, target, mode == "encrypt" ? body : "");
          if (mode == "handshake") (*client)->Close();
          continue;
        }
        if (auto e = call("POST", "/v1/encrypt/" + key, body)) {
          auto d = call("POST", "/v1/decrypt/" + key, "{\"ciphertext\":\"" + field(*e, "ciphertext") + "\"}");
          if (d && field(*d, "plaintext") != plaintext) record_error("wrong plaintext", *d);
        }
        if (auto sig = call("POST", "/v1/sign/" + sign_key, "{\"message\":\"" + plaintext + "\"}")) {
          auto v = call("POST", "/v1/verify/" + sign_key,
                        "{\"message\":\"" + plaintext + "\",\"signature\":\"" + field(*sig, "signature") + "\"}");
          if (v && v->find("\"valid\":true") == std::string::npos) record_error("signature not valid", *v);
        }
      }
    });
  }
  if (mode == "decrypt") {
    for (auto& w : workers) w.join();  // done when the list is
  } else {
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    stop = true;
  }
  for (auto& w : workers) {
    if (w.joinable()) w.join();
  }
  if (ciphertexts.is_open()) ciphertexts.close();
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::vector<double> all;
  for (const auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  const auto pct = [&](double p) {
    return all.empty() ? 0.0
                       : all[std::min(all.size() - 1, static_cast<std::size_t>(p * static_cast<double>(all.size())))];
  };
  std::string by_kind;
  for (const auto& [k, n] : kinds) by_kind += (by_kind.empty() ? "\"" : ",\"") + k + "\":" + std::to_string(n);
  std::ostringstream versions, intervals;
  for (const auto& [v, n] : per_version) versions << (versions.tellp() == 0 ? "\"" : ",\"") << v << "\":" << n;
  if (!timeline.empty()) {
    for (std::size_t i = 0; i <= timeline.rbegin()->first; ++i) {
      const auto it = timeline.find(i);
      intervals << (i == 0 ? "" : ",") << "[" << (it == timeline.end() ? 0 : it->second.first) << ","
                << (it == timeline.end() ? 0 : it->second.second) << "]";
    }
  }
  std::printf(
      "{\"mode\":\"%s\",\"threads\":%d,\"payload_bytes\":%zu,\"requests\":%zu,\"errors\":%llu,"
      "\"errors_by_kind\":{%s},\"seconds\":%.2f,\"requests_per_second\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f,"
      "\"error_max_us\":%.1f,\"per_version\":{%s},\"timeline_ms\":%d,\"timeline\":[%s]}\n",
      mode.c_str(), threads, mode == "livez" || mode == "handshake" ? std::size_t{0} : payload, all.size(),
      static_cast<unsigned long long>(errors.load()), by_kind.c_str(), elapsed,
      static_cast<double>(all.size()) / elapsed, pct(0.50), pct(0.99), error_max_us, versions.str().c_str(),
      timeline_ms, intervals.str().c_str());
  if (!first_error.empty()) std::fprintf(stderr, "qsapid_load: first error: %s\n", first_error.c_str());
  return all.empty() ? 1 : 0;
}
