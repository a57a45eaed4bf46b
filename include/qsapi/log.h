// qsapi/log.h: the library's log lines.
//
// The library writes few lines, all about events an operator must see (an entropy source taken out
// of use, a classical-TLS link to a KME, a key rotated). A line names a component and says what
// happened; it never carries key material, samples, tokens or plaintext: callers pass only public
// facts. By default lines go to stderr as
//   2026-11-29T06:30:50Z WARNING entropy: source "qrng0" failed the repetition count test ...
// A program can route them elsewhere (a JSON log, a test's capture) with SetLogSink.
#ifndef QSAPI_LOG_H_
#define QSAPI_LOG_H_

#include <functional>
#include <string_view>

namespace qsapi {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

std::string_view LogLevelName(LogLevel level) noexcept;  // "DEBUG", "INFO", "WARNING", "ERROR"

// A LogSink receives every line at or above the minimum level. It may be called from any thread,
// one call at a time (the library serialises calls).
using LogSink = std::function<void(LogLevel level, std::string_view component, std::string_view message)>;

// SetLogSink replaces the sink; an empty function restores the default (stderr). Thread-safe.
void SetLogSink(LogSink sink);

// SetMinLogLevel drops lines below `level` (default kInfo). Thread-safe.
void SetMinLogLevel(LogLevel level) noexcept;

// Log writes one line. `message` must hold no secret.
void Log(LogLevel level, std::string_view component, std::string_view message);

}  // namespace qsapi

#endif  // QSAPI_LOG_H_
