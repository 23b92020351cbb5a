// common/log.h
//
// Sets up glog 0.6 (LOG(INFO), VLOG(n), LOG_EVERY_N, CHECK; style.md §3.8) for a Tandem process. It
// does not re-implement logging: it maps Tandem's flags --log_level=info|warning|error, --v=N and
// --log_format=text|json onto glog, and adds JsonLogSink, which writes one JSON object per line
// for Kubernetes log collectors. All output goes to stderr; glog never writes log files here.
//
// A message is emitted when its own severity is at or above the threshold (--log_level); the JSON
// line carries the message's severity, never the threshold's. Only processes call InitLogging, once
// at start (tests may call it again to reconfigure). Logging itself is thread-safe.
#pragma once

#include <cstdio>
#include <ctime>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "glog/logging.h"

namespace tandem {

enum class LogFormat { kText, kJson };

struct LogOptions {
  // Messages below this severity are dropped (glog's minloglevel).
  // Default: google::GLOG_INFO. Flag: --log_level (info|warning|error)  Env: TANDEM_LOG_LEVEL
  google::LogSeverity min_severity = google::GLOG_INFO;
  // VLOG(n) is emitted for n <= verbosity.
  // Default: 0. Flag: --v  Env: TANDEM_V
  int verbosity = 0;
  // text: glog's usual "W1127 05:02:03.123456 4711 file.cc:212] msg"; json: JsonLogSink lines.
  // Default: kText. Flag: --log_format (text|json)  Env: TANDEM_LOG_FORMAT
  LogFormat format = LogFormat::kText;
  // Where lines go; stderr except in tests. Not owned; must outlive logging.
  std::FILE* out = stderr;
};

// Reads --log_level, --v and --log_format. InvalidArgument naming the flag on a bad value, e.g.
// "--log_level: 'loud' is not one of info|warning|error".
absl::StatusOr<LogOptions> LogOptionsFromFlags();

// Parses "info" | "warning" | "error" (case-insensitive).
absl::StatusOr<google::LogSeverity> ParseLogSeverity(std::string_view text);

// Initialises glog (first call) and applies `options`; later calls reconfigure. Not thread-safe
// with respect to concurrent logging: call it before starting threads.
void InitLogging(const char* argv0, const LogOptions& options);

// One JSON log line without the trailing newline:
// {"time":"2024-11-27T05:02:03.123456Z","severity":"WARNING","file":"x.cc","line":12,"msg":"..."}
// Invalid UTF-8 in the message is replaced, so the line always parses.
std::string FormatJsonLogLine(google::LogSeverity severity, std::string_view file, int line,
                              std::time_t unix_seconds, int32_t micros, std::string_view message);

// A glog LogSink writing FormatJsonLogLine lines for messages whose severity is >= min_severity.
// Each line is written with one fwrite and flushed, so lines from threads never interleave.
class JsonLogSink final : public google::LogSink {
 public:
  // `out` is not owned and must outlive the sink.
  JsonLogSink(std::FILE* out, google::LogSeverity min_severity)
      : out_(out), min_severity_(min_severity) {}

  using google::LogSink::send;
  void send(google::LogSeverity severity, const char* full_filename, const char* base_filename,
            int line, const google::LogMessageTime& time, const char* message,
            size_t message_len) override;

 private:
  std::FILE* out_;
  google::LogSeverity min_severity_;
};

}  // namespace tandem
