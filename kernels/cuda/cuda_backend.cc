// kernels/cuda/cuda_backend.cc
#include "kernels/cuda/cuda_backend.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/op_args.h"
#include "kernels/cuda/op_prepare.h"
#include "kernels/internal/backend_factories.h"
#include "kernels/internal/op_table.h"

namespace tandem::kernels {
namespace cuda {
namespace {

// What an entry's Run needs from the backend.
struct RunContext {
  CudaBackend& backend;
  int device;
  cudaStream_t stream;
};

// An op validated by its Prepare* function (op_prepare.h, also what Supports() asks) and enqueued
// by its launcher (op_args.h).
template <typename P, typename Args>
struct LaunchedOp {
  using Params = P;
  absl::StatusOr<Args> (*prepare)(const P&, int device);
  cudaError_t (*launch)(const Args&, cudaStream_t);

  absl::Status Check(int device, const P& p) const { return prepare(p, device).status(); }
  absl::Status Run(const RunContext& ctx, const P& p) const {
    TANDEM_ASSIGN_OR_RETURN(const Args args, prepare(p, ctx.device));
    TANDEM_RETURN_IF_CUDA_ERROR(launch(args, ctx.stream));
    return absl::OkStatus();
  }
};

// An op that needs host work around its kernels (scratch, copies back): validated by its Prepare*
// function and run by a CudaBackend member, which prepares again.
template <typename P, typename Args>
struct HostedOp {
  using Params = P;
  absl::StatusOr<Args> (*prepare)(const P&, int device);
  absl::Status (CudaBackend::*run)(const P&);

  absl::Status Check(int device, const P& p) const { return prepare(p, device).status(); }
  absl::Status Run(const RunContext& ctx, const P& p) const { return (ctx.backend.*run)(p); }
};

int64_t AlignUp(int64_t v, int64_t a) { return (v + a - 1) / a * a; }

}  // namespace

CudaBackend::CudaBackend(int device, cudaStream_t stream)
    : device_(device), name_(absl::StrCat("cuda:", device)), stream_(stream) {}

CudaBackend::~CudaBackend() {
  // Errors are ignored: nothing can be done about them while tearing down.
  (void)cudaSetDevice(device_);
  (void)cudaStreamSynchronize(stream_);
  if (scratch_ != nullptr) (void)cudaFree(scratch_);
  (void)cudaStreamDestroy(stream_);
}

absl::StatusOr<std::unique_ptr<CudaBackend>> CudaBackend::Create(int device) {
  const int count = CudaDeviceCount();
  if (device < 0 || device >= count) {
    return absl::UnavailableError(
        absl::StrCat("cuda:", device, " is not available: ", count, " CUDA device(s) visible"));
  }
  TANDEM_RETURN_IF_CUDA_ERROR(cudaSetDevice(device));
  cudaStream_t stream = nullptr;
  TANDEM_RETURN_IF_CUDA_ERROR(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  return std::unique_ptr<CudaBackend>(new CudaBackend(device, stream));
}

struct CudaBackend::Ops {
  static constexpr OpTable kTable{
      LaunchedOp{PrepareMatMul, LaunchMatMul},
      LaunchedOp{PrepareEmbedding, LaunchEmbedding},
      LaunchedOp{PrepareRmsNorm, LaunchRmsNorm},
      LaunchedOp{PrepareRope, LaunchRope},
      LaunchedOp{PrepareSwiGlu, LaunchSwiGlu},
      LaunchedOp{PrepareSoftmax, LaunchSoftmax},
      LaunchedOp{PrepareRowDistance, LaunchRowDistance},
      LaunchedOp{PrepareKvWrite, LaunchKvWrite},
      LaunchedOp{PrepareKvGather, LaunchKvGather},
      LaunchedOp{PreparePagedAttention, LaunchPagedAttention},
      HostedOp{PrepareSample, &CudaBackend::RunSample},
      HostedOp{PrepareAttentionPrefill, &CudaBackend::RunAttentionPrefill},
  };
};

bool CudaBackend::Supports(const OpCall& call) const {
  return TableSupports(Ops::kTable, call, device_);
}

absl::Status CudaBackend::Run(const OpCall& call) {
  TANDEM_RETURN_IF_CUDA_ERROR(cudaSetDevice(device_));  // the calling thread may be new
  RunContext ctx{*this, device_, stream_};
  return TableRun(Ops::kTable, name_, call, ctx);
}

absl::Status CudaBackend::RunSample(const SampleParams& p) {
  TANDEM_ASSIGN_OR_RETURN(SampleArgs args, PrepareSample(p, device_));
  if (args.n == 0) return absl::OkStatus();
  // The generator advances on the host, once per non-greedy row, exactly as op.h specifies; the
  // kernel receives only the draw.
  std::vector<SampleRowConfig> rows(args.n);
  bool any_sampled = false;
  for (int64_t i = 0; i < args.n; ++i) {
    const SamplingConfig& c = p.configs[i];
    rows[i] = SampleRowConfig{c.temperature, c.top_k, c.top_p, 0.0f};
    if (c.temperature > 0.0f) {
      rows[i].u = NextUniform(p.rng_states[i]);
      any_sampled = true;
    }
  }
  // Scratch layout: [configs | out tokens | probabilities (only when some row samples)].
  const int64_t configs_bytes =
      AlignUp(args.n * static_cast<int64_t>(sizeof(SampleRowConfig)), 256);
  const int64_t tokens_bytes = AlignUp(args.n * static_cast<int64_t>(sizeof(int32_t)), 256);
  const int64_t probs_bytes =
      any_sampled ? args.n * args.vocab * static_cast<int64_t>(sizeof(float)) : 0;
  TANDEM_RETURN_IF_ERROR(EnsureScratch(configs_bytes + tokens_bytes + probs_bytes));
  char* base = static_cast<char*>(scratch_);
  args.configs = reinterpret_cast<const SampleRowConfig*>(base);
  args.out_tokens = reinterpret_cast<int32_t*>(base + configs_bytes);
  args.probs =
      any_sampled ? reinterpret_cast<float*>(base + configs_bytes + tokens_bytes) : nullptr;

  TANDEM_RETURN_IF_CUDA_ERROR(cudaMemcpyAsync(base, rows.data(), args.n * sizeof(SampleRowConfig),
                                              cudaMemcpyHostToDevice, stream_));
  TANDEM_RETURN_IF_CUDA_ERROR(LaunchSample(args, stream_));
  TANDEM_RETURN_IF_CUDA_ERROR(cudaMemcpyAsync(p.out_tokens.data(), args.out_tokens,
                                              args.n * sizeof(int32_t), cudaMemcpyDeviceToHost,
                                              stream_));
  TANDEM_RETURN_IF_CUDA_ERROR(cudaStreamSynchronize(stream_));
  return absl::OkStatus();
}

absl::Status CudaBackend::EnsureScratch(int64_t bytes) {
  if (bytes <= scratch_bytes_) return absl::OkStatus();
  if (scratch_ != nullptr) {
    // Earlier work on the stream may still read the old buffer.
    TANDEM_RETURN_IF_CUDA_ERROR(cudaStreamSynchronize(stream_));
    TANDEM_RETURN_IF_CUDA_ERROR(cudaFree(scratch_));
    scratch_ = nullptr;
    scratch_bytes_ = 0;
  }
  TANDEM_RETURN_IF_CUDA_ERROR(cudaMalloc(&scratch_, static_cast<size_t>(bytes)));
  scratch_bytes_ = bytes;
  return absl::OkStatus();
}

absl::Status CudaBackend::Synchronize() {
  TANDEM_RETURN_IF_CUDA_ERROR(cudaSetDevice(device_));
  TANDEM_RETURN_IF_CUDA_ERROR(cudaStreamSynchronize(stream_));
  return absl::OkStatus();
}

absl::StatusOr<void*> CudaBackend::Allocate(int64_t bytes) {
  if (bytes < 0) return absl::InvalidArgumentError(absl::StrCat("Allocate: bytes ", bytes, " < 0"));
  TANDEM_RETURN_IF_CUDA_ERROR(cudaSetDevice(device_));
  void* ptr = nullptr;
  if (bytes == 0) return ptr;
  TANDEM_RETURN_IF_CUDA_ERROR(cudaMalloc(&ptr, static_cast<size_t>(bytes)));
  return ptr;
}

void CudaBackend::Free(void* ptr) {
  if (ptr == nullptr) return;
  (void)cudaSetDevice(device_);
  (void)cudaFree(ptr);  // synchronises the device, so in-flight kernels finish first
}

absl::Status CudaBackend::CopyToDevice(void* dst, const void* src, int64_t bytes) {
  if (bytes < 0) return absl::InvalidArgumentError(absl::StrCat("CopyToDevice: bytes ", bytes));
  if (bytes == 0) return absl::OkStatus();
  TANDEM_RETURN_IF_CUDA_ERROR(cudaSetDevice(device_));
  // On the backend's stream, so the copy is ordered after kernels already enqueued by Run().
  TANDEM_RETURN_IF_CUDA_ERROR(
      cudaMemcpyAsync(dst, src, static_cast<size_t>(bytes), cudaMemcpyHostToDevice, stream_));
  TANDEM_RETURN_IF_CUDA_ERROR(cudaStreamSynchronize(stream_));
  return absl::OkStatus();
}

absl::Status CudaBackend::CopyToHost(void* dst, const void* src, int64_t bytes) {
  if (bytes < 0) return absl::InvalidArgumentError(absl::StrCat("CopyToHost: bytes ", bytes));
  if (bytes == 0) return absl::OkStatus();
  TANDEM_RETURN_IF_CUDA_ERROR(cudaSetDevice(device_));
  TANDEM_RETURN_IF_CUDA_ERROR(
      cudaMemcpyAsync(dst, src, static_cast<size_t>(bytes), cudaMemcpyDeviceToHost, stream_));
  TANDEM_RETURN_IF_CUDA_ERROR(cudaStreamSynchronize(stream_));
  return absl::OkStatus();
}

}  // namespace cuda

int CudaDeviceCount() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    // No driver, a too-old driver or no device: CUDA reports it as an error; for us it means 0.
    (void)cudaGetLastError();
    return 0;
  }
  return count;
}

absl::StatusOr<std::unique_ptr<KernelBackend>> CreateCudaBackend(int device) {
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<cuda::CudaBackend> backend,
                          cuda::CudaBackend::Create(device));
  return std::unique_ptr<KernelBackend>(std::move(backend));
}

}  // namespace tandem::kernels
