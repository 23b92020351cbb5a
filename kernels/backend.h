// kernels/backend.h
//
// KernelBackend runs OpCalls on one device. Three exist: "cpu_ref" (naive fp32 loops: the spec),
// "cpu" (threads over every core plus SIMD where speed matters; forwards the rest to cpu_ref) and
// "cuda:N" (when built with CUDA and a device is present). Backends are process-wide singletons
// owned by the registry; GetBackend never transfers ownership. Run() may be asynchronous on device
// backends: call Synchronize() before reading results on the host. A backend is used by one thread
// at a time (the model runner's); it parallelises internally.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/tensor_view.h"
#include "kernels/op.h"

namespace tandem::kernels {

class KernelBackend {
 public:
  virtual ~KernelBackend() = default;
  virtual std::string_view Name() const = 0;  // "cpu_ref", "cpu", "cuda:0"
  virtual Device device() const = 0;
  // Whether Run() accepts this call (dtypes, shapes); reads the same table as Run().
  virtual bool Supports(const OpCall& call) const = 0;
  // InvalidArgument naming the bad value for malformed or unsupported calls.
  virtual absl::Status Run(const OpCall& call) = 0;
  virtual absl::Status Synchronize() = 0;

  // Device memory. On CPU backends this is aligned host memory.
  virtual absl::StatusOr<void*> Allocate(int64_t bytes) = 0;
  virtual void Free(void* ptr) = 0;
  virtual absl::Status CopyToDevice(void* dst, const void* src, int64_t bytes) = 0;
  virtual absl::Status CopyToHost(void* dst, const void* src, int64_t bytes) = 0;
};

// "cpu_ref" and "cpu" always exist; "cuda" / "cuda:N" when built with CUDA and a device is present
// (otherwise Unavailable with the reason). NotFound for unknown names.
absl::StatusOr<KernelBackend*> GetBackend(std::string_view name);

// Threads used by the "cpu" backend; 0 = all hardware threads. Call before the first GetBackend("cpu").
void SetCpuThreads(int threads);

// Owns device memory from one backend; frees it on destruction. Move-only.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  static absl::StatusOr<DeviceBuffer> Create(KernelBackend& backend, int64_t bytes);
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer();

  void* data() const { return data_; }
  int64_t bytes() const { return bytes_; }
  TensorView View(DType dtype, std::initializer_list<int64_t> shape) const;

 private:
  KernelBackend* backend_ = nullptr;
  void* data_ = nullptr;
  int64_t bytes_ = 0;
};

}  // namespace tandem::kernels
