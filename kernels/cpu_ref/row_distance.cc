// row_distance: out[i] = sum_j (a[i, j] - b[i, j])^2, summed in double.
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/cpu_ref/ref_ops.h"

namespace tandem::kernels::cpu_ref {

absl::Status CheckRowDistance(const RowDistanceParams& p) {
  constexpr std::string_view kOp = "row_distance";
  TANDEM_RETURN_IF_ERROR(CheckTensor(kOp, "a", p.a, 2, {DType::kF32}));
  TANDEM_RETURN_IF_ERROR(CheckTensor(kOp, "b", p.b, 2, {DType::kF32}));
  TANDEM_RETURN_IF_ERROR(CheckTensor(kOp, "out", p.out, 1, {DType::kF32}));
  TANDEM_RETURN_IF_ERROR(CheckSameShape(kOp, "a", p.a, "b", p.b));
  TANDEM_RETURN_IF_ERROR(CheckSameDim(kOp, "out", p.out, 0, "a", p.a, 0));
  TANDEM_RETURN_IF_ERROR(CheckNoOverlap(kOp, "out", p.out, "a", p.a));
  return CheckNoOverlap(kOp, "out", p.out, "b", p.b);
}

absl::Status RunRowDistance(const RowDistanceParams& p) {
  TANDEM_RETURN_IF_ERROR(CheckRowDistance(p));
  for (int64_t i = 0; i < p.a.shape[0]; ++i) {
    const float* a = At<const float>(p.a, i);
    const float* b = At<const float>(p.b, i);
    double sum = 0.0;
    for (int64_t j = 0; j < p.a.shape[1]; ++j) {
      const double d = static_cast<double>(a[j]) - b[j];
      sum += d * d;
    }
    *At<float>(p.out, i) = static_cast<float>(sum);
  }
  return absl::OkStatus();
}

}  // namespace tandem::kernels::cpu_ref
