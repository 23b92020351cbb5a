// kernels/sparse_pattern.h
//
// The sparse prefill methods' configuration (SparseConfig, in op.h's AttentionPrefillParams) and
// the block-selection rules that do not depend on data, written once for host and device code:
// the cpu_ref spec, the fast cpu path, the CUDA host code and the CUDA kernels (f32 and bf16) all
// include this header, so that they select the same blocks. Blocks are by position: query block =
// q_pos / QBlock(c), key block = kv_pos / KBlock(c). Plain data and pure inline functions with no
// Abseil and no std library calls, so nvcc compiles it into device code and a kernel takes a
// SparseConfig by value. Validation (absl::Status) is host-only, in sparse_config_check.h.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define TANDEM_HOST_DEVICE __host__ __device__
#else
#define TANDEM_HOST_DEVICE
#endif

namespace tandem::kernels {

// Which prefill attention runs (../shared/papers.md §4 SALE, §5 PowerAttention). The sparse methods
// keep the KV cache exact and complete; they only skip (q-block, kv-block) tiles of the score matrix.
enum class SparseMethod : uint8_t { kDense, kSale, kPowerAttention };

// The knobs of each method with their papers' defaults.
// SALE's threshold tau as the paper calibrates it before per-head tuning (also --sale_threshold's
// default).
inline constexpr double kSaleThresholdPaper = 0.008;

struct SparseConfig {
  SparseMethod method = SparseMethod::kDense;
  // SALE: Q and K (minus K's per-head mean over tokens) quantized to int4 with per-token scales;
  // a key block is computed when some query row i of the block has a relative attention score
  // exp(scale * s_hat_ij - m_i) / l_i > sale_threshold, where m_i, l_i are the exact softmax max and
  // sum over the mandatory blocks (the sink and the local window). sale_threshold < 1e-5 is dense,
  // as in the authors' kernel; the paper calibrates it per head starting from 0.008.
  float sale_threshold = static_cast<float>(kSaleThresholdPaper);
  int32_t sale_q_block = 64;
  int32_t sale_k_block = 32;
  int32_t sale_local_window = 128;  // tokens before the query block's start, always computed
  int32_t sale_sink = 32;           // leading tokens always computed (the first key block)
  // Contexts (n_kv) of at most this many tokens run dense (the authors fall back at q_len <= 1024).
  int32_t sale_min_tokens = 1024;
  // PowerAttention: query block i reads key block j <= i when i - j is 0 or a power of two, when
  // j < power_sink_blocks, or when i - j < power_window_blocks.
  int32_t power_block = 64;
  int32_t power_window_blocks = 1;
  int32_t power_sink_blocks = 1;
};

// Block sizes the method works at (and counts AttentionStats in). Dense counts 64 x 64 blocks.
TANDEM_HOST_DEVICE inline int64_t QBlock(const SparseConfig& c) {
  switch (c.method) {
    case SparseMethod::kSale:
      return c.sale_q_block;
    case SparseMethod::kPowerAttention:
      return c.power_block;
    default:
      return 64;
  }
}
TANDEM_HOST_DEVICE inline int64_t KBlock(const SparseConfig& c) {
  switch (c.method) {
    case SparseMethod::kSale:
      return c.sale_k_block;
    case SparseMethod::kPowerAttention:
      return c.power_block;
    default:
      return 64;
  }
}

// PowerAttention: key block kb is read by query block qb (kb <= qb).
TANDEM_HOST_DEVICE inline bool PowerKeeps(const SparseConfig& c, int64_t qb, int64_t kb) {
  if (kb > qb) return false;
  const int64_t d = qb - kb;
  return d == 0 || (d & (d - 1)) == 0 || kb < c.power_sink_blocks || d < c.power_window_blocks;
}

// SALE runs dense (every block) for tiny thresholds, as the authors' kernel does below 1e-5, and
// for contexts of at most sale_min_tokens keys.
TANDEM_HOST_DEVICE inline bool SaleIsDense(const SparseConfig& c, int64_t n_kv) {
  return c.sale_threshold < 1e-5f || n_kv <= c.sale_min_tokens;
}

// SALE's mandatory blocks of query block qb, computed exactly before the estimate: the sink (key
// blocks starting before sale_sink) and the local window (key blocks ending after the query block's
// start minus sale_local_window; this includes the diagonal).
TANDEM_HOST_DEVICE inline bool SaleMandatory(const SparseConfig& c, int64_t qb, int64_t kb) {
  const int64_t k_begin = kb * c.sale_k_block;
  const int64_t k_end = k_begin + c.sale_k_block;
  return k_begin < c.sale_sink || k_end > qb * c.sale_q_block - c.sale_local_window;
}

// SaleMandatory as two ranges of key blocks, for kernels that loop over ranges instead of testing
// each block. For a validated config (sink, window >= 0; block sizes >= 1), key block kb >= 0 is
// mandatory for qb exactly when kb < SaleSinkEndBlock(c) or kb >= SaleWindowBeginBlock(c, qb);
// the blocks in between are the ones SALE estimates. tests/kernels_cpu/sparse_pattern_test.cc
// checks the equivalence over a grid.
TANDEM_HOST_DEVICE inline int64_t SaleSinkEndBlock(const SparseConfig& c) {
  return (static_cast<int64_t>(c.sale_sink) + c.sale_k_block - 1) / c.sale_k_block;
}
TANDEM_HOST_DEVICE inline int64_t SaleWindowBeginBlock(const SparseConfig& c, int64_t qb) {
  const int64_t from = qb * c.sale_q_block - c.sale_local_window;
  return from <= 0 ? 0 : from / c.sale_k_block;
}

}  // namespace tandem::kernels
