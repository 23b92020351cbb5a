#include "common/tensor_view.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"

namespace tandem {

TensorView TensorView::Contiguous(void* data, DType dtype, std::initializer_list<int64_t> shape,
                                  Device device) {
  return Contiguous(data, dtype, absl::MakeConstSpan(shape.begin(), shape.size()), device);
}

TensorView TensorView::Contiguous(void* data, DType dtype, absl::Span<const int64_t> shape,
                                  Device device) {
  TANDEM_CHECK(shape.size() <= kMaxDims) << "TensorView of " << shape.size() << " dims";
  TensorView t;
  t.data = data;
  t.dtype = dtype;
  t.device = device;
  t.ndim = static_cast<int>(shape.size());
  int i = 0;
  for (int64_t s : shape) t.shape[i++] = s;
  int64_t stride = DTypeBlockBytes(dtype);
  for (int d = t.ndim - 1; d >= 0; --d) {
    t.stride_bytes[d] = stride;
    stride *= (d == t.ndim - 1) ? t.shape[d] / DTypeBlockElems(dtype) : t.shape[d];
  }
  return t;
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int i = 0; i < ndim; ++i) n *= shape[i];
  return n;
}

int64_t TensorView::nbytes() const {
  if (ndim == 0) return 0;
  return numel() / DTypeBlockElems(dtype) * DTypeBlockBytes(dtype);
}

bool TensorView::is_contiguous() const {
  int64_t stride = DTypeBlockBytes(dtype);
  for (int d = ndim - 1; d >= 0; --d) {
    if (shape[d] > 1 && stride_bytes[d] != stride) return false;
    stride *= (d == ndim - 1) ? shape[d] / DTypeBlockElems(dtype) : shape[d];
  }
  return true;
}

TensorView TensorView::Slice0(int64_t i) const {
  TensorView t;
  t.data = static_cast<char*>(data) + i * stride_bytes[0];
  t.dtype = dtype;
  t.device = device;
  t.ndim = ndim - 1;
  for (int d = 1; d < ndim; ++d) {
    t.shape[d - 1] = shape[d];
    t.stride_bytes[d - 1] = stride_bytes[d];
  }
  return t;
}

TensorView TensorView::Rows(int64_t begin, int64_t end) const {
  TensorView t = *this;
  t.data = static_cast<char*>(data) + begin * stride_bytes[0];
  t.shape[0] = end - begin;
  return t;
}

std::string TensorView::DebugString() const {
  std::string dims;
  for (int i = 0; i < ndim; ++i) absl::StrAppend(&dims, i ? ", " : "", shape[i]);
  return absl::StrCat(std::string(DTypeName(dtype)), "[", dims, "]",
                      device.kind == DeviceKind::kCuda ? absl::StrCat("@cuda:", device.index) : "");
}

}  // namespace tandem
