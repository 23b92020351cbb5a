// bench/gpu_prefill_attention_bench.cu
//
// Prefill attention on the GPU at Llama-3.1-8B's attention shapes (32 query heads, 8 KV heads,
// head_dim 128, bf16, causal, batch 1): our dense bf16 kernel, SALE and PowerAttention on the same
// synthetic tensors (kernels/cuda/flash_prefill.h), 1 warm-up then the median of --reps runs timed
// with cudaEvents. Prints one BENCH line per (tokens, method):
//   ms, TFLOP/s counted as dense causal FLOPs = 4 * heads * head_dim * n^2 / 2 (the convention of
//   platform.md's SDPA table, so sparse rows read as "effective" TFLOP/s), speedup over our dense,
//   density (kept / causal blocks at the method's block size), NMSE of the output against our
//   dense, and for SALE the estimation overhead (quantize + mandatory LSE pass + estimate + lists)
//   as a fraction of our dense time.
// Synthetic inputs: q ~ U(-1,1), k ~ U(-1,1), v ~ U(-1,1), plus structure real attention has and
// uniform noise lacks: an attention sink (first 32 keys share a direction with every query) and
// "heavy" keys, one per --heavy_every tokens on average, that every query attends strongly. The
// density SALE finds depends entirely on this; it is printed, and the flags change it. On these
// tensors nmse_vs_dense is a sanity figure, not an accuracy one: the non-heavy keys get nearly
// uniform weight, each far below tau yet together most of the mass, which is exactly what SALE's
// and PowerAttention's selections drop. The accuracy of both on real attention is measured on
// SmolLM2 (tests/model/sparse_prefill_test). Measurements and kernel history: gpu_prefill_notes.md.
//
//   gpu_prefill_attention_bench [--tokens=16384,32768,65536,131072] [--reps=5] [--tau=0.008]
//                               [--heavy_every=256]
// Needs only the CUDA runtime (no Abseil), so the binary runs on the GPU machine as built here.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/cuda/flash_prefill.h"

namespace tk = tandem::kernels::cuda;

namespace {

#define CHECK_CUDA(expr)                                                                    \
  do {                                                                                      \
    const cudaError_t err_ = (expr);                                                        \
    if (err_ != cudaSuccess) {                                                              \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #expr,                    \
                   cudaGetErrorString(err_));                                               \
      std::exit(1);                                                                         \
    }                                                                                       \
  } while (0)

constexpr int kHeads = 32, kKvHeads = 8, kD = 128;

__device__ float Uniform(uint64_t x) {  // splitmix64 -> [-1, 1)
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  x ^= x >> 31;
  return static_cast<float>(x >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

// kind 0: q, 1: k, 2: v. Dim 0 carries the sink, dim 1 the heavy keys.
__global__ void FillKernel(__nv_bfloat16* x, int64_t n, int heads, int kind, uint64_t seed,
                           int heavy_every) {
  const int64_t total = n * heads * kD;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = i / (heads * kD);
    const int d = static_cast<int>(i % kD);
    float v = Uniform(seed * 0x100000001B3ull + static_cast<uint64_t>(i));
    if (kind == 0 && d == 0) v += 5.0f;
    if (kind == 0 && d == 1) v += 4.0f;
    if (kind == 1 && d == 0 && t < 32) v += 10.0f;
    if (kind == 1 && d == 1 && heavy_every > 0) {
      const float u = Uniform(seed * 31 + static_cast<uint64_t>(t) * 7919u);
      if (u < -1.0f + 2.0f / heavy_every) v += 10.0f;
    }
    x[i] = __float2bfloat16(v);
  }
}

__global__ void NmseKernel(const __nv_bfloat16* a, const __nv_bfloat16* b, int64_t total,
                           double* acc) {
  double num = 0.0, den = 0.0;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const double x = __bfloat162float(a[i]), y = __bfloat162float(b[i]);
    num += (x - y) * (x - y);
    den += y * y;
  }
  for (int o = 16; o > 0; o >>= 1) {
    num += __shfl_xor_sync(0xFFFFFFFFu, num, o);
    den += __shfl_xor_sync(0xFFFFFFFFu, den, o);
  }
  if ((threadIdx.x & 31) == 0) {
    atomicAdd(acc, num);
    atomicAdd(acc + 1, den);
  }
}

struct Options {
  std::vector<int64_t> tokens = {16384, 32768, 65536, 131072};
  int reps = 5;
  float tau = 0.008f;
  int heavy_every = 256;
};

Options Parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* name) -> const char* {
      const size_t len = std::strlen(name);
      return a.compare(0, len, name) == 0 ? a.c_str() + len : nullptr;
    };
    if (const char* v = value("--tokens=")) {
      o.tokens.clear();
      for (const char* p = v; *p != '\0';) {
        o.tokens.push_back(std::strtoll(p, const_cast<char**>(&p), 10));
        if (*p == ',') ++p;
      }
    } else if (const char* r = value("--reps=")) {
      o.reps = std::max(1, std::atoi(r));
    } else if (const char* t = value("--tau=")) {
      o.tau = std::strtof(t, nullptr);
    } else if (const char* h = value("--heavy_every=")) {
      o.heavy_every = std::atoi(h);
    } else {
      std::fprintf(stderr, "unknown flag %s\n", argv[i]);
      std::exit(2);
    }
  }
  return o;
}

// Median of `reps` timings of fn() (after one warm-up), each between two events; `split`, when
// set, is an event fn() records mid-way, and *split_ms gets the median of start..split.
template <typename Fn>
double TimeMedian(int reps, cudaStream_t s, Fn fn, cudaEvent_t split = nullptr,
                  double* split_ms = nullptr) {
  cudaEvent_t start, stop;
  CHECK_CUDA(cudaEventCreate(&start));
  CHECK_CUDA(cudaEventCreate(&stop));
  fn();
  CHECK_CUDA(cudaStreamSynchronize(s));
  std::vector<double> all, parts;
  for (int r = 0; r < reps; ++r) {
    CHECK_CUDA(cudaEventRecord(start, s));
    fn();
    CHECK_CUDA(cudaEventRecord(stop, s));
    CHECK_CUDA(cudaEventSynchronize(stop));
    float ms = 0.0f;
    CHECK_CUDA(cudaEventElapsedTime(&ms, start, stop));
    all.push_back(ms);
    if (split != nullptr) {
      CHECK_CUDA(cudaEventElapsedTime(&ms, start, split));
      parts.push_back(ms);
    }
  }
  CHECK_CUDA(cudaEventDestroy(start));
  CHECK_CUDA(cudaEventDestroy(stop));
  std::sort(all.begin(), all.end());
  if (split_ms != nullptr) {
    std::sort(parts.begin(), parts.end());
    *split_ms = parts[parts.size() / 2];
  }
  return all[all.size() / 2];
}

double Nmse(const void* a, const void* b, int64_t total, double* acc, cudaStream_t s) {
  CHECK_CUDA(cudaMemsetAsync(acc, 0, 2 * sizeof(double), s));
  NmseKernel<<<1024, 256, 0, s>>>(static_cast<const __nv_bfloat16*>(a),
                                   static_cast<const __nv_bfloat16*>(b), total, acc);
  CHECK_CUDA(cudaGetLastError());
  double h[2];
  CHECK_CUDA(cudaMemcpyAsync(h, acc, sizeof(h), cudaMemcpyDeviceToHost, s));
  CHECK_CUDA(cudaStreamSynchronize(s));
  return h[1] > 0.0 ? h[0] / h[1] : h[0];
}

// Causal blocks of an n-token prefill at q_block x k_block, per head.
int64_t CausalBlocks(int64_t n, int64_t qbs, int64_t kbs) {
  int64_t total = 0;
  for (int64_t qb = 0; qb * qbs < n; ++qb) total += std::min(qb * qbs + qbs - 1, n - 1) / kbs + 1;
  return total;
}

double MaskDensity(const tk::FlashBlockMask& m, int64_t n, int heads_counted,
                   unsigned long long* dcount, cudaStream_t s) {
  CHECK_CUDA(tk::LaunchCountMask(m, dcount, s));
  unsigned long long kept = 0;
  CHECK_CUDA(cudaMemcpyAsync(&kept, dcount, sizeof(kept), cudaMemcpyDeviceToHost, s));
  CHECK_CUDA(cudaStreamSynchronize(s));
  return static_cast<double>(kept) /
         static_cast<double>(CausalBlocks(n, m.q_block, m.k_block) * heads_counted);
}

void RunSize(int64_t n, const Options& o, cudaStream_t s) {
  const tk::FlashPrefillShape shape{n, kHeads, kKvHeads, 1.0f / std::sqrt(static_cast<float>(kD))};
  const int64_t q_elems = n * kHeads * kD, kv_elems = n * kKvHeads * kD;
  void *q, *k, *v, *out_dense, *out_sparse, *sale_ws, *sale_mask, *power_mask, *entries, *counts,
      *scratch;
  CHECK_CUDA(cudaMalloc(&q, q_elems * 2));
  CHECK_CUDA(cudaMalloc(&k, kv_elems * 2));
  CHECK_CUDA(cudaMalloc(&v, kv_elems * 2));
  CHECK_CUDA(cudaMalloc(&out_dense, q_elems * 2));
  CHECK_CUDA(cudaMalloc(&out_sparse, q_elems * 2));
  CHECK_CUDA(cudaMalloc(&sale_ws, tk::SaleWorkspaceBytes(shape)));
  tandem::kernels::SparseConfig sale_cfg;  // defaults: blocks 64 x 32, window 128, sink 32
  sale_cfg.method = tandem::kernels::SparseMethod::kSale;
  sale_cfg.sale_threshold = o.tau;
  CHECK_CUDA(cudaMalloc(&sale_mask, tk::FlashMaskBytes(n, kHeads, 64, 32)));
  CHECK_CUDA(cudaMalloc(&power_mask, tk::FlashMaskBytes(n, 1, 64, 64)));
  CHECK_CUDA(cudaMalloc(&entries, tk::FlashTileEntriesBytes(n, kHeads)));
  CHECK_CUDA(cudaMalloc(&counts, tk::FlashTileCountsBytes(n, kHeads)));
  CHECK_CUDA(cudaMalloc(&scratch, 64));
  FillKernel<<<4096, 256, 0, s>>>(static_cast<__nv_bfloat16*>(q), n, kHeads, 0, 1, o.heavy_every);
  FillKernel<<<4096, 256, 0, s>>>(static_cast<__nv_bfloat16*>(k), n, kKvHeads, 1, 2, o.heavy_every);
  FillKernel<<<4096, 256, 0, s>>>(static_cast<__nv_bfloat16*>(v), n, kKvHeads, 2, 3, o.heavy_every);
  CHECK_CUDA(cudaGetLastError());
  const tk::FlashPrefillTensors dense_t{q, k, v, out_dense};
  const tk::FlashPrefillTensors sparse_t{q, k, v, out_sparse};
  const tk::SaleWorkspace ws = tk::SaleWorkspaceCarve(shape, sale_ws);
  tk::FlashTileLists lists;
  lists.entries = static_cast<tk::FlashTileEntry*>(entries);
  lists.counts = static_cast<int32_t*>(counts);
  tk::FlashBlockMask smask;
  smask.keep = static_cast<uint8_t*>(sale_mask);
  tk::FlashBlockMask pmask;
  pmask.keep = static_cast<uint8_t*>(power_mask);
  cudaEvent_t split;
  CHECK_CUDA(cudaEventCreate(&split));

  const double flops = 4.0 * kHeads * kD * static_cast<double>(n) * static_cast<double>(n) / 2.0;
  const double dense_ms =
      TimeMedian(o.reps, s, [&] { CHECK_CUDA(tk::LaunchFlashPrefillDense(shape, dense_t, s)); });
  std::printf("BENCH gpu_prefill tokens=%lld method=dense ms=%.3f tflops=%.1f speedup=1.00 "
              "density=1.000 nmse_vs_dense=0\n",
              static_cast<long long>(n), dense_ms, flops / dense_ms * 1e-9);
  std::fflush(stdout);

  auto sale = [&] {
    CHECK_CUDA(tk::LaunchSaleQuantize(shape, sparse_t, ws, s));
    CHECK_CUDA(tk::LaunchSaleMandatoryMask(shape, sale_cfg, &smask, s));
    CHECK_CUDA(tk::LaunchBuildTileLists(shape, smask, &lists, s));
    CHECK_CUDA(tk::LaunchFlashPrefillLse(shape, sparse_t, lists, ws.lse2, s));
    CHECK_CUDA(tk::LaunchSaleEstimate(shape, sale_cfg, ws, smask, s));
    CHECK_CUDA(tk::LaunchBuildTileLists(shape, smask, &lists, s));
    CHECK_CUDA(cudaEventRecord(split, s));
    CHECK_CUDA(tk::LaunchFlashPrefillSparse(shape, sparse_t, lists, s));
  };
  double sale_est_ms = 0.0;
  const double sale_ms = TimeMedian(o.reps, s, sale, split, &sale_est_ms);
  const double sale_density =
      MaskDensity(smask, n, kHeads, static_cast<unsigned long long*>(scratch), s);
  const double sale_nmse = Nmse(out_sparse, out_dense, q_elems, static_cast<double*>(scratch), s);
  std::printf("BENCH gpu_prefill tokens=%lld method=sale tau=%g ms=%.3f tflops=%.1f "
              "speedup=%.2f density=%.4f nmse_vs_dense=%.3g estimate_ms=%.3f "
              "estimate_overhead=%.3f\n",
              static_cast<long long>(n), o.tau, sale_ms, flops / sale_ms * 1e-9,
              dense_ms / sale_ms, sale_density, sale_nmse, sale_est_ms, sale_est_ms / dense_ms);
  std::fflush(stdout);
  // Where the estimate's time goes: each step alone, in pipeline order so that each finds the
  // state it expects (median of --reps after a warm-up, like the totals).
  const double quant_ms =
      TimeMedian(o.reps, s, [&] { CHECK_CUDA(tk::LaunchSaleQuantize(shape, sparse_t, ws, s)); });
  const double mandatory_ms = TimeMedian(
      o.reps, s, [&] { CHECK_CUDA(tk::LaunchSaleMandatoryMask(shape, sale_cfg, &smask, s)); });
  const double lists_ms = TimeMedian(
      o.reps, s, [&] { CHECK_CUDA(tk::LaunchBuildTileLists(shape, smask, &lists, s)); });
  const double lse_ms = TimeMedian(o.reps, s, [&] {
    CHECK_CUDA(tk::LaunchFlashPrefillLse(shape, sparse_t, lists, ws.lse2, s));
  });
  const double estimate_kernel_ms = TimeMedian(o.reps, s, [&] {
    CHECK_CUDA(tk::LaunchSaleEstimate(shape, sale_cfg, ws, smask, s));
  });
  std::printf("BENCH gpu_prefill_sale_steps tokens=%lld quantize_ms=%.3f mandatory_mask_ms=%.3f "
              "tile_lists_ms=%.3f mandatory_lse_ms=%.3f estimate_kernel_ms=%.3f\n",
              static_cast<long long>(n), quant_ms, mandatory_ms, lists_ms, lse_ms,
              estimate_kernel_ms);
  std::fflush(stdout);

  tandem::kernels::SparseConfig power_cfg;  // block 64, window 1, sink 1
  power_cfg.method = tandem::kernels::SparseMethod::kPowerAttention;
  auto power = [&] {
    CHECK_CUDA(tk::LaunchPowerMask(shape, power_cfg, &pmask, s));
    CHECK_CUDA(tk::LaunchBuildTileLists(shape, pmask, &lists, s));
    CHECK_CUDA(tk::LaunchFlashPrefillSparse(shape, sparse_t, lists, s));
  };
  const double power_ms = TimeMedian(o.reps, s, power);
  const double power_density =
      MaskDensity(pmask, n, 1, static_cast<unsigned long long*>(scratch), s);
  const double power_nmse = Nmse(out_sparse, out_dense, q_elems, static_cast<double*>(scratch), s);
  std::printf("BENCH gpu_prefill tokens=%lld method=power ms=%.3f tflops=%.1f speedup=%.2f "
              "density=%.4f nmse_vs_dense=%.3g\n",
              static_cast<long long>(n), power_ms, flops / power_ms * 1e-9, dense_ms / power_ms,
              power_density, power_nmse);
  std::fflush(stdout);

  CHECK_CUDA(cudaEventDestroy(split));
  for (void* p : {q, k, v, out_dense, out_sparse, sale_ws, sale_mask, power_mask, entries, counts,
                  scratch}) {
    CHECK_CUDA(cudaFree(p));
  }
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = Parse(argc, argv);
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::printf("SKIP gpu_prefill_attention_bench: no CUDA device\n");
    return 0;
  }
  cudaDeviceProp prop{};
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  std::printf("device %s sm_%d%d, %d SMs; heads %d/%d, head_dim %d, bf16, causal; "
              "FLOPs = 4*heads*head_dim*n^2/2; median of %d\n",
              prop.name, prop.major, prop.minor, prop.multiProcessorCount, kHeads, kKvHeads, kD,
              o.reps);
  cudaStream_t s;
  CHECK_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  for (int64_t n : o.tokens) RunSize(n, o, s);
  CHECK_CUDA(cudaStreamDestroy(s));
  return 0;
}
