#include "common/kv_key.h"

#include <algorithm>
#include <cstring>
#include <optional>

#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "common/little_endian.h"
#include "common/status.h"

namespace tandem {
namespace {

constexpr std::string_view kRootTag = "tandem-kv-v1";

void PutU32(std::string* out, uint32_t v) { AppendLe<uint32_t>(out, v); }

uint32_t GetU32(const char* p) { return LoadLe<uint32_t>(reinterpret_cast<const uint8_t*>(p), 0); }

}  // namespace

std::optional<DType> DTypeFromKvCode(uint8_t code) {
  switch (code) {
    case 0:
      return DType::kF32;
    case 1:
      return DType::kF16;
    case 2:
      return DType::kBF16;
    default:
      return std::nullopt;
  }
}

std::string BlockKey::Hex() const { return HexEncode(absl::MakeConstSpan(bytes)); }

absl::StatusOr<BlockKey> BlockKey::FromHex(std::string_view hex) {
  TANDEM_ASSIGN_OR_RETURN(Sha256Digest d, Sha256DigestFromHex(hex));
  BlockKey k;
  k.bytes = d;
  return k;
}

std::string_view KvLayoutName(KvLayout layout) {
  return layout == KvLayout::kGqa ? "gqa" : "latent";
}

int KvDTypeCode(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return 0;
    case DType::kF16:
      return 1;
    case DType::kBF16:
      return 2;
    default:
      return -1;
  }
}

absl::Status KvFormat::Validate() const {
  if (KvDTypeCode(dtype) < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("kv format: dtype ", AV(DTypeName(dtype)), " is not f32, f16 or bf16"));
  }
  if (block_tokens < 1 || block_tokens > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("kv format: block_tokens ", block_tokens, " is outside 1..65535"));
  }
  if (layout == KvLayout::kGqa && (latent_rank != 0 || projection != decltype(projection){})) {
    return absl::InvalidArgumentError("kv format: latent_rank/projection set for layout gqa");
  }
  if (layout == KvLayout::kLatent && latent_rank <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("kv format: latent_rank ", latent_rank, " must be > 0 for layout latent"));
  }
  // The §5.1 header holds the rank in a u16.
  if (latent_rank > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("kv format: latent_rank ", latent_rank, " is outside 1..65535"));
  }
  return absl::OkStatus();
}

std::string KvFormat::Encode() const {
  std::string out(kRootTag);
  out.append(reinterpret_cast<const char*>(model.data()), model.size());
  out.push_back(static_cast<char>(layout));
  PutU32(&out, static_cast<uint32_t>(latent_rank));
  out.append(reinterpret_cast<const char*>(projection.data()), projection.size());
  out.push_back(static_cast<char>(KvDTypeCode(dtype)));
  PutU32(&out, static_cast<uint32_t>(block_tokens));
  PutU32(&out, static_cast<uint32_t>(ns.size()));
  out.append(ns);
  return out;
}

absl::StatusOr<KvFormat> KvFormat::Decode(std::string_view bytes) {
  const size_t fixed = kRootTag.size() + 32 + 1 + 4 + 32 + 1 + 4 + 4;
  if (bytes.size() < fixed || bytes.substr(0, kRootTag.size()) != kRootTag) {
    return absl::InvalidArgumentError(
        absl::StrCat("kv format record of ", bytes.size(), " bytes is not a tandem-kv-v1 record"));
  }
  KvFormat f;
  const char* p = bytes.data() + kRootTag.size();
  std::memcpy(f.model.data(), p, 32);
  p += 32;
  const uint8_t layout = static_cast<uint8_t>(*p++);
  if (layout > 1) return absl::InvalidArgumentError(absl::StrCat("kv format: layout ", layout));
  f.layout = static_cast<KvLayout>(layout);
  f.latent_rank = static_cast<int32_t>(GetU32(p));
  p += 4;
  std::memcpy(f.projection.data(), p, 32);
  p += 32;
  const auto dtype = DTypeFromKvCode(static_cast<uint8_t>(*p++));
  if (!dtype) return absl::InvalidArgumentError("kv format: unknown dtype code");
  f.dtype = *dtype;
  f.block_tokens = static_cast<int32_t>(GetU32(p));
  p += 4;
  const uint32_t ns_len = GetU32(p);
  p += 4;
  if (bytes.size() != fixed + ns_len) {
    return absl::InvalidArgumentError(absl::StrCat("kv format record: namespace length ", ns_len,
                                                   " does not match ", bytes.size(), " bytes"));
  }
  f.ns.assign(p, ns_len);
  return f;
}

BlockKey KvFormat::Root() const {
  BlockKey k;
  k.bytes = Sha256(Encode());
  return k;
}

std::string KvFormat::Diff(const KvFormat& expected) const {
  if (model != expected.model) {
    return absl::StrCat("model fingerprint ", HexEncode(absl::MakeConstSpan(model)).substr(0, 16),
                        ", expected ",
                        HexEncode(absl::MakeConstSpan(expected.model)).substr(0, 16));
  }
  if (layout != expected.layout) {
    return absl::StrCat("kv layout ", AV(KvLayoutName(layout)), ", expected ",
                        AV(KvLayoutName(expected.layout)));
  }
  if (latent_rank != expected.latent_rank) {
    return absl::StrCat("latent rank ", latent_rank, ", expected ", expected.latent_rank);
  }
  if (projection != expected.projection) return "latent projection fingerprint differs";
  if (dtype != expected.dtype) {
    return absl::StrCat("kv dtype ", AV(DTypeName(dtype)), ", expected ",
                        AV(DTypeName(expected.dtype)));
  }
  if (block_tokens != expected.block_tokens) {
    return absl::StrCat("block_tokens ", block_tokens, ", expected ", expected.block_tokens);
  }
  if (ns != expected.ns) return absl::StrCat("namespace '", ns, "', expected '", expected.ns, "'");
  return "";
}

std::string KvFormat::DebugString() const {
  return absl::StrCat("model=", HexEncode(absl::MakeConstSpan(model)).substr(0, 16),
                      " layout=", AV(KvLayoutName(layout)), " rank=", latent_rank,
                      " dtype=", AV(DTypeName(dtype)), " block_tokens=", block_tokens, " ns='",
                      ns, "'");
}

BlockKey NextBlockKey(const BlockKey& parent, absl::Span<const KvTokenId> tokens) {
  Sha256Hasher h;
  h.Update(parent.bytes.data(), parent.bytes.size());
  std::string buf;
  buf.reserve(tokens.size() * 4);
  for (KvTokenId t : tokens) PutU32(&buf, static_cast<uint32_t>(t));
  h.Update(buf);
  BlockKey k;
  k.bytes = h.Finish();
  return k;
}

namespace {

std::vector<BlockKey> ChainFrom(BlockKey parent, int32_t block_tokens,
                                absl::Span<const KvTokenId> segment_tokens) {
  std::vector<BlockKey> keys;
  const size_t bt = static_cast<size_t>(block_tokens > 0 ? block_tokens : 1);
  keys.reserve((segment_tokens.size() + bt - 1) / bt);
  for (size_t i = 0; i < segment_tokens.size(); i += bt) {
    parent = NextBlockKey(parent, segment_tokens.subspan(i, std::min(bt, segment_tokens.size() - i)));
    keys.push_back(parent);
  }
  return keys;
}

}  // namespace

std::vector<BlockKey> ChainKeys(const KvFormat& format,
                                absl::Span<const KvTokenId> segment_tokens) {
  return ChainFrom(format.Root(), format.block_tokens, segment_tokens);
}

BlockKey DocumentRoot(const KvFormat& format, absl::Span<const KvTokenId> preamble) {
  Sha256Hasher h;
  h.Update(std::string_view("tandem-doc-v1"));
  const BlockKey root = format.Root();
  h.Update(root.bytes.data(), root.bytes.size());
  std::string buf;
  for (KvTokenId t : preamble) PutU32(&buf, static_cast<uint32_t>(t));
  h.Update(buf);
  BlockKey k;
  k.bytes = h.Finish();
  return k;
}

std::vector<BlockKey> DocumentKeys(const KvFormat& format, absl::Span<const KvTokenId> preamble,
                                   absl::Span<const KvTokenId> document_tokens) {
  return ChainFrom(DocumentRoot(format, preamble), format.block_tokens, document_tokens);
}

}  // namespace tandem
