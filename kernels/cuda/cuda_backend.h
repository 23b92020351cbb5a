// kernels/cuda/cuda_backend.h
//
// CudaBackend: the "cuda:N" KernelBackend. Owns one non-blocking CUDA stream on device N; Run()
// validates a call (op_prepare.h), then enqueues its kernel on that stream and returns without
// waiting, except Sample, whose tokens land in host memory and so synchronises. Copies are ordered
// on the same stream and wait for completion. Also owns the scratch device memory Sample needs,
// grown on demand. Created by CreateCudaBackend() (backend_factories.h) and owned by the registry
// or by NewBackend()'s caller; used by one thread at a time, like every KernelBackend. Only kernels/cuda includes this header,
// so CUDA types stay out of other folders.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/backend.h"

namespace tandem::kernels::cuda {

class CudaBackend final : public KernelBackend {
 public:
  // Unavailable when the device cannot be selected or a stream cannot be created on it.
  static absl::StatusOr<std::unique_ptr<CudaBackend>> Create(int device);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  std::string_view Name() const override { return name_; }
  Device device() const override { return Device{DeviceKind::kCuda, device_}; }
  bool Supports(const OpCall& call) const override;
  absl::Status Run(const OpCall& call) override;
  absl::Status Synchronize() override;

  absl::StatusOr<void*> Allocate(int64_t bytes) override;
  void Free(void* ptr) override;
  absl::Status CopyToDevice(void* dst, const void* src, int64_t bytes) override;
  absl::Status CopyToHost(void* dst, const void* src, int64_t bytes) override;

 private:
  struct Ops;  // the ops it runs: one table read by Supports() and Run() (cuda_backend.cc)

  CudaBackend(int device, cudaStream_t stream);
  absl::Status RunSample(const SampleParams& p);
  // Reads positions back and synchronises (attention_prefill_host.cc).
  absl::Status RunAttentionPrefill(const AttentionPrefillParams& p);
  // Makes scratch_ at least `bytes` long (contents are not kept).
  absl::Status EnsureScratch(int64_t bytes);

  const int device_;
  const std::string name_;
  cudaStream_t stream_;
  void* scratch_ = nullptr;  // Sample: configs, probabilities, tokens; AttentionPrefill: masks
  int64_t scratch_bytes_ = 0;
};

}  // namespace tandem::kernels::cuda
