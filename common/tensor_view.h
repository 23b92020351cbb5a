// common/tensor_view.h
//
// TensorView is a non-owning view of a tensor: pointer, dtype, shape (outermost first, PyTorch order)
// and byte strides, plus the device that owns the memory. It is how device memory crosses library
// interfaces (only kernels/cuda includes CUDA headers). The innermost dimension is always contiguous;
// for a quantized dtype it is a run of blocks, so strides are in bytes. The viewed memory is owned
// elsewhere and must outlive the view. Copyable, trivially cheap; not synchronised.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "absl/types/span.h"
#include "common/dtype.h"

namespace tandem {

enum class DeviceKind : uint8_t { kCpu, kCuda };

struct Device {
  DeviceKind kind = DeviceKind::kCpu;
  int index = 0;
  bool operator==(const Device&) const = default;
};

struct TensorView {
  static constexpr int kMaxDims = 4;

  void* data = nullptr;
  DType dtype = DType::kF32;
  int ndim = 0;
  std::array<int64_t, kMaxDims> shape{};         // shape[ndim-1] is innermost (contiguous)
  std::array<int64_t, kMaxDims> stride_bytes{};  // stride_bytes[ndim-1] == block bytes
  Device device{};

  // A contiguous row-major view of `shape`.
  static TensorView Contiguous(void* data, DType dtype, std::initializer_list<int64_t> shape,
                               Device device = {});
  // The same for a shape known at run time (at most kMaxDims dimensions).
  static TensorView Contiguous(void* data, DType dtype, absl::Span<const int64_t> shape,
                               Device device = {});

  int64_t dim(int i) const { return shape[i < 0 ? ndim + i : i]; }
  int64_t numel() const;
  // Bytes spanned by a contiguous tensor of this shape and dtype.
  int64_t nbytes() const;
  bool is_contiguous() const;
  bool empty() const { return data == nullptr; }

  template <typename T>
  T* as() const {
    return static_cast<T*>(data);
  }
  // Pointer to the start of row `i` of dimension 0 (byte arithmetic).
  template <typename T = void>
  T* row(int64_t i) const {
    return reinterpret_cast<T*>(static_cast<char*>(data) + i * stride_bytes[0]);
  }
  // The sub-tensor at index `i` of dimension 0.
  TensorView Slice0(int64_t i) const;
  // Rows [begin, end) of dimension 0.
  TensorView Rows(int64_t begin, int64_t end) const;

  std::string DebugString() const;  // "f32[4, 9, 64]"
};

}  // namespace tandem
