// kernels/cuda/op_prepare.cc
#include "kernels/cuda/op_prepare.h"

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/cuda/matmul_heuristics.h"
#include "kernels/cuda/supported.h"
#include "kernels/sparse_config_check.h"

namespace tandem::kernels::cuda {
namespace {

absl::Status Invalid(std::string_view op, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(AV(op), ": ", what));
}

std::string Name(DType t) { return std::string(DTypeName(t)); }

// Shape, dtype, innermost contiguity, non-negative strides and the device tag of one view.
// `dtype_set`/`dtype_text` list the accepted dtypes when there is more than one.
template <int64_t N>
absl::Status CheckView(std::string_view op, std::string_view name, const TensorView& t, int ndim,
                       const DType (&dtype_set)[N], std::string_view dtype_text, int device) {
  if (t.ndim != ndim) {
    return Invalid(op, absl::StrCat(AV(name), " must have ", ndim, " dims, got ", t.DebugString()));
  }
  if (!Contains(dtype_set, t.dtype)) {
    return Invalid(op, absl::StrCat(AV(name), " has unsupported dtype ", Name(t.dtype),
                                    "; supported: ", AV(dtype_text)));
  }
  for (int d = 0; d < ndim; ++d) {
    if (t.shape[d] < 0 || t.stride_bytes[d] < 0) {
      return Invalid(op,
                     absl::StrCat(AV(name), " has a negative size or stride: ", t.DebugString()));
    }
  }
  if (t.shape[ndim - 1] % DTypeBlockElems(t.dtype) != 0) {
    return Invalid(
        op, absl::StrCat(AV(name), " inner size ", t.shape[ndim - 1], " is not a multiple of the ",
                         Name(t.dtype), " block of ", DTypeBlockElems(t.dtype)));
  }
  if (t.shape[ndim - 1] > DTypeBlockElems(t.dtype) &&
      t.stride_bytes[ndim - 1] != DTypeBlockBytes(t.dtype)) {
    return Invalid(op, absl::StrCat(AV(name), " is not contiguous in its last dim: stride ",
                                    t.stride_bytes[ndim - 1], " bytes"));
  }
  if (t.data == nullptr && t.numel() > 0) {
    return Invalid(op, absl::StrCat(AV(name), " is null: ", t.DebugString()));
  }
  if (t.device.kind == DeviceKind::kCuda && t.device.index != device) {
    return Invalid(
        op, absl::StrCat(AV(name), " lives on cuda:", t.device.index, ", not cuda:", device));
  }
  return absl::OkStatus();
}

constexpr DType kF32Only[] = {DType::kF32};
constexpr DType kI32Only[] = {DType::kI32};

absl::Status CheckF32(std::string_view op, std::string_view name, const TensorView& t, int ndim,
                      int device) {
  return CheckView(op, name, t, ndim, kF32Only, "f32", device);
}
absl::Status CheckI32(std::string_view op, std::string_view name, const TensorView& t, int ndim,
                      int device) {
  return CheckView(op, name, t, ndim, kI32Only, "i32", device);
}

// Stride of dimension d in elements of 4-byte types.
absl::StatusOr<int64_t> Stride4(std::string_view op, std::string_view name, const TensorView& t,
                                int d) {
  if (t.stride_bytes[d] % 4 != 0) {
    return Invalid(
        op, absl::StrCat(AV(name), " stride ", t.stride_bytes[d], " bytes is not a multiple of 4"));
  }
  if (reinterpret_cast<uintptr_t>(t.data) % 4 != 0) {
    return Invalid(op, absl::StrCat(AV(name), " is not 4-byte aligned"));
  }
  return t.stride_bytes[d] / 4;
}

absl::Status CheckDim(std::string_view op, std::string_view what, int64_t got, int64_t want) {
  if (got != want) return Invalid(op, absl::StrCat(AV(what), " is ", got, ", expected ", want));
  return absl::OkStatus();
}

// Whether the byte ranges spanned by two views overlap (used where aliasing is forbidden).
bool Overlaps(const TensorView& a, const TensorView& b) {
  if (a.numel() == 0 || b.numel() == 0) return false;
  auto end = [](const TensorView& t) {
    int64_t last = 0;
    for (int d = 0; d < t.ndim; ++d) {
      const int64_t units = d == t.ndim - 1 ? t.shape[d] / DTypeBlockElems(t.dtype) : t.shape[d];
      last += (units - 1) * t.stride_bytes[d];
    }
    return static_cast<const char*>(t.data) + last + DTypeBlockBytes(t.dtype);
  };
  const char* a0 = static_cast<const char*>(a.data);
  const char* b0 = static_cast<const char*>(b.data);
  return a0 < end(b) && b0 < end(a);
}

absl::Status CheckWeightAlignment(std::string_view op, std::string_view name, const TensorView& w) {
  const int64_t align = WeightAlignment(w.dtype);
  if (reinterpret_cast<uintptr_t>(w.data) % align != 0 || w.stride_bytes[0] % align != 0) {
    return Invalid(op, absl::StrCat(AV(name), " (", Name(w.dtype),
                                    ") start and row stride must be ", align, "-byte aligned"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<MatMulArgs> PrepareMatMul(const MatMulParams& p, int device) {
  constexpr std::string_view kOp = "matmul";
  TANDEM_RETURN_IF_ERROR(CheckView(kOp, "w", p.w, 2, kWeightDTypes, kWeightDTypesText, device));
  TANDEM_RETURN_IF_ERROR(CheckF32(kOp, "x", p.x, 2, device));
  TANDEM_RETURN_IF_ERROR(CheckF32(kOp, "y", p.y, 2, device));
  TANDEM_RETURN_IF_ERROR(CheckWeightAlignment(kOp, "w", p.w));
  MatMulArgs a;
  a.out = p.w.dim(0);
  a.in = p.w.dim(1);
  a.n = p.x.dim(0);
  TANDEM_RETURN_IF_ERROR(CheckDim(kOp, "x's inner size", p.x.dim(1), a.in));
  TANDEM_RETURN_IF_ERROR(CheckDim(kOp, "y's rows", p.y.dim(0), a.n));
  TANDEM_RETURN_IF_ERROR(CheckDim(kOp, "y's inner size", p.y.dim(1), a.out));
  if (Overlaps(p.x, p.y)) return Invalid(kOp, "y must not alias x");
  if (a.n > int64_t{65535} * kTileTokens) {
    return Invalid(kOp,
                   absl::StrCat("n = ", a.n, " tokens exceeds ", int64_t{65535} * kTileTokens));
  }
  a.w = static_cast<const uint8_t*>(p.w.data);
  a.w_dtype = p.w.dtype;
  a.w_row_bytes = p.w.stride_bytes[0];
  a.x = static_cast<const float*>(p.x.data);
  TANDEM_ASSIGN_OR_RETURN(a.x_stride, Stride4(kOp, "x", p.x, 0));
  a.y = static_cast<float*>(p.y.data);
  TANDEM_ASSIGN_OR_RETURN(a.y_stride, Stride4(kOp, "y", p.y, 0));
  a.accumulate = p.accumulate;
  a.x_vec4 = reinterpret_cast<uintptr_t>(p.x.data) % 16 == 0 && a.x_stride % 4 == 0;
  return a;
}

absl::StatusOr<EmbeddingArgs> PrepareEmbedding(const EmbeddingParams& p, int device) {
  constexpr std::string_view kOp = "embedding";
  TANDEM_RETURN_IF_ERROR(
      CheckView(kOp, "table", p.table, 2, kWeightDTypes, kWeightDTypesText, device));
  TANDEM_RETURN_IF_ERROR(CheckI32(kOp, "ids", p.ids, 1, device));
  TANDEM_RETURN_IF_ERROR(CheckF32(kOp, "out", p.out, 2, device));
  TANDEM_RETURN_IF_ERROR(CheckWeightAlignment(kOp, "table", p.table));
  EmbeddingArgs a;
  a.vocab = p.table.dim(0);
  a.d = p.table.dim(1);
  a.n = p.ids.dim(0);
  TANDEM_RETURN_IF_ERROR(CheckDim(kOp, "out's rows", p.out.dim(0), a.n));
  TANDEM_RETURN_IF_ERROR(CheckDim(kOp, "out's inner size", p.out.dim(1), a.d));
  a.table = static_cast<const uint8_t*>(p.table.data);
  a.table_dtype = p.table.dtype;
  a.table_row_bytes = p.table.stride_bytes[0];
  a.ids = static_cast<const int32_t*>(p.ids.data);
  a.out = static_cast<float*>(p.out.data);
  TANDEM_ASSIGN_OR_RETURN(a.out_stride, Stride4(kOp, "out", p.out, 0));
  return a;
}

absl::StatusOr<RmsNormArgs> PrepareRmsNorm(const RmsNormParams& p, int device) {
  constexpr std::string_view kOp = "rms_norm";
  TANDEM_RETURN_IF_ERROR(CheckF32(kOp, "x", p.x, 2, device));
  TANDEM_RETURN_IF_ERROR(CheckF32(kOp, "weight", p.weight, 1, device));
  TANDEM_RETURN_IF_ERROR(CheckF32(kOp, "out", p.out, 2, device));
  RmsNormArgs a;
  a.n = p.x.dim(0);
  a.d = p.x.dim(1);
  TANDEM_RETURN_IF_ERROR(CheckDim(kOp, "weight's size", p.weight.dim(0), a.d));
  TANDEM_RETURN_IF_ERROR(CheckDim(kOp, "out's rows", p.out.dim(0), a.n));
  TANDEM_RETURN_IF_ERROR(CheckDim(kOp, "out's inner size", p.out.dim(1), a.d));
  if (!(p.eps >= 0.0f)) return Invalid(kOp, absl::StrCat("eps ", p.eps, " must be >= 0"));
  a.x = static_cast<const float*>(p.x.data);
  TANDEM_ASSIGN_OR_RETURN(a.x_stride, Stride4(kOp, "x", p.x, 0));
  a.weight = static_cast<const float*>(p.weight.data);
  a.out = static_cast<float*>(p.out.data);
  TANDEM_ASSIGN_OR_RETURN(a.out_stride, Stride4(kOp, "out", p.out, 0));
  a.eps = p.eps;
  return a;
}

absl::StatusOr<RopeArgs> PrepareRope(const RopeParams& p, int device) {
  constexpr std::string_view kOp = "rope";
  TANDEM_RETURN_IF_ERROR(CheckF32(kOp, "x", p.x, 3, device));
  TANDEM_RETURN_IF_ERROR(CheckI32(kOp, "positions", p.positions, 1, device));
  RopeArgs a;
  a.n = p.x.dim(0);
  a.heads = p.x.dim(1);
  a.head_dim = p.x.dim(2);
  TANDEM_RETURN_IF_ERROR(CheckDim(kOp, "positions' size", p.positions.dim(0), a.n));
  if (p.n_rot <= 0 || p.n_rot % 2 != 0 || p.n_rot > a.head_dim) {
    return Invalid(kOp, absl::StrCat("n_rot ", p.n_rot,
                                     " must be even and in (0, head_dim = ", a.head_dim, "]"));
  }
  if (!(p.freq_base > 0.0f) || !std::isfinite(p.freq_base)) {
    return Invalid(kOp, absl::StrCat("freq_base ", p.freq_base, " must be > 0"));
  }
  if (p.style != RopeStyle::kAdjacentPairs && p.style != RopeStyle::kHalfSplit) {
    return Invalid(kOp, absl::StrCat("unknown style ", static_cast<int>(p.style)));
  }
  a.x = static_cast<float*>(p.x.data);
  TANDEM_ASSIGN_OR_RETURN(a.stride0, Stride4(kOp, "x", p.x, 0));
  TANDEM_ASSIGN_OR_RETURN(a.stride1, Stride4(kOp, "x", p.x, 1));
  a.positions = static_cast<const int32_t*>(p.positions.data);
  a.n_rot = p.n_rot;
  a.freq_base = p.freq_base;
  a.half_split = p.style == RopeStyle::kHalfSplit;
  return a;
}

absl::StatusOr<SwiGluArgs> PrepareSwiGlu(const SwiGluParams& p, int device) {
  constexpr std::string_view kOp = "swiglu";
  TANDEM_RETURN_IF_ERROR(CheckF32(kOp, "gate", p.gate, 2, device));
  TANDEM_RETURN_IF_ERROR(CheckF32(kOp, "up", p.up, 2, device));
  TANDEM_RETURN_IF_ERROR(CheckF32(kOp, "out", p.out, 2, device));
  SwiGluArgs a;
  a.n = p.gate.dim(0);
  a.f = p.gate.dim(1);
  for (const auto& [name, t] :
       {std::pair<const char*, const TensorView*>{"up", &p.up}, {"out", &p.out}}) {
    TANDEM_RETURN_IF_ERROR(CheckDim(kOp, absl::StrCat(name, "'s rows"), t->dim(0), a.n));
    TANDEM_RETURN_IF_ERROR(CheckDim(kOp, absl::StrCat(name, "'s inner size"), t->dim(1), a.f));
  }
  if (a.f > int64_t{65535} * 256) return Invalid(kOp, absl::StrCat("f = ", a.f, " is too large"));
  a.gate = static_cast<const float*>(p.gate.data);
  TANDEM_ASSIGN_OR_RETURN(a.gate_stride, Stride4(kOp, "gate", p.gate, 0));
  a.up = static_cast<const float*>(p.up.data);
  TANDEM_ASSIGN_OR_RETURN(a.up_stride, Stride4(kOp, "up", p.up, 0));
  a.out = static_cast<float*>(p.out.data);
  TANDEM_ASSIGN_OR_RETURN(a.out_stride, Stride4(kOp, "out", p.out, 0));
  return a;
}

absl::StatusOr<SoftmaxArgs> PrepareSoftmax(const SoftmaxParams& p, int device) {
  constexpr std::string_view kOp = "softmax";
  TANDEM_RETURN_IF_ERROR(CheckF32(kOp, "x", p.x, 2, device));
  SoftmaxArgs a;
  a.n = p.x.dim(0);
  a.d = p.x.dim(1);
  a.x = static_cast<float*>(p.x.data);
  TANDEM_ASSIGN_OR_RETURN(a.x_stride, Stride4(kOp, "x", p.x, 0));
  a.scale = p.scale;
  return a;
}

absl::StatusOr<RowDistanceArgs> PrepareRowDistance(const RowDistanceParams& p, int device) {
  constexpr std::string_view kOp = "row_distance";
  TANDEM_RETURN_IF_ERROR(CheckF32(kOp, "a", p.a, 2, device));
  TANDEM_RETURN_IF_ERROR(CheckF32(kOp, "b", p.b, 2, device));
  TANDEM_RETURN_IF_ERROR(CheckF32(kOp, "out", p.out, 1, device));
  RowDistanceArgs a;
  a.n = p.a.dim(0);
  a.d = p.a.dim(1);
  TANDEM_RETURN_IF_ERROR(CheckDim(kOp, "b's rows", p.b.dim(0), a.n));
  TANDEM_RETURN_IF_ERROR(CheckDim(kOp, "b's inner size", p.b.dim(1), a.d));
  TANDEM_RETURN_IF_ERROR(CheckDim(kOp, "out's rows", p.out.dim(0), a.n));
  a.a = static_cast<const float*>(p.a.data);
  TANDEM_ASSIGN_OR_RETURN(a.a_stride, Stride4(kOp, "a", p.a, 0));
  a.b = static_cast<const float*>(p.b.data);
  TANDEM_ASSIGN_OR_RETURN(a.b_stride, Stride4(kOp, "b", p.b, 0));
  a.out = static_cast<float*>(p.out.data);
  TANDEM_ASSIGN_OR_RETURN(a.out_stride, Stride4(kOp, "out", p.out, 0));
  return a;
}

namespace {

// Both pools: 4-D, contiguous, one shared dtype from kKvPoolDTypes, heads and head_dim matching.
absl::Status CheckPools(std::string_view op, const TensorView& k_pool, const TensorView& v_pool,
                        int device) {
  TANDEM_RETURN_IF_ERROR(
      CheckView(op, "k_pool", k_pool, 4, kKvPoolDTypes, kKvPoolDTypesText, device));
  TANDEM_RETURN_IF_ERROR(
      CheckView(op, "v_pool", v_pool, 4, kKvPoolDTypes, kKvPoolDTypesText, device));
  if (v_pool.dtype != k_pool.dtype || v_pool.shape != k_pool.shape) {
    return Invalid(op, absl::StrCat("v_pool ", v_pool.DebugString(), " differs from k_pool ",
                                    k_pool.DebugString()));
  }
  if (!k_pool.is_contiguous() || !v_pool.is_contiguous()) {
    return Invalid(op, "k_pool and v_pool must be contiguous");
  }
  if (reinterpret_cast<uintptr_t>(k_pool.data) % 4 != 0 ||
      reinterpret_cast<uintptr_t>(v_pool.data) % 4 != 0) {
    return Invalid(op, "k_pool and v_pool must be 4-byte aligned");
  }
  return absl::OkStatus();
}

}  // namespace

namespace {

// The geometry KvWrite and KvGather share: f32 rows k and v [n, n_kv_heads, head_dim] on the
// device, the two pools, and one i32 slot per row.
absl::StatusOr<KvCopyArgs> PrepareKvCopy(std::string_view op, const TensorView& k,
                                         const TensorView& v, const TensorView& k_pool,
                                         const TensorView& v_pool, const TensorView& slots,
                                         int device) {
  TANDEM_RETURN_IF_ERROR(CheckF32(op, "k", k, 3, device));
  TANDEM_RETURN_IF_ERROR(CheckF32(op, "v", v, 3, device));
  TANDEM_RETURN_IF_ERROR(CheckPools(op, k_pool, v_pool, device));
  TANDEM_RETURN_IF_ERROR(CheckI32(op, "slots", slots, 1, device));
  KvCopyArgs a;
  a.n = k.dim(0);
  a.n_kv_heads = k.dim(1);
  a.head_dim = k.dim(2);
  a.num_pages = k_pool.dim(0);
  a.page_tokens = k_pool.dim(1);
  TANDEM_RETURN_IF_ERROR(CheckDim(op, "v's tokens", v.dim(0), a.n));
  TANDEM_RETURN_IF_ERROR(CheckDim(op, "v's heads", v.dim(1), a.n_kv_heads));
  TANDEM_RETURN_IF_ERROR(CheckDim(op, "v's head_dim", v.dim(2), a.head_dim));
  TANDEM_RETURN_IF_ERROR(CheckDim(op, "k_pool's heads", k_pool.dim(2), a.n_kv_heads));
  TANDEM_RETURN_IF_ERROR(CheckDim(op, "k_pool's head_dim", k_pool.dim(3), a.head_dim));
  TANDEM_RETURN_IF_ERROR(CheckDim(op, "slots' size", slots.dim(0), a.n));
  a.k = static_cast<float*>(k.data);
  TANDEM_ASSIGN_OR_RETURN(a.k_stride0, Stride4(op, "k", k, 0));
  TANDEM_ASSIGN_OR_RETURN(a.k_stride1, Stride4(op, "k", k, 1));
  a.v = static_cast<float*>(v.data);
  TANDEM_ASSIGN_OR_RETURN(a.v_stride0, Stride4(op, "v", v, 0));
  TANDEM_ASSIGN_OR_RETURN(a.v_stride1, Stride4(op, "v", v, 1));
  a.k_pool = k_pool.data;
  a.v_pool = v_pool.data;
  a.pool_dtype = k_pool.dtype;
  a.slots = static_cast<const int32_t*>(slots.data);
  return a;
}

}  // namespace

absl::StatusOr<KvCopyArgs> PrepareKvWrite(const KvWriteParams& p, int device) {
  return PrepareKvCopy("kv_write", p.k, p.v, p.k_pool, p.v_pool, p.slots, device);
}

absl::StatusOr<KvCopyArgs> PrepareKvGather(const KvGatherParams& p, int device) {
  return PrepareKvCopy("kv_gather", p.k, p.v, p.k_pool, p.v_pool, p.slots, device);
}

absl::StatusOr<PagedAttentionArgs> PreparePagedAttention(const PagedAttentionParams& p,
                                                         int device) {
  constexpr std::string_view kOp = "paged_attention";
  TANDEM_RETURN_IF_ERROR(CheckF32(kOp, "q", p.q, 3, device));
  TANDEM_RETURN_IF_ERROR(CheckPools(kOp, p.k_pool, p.v_pool, device));
  TANDEM_RETURN_IF_ERROR(CheckF32(kOp, "out", p.out, 3, device));
  TANDEM_RETURN_IF_ERROR(CheckI32(kOp, "q_seq", p.q_seq, 1, device));
  TANDEM_RETURN_IF_ERROR(CheckI32(kOp, "q_pos", p.q_pos, 1, device));
  TANDEM_RETURN_IF_ERROR(CheckI32(kOp, "page_table", p.page_table, 2, device));
  PagedAttentionArgs a;
  a.n = p.q.dim(0);
  a.n_heads = p.q.dim(1);
  a.head_dim = p.q.dim(2);
  a.num_pages = p.k_pool.dim(0);
  a.page_tokens = p.k_pool.dim(1);
  a.n_kv_heads = p.k_pool.dim(2);
  a.n_seqs = p.page_table.dim(0);
  a.max_pages = p.page_table.dim(1);
  TANDEM_RETURN_IF_ERROR(CheckDim(kOp, "k_pool's head_dim", p.k_pool.dim(3), a.head_dim));
  TANDEM_RETURN_IF_ERROR(CheckDim(kOp, "out's tokens", p.out.dim(0), a.n));
  TANDEM_RETURN_IF_ERROR(CheckDim(kOp, "out's heads", p.out.dim(1), a.n_heads));
  TANDEM_RETURN_IF_ERROR(CheckDim(kOp, "out's head_dim", p.out.dim(2), a.head_dim));
  TANDEM_RETURN_IF_ERROR(CheckDim(kOp, "q_seq's size", p.q_seq.dim(0), a.n));
  TANDEM_RETURN_IF_ERROR(CheckDim(kOp, "q_pos's size", p.q_pos.dim(0), a.n));
  if (a.n_kv_heads <= 0 || a.n_kv_heads > 65535 || a.n_heads % a.n_kv_heads != 0) {
    return Invalid(kOp, absl::StrCat("n_heads ", a.n_heads, " must be a multiple of n_kv_heads ",
                                     a.n_kv_heads, " (1..65535)"));
  }
  if (a.head_dim < 1 || a.head_dim > kMaxAttentionHeadDim) {
    return Invalid(kOp, absl::StrCat("unsupported head_dim ", a.head_dim, "; supported: 1..",
                                     kMaxAttentionHeadDim));
  }
  if (a.page_tokens <= 0) {
    return Invalid(kOp, absl::StrCat("page_tokens ", a.page_tokens, " must be > 0"));
  }
  if (Overlaps(p.q, p.out)) return Invalid(kOp, "out must not alias q");
  a.q = static_cast<const float*>(p.q.data);
  TANDEM_ASSIGN_OR_RETURN(a.q_stride0, Stride4(kOp, "q", p.q, 0));
  TANDEM_ASSIGN_OR_RETURN(a.q_stride1, Stride4(kOp, "q", p.q, 1));
  a.k_pool = p.k_pool.data;
  a.v_pool = p.v_pool.data;
  a.pool_dtype = p.k_pool.dtype;
  a.out = static_cast<float*>(p.out.data);
  TANDEM_ASSIGN_OR_RETURN(a.out_stride0, Stride4(kOp, "out", p.out, 0));
  TANDEM_ASSIGN_OR_RETURN(a.out_stride1, Stride4(kOp, "out", p.out, 1));
  a.q_seq = static_cast<const int32_t*>(p.q_seq.data);
  a.q_pos = static_cast<const int32_t*>(p.q_pos.data);
  a.page_table = static_cast<const int32_t*>(p.page_table.data);
  TANDEM_ASSIGN_OR_RETURN(a.page_table_stride, Stride4(kOp, "page_table", p.page_table, 0));
  a.scale = p.scale;
  return a;
}

absl::StatusOr<AttentionPrefillArgs> PrepareAttentionPrefill(const AttentionPrefillParams& p,
                                                             int device) {
  constexpr std::string_view kOp = "attention_prefill";
  TANDEM_RETURN_IF_ERROR(CheckF32(kOp, "q", p.q, 3, device));
  TANDEM_RETURN_IF_ERROR(CheckF32(kOp, "k", p.k, 3, device));
  TANDEM_RETURN_IF_ERROR(CheckF32(kOp, "v", p.v, 3, device));
  TANDEM_RETURN_IF_ERROR(CheckF32(kOp, "out", p.out, 3, device));
  TANDEM_RETURN_IF_ERROR(CheckI32(kOp, "q_pos", p.q_pos, 1, device));
  TANDEM_RETURN_IF_ERROR(CheckI32(kOp, "kv_pos", p.kv_pos, 1, device));
  AttentionPrefillArgs a;
  a.n_q = p.q.dim(0);
  a.n_heads = p.q.dim(1);
  a.head_dim = p.q.dim(2);
  a.n_kv = p.k.dim(0);
  a.n_kv_heads = p.k.dim(1);
  TANDEM_RETURN_IF_ERROR(CheckDim(kOp, "k's head_dim", p.k.dim(2), a.head_dim));
  for (int d = 0; d < 3; ++d) {
    TANDEM_RETURN_IF_ERROR(CheckDim(kOp, "v's shape", p.v.dim(d), p.k.dim(d)));
    TANDEM_RETURN_IF_ERROR(CheckDim(kOp, "out's shape", p.out.dim(d), p.q.dim(d)));
  }
  TANDEM_RETURN_IF_ERROR(CheckDim(kOp, "q_pos's size", p.q_pos.dim(0), a.n_q));
  TANDEM_RETURN_IF_ERROR(CheckDim(kOp, "kv_pos's size", p.kv_pos.dim(0), a.n_kv));
  if (a.n_kv_heads <= 0 || a.n_heads % a.n_kv_heads != 0 || a.n_heads > 65535) {
    return Invalid(kOp, absl::StrCat("n_heads ", a.n_heads, " must be a multiple of n_kv_heads ",
                                     a.n_kv_heads, " and at most 65535"));
  }
  if (a.head_dim < 1 || a.head_dim > kMaxAttentionHeadDim) {
    return Invalid(kOp, absl::StrCat("unsupported head_dim ", a.head_dim, "; supported: 1..",
                                     kMaxAttentionHeadDim));
  }
  if (!std::isfinite(p.scale)) return Invalid(kOp, absl::StrCat("scale ", p.scale, " is not finite"));
  TANDEM_RETURN_IF_ERROR(ValidateSparseConfig(kOp, p.sparse));
  if (Overlaps(p.out, p.q) || Overlaps(p.out, p.k) || Overlaps(p.out, p.v)) {
    return Invalid(kOp, "out must not alias q, k or v");
  }
  a.q = static_cast<const float*>(p.q.data);
  TANDEM_ASSIGN_OR_RETURN(a.q_stride0, Stride4(kOp, "q", p.q, 0));
  TANDEM_ASSIGN_OR_RETURN(a.q_stride1, Stride4(kOp, "q", p.q, 1));
  a.k = static_cast<const float*>(p.k.data);
  TANDEM_ASSIGN_OR_RETURN(a.k_stride0, Stride4(kOp, "k", p.k, 0));
  TANDEM_ASSIGN_OR_RETURN(a.k_stride1, Stride4(kOp, "k", p.k, 1));
  a.v = static_cast<const float*>(p.v.data);
  TANDEM_ASSIGN_OR_RETURN(a.v_stride0, Stride4(kOp, "v", p.v, 0));
  TANDEM_ASSIGN_OR_RETURN(a.v_stride1, Stride4(kOp, "v", p.v, 1));
  a.out = static_cast<float*>(p.out.data);
  TANDEM_ASSIGN_OR_RETURN(a.out_stride0, Stride4(kOp, "out", p.out, 0));
  TANDEM_ASSIGN_OR_RETURN(a.out_stride1, Stride4(kOp, "out", p.out, 1));
  a.q_pos = static_cast<const int32_t*>(p.q_pos.data);
  TANDEM_ASSIGN_OR_RETURN(a.q_pos_stride, Stride4(kOp, "q_pos", p.q_pos, 0));
  a.kv_pos = static_cast<const int32_t*>(p.kv_pos.data);
  TANDEM_ASSIGN_OR_RETURN(a.kv_pos_stride, Stride4(kOp, "kv_pos", p.kv_pos, 0));
  a.scale = p.scale;
  return a;
}

absl::StatusOr<SampleArgs> PrepareSample(const SampleParams& p, int device) {
  constexpr std::string_view kOp = "sample";
  TANDEM_RETURN_IF_ERROR(CheckF32(kOp, "logits", p.logits, 2, device));
  SampleArgs a;
  a.n = p.logits.dim(0);
  a.vocab = p.logits.dim(1);
  const int64_t n = a.n;
  TANDEM_RETURN_IF_ERROR(CheckDim(kOp, "configs' size", static_cast<int64_t>(p.configs.size()), n));
  TANDEM_RETURN_IF_ERROR(
      CheckDim(kOp, "rng_states' size", static_cast<int64_t>(p.rng_states.size()), n));
  TANDEM_RETURN_IF_ERROR(
      CheckDim(kOp, "out_tokens' size", static_cast<int64_t>(p.out_tokens.size()), n));
  if (n > 0 && (a.vocab < 1 || a.vocab > int64_t{0x7FFFFFFF})) {
    return Invalid(kOp, absl::StrCat("vocab ", a.vocab, " must be in [1, 2^31)"));
  }
  for (int64_t i = 0; i < n; ++i) {
    const SamplingConfig& c = p.configs[i];
    if (std::isnan(c.temperature) || std::isnan(c.top_p)) {
      return Invalid(kOp, absl::StrCat("configs[", i, "] has temperature ", c.temperature,
                                       ", top_p ", c.top_p));
    }
  }
  a.logits = static_cast<const float*>(p.logits.data);
  TANDEM_ASSIGN_OR_RETURN(a.logits_stride, Stride4(kOp, "logits", p.logits, 0));
  return a;
}

}  // namespace tandem::kernels::cuda
