// The decode engine's continuous batching (ARCHITECTURE.md §11, decode_node): prompts of different
// lengths join a running batch at different steps, and each one's greedy tokens equal what
// runtime::Generate() produces for it alone in one process.
#include "decode_node/batcher.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/model_format/gguf.h"
#include "common/model_format/tokenizer.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "runtime/generator.h"
#include "tests/decode_node/decode_test_support.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"

namespace tandem::decode {
namespace {

using node_api::DecodeEvent;

// Drains one stream on its own thread and counts its tokens, so the test can wait for "job i has
// produced k tokens" before the next job joins.
class StreamReader {
 public:
  explicit StreamReader(std::shared_ptr<DecodeStream> stream) : stream_(std::move(stream)) {
    thread_ = std::thread([this] {
      std::vector<DecodeEvent> events;
      while (stream_->Pop(&events)) {
        absl::MutexLock lock(&mu_);
        for (DecodeEvent& e : events) {
          if (e.kind == DecodeEvent::Kind::kToken) {
            tokens_.push_back(e.token);
          } else {
            terminal_ = e;
            ended_ = true;
          }
        }
        events.clear();
      }
    });
  }
  ~StreamReader() { thread_.join(); }

  // Polls the condition until a deadline (no sleeps): true once `n` tokens arrived or it ended.
  bool WaitTokens(size_t n, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto ready = [this, n]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return ended_ || tokens_.size() >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  }
  bool WaitEnd(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(&ended_), timeout);
  }
  std::vector<int32_t> tokens() {
    absl::MutexLock lock(&mu_);
    return tokens_;
  }
  DecodeEvent terminal() {
    absl::MutexLock lock(&mu_);
    return terminal_;
  }

 private:
  std::shared_ptr<DecodeStream> stream_;
  absl::Mutex mu_;
  std::vector<int32_t> tokens_ ABSL_GUARDED_BY(mu_);
  DecodeEvent terminal_ ABSL_GUARDED_BY(mu_);
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

TEST(BatcherTest, BatchedGreedyDecodeEqualsSequentialGenerate) {
  ASSERT_OK_AND_ASSIGN(format::GgufFile gguf, format::GgufFile::Open(tandem::testing::ModelPath()));
  ASSERT_OK_AND_ASSIGN(format::Tokenizer tokenizer, format::Tokenizer::FromGguf(gguf));
  ASSERT_OK_AND_ASSIGN(kernels::KernelBackend * backend, kernels::GetBackend("cpu"));
  ASSERT_OK_AND_ASSIGN(decode::testing::TestEngine reference,
                       decode::testing::MakeEngine(gguf, *backend, 8, 2048));
  ASSERT_OK_AND_ASSIGN(decode::testing::TestEngine engine,
                       decode::testing::MakeEngine(gguf, *backend, 8, 2048));

  KvFormat format;
  format.dtype = engine.kv->options().dtype;
  format.block_tokens = 16;  // several blocks per prompt, most with a partial tail
  constexpr int32_t kMaxTokens = 20;
  const kernels::SamplingConfig greedy{};

  // Sequential reference, then each prompt's KV and first token as a prefill node would ship them.
  // Each job's lease records its reservation id when the engine frees it.
  absl::Mutex ended_mu;
  std::vector<uint64_t> ended;
  std::vector<std::vector<int32_t>> expected;
  std::vector<DecodeJob> jobs;
  for (const std::string& text : decode::testing::TestPrompts()) {
    const std::vector<int32_t> prompt = tokenizer.Encode(text, /*parse_special=*/false);
    runtime::GenerateOptions g;
    g.max_tokens = kMaxTokens;
    g.ignore_eos = true;  // every job runs all its steps, so the batch really overlaps
    ASSERT_OK_AND_ASSIGN(runtime::GenerateResult result,
                         runtime::Generate(*reference.runner, *reference.kv, prompt, g));
    expected.push_back(result.tokens);
    ASSERT_OK_AND_ASSIGN(decode::testing::PrefilledPrompt p,
                         decode::testing::Prefill(reference, format, prompt, greedy, 0));
    ASSERT_EQ(p.first_token, result.tokens.front()) << text;
    DecodeJob job;
    job.request_id = "r-" + std::to_string(jobs.size());
    job.lease = ReservationLease(jobs.size() + 1, [&ended_mu, &ended](uint64_t id) {
      absl::MutexLock lock(&ended_mu);
      ended.push_back(id);
    });
    job.prompt_len = static_cast<int32_t>(prompt.size());
    job.blocks = std::move(p.blocks);
    job.first_token = p.first_token;
    job.rng_state = p.rng_after_first;
    job.max_tokens = kMaxTokens;
    job.ignore_eos = true;
    jobs.push_back(std::move(job));
  }

  Batcher batcher(*engine.runner, *engine.kv, nullptr);
  // Job 0 alone, job 1 after 3 tokens of job 0, job 2 after 2 more of job 1, jobs 3 and 4
  // together after 4 more of job 2: each joins a batch already in flight.
  std::vector<std::unique_ptr<StreamReader>> readers;
  readers.push_back(std::make_unique<StreamReader>(batcher.Submit(std::move(jobs[0]))));
  ASSERT_TRUE(readers[0]->WaitTokens(3, absl::Seconds(60)));
  readers.push_back(std::make_unique<StreamReader>(batcher.Submit(std::move(jobs[1]))));
  ASSERT_TRUE(readers[1]->WaitTokens(2, absl::Seconds(60)));
  readers.push_back(std::make_unique<StreamReader>(batcher.Submit(std::move(jobs[2]))));
  ASSERT_TRUE(readers[2]->WaitTokens(4, absl::Seconds(60)));
  for (size_t i = 3; i < jobs.size(); ++i) {
    readers.push_back(std::make_unique<StreamReader>(batcher.Submit(std::move(jobs[i]))));
  }

  int agree = 0, total = 0, rows_identical = 0;
  for (size_t i = 0; i < readers.size(); ++i) {
    ASSERT_TRUE(readers[i]->WaitEnd(absl::Seconds(60))) << "job " << i;
    const DecodeEvent done = readers[i]->terminal();
    EXPECT_EQ(done.kind, DecodeEvent::Kind::kDone) << done.message;
    EXPECT_EQ(done.finish_reason, "length");
    EXPECT_EQ(done.completion_tokens, kMaxTokens);
    // The first token came from the prefill node; the engine streams the rest.
    std::vector<int32_t> got = {expected[i].front()};
    for (int32_t t : readers[i]->tokens()) got.push_back(t);
    int same = 0;
    for (size_t t = 0; t < std::min(got.size(), expected[i].size()); ++t) {
      if (got[t] != expected[i][t]) break;
      ++same;
    }
    agree += same;
    total += static_cast<int>(expected[i].size());
    rows_identical += got == expected[i];
    EXPECT_EQ(got, expected[i]) << "prompt " << i;
  }
  const int64_t generated = total - static_cast<int64_t>(readers.size());
  std::printf("BATCHED_GREEDY prompts=%zu tokens_agree=%d/%d identical_prompts=%d/%zu "
              "engine_steps=%lld engine_tokens=%lld\n",
              readers.size(), agree, total, rows_identical, readers.size(),
              static_cast<long long>(batcher.steps()), static_cast<long long>(generated));
  // Fewer steps than generated tokens: rows really shared forward passes.
  EXPECT_LT(batcher.steps(), generated);
  absl::MutexLock lock(&ended_mu);
  EXPECT_EQ(ended.size(), readers.size());
  EXPECT_EQ(engine.kv->free_pages(), engine.kv->num_pages());  // every sequence left
}

// Why batched decode can be token-identical at all: on this backend a row's logits do not depend
// on the other rows of the step (the matmul tiles 4 activation rows with per-row accumulators;
// attention is per query). Checked bit for bit, so a kernel change that breaks it shows here
// before it shows as a rare token flip.
TEST(BatcherTest, BatchedRowsGiveBitIdenticalLogits) {
  ASSERT_OK_AND_ASSIGN(format::GgufFile gguf, format::GgufFile::Open(tandem::testing::ModelPath()));
  ASSERT_OK_AND_ASSIGN(format::Tokenizer tokenizer, format::Tokenizer::FromGguf(gguf));
  ASSERT_OK_AND_ASSIGN(kernels::KernelBackend * backend, kernels::GetBackend("cpu"));
  ASSERT_OK_AND_ASSIGN(decode::testing::TestEngine engine,
                       decode::testing::MakeEngine(gguf, *backend, 8, 2048));
  model::ModelRunner* runner = engine.runner.get();
  model::PagedKvCache& kv = *engine.kv;
  const std::vector<std::string> texts = decode::testing::TestPrompts();
  std::vector<model::SeqId> seqs;
  std::vector<int32_t> lengths;
  model::ForwardBatch step;
  for (const std::string& text : texts) {
    const std::vector<int32_t> prompt = tokenizer.Encode(text, false);
    ASSERT_OK_AND_ASSIGN(model::SeqId seq, kv.AddSequence());
    model::ForwardBatch prefill;
    prefill.Add(seq, prompt, 0, false);
    ASSERT_OK(runner->Forward(prefill, kv));
    step.Add(seq, {prompt.back()}, static_cast<int32_t>(prompt.size()), true);
    seqs.push_back(seq);
    lengths.push_back(static_cast<int32_t>(prompt.size()));
  }
  ASSERT_OK_AND_ASSIGN(model::Logits batched_logits, runner->Forward(step, kv));
  ASSERT_OK_AND_ASSIGN(std::vector<float> batched, batched_logits.ToHost(*backend));
  const int64_t vocab = runner->config().vocab_size;
  int identical_rows = 0;
  double max_abs_diff = 0;
  for (size_t i = 0; i < seqs.size(); ++i) {
    model::ForwardBatch single;  // same token, same position: rewinds and rewrites the same KV
    single.Add(seqs[i], {step.tokens[i]}, lengths[i], true);
    ASSERT_OK_AND_ASSIGN(model::Logits single_logits, runner->Forward(single, kv));
    ASSERT_OK_AND_ASSIGN(std::vector<float> row, single_logits.ToHost(*backend));
    bool same = true;
    for (int64_t v = 0; v < vocab; ++v) {
      const float b = batched[i * vocab + v];
      max_abs_diff = std::max(max_abs_diff, static_cast<double>(std::abs(b - row[v])));
      same = same && b == row[v];
    }
    identical_rows += same;
  }
  std::printf("BATCHED_ROWS rows=%zu bit_identical=%d max_abs_diff=%g\n", seqs.size(),
              identical_rows, max_abs_diff);
  EXPECT_EQ(identical_rows, static_cast<int>(seqs.size()));
}

TEST(BatcherTest, CancelledJobLeavesTheBatch) {
  ASSERT_OK_AND_ASSIGN(format::GgufFile gguf, format::GgufFile::Open(tandem::testing::ModelPath()));
  ASSERT_OK_AND_ASSIGN(format::Tokenizer tokenizer, format::Tokenizer::FromGguf(gguf));
  ASSERT_OK_AND_ASSIGN(kernels::KernelBackend * backend, kernels::GetBackend("cpu"));
  ASSERT_OK_AND_ASSIGN(decode::testing::TestEngine engine,
                       decode::testing::MakeEngine(gguf, *backend, 2, 1024));
  KvFormat format;
  format.dtype = engine.kv->options().dtype;
  const std::vector<int32_t> prompt = tokenizer.Encode("Count to a hundred: 1, 2, 3,", false);
  ASSERT_OK_AND_ASSIGN(decode::testing::PrefilledPrompt p,
                       decode::testing::Prefill(engine, format, prompt, {}, 0));
  DecodeJob job;
  job.prompt_len = static_cast<int32_t>(prompt.size());
  job.blocks = std::move(p.blocks);
  job.first_token = p.first_token;
  job.max_tokens = 500;
  job.ignore_eos = true;
  auto cancelled = job.cancelled;
  Batcher batcher(*engine.runner, *engine.kv, nullptr);
  StreamReader reader(batcher.Submit(std::move(job)));
  ASSERT_TRUE(reader.WaitTokens(2, absl::Seconds(60)));
  cancelled->store(true);
  ASSERT_TRUE(reader.WaitEnd(absl::Seconds(60)));
  EXPECT_EQ(reader.terminal().kind, DecodeEvent::Kind::kError);
  EXPECT_EQ(reader.terminal().http_status, 499);
  EXPECT_LT(reader.tokens().size(), 499u);
  EXPECT_EQ(engine.kv->free_pages(), engine.kv->num_pages());
}

TEST(BatcherTest, JobSubmittedAfterStopStillEndsItsReservation) {
  ASSERT_OK_AND_ASSIGN(format::GgufFile gguf, format::GgufFile::Open(tandem::testing::ModelPath()));
  ASSERT_OK_AND_ASSIGN(kernels::KernelBackend * backend, kernels::GetBackend("cpu"));
  ASSERT_OK_AND_ASSIGN(decode::testing::TestEngine engine,
                       decode::testing::MakeEngine(gguf, *backend, 1, 64));
  absl::Mutex mu;
  std::vector<uint64_t> ended;
  Batcher batcher(*engine.runner, *engine.kv, nullptr);
  batcher.Stop();
  // The decode service hands the reservation to the engine as it submits; an HTTP call racing
  // the shutdown submits after Stop() and must still get its reservation freed.
  DecodeJob job;
  job.lease = ReservationLease(42, [&](uint64_t reservation_id) {
    absl::MutexLock lock(&mu);
    ended.push_back(reservation_id);
  });
  job.prompt_len = 4;
  job.first_token = 1;
  job.max_tokens = 8;
  std::shared_ptr<DecodeStream> stream = batcher.Submit(std::move(job));
  std::vector<DecodeEvent> events;
  ASSERT_TRUE(stream->Pop(&events));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, DecodeEvent::Kind::kError);
  EXPECT_EQ(events[0].http_status, 503);
  EXPECT_TRUE(events[0].retryable);
  absl::MutexLock lock(&mu);
  EXPECT_EQ(ended, std::vector<uint64_t>{42});
  std::printf("STOPPED engine: job ended with %d '%s', released reservation ids=%zu\n",
              events[0].http_status, events[0].message.c_str(), ended.size());
}

}  // namespace
}  // namespace tandem::decode
