// kernels/cuda/dequant.cuh
//
// Device-side weight decoding for MatMul and Embedding, following ../shared/model.md §3 (GGML's
// dequantize_row_* formulas and rounding order). Quantized rows are decoded one "unit" of 32
// consecutive elements at a time: a whole block for the 32-element formats, one sub-block for the
// 256-element k-quants. Float rows are read one element at a time. Pure device functions; a
// host-side check against cpu_ref's dequantizer can compile them for the host by defining
// TANDEM_DEQUANT_QUALIFIERS as `__host__ __device__` before including this header.
#pragma once

#include <cstdint>

#include "common/dtype.h"

#ifndef TANDEM_DEQUANT_QUALIFIERS
#define TANDEM_DEQUANT_QUALIFIERS __device__
#endif

namespace tandem::kernels::cuda {

TANDEM_DEQUANT_QUALIFIERS __forceinline__ float HalfBitsToFloat(uint16_t h) {
#ifdef __CUDA_ARCH__
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
  return f;
#else
  return HalfToFloat(h);
#endif
}

__device__ __forceinline__ uint16_t FloatToHalfBits(float f) {
  uint16_t h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));  // round to nearest even, like FloatToHalf
  return h;
}

TANDEM_DEQUANT_QUALIFIERS __forceinline__ float Bf16BitsToFloat(uint16_t b) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(static_cast<uint32_t>(b) << 16);
#else
  return BF16ToFloat(b);
#endif
}

TANDEM_DEQUANT_QUALIFIERS __forceinline__ uint16_t Ld16(const uint8_t* p) {
  return *reinterpret_cast<const uint16_t*>(p);
}
TANDEM_DEQUANT_QUALIFIERS __forceinline__ uint32_t Ld32(const uint8_t* p) {
  return *reinterpret_cast<const uint32_t*>(p);
}
// Two 16-bit loads: for fields that are only 2-byte aligned inside 18/22/34/210-byte blocks.
TANDEM_DEQUANT_QUALIFIERS __forceinline__ uint32_t Ld32Via16(const uint8_t* p) {
  return static_cast<uint32_t>(Ld16(p)) | (static_cast<uint32_t>(Ld16(p + 2)) << 16);
}

__host__ __device__ constexpr bool IsFloatWeight(DType t) {
  return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16;
}

// Element k of a float-typed row.
template <DType T>
TANDEM_DEQUANT_QUALIFIERS __forceinline__ float LoadFloatWeight(const uint8_t* row, int64_t k) {
  if constexpr (T == DType::kF32) {
    return reinterpret_cast<const float*>(row)[k];
  } else if constexpr (T == DType::kF16) {
    return HalfBitsToFloat(reinterpret_cast<const uint16_t*>(row)[k]);
  } else {
    return Bf16BitsToFloat(reinterpret_cast<const uint16_t*>(row)[k]);
  }
}

// GGML get_scale_min_k4: the 6-bit scale and min of sub-block j (0..7) of a q4_K/q5_K block.
TANDEM_DEQUANT_QUALIFIERS __forceinline__ void ScaleMinK4(int j, const uint8_t* s, int& sc,
                                                          int& mn) {
  if (j < 4) {
    sc = s[j] & 63;
    mn = s[j + 4] & 63;
  } else {
    sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
    mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// w[0..31] = elements [32 * unit, 32 * unit + 32) of a quantized row.
template <DType T>
TANDEM_DEQUANT_QUALIFIERS __forceinline__ void DequantUnit(const uint8_t* row, int64_t unit,
                                                           float (&w)[32]) {
  if constexpr (T == DType::kQ4_0) {
    const uint8_t* b = row + unit * 18;
    const float d = HalfBitsToFloat(Ld16(b));
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const uint32_t q = Ld16(b + 2 + 2 * i);
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const uint32_t byte = (q >> (8 * j)) & 0xFF;
        w[2 * i + j] = (static_cast<int>(byte & 0xF) - 8) * d;
        w[2 * i + j + 16] = (static_cast<int>(byte >> 4) - 8) * d;
      }
    }
  } else if constexpr (T == DType::kQ4_1) {
    const uint8_t* b = row + unit * 20;
    const uint32_t dm = Ld32(b);
    const float d = HalfBitsToFloat(dm & 0xFFFF);
    const float m = HalfBitsToFloat(dm >> 16);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint32_t q = Ld32(b + 4 + 4 * i);
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const uint32_t byte = (q >> (8 * j)) & 0xFF;
        w[4 * i + j] = static_cast<float>(byte & 0xF) * d + m;
        w[4 * i + j + 16] = static_cast<float>(byte >> 4) * d + m;
      }
    }
  } else if constexpr (T == DType::kQ5_0) {
    const uint8_t* b = row + unit * 22;
    const float d = HalfBitsToFloat(Ld16(b));
    const uint32_t qh = Ld32Via16(b + 2);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const uint32_t q = Ld16(b + 6 + 2 * i);
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const int l = 2 * i + j;
        const uint32_t byte = (q >> (8 * j)) & 0xFF;
        const int lo = static_cast<int>((byte & 0xF) | (((qh >> l) & 1u) << 4));
        const int hi = static_cast<int>((byte >> 4) | (((qh >> (l + 16)) & 1u) << 4));
        w[l] = (lo - 16) * d;
        w[l + 16] = (hi - 16) * d;
      }
    }
  } else if constexpr (T == DType::kQ5_1) {
    const uint8_t* b = row + unit * 24;
    const uint32_t dm = Ld32(b);
    const float d = HalfBitsToFloat(dm & 0xFFFF);
    const float m = HalfBitsToFloat(dm >> 16);
    const uint32_t qh = Ld32(b + 4);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint32_t q = Ld32(b + 8 + 4 * i);
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int l = 4 * i + j;
        const uint32_t byte = (q >> (8 * j)) & 0xFF;
        const uint32_t lo = (byte & 0xF) | (((qh >> l) & 1u) << 4);
        const uint32_t hi = (byte >> 4) | (((qh >> (l + 16)) & 1u) << 4);
        w[l] = static_cast<float>(lo) * d + m;
        w[l + 16] = static_cast<float>(hi) * d + m;
      }
    }
  } else if constexpr (T == DType::kQ8_0) {
    const uint8_t* b = row + unit * 34;
    const float d = HalfBitsToFloat(Ld16(b));
#pragma unroll
    for (int i = 0; i < 16; ++i) {
      const uint32_t q = Ld16(b + 2 + 2 * i);
      w[2 * i] = static_cast<float>(static_cast<int8_t>(q & 0xFF)) * d;
      w[2 * i + 1] = static_cast<float>(static_cast<int8_t>(q >> 8)) * d;
    }
  } else if constexpr (T == DType::kQ4_K || T == DType::kQ5_K) {
    constexpr int64_t kBytes = T == DType::kQ4_K ? 144 : 176;
    const uint8_t* b = row + (unit >> 3) * kBytes;
    const int sub = static_cast<int>(unit & 7);  // sub-block: chunk sub/2, nibble sub%2
    const uint32_t dm = Ld32(b);
    int sc, mn;
    ScaleMinK4(sub, b + 4, sc, mn);
    const float d1 = HalfBitsToFloat(dm & 0xFFFF) * static_cast<float>(sc);
    const float m1 = HalfBitsToFloat(dm >> 16) * static_cast<float>(mn);
    const int shift = 4 * (sub & 1);
    const uint8_t* qs = b + (T == DType::kQ4_K ? 16 : 48) + 32 * (sub >> 1);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const uint32_t q = Ld32(qs + 4 * i);
      uint32_t h = 0;
      if constexpr (T == DType::kQ5_K) h = Ld32(b + 16 + 4 * i);  // qh[4i .. 4i+3]
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        uint32_t v = (q >> (8 * j + shift)) & 0xF;
        if constexpr (T == DType::kQ5_K) v += ((h >> (8 * j + sub)) & 1u) << 4;
        w[4 * i + j] = d1 * static_cast<float>(v) - m1;
      }
    }
  } else if constexpr (T == DType::kQ6_K) {
    const uint8_t* b = row + (unit >> 3) * 210;
    const int sub = static_cast<int>(unit & 7);
    const int half = sub >> 2;  // 128-element half
    const int g = sub & 3;      // quarter inside the half: ql offset, nibble, qh shift, scale
    const uint8_t* ql = b + 64 * half + 32 * (g & 1);
    const uint8_t* qh = b + 128 + 32 * half;
    const int8_t* scales = reinterpret_cast<const int8_t*>(b + 192 + 8 * half + 2 * g);
    const float d = HalfBitsToFloat(Ld16(b + 208));
    const float ds0 = d * static_cast<float>(scales[0]);  // l < 16
    const float ds1 = d * static_cast<float>(scales[1]);  // l >= 16
    const int lshift = 4 * (g >> 1);
#pragma unroll
    for (int i = 0; i < 16; ++i) {
      const uint32_t lq = Ld16(ql + 2 * i);
      const uint32_t hq = Ld16(qh + 2 * i);
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const int l = 2 * i + j;
        const int q = static_cast<int>((((lq >> (8 * j)) >> lshift) & 0xF) |
                                       ((((hq >> (8 * j)) >> (2 * g)) & 3u) << 4)) -
                      32;
        w[l] = (l < 16 ? ds0 : ds1) * static_cast<float>(q);
      }
    }
  }
}

}  // namespace tandem::kernels::cuda
