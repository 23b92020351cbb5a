// The grid of cases: SmolLM2-135M's shapes (d=576, ffn=1536, 9/3 heads of 64, vocab 49152) for
// every weight dtype of model.md §3, plus edge cases per op.
#include "tests/consistency/cases.h"

namespace tandem::kernels::testing {

std::vector<std::unique_ptr<OpCase>> AllCases() {
  std::vector<std::unique_ptr<OpCase>> cases;
  struct Shape {
    int64_t in, out;
  };
  const DType weight_types[] = {DType::kF32,  DType::kF16,  DType::kBF16, DType::kQ4_0,
                                DType::kQ4_1, DType::kQ5_0, DType::kQ5_1, DType::kQ8_0,
                                DType::kQ4_K, DType::kQ5_K, DType::kQ6_K};
  for (DType w : weight_types) {
    const bool k_quant = DTypeBlockElems(w) == 256;
    // K-quant rows are 256-element blocks: 576 is not a multiple, so those use 1536 and 512.
    const std::vector<Shape> shapes =
        k_quant ? std::vector<Shape>{{1536, 576}, {512, 192}}
                : std::vector<Shape>{{576, 576}, {576, 192}, {576, 1536}, {1536, 576}};
    for (const Shape& s : shapes) {
      for (int64_t n : {1, 7, 64}) cases.push_back(MakeMatMulCase(w, n, s.in, s.out, false));
      cases.push_back(MakeMatMulCase(w, 7, s.in, s.out, true));
    }
  }
  cases.push_back(MakeMatMulCase(DType::kQ8_0, 1, 576, 49152, false));  // the tied LM head

  cases.push_back(MakeEmbeddingCase(DType::kQ8_0, 49152, 576, 7));
  cases.push_back(MakeEmbeddingCase(DType::kF32, 1000, 576, 64));
  cases.push_back(MakeEmbeddingCase(DType::kQ4_1, 1000, 576, 3));

  for (int64_t n : {1, 7, 64}) cases.push_back(MakeRmsNormCase(n, 576, false));
  cases.push_back(MakeRmsNormCase(7, 576, true));

  for (RopeStyle style : {RopeStyle::kAdjacentPairs, RopeStyle::kHalfSplit}) {
    cases.push_back(MakeRopeCase(style, 7, 9, 64, 64, false));
    cases.push_back(MakeRopeCase(style, 64, 3, 64, 64, false));
    cases.push_back(MakeRopeCase(style, 33, 9, 64, 64, true));
    cases.push_back(MakeRopeCase(style, 5, 3, 64, 32, true));  // partial rotary dims
  }

  for (int64_t n : {1, 7, 64}) cases.push_back(MakeSwiGluCase(n, 1536));

  cases.push_back(MakeSoftmaxCase(1, 49152, 1.0f));
  cases.push_back(MakeSoftmaxCase(7, 100, 0.125f));
  cases.push_back(MakeSoftmaxCase(64, 64, 1.0f));

  // One token's K or V of all KV heads (3 x 64), a few tokens and a 4K-token prompt; d=13 has a
  // tail shorter than a vector.
  for (int64_t n : {1, 37, 4096}) cases.push_back(MakeRowDistanceCase(n, 192));
  cases.push_back(MakeRowDistanceCase(9, 13));

  for (DType pool : {DType::kF32, DType::kF16}) {
    cases.push_back(MakeKvWriteCase(pool, 1, 3, 64));
    cases.push_back(MakeKvWriteCase(pool, 37, 3, 64));
    cases.push_back(MakeKvGatherCase(pool, 1, 3, 64));
    cases.push_back(MakeKvGatherCase(pool, 300, 3, 64));
  }

  for (DType pool : {DType::kF32, DType::kF16}) {
    // A decode step for one sequence, a prefill chunk for another, a mid-sequence chunk.
    cases.push_back(MakePagedAttentionCase(pool, {{37, 1}, {5, 5}, {70, 10}}, "mixed"));
    cases.push_back(MakePagedAttentionCase(pool, {{1, 1}, {16, 1}, {17, 1}, {200, 1}}, "decode"));
    cases.push_back(MakePagedAttentionCase(pool, {{64, 64}}, "prefill"));
  }

  AddAttentionPrefillCases(cases);

  cases.push_back(MakeSampleCase(SampleKind::kGreedy, 49152));
  cases.push_back(MakeSampleCase(SampleKind::kTopKTopP, 49152));
  return cases;
}

}  // namespace tandem::kernels::testing
