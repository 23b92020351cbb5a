// Naive per-block decoders, written to mirror the formulas of ../shared/model.md §3 line by line
// (ggml-quants.c dequantize_row_*). Blocks are read byte-wise so that no packed-struct or alignment
// assumptions are needed.
#include "kernels/cpu_ref/dequantize.h"

#include <cstring>

namespace tandem::kernels {
namespace {

float F16At(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return HalfToFloat(h);
}

uint32_t U32At(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}

// 18 bytes: d, qs[16]. Low nibbles -> elements 0..15, high nibbles -> 16..31.
void BlockQ4_0(const uint8_t* b, float* y) {
  const float d = F16At(b);
  const uint8_t* qs = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>((qs[j] & 0xF) - 8) * d;
    y[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
  }
}

// 20 bytes: d, m, qs[16].
void BlockQ4_1(const uint8_t* b, float* y) {
  const float d = F16At(b);
  const float m = F16At(b + 2);
  const uint8_t* qs = b + 4;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>(qs[j] & 0xF) * d + m;
    y[j + 16] = static_cast<float>(qs[j] >> 4) * d + m;
  }
}

// 22 bytes: d, qh[4] (little-endian u32: bit j is element j's fifth bit), qs[16].
void BlockQ5_0(const uint8_t* b, float* y) {
  const float d = F16At(b);
  const uint32_t h = U32At(b + 2);
  const uint8_t* qs = b + 6;
  for (int j = 0; j < 16; ++j) {
    const int lo = (qs[j] & 0xF) | static_cast<int>((h >> j) & 1u) << 4;
    const int hi = (qs[j] >> 4) | static_cast<int>((h >> (j + 16)) & 1u) << 4;
    y[j] = static_cast<float>(lo - 16) * d;
    y[j + 16] = static_cast<float>(hi - 16) * d;
  }
}

// 24 bytes: d, m, qh[4], qs[16].
void BlockQ5_1(const uint8_t* b, float* y) {
  const float d = F16At(b);
  const float m = F16At(b + 2);
  const uint32_t h = U32At(b + 4);
  const uint8_t* qs = b + 8;
  for (int j = 0; j < 16; ++j) {
    const int lo = (qs[j] & 0xF) | static_cast<int>((h >> j) & 1u) << 4;
    const int hi = (qs[j] >> 4) | static_cast<int>((h >> (j + 16)) & 1u) << 4;
    y[j] = static_cast<float>(lo) * d + m;
    y[j + 16] = static_cast<float>(hi) * d + m;
  }
}

// 34 bytes: d, int8 qs[32].
void BlockQ8_0(const uint8_t* b, float* y) {
  const float d = F16At(b);
  const int8_t* qs = reinterpret_cast<const int8_t*>(b + 2);
  for (int k = 0; k < 32; ++k) y[k] = static_cast<float>(qs[k]) * d;
}

// 36 bytes: d, s (= d * sum(q), unused for decoding), int8 qs[32].
void BlockQ8_1(const uint8_t* b, float* y) {
  const float d = F16At(b);
  const int8_t* qs = reinterpret_cast<const int8_t*>(b + 4);
  for (int k = 0; k < 32; ++k) y[k] = static_cast<float>(qs[k]) * d;
}

// get_scale_min_k4: the 6-bit scale and min of sub-block k from the 12 packed bytes.
void ScaleMinK4(int k, const uint8_t* s, int* sc, int* mn) {
  if (k < 4) {
    *sc = s[k] & 63;
    *mn = s[k + 4] & 63;
  } else {
    *sc = (s[k + 4] & 0xF) | ((s[k - 4] >> 6) << 4);
    *mn = (s[k + 4] >> 4) | ((s[k] >> 6) << 4);
  }
}

// 144 bytes: d, dmin, scales[12], qs[128].
void BlockQ4_K(const uint8_t* b, float* y) {
  const float d = F16At(b);
  const float dmin = F16At(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qs = b + 16;
  for (int c = 0; c < 4; ++c) {
    int sc0, mn0, sc1, mn1;
    ScaleMinK4(2 * c, scales, &sc0, &mn0);
    ScaleMinK4(2 * c + 1, scales, &sc1, &mn1);
    for (int l = 0; l < 32; ++l) {
      const uint8_t q = qs[32 * c + l];
      y[64 * c + l] = d * sc0 * (q & 0xF) - dmin * mn0;
      y[64 * c + 32 + l] = d * sc1 * (q >> 4) - dmin * mn1;
    }
  }
}

// 176 bytes: d, dmin, scales[12], qh[32], qs[128].
void BlockQ5_K(const uint8_t* b, float* y) {
  const float d = F16At(b);
  const float dmin = F16At(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* qs = b + 48;
  for (int c = 0; c < 4; ++c) {
    int sc0, mn0, sc1, mn1;
    ScaleMinK4(2 * c, scales, &sc0, &mn0);
    ScaleMinK4(2 * c + 1, scales, &sc1, &mn1);
    for (int l = 0; l < 32; ++l) {
      const uint8_t q = qs[32 * c + l];
      const int lo = (q & 0xF) + (((qh[l] >> (2 * c)) & 1) ? 16 : 0);
      const int hi = (q >> 4) + (((qh[l] >> (2 * c + 1)) & 1) ? 16 : 0);
      y[64 * c + l] = d * sc0 * lo - dmin * mn0;
      y[64 * c + 32 + l] = d * sc1 * hi - dmin * mn1;
    }
  }
}

// 210 bytes: ql[128], qh[64], int8 scales[16], d (last).
void BlockQ6_K(const uint8_t* b, float* y) {
  const float d = F16At(b + 208);
  for (int n = 0; n < 2; ++n) {
    const uint8_t* ql = b + 64 * n;
    const uint8_t* qh = b + 128 + 32 * n;
    const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192 + 8 * n);
    float* out = y + 128 * n;
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4) - 32;
      const int q2 = ((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4) - 32;
      const int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
      const int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
      out[l] = d * sc[is + 0] * q1;
      out[l + 32] = d * sc[is + 2] * q2;
      out[l + 64] = d * sc[is + 4] * q3;
      out[l + 96] = d * sc[is + 6] * q4;
    }
  }
}

using BlockFn = void (*)(const uint8_t*, float*);

BlockFn BlockDecoder(DType dtype) {
  switch (dtype) {
    case DType::kQ4_0:
      return BlockQ4_0;
    case DType::kQ4_1:
      return BlockQ4_1;
    case DType::kQ5_0:
      return BlockQ5_0;
    case DType::kQ5_1:
      return BlockQ5_1;
    case DType::kQ8_0:
      return BlockQ8_0;
    case DType::kQ8_1:
      return BlockQ8_1;
    case DType::kQ4_K:
      return BlockQ4_K;
    case DType::kQ5_K:
      return BlockQ5_K;
    case DType::kQ6_K:
      return BlockQ6_K;
    default:
      return nullptr;
  }
}

}  // namespace

bool CanDequantize(DType dtype) {
  return dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16 ||
         BlockDecoder(dtype) != nullptr;
}

void DequantizeRow(DType dtype, const void* src, float* dst, int64_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(src);
  switch (dtype) {
    case DType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = F16At(p + 2 * i);
      return;
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t b;
        std::memcpy(&b, p + 2 * i, 2);
        dst[i] = BF16ToFloat(b);
      }
      return;
    default:
      break;
  }
  const BlockFn fn = BlockDecoder(dtype);
  if (fn == nullptr) {
    std::memset(dst, 0, static_cast<size_t>(n) * sizeof(float));
    return;
  }
  const int64_t elems = DTypeBlockElems(dtype);
  const int64_t bytes = DTypeBlockBytes(dtype);
  for (int64_t blk = 0; blk < n / elems; ++blk) fn(p + blk * bytes, dst + blk * elems);
}

}  // namespace tandem::kernels
