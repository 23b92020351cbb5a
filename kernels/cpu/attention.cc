// kernels/cpu/attention.cc
//
// PagedAttention on AVX2 for f32 and f16 pools. A work item is one (query token, kv head) pair and
// a range of its keys: the GQA group of query heads is handled together so every K/V row is read
// (and converted from f16) once. Keys are processed in tiles of kTile with an online softmax, so
// memory stays in L1 whatever the context length. When there are too few pairs to occupy every
// thread (decode of one sequence), each pair's keys are split into chunks whose partial
// (max, sum, acc) results are merged afterwards (split-K, "flash decoding").
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu_ref/ref_ops.h"

namespace tandem::kernels::cpu {
namespace {

constexpr int kTile = 32;
constexpr int64_t kMaxHeadDim = 256;
constexpr int64_t kMaxGroup = 16;
// Keys per split-K chunk at least: below this the merge costs more than the parallelism gains.
constexpr int64_t kMinChunk = 256;

struct Item {
  int64_t t;
  int64_t g;
  int64_t begin;  // key positions [begin, end)
  int64_t end;
  int64_t partial;  // index into the partials buffer, or -1 to write `out` directly
};

struct Geometry {
  const PagedAttentionParams* p;
  int64_t group;
  int64_t hd;
  int64_t page_tokens;
  bool f16;
};

inline int32_t I32At(const TensorView& t, int64_t i, int64_t j = 0) {
  return *reinterpret_cast<const int32_t*>(static_cast<const char*>(t.data) +
                                           i * t.stride_bytes[0] +
                                           j * (t.ndim > 1 ? t.stride_bytes[1] : 0));
}

}  // namespace

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
}  // namespace tandem::kernels::cpu
#include "kernels/cpu/vec_math.h"
namespace tandem::kernels::cpu {
namespace {

// Runs one item; writes normalised output, or the partial {m, l, acc[hd]} per head at `partial`.
void RunItem(const Geometry& geo, const Item& it, float* partial) {
  const PagedAttentionParams& p = *geo.p;
  const int64_t hd = geo.hd;
  const int64_t G = geo.group;
  const int32_t seq = I32At(p.q_seq, it.t);
  alignas(32) float kbuf[kTile * kMaxHeadDim];
  alignas(32) float vbuf[kTile * kMaxHeadDim];
  alignas(32) float acc[kMaxGroup * kMaxHeadDim];
  alignas(32) float s[kMaxGroup][kTile];
  float m[kMaxGroup], l[kMaxGroup];
  const float* q[kMaxGroup];
  for (int64_t h = 0; h < G; ++h) {
    q[h] = cpu_ref::At<const float>(p.q, it.t, it.g * G + h);
    m[h] = -INFINITY;
    l[h] = 0.0f;
    std::fill(acc + h * hd, acc + (h + 1) * hd, 0.0f);
  }
  for (int64_t start = it.begin; start < it.end; start += kTile) {
    const int cnt = static_cast<int>(std::min<int64_t>(kTile, it.end - start));
    for (int i = 0; i < cnt; ++i) {
      const int64_t pos = start + i;
      const int64_t page = I32At(p.page_table, seq, pos / geo.page_tokens);
      const int64_t off = pos % geo.page_tokens;
      simd::WidenRow(cpu_ref::At<const void>(p.k_pool, page, off, it.g), geo.f16, hd, kbuf + i * hd);
      simd::WidenRow(cpu_ref::At<const void>(p.v_pool, page, off, it.g), geo.f16, hd, vbuf + i * hd);
    }
    for (int64_t h = 0; h < G; ++h) {
      for (int i = 0; i < cnt; ++i) {
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        const float* k = kbuf + i * hd;
        int64_t j = 0;
        for (; j + 16 <= hd; j += 16) {
          a0 = _mm256_fmadd_ps(_mm256_loadu_ps(k + j), _mm256_loadu_ps(q[h] + j), a0);
          a1 = _mm256_fmadd_ps(_mm256_loadu_ps(k + j + 8), _mm256_loadu_ps(q[h] + j + 8), a1);
        }
        if (j < hd) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(k + j), _mm256_loadu_ps(q[h] + j), a0);
        s[h][i] = simd::HSum8(_mm256_add_ps(a0, a1));
      }
      float tile_max = -INFINITY;
      for (int i = 0; i < cnt; ++i) {
        s[h][i] *= p.scale;
        tile_max = std::max(tile_max, s[h][i]);
      }
      const float new_m = std::max(m[h], tile_max);
      const float corr = std::exp(m[h] - new_m);
      m[h] = new_m;
      const __m256 vm = _mm256_set1_ps(new_m);
      __m256 vsum = _mm256_setzero_ps();
      int i = 0;
      for (; i + 8 <= cnt; i += 8) {
        const __m256 e = simd::Exp8(_mm256_sub_ps(_mm256_loadu_ps(&s[h][i]), vm));
        _mm256_storeu_ps(&s[h][i], e);
        vsum = _mm256_add_ps(vsum, e);
      }
      float sum = simd::HSum8(vsum);
      for (; i < cnt; ++i) {
        s[h][i] = std::exp(s[h][i] - new_m);
        sum += s[h][i];
      }
      l[h] = l[h] * corr + sum;
      // acc = acc * corr + sum_i s_i * v_i, 32 columns at a time in registers (fixed-size groups
      // so the compiler keeps them in registers rather than on the stack), then 8 at a time.
      float* ah = acc + h * hd;
      const __m256 vc = _mm256_set1_ps(corr);
      int64_t j = 0;
      for (; j + 32 <= hd; j += 32) {
        __m256 r0 = _mm256_mul_ps(_mm256_loadu_ps(ah + j), vc);
        __m256 r1 = _mm256_mul_ps(_mm256_loadu_ps(ah + j + 8), vc);
        __m256 r2 = _mm256_mul_ps(_mm256_loadu_ps(ah + j + 16), vc);
        __m256 r3 = _mm256_mul_ps(_mm256_loadu_ps(ah + j + 24), vc);
        for (int i2 = 0; i2 < cnt; ++i2) {
          const __m256 wi = _mm256_set1_ps(s[h][i2]);
          const float* v = vbuf + i2 * hd + j;
          r0 = _mm256_fmadd_ps(wi, _mm256_loadu_ps(v), r0);
          r1 = _mm256_fmadd_ps(wi, _mm256_loadu_ps(v + 8), r1);
          r2 = _mm256_fmadd_ps(wi, _mm256_loadu_ps(v + 16), r2);
          r3 = _mm256_fmadd_ps(wi, _mm256_loadu_ps(v + 24), r3);
        }
        _mm256_storeu_ps(ah + j, r0);
        _mm256_storeu_ps(ah + j + 8, r1);
        _mm256_storeu_ps(ah + j + 16, r2);
        _mm256_storeu_ps(ah + j + 24, r3);
      }
      for (; j < hd; j += 8) {
        __m256 r0 = _mm256_mul_ps(_mm256_loadu_ps(ah + j), vc);
        for (int i2 = 0; i2 < cnt; ++i2) {
          r0 = _mm256_fmadd_ps(_mm256_set1_ps(s[h][i2]), _mm256_loadu_ps(vbuf + i2 * hd + j), r0);
        }
        _mm256_storeu_ps(ah + j, r0);
      }
    }
  }
  for (int64_t h = 0; h < G; ++h) {
    const float* ah = acc + h * hd;
    if (partial != nullptr) {
      float* dst = partial + h * (hd + 2);
      dst[0] = m[h];
      dst[1] = l[h];
      std::copy(ah, ah + hd, dst + 2);
    } else {
      float* out = cpu_ref::At<float>(p.out, it.t, it.g * G + h);
      const float inv = l[h] > 0.0f ? 1.0f / l[h] : 0.0f;
      for (int64_t j = 0; j < hd; ++j) out[j] = ah[j] * inv;
    }
  }
}

}  // namespace
#pragma GCC pop_options

absl::Status RunPagedAttention(CpuContext& ctx, const PagedAttentionParams& p) {
  TANDEM_RETURN_IF_ERROR(cpu_ref::CheckPagedAttention(p));
  constexpr std::string_view kOp = "paged_attention";
  const int64_t n = p.q.shape[0];
  const int64_t n_heads = p.q.shape[1];
  const int64_t hd = p.q.shape[2];
  const int64_t n_kv = p.k_pool.shape[2];
  const int64_t num_pages = p.k_pool.shape[0];
  const int64_t page_tokens = p.k_pool.shape[1];
  const int64_t n_seqs = p.page_table.shape[0];
  const int64_t max_pages = p.page_table.shape[1];
  const int64_t group = n_heads / n_kv;
  if (hd % 8 != 0 || hd > kMaxHeadDim || group > kMaxGroup) {
    return absl::UnimplementedError("cpu: attention shape");
  }
  // Validate every index before writing anything; page tables once per sequence, up to its
  // furthest query position.
  std::vector<int64_t> seq_max(static_cast<size_t>(n_seqs), -1);
  int64_t max_len = 0;
  for (int64_t t = 0; t < n; ++t) {
    const int32_t s = I32At(p.q_seq, t);
    TANDEM_RETURN_IF_ERROR(cpu_ref::CheckIndex(kOp, "q_seq", t, s, n_seqs));
    const int32_t pos = I32At(p.q_pos, t);
    TANDEM_RETURN_IF_ERROR(cpu_ref::CheckIndex(kOp, "q_pos", t, pos, max_pages * page_tokens));
    seq_max[s] = std::max<int64_t>(seq_max[s], pos);
    max_len = std::max<int64_t>(max_len, pos + 1);
  }
  for (int64_t s = 0; s < n_seqs; ++s) {
    for (int64_t pg = 0; seq_max[s] >= 0 && pg <= seq_max[s] / page_tokens; ++pg) {
      const int32_t page = I32At(p.page_table, s, pg);
      if (page < 0 || page >= num_pages) {
        return absl::InvalidArgumentError(absl::StrCat(AV(kOp), ": page_table[", s, ", ", pg,
                                                       "]=", page, " not in [0, ", num_pages, ")"));
      }
    }
  }
  if (n == 0) return absl::OkStatus();

  // Split keys only when the pairs alone cannot keep every thread busy.
  const int64_t pairs = n * n_kv;
  const int64_t want_items = 4 * ctx.pool->threads();
  int64_t chunk = max_len;
  if (pairs < want_items && ctx.pool->threads() > 1) {
    const int64_t splits = (want_items + pairs - 1) / pairs;
    chunk = std::max<int64_t>(kMinChunk, (max_len + splits - 1) / splits);
  }
  std::vector<Item> items;
  items.reserve(static_cast<size_t>(pairs));
  int64_t partials = 0;
  for (int64_t t = 0; t < n; ++t) {
    const int64_t len = I32At(p.q_pos, t) + 1;
    for (int64_t g = 0; g < n_kv; ++g) {
      if (len <= chunk) {
        items.push_back({t, g, 0, len, -1});
        continue;
      }
      for (int64_t b = 0; b < len; b += chunk)
        items.push_back({t, g, b, std::min(len, b + chunk), partials++});
    }
  }
  const int64_t partial_floats = group * (hd + 2);
  ctx.attn_partials.resize(static_cast<size_t>(partials * partial_floats));
  const Geometry geo{&p, group, hd, page_tokens, p.k_pool.dtype == DType::kF16};
  float* part = ctx.attn_partials.data();
  ctx.pool->ParallelFor(static_cast<int64_t>(items.size()), 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const Item& it = items[i];
      RunItem(geo, it, it.partial < 0 ? nullptr : part + it.partial * partial_floats);
    }
  });
  if (partials == 0) return absl::OkStatus();
  // Merge split-K partials: consecutive items of one pair carry consecutive partial indices.
  for (size_t i = 0; i < items.size();) {
    if (items[i].partial < 0) {
      ++i;
      continue;
    }
    size_t e = i;
    while (e < items.size() && items[e].t == items[i].t && items[e].g == items[i].g) ++e;
    for (int64_t h = 0; h < group; ++h) {
      float mx = -INFINITY;
      for (size_t c = i; c < e; ++c)
        mx = std::max(mx, part[items[c].partial * partial_floats + h * (hd + 2)]);
      float* out = cpu_ref::At<float>(p.out, items[i].t, items[i].g * group + h);
      std::fill(out, out + hd, 0.0f);
      double l = 0.0;
      for (size_t c = i; c < e; ++c) {
        const float* src = part + items[c].partial * partial_floats + h * (hd + 2);
        const float w = std::exp(src[0] - mx);
        l += static_cast<double>(src[1]) * w;
        for (int64_t j = 0; j < hd; ++j) out[j] += w * src[2 + j];
      }
      const float inv = l > 0.0 ? static_cast<float>(1.0 / l) : 0.0f;
      for (int64_t j = 0; j < hd; ++j) out[j] *= inv;
    }
    i = e;
  }
  return absl::OkStatus();
}

}  // namespace tandem::kernels::cpu
