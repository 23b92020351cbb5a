#include "common/log.h"

#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/flags.h"
#include "common/status.h"
#include "nlohmann/json.hpp"

namespace tandem {

namespace {

// Unnamed namespace: glog's VLOG macros name `FLAGS_v` unqualified, so a tandem::FLAGS_v visible
// in any file that uses VLOG inside namespace tandem would be picked up instead of glog's.
// Other files reach these flags through LogOptionsFromFlags() (or FindFlag()).
TANDEM_FLAG(std::string, log_level, "info",
            "Lowest severity logged: info, warning or error (see LogOptions::min_severity).");
TANDEM_FLAG(int32_t, v, 0, "Verbose logging: VLOG(n) is shown for n <= --v.");
TANDEM_FLAG(std::string, log_format, "text",
            "Log line format on stderr: text (glog) or json (one object per line, for Kubernetes).");

constexpr const char* kSeverityNames[] = {"INFO", "WARNING", "ERROR", "FATAL"};

const char* SeverityName(google::LogSeverity severity) {
  if (severity < 0 || severity >= google::NUM_SEVERITIES) return "UNKNOWN";
  return kSeverityNames[severity];
}

// Text lines for a stream other than stderr (tests); glog itself writes them to stderr.
class TextLogSink final : public google::LogSink {
 public:
  TextLogSink(std::FILE* out, google::LogSeverity min_severity)
      : out_(out), min_severity_(min_severity) {}
  using google::LogSink::send;
  void send(google::LogSeverity severity, const char* full_filename, const char* base_filename,
            int line, const google::LogMessageTime& time, const char* message,
            size_t message_len) override {
    if (severity < min_severity_) return;
    std::string text = ToString(severity, base_filename, line, time, message, message_len);
    text += '\n';
    std::fwrite(text.data(), 1, text.size(), out_);
    std::fflush(out_);
  }

 private:
  std::FILE* out_;
  google::LogSeverity min_severity_;
};

// The sink InitLogging installed, if any; replaced on reconfiguration.
std::unique_ptr<google::LogSink>& CurrentSink() {
  static auto* sink = new std::unique_ptr<google::LogSink>();
  return *sink;
}

}  // namespace

absl::StatusOr<google::LogSeverity> ParseLogSeverity(std::string_view text) {
  const std::string lower = absl::AsciiStrToLower(AV(text));
  if (lower == "info") return google::GLOG_INFO;
  if (lower == "warning") return google::GLOG_WARNING;
  if (lower == "error") return google::GLOG_ERROR;
  return absl::InvalidArgumentError(
      absl::StrCat("'", AV(text), "' is not one of info|warning|error"));
}

absl::StatusOr<LogOptions> LogOptionsFromFlags() {
  LogOptions options;
  absl::StatusOr<google::LogSeverity> severity = ParseLogSeverity(GetFlag(FLAGS_log_level));
  if (!severity.ok()) return Annotate(severity.status(), "--log_level");
  options.min_severity = *severity;
  options.verbosity = GetFlag(FLAGS_v);
  if (options.verbosity < 0) {
    return absl::InvalidArgumentError(absl::StrCat("--v: ", options.verbosity, " is negative"));
  }
  const std::string format = GetFlag(FLAGS_log_format);
  if (format == "text") {
    options.format = LogFormat::kText;
  } else if (format == "json") {
    options.format = LogFormat::kJson;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--log_format: '", format, "' is not one of text|json"));
  }
  return options;
}

void InitLogging(const char* argv0, const LogOptions& options) {
  if (!google::IsGoogleLoggingInitialized()) google::InitGoogleLogging(argv0);
  if (CurrentSink() != nullptr) {
    google::RemoveLogSink(CurrentSink().get());
    CurrentSink().reset();
  }
  fLI::FLAGS_minloglevel = options.min_severity;
  fLI::FLAGS_v = options.verbosity;
  // Never write glog's log files: containers log to stderr.
  for (int s = 0; s < google::NUM_SEVERITIES; ++s) google::SetLogDestination(s, "");
  if (options.format == LogFormat::kText && options.out == stderr) {
    fLB::FLAGS_logtostderr = true;
    return;
  }
  // Our sink is then the only output: glog's own stderr copy would duplicate every line.
  fLB::FLAGS_logtostderr = false;
  fLB::FLAGS_alsologtostderr = false;
  fLI::FLAGS_stderrthreshold = google::NUM_SEVERITIES;
  if (options.format == LogFormat::kJson) {
    CurrentSink() = std::make_unique<JsonLogSink>(options.out, options.min_severity);
  } else {
    CurrentSink() = std::make_unique<TextLogSink>(options.out, options.min_severity);
  }
  google::AddLogSink(CurrentSink().get());
}

std::string FormatJsonLogLine(google::LogSeverity severity, std::string_view file, int line,
                              std::time_t unix_seconds, int32_t micros, std::string_view message) {
  std::tm tm{};
  gmtime_r(&unix_seconds, &tm);
  char time_text[64];
  std::snprintf(time_text, sizeof(time_text), "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(micros));
  nlohmann::ordered_json j;
  j["time"] = time_text;
  j["severity"] = SeverityName(severity);
  j["file"] = std::string(file);
  j["line"] = line;
  j["msg"] = std::string(message);
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void JsonLogSink::send(google::LogSeverity severity, const char* full_filename,
                       const char* base_filename, int line, const google::LogMessageTime& time,
                       const char* message, size_t message_len) {
  if (severity < min_severity_) return;
  std::string text = FormatJsonLogLine(severity, base_filename, line, time.timestamp(),
                                       time.usec(), std::string_view(message, message_len));
  text += '\n';
  std::fwrite(text.data(), 1, text.size(), out_);
  std::fflush(out_);
}

}  // namespace tandem
