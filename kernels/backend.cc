// The backend registry and DeviceBuffer. One function turns a name into a new backend
// (CreateBackend); NewBackend hands its result to the caller, GetBackend keeps one per name,
// created on first use under one mutex. Shared backends live until process exit: they are never
// destroyed, so pointers handed out by GetBackend() stay valid during static destruction of other
// objects.
#include "kernels/backend.h"

#include <charconv>
#include <map>
#include <string>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/status.h"
#include "kernels/internal/backend_factories.h"

namespace tandem::kernels {
namespace {

// cpu_ref is stateless, so one instance serves every caller and every "cpu" instance's fallback.
KernelBackend& SharedCpuRef() {
  static KernelBackend* cpu_ref = CreateCpuRefBackend().release();  // never destroyed, see above
  return *cpu_ref;
}

struct Registry {
  absl::Mutex mu;
  int cpu_threads ABSL_GUARDED_BY(mu) = 0;
  std::unique_ptr<KernelBackend> cpu ABSL_GUARDED_BY(mu);
  // CUDA device index -> backend, or the reason it cannot be created (kept so that a missing
  // device is probed once, not on every call).
  std::map<int, absl::StatusOr<std::unique_ptr<KernelBackend>>> cuda ABSL_GUARDED_BY(mu);
};

Registry& GetRegistry() {
  static Registry* registry = new Registry();  // never destroyed, see above
  return *registry;
}

// What a backend name selects: which backend and, for CUDA, which device.
struct BackendName {
  enum class Kind { kCpuRef, kCpu, kCuda };
  Kind kind;
  int cuda_index = 0;
};

// "cpu_ref", "cpu", "cuda" (device 0), "cuda:N"; NotFound naming the known set for anything else.
absl::StatusOr<BackendName> ParseBackendName(std::string_view name) {
  if (name == "cpu_ref") return BackendName{BackendName::Kind::kCpuRef};
  if (name == "cpu") return BackendName{BackendName::Kind::kCpu};
  if (name == "cuda") return BackendName{BackendName::Kind::kCuda, 0};
  if (name.substr(0, 5) == "cuda:") {
    const std::string_view digits = name.substr(5);
    int index = -1;
    const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
    if (!digits.empty() && ec == std::errc() && ptr == digits.data() + digits.size() &&
        index >= 0) {
      return BackendName{BackendName::Kind::kCuda, index};
    }
  }
  return absl::NotFoundError(
      absl::StrCat("unknown kernel backend \"", AV(name), "\"; known: cpu_ref, cpu, cuda, cuda:N"));
}

absl::StatusOr<std::unique_ptr<KernelBackend>> CreateCuda(int index, std::string_view name) {
#ifdef TANDEM_HAVE_CUDA
  const int count = CudaDeviceCount();
  if (count == 0) {
    return absl::UnavailableError(absl::StrCat(
        "no CUDA device: the driver reports 0 usable devices for \"", AV(name), "\""));
  }
  if (index >= count) {
    return absl::UnavailableError(absl::StrCat("no CUDA device: \"", AV(name), "\" but only ",
                                               count, " device(s) present"));
  }
  return CreateCudaBackend(index);
#else
  (void)index;
  return absl::UnavailableError(
      absl::StrCat("kernel backend \"", AV(name), "\": built without CUDA"));
#endif
}

// A new backend for a parsed name; `cpu_threads` <= 0 means every hardware thread.
absl::StatusOr<std::unique_ptr<KernelBackend>> CreateBackend(const BackendName& parsed,
                                                             std::string_view name,
                                                             int cpu_threads) {
  switch (parsed.kind) {
    case BackendName::Kind::kCpuRef:
      return CreateCpuRefBackend();
    case BackendName::Kind::kCpu: {
      int threads = cpu_threads;
      if (threads <= 0) threads = static_cast<int>(std::thread::hardware_concurrency());
      if (threads <= 0) threads = 1;
      return CreateCpuBackend(threads, &SharedCpuRef());
    }
    case BackendName::Kind::kCuda:
      return CreateCuda(parsed.cuda_index, name);
  }
  return absl::InternalError(absl::StrCat("kernel backend \"", AV(name), "\": unhandled kind"));
}

}  // namespace

absl::StatusOr<KernelBackend*> GetBackend(std::string_view name) {
  TANDEM_ASSIGN_OR_RETURN(const BackendName parsed, ParseBackendName(name));
  if (parsed.kind == BackendName::Kind::kCpuRef) return &SharedCpuRef();
  Registry& r = GetRegistry();
  absl::MutexLock lock(&r.mu);
  if (parsed.kind == BackendName::Kind::kCpu) {
    if (r.cpu == nullptr) {
      TANDEM_ASSIGN_OR_RETURN(r.cpu, CreateBackend(parsed, name, r.cpu_threads));
    }
    return r.cpu.get();
  }
  auto it = r.cuda.find(parsed.cuda_index);
  if (it == r.cuda.end()) {
    it = r.cuda.emplace(parsed.cuda_index, CreateBackend(parsed, name, 0)).first;
  }
  if (!it->second.ok()) return it->second.status();
  return it->second->get();
}

void SetCpuThreads(int threads) {
  Registry& r = GetRegistry();
  absl::MutexLock lock(&r.mu);
  r.cpu_threads = threads < 0 ? 0 : threads;
}

absl::Status BackendOptions::Validate() const {
  if (cpu_threads < 0) {
    return absl::InvalidArgumentError(absl::StrCat("BackendOptions: cpu_threads=", cpu_threads,
                                                   " < 0 (0 means all hardware threads)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<KernelBackend>> NewBackend(std::string_view name,
                                                          const BackendOptions& options) {
  TANDEM_RETURN_IF_ERROR(options.Validate());
  TANDEM_ASSIGN_OR_RETURN(const BackendName parsed, ParseBackendName(name));
  return CreateBackend(parsed, name, options.cpu_threads);
}

absl::StatusOr<DeviceBuffer> DeviceBuffer::Create(KernelBackend& backend, int64_t bytes) {
  TANDEM_ASSIGN_OR_RETURN(void* data, backend.Allocate(bytes));
  DeviceBuffer buf;
  buf.backend_ = &backend;
  buf.data_ = data;
  buf.bytes_ = bytes;
  return buf;
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : backend_(std::exchange(other.backend_, nullptr)),
      data_(std::exchange(other.data_, nullptr)),
      bytes_(std::exchange(other.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) backend_->Free(data_);
    backend_ = std::exchange(other.backend_, nullptr);
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

DeviceBuffer::~DeviceBuffer() {
  if (data_ != nullptr) backend_->Free(data_);
}

TensorView DeviceBuffer::View(DType dtype, std::initializer_list<int64_t> shape) const {
  TensorView t = TensorView::Contiguous(data_, dtype, shape,
                                        backend_ != nullptr ? backend_->device() : Device{});
  TANDEM_CHECK(t.nbytes() <= bytes_) << "DeviceBuffer::View " << t.DebugString() << " needs "
                                     << t.nbytes() << " bytes, buffer has " << bytes_;
  return t;
}

}  // namespace tandem::kernels
