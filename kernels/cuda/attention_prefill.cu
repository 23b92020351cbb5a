// kernels/cuda/attention_prefill.cu
//
// AttentionPrefill (op.h) on the f32 interface: the kernel the consistency harness compares with
// cpu_ref, for any q_pos/kv_pos. Attention: a CTA owns 32 consecutive query rows of one head (4
// warps x 8 rows) and walks the keys in tiles of 32 (lane = key for the scores, lane = dims for
// P.V); a tile is loaded only when some (row, key) pair in it is causal and kept by the block mask,
// so sparse masks skip work. Online softmax in f32 with exact expf.
//
// SALE's selection mirrors cpu_ref operation for operation, so that it selects the same blocks:
// the K mean in double in token order, int4 rows rounded half to even after an IEEE division,
// the estimate as float(idot) * (q_scale * k_scale) + q . mean with the contraction to FMA
// forbidden (__fmul_rn/__fadd_rn), and the threshold m + ln(tau * l) in double over the exact
// mandatory logits (double dot products, again without FMA). The integer parts are exact; only
// the last bits of double exp/log can differ from glibc's, which moves the threshold by ~1e-16
// relative and flips a block only on a numerically exact tie.
#include <cstdint>

#include "kernels/cuda/op_args.h"

namespace tandem::kernels::cuda {
namespace {

constexpr int kRowsPerWarp = 8;
constexpr int kWarps = 4;
constexpr int kRows = kRowsPerWarp * kWarps;  // query rows per CTA
constexpr int kKeys = 32;                     // keys per tile

__device__ __forceinline__ double DotNoFma(const float* a, const float* b, int64_t n) {
  double s = 0.0;
  for (int64_t j = 0; j < n; ++j) s = __dadd_rn(s, __dmul_rn(static_cast<double>(a[j]), b[j]));
  return s;
}

__global__ void SaleMeanKernel(const AttentionPrefillArgs a, const SaleSelectArgs s) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= a.n_kv_heads * a.head_dim) return;
  const int64_t g = i / a.head_dim, d = i % a.head_dim;
  double acc = 0.0;
  for (int64_t t = 0; t < a.n_kv; ++t) acc = __dadd_rn(acc, a.k[t * a.k_stride0 + g * a.k_stride1 + d]);
  s.k_mean[i] = a.n_kv > 0 ? static_cast<float>(__ddiv_rn(acc, static_cast<double>(a.n_kv))) : 0.0f;
}

// One thread per row, sequential like sale_quant.cc's QuantizeRow.
template <bool kIsK>
__global__ void SaleQuantizeKernel(const AttentionPrefillArgs a, const SaleSelectArgs s) {
  const int64_t heads = kIsK ? a.n_kv_heads : a.n_heads;
  const int64_t rows = (kIsK ? a.n_kv : a.n_q) * heads;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  const int64_t t = r / heads, hh = r % heads, hd = a.head_dim;
  const int64_t g = kIsK ? hh : hh / (a.n_heads / a.n_kv_heads);
  const float* x = kIsK ? a.k + t * a.k_stride0 + hh * a.k_stride1
                        : a.q + t * a.q_stride0 + hh * a.q_stride1;
  const float* mean = s.k_mean + g * hd;
  auto value = [&](int64_t j) { return kIsK ? __fsub_rn(x[j], mean[j]) : x[j]; };
  float amax = 0.0f;
  for (int64_t j = 0; j < hd; ++j) amax = fmaxf(amax, fabsf(value(j)));
  const float sc = amax > 0.0f ? amax / 7.0f : 1.0f;
  int8_t* q = (kIsK ? s.k8 : s.q8) + r * hd;
  for (int64_t j = 0; j < hd; ++j) {
    float v = rintf(value(j) / sc);
    if (!isfinite(v)) v = 0.0f;
    q[j] = static_cast<int8_t>(fminf(fmaxf(v, -8.0f), 7.0f));
  }
  (kIsK ? s.k_scale : s.q_scale)[r] = amax > 0.0f ? sc : 0.0f;
  if constexpr (!kIsK) s.q_mean_dot[r] = static_cast<float>(DotNoFma(x, mean, hd));
}

// One thread per (query, head): m and l over the exact mandatory causal logits, as cpu_ref.
__global__ void SaleThresholdKernel(const AttentionPrefillArgs a, const SaleSelectArgs s) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= a.n_q * a.n_heads) return;
  const int64_t t = r / a.n_heads, h = r % a.n_heads, g = h / (a.n_heads / a.n_kv_heads);
  const int64_t qp = a.q_pos[t * a.q_pos_stride], qb = qp / s.config.sale_q_block;
  const float* q = a.q + t * a.q_stride0 + h * a.q_stride1;
  const double scale = a.scale;
  auto logit = [&](int64_t j, bool* ok) {
    const int64_t kp = a.kv_pos[j * a.kv_pos_stride];
    *ok = kp <= qp && SaleMandatory(s.config, qb, kp / s.config.sale_k_block);
    return *ok ? __dmul_rn(scale, DotNoFma(q, a.k + j * a.k_stride0 + g * a.k_stride1, a.head_dim))
               : 0.0;
  };
  double m = -__builtin_huge_val();
  bool any = false;
  for (int64_t j = 0; j < a.n_kv; ++j) {
    bool ok;
    const double x = logit(j, &ok);
    if (ok) {
      m = fmax(m, x);
      any = true;
    }
  }
  double l = 0.0;
  for (int64_t j = 0; j < a.n_kv; ++j) {
    bool ok;
    const double x = logit(j, &ok);
    if (ok) l = __dadd_rn(l, exp(__dsub_rn(x, m)));
  }
  s.row_threshold[r] =
      any ? __dadd_rn(m, log(__dmul_rn(static_cast<double>(s.config.sale_threshold), l)))
          : -__builtin_huge_val();
}

// grid (query row r = t * n_heads + h, key chunk): one thread per non-mandatory causal key.
__global__ void SaleSelectKernel(const AttentionPrefillArgs a, const SaleSelectArgs s,
                                 const PrefillMaskArgs m) {
  const int64_t r = blockIdx.x;
  const int64_t j = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (j >= a.n_kv) return;
  const int64_t t = r / a.n_heads, h = r % a.n_heads, g = h / (a.n_heads / a.n_kv_heads);
  const int64_t qp = a.q_pos[t * a.q_pos_stride], kp = a.kv_pos[j * a.kv_pos_stride];
  if (kp > qp) return;
  const int64_t qb = qp / s.config.sale_q_block, kb = kp / s.config.sale_k_block;
  if (SaleMandatory(s.config, qb, kb)) return;
  uint8_t* keep = m.keep + (h * m.n_qb + qb - m.qb0) * m.n_kb + kb - m.kb0;
  if (*keep != 0) return;
  const int64_t kr = j * a.n_kv_heads + g;
  const int8_t* qi = s.q8 + r * a.head_dim;
  const int8_t* ki = s.k8 + kr * a.head_dim;
  int32_t idot = 0;
  for (int64_t d = 0; d < a.head_dim; ++d) idot += int32_t{qi[d]} * ki[d];
  const float qk = __fmul_rn(s.q_scale[r], s.k_scale[kr]);
  const float est = __fadd_rn(__fmul_rn(static_cast<float>(idot), qk), s.q_mean_dot[r]);
  if (__dmul_rn(static_cast<double>(a.scale), static_cast<double>(est)) > s.row_threshold[r]) {
    *keep = 1;
  }
}

// kE = ceil(head_dim / 32) dims per lane. Shared memory: Q [kRows][hd], K [kKeys][hd + 1] (odd
// stride: lane = key reads a column conflict-free), V [kKeys][hd].
template <int kE>
__global__ void __launch_bounds__(kWarps * 32)
    AttentionPrefillF32Kernel(const AttentionPrefillArgs a, const PrefillMaskArgs m) {
  extern __shared__ float smem[];
  const int64_t hd = a.head_dim;
  float* sq = smem;
  float* sk = sq + kRows * hd;
  float* sv = sk + kKeys * (hd + 1);
  const int warp = static_cast<int>(threadIdx.x >> 5), lane = static_cast<int>(threadIdx.x & 31);
  const int64_t h = blockIdx.y, g = h / (a.n_heads / a.n_kv_heads);
  const int64_t t0 = static_cast<int64_t>(blockIdx.x) * kRows;

  for (int64_t i = threadIdx.x; i < kRows * hd; i += blockDim.x) {
    const int64_t r = i / hd, d = i % hd;
    sq[i] = t0 + r < a.n_q ? a.q[(t0 + r) * a.q_stride0 + h * a.q_stride1 + d] : 0.0f;
  }
  int64_t qpos[kRowsPerWarp];
  int64_t qblock[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int64_t t = t0 + warp * kRowsPerWarp + r;
    qpos[r] = t < a.n_q ? a.q_pos[t * a.q_pos_stride] : -1;  // -1: no key is causal
    qblock[r] = qpos[r] >= 0 ? qpos[r] / m.bq - m.qb0 : 0;
  }
  float acc[kRowsPerWarp][kE];
  float mx[kRowsPerWarp], sum[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    mx[r] = -__builtin_huge_valf();
    sum[r] = 0.0f;
#pragma unroll
    for (int e = 0; e < kE; ++e) acc[r][e] = 0.0f;
  }

  for (int64_t j0 = 0; j0 < a.n_kv; j0 += kKeys) {
    const int64_t j = j0 + lane;
    const int64_t kp = j < a.n_kv ? a.kv_pos[j * a.kv_pos_stride] : -1;
    uint32_t allowed = 0;  // bit r: row r of this warp may read key j
    if (kp >= 0) {
      const int64_t kb = kp / m.bk - m.kb0;
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) {
        bool ok = kp <= qpos[r];
        if (ok && m.keep != nullptr) ok = m.keep[(h * m.n_qb + qblock[r]) * m.n_kb + kb] != 0;
        allowed |= ok ? 1u << r : 0u;
      }
    }
    if (__syncthreads_or(allowed != 0) == 0) continue;  // CTA-uniform skip of the whole tile
    for (int64_t i = threadIdx.x; i < kKeys * hd; i += blockDim.x) {
      const int64_t c = i / hd, d = i % hd;
      const bool in = j0 + c < a.n_kv;
      sk[c * (hd + 1) + d] = in ? a.k[(j0 + c) * a.k_stride0 + g * a.k_stride1 + d] : 0.0f;
      sv[c * hd + d] = in ? a.v[(j0 + c) * a.v_stride0 + g * a.v_stride1 + d] : 0.0f;
    }
    __syncthreads();
    if (__any_sync(0xFFFFFFFFu, allowed != 0)) {
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) {
        const float* qr = sq + (warp * kRowsPerWarp + r) * hd;
        const float* kr = sk + lane * (hd + 1);
        float s = 0.0f;
        for (int64_t d = 0; d < hd; ++d) s = fmaf(qr[d], kr[d], s);
        const bool ok = ((allowed >> r) & 1u) != 0;
        s = ok ? s * a.scale : -__builtin_huge_valf();
        float tile_max = s;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) tile_max = fmaxf(tile_max, __shfl_xor_sync(0xFFFFFFFFu, tile_max, o));
        if (tile_max == -__builtin_huge_valf()) continue;  // warp-uniform: nothing kept for row r
        const float new_max = fmaxf(mx[r], tile_max);
        const float corr = expf(mx[r] - new_max);  // 0 when mx was -inf
        const float p = ok ? expf(s - new_max) : 0.0f;
        float psum = p;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) psum += __shfl_xor_sync(0xFFFFFFFFu, psum, o);
        mx[r] = new_max;
        sum[r] = sum[r] * corr + psum;
#pragma unroll
        for (int e = 0; e < kE; ++e) acc[r][e] *= corr;
        for (int c = 0; c < kKeys; ++c) {
          const float pc = __shfl_sync(0xFFFFFFFFu, p, c);
          if (pc == 0.0f) continue;  // warp-uniform
#pragma unroll
          for (int e = 0; e < kE; ++e) {
            const int64_t d = lane + 32 * e;
            if (d < hd) acc[r][e] = fmaf(pc, sv[c * hd + d], acc[r][e]);
          }
        }
      }
    }
    __syncthreads();
  }

#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int64_t t = t0 + warp * kRowsPerWarp + r;
    if (t >= a.n_q) continue;
    const float inv = sum[r] > 0.0f ? 1.0f / sum[r] : 0.0f;
    float* out = a.out + t * a.out_stride0 + h * a.out_stride1;
#pragma unroll
    for (int e = 0; e < kE; ++e) {
      const int64_t d = lane + 32 * e;
      if (d < hd) out[d] = acc[r][e] * inv;
    }
  }
}

template <int kE>
cudaError_t LaunchF32(const AttentionPrefillArgs& a, const PrefillMaskArgs& m, cudaStream_t stream) {
  const size_t smem =
      sizeof(float) * static_cast<size_t>(kRows * a.head_dim + kKeys * (a.head_dim + 1) +
                                          kKeys * a.head_dim);
  auto kernel = AttentionPrefillF32Kernel<kE>;
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(smem));
  if (err != cudaSuccess) return err;
  const dim3 grid(static_cast<unsigned int>((a.n_q + kRows - 1) / kRows),
                  static_cast<unsigned int>(a.n_heads));
  kernel<<<grid, kWarps * 32, smem, stream>>>(a, m);
  return cudaGetLastError();
}

}  // namespace

cudaError_t LaunchSaleSelectF32(const AttentionPrefillArgs& a, const SaleSelectArgs& s,
                                const PrefillMaskArgs& m, cudaStream_t stream) {
  if (a.n_q == 0 || a.n_kv == 0) return cudaSuccess;
  if (a.n_q * a.n_heads > 0x7FFFFFFF || (a.n_kv + 255) / 256 > 65535) return cudaErrorInvalidValue;
  const int64_t mean_threads = a.n_kv_heads * a.head_dim;
  SaleMeanKernel<<<static_cast<unsigned int>((mean_threads + 127) / 128), 128, 0, stream>>>(a, s);
  const int64_t k_rows = a.n_kv * a.n_kv_heads, q_rows = a.n_q * a.n_heads;
  SaleQuantizeKernel<true><<<static_cast<unsigned int>((k_rows + 127) / 128), 128, 0, stream>>>(a, s);
  SaleQuantizeKernel<false><<<static_cast<unsigned int>((q_rows + 127) / 128), 128, 0, stream>>>(a, s);
  SaleThresholdKernel<<<static_cast<unsigned int>((q_rows + 127) / 128), 128, 0, stream>>>(a, s);
  const dim3 grid(static_cast<unsigned int>(q_rows), static_cast<unsigned int>((a.n_kv + 255) / 256));
  SaleSelectKernel<<<grid, 256, 0, stream>>>(a, s, m);
  return cudaGetLastError();
}

cudaError_t LaunchAttentionPrefillF32(const AttentionPrefillArgs& a, const PrefillMaskArgs& m,
                                      cudaStream_t stream) {
  if (a.n_q == 0) return cudaSuccess;
  if (a.n_heads > 65535 || (a.n_q + kRows - 1) / kRows > 0x7FFFFFFF) return cudaErrorInvalidValue;
  if (a.head_dim <= 64) return LaunchF32<2>(a, m, stream);
  if (a.head_dim <= 128) return LaunchF32<4>(a, m, stream);
  if (a.head_dim <= 256) return LaunchF32<8>(a, m, stream);
  return cudaErrorInvalidValue;
}

}  // namespace tandem::kernels::cuda
