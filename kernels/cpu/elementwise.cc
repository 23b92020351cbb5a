// kernels/cpu/elementwise.cc
//
// The light ops of the forward pass on AVX2: RmsNorm, RoPE, SwiGLU, Softmax, KvWrite, KvGather
// and RowDistance (CacheBlend's deviation). Each is
// memory-light per token, so rows are split over the pool only for large batches (prefill); decode
// runs them inline on the caller. RoPE caches its cos/sin table by positions, because decode
// rotates q and k of all 30 layers at the same position.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/status.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu_ref/ref_ops.h"

namespace tandem::kernels::cpu {
namespace {

// Elements of work below which an op runs on the caller alone (dispatch would cost more).
constexpr int64_t kParallelElems = 1 << 15;

template <typename Fn>
void Rows(CpuContext& ctx, int64_t rows, int64_t row_elems, Fn&& fn) {
  if (rows * row_elems < kParallelElems) {
    fn(int64_t{0}, rows);
  } else {
    ctx.pool->ParallelFor(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(row_elems, 1)), fn);
  }
}

}  // namespace

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
}  // namespace tandem::kernels::cpu
#include "kernels/cpu/vec_math.h"
namespace tandem::kernels::cpu {
namespace {

void RmsNormRow(const float* x, const float* w, float* out, int64_t d, float eps) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 16 <= d; j += 16) {
    const __m256 v0 = _mm256_loadu_ps(x + j), v1 = _mm256_loadu_ps(x + j + 8);
    a0 = _mm256_fmadd_ps(v0, v0, a0);
    a1 = _mm256_fmadd_ps(v1, v1, a1);
  }
  double ss = simd::HSum8(_mm256_add_ps(a0, a1));
  for (; j < d; ++j) ss += static_cast<double>(x[j]) * x[j];
  const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(d) + eps));
  const __m256 vinv = _mm256_set1_ps(inv);
  j = 0;
  for (; j + 8 <= d; j += 8) {
    _mm256_storeu_ps(out + j, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + j), vinv),
                                            _mm256_loadu_ps(w + j)));
  }
  for (; j < d; ++j) out[j] = x[j] * inv * w[j];
}

void SwiGluRow(const float* g, const float* u, float* o, int64_t f) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  int64_t j = 0;
  for (; j + 8 <= f; j += 8) {
    const __m256 z = _mm256_loadu_ps(g + j);
    const __m256 e = simd::Exp8(_mm256_xor_ps(z, sign));
    const __m256 num = _mm256_mul_ps(z, _mm256_loadu_ps(u + j));
    _mm256_storeu_ps(o + j, _mm256_div_ps(num, _mm256_add_ps(one, e)));
  }
  for (; j < f; ++j) o[j] = g[j] / (1.0f + std::exp(-g[j])) * u[j];
}

void SoftmaxRow(float* x, int64_t d, float scale) {
  const __m256 vs = _mm256_set1_ps(scale);
  __m256 vmax = _mm256_set1_ps(-INFINITY);
  int64_t j = 0;
  for (; j + 8 <= d; j += 8) vmax = _mm256_max_ps(vmax, _mm256_mul_ps(_mm256_loadu_ps(x + j), vs));
  float mx = simd::HMax8(vmax);
  for (; j < d; ++j) mx = std::max(mx, x[j] * scale);
  const __m256 vm = _mm256_set1_ps(mx);
  __m256 vsum = _mm256_setzero_ps();
  j = 0;
  for (; j + 8 <= d; j += 8) {
    const __m256 e = simd::Exp8(_mm256_fmsub_ps(_mm256_loadu_ps(x + j), vs, vm));
    _mm256_storeu_ps(x + j, e);
    vsum = _mm256_add_ps(vsum, e);
  }
  double sum = simd::HSum8(vsum);
  for (; j < d; ++j) {
    x[j] = std::exp(x[j] * scale - mx);
    sum += x[j];
  }
  const __m256 inv = _mm256_set1_ps(static_cast<float>(1.0 / sum));
  j = 0;
  for (; j + 8 <= d; j += 8) _mm256_storeu_ps(x + j, _mm256_mul_ps(_mm256_loadu_ps(x + j), inv));
  for (; j < d; ++j) x[j] = static_cast<float>(x[j] / sum);
}

void ToHalf(const float* src, uint16_t* dst, int64_t n) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + j),
                     _mm256_cvtps_ph(_mm256_loadu_ps(src + j), _MM_FROUND_TO_NEAREST_INT));
  }
  for (; j < n; ++j) dst[j] = FloatToHalf(src[j]);
}

float RowSqDistance(const float* x, const float* y, int64_t d) {
  __m256 acc = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 8 <= d; j += 8) {
    const __m256 diff = _mm256_sub_ps(_mm256_loadu_ps(x + j), _mm256_loadu_ps(y + j));
    acc = _mm256_fmadd_ps(diff, diff, acc);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, acc);
  float sum = 0.0f;
  for (float l : lanes) sum += l;
  for (; j < d; ++j) sum += (x[j] - y[j]) * (x[j] - y[j]);
  return sum;
}

}  // namespace
#pragma GCC pop_options

absl::Status RunRmsNorm(CpuContext& ctx, const RmsNormParams& p) {
  TANDEM_RETURN_IF_ERROR(cpu_ref::CheckRmsNorm(p));
  const int64_t d = p.x.shape[1];
  if (d == 0) return absl::OkStatus();
  const float* w = p.weight.as<const float>();
  Rows(ctx, p.x.shape[0], d, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      RmsNormRow(p.x.row<const float>(i), w, p.out.row<float>(i), d, p.eps);
  });
  return absl::OkStatus();
}

absl::Status RunSwiGlu(CpuContext& ctx, const SwiGluParams& p) {
  TANDEM_RETURN_IF_ERROR(cpu_ref::CheckSwiGlu(p));
  const int64_t f = p.gate.shape[1];
  Rows(ctx, p.gate.shape[0], f, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      SwiGluRow(p.gate.row<const float>(i), p.up.row<const float>(i), p.out.row<float>(i), f);
    }
  });
  return absl::OkStatus();
}

absl::Status RunRowDistance(CpuContext& ctx, const RowDistanceParams& p) {
  TANDEM_RETURN_IF_ERROR(cpu_ref::CheckRowDistance(p));
  const int64_t d = p.a.shape[1];
  if (p.out.stride_bytes[0] % 4 != 0) return absl::UnimplementedError("cpu: row_distance out");
  const int64_t out_stride = p.out.stride_bytes[0] / 4;
  Rows(ctx, p.a.shape[0], d, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      p.out.as<float>()[i * out_stride] =
          RowSqDistance(p.a.row<const float>(i), p.b.row<const float>(i), d);
    }
  });
  return absl::OkStatus();
}

absl::Status RunSoftmax(CpuContext& ctx, const SoftmaxParams& p) {
  TANDEM_RETURN_IF_ERROR(cpu_ref::CheckSoftmax(p));
  const int64_t d = p.x.shape[1];
  if (d == 0) return absl::OkStatus();
  Rows(ctx, p.x.shape[0], d, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) SoftmaxRow(p.x.row<float>(i), d, p.scale);
  });
  return absl::OkStatus();
}

absl::Status RunRope(CpuContext& ctx, const RopeParams& p) {
  TANDEM_RETURN_IF_ERROR(cpu_ref::CheckRope(p));
  const int64_t n = p.x.shape[0];
  const int64_t heads = p.x.shape[1];
  const int half = p.n_rot / 2;
  const int32_t* pos = p.positions.as<const int32_t>();
  const int64_t pos_stride = p.positions.stride_bytes[0] / 4;
  if (p.positions.stride_bytes[0] % 4 != 0) return absl::UnimplementedError("cpu: rope positions");
  // Rebuild the cos/sin table unless the previous call had the same positions and frequencies.
  bool same = ctx.rope_base == p.freq_base && ctx.rope_n_rot == p.n_rot &&
              static_cast<int64_t>(ctx.rope_positions.size()) == n;
  for (int64_t t = 0; same && t < n; ++t) same = ctx.rope_positions[t] == pos[t * pos_stride];
  if (!same) {
    ctx.rope_positions.resize(static_cast<size_t>(n));
    for (int64_t t = 0; t < n; ++t) ctx.rope_positions[t] = pos[t * pos_stride];
    ctx.rope_base = p.freq_base;
    ctx.rope_n_rot = p.n_rot;
    ctx.rope_cos_sin.resize(static_cast<size_t>(n * half * 2));
    std::vector<double> inv_freq(static_cast<size_t>(half));
    for (int i = 0; i < half; ++i) {
      inv_freq[i] =
          std::pow(static_cast<double>(p.freq_base), -2.0 * i / static_cast<double>(p.n_rot));
    }
    float* cs = ctx.rope_cos_sin.data();
    Rows(ctx, n, half * 8, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        for (int i = 0; i < half; ++i) {
          const double theta = static_cast<double>(ctx.rope_positions[t]) * inv_freq[i];
          cs[(t * half + i) * 2] = static_cast<float>(std::cos(theta));
          cs[(t * half + i) * 2 + 1] = static_cast<float>(std::sin(theta));
        }
      }
    });
  }
  const float* cs = ctx.rope_cos_sin.data();
  const bool adjacent = p.style == RopeStyle::kAdjacentPairs;
  Rows(ctx, n, heads * p.n_rot, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const float* c = cs + t * half * 2;
      for (int64_t h = 0; h < heads; ++h) {
        float* x = reinterpret_cast<float*>(static_cast<char*>(p.x.data) + t * p.x.stride_bytes[0] +
                                            h * p.x.stride_bytes[1]);
        for (int i = 0; i < half; ++i) {
          const int a = adjacent ? 2 * i : i;
          const int bi = adjacent ? 2 * i + 1 : i + half;
          const float x0 = x[a], x1 = x[bi];
          x[a] = x0 * c[2 * i] - x1 * c[2 * i + 1];
          x[bi] = x0 * c[2 * i + 1] + x1 * c[2 * i];
        }
      }
    }
  });
  return absl::OkStatus();
}

namespace {

// Checks every slots[t] against the pool (InvalidArgument naming op and index), then calls
// row(t, page, offset) for each token, rows split over the pool's threads.
template <typename RowFn>
absl::Status ForEachSlot(CpuContext& ctx, std::string_view op, const TensorView& slots, int64_t n,
                         const TensorView& pool, RowFn row) {
  const int64_t page_tokens = pool.shape[1];
  const int64_t n_slots = pool.shape[0] * page_tokens;
  const auto slot_at = [&](int64_t t) {
    return *reinterpret_cast<const int32_t*>(static_cast<const char*>(slots.data) +
                                             t * slots.stride_bytes[0]);
  };
  for (int64_t t = 0; t < n; ++t) {
    TANDEM_RETURN_IF_ERROR(cpu_ref::CheckIndex(op, "slots", t, slot_at(t), n_slots));
  }
  const int64_t row_values = pool.shape[2] * pool.shape[3];
  Rows(ctx, n, row_values * 2, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t slot = slot_at(t);
      row(t, slot / page_tokens, slot % page_tokens);
    }
  });
  return absl::OkStatus();
}

}  // namespace

absl::Status RunKvWrite(CpuContext& ctx, const KvWriteParams& p) {
  TANDEM_RETURN_IF_ERROR(cpu_ref::CheckKvWrite(p));
  const int64_t hd = p.k.shape[2];
  const bool half = p.k_pool.dtype == DType::kF16;
  return ForEachSlot(ctx, "kv_write", p.slots, p.k.shape[0], p.k_pool,
                     [&](int64_t t, int64_t page, int64_t off) {
                       for (int64_t g = 0; g < p.k.shape[1]; ++g) {
                         const TensorView* src[2] = {&p.k, &p.v};
                         const TensorView* dst[2] = {&p.k_pool, &p.v_pool};
                         for (int kv = 0; kv < 2; ++kv) {
                           const float* s = cpu_ref::At<const float>(*src[kv], t, g);
                           void* d = cpu_ref::At<void>(*dst[kv], page, off, g);
                           if (half) {
                             ToHalf(s, static_cast<uint16_t*>(d), hd);
                           } else {
                             std::memcpy(d, s, static_cast<size_t>(hd) * 4);
                           }
                         }
                       }
                     });
}

absl::Status RunKvGather(CpuContext& ctx, const KvGatherParams& p) {
  TANDEM_RETURN_IF_ERROR(cpu_ref::CheckKvGather(p));
  const bool half = p.k_pool.dtype == DType::kF16;
  return ForEachSlot(ctx, "kv_gather", p.slots, p.k.shape[0], p.k_pool,
                     [&](int64_t t, int64_t page, int64_t off) {
                       for (int64_t g = 0; g < p.k.shape[1]; ++g) {
                         simd::WidenRow(cpu_ref::At<const void>(p.k_pool, page, off, g), half,
                                        p.k.shape[2], cpu_ref::At<float>(p.k, t, g));
                         simd::WidenRow(cpu_ref::At<const void>(p.v_pool, page, off, g), half,
                                        p.k.shape[2], cpu_ref::At<float>(p.v, t, g));
                       }
                     });
}

}  // namespace tandem::kernels::cpu
