// common/node_api.h
//
// The internal control plane between router, prefill and decode nodes (ARCHITECTURE.md §5.2): the
// bodies of POST /internal/v1/{reserve,prefill,decode,cancel} and GET /internal/v1/status, and the
// SSE events a decode stream sends, as plain structs with one JSON encoding each. It lives in
// common/ because the router and both nodes speak it and none of them may include another.
//
// Every FromJson() fails closed: malformed JSON, a missing required field or a field of the wrong
// type is InvalidArgument naming the field, so a node answers a bad internal call with 400 rather
// than acting on a default. Unknown fields are ignored (a newer router may send more).
// Plain values and free functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace tandem::node_api {

// Sampling as the model's Sample op applies it (temperature 0 = greedy), plus the state of the
// request's random stream, so a request sampled partly on the prefill node and partly on the decode
// node draws exactly the numbers `tandem generate` draws in one process.
struct Sampling {
  double temperature = 1.0;
  double top_p = 1.0;
  int64_t top_k = 0;
  uint64_t rng_state = 0;  // the seed before the first sample
};

// Where the prefill node ships a request's KV: the decode node's data plane and reservation.
struct DecodeTarget {
  std::string transport = "tcp";  // "tcp" | "ucx"
  std::string host = "127.0.0.1";
  int port = 0;
  std::string node_id;
  uint64_t epoch = 0;
  uint64_t reservation_id = 0;
  // Issued by the decode node with the reservation (128 random bits, hex); the prefill node sends
  // it in the data-plane BEGIN, and a BEGIN without it is refused. Never logged.
  std::string transfer_token{};
};

struct ReserveRequest {
  std::string request_id;
  int64_t prompt_tokens = 0;
  int64_t max_tokens = 0;  // completion tokens the request may generate, the first one included
  int64_t deadline_ms = 0;  // unix ms; the reservation expires then unless a decode call claims it
};

struct ReserveReply {
  DecodeTarget target;
  int64_t expires_ms = 0;
};

// One retrieved document of a prompt: tokens [begin, end), tokenized on its own (CacheBlend).
struct DocumentSpan {
  int32_t begin = 0;
  int32_t end = 0;
};

// A request's CacheBlend settings (the `tandem` extension object); an unset field (negative, or
// empty) keeps the prefill node's default (--blend_* flags).
struct BlendSettings {
  bool enabled = true;          // false: documents are prefilled as ordinary text
  double recompute_ratio = -1;  // [0, 1]
  int32_t check_layer = -1;     // [0, n_layers)
  std::string deviation;        // "" | "value" | "key"
  int32_t min_blend_tokens = -1;
};

struct PrefillRequest {
  std::string request_id;
  std::vector<int32_t> tokens;
  std::vector<DocumentSpan> documents;  // in order, disjoint, within tokens
  BlendSettings blend;
  Sampling sampling;
  std::string sparse_prefill;  // "" = the node's default; dense | sale | power
  bool store_kv = true;        // store the prompt's full blocks in the node's KV store
  DecodeTarget target;
  int64_t deadline_ms = 0;
};

// Phase durations in milliseconds (ARCHITECTURE.md §2 "Phases"); a phase a node does not run is 0.
struct Timings {
  double queue = 0;
  double kv_load = 0;
  double blend = 0;  // CacheBlend: re-rotation, deviation check and recompute
  double prefill = 0;
  double transfer = 0;
  double decode_queue = 0;
  double decode = 0;
};

// What blending did for one request (ARCHITECTURE.md §5.2 "kv"): document tokens whose stored KV
// was reused, of those the ones recomputed after the check layer, and the other tokens computed;
// documents found in the store or computed and stored because they were missing.
struct BlendReport {
  int64_t reused_tokens = 0;
  int64_t recomputed_tokens = 0;
  int64_t computed_tokens = 0;
  int64_t document_hits = 0;
  int64_t document_misses = 0;
};

struct PrefillReply {
  int32_t first_token = -1;
  BlendReport blend;
  uint64_t rng_state = 0;  // after the first sample; the decode node continues from it
  std::string transfer_id;
  int64_t prompt_tokens = 0;
  int64_t cached_tokens = 0;  // prompt tokens whose KV came from the store instead of compute
  int64_t transfer_bytes = 0;
  std::string attention_method;  // dense | sale | power
  double attention_density = 1;
  Timings timings;
};

struct DecodeRequest {
  std::string request_id;
  uint64_t reservation_id = 0;
  std::string transfer_id;  // from PrefillReply: the KV this decode continues from
  int32_t first_token = -1;
  Sampling sampling;        // rng_state = PrefillReply::rng_state
  int64_t max_tokens = 0;   // completion tokens in all, the first token included
  bool ignore_eos = false;
  int64_t deadline_ms = 0;  // the transfer must have arrived by then
};

// One SSE event of a decode stream: "token" (data {"id"}), "done" (finish_reason, completion
// tokens, timings) or "error" (HTTP-style code, message, retryable).
struct DecodeEvent {
  enum class Kind { kToken, kDone, kError };
  Kind kind = Kind::kToken;
  int32_t token = -1;
  std::string finish_reason;  // "stop" | "length"
  int64_t completion_tokens = 0;
  Timings timings;
  int http_status = 0;
  std::string message;
  bool retryable = false;

  // "event: <kind>\ndata: <json>\n\n"
  std::string ToSse() const;
  // From one SSE event's name and data.
  static absl::StatusOr<DecodeEvent> FromSse(std::string_view event, std::string_view data);
};

struct CancelRequest {
  std::string request_id;
  uint64_t reservation_id = 0;  // decode nodes; 0 on prefill nodes
};

struct NodeLoad {
  int64_t queued_tokens = 0;  // prompt tokens waiting (prefill) or reserved but not running (decode)
  int64_t running = 0;        // requests being computed
  int64_t waiting = 0;        // requests queued
  double kv_free_ratio = 1;   // free fraction of the KV pool (decode) or memory tier (prefill)
};

struct KvEventEntry {
  uint64_t seq = 0;
  std::string op;    // "stored" | "evicted"
  std::string key;   // 64 hex digits
  std::string tier;  // memory | rocksdb | redis
};

struct NodeStatus {
  std::string node_id;
  std::string role;  // "prefill" | "decode"
  uint64_t epoch = 0;
  bool ready = false;
  std::vector<std::string> degraded;
  std::string kv_format;          // hex of KvFormat::Encode()
  std::string vocab_fingerprint;  // hex of the tokenizer's fingerprint
  NodeLoad load;
  std::vector<KvEventEntry> events;
  uint64_t next_seq = 0;
  bool events_truncated = false;  // the reader must rebuild its view of this node's keys
};

std::string ToJson(const ReserveRequest& v);
std::string ToJson(const ReserveReply& v);
std::string ToJson(const PrefillRequest& v);
std::string ToJson(const PrefillReply& v);
std::string ToJson(const DecodeRequest& v);
std::string ToJson(const CancelRequest& v);
std::string ToJson(const NodeStatus& v);
std::string TimingsJson(const Timings& t);

template <typename T>
absl::StatusOr<T> FromJson(std::string_view body);
template <>
absl::StatusOr<ReserveRequest> FromJson(std::string_view body);
template <>
absl::StatusOr<ReserveReply> FromJson(std::string_view body);
template <>
absl::StatusOr<PrefillRequest> FromJson(std::string_view body);
template <>
absl::StatusOr<PrefillReply> FromJson(std::string_view body);
template <>
absl::StatusOr<DecodeRequest> FromJson(std::string_view body);
template <>
absl::StatusOr<CancelRequest> FromJson(std::string_view body);
template <>
absl::StatusOr<NodeStatus> FromJson(std::string_view body);

// Unix time in milliseconds, the clock of every deadline_ms field.
int64_t NowUnixMs();

}  // namespace tandem::node_api
