// kernels/cuda/flash_prefill.h
//
// The bf16 tensor-core prefill attention for Hopper (sm_90), dense and block-sparse, behind a small
// C API of launchers that enqueue on a stream and return the launch error (no Abseil, no CUDA
// types beyond cudaStream_t, so a bench or test links it with nothing else). Shapes: Q and O are
// [n, n_heads, 128] bf16, K and V [n, n_kv_heads, 128] bf16, contiguous, positions 0..n-1, causal,
// GQA (head h reads KV head h / (n_heads / n_kv_heads)). FA2-style: a CTA owns 128 query rows of one
// head (8 warps x 16 rows), walks 64-key tiles with cp.async double buffering, mma.sync m16n8k16
// bf16 with f32 accumulation and an online softmax in the log2 domain.
//
// Sparsity enters as tile lists: for each (head, 128-row query tile) the kept 16-key chunks,
// gathered four at a time into 64-key tiles, each chunk with the set of warps (16-row slices) that
// read it, so masks at 64-row x 32-key (SALE) or 64 x 64 (PowerAttention) granularity are exact and
// kept chunks far apart still fill whole tiles. Lists come from a byte block mask
// (LaunchBuildTileLists); the dense launcher walks every causal tile without any mask read. With a
// mask of all ones, the sparse kernel does the same arithmetic in the same order as the dense one.
//
// SALE (../shared/papers.md §4) on this path: int4-range Q and (K - mean K) with per-row scales
// (stored as int8 and multiplied with mma m16n8k32 s8, which gives the same integer dot products as
// int4), the exact log-sum-exp of every row over the sink and local window (the sparse kernel run on
// the mandatory lists, writing LSE only), then the Relative Attention Score test per (head, 64-row
// block, 32-key block). The caller owns every buffer; sizes come from the *Bytes helpers. Not
// thread-safe per buffer; launchers are reentrant.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/sparse_pattern.h"

namespace tandem::kernels::cuda {

inline constexpr int kFlashHeadDim = 128;
inline constexpr int kFlashQTile = 128;  // query rows per CTA
inline constexpr int kFlashKTile = 64;   // keys per pipelined tile
inline constexpr int kFlashWarpRows = 16;
inline constexpr int kFlashKStep = 16;  // keys per warp-level mask bit

struct FlashPrefillShape {
  int64_t n_tokens = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  float scale = 0.08838834764831845f;  // 1/sqrt(128); must be positive and finite
};

struct FlashPrefillTensors {
  const void* q = nullptr;  // bf16 [n, n_heads, 128]
  const void* k = nullptr;  // bf16 [n, n_kv_heads, 128]
  const void* v = nullptr;  // bf16 [n, n_kv_heads, 128]
  void* out = nullptr;      // bf16 [n, n_heads, 128]
};

// One visited key tile of a query tile: slot s holds keys chunk[s]*16 .. +15 (chunk -1: an empty
// slot), and bit w of warps[s] is set when warp w (rows w*16..+15 of the query tile) reads them.
struct FlashTileEntry {
  int32_t chunk[4];
  uint8_t warps[4];
};

// lists[(head * head_stride) * n_q_tiles + q_tile] has counts[...] entries starting at
// entries + list_index * max_entries, chunks in increasing order (only the last entry has empty
// slots). head_stride 0: all heads share the lists of head 0 (static patterns).
struct FlashTileLists {
  FlashTileEntry* entries = nullptr;
  int32_t* counts = nullptr;
  int64_t max_entries = 0;
  int head_stride = 1;
};

// A byte mask keep[mask_head][qb][kb] (nonzero = computed) over query blocks of q_block rows and key
// blocks of k_block keys, both multiples of 16 so that a warp's 16 rows and a 16-key step each fall
// in one block. mask_heads is 1 (shared by all heads) or n_heads.
struct FlashBlockMask {
  uint8_t* keep = nullptr;
  int q_block = 64;
  int k_block = 64;
  int64_t n_qb = 0;
  int64_t n_kb = 0;
  int mask_heads = 1;
};

inline int64_t FlashNumQTiles(int64_t n) { return (n + kFlashQTile - 1) / kFlashQTile; }
inline int64_t FlashNumKTiles(int64_t n) { return (n + kFlashKTile - 1) / kFlashKTile; }
inline int64_t FlashMaskBytes(int64_t n, int mask_heads, int q_block, int k_block) {
  return static_cast<int64_t>(mask_heads) * ((n + q_block - 1) / q_block) *
         ((n + k_block - 1) / k_block);
}
// Bytes of the entries and of the counts of lists for `list_heads` heads. Every q tile gets room
// for all n/64 tiles although a causal one needs at most its own index + 1: 1.34 GB of entries at
// 128K tokens and 32 heads, about half of it never written.
inline int64_t FlashTileEntriesBytes(int64_t n, int list_heads) {
  return static_cast<int64_t>(list_heads) * FlashNumQTiles(n) * FlashNumKTiles(n) *
         static_cast<int64_t>(sizeof(FlashTileEntry));
}
inline int64_t FlashTileCountsBytes(int64_t n, int list_heads) {
  return static_cast<int64_t>(list_heads) * FlashNumQTiles(n) * static_cast<int64_t>(sizeof(int32_t));
}

// cudaErrorInvalidValue when the shape is unsupported (n_tokens < 1 or >= 2^31, heads not a
// multiple of kv heads, null tensors).
cudaError_t LaunchFlashPrefillDense(const FlashPrefillShape& s, const FlashPrefillTensors& t,
                                    cudaStream_t stream);
cudaError_t LaunchFlashPrefillSparse(const FlashPrefillShape& s, const FlashPrefillTensors& t,
                                     const FlashTileLists& lists, cudaStream_t stream);
// Like the sparse launcher but writes only lse2[h * n + row] = log2 of the row's softmax sum over
// the visited keys, in units of scale * log2(e) * logit (-inf for a row with no key); t.out unused.
cudaError_t LaunchFlashPrefillLse(const FlashPrefillShape& s, const FlashPrefillTensors& t,
                                  const FlashTileLists& lists, float* lse2, cudaStream_t stream);

// Converts `mask` into lists with head_stride = (mask.mask_heads == 1 ? 0 : 1).
cudaError_t LaunchBuildTileLists(const FlashPrefillShape& s, const FlashBlockMask& mask,
                                 FlashTileLists* lists, cudaStream_t stream);

// PowerAttention's static pattern (sparse_pattern.h's PowerKeeps over c's power_* fields; the
// method field is not read) at block size c.power_block, a multiple of 16, into a shared mask
// (mask_heads = 1).
cudaError_t LaunchPowerMask(const FlashPrefillShape& s, const SparseConfig& c,
                            FlashBlockMask* mask, cudaStream_t stream);

// SALE's device buffers, all caller-owned; SaleWorkspaceBytes() is the one allocation that
// SaleWorkspaceCarve() cuts into these pointers (256-byte aligned).
struct SaleWorkspace {
  int8_t* q8 = nullptr;          // [n, n_heads, 128] in [-8, 7]
  float* q_scale = nullptr;      // [n, n_heads]
  float* q_mean_dot = nullptr;   // [n, n_heads]
  int8_t* k8 = nullptr;          // [n, n_kv_heads, 128] of k - mean, in [-8, 7]
  float* k_scale = nullptr;      // [n, n_kv_heads]
  float* k_mean = nullptr;       // [n_kv_heads, 128]
  float* k_partial = nullptr;    // [kSaleMeanChunks, n_kv_heads, 128]
  float* lse2 = nullptr;         // [n_heads, n]
};
inline constexpr int kSaleMeanChunks = 256;
size_t SaleWorkspaceBytes(const FlashPrefillShape& s);
SaleWorkspace SaleWorkspaceCarve(const FlashPrefillShape& s, void* base);

// 1. Per-head K mean, then int4-range Q and smoothed K with per-row scales, and q . mean(K).
cudaError_t LaunchSaleQuantize(const FlashPrefillShape& s, const FlashPrefillTensors& t,
                               const SaleWorkspace& ws, cudaStream_t stream);
// Steps 2 and 4 read c's sale_* fields (the method field is not read); this path runs
// sale_q_block 64 and sale_k_block 32 only (cudaErrorInvalidValue otherwise).
// 2. The mandatory blocks (sparse_pattern.h's SaleMandatory, causal) into `mask` (mask_heads =
// n_heads); every other block cleared.
cudaError_t LaunchSaleMandatoryMask(const FlashPrefillShape& s, const SparseConfig& c,
                                    FlashBlockMask* mask, cudaStream_t stream);
// 3. (caller) lists from the mandatory mask, then LaunchFlashPrefillLse into ws.lse2.
// 4. Sets mask blocks whose estimated relative attention score exceeds c.sale_threshold (> 0) for
// some row.
cudaError_t LaunchSaleEstimate(const FlashPrefillShape& s, const SparseConfig& c,
                               const SaleWorkspace& ws, const FlashBlockMask& mask,
                               cudaStream_t stream);

// Counts nonzero bytes of `mask` into *count (device, overwritten).
cudaError_t LaunchCountMask(const FlashBlockMask& mask, unsigned long long* count,
                            cudaStream_t stream);

}  // namespace tandem::kernels::cuda
