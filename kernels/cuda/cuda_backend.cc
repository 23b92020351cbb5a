// kernels/cuda/cuda_backend.cc
#include "kernels/cuda/cuda_backend.h"

#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/op_args.h"
#include "kernels/cuda/op_prepare.h"
#include "kernels/internal/backend_factories.h"

namespace tandem::kernels {
namespace cuda {
namespace {

template <class... Fs>
struct Overloaded : Fs... {
  using Fs::operator()...;
};
template <class... Fs>
Overloaded(Fs...) -> Overloaded<Fs...>;

// Validates, then launches: the one path shared by every op except Sample.
template <typename Args, typename Params>
absl::Status PrepareAndLaunch(absl::StatusOr<Args> (*prepare)(const Params&, int),
                              cudaError_t (*launch)(const Args&, cudaStream_t), const Params& p,
                              int device, cudaStream_t stream) {
  TANDEM_ASSIGN_OR_RETURN(const Args args, prepare(p, device));
  TANDEM_RETURN_IF_CUDA_ERROR(launch(args, stream));
  return absl::OkStatus();
}

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

bool CudaBackend::Supports(const OpCall& call) const {
  return std::visit(
      Overloaded{
          [&](const MatMulParams& p) { return PrepareMatMul(p, device_).ok(); },
          [&](const EmbeddingParams& p) { return PrepareEmbedding(p, device_).ok(); },
          [&](const RmsNormParams& p) { return PrepareRmsNorm(p, device_).ok(); },
          [&](const RopeParams& p) { return PrepareRope(p, device_).ok(); },
          [&](const SwiGluParams& p) { return PrepareSwiGlu(p, device_).ok(); },
          [&](const SoftmaxParams& p) { return PrepareSoftmax(p, device_).ok(); },
          [&](const KvWriteParams& p) { return PrepareKvWrite(p, device_).ok(); },
          [&](const KvGatherParams& p) { return PrepareKvGather(p, device_).ok(); },
          [&](const PagedAttentionParams& p) { return PreparePagedAttention(p, device_).ok(); },
          [&](const SampleParams& p) { return PrepareSample(p, device_).ok(); },
          [&](const AttentionPrefillParams& p) {
            return PrepareAttentionPrefill(p, device_).ok();
          },
      },
      call);
}

absl::Status CudaBackend::Run(const OpCall& call) {
  TANDEM_RETURN_IF_CUDA_ERROR(cudaSetDevice(device_));  // the calling thread may be new
  const int d = device_;
  cudaStream_t s = stream_;
  return std::visit(
      Overloaded{
          [&](const MatMulParams& p) {
            return PrepareAndLaunch(PrepareMatMul, LaunchMatMul, p, d, s);
          },
          [&](const EmbeddingParams& p) {
            return PrepareAndLaunch(PrepareEmbedding, LaunchEmbedding, p, d, s);
          },
          [&](const RmsNormParams& p) {
            return PrepareAndLaunch(PrepareRmsNorm, LaunchRmsNorm, p, d, s);
          },
          [&](const RopeParams& p) { return PrepareAndLaunch(PrepareRope, LaunchRope, p, d, s); },
          [&](const SwiGluParams& p) {
            return PrepareAndLaunch(PrepareSwiGlu, LaunchSwiGlu, p, d, s);
          },
          [&](const SoftmaxParams& p) {
            return PrepareAndLaunch(PrepareSoftmax, LaunchSoftmax, p, d, s);
          },
          [&](const KvWriteParams& p) {
            return PrepareAndLaunch(PrepareKvWrite, LaunchKvWrite, p, d, s);
          },
          [&](const KvGatherParams& p) {
            return PrepareAndLaunch(PrepareKvGather, LaunchKvGather, p, d, s);
          },
          [&](const PagedAttentionParams& p) {
            return PrepareAndLaunch(PreparePagedAttention, LaunchPagedAttention, p, d, s);
          },
          [&](const SampleParams& p) { return RunSample(p); },
          [&](const AttentionPrefillParams& p) { return RunAttentionPrefill(p); },
      },
      call);
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
