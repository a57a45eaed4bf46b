// qsapid_load: a closed-loop load generator for qsapid (bench/qsapid_bench.sh drives it).
//
//   qsapid_load --url https://127.0.0.1:PORT --ca ca.pem --token-file T --mode encrypt --threads 2 --seconds 10
//
// Modes:
//   livez      GET /v1/livez on kept-alive connections (the server's floor: TLS record + HTTP + router)
//   encrypt    POST /v1/encrypt/KEY with a --payload-bytes plaintext on kept-alive connections
//   handshake  a new TLS connection (full handshake, X25519MLKEM768, ML-DSA-65 chain verified) for
//              every GET /v1/livez
// Prints one JSON object: requests, errors, seconds, requests_per_second, p50_us, p99_us.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "net/https_client.h"

namespace {

std::string Base64(const std::string& in) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                       static_cast<unsigned char>(in[i + 2]);
    out += {t[(v >> 18) & 63], t[(v >> 12) & 63], t[(v >> 6) & 63], t[v & 63]};
  }
  if (i + 1 == in.size()) {
    const unsigned v = static_cast<unsigned char>(in[i]) << 16;
    out += {t[(v >> 18) & 63], t[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8);
    out += {t[(v >> 18) & 63], t[(v >> 12) & 63], t[(v >> 6) & 63], '='};
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"qsapid_load: closed-loop load against qsapid"};
  std::string url, ca, token_file, mode = "encrypt", key = "bench";
  int threads = 1;
  double seconds = 5;
  std::size_t payload = 1024;
  app.add_option("--url", url)->required();
  app.add_option("--ca", ca)->required();
  app.add_option("--token-file", token_file);
  app.add_option("--mode", mode)->check(CLI::IsMember({"livez", "encrypt", "handshake"}));
  app.add_option("--key", key);
  app.add_option("--threads", threads)->check(CLI::Range(1, 64));
  app.add_option("--seconds", seconds)->check(CLI::Range(0.1, 600.0));
  app.add_option("--payload-bytes", payload);
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

  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> errors{0};
  std::vector<std::vector<double>> latencies(static_cast<std::size_t>(threads));
  std::vector<std::thread> workers;
  std::string first_error;
  std::mutex error_mu;
  const auto start = std::chrono::steady_clock::now();
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      qsapi::net::HttpsClientOptions o;
      o.base_url = url;
      o.tls.ca_file = ca;
      auto client = qsapi::net::HttpsClient::Create(o);
      if (!client.ok()) {
        ++errors;
        return;
      }
      auto& lat = latencies[static_cast<std::size_t>(t)];
      while (!stop.load(std::memory_order_relaxed)) {
        const auto t0 = std::chrono::steady_clock::now();
        auto r = (*client)->Request(method, target, mode == "encrypt" ? body : "", headers);
        const auto t1 = std::chrono::steady_clock::now();
        if (!r.ok() || r->status != 200) {
          ++errors;
          const std::lock_guard<std::mutex> lock(error_mu);
          if (first_error.empty()) first_error = r.ok() ? r->body.substr(0, 200) : r.error().ToString();
          continue;
        }
        lat.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
        if (mode == "handshake") (*client)->Close();
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& w : workers) w.join();
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::vector<double> all;
  for (const auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  const auto pct = [&](double p) {
    return all.empty() ? 0.0 : all[std::min(all.size() - 1, static_cast<std::size_t>(p * static_cast<double>(all.size())))];
  };
  std::printf(
      "{\"mode\":\"%s\",\"threads\":%d,\"payload_bytes\":%zu,\"requests\":%zu,\"errors\":%llu,\"seconds\":%.2f,"
      "\"requests_per_second\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f}\n",
      mode.c_str(), threads, mode == "encrypt" ? payload : 0, all.size(), static_cast<unsigned long long>(errors.load()),
      elapsed, static_cast<double>(all.size()) / elapsed, pct(0.50), pct(0.99));
  if (!first_error.empty()) std::fprintf(stderr, "qsapid_load: first error: %s\n", first_error.c_str());
  return all.empty() ? 1 : 0;
}
