// decode_node/batcher.h
//
// Batcher: the decode node's engine (ARCHITECTURE.md §2 step 6). One engine thread owns the
// ModelRunner; every step it forwards all running sequences together (one token each, one
// ForwardBatch, a logits row per sequence), samples every row with one Sample call, each row with
// its request's SamplingConfig and its own rng state, and streams the tokens out. Between steps it
// admits newly submitted jobs (importing their KV blocks into a fresh sequence of the KV cache,
// whatever its layout) and drops finished and cancelled ones at once, so sequences join and leave
// the batch continuously.
//
// The tokens of a job equal those runtime::Generate() produces in one process for the same prompt,
// sampling and seed: the imported KV holds the prompt, the job's first token (sampled by the
// prefill node) is fed at position prompt_len, and the rng state continues from the prefill
// node's.
//
// Ownership: borrows the runner and the KV cache (which no other thread may touch while the
// batcher lives) and the metrics; owns each job's reservation lease while the job is queued or
// running and releases it as the job leaves, before its terminal event. Submit(), Stop() and the
// DecodeStream are thread-safe; Stop() (or the destructor) ends every unfinished job with an error
// event.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/node_api.h"
#include "decode_node/metrics.h"
#include "decode_node/reservation_lease.h"
#include "kernels/model/kv_cache.h"
#include "kernels/model/model_runner.h"
#include "kernels/op.h"
#include "kv_store/kv_block.h"

namespace tandem::decode {

// The events of one decode stream, from the engine thread to the thread writing the SSE
// response. Ends with exactly one kDone or kError event. Thread-safe.
class DecodeStream {
 public:
  void Push(node_api::DecodeEvent event);
  // Blocks until events are queued or the stream has ended; moves them into `out`. False once
  // the terminal event has been taken.
  bool Pop(std::vector<node_api::DecodeEvent>* out);

 private:
  absl::Mutex mu_;
  std::deque<node_api::DecodeEvent> queue_ ABSL_GUARDED_BY(mu_);
  bool ended_ ABSL_GUARDED_BY(mu_) = false;  // the terminal event is queued
  bool drained_ ABSL_GUARDED_BY(mu_) = false;  // ... and taken
};

struct DecodeJob {
  std::string request_id;
  ReservationLease lease;           // the reservation's room, freed as the job leaves
  std::vector<kv::KvBlock> blocks;  // in order, positions [0, prompt_len), the runner's KV dtype
  int32_t prompt_len = 0;
  int32_t first_token = -1;         // completion token 1, already sent to the client
  kernels::SamplingConfig sampling;
  uint64_t rng_state = 0;           // after the first token's sample
  int64_t max_tokens = 2;           // completion tokens in all, the first included; >= 2
  bool ignore_eos = false;
  // Set by anyone to drop the sequence at the next step (cancel, client gone).
  std::shared_ptr<std::atomic<bool>> cancelled = std::make_shared<std::atomic<bool>>(false);
  absl::Time ready_at = absl::Now();  // start of the decode_queue phase (transfer ACK)
};

class Batcher {
 public:
  // `runner`, `kv` and `metrics` (may be null) are borrowed and must outlive the batcher.
  Batcher(model::ModelRunner& runner, model::KvCache& kv, DecodeMetrics* metrics);
  ~Batcher();
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // Queues `job` for admission at the next step boundary; never blocks. The stream carries its
  // token events, then done (stop | length, timings) or error (503 retryable when the KV pool
  // is full or the engine stopped, 499 when cancelled, 500 when the model fails). The job's lease
  // is released exactly once, also for a job submitted after Stop().
  std::shared_ptr<DecodeStream> Submit(DecodeJob job);

  // Ends every unfinished job with an error event and joins the engine thread; later Submit()s
  // get an error stream at once. Idempotent; the destructor calls it.
  void Stop();

  int64_t running() const { return running_count_.load(); }
  int64_t steps() const { return steps_.load(); }

 private:
  struct Sequence {
    DecodeJob job;
    std::shared_ptr<DecodeStream> stream;
    model::SeqId seq = -1;
    int32_t position = 0;    // where `last_token` is fed next
    int32_t last_token = -1;
    int64_t completion_tokens = 1;
    absl::Time first_step_at = absl::InfinitePast();
  };

  void Loop();
  // Imports the job's KV into a new runner sequence; error events on failure.
  absl::Status Admit(Sequence& s);
  absl::Status Step();
  void Finish(Sequence& s, node_api::DecodeEvent terminal);
  void FailAll(const absl::Status& status);

  model::ModelRunner& runner_;
  model::KvCache& kv_;
  DecodeMetrics* const metrics_;

  absl::Mutex mu_;
  std::vector<Sequence> pending_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;

  std::vector<Sequence> running_;  // engine thread only
  std::atomic<int64_t> running_count_{0};
  std::atomic<int64_t> steps_{0};
  absl::Mutex join_mu_;  // Stop() may race with the destructor or another Stop()
  std::thread thread_ ABSL_GUARDED_BY(join_mu_);
};

// An error event: `status`'s HTTP code and message, retryable per IsRetryable.
node_api::DecodeEvent ErrorEvent(const absl::Status& status);

}  // namespace tandem::decode
