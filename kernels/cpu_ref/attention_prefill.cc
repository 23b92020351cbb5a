// attention_prefill: the spec of dense, SALE and PowerAttention prefill attention (op.h). Selection
// first, per (query head, q-block, kv-block), then for every query and head a two-pass softmax in
// double over exactly the kept causal keys. With every block kept this is dense attention
// bit for bit, which the harness relies on (sparse with everything selected == dense).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/cpu_ref/ref_ops.h"
#include "kernels/cpu_ref/sale_quant.h"
#include "kernels/sparse_config_check.h"
#include "kernels/sparse_pattern.h"

namespace tandem::kernels::cpu_ref {
namespace {

constexpr std::string_view kOp = "attention_prefill";

double Dot(const float* a, const float* b, int64_t n) {
  double s = 0.0;
  for (int64_t j = 0; j < n; ++j) s += static_cast<double>(a[j]) * b[j];
  return s;
}

// keep[(h * n_qb + qb) * n_kb + kb]: blocks indexed from the smallest position's block.
struct Selection {
  int64_t qb0 = 0, kb0 = 0, n_qb = 0, n_kb = 0;
  std::vector<uint8_t> keep;
  uint8_t& at(int64_t h, int64_t qb, int64_t kb) {
    return keep[static_cast<size_t>(((h * n_qb) + qb - qb0) * n_kb + kb - kb0)];
  }
};

// SALE's data-dependent selection of the non-mandatory blocks (papers.md §4.2 steps 3-4, two-pass
// mode: the threshold is fixed once after the sink and local window).
void SelectSale(const AttentionPrefillParams& p, const std::vector<int32_t>& qpos,
                const std::vector<int32_t>& kpos, Selection* sel) {
  const SparseConfig& c = p.sparse;
  const int64_t n_q = p.q.shape[0], n_heads = p.q.shape[1], hd = p.q.shape[2];
  const int64_t n_kv = p.k.shape[0], group = n_heads / p.k.shape[1];
  SaleQuantized qz;
  SaleQuantize(p, &qz);
  for (int64_t h = 0; h < n_heads; ++h) {
    const int64_t g = h / group;
    for (int64_t t = 0; t < n_q; ++t) {
      const int64_t qb = qpos[t] / c.sale_q_block;
      const float* q = At<const float>(p.q, t, h);
      // Exact max and sum over the mandatory causal keys.
      double m = -std::numeric_limits<double>::infinity();
      std::vector<double> s;
      for (int64_t j = 0; j < n_kv; ++j) {
        if (kpos[j] > qpos[t] || !SaleMandatory(c, qb, kpos[j] / c.sale_k_block)) continue;
        s.push_back(p.scale * Dot(q, At<const float>(p.k, j, g), hd));
        m = std::max(m, s.back());
      }
      double l = 0.0;
      for (double x : s) l += std::exp(x - m);
      // RAS = exp(scale * s_hat - m) / l > tau  <=>  scale * s_hat > m + ln(tau * l).
      const double threshold = s.empty() ? -std::numeric_limits<double>::infinity()
                                         : m + std::log(static_cast<double>(c.sale_threshold) * l);
      const int64_t qr = t * n_heads + h;
      for (int64_t j = 0; j < n_kv; ++j) {
        const int64_t kb = kpos[j] / c.sale_k_block;
        if (kpos[j] > qpos[t] || SaleMandatory(c, qb, kb) || sel->at(h, qb, kb)) continue;
        const int64_t kr = j * qz.n_kv_heads + g;
        int32_t idot = 0;
        for (int64_t d = 0; d < hd; ++d) idot += int32_t{qz.q[qr * hd + d]} * qz.k[kr * hd + d];
        const float est = SaleEstimate(idot, qz.q_scale[qr], qz.k_scale[kr], qz.q_mean_dot[qr]);
        if (static_cast<double>(p.scale) * est > threshold) sel->at(h, qb, kb) = 1;
      }
    }
  }
}

}  // namespace

absl::Status CheckAttentionPrefill(const AttentionPrefillParams& p) {
  TANDEM_RETURN_IF_ERROR(CheckTensor(kOp, "q", p.q, 3, {DType::kF32}));
  TANDEM_RETURN_IF_ERROR(CheckTensor(kOp, "k", p.k, 3, {DType::kF32}));
  TANDEM_RETURN_IF_ERROR(CheckTensor(kOp, "v", p.v, 3, {DType::kF32}));
  TANDEM_RETURN_IF_ERROR(CheckTensor(kOp, "out", p.out, 3, {DType::kF32}));
  TANDEM_RETURN_IF_ERROR(CheckTensor(kOp, "q_pos", p.q_pos, 1, {DType::kI32}));
  TANDEM_RETURN_IF_ERROR(CheckTensor(kOp, "kv_pos", p.kv_pos, 1, {DType::kI32}));
  TANDEM_RETURN_IF_ERROR(CheckSameShape(kOp, "v", p.v, "k", p.k));
  TANDEM_RETURN_IF_ERROR(CheckSameShape(kOp, "out", p.out, "q", p.q));
  TANDEM_RETURN_IF_ERROR(CheckSameDim(kOp, "q", p.q, 2, "k", p.k, 2));
  TANDEM_RETURN_IF_ERROR(CheckSameDim(kOp, "q_pos", p.q_pos, 0, "q", p.q, 0));
  TANDEM_RETURN_IF_ERROR(CheckSameDim(kOp, "kv_pos", p.kv_pos, 0, "k", p.k, 0));
  const int64_t n_heads = p.q.shape[1];
  const int64_t n_kv_heads = p.k.shape[1];
  if (n_kv_heads <= 0 || n_heads % n_kv_heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(AV(kOp), ": q.shape[1]=", n_heads,
                     " (heads) is not a multiple of k.shape[1]=", n_kv_heads, " (kv heads)"));
  }
  if (!std::isfinite(p.scale)) {
    return absl::InvalidArgumentError(absl::StrCat(AV(kOp), ": scale=", p.scale, " is not finite"));
  }
  TANDEM_RETURN_IF_ERROR(ValidateSparseConfig(kOp, p.sparse));
  TANDEM_RETURN_IF_ERROR(CheckNoOverlap(kOp, "out", p.out, "q", p.q));
  TANDEM_RETURN_IF_ERROR(CheckNoOverlap(kOp, "out", p.out, "k", p.k));
  TANDEM_RETURN_IF_ERROR(CheckNoOverlap(kOp, "out", p.out, "v", p.v));
  return absl::OkStatus();
}

absl::Status RunAttentionPrefill(const AttentionPrefillParams& p) {
  TANDEM_RETURN_IF_ERROR(CheckAttentionPrefill(p));
  const int64_t n_q = p.q.shape[0], n_heads = p.q.shape[1], hd = p.q.shape[2];
  const int64_t n_kv = p.k.shape[0], group = n_heads / p.k.shape[1];
  std::vector<int32_t> qpos(static_cast<size_t>(n_q)), kpos(static_cast<size_t>(n_kv));
  for (int64_t t = 0; t < n_q; ++t) {
    qpos[t] = *At<const int32_t>(p.q_pos, t);
    TANDEM_RETURN_IF_ERROR(
        CheckIndex(kOp, "q_pos", t, qpos[t], std::numeric_limits<int32_t>::max()));
  }
  for (int64_t j = 0; j < n_kv; ++j) {
    kpos[j] = *At<const int32_t>(p.kv_pos, j);
    TANDEM_RETURN_IF_ERROR(
        CheckIndex(kOp, "kv_pos", j, kpos[j], std::numeric_limits<int32_t>::max()));
  }
  const SparseConfig& c = p.sparse;
  const int64_t bq = QBlock(c), bk = KBlock(c);
  Selection sel;
  if (n_q > 0 && n_kv > 0) {
    const auto [qmin, qmax] = std::minmax_element(qpos.begin(), qpos.end());
    const auto [kmin, kmax] = std::minmax_element(kpos.begin(), kpos.end());
    sel.qb0 = *qmin / bq;
    sel.n_qb = *qmax / bq - sel.qb0 + 1;
    sel.kb0 = *kmin / bk;
    sel.n_kb = *kmax / bk - sel.kb0 + 1;
  }
  // Mandatory or static choices first; SALE then adds its estimated blocks.
  sel.keep.assign(static_cast<size_t>(n_heads * sel.n_qb * sel.n_kb), 0);
  const bool sale_dense = c.method == SparseMethod::kSale && SaleIsDense(c, n_kv);
  for (int64_t h = 0; h < n_heads; ++h) {
    for (int64_t qb = sel.qb0; qb < sel.qb0 + sel.n_qb; ++qb) {
      for (int64_t kb = sel.kb0; kb < sel.kb0 + sel.n_kb; ++kb) {
        bool keep = true;
        if (c.method == SparseMethod::kPowerAttention) keep = PowerKeeps(c, qb, kb);
        if (c.method == SparseMethod::kSale && !sale_dense) keep = SaleMandatory(c, qb, kb);
        sel.at(h, qb, kb) = keep ? 1 : 0;
      }
    }
  }
  if (c.method == SparseMethod::kSale && !sale_dense) SelectSale(p, qpos, kpos, &sel);

  if (p.stats != nullptr) *p.stats = AttentionStats{};
  if (p.stats != nullptr && n_q > 0 && n_kv > 0) {
    // A block is causal when its smallest key position is <= its largest query position.
    std::vector<int32_t> qb_max(static_cast<size_t>(sel.n_qb), -1);
    std::vector<int32_t> kb_min(static_cast<size_t>(sel.n_kb), std::numeric_limits<int32_t>::max());
    for (int32_t x : qpos) qb_max[x / bq - sel.qb0] = std::max(qb_max[x / bq - sel.qb0], x);
    for (int32_t x : kpos) kb_min[x / bk - sel.kb0] = std::min(kb_min[x / bk - sel.kb0], x);
    for (int64_t h = 0; h < n_heads; ++h) {
      for (int64_t qb = 0; qb < sel.n_qb; ++qb) {
        for (int64_t kb = 0; kb < sel.n_kb; ++kb) {
          if (kb_min[kb] > qb_max[qb]) continue;
          ++p.stats->causal_blocks;
          p.stats->computed_blocks += sel.at(h, qb + sel.qb0, kb + sel.kb0);
        }
      }
    }
  }

  std::vector<double> s(static_cast<size_t>(n_kv));
  std::vector<double> acc(static_cast<size_t>(hd));
  for (int64_t t = 0; t < n_q; ++t) {
    const int64_t qb = qpos[t] / bq;
    for (int64_t h = 0; h < n_heads; ++h) {
      const int64_t g = h / group;
      const float* q = At<const float>(p.q, t, h);
      double m = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < n_kv; ++j) {
        const bool keep = kpos[j] <= qpos[t] && sel.at(h, qb, kpos[j] / bk);
        s[j] = keep ? p.scale * Dot(q, At<const float>(p.k, j, g), hd)
                    : -std::numeric_limits<double>::infinity();
        m = std::max(m, s[j]);
      }
      std::fill(acc.begin(), acc.end(), 0.0);
      double l = 0.0;
      if (m > -std::numeric_limits<double>::infinity()) {
        for (int64_t j = 0; j < n_kv; ++j) {
          s[j] = std::exp(s[j] - m);
          l += s[j];
        }
        for (int64_t j = 0; j < n_kv; ++j) {
          if (s[j] == 0.0) continue;
          const float* v = At<const float>(p.v, j, g);
          for (int64_t d = 0; d < hd; ++d) acc[d] += s[j] * v[d];
        }
      }
      float* out = At<float>(p.out, t, h);
      for (int64_t d = 0; d < hd; ++d) out[d] = l > 0.0 ? static_cast<float>(acc[d] / l) : 0.0f;
    }
  }
  return absl::OkStatus();
}

}  // namespace tandem::kernels::cpu_ref
