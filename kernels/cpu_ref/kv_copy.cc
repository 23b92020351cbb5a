// kv_write: stores token t's K and V at pool slot slots[t], converting f32 to the pool dtype with
// the shared round-to-nearest-even FloatToHalf.
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/cpu_ref/ref_ops.h"

namespace tandem::kernels::cpu_ref {

absl::Status CheckKvWrite(const KvWriteParams& p) {
  constexpr std::string_view kOp = "kv_write";
  TANDEM_RETURN_IF_ERROR(CheckTensor(kOp, "k", p.k, 3, {DType::kF32}));
  TANDEM_RETURN_IF_ERROR(CheckTensor(kOp, "v", p.v, 3, {DType::kF32}));
  TANDEM_RETURN_IF_ERROR(CheckTensor(kOp, "k_pool", p.k_pool, 4, {DType::kF32, DType::kF16}));
  TANDEM_RETURN_IF_ERROR(CheckTensor(kOp, "v_pool", p.v_pool, 4, {p.k_pool.dtype}));
  TANDEM_RETURN_IF_ERROR(CheckTensor(kOp, "slots", p.slots, 1, {DType::kI32}));
  TANDEM_RETURN_IF_ERROR(CheckSameShape(kOp, "v", p.v, "k", p.k));
  TANDEM_RETURN_IF_ERROR(CheckSameShape(kOp, "v_pool", p.v_pool, "k_pool", p.k_pool));
  TANDEM_RETURN_IF_ERROR(CheckSameDim(kOp, "slots", p.slots, 0, "k", p.k, 0));
  TANDEM_RETURN_IF_ERROR(CheckSameDim(kOp, "k", p.k, 1, "k_pool", p.k_pool, 2));
  TANDEM_RETURN_IF_ERROR(CheckSameDim(kOp, "k", p.k, 2, "k_pool", p.k_pool, 3));
  return CheckNoOverlap(kOp, "k_pool", p.k_pool, "v_pool", p.v_pool);
}

absl::Status RunKvWrite(const KvWriteParams& p) {
  TANDEM_RETURN_IF_ERROR(CheckKvWrite(p));
  const int64_t page_tokens = p.k_pool.shape[1];
  const int64_t n_slots = p.k_pool.shape[0] * page_tokens;
  for (int64_t t = 0; t < p.k.shape[0]; ++t) {
    TANDEM_RETURN_IF_ERROR(
        CheckIndex("kv_write", "slots", t, *At<const int32_t>(p.slots, t), n_slots));
  }
  const bool half = p.k_pool.dtype == DType::kF16;
  for (int64_t t = 0; t < p.k.shape[0]; ++t) {
    const int64_t slot = *At<const int32_t>(p.slots, t);
    const int64_t page = slot / page_tokens;
    const int64_t off = slot % page_tokens;
    for (int64_t g = 0; g < p.k.shape[1]; ++g) {
      const float* k = At<const float>(p.k, t, g);
      const float* v = At<const float>(p.v, t, g);
      for (int64_t j = 0; j < p.k.shape[2]; ++j) {
        if (half) {
          At<uint16_t>(p.k_pool, page, off, g)[j] = FloatToHalf(k[j]);
          At<uint16_t>(p.v_pool, page, off, g)[j] = FloatToHalf(v[j]);
        } else {
          At<float>(p.k_pool, page, off, g)[j] = k[j];
          At<float>(p.v_pool, page, off, g)[j] = v[j];
        }
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace tandem::kernels::cpu_ref
