// The backend registry (process-wide singletons, created on first use under one mutex) and
// DeviceBuffer. Backends live until process exit: they are never destroyed, so pointers handed out
// by GetBackend() stay valid during static destruction of other objects.
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

struct Registry {
  absl::Mutex mu;
  int cpu_threads ABSL_GUARDED_BY(mu) = 0;
  std::unique_ptr<KernelBackend> cpu_ref ABSL_GUARDED_BY(mu);
  std::unique_ptr<KernelBackend> cpu ABSL_GUARDED_BY(mu);
  // CUDA device index -> backend, or the reason it cannot be created (kept so that a missing
  // device is probed once, not on every call).
  std::map<int, absl::StatusOr<std::unique_ptr<KernelBackend>>> cuda ABSL_GUARDED_BY(mu);
};

Registry& GetRegistry() {
  static Registry* registry = new Registry();  // never destroyed, see above
  return *registry;
}

KernelBackend* CpuRefLocked(Registry& r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(r.mu) {
  if (r.cpu_ref == nullptr) r.cpu_ref = CreateCpuRefBackend();
  return r.cpu_ref.get();
}

absl::Status UnknownBackend(std::string_view name) {
  return absl::NotFoundError(
      absl::StrCat("unknown kernel backend \"", AV(name), "\"; known: cpu_ref, cpu, cuda, cuda:N"));
}

// "cuda" -> 0, "cuda:N" -> N; nullopt-like -1 for anything else that starts with "cuda".
int ParseCudaIndex(std::string_view name) {
  if (name == "cuda") return 0;
  std::string_view digits = name.substr(5);  // after "cuda:"
  if (name.substr(0, 5) != "cuda:" || digits.empty()) return -1;
  int index = -1;
  const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
  if (ec != std::errc() || ptr != digits.data() + digits.size() || index < 0) return -1;
  return index;
}

absl::StatusOr<KernelBackend*> CudaLocked(Registry& r, int index, std::string_view name)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(r.mu) {
#ifdef TANDEM_HAVE_CUDA
  auto it = r.cuda.find(index);
  if (it == r.cuda.end()) {
    absl::StatusOr<std::unique_ptr<KernelBackend>> created;
    const int count = CudaDeviceCount();
    if (count == 0) {
      created = absl::UnavailableError(absl::StrCat(
          "no CUDA device: the driver reports 0 usable devices for \"", AV(name), "\""));
    } else if (index >= count) {
      created = absl::UnavailableError(absl::StrCat("no CUDA device: \"", AV(name), "\" but only ",
                                                    count, " device(s) present"));
    } else {
      created = CreateCudaBackend(index);
    }
    it = r.cuda.emplace(index, std::move(created)).first;
  }
  if (!it->second.ok()) return it->second.status();
  return it->second->get();
#else
  (void)r;
  (void)index;
  return absl::UnavailableError(
      absl::StrCat("kernel backend \"", AV(name), "\": built without CUDA"));
#endif
}

}  // namespace

absl::StatusOr<KernelBackend*> GetBackend(std::string_view name) {
  Registry& r = GetRegistry();
  absl::MutexLock lock(&r.mu);
  if (name == "cpu_ref") return CpuRefLocked(r);
  if (name == "cpu") {
    if (r.cpu == nullptr) {
      int threads = r.cpu_threads;
      if (threads <= 0) threads = static_cast<int>(std::thread::hardware_concurrency());
      if (threads <= 0) threads = 1;
      r.cpu = CreateCpuBackend(threads, CpuRefLocked(r));
    }
    return r.cpu.get();
  }
  if (name.substr(0, 4) == "cuda") {
    const int index = ParseCudaIndex(name);
    if (index < 0) return UnknownBackend(name);
    return CudaLocked(r, index, name);
  }
  return UnknownBackend(name);
}

void SetCpuThreads(int threads) {
  Registry& r = GetRegistry();
  absl::MutexLock lock(&r.mu);
  r.cpu_threads = threads < 0 ? 0 : threads;
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
