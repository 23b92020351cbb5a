// softmax: x[i, :] = softmax(scale * x[i, :]) in place, max-subtracted, sums in double.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/cpu_ref/ref_ops.h"

namespace tandem::kernels::cpu_ref {

absl::Status CheckSoftmax(const SoftmaxParams& p) {
  TANDEM_RETURN_IF_ERROR(CheckTensor("softmax", "x", p.x, 2, {DType::kF32}));
  if (!std::isfinite(p.scale)) {
    return absl::InvalidArgumentError(absl::StrCat("softmax: scale=", p.scale, " is not finite"));
  }
  return absl::OkStatus();
}

absl::Status RunSoftmax(const SoftmaxParams& p) {
  TANDEM_RETURN_IF_ERROR(CheckSoftmax(p));
  const int64_t d = p.x.shape[1];
  std::vector<double> e(static_cast<size_t>(d));
  for (int64_t i = 0; i < p.x.shape[0]; ++i) {
    float* x = At<float>(p.x, i);
    double mx = -std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < d; ++j) mx = std::max(mx, static_cast<double>(p.scale) * x[j]);
    double sum = 0.0;
    for (int64_t j = 0; j < d; ++j) {
      e[j] = std::exp(static_cast<double>(p.scale) * x[j] - mx);
      sum += e[j];
    }
    for (int64_t j = 0; j < d; ++j) x[j] = static_cast<float>(e[j] / sum);
  }
  return absl::OkStatus();
}

}  // namespace tandem::kernels::cpu_ref
