// Validation helpers shared by the cpu_ref ops.
#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
#include "kernels/cpu_ref/dequantize.h"
#include "kernels/cpu_ref/ref_ops.h"

namespace tandem::kernels::cpu_ref {
namespace {

// Lowest and one-past-highest byte a strided view touches.
void ByteRange(const TensorView& t, const char** lo, const char** hi) {
  const char* base = static_cast<const char*>(t.data);
  int64_t min_off = 0;
  int64_t max_off = 0;
  for (int d = 0; d < t.ndim; ++d) {
    int64_t n = t.shape[d];
    if (d == t.ndim - 1) n /= DTypeBlockElems(t.dtype);
    if (n <= 0) {
      *lo = *hi = base;
      return;
    }
    const int64_t span = (n - 1) * t.stride_bytes[d];
    if (span < 0)
      min_off += span;
    else
      max_off += span;
  }
  *lo = base + min_off;
  *hi = base + max_off + DTypeBlockBytes(t.dtype);
}

}  // namespace

absl::Status CheckTensor(std::string_view op, std::string_view field, const TensorView& t, int ndim,
                         std::initializer_list<DType> dtypes) {
  if (t.data == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(AV(op), ": ", AV(field), " has no data"));
  }
  if (t.device.kind != DeviceKind::kCpu) {
    return absl::InvalidArgumentError(
        absl::StrCat(AV(op), ": ", AV(field), " is on ", t.DebugString(), ", not host memory"));
  }
  if (t.ndim != ndim) {
    return absl::InvalidArgumentError(
        absl::StrCat(AV(op), ": ", AV(field), ".ndim=", t.ndim, " != ", ndim));
  }
  if (std::find(dtypes.begin(), dtypes.end(), t.dtype) == dtypes.end()) {
    std::string allowed = absl::StrJoin(
        dtypes, "|", [](std::string* out, DType d) { absl::StrAppend(out, AV(DTypeName(d))); });
    return absl::InvalidArgumentError(absl::StrCat(
        AV(op), ": ", AV(field), ".dtype=", AV(DTypeName(t.dtype)), ", want ", allowed));
  }
  for (int d = 0; d < ndim; ++d) {
    if (t.shape[d] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(AV(op), ": ", AV(field), ".shape[", d, "]=", t.shape[d], " < 0"));
    }
  }
  const int64_t block = DTypeBlockElems(t.dtype);
  if (t.shape[ndim - 1] % block != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(AV(op), ": ", AV(field), ".shape[", ndim - 1, "]=", t.shape[ndim - 1],
                     " is not a multiple of ", AV(DTypeName(t.dtype)), "'s block of ", block));
  }
  if (t.shape[ndim - 1] > block && t.stride_bytes[ndim - 1] != DTypeBlockBytes(t.dtype)) {
    return absl::InvalidArgumentError(absl::StrCat(AV(op), ": ", AV(field), ".stride_bytes[",
                                                   ndim - 1, "]=", t.stride_bytes[ndim - 1],
                                                   " (innermost dimension must be contiguous)"));
  }
  return absl::OkStatus();
}

absl::Status CheckWeight(std::string_view op, std::string_view field, const TensorView& t,
                         int ndim) {
  if (!CanDequantize(t.dtype)) {
    return absl::InvalidArgumentError(absl::StrCat(
        AV(op), ": ", AV(field), ".dtype=", AV(DTypeName(t.dtype)), " is not a weight dtype"));
  }
  return CheckTensor(op, field, t, ndim, {t.dtype});
}

absl::Status CheckSameDim(std::string_view op, std::string_view a_name, const TensorView& a, int ai,
                          std::string_view b_name, const TensorView& b, int bi) {
  if (a.shape[ai] != b.shape[bi]) {
    return absl::InvalidArgumentError(absl::StrCat(AV(op), ": ", AV(a_name), ".shape[", ai,
                                                   "]=", a.shape[ai], " != ", AV(b_name), ".shape[",
                                                   bi, "]=", b.shape[bi]));
  }
  return absl::OkStatus();
}

absl::Status CheckSameShape(std::string_view op, std::string_view a_name, const TensorView& a,
                            std::string_view b_name, const TensorView& b) {
  if (a.ndim != b.ndim) {
    return absl::InvalidArgumentError(absl::StrCat(AV(op), ": ", AV(a_name), " is ",
                                                   a.DebugString(), " but ", AV(b_name), " is ",
                                                   b.DebugString()));
  }
  for (int d = 0; d < a.ndim; ++d) {
    TANDEM_RETURN_IF_ERROR(CheckSameDim(op, a_name, a, d, b_name, b, d));
  }
  return absl::OkStatus();
}

absl::Status CheckNoOverlap(std::string_view op, std::string_view a_name, const TensorView& a,
                            std::string_view b_name, const TensorView& b) {
  const char *alo, *ahi, *blo, *bhi;
  ByteRange(a, &alo, &ahi);
  ByteRange(b, &blo, &bhi);
  if (alo < bhi && blo < ahi) {
    return absl::InvalidArgumentError(
        absl::StrCat(AV(op), ": ", AV(a_name), " overlaps ", AV(b_name), " in memory"));
  }
  return absl::OkStatus();
}

absl::Status CheckIndex(std::string_view op, std::string_view field, int64_t i, int64_t value,
                        int64_t limit) {
  if (value < 0 || value >= limit) {
    return absl::InvalidArgumentError(
        absl::StrCat(AV(op), ": ", AV(field), "[", i, "]=", value, " not in [0, ", limit, ")"));
  }
  return absl::OkStatus();
}

}  // namespace tandem::kernels::cpu_ref
