// swiglu: out = silu(gate) * up, element by element (so out may alias gate or up).
#include <cmath>

#include "common/status.h"
#include "kernels/cpu_ref/ref_ops.h"

namespace tandem::kernels::cpu_ref {

absl::Status CheckSwiGlu(const SwiGluParams& p) {
  constexpr std::string_view kOp = "swiglu";
  TANDEM_RETURN_IF_ERROR(CheckTensor(kOp, "gate", p.gate, 2, {DType::kF32}));
  TANDEM_RETURN_IF_ERROR(CheckTensor(kOp, "up", p.up, 2, {DType::kF32}));
  TANDEM_RETURN_IF_ERROR(CheckTensor(kOp, "out", p.out, 2, {DType::kF32}));
  TANDEM_RETURN_IF_ERROR(CheckSameShape(kOp, "up", p.up, "gate", p.gate));
  return CheckSameShape(kOp, "out", p.out, "gate", p.gate);
}

absl::Status RunSwiGlu(const SwiGluParams& p) {
  TANDEM_RETURN_IF_ERROR(CheckSwiGlu(p));
  for (int64_t i = 0; i < p.gate.shape[0]; ++i) {
    const float* g = At<const float>(p.gate, i);
    const float* u = At<const float>(p.up, i);
    float* o = At<float>(p.out, i);
    for (int64_t j = 0; j < p.gate.shape[1]; ++j) {
      const double z = g[j];
      o[j] = static_cast<float>(z / (1.0 + std::exp(-z)) * u[j]);
    }
  }
  return absl::OkStatus();
}

}  // namespace tandem::kernels::cpu_ref
