// prefill_node/metrics.h
//
// PrefillMetrics: the prefill node's §7 metrics, registered in one place: queue gauges, prompt
// tokens computed vs reused, attention density and time per method, and the outbound side of the
// KV data plane (bytes, seconds, failures by transport and reason). The KV tiers record their own
// metrics (kv_store/kv_tier.h) in the same registry.
// Ownership: the MetricsRegistry owns every metric and must outlive this object. Thread-safe.
#pragma once

#include <optional>
#include <string_view>

#include "absl/status/status.h"
#include "common/metrics.h"

namespace tandem::prefill {

class PrefillMetrics {
 public:
  explicit PrefillMetrics(MetricsRegistry& registry);

  void SetWaiting(int64_t n) { waiting_->Set(static_cast<double>(n)); }
  void SetRunning(int64_t n) { running_->Set(static_cast<double>(n)); }
  void Tokens(int64_t computed, int64_t reused);
  // `method`: dense | sale | power.
  // `seconds` when the attention was timed (always on CPU; on a device only when asked).
  void Attention(std::string_view method, double density, std::optional<double> seconds);
  // CacheBlend of one request: document tokens reused and recomputed, other tokens computed, and
  // documents found in the store or computed because they were missing.
  void Blend(int64_t reused, int64_t recomputed, int64_t computed, int64_t hits, int64_t misses);
  void TransferDone(std::string_view transport, int64_t bytes, double seconds);
  // `reason` comes from the Status code (TransferFailureReason), never from its message.
  void TransferFailed(std::string_view transport, const absl::Status& status);

 private:
  prometheus::Gauge* waiting_;
  prometheus::Gauge* running_;
  prometheus::Counter* tokens_computed_;
  prometheus::Counter* tokens_reused_;
  CounterFamily* blend_tokens_;
  CounterFamily* blend_documents_;
  HistogramFamily* density_;
  HistogramFamily* attention_seconds_;
  CounterFamily* transfer_bytes_;
  HistogramFamily* transfer_seconds_;
  CounterFamily* transfer_failures_;
};


}  // namespace tandem::prefill
