// kernels/cpu/cpu_backend.cc
//
// The "cpu" backend: routes each OpCall to its fast implementation (ops.h) when this CPU has the
// SIMD kernels and the call's layout is covered; everything else (embedding, sampling, odd layouts,
// CPUs without AVX2) runs on the fallback backend, cpu_ref.
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>
#include <variant>

#include "absl/strings/str_cat.h"
#include "kernels/backend.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/internal/backend_factories.h"

namespace tandem::kernels {
namespace {

constexpr int64_t kAlignment = 64;

class CpuBackend final : public KernelBackend {
 public:
  CpuBackend(int threads, KernelBackend* fallback) : pool_(threads), fallback_(fallback) {
    ctx_.pool = &pool_;
    ctx_.kernels = cpu::SelectKernels();
  }

  std::string_view Name() const override { return "cpu"; }
  Device device() const override { return Device{}; }
  bool Supports(const OpCall& call) const override { return fallback_->Supports(call); }

  absl::Status Run(const OpCall& call) override {
    if (ctx_.kernels != nullptr) {
      absl::Status s = std::visit([this](const auto& p) { return RunFast(p); }, call);
      if (s.code() != absl::StatusCode::kUnimplemented) return s;
    }
    return fallback_->Run(call);
  }

  absl::Status Synchronize() override { return absl::OkStatus(); }

  absl::StatusOr<void*> Allocate(int64_t bytes) override {
    if (bytes < 0)
      return absl::InvalidArgumentError(absl::StrCat("cpu: Allocate(bytes=", bytes, ")"));
    const int64_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
    void* p =
        std::aligned_alloc(kAlignment, static_cast<size_t>(rounded > 0 ? rounded : kAlignment));
    if (p == nullptr) {
      return absl::ResourceExhaustedError(absl::StrCat("cpu: cannot allocate ", bytes, " bytes"));
    }
    return p;
  }
  void Free(void* ptr) override { std::free(ptr); }
  absl::Status CopyToDevice(void* dst, const void* src, int64_t bytes) override {
    if (bytes > 0) std::memcpy(dst, src, static_cast<size_t>(bytes));
    return absl::OkStatus();
  }
  absl::Status CopyToHost(void* dst, const void* src, int64_t bytes) override {
    if (bytes > 0) std::memcpy(dst, src, static_cast<size_t>(bytes));
    return absl::OkStatus();
  }

 private:
  static absl::Status Fallback() { return absl::UnimplementedError("cpu: no fast path"); }
  absl::Status RunFast(const MatMulParams& p) { return cpu::RunMatMul(ctx_, p); }
  absl::Status RunFast(const PagedAttentionParams& p) { return cpu::RunPagedAttention(ctx_, p); }
  absl::Status RunFast(const RmsNormParams& p) { return cpu::RunRmsNorm(ctx_, p); }
  absl::Status RunFast(const RopeParams& p) { return cpu::RunRope(ctx_, p); }
  absl::Status RunFast(const SwiGluParams& p) { return cpu::RunSwiGlu(ctx_, p); }
  absl::Status RunFast(const SoftmaxParams& p) { return cpu::RunSoftmax(ctx_, p); }
  absl::Status RunFast(const KvWriteParams& p) { return cpu::RunKvWrite(ctx_, p); }
  absl::Status RunFast(const KvGatherParams& p) { return cpu::RunKvGather(ctx_, p); }
  absl::Status RunFast(const AttentionPrefillParams& p) {
    return cpu::RunAttentionPrefill(ctx_, p);
  }
  absl::Status RunFast(const EmbeddingParams&) { return Fallback(); }
  absl::Status RunFast(const SampleParams&) { return Fallback(); }

  cpu::ThreadPool pool_;
  KernelBackend* fallback_;
  cpu::CpuContext ctx_;
};

}  // namespace

std::unique_ptr<KernelBackend> CreateCpuBackend(int threads, KernelBackend* fallback) {
  return std::make_unique<CpuBackend>(threads, fallback);
}

}  // namespace tandem::kernels
