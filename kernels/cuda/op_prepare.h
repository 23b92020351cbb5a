// kernels/cuda/op_prepare.h
//
// Validation of each op's params (kernels/op.h) for the CUDA backend, producing the plain launcher
// arguments of op_args.h. The single source of Supports() and of Run()'s InvalidArgument errors:
// both call these, so a call is supported exactly when it validates. Errors name the op, the
// tensor, the bad value and, for dtypes, the supported set. `device` is the backend's CUDA ordinal;
// a view tagged with another CUDA device is rejected. Pure functions; thread-safe.
#pragma once

#include "absl/status/statusor.h"
#include "kernels/cuda/op_args.h"
#include "kernels/op.h"

namespace tandem::kernels::cuda {

absl::StatusOr<MatMulArgs> PrepareMatMul(const MatMulParams& p, int device);
absl::StatusOr<EmbeddingArgs> PrepareEmbedding(const EmbeddingParams& p, int device);
absl::StatusOr<RmsNormArgs> PrepareRmsNorm(const RmsNormParams& p, int device);
absl::StatusOr<RopeArgs> PrepareRope(const RopeParams& p, int device);
absl::StatusOr<SwiGluArgs> PrepareSwiGlu(const SwiGluParams& p, int device);
absl::StatusOr<SoftmaxArgs> PrepareSoftmax(const SoftmaxParams& p, int device);
absl::StatusOr<RowDistanceArgs> PrepareRowDistance(const RowDistanceParams& p, int device);
absl::StatusOr<KvCopyArgs> PrepareKvWrite(const KvWriteParams& p, int device);
absl::StatusOr<KvCopyArgs> PrepareKvGather(const KvGatherParams& p, int device);
absl::StatusOr<PagedAttentionArgs> PreparePagedAttention(const PagedAttentionParams& p, int device);
// Shapes, dtypes, strides and the sparse config; positions are checked by the backend once it has
// read them (they live on the device).
absl::StatusOr<AttentionPrefillArgs> PrepareAttentionPrefill(const AttentionPrefillParams& p,
                                                             int device);
// Fills everything but the device scratch pointers (configs, probs, out_tokens), which the
// backend owns.
absl::StatusOr<SampleArgs> PrepareSample(const SampleParams& p, int device);

}  // namespace tandem::kernels::cuda
