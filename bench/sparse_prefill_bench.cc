// sparse_prefill_bench: SALE and PowerAttention prefill against our dense prefill attention on the
// real model, same prompts, same run. For each length (real-looking generated text,
// tests/model/long_text.h), one fresh sequence per configuration, best of --repeats:
//   prefill_attention_N  candidate = seconds in attention ops of the method,
//                        baseline = seconds of dense AttentionPrefill (dense_op)
//   prefill_total_N      candidate = whole-prefill seconds of the method, baseline = dense_op's
//   prefill_*_N dense_op against dense_paged: our prefill kernel against PagedAttention (the
//   runner's
//                        default dense path)
// ratio = baseline / candidate (> 1: faster), density = computed / causal blocks.
//
//   build/bench/sparse_prefill_bench [--lengths 2048,4096,8192] [--repeats 1] [--threads 2]
//       [--max_batch_tokens 1024] [--sale_threshold 0.008]
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/flags.h"
#include "common/model_format/gguf.h"
#include "common/model_format/tokenizer.h"
#include "kernels/backend.h"
#include "kernels/model/flags.h"
#include "kernels/model/model_runner.h"
#include "runtime/flags.h"
#include "tests/model/long_text.h"

TANDEM_FLAG(std::string, lengths, "2048,4096,8192", "Prompt lengths in tokens, comma-separated.");
TANDEM_FLAG(int32_t, repeats, 1, "Measurements per configuration; the best is reported.");

namespace {

using namespace tandem;  // NOLINT: a main file

struct Result {
  double attention = 1e30, total = 1e30, density = 1.0;
};

Result Measure(const format::GgufFile& gguf, kernels::KernelBackend& backend,
               model::RunnerOptions options, const model::KvCacheOptions& kv_options,
               const std::vector<int32_t>& tokens) {
  Result best;
  auto runner = model::ModelRunner::Create(gguf, backend, options);
  if (!runner.ok()) {
    std::fprintf(stderr, "sparse_prefill_bench: %s\n", runner.status().ToString().c_str());
    std::exit(1);
  }
  auto kv = model::CreateKvCache(backend, (*runner)->config(), kv_options);
  if (!kv.ok()) {
    std::fprintf(stderr, "sparse_prefill_bench: %s\n", kv.status().ToString().c_str());
    std::exit(1);
  }
  for (int rep = 0; rep < GetFlag(FLAGS_repeats); ++rep) {
    const model::SeqId seq = (*kv)->AddSequence().value();
    model::ForwardBatch batch;
    batch.Add(seq, tokens, 0, true);
    const auto t0 = std::chrono::steady_clock::now();
    auto logits = (*runner)->Forward(batch, **kv);
    const double total =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!logits.ok()) {
      std::fprintf(stderr, "sparse_prefill_bench: %s\n", logits.status().ToString().c_str());
      std::exit(1);
    }
    best.total = std::min(best.total, total);
    best.attention = std::min(best.attention, logits->attention.attention_seconds);
    best.density = logits->attention.density();
    (*kv)->RemoveSequence(seq);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  ParseFlagsOrExit(argc, argv, "Usage: sparse_prefill_bench [flags]");
  kernels::SetCpuThreads(GetFlag(model::FLAGS_threads));
  auto gguf = format::GgufFile::Open(GetFlag(model::FLAGS_model));
  auto backend = kernels::GetBackend(GetFlag(runtime::FLAGS_backend));
  auto options = model::RunnerOptionsFromFlags();
  auto kv_options = model::KvCacheOptionsFromFlags();
  if (!gguf.ok() || !backend.ok() || !options.ok() || !kv_options.ok()) {
    std::fprintf(stderr, "sparse_prefill_bench: bad --model, --backend or runner flags\n");
    return 1;
  }
  auto tokenizer = format::Tokenizer::FromGguf(*gguf);
  if (!tokenizer.ok()) return 1;
  const kernels::SparseConfig flags_config = options->prefill_attention;
  for (absl::string_view part : absl::StrSplit(GetFlag(FLAGS_lengths), ',')) {
    int32_t n = 0;
    if (!absl::SimpleAtoi(part, &n) || n <= 1) {
      std::fprintf(stderr, "sparse_prefill_bench: bad --lengths entry\n");
      return 1;
    }
    std::vector<int32_t> tokens = tokenizer->Encode(testing::LongText(int64_t{n} * 6, 7), false);
    if (static_cast<int32_t>(tokens.size()) < n) return 1;
    tokens.resize(n);
    tokens[0] = 1;  // bos
    std::vector<std::pair<std::string, Result>> results;
    auto run = [&](const std::string& name, kernels::SparseMethod method, bool dense_op) {
      model::RunnerOptions o = *options;
      o.prefill_attention = flags_config;
      o.prefill_attention.method = method;
      o.dense_prefill_kernel = dense_op;
      results.emplace_back(name, Measure(*gguf, **backend, o, *kv_options, tokens));
      std::fprintf(stderr, "%s n=%d attention %.3f s total %.3f s density %.3f\n", name.c_str(), n,
                   results.back().second.attention, results.back().second.total,
                   results.back().second.density);
    };
    run("dense_op", kernels::SparseMethod::kDense, true);
    run("dense_paged", kernels::SparseMethod::kDense, false);
    run("sale", kernels::SparseMethod::kSale, false);
    run("power", kernels::SparseMethod::kPowerAttention, false);
    const Result& base = results[0].second;
    for (size_t i = 1; i < results.size(); ++i) {
      const Result& r = results[i].second;
      std::printf(
          "BENCH prefill_attention_%d %s candidate=%.4f baseline=%.4f ratio=%.3f "
          "density=%.4f\n",
          n, results[i].first.c_str(), r.attention, base.attention, base.attention / r.attention,
          r.density);
      std::printf(
          "BENCH prefill_total_%d %s candidate=%.4f baseline=%.4f ratio=%.3f "
          "density=%.4f\n",
          n, results[i].first.c_str(), r.total, base.total, base.total / r.total, r.density);
    }
    std::fflush(stdout);
  }
  return 0;
}
