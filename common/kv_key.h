// common/kv_key.h
//
// KV identity (ARCHITECTURE.md §4.5): BlockKey, the SHA-256 chain value naming one block of a
// segment's KV, and KvFormat, everything that makes KV bytes interchangeable between processes
// (model fingerprint, layout, dtype, block size, namespace). Keys are pure functions of the token
// ids and the format, with no per-process seed, so every process, run and machine agrees;
// scripts/make_kv_key_golden.py recomputes them with Python's hashlib and tests compare.
//
// common/ may not depend on model_format, so the model and projection fingerprints are held here as
// 32 raw bytes; cli/ and the nodes copy format::Fingerprint::bytes in.
// Plain value types and pure functions; thread-safe.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/dtype.h"

namespace tandem {

// Same as format::TokenId; repeated here because common/ cannot include model_format.
using KvTokenId = int32_t;

struct BlockKey {
  std::array<uint8_t, 32> bytes{};

  std::string Hex() const;  // 64 lower-case hex digits
  static absl::StatusOr<BlockKey> FromHex(std::string_view hex);
  bool operator==(const BlockKey&) const = default;
  auto operator<=>(const BlockKey&) const = default;
  template <typename H>
  friend H AbslHashValue(H h, const BlockKey& k) {
    return H::combine_contiguous(std::move(h), k.bytes.data(), k.bytes.size());
  }
};

// Tokens per KV block unless the cluster says otherwise (--kv_block_tokens): 5.9 MB per SmolLM2
// block in f16, so per-object costs vanish (ARCHITECTURE.md §4.5 "Why 256-token blocks").
inline constexpr int32_t kDefaultKvBlockTokens = 256;

enum class KvLayout : uint8_t { kGqa = 0, kLatent = 1 };
std::string_view KvLayoutName(KvLayout layout);  // "gqa" | "latent"

// §5.1 dtype codes (0 f32, 1 f16, 2 bf16); nullopt-like -1 for dtypes KV cannot use.
int KvDTypeCode(DType dtype);
// Inverse of KvDTypeCode: nullopt for a code that is not one of the above (never a default dtype,
// so a header with a reserved code fails validation instead of being read as something else).
std::optional<DType> DTypeFromKvCode(uint8_t code);

struct KvFormat {
  std::array<uint8_t, 32> model{};       // format::ModelFingerprint(gguf).bytes
  KvLayout layout = KvLayout::kGqa;      // kLatent: latent_rank and projection are set
  int32_t latent_rank = 0;               // zero for kGqa
  std::array<uint8_t, 32> projection{};  // latent sidecar hash; zero for kGqa
  DType dtype = DType::kF16;             // f32, f16 or bf16
  int32_t block_tokens = kDefaultKvBlockTokens;
  std::string ns;  // tenant namespace, "" by default

  // InvalidArgument naming the field: dtype not f32/f16/bf16, block_tokens outside 1..65535,
  // latent_rank outside 1..65535 for layout latent, latent fields inconsistent with the layout.
  absl::Status Validate() const;

  // The canonical encoding hashed by Root(), also stored as the `_tandem/format` record:
  //   "tandem-kv-v1" | model[32] | u8 layout | i32le latent_rank | projection[32] | u8 dtype code
  //   | i32le block_tokens | u32le len(ns) | ns bytes
  std::string Encode() const;
  // Inverse of Encode(); InvalidArgument on anything else.
  static absl::StatusOr<KvFormat> Decode(std::string_view bytes);

  // SHA-256(Encode()): the parent of every segment's first block.
  BlockKey Root() const;

  // "" when equal, else the first differing field with both values:
  // "dtype f32, expected f16". `this` is the observed format, `expected` ours.
  std::string Diff(const KvFormat& expected) const;
  std::string DebugString() const;

  bool operator==(const KvFormat&) const = default;
};

// SHA-256(parent || u32le tokens): the key of one block whose previous block has key `parent`.
BlockKey NextBlockKey(const BlockKey& parent, absl::Span<const KvTokenId> tokens);

// key[-1] = format.Root(); key[i] = NextBlockKey(key[i-1], tokens of block i), blocks of
// format.block_tokens tokens. A segment's last block may be partial; its key covers only its own
// tokens. An empty segment has no keys.
std::vector<BlockKey> ChainKeys(const KvFormat& format, absl::Span<const KvTokenId> segment_tokens);

// Document KV (CacheBlend, ARCHITECTURE.md §4.5): a document's KV is computed alone after a fixed
// `preamble` and reused at any position, so its keys chain over its own tokens only, from a root
// that names the format and the preamble and can never equal format.Root() or a prefix chain:
// SHA-256("tandem-doc-v1" | Root() | u32le preamble tokens).
BlockKey DocumentRoot(const KvFormat& format, absl::Span<const KvTokenId> preamble);
// ChainKeys from DocumentRoot(format, preamble) instead of format.Root().
std::vector<BlockKey> DocumentKeys(const KvFormat& format, absl::Span<const KvTokenId> preamble,
                                   absl::Span<const KvTokenId> document_tokens);

}  // namespace tandem
