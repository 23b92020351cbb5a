#include "decode_node/metrics.h"

#include <utility>
#include <vector>

#include "common/cluster_secret.h"
#include "kv_store/transfer/transport.h"

namespace tandem::decode {
namespace {

// Rows per engine step: powers of two up to well past --decode_max_seqs' default.
constexpr double kBatchSizeBuckets[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};

}  // namespace

DecodeMetrics::DecodeMetrics(MetricsRegistry& registry, std::string transport)
    : transport_(std::move(transport)) {
  waiting_ = &registry
                  .Gauge("tandem_decode_requests_waiting",
                         "Decode calls waiting for their KV transfer or for a place in the batch.")
                  ->Labels({});
  running_ = &registry
                  .Gauge("tandem_decode_requests_running",
                         "Sequences in the decode node's continuous batch.")
                  ->Labels({});
  kv_usage_ = &registry
                   .Gauge("tandem_decode_kv_usage_ratio",
                          "Fraction of the decode KV pool held by reservations and sequences.")
                   ->Labels({});
  step_seconds_ = &registry
                       .Histogram("tandem_decode_step_seconds",
                                  "Seconds of one engine step: forward of the batch and sampling.",
                                  {}, kItlBuckets)
                       ->Labels({});
  batch_size_ = &registry
                     .Histogram("tandem_decode_batch_size", "Sequences forwarded per engine step.",
                                {}, kBatchSizeBuckets)
                     ->Labels({});
  bytes_in_ = &registry
                   .Counter("tandem_kv_transfer_bytes_total",
                            "KV block bytes moved over the data plane.", {"transport", "direction"})
                   ->Labels({transport_, "in"});
  transfer_failures_ = registry.Counter("tandem_kv_transfer_failures_total",
                                        "KV transfers that did not complete, by reason.",
                                        {"transport", "reason"});
  // Every reason from the start: the transfer failure panels and alert read 0, not "no data".
  for (std::string_view reason : kv::kTransferFailureReasons) {
    transfer_failures_->Labels({transport_, std::string(reason)});
  }
  auth_refusals_ = AuthRefusalsCounter(registry);
}

void DecodeMetrics::AuthRefused(std::string_view reason) {
  auth_refusals_->Labels({"data", std::string(reason)}).Increment();
}

void DecodeMetrics::Step(double seconds, int64_t batch_size) {
  step_seconds_->Observe(seconds);
  batch_size_->Observe(static_cast<double>(batch_size));
}

void DecodeMetrics::TransferBytesIn(int64_t bytes) {
  bytes_in_->Increment(static_cast<double>(bytes));
}

void DecodeMetrics::TransferFailed(const absl::Status& status) {
  transfer_failures_->Labels({transport_, std::string(kv::TransferFailureReason(status))})
      .Increment();
}


}  // namespace tandem::decode
