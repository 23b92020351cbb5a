// kernels/cuda/flash_prefill.cu
//
// The bf16 FA2-style prefill kernel of flash_prefill.h and its mask/list helpers. Fragment layouts
// are those of PTX mma.m16n8k16 (row.col): A rows lane/4 and +8, columns (lane%4)*2 and +8; B and C
// the same with n = lane/4 (B) or columns (lane%4)*2 (C). Shared-memory rows are 256 bytes (128
// bf16) and their sixteen 16-byte chunks are XOR-swizzled by row % 8 so that every ldmatrix phase
// (8 rows, same logical chunk) hits 8 distinct bank groups.
#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/cuda/flash_prefill.h"
#include "kernels/cuda/flash_prefill_mma.cuh"

namespace tandem::kernels::cuda {
namespace {

constexpr int kD = kFlashHeadDim;
constexpr int kBr = kFlashQTile;
constexpr int kBc = kFlashKTile;
constexpr int kWarps = kBr / kFlashWarpRows;  // 8
constexpr int kThreads = kWarps * 32;
constexpr int kStepsPerTile = kBc / kFlashKStep;  // 4 mask bits per warp and tile
constexpr int kRowBytes = kD * 2;
constexpr int kQBytes = kBr * kRowBytes;        // 32 KiB
constexpr int kKvStageBytes = kBc * kRowBytes;  // 16 KiB
constexpr int kSmemBytes = kQBytes + 4 * kKvStageBytes;  // Q + two stages of K and of V: 96 KiB
constexpr float kLog2e = 1.4426950408889634f;

static_assert(kWarps <= 8, "FlashTileEntry::warps holds one bit per warp in a byte");
static_assert(kStepsPerTile <= 8, "a warp's step bits fit the low bits of wbits");

struct FlashParams {
  const __nv_bfloat16* q;
  const __nv_bfloat16* k;
  const __nv_bfloat16* v;
  __nv_bfloat16* out;
  float* lse2;
  const FlashTileEntry* entries;
  const int32_t* counts;
  int64_t max_entries;
  int head_stride;
  int64_t n;
  int n_heads;
  int n_kv_heads;
  int group;
  int64_t n_qt;
  float scale_log2;
};

// cp.async of rows [first_row, first_row + kRows) of one head into a swizzled tile; rows past n are
// zero-filled (src-size 0) so that they contribute exact zeros.
template <int kRows>
__device__ __forceinline__ void LoadTile(uint32_t dst, const __nv_bfloat16* head_base,
                                         int64_t first_row, int64_t n, int64_t row_stride) {
#pragma unroll
  for (int i = 0; i < kRows * 16 / kThreads; ++i) {
    const int idx = static_cast<int>(threadIdx.x) + i * kThreads;
    const int row = idx >> 4, chunk = idx & 15;
    const int64_t tok = first_row + row;
    const bool valid = tok < n;
    CpAsync16(dst + SwizzledOffset(row, chunk),
              head_base + (valid ? tok : 0) * row_stride + chunk * 8, valid);
  }
}

// The same for a key tile gathered from four 16-key chunks: tile row r holds key
// key_base[r / 16] + r % 16 (key_base < 0: an empty slot, zero-filled like keys past n). Pass i
// of the 256 threads copies exactly slot i, so key_base is indexed by a constant and stays in
// registers.
__device__ __forceinline__ void LoadChunks(uint32_t dst, const __nv_bfloat16* head_base,
                                           const int64_t (&key_base)[kStepsPerTile], int64_t n,
                                           int64_t row_stride) {
  static_assert(kThreads * kStepsPerTile == kBc * 16, "one pass of the CTA per 16-key slot");
  const int in_slot = static_cast<int>(threadIdx.x >> 4), part = static_cast<int>(threadIdx.x & 15);
#pragma unroll
  for (int slot = 0; slot < kStepsPerTile; ++slot) {
    const int64_t tok = key_base[slot] + in_slot;
    const bool valid = key_base[slot] >= 0 && tok < n;
    CpAsync16(dst + SwizzledOffset(slot * kFlashKStep + in_slot, part),
              head_base + (valid ? tok : 0) * row_stride + part * 8, valid);
  }
}

// The first key of each slot of visit `it` (-1 for an empty slot) and this warp's 4 step bits.
template <bool kSparse>
__device__ __forceinline__ void VisitAt(const FlashTileEntry* list, int it, int warp,
                                        int64_t (&key_base)[kStepsPerTile], uint32_t& wbits) {
  wbits = 0;
#pragma unroll
  for (int s = 0; s < kStepsPerTile; ++s) {
    if constexpr (kSparse) {
      const int32_t chunk = list[it].chunk[s];
      key_base[s] = chunk < 0 ? -1 : static_cast<int64_t>(chunk) * kFlashKStep;
      // An empty slot reads nothing even if its warp byte were not cleared.
      const uint32_t on = chunk < 0 ? 0u : (static_cast<uint32_t>(list[it].warps[s]) >> warp) & 1u;
      wbits |= on << s;
    } else {
      key_base[s] = static_cast<int64_t>(it) * kBc + s * kFlashKStep;
      wbits |= 1u << s;
    }
  }
}

// S = Q K^T for the 16-key steps of one 64-key tile that `wbits` keeps. With every step kept the
// k-step loop is outermost, so 8 independent accumulators separate two products into the same
// one; with some steps skipped, a branch per step. (Step-outer with a branch per step for every
// tile left the dense kernel stalled on mma dependencies: ncu's top stall "wait", H100.)
template <bool kAllSteps>
__device__ __forceinline__ void ScoreTile(uint32_t k_stage, const uint32_t (&qf)[kD / 16][4],
                                          uint32_t wbits, int lane, float (&sc)[kBc / 8][4]) {
  const int krow_lane = ((lane >> 4) << 3) + (lane & 7);
  const int kchunk_lane = (lane >> 3) & 1;
  if constexpr (kAllSteps) {
#pragma unroll
    for (int ks = 0; ks < kD / 16; ++ks) {
#pragma unroll
      for (int kk = 0; kk < kStepsPerTile; ++kk) {
        uint32_t b[4];
        LdMatrixX4(k_stage + SwizzledOffset(kk * 16 + krow_lane, ks * 2 + kchunk_lane), b);
        MmaBf16(sc[2 * kk], qf[ks], b[0], b[1]);
        MmaBf16(sc[2 * kk + 1], qf[ks], b[2], b[3]);
      }
    }
  } else {
#pragma unroll
    for (int kk = 0; kk < kStepsPerTile; ++kk) {
      if (((wbits >> kk) & 1u) == 0) continue;
#pragma unroll
      for (int ks = 0; ks < kD / 16; ++ks) {
        uint32_t b[4];
        LdMatrixX4(k_stage + SwizzledOffset(kk * 16 + krow_lane, ks * 2 + kchunk_lane), b);
        MmaBf16(sc[2 * kk], qf[ks], b[0], b[1]);
        MmaBf16(sc[2 * kk + 1], qf[ks], b[2], b[3]);
      }
    }
  }
}

// O += P V over the kept 16-key steps; P (the exponentiated scores) goes from the accumulator
// layout straight into A fragments.
template <bool kAllSteps>
__device__ __forceinline__ void AccumulatePv(uint32_t v_stage, const float (&sc)[kBc / 8][4],
                                             uint32_t wbits, int lane, float (&o)[kD / 8][4]) {
#pragma unroll
  for (int kk = 0; kk < kStepsPerTile; ++kk) {
    if (!kAllSteps && ((wbits >> kk) & 1u) == 0) continue;
    const uint32_t a[4] = {PackBf16(sc[2 * kk][0], sc[2 * kk][1]),
                           PackBf16(sc[2 * kk][2], sc[2 * kk][3]),
                           PackBf16(sc[2 * kk + 1][0], sc[2 * kk + 1][1]),
                           PackBf16(sc[2 * kk + 1][2], sc[2 * kk + 1][3])};
    const int vrow = kk * 16 + (((lane >> 3) & 1) << 3) + (lane & 7);
#pragma unroll
    for (int dn = 0; dn < kD / 16; ++dn) {
      uint32_t b[4];
      LdMatrixX4Trans(v_stage + SwizzledOffset(vrow, dn * 2 + (lane >> 4)), b);
      MmaBf16(o[2 * dn], a, b[0], b[1]);
      MmaBf16(o[2 * dn + 1], a, b[2], b[3]);
    }
  }
}

// kSparse: walk the (head, q tile) list; else every causal tile with all bits set. kLseOnly: no V,
// no P.V, write lse2 instead of O.
template <bool kSparse, bool kLseOnly>
__global__ void __launch_bounds__(kThreads, 1) FlashPrefillKernel(const FlashParams p) {
  extern __shared__ __align__(128) uint8_t smem[];
  const uint32_t s_q = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  const uint32_t s_k = s_q + kQBytes;
  const uint32_t s_v = s_k + 2 * kKvStageBytes;
  const int warp = static_cast<int>(threadIdx.x >> 5);
  const int lane = static_cast<int>(threadIdx.x & 31);
  // Heaviest (last) query tiles first; the heads of one KV group run side by side, sharing K/V in
  // L2.
  const int64_t id = blockIdx.x;
  const int h = static_cast<int>(id % p.n_heads);
  const int64_t qt = p.n_qt - 1 - id / p.n_heads;
  const int g = h / p.group;
  const int64_t q0 = qt * kBr;
  const int64_t last_row = min(q0 + kBr, p.n) - 1;
  const int64_t q_stride = static_cast<int64_t>(p.n_heads) * kD;
  const int64_t kv_stride = static_cast<int64_t>(p.n_kv_heads) * kD;
  const __nv_bfloat16* q_head = p.q + static_cast<int64_t>(h) * kD;
  const __nv_bfloat16* k_head = p.k + static_cast<int64_t>(g) * kD;
  const __nv_bfloat16* v_head = p.v + static_cast<int64_t>(g) * kD;

  int count;
  const FlashTileEntry* list = nullptr;
  if constexpr (kSparse) {
    const int64_t li = static_cast<int64_t>(h) * p.head_stride * p.n_qt + qt;
    count = p.counts[li];
    list = p.entries + li * p.max_entries;
  } else {
    count = static_cast<int>(last_row / kBc + 1);
  }

  const int64_t warp_first = q0 + warp * kFlashWarpRows;
  const int64_t warp_last = warp_first + kFlashWarpRows - 1;
  const int64_t row_a = warp_first + (lane >> 2);
  const int64_t row_b = row_a + 8;

  float o[kD / 8][4];
#pragma unroll
  for (int i = 0; i < kD / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
  float m_a = kNegInf, m_b = kNegInf, l_a = 0.0f, l_b = 0.0f;
  uint32_t qf[kD / 16][4];

  int64_t key_base[kStepsPerTile] = {-1, -1, -1, -1};
  uint32_t wbits = 0;
  if (count > 0) {
    LoadTile<kBr>(s_q, q_head, q0, p.n, q_stride);
    VisitAt<kSparse>(list, 0, warp, key_base, wbits);
    LoadChunks(s_k, k_head, key_base, p.n, kv_stride);
    if constexpr (!kLseOnly) LoadChunks(s_v, v_head, key_base, p.n, kv_stride);
  }
  CpAsyncCommit();

  for (int it = 0; it < count; ++it) {
    const int stage = it & 1;
    int64_t next_base[kStepsPerTile] = {-1, -1, -1, -1};
    uint32_t next_bits = 0;
    if (it + 1 < count) {
      VisitAt<kSparse>(list, it + 1, warp, next_base, next_bits);
      LoadChunks(s_k + (stage ^ 1) * kKvStageBytes, k_head, next_base, p.n, kv_stride);
      if constexpr (!kLseOnly) {
        LoadChunks(s_v + (stage ^ 1) * kKvStageBytes, v_head, next_base, p.n, kv_stride);
      }
    }
    CpAsyncCommit();
    CpAsyncWait<1>();
    __syncthreads();
    if (it == 0) {
#pragma unroll
      for (int ks = 0; ks < kD / 16; ++ks) {
        const int row = warp * kFlashWarpRows + (lane & 15);
        LdMatrixX4(s_q + SwizzledOffset(row, ks * 2 + (lane >> 4)), qf[ks]);
      }
    }

    int64_t top_key = -1;  // the last key of the last kept step
#pragma unroll
    for (int s = 0; s < kStepsPerTile; ++s) {
      if (key_base[s] > warp_last) wbits &= ~(1u << s);  // wholly above the diagonal
      if ((wbits >> s) & 1u) top_key = key_base[s] + kFlashKStep - 1;
    }
    if (warp_first >= p.n) wbits = 0;
    if (wbits != 0) {  // warp-uniform
      const uint32_t k_stage = s_k + stage * kKvStageBytes;
      float sc[kBc / 8][4];
#pragma unroll
      for (int i = 0; i < kBc / 8; ++i) sc[i][0] = sc[i][1] = sc[i][2] = sc[i][3] = 0.0f;
      if (wbits == 0xFu) {
        ScoreTile<true>(k_stage, qf, wbits, lane, sc);
      } else {
        ScoreTile<false>(k_stage, qf, wbits, lane, sc);
      }
      // Mask skipped steps, keys above the diagonal and keys past n (interior tiles need none);
      // the scale to the log2 domain is folded into the exponent's FMA below.
      if (wbits != 0xFu || top_key > warp_first || top_key >= p.n) {
#pragma unroll
        for (int nt = 0; nt < kBc / 8; ++nt) {
          const bool step_on = ((wbits >> (nt >> 1)) & 1u) != 0;
          const int64_t col = key_base[nt >> 1] + (nt & 1) * 8 + (lane & 3) * 2;
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int64_t row = e < 2 ? row_a : row_b;
            const int64_t key = col + (e & 1);
            const bool ok = step_on && key < p.n && key <= row;
            sc[nt][e] = ok ? sc[nt][e] : kNegInf;
          }
        }
      }
      float mx_a = kNegInf, mx_b = kNegInf;
#pragma unroll
      for (int nt = 0; nt < kBc / 8; ++nt) {
        mx_a = fmaxf(mx_a, fmaxf(sc[nt][0], sc[nt][1]));
        mx_b = fmaxf(mx_b, fmaxf(sc[nt][2], sc[nt][3]));
      }
      mx_a = fmaxf(mx_a, __shfl_xor_sync(0xFFFFFFFFu, mx_a, 1));
      mx_a = fmaxf(mx_a, __shfl_xor_sync(0xFFFFFFFFu, mx_a, 2));
      mx_b = fmaxf(mx_b, __shfl_xor_sync(0xFFFFFFFFu, mx_b, 1));
      mx_b = fmaxf(mx_b, __shfl_xor_sync(0xFFFFFFFFu, mx_b, 2));
      // Running maxima are in the log2 domain (scale_log2 > 0, so the max commutes with it).
      const float new_a = fmaxf(m_a, mx_a * p.scale_log2), new_b = fmaxf(m_b, mx_b * p.scale_log2);
      // A row with no key yet keeps max -inf; subtracting 0 then gives exp2(-inf) = 0, not NaN.
      const float base_a = new_a == kNegInf ? 0.0f : new_a;
      const float base_b = new_b == kNegInf ? 0.0f : new_b;
      const float corr_a = exp2f(m_a - base_a), corr_b = exp2f(m_b - base_b);
      m_a = new_a;
      m_b = new_b;
      float sum_a = 0.0f, sum_b = 0.0f;
#pragma unroll
      for (int nt = 0; nt < kBc / 8; ++nt) {
        sc[nt][0] = exp2f(fmaf(sc[nt][0], p.scale_log2, -base_a));
        sc[nt][1] = exp2f(fmaf(sc[nt][1], p.scale_log2, -base_a));
        sc[nt][2] = exp2f(fmaf(sc[nt][2], p.scale_log2, -base_b));
        sc[nt][3] = exp2f(fmaf(sc[nt][3], p.scale_log2, -base_b));
        sum_a += sc[nt][0] + sc[nt][1];
        sum_b += sc[nt][2] + sc[nt][3];
      }
      l_a = l_a * corr_a + sum_a;
      l_b = l_b * corr_b + sum_b;
      if constexpr (!kLseOnly) {
#pragma unroll
        for (int dn = 0; dn < kD / 8; ++dn) {
          o[dn][0] *= corr_a;
          o[dn][1] *= corr_a;
          o[dn][2] *= corr_b;
          o[dn][3] *= corr_b;
        }
        const uint32_t v_stage = s_v + stage * kKvStageBytes;
        if (wbits == 0xFu) {
          AccumulatePv<true>(v_stage, sc, wbits, lane, o);
        } else {
          AccumulatePv<false>(v_stage, sc, wbits, lane, o);
        }
      }
    }
    __syncthreads();  // the next iteration's prefetch overwrites this stage
#pragma unroll
    for (int s = 0; s < kStepsPerTile; ++s) key_base[s] = next_base[s];
    wbits = next_bits;
  }

  // Each thread summed its own columns; the quad holds the whole row.
  l_a += __shfl_xor_sync(0xFFFFFFFFu, l_a, 1);
  l_a += __shfl_xor_sync(0xFFFFFFFFu, l_a, 2);
  l_b += __shfl_xor_sync(0xFFFFFFFFu, l_b, 1);
  l_b += __shfl_xor_sync(0xFFFFFFFFu, l_b, 2);
  if constexpr (kLseOnly) {
    if ((lane & 3) == 0) {
      float* lse = p.lse2 + static_cast<int64_t>(h) * p.n;
      if (row_a < p.n) lse[row_a] = l_a > 0.0f ? m_a + log2f(l_a) : kNegInf;
      if (row_b < p.n) lse[row_b] = l_b > 0.0f ? m_b + log2f(l_b) : kNegInf;
    }
  } else {
    const float inv_a = l_a > 0.0f ? 1.0f / l_a : 0.0f;
    const float inv_b = l_b > 0.0f ? 1.0f / l_b : 0.0f;
    __nv_bfloat16* out_a = p.out + (row_a * p.n_heads + h) * kD + (lane & 3) * 2;
    __nv_bfloat16* out_b = p.out + (row_b * p.n_heads + h) * kD + (lane & 3) * 2;
#pragma unroll
    for (int dn = 0; dn < kD / 8; ++dn) {
      if (row_a < p.n) {
        *reinterpret_cast<uint32_t*>(out_a + dn * 8) = PackBf16(o[dn][0] * inv_a, o[dn][1] * inv_a);
      }
      if (row_b < p.n) {
        *reinterpret_cast<uint32_t*>(out_b + dn * 8) = PackBf16(o[dn][2] * inv_b, o[dn][3] * inv_b);
      }
    }
  }
}

// The scale must be positive: the kernel takes row maxima of unscaled scores.
bool ShapeOk(const FlashPrefillShape& s) {
  return s.n_tokens >= 1 && s.n_tokens < (int64_t{1} << 31) && s.n_heads >= 1 &&
         s.n_kv_heads >= 1 && s.n_heads % s.n_kv_heads == 0 && s.scale > 0.0f &&
         s.scale < __builtin_huge_valf();
}

template <bool kSparse, bool kLseOnly>
cudaError_t Launch(const FlashPrefillShape& s, const FlashPrefillTensors& t,
                   const FlashTileLists* lists, float* lse2, cudaStream_t stream) {
  if (!ShapeOk(s) || t.q == nullptr || t.k == nullptr || (!kLseOnly && t.v == nullptr) ||
      (!kLseOnly && t.out == nullptr) || (kLseOnly && lse2 == nullptr) ||
      (kSparse && (lists == nullptr || lists->entries == nullptr || lists->counts == nullptr))) {
    return cudaErrorInvalidValue;
  }
  auto kernel = FlashPrefillKernel<kSparse, kLseOnly>;
  // Idempotent and cheap; done per launch so that no global init order matters.
  cudaError_t err =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes);
  if (err != cudaSuccess) return err;
  FlashParams p{};
  p.q = static_cast<const __nv_bfloat16*>(t.q);
  p.k = static_cast<const __nv_bfloat16*>(t.k);
  p.v = static_cast<const __nv_bfloat16*>(t.v);
  p.out = static_cast<__nv_bfloat16*>(t.out);
  p.lse2 = lse2;
  if (kSparse) {
    p.entries = lists->entries;
    p.counts = lists->counts;
    p.max_entries = lists->max_entries;
    p.head_stride = lists->head_stride;
  }
  p.n = s.n_tokens;
  p.n_heads = s.n_heads;
  p.n_kv_heads = s.n_kv_heads;
  p.group = s.n_heads / s.n_kv_heads;
  p.n_qt = FlashNumQTiles(s.n_tokens);
  p.scale_log2 = s.scale * kLog2e;
  const int64_t blocks = p.n_qt * s.n_heads;
  if (blocks > 0x7FFFFFFF) return cudaErrorInvalidValue;
  kernel<<<static_cast<unsigned int>(blocks), kThreads, kSmemBytes, stream>>>(p);
  return cudaGetLastError();
}

struct ListParams {
  const uint8_t* keep;
  int q_block, k_block;
  int64_t n_qb, n_kb;
  FlashTileEntry* entries;
  int32_t* counts;
  int64_t max_entries;
  int64_t n, n_qt, n_lists;
};

// One warp per (mask head, q tile): 32 chunks at a time, each with the warps that read it, compacted
// with a ballot into consecutive slots; the last entry's unused slots are marked empty.
__global__ void BuildTileListsKernel(const ListParams p) {
  const int64_t li = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = static_cast<int>(threadIdx.x & 31);
  if (li >= p.n_lists) return;  // warp-uniform
  const int64_t hm = li / p.n_qt, qt = li % p.n_qt;
  const int64_t q0 = qt * kBr;
  const int64_t last_row = min(q0 + kBr, p.n) - 1;
  const int64_t n_chunks = last_row / kFlashKStep + 1;
  FlashTileEntry* out = p.entries + li * p.max_entries;
  int64_t written = 0;
  for (int64_t base = 0; base < n_chunks; base += 32) {
    const int64_t chunk = base + lane;
    uint32_t warps = 0;
    if (chunk < n_chunks) {
      const int64_t key = chunk * kFlashKStep;
      for (int w = 0; w < kWarps; ++w) {
        const int64_t row0 = q0 + w * kFlashWarpRows;
        if (row0 >= p.n) break;
        if (key > row0 + kFlashWarpRows - 1) continue;  // wholly above this warp's diagonal
        if (p.keep[(hm * p.n_qb + row0 / p.q_block) * p.n_kb + key / p.k_block] != 0) {
          warps |= 1u << w;
        }
      }
    }
    const uint32_t ballot = __ballot_sync(0xFFFFFFFFu, warps != 0);
    if (warps != 0) {
      const int64_t pos = written + __popc(ballot & ((1u << lane) - 1u));
      out[pos >> 2].chunk[pos & 3] = static_cast<int32_t>(chunk);
      out[pos >> 2].warps[pos & 3] = static_cast<uint8_t>(warps);
    }
    written += __popc(ballot);
  }
  if (lane == 0) {
    for (int64_t pos = written; (pos & 3) != 0; ++pos) {
      out[pos >> 2].chunk[pos & 3] = -1;
      out[pos >> 2].warps[pos & 3] = 0;
    }
    p.counts[li] = static_cast<int32_t>((written + 3) >> 2);
  }
}

struct PowerParams {
  uint8_t* keep;
  int64_t n_qb, n_kb;
  SparseConfig config;
};

__global__ void PowerMaskKernel(const PowerParams p) {
  const int64_t total = p.n_qb * p.n_kb;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t qb = i / p.n_kb, kb = i % p.n_kb;
    p.keep[i] = PowerKeeps(p.config, qb, kb) ? 1 : 0;
  }
}

__global__ void CountMaskKernel(const uint8_t* keep, int64_t total, unsigned long long* count) {
  unsigned long long c = 0;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    c += keep[i] != 0 ? 1 : 0;
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) c += __shfl_xor_sync(0xFFFFFFFFu, c, o);
  if ((threadIdx.x & 31) == 0 && c != 0) atomicAdd(count, c);
}

}  // namespace

cudaError_t LaunchFlashPrefillDense(const FlashPrefillShape& s, const FlashPrefillTensors& t,
                                    cudaStream_t stream) {
  return Launch<false, false>(s, t, nullptr, nullptr, stream);
}

cudaError_t LaunchFlashPrefillSparse(const FlashPrefillShape& s, const FlashPrefillTensors& t,
                                     const FlashTileLists& lists, cudaStream_t stream) {
  return Launch<true, false>(s, t, &lists, nullptr, stream);
}

cudaError_t LaunchFlashPrefillLse(const FlashPrefillShape& s, const FlashPrefillTensors& t,
                                  const FlashTileLists& lists, float* lse2, cudaStream_t stream) {
  return Launch<true, true>(s, t, &lists, lse2, stream);
}

cudaError_t LaunchBuildTileLists(const FlashPrefillShape& s, const FlashBlockMask& mask,
                                 FlashTileLists* lists, cudaStream_t stream) {
  if (!ShapeOk(s) || mask.keep == nullptr || lists == nullptr || lists->entries == nullptr ||
      lists->counts == nullptr || mask.q_block < 16 || mask.q_block % 16 != 0 ||
      mask.k_block < 16 || mask.k_block % 16 != 0 ||
      (mask.mask_heads != 1 && mask.mask_heads != s.n_heads) ||
      mask.n_qb < (s.n_tokens + mask.q_block - 1) / mask.q_block ||
      mask.n_kb < (s.n_tokens + mask.k_block - 1) / mask.k_block) {
    return cudaErrorInvalidValue;
  }
  lists->max_entries = FlashNumKTiles(s.n_tokens);
  lists->head_stride = mask.mask_heads == 1 ? 0 : 1;
  ListParams p{};
  p.keep = mask.keep;
  p.q_block = mask.q_block;
  p.k_block = mask.k_block;
  p.n_qb = mask.n_qb;
  p.n_kb = mask.n_kb;
  p.entries = lists->entries;
  p.counts = lists->counts;
  p.max_entries = lists->max_entries;
  p.n = s.n_tokens;
  p.n_qt = FlashNumQTiles(s.n_tokens);
  p.n_lists = p.n_qt * mask.mask_heads;
  const int64_t threads = p.n_lists * 32;
  BuildTileListsKernel<<<static_cast<unsigned int>((threads + 127) / 128), 128, 0, stream>>>(p);
  return cudaGetLastError();
}

cudaError_t LaunchPowerMask(const FlashPrefillShape& s, const SparseConfig& c,
                            FlashBlockMask* mask, cudaStream_t stream) {
  const int block = c.power_block;
  if (!ShapeOk(s) || mask == nullptr || mask->keep == nullptr || block < 16 || block % 16 != 0 ||
      c.power_window_blocks < 0 || c.power_sink_blocks < 0) {
    return cudaErrorInvalidValue;
  }
  mask->q_block = block;
  mask->k_block = block;
  mask->n_qb = (s.n_tokens + block - 1) / block;
  mask->n_kb = mask->n_qb;
  mask->mask_heads = 1;
  const PowerParams p{mask->keep, mask->n_qb, mask->n_kb, c};
  PowerMaskKernel<<<1024, 256, 0, stream>>>(p);
  return cudaGetLastError();
}

cudaError_t LaunchCountMask(const FlashBlockMask& mask, unsigned long long* count,
                            cudaStream_t stream) {
  if (mask.keep == nullptr || count == nullptr) return cudaErrorInvalidValue;
  cudaError_t err = cudaMemsetAsync(count, 0, sizeof(*count), stream);
  if (err != cudaSuccess) return err;
  const int64_t total = static_cast<int64_t>(mask.mask_heads) * mask.n_qb * mask.n_kb;
  CountMaskKernel<<<1024, 256, 0, stream>>>(mask.keep, total, count);
  return cudaGetLastError();
}

}  // namespace tandem::kernels::cuda
