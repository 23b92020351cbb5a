// kernels/cuda/op_args.h
//
// The validated, CUDA-ready form of each op in kernels/op.h: raw device pointers, element strides
// and sizes, produced on the host by op_prepare.cc and consumed by the launchers in the .cu files.
// Plain structs with no Abseil, so nvcc compiles the .cu files without heavy headers. Every stride
// here is in elements of the tensor's own type (floats for f32 tensors) except weight rows, whose
// stride is in bytes (quantized rows are runs of blocks). Launchers enqueue work on `stream` and
// return the launch error; they never synchronise. Non-owning; not synchronised.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/dtype.h"
#include "kernels/sparse_pattern.h"

namespace tandem::kernels::cuda {

struct MatMulArgs {
  const uint8_t* w = nullptr;  // [out, in] rows of `w_dtype`
  DType w_dtype = DType::kF32;
  int64_t w_row_bytes = 0;   // stride between weight rows
  const float* x = nullptr;  // [n, in]
  int64_t x_stride = 0;
  float* y = nullptr;  // [n, out]
  int64_t y_stride = 0;
  int64_t n = 0, out = 0, in = 0;
  bool accumulate = false;
  bool x_vec4 = false;  // x rows and x_stride are 16-byte aligned: float4 loads allowed
};

struct EmbeddingArgs {
  const uint8_t* table = nullptr;  // [vocab, d]
  DType table_dtype = DType::kF32;
  int64_t table_row_bytes = 0;
  const int32_t* ids = nullptr;  // [n]
  float* out = nullptr;          // [n, d]
  int64_t out_stride = 0;
  int64_t n = 0, d = 0, vocab = 0;
};

struct RmsNormArgs {
  const float* x = nullptr;
  int64_t x_stride = 0;
  const float* weight = nullptr;
  float* out = nullptr;
  int64_t out_stride = 0;
  int64_t n = 0, d = 0;
  float eps = 1e-5f;
};

struct RopeArgs {
  float* x = nullptr;  // [n, heads, head_dim]
  int64_t stride0 = 0, stride1 = 0;
  const int32_t* positions = nullptr;
  int64_t n = 0, heads = 0, head_dim = 0;
  int n_rot = 0;
  float freq_base = 10000.0f;
  bool half_split = false;
};

struct SwiGluArgs {
  const float* gate = nullptr;
  int64_t gate_stride = 0;
  const float* up = nullptr;
  int64_t up_stride = 0;
  float* out = nullptr;
  int64_t out_stride = 0;
  int64_t n = 0, f = 0;
};

struct SoftmaxArgs {
  float* x = nullptr;
  int64_t x_stride = 0;
  int64_t n = 0, d = 0;
  float scale = 1.0f;
};

struct RowDistanceArgs {
  const float* a = nullptr;
  int64_t a_stride = 0;
  const float* b = nullptr;
  int64_t b_stride = 0;
  float* out = nullptr;
  int64_t out_stride = 0;
  int64_t n = 0, d = 0;
};

// KvWrite (rows -> pools) and KvGather (pools -> rows) share one geometry; the direction is the
// launcher's. The rows are read-only for KvWrite, the pools for KvGather.
struct KvCopyArgs {
  float* k = nullptr;  // [n, n_kv_heads, head_dim]
  int64_t k_stride0 = 0, k_stride1 = 0;
  float* v = nullptr;
  int64_t v_stride0 = 0, v_stride1 = 0;
  void* k_pool = nullptr;  // contiguous [num_pages, page_tokens, n_kv_heads, head_dim]
  void* v_pool = nullptr;
  DType pool_dtype = DType::kF32;
  const int32_t* slots = nullptr;
  int64_t n = 0, n_kv_heads = 0, head_dim = 0, num_pages = 0, page_tokens = 0;
};

struct PagedAttentionArgs {
  const float* q = nullptr;  // [n, n_heads, head_dim]
  int64_t q_stride0 = 0, q_stride1 = 0;
  const void* k_pool = nullptr;  // contiguous [num_pages, page_tokens, n_kv_heads, head_dim]
  const void* v_pool = nullptr;
  DType pool_dtype = DType::kF32;
  float* out = nullptr;  // [n, n_heads, head_dim]
  int64_t out_stride0 = 0, out_stride1 = 0;
  const int32_t* q_seq = nullptr;
  const int32_t* q_pos = nullptr;
  const int32_t* page_table = nullptr;  // [n_seqs, max_pages]
  int64_t page_table_stride = 0;
  int64_t n = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0;
  int64_t num_pages = 0, page_tokens = 0, n_seqs = 0, max_pages = 0;
  float scale = 0.125f;
};

// AttentionPrefill (op.h) on the f32 interface. Positions stay on the device for the kernels; the
// host reads a copy to size the block mask (attention_prefill_host.cc).
struct AttentionPrefillArgs {
  const float* q = nullptr;  // [n_q, n_heads, head_dim]
  int64_t q_stride0 = 0, q_stride1 = 0;
  const float* k = nullptr;  // [n_kv, n_kv_heads, head_dim]
  int64_t k_stride0 = 0, k_stride1 = 0;
  const float* v = nullptr;
  int64_t v_stride0 = 0, v_stride1 = 0;
  float* out = nullptr;  // [n_q, n_heads, head_dim]
  int64_t out_stride0 = 0, out_stride1 = 0;
  const int32_t* q_pos = nullptr;
  int64_t q_pos_stride = 0;
  const int32_t* kv_pos = nullptr;
  int64_t kv_pos_stride = 0;
  int64_t n_q = 0, n_kv = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0;
  float scale = 0.125f;
};

// keep[(h * n_qb + q_pos / bq - qb0) * n_kb + kv_pos / bk - kb0] != 0: the (head, q block, kv
// block) is computed (cpu_ref's Selection layout). keep == nullptr: every block is.
struct PrefillMaskArgs {
  uint8_t* keep = nullptr;
  int64_t bq = 64, bk = 64, qb0 = 0, kb0 = 0, n_qb = 0, n_kb = 0;
};

// SALE's selection on the f32 interface: the op's config (its sale_* fields; the kernels apply
// sparse_pattern.h's rules to it), then device scratch the launcher fills in order (K mean, int4
// rows, per-row thresholds), then the blocks it sets in the mask.
struct SaleSelectArgs {
  SparseConfig config;
  float* k_mean = nullptr;      // [n_kv_heads, head_dim]
  int8_t* q8 = nullptr;         // [n_q, n_heads, head_dim]
  float* q_scale = nullptr;     // [n_q, n_heads]
  float* q_mean_dot = nullptr;  // [n_q, n_heads]
  int8_t* k8 = nullptr;         // [n_kv, n_kv_heads, head_dim]
  float* k_scale = nullptr;     // [n_kv, n_kv_heads]
  double* row_threshold = nullptr;  // [n_q, n_heads]: m + ln(tau * l), in logit units
};

// One row's sampling settings as the kernel sees them; `u` is the uniform draw the host already
// took from the row's generator (unused when greedy).
struct SampleRowConfig {
  float temperature = 0.0f;
  int32_t top_k = 0;
  float top_p = 1.0f;
  float u = 0.0f;
};

struct SampleArgs {
  const float* logits = nullptr;  // [n, vocab]
  int64_t logits_stride = 0;
  int64_t n = 0, vocab = 0;
  const SampleRowConfig* configs = nullptr;  // device, [n]
  float* probs = nullptr;                    // device scratch, [n, vocab]
  int32_t* out_tokens = nullptr;             // device, [n]
};

cudaError_t LaunchMatMul(const MatMulArgs& a, cudaStream_t stream);
cudaError_t LaunchMatMulGemv(const MatMulArgs& a, cudaStream_t stream);
cudaError_t LaunchMatMulTiled(const MatMulArgs& a, cudaStream_t stream);
cudaError_t LaunchEmbedding(const EmbeddingArgs& a, cudaStream_t stream);
cudaError_t LaunchRmsNorm(const RmsNormArgs& a, cudaStream_t stream);
cudaError_t LaunchRope(const RopeArgs& a, cudaStream_t stream);
cudaError_t LaunchSwiGlu(const SwiGluArgs& a, cudaStream_t stream);
cudaError_t LaunchSoftmax(const SoftmaxArgs& a, cudaStream_t stream);
cudaError_t LaunchRowDistance(const RowDistanceArgs& a, cudaStream_t stream);
cudaError_t LaunchKvWrite(const KvCopyArgs& a, cudaStream_t stream);
cudaError_t LaunchKvGather(const KvCopyArgs& a, cudaStream_t stream);
cudaError_t LaunchPagedAttention(const PagedAttentionArgs& a, cudaStream_t stream);
cudaError_t LaunchSample(const SampleArgs& a, cudaStream_t stream);
// Adds SALE's estimated blocks to m.keep (which already holds the mandatory ones).
cudaError_t LaunchSaleSelectF32(const AttentionPrefillArgs& a, const SaleSelectArgs& s,
                                const PrefillMaskArgs& m, cudaStream_t stream);
cudaError_t LaunchAttentionPrefillF32(const AttentionPrefillArgs& a, const PrefillMaskArgs& m,
                                      cudaStream_t stream);

}  // namespace tandem::kernels::cuda
