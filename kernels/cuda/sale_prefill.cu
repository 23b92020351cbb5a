// kernels/cuda/sale_prefill.cu
//
// SALE's estimate on the bf16 path (flash_prefill.h): K mean per KV head, int4-range quantization
// of Q and smoothed K (stored as int8, per-row scales, round half to even, as cpu_ref's
// sale_quant.cc), the mandatory mask, and the estimate-and-select kernel. The estimate multiplies
// int8 operands with mma.sync m16n8k32 s8 (Hopper has no int4 mma); values lie in [-8, 7], so the
// integer dot products equal the int4 ones exactly. Both operands are read with 16-byte loads in a
// k order permuted the same way for A and B, which leaves every dot product unchanged.
#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/cuda/flash_prefill.h"
#include "kernels/cuda/flash_prefill_mma.cuh"

namespace tandem::kernels::cuda {
namespace {

constexpr int kD = kFlashHeadDim;
constexpr float kLog2e = 1.4426950408889634f;
constexpr int kEstimateHeads = 4;   // heads per CTA, each with its own warps over one 64-row block
constexpr int kEstimateMTiles = 2;  // m16 tiles (16 query rows each) per warp
static_assert(4 % kEstimateMTiles == 0, "a head's 64 rows split evenly over its warps");
constexpr int kWarpsPerHead = 4 / kEstimateMTiles;
constexpr int kEstimateThreads = kEstimateHeads * kWarpsPerHead * 32;
constexpr int kSaleQBlock = 64;
constexpr int kSaleKBlock = 32;

int64_t Align256(int64_t v) { return (v + 255) / 256 * 256; }

// The block sizes the kernels below are built for, and a sink and window the rules can use.
bool SaleConfigOk(const SparseConfig& c) {
  return c.sale_q_block == kSaleQBlock && c.sale_k_block == kSaleKBlock &&
         c.sale_local_window >= 0 && c.sale_sink >= 0;
}

// Partial sums of K over a chunk of tokens per (chunk, KV head, dim), in f32.
__global__ void KMeanPartialKernel(const __nv_bfloat16* k, int64_t n, int n_kv_heads,
                                   float* partial) {
  const int chunk = static_cast<int>(blockIdx.x), g = static_cast<int>(blockIdx.y);
  const int d = static_cast<int>(threadIdx.x);
  const int64_t per = (n + kSaleMeanChunks - 1) / kSaleMeanChunks;
  const int64_t t0 = chunk * per, t1 = min(n, t0 + per);
  float s = 0.0f;
  for (int64_t t = t0; t < t1; ++t) s += __bfloat162float(k[(t * n_kv_heads + g) * kD + d]);
  partial[(static_cast<int64_t>(chunk) * n_kv_heads + g) * kD + d] = s;
}

__global__ void KMeanFinalKernel(const float* partial, int64_t n, int n_kv_heads, float* mean) {
  const int g = static_cast<int>(blockIdx.x), d = static_cast<int>(threadIdx.x);
  float s = 0.0f;
  for (int c = 0; c < kSaleMeanChunks; ++c) s += partial[(c * n_kv_heads + g) * kD + d];
  mean[g * kD + d] = s / static_cast<float>(n);
}

// One warp per row of 128: lane holds dims lane*4..+3. Per-row symmetric int4 in int8 bytes.
// kSmoothK: subtract the KV head's mean first; else (Q) also write q . mean(K).
template <bool kSmoothK>
__global__ void QuantizeRowsKernel(const __nv_bfloat16* x, int64_t rows, int heads, int group,
                                   const float* mean, int8_t* q8, float* scale, float* mean_dot) {
  const int64_t r = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = static_cast<int>(threadIdx.x & 31);
  if (r >= rows) return;  // warp-uniform
  const int g = static_cast<int>(r % heads) / group;
  const uint2 raw = *reinterpret_cast<const uint2*>(x + r * kD + lane * 4);
  const __nv_bfloat162 p0 = *reinterpret_cast<const __nv_bfloat162*>(&raw.x);
  const __nv_bfloat162 p1 = *reinterpret_cast<const __nv_bfloat162*>(&raw.y);
  float v[4] = {__low2float(p0), __high2float(p0), __low2float(p1), __high2float(p1)};
  const float* mu = mean + g * kD + lane * 4;
  float amax = 0.0f, dot = 0.0f;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    if constexpr (kSmoothK) v[j] = v[j] - mu[j];
    if constexpr (!kSmoothK) dot += v[j] * mu[j];
    amax = fmaxf(amax, fabsf(v[j]));
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    amax = fmaxf(amax, __shfl_xor_sync(0xFFFFFFFFu, amax, o));
    if constexpr (!kSmoothK) dot += __shfl_xor_sync(0xFFFFFFFFu, dot, o);
  }
  const float s = amax > 0.0f ? amax / 7.0f : 1.0f;
  uint32_t packed = 0;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    float qv = rintf(v[j] / s);
    qv = isfinite(qv) ? fminf(fmaxf(qv, -8.0f), 7.0f) : 0.0f;
    packed |= (static_cast<uint32_t>(static_cast<int32_t>(qv)) & 0xFFu) << (8 * j);
  }
  *reinterpret_cast<uint32_t*>(q8 + r * kD + lane * 4) = packed;
  if (lane == 0) {
    scale[r] = amax > 0.0f ? s : 0.0f;
    if constexpr (!kSmoothK) mean_dot[r] = dot;
  }
}

struct MandatoryParams {
  uint8_t* keep;
  int64_t n, n_qb, n_kb;
  int n_heads;
  SparseConfig config;
};

// One thread per (head, q block): sets the sink and local-window blocks up to the causal end.
__global__ void MandatoryMaskKernel(const MandatoryParams p) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= p.n_heads * p.n_qb) return;
  const int64_t qb = i % p.n_qb;
  uint8_t* row = p.keep + i * p.n_kb;
  const int64_t last = min(qb * kSaleQBlock + kSaleQBlock - 1, p.n - 1) / kSaleKBlock;
  const int64_t sink_end = min(SaleSinkEndBlock(p.config), last + 1);
  for (int64_t kb = 0; kb < sink_end; ++kb) row[kb] = 1;
  for (int64_t kb = SaleWindowBeginBlock(p.config, qb); kb <= last; ++kb) row[kb] = 1;
}

struct EstimateParams {
  const int8_t* q8;
  const float* q_scale;
  const float* q_mean_dot;
  const int8_t* k8;
  const float* k_scale;
  const float* lse2;
  uint8_t* keep;
  int64_t n, n_qb, n_kb;
  int n_heads, n_kv_heads, group, n_head_quads;
  SparseConfig config;
  float scale_log2, log2_tau;
};

// The two 32-bit words a lane contributes to k-step ks from a row's two 16-byte loads (the same
// permutation of k for A and B).
__device__ __forceinline__ uint32_t FragLo(const uint4 (&v)[2], int ks) {
  return (ks & 1) ? v[ks >> 1].z : v[ks >> 1].x;
}
__device__ __forceinline__ uint32_t FragHi(const uint4 (&v)[2], int ks) {
  return (ks & 1) ? v[ks >> 1].w : v[ks >> 1].y;
}
__device__ __forceinline__ void LoadRow(const int8_t* row, int quad, bool valid, uint4 (&v)[2]) {
  if (valid) {
    v[0] = *reinterpret_cast<const uint4*>(row + quad * 16);
    v[1] = *reinterpret_cast<const uint4*>(row + 64 + quad * 16);
  } else {
    v[0] = v[1] = make_uint4(0, 0, 0, 0);
  }
}

// The key-side operands of one 32-key block as this lane reads them: its key row's two 16-byte
// loads per 8-key n-tile, and the scales of the two keys whose logits it holds per n-tile.
struct KeyBlockRegs {
  uint4 rows[4][2];
  float scale[4][2];
};

__device__ __forceinline__ void LoadKeyBlock(const EstimateParams& p, int64_t kb, int g, int lane,
                                             KeyBlockRegs& r) {
#pragma unroll
  for (int nt = 0; nt < 4; ++nt) {
    const int64_t key = kb * kSaleKBlock + nt * 8 + (lane >> 2);  // < n: block ends before rows
    LoadRow(p.k8 + (key * p.n_kv_heads + g) * kD, lane & 3, true, r.rows[nt]);
    const int64_t key2 = kb * kSaleKBlock + nt * 8 + (lane & 3) * 2;
    r.scale[nt][0] = p.k_scale[key2 * p.n_kv_heads + g];
    r.scale[nt][1] = p.k_scale[(key2 + 1) * p.n_kv_heads + g];
  }
}

// CTA = (4 consecutive heads, one 64-row query block), heaviest blocks first; each head gets
// kWarpsPerHead warps of kEstimateMTiles m16 tiles. For every non-mandatory causal key block of 32
// a warp computes its rows' estimated logits and sets keep when some row clears its threshold. The
// test est * scale_log2 > lse2 + log2(tau), with est = acc * q_scale * k_scale + q . mean(K), is
// rearranged per row into acc * k_scale > bound, so each logit costs a convert, a multiply and a
// max. The next block's K is loaded right after the current one's products, under the test.
// History (bench/gpu_prefill_attention_bench, 128K tokens; bench/gpu_prefill_notes.md): re-reading
// keep[] before each block (a dependent global load): 259 ms on an H100; without it, with the
// rearranged test and the prefetch: 119 ms (H100; ncu: L1-bound, memory throughput 82%). 64 rows
// per warp (each K fragment feeding four products) against 32, back to back on one H200: 131.6
// vs 129.2 ms, so the simpler 32 stays. Final, H100: the kernel alone 115 ms = 7.0e13 int8 ops at
// ~610 TOP/s, ncu's top stall "math pipe throttle"; going further needs wgmma (sm_90a).
__global__ void __launch_bounds__(kEstimateThreads) SaleEstimateKernel(const EstimateParams p) {
  const int warp = static_cast<int>(threadIdx.x >> 5), lane = static_cast<int>(threadIdx.x & 31);
  const int64_t qb = p.n_qb - 1 - blockIdx.x / p.n_head_quads;
  const int h = static_cast<int>(blockIdx.x % p.n_head_quads) * 4 + warp / kWarpsPerHead;
  if (h >= p.n_heads) return;  // warp-uniform; no block-level sync below
  const int g = h / p.group;
  const int quad = lane & 3;
  const int64_t row0 = qb * kSaleQBlock + (warp % kWarpsPerHead) * kEstimateMTiles * 16;

  // A fragments and the bound of the rows this lane holds: (mt, half) -> row0 + mt*16 + lane/4
  // + half*8.
  uint32_t a[kEstimateMTiles][4][4];
  float bound[kEstimateMTiles][2];
#pragma unroll
  for (int mt = 0; mt < kEstimateMTiles; ++mt) {
    uint4 va[2], vb[2];
    const int64_t ra = row0 + mt * 16 + (lane >> 2), rb = ra + 8;
    LoadRow(p.q8 + (ra * p.n_heads + h) * kD, quad, ra < p.n, va);
    LoadRow(p.q8 + (rb * p.n_heads + h) * kD, quad, rb < p.n, vb);
#pragma unroll
    for (int ks = 0; ks < 4; ++ks) {
      a[mt][ks][0] = FragLo(va, ks);
      a[mt][ks][1] = FragLo(vb, ks);
      a[mt][ks][2] = FragHi(va, ks);
      a[mt][ks][3] = FragHi(vb, ks);
    }
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int64_t r = half == 0 ? ra : rb;
      const float lse = r < p.n ? p.lse2[static_cast<int64_t>(h) * p.n + r] : kNegInf;
      // No row, or no mandatory mass (impossible with a causal diagonal): nothing can clear it.
      float b = __builtin_huge_valf();
      if (lse != kNegInf) {
        const float q_scale = p.q_scale[r * p.n_heads + h];
        const float rest = lse + p.log2_tau - p.q_mean_dot[r * p.n_heads + h] * p.scale_log2;
        if (q_scale > 0.0f) {
          b = rest / (q_scale * p.scale_log2);
        } else if (rest < 0.0f) {  // an all-zero query row: every logit equals q . mean(K)
          b = kNegInf;
        }
      }
      bound[mt][half] = b;
    }
  }

  // The non-mandatory key blocks: between the sink and the local window.
  const int64_t kb_lo = SaleSinkEndBlock(p.config);
  const int64_t kb_hi = SaleWindowBeginBlock(p.config, qb);  // exclusive
  uint8_t* keep_row = p.keep + (static_cast<int64_t>(h) * p.n_qb + qb) * p.n_kb;
  KeyBlockRegs kr;
  if (kb_lo < kb_hi) LoadKeyBlock(p, kb_lo, g, lane, kr);
  for (int64_t kb = kb_lo; kb < kb_hi; ++kb) {
    int acc[kEstimateMTiles][4][4];
#pragma unroll
    for (int mt = 0; mt < kEstimateMTiles; ++mt)
#pragma unroll
      for (int nt = 0; nt < 4; ++nt) {
        acc[mt][nt][0] = acc[mt][nt][1] = acc[mt][nt][2] = acc[mt][nt][3] = 0;
      }
    // k-step outermost: 16 independent accumulators between two products into the same one.
#pragma unroll
    for (int ks = 0; ks < 4; ++ks) {
#pragma unroll
      for (int nt = 0; nt < 4; ++nt) {
        const uint32_t b0 = FragLo(kr.rows[nt], ks), b1 = FragHi(kr.rows[nt], ks);
#pragma unroll
        for (int mt = 0; mt < kEstimateMTiles; ++mt) MmaS8(acc[mt][nt], a[mt][ks], b0, b1);
      }
    }
    float key_scale[4][2];
#pragma unroll
    for (int nt = 0; nt < 4; ++nt) {
      key_scale[nt][0] = kr.scale[nt][0];
      key_scale[nt][1] = kr.scale[nt][1];
    }
    if (kb + 1 < kb_hi) LoadKeyBlock(p, kb + 1, g, lane, kr);
    bool hit = false;
#pragma unroll
    for (int mt = 0; mt < kEstimateMTiles; ++mt) {
      float top_a = kNegInf, top_b = kNegInf;
#pragma unroll
      for (int nt = 0; nt < 4; ++nt) {
        top_a = fmaxf(top_a, fmaxf(static_cast<float>(acc[mt][nt][0]) * key_scale[nt][0],
                                   static_cast<float>(acc[mt][nt][1]) * key_scale[nt][1]));
        top_b = fmaxf(top_b, fmaxf(static_cast<float>(acc[mt][nt][2]) * key_scale[nt][0],
                                   static_cast<float>(acc[mt][nt][3]) * key_scale[nt][1]));
      }
      hit = hit || top_a > bound[mt][0] || top_b > bound[mt][1];
    }
    if (__any_sync(0xFFFFFFFFu, hit) && lane == 0) keep_row[kb] = 1;
  }
}

}  // namespace

size_t SaleWorkspaceBytes(const FlashPrefillShape& s) {
  const int64_t n = s.n_tokens, qh = n * s.n_heads, kh = n * s.n_kv_heads;
  return static_cast<size_t>(Align256(qh * kD) + 2 * Align256(qh * 4) + Align256(kh * kD) +
                             Align256(kh * 4) + Align256(int64_t{s.n_kv_heads} * kD * 4) +
                             Align256(int64_t{kSaleMeanChunks} * s.n_kv_heads * kD * 4) +
                             Align256(qh * 4));
}

SaleWorkspace SaleWorkspaceCarve(const FlashPrefillShape& s, void* base) {
  const int64_t n = s.n_tokens, qh = n * s.n_heads, kh = n * s.n_kv_heads;
  char* at = static_cast<char*>(base);
  auto take = [&](int64_t bytes) {
    char* p = at;
    at += Align256(bytes);
    return p;
  };
  SaleWorkspace w;
  w.q8 = reinterpret_cast<int8_t*>(take(qh * kD));
  w.q_scale = reinterpret_cast<float*>(take(qh * 4));
  w.q_mean_dot = reinterpret_cast<float*>(take(qh * 4));
  w.k8 = reinterpret_cast<int8_t*>(take(kh * kD));
  w.k_scale = reinterpret_cast<float*>(take(kh * 4));
  w.k_mean = reinterpret_cast<float*>(take(int64_t{s.n_kv_heads} * kD * 4));
  w.k_partial = reinterpret_cast<float*>(take(int64_t{kSaleMeanChunks} * s.n_kv_heads * kD * 4));
  w.lse2 = reinterpret_cast<float*>(take(qh * 4));
  return w;
}

cudaError_t LaunchSaleQuantize(const FlashPrefillShape& s, const FlashPrefillTensors& t,
                               const SaleWorkspace& ws, cudaStream_t stream) {
  if (s.n_tokens < 1 || s.n_heads < 1 || s.n_kv_heads < 1 || s.n_heads % s.n_kv_heads != 0 ||
      t.q == nullptr || t.k == nullptr || ws.q8 == nullptr) {
    return cudaErrorInvalidValue;
  }
  const auto* q = static_cast<const __nv_bfloat16*>(t.q);
  const auto* k = static_cast<const __nv_bfloat16*>(t.k);
  KMeanPartialKernel<<<dim3(kSaleMeanChunks, s.n_kv_heads), kD, 0, stream>>>(
      k, s.n_tokens, s.n_kv_heads, ws.k_partial);
  KMeanFinalKernel<<<s.n_kv_heads, kD, 0, stream>>>(ws.k_partial, s.n_tokens, s.n_kv_heads,
                                                     ws.k_mean);
  const int64_t k_rows = s.n_tokens * s.n_kv_heads, q_rows = s.n_tokens * s.n_heads;
  QuantizeRowsKernel<true><<<static_cast<unsigned int>((k_rows + 7) / 8), 256, 0, stream>>>(
      k, k_rows, s.n_kv_heads, 1, ws.k_mean, ws.k8, ws.k_scale, nullptr);
  QuantizeRowsKernel<false><<<static_cast<unsigned int>((q_rows + 7) / 8), 256, 0, stream>>>(
      q, q_rows, s.n_heads, s.n_heads / s.n_kv_heads, ws.k_mean, ws.q8, ws.q_scale,
      ws.q_mean_dot);
  return cudaGetLastError();
}

cudaError_t LaunchSaleMandatoryMask(const FlashPrefillShape& s, const SparseConfig& c,
                                    FlashBlockMask* mask, cudaStream_t stream) {
  if (mask == nullptr || mask->keep == nullptr || s.n_tokens < 1 || s.n_heads < 1 ||
      !SaleConfigOk(c)) {
    return cudaErrorInvalidValue;
  }
  mask->q_block = kSaleQBlock;
  mask->k_block = kSaleKBlock;
  mask->n_qb = (s.n_tokens + kSaleQBlock - 1) / kSaleQBlock;
  mask->n_kb = (s.n_tokens + kSaleKBlock - 1) / kSaleKBlock;
  mask->mask_heads = s.n_heads;
  const int64_t bytes = int64_t{s.n_heads} * mask->n_qb * mask->n_kb;
  cudaError_t err = cudaMemsetAsync(mask->keep, 0, static_cast<size_t>(bytes), stream);
  if (err != cudaSuccess) return err;
  const MandatoryParams p{mask->keep, s.n_tokens, mask->n_qb, mask->n_kb, s.n_heads, c};
  const int64_t threads = int64_t{s.n_heads} * mask->n_qb;
  MandatoryMaskKernel<<<static_cast<unsigned int>((threads + 255) / 256), 256, 0, stream>>>(p);
  return cudaGetLastError();
}

cudaError_t LaunchSaleEstimate(const FlashPrefillShape& s, const SparseConfig& c,
                               const SaleWorkspace& ws, const FlashBlockMask& mask,
                               cudaStream_t stream) {
  if (mask.keep == nullptr || mask.q_block != kSaleQBlock || mask.k_block != kSaleKBlock ||
      !SaleConfigOk(c) || mask.mask_heads != s.n_heads || !(c.sale_threshold > 0.0f) ||
      s.n_tokens < 1 || !(s.scale > 0.0f) || !(s.scale < __builtin_huge_valf()) ||
      s.n_heads % s.n_kv_heads != 0) {
    return cudaErrorInvalidValue;
  }
  EstimateParams p{};
  p.q8 = ws.q8;
  p.q_scale = ws.q_scale;
  p.q_mean_dot = ws.q_mean_dot;
  p.k8 = ws.k8;
  p.k_scale = ws.k_scale;
  p.lse2 = ws.lse2;
  p.keep = mask.keep;
  p.n = s.n_tokens;
  p.n_qb = mask.n_qb;
  p.n_kb = mask.n_kb;
  p.n_heads = s.n_heads;
  p.n_kv_heads = s.n_kv_heads;
  p.group = s.n_heads / s.n_kv_heads;
  p.n_head_quads = (s.n_heads + 3) / 4;
  p.config = c;
  p.scale_log2 = s.scale * kLog2e;
  p.log2_tau = log2f(c.sale_threshold);
  const int64_t blocks = p.n_qb * p.n_head_quads;
  SaleEstimateKernel<<<static_cast<unsigned int>(blocks), kEstimateThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace tandem::kernels::cuda
