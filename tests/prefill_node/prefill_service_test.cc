// PrefillService on the real SmolLM2 model against runtime::Generate on a separate runner: the
// first token (greedy and seeded sampling) and every KV byte shipped to a TCP receiver equal what
// Generate's prefill computes, also when the second identical request reuses the stored block.
#include "prefill_node/prefill_service.h"

#include <cstdio>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "common/metrics.h"
#include "common/model_format/gguf.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "kernels/model/model_runner.h"
#include "kernels/model/paged_kv_cache.h"
#include "runtime/generator.h"
#include "tests/prefill_node/prefill_test_support.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"

namespace tandem::prefill {
namespace {

using ::tandem::prefill::testing::TestReceiver;

constexpr int kBlockTokens = 256;
constexpr int kPromptTokens = 300;  // one full block (reusable) and a partial one

// K and V of every layer for positions [0, n) of a reference sequence, as host bytes.
struct HostKv {
  std::vector<std::vector<uint8_t>> k,
      v;                  // [layer] -> [n, n_kv_heads, head_dim] in the cache dtype
  int64_t row_bytes = 0;  // bytes of one token of one layer's K
};

class PrefillServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    gguf_ = new format::GgufFile(format::GgufFile::Open(::tandem::testing::ModelPath()).value());
    auto backend = kernels::GetBackend("cpu");
    ASSERT_OK(backend);
    reference_ =
        model::ModelRunner::Create(*gguf_, **backend, model::RunnerOptions{}).value().release();
    reference_kv_ =
        model::PagedKvCache::Create(**backend, reference_->config(), {}).value().release();
    metrics_ = new MetricsRegistry();
    auto service = PrefillService::Create(testing::TestPrefillOptions(kBlockTokens), *metrics_);
    ASSERT_OK(service);
    service_ = service->release();
    receiver_ = new TestReceiver();
    ASSERT_OK(receiver_->Start(service_->kv_format()));
    prompt_ = new std::vector<int32_t>(testing::TestPrompt(*gguf_, kPromptTokens, 11));
  }
  static void TearDownTestSuite() {
    delete receiver_;
    delete service_;
    delete metrics_;
    delete reference_kv_;
    delete reference_;
    delete gguf_;
    delete prompt_;
  }

  static node_api::PrefillRequest Request(const std::string& id) {
    node_api::PrefillRequest r;
    r.request_id = id;
    r.tokens = *prompt_;
    r.sampling.temperature = 0;
    r.target.transport = "tcp";
    r.target.host = "127.0.0.1";
    r.target.port = receiver_->port;
    r.target.node_id = "decode-test";
    r.target.epoch = TestReceiver::kEpoch;
    r.target.reservation_id = 42;
    r.deadline_ms = node_api::NowUnixMs() + 60'000;
    return r;
  }

  // Generate's first token for `prompt` with `sampling` and `seed`.
  static int32_t GenerateFirstToken(const std::vector<int32_t>& prompt,
                                    const kernels::SamplingConfig& sampling, uint64_t seed) {
    runtime::GenerateOptions o;
    o.max_tokens = 1;
    o.ignore_eos = true;
    o.sampling = sampling;
    o.seed = seed;
    auto r = runtime::Generate(*reference_, *reference_kv_, prompt, o);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() && !r->tokens.empty() ? r->tokens[0] : -1;
  }

  // The KV Generate's prefill leaves in the cache: the same Forward call on a fresh sequence.
  static HostKv ReferenceKv() {
    model::PagedKvCache& cache = *reference_kv_;
    const model::SeqId seq = cache.AddSequence().value();
    model::ForwardBatch batch;
    batch.Add(seq, *prompt_, 0, /*want_last_logits=*/true);
    EXPECT_OK(reference_->Forward(batch, cache).status());
    const format::ModelConfig& c = reference_->config();
    HostKv out;
    out.row_bytes = int64_t{c.n_kv_heads} * c.head_dim * 2;  // f16
    const int64_t n = static_cast<int64_t>(prompt_->size());
    for (int l = 0; l < c.n_layers; ++l) {
      out.k.emplace_back(n * out.row_bytes);
      out.v.emplace_back(n * out.row_bytes);
      EXPECT_OK(cache.ReadTokens(
          seq, l, 0,
          TensorView::Contiguous(out.k.back().data(), DType::kF16, {n, c.n_kv_heads, c.head_dim}),
          TensorView::Contiguous(out.v.back().data(), DType::kF16, {n, c.n_kv_heads, c.head_dim})));
    }
    cache.RemoveSequence(seq);
    return out;
  }

  // Received blocks cover the prompt in order, and each layer's K/V bytes equal `kv`'s.
  static void ExpectBlocksEqualKv(const std::vector<kv::KvBlock>& blocks, const HostKv& kv) {
    size_t pos = 0;
    for (const kv::KvBlock& b : blocks) {
      ASSERT_EQ(b.pos_begin(), static_cast<int32_t>(pos));
      for (int i = 0; i < b.num_tokens(); ++i) EXPECT_EQ(b.tokens()[i], (*prompt_)[pos + i]);
      const size_t bytes = static_cast<size_t>(b.num_tokens() * kv.row_bytes);
      for (int l = 0; l < b.num_layers(); ++l) {
        ASSERT_EQ(std::memcmp(b.k(l).data, kv.k[l].data() + pos * kv.row_bytes, bytes), 0)
            << "K of layer " << l << " in the block at " << pos;
        ASSERT_EQ(std::memcmp(b.v(l).data, kv.v[l].data() + pos * kv.row_bytes, bytes), 0)
            << "V of layer " << l << " in the block at " << pos;
      }
      pos += static_cast<size_t>(b.num_tokens());
    }
    EXPECT_EQ(pos, prompt_->size());
  }

  static inline format::GgufFile* gguf_ = nullptr;
  static inline model::ModelRunner* reference_ = nullptr;
  static inline model::PagedKvCache* reference_kv_ = nullptr;
  static inline MetricsRegistry* metrics_ = nullptr;
  static inline PrefillService* service_ = nullptr;
  static inline TestReceiver* receiver_ = nullptr;
  static inline std::vector<int32_t>* prompt_ = nullptr;
};

TEST_F(PrefillServiceTest, GreedyTokenAndKvEqualGenerateWithAndWithoutReuse) {
  const int32_t expected = GenerateFirstToken(*prompt_, kernels::SamplingConfig{}, 0);
  const HostKv reference = ReferenceKv();

  ASSERT_OK_AND_ASSIGN(node_api::PrefillReply first, service_->Prefill(Request("r-cold")));
  EXPECT_EQ(first.first_token, expected);
  EXPECT_EQ(first.rng_state, 0u);  // greedy draws nothing
  EXPECT_EQ(first.prompt_tokens, kPromptTokens);
  EXPECT_EQ(first.cached_tokens, 0);
  EXPECT_EQ(first.attention_method, "dense");
  auto cold = receiver_->sink.Get(first.transfer_id);
  ASSERT_TRUE(cold.has_value());
  ASSERT_OK(*cold->end);
  EXPECT_EQ(cold->meta.request_id, "r-cold");
  EXPECT_EQ(cold->meta.first_token, expected);
  EXPECT_EQ(cold->reservation, 42u);
  ASSERT_EQ(cold->blocks.size(), 2u);  // 256 + 44 tokens
  int64_t bytes = 0;
  for (const kv::KvBlock& b : cold->blocks) bytes += static_cast<int64_t>(b.size());
  EXPECT_EQ(first.transfer_bytes, bytes);
  ExpectBlocksEqualKv(cold->blocks, reference);

  // The full block was stored, so the same prompt now computes only the last 44 tokens.
  ASSERT_OK_AND_ASSIGN(node_api::PrefillReply second, service_->Prefill(Request("r-warm")));
  EXPECT_EQ(second.cached_tokens, kBlockTokens);
  EXPECT_EQ(second.first_token, expected);
  auto warm = receiver_->sink.Get(second.transfer_id);
  ASSERT_TRUE(warm.has_value());
  ASSERT_EQ(warm->blocks.size(), 2u);
  ExpectBlocksEqualKv(warm->blocks, reference);
  for (size_t i = 0; i < warm->blocks.size(); ++i) {
    EXPECT_EQ(warm->blocks[i].key(), cold->blocks[i].key());
    ASSERT_EQ(warm->blocks[i].size(), cold->blocks[i].size());
    EXPECT_EQ(std::memcmp(warm->blocks[i].bytes().data(), cold->blocks[i].bytes().data(),
                          warm->blocks[i].size()),
              0)
        << "block " << i << " differs between the cold and the warm request";
  }
  std::printf("greedy first token %d (Generate: %d)\n", first.first_token, expected);
  std::printf("cold: queue %.1f ms, kv_load %.1f ms, prefill %.1f ms, transfer %.1f ms (%lld B)\n",
              first.timings.queue, first.timings.kv_load, first.timings.prefill,
              first.timings.transfer, static_cast<long long>(first.transfer_bytes));
  std::printf("warm: cached %lld tokens, kv_load %.1f ms, prefill %.1f ms, transfer %.1f ms\n",
              static_cast<long long>(second.cached_tokens), second.timings.kv_load,
              second.timings.prefill, second.timings.transfer);
}

TEST_F(PrefillServiceTest, SeededSamplingEqualsGenerate) {
  // A short prompt keeps the reference Generate calls cheap; a hot temperature makes the seeds
  // pick different tokens, so the rng state really is what decides.
  const std::vector<int32_t> prompt(prompt_->begin(), prompt_->begin() + 48);
  const kernels::SamplingConfig sampling{.temperature = 1.5f, .top_k = 0, .top_p = 1.0f};
  std::set<int32_t> distinct;
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    const int32_t expected = GenerateFirstToken(prompt, sampling, seed);
    node_api::PrefillRequest r = Request("r-seeded");
    r.tokens = prompt;
    r.sampling.temperature = sampling.temperature;
    r.sampling.top_k = sampling.top_k;
    r.sampling.top_p = sampling.top_p;
    r.sampling.rng_state = seed;
    ASSERT_OK_AND_ASSIGN(node_api::PrefillReply reply, service_->Prefill(r));
    EXPECT_EQ(reply.first_token, expected) << "seed " << seed;
    uint64_t after = seed;
    kernels::NextUniform(after);  // one draw per sampled token
    EXPECT_EQ(reply.rng_state, after) << "seed " << seed;
    distinct.insert(reply.first_token);
    std::printf("seed %llu: first token %d (Generate: %d)\n", static_cast<unsigned long long>(seed),
                reply.first_token, expected);
  }
  EXPECT_GT(distinct.size(), 1u) << "every seed sampled the same token";
}

TEST_F(PrefillServiceTest, RequestPicksTheAttentionMethod) {
  node_api::PrefillRequest r = Request("r-sale");
  r.sparse_prefill = "sale";
  r.store_kv = false;
  ASSERT_OK_AND_ASSIGN(node_api::PrefillReply reply, service_->Prefill(r));
  EXPECT_EQ(reply.attention_method, "sale");
  EXPECT_GT(reply.attention_density, 0.0);
  EXPECT_LE(reply.attention_density, 1.0);
  std::printf("sale: density %.3f, first token %d\n", reply.attention_density, reply.first_token);
}

// Two requests sharing a two-block prefix, queued behind a third while the model is busy: the
// tier lookups of both ran when they arrived (nothing stored yet), yet the second reuses the
// blocks the first stored, because the worker looks in memory again when it starts a request.
TEST_F(PrefillServiceTest, QueuedRequestsReuseWhatTheOnesAheadStored) {
  const std::vector<int32_t> shared = testing::TestPrompt(*gguf_, 2 * kBlockTokens + 20, 21);
  node_api::PrefillRequest busy = Request("r-busy");
  busy.tokens = testing::TestPrompt(*gguf_, 3 * kBlockTokens, 22);
  node_api::PrefillRequest first = Request("r-first");
  first.tokens = shared;
  node_api::PrefillRequest second = Request("r-second");
  second.tokens.assign(shared.begin(), shared.begin() + 2 * kBlockTokens);
  const std::vector<int32_t> tail = testing::TestPrompt(*gguf_, 12, 23);
  second.tokens.insert(second.tokens.end(), tail.begin(), tail.end());

  auto wait_load = [](const std::function<bool(const node_api::NodeStatus&)>& reached) {
    const absl::Time give_up = absl::Now() + absl::Seconds(60);
    while (!reached(service_->Status(0))) {
      ASSERT_LT(absl::Now(), give_up) << "the scheduler never reached the expected load";
      absl::SleepFor(absl::Milliseconds(2));
    }
  };
  absl::StatusOr<node_api::PrefillReply> replies[3];
  std::thread t_busy([&] { replies[0] = service_->Prefill(busy); });
  wait_load([](const node_api::NodeStatus& s) { return s.load.running == 1; });
  std::thread t_first([&] { replies[1] = service_->Prefill(first); });
  wait_load([](const node_api::NodeStatus& s) { return s.load.waiting == 1; });
  std::thread t_second([&] { replies[2] = service_->Prefill(second); });
  t_busy.join();
  t_first.join();
  t_second.join();
  for (const auto& r : replies) ASSERT_OK(r.status());
  EXPECT_EQ(replies[1]->cached_tokens, 0);
  EXPECT_EQ(replies[2]->cached_tokens, 2 * kBlockTokens);
  std::printf("queued behind a busy worker: first cached %lld, second cached %lld tokens\n",
              static_cast<long long>(replies[1]->cached_tokens),
              static_cast<long long>(replies[2]->cached_tokens));
}

TEST_F(PrefillServiceTest, InvalidRequestsNameTheField) {
  BadField bad;
  node_api::PrefillRequest r = Request("r-bad");
  r.tokens.clear();
  EXPECT_THAT(service_->Prefill(r),
              ::tandem::testing::StatusIs(absl::StatusCode::kInvalidArgument, "tokens"));
  r = Request("r-bad");
  r.tokens[3] = service_->model_config().vocab_size;
  EXPECT_FALSE(service_->ValidateRequest(r, &bad).ok());
  EXPECT_EQ(bad.param, "tokens");
  r = Request("r-bad");
  r.tokens.assign(static_cast<size_t>(service_->model_config().context_length), 1);
  EXPECT_FALSE(service_->ValidateRequest(r, &bad).ok());
  EXPECT_EQ(bad.code, "context_length_exceeded");
  r = Request("r-bad");
  r.sparse_prefill = "flash";
  EXPECT_FALSE(service_->ValidateRequest(r, &bad).ok());
  EXPECT_EQ(bad.param, "sparse_prefill");
  r = Request("r-bad");
  r.target.transport = "carrier-pigeon";
  EXPECT_THAT(service_->Prefill(r),
              ::tandem::testing::StatusIs(absl::StatusCode::kInvalidArgument, "target.transport"));
}

}  // namespace
}  // namespace tandem::prefill
