// paged_attention: for each query token and head, gather the sequence's KV positions 0..q_pos
// through the page table, score in double, max-subtracted softmax, weighted V sum. No tiling, no
// online softmax: the straightforward two-pass form that the fast kernels are checked against.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/cpu_ref/ref_ops.h"

namespace tandem::kernels::cpu_ref {
namespace {

double PoolAt(const TensorView& pool, int64_t page, int64_t off, int64_t g, int64_t j) {
  if (pool.dtype == DType::kF16) return HalfToFloat(At<const uint16_t>(pool, page, off, g)[j]);
  return At<const float>(pool, page, off, g)[j];
}

}  // namespace

absl::Status CheckPagedAttention(const PagedAttentionParams& p) {
  constexpr std::string_view kOp = "paged_attention";
  TANDEM_RETURN_IF_ERROR(CheckTensor(kOp, "q", p.q, 3, {DType::kF32}));
  TANDEM_RETURN_IF_ERROR(CheckTensor(kOp, "k_pool", p.k_pool, 4, {DType::kF32, DType::kF16}));
  TANDEM_RETURN_IF_ERROR(CheckTensor(kOp, "v_pool", p.v_pool, 4, {p.k_pool.dtype}));
  TANDEM_RETURN_IF_ERROR(CheckTensor(kOp, "out", p.out, 3, {DType::kF32}));
  TANDEM_RETURN_IF_ERROR(CheckTensor(kOp, "q_seq", p.q_seq, 1, {DType::kI32}));
  TANDEM_RETURN_IF_ERROR(CheckTensor(kOp, "q_pos", p.q_pos, 1, {DType::kI32}));
  TANDEM_RETURN_IF_ERROR(CheckTensor(kOp, "page_table", p.page_table, 2, {DType::kI32}));
  TANDEM_RETURN_IF_ERROR(CheckSameShape(kOp, "v_pool", p.v_pool, "k_pool", p.k_pool));
  TANDEM_RETURN_IF_ERROR(CheckSameShape(kOp, "out", p.out, "q", p.q));
  TANDEM_RETURN_IF_ERROR(CheckSameDim(kOp, "q", p.q, 2, "k_pool", p.k_pool, 3));
  TANDEM_RETURN_IF_ERROR(CheckSameDim(kOp, "q_seq", p.q_seq, 0, "q", p.q, 0));
  TANDEM_RETURN_IF_ERROR(CheckSameDim(kOp, "q_pos", p.q_pos, 0, "q", p.q, 0));
  const int64_t n_heads = p.q.shape[1];
  const int64_t n_kv_heads = p.k_pool.shape[2];
  if (n_kv_heads <= 0 || n_heads % n_kv_heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(AV(kOp), ": q.shape[1]=", n_heads,
                     " (heads) is not a multiple of k_pool.shape[2]=", n_kv_heads, " (kv heads)"));
  }
  if (!std::isfinite(p.scale)) {
    return absl::InvalidArgumentError(absl::StrCat(AV(kOp), ": scale=", p.scale, " is not finite"));
  }
  TANDEM_RETURN_IF_ERROR(CheckNoOverlap(kOp, "out", p.out, "q", p.q));
  return absl::OkStatus();
}

absl::Status RunPagedAttention(const PagedAttentionParams& p) {
  TANDEM_RETURN_IF_ERROR(CheckPagedAttention(p));
  constexpr std::string_view kOp = "paged_attention";
  const int64_t n = p.q.shape[0];
  const int64_t n_heads = p.q.shape[1];
  const int64_t hd = p.q.shape[2];
  const int64_t num_pages = p.k_pool.shape[0];
  const int64_t page_tokens = p.k_pool.shape[1];
  const int64_t group = n_heads / p.k_pool.shape[2];
  const int64_t n_seqs = p.page_table.shape[0];
  const int64_t max_pages = p.page_table.shape[1];
  // Every index is validated before any output is written.
  for (int64_t t = 0; t < n; ++t) {
    const int32_t s = *At<const int32_t>(p.q_seq, t);
    TANDEM_RETURN_IF_ERROR(CheckIndex(kOp, "q_seq", t, s, n_seqs));
    const int32_t pos = *At<const int32_t>(p.q_pos, t);
    TANDEM_RETURN_IF_ERROR(CheckIndex(kOp, "q_pos", t, pos, max_pages * page_tokens));
    for (int64_t pg = 0; pg <= pos / page_tokens; ++pg) {
      const int32_t page = *At<const int32_t>(p.page_table, s, pg);
      if (page < 0 || page >= num_pages) {
        return absl::InvalidArgumentError(absl::StrCat(AV(kOp), ": page_table[", s, ", ", pg,
                                                       "]=", page, " not in [0, ", num_pages, ")"));
      }
    }
  }
  std::vector<double> scores;
  std::vector<double> acc(static_cast<size_t>(hd));
  for (int64_t t = 0; t < n; ++t) {
    const int32_t s = *At<const int32_t>(p.q_seq, t);
    const int64_t len = *At<const int32_t>(p.q_pos, t) + 1;
    scores.assign(static_cast<size_t>(len), 0.0);
    for (int64_t h = 0; h < n_heads; ++h) {
      const int64_t g = h / group;
      const float* q = At<const float>(p.q, t, h);
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t pos = 0; pos < len; ++pos) {
        const int64_t page = *At<const int32_t>(p.page_table, s, pos / page_tokens);
        const int64_t off = pos % page_tokens;
        double dot = 0.0;
        for (int64_t j = 0; j < hd; ++j) dot += q[j] * PoolAt(p.k_pool, page, off, g, j);
        scores[pos] = static_cast<double>(p.scale) * dot;
        mx = std::max(mx, scores[pos]);
      }
      double sum = 0.0;
      for (int64_t pos = 0; pos < len; ++pos) {
        scores[pos] = std::exp(scores[pos] - mx);
        sum += scores[pos];
      }
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t pos = 0; pos < len; ++pos) {
        const int64_t page = *At<const int32_t>(p.page_table, s, pos / page_tokens);
        const int64_t off = pos % page_tokens;
        const double w = scores[pos] / sum;
        for (int64_t j = 0; j < hd; ++j) acc[j] += w * PoolAt(p.v_pool, page, off, g, j);
      }
      float* out = At<float>(p.out, t, h);
      for (int64_t j = 0; j < hd; ++j) out[j] = static_cast<float>(acc[j]);
    }
  }
  return absl::OkStatus();
}

}  // namespace tandem::kernels::cpu_ref
