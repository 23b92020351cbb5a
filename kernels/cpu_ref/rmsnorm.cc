// rmsnorm: out[i, :] = x[i, :] / sqrt(mean(x[i, :]^2) + eps) * weight. The sum of squares is
// taken in double before any output is written, so out may alias x.
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/cpu_ref/ref_ops.h"

namespace tandem::kernels::cpu_ref {

absl::Status CheckRmsNorm(const RmsNormParams& p) {
  constexpr std::string_view kOp = "rmsnorm";
  TANDEM_RETURN_IF_ERROR(CheckTensor(kOp, "x", p.x, 2, {DType::kF32}));
  TANDEM_RETURN_IF_ERROR(CheckTensor(kOp, "weight", p.weight, 1, {DType::kF32}));
  TANDEM_RETURN_IF_ERROR(CheckTensor(kOp, "out", p.out, 2, {DType::kF32}));
  TANDEM_RETURN_IF_ERROR(CheckSameShape(kOp, "out", p.out, "x", p.x));
  TANDEM_RETURN_IF_ERROR(CheckSameDim(kOp, "weight", p.weight, 0, "x", p.x, 1));
  if (!(p.eps >= 0.0f)) {
    return absl::InvalidArgumentError(absl::StrCat("rmsnorm: eps=", p.eps, " must be >= 0"));
  }
  return absl::OkStatus();
}

absl::Status RunRmsNorm(const RmsNormParams& p) {
  TANDEM_RETURN_IF_ERROR(CheckRmsNorm(p));
  const int64_t d = p.x.shape[1];
  const float* w = At<const float>(p.weight, 0);
  for (int64_t i = 0; i < p.x.shape[0]; ++i) {
    const float* x = At<const float>(p.x, i);
    float* out = At<float>(p.out, i);
    double ss = 0.0;
    for (int64_t j = 0; j < d; ++j) ss += static_cast<double>(x[j]) * x[j];
    const double mean = d > 0 ? ss / static_cast<double>(d) : 0.0;
    const double inv = 1.0 / std::sqrt(mean + static_cast<double>(p.eps));
    for (int64_t j = 0; j < d; ++j) out[j] = static_cast<float>(x[j] * inv * w[j]);
  }
  return absl::OkStatus();
}

}  // namespace tandem::kernels::cpu_ref
