// runtime/loaded_model.h
//
// LoadedModel: one model ready to serve, as both nodes and `tandem generate` load it: the GGUF
// mapping, the kernel backend, the ModelRunner, the engine's KvCache (the layout named by its
// options) and the cluster's KvFormat with the fingerprints that go with it. ModelOptions is what
// it is made from; each of its defaults is written here once and filled from flags by
// ModelOptionsFromFlags (runtime/flags.h).
//
// Ownership: owns everything it holds (the runner's CPU weights point into the owned mapping, so
// the mapping lives as long as the runner). Not thread-safe: one engine thread uses the runner and
// the cache; the const accessors (format, fingerprints, config) may be read from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/kv_key.h"
#include "common/model_format/gguf.h"
#include "common/model_format/model_config.h"
#include "kernels/backend.h"
#include "kernels/model/kv_cache.h"
#include "kernels/model/model_runner.h"

namespace tandem::runtime {

struct ModelOptions {
  // The GGUF file. Required. Flag: --model
  std::string model_path;
  // Kernel backend for kernels::GetBackend: cpu, cpu_ref or cuda:N. Default: cpu. Flag: --backend
  std::string backend = "cpu";
  // Chunking and the default prefill attention. Flags: --max_batch_tokens, --prefill_attention, ...
  model::RunnerOptions runner;
  // The engine's KV: layout, dtype (also the KvFormat dtype, so a tier hit is bit-identical to
  // recomputing), page size, capacity and sequences. Flags: --kv_layout, --kv_dtype, ...
  model::KvCacheOptions kv;
  // Tokens per KV block, part of the KvFormat and of every key. Flag: --kv_block_tokens
  int32_t kv_block_tokens = kDefaultKvBlockTokens;
  // Tenant namespace of the KvFormat. Default: "". Flag: --kv_namespace
  std::string kv_namespace;

  // InvalidArgument naming the field and its flag.
  absl::Status Validate() const;
};

class LoadedModel {
 public:
  // NotFound naming the file when it is missing ("run scripts/setup.sh"), InvalidArgument for a
  // file that is not a usable GGUF or for bad options, Unavailable for a backend this machine
  // cannot run (a CUDA device that is not there).
  static absl::StatusOr<std::unique_ptr<LoadedModel>> Load(const ModelOptions& options);

  const ModelOptions& options() const { return options_; }
  const format::GgufFile& gguf() const { return *gguf_; }
  const format::ModelConfig& config() const { return runner_->config(); }
  kernels::KernelBackend& backend() { return *backend_; }
  model::ModelRunner& runner() { return *runner_; }
  model::KvCache& kv_cache() { return *kv_cache_; }
  // Computes the model's identities below: what a node publishes and checks KV against. It hashes
  // every weight and every vocabulary token (~0.2 G instructions for SmolLM2), which `tandem
  // generate` never needs, so Load leaves it to the caller; nodes call it at start. Idempotent.
  // InvalidArgument for a format the options cannot make or a GGUF without a usable vocabulary.
  absl::Status Identify();
  // After Identify(): the cluster's KvFormat as this model, layout, dtype, block size and
  // namespace make it; its canonical encoding in hex (what nodes publish and the router compares);
  // the vocabulary's fingerprint in hex. Read-only: safe from any thread.
  const KvFormat& kv_format() const;
  const std::string& kv_format_hex() const;
  const std::string& vocab_fingerprint_hex() const;

 private:
  LoadedModel() = default;

  ModelOptions options_;
  std::unique_ptr<format::GgufFile> gguf_;
  kernels::KernelBackend* backend_ = nullptr;
  std::unique_ptr<model::ModelRunner> runner_;
  std::unique_ptr<model::KvCache> kv_cache_;
  // The identities, made by Identify().
  bool identified_ = false;
  KvFormat kv_format_;
  std::string kv_format_hex_;
  std::string vocab_fingerprint_hex_;
};

}  // namespace tandem::runtime
