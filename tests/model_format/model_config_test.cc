// Unit tests of ModelConfigFromGguf on tiny synthetic Llama files: values, defaults, EOG ids, and
// errors that name the missing or misshapen tensor and the unsupported architecture.
#include "common/model_format/model_config.h"

#include "common/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/model_format/gguf_writer.h"
#include "tests/support/status_matchers.h"

namespace tandem::format {
namespace {

using ::tandem::testing::GgufWriter;
using ::tandem::testing::StatusIs;
using ::tandem::testing::TinyLlamaWriter;

constexpr auto kInvalid = absl::StatusCode::kInvalidArgument;

absl::StatusOr<ModelConfig> ConfigOf(const GgufWriter& w) {
  TANDEM_ASSIGN_OR_RETURN(GgufFile f, GgufFile::FromBytes(w.Build(), "tiny.gguf"));
  return ModelConfigFromGguf(f);
}

TEST(ModelConfigTest, ReadsTinyLlama) {
  ASSERT_OK_AND_ASSIGN(ModelConfig c, ConfigOf(TinyLlamaWriter()));
  EXPECT_EQ(c.architecture, "llama");
  EXPECT_EQ(c.name, "tiny");
  EXPECT_EQ(c.n_layers, 2);
  EXPECT_EQ(c.d_model, 32);
  EXPECT_EQ(c.d_ffn, 64);
  EXPECT_EQ(c.n_heads, 4);
  EXPECT_EQ(c.n_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.n_rot, 8);  // defaults to head_dim
  EXPECT_EQ(c.kv_dim(), 16);
  EXPECT_EQ(c.vocab_size, 8);  // from the token list (no llama.vocab_size)
  EXPECT_EQ(c.context_length, 256);
  EXPECT_FLOAT_EQ(c.rope_freq_base, 100000.0f);
  EXPECT_FLOAT_EQ(c.rms_norm_eps, 1e-6f);
  EXPECT_TRUE(c.tied_embeddings);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_id, 2);
  EXPECT_THAT(c.eog_token_ids, ::testing::ElementsAre(2, 0, 6));
}

TEST(ModelConfigTest, DefaultsAndUntiedOutput) {
  GgufWriter w;
  w.AddString("general.architecture", "llama");
  w.AddU32("llama.block_count", 1);
  w.AddU32("llama.context_length", 64);
  w.AddU32("llama.embedding_length", 32);
  w.AddU32("llama.feed_forward_length", 32);
  w.AddU8("llama.attention.head_count", 2);  // no head_count_kv: equals head_count
  w.AddF64("llama.attention.layer_norm_rms_epsilon", 1e-5);
  w.AddI64("llama.vocab_size", 4);
  w.AddF32Tensor("token_embd.weight", {32, 4});
  w.AddF32Tensor("output.weight", {32, 4});
  w.AddF32Tensor("output_norm.weight", {32});
  for (const auto& [name, dims] : std::vector<std::pair<std::string, std::vector<uint64_t>>>{
           {"attn_norm", {32}}, {"attn_q", {32, 32}}, {"attn_k", {32, 32}}, {"attn_v", {32, 32}},
           {"attn_output", {32, 32}}, {"ffn_norm", {32}}, {"ffn_gate", {32, 32}},
           {"ffn_up", {32, 32}}, {"ffn_down", {32, 32}}}) {
    w.AddF32Tensor("blk.0." + name + ".weight", dims);
  }
  ASSERT_OK_AND_ASSIGN(ModelConfig c, ConfigOf(w));
  EXPECT_EQ(c.name, "tiny.gguf");
  EXPECT_EQ(c.n_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.n_rot, 16);
  EXPECT_FLOAT_EQ(c.rope_freq_base, 10000.0f);
  EXPECT_EQ(c.vocab_size, 4);
  EXPECT_FALSE(c.tied_embeddings);
  EXPECT_EQ(c.bos_token_id, -1);
  EXPECT_EQ(c.eos_token_id, -1);
  EXPECT_TRUE(c.eog_token_ids.empty());
}

TEST(ModelConfigTest, MissingTensorIsNamed) {
  EXPECT_THAT(ConfigOf(TinyLlamaWriter("blk.1.ffn_up.weight")),
              StatusIs(kInvalid, "tiny.gguf: tensor 'blk.1.ffn_up.weight' required by the "
                                 "forward pass is missing"));
  EXPECT_THAT(ConfigOf(TinyLlamaWriter("output_norm.weight")),
              StatusIs(kInvalid, "'output_norm.weight'"));
}

TEST(ModelConfigTest, WrongShapeIsNamed) {
  EXPECT_THAT(ConfigOf(TinyLlamaWriter("", "blk.0.attn_k.weight")),
              StatusIs(kInvalid, "tensor 'blk.0.attn_k.weight' has dims [7], expected [32, 16]"));
  EXPECT_THAT(ConfigOf(TinyLlamaWriter("", "token_embd.weight")),
              StatusIs(kInvalid, "tensor 'token_embd.weight' has dims [7], expected [32, 8]"));
}

TEST(ModelConfigTest, RejectsOtherArchitecturesAndBadValues) {
  GgufWriter qwen;
  qwen.AddString("general.architecture", "qwen2");
  EXPECT_THAT(ConfigOf(qwen), StatusIs(kInvalid, "architecture 'qwen2' is not supported"));
  EXPECT_THAT(ConfigOf(GgufWriter()), StatusIs(kInvalid, "general.architecture"));

  GgufWriter no_layers;
  no_layers.AddString("general.architecture", "llama");
  EXPECT_THAT(ConfigOf(no_layers), StatusIs(kInvalid, "'llama.block_count' is missing"));

  GgufWriter bad_eos = TinyLlamaWriter();
  bad_eos.AddU32("tokenizer.ggml.eot_token_id", 99);
  EXPECT_THAT(ConfigOf(bad_eos), StatusIs(kInvalid, "tokenizer.ggml.eot_token_id"));
  GgufWriter str_layers = TinyLlamaWriter();
  str_layers.AddString("llama.rope.dimension_count", "64");
  EXPECT_THAT(ConfigOf(str_layers), StatusIs(kInvalid, "llama.rope.dimension_count"));
  GgufWriter odd_rot = TinyLlamaWriter();
  odd_rot.AddU32("llama.rope.dimension_count", 7);
  EXPECT_THAT(ConfigOf(odd_rot), StatusIs(kInvalid, "rope.dimension_count 7"));
}

}  // namespace
}  // namespace tandem::format
