// SALE's int4 quantization (see sale_quant.h).
#include "kernels/cpu_ref/sale_quant.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu_ref/ref_ops.h"

namespace tandem::kernels::cpu_ref {
namespace {

// Per-row symmetric int4: scale = max|x| / 7, q = round_half_even(x / scale) clamped to [-8, 7].
void QuantizeRow(const float* x, int64_t hd, int8_t* q, float* scale, int32_t* sum) {
  float amax = 0.0f;
  for (int64_t j = 0; j < hd; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float s = amax > 0.0f ? amax / 7.0f : 1.0f;
  int32_t total = 0;
  for (int64_t j = 0; j < hd; ++j) {
    float r = std::nearbyint(x[j] / s);
    if (!std::isfinite(r)) r = 0.0f;  // NaN/Inf input: casting it to int8 would be undefined
    q[j] = static_cast<int8_t>(std::clamp(r, -8.0f, 7.0f));
    total += q[j];
  }
  *scale = amax > 0.0f ? s : 0.0f;
  if (sum != nullptr) *sum = total;
}

}  // namespace

void SaleQuantize(const AttentionPrefillParams& p, SaleQuantized* out) {
  const int64_t n_q = p.q.shape[0], n_heads = p.q.shape[1], hd = p.q.shape[2];
  const int64_t n_kv = p.k.shape[0], n_kv_heads = p.k.shape[1];
  const int64_t group = n_heads / n_kv_heads;
  out->n_q = n_q;
  out->n_heads = n_heads;
  out->n_kv = n_kv;
  out->n_kv_heads = n_kv_heads;
  out->head_dim = hd;
  // Mean of K over tokens per KV head, accumulated in double so that it does not depend on order.
  std::vector<float> mean(static_cast<size_t>(n_kv_heads * hd), 0.0f);
  for (int64_t g = 0; g < n_kv_heads; ++g) {
    for (int64_t j = 0; j < hd; ++j) {
      double acc = 0.0;
      for (int64_t t = 0; t < n_kv; ++t) acc += At<const float>(p.k, t, g)[j];
      mean[g * hd + j] = n_kv > 0 ? static_cast<float>(acc / static_cast<double>(n_kv)) : 0.0f;
    }
  }
  out->k.resize(static_cast<size_t>(n_kv * n_kv_heads * hd));
  out->k_scale.resize(static_cast<size_t>(n_kv * n_kv_heads));
  out->k_sum.resize(static_cast<size_t>(n_kv * n_kv_heads));
  std::vector<float> row(static_cast<size_t>(hd));
  for (int64_t t = 0; t < n_kv; ++t) {
    for (int64_t g = 0; g < n_kv_heads; ++g) {
      const float* k = At<const float>(p.k, t, g);
      for (int64_t j = 0; j < hd; ++j) row[j] = k[j] - mean[g * hd + j];
      const int64_t r = t * n_kv_heads + g;
      QuantizeRow(row.data(), hd, &out->k[r * hd], &out->k_scale[r], &out->k_sum[r]);
    }
  }
  out->q.resize(static_cast<size_t>(n_q * n_heads * hd));
  out->q_scale.resize(static_cast<size_t>(n_q * n_heads));
  out->q_mean_dot.resize(static_cast<size_t>(n_q * n_heads));
  for (int64_t t = 0; t < n_q; ++t) {
    for (int64_t h = 0; h < n_heads; ++h) {
      const float* q = At<const float>(p.q, t, h);
      const int64_t r = t * n_heads + h;
      QuantizeRow(q, hd, &out->q[r * hd], &out->q_scale[r], nullptr);
      double dot = 0.0;
      for (int64_t j = 0; j < hd; ++j)
        dot += static_cast<double>(q[j]) * mean[(h / group) * hd + j];
      out->q_mean_dot[r] = static_cast<float>(dot);
    }
  }
}

}  // namespace tandem::kernels::cpu_ref
