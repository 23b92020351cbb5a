// kernels/cpu/cpu_backend.cc
//
// The "cpu" backend: routes each OpCall to its fast implementation (ops.h, listed in kFastOps) when
// this CPU has the SIMD kernels and the call's layout is covered; everything else (ops without a
// fast path such as embedding and sampling, odd layouts, CPUs without AVX2) runs on the fallback
// backend, cpu_ref.
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
#include "kernels/internal/op_table.h"

namespace tandem::kernels {
namespace {

constexpr int64_t kAlignment = 64;

// An op with a fast path in this folder (ops.h). It returns Unimplemented for a layout it does not
// cover, and the call then runs on cpu_ref.
template <typename P>
struct FastOp {
  using Params = P;
  absl::Status (*run)(cpu::CpuContext&, const P&);
  absl::Status Run(cpu::CpuContext& ctx, const P& p) const { return run(ctx, p); }
};

// The ops with a fast path, one line each; every other op runs on cpu_ref.
constexpr OpTable kFastOps{
    FastOp{cpu::RunMatMul},
    FastOp{cpu::RunPagedAttention},
    FastOp{cpu::RunRmsNorm},
    FastOp{cpu::RunRope},
    FastOp{cpu::RunSwiGlu},
    FastOp{cpu::RunSoftmax},
    FastOp{cpu::RunKvWrite},
    FastOp{cpu::RunKvGather},
    FastOp{cpu::RunAttentionPrefill},
    FastOp{cpu::RunRowDistance},
};

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
  template <typename P>
  absl::Status RunFast(const P& p) {
    if constexpr (decltype(kFastOps)::Has<P>()) {
      return kFastOps.Get<P>().Run(ctx_, p);
    } else {
      return absl::UnimplementedError("cpu: no fast path");
    }
  }

  cpu::ThreadPool pool_;
  KernelBackend* fallback_;
  cpu::CpuContext ctx_;
};

}  // namespace

std::unique_ptr<KernelBackend> CreateCpuBackend(int threads, KernelBackend* fallback) {
  return std::make_unique<CpuBackend>(threads, fallback);
}

}  // namespace tandem::kernels
