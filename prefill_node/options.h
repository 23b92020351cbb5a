// prefill_node/options.h
//
// PrefillOptions: everything a PrefillService needs to start (ARCHITECTURE.md §4.7, §6): the model
// and how to run it, the KV store and the cluster's KvFormat fields, the data plane, the queue
// bound and the node's identity. Filled by PrefillOptionsFromFlags() (prefill_node/flags.cc) in a
// process, or directly by tests; the library never reads flags. Plain value type.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/cluster_secret.h"
#include "kv_store/options.h"
#include "runtime/blend.h"
#include "runtime/loaded_model.h"

namespace tandem::prefill {

struct PrefillOptions {
  // The model, its runner and KV cache, and the cluster's KvFormat fields. The runner's
  // prefill_attention is the node's default attention; a request's sparse_prefill overrides the
  // method only (the knobs stay these). Flags: --model, --backend, --kv_dtype, --prefill_attention,
  // --kv_block_tokens, ... (runtime/flags.h)
  runtime::ModelOptions model;
  // Tiers of the node's KV store. Flags: --kv_memory_bytes, --kv_disk_path, --redis_url, ...
  kv::KvStoreOptions kv_store;
  // Time a KV transfer may take from Post to the decode node's ACK; the reply waits that long at
  // most. Default: 5 s. --kv_transfer_timeout_ms
  absl::Duration transfer_timeout = kv::DataPlaneOptions{}.transfer_timeout;
  // Requests allowed to wait for the model; one more is refused with ResourceExhausted (HTTP 503)
  // so the router tries another node instead of queueing unboundedly here. Default: 64.
  // --prefill_max_waiting
  int32_t max_waiting = 64;
  // CacheBlend of a request's documents (runtime/blend.h); a request's `blend` settings override
  // each field. Flags: --blend_recompute_ratio, --blend_check_layer, --blend_deviation,
  // --blend_min_tokens
  runtime::BlendOptions blend;
  // This node's id and process epoch, sent in status and on every data-plane frame.
  std::string node_id = "prefill";
  uint64_t epoch = 1;
  // The cluster secret: authenticates the data plane (and, in the node's process, its /internal/
  // HTTP API). nullptr runs them open, which only a loopback-bound node may do.
  // Flag: --cluster_secret_file
  std::shared_ptr<const ClusterSecret> cluster_secret{};

  // InvalidArgument naming the field (and its flag) and the value.
  absl::Status Validate() const;
};

}  // namespace tandem::prefill
