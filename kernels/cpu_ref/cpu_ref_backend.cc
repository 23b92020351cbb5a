// The "cpu_ref" backend: dispatches each OpCall to its naive implementation in this folder through
// one table, kRefOps. Host memory from aligned_alloc(64); copies are memcpy. Stateless apart from
// its name, so any number of threads may use it (backend.h promises this, and the registry shares
// one instance as every "cpu" backend's fallback).
#include <cstdlib>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "kernels/cpu_ref/ref_ops.h"
#include "kernels/internal/backend_factories.h"
#include "kernels/internal/op_table.h"

namespace tandem::kernels {
namespace {

// An op of this folder: Check<Op>() (what Supports() asks) and Run<Op>() (ref_ops.h).
template <typename P>
struct RefOp {
  using Params = P;
  absl::Status (*check)(const P&);
  absl::Status (*run)(const P&);
  absl::Status Check(const P& p) const { return check(p); }
  absl::Status Run(const P& p) const { return run(p); }
};

// Every op of op.h, one line each; Supports() and Run() both read it.
constexpr OpTable kRefOps{
    RefOp{cpu_ref::CheckMatMul, cpu_ref::RunMatMul},
    RefOp{cpu_ref::CheckEmbedding, cpu_ref::RunEmbedding},
    RefOp{cpu_ref::CheckRmsNorm, cpu_ref::RunRmsNorm},
    RefOp{cpu_ref::CheckRope, cpu_ref::RunRope},
    RefOp{cpu_ref::CheckSwiGlu, cpu_ref::RunSwiGlu},
    RefOp{cpu_ref::CheckSoftmax, cpu_ref::RunSoftmax},
    RefOp{cpu_ref::CheckKvWrite, cpu_ref::RunKvWrite},
    RefOp{cpu_ref::CheckKvGather, cpu_ref::RunKvGather},
    RefOp{cpu_ref::CheckPagedAttention, cpu_ref::RunPagedAttention},
    RefOp{cpu_ref::CheckSample, cpu_ref::RunSample},
    RefOp{cpu_ref::CheckAttentionPrefill, cpu_ref::RunAttentionPrefill},
    RefOp{cpu_ref::CheckRowDistance, cpu_ref::RunRowDistance},
};
static_assert(ListsEveryOp<decltype(kRefOps)>::value,
              "cpu_ref is the spec: it runs every op of OpCall (kernels/op.h)");

class CpuRefBackend final : public KernelBackend {
 public:
  std::string_view Name() const override { return "cpu_ref"; }
  Device device() const override { return Device{DeviceKind::kCpu, 0}; }

  bool Supports(const OpCall& call) const override { return TableSupports(kRefOps, call); }
  absl::Status Run(const OpCall& call) override { return TableRun(kRefOps, Name(), call); }

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
