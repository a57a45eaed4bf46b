#include "qsapi/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <string>
#include <utility>

#include "common/internal/text.h"

namespace qsapi {
namespace {

std::mutex& SinkMutex() {
  static std::mutex mu;
  return mu;
}

LogSink& Sink() {
  static LogSink sink;  // guarded by SinkMutex()
  return sink;
}

// The process's one log threshold (SetLogLevel), read on every line: an atomic, not a lock.
// NOLINTNEXTLINE(cppcoreguidelines-avoid-non-const-global-variables)
std::atomic<int> g_min_level{static_cast<int>(LogLevel::kInfo)};

void WriteToStderr(LogLevel level, std::string_view component, std::string_view message) {
  const std::string stamp = internal::FormatUtc(std::chrono::system_clock::now());
  const std::string_view name = LogLevelName(level);
  std::fprintf(stderr, "%s %.*s %.*s: %.*s\n", stamp.c_str(), static_cast<int>(name.size()), name.data(),
               static_cast<int>(component.size()), component.data(), static_cast<int>(message.size()), message.data());
}

}  // namespace

std::string_view LogLevelName(LogLevel level) noexcept {
  switch (level) {
    case LogLevel::kDebug: return "DEBUG";
    case LogLevel::kInfo: return "INFO";
    case LogLevel::kWarning: return "WARNING";
    case LogLevel::kError: return "ERROR";
  }
  return "UNKNOWN";
}

void SetLogSink(LogSink sink) {
  const std::lock_guard<std::mutex> lock(SinkMutex());
  Sink() = std::move(sink);
}

void SetMinLogLevel(LogLevel level) noexcept { g_min_level.store(static_cast<int>(level)); }

void Log(LogLevel level, std::string_view component, std::string_view message) {
  if (static_cast<int>(level) < g_min_level.load()) return;
  const std::lock_guard<std::mutex> lock(SinkMutex());
  if (Sink()) {
    Sink()(level, component, message);
  } else {
    WriteToStderr(level, component, message);
  }
}

}  // namespace qsapi
