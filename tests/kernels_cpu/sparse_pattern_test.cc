// kernels/sparse_pattern.h: the range form of SALE's mandatory blocks (what the bf16 CUDA kernels
// loop over) selects exactly the blocks SaleMandatory (what cpu_ref and the f32 kernels test)
// selects, over a grid of block sizes, sinks and windows, including ones that are not multiples of
// the block sizes and a window that starts before position 0.
#include <cstdint>

#include "gtest/gtest.h"
#include "kernels/sparse_pattern.h"

namespace tandem::kernels {
namespace {

TEST(SparsePatternTest, SaleMandatoryRangesEqualThePredicate) {
  int64_t mandatory = 0, estimated = 0;
  for (int32_t q_block : {16, 64, 96}) {
    for (int32_t k_block : {16, 32, 48, 64}) {
      for (int32_t sink : {0, 1, 31, 32, 33, 100}) {
        for (int32_t window : {0, 1, 63, 64, 128, 300}) {
          SparseConfig c;
          c.method = SparseMethod::kSale;
          c.sale_q_block = q_block;
          c.sale_k_block = k_block;
          c.sale_sink = sink;
          c.sale_local_window = window;
          const int64_t sink_end = SaleSinkEndBlock(c);
          for (int64_t qb = 0; qb < 24; ++qb) {
            const int64_t window_begin = SaleWindowBeginBlock(c, qb);
            for (int64_t kb = 0; kb < 24 * 96 / 16 + 2; ++kb) {
              const bool in_ranges = kb < sink_end || kb >= window_begin;
              ASSERT_EQ(in_ranges, SaleMandatory(c, qb, kb))
                  << "q_block=" << q_block << " k_block=" << k_block << " sink=" << sink
                  << " window=" << window << " qb=" << qb << " kb=" << kb;
              (in_ranges ? mandatory : estimated) += 1;
            }
          }
        }
      }
    }
  }
  // Both kinds occur, so the grid exercises both sides of each boundary.
  EXPECT_GT(mandatory, 0);
  EXPECT_GT(estimated, 0);
}

TEST(SparsePatternTest, PowerKeepsPowersOfTwoSinkAndWindow) {
  SparseConfig c;
  c.method = SparseMethod::kPowerAttention;
  c.power_sink_blocks = 1;
  c.power_window_blocks = 3;
  EXPECT_TRUE(PowerKeeps(c, 9, 9));    // diagonal
  EXPECT_TRUE(PowerKeeps(c, 9, 7));    // distance 2, also inside the window
  EXPECT_TRUE(PowerKeeps(c, 9, 1));    // distance 8
  EXPECT_TRUE(PowerKeeps(c, 9, 0));    // sink
  EXPECT_FALSE(PowerKeeps(c, 9, 3));   // distance 6
  EXPECT_FALSE(PowerKeeps(c, 9, 10));  // not causal
  EXPECT_EQ(QBlock(c), c.power_block);
  EXPECT_EQ(KBlock(SparseConfig{}), 64);
}

}  // namespace
}  // namespace tandem::kernels
