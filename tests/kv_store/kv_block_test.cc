// The §5.1 block format: round trip, a golden hex dump freezing the v1 header, and every
// validation failure mapped to its MissReason.
#include "kv_store/kv_block.h"

#include <cstring>

#include "common/hash.h"
#include "common/little_endian.h"
#include "common/status.h"
#include "gtest/gtest.h"
#include "tests/kv_store/test_blocks.h"
#include "tests/support/status_matchers.h"

namespace tandem::kv {
namespace {

using testing::MakeBlock;
using testing::TestFormat;

std::shared_ptr<const Bytes> Mutated(const KvBlock& b, size_t offset, uint8_t xor_mask) {
  auto copy = Bytes::Copy(std::string_view(reinterpret_cast<const char*>(b.bytes().data()),
                                           b.bytes().size()));
  copy->data()[offset] ^= xor_mask;
  return copy;
}

// A copy of `b` with the little-endian field of type T at `offset` set to `value` and the header
// checksum (XXH3 of bytes [0, 248)) recomputed, so that only the field checks can reject it.
template <typename T>
std::shared_ptr<const Bytes> Resealed(const KvBlock& b, size_t offset, T value) {
  auto copy = Bytes::Copy(std::string_view(reinterpret_cast<const char*>(b.bytes().data()),
                                           b.bytes().size()));
  StoreLe<T>(copy->data(), offset, value);
  StoreLe<uint64_t>(copy->data(), 248, Xxh3_64(copy->data(), 248));
  return copy;
}

MissReason ReasonOf(const absl::StatusOr<KvBlock>& r) {
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
  return *MissReasonOf(r.status());
}

TEST(KvBlockTest, RoundTripKeepsEveryByte) {
  const KvFormat f = TestFormat();
  ASSERT_OK_AND_ASSIGN(KvBlock b, MakeBlock(f, 100, 5));
  EXPECT_EQ(b.num_tokens(), 5);
  EXPECT_EQ(b.pos_begin(), 100);
  EXPECT_EQ(b.header().flags & kFlagPartial, kFlagPartial);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.k(1).data) % 64, 0u);
  ASSERT_OK_AND_ASSIGN(KvBlock p, KvBlock::Parse(b.shared_bytes(), f, b.key()));
  EXPECT_TRUE(testing::PatternIntact(p));
  EXPECT_EQ(p.tokens()[4], 104);
  EXPECT_EQ(p.key(), ChainKeys(f, std::vector<KvTokenId>{100, 101, 102, 103, 104})[0]);
  EXPECT_EQ(p.k(0).DebugString(), "f16[5, 2, 8]");
}

TEST(KvBlockTest, StridedInputIsCopiedRowMajor) {
  const KvFormat f = TestFormat();
  // [2 tokens, 2 heads, 4 dims] f32 inside a wider buffer (row stride 12 floats).
  KvFormat f32 = f;
  f32.dtype = DType::kF32;
  std::vector<float> buf(2 * 12);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<float>(i);
  TensorView t = TensorView::Contiguous(buf.data(), DType::kF32, {2, 2, 4});
  t.stride_bytes[0] = 12 * 4;
  std::vector<KvTokenId> tokens = {1, 2};
  ASSERT_OK_AND_ASSIGN(KvBlock b, KvBlock::Build(f32, f32.Root(), tokens, 0, {t}, {t}));
  const float* k = b.k(0).as<const float>();
  EXPECT_EQ(k[7], 7.0f);
  EXPECT_EQ(k[8], 12.0f);  // second token starts at the next stride
}

TEST(KvBlockTest, BuildRejectsBadTensors) {
  const KvFormat f = TestFormat();
  std::vector<uint16_t> d(2 * 2 * 8);
  TensorView ok = TensorView::Contiguous(d.data(), DType::kF16, {2, 2, 8});
  TensorView wrong_dtype = TensorView::Contiguous(d.data(), DType::kF32, {2, 2, 4});
  std::vector<KvTokenId> tokens = {1, 2};
  EXPECT_THAT(KvBlock::Build(f, f.Root(), tokens, 0, {wrong_dtype}, {ok}),
              tandem::testing::StatusIs(absl::StatusCode::kInvalidArgument, "layer 0"));
  EXPECT_THAT(KvBlock::Build(f, f.Root(), {}, 0, {ok}, {ok}),
              tandem::testing::StatusIs(absl::StatusCode::kInvalidArgument, "0 tokens"));
  EXPECT_THAT(KvBlock::Build(f, f.Root(), tokens, 0, {ok}, {}),
              tandem::testing::StatusIs(absl::StatusCode::kInvalidArgument));
}

// Freezes the v1 header layout: any change to field order, sizes or checksums breaks this dump,
// which would strand every block already stored in a shared tier.
TEST(KvBlockTest, GoldenHeaderHexDump) {
  const KvFormat f = TestFormat(4);
  ASSERT_OK_AND_ASSIGN(KvBlock b, MakeBlock(f, 7, 3, {1, 1, 4}));
  const std::string hex = HexEncode(b.bytes().subspan(0, kHeaderBytes));
  // One row per 32 bytes: magic..key, key, parent, model, projection, fields, checksum..,
  // reserved, reserved + header checksum.
  const char* kGolden =
      "544b564201000001d6dd53530623faffb0b5b526950951069772bd5dbaa72e5e"
      "63d70bda5bdc206bac6a5a73c5ddebcf32d2515938e746ac69451869b3f726bc"
      "c35ab379b9d7c7222c68f21a6e2c7fab9ec496809b43ef8b613e586b0ebb0b90"
      "e69aba3748f51812000000000000000000000000000000000000000000000000"
      "0000000000000000000101000100010004000400030000000700000000000000"
      "00010000000000004001000000000000800000000000000034d4e0e5fb3b73bf"
      "0000000000000000000000000000000000000000000000000000000000000000"
      "000000000000000000000000000000000000000000000000ef2fc9b43f3221ed";
  EXPECT_EQ(hex, kGolden);
  EXPECT_EQ(b.size(), 256u + 64u + 2 * 64u);
  // Spot-check the documented offsets independently of the dump.
  const uint8_t* p = b.bytes().data();
  EXPECT_EQ(std::memcmp(p, "TKVB", 4), 0);
  EXPECT_EQ(p[4], 1);
  EXPECT_EQ(p[6] | p[7] << 8, 256);
  EXPECT_EQ(std::memcmp(p + 8, b.key().bytes.data(), 32), 0);
  EXPECT_EQ(std::memcmp(p + 40, f.Root().bytes.data(), 32), 0);
  EXPECT_EQ(std::memcmp(p + 72, f.model.data(), 32), 0);
  EXPECT_EQ(p[136], 0);  // gqa
  EXPECT_EQ(p[137], 1);  // f16
  EXPECT_EQ(p[138], kFlagPartial);
  EXPECT_EQ(p[140], 1);  // layers
  EXPECT_EQ(p[144], 4);  // head_dim
  EXPECT_EQ(p[146], 4);  // block_tokens
  EXPECT_EQ(p[148], 3);  // num_tokens
  EXPECT_EQ(p[152], 7);  // pos_begin
  EXPECT_EQ(p[160], 0);  // tokens_offset = 256
  EXPECT_EQ(p[161], 1);
  EXPECT_EQ(p[168], 64);  // payload_offset = 320
  EXPECT_EQ(p[169], 1);
  EXPECT_EQ(p[256], 7);  // first token id
}

TEST(KvBlockTest, EachValidationFailureHasItsReason) {
  const KvFormat f = TestFormat();
  ASSERT_OK_AND_ASSIGN(KvBlock b, MakeBlock(f, 1, 16));
  const BlockKey key = b.key();

  EXPECT_EQ(ReasonOf(KvBlock::Parse(Mutated(b, 0, 0x20), f, key)), MissReason::kHeader);
  EXPECT_EQ(ReasonOf(KvBlock::Parse(Mutated(b, 4, 0x02), f, key)), MissReason::kVersion);
  EXPECT_EQ(ReasonOf(KvBlock::Parse(Mutated(b, 150, 0x01), f, key)), MissReason::kChecksum);
  // Truncated value.
  auto shorter = Bytes::Copy(std::string_view(reinterpret_cast<const char*>(b.bytes().data()),
                                              b.bytes().size() - 64));
  EXPECT_EQ(ReasonOf(KvBlock::Parse(shorter, f, key)), MissReason::kHeader);
  auto tiny = Bytes::Copy("TKVB");
  EXPECT_EQ(ReasonOf(KvBlock::Parse(tiny, f, key)), MissReason::kHeader);
  // Another model / dtype / block size: format mismatch naming the field.
  KvFormat other = f;
  other.dtype = DType::kBF16;
  absl::StatusOr<KvBlock> r = KvBlock::Parse(b.shared_bytes(), other, key);
  EXPECT_EQ(ReasonOf(r), MissReason::kFormatMismatch);
  EXPECT_THAT(r.status().message(), ::testing::HasSubstr("kv dtype f16, expected bf16"));
  other = f;
  other.model = Sha256("another-model");
  EXPECT_EQ(ReasonOf(KvBlock::Parse(b.shared_bytes(), other, key)), MissReason::kFormatMismatch);
  // Asked for another key.
  BlockKey wrong = key;
  wrong.bytes[0] ^= 1;
  EXPECT_EQ(ReasonOf(KvBlock::Parse(b.shared_bytes(), f, wrong)), MissReason::kKeyMismatch);
  // A token id changed (payload checksum would catch it too, but the key chain comes first).
  EXPECT_EQ(ReasonOf(KvBlock::Parse(Mutated(b, 256, 0x01), f, key)), MissReason::kKeyMismatch);
  // One flipped payload bit.
  EXPECT_EQ(ReasonOf(KvBlock::Parse(Mutated(b, b.size() - 1, 0x80), f, key)),
            MissReason::kChecksum);
  EXPECT_EQ(ReasonOf(KvBlock::Parse(Mutated(b, b.header().payload_offset + 3, 0x04), f, key)),
            MissReason::kChecksum);
  // ParseAnyFormat skips only the format comparison.
  EXPECT_OK(KvBlock::ParseAnyFormat(b.shared_bytes(), key));
  EXPECT_EQ(ReasonOf(KvBlock::ParseAnyFormat(Mutated(b, b.size() - 1, 1), key)),
            MissReason::kChecksum);
}

TEST(KvBlockTest, BuildRejectsDimensionsTheHeaderCannotHold) {
  const KvFormat f = TestFormat();
  const std::vector<KvTokenId> tokens = {1};
  // One token of 65536 f16 values: a u16 head_dim would be written as 0 behind 128 KiB of data.
  std::vector<uint16_t> data(65536);
  const TensorView wide = TensorView::Contiguous(data.data(), DType::kF16, {1, 1, 65536});
  EXPECT_THAT(KvBlock::Build(f, f.Root(), tokens, 0, {wide}, {wide}),
              tandem::testing::StatusIs(absl::StatusCode::kInvalidArgument, "outside 1..65535"));
  const TensorView heads = TensorView::Contiguous(data.data(), DType::kF16, {1, 65536, 1});
  EXPECT_THAT(KvBlock::Build(f, f.Root(), tokens, 0, {heads}, {heads}),
              tandem::testing::StatusIs(absl::StatusCode::kInvalidArgument, "outside 1..65535"));
  KvFormat latent = f;
  latent.layout = KvLayout::kLatent;
  latent.latent_rank = 65536;
  const TensorView rank = TensorView::Contiguous(data.data(), DType::kF16, {1, 65536});
  EXPECT_THAT(KvBlock::Build(latent, latent.Root(), tokens, 0, {rank}, {rank}),
              tandem::testing::StatusIs(absl::StatusCode::kInvalidArgument, "latent_rank 65536"));
}

TEST(KvBlockTest, ResealedHeaderWithHostileSizesIsAHeaderMiss) {
  const KvFormat f = TestFormat();
  ASSERT_OK_AND_ASSIGN(KvBlock b, MakeBlock(f, 1, 16));
  struct Case {
    const char* what;
    size_t offset;
    uint64_t value;
    int bytes;
  };
  const Case cases[] = {
      {"num_layers", 140, 65535, 2},   {"num_layers 0", 140, 0, 2},
      {"num_kv_heads", 142, 65535, 2}, {"num_kv_heads 0", 142, 0, 2},
      {"head_dim", 144, 65535, 2},     {"head_dim 0", 144, 0, 2},
      {"num_tokens", 148, 17, 2},      {"payload_offset", 168, ~uint64_t{0} - 255, 8},
      {"payload_bytes", 176, ~uint64_t{0}, 8},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    auto bytes = c.bytes == 2 ? Resealed<uint16_t>(b, c.offset, static_cast<uint16_t>(c.value))
                              : Resealed<uint64_t>(b, c.offset, c.value);
    EXPECT_EQ(ReasonOf(KvBlock::ParseAnyFormat(bytes, b.key())), MissReason::kHeader);
  }
}

TEST(KvBlockTest, SizeProductThatWrapsIsAHeaderMiss) {
  // 2 * num_layers * AlignUp(num_tokens * heads * head_dim * 4) is 2^64 + 844672 for these
  // fields: a 64-bit product without an overflow check sees a payload of 844672 bytes, which this
  // buffer holds, and the block would parse with layers far beyond its end. Every other field is
  // consistent (key, payload checksum), so only the size check can stop it.
  constexpr uint16_t kLayers = 65503, kTokens = 17099, kHeads = 58893, kHeadDim = 34957;
  constexpr uint64_t kPayload = 844672;
  const uint64_t payload_offset = (kHeaderBytes + 4 * uint64_t{kTokens} + 63) & ~uint64_t{63};
  auto bytes = std::make_shared<Bytes>(payload_offset + kPayload);
  uint8_t* p = bytes->data();
  std::vector<KvTokenId> tokens(kTokens);
  for (int i = 0; i < kTokens; ++i) {
    tokens[i] = i;
    StoreLe<uint32_t>(p, kHeaderBytes + 4 * i, static_cast<uint32_t>(i));
  }
  KvFormat f = TestFormat();
  f.dtype = DType::kF32;
  const BlockKey key = NextBlockKey(f.Root(), tokens);
  std::memcpy(p, "TKVB", 4);
  StoreLe<uint16_t>(p, 4, kFormatVersion);
  StoreLe<uint16_t>(p, 6, kHeaderBytes);
  std::memcpy(p + 8, key.bytes.data(), 32);
  std::memcpy(p + 40, f.Root().bytes.data(), 32);
  std::memcpy(p + 72, f.model.data(), 32);
  p[136] = 0;  // gqa
  p[137] = 0;  // f32
  StoreLe<uint16_t>(p, 140, kLayers);
  StoreLe<uint16_t>(p, 142, kHeads);
  StoreLe<uint16_t>(p, 144, kHeadDim);
  StoreLe<uint16_t>(p, 146, 65535);  // block_tokens
  StoreLe<uint16_t>(p, 148, kTokens);
  StoreLe<uint64_t>(p, 160, kHeaderBytes);
  StoreLe<uint64_t>(p, 168, payload_offset);
  StoreLe<uint64_t>(p, 176, kPayload);
  StoreLe<uint64_t>(p, 184, Xxh3_64(p + kHeaderBytes, bytes->size() - kHeaderBytes));
  StoreLe<uint64_t>(p, 248, Xxh3_64(p, 248));
  EXPECT_EQ(ReasonOf(KvBlock::ParseAnyFormat(bytes, key)), MissReason::kHeader);
}

// Document blocks (CacheBlend): version 2 with the document flag and the k_rope byte, keyed from
// DocumentRoot. A reader that knows only version 1 (every node before this change) refuses them as
// a `version` miss: the check below is the one such a reader runs (version != 1).
TEST(KvBlockTest, DocumentBlocksAreVersionTwoAndSayHowKIsStored) {
  KvFormat f = TestFormat();
  f.dtype = DType::kF32;
  std::vector<float> d(3 * 2 * 8, 0.5f);
  const TensorView t = TensorView::Contiguous(d.data(), DType::kF32, {3, 2, 8});
  const std::vector<KvTokenId> tokens = {7, 8, 9};
  const std::vector<KvTokenId> preamble = {1};
  const BlockKey root = DocumentRoot(f, preamble);
  EXPECT_NE(root, f.Root());
  EXPECT_NE(DocumentKeys(f, preamble, tokens)[0], ChainKeys(f, tokens)[0]);
  EXPECT_NE(DocumentKeys(f, preamble, tokens)[0], DocumentKeys(f, {}, tokens)[0]);
  ASSERT_OK_AND_ASSIGN(KvBlock b,
                       KvBlock::BuildDocument(f, root, tokens, 1, {t}, {t}, KRope::kUnrotated));
  EXPECT_EQ(b.key(), DocumentKeys(f, preamble, tokens)[0]);
  EXPECT_EQ(LoadLe<uint16_t>(b.bytes().data(), 4), kDocumentFormatVersion);
  EXPECT_NE(LoadLe<uint16_t>(b.bytes().data(), 4), 1);  // what a version-1 reader requires
  EXPECT_EQ(b.bytes()[192], 1);
  ASSERT_OK_AND_ASSIGN(KvBlock p, KvBlock::Parse(b.shared_bytes(), f, b.key()));
  EXPECT_TRUE(p.header().is_document());
  EXPECT_EQ(p.header().k_rope, KRope::kUnrotated);
  EXPECT_EQ(p.pos_begin(), 1);

  // An ordinary block never carries the flag, and a document block never loses it.
  ASSERT_OK_AND_ASSIGN(KvBlock plain, KvBlock::Build(f, f.Root(), tokens, 0, {t}, {t}));
  EXPECT_EQ(LoadLe<uint16_t>(plain.bytes().data(), 4), kFormatVersion);
  EXPECT_FALSE(plain.header().is_document());
  EXPECT_EQ(ReasonOf(KvBlock::Parse(Resealed<uint16_t>(plain, 138, kFlagDocument), f, plain.key())),
            MissReason::kHeader);
  EXPECT_EQ(ReasonOf(KvBlock::Parse(Resealed<uint16_t>(b, 138, 0), f, b.key())),
            MissReason::kHeader);
  EXPECT_EQ(ReasonOf(KvBlock::Parse(Resealed<uint8_t>(b, 192, 7), f, b.key())),
            MissReason::kHeader);
  EXPECT_EQ(ReasonOf(KvBlock::Parse(Resealed<uint16_t>(b, 4, 3), f, b.key())),
            MissReason::kVersion);
}

TEST(KvBlockTest, LayerOutOfRangeIsABugNotARead) {
  ASSERT_OK_AND_ASSIGN(KvBlock b, MakeBlock(TestFormat(), 1, 16));
  EXPECT_DEATH(b.k(2), "layer 2");
  EXPECT_DEATH(b.v(-1), "layer -1");
}

TEST(KvBlockTest, MissReasonPayloadSurvivesAnnotate) {
  absl::Status s = MissStatus(absl::StatusCode::kDataLoss, MissReason::kKeyMismatch, "x");
  EXPECT_EQ(MissReasonOf(Annotate(s, "while loading")), MissReason::kKeyMismatch);
  EXPECT_EQ(MissReasonOf(absl::NotFoundError("")), MissReason::kNotFound);
  EXPECT_EQ(MissReasonOf(absl::UnavailableError("")), MissReason::kTierUnavailable);
  EXPECT_EQ(MissReasonOf(absl::OkStatus()), std::nullopt);
}

}  // namespace
}  // namespace tandem::kv
