// decode_node/metrics.h
//
// DecodeMetrics: the decode node's §7 metrics, registered in one place: the request gauges
// (waiting = claimed by a decode call but not yet in the batch, running = in the batch), the KV
// pool's reserved fraction, the engine's step time and batch size, and the inbound side of the KV
// data plane (bytes and failures by transport and reason). The names shared with the prefill node
// (tandem_kv_transfer_*) are registered with the same help and labels, so both nodes may share one
// registry in tests.
// Ownership: the MetricsRegistry owns every metric and must outlive this object. Thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "common/metrics.h"

namespace tandem::decode {

class DecodeMetrics {
 public:
  // `transport` ("tcp" | "ucx") labels the data-plane series.
  DecodeMetrics(MetricsRegistry& registry, std::string transport);

  void SetWaiting(int64_t n) { waiting_->Set(static_cast<double>(n)); }
  void SetRunning(int64_t n) { running_->Set(static_cast<double>(n)); }
  void SetKvUsage(double ratio) { kv_usage_->Set(ratio); }
  void Step(double seconds, int64_t batch_size);
  void TransferBytesIn(int64_t bytes);
  // `reason` comes from the Status code (TransferFailureReason), never from its message.
  void TransferFailed(const absl::Status& status);
  // A data-plane caller without the right credentials (tandem_auth_refusals_total{plane="data"}).
  void AuthRefused(std::string_view reason);
  CounterFamily* auth_refusals() const { return auth_refusals_; }

 private:
  std::string transport_;
  prometheus::Gauge* waiting_;
  prometheus::Gauge* running_;
  prometheus::Gauge* kv_usage_;
  prometheus::Histogram* step_seconds_;
  prometheus::Histogram* batch_size_;
  prometheus::Counter* bytes_in_;
  CounterFamily* transfer_failures_;
  CounterFamily* auth_refusals_;
};


}  // namespace tandem::decode
