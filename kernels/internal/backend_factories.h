// kernels/internal/backend_factories.h
//
// Constructors of the concrete backends, called only by the registry in kernels/backend.cc (and by
// the consistency harness). Each returns a new backend owned by the caller.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "kernels/backend.h"

namespace tandem::kernels {

std::unique_ptr<KernelBackend> CreateCpuRefBackend();
// `threads` > 0; ops the fast path does not cover run on `fallback` (cpu_ref), which must outlive it.
std::unique_ptr<KernelBackend> CreateCpuBackend(int threads, KernelBackend* fallback);

#ifdef TANDEM_HAVE_CUDA
// Number of usable CUDA devices; 0 when there is no driver or no device.
int CudaDeviceCount();
// Unavailable with the reason when the device cannot be used.
absl::StatusOr<std::unique_ptr<KernelBackend>> CreateCudaBackend(int device);
#endif

}  // namespace tandem::kernels
