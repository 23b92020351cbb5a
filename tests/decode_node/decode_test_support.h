// tests/decode_node/decode_test_support.h
//
// What the decode node's tests share: the model, prompts of different lengths, and a stand-in for
// the prefill node that runs a prompt on its own ModelRunner, samples the first token exactly as
// model::Generate() does (same Sample op, same rng), and exports the prompt's KV as chained
// KvBlocks (PagedKvCache::ReadTokens -> KvBlock::Build). Header-only; not thread-safe (it drives a
// runner).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/status/statusor.h"
#include "common/kv_key.h"
#include "common/model_format/gguf.h"
#include "common/model_format/tokenizer.h"
#include "common/status.h"
#include "common/tensor_view.h"
#include "kernels/model/model_runner.h"
#include "kernels/op.h"
#include "kv_store/kv_block.h"

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

// Prefills `prompt` on `runner` in a fresh sequence, samples the first token with `sampling` and
// `seed`, and exports the prompt's KV in `format` (dtype = the runner's KV dtype).
inline absl::StatusOr<PrefilledPrompt> Prefill(model::ModelRunner& runner, const KvFormat& format,
                                               const std::vector<int32_t>& prompt,
                                               const kernels::SamplingConfig& sampling,
                                               uint64_t seed) {
  model::PagedKvCache& cache = runner.kv_cache();
  TANDEM_ASSIGN_OR_RETURN(model::SeqId seq, cache.AddSequence());
  absl::Cleanup release = [&cache, seq] { cache.RemoveSequence(seq); };
  model::ForwardBatch batch;
  batch.Add(seq, prompt, 0, /*want_last_logits=*/true);
  TANDEM_ASSIGN_OR_RETURN(model::Logits logits, runner.Forward(batch));
  PrefilledPrompt out;
  out.rng_after_first = seed;
  TANDEM_RETURN_IF_ERROR(runner.backend().Run(kernels::SampleParams{
      .logits = logits.values.Rows(0, 1),
      .configs = absl::MakeConstSpan(&sampling, 1),
      .rng_states = absl::MakeSpan(&out.rng_after_first, 1),
      .out_tokens = absl::MakeSpan(&out.first_token, 1)}));
  TANDEM_RETURN_IF_ERROR(runner.backend().Synchronize());

  const int layers = runner.config().n_layers;
  const TensorView pool = cache.k_pool(0);  // [pages, page_tokens, n_kv_heads, head_dim]
  const int64_t heads = pool.shape[2];
  const int64_t head_dim = pool.shape[3];
  const DType dtype = cache.options().dtype;
  const int64_t row_bytes = DTypeRowBytes(dtype, heads * head_dim);
  const int32_t n = static_cast<int32_t>(prompt.size());
  BlockKey parent = format.Root();
  for (int32_t begin = 0; begin < n; begin += format.block_tokens) {
    const int32_t count = std::min(format.block_tokens, n - begin);
    std::vector<std::vector<uint8_t>> k_bytes(layers), v_bytes(layers);
    std::vector<TensorView> k(layers), v(layers);
    for (int l = 0; l < layers; ++l) {
      k_bytes[l].resize(static_cast<size_t>(row_bytes * count));
      v_bytes[l].resize(static_cast<size_t>(row_bytes * count));
      k[l] = TensorView::Contiguous(k_bytes[l].data(), dtype, {count, heads, head_dim});
      v[l] = TensorView::Contiguous(v_bytes[l].data(), dtype, {count, heads, head_dim});
      TANDEM_RETURN_IF_ERROR(cache.ReadTokens(seq, l, begin, k[l], v[l]));
    }
    TANDEM_ASSIGN_OR_RETURN(
        kv::KvBlock block,
        kv::KvBlock::Build(format, parent,
                           absl::MakeConstSpan(prompt).subspan(begin, count), begin, k, v));
    parent = block.key();
    out.blocks.push_back(std::move(block));
  }
  return out;
}

}  // namespace tandem::decode::testing
