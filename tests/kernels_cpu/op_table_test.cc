// kernels/internal/op_table.h: what a backend's op table answers for the ops it lists and for the
// ones it does not (Supports() false, Run() InvalidArgument naming the op and the listed ones, which
// the consistency harness reports as NOT_SUPPORTED).
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/internal/op_table.h"
#include "tests/support/status_matchers.h"

namespace tandem::kernels {
namespace {

using ::tandem::testing::StatusIs;

// Softmax only: Check accepts a positive scale; Run records the scale it ran with.
struct SoftmaxOnly {
  using Params = SoftmaxParams;
  absl::Status Check(std::vector<float>& ran, const SoftmaxParams& p) const {
    (void)ran;
    return p.scale > 0 ? absl::OkStatus() : absl::InvalidArgumentError("softmax: scale <= 0");
  }
  absl::Status Run(std::vector<float>& ran, const SoftmaxParams& p) const {
    TANDEM_RETURN_IF_ERROR(Check(ran, p));
    ran.push_back(p.scale);
    return absl::OkStatus();
  }
};
struct RmsNormOnly {
  using Params = RmsNormParams;
  absl::Status Check(std::vector<float>&, const RmsNormParams&) const { return absl::OkStatus(); }
  absl::Status Run(std::vector<float>& ran, const RmsNormParams& p) const {
    ran.push_back(p.eps);
    return absl::OkStatus();
  }
};

constexpr OpTable kTable{SoftmaxOnly{}, RmsNormOnly{}};

SoftmaxParams Softmax(float scale) {
  SoftmaxParams p;
  p.scale = scale;
  return p;
}
RmsNormParams RmsNorm(float eps) {
  RmsNormParams p;
  p.eps = eps;
  return p;
}

TEST(OpTableTest, ListedOpsRunThroughTheirEntry) {
  std::vector<float> ran;
  EXPECT_TRUE(TableSupports(kTable, Softmax(2.0f), ran));
  EXPECT_FALSE(TableSupports(kTable, Softmax(-1.0f), ran));  // Check said no
  ASSERT_OK(TableRun(kTable, "test", Softmax(2.0f), ran));
  ASSERT_OK(TableRun(kTable, "test", RmsNorm(0.5f), ran));
  EXPECT_THAT(TableRun(kTable, "test", Softmax(-1.0f), ran),
              StatusIs(absl::StatusCode::kInvalidArgument, "scale <= 0"));
  EXPECT_THAT(ran, ::testing::ElementsAre(2.0f, 0.5f));
}

TEST(OpTableTest, UnlistedOpsAreNotSupported) {
  std::vector<float> ran;
  EXPECT_TRUE(decltype(kTable)::Has<SoftmaxParams>());
  EXPECT_FALSE(decltype(kTable)::Has<MatMulParams>());
  EXPECT_FALSE(TableSupports(kTable, MatMulParams{}, ran));
  EXPECT_THAT(TableRun(kTable, "test", MatMulParams{}, ran),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "matmul: not run by backend test; it runs: softmax, rmsnorm"));
  EXPECT_TRUE(ran.empty());
  EXPECT_FALSE(ListsEveryOp<decltype(kTable)>::value);
}

TEST(OpTableTest, OpNameIsTheParamsName) {
  EXPECT_EQ(OpName(MatMulParams{}), "matmul");
  EXPECT_EQ(OpName(KvGatherParams{}), KvGatherParams::kName);
  EXPECT_EQ(OpName(AttentionPrefillParams{}), "attention_prefill");
}

}  // namespace
}  // namespace tandem::kernels
