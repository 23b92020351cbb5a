// Unit tests of ModelFingerprint: stable for the same bytes, changed by one weight byte, one
// metadata value or one tensor-info field.
#include "common/model_format/fingerprint.h"

#include <string>

#include "common/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/model_format/gguf_writer.h"
#include "tests/support/status_matchers.h"

namespace tandem::format {
namespace {

using ::tandem::testing::GgufWriter;
using ::tandem::testing::TinyLlamaWriter;

Fingerprint Of(std::string image) {
  absl::StatusOr<GgufFile> f = GgufFile::FromBytes(std::move(image));
  TANDEM_CHECK(f.ok()) << f.status();
  return ModelFingerprint(*f);
}

TEST(FingerprintTest, SameBytesSameFingerprint) {
  const std::string image = TinyLlamaWriter().Build();
  const Fingerprint a = Of(image);
  EXPECT_EQ(a, Of(image));
  EXPECT_EQ(a.Hex().size(), 64u);
  EXPECT_THAT(a.Hex(), ::testing::MatchesRegex("[0-9a-f]+"));
  EXPECT_NE(a, Fingerprint{});
}

TEST(FingerprintTest, OneWeightByteChangesIt) {
  const std::string image = TinyLlamaWriter().Build();
  ASSERT_OK_AND_ASSIGN(GgufFile f, GgufFile::FromBytes(image));
  ASSERT_OK_AND_ASSIGN(const TensorInfo* t, f.FindTensor("blk.1.ffn_down.weight"));
  // The writer ends the image with the last tensor, which locates the data section.
  const size_t data_start = image.size() - (f.tensors().back().offset +
                                            f.tensors().back().size_bytes);
  std::string flipped = image;
  flipped[data_start + t->offset + 5] ^= 0x01;
  EXPECT_NE(Of(image), Of(flipped));
}

TEST(FingerprintTest, MetadataAndInfosChangeIt) {
  GgufWriter a = TinyLlamaWriter();
  GgufWriter b = TinyLlamaWriter();
  b.AddString("general.note", "x");
  EXPECT_NE(Of(a.Build()), Of(b.Build()));
  // Same values under another integer width are another file.
  GgufWriter c;
  c.AddU32("k", 1);
  GgufWriter d;
  d.AddU64("k", 1);
  EXPECT_NE(Of(c.Build()), Of(d.Build()));
  // Metadata order does not matter (sorted by key).
  GgufWriter e;
  e.AddU32("a", 1);
  e.AddU32("b", 2);
  GgufWriter g;
  g.AddU32("b", 2);
  g.AddU32("a", 1);
  EXPECT_EQ(Of(e.Build()), Of(g.Build()));
}

}  // namespace
}  // namespace tandem::format
