// Model tests on the real SmolLM2-135M-Instruct Q4_1 GGUF: it parses, every tensor has the type and
// shape the config implies, the config matches the published hyper-parameters, and the fingerprint
// is stable across two opens.
#include <cstdio>
#include <map>
#include <string>

#include "common/model_format/fingerprint.h"
#include "common/model_format/gguf.h"
#include "common/model_format/model_config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"

namespace tandem::format {
namespace {

bool IsNorm(const std::string& name) {
  return name.size() > 12 && name.compare(name.size() - 12, 12, "_norm.weight") == 0;
}

TEST(GgufModelTest, RealFileLoads) {
  ASSERT_OK_AND_ASSIGN(GgufFile f, GgufFile::Open(::tandem::testing::ModelPath()));
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  ASSERT_EQ(f.tensors().size(), 272u);

  // Print what the file declares, grouped, then assert it.
  std::map<std::string, int> histogram;
  for (const TensorInfo& t : f.tensors()) {
    histogram[std::string(DTypeName(t.dtype))]++;
    const std::string& n = t.name;
    if (n == "token_embd.weight" || n.rfind("blk.0.", 0) == 0 || n == "output_norm.weight") {
      std::printf("  %-28s ggml_type %2u %-5s dims [%lld%s%s]\n", n.c_str(), t.ggml_type,
                  std::string(DTypeName(t.dtype)).c_str(), static_cast<long long>(t.dims[0]),
                  t.dims.size() > 1 ? ", " : "",
                  t.dims.size() > 1 ? std::to_string(t.dims[1]).c_str() : "");
    }
    if (n == "token_embd.weight") {
      EXPECT_EQ(t.dtype, DType::kQ8_0) << n;
    } else if (IsNorm(n)) {
      EXPECT_EQ(t.dtype, DType::kF32) << n;
    } else {
      EXPECT_EQ(t.dtype, DType::kQ4_1) << n;
    }
  }
  for (const auto& [type, count] : histogram) {
    std::printf("  %s: %d tensors\n", type.c_str(), count);
  }
  EXPECT_EQ(histogram["q8_0"], 1);
  EXPECT_EQ(histogram["f32"], 61);
  EXPECT_EQ(histogram["q4_1"], 210);

  ASSERT_OK_AND_ASSIGN(TensorView embd, f.TensorData("token_embd.weight"));
  EXPECT_EQ(embd.ndim, 2);
  EXPECT_EQ(embd.shape[0], 49152);
  EXPECT_EQ(embd.shape[1], 576);
  EXPECT_EQ(embd.stride_bytes[0], 576 / 32 * 34);
  ASSERT_OK_AND_ASSIGN(TensorView down, f.TensorData("blk.29.ffn_down.weight"));
  EXPECT_EQ(down.shape[0], 576);
  EXPECT_EQ(down.shape[1], 1536);
  EXPECT_EQ(down.stride_bytes[0], 1536 / 32 * 20);

  ASSERT_OK_AND_ASSIGN(const GgufArray* tokens, f.GetArray("tokenizer.ggml.tokens"));
  EXPECT_EQ(tokens->count, 49152u);
  EXPECT_EQ(tokens->strings[2], "<|im_end|>");
}

TEST(GgufModelTest, RealConfig) {
  ASSERT_OK_AND_ASSIGN(GgufFile f, GgufFile::Open(::tandem::testing::ModelPath()));
  ASSERT_OK_AND_ASSIGN(ModelConfig c, ModelConfigFromGguf(f));
  std::printf("  name '%s' eps %g eog [", c.name.c_str(), c.rms_norm_eps);
  for (int32_t id : c.eog_token_ids) std::printf(" %d", id);
  std::printf(" ]\n");
  EXPECT_EQ(c.architecture, "llama");
  EXPECT_EQ(c.n_layers, 30);
  EXPECT_EQ(c.d_model, 576);
  EXPECT_EQ(c.d_ffn, 1536);
  EXPECT_EQ(c.n_heads, 9);
  EXPECT_EQ(c.n_kv_heads, 3);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.n_rot, 64);
  EXPECT_EQ(c.vocab_size, 49152);
  EXPECT_EQ(c.context_length, 8192);
  EXPECT_FLOAT_EQ(c.rope_freq_base, 100000.0f);
  EXPECT_FLOAT_EQ(c.rms_norm_eps, 1e-5f);
  EXPECT_TRUE(c.tied_embeddings);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_id, 2);
  EXPECT_THAT(c.eog_token_ids, ::testing::ElementsAre(2, 0));
}

TEST(GgufModelTest, RealFingerprintIsStable) {
  ASSERT_OK_AND_ASSIGN(GgufFile a, GgufFile::Open(::tandem::testing::ModelPath()));
  ASSERT_OK_AND_ASSIGN(GgufFile b, GgufFile::Open(::tandem::testing::ModelPath()));
  const Fingerprint fa = ModelFingerprint(a);
  std::printf("  fingerprint %s\n", fa.Hex().c_str());
  EXPECT_EQ(fa, ModelFingerprint(b));
}

}  // namespace
}  // namespace tandem::format
