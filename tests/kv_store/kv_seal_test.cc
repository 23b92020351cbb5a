// KvSeal: sealed blocks open back into the exact block; a block that is not sealed, sealed under
// another secret, or changed after sealing (even with its XXH3 checksums recomputed, which anyone
// can do) is refused with MissReason auth; a reader that predates sealing rejects sealed bytes as
// an unknown version.
#include "kv_store/kv_seal.h"

#include <cstring>

#include "common/hash.h"
#include "gtest/gtest.h"
#include "tests/kv_store/test_blocks.h"
#include "tests/support/status_matchers.h"

namespace tandem::kv::testing {
namespace {

std::shared_ptr<const ClusterSecret> Secret(char fill) {
  return *ClusterSecret::FromBytes(std::string(48, fill));
}

std::shared_ptr<Bytes> CopyOf(absl::Span<const uint8_t> b) {
  auto out = std::make_shared<Bytes>(b.size());
  std::memcpy(out->data(), b.data(), b.size());
  return out;
}

// What a forger without the key can do: change bytes, then make every XXH3 checksum valid again.
void FixChecksums(Bytes& b) {
  uint8_t* p = b.data();
  const uint64_t payload = Xxh3_64(p + kHeaderBytes, b.size() - kHeaderBytes);
  for (int i = 0; i < 8; ++i) p[184 + i] = static_cast<uint8_t>(payload >> (8 * i));
  const uint64_t header = Xxh3_64(p, 248);
  for (int i = 0; i < 8; ++i) p[248 + i] = static_cast<uint8_t>(header >> (8 * i));
}

TEST(KvSeal, RoundTripGivesTheSameBlock) {
  ASSERT_OK_AND_ASSIGN(KvBlock block, MakeBlock(TestFormat(), 3, 16));
  KvSeal seal(Secret('k'));
  ASSERT_OK_AND_ASSIGN(std::shared_ptr<Bytes> sealed, seal.Seal(block.bytes()));
  EXPECT_EQ(sealed->data()[4], kSealedFormatVersion);
  // Two seals of one block differ (fresh nonce), and both open.
  ASSERT_OK_AND_ASSIGN(std::shared_ptr<Bytes> again, seal.Seal(block.bytes()));
  EXPECT_NE(sealed->view(), again->view());
  ASSERT_OK(seal.Open(*sealed));
  EXPECT_EQ(sealed->view(),
            std::string_view(reinterpret_cast<const char*>(block.bytes().data()), block.size()));
  ASSERT_OK_AND_ASSIGN(KvBlock parsed, KvBlock::Parse(sealed, TestFormat(), block.key()));
  EXPECT_TRUE(PatternIntact(parsed));
}

// A CacheBlend document block (version 2, its k_rope in byte 192) comes back as it was sealed:
// the seal's fields never overlap what a document block carries.
TEST(KvSeal, DocumentBlocksRoundTripWithTheirVersionAndKRope) {
  ASSERT_OK_AND_ASSIGN(KvBlock block, MakeBlock(TestFormat(), 3, 16));
  auto document = CopyOf(block.bytes());
  uint8_t* p = document->data();
  p[4] = static_cast<uint8_t>(kDocumentFormatVersion);
  p[138] = static_cast<uint8_t>(p[138] | kFlagDocument);
  p[192] = static_cast<uint8_t>(KRope::kUnrotated);
  FixChecksums(*document);
  const std::string original(document->view());
  KvSeal seal(Secret('k'));
  ASSERT_OK_AND_ASSIGN(std::shared_ptr<Bytes> sealed, seal.Seal(document->span()));
  EXPECT_EQ(sealed->data()[4], kSealedFormatVersion);
  ASSERT_OK(seal.Open(*sealed));
  EXPECT_EQ(sealed->view(), original);
}

TEST(KvSeal, UnsealedForgedAndForeignBlocksAreAuthMisses) {
  ASSERT_OK_AND_ASSIGN(KvBlock block, MakeBlock(TestFormat(), 3, 16));
  KvSeal seal(Secret('k'));

  // A plain (valid, version 1) block: what a writer without the secret can plant.
  auto plain = CopyOf(block.bytes());
  EXPECT_EQ(MissReasonOf(seal.Open(*plain)), MissReason::kAuth);

  // Sealed by another cluster.
  ASSERT_OK_AND_ASSIGN(auto foreign, KvSeal(Secret('x')).Seal(block.bytes()));
  EXPECT_EQ(MissReasonOf(seal.Open(*foreign)), MissReason::kAuth);

  // Sealed here, then one payload byte changed and the XXH3 checksums fixed up.
  ASSERT_OK_AND_ASSIGN(auto tampered, seal.Seal(block.bytes()));
  tampered->data()[tampered->size() - 7] ^= 0x40;
  FixChecksums(*tampered);
  EXPECT_EQ(MissReasonOf(seal.Open(*tampered)), MissReason::kAuth);

  // Sealed here, then a header field changed (position) with checksums fixed up.
  ASSERT_OK_AND_ASSIGN(auto moved, seal.Seal(block.bytes()));
  moved->data()[152] ^= 1;
  FixChecksums(*moved);
  EXPECT_EQ(MissReasonOf(seal.Open(*moved)), MissReason::kAuth);

  // The tag copied onto another block's bytes.
  ASSERT_OK_AND_ASSIGN(KvBlock other, MakeBlock(TestFormat(), 100, 16));
  ASSERT_OK_AND_ASSIGN(auto good, seal.Seal(block.bytes()));
  ASSERT_OK_AND_ASSIGN(auto victim, seal.Seal(other.bytes()));
  std::memcpy(victim->data() + 192, good->data() + 192, 32);
  FixChecksums(*victim);
  EXPECT_EQ(MissReasonOf(seal.Open(*victim)), MissReason::kAuth);
}

TEST(KvSeal, ReadersWithoutTheSealRejectSealedBlocksLoudly) {
  ASSERT_OK_AND_ASSIGN(KvBlock block, MakeBlock(TestFormat(), 3, 16));
  ASSERT_OK_AND_ASSIGN(std::shared_ptr<Bytes> sealed, KvSeal(Secret('k')).Seal(block.bytes()));
  absl::StatusOr<KvBlock> parsed = KvBlock::Parse(sealed, TestFormat(), block.key());
  EXPECT_EQ(MissReasonOf(parsed.status()), MissReason::kVersion);
}

}  // namespace
}  // namespace tandem::kv::testing
