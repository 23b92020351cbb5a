// common/metrics.h
//
// MetricsRegistry: Tandem's thin layer over prometheus-cpp core 1.0.1 (ARCHITECTURE.md §7,
// style.md §3.10). It registers families of counters, gauges and histograms under checked names
// (`tandem_<component>_<what>_<unit>`, counters end in `_total`) and serializes them in the text
// exposition format that the process's own HttpServer serves at GET /metrics.
//
// Each component registers its metrics once, in its metrics.cc, with names that are literals; a bad
// name or a conflicting re-registration is our bug and fails TANDEM_CHECK (ValidateMetricName
// reports the same rules as a Status). Label values come from fixed sets (tier, reason, phase, ...),
// never from request data.
//
// Ownership: the registry owns every family and metric; the pointers and references it returns
// stay valid as long as the registry. Thread-safe: registration, Labels(), updates and Serialize()
// may run concurrently. Labels() locks and looks up a map, so hot paths keep the returned metric.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace tandem {

// vLLM's histogram boundaries (seconds), so existing dashboards work (ARCHITECTURE.md §7).
inline constexpr double kTtftBuckets[] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,
                                          0.25,  0.5,   0.75, 1,    2.5,  5,    7.5,  10,
                                          20,    40,    80,   160,  640,  2560};
// vLLM's ITL buckets with 0.001, 0.0025 and 0.005 added below them for CPU decode; also TPOT.
inline constexpr double kItlBuckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075,
                                         0.1,   0.15,   0.2,   0.3,  0.4,   0.5,  0.75,
                                         1,     2.5,    5,     7.5,  10,    20,   40,   80};
inline constexpr double kE2eBuckets[] = {0.3, 0.5, 0.8, 1,   1.5, 2,   2.5, 5,    10,   15,  20,
                                         30,  40,  50,  60,  120, 240, 480, 960, 1920, 7680};
// 0.05, 0.1, ..., 1.0: ratios such as the blend recompute ratio and sparse attention density.
std::vector<double> RatioBuckets();

enum class MetricKind { kCounter, kGauge, kHistogram };

// The naming rules: `tandem_` prefix, lower-case [a-z0-9_], counters end in `_total` and nothing
// else does, histograms do not end in the suffixes Prometheus adds (_bucket, _sum, _count).
// InvalidArgument naming the metric and the rule it breaks.
absl::Status ValidateMetricName(std::string_view name, MetricKind kind);
// Label names are [a-z_][a-z0-9_]*, unique, not reserved (`__*`, and `le` on histograms).
absl::Status ValidateLabelNames(std::string_view metric, const std::vector<std::string>& labels,
                                MetricKind kind);
// Buckets are non-empty, finite and strictly increasing.
absl::Status ValidateBuckets(std::string_view metric, absl::Span<const double> buckets);

// One registered family. Labels(values) returns the metric for those label values (in the order of
// the family's label names), creating it on first use; a wrong number of values is a TANDEM_CHECK
// failure naming the metric.
template <typename M>
class MetricFamily {
 public:
  MetricFamily(prometheus::Family<M>* family, std::string name, std::string help,
               std::vector<std::string> label_names, std::vector<double> buckets)
      : family_(family),
        name_(std::move(name)),
        help_(std::move(help)),
        label_names_(std::move(label_names)),
        buckets_(std::move(buckets)) {}

  M& Labels(const std::vector<std::string>& values);

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  const std::vector<double>& buckets() const { return buckets_; }  // histograms only

 private:
  prometheus::Family<M>* family_;  // owned by the prometheus::Registry
  std::string name_;
  std::string help_;
  std::vector<std::string> label_names_;
  std::vector<double> buckets_;
};

using CounterFamily = MetricFamily<prometheus::Counter>;
using GaugeFamily = MetricFamily<prometheus::Gauge>;
using HistogramFamily = MetricFamily<prometheus::Histogram>;

extern template class MetricFamily<prometheus::Counter>;
extern template class MetricFamily<prometheus::Gauge>;
extern template class MetricFamily<prometheus::Histogram>;

class MetricsRegistry {
 public:
  MetricsRegistry();
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Registering a name again with the same kind, help, labels and buckets returns the same
  // family (two services sharing one registry in tests); anything else fails TANDEM_CHECK.
  CounterFamily* Counter(std::string_view name, std::string_view help,
                         std::vector<std::string> label_names = {});
  GaugeFamily* Gauge(std::string_view name, std::string_view help,
                     std::vector<std::string> label_names = {});
  HistogramFamily* Histogram(std::string_view name, std::string_view help,
                             std::vector<std::string> label_names,
                             absl::Span<const double> buckets);

  // Text exposition format 0.0.4, what GET /metrics returns.
  std::string Serialize() const;

  // For prometheus-cpp features this wrapper does not cover (custom collectables).
  prometheus::Registry& prometheus_registry() { return *registry_; }

 private:
  struct Entry {
    MetricKind kind;
    void* family;  // the MetricFamily<M> for `kind`; owned by the matching map below
  };
  template <typename M>
  MetricFamily<M>* Register(MetricKind kind, std::string_view name, std::string_view help,
                            std::vector<std::string> label_names, std::vector<double> buckets,
                            std::map<std::string, std::unique_ptr<MetricFamily<M>>>* families)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::shared_ptr<prometheus::Registry> registry_;
  absl::Mutex mu_;
  std::map<std::string, Entry> by_name_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::unique_ptr<CounterFamily>> counters_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::unique_ptr<GaugeFamily>> gauges_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::unique_ptr<HistogramFamily>> histograms_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tandem
