// kernels/cuda/cuda_check.h
//
// Converts CUDA runtime errors into absl::Status once, at the call into CUDA, with file and line.
// Host code only (the .cc files of kernels/cuda); device code and the .cu launchers return plain
// cudaError_t, which the backend wraps with TANDEM_RETURN_IF_CUDA_ERROR. Stateless; thread-safe.
#pragma once

#include <cuda_runtime_api.h>

#include "absl/status/status.h"

namespace tandem::kernels::cuda {

// ResourceExhausted for out-of-memory, Unavailable when there is no usable driver or device,
// Internal for everything else. The message names the call site and CUDA's own error string.
absl::Status CudaErrorToStatus(cudaError_t err, const char* expr, const char* file, int line);

}  // namespace tandem::kernels::cuda

#define TANDEM_RETURN_IF_CUDA_ERROR(expr)                                                  \
  do {                                                                                     \
    const cudaError_t tandem_cuda_err_ = (expr);                                           \
    if (tandem_cuda_err_ != cudaSuccess) {                                                 \
      return ::tandem::kernels::cuda::CudaErrorToStatus(tandem_cuda_err_, #expr, __FILE__, \
                                                        __LINE__);                         \
    }                                                                                      \
  } while (0)
