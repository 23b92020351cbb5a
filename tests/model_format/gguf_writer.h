// tests/model_format/gguf_writer.h
//
// GgufWriter builds small GGUF images in memory for tests and fuzz seeds: metadata of every value
// type, tensors laid out at aligned offsets, and hooks to corrupt them (raw values, count and
// offset overrides). The last tensor ends exactly at the end of the image, so every proper prefix
// of a built file is a truncated file. Test-only; not thread-safe.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace tandem::testing {

class GgufWriter {
 public:
  struct Tensor {
    std::string name;
    std::vector<uint64_t> dims;  // GGML order, ne0 first
    uint32_t ggml_type = 0;
    std::string data;
    std::optional<uint64_t> offset;  // default: next aligned position
  };

  // Little-endian encoders.
  template <typename T>
  static std::string Pod(T v) {
    std::string s(sizeof(T), '\0');
    std::memcpy(s.data(), &v, sizeof(T));
    return s;
  }
  static std::string Str(const std::string& s) { return Pod<uint64_t>(s.size()) + s; }

  void set_version(uint32_t v) { version_ = v; }
  void set_alignment(uint64_t a) { alignment_ = a; }
  void set_tensor_count(uint64_t n) { tensor_count_override_ = n; }
  void set_kv_count(uint64_t n) { kv_count_override_ = n; }
  void set_magic(const std::string& m) { magic_ = m; }

  // A record with raw value bytes: the caller encodes (or corrupts) the value.
  void AddRaw(const std::string& key, uint32_t type, const std::string& value) {
    kvs_ += Str(key) + Pod<uint32_t>(type) + value;
    ++kv_count_;
  }
  void AddU8(const std::string& k, uint8_t v) { AddRaw(k, 0, Pod(v)); }
  void AddI8(const std::string& k, int8_t v) { AddRaw(k, 1, Pod(v)); }
  void AddU16(const std::string& k, uint16_t v) { AddRaw(k, 2, Pod(v)); }
  void AddI16(const std::string& k, int16_t v) { AddRaw(k, 3, Pod(v)); }
  void AddU32(const std::string& k, uint32_t v) { AddRaw(k, 4, Pod(v)); }
  void AddI32(const std::string& k, int32_t v) { AddRaw(k, 5, Pod(v)); }
  void AddF32(const std::string& k, float v) { AddRaw(k, 6, Pod(v)); }
  void AddBool(const std::string& k, bool v) { AddRaw(k, 7, Pod<uint8_t>(v ? 1 : 0)); }
  void AddString(const std::string& k, const std::string& v) { AddRaw(k, 8, Str(v)); }
  void AddU64(const std::string& k, uint64_t v) { AddRaw(k, 10, Pod(v)); }
  void AddI64(const std::string& k, int64_t v) { AddRaw(k, 11, Pod(v)); }
  void AddF64(const std::string& k, double v) { AddRaw(k, 12, Pod(v)); }
  void AddStringArray(const std::string& k, const std::vector<std::string>& v) {
    std::string body = Pod<uint32_t>(8) + Pod<uint64_t>(v.size());
    for (const std::string& s : v) body += Str(s);
    AddRaw(k, 9, body);
  }
  void AddI32Array(const std::string& k, const std::vector<int32_t>& v) {
    std::string body = Pod<uint32_t>(5) + Pod<uint64_t>(v.size());
    for (int32_t x : v) body += Pod(x);
    AddRaw(k, 9, body);
  }

  void AddTensor(Tensor t) { tensors_.push_back(std::move(t)); }
  // An F32 tensor filled with `fill`.
  void AddF32Tensor(const std::string& name, std::vector<uint64_t> dims, float fill = 0.0f) {
    uint64_t n = 1;
    for (uint64_t d : dims) n *= d;
    std::string data;
    for (uint64_t i = 0; i < n; ++i) data += Pod(fill);
    AddTensor({name, std::move(dims), 0, std::move(data), std::nullopt});
  }

  std::string Build() const {
    std::string out = magic_ + Pod(version_);
    out += Pod<uint64_t>(tensor_count_override_.value_or(tensors_.size()));
    out += Pod<uint64_t>(kv_count_override_.value_or(kv_count_));
    out += kvs_;
    std::vector<uint64_t> offsets;
    uint64_t next = 0;
    for (const Tensor& t : tensors_) {
      const uint64_t off = t.offset.value_or(next);
      offsets.push_back(off);
      next = Align(off + t.data.size());
      out += Str(t.name) + Pod<uint32_t>(t.dims.size());
      for (uint64_t d : t.dims) out += Pod(d);
      out += Pod(t.ggml_type) + Pod(off);
    }
    out.resize(Align(out.size()), '\0');
    const size_t data_start = out.size();
    for (size_t i = 0; i < tensors_.size(); ++i) {
      if (tensors_[i].data.empty()) continue;  // also keeps absurd test offsets from wrapping
      const size_t end = data_start + offsets[i] + tensors_[i].data.size();
      if (out.size() < end) out.resize(end, '\0');
      std::memcpy(out.data() + data_start + offsets[i], tensors_[i].data.data(),
                  tensors_[i].data.size());
    }
    return out;
  }

 private:
  uint64_t Align(uint64_t x) const { return x + (alignment_ - x % alignment_) % alignment_; }

  std::string magic_ = "GGUF";
  uint32_t version_ = 3;
  uint64_t alignment_ = 32;
  std::string kvs_;
  uint64_t kv_count_ = 0;
  std::optional<uint64_t> tensor_count_override_;
  std::optional<uint64_t> kv_count_override_;
  std::vector<Tensor> tensors_;
};

// A tiny valid Llama file with F32 weights: 2 layers, d_model 32, 4 heads of 8, 2 KV heads, FFN 64,
// vocab 8 whose tokens include <|endoftext|> (0), <|im_end|> (2) and <|eot_id|> (6); eos = 2.
// `skip` omits the named tensor; `reshape` gives the named tensor dims {7}.
inline GgufWriter TinyLlamaWriter(const std::string& skip = "", const std::string& reshape = "") {
  GgufWriter w;
  w.AddString("general.architecture", "llama");
  w.AddString("general.name", "tiny");
  w.AddU32("llama.block_count", 2);
  w.AddU64("llama.context_length", 256);  // u64 on purpose: any integer type is accepted
  w.AddU32("llama.embedding_length", 32);
  w.AddI32("llama.feed_forward_length", 64);
  w.AddU32("llama.attention.head_count", 4);
  w.AddU16("llama.attention.head_count_kv", 2);
  w.AddF32("llama.attention.layer_norm_rms_epsilon", 1e-6f);
  w.AddF32("llama.rope.freq_base", 100000.0f);
  w.AddString("tokenizer.ggml.model", "gpt2");
  w.AddStringArray("tokenizer.ggml.tokens",
                   {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "a", "b", "c", "<|eot_id|>",
                    "d"});
  w.AddU32("tokenizer.ggml.bos_token_id", 1);
  w.AddU32("tokenizer.ggml.eos_token_id", 2);
  float fill = 0.0f;
  auto add = [&](const std::string& name, std::vector<uint64_t> dims) {
    fill += 0.125f;
    if (name == skip) return;
    if (name == reshape) dims = {7};
    w.AddF32Tensor(name, std::move(dims), fill);
  };
  add("token_embd.weight", {32, 8});
  for (int l = 0; l < 2; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    add(p + "attn_norm.weight", {32});
    add(p + "attn_q.weight", {32, 32});
    add(p + "attn_k.weight", {32, 16});
    add(p + "attn_v.weight", {32, 16});
    add(p + "attn_output.weight", {32, 32});
    add(p + "ffn_norm.weight", {32});
    add(p + "ffn_gate.weight", {32, 64});
    add(p + "ffn_up.weight", {32, 64});
    add(p + "ffn_down.weight", {64, 32});
  }
  add("output_norm.weight", {32});
  return w;
}

}  // namespace tandem::testing
