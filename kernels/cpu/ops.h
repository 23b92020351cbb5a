// kernels/cpu/ops.h
//
// The fast "cpu" implementations of the ops, one function per op, sharing a CpuContext (thread
// pool, selected SIMD kernels, scratch). Each validates its call with cpu_ref's Check<Op>() (one
// spec for what is malformed) and data-dependent indices before touching memory. Run<Op> returns
// kUnimplemented when the call has a layout its fast path does not cover; the backend then forwards
// it to cpu_ref. A context is used by one thread at a time (the backend's caller).
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/op.h"

namespace tandem::kernels::cpu {

struct CpuContext {
  ThreadPool* pool = nullptr;
  const Kernels* kernels = nullptr;  // never null when ops run
  std::vector<BlockQ8> xq;           // quantized activations of the current matmul
  // RoPE cos/sin cache: decode rotates q and k of every layer at the same positions.
  std::vector<int32_t> rope_positions;
  float rope_base = 0.0f;
  int rope_n_rot = 0;
  std::vector<float> rope_cos_sin;   // [n, n_rot / 2, 2]
  std::vector<float> attn_partials;  // split-K attention partial results
};

absl::Status RunMatMul(CpuContext& ctx, const MatMulParams& p);
absl::Status RunPagedAttention(CpuContext& ctx, const PagedAttentionParams& p);
absl::Status RunRmsNorm(CpuContext& ctx, const RmsNormParams& p);
absl::Status RunRope(CpuContext& ctx, const RopeParams& p);
absl::Status RunSwiGlu(CpuContext& ctx, const SwiGluParams& p);
absl::Status RunSoftmax(CpuContext& ctx, const SoftmaxParams& p);
absl::Status RunKvWrite(CpuContext& ctx, const KvWriteParams& p);
absl::Status RunKvGather(CpuContext& ctx, const KvGatherParams& p);
absl::Status RunAttentionPrefill(CpuContext& ctx, const AttentionPrefillParams& p);
absl::Status RunRowDistance(CpuContext& ctx, const RowDistanceParams& p);

}  // namespace tandem::kernels::cpu
