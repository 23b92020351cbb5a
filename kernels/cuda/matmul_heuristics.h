// kernels/cuda/matmul_heuristics.h
//
// Tuning of the CUDA MatMul, kept apart from the kernels: which path a shape takes and the launch
// geometry of each. Depends on shapes only, never on a model name. Plain constants; thread-safe.
#pragma once

#include <cstdint>

namespace tandem::kernels::cuda {

// Up to this many tokens, MatMul is a memory-bound GEMV: one warp per output row streams the weight
// row once and dots it with every token. Above it, the tiled kernel reuses each dequantized weight
// tile across kTileTokens tokens.
inline constexpr int kGemvMaxTokens = 8;
inline constexpr int kGemvWarpsPerBlock = 8;

// Tiled kernel: a block computes kTileOut x kTileTokens outputs, stepping kTileK (= one 32-element
// quantization unit) along `in`; each of the 256 threads owns a 4 x 4 patch of outputs.
inline constexpr int kTileOut = 64;
inline constexpr int kTileTokens = 64;
inline constexpr int kTileK = 32;
inline constexpr int kTileThreads = 256;

inline bool UseGemv(int64_t n) { return n <= kGemvMaxTokens; }

}  // namespace tandem::kernels::cuda
