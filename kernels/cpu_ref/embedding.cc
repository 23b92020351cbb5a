// embedding: out[i, :] = dequant(table[ids[i], :]).
#include "common/status.h"
#include "kernels/cpu_ref/dequantize.h"
#include "kernels/cpu_ref/ref_ops.h"

namespace tandem::kernels::cpu_ref {

absl::Status CheckEmbedding(const EmbeddingParams& p) {
  constexpr std::string_view kOp = "embedding";
  TANDEM_RETURN_IF_ERROR(CheckWeight(kOp, "table", p.table, 2));
  TANDEM_RETURN_IF_ERROR(CheckTensor(kOp, "ids", p.ids, 1, {DType::kI32}));
  TANDEM_RETURN_IF_ERROR(CheckTensor(kOp, "out", p.out, 2, {DType::kF32}));
  TANDEM_RETURN_IF_ERROR(CheckSameDim(kOp, "out", p.out, 0, "ids", p.ids, 0));
  return CheckSameDim(kOp, "out", p.out, 1, "table", p.table, 1);
}

absl::Status RunEmbedding(const EmbeddingParams& p) {
  TANDEM_RETURN_IF_ERROR(CheckEmbedding(p));
  const int64_t vocab = p.table.shape[0];
  for (int64_t i = 0; i < p.ids.shape[0]; ++i) {
    TANDEM_RETURN_IF_ERROR(CheckIndex("embedding", "ids", i, *At<const int32_t>(p.ids, i), vocab));
  }
  for (int64_t i = 0; i < p.ids.shape[0]; ++i) {
    const int32_t id = *At<const int32_t>(p.ids, i);
    DequantizeRow(p.table.dtype, At(p.table, id), At<float>(p.out, i), p.table.shape[1]);
  }
  return absl::OkStatus();
}

}  // namespace tandem::kernels::cpu_ref
