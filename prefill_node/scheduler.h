// prefill_node/scheduler.h
//
// PrefillScheduler: the FIFO in front of the prefill node's one ModelRunner (ARCHITECTURE.md §2
// step 4). A single worker thread, owned here, runs submitted jobs one at a time in arrival order,
// because the runner is single-threaded and a second concurrent prefill would only share its
// cores. The queue is bounded (ResourceExhausted "prefill node overloaded" beyond max_waiting) so a
// burst is pushed back to the router, which tries another node, instead of growing latency here.
//
// A queued job can be dropped before it runs: cancelled by request id, expired at its deadline
// (ExpireIfQueued, or found expired when dequeued), or refused when the scheduler closes. A dropped
// job's `dropped` callback gets the reason instead of `run` being called; exactly one of the two
// is called for every accepted job. Callbacks must not call back into the scheduler.
//
// Thread-safe. The destructor closes the scheduler (queued jobs are dropped with Unavailable),
// waits for the running job and joins the worker.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace tandem::prefill {

class PrefillScheduler {
 public:
  // Called on the worker thread with the time the job waited in the queue.
  using Run = std::function<void(absl::Duration queued)>;
  // Called instead of Run, on whichever thread dropped the job: Cancelled, DeadlineExceeded or
  // Unavailable (closed).
  using Dropped = std::function<void(const absl::Status& reason)>;

  struct Load {
    int64_t waiting = 0;        // jobs queued
    int64_t queued_tokens = 0;  // prompt tokens of the queued jobs
    int64_t running = 0;        // 0 or 1: a job on the worker
  };
  // Called (under the scheduler's lock, so keep it cheap) whenever Load changes: metric gauges.
  using LoadListener = std::function<void(const Load&)>;

  explicit PrefillScheduler(int32_t max_waiting, LoadListener on_load = nullptr);
  ~PrefillScheduler();
  PrefillScheduler(const PrefillScheduler&) = delete;
  PrefillScheduler& operator=(const PrefillScheduler&) = delete;

  // Queues a job and returns its id. ResourceExhausted when max_waiting jobs already wait;
  // Unavailable once closed or draining. `deadline` InfiniteFuture = none.
  absl::StatusOr<uint64_t> Submit(std::string request_id, int64_t prompt_tokens,
                                  absl::Time deadline, Run run, Dropped dropped);
  // Drops every queued job of `request_id` with Cancelled; false when none was queued (it may be
  // running or done: cancel is best effort).
  bool CancelQueued(std::string_view request_id);
  // Drops job `id` with DeadlineExceeded if it is still queued; false when it already started.
  bool ExpireIfQueued(uint64_t id);

  // Refuses new jobs from now on; queued ones still run. Then blocks until nothing is queued or
  // running.
  void Drain();

  Load load() const;

 private:
  struct Job {
    uint64_t id = 0;
    std::string request_id;
    int64_t prompt_tokens = 0;
    absl::Time deadline;
    absl::Time enqueued;
    Run run;
    Dropped dropped;
  };

  void WorkerLoop();
  // Removes the queued job matching `pred`s and returns them (the caller drops them unlocked).
  std::deque<Job> TakeQueuedLocked(const std::function<bool(const Job&)>& pred)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void NotifyLoadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int32_t max_waiting_;
  const LoadListener on_load_;
  mutable absl::Mutex mu_;
  std::deque<Job> queue_ ABSL_GUARDED_BY(mu_);
  int64_t queued_tokens_ ABSL_GUARDED_BY(mu_) = 0;
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  bool refusing_ ABSL_GUARDED_BY(mu_) = false;  // drain or close: Submit fails
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;  // close: the worker exits
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::thread worker_;
};

}  // namespace tandem::prefill
