#include "prefill_node/metrics.h"

#include <string>
#include <vector>

#include "common/status.h"
#include "kernels/op.h"
#include "kv_store/transfer/transport.h"

namespace tandem::prefill {

PrefillMetrics::PrefillMetrics(MetricsRegistry& registry) {
  waiting_ = &registry
                  .Gauge("tandem_prefill_requests_waiting",
                         "Prefill requests queued for the model on this node.")
                  ->Labels({});
  running_ = &registry
                  .Gauge("tandem_prefill_requests_running",
                         "Prefill requests past the queue: computing or shipping their KV.")
                  ->Labels({});
  CounterFamily* tokens = registry.Counter(
      "tandem_prefill_tokens_total",
      "Prompt tokens by how their KV was obtained: computed, or reused from the KV store.",
      {"kind"});
  tokens_computed_ = &tokens->Labels({"computed"});
  tokens_reused_ = &tokens->Labels({"reused"});
  blend_tokens_ = registry.Counter(
      "tandem_cacheblend_tokens_total",
      "Tokens of blended prompts: document tokens reused from stored KV, of those recomputed "
      "after the check layer, and other tokens computed in full.",
      {"kind"});
  blend_documents_ = registry.Counter(
      "tandem_cacheblend_documents_total",
      "Documents of blended prompts: found in the KV store (hit) or computed and stored (miss).",
      {"result"});
  // Series from the start, as for the ones below: 0, not "no data", before the first blend.
  for (const char* kind : {"reused", "recomputed", "computed"}) blend_tokens_->Labels({kind});
  for (const char* result : {"hit", "miss"}) blend_documents_->Labels({result});
  density_ = registry.Histogram(
      "tandem_prefill_sparse_attention_density",
      "Fraction of causal (query block, key block) pairs that prefill attention computed.",
      {"method"}, RatioBuckets());
  attention_seconds_ =
      registry.Histogram("tandem_prefill_attention_seconds",
                         "Seconds of attention ops per prefill request.", {"method"}, kTtftBuckets);
  transfer_bytes_ =
      registry.Counter("tandem_kv_transfer_bytes_total",
                       "KV block bytes moved over the data plane.", {"transport", "direction"});
  transfer_seconds_ = registry.Histogram("tandem_kv_transfer_seconds",
                                         "Seconds from posting a KV transfer to its ACK.",
                                         {"transport"}, kTtftBuckets);
  transfer_failures_ =
      registry.Counter("tandem_kv_transfer_failures_total",
                       "KV transfers that did not complete, by reason.", {"transport", "reason"});
  // Series from the start for every transport this build has (the router picks one per request)
  // and every sparse method (a request may override the node's): dashboards and the transfer
  // failure alert read 0, not "no data", before the first event.
  for (const std::string& transport : kv::AvailableTransports()) {
    transfer_bytes_->Labels({transport, "out"});
    transfer_seconds_->Labels({transport});
    for (std::string_view reason : kv::kTransferFailureReasons) {
      transfer_failures_->Labels({transport, std::string(reason)});
    }
  }
  for (kernels::SparseMethod method : {kernels::SparseMethod::kDense, kernels::SparseMethod::kSale,
                                       kernels::SparseMethod::kPowerAttention}) {
    const std::string name(kernels::SparseMethodName(method));
    density_->Labels({name});
    attention_seconds_->Labels({name});
  }
}

void PrefillMetrics::Tokens(int64_t computed, int64_t reused) {
  tokens_computed_->Increment(static_cast<double>(computed));
  tokens_reused_->Increment(static_cast<double>(reused));
}

void PrefillMetrics::Attention(std::string_view method, double density,
                               std::optional<double> seconds) {
  density_->Labels({std::string(method)}).Observe(density);
  if (seconds.has_value()) attention_seconds_->Labels({std::string(method)}).Observe(*seconds);
}

void PrefillMetrics::Blend(int64_t reused, int64_t recomputed, int64_t computed, int64_t hits,
                           int64_t misses) {
  blend_tokens_->Labels({"reused"}).Increment(static_cast<double>(reused));
  blend_tokens_->Labels({"recomputed"}).Increment(static_cast<double>(recomputed));
  blend_tokens_->Labels({"computed"}).Increment(static_cast<double>(computed));
  blend_documents_->Labels({"hit"}).Increment(static_cast<double>(hits));
  blend_documents_->Labels({"miss"}).Increment(static_cast<double>(misses));
}

void PrefillMetrics::TransferDone(std::string_view transport, int64_t bytes, double seconds) {
  transfer_bytes_->Labels({std::string(transport), "out"}).Increment(static_cast<double>(bytes));
  transfer_seconds_->Labels({std::string(transport)}).Observe(seconds);
}

void PrefillMetrics::TransferFailed(std::string_view transport, const absl::Status& status) {
  transfer_failures_
      ->Labels({std::string(transport), std::string(kv::TransferFailureReason(status))})
      .Increment();
}


}  // namespace tandem::prefill
