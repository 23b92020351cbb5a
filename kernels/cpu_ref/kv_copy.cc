// kv_write and kv_gather, the two copies between contiguous f32 rows [n, n_kv_heads, head_dim] and
// the paged pools: kv_write stores row t at pool slot slots[t] (f16 pools round to nearest even
// with the shared FloatToHalf), kv_gather reads it back (f16 widens exactly).
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/cpu_ref/ref_ops.h"

namespace tandem::kernels::cpu_ref {
namespace {

// kToPool: kv_write (rows -> pools); else kv_gather (pools -> rows).
template <bool kToPool>
absl::Status CheckKvCopy(std::string_view op, const TensorView& k, const TensorView& v,
                         const TensorView& k_pool, const TensorView& v_pool,
                         const TensorView& slots) {
  TANDEM_RETURN_IF_ERROR(CheckTensor(op, "k", k, 3, {DType::kF32}));
  TANDEM_RETURN_IF_ERROR(CheckTensor(op, "v", v, 3, {DType::kF32}));
  TANDEM_RETURN_IF_ERROR(CheckTensor(op, "k_pool", k_pool, 4, {DType::kF32, DType::kF16}));
  TANDEM_RETURN_IF_ERROR(CheckTensor(op, "v_pool", v_pool, 4, {k_pool.dtype}));
  TANDEM_RETURN_IF_ERROR(CheckTensor(op, "slots", slots, 1, {DType::kI32}));
  TANDEM_RETURN_IF_ERROR(CheckSameShape(op, "v", v, "k", k));
  TANDEM_RETURN_IF_ERROR(CheckSameShape(op, "v_pool", v_pool, "k_pool", k_pool));
  TANDEM_RETURN_IF_ERROR(CheckSameDim(op, "slots", slots, 0, "k", k, 0));
  TANDEM_RETURN_IF_ERROR(CheckSameDim(op, "k", k, 1, "k_pool", k_pool, 2));
  TANDEM_RETURN_IF_ERROR(CheckSameDim(op, "k", k, 2, "k_pool", k_pool, 3));
  // The written pair must not overlap: the pools for kv_write, the rows for kv_gather.
  return kToPool ? CheckNoOverlap(op, "k_pool", k_pool, "v_pool", v_pool)
                 : CheckNoOverlap(op, "k", k, "v", v);
}

// Copies every row between k, v and the pools in kToPool's direction, after checking every slot.
template <bool kToPool>
absl::Status CopyRows(std::string_view op, const TensorView& k, const TensorView& v,
                      const TensorView& k_pool, const TensorView& v_pool, const TensorView& slots) {
  const int64_t page_tokens = k_pool.shape[1];
  const int64_t n_slots = k_pool.shape[0] * page_tokens;
  for (int64_t t = 0; t < k.shape[0]; ++t) {
    TANDEM_RETURN_IF_ERROR(CheckIndex(op, "slots", t, *At<const int32_t>(slots, t), n_slots));
  }
  const bool half = k_pool.dtype == DType::kF16;
  for (int64_t t = 0; t < k.shape[0]; ++t) {
    const int64_t slot = *At<const int32_t>(slots, t);
    const int64_t page = slot / page_tokens;
    const int64_t off = slot % page_tokens;
    for (int64_t g = 0; g < k.shape[1]; ++g) {
      for (const auto& [row_view, pool_view] : {std::pair{&k, &k_pool}, std::pair{&v, &v_pool}}) {
        float* row = At<float>(*row_view, t, g);
        for (int64_t j = 0; j < k.shape[2]; ++j) {
          if constexpr (kToPool) {
            if (half) {
              At<uint16_t>(*pool_view, page, off, g)[j] = FloatToHalf(row[j]);
            } else {
              At<float>(*pool_view, page, off, g)[j] = row[j];
            }
          } else {
            row[j] = half ? HalfToFloat(At<const uint16_t>(*pool_view, page, off, g)[j])
                          : At<const float>(*pool_view, page, off, g)[j];
          }
        }
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckKvWrite(const KvWriteParams& p) {
  return CheckKvCopy<true>("kv_write", p.k, p.v, p.k_pool, p.v_pool, p.slots);
}

absl::Status RunKvWrite(const KvWriteParams& p) {
  TANDEM_RETURN_IF_ERROR(CheckKvWrite(p));
  return CopyRows<true>("kv_write", p.k, p.v, p.k_pool, p.v_pool, p.slots);
}

absl::Status CheckKvGather(const KvGatherParams& p) {
  return CheckKvCopy<false>("kv_gather", p.k, p.v, p.k_pool, p.v_pool, p.slots);
}

absl::Status RunKvGather(const KvGatherParams& p) {
  TANDEM_RETURN_IF_ERROR(CheckKvGather(p));
  return CopyRows<false>("kv_gather", p.k, p.v, p.k_pool, p.v_pool, p.slots);
}

}  // namespace tandem::kernels::cpu_ref
