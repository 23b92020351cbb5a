#include "common/hash.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/status_matchers.h"

namespace tandem::testing {
namespace {

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(HexEncode(Sha256("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(HexEncode(Sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(HexEncode(Sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256, IncrementalMatchesOneShot) {
  Sha256Hasher hasher;
  hasher.Update("ab");
  hasher.Update("");
  hasher.Update("c");
  EXPECT_EQ(hasher.Finish(), Sha256("abc"));
  hasher.Update("abc");  // reusable after Finish
  EXPECT_EQ(hasher.Finish(), Sha256("abc"));
}

TEST(Xxh3, KnownVectors) {
  EXPECT_EQ(Xxh3_64(""), 0x2D06800538D394C2ull);
  EXPECT_EQ(Xxh3_64("", /*seed=*/0), Xxh3_64(nullptr, 0));
  EXPECT_NE(Xxh3_64("abc"), Xxh3_64("abd"));
  EXPECT_NE(Xxh3_64("abc", 1), Xxh3_64("abc", 2));
}

TEST(Hex, RoundTripAndErrors) {
  const std::string bytes("\x00\x01\xab\xff", 4);
  const std::string hex = HexEncode(absl::MakeConstSpan(
      reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  EXPECT_EQ(hex, "0001abff");
  ASSERT_OK_AND_ASSIGN(std::string decoded, HexDecode("0001ABff"));
  EXPECT_EQ(decoded, bytes);
  EXPECT_THAT(HexDecode("abc"), StatusIs(absl::StatusCode::kInvalidArgument, "odd length 3"));
  EXPECT_THAT(HexDecode("zz"), StatusIs(absl::StatusCode::kInvalidArgument, "offset 0"));

  const Sha256Digest digest = Sha256("abc");
  ASSERT_OK_AND_ASSIGN(Sha256Digest parsed, Sha256DigestFromHex(HexEncode(digest)));
  EXPECT_EQ(parsed, digest);
  EXPECT_THAT(Sha256DigestFromHex("abcd"),
              StatusIs(absl::StatusCode::kInvalidArgument, "expected 64"));
}

}  // namespace
}  // namespace tandem::testing
