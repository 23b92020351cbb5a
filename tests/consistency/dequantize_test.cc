// Hand-packed blocks of every format (model.md §3, §3.1) against the formulas written out here
// independently of kernels/cpu_ref/dequantize.cc.
#include "kernels/cpu_ref/dequantize.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "gtest/gtest.h"

namespace tandem::kernels {
namespace {

void PutHalf(std::vector<uint8_t>& b, size_t off, uint16_t h) { std::memcpy(&b[off], &h, 2); }

std::vector<float> Decode(DType t, const std::vector<uint8_t>& bytes) {
  const int64_t n = static_cast<int64_t>(bytes.size()) / DTypeBlockBytes(t) * DTypeBlockElems(t);
  std::vector<float> out(static_cast<size_t>(n), -12345.0f);
  DequantizeRow(t, bytes.data(), out.data(), n);
  return out;
}

TEST(DequantizeTest, F16SpecialValues) {
  const std::vector<uint16_t> h = {0x3C00, 0xC000, 0x0001, 0x7C00, 0xFC00, 0x8000, 0x7BFF};
  std::vector<uint8_t> bytes(h.size() * 2);
  std::memcpy(bytes.data(), h.data(), bytes.size());
  const std::vector<float> y = Decode(DType::kF16, bytes);
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_EQ(y[1], -2.0f);
  EXPECT_EQ(y[2], std::ldexp(1.0f, -24));  // smallest subnormal, 5.96e-8
  EXPECT_EQ(y[3], std::numeric_limits<float>::infinity());
  EXPECT_EQ(y[4], -std::numeric_limits<float>::infinity());
  EXPECT_EQ(y[5], 0.0f);
  EXPECT_TRUE(std::signbit(y[5]));
  EXPECT_EQ(y[6], 65504.0f);
  std::vector<uint8_t> nan = {0x00, 0x7E};
  EXPECT_TRUE(std::isnan(Decode(DType::kF16, nan)[0]));
}

TEST(DequantizeTest, Bf16IsTopHalfOfF32) {
  std::vector<uint8_t> bytes = {0x80, 0x3F, 0x49, 0xC0};  // 0x3F80 = 1.0, 0xC049 = -3.140625
  const std::vector<float> y = Decode(DType::kBF16, bytes);
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_EQ(y[1], -3.140625f);
}

TEST(DequantizeTest, Q4_1SplitNibbles) {
  std::vector<uint8_t> b(20);
  PutHalf(b, 0, 0x3800);  // d = 0.5
  PutHalf(b, 2, 0xBC00);  // m = -1
  for (int j = 0; j < 16; ++j) b[4 + j] = static_cast<uint8_t>(j | (15 - j) << 4);
  const std::vector<float> y = Decode(DType::kQ4_1, b);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], j * 0.5f - 1.0f) << j;
    EXPECT_EQ(y[j + 16], (15 - j) * 0.5f - 1.0f) << j;
  }
}

TEST(DequantizeTest, Q4_0) {
  std::vector<uint8_t> b(18);
  PutHalf(b, 0, 0x4000);  // d = 2
  for (int j = 0; j < 16; ++j) b[2 + j] = static_cast<uint8_t>(j | (15 - j) << 4);
  const std::vector<float> y = Decode(DType::kQ4_0, b);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], (j - 8) * 2.0f);
    EXPECT_EQ(y[j + 16], (15 - j - 8) * 2.0f);
  }
}

TEST(DequantizeTest, Q5_0AndQ5_1FifthBit) {
  // qh = 0xA5A5_0F0F little-endian: bit j is the fifth bit of element j.
  const uint32_t h = 0xA5A50F0Fu;
  std::vector<uint8_t> b0(22), b1(24);
  PutHalf(b0, 0, 0x3C00);  // d = 1
  std::memcpy(&b0[2], &h, 4);
  PutHalf(b1, 0, 0x3800);  // d = 0.5
  PutHalf(b1, 2, 0x4200);  // m = 3
  std::memcpy(&b1[4], &h, 4);
  for (int j = 0; j < 16; ++j) {
    b0[6 + j] = static_cast<uint8_t>(j | (15 - j) << 4);
    b1[8 + j] = static_cast<uint8_t>(j | (15 - j) << 4);
  }
  const std::vector<float> y0 = Decode(DType::kQ5_0, b0);
  const std::vector<float> y1 = Decode(DType::kQ5_1, b1);
  for (int j = 0; j < 16; ++j) {
    const int lo = j | static_cast<int>((h >> j) & 1) << 4;
    const int hi = (15 - j) | static_cast<int>((h >> (j + 16)) & 1) << 4;
    EXPECT_EQ(y0[j], static_cast<float>(lo - 16)) << j;
    EXPECT_EQ(y0[j + 16], static_cast<float>(hi - 16)) << j;
    EXPECT_EQ(y1[j], lo * 0.5f + 3.0f) << j;
    EXPECT_EQ(y1[j + 16], hi * 0.5f + 3.0f) << j;
  }
}

TEST(DequantizeTest, Q8_0AndQ8_1Signed) {
  std::vector<uint8_t> b0(34), b1(36);
  PutHalf(b0, 0, 0x3400);  // d = 0.25
  PutHalf(b1, 0, 0x3400);
  PutHalf(b1, 2, 0x7C00);  // s is not used for decoding, even when absurd
  for (int k = 0; k < 32; ++k) {
    const int8_t q = static_cast<int8_t>(k * 8 - 128);
    std::memcpy(&b0[2 + k], &q, 1);
    std::memcpy(&b1[4 + k], &q, 1);
  }
  const std::vector<float> y0 = Decode(DType::kQ8_0, b0);
  const std::vector<float> y1 = Decode(DType::kQ8_1, b1);
  for (int k = 0; k < 32; ++k) {
    EXPECT_EQ(y0[k], (k * 8 - 128) * 0.25f);
    EXPECT_EQ(y1[k], (k * 8 - 128) * 0.25f);
  }
}

// Packs 6-bit scales and mins the way get_scale_min_k4 unpacks them.
void PackScalesK4(const int sc[8], const int mn[8], uint8_t s[12]) {
  for (int k = 0; k < 4; ++k) {
    s[k] = static_cast<uint8_t>((sc[k] & 63) | ((sc[k + 4] >> 4) << 6));
    s[k + 4] = static_cast<uint8_t>((mn[k] & 63) | ((mn[k + 4] >> 4) << 6));
    s[k + 8] = static_cast<uint8_t>((sc[k + 4] & 0xF) | ((mn[k + 4] & 0xF) << 4));
  }
}

TEST(DequantizeTest, Q4_KAndQ5_K) {
  const int sc[8] = {1, 63, 17, 32, 5, 48, 33, 60};
  const int mn[8] = {0, 7, 63, 20, 40, 1, 62, 31};
  std::vector<uint8_t> b4(144), b5(176);
  for (auto* b : {&b4, &b5}) {
    PutHalf(*b, 0, 0x3800);  // d = 0.5
    PutHalf(*b, 2, 0x3400);  // dmin = 0.25
    PackScalesK4(sc, mn, &(*b)[4]);
  }
  for (int i = 0; i < 128; ++i) {
    b4[16 + i] = static_cast<uint8_t>(i * 37 + 11);
    b5[48 + i] = static_cast<uint8_t>(i * 37 + 11);
  }
  for (int l = 0; l < 32; ++l) b5[16 + l] = static_cast<uint8_t>(l * 71 + 3);
  const std::vector<float> y4 = Decode(DType::kQ4_K, b4);
  const std::vector<float> y5 = Decode(DType::kQ5_K, b5);
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      const uint8_t q = static_cast<uint8_t>((32 * c + l) * 37 + 11);
      const uint8_t qh = static_cast<uint8_t>(l * 71 + 3);
      const int s0 = 2 * c, s1 = 2 * c + 1;
      EXPECT_EQ(y4[64 * c + l], 0.5f * sc[s0] * (q & 0xF) - 0.25f * mn[s0]);
      EXPECT_EQ(y4[64 * c + 32 + l], 0.5f * sc[s1] * (q >> 4) - 0.25f * mn[s1]);
      const int lo = (q & 0xF) + ((qh >> s0) & 1) * 16;
      const int hi = (q >> 4) + ((qh >> s1) & 1) * 16;
      EXPECT_EQ(y5[64 * c + l], 0.5f * sc[s0] * lo - 0.25f * mn[s0]);
      EXPECT_EQ(y5[64 * c + 32 + l], 0.5f * sc[s1] * hi - 0.25f * mn[s1]);
    }
  }
}

TEST(DequantizeTest, Q6_K) {
  std::vector<uint8_t> b(210);
  for (int i = 0; i < 128; ++i) b[i] = static_cast<uint8_t>(i * 13 + 5);       // ql
  for (int i = 0; i < 64; ++i) b[128 + i] = static_cast<uint8_t>(i * 29 + 1);  // qh
  for (int i = 0; i < 16; ++i) b[192 + i] = static_cast<uint8_t>(i * 9 - 70);  // int8 scales
  PutHalf(b, 208, 0x3000);                                                     // d = 0.125
  const std::vector<float> y = Decode(DType::kQ6_K, b);
  for (int n = 0; n < 2; ++n) {
    for (int l = 0; l < 32; ++l) {
      const uint8_t ql0 = b[64 * n + l], ql1 = b[64 * n + l + 32], qh = b[128 + 32 * n + l];
      const int q[4] = {
          ((ql0 & 0xF) | ((qh >> 0) & 3) << 4) - 32, ((ql1 & 0xF) | ((qh >> 2) & 3) << 4) - 32,
          ((ql0 >> 4) | ((qh >> 4) & 3) << 4) - 32, ((ql1 >> 4) | ((qh >> 6) & 3) << 4) - 32};
      for (int part = 0; part < 4; ++part) {
        const int8_t scale = static_cast<int8_t>(b[192 + 8 * n + l / 16 + 2 * part]);
        EXPECT_EQ(y[128 * n + 32 * part + l], 0.125f * scale * q[part]) << n << " " << l;
      }
    }
  }
}

TEST(DequantizeTest, MultipleBlocksAdvance) {
  std::vector<uint8_t> b(2 * 34);
  PutHalf(b, 0, 0x3C00);   // block 0: d = 1
  PutHalf(b, 34, 0x4000);  // block 1: d = 2
  for (int k = 0; k < 32; ++k) {
    b[2 + k] = static_cast<uint8_t>(k);
    b[36 + k] = static_cast<uint8_t>(k);
  }
  const std::vector<float> y = Decode(DType::kQ8_0, b);
  for (int k = 0; k < 32; ++k) {
    EXPECT_EQ(y[k], static_cast<float>(k));
    EXPECT_EQ(y[32 + k], 2.0f * k);
  }
}

TEST(DequantizeTest, CanDequantize) {
  EXPECT_TRUE(CanDequantize(DType::kQ4_1));
  EXPECT_TRUE(CanDequantize(DType::kBF16));
  EXPECT_FALSE(CanDequantize(DType::kI32));
  EXPECT_FALSE(CanDequantize(DType::kU8));
}

}  // namespace
}  // namespace tandem::kernels
