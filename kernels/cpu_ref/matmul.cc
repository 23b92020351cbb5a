// matmul: y[n, out] = x[n, in] · dequant(W)[out, in]^T (+ y). Each weight row is dequantized to
// fp32 once and dotted with every x row in double, so the reference carries no accumulation error
// of its own.
#include <vector>

#include "common/status.h"
#include "kernels/cpu_ref/dequantize.h"
#include "kernels/cpu_ref/ref_ops.h"

namespace tandem::kernels::cpu_ref {

absl::Status CheckMatMul(const MatMulParams& p) {
  constexpr std::string_view kOp = "matmul";
  TANDEM_RETURN_IF_ERROR(CheckWeight(kOp, "w", p.w, 2));
  TANDEM_RETURN_IF_ERROR(CheckTensor(kOp, "x", p.x, 2, {DType::kF32}));
  TANDEM_RETURN_IF_ERROR(CheckTensor(kOp, "y", p.y, 2, {DType::kF32}));
  TANDEM_RETURN_IF_ERROR(CheckSameDim(kOp, "x", p.x, 1, "w", p.w, 1));
  TANDEM_RETURN_IF_ERROR(CheckSameDim(kOp, "y", p.y, 0, "x", p.x, 0));
  TANDEM_RETURN_IF_ERROR(CheckSameDim(kOp, "y", p.y, 1, "w", p.w, 0));
  return CheckNoOverlap(kOp, "y", p.y, "x", p.x);
}

absl::Status RunMatMul(const MatMulParams& p) {
  TANDEM_RETURN_IF_ERROR(CheckMatMul(p));
  const int64_t n = p.x.shape[0];
  const int64_t in = p.x.shape[1];
  const int64_t out = p.w.shape[0];
  std::vector<float> w_row(static_cast<size_t>(in));
  for (int64_t o = 0; o < out; ++o) {
    DequantizeRow(p.w.dtype, At(p.w, o), w_row.data(), in);
    for (int64_t t = 0; t < n; ++t) {
      const float* x = At<const float>(p.x, t);
      double acc = 0.0;
      for (int64_t i = 0; i < in; ++i) acc += static_cast<double>(x[i]) * w_row[i];
      float* y = At<float>(p.y, t, o);
      *y = p.accumulate ? static_cast<float>(acc + *y) : static_cast<float>(acc);
    }
  }
  return absl::OkStatus();
}

}  // namespace tandem::kernels::cpu_ref
