// kernels/cpu/attention_prefill.cc
//
// Dense, SALE and PowerAttention prefill attention on AVX2 (op.h's AttentionPrefillParams). A work
// item is one query head and one query block; it walks its list of key blocks with an online
// softmax (flash-attention style), so memory stays in L1/L2 whatever the context. Scores of a
// key tile come from a transposed copy of the tile (eight 8-key accumulators per query row); P.V
// accumulates 64 columns of a row in registers. SALE first computes the sink and local window
// exactly, then estimates every other causal key block from int4 Q and K with 16-bit integer dot
// products (vpmaddubsw) and computes only the blocks the Relative Attention Score test keeps.
// Covers contiguous positions (kv_pos = 0..n_kv-1, q_pos consecutive); other layouts go to cpu_ref.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu_ref/ref_ops.h"
#include "kernels/cpu_ref/sale_quant.h"
#include "kernels/sparse_pattern.h"

namespace tandem::kernels::cpu {
namespace {

constexpr int64_t kMaxHeadDim = 256;
constexpr int64_t kMaxKeys = 64;   // keys per tile (k block)
constexpr int64_t kMaxRows = 128;  // rows per query block

// SALE's int4 operands in the layout the estimate reads: Q as unsigned (q + 8) bytes per row, K as
// signed bytes grouped 16 keys x 2 dims per 32-byte vector: kpair[g][key / 16][dim / 2][key %
// 16][2].
struct SaleOperands {
  cpu_ref::SaleQuantized qz;
  std::vector<uint8_t> q_u8;  // [n_q, n_heads, hd]
  std::vector<int8_t> k_pair;
  int64_t groups16 = 0;  // key groups of 16 per KV head
};

struct Geometry {
  const AttentionPrefillParams* p;
  int64_t n_q, n_heads, hd, n_kv, group, q0;
  int64_t bq, bk;
  bool sale_sparse;
  const SaleOperands* sale;
};

struct Item {
  int64_t h, qb;
};

}  // namespace

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
}  // namespace tandem::kernels::cpu
#include "kernels/cpu/vec_math.h"
namespace tandem::kernels::cpu {
namespace {

// Per-thread state of one item: rows' online-softmax state and output accumulators.
struct Scratch {
  alignas(32) float kt[kMaxHeadDim * kMaxKeys];  // transposed key tile [hd][kMaxKeys]
  alignas(32) float s[kMaxKeys];
  alignas(32) float acc[kMaxRows * kMaxHeadDim];
  float m[kMaxRows];
  float l[kMaxRows];
  float threshold[kMaxRows];
};

// Exact attention of rows [0, rows) (positions pos0 + r) over keys [k0, k1), online softmax.
void ComputeTile(const Geometry& geo, int64_t h, int64_t t0, int64_t rows, int64_t k0, int64_t k1,
                 Scratch& sc) {
  const AttentionPrefillParams& p = *geo.p;
  const int64_t hd = geo.hd, g = h / geo.group;
  const int64_t pos0 = geo.q0 + t0;
  k1 = std::min(k1, pos0 + rows);  // no row sees keys past the last row's position
  const int64_t nk = k1 - k0;
  if (nk <= 0) return;
  for (int64_t c = 0; c < nk; ++c) {
    const float* k = cpu_ref::At<const float>(p.k, k0 + c, g);
    for (int64_t d = 0; d < hd; ++d) sc.kt[d * kMaxKeys + c] = k[d];
  }
  for (int64_t c = nk; c < kMaxKeys; ++c) {
    for (int64_t d = 0; d < hd; ++d) sc.kt[d * kMaxKeys + c] = 0.0f;
  }
  const int64_t nk8 = (nk + 7) / 8;
  const __m256 vscale = _mm256_set1_ps(p.scale);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t pos = pos0 + r;
    const int64_t valid = std::min(nk, pos - k0 + 1);  // causal keys of this row in the tile
    if (valid <= 0) continue;
    const float* q = cpu_ref::At<const float>(p.q, t0 + r, h);
    __m256 a[8];
    for (int i = 0; i < 8; ++i) a[i] = _mm256_setzero_ps();
    if (nk8 > 4) {
      for (int64_t d = 0; d < hd; ++d) {
        const __m256 qd = _mm256_broadcast_ss(q + d);
        const float* kr = sc.kt + d * kMaxKeys;
        for (int i = 0; i < 8; ++i) a[i] = _mm256_fmadd_ps(qd, _mm256_load_ps(kr + 8 * i), a[i]);
      }
    } else {
      for (int64_t d = 0; d < hd; ++d) {
        const __m256 qd = _mm256_broadcast_ss(q + d);
        const float* kr = sc.kt + d * kMaxKeys;
        for (int i = 0; i < 4; ++i) a[i] = _mm256_fmadd_ps(qd, _mm256_load_ps(kr + 8 * i), a[i]);
      }
    }
    for (int64_t i = 0; i < nk8; ++i) _mm256_store_ps(sc.s + 8 * i, _mm256_mul_ps(a[i], vscale));
    float tile_max = -INFINITY;
    for (int64_t c = 0; c < valid; ++c) tile_max = std::max(tile_max, sc.s[c]);
    const float new_m = std::max(sc.m[r], tile_max);
    const float corr = std::exp(sc.m[r] - new_m);
    sc.m[r] = new_m;
    const __m256 vm = _mm256_set1_ps(new_m);
    __m256 vsum = _mm256_setzero_ps();
    for (int64_t i = 0; i < nk8; ++i) {
      __m256 e = simd::Exp8(_mm256_sub_ps(_mm256_load_ps(sc.s + 8 * i), vm));
      // Zero the causally masked and padding keys.
      const int64_t lim = valid - 8 * i;
      if (lim < 8) {
        const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        const __m256i keep = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(lim)), idx);
        e = _mm256_and_ps(e, _mm256_castsi256_ps(keep));
      }
      _mm256_store_ps(sc.s + 8 * i, e);
      vsum = _mm256_add_ps(vsum, e);
    }
    sc.l[r] = sc.l[r] * corr + simd::HSum8(vsum);
    float* ar = sc.acc + r * hd;
    const __m256 vc = _mm256_set1_ps(corr);
    int64_t j = 0;
    for (; j + 64 <= hd; j += 64) {
      __m256 o[8];
      for (int i = 0; i < 8; ++i) o[i] = _mm256_mul_ps(_mm256_loadu_ps(ar + j + 8 * i), vc);
      for (int64_t c = 0; c < valid; ++c) {
        const __m256 w = _mm256_set1_ps(sc.s[c]);
        const float* v = cpu_ref::At<const float>(p.v, k0 + c, g) + j;
        for (int i = 0; i < 8; ++i) o[i] = _mm256_fmadd_ps(w, _mm256_loadu_ps(v + 8 * i), o[i]);
      }
      for (int i = 0; i < 8; ++i) _mm256_storeu_ps(ar + j + 8 * i, o[i]);
    }
    for (; j < hd; j += 8) {
      __m256 o = _mm256_mul_ps(_mm256_loadu_ps(ar + j), vc);
      for (int64_t c = 0; c < valid; ++c) {
        const float* v = cpu_ref::At<const float>(p.v, k0 + c, g) + j;
        o = _mm256_fmadd_ps(_mm256_set1_ps(sc.s[c]), _mm256_loadu_ps(v), o);
      }
      _mm256_storeu_ps(ar + j, o);
    }
  }
}

// Whether SALE keeps key block kb (fully causal for every row): some row's estimated logit clears
// its threshold. Integer dots in 16 bits: |sum| <= hd/2 * 2 * 15 * 8 fits for hd <= 256.
bool SaleKeeps(const Geometry& geo, int64_t h, int64_t t0, int64_t rows, int64_t kb,
               const Scratch& sc) {
  const SaleOperands& so = *geo.sale;
  const int64_t hd = geo.hd, g = h / geo.group, nkvh = so.qz.n_kv_heads;
  const int64_t k0 = kb * geo.bk;
  const int64_t groups = std::min<int64_t>(geo.bk, geo.n_kv - k0) / 16;
  const __m256 vscale = _mm256_set1_ps(geo.p->scale);
  // The block's per-key terms, once: 8 * sum of int4 values (the unsigned-Q offset) and scales.
  alignas(32) int32_t ks8[kMaxKeys];
  alignas(32) float sk[kMaxKeys];
  for (int64_t i = 0; i < groups * 16; ++i) {
    ks8[i] = 8 * so.qz.k_sum[(k0 + i) * nkvh + g];
    sk[i] = so.qz.k_scale[(k0 + i) * nkvh + g];
  }
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t qr = (t0 + r) * geo.n_heads + h;
    const uint8_t* qu = so.q_u8.data() + qr * hd;
    const __m256 vqs = _mm256_set1_ps(so.qz.q_scale[qr]);
    const __m256 vqm = _mm256_set1_ps(so.qz.q_mean_dot[qr]);
    const __m256 vt = _mm256_set1_ps(sc.threshold[r]);
    for (int64_t gi = 0; gi < groups; ++gi) {
      const int64_t kg = k0 / 16 + gi;
      const int8_t* kp = so.k_pair.data() + (g * so.groups16 + kg) * hd * 16;
      __m256i acc = _mm256_setzero_si256();
      for (int64_t d2 = 0; d2 < hd / 2; ++d2) {
        int16_t pair;
        __builtin_memcpy(&pair, qu + 2 * d2, 2);
        const __m256i b = _mm256_set1_epi16(pair);
        acc = _mm256_add_epi16(
            acc, _mm256_maddubs_epi16(
                     b, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kp + d2 * 32))));
      }
      for (int half = 0; half < 2; ++half) {
        const __m128i a16 =
            half == 0 ? _mm256_castsi256_si128(acc) : _mm256_extracti128_si256(acc, 1);
        const int64_t at = gi * 16 + 8 * half;
        const __m256i idot =
            _mm256_sub_epi32(_mm256_cvtepi16_epi32(a16),
                             _mm256_load_si256(reinterpret_cast<const __m256i*>(ks8 + at)));
        const __m256 qk = _mm256_mul_ps(vqs, _mm256_load_ps(sk + at));
        const __m256 est = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(idot), qk), vqm);
        if (_mm256_movemask_ps(_mm256_cmp_ps(_mm256_mul_ps(est, vscale), vt, _CMP_GT_OQ)) != 0) {
          return true;
        }
      }
    }
  }
  return false;
}

}  // namespace
#pragma GCC pop_options

namespace {

// Runs one item; returns (causal blocks, computed blocks).
std::pair<int64_t, int64_t> RunItem(const Geometry& geo, const Item& it) {
  thread_local std::vector<Scratch> scratch_holder(1);
  Scratch& sc = scratch_holder[0];
  const AttentionPrefillParams& p = *geo.p;
  const SparseConfig& c = p.sparse;
  const int64_t pos_begin = std::max(it.qb * geo.bq, geo.q0);
  const int64_t pos_end = std::min((it.qb + 1) * geo.bq, geo.q0 + geo.n_q);
  const int64_t rows = pos_end - pos_begin;
  const int64_t t0 = pos_begin - geo.q0;
  for (int64_t r = 0; r < rows; ++r) {
    sc.m[r] = -INFINITY;
    sc.l[r] = 0.0f;
  }
  std::fill(sc.acc, sc.acc + rows * geo.hd, 0.0f);
  const int64_t n_kb = std::min(pos_end - 1, geo.n_kv - 1) / geo.bk + 1;  // causal key blocks
  int64_t computed = 0;
  auto compute = [&](int64_t kb) {
    ComputeTile(geo, it.h, t0, rows, kb * geo.bk, std::min((kb + 1) * geo.bk, geo.n_kv), sc);
    ++computed;
  };
  if (c.method == SparseMethod::kPowerAttention) {
    for (int64_t kb = 0; kb < n_kb; ++kb) {
      if (PowerKeeps(c, it.qb, kb)) compute(kb);
    }
  } else if (geo.sale_sparse) {
    std::vector<int64_t> rest;
    for (int64_t kb = 0; kb < n_kb; ++kb) {
      if (SaleMandatory(c, it.qb, kb)) {
        compute(kb);
      } else {
        rest.push_back(kb);
      }
    }
    for (int64_t r = 0; r < rows; ++r) {
      sc.threshold[r] = sc.l[r] > 0.0f ? sc.m[r] + std::log(c.sale_threshold * sc.l[r]) : -INFINITY;
    }
    for (int64_t kb : rest) {
      if (SaleKeeps(geo, it.h, t0, rows, kb, sc)) compute(kb);
    }
  } else {
    // Every block (dense, or SALE below its thresholds): 64-key tiles whatever the method's block
    // size, the fastest shape of ComputeTile; the counts stay in the method's blocks.
    const int64_t k_end = std::min(pos_end, geo.n_kv);
    for (int64_t k0 = 0; k0 < k_end; k0 += kMaxKeys) {
      ComputeTile(geo, it.h, t0, rows, k0, std::min(k0 + kMaxKeys, geo.n_kv), sc);
    }
    computed = n_kb;
  }
  for (int64_t r = 0; r < rows; ++r) {
    float* out = cpu_ref::At<float>(p.out, t0 + r, it.h);
    const float inv = sc.l[r] > 0.0f ? 1.0f / sc.l[r] : 0.0f;
    const float* ar = sc.acc + r * geo.hd;
    for (int64_t d = 0; d < geo.hd; ++d) out[d] = ar[d] * inv;
  }
  return {n_kb, computed};
}

void BuildSaleOperands(const AttentionPrefillParams& p, SaleOperands* so) {
  cpu_ref::SaleQuantize(p, &so->qz);
  const cpu_ref::SaleQuantized& qz = so->qz;
  const int64_t hd = qz.head_dim;
  so->q_u8.resize(qz.q.size());
  for (size_t i = 0; i < qz.q.size(); ++i) so->q_u8[i] = static_cast<uint8_t>(qz.q[i] + 8);
  so->groups16 = (qz.n_kv + 15) / 16;
  so->k_pair.assign(static_cast<size_t>(qz.n_kv_heads * so->groups16 * hd * 16), 0);
  for (int64_t g = 0; g < qz.n_kv_heads; ++g) {
    for (int64_t j = 0; j < qz.n_kv; ++j) {
      const int8_t* src = qz.k.data() + (j * qz.n_kv_heads + g) * hd;
      int8_t* dst = so->k_pair.data() + (g * so->groups16 + j / 16) * hd * 16;
      for (int64_t d = 0; d < hd; ++d) dst[(d / 2) * 32 + (j % 16) * 2 + d % 2] = src[d];
    }
  }
}

}  // namespace

absl::Status RunAttentionPrefill(CpuContext& ctx, const AttentionPrefillParams& p) {
  TANDEM_RETURN_IF_ERROR(cpu_ref::CheckAttentionPrefill(p));
  const int64_t n_q = p.q.shape[0], n_heads = p.q.shape[1], hd = p.q.shape[2];
  const int64_t n_kv = p.k.shape[0], group = n_heads / p.k.shape[1];
  const SparseConfig& c = p.sparse;
  const int64_t bq = QBlock(c), bk = KBlock(c);
  if (hd % 8 != 0 || hd > kMaxHeadDim || bq > kMaxRows || bk > kMaxKeys ||
      (c.method == SparseMethod::kSale && bk % 16 != 0)) {
    return absl::UnimplementedError("cpu: attention_prefill shape");
  }
  // Contiguous positions only: keys 0..n_kv-1, queries q0..q0+n_q-1 with q0+n_q <= n_kv.
  const int32_t* qpos = static_cast<const int32_t*>(p.q_pos.data);
  const int32_t* kpos = static_cast<const int32_t*>(p.kv_pos.data);
  const int64_t qs = p.q_pos.stride_bytes[0] / 4, ks = p.kv_pos.stride_bytes[0] / 4;
  const int64_t q0 = n_q > 0 ? qpos[0] : 0;
  for (int64_t t = 0; t < n_q; ++t) {
    if (qpos[t * qs] != q0 + t) return absl::UnimplementedError("cpu: attention_prefill q_pos");
  }
  for (int64_t j = 0; j < n_kv; ++j) {
    if (kpos[j * ks] != j) return absl::UnimplementedError("cpu: attention_prefill kv_pos");
  }
  if (q0 < 0 || q0 + n_q > n_kv) return absl::UnimplementedError("cpu: attention_prefill q_pos");
  if (p.stats != nullptr) *p.stats = AttentionStats{};
  if (n_q == 0) return absl::OkStatus();

  Geometry geo{&p, n_q, n_heads, hd, n_kv, group, q0, bq, bk, false, nullptr};
  SaleOperands sale;
  if (c.method == SparseMethod::kSale && !SaleIsDense(c, n_kv)) {
    BuildSaleOperands(p, &sale);
    geo.sale_sparse = true;
    geo.sale = &sale;
  }
  // Heaviest (latest) query blocks first so that dynamic claiming balances the tail.
  const int64_t qb_first = q0 / bq, qb_last = (q0 + n_q - 1) / bq;
  std::vector<Item> items;
  for (int64_t qb = qb_last; qb >= qb_first; --qb) {
    for (int64_t h = 0; h < n_heads; ++h) items.push_back({h, qb});
  }
  std::vector<std::pair<int64_t, int64_t>> counts(items.size());
  ctx.pool->ParallelFor(static_cast<int64_t>(items.size()), 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) counts[i] = RunItem(geo, items[i]);
  });
  if (p.stats != nullptr) {
    for (const auto& [causal, computed] : counts) {
      p.stats->causal_blocks += causal;
      p.stats->computed_blocks += computed;
    }
  }
  return absl::OkStatus();
}

}  // namespace tandem::kernels::cpu
