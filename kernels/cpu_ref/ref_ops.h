// kernels/cpu_ref/ref_ops.h
//
// The per-op pieces of the cpu_ref backend, one .cc per op: Check<Op>() validates shapes, dtypes
// and devices without reading tensor contents (it is what Supports() asks), and Run<Op>() executes
// the op with naive fp32/double loops after validating again, including data-dependent indices.
// Also the small validation helpers shared by those files. All functions are stateless and
// thread-safe; memory belongs to the caller.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string_view>

#include "absl/status/status.h"
#include "common/tensor_view.h"
#include "kernels/op.h"

namespace tandem::kernels::cpu_ref {

absl::Status CheckMatMul(const MatMulParams& p);
absl::Status RunMatMul(const MatMulParams& p);
absl::Status CheckEmbedding(const EmbeddingParams& p);
absl::Status RunEmbedding(const EmbeddingParams& p);
absl::Status CheckRmsNorm(const RmsNormParams& p);
absl::Status RunRmsNorm(const RmsNormParams& p);
absl::Status CheckRope(const RopeParams& p);
absl::Status RunRope(const RopeParams& p);
absl::Status CheckSwiGlu(const SwiGluParams& p);
absl::Status RunSwiGlu(const SwiGluParams& p);
absl::Status CheckSoftmax(const SoftmaxParams& p);
absl::Status RunSoftmax(const SoftmaxParams& p);
absl::Status CheckKvWrite(const KvWriteParams& p);
absl::Status RunKvWrite(const KvWriteParams& p);
absl::Status CheckKvGather(const KvGatherParams& p);
absl::Status RunKvGather(const KvGatherParams& p);
absl::Status CheckPagedAttention(const PagedAttentionParams& p);
absl::Status RunPagedAttention(const PagedAttentionParams& p);
absl::Status CheckSample(const SampleParams& p);
absl::Status RunSample(const SampleParams& p);
absl::Status CheckAttentionPrefill(const AttentionPrefillParams& p);
absl::Status RunAttentionPrefill(const AttentionPrefillParams& p);
absl::Status CheckRowDistance(const RowDistanceParams& p);
absl::Status RunRowDistance(const RowDistanceParams& p);

// Validation helpers. Messages read "<op>: <field>...": e.g. "matmul: x.shape[1]=577 !=
// w.shape[1]=576".

// `t` is a host (CPU) tensor with data, `ndim` dimensions, one of `dtypes`, non-negative shape,
// innermost dimension contiguous and a whole number of blocks.
absl::Status CheckTensor(std::string_view op, std::string_view field, const TensorView& t, int ndim,
                         std::initializer_list<DType> dtypes);
// Like CheckTensor for weights: any dtype that DequantizeRow() decodes.
absl::Status CheckWeight(std::string_view op, std::string_view field, const TensorView& t,
                         int ndim);
// a.shape[ai] == b.shape[bi].
absl::Status CheckSameDim(std::string_view op, std::string_view a_name, const TensorView& a, int ai,
                          std::string_view b_name, const TensorView& b, int bi);
// `a` and `b` have identical shapes.
absl::Status CheckSameShape(std::string_view op, std::string_view a_name, const TensorView& a,
                            std::string_view b_name, const TensorView& b);
// The byte ranges spanned by `a` and `b` are disjoint.
absl::Status CheckNoOverlap(std::string_view op, std::string_view a_name, const TensorView& a,
                            std::string_view b_name, const TensorView& b);
// 0 <= value < limit, for data-dependent indices: "embedding: ids[3]=50000 not in [0, 49152)".
absl::Status CheckIndex(std::string_view op, std::string_view field, int64_t i, int64_t value,
                        int64_t limit);

// Address of element (i0, i1, i2, i3) of `t` through its strides (plain dtypes only), or of the
// start of the row for the innermost index 0 of a quantized dtype.
template <typename T = void>
T* At(const TensorView& t, int64_t i0, int64_t i1 = 0, int64_t i2 = 0, int64_t i3 = 0) {
  const int64_t idx[4] = {i0, i1, i2, i3};
  int64_t off = 0;
  for (int d = 0; d < t.ndim; ++d) off += idx[d] * t.stride_bytes[d];
  return reinterpret_cast<T*>(static_cast<char*>(t.data) + off);
}

}  // namespace tandem::kernels::cpu_ref
