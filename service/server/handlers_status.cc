// Handlers of the status routes: liveness, health and metrics. They run on the I/O threads and
// never wait for the work queue, so they answer while the workers are busy.
#include <sstream>

#include "qsapi/entropy/pool.h"
#include "qsapi/version.h"
#include "server/internal/api_internal.h"

namespace qsapi::server::internal {

Outcome HandleLivez(Request& /*r*/) {
  Outcome out;
  out.result = json{{"status", "alive"}};  // the process answers; touches nothing else
  return out;
}

Outcome HandleHealth(Request& r) {
  Api::Parts p = r.api.parts();
  std::map<std::string, std::string> checks;
  bool ok = true;
  if (Status probe = p.keystore.Probe(); probe.ok()) {
    checks["keystore"] = "ok: " + p.keystore.token_description() + "; metadata: " + p.keystore.store_description() +
                         "; cluster " + p.keystore.cluster_id();
  } else {
    checks["keystore"] = "error: " + probe.error().message();
    ok = false;
  }
  json entropy = json::parse(entropy::FormatStatusJson(p.pool));
  bool qrng_ok = true;
  for (const auto& s : entropy["sources"]) {
    if (s["state"] == "failed") qrng_ok = false;
  }
  checks["entropy"] = qrng_ok ? "ok" : "degraded: a source has failed (see entropy.sources)";
  if (p.audit != nullptr) {
    const Status audit = p.audit->Ready();
    checks["audit_log"] = audit.ok() ? "ok" : "FAIL: " + audit.error().message();
  }
  if (p.scheduler != nullptr) {
    const WorkScheduler::Stats s = p.scheduler->stats();
    checks["workers"] = "ok: " + std::to_string(s.running) + " running, " + std::to_string(s.queued) + " queued";
  }
  if (p.health_hook) p.health_hook(checks);
  for (const auto& [k, v] : checks) {
    if (!(v.starts_with("ok") || v.starts_with("off"))) ok = false;
  }
  Outcome out;
  out.status = ok ? 200 : 503;
  out.result =
      json{{"status", ok ? "ok" : "degraded"},
           {"version", qsapi::VersionBanner("qsapid")},
           {"checks", checks},
           {"entropy", entropy},
           {"uptime_seconds",
            std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - p.started).count()}};
  return out;
}

Outcome HandleMetrics(Request& r) {
  Api::Parts p = r.api.parts();
  std::ostringstream m;
  m << r.api.RouteMetrics();
  const auto cs = p.keystore.cache_stats();
  m << "# HELP qsapi_keystore_cache_hits_total Key uses served from memory.\n"
       "# TYPE qsapi_keystore_cache_hits_total counter\nqsapi_keystore_cache_hits_total "
    << cs.hits
    << "\n# HELP qsapi_keystore_cache_misses_total Key uses that needed the token.\n"
       "# TYPE qsapi_keystore_cache_misses_total counter\nqsapi_keystore_cache_misses_total "
    << cs.misses << "\n";
  if (p.scheduler != nullptr) {
    const WorkScheduler::Stats s = p.scheduler->stats();
    m << "# HELP qsapi_work_queued Requests waiting for a worker.\n# TYPE qsapi_work_queued gauge\nqsapi_work_queued "
      << s.queued << "\n# HELP qsapi_work_running Requests on a worker.\n# TYPE qsapi_work_running gauge\n"
      << "qsapi_work_running " << s.running
      << "\n# HELP qsapi_work_refused_total Requests refused by the work limits, by reason.\n"
         "# TYPE qsapi_work_refused_total counter\n"
      << "qsapi_work_refused_total{reason=\"queue\"} " << s.refused_queue << "\n"
      << "qsapi_work_refused_total{reason=\"budget\"} " << s.refused_budget << "\n"
      << "qsapi_work_refused_total{reason=\"cost\"} " << s.refused_cost << "\n";
  }
  m << entropy::FormatPrometheusMetrics(p.pool);
  std::string text = m.str();
  if (p.metrics_hook) p.metrics_hook(text);
  Outcome out;
  out.result = json{{"text", std::move(text)}};
  return out;
}

}  // namespace qsapi::server::internal
