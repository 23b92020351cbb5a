// decode_node/options.h
//
// DecodeOptions: everything a DecodeService needs to start (ARCHITECTURE.md §4.7, §6): the model
// and how to run it, the cluster's KvFormat fields, the admission limits, the data plane and the
// node's identity. Filled by DecodeOptionsFromFlags() (decode_node/flags.cc) in a process, or
// directly by tests; the library never reads flags. Plain value type.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/cluster_secret.h"
#include "kv_store/options.h"
#include "runtime/loaded_model.h"

namespace tandem::decode {

// The model options a decode node starts with: the library's, with the node's KV pool.
//  - model.kv.max_seqs: sequences decoded at once, and reservations held at once (each holds one
//    slot). More slots raise throughput until the step time grows past the latency target.
//    Default: 32. Flag: --decode_max_seqs
//  - model.kv.capacity_tokens: KV tokens the pool holds across all sequences; reservations are
//    admitted against it. At 23 KiB per token (SmolLM2, f16) the default 65536 tokens take
//    1.4 GiB: 32 sequences of 2048 tokens, or 8 full 8192-token contexts, while leaving room for a
//    prefill node on the same machine. Default: 65536. Flag: --decode_kv_capacity_tokens
inline runtime::ModelOptions DecodeNodeModelOptions() {
  runtime::ModelOptions o;
  o.kv.max_seqs = 32;
  o.kv.capacity_tokens = 65536;
  return o;
}

struct DecodeOptions {
  // The model, its runner and KV pool (DecodeNodeModelOptions above), and the cluster's KvFormat
  // fields (the dtype is also what the data plane accepts). Flags: --model, --backend,
  // --kv_dtype, --kv_layout, --kv_block_tokens, --decode_max_seqs, --decode_kv_capacity_tokens
  runtime::ModelOptions model = DecodeNodeModelOptions();
  // Longest an unclaimed reservation waits for its KV transfer (a reserve's deadline_ms may only
  // shorten it), and how long it is kept for its decode call after the transfer ended; it never
  // expires while the transfer is arriving. Must be at least the router's reserve deadline,
  // --router_prefill_timeout_ms + its control timeout (300 s + 5 s by default), so the router's
  // deadline_ms is what governs: a shorter ttl drops reservations of prompts whose prefill is
  // merely slow. Default: 310 s. Flag: --decode_reservation_ttl_ms
  absl::Duration reservation_ttl = absl::Seconds(310);
  // Data plane: transport name ("tcp" | "ucx"), the address it listens on, and the host it tells
  // prefill nodes to send to (Reserve's target.host). Default: tcp on 0.0.0.0:8201.
  // Flags: --transport, --host, --decode_data_port, --decode_advertise_host
  std::string transport = kv::DataPlaneOptions{}.transport;
  std::string data_host = "0.0.0.0";
  int32_t data_port = 8201;  // 0 binds a free port
  std::string advertise_host = "127.0.0.1";
  // This node's id and process epoch, sent in status and checked on every data-plane frame.
  std::string node_id = "decode";
  uint64_t epoch = 1;
  // The cluster secret: authenticates the data plane (and, in the node's process, its /internal/
  // HTTP API). nullptr runs them open, which only a loopback-bound node may do.
  // Flag: --cluster_secret_file
  std::shared_ptr<const ClusterSecret> cluster_secret{};

  // InvalidArgument naming the field (and its flag) and the value.
  absl::Status Validate() const;
};

}  // namespace tandem::decode
