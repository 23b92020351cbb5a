// kv_store/kv_block.h
//
// KvBlock: one block's KV for all layers in the self-describing, checksummed §5.1 format
// (ARCHITECTURE.md §4.5, §5.1): a 256-byte little-endian header, the token ids, then per layer K and
// V, each 64-byte aligned. The same bytes are stored in every tier and carried on the wire, so a
// block read from anywhere is validated by one function, Parse(), which fails closed with a
// MissReason. MissReason travels as a Status payload (MissReasonOf() reads it back), so callers keep
// the plain absl::Status conventions.
//
// Ownership: a KvBlock is an immutable, refcounted view of shared bytes; copies are cheap and share
// the bytes, which live as long as any copy (or a TensorView a caller keeps while holding a copy).
// Thread-safe: all methods are const.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/kv_key.h"
#include "common/tensor_view.h"

namespace tandem::kv {

enum class MissReason : uint8_t {
  kNotFound,
  kHeader,
  kVersion,
  kFormatMismatch,
  kKeyMismatch,
  kChecksum,
  kTierUnavailable,
  kTimeout,
  kAuth,  // a shared tier's block without a valid MAC under the cluster secret (kv_seal.h)
};
inline constexpr int kNumMissReasons = 9;
// Metric label: not_found, header, version, format_mismatch, key_mismatch, checksum,
// tier_unavailable, timeout, auth.
std::string_view MissReasonName(MissReason reason);

// A Status of `code` carrying `reason` as its payload.
absl::Status MissStatus(absl::StatusCode code, MissReason reason, std::string_view message);
// The reason carried by `s`; otherwise derived from the code (NotFound -> not_found, Unavailable
// -> tier_unavailable, DeadlineExceeded -> timeout, DataLoss -> checksum, else header).
// nullopt for an OK status.
std::optional<MissReason> MissReasonOf(const absl::Status& s);

// Heap bytes with a 64-byte aligned start, so that the payload's 64-byte aligned tensors stay
// aligned in memory. Move-only; shared through std::shared_ptr<const Bytes>.
class Bytes {
 public:
  Bytes() = default;
  explicit Bytes(size_t size);  // zero-filled
  static std::shared_ptr<Bytes> Copy(std::string_view data);
  Bytes(Bytes&&) noexcept = default;
  Bytes& operator=(Bytes&&) noexcept = default;

  uint8_t* data() { return data_.get(); }
  const uint8_t* data() const { return data_.get(); }
  size_t size() const { return size_; }
  absl::Span<const uint8_t> span() const { return {data_.get(), size_}; }
  std::string_view view() const { return {reinterpret_cast<const char*>(data_.get()), size_}; }

 private:
  struct Free {
    void operator()(uint8_t* p) const;
  };
  std::unique_ptr<uint8_t[], Free> data_;
  size_t size_ = 0;
};

inline constexpr size_t kHeaderBytes = 256;
// Version 1: a segment's KV at the positions it holds in its prompt (prefix-chained keys), K after
// RoPE. Version 2: a document's position-independent KV (CacheBlend; DocumentKeys), computed after
// the document preamble, flagged kFlagDocument and saying in `k_rope` how K is stored. Documents
// are version 2 so that a reader that knows only version 1 refuses them (a `version` miss) instead
// of importing KV that belongs at other positions; ordinary blocks stay version 1, readable by
// every node already deployed.
inline constexpr uint16_t kFormatVersion = 1;
inline constexpr uint16_t kDocumentFormatVersion = 2;
inline constexpr uint16_t kFlagPartial = 1;
inline constexpr uint16_t kFlagGenerated = 2;
inline constexpr uint16_t kFlagDocument = 4;

// How a block's K rows are stored (header byte 192, version 2; version 1 is always kRotated).
enum class KRope : uint8_t {
  kRotated = 0,    // RoPE applied at the block's own positions, pos_begin ..
  kUnrotated = 1,  // before RoPE (a reader must rotate at the positions it uses)
};

// The decoded §5.1 header (native integers).
struct BlockHeader {
  uint16_t format_version = kFormatVersion;
  BlockKey block_key;
  BlockKey parent_key;
  std::array<uint8_t, 32> model{};
  std::array<uint8_t, 32> projection{};
  uint8_t layout = 0;
  uint8_t dtype = 0;
  uint16_t flags = 0;
  uint16_t num_layers = 0;
  uint16_t num_kv_heads = 0;  // 0 when latent
  uint16_t head_dim_or_rank = 0;
  uint16_t block_tokens = 0;
  uint16_t num_tokens = 0;
  int32_t pos_begin = 0;
  uint64_t tokens_offset = kHeaderBytes;
  uint64_t payload_offset = 0;
  uint64_t payload_bytes = 0;
  uint64_t payload_checksum = 0;
  KRope k_rope = KRope::kRotated;
  bool is_document() const { return (flags & kFlagDocument) != 0; }
};

class KvBlock {
 public:
  // Copies K and V (one TensorView per layer, CPU memory, dtype = f.dtype; GQA: [n_tokens,
  // n_kv_heads, head_dim], latent: [n_tokens, rank]) into a new block whose key is
  // NextBlockKey(parent, tokens). InvalidArgument naming the bad argument otherwise.
  static absl::StatusOr<KvBlock> Build(const KvFormat& f, const BlockKey& parent,
                                       absl::Span<const KvTokenId> tokens, int32_t pos_begin,
                                       absl::Span<const TensorView> k,
                                       absl::Span<const TensorView> v, bool holds_generated = false);

  // A document block (version 2, kFlagDocument): like Build, with `parent` a DocumentRoot chain and
  // K rows stored as `k_rope` says.
  static absl::StatusOr<KvBlock> BuildDocument(const KvFormat& f, const BlockKey& parent,
                                               absl::Span<const KvTokenId> tokens,
                                               int32_t pos_begin, absl::Span<const TensorView> k,
                                               absl::Span<const TensorView> v, KRope k_rope);

  // Validates in the §5.1 order: magic (header), version (version), header checksum (checksum),
  // header fields against `expected` (format_mismatch, naming the field), sizes against the byte
  // length (header), block_key against `expected_key` and SHA-256(parent || tokens)
  // (key_mismatch), payload checksum (checksum). A failure is DataLoss with its MissReason.
  static absl::StatusOr<KvBlock> Parse(std::shared_ptr<const Bytes> bytes,
                                       const KvFormat& expected, const BlockKey& expected_key);
  // Parse without the format comparison: integrity only (operators' `tandem kv verify`, which
  // may not know the model). The header's fields are trusted as the block's format.
  static absl::StatusOr<KvBlock> ParseAnyFormat(std::shared_ptr<const Bytes> bytes,
                                                const BlockKey& expected_key);

  KvBlock() = default;  // empty; only for containers. Every accessor below needs a built block.

  const BlockKey& key() const { return header_.block_key; }
  const BlockKey& parent() const { return header_.parent_key; }
  const BlockHeader& header() const { return header_; }
  absl::Span<const KvTokenId> tokens() const;  // positions pos_begin() .. + size - 1
  int32_t pos_begin() const { return header_.pos_begin; }
  int num_layers() const { return header_.num_layers; }
  int num_tokens() const { return header_.num_tokens; }
  TensorView k(int layer) const;
  TensorView v(int layer) const;
  absl::Span<const uint8_t> bytes() const { return bytes_->span(); }
  const std::shared_ptr<const Bytes>& shared_bytes() const { return bytes_; }
  size_t size() const { return bytes_ ? bytes_->size() : 0; }
  // The KvFormat the header describes (ns is not in the header and is left empty).
  KvFormat format() const;

 private:
  static absl::StatusOr<KvBlock> BuildImpl(const KvFormat& f, const BlockKey& parent,
                                           absl::Span<const KvTokenId> tokens, int32_t pos_begin,
                                           absl::Span<const TensorView> k,
                                           absl::Span<const TensorView> v, uint16_t extra_flags,
                                           uint16_t version, KRope k_rope);
  static absl::StatusOr<KvBlock> ParseImpl(std::shared_ptr<const Bytes> bytes,
                                           const KvFormat* expected, const BlockKey& expected_key);
  TensorView Tensor(int layer, int which) const;

  std::shared_ptr<const Bytes> bytes_;
  BlockHeader header_;
};

// Bytes of one K (or V) tensor of the block, before 64-byte alignment.
int64_t KvTensorBytes(const BlockHeader& h);

}  // namespace tandem::kv
