// kv_gather: reads token t's K and V from pool slot slots[t] into contiguous f32 rows, the inverse
// of kv_write (f16 widens exactly).
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/cpu_ref/ref_ops.h"

namespace tandem::kernels::cpu_ref {

absl::Status CheckKvGather(const KvGatherParams& p) {
  constexpr std::string_view kOp = "kv_gather";
  TANDEM_RETURN_IF_ERROR(CheckTensor(kOp, "k_pool", p.k_pool, 4, {DType::kF32, DType::kF16}));
  TANDEM_RETURN_IF_ERROR(CheckTensor(kOp, "v_pool", p.v_pool, 4, {p.k_pool.dtype}));
  TANDEM_RETURN_IF_ERROR(CheckTensor(kOp, "slots", p.slots, 1, {DType::kI32}));
  TANDEM_RETURN_IF_ERROR(CheckTensor(kOp, "k", p.k, 3, {DType::kF32}));
  TANDEM_RETURN_IF_ERROR(CheckTensor(kOp, "v", p.v, 3, {DType::kF32}));
  TANDEM_RETURN_IF_ERROR(CheckSameShape(kOp, "v", p.v, "k", p.k));
  TANDEM_RETURN_IF_ERROR(CheckSameShape(kOp, "v_pool", p.v_pool, "k_pool", p.k_pool));
  TANDEM_RETURN_IF_ERROR(CheckSameDim(kOp, "slots", p.slots, 0, "k", p.k, 0));
  TANDEM_RETURN_IF_ERROR(CheckSameDim(kOp, "k", p.k, 1, "k_pool", p.k_pool, 2));
  TANDEM_RETURN_IF_ERROR(CheckSameDim(kOp, "k", p.k, 2, "k_pool", p.k_pool, 3));
  return CheckNoOverlap(kOp, "k", p.k, "v", p.v);
}

absl::Status RunKvGather(const KvGatherParams& p) {
  TANDEM_RETURN_IF_ERROR(CheckKvGather(p));
  const int64_t page_tokens = p.k_pool.shape[1];
  const int64_t n_slots = p.k_pool.shape[0] * page_tokens;
  for (int64_t t = 0; t < p.k.shape[0]; ++t) {
    TANDEM_RETURN_IF_ERROR(
        CheckIndex("kv_gather", "slots", t, *At<const int32_t>(p.slots, t), n_slots));
  }
  const bool half = p.k_pool.dtype == DType::kF16;
  for (int64_t t = 0; t < p.k.shape[0]; ++t) {
    const int64_t slot = *At<const int32_t>(p.slots, t);
    const int64_t page = slot / page_tokens;
    const int64_t off = slot % page_tokens;
    for (int64_t g = 0; g < p.k.shape[1]; ++g) {
      float* k = At<float>(p.k, t, g);
      float* v = At<float>(p.v, t, g);
      for (int64_t j = 0; j < p.k.shape[2]; ++j) {
        if (half) {
          k[j] = HalfToFloat(At<const uint16_t>(p.k_pool, page, off, g)[j]);
          v[j] = HalfToFloat(At<const uint16_t>(p.v_pool, page, off, g)[j]);
        } else {
          k[j] = At<const float>(p.k_pool, page, off, g)[j];
          v[j] = At<const float>(p.v_pool, page, off, g)[j];
        }
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace tandem::kernels::cpu_ref
