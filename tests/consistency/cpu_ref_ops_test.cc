// The cpu_ref backend against hand-computed values of op.h's spec, its argument validation, and the
// backend registry. (backend_ops_test then holds every other backend to cpu_ref.)
#include <cmath>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "tests/support/status_matchers.h"

namespace tandem::kernels {
namespace {

using ::tandem::testing::StatusIs;

KernelBackend& Ref() { return **GetBackend("cpu_ref"); }

TensorView F32(std::vector<float>& v, std::initializer_list<int64_t> shape) {
  return TensorView::Contiguous(v.data(), DType::kF32, shape);
}
TensorView I32(std::vector<int32_t>& v, std::initializer_list<int64_t> shape) {
  return TensorView::Contiguous(v.data(), DType::kI32, shape);
}

TEST(CpuRefTest, MatMulAndAccumulate) {
  std::vector<float> w = {1, 2, 3, -1, 0, 1}, x = {1, 1, 2, 0, 1, 0}, y = {10, 20, 30, 40};
  MatMulParams p{.w = F32(w, {2, 3}), .x = F32(x, {2, 3}), .y = F32(y, {2, 2})};
  ASSERT_OK(Ref().Run(p));
  EXPECT_THAT(y, ::testing::ElementsAre(9, 1, 2, 0));
  p.accumulate = true;
  ASSERT_OK(Ref().Run(p));
  EXPECT_THAT(y, ::testing::ElementsAre(18, 2, 4, 0));
}

TEST(CpuRefTest, MatMulRejectsMismatchNamingBothFields) {
  std::vector<float> w(576 * 2), x(577), y(2);
  MatMulParams p{.w = F32(w, {2, 576}), .x = F32(x, {1, 577}), .y = F32(y, {1, 2})};
  EXPECT_FALSE(Ref().Supports(p));
  EXPECT_THAT(Ref().Run(p), StatusIs(absl::StatusCode::kInvalidArgument,
                                     "matmul: x.shape[1]=577 != w.shape[1]=576"));
  p.x = F32(x, {1, 576});
  p.y = F32(x, {1, 2});  // aliasing x
  EXPECT_THAT(Ref().Run(p), StatusIs(absl::StatusCode::kInvalidArgument, "overlaps"));
}

TEST(CpuRefTest, RejectsDeviceMemoryAndWrongDtype) {
  std::vector<float> x(4), w(2);
  RmsNormParams p{.x = F32(x, {2, 2}), .weight = F32(w, {2}), .out = F32(x, {2, 2})};
  EXPECT_TRUE(Ref().Supports(p));
  p.weight.dtype = DType::kF16;
  EXPECT_THAT(Ref().Run(p), StatusIs(absl::StatusCode::kInvalidArgument, "weight.dtype=f16"));
  p.weight.dtype = DType::kF32;
  p.x.device = Device{DeviceKind::kCuda, 0};
  EXPECT_FALSE(Ref().Supports(p));
}

TEST(CpuRefTest, EmbeddingRejectsOutOfRangeIds) {
  std::vector<float> table(4 * 3), out(2 * 3);
  std::vector<int32_t> ids = {1, 4};
  EmbeddingParams p{.table = F32(table, {4, 3}), .ids = I32(ids, {2}), .out = F32(out, {2, 3})};
  EXPECT_TRUE(Ref().Supports(p));  // data-dependent checks happen in Run only
  EXPECT_THAT(Ref().Run(p),
              StatusIs(absl::StatusCode::kInvalidArgument, "embedding: ids[1]=4 not in [0, 4)"));
}

TEST(CpuRefTest, RmsNormInPlace) {
  std::vector<float> x = {3, 4}, w = {1, 2};
  RmsNormParams p{.x = F32(x, {1, 2}), .weight = F32(w, {2}), .out = F32(x, {1, 2}), .eps = 0};
  ASSERT_OK(Ref().Run(p));
  const float rms = std::sqrt(12.5f);
  EXPECT_FLOAT_EQ(x[0], 3 / rms);
  EXPECT_FLOAT_EQ(x[1], 8 / rms);
}

TEST(CpuRefTest, RopeStylesPairDifferentElements) {
  // One head of 4 at position 1, base 10000, n_rot 4: pair 0 turns by 1 rad, pair 1 by 0.01 rad.
  for (RopeStyle style : {RopeStyle::kAdjacentPairs, RopeStyle::kHalfSplit}) {
    std::vector<float> x = {1, 0, 1, 0};
    std::vector<int32_t> pos = {1};
    RopeParams p{.x = F32(x, {1, 1, 4}), .positions = I32(pos, {1}), .n_rot = 4, .style = style};
    ASSERT_OK(Ref().Run(p));
    if (style == RopeStyle::kAdjacentPairs) {  // pairs (0,1) and (2,3)
      EXPECT_FLOAT_EQ(x[0], std::cos(1.0f));
      EXPECT_FLOAT_EQ(x[1], std::sin(1.0f));
      EXPECT_FLOAT_EQ(x[2], std::cos(0.01f));
      EXPECT_FLOAT_EQ(x[3], std::sin(0.01f));
    } else {  // pairs (0,2) and (1,3)
      EXPECT_FLOAT_EQ(x[0], std::cos(1.0f) - std::sin(1.0f));
      EXPECT_FLOAT_EQ(x[2], std::sin(1.0f) + std::cos(1.0f));
      EXPECT_FLOAT_EQ(x[1], 0.0f);
      EXPECT_FLOAT_EQ(x[3], 0.0f);
    }
    pos[0] = -1;  // rotating back restores the input
    ASSERT_OK(Ref().Run(p));
    EXPECT_NEAR(x[0], 1.0f, 1e-6);
    EXPECT_NEAR(x[1], 0.0f, 1e-6);
  }
  std::vector<float> x(4);
  std::vector<int32_t> pos = {0};
  RopeParams bad{.x = F32(x, {1, 1, 4}), .positions = I32(pos, {1}), .n_rot = 3};
  EXPECT_THAT(Ref().Run(bad), StatusIs(absl::StatusCode::kInvalidArgument, "rope: n_rot=3"));
}

TEST(CpuRefTest, SwiGluAndSoftmax) {
  std::vector<float> g = {0, 2}, u = {5, 3}, out(2);
  ASSERT_OK(Ref().Run(
      SwiGluParams{.gate = F32(g, {1, 2}), .up = F32(u, {1, 2}), .out = F32(out, {1, 2})}));
  EXPECT_FLOAT_EQ(out[0], 0.0f);
  EXPECT_FLOAT_EQ(out[1], 2.0f / (1.0f + std::exp(-2.0f)) * 3.0f);
  std::vector<float> x = {1000, 1000, 0, std::log(3.0f)};  // no overflow thanks to max subtraction
  ASSERT_OK(Ref().Run(SoftmaxParams{.x = F32(x, {2, 2})}));
  EXPECT_FLOAT_EQ(x[0], 0.5f);
  EXPECT_FLOAT_EQ(x[1], 0.5f);
  EXPECT_FLOAT_EQ(x[2], 0.25f);
  EXPECT_FLOAT_EQ(x[3], 0.75f);
}

TEST(CpuRefTest, RowDistanceIsTheSquaredL2OfEachRow) {
  std::vector<float> a = {1, 2, 3, 0, 0, 0}, b = {1, 0, 6, 0, 0, 0}, out(2, -1.0f);
  ASSERT_OK(
      Ref().Run(RowDistanceParams{.a = F32(a, {2, 3}), .b = F32(b, {2, 3}), .out = F32(out, {2})}));
  EXPECT_FLOAT_EQ(out[0], 4.0f + 9.0f);
  EXPECT_FLOAT_EQ(out[1], 0.0f);
  EXPECT_THAT(
      Ref().Run(RowDistanceParams{.a = F32(a, {2, 3}), .b = F32(b, {3, 2}), .out = F32(out, {2})}),
      StatusIs(absl::StatusCode::kInvalidArgument, "row_distance"));
}

TEST(CpuRefTest, KvWriteThenAttendOnePosition) {
  // 2 pages of 2 tokens, 1 kv head of dim 2, f16 pools.
  std::vector<uint16_t> kp(8, 0), vp(8, 0);
  std::vector<float> k = {1, 2}, v = {0.5f, -3};
  std::vector<int32_t> slot = {3};
  KvWriteParams w{.k = F32(k, {1, 1, 2}),
                  .v = F32(v, {1, 1, 2}),
                  .k_pool = TensorView::Contiguous(kp.data(), DType::kF16, {2, 2, 1, 2}),
                  .v_pool = TensorView::Contiguous(vp.data(), DType::kF16, {2, 2, 1, 2}),
                  .slots = I32(slot, {1})};
  ASSERT_OK(Ref().Run(w));
  EXPECT_EQ(HalfToFloat(kp[6]), 1.0f);
  EXPECT_EQ(HalfToFloat(vp[7]), -3.0f);
  slot[0] = 4;
  EXPECT_THAT(Ref().Run(w), StatusIs(absl::StatusCode::kInvalidArgument, "slots[0]=4"));

  // A sequence whose only position (0) lives at page 1, offset 1 (slot 3): out = v exactly, for
  // each of 2 query heads sharing the kv head.
  std::vector<float> q = {1, 1, -1, 1}, out(4);
  std::vector<int32_t> q_seq = {0}, q_pos = {0}, table = {1, -1};
  PagedAttentionParams a{.q = F32(q, {1, 2, 2}),
                         .k_pool = w.k_pool,
                         .v_pool = w.v_pool,
                         .out = F32(out, {1, 2, 2}),
                         .q_seq = I32(q_seq, {1}),
                         .q_pos = I32(q_pos, {1}),
                         .page_table = I32(table, {1, 2})};
  // Position 0 is slot 0 of page 1 = pool index 2; write it there.
  slot[0] = 2;
  ASSERT_OK(Ref().Run(w));
  ASSERT_OK(Ref().Run(a));
  EXPECT_THAT(out, ::testing::ElementsAre(0.5f, -3, 0.5f, -3));
  q_pos[0] = 2;  // needs page_table[0, 1] = -1
  EXPECT_THAT(Ref().Run(a),
              StatusIs(absl::StatusCode::kInvalidArgument, "page_table[0, 1]=-1 not in [0, 2)"));
}

TEST(CpuRefTest, SampleFollowsSpec) {
  std::vector<float> logits = {1, 5, 5, 2,  //
                               0, 0, 0, 0,  //
                               0, 0, 0, 0,  //
                               9, 1, 1, 8};
  std::vector<SamplingConfig> cfg = {{}, {1.0f, 0, 1.0f}, {1.0f, 2, 1.0f}, {1.0f, 0, 0.0f}};
  std::vector<uint64_t> rng = {7, 42, 42, 3};
  std::vector<int32_t> tok(4, -1);
  SampleParams p{.logits = F32(logits, {4, 4}),
                 .configs = cfg,
                 .rng_states = absl::MakeSpan(rng),
                 .out_tokens = absl::MakeSpan(tok)};
  ASSERT_OK(Ref().Run(p));
  EXPECT_EQ(tok[0], 1);   // greedy: lowest id of the tie
  EXPECT_EQ(rng[0], 7u);  // greedy rows do not draw
  uint64_t s = 42;
  const float u = NextUniform(s);
  EXPECT_EQ(rng[1], s);                            // one draw per sampled row
  EXPECT_EQ(tok[1], static_cast<int32_t>(u * 4));  // uniform over 4: cumulative 0.25 steps
  EXPECT_EQ(tok[2], u < 0.5f ? 0 : 1);             // top_k=2 of a 4-way tie keeps ids 0 and 1
  EXPECT_EQ(tok[3], 0);                            // top_p=0 keeps only the most probable token
  cfg.pop_back();
  p.configs = cfg;
  EXPECT_THAT(Ref().Run(p), StatusIs(absl::StatusCode::kInvalidArgument, "configs.size()=3"));
}

TEST(BackendRegistryTest, NamesAndSingletons) {
  ASSERT_OK_AND_ASSIGN(KernelBackend * a, GetBackend("cpu_ref"));
  ASSERT_OK_AND_ASSIGN(KernelBackend * b, GetBackend("cpu_ref"));
  EXPECT_EQ(a, b);
  EXPECT_EQ(a->Name(), "cpu_ref");
  ASSERT_OK_AND_ASSIGN(KernelBackend * cpu, GetBackend("cpu"));
  EXPECT_EQ(cpu->Name(), "cpu");
  EXPECT_THAT(GetBackend("tpu"), StatusIs(absl::StatusCode::kNotFound, "cpu_ref, cpu, cuda"));
  EXPECT_THAT(GetBackend("cuda:x"), StatusIs(absl::StatusCode::kNotFound));
  absl::StatusOr<KernelBackend*> cuda = GetBackend("cuda:0");
  if (!cuda.ok()) {
    EXPECT_THAT(cuda, StatusIs(absl::StatusCode::kUnavailable));
  }
}

TEST(BackendRegistryTest, DeviceBufferOwnsAndMoves) {
  ASSERT_OK_AND_ASSIGN(DeviceBuffer buf, DeviceBuffer::Create(Ref(), 100));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(buf.data()) % 64, 0u);
  const std::vector<float> in = {1, 2, 3};
  ASSERT_OK(Ref().CopyToDevice(buf.data(), in.data(), 12));
  DeviceBuffer moved = std::move(buf);
  EXPECT_EQ(buf.data(), nullptr);
  std::vector<float> back(3);
  ASSERT_OK(Ref().CopyToHost(back.data(), moved.data(), 12));
  EXPECT_EQ(back, in);
  EXPECT_EQ(moved.View(DType::kF32, {5, 5}).DebugString(), "f32[5, 5]");
  EXPECT_THAT(DeviceBuffer::Create(Ref(), -1), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace tandem::kernels
