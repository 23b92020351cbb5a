// kernels/cpu_ref/sale_quant.h
//
// The int4 quantization that SALE's attention-weight estimate runs on (../shared/papers.md §4.2
// step 1), shared by the cpu_ref spec and the fast cpu path so that both estimate from the same
// integers: K minus its per-KV-head mean over tokens ("smooth K"), then Q and smoothed K rounded to
// [-8, 7] with one scale per token and head (the authors' quant_mode=2). The estimated logit of
// query t, head h against key j is SaleEstimate(dot of the int4 rows, q_scale, k_scale,
// q_mean_dot), which adds back q . mean(K) so that it estimates the true logit, not a shifted one.
// Plain data, owned by the caller; functions are pure.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/op.h"

namespace tandem::kernels::cpu_ref {

struct SaleQuantized {
  int64_t n_q = 0, n_heads = 0, n_kv = 0, n_kv_heads = 0, head_dim = 0;
  std::vector<int8_t> q;          // [n_q, n_heads, head_dim], in [-8, 7]
  std::vector<float> q_scale;     // [n_q, n_heads]
  std::vector<float> q_mean_dot;  // [n_q, n_heads]: q . mean_j k[j, g, :], unscaled
  std::vector<int8_t> k;          // [n_kv, n_kv_heads, head_dim], of k - mean, in [-8, 7]
  std::vector<float> k_scale;     // [n_kv, n_kv_heads]
  std::vector<int32_t> k_sum;     // [n_kv, n_kv_heads]: sum of the row's int4 values
};

// Fills `out` from p.q and p.k (shapes already validated).
void SaleQuantize(const AttentionPrefillParams& p, SaleQuantized* out);

// The estimated (unscaled) logit from the exact integer dot product of the int4 rows.
inline float SaleEstimate(int32_t int_dot, float q_scale, float k_scale, float q_mean_dot) {
  const float qk = q_scale * k_scale;
  return static_cast<float>(int_dot) * qk + q_mean_dot;
}

}  // namespace tandem::kernels::cpu_ref
