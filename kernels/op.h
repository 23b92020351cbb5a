// kernels/op.h
//
// The ops of the forward pass, one plain params struct each (with its name, kName), and OpCall,
// the variant every backend runs. Shapes are in brackets, outermost first (TensorView order). Every TensorView lives on the
// backend's device; host-side fields are marked "host". Params never own memory. The exact semantics
// written here are the spec: cpu_ref implements it with naive fp32 loops, and every other backend is
// compared with cpu_ref by tests/consistency/backend_ops_test.cc.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <variant>

#include "absl/types/span.h"
#include "common/tensor_view.h"
#include "kernels/sparse_pattern.h"  // SparseMethod, SparseConfig

namespace tandem::kernels {

// y[n, out] = x[n, in] · W[out, in]^T  (+ y when accumulate; that is how residual adds are fused).
// W: f32, f16, bf16 or any quantized dtype, each row a run of blocks along `in`. x, y: f32.
// Backends may quantize x internally (llama.cpp pairs Q4_1 with Q8_1 activations); that rounding is
// part of the op's tolerance in the harness.
struct MatMulParams {
  static constexpr std::string_view kName = "matmul";
  TensorView w;  // [out, in]
  TensorView x;  // [n, in] f32
  TensorView y;  // [n, out] f32, must not alias x
  bool accumulate = false;
};

// out[i, :] = dequant(table[ids[i], :]).
struct EmbeddingParams {
  static constexpr std::string_view kName = "embedding";
  TensorView table;  // [vocab, d], any weight dtype
  TensorView ids;    // [n] i32, each in [0, vocab)
  TensorView out;    // [n, d] f32
};

// out[i, :] = x[i, :] / sqrt(mean_j x[i, j]^2 + eps) * weight[:]. out may alias x.
struct RmsNormParams {
  static constexpr std::string_view kName = "rmsnorm";
  TensorView x;       // [n, d] f32
  TensorView weight;  // [d] f32
  TensorView out;     // [n, d] f32
  float eps = 1e-5f;
};

enum class RopeStyle : uint8_t {
  kAdjacentPairs,  // GGML "NORM": rotates (x[2i], x[2i+1]); Llama weights from a GGUF
  kHalfSplit,      // GGML "NEOX": rotates (x[i], x[i + n_rot/2]); HF-layout weights
};

// Rotates the first n_rot values of every head of token t by angle positions[t] * base^(-2i/n_rot)
// for pair i, in place. A negative or delta position re-rotates (CacheBlend moves reused K this way).
struct RopeParams {
  static constexpr std::string_view kName = "rope";
  TensorView x;          // [n, heads, head_dim] f32, in place
  TensorView positions;  // [n] i32
  float freq_base = 10000.0f;
  int n_rot = 0;  // <= head_dim, even
  RopeStyle style = RopeStyle::kAdjacentPairs;
};

// out = silu(gate) * up, silu(z) = z / (1 + exp(-z)). out may alias gate or up.
struct SwiGluParams {
  static constexpr std::string_view kName = "swiglu";
  TensorView gate;  // [n, f] f32
  TensorView up;    // [n, f] f32
  TensorView out;   // [n, f] f32
};

// x[i, :] = softmax(scale * x[i, :]) with max subtraction, in place.
struct SoftmaxParams {
  static constexpr std::string_view kName = "softmax";
  TensorView x;  // [n, d] f32
  float scale = 1.0f;
};

// out[i] = sum_j (a[i, j] - b[i, j])^2: the squared L2 distance of each row pair. CacheBlend ranks
// tokens by how far their reused K or V (one row = all of a token's KV heads) is from the freshly
// computed one; the top rows are recomputed.
struct RowDistanceParams {
  static constexpr std::string_view kName = "row_distance";
  TensorView a;    // [n, d] f32
  TensorView b;    // [n, d] f32
  TensorView out;  // [n] f32, must not alias a or b
};

// Writes token t's K and V into the paged pools at slot slots[t] (page = slot / page_tokens,
// offset = slot % page_tokens), converting f32 to the pool's dtype (f32 or f16, round to nearest).
struct KvWriteParams {
  static constexpr std::string_view kName = "kv_write";
  TensorView k;       // [n, n_kv_heads, head_dim] f32
  TensorView v;       // [n, n_kv_heads, head_dim] f32
  TensorView k_pool;  // [num_pages, page_tokens, n_kv_heads, head_dim] f32 | f16
  TensorView v_pool;  // same shape and dtype as k_pool
  TensorView slots;   // [n] i32
};

// The inverse of KvWrite: token t's K and V rows read from pool slot slots[t] into contiguous f32
// tensors (f16 pools widened exactly). AttentionPrefill reads a paged sequence through it. A slot
// outside the pool is InvalidArgument on the CPU backends; a device kernel cannot report it and
// writes that token's rows as zeros (as KvWrite skips such a slot).
struct KvGatherParams {
  static constexpr std::string_view kName = "kv_gather";
  TensorView k_pool;  // [num_pages, page_tokens, n_kv_heads, head_dim] f32 | f16
  TensorView v_pool;  // same shape and dtype as k_pool
  TensorView slots;   // [n] i32
  TensorView k;       // [n, n_kv_heads, head_dim] f32
  TensorView v;       // [n, n_kv_heads, head_dim] f32
};

// Causal attention of query tokens over a paged KV cache, for a batch of sequences at different
// positions (prefill chunks and decode steps mixed). Query t belongs to sequence q_seq[t] and sits at
// position q_pos[t]; it attends that sequence's KV positions 0..q_pos[t] inclusive, which must have
// been written already. Position p of sequence s lives at page page_table[s, p / page_tokens],
// offset p % page_tokens. Query head h reads KV head h / (n_heads / n_kv_heads) (GQA).
// out[t, h, :] = sum_p softmax_p(scale * q[t, h, :] · k[p, g, :]) * v[p, g, :], fp32 softmax.
struct PagedAttentionParams {
  static constexpr std::string_view kName = "paged_attention";
  TensorView q;           // [n, n_heads, head_dim] f32, after RoPE
  TensorView k_pool;      // [num_pages, page_tokens, n_kv_heads, head_dim] f32 | f16
  TensorView v_pool;      // same shape and dtype as k_pool
  TensorView out;         // [n, n_heads, head_dim] f32
  TensorView q_seq;       // [n] i32, index into page_table's first dimension
  TensorView q_pos;       // [n] i32
  TensorView page_table;  // [n_seqs, max_pages_per_seq] i32
  float scale = 0.125f;   // 1/sqrt(head_dim) unless the model says otherwise
};

// SparseMethod (sparse_pattern.h) by name, "dense", "sale", "power", for flags, requests and
// messages; ParseSparseMethod is the inverse (nullopt for any other name).
std::string_view SparseMethodName(SparseMethod m);
std::optional<SparseMethod> ParseSparseMethod(std::string_view name);

// What one AttentionPrefill call computed, counted over (query head, q-block, kv-block) triples that
// hold at least one causal (query, key) pair, at the method's block sizes (dense: 64 x 64).
struct AttentionStats {
  int64_t causal_blocks = 0;
  int64_t computed_blocks = 0;
  double density() const {
    return causal_blocks > 0 ? static_cast<double>(computed_blocks) / causal_blocks : 1.0;
  }
};

// Causal attention of n_q queries over n_kv contiguous keys and values, dense or block-sparse. Query
// t attends key j iff kv_pos[j] <= q_pos[t] and the method keeps j's block for t's block; query head
// h reads KV head h / (n_heads / n_kv_heads) (GQA). Over the kept keys K_t:
// out[t, h, :] = sum_{j in K_t} softmax_j(scale * q[t, h, :] . k[j, g, :]) * v[j, g, :], fp32
// softmax (a query with no kept key, impossible for the causal diagonal, writes zeros).
// `stats`, when set, is overwritten (host memory).
struct AttentionPrefillParams {
  static constexpr std::string_view kName = "attention_prefill";
  TensorView q;       // [n_q, n_heads, head_dim] f32, after RoPE
  TensorView k;       // [n_kv, n_kv_heads, head_dim] f32, after RoPE
  TensorView v;       // [n_kv, n_kv_heads, head_dim] f32
  TensorView out;     // [n_q, n_heads, head_dim] f32, must not alias q, k, v
  TensorView q_pos;   // [n_q] i32, >= 0
  TensorView kv_pos;  // [n_kv] i32, >= 0
  float scale = 0.125f;
  SparseConfig sparse;
  AttentionStats* stats = nullptr;
};

// How one row of logits becomes a token. temperature <= 0 means greedy (argmax, lowest id on ties).
// Otherwise, in this order: logits / temperature; keep the top_k largest (top_k <= 0: all); softmax
// over those; sort by probability, descending (lower id first on ties); keep the shortest prefix
// whose cumulative probability reaches top_p (at least one); then draw u = NextUniform(rng_state)
// and return the first token whose cumulative (renormalised) probability exceeds u.
struct SamplingConfig {
  float temperature = 0.0f;
  int32_t top_k = 0;
  float top_p = 1.0f;
};

// The generator every backend uses, so that a seed gives the same tokens everywhere:
// splitmix64 step, then the top 24 bits as a float in [0, 1).
inline float NextUniform(uint64_t& state) {
  state += 0x9E3779B97F4A7C15ull;
  uint64_t z = state;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
}

struct SampleParams {
  static constexpr std::string_view kName = "sample";
  TensorView logits;                       // [n, vocab] f32 (not modified)
  absl::Span<const SamplingConfig> configs;  // host, [n]
  absl::Span<uint64_t> rng_states;           // host, [n], advanced once per sampled row
  absl::Span<int32_t> out_tokens;            // host, [n]
};

// Every op, as one value: backend.Run(MatMulParams{...}) converts implicitly. The set is closed on
// purpose: a value type needs no allocation per call, a kernel's params stay a plain struct, and
// cpu_ref (the spec) fails to compile until it runs every op listed here. What stays open is each
// backend's own list (kernels/internal/op_table.h): an op a backend does not list is NOT_SUPPORTED
// there, with no edit to that backend. Adding an op is therefore: its params struct and one line
// here; its cpu_ref file, declaration and table line; its harness case; then, only where it is
// accelerated, the backend's kernel and one table line.
using OpCall = std::variant<MatMulParams, EmbeddingParams, RmsNormParams, RopeParams, SwiGluParams,
                            SoftmaxParams, KvWriteParams, KvGatherParams, PagedAttentionParams,
                            SampleParams, AttentionPrefillParams, RowDistanceParams>;

// The call's kName, "matmul", "embedding", ...: for messages, metrics and the harness's --ops filter.
std::string_view OpName(const OpCall& call);

}  // namespace tandem::kernels
