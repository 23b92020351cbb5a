// kernels/cuda/dispatch.cuh
//
// DispatchDType turns a run-time DType into a compile-time one by walking a table from supported.h,
// so a kernel is instantiated for exactly the dtypes that Supports() accepts. Host code of .cu
// files only. Stateless.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <type_traits>
#include <utility>

#include "common/dtype.h"

namespace tandem::kernels::cuda {

template <DType T>
using DTypeTag = std::integral_constant<DType, T>;

// Calls f(DTypeTag<kTable[i]>{}) for the entry equal to `t`; cudaErrorInvalidValue if none is
// (op_prepare.cc rejects such calls first with a message naming the table).
template <const auto& kTable, std::size_t I = 0, typename F>
cudaError_t DispatchDType(DType t, F&& f) {
  constexpr std::size_t kSize = std::extent_v<std::remove_reference_t<decltype(kTable)>>;
  if constexpr (I == kSize) {
    return cudaErrorInvalidValue;
  } else {
    if (t == kTable[I]) return f(DTypeTag<kTable[I]>{});
    return DispatchDType<kTable, I + 1>(t, std::forward<F>(f));
  }
}

inline unsigned int CeilDiv(int64_t a, int64_t b) {
  return static_cast<unsigned int>((a + b - 1) / b);
}

}  // namespace tandem::kernels::cuda
