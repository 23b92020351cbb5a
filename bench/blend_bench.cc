// blend_bench: CacheBlend (runtime/blend.h) against full prefill on the real model, in process.
//
// --mode=quality --set=FILE (bench/make_rag_set.py): for each RAG prompt (system prompt, 4-8
//   documents, question, ChatML), full prefill is the baseline; prefix reuse (the system prompt
//   cached, the rest computed) and CacheBlend at each --ratios value (documents' KV computed alone
//   and stored first, system prompt cached) are compared with it: first-token agreement, KL of the
//   first-token distribution, equality of the --answer_tokens greedy answer, and planted-fact
//   accuracy (the answer string in the greedy answer) beside full prefill's own.
// --mode=speed: TTFT (prefill + first token) of full prefill, prefix caching (system prompt and the
//   first document reused from stored blocks) and CacheBlend at 0.15 (all documents' blocks in
//   memory; import, re-rotation and recompute timed), at --sizes prompt tokens made of
//   --doc_tokens-token documents of license text.
// Prints BENCH lines and writes --out (JSON) for bench/plot_blend.py.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/flags.h"
#include "common/model_format/flags.h"
#include "common/model_format/gguf.h"
#include "common/model_format/tokenizer.h"
#include "kernels/backend.h"
#include "kernels/model/model_runner.h"
#include "kernels/model/paged_kv_cache.h"
#include "nlohmann/json.hpp"
#include "runtime/blend.h"
#include "runtime/block_io.h"
#include "runtime/document_kv.h"

TANDEM_FLAG(std::string, mode, "quality", "quality | speed");
TANDEM_FLAG(std::string, set, "", "quality: JSONL made by bench/make_rag_set.py");
TANDEM_FLAG(int32_t, limit, 100, "quality: prompts of the set to run (the first N).");
TANDEM_FLAG(std::string, ratios, "0,0.05,0.15,0.3,1", "quality: recompute ratios.");
TANDEM_FLAG(int32_t, answer_tokens, 32, "quality: greedy answer length compared.");
TANDEM_FLAG(std::string, sizes, "2048,4096,8192", "speed: prompt lengths in tokens.");
TANDEM_FLAG(int32_t, doc_tokens, 512, "speed: tokens per document.");
TANDEM_FLAG(int32_t, repeats, 2, "speed: runs per method and size (the fastest counts).");
TANDEM_FLAG(std::string, out, "", "JSON results for bench/plot_blend.py; empty = none.");

namespace tandem {
namespace {

using Json = nlohmann::ordered_json;

struct Engine {
  std::unique_ptr<format::GgufFile> gguf;
  std::unique_ptr<format::Tokenizer> tok;
  std::unique_ptr<model::ModelRunner> runner;
  std::unique_ptr<model::PagedKvCache> cache;
  KvFormat format;
  std::vector<int32_t> preamble;
};

#define CHECK_OK(expr)                                                                \
  do {                                                                                \
    const absl::Status _s = (expr);                                                   \
    if (!_s.ok()) {                                                                   \
      std::fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, _s.ToString().c_str()); \
      std::exit(1);                                                                   \
    }                                                                                 \
  } while (0)

template <typename T>
T Must(absl::StatusOr<T> v) {
  if (!v.ok()) {
    std::fprintf(stderr, "%s\n", v.status().ToString().c_str());
    std::exit(1);
  }
  return *std::move(v);
}

Engine Load() {
  Engine e;
  e.gguf = std::make_unique<format::GgufFile>(
      Must(format::GgufFile::Open(GetFlag(format::FLAGS_model))));
  e.tok = std::make_unique<format::Tokenizer>(Must(format::Tokenizer::FromGguf(*e.gguf)));
  kernels::KernelBackend* backend = Must(kernels::GetBackend("cpu"));
  e.runner = Must(model::ModelRunner::Create(*e.gguf, *backend, {}));
  e.cache = Must(model::PagedKvCache::Create(
      *backend, e.runner->config(),
      {.capacity_tokens = 3 * e.runner->config().context_length, .max_seqs = 4}));
  e.format.dtype = e.cache->options().dtype;
  e.preamble = runtime::DocumentPreamble(e.runner->config());
  return e;
}

struct Prompt {
  std::vector<int32_t> tokens;
  int32_t head = 0;  // the system prompt: [0, head)
  std::vector<runtime::BlendDocument> docs;
  std::vector<std::vector<int32_t>> doc_tokens;
};

// ChatML: system prompt, a user turn opening with the documents, the question, the assistant turn.
Prompt MakePrompt(Engine& e, const std::vector<std::string>& docs, const std::string& question,
                  int32_t doc_tokens_cap) {
  Prompt p;
  p.tokens = e.tok->Encode(
      "<|im_start|>system\nAnswer the question using the documents.<|im_end|>\n<|im_start|>user\n",
      /*parse_special=*/true);
  p.head = static_cast<int32_t>(p.tokens.size());
  for (const std::string& d : docs) {
    std::vector<int32_t> t = e.tok->Encode(d, false);
    if (doc_tokens_cap > 0) t.resize(std::min<size_t>(t.size(), doc_tokens_cap));
    runtime::BlendDocument doc;
    doc.begin = static_cast<int32_t>(p.tokens.size());
    doc.blocks = Must(runtime::ComputeDocumentBlocks(*e.runner, *e.cache, e.format, e.preamble, t));
    p.tokens.insert(p.tokens.end(), t.begin(), t.end());
    p.docs.push_back(std::move(doc));
    p.doc_tokens.push_back(std::move(t));
  }
  const std::vector<int32_t> tail = e.tok->Encode(
      absl::StrCat("\nQuestion: ", question, "<|im_end|>\n<|im_start|>assistant\n"), true);
  p.tokens.insert(p.tokens.end(), tail.begin(), tail.end());
  return p;
}

std::vector<float> Host(Engine& e, const model::Logits& l) {
  return Must(l.ToHost(e.runner->backend()));
}

int Argmax(const std::vector<float>& v) {
  return static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin());
}

// Forwards tokens [begin, end) of `p` into seq; the last row's logits.
std::vector<float> ForwardRange(Engine& e, model::SeqId seq, const std::vector<int32_t>& tokens,
                                int32_t begin, int32_t end) {
  model::ForwardBatch b;
  b.Add(seq, std::vector<int32_t>(tokens.begin() + begin, tokens.begin() + end), begin, true);
  return Host(e, Must(e.runner->Forward(b, *e.cache)));
}

std::vector<int32_t> Greedy(Engine& e, model::SeqId seq, int32_t length, std::vector<float> logits,
                            int steps) {
  std::vector<int32_t> out;
  for (int s = 0; s < steps; ++s) {
    const int32_t next = Argmax(logits);
    out.push_back(next);
    if (s + 1 == steps) break;
    model::ForwardBatch b;
    b.Add(seq, {next}, length + s, true);
    logits = Host(e, Must(e.runner->Forward(b, *e.cache)));
  }
  return out;
}

double Kl(const std::vector<float>& p_logits, const std::vector<float>& q_logits) {
  const auto log_softmax = [](const std::vector<float>& l) {
    const double mx = *std::max_element(l.begin(), l.end());
    double sum = 0.0;
    for (float x : l) sum += std::exp(x - mx);
    std::vector<double> out(l.size());
    for (size_t i = 0; i < l.size(); ++i) out[i] = l[i] - mx - std::log(sum);
    return out;
  };
  const std::vector<double> lp = log_softmax(p_logits), lq = log_softmax(q_logits);
  double kl = 0.0;
  for (size_t i = 0; i < lp.size(); ++i) kl += std::exp(lp[i]) * (lp[i] - lq[i]);
  return kl;
}

struct Run {
  std::vector<float> logits;
  std::vector<int32_t> answer;
  int32_t recomputed = 0, reused = 0;
};

// method: "full", "prefix" or a ratio.
Run RunMethod(Engine& e, const Prompt& p, const std::string& method, double ratio, int steps) {
  const model::SeqId seq = Must(e.cache->AddSequence());
  Run r;
  const int32_t n = static_cast<int32_t>(p.tokens.size());
  if (method == "full") {
    r.logits = ForwardRange(e, seq, p.tokens, 0, n);
  } else {
    ForwardRange(e, seq, p.tokens, 0, p.head);
    if (method == "prefix") {
      r.logits = ForwardRange(e, seq, p.tokens, p.head, n);
    } else {
      runtime::BlendInput in;
      in.seq = seq;
      in.tokens = p.tokens;
      in.cached_prefix = p.head;
      in.documents = p.docs;
      runtime::BlendResult b = Must(runtime::Blend(
          *e.runner, *e.cache, in, {.recompute_ratio = ratio, .min_blend_tokens = 0}));
      r.logits = Host(e, b.logits);
      r.recomputed = b.stats.recomputed_tokens;
      r.reused = b.stats.reused_tokens;
    }
  }
  if (steps > 0) r.answer = Greedy(e, seq, n, r.logits, steps);
  e.cache->RemoveSequence(seq);
  return r;
}

std::vector<std::string> Split(const std::string& s) {
  return absl::StrSplit(s, ',', absl::SkipEmpty());
}

int Quality(Engine& e) {
  std::ifstream in(GetFlag(FLAGS_set));
  if (!in) {
    std::fprintf(stderr, "--set: cannot read '%s'\n", GetFlag(FLAGS_set).c_str());
    return 2;
  }
  std::vector<std::string> methods = {"prefix"};
  std::vector<double> ratios;
  for (const std::string& r : Split(GetFlag(FLAGS_ratios))) {
    double v = 0;
    if (!absl::SimpleAtod(r, &v) || v < 0 || v > 1) {
      std::fprintf(stderr, "--ratios: '%s' is not in [0, 1]\n", r.c_str());
      return 2;
    }
    ratios.push_back(v);
    methods.push_back(r);
  }
  struct Totals {
    int agree = 0, equal = 0, correct = 0;
    double kl = 0.0, recomputed = 0.0, reused = 0.0;
  };
  std::vector<Totals> totals(methods.size());
  int full_correct = 0, prompts = 0;
  const int steps = GetFlag(FLAGS_answer_tokens);
  // The summary so far: written after every prompt (a long run stopped early keeps its results),
  // printed as BENCH lines at the end.
  const auto summarize = [&](bool print) {
    Json out;
    out["prompts"] = prompts;
    out["full_accuracy"] = prompts ? static_cast<double>(full_correct) / prompts : 0.0;
    if (print) {
      std::printf("BENCH blend_quality prompts=%d full_prefill accuracy=%.3f\n", prompts,
                  out["full_accuracy"].get<double>());
    }
    for (size_t m = 0; m < methods.size(); ++m) {
      const Totals& t = totals[m];
      const double np = std::max(prompts, 1);
      Json j{{"method", m == 0 ? "prefix" : "blend"},
             {"ratio", m == 0 ? -1.0 : ratios[m - 1]},
             {"first_token_agreement", t.agree / np},
             {"kl", t.kl / np},
             {"greedy_equal", t.equal / np},
             {"accuracy", t.correct / np},
             {"recomputed_fraction", t.reused > 0 ? t.recomputed / t.reused : 0.0}};
      out["methods"].push_back(j);
      if (print) {
        std::printf("BENCH blend_quality method=%s agreement=%.3f kl=%.4f greedy_equal=%.3f "
                    "accuracy=%.3f (full %.3f) recomputed_fraction=%.3f\n",
                    m == 0 ? "prefix" : absl::StrCat("blend_", methods[m]).c_str(), t.agree / np,
                    t.kl / np, t.equal / np, t.correct / np, out["full_accuracy"].get<double>(),
                    j["recomputed_fraction"].get<double>());
      }
    }
    if (!GetFlag(FLAGS_out).empty()) std::ofstream(GetFlag(FLAGS_out)) << out.dump(1) << "\n";
  };
  std::string line;
  while (prompts < GetFlag(FLAGS_limit) && std::getline(in, line)) {
    const Json row = Json::parse(line);
    const Prompt p = MakePrompt(e, row["docs"].get<std::vector<std::string>>(),
                                row["question"].get<std::string>(), 0);
    const std::string answer = absl::AsciiStrToLower(row["answer"].get<std::string>());
    const auto correct = [&](const std::vector<int32_t>& ids) {
      return absl::AsciiStrToLower(e.tok->Decode(ids)).find(answer) != std::string::npos;
    };
    const Run full = RunMethod(e, p, "full", 0, steps);
    full_correct += correct(full.answer);
    for (size_t m = 0; m < methods.size(); ++m) {
      const Run r = RunMethod(e, p, m == 0 ? "prefix" : "blend", m == 0 ? 0 : ratios[m - 1], steps);
      Totals& t = totals[m];
      t.agree += Argmax(r.logits) == Argmax(full.logits);
      t.kl += Kl(full.logits, r.logits);
      t.equal += r.answer == full.answer;
      t.correct += correct(r.answer);
      t.recomputed += r.recomputed;
      t.reused += r.reused;
    }
    ++prompts;
    std::fprintf(stderr, "prompt %d (%zu tokens, %zu docs): full says %s\n", prompts,
                 p.tokens.size(), p.docs.size(), e.tok->Decode(full.answer).c_str());
    summarize(false);
  }
  summarize(true);
  return 0;
}

// Text of the license files, for documents of real text.
std::vector<std::string> LicenseTexts() {
  std::vector<std::string> out;
  for (const char* name :
       {"GPL-3", "Apache-2.0", "GPL-2", "LGPL-2.1", "MPL-2.0", "Artistic", "GFDL-1.3", "LGPL-3"}) {
    std::ifstream f(absl::StrCat("/usr/share/common-licenses/", name));
    std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (!s.empty()) out.push_back(s);
  }
  return out;
}

int Speed(Engine& e) {
  const std::vector<std::string> texts = LicenseTexts();
  if (texts.empty()) {
    std::fprintf(stderr, "no texts in /usr/share/common-licenses\n");
    return 2;
  }
  const int32_t dt = GetFlag(FLAGS_doc_tokens);
  Json out;
  for (const std::string& size_text : Split(GetFlag(FLAGS_sizes))) {
    int32_t size = 0;
    if (!absl::SimpleAtoi(size_text, &size) || size < 2 * dt) {
      std::fprintf(stderr, "--sizes: '%s' is not a length of at least 2 documents\n",
                   size_text.c_str());
      return 2;
    }
    // Documents: consecutive slices of the texts; as many as fit with the head and question.
    std::vector<std::string> docs;
    const int32_t n_docs = (size - 64) / dt;
    for (int32_t i = 0; i < n_docs; ++i) {
      const std::string& t = texts[static_cast<size_t>(i) % texts.size()];
      const size_t at = (static_cast<size_t>(i) * 3000) % (t.size() > 6000 ? t.size() - 6000 : 1);
      docs.push_back(t.substr(at, 6000));
    }
    const Prompt p = MakePrompt(e, docs, "What does the license say about warranty?", dt);
    const int32_t n = static_cast<int32_t>(p.tokens.size());
    // The prefix cache's blocks: whole blocks of the system prompt and first document.
    const int32_t bt = e.format.block_tokens;
    const int32_t prefix_blocks = (p.head + dt) / bt;
    std::vector<kv::KvBlock> prefix;
    {
      const model::SeqId s = Must(e.cache->AddSequence());
      ForwardRange(e, s, p.tokens, 0, prefix_blocks * bt);
      prefix = Must(runtime::ExportBlocks(
          *e.cache, s, e.format,
          absl::MakeConstSpan(p.tokens).subspan(0, static_cast<size_t>(prefix_blocks * bt)), 0,
          e.format.Root()));
      e.cache->RemoveSequence(s);
    }
    double best[3] = {1e30, 1e30, 1e30};
    for (int rep = 0; rep < GetFlag(FLAGS_repeats); ++rep) {
      for (int m = 0; m < 3; ++m) {
        const model::SeqId seq = Must(e.cache->AddSequence());
        const absl::Time start = absl::Now();
        std::vector<float> logits;
        if (m == 0) {
          logits = ForwardRange(e, seq, p.tokens, 0, n);
        } else if (m == 1) {
          CHECK_OK(runtime::ImportBlocks(*e.cache, seq, prefix));
          logits = ForwardRange(e, seq, p.tokens, prefix_blocks * bt, n);
        } else {
          ForwardRange(e, seq, p.tokens, 0, p.head);
          runtime::BlendInput in;
          in.seq = seq;
          in.tokens = p.tokens;
          in.cached_prefix = p.head;
          in.documents = p.docs;
          runtime::BlendResult b =
              Must(runtime::Blend(*e.runner, *e.cache, in, {.recompute_ratio = 0.15}));
          logits = Host(e, b.logits);
        }
        Argmax(logits);  // the first token
        best[m] = std::min(best[m], absl::ToDoubleSeconds(absl::Now() - start));
        e.cache->RemoveSequence(seq);
      }
    }
    std::printf(
        "BENCH blend_ttft tokens=%d docs=%zu full=%.3fs prefix=%.3fs blend_0.15=%.3fs "
        "speedup_vs_full=%.2fx speedup_vs_prefix=%.2fx\n",
        n, p.docs.size(), best[0], best[1], best[2], best[0] / best[2], best[1] / best[2]);
    out["speed"].push_back(Json{{"tokens", n},
                                {"docs", p.docs.size()},
                                {"full_s", best[0]},
                                {"prefix_s", best[1]},
                                {"blend_s", best[2]}});
  }
  if (!GetFlag(FLAGS_out).empty()) std::ofstream(GetFlag(FLAGS_out)) << out.dump(1) << "\n";
  return 0;
}

}  // namespace
}  // namespace tandem

int main(int argc, char** argv) {
  tandem::ParseFlagsOrExit(argc, argv, "Usage: blend_bench --mode=quality|speed [flags]");
  tandem::Engine e = tandem::Load();
  const std::string mode = tandem::GetFlag(FLAGS_mode);
  if (mode == "quality") return tandem::Quality(e);
  if (mode == "speed") return tandem::Speed(e);
  std::fprintf(stderr, "--mode: '%s' is not quality or speed\n", mode.c_str());
  return 2;
}
