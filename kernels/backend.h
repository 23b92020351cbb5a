// kernels/backend.h
//
// KernelBackend runs OpCalls on one device. Three exist: "cpu_ref" (naive fp32 loops: the spec),
// "cpu" (a thread pool plus SIMD where speed matters; forwards the rest to cpu_ref) and "cuda:N"
// (when built with CUDA and device N is present; its own stream). Run() may be asynchronous on
// device backends: call Synchronize() before reading results on the host.
//
// Ownership: GetBackend() hands out process-wide shared instances owned by the registry (never
// destroyed); NewBackend() builds a new instance owned by the caller, with its own thread pool
// ("cpu") or stream and scratch ("cuda:N").
//
// Thread-safety: GetBackend, NewBackend and SetCpuThreads may be called from any thread. A backend
// instance is used by one thread at a time (it parallelises internally); cpu_ref alone is
// stateless and safe from any number of threads. Because GetBackend's instances are shared,
// threads that run kernels at the same time (TPLA ranks on CPU) take one NewBackend instance each.
// Memory from Allocate() of a CPU backend is plain host memory that any CPU instance may use; on
// CUDA it is device N memory that any instance on device N may use, ordered across their streams
// by the caller (Synchronize() the writer before another instance reads).
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

// The shared instance of `name`: "cpu_ref" and "cpu" always exist; "cuda" (= "cuda:0") and
// "cuda:N" when built with CUDA and device N is present (otherwise Unavailable with the reason).
// NotFound naming the known names for anything else. Never transfers ownership.
absl::StatusOr<KernelBackend*> GetBackend(std::string_view name);

// Threads of the shared "cpu" instance; 0 = all hardware threads. Call before the first
// GetBackend("cpu").
void SetCpuThreads(int threads);

// How NewBackend builds an instance.
struct BackendOptions {
  // Threads of a "cpu" instance's pool (other backends ignore it). More threads speed up one
  // caller's large matmuls and prefill; callers that run side by side (one rank per thread) each
  // want their share of the cores instead. 0 = all hardware threads.
  // Default: 0.
  int cpu_threads = 0;

  absl::Status Validate() const;  // InvalidArgument naming the field and value
};

// A new instance of `name` (the names of GetBackend), owned by the caller and independent of the
// shared instances and of every other instance. Errors as GetBackend's, plus InvalidArgument for
// bad options. A "cpu" instance runs the ops it has no fast path for on the shared cpu_ref. The
// instance must outlive the DeviceBuffers allocated from it.
absl::StatusOr<std::unique_ptr<KernelBackend>> NewBackend(std::string_view name,
                                                          const BackendOptions& options = {});

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
