// The "cpu_ref" backend: dispatches each OpCall to its naive implementation in this folder. Host
// memory from aligned_alloc(64); copies are memcpy. Stateless apart from its name, so any number of
// threads may use it, although the registry's contract only promises one at a time.
#include <cstdlib>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "kernels/cpu_ref/ref_ops.h"
#include "kernels/internal/backend_factories.h"

namespace tandem::kernels {
namespace {

template <class... Fs>
struct Overloaded : Fs... {
  using Fs::operator()...;
};
template <class... Fs>
Overloaded(Fs...) -> Overloaded<Fs...>;

class CpuRefBackend final : public KernelBackend {
 public:
  std::string_view Name() const override { return "cpu_ref"; }
  Device device() const override { return Device{DeviceKind::kCpu, 0}; }

  bool Supports(const OpCall& call) const override {
    return std::visit(
               Overloaded{
                   [](const MatMulParams& p) { return cpu_ref::CheckMatMul(p); },
                   [](const EmbeddingParams& p) { return cpu_ref::CheckEmbedding(p); },
                   [](const RmsNormParams& p) { return cpu_ref::CheckRmsNorm(p); },
                   [](const RopeParams& p) { return cpu_ref::CheckRope(p); },
                   [](const SwiGluParams& p) { return cpu_ref::CheckSwiGlu(p); },
                   [](const SoftmaxParams& p) { return cpu_ref::CheckSoftmax(p); },
                   [](const KvWriteParams& p) { return cpu_ref::CheckKvWrite(p); },
                   [](const KvGatherParams& p) { return cpu_ref::CheckKvGather(p); },
                   [](const PagedAttentionParams& p) { return cpu_ref::CheckPagedAttention(p); },
                   [](const SampleParams& p) { return cpu_ref::CheckSample(p); },
                   [](const AttentionPrefillParams& p) {
                     return cpu_ref::CheckAttentionPrefill(p);
                   },
               },
               call)
        .ok();
  }

  absl::Status Run(const OpCall& call) override {
    return std::visit(
        Overloaded{
            [](const MatMulParams& p) { return cpu_ref::RunMatMul(p); },
            [](const EmbeddingParams& p) { return cpu_ref::RunEmbedding(p); },
            [](const RmsNormParams& p) { return cpu_ref::RunRmsNorm(p); },
            [](const RopeParams& p) { return cpu_ref::RunRope(p); },
            [](const SwiGluParams& p) { return cpu_ref::RunSwiGlu(p); },
            [](const SoftmaxParams& p) { return cpu_ref::RunSoftmax(p); },
            [](const KvWriteParams& p) { return cpu_ref::RunKvWrite(p); },
            [](const KvGatherParams& p) { return cpu_ref::RunKvGather(p); },
            [](const PagedAttentionParams& p) { return cpu_ref::RunPagedAttention(p); },
            [](const SampleParams& p) { return cpu_ref::RunSample(p); },
            [](const AttentionPrefillParams& p) { return cpu_ref::RunAttentionPrefill(p); },
        },
        call);
  }

  absl::Status Synchronize() override { return absl::OkStatus(); }

  absl::StatusOr<void*> Allocate(int64_t bytes) override {
    if (bytes < 0) {
      return absl::InvalidArgumentError(absl::StrCat("cpu_ref: Allocate(bytes=", bytes, ")"));
    }
    // aligned_alloc wants a multiple of the alignment, and a zero-byte request still gets a unique
    // pointer so that DeviceBuffer can tell "allocated" from "empty".
    const size_t rounded = (static_cast<size_t>(bytes) + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
    if (p == nullptr) {
      return absl::ResourceExhaustedError(
          absl::StrCat("cpu_ref: aligned_alloc of ", bytes, " bytes failed"));
    }
    return p;
  }

  void Free(void* ptr) override { std::free(ptr); }

  absl::Status CopyToDevice(void* dst, const void* src, int64_t bytes) override {
    return Copy(dst, src, bytes);
  }
  absl::Status CopyToHost(void* dst, const void* src, int64_t bytes) override {
    return Copy(dst, src, bytes);
  }

 private:
  static absl::Status Copy(void* dst, const void* src, int64_t bytes) {
    if (bytes < 0 || (bytes > 0 && (dst == nullptr || src == nullptr))) {
      return absl::InvalidArgumentError(absl::StrCat("cpu_ref: copy of ", bytes, " bytes from ",
                                                     src == nullptr ? "null" : "host", " to ",
                                                     dst == nullptr ? "null" : "host"));
    }
    if (bytes > 0) std::memmove(dst, src, static_cast<size_t>(bytes));
    return absl::OkStatus();
  }
};

}  // namespace

std::unique_ptr<KernelBackend> CreateCpuRefBackend() { return std::make_unique<CpuRefBackend>(); }

}  // namespace tandem::kernels
