// tests/consistency/cases.h
//
// Factories of the harness's OpCases, one per op family (cases_*.cc); AllCases() in all_cases.cc
// lists the grid of variables each is instantiated with. Cases are plain owned objects.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/op.h"
#include "tests/consistency/op_case.h"

namespace tandem::kernels::testing {

std::unique_ptr<OpCase> MakeMatMulCase(DType w, int64_t n, int64_t in, int64_t out,
                                       bool accumulate);
std::unique_ptr<OpCase> MakeEmbeddingCase(DType table, int64_t vocab, int64_t d, int64_t n);
std::unique_ptr<OpCase> MakeRmsNormCase(int64_t n, int64_t d, bool in_place);
// positions: "seq" = 0..n-1, "large" = random in [-8192, 8192] including both extremes.
std::unique_ptr<OpCase> MakeRopeCase(RopeStyle style, int64_t n, int64_t heads, int64_t head_dim,
                                     int n_rot, bool large_positions);
std::unique_ptr<OpCase> MakeSwiGluCase(int64_t n, int64_t f);
std::unique_ptr<OpCase> MakeSoftmaxCase(int64_t n, int64_t d, float scale);
std::unique_ptr<OpCase> MakeRowDistanceCase(int64_t n, int64_t d);
std::unique_ptr<OpCase> MakeKvWriteCase(DType pool, int64_t n, int64_t kv_heads, int64_t head_dim);
std::unique_ptr<OpCase> MakeKvGatherCase(DType pool, int64_t n, int64_t kv_heads, int64_t head_dim);

// One sequence of a paged-attention batch: `len` positions already in the cache (including the
// queried ones) and `queries` query tokens at positions len-queries .. len-1.
struct SeqSpec {
  int32_t len;
  int32_t queries;
};
std::unique_ptr<OpCase> MakePagedAttentionCase(DType pool, std::vector<SeqSpec> seqs,
                                               const char* label);

// AttentionPrefill over contiguous K/V: n_kv keys at positions 0..n_kv-1, n_q queries at the end.
struct PrefillShape {
  int64_t n_q, n_kv, heads, kv_heads, head_dim;
};
std::unique_ptr<OpCase> MakeAttentionPrefillCase(const SparseConfig& sparse,
                                                 const PrefillShape& shape, const char* label);
// The grid of attention_prefill cases (dense, sale, power at hd 64 and 128, GQA, several lengths).
void AddAttentionPrefillCases(std::vector<std::unique_ptr<OpCase>>& cases);

enum class SampleKind { kGreedy, kTopKTopP };
std::unique_ptr<OpCase> MakeSampleCase(SampleKind kind, int64_t vocab);

}  // namespace tandem::kernels::testing
