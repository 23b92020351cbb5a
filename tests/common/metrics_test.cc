#include "common/metrics.h"

#include "absl/time/clock.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/status_matchers.h"

namespace tandem::testing {
namespace {

using ::testing::HasSubstr;

constexpr const char* kPromtool = "/usr/bin/promtool";

struct PromtoolResult {
  int exit_code = -1;
  std::string output;
};

// Runs `promtool check metrics` on `text`; exit code 0 and no output means no problems.
PromtoolResult RunPromtool(const std::string& text) {
  const std::string path = ::testing::TempDir() + "/metrics_test_" + std::to_string(getpid());
  {
    std::ofstream out(path);
    out << text;
  }
  PromtoolResult result;
  const std::string command = std::string(kPromtool) + " check metrics < " + path + " 2>&1";
  std::FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) result.output.append(buf, n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::remove(path.c_str());
  return result;
}

void RegisterSample(MetricsRegistry& registry) {
  registry.Counter("tandem_kv_misses_total", "KV lookups that returned no usable block.",
                   {"tier", "reason"})
      ->Labels({"redis", "checksum"})
      .Increment();
  registry.Counter("tandem_router_prompt_tokens_total", "Prompt tokens received.")
      ->Labels({})
      .Increment(812);
  registry.Gauge("tandem_kv_tier_used_bytes", "Bytes held by each KV tier.", {"tier"})
      ->Labels({"memory"})
      .Set(4096);
  HistogramFamily* ttft =
      registry.Histogram("tandem_router_time_to_first_token_seconds",
                         "Time from request arrival to the first token.", {}, kTtftBuckets);
  ttft->Labels({}).Observe(0.047);
  ttft->Labels({}).Observe(3.0);
  registry
      .Histogram("tandem_router_request_phase_seconds", "Time spent in each request phase.",
                 {"phase"}, kTtftBuckets)
      ->Labels({"kv_load"})
      .Observe(0.004);
  registry
      .Histogram("tandem_prefill_blend_recompute_ratio", "Fraction of tokens recomputed by blend.",
                 {}, RatioBuckets())
      ->Labels({})
      .Observe(0.15);
}

TEST(MetricsRegistry, SerializesCountersGaugesHistograms) {
  MetricsRegistry registry;
  RegisterSample(registry);
  const std::string text = registry.Serialize();
  EXPECT_THAT(text, HasSubstr("# TYPE tandem_kv_misses_total counter"));
  EXPECT_THAT(text, HasSubstr("tandem_kv_misses_total{reason=\"checksum\",tier=\"redis\"} 1"));
  EXPECT_THAT(text, HasSubstr("tandem_router_prompt_tokens_total 812"));
  EXPECT_THAT(text, HasSubstr("tandem_kv_tier_used_bytes{tier=\"memory\"} 4096"));
  EXPECT_THAT(text, HasSubstr("tandem_router_time_to_first_token_seconds_count 2"));
  EXPECT_THAT(text, HasSubstr("tandem_router_time_to_first_token_seconds_bucket{le=\"0.06\"} 1"));
  EXPECT_THAT(text, HasSubstr("tandem_router_time_to_first_token_seconds_bucket{le=\"+Inf\"} 2"));
  EXPECT_THAT(text, HasSubstr("tandem_router_request_phase_seconds_bucket{phase=\"kv_load\""));
}

TEST(MetricsRegistry, ProcessMetricsUnderTheirStandardNames) {
  MetricsRegistry registry;
  const std::string text = registry.Serialize();
  for (const char* name : {"process_cpu_seconds_total", "process_resident_memory_bytes",
                           "process_virtual_memory_bytes", "process_start_time_seconds",
                           "process_open_fds", "process_threads"}) {
    EXPECT_THAT(text, HasSubstr(std::string("\n") + name + " ")) << name;
  }
  // Resident memory is this test process's: more than a megabyte, less than a terabyte.
  const size_t at = text.find("\nprocess_resident_memory_bytes ");
  ASSERT_NE(at, std::string::npos);
  const double rss = std::stod(text.substr(at + 31));
  EXPECT_GT(rss, 1e6);
  EXPECT_LT(rss, 1e12);
  const size_t start = text.find("\nprocess_start_time_seconds ");
  const double started = std::stod(text.substr(start + 28));
  EXPECT_NEAR(started, absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch()), 3600);
}

TEST(MetricsRegistry, PromtoolAcceptsOutput) {
  if (access(kPromtool, X_OK) != 0) GTEST_SKIP() << kPromtool << " not installed";
  // The check itself must be able to fail: a counter without _total is a promtool lint problem.
  PromtoolResult bad = RunPromtool("# HELP foo x\n# TYPE foo counter\nfoo 1\n");
  ASSERT_NE(bad.exit_code, 0) << "promtool accepted a bad counter name: " << bad.output;

  MetricsRegistry registry;
  RegisterSample(registry);
  const std::string text = registry.Serialize();
  PromtoolResult result = RunPromtool(text);
  EXPECT_EQ(result.exit_code, 0) << result.output << "\n--- input:\n" << text;
  EXPECT_EQ(result.output, "") << "\n--- input:\n" << text;
}

TEST(MetricsRegistry, SameRegistrationReturnsSameFamily) {
  MetricsRegistry registry;
  CounterFamily* a = registry.Counter("tandem_kv_hits_total", "Hits.", {"tier"});
  CounterFamily* b = registry.Counter("tandem_kv_hits_total", "Hits.", {"tier"});
  EXPECT_EQ(a, b);
  a->Labels({"memory"}).Increment();
  b->Labels({"memory"}).Increment();
  EXPECT_DOUBLE_EQ(a->Labels({"memory"}).Value(), 2);
}

TEST(MetricsRegistry, NameRules) {
  EXPECT_OK(ValidateMetricName("tandem_kv_hits_total", MetricKind::kCounter));
  EXPECT_OK(ValidateMetricName("tandem_kv_get_seconds", MetricKind::kHistogram));
  EXPECT_THAT(ValidateMetricName("kv_hits_total", MetricKind::kCounter),
              StatusIs(absl::StatusCode::kInvalidArgument, "must start with tandem_"));
  EXPECT_THAT(ValidateMetricName("tandem_kv_hits", MetricKind::kCounter),
              StatusIs(absl::StatusCode::kInvalidArgument, "counter names end in _total"));
  EXPECT_THAT(ValidateMetricName("tandem_kv_used_total", MetricKind::kGauge),
              StatusIs(absl::StatusCode::kInvalidArgument, "only counter names end in _total"));
  EXPECT_THAT(ValidateMetricName("tandem_kv_Hits_total", MetricKind::kCounter),
              StatusIs(absl::StatusCode::kInvalidArgument, "lower-case"));
  EXPECT_THAT(ValidateMetricName("tandem_kv_get_count", MetricKind::kHistogram),
              StatusIs(absl::StatusCode::kInvalidArgument, "_count"));
  EXPECT_THAT(ValidateLabelNames("tandem_x_seconds", {"tier", "le"}, MetricKind::kHistogram),
              StatusIs(absl::StatusCode::kInvalidArgument, "label 'le' is reserved"));
  EXPECT_THAT(ValidateLabelNames("tandem_x_total", {"tier", "tier"}, MetricKind::kCounter),
              StatusIs(absl::StatusCode::kInvalidArgument, "appears twice"));
  EXPECT_THAT(ValidateBuckets("tandem_x_seconds", std::vector<double>{0.1, 0.1}),
              StatusIs(absl::StatusCode::kInvalidArgument, "strictly increasing"));
}

TEST(MetricsRegistryDeathTest, BadRegistrationIsABug) {
  MetricsRegistry registry;
  EXPECT_DEATH(registry.Counter("tandem_kv_hits", "Hits."), "counter names end in _total");
  registry.Counter("tandem_kv_hits_total", "Hits.", {"tier"});
  registry.Gauge("tandem_kv_used_bytes", "Bytes.");
  EXPECT_DEATH(registry.Histogram("tandem_kv_used_bytes", "Bytes.", {}, kE2eBuckets),
               "registered as gauge and as histogram");
  EXPECT_DEATH(registry.Counter("tandem_kv_hits_total", "Other help.", {"tier"}),
               "registered twice with different help");
  EXPECT_DEATH(registry.Counter("tandem_kv_hits_total", "Hits.", {"tier"})->Labels({}),
               "has labels \\{tier\\}, got 0 values");
}

TEST(MetricsBuckets, MatchVllm) {
  EXPECT_EQ(std::size(kTtftBuckets), 22u);
  EXPECT_EQ(kTtftBuckets[0], 0.001);
  EXPECT_EQ(kTtftBuckets[21], 2560);
  EXPECT_EQ(std::size(kItlBuckets), 22u);  // vLLM's 19 plus 0.001, 0.0025, 0.005
  EXPECT_EQ(kItlBuckets[3], 0.01);
  EXPECT_EQ(std::size(kE2eBuckets), 21u);
  EXPECT_EQ(kE2eBuckets[20], 7680);
  for (auto buckets : {absl::Span<const double>(kTtftBuckets), absl::Span<const double>(kItlBuckets),
                       absl::Span<const double>(kE2eBuckets)}) {
    EXPECT_OK(ValidateBuckets("tandem_x_seconds", buckets));
  }
}

}  // namespace
}  // namespace tandem::testing
