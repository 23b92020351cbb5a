#include "common/metrics.h"

#include <dirent.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status.h"
#include "prometheus/text_serializer.h"

namespace tandem {
namespace {

bool IsLowerSnake(std::string_view s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string_view KindName(MetricKind kind) {
  switch (kind) {
    case MetricKind::kCounter:
      return "counter";
    case MetricKind::kGauge:
      return "gauge";
    case MetricKind::kHistogram:
      return "histogram";
  }
  return "?";
}

}  // namespace

std::vector<double> RatioBuckets() {
  std::vector<double> out;
  for (int i = 1; i <= 20; ++i) out.push_back(i / 20.0);
  return out;
}

absl::Status ValidateMetricName(std::string_view name, MetricKind kind) {
  auto error = [&](std::string_view rule) {
    return absl::InvalidArgumentError(
        absl::StrCat("metric ", AV(name), " (", AV(KindName(kind)), "): ", AV(rule)));
  };
  if (name.substr(0, 7) != "tandem_" || name.size() == 7) {
    return error("name must start with tandem_");
  }
  if (!IsLowerSnake(name)) return error("name must be lower-case [a-z0-9_]");
  const bool total = EndsWith(name, "_total");
  if (kind == MetricKind::kCounter && !total) return error("counter names end in _total");
  if (kind != MetricKind::kCounter && total) return error("only counter names end in _total");
  if (kind == MetricKind::kHistogram &&
      (EndsWith(name, "_bucket") || EndsWith(name, "_sum") || EndsWith(name, "_count"))) {
    return error("histogram names must not end in _bucket, _sum or _count");
  }
  return absl::OkStatus();
}

absl::Status ValidateLabelNames(std::string_view metric, const std::vector<std::string>& labels,
                                MetricKind kind) {
  std::set<std::string_view> seen;
  for (const std::string& label : labels) {
    auto error = [&](std::string_view rule) {
      return absl::InvalidArgumentError(
          absl::StrCat("metric ", AV(metric), ": label '", label, "' ", AV(rule)));
    };
    if (!IsLowerSnake(label)) return error("must be lower-case [a-z_][a-z0-9_]*");
    if (label.substr(0, 2) == "__") return error("is reserved (starts with __)");
    if (kind == MetricKind::kHistogram && label == "le") return error("is reserved on histograms");
    if (!seen.insert(label).second) return error("appears twice");
  }
  return absl::OkStatus();
}

absl::Status ValidateBuckets(std::string_view metric, absl::Span<const double> buckets) {
  if (buckets.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("metric ", AV(metric), ": no buckets"));
  }
  for (size_t i = 0; i < buckets.size(); ++i) {
    if (!std::isfinite(buckets[i]) || (i > 0 && buckets[i] <= buckets[i - 1])) {
      return absl::InvalidArgumentError(absl::StrCat(
          "metric ", AV(metric), ": buckets must be finite and strictly increasing; bucket ", i,
          " is ", buckets[i]));
    }
  }
  return absl::OkStatus();
}

template <typename M>
M& MetricFamily<M>::Labels(const std::vector<std::string>& values) {
  TANDEM_CHECK(values.size() == label_names_.size())
      << "metric " << name_ << " has labels {" << absl::StrJoin(label_names_, ",") << "}, got "
      << values.size() << " values {" << absl::StrJoin(values, ",") << "}";
  prometheus::Labels labels;
  for (size_t i = 0; i < values.size(); ++i) labels.emplace(label_names_[i], values[i]);
  if constexpr (std::is_same_v<M, prometheus::Histogram>) {
    return family_->Add(labels, prometheus::Histogram::BucketBoundaries(buckets_));
  } else {
    return family_->Add(labels);
  }
}

template class MetricFamily<prometheus::Counter>;
template class MetricFamily<prometheus::Gauge>;
template class MetricFamily<prometheus::Histogram>;

MetricsRegistry::MetricsRegistry() : registry_(std::make_shared<prometheus::Registry>()) {}
MetricsRegistry::~MetricsRegistry() = default;

template <typename M>
MetricFamily<M>* MetricsRegistry::Register(
    MetricKind kind, std::string_view name, std::string_view help,
    std::vector<std::string> label_names, std::vector<double> buckets,
    std::map<std::string, std::unique_ptr<MetricFamily<M>>>* families) {
  const absl::Status name_status = ValidateMetricName(name, kind);
  TANDEM_CHECK(name_status.ok()) << name_status;
  const absl::Status label_status = ValidateLabelNames(name, label_names, kind);
  TANDEM_CHECK(label_status.ok()) << label_status;
  TANDEM_CHECK(!help.empty()) << "metric " << name << " has no help text";
  if (kind == MetricKind::kHistogram) {
    const absl::Status bucket_status = ValidateBuckets(name, buckets);
    TANDEM_CHECK(bucket_status.ok()) << bucket_status;
  }
  const std::string key(name);
  if (auto it = by_name_.find(key); it != by_name_.end()) {
    TANDEM_CHECK(it->second.kind == kind)
        << "metric " << name << " registered as " << KindName(it->second.kind) << " and as "
        << KindName(kind);
    MetricFamily<M>* existing = static_cast<MetricFamily<M>*>(it->second.family);
    TANDEM_CHECK(existing->help() == help && existing->label_names() == label_names &&
                 existing->buckets() == buckets)
        << "metric " << name << " registered twice with different help, labels or buckets";
    return existing;
  }
  prometheus::Family<M>* family = nullptr;
  if constexpr (std::is_same_v<M, prometheus::Counter>) {
    family = &prometheus::BuildCounter().Name(key).Help(std::string(help)).Register(*registry_);
  } else if constexpr (std::is_same_v<M, prometheus::Gauge>) {
    family = &prometheus::BuildGauge().Name(key).Help(std::string(help)).Register(*registry_);
  } else {
    family = &prometheus::BuildHistogram().Name(key).Help(std::string(help)).Register(*registry_);
  }
  auto owned = std::make_unique<MetricFamily<M>>(family, key, std::string(help),
                                                 std::move(label_names), std::move(buckets));
  MetricFamily<M>* out = owned.get();
  (*families)[key] = std::move(owned);
  by_name_[key] = Entry{kind, out};
  return out;
}

CounterFamily* MetricsRegistry::Counter(std::string_view name, std::string_view help,
                                        std::vector<std::string> label_names) {
  absl::MutexLock lock(&mu_);
  return Register<prometheus::Counter>(MetricKind::kCounter, name, help, std::move(label_names),
                                       {}, &counters_);
}

GaugeFamily* MetricsRegistry::Gauge(std::string_view name, std::string_view help,
                                    std::vector<std::string> label_names) {
  absl::MutexLock lock(&mu_);
  return Register<prometheus::Gauge>(MetricKind::kGauge, name, help, std::move(label_names), {},
                                     &gauges_);
}

HistogramFamily* MetricsRegistry::Histogram(std::string_view name, std::string_view help,
                                            std::vector<std::string> label_names,
                                            absl::Span<const double> buckets) {
  absl::MutexLock lock(&mu_);
  return Register<prometheus::Histogram>(MetricKind::kHistogram, name, help,
                                         std::move(label_names),
                                         std::vector<double>(buckets.begin(), buckets.end()),
                                         &histograms_);
}

namespace {

// The standard process metrics every Prometheus client library exports (process_cpu_seconds_total,
// process_resident_memory_bytes, ...), under their usual names so existing node dashboards work;
// they are the one exception to the tandem_ prefix. Read from /proc/self at each scrape; a field
// that cannot be read is left out.
std::vector<prometheus::MetricFamily> ProcessMetrics() {
  std::vector<prometheus::MetricFamily> out;
  auto add = [&out](const char* name, const char* help, prometheus::MetricType type,
                    double value) {
    prometheus::MetricFamily f;
    f.name = name;
    f.help = help;
    f.type = type;
    prometheus::ClientMetric m;
    if (type == prometheus::MetricType::Counter) {
      m.counter.value = value;
    } else {
      m.gauge.value = value;
    }
    f.metric.push_back(m);
    out.push_back(std::move(f));
  };
  std::ifstream stat("/proc/self/stat");
  std::string line;
  if (std::getline(stat, line)) {
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    const size_t close = line.rfind(')');
    std::istringstream rest(close == std::string::npos ? "" : line.substr(close + 2));
    std::vector<std::string> f((std::istream_iterator<std::string>(rest)),
                               std::istream_iterator<std::string>());
    const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
    const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
    // f[i] is field i + 3: utime 14, stime 15, num_threads 20, starttime 22, vsize 23, rss 24.
    if (f.size() > 21 && ticks > 0) {
      add("process_cpu_seconds_total", "User and system CPU time spent in seconds.",
          prometheus::MetricType::Counter, (std::stod(f[11]) + std::stod(f[12])) / ticks);
      add("process_virtual_memory_bytes", "Virtual memory size in bytes.",
          prometheus::MetricType::Gauge, std::stod(f[20]));
      add("process_resident_memory_bytes", "Resident memory size in bytes.",
          prometheus::MetricType::Gauge, std::stod(f[21]) * page);
      add("process_threads", "Number of OS threads in the process.",
          prometheus::MetricType::Gauge, std::stod(f[17]));
      std::ifstream uptime("/proc/uptime");
      double up = 0;
      if (uptime >> up) {
        const double boot = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch()) - up;
        add("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
            prometheus::MetricType::Gauge, boot + std::stod(f[19]) / ticks);
      }
    }
  }
  int fds = 0;
  if (DIR* dir = opendir("/proc/self/fd")) {
    while (const dirent* e = readdir(dir)) fds += e->d_name[0] != '.';
    closedir(dir);
    add("process_open_fds", "Number of open file descriptors.", prometheus::MetricType::Gauge,
        fds - 1);  // less the one reading the directory
  }
  return out;
}

}  // namespace

std::string MetricsRegistry::Serialize() const {
  std::ostringstream out;
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  std::vector<prometheus::MetricFamily> process = ProcessMetrics();
  families.insert(families.end(), process.begin(), process.end());
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

}  // namespace tandem
