#include "common/dtype.h"

#include <cmath>
#include <cstdint>
#include <limits>

#include "gtest/gtest.h"

namespace tandem::testing {
namespace {

TEST(Half, KnownValues) {
  EXPECT_EQ(HalfToFloat(0x3C00), 1.0f);
  EXPECT_EQ(HalfToFloat(0xC000), -2.0f);
  EXPECT_EQ(HalfToFloat(0x0000), 0.0f);
  EXPECT_TRUE(std::signbit(HalfToFloat(0x8000)));
  EXPECT_FLOAT_EQ(HalfToFloat(0x0001), 5.9604645e-8f);  // smallest subnormal, 2^-24
  EXPECT_EQ(HalfToFloat(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(HalfToFloat(0x7BFF), 65504.0f);  // largest finite
  EXPECT_EQ(HalfToFloat(0x7C00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(HalfToFloat(0xFC00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(HalfToFloat(0x7E00)));

  EXPECT_EQ(FloatToHalf(1.0f), 0x3C00);
  EXPECT_EQ(FloatToHalf(-2.0f), 0xC000);
  EXPECT_EQ(FloatToHalf(65504.0f), 0x7BFF);
  EXPECT_EQ(FloatToHalf(1e6f), 0x7C00);  // overflow -> inf
  EXPECT_EQ(FloatToHalf(-1e6f), 0xFC00);
  EXPECT_EQ(FloatToHalf(1e-10f), 0x0000);  // underflow -> zero
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(FloatToHalf(std::numeric_limits<float>::quiet_NaN()) & 0x7C00, 0x7C00);
  EXPECT_NE(FloatToHalf(std::numeric_limits<float>::quiet_NaN()) & 0x03FF, 0);
}

TEST(Half, RoundsToNearestEven) {
  // 1 + 2^-11 lies halfway between 1.0 (even mantissa) and 1 + 2^-10: rounds to 1.0.
  EXPECT_EQ(FloatToHalf(1.0f + std::ldexp(1.0f, -11)), 0x3C00);
  // 1 + 3 * 2^-11 lies halfway between 1 + 2^-10 (odd) and 1 + 2^-9 (even): rounds up.
  EXPECT_EQ(FloatToHalf(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);
  // Just above halfway rounds up.
  EXPECT_EQ(FloatToHalf(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)), 0x3C01);
  // Halfway between subnormals 1 and 2 (1.5 * 2^-24): rounds to even, 2.
  EXPECT_EQ(FloatToHalf(1.5f * std::ldexp(1.0f, -24)), 0x0002);
  // Halfway between 0 and the smallest subnormal rounds to zero.
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -25)), 0x0000);
}

TEST(Half, RoundTripsEveryNonNanValue) {
  int checked = 0;
  for (uint32_t h = 0; h <= 0xFFFF; ++h) {
    const uint16_t half = static_cast<uint16_t>(h);
    if ((half & 0x7C00) == 0x7C00 && (half & 0x03FF) != 0) continue;  // NaN
    ASSERT_EQ(FloatToHalf(HalfToFloat(half)), half) << "h=0x" << std::hex << h;
    ++checked;
  }
  EXPECT_EQ(checked, 65536 - 2 * 1023);
}

TEST(BF16, KnownValuesAndRoundTrip) {
  EXPECT_EQ(BF16ToFloat(0x3F80), 1.0f);
  EXPECT_EQ(BF16ToFloat(0xC000), -2.0f);
  EXPECT_EQ(FloatToBF16(1.0f), 0x3F80);
  EXPECT_EQ(FloatToBF16(std::numeric_limits<float>::infinity()), 0x7F80);
  EXPECT_TRUE(std::isnan(BF16ToFloat(FloatToBF16(std::numeric_limits<float>::quiet_NaN()))));
  // 1 + 2^-8 is halfway between 1.0 (even) and 1 + 2^-7: rounds to 1.0.
  EXPECT_EQ(FloatToBF16(1.0f + std::ldexp(1.0f, -8)), 0x3F80);
  for (uint32_t b = 0; b <= 0xFFFF; ++b) {
    const uint16_t bf = static_cast<uint16_t>(b);
    if ((bf & 0x7F80) == 0x7F80 && (bf & 0x007F) != 0) continue;  // NaN
    ASSERT_EQ(FloatToBF16(BF16ToFloat(bf)), bf) << "b=0x" << std::hex << b;
  }
}

TEST(DType, BlockSizesAndNames) {
  EXPECT_EQ(DTypeBlockElems(DType::kF16), 1);
  EXPECT_EQ(DTypeBlockBytes(DType::kF16), 2);
  EXPECT_EQ(DTypeBlockElems(DType::kQ4_1), 32);
  EXPECT_EQ(DTypeBlockBytes(DType::kQ4_1), 20);
  EXPECT_EQ(DTypeRowBytes(DType::kQ4_1, 576), 18 * 20);
  EXPECT_EQ(DTypeBlockElems(DType::kQ6_K), 256);
  EXPECT_TRUE(DTypeIsQuantized(DType::kQ8_0));
  EXPECT_FALSE(DTypeIsQuantized(DType::kBF16));
  EXPECT_EQ(DTypeName(DType::kQ4_1), "q4_1");
  EXPECT_EQ(DTypeFromGgmlType(3), DType::kQ4_1);
  EXPECT_EQ(DTypeFromGgmlType(1), DType::kF16);
  EXPECT_FALSE(DTypeFromGgmlType(9999).has_value());
}

}  // namespace
}  // namespace tandem::testing
