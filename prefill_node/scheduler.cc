#include "prefill_node/scheduler.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace tandem::prefill {

PrefillScheduler::PrefillScheduler(int32_t max_waiting, LoadListener on_load)
    : max_waiting_(max_waiting), on_load_(std::move(on_load)) {
  worker_ = std::thread([this] { WorkerLoop(); });
}

PrefillScheduler::~PrefillScheduler() {
  std::deque<Job> dropped;
  {
    absl::MutexLock lock(&mu_);
    refusing_ = true;
    stopping_ = true;
    dropped = TakeQueuedLocked([](const Job&) { return true; });
  }
  for (Job& job : dropped) job.dropped(absl::UnavailableError("prefill node shutting down"));
  worker_.join();
}

absl::StatusOr<uint64_t> PrefillScheduler::Submit(std::string request_id, int64_t prompt_tokens,
                                                  absl::Time deadline, Run run, Dropped dropped) {
  absl::MutexLock lock(&mu_);
  if (refusing_) return absl::UnavailableError("prefill node draining");
  if (static_cast<int64_t>(queue_.size()) >= max_waiting_) {
    return absl::ResourceExhaustedError(absl::StrCat("prefill node overloaded: ", queue_.size(),
                                                     " requests waiting (--prefill_max_waiting)"));
  }
  Job job;
  job.id = next_id_++;
  job.request_id = std::move(request_id);
  job.prompt_tokens = prompt_tokens;
  job.deadline = deadline;
  job.enqueued = absl::Now();
  job.run = std::move(run);
  job.dropped = std::move(dropped);
  const uint64_t id = job.id;
  queued_tokens_ += prompt_tokens;
  queue_.push_back(std::move(job));
  NotifyLoadLocked();
  return id;
}

bool PrefillScheduler::CancelQueued(std::string_view request_id) {
  std::deque<Job> dropped;
  {
    absl::MutexLock lock(&mu_);
    dropped = TakeQueuedLocked([&](const Job& j) { return j.request_id == request_id; });
  }
  for (Job& job : dropped) {
    job.dropped(absl::CancelledError(absl::StrCat("request ", job.request_id, " cancelled")));
  }
  return !dropped.empty();
}

bool PrefillScheduler::ExpireIfQueued(uint64_t id) {
  std::deque<Job> dropped;
  {
    absl::MutexLock lock(&mu_);
    dropped = TakeQueuedLocked([&](const Job& j) { return j.id == id; });
  }
  for (Job& job : dropped) {
    job.dropped(absl::DeadlineExceededError(
        absl::StrCat("request ", job.request_id, " passed its deadline while queued")));
  }
  return !dropped.empty();
}

void PrefillScheduler::Drain() {
  absl::MutexLock lock(&mu_);
  refusing_ = true;
  auto idle = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return queue_.empty() && !running_; };
  mu_.Await(absl::Condition(&idle));
}

PrefillScheduler::Load PrefillScheduler::load() const {
  absl::MutexLock lock(&mu_);
  return Load{static_cast<int64_t>(queue_.size()), queued_tokens_, running_ ? 1 : 0};
}

void PrefillScheduler::WorkerLoop() {
  while (true) {
    Job job;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]()
                       ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_ || !queue_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (queue_.empty()) return;  // stopping_ and nothing left
      job = std::move(queue_.front());
      queue_.pop_front();
      queued_tokens_ -= job.prompt_tokens;
      running_ = true;
      NotifyLoadLocked();
    }
    const absl::Time start = absl::Now();
    if (start > job.deadline) {
      job.dropped(absl::DeadlineExceededError(
          absl::StrCat("request ", job.request_id, " passed its deadline while queued")));
    } else {
      job.run(start - job.enqueued);
    }
    job = Job{};  // release captures before reporting idle
    absl::MutexLock lock(&mu_);
    running_ = false;
    NotifyLoadLocked();
  }
}

std::deque<PrefillScheduler::Job> PrefillScheduler::TakeQueuedLocked(
    const std::function<bool(const Job&)>& pred) {
  std::deque<Job> taken;
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (pred(*it)) {
      queued_tokens_ -= it->prompt_tokens;
      taken.push_back(std::move(*it));
      it = queue_.erase(it);
    } else {
      ++it;
    }
  }
  if (!taken.empty()) NotifyLoadLocked();
  return taken;
}

void PrefillScheduler::NotifyLoadLocked() {
  if (on_load_) {
    on_load_(Load{static_cast<int64_t>(queue_.size()), queued_tokens_, running_ ? 1 : 0});
  }
}

}  // namespace tandem::prefill
