// tests/decode_node/decode_test_support.h
//
// What the decode node's tests share: the model, prompts of different lengths, a runner with its
// own KV cache, and a stand-in for the prefill node that runs a prompt on such an engine, samples
// the first token exactly as runtime::Generate() does (same Sample op, same rng), and exports the
// prompt's KV as chained KvBlocks (runtime::ExportBlocks). Header-only; not thread-safe (it drives
// a runner).
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/status/statusor.h"
#include "common/kv_key.h"
#include "common/model_format/gguf.h"
#include "common/model_format/tokenizer.h"
#include "common/status.h"
#include "common/tensor_view.h"
#include "kernels/backend.h"
#include "kernels/model/model_runner.h"
#include "kernels/model/paged_kv_cache.h"
#include "kernels/op.h"
#include "kv_store/kv_block.h"
#include "runtime/block_io.h"
#include "runtime/sampling.h"

namespace tandem::decode::testing {

// Raw prompts of clearly different lengths (a few to ~60 tokens).
inline std::vector<std::string> TestPrompts() {
  return {
      "The capital of France is",
      "Once upon a time, in a small village at the edge of a great forest, there lived",
      "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
      "Photosynthesis is the process by which green plants and some other organisms use "
      "sunlight to synthesize foods from carbon dioxide and water. Photosynthesis in plants "
      "generally involves the green pigment chlorophyll and generates oxygen as a byproduct. "
      "In short, photosynthesis",
      "List three colors:",
  };
}

struct PrefilledPrompt {
  std::vector<kv::KvBlock> blocks;
  int32_t first_token = -1;
  uint64_t rng_after_first = 0;  // the rng state after the first token's sample
};

// A runner and the paged KV cache its calls borrow.
struct TestEngine {
  std::unique_ptr<model::ModelRunner> runner;
  std::unique_ptr<model::PagedKvCache> kv;
};

inline absl::StatusOr<TestEngine> MakeEngine(const format::GgufFile& gguf,
                                             kernels::KernelBackend& backend, int32_t max_seqs,
                                             int32_t capacity_tokens) {
  TestEngine e;
  TANDEM_ASSIGN_OR_RETURN(e.runner, model::ModelRunner::Create(gguf, backend, {}));
  TANDEM_ASSIGN_OR_RETURN(e.kv, model::PagedKvCache::Create(
                                    backend, e.runner->config(),
                                    {.capacity_tokens = capacity_tokens, .max_seqs = max_seqs}));
  return e;
}

// Prefills `prompt` on `engine` in a fresh sequence, samples the first token with `sampling` and
// `seed`, and exports the prompt's KV in `format` (dtype = the cache's KV dtype).
inline absl::StatusOr<PrefilledPrompt> Prefill(TestEngine& engine, const KvFormat& format,
                                               const std::vector<int32_t>& prompt,
                                               const kernels::SamplingConfig& sampling,
                                               uint64_t seed) {
  model::KvCache& cache = *engine.kv;
  TANDEM_ASSIGN_OR_RETURN(model::SeqId seq, cache.AddSequence());
  absl::Cleanup release = [&cache, seq] { cache.RemoveSequence(seq); };
  model::ForwardBatch batch;
  batch.Add(seq, prompt, 0, /*want_last_logits=*/true);
  TANDEM_ASSIGN_OR_RETURN(model::Logits logits, engine.runner->Forward(batch, cache));
  PrefilledPrompt out;
  out.rng_after_first = seed;
  TANDEM_ASSIGN_OR_RETURN(out.first_token,
                          runtime::SampleRow(engine.runner->backend(), logits.values, 0, sampling,
                                             out.rng_after_first));
  TANDEM_ASSIGN_OR_RETURN(out.blocks,
                          runtime::ExportBlocks(cache, seq, format, prompt, 0, format.Root()));
  return out;
}

}  // namespace tandem::decode::testing
