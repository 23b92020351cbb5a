#include "kv_store/kv_block.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "common/little_endian.h"
#include "common/status.h"

namespace tandem::kv {
namespace {

constexpr char kMagic[4] = {'T', 'K', 'V', 'B'};
constexpr std::string_view kReasonPayloadUrl = "type.tandem/kv.MissReason";
constexpr uint64_t AlignUp(uint64_t v) { return (v + 63) & ~uint64_t{63}; }

// Bytes per element of a §5.1 dtype code; 0 for a code this build does not know.
int64_t DTypeBytesOfCode(uint8_t code) {
  const std::optional<DType> dt = DTypeFromKvCode(code);
  return dt ? DTypeBlockBytes(*dt) : 0;
}

absl::Status Fail(MissReason reason, std::string_view message) {
  return MissStatus(absl::StatusCode::kDataLoss, reason, message);
}

void EncodeHeader(const BlockHeader& h, uint8_t* p) {
  std::memset(p, 0, kHeaderBytes);
  std::memcpy(p, kMagic, 4);
  StoreLe<uint16_t>(p, 4, h.format_version);
  StoreLe<uint16_t>(p, 6, kHeaderBytes);
  std::memcpy(p + 8, h.block_key.bytes.data(), 32);
  std::memcpy(p + 40, h.parent_key.bytes.data(), 32);
  std::memcpy(p + 72, h.model.data(), 32);
  std::memcpy(p + 104, h.projection.data(), 32);
  p[136] = h.layout;
  p[137] = h.dtype;
  StoreLe<uint16_t>(p, 138, h.flags);
  StoreLe<uint16_t>(p, 140, h.num_layers);
  StoreLe<uint16_t>(p, 142, h.num_kv_heads);
  StoreLe<uint16_t>(p, 144, h.head_dim_or_rank);
  StoreLe<uint16_t>(p, 146, h.block_tokens);
  StoreLe<uint16_t>(p, 148, h.num_tokens);
  StoreLe<int32_t>(p, 152, h.pos_begin);
  StoreLe<uint64_t>(p, 160, h.tokens_offset);
  StoreLe<uint64_t>(p, 168, h.payload_offset);
  StoreLe<uint64_t>(p, 176, h.payload_bytes);
  StoreLe<uint64_t>(p, 184, h.payload_checksum);
  if (h.format_version >= kDocumentFormatVersion) p[192] = static_cast<uint8_t>(h.k_rope);
  StoreLe<uint64_t>(p, 248, Xxh3_64(p, 248));
}

BlockHeader DecodeHeader(const uint8_t* p) {
  BlockHeader h;
  h.format_version = LoadLe<uint16_t>(p, 4);
  std::memcpy(h.block_key.bytes.data(), p + 8, 32);
  std::memcpy(h.parent_key.bytes.data(), p + 40, 32);
  std::memcpy(h.model.data(), p + 72, 32);
  std::memcpy(h.projection.data(), p + 104, 32);
  h.layout = p[136];
  h.dtype = p[137];
  h.flags = LoadLe<uint16_t>(p, 138);
  h.num_layers = LoadLe<uint16_t>(p, 140);
  h.num_kv_heads = LoadLe<uint16_t>(p, 142);
  h.head_dim_or_rank = LoadLe<uint16_t>(p, 144);
  h.block_tokens = LoadLe<uint16_t>(p, 146);
  h.num_tokens = LoadLe<uint16_t>(p, 148);
  h.pos_begin = LoadLe<int32_t>(p, 152);
  h.tokens_offset = LoadLe<uint64_t>(p, 160);
  h.payload_offset = LoadLe<uint64_t>(p, 168);
  h.payload_bytes = LoadLe<uint64_t>(p, 176);
  h.payload_checksum = LoadLe<uint64_t>(p, 184);
  h.k_rope = static_cast<KRope>(p[192]);  // checked by ParseImpl
  return h;
}

// Copies a strided tensor whose innermost dimension is contiguous into `dst`, row-major.
void CopyRows(const TensorView& t, uint8_t* dst) {
  const int64_t row_bytes = t.shape[t.ndim - 1] * DTypeBlockBytes(t.dtype);
  if (t.is_contiguous()) {
    std::memcpy(dst, t.data, static_cast<size_t>(t.nbytes()));
    return;
  }
  const int64_t d0 = t.shape[0];
  const int64_t d1 = t.ndim == 3 ? t.shape[1] : 1;
  for (int64_t i = 0; i < d0; ++i) {
    for (int64_t j = 0; j < d1; ++j) {
      const auto* src = static_cast<const uint8_t*>(t.data) + i * t.stride_bytes[0] +
                        (t.ndim == 3 ? j * t.stride_bytes[1] : 0);
      std::memcpy(dst, src, static_cast<size_t>(row_bytes));
      dst += row_bytes;
    }
  }
}

}  // namespace

std::string_view MissReasonName(MissReason reason) {
  switch (reason) {
    case MissReason::kNotFound:
      return "not_found";
    case MissReason::kHeader:
      return "header";
    case MissReason::kVersion:
      return "version";
    case MissReason::kFormatMismatch:
      return "format_mismatch";
    case MissReason::kKeyMismatch:
      return "key_mismatch";
    case MissReason::kChecksum:
      return "checksum";
    case MissReason::kTierUnavailable:
      return "tier_unavailable";
    case MissReason::kTimeout:
      return "timeout";
    case MissReason::kAuth:
      return "auth";
  }
  return "unknown";
}

absl::Status MissStatus(absl::StatusCode code, MissReason reason, std::string_view message) {
  absl::Status s(code, AV(message));
  s.SetPayload(AV(kReasonPayloadUrl), absl::Cord(AV(MissReasonName(reason))));
  return s;
}

std::optional<MissReason> MissReasonOf(const absl::Status& s) {
  if (s.ok()) return std::nullopt;
  if (auto p = s.GetPayload(AV(kReasonPayloadUrl))) {
    const std::string name(*p);
    for (int i = 0; i < kNumMissReasons; ++i) {
      const auto r = static_cast<MissReason>(i);
      if (MissReasonName(r) == name) return r;
    }
  }
  switch (s.code()) {
    case absl::StatusCode::kNotFound:
      return MissReason::kNotFound;
    case absl::StatusCode::kUnavailable:
      return MissReason::kTierUnavailable;
    case absl::StatusCode::kDeadlineExceeded:
      return MissReason::kTimeout;
    case absl::StatusCode::kDataLoss:
      return MissReason::kChecksum;
    default:
      return MissReason::kHeader;
  }
}

void Bytes::Free::operator()(uint8_t* p) const { std::free(p); }

Bytes::Bytes(size_t size) : size_(size) {
  void* p = std::aligned_alloc(64, AlignUp(size == 0 ? 1 : size));
  if (p == nullptr) throw std::bad_alloc();
  std::memset(p, 0, size);
  data_.reset(static_cast<uint8_t*>(p));
}

std::shared_ptr<Bytes> Bytes::Copy(std::string_view data) {
  auto b = std::make_shared<Bytes>(data.size());
  if (!data.empty()) std::memcpy(b->data(), data.data(), data.size());
  return b;
}

int64_t KvTensorBytes(const BlockHeader& h) {
  const int64_t per_token =
      h.layout == 0 ? int64_t{h.num_kv_heads} * h.head_dim_or_rank : int64_t{h.head_dim_or_rank};
  return int64_t{h.num_tokens} * per_token * DTypeBytesOfCode(h.dtype);
}

absl::StatusOr<KvBlock> KvBlock::Build(const KvFormat& f, const BlockKey& parent,
                                       absl::Span<const KvTokenId> tokens, int32_t pos_begin,
                                       absl::Span<const TensorView> k,
                                       absl::Span<const TensorView> v, bool holds_generated) {
  return BuildImpl(f, parent, tokens, pos_begin, k, v, holds_generated ? kFlagGenerated : 0,
                   kFormatVersion, KRope::kRotated);
}

absl::StatusOr<KvBlock> KvBlock::BuildDocument(const KvFormat& f, const BlockKey& parent,
                                               absl::Span<const KvTokenId> tokens,
                                               int32_t pos_begin, absl::Span<const TensorView> k,
                                               absl::Span<const TensorView> v, KRope k_rope) {
  if (k_rope != KRope::kRotated && k_rope != KRope::kUnrotated) {
    return absl::InvalidArgumentError("kv block: unknown k_rope");
  }
  return BuildImpl(f, parent, tokens, pos_begin, k, v, kFlagDocument, kDocumentFormatVersion,
                   k_rope);
}

absl::StatusOr<KvBlock> KvBlock::BuildImpl(const KvFormat& f, const BlockKey& parent,
                                           absl::Span<const KvTokenId> tokens, int32_t pos_begin,
                                           absl::Span<const TensorView> k,
                                           absl::Span<const TensorView> v, uint16_t extra_flags,
                                           uint16_t version, KRope k_rope) {
  TANDEM_RETURN_IF_ERROR(f.Validate());
  if (tokens.empty() || tokens.size() > static_cast<size_t>(f.block_tokens)) {
    return absl::InvalidArgumentError(absl::StrCat("kv block: ", tokens.size(),
                                                   " tokens, expected 1..", f.block_tokens));
  }
  if (k.empty() || k.size() != v.size() || k.size() > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("kv block: ", k.size(), " K layers and ", v.size(), " V layers"));
  }
  const bool gqa = f.layout == KvLayout::kGqa;
  const int want_ndim = gqa ? 3 : 2;
  const TensorView& t0 = k[0];
  for (size_t l = 0; l < k.size(); ++l) {
    for (const TensorView* t : {&k[l], &v[l]}) {
      if (t->ndim != want_ndim || t->dtype != f.dtype || t->device.kind != DeviceKind::kCpu ||
          t->shape != t0.shape || t->shape[0] != static_cast<int64_t>(tokens.size()) ||
          t->data == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(
            "kv block: layer ", l, " tensor ", t->DebugString(), " does not match ",
            gqa ? "[n_tokens, n_kv_heads, head_dim]" : "[n_tokens, rank]", " of ",
            AV(DTypeName(f.dtype)), " with n_tokens ", tokens.size(), " on the CPU"));
      }
    }
  }
  // The header holds these in u16 fields; a wider tensor would be copied in full behind a header
  // that describes fewer bytes.
  for (int d = 1; d < want_ndim; ++d) {
    if (t0.shape[d] < 1 || t0.shape[d] > 65535) {
      return absl::InvalidArgumentError(absl::StrCat("kv block: tensor dimension ", d, " is ",
                                                     t0.shape[d], ", outside 1..65535"));
    }
  }
  if (!gqa && t0.shape[1] != f.latent_rank) {
    return absl::InvalidArgumentError(absl::StrCat("kv block: latent width ", t0.shape[1],
                                                   ", format rank ", f.latent_rank));
  }
  BlockHeader h;
  h.format_version = version;
  h.k_rope = k_rope;
  h.parent_key = parent;
  h.block_key = NextBlockKey(parent, tokens);
  h.model = f.model;
  h.projection = f.projection;
  h.layout = static_cast<uint8_t>(f.layout);
  h.dtype = static_cast<uint8_t>(KvDTypeCode(f.dtype));
  h.flags = static_cast<uint16_t>(
      (tokens.size() < static_cast<size_t>(f.block_tokens) ? kFlagPartial : 0) | extra_flags);
  h.num_layers = static_cast<uint16_t>(k.size());
  h.num_kv_heads = gqa ? static_cast<uint16_t>(t0.shape[1]) : 0;
  h.head_dim_or_rank = static_cast<uint16_t>(gqa ? t0.shape[2] : t0.shape[1]);
  h.block_tokens = static_cast<uint16_t>(f.block_tokens);
  h.num_tokens = static_cast<uint16_t>(tokens.size());
  h.pos_begin = pos_begin;
  h.payload_offset = AlignUp(kHeaderBytes + 4 * tokens.size());
  const uint64_t tensor = AlignUp(static_cast<uint64_t>(KvTensorBytes(h)));
  h.payload_bytes = tensor * 2 * k.size();

  auto bytes = std::make_shared<Bytes>(h.payload_offset + h.payload_bytes);
  uint8_t* p = bytes->data();
  for (size_t i = 0; i < tokens.size(); ++i) {
    StoreLe<uint32_t>(p, kHeaderBytes + 4 * i, static_cast<uint32_t>(tokens[i]));
  }
  for (size_t l = 0; l < k.size(); ++l) {
    CopyRows(k[l], p + h.payload_offset + tensor * 2 * l);
    CopyRows(v[l], p + h.payload_offset + tensor * (2 * l + 1));
  }
  h.payload_checksum = Xxh3_64(p + kHeaderBytes, bytes->size() - kHeaderBytes);
  EncodeHeader(h, p);
  KvBlock block;
  block.header_ = h;
  block.bytes_ = std::move(bytes);
  return block;
}

absl::StatusOr<KvBlock> KvBlock::Parse(std::shared_ptr<const Bytes> bytes,
                                       const KvFormat& expected, const BlockKey& expected_key) {
  return ParseImpl(std::move(bytes), &expected, expected_key);
}

absl::StatusOr<KvBlock> KvBlock::ParseAnyFormat(std::shared_ptr<const Bytes> bytes,
                                                const BlockKey& expected_key) {
  return ParseImpl(std::move(bytes), nullptr, expected_key);
}

absl::StatusOr<KvBlock> KvBlock::ParseImpl(std::shared_ptr<const Bytes> bytes,
                                           const KvFormat* expected,
                                           const BlockKey& expected_key) {
  if (bytes == nullptr || bytes->size() < kHeaderBytes ||
      std::memcmp(bytes->data(), kMagic, 4) != 0) {
    return Fail(MissReason::kHeader,
                absl::StrCat("kv block of ", bytes ? bytes->size() : 0,
                             " bytes: no TKVB magic or shorter than the header"));
  }
  const uint8_t* p = bytes->data();
  const uint16_t version = LoadLe<uint16_t>(p, 4);
  if (version != kFormatVersion && version != kDocumentFormatVersion) {
    return Fail(MissReason::kVersion,
                absl::StrCat("kv block format version ", version, ", this build reads ",
                             kFormatVersion, " and ", kDocumentFormatVersion, " (documents)"));
  }
  if (LoadLe<uint64_t>(p, 248) != Xxh3_64(p, 248)) {
    return Fail(MissReason::kChecksum, "kv block header checksum mismatch");
  }
  const BlockHeader h = DecodeHeader(p);
  if (LoadLe<uint16_t>(p, 6) != kHeaderBytes || DTypeBytesOfCode(h.dtype) == 0 || h.layout > 1) {
    return Fail(MissReason::kHeader, "kv block header: bad header_bytes, dtype or layout code");
  }
  // Version 2 is exactly the document blocks, with a known k_rope; version 1 has neither (its byte
  // 192 is reserved, zero).
  const bool v2 = version == kDocumentFormatVersion;
  if (h.is_document() != v2 || static_cast<uint8_t>(h.k_rope) > 1 ||
      (!v2 && h.k_rope != KRope::kRotated)) {
    return Fail(MissReason::kHeader,
                absl::StrCat("kv block header: version ", version, " with flags ", h.flags,
                             " and k_rope code ", static_cast<int>(h.k_rope),
                             " (version 2 is exactly the document blocks)"));
  }
  if (expected != nullptr) {
    KvFormat seen;
    seen.model = h.model;
    seen.layout = static_cast<KvLayout>(h.layout);
    seen.latent_rank = h.layout == 1 ? h.head_dim_or_rank : expected->latent_rank;
    seen.projection = h.projection;
    seen.dtype = *DTypeFromKvCode(h.dtype);  // known: checked above
    seen.block_tokens = h.block_tokens;
    seen.ns = expected->ns;
    if (const std::string diff = seen.Diff(*expected); !diff.empty()) {
      return Fail(MissReason::kFormatMismatch, absl::StrCat("kv block of another format: ", diff));
    }
  }
  // Every factor comes from the (attacker-controllable) header: multiply with overflow checks, so
  // that a wrapped product can never pass the size comparison.
  const uint64_t tensor = AlignUp(static_cast<uint64_t>(KvTensorBytes(h)));
  uint64_t payload = 0;
  uint64_t total = 0;
  const bool overflow = __builtin_mul_overflow(tensor, uint64_t{2} * h.num_layers, &payload) ||
                        __builtin_add_overflow(h.payload_offset, h.payload_bytes, &total);
  if (overflow || h.num_tokens == 0 || h.num_tokens > h.block_tokens || h.num_layers == 0 ||
      (h.layout == 0 && h.num_kv_heads == 0) || h.head_dim_or_rank == 0 ||
      h.tokens_offset != kHeaderBytes ||
      h.payload_offset != AlignUp(kHeaderBytes + 4 * uint64_t{h.num_tokens}) ||
      h.payload_bytes != payload || total != bytes->size()) {
    return Fail(MissReason::kHeader,
                absl::StrCat("kv block sizes do not add up: ", h.num_tokens, " tokens, ",
                             h.num_layers, " layers, payload ", h.payload_bytes, " at ",
                             h.payload_offset, ", ", bytes->size(), " bytes in all"));
  }
  if (h.block_key != expected_key) {
    return Fail(MissReason::kKeyMismatch, absl::StrCat("kv block holds key ", h.block_key.Hex(),
                                                       ", requested ", expected_key.Hex()));
  }
  KvBlock block;
  block.header_ = h;
  block.bytes_ = std::move(bytes);
  if (NextBlockKey(h.parent_key, block.tokens()) != h.block_key) {
    return Fail(MissReason::kKeyMismatch,
                absl::StrCat("kv block ", h.block_key.Hex(), ": key is not SHA-256(parent, tokens)"));
  }
  if (Xxh3_64(p + kHeaderBytes, block.bytes_->size() - kHeaderBytes) != h.payload_checksum) {
    return Fail(MissReason::kChecksum,
                absl::StrCat("kv block ", h.block_key.Hex(), ": payload checksum mismatch"));
  }
  return block;
}

absl::Span<const KvTokenId> KvBlock::tokens() const {
  return {reinterpret_cast<const KvTokenId*>(bytes_->data() + kHeaderBytes), header_.num_tokens};
}

TensorView KvBlock::Tensor(int layer, int which) const {
  TANDEM_CHECK(bytes_ != nullptr && layer >= 0 && layer < header_.num_layers)
      << "kv block: layer " << layer << " of a block with " << header_.num_layers << " layers";
  const uint64_t tensor = AlignUp(static_cast<uint64_t>(KvTensorBytes(header_)));
  auto* data = const_cast<uint8_t*>(bytes_->data()) + header_.payload_offset +
               tensor * (2 * static_cast<uint64_t>(layer) + which);
  const DType dt = *DTypeFromKvCode(header_.dtype);  // validated by Build/Parse
  if (header_.layout == 0) {
    return TensorView::Contiguous(data, dt,
                                  {header_.num_tokens, header_.num_kv_heads,
                                   header_.head_dim_or_rank});
  }
  return TensorView::Contiguous(data, dt, {header_.num_tokens, header_.head_dim_or_rank});
}

TensorView KvBlock::k(int layer) const { return Tensor(layer, 0); }
TensorView KvBlock::v(int layer) const { return Tensor(layer, 1); }

KvFormat KvBlock::format() const {
  KvFormat f;
  f.model = header_.model;
  f.layout = static_cast<KvLayout>(header_.layout);
  f.latent_rank = header_.layout == 1 ? header_.head_dim_or_rank : 0;
  f.projection = header_.projection;
  f.dtype = DTypeFromKvCode(header_.dtype).value_or(DType::kF16);
  f.block_tokens = header_.block_tokens;
  return f;
}

}  // namespace tandem::kv
