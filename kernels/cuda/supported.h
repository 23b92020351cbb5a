// kernels/cuda/supported.h
//
// The tables of what the CUDA backend runs: read both by CudaBackend::Supports() (through the
// Prepare* validators in op_prepare.cc) and by the .cu dispatchers (through DispatchDType in
// dispatch.cuh), so that the two can never disagree. Plain constexpr data, no CUDA types, so that
// host-only .cc files and nvcc share it.
#pragma once

#include <cstdint>

#include "common/dtype.h"

namespace tandem::kernels::cuda {

// Weight dtypes of MatMul and Embedding; quantized rows are dequantized in-kernel.
inline constexpr DType kWeightDTypes[] = {
    DType::kF32,  DType::kF16,  DType::kBF16, DType::kQ4_0, DType::kQ4_1, DType::kQ5_0,
    DType::kQ5_1, DType::kQ8_0, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K,
};
inline constexpr char kWeightDTypesText[] =
    "f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q4_k, q5_k, q6_k";

// Element types of the paged KV pools (KvWrite, PagedAttention).
inline constexpr DType kKvPoolDTypes[] = {DType::kF32, DType::kF16};
inline constexpr char kKvPoolDTypesText[] = "f32, f16";

// PagedAttention keeps one query vector per lane-slice in registers: head_dim <= 32 * 8.
inline constexpr int64_t kMaxAttentionHeadDim = 256;

// Alignment that dequant.cuh's loads need of a weight row's start and stride: the formats whose
// blocks are a multiple of 4 bytes are read with 32-bit loads.
constexpr int64_t WeightAlignment(DType t) {
  switch (t) {
    case DType::kF32:
    case DType::kQ4_1:
    case DType::kQ5_1:
    case DType::kQ4_K:
    case DType::kQ5_K:
      return 4;
    default:
      return 2;
  }
}

template <typename T, int64_t N>
constexpr bool Contains(const T (&table)[N], T value) {
  for (const T& t : table) {
    if (t == value) return true;
  }
  return false;
}

}  // namespace tandem::kernels::cuda
