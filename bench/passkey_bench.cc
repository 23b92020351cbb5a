// passkey_bench: passkey retrieval (a 5-digit key hidden in real-looking text,
// tests/model/long_text.h) with dense, SALE and PowerAttention prefill on the real model; decode is
// dense in every case (PagedAttention), so only the prefill differs. For each length and depth,
// --trials prompts with different keys and filler; a trial succeeds when the greedy continuation (8
// tokens) contains the key. Prints one line per (length, depth, method) and
//   BENCH passkey_N <method> candidate=<accuracy> baseline=<dense accuracy> ratio=<c/b> density=<d>
//
//   build/bench/passkey_bench [--lengths 1024,2048,4096,8192] [--depths 0.1,0.5,0.9] [--trials 2]
//       [--threads 2] [--max_batch_tokens 1024]
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/flags.h"
#include "common/model_format/gguf.h"
#include "common/model_format/tokenizer.h"
#include "kernels/backend.h"
#include "kernels/model/flags.h"
#include "kernels/model/model_runner.h"
#include "runtime/flags.h"
#include "runtime/generator.h"
#include "runtime/loaded_model.h"
#include "tests/model/long_text.h"

TANDEM_FLAG(std::string, lengths, "1024,2048,4096,8192", "Prompt lengths in tokens.");
TANDEM_FLAG(std::string, depths, "0.1,0.5,0.9", "Needle depths, 0 = start, 1 = end.");
TANDEM_FLAG(int32_t, trials, 2, "Prompts per (length, depth).");

namespace {

using namespace tandem;  // NOLINT: a main file

std::vector<double> ParseList(const std::string& s) {
  std::vector<double> out;
  for (absl::string_view p : absl::StrSplit(s, ',')) {
    double v = 0;
    if (absl::SimpleAtod(p, &v)) out.push_back(v);
  }
  return out;
}

// A prompt of at most `n` tokens (bos first), scaling the filler to fit.
std::vector<int32_t> MakePrompt(const format::Tokenizer& tok, int32_t n, double depth, int32_t key,
                                uint32_t seed) {
  int64_t chars = int64_t{n} * 4;
  std::vector<int32_t> ids;
  for (int iter = 0; iter < 6; ++iter) {
    ids = tok.Encode(testing::PasskeyPrompt(chars, depth, key, seed), false);
    if (static_cast<int32_t>(ids.size()) + 1 <= n && static_cast<int32_t>(ids.size()) + 64 >= n) {
      break;
    }
    chars = static_cast<int64_t>(static_cast<double>(chars) * (n - 40) / (ids.size() + 1));
  }
  ids.insert(ids.begin(), 1);
  if (static_cast<int32_t>(ids.size()) > n)
    ids.erase(ids.begin() + 1, ids.begin() + 1 + (ids.size() - n));
  return ids;
}

}  // namespace

int main(int argc, char** argv) {
  ParseFlagsOrExit(argc, argv, "Usage: passkey_bench [flags]");
  kernels::SetCpuThreads(GetFlag(model::FLAGS_threads));
  auto model_options = runtime::ModelOptionsFromFlags();
  if (!model_options.ok()) {
    std::fprintf(stderr, "passkey_bench: %s\n", model_options.status().ToString().c_str());
    return 1;
  }
  auto loaded = runtime::LoadedModel::Load(*model_options);
  if (!loaded.ok()) {
    std::fprintf(stderr, "passkey_bench: %s\n", loaded.status().ToString().c_str());
    return 1;
  }
  runtime::LoadedModel& model = **loaded;
  auto tokenizer = format::Tokenizer::FromGguf(model.gguf());
  if (!tokenizer.ok()) return 1;
  const kernels::SparseMethod methods[] = {kernels::SparseMethod::kDense,
                                           kernels::SparseMethod::kSale,
                                           kernels::SparseMethod::kPowerAttention};
  std::mt19937 rng(1234);
  for (double len_d : ParseList(GetFlag(FLAGS_lengths))) {
    const int32_t n = static_cast<int32_t>(len_d);
    int correct[3] = {0, 0, 0};
    int total = 0;
    double density_sum[3] = {0, 0, 0};
    for (double depth : ParseList(GetFlag(FLAGS_depths))) {
      for (int trial = 0; trial < GetFlag(FLAGS_trials); ++trial) {
        const int32_t key = std::uniform_int_distribution<int32_t>(10000, 99999)(rng);
        const std::vector<int32_t> prompt = MakePrompt(*tokenizer, n, depth, key, rng());
        ++total;
        for (int m = 0; m < 3; ++m) {
          runtime::GenerateOptions g;
          g.max_tokens = 8;
          g.ignore_eos = true;
          g.prefill_attention = model_options->runner.prefill_attention;  // knobs from the flags
          g.prefill_attention->method = methods[m];
          auto result = runtime::Generate(model.runner(), model.kv_cache(), prompt, g);
          if (!result.ok()) {
            std::fprintf(stderr, "passkey_bench: %s\n", result.status().ToString().c_str());
            return 1;
          }
          const std::string text = tokenizer->Decode(result->tokens);
          const bool ok = text.find(absl::StrCat(key)) != std::string::npos;
          correct[m] += ok;
          density_sum[m] += result->prefill_attention.density();
          std::printf(
              "passkey n=%d(prompt %zu) depth=%.2f key=%d method=%s ok=%d density=%.3f "
              "answer='%s'\n",
              n, prompt.size(), depth, key,
              std::string(kernels::SparseMethodName(methods[m])).c_str(), ok ? 1 : 0,
              result->prefill_attention.density(), text.c_str());
          std::fflush(stdout);
        }
      }
    }
    for (int m = 1; m < 3; ++m) {
      const double acc = double(correct[m]) / total, base = double(correct[0]) / total;
      std::printf("BENCH passkey_%d %s candidate=%.3f baseline=%.3f ratio=%.3f density=%.4f\n", n,
                  std::string(kernels::SparseMethodName(methods[m])).c_str(), acc, base,
                  base > 0 ? acc / base : 0.0, density_sum[m] / total);
    }
    std::fflush(stdout);
  }
  return 0;
}
