// rope: rotates pairs of each head in place by positions[t] * base^(-2i/n_rot). Angles are computed
// in double: positions reach 8192+ where an fp32 angle is off by ~1e-3 rad, and the reference
// should be the exact rotation, not one particular rounding of it.
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/cpu_ref/ref_ops.h"

namespace tandem::kernels::cpu_ref {

absl::Status CheckRope(const RopeParams& p) {
  constexpr std::string_view kOp = "rope";
  TANDEM_RETURN_IF_ERROR(CheckTensor(kOp, "x", p.x, 3, {DType::kF32}));
  TANDEM_RETURN_IF_ERROR(CheckTensor(kOp, "positions", p.positions, 1, {DType::kI32}));
  TANDEM_RETURN_IF_ERROR(CheckSameDim(kOp, "positions", p.positions, 0, "x", p.x, 0));
  if (p.n_rot <= 0 || p.n_rot % 2 != 0 || p.n_rot > p.x.shape[2]) {
    return absl::InvalidArgumentError(absl::StrCat(
        "rope: n_rot=", p.n_rot, " must be even and in (0, head_dim=", p.x.shape[2], "]"));
  }
  if (!(p.freq_base > 0.0f) || !std::isfinite(p.freq_base)) {
    return absl::InvalidArgumentError(
        absl::StrCat("rope: freq_base=", p.freq_base, " must be > 0"));
  }
  if (p.style != RopeStyle::kAdjacentPairs && p.style != RopeStyle::kHalfSplit) {
    return absl::InvalidArgumentError(
        absl::StrCat("rope: style=", static_cast<int>(p.style), " is unknown"));
  }
  return absl::OkStatus();
}

absl::Status RunRope(const RopeParams& p) {
  TANDEM_RETURN_IF_ERROR(CheckRope(p));
  const int half = p.n_rot / 2;
  for (int64_t t = 0; t < p.x.shape[0]; ++t) {
    const double pos = *At<const int32_t>(p.positions, t);
    for (int64_t h = 0; h < p.x.shape[1]; ++h) {
      float* x = At<float>(p.x, t, h);
      for (int i = 0; i < half; ++i) {
        const double theta = pos * std::pow(static_cast<double>(p.freq_base),
                                            -2.0 * i / static_cast<double>(p.n_rot));
        const double c = std::cos(theta);
        const double s = std::sin(theta);
        const int a = p.style == RopeStyle::kAdjacentPairs ? 2 * i : i;
        const int b = p.style == RopeStyle::kAdjacentPairs ? 2 * i + 1 : i + half;
        const double x0 = x[a];
        const double x1 = x[b];
        x[a] = static_cast<float>(x0 * c - x1 * s);
        x[b] = static_cast<float>(x0 * s + x1 * c);
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace tandem::kernels::cpu_ref
