// decode_bench: Tandem's CPU prefill and decode speed on the real model, against the memory-bandwidth
// roofline measured in the same run. bench/generate_bench.py adds llama.cpp as the second baseline.
//
//   build/bench/decode_bench [--model PATH] [--threads 2] [--decode_tokens 128] [--repeats 3]
//
// Prints `BENCH <name> <config> candidate=<v> baseline=<v> ratio=<v>` lines:
//   decode      candidate = tokens/s, baseline = roofline tokens/s (bandwidth / bytes per token)
//   prefill_N   candidate = tokens/s for an N-token prompt, baseline = roofline of compute unused
//   membw       candidate = GB/s of a multi-threaded read, baseline = single-thread memcpy GB/s
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <numeric>
#include <thread>
#include <vector>

#include "common/flags.h"
#include "common/model_format/gguf.h"
#include "kernels/backend.h"
#include "kernels/model/flags.h"
#include "kernels/model/model_runner.h"
#include "runtime/flags.h"
#include "runtime/generator.h"
#include "runtime/loaded_model.h"

TANDEM_FLAG(int32_t, decode_tokens, 128, "Tokens generated per decode measurement.");
TANDEM_FLAG(int32_t, repeats, 3, "Measurements per configuration; the best is reported.");

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Read bandwidth: each thread sums its share of a buffer far larger than the caches.
double ReadBandwidthGBs(int threads) {
  const size_t bytes = size_t{1} << 30;
  std::vector<uint64_t> buffer(bytes / 8);
  for (size_t i = 0; i < buffer.size(); ++i) buffer[i] = i;
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    std::vector<uint64_t> sums(threads);
    auto start = Clock::now();
    std::vector<std::thread> pool;
    const size_t per = buffer.size() / threads;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        const uint64_t* p = buffer.data() + t * per;
        uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (size_t i = 0; i + 4 <= per; i += 4) {
          s0 += p[i];
          s1 += p[i + 1];
          s2 += p[i + 2];
          s3 += p[i + 3];
        }
        sums[t] = s0 + s1 + s2 + s3;
      });
    }
    for (auto& th : pool) th.join();
    const double s = Seconds(start, Clock::now());
    if (std::accumulate(sums.begin(), sums.end(), uint64_t{0}) == 42) std::puts("");
    best = std::max(best, bytes / s / 1e9);
  }
  return best;
}

double MemcpyGBs() {
  const size_t bytes = size_t{256} << 20;
  std::vector<char> a(bytes, 1), b(bytes, 2);
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    auto start = Clock::now();
    std::memcpy(b.data(), a.data(), bytes);
    best = std::max(best, 2.0 * bytes / Seconds(start, Clock::now()) / 1e9);  // read + write
  }
  return best;
}

int64_t MatrixParams(const tandem::model::LlamaWeights& w) {
  int64_t n = w.lm_head.numel();
  for (const auto& l : w.layers) {
    n += l.wq.numel() + l.wk.numel() + l.wv.numel() + l.wo.numel() + l.w_gate.numel() +
         l.w_up.numel() + l.w_down.numel();
  }
  return n;
}

std::vector<int32_t> SyntheticPrompt(int32_t n, int32_t vocab) {
  std::vector<int32_t> tokens(n);
  uint64_t state = 12345;
  for (int32_t i = 0; i < n; ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    tokens[i] = 200 + static_cast<int32_t>((state >> 33) % static_cast<uint64_t>(vocab - 400));
  }
  return tokens;
}

}  // namespace

int main(int argc, char** argv) {
  tandem::ParseFlagsOrExit(argc, argv, "Usage: decode_bench [flags]");
  using namespace tandem;
  const int threads = GetFlag(model::FLAGS_threads) > 0 ? GetFlag(model::FLAGS_threads)
                                                         : std::thread::hardware_concurrency();
  kernels::SetCpuThreads(threads);
  auto options = runtime::ModelOptionsFromFlags();
  if (!options.ok()) {
    std::fprintf(stderr, "decode_bench: %s\n", std::string(options.status().message()).c_str());
    return 2;
  }
  auto loaded = runtime::LoadedModel::Load(*options);
  if (!loaded.ok()) {
    std::fprintf(stderr, "decode_bench: %s\n", std::string(loaded.status().message()).c_str());
    return 1;
  }
  runtime::LoadedModel& model = **loaded;
  model::ModelRunner* runner = &model.runner();
  const auto& config = runner->config();

  const double read_gbs = ReadBandwidthGBs(threads);
  const double memcpy_gbs = MemcpyGBs();
  std::printf("BENCH membw threads=%d candidate=%.2f baseline=%.2f ratio=%.3f\n", threads, read_gbs,
              memcpy_gbs, read_gbs / memcpy_gbs);

  const int64_t weight_bytes = runner->weights().BytesPerToken();
  const int32_t decode_tokens = GetFlag(FLAGS_decode_tokens);
  const std::vector<int32_t> short_prompt = SyntheticPrompt(16, config.vocab_size);
  double best_decode = 0;
  for (int rep = 0; rep < GetFlag(FLAGS_repeats); ++rep) {
    runtime::GenerateOptions g;
    g.max_tokens = decode_tokens;
    g.ignore_eos = true;
    auto result = runtime::Generate(*runner, model.kv_cache(), short_prompt, g);
    if (!result.ok()) return 1;
    best_decode = std::max(best_decode, (result->tokens.size() - 1) / result->decode_seconds);
  }
  // KV bytes read per step at the mean context of the run.
  const double mean_context = short_prompt.size() + decode_tokens / 2.0;
  const double kv_bytes =
      mean_context * config.n_layers * 2.0 * config.kv_dim() * DTypeBlockBytes(options->kv.dtype);
  const double roofline = read_gbs * 1e9 / (weight_bytes + kv_bytes);
  std::printf("BENCH decode threads=%d,prompt=16,tokens=%d candidate=%.1f baseline=%.1f ratio=%.3f "
              "bytes_per_token=%.1fMB achieved_gbs=%.2f\n",
              threads, decode_tokens, best_decode, roofline, best_decode / roofline,
              (weight_bytes + kv_bytes) / 1e6, best_decode * (weight_bytes + kv_bytes) / 1e9);

  for (int32_t n : {512, 2048}) {
    const std::vector<int32_t> prompt = SyntheticPrompt(n, config.vocab_size);
    double best = 0;
    for (int rep = 0; rep < GetFlag(FLAGS_repeats); ++rep) {
      runtime::GenerateOptions g;
      g.max_tokens = 1;
      auto result = runtime::Generate(*runner, model.kv_cache(), prompt, g);
      if (!result.ok()) return 1;
      best = std::max(best, n / result->prefill_seconds);
    }
    // Prefill is compute-bound: 2 FLOPs per weight per token, plus causal attention (mean n/2 keys).
    const double flops_per_token =
        2.0 * MatrixParams(runner->weights()) +
        4.0 * config.n_layers * config.n_heads * config.head_dim * n / 2.0;
    std::printf("BENCH prefill_%d threads=%d candidate=%.1f gflops=%.1f\n", n, threads, best,
                best * flops_per_token / 1e9);
  }
  return 0;
}
