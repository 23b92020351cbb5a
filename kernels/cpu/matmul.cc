// kernels/cpu/matmul.cc
//
// MatMul driver: quantizes activations once (Q4_1 and Q8_0 weights pair with BlockQ8 activations,
// as in llama.cpp), then splits output rows over the pool. Decode (n = 1) gives each thread one
// contiguous half of the weight rows so both cores stream memory; prefill uses smaller dynamic
// chunks. Weight dtypes without an integer kernel are dequantized a row at a time (cpu_ref's
// DequantizeRow) and dotted in fp32 against all n activation rows, so each row is decoded once.
#include <algorithm>
#include <vector>

#include "common/status.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu_ref/dequantize.h"
#include "kernels/cpu_ref/ref_ops.h"

namespace tandem::kernels::cpu {
namespace {

// Rows per dynamic chunk in prefill: enough that dispatch is amortised, small enough to balance.
constexpr int64_t kPrefillRowGrain = 16;

void Parallel(CpuContext& ctx, int64_t rows, int64_t n, GemmFn fn, const GemmArgs& args) {
  auto body = [&](int64_t b, int64_t e) { fn(args, b, e); };
  // Decode: a few large chunks per thread, so each streams long contiguous runs of weights yet a
  // thread that is descheduled (shared machine) has its remaining chunks taken by the others.
  const int64_t grain =
      n == 1 ? std::max<int64_t>(8, rows / (4 * ctx.pool->threads())) : kPrefillRowGrain;
  ctx.pool->ParallelFor(rows, grain, body);
}

}  // namespace

absl::Status RunMatMul(CpuContext& ctx, const MatMulParams& p) {
  TANDEM_RETURN_IF_ERROR(cpu_ref::CheckMatMul(p));
  const int64_t n = p.x.shape[0];
  const int64_t k = p.x.shape[1];
  const int64_t rows = p.w.shape[0];
  if (p.y.stride_bytes[0] % 4 != 0 || p.x.stride_bytes[0] % 4 != 0) {
    return absl::UnimplementedError("cpu: unaligned matmul rows");
  }
  if (n == 0 || rows == 0) return absl::OkStatus();
  const Kernels& K = *ctx.kernels;
  GemmArgs a{};
  a.w = static_cast<const uint8_t*>(p.w.data);
  a.w_stride = p.w.stride_bytes[0];
  a.n = n;
  a.k = k;
  a.y = static_cast<float*>(p.y.data);
  a.y_stride = p.y.stride_bytes[0] / 4;
  a.accumulate = p.accumulate;

  GemmFn fn = nullptr;
  switch (p.w.dtype) {
    case DType::kQ4_1:
      fn = K.gemm_q4_1;
      break;
    case DType::kQ8_0:
      fn = K.gemm_q8_0;
      break;
    case DType::kF32:
      fn = K.gemm_f32;
      break;
    case DType::kF16:
      fn = K.gemm_f16;
      break;
    case DType::kBF16:
      fn = K.gemm_bf16;
      break;
    default:
      break;
  }
  if (p.w.dtype == DType::kQ4_1 || p.w.dtype == DType::kQ8_0) {
    const int64_t nb = k / 32;
    ctx.xq.resize(static_cast<size_t>(n * nb));
    BlockQ8* xq = ctx.xq.data();
    const uint8_t* x = static_cast<const uint8_t*>(p.x.data);
    const int64_t xs = p.x.stride_bytes[0];
    ctx.pool->ParallelFor(n, 8, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        K.quantize_q8(reinterpret_cast<const float*>(x + i * xs), k, xq + i * nb);
      }
    });
    a.x = reinterpret_cast<const uint8_t*>(xq);
    a.x_stride = nb * static_cast<int64_t>(sizeof(BlockQ8));
    Parallel(ctx, rows, n, fn, a);
    return absl::OkStatus();
  }
  a.x = static_cast<const uint8_t*>(p.x.data);
  a.x_stride = p.x.stride_bytes[0];
  if (fn != nullptr) {
    Parallel(ctx, rows, n, fn, a);
    return absl::OkStatus();
  }
  // Other quantized weights: decode a row into fp32, then the f32 kernel with that single row.
  ctx.pool->ParallelFor(
      rows, n == 1 ? (rows + ctx.pool->threads() - 1) / ctx.pool->threads() : kPrefillRowGrain,
      [&](int64_t b, int64_t e) {
        std::vector<float> row(static_cast<size_t>(k));
        GemmArgs ra = a;
        ra.w = reinterpret_cast<const uint8_t*>(row.data());
        ra.w_stride = 0;
        for (int64_t r = b; r < e; ++r) {
          DequantizeRow(p.w.dtype, a.w + r * a.w_stride, row.data(), k);
          K.gemm_f32(ra, r, r + 1);
        }
      });
  return absl::OkStatus();
}

}  // namespace tandem::kernels::cpu
