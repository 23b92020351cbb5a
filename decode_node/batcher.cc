#include "decode_node/batcher.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/status.h"
#include "glog/logging.h"
#include "runtime/block_io.h"
#include "runtime/sampling.h"

namespace tandem::decode {
namespace {

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(std::max(d, absl::ZeroDuration())); }

node_api::DecodeEvent DoneEvent(const char* reason, int64_t completion_tokens) {
  node_api::DecodeEvent e;
  e.kind = node_api::DecodeEvent::Kind::kDone;
  e.finish_reason = reason;
  e.completion_tokens = completion_tokens;
  return e;
}

}  // namespace

node_api::DecodeEvent ErrorEvent(const absl::Status& status) {
  node_api::DecodeEvent e;
  e.kind = node_api::DecodeEvent::Kind::kError;
  e.http_status = HttpStatusFromStatus(status);
  e.message = std::string(status.message());
  e.retryable = IsRetryable(status);
  return e;
}

void DecodeStream::Push(node_api::DecodeEvent event) {
  absl::MutexLock lock(&mu_);
  if (ended_) return;  // exactly one terminal event
  ended_ = event.kind != node_api::DecodeEvent::Kind::kToken;
  queue_.push_back(std::move(event));
}

bool DecodeStream::Pop(std::vector<node_api::DecodeEvent>* out) {
  absl::MutexLock lock(&mu_);
  if (drained_) return false;
  mu_.Await(absl::Condition(
      +[](std::deque<node_api::DecodeEvent>* q) { return !q->empty(); }, &queue_));
  while (!queue_.empty()) {
    out->push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  if (ended_) drained_ = true;
  return true;
}

Batcher::Batcher(model::ModelRunner& runner, model::KvCache& kv, DecodeMetrics* metrics)
    : runner_(runner), kv_(kv), metrics_(metrics) {
  absl::MutexLock lock(&join_mu_);
  thread_ = std::thread([this] { Loop(); });
}

Batcher::~Batcher() { Stop(); }

void Batcher::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  absl::MutexLock join_lock(&join_mu_);
  if (thread_.joinable()) thread_.join();
}

std::shared_ptr<DecodeStream> Batcher::Submit(DecodeJob job) {
  auto stream = std::make_shared<DecodeStream>();
  {
    absl::MutexLock lock(&mu_);
    if (!stop_) {
      Sequence s;
      s.job = std::move(job);
      s.stream = stream;
      pending_.push_back(std::move(s));
      return stream;
    }
  }
  // The caller handed the reservation to the engine with this job; a job that never joins must
  // still free it, or the room stays claimed and a drain waits its whole timeout. Released outside
  // mu_, as for a job that ends in the loop.
  job.lease.Release();
  stream->Push(ErrorEvent(absl::UnavailableError("decode engine stopped")));
  return stream;
}

void Batcher::Loop() {
  while (true) {
    std::vector<Sequence> admit;
    {
      absl::MutexLock lock(&mu_);
      if (running_.empty()) {
        auto has_work = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
          return stop_ || !pending_.empty();
        };
        mu_.Await(absl::Condition(&has_work));
      }
      if (stop_) {
        admit.swap(pending_);
        for (Sequence& s : admit) running_.push_back(std::move(s));
        break;
      }
      admit.swap(pending_);
    }
    for (Sequence& s : admit) {
      if (absl::Status st = Admit(s); !st.ok()) {
        LOG(WARNING) << "req=" << s.job.request_id << " cannot join the decode batch: " << st;
        Finish(s, ErrorEvent(st));
        continue;
      }
      running_.push_back(std::move(s));
    }
    // Cancelled sequences leave before the step, so a cancel costs no more forward work.
    for (Sequence& s : running_) {
      if (s.job.cancelled->load()) Finish(s, ErrorEvent(absl::CancelledError("decode cancelled")));
    }
    std::erase_if(running_, [](const Sequence& s) { return s.stream == nullptr; });
    running_count_.store(static_cast<int64_t>(running_.size()));
    if (metrics_ != nullptr) metrics_->SetRunning(static_cast<int64_t>(running_.size()));
    if (running_.empty()) continue;
    if (absl::Status st = Step(); !st.ok()) {
      LOG(ERROR) << "decode step of " << running_.size() << " sequences failed: " << st;
      FailAll(st);
    }
    std::erase_if(running_, [](const Sequence& s) { return s.stream == nullptr; });
    running_count_.store(static_cast<int64_t>(running_.size()));
    if (metrics_ != nullptr) metrics_->SetRunning(static_cast<int64_t>(running_.size()));
  }
  FailAll(absl::UnavailableError("decode engine stopped"));
  running_count_.store(0);
}

absl::Status Batcher::Admit(Sequence& s) {
  const DecodeJob& job = s.job;
  if (job.prompt_len <= 0 || job.blocks.empty()) {
    return absl::InvalidArgumentError("decode job without prompt KV");
  }
  if (job.blocks.front().pos_begin() != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV blocks start at position ", job.blocks.front().pos_begin(), ", not 0"));
  }
  TANDEM_ASSIGN_OR_RETURN(s.seq, kv_.AddSequence());
  // The room covers every position ever fed: the prompt, then max_tokens - 1 generated tokens.
  absl::Status st = kv_.Reserve(s.seq, static_cast<int32_t>(job.prompt_len + job.max_tokens));
  if (st.ok()) st = runtime::ImportBlocks(kv_, s.seq, job.blocks);
  if (st.ok() && kv_.Length(s.seq) != job.prompt_len) {
    st = absl::InvalidArgumentError(absl::StrCat("KV blocks hold ", kv_.Length(s.seq),
                                                 " tokens, the job says ", job.prompt_len));
  }
  if (!st.ok()) {
    kv_.RemoveSequence(s.seq);
    s.seq = -1;
    return st;
  }
  s.position = job.prompt_len;
  s.last_token = job.first_token;
  s.completion_tokens = 1;
  // The blocks' bytes are no longer needed; free them before a long generation.
  s.job.blocks.clear();
  s.job.blocks.shrink_to_fit();
  return absl::OkStatus();
}

absl::Status Batcher::Step() {
  const auto start = std::chrono::steady_clock::now();
  const absl::Time now = absl::Now();
  const size_t n = running_.size();
  model::ForwardBatch batch;
  std::vector<kernels::SamplingConfig> configs(n);
  std::vector<uint64_t> rng(n);
  std::vector<int32_t> out(n, -1);
  for (size_t i = 0; i < n; ++i) {
    Sequence& s = running_[i];
    batch.Add(s.seq, {s.last_token}, s.position, /*want_last_logits=*/true);
    configs[i] = s.job.sampling;
    rng[i] = s.job.rng_state;
    if (s.first_step_at == absl::InfinitePast()) s.first_step_at = now;
  }
  TANDEM_ASSIGN_OR_RETURN(model::Logits logits, runner_.Forward(batch, kv_));
  TANDEM_RETURN_IF_ERROR(runtime::SampleRows(runner_.backend(), logits.values, configs,
                                             absl::MakeSpan(rng), absl::MakeSpan(out)));
  steps_.fetch_add(1);
  if (metrics_ != nullptr) {
    metrics_->Step(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
                   static_cast<int64_t>(n));
  }

  const std::vector<int32_t>& eog = runner_.config().eog_token_ids;
  for (size_t i = 0; i < n; ++i) {
    Sequence& s = running_[i];
    s.job.rng_state = rng[i];
    const int32_t token = out[i];
    if (!s.job.ignore_eos && std::find(eog.begin(), eog.end(), token) != eog.end()) {
      Finish(s, DoneEvent("stop", s.completion_tokens));
      continue;
    }
    node_api::DecodeEvent e;
    e.kind = node_api::DecodeEvent::Kind::kToken;
    e.token = token;
    s.stream->Push(std::move(e));
    ++s.completion_tokens;
    if (s.completion_tokens >= s.job.max_tokens) {
      Finish(s, DoneEvent("length", s.completion_tokens));
      continue;
    }
    s.last_token = token;
    ++s.position;
  }
  return absl::OkStatus();
}

void Batcher::Finish(Sequence& s, node_api::DecodeEvent terminal) {
  if (s.stream == nullptr) return;
  if (s.seq >= 0) kv_.RemoveSequence(s.seq);
  s.seq = -1;
  const absl::Time now = absl::Now();
  if (terminal.kind == node_api::DecodeEvent::Kind::kDone) {
    const absl::Time first = s.first_step_at == absl::InfinitePast() ? now : s.first_step_at;
    terminal.timings.decode_queue = Ms(first - s.job.ready_at);
    terminal.timings.decode = Ms(now - first);
  }
  // Room first, then the terminal event: whoever sees the event may reuse the room at once.
  s.job.lease.Release();
  s.stream->Push(std::move(terminal));
  s.stream = nullptr;
}

void Batcher::FailAll(const absl::Status& status) {
  for (Sequence& s : running_) Finish(s, ErrorEvent(status));
}

}  // namespace tandem::decode
