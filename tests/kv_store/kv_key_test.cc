// ChainKeys and KvFormat::Root() against golden vectors from scripts/make_kv_key_golden.py, an
// independent hashlib implementation: keys must agree across languages and processes.
#include "common/kv_key.h"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/hash.h"
#include "gtest/gtest.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"

namespace tandem {
namespace {

std::array<uint8_t, 32> FromHex32(const std::string& hex) {
  auto d = Sha256DigestFromHex(hex);
  EXPECT_TRUE(d.ok()) << hex;
  return d.ok() ? *d : std::array<uint8_t, 32>{};
}

TEST(KvKeyTest, MatchesPythonGoldenVectors) {
  std::ifstream in(testing::SourceDir() + "/tests/data/kv_key_golden.json");
  ASSERT_TRUE(in) << "missing tests/data/kv_key_golden.json";
  const nlohmann::json golden = nlohmann::json::parse(in);
  int cases = 0;
  for (const auto& c : golden["cases"]) {
    const auto& jf = c["format"];
    KvFormat f;
    f.model = FromHex32(jf["model"]);
    f.layout = jf["layout"] == "gqa" ? KvLayout::kGqa : KvLayout::kLatent;
    f.latent_rank = jf["latent_rank"];
    f.projection = FromHex32(jf["projection"]);
    const std::string dt = jf["dtype"];
    f.dtype = dt == "f32" ? DType::kF32 : dt == "f16" ? DType::kF16 : DType::kBF16;
    f.block_tokens = jf["block_tokens"];
    f.ns = jf["ns"];
    ASSERT_OK(f.Validate());
    EXPECT_EQ(f.Root().Hex(), c["root"].get<std::string>());
    const std::vector<KvTokenId> tokens = c["tokens"].get<std::vector<KvTokenId>>();
    const std::vector<BlockKey> keys = ChainKeys(f, tokens);
    const auto want = c["keys"].get<std::vector<std::string>>();
    ASSERT_EQ(keys.size(), want.size()) << f.DebugString();
    for (size_t i = 0; i < keys.size(); ++i) EXPECT_EQ(keys[i].Hex(), want[i]) << "block " << i;
    ++cases;
  }
  EXPECT_GE(cases, 15);
}

TEST(KvKeyTest, EncodeDecodeRoundTripAndDiffNamesTheField) {
  KvFormat f;
  f.model = Sha256("m");
  f.ns = "tenant";
  ASSERT_OK_AND_ASSIGN(KvFormat back, KvFormat::Decode(f.Encode()));
  EXPECT_EQ(back, f);
  EXPECT_EQ(back.Diff(f), "");
  KvFormat g = f;
  g.dtype = DType::kF32;
  EXPECT_EQ(g.Diff(f), "kv dtype f32, expected f16");
  g = f;
  g.block_tokens = 128;
  EXPECT_EQ(g.Diff(f), "block_tokens 128, expected 256");
  EXPECT_FALSE(KvFormat::Decode("garbage").ok());
}

TEST(KvKeyTest, EveryFieldChangesTheRoot) {
  KvFormat base;
  base.model = Sha256("m");
  std::vector<KvFormat> variants(5, base);
  variants[0].model = Sha256("n");
  variants[1].dtype = DType::kBF16;
  variants[2].block_tokens = 128;
  variants[3].ns = "x";
  variants[4].layout = KvLayout::kLatent;
  variants[4].latent_rank = 16;
  for (const KvFormat& v : variants) EXPECT_NE(v.Root(), base.Root()) << v.DebugString();
}

TEST(KvKeyTest, ValidateRejectsBadFields) {
  KvFormat f;
  f.dtype = DType::kQ4_1;
  EXPECT_THAT(f.Validate(), testing::StatusIs(absl::StatusCode::kInvalidArgument, "dtype"));
  f = KvFormat();
  f.block_tokens = 0;
  EXPECT_THAT(f.Validate(), testing::StatusIs(absl::StatusCode::kInvalidArgument, "block_tokens"));
  f = KvFormat();  // the §5.1 header holds the rank in a u16
  f.layout = KvLayout::kLatent;
  f.latent_rank = 65536;
  EXPECT_THAT(f.Validate(), testing::StatusIs(absl::StatusCode::kInvalidArgument, "latent_rank"));
  f.latent_rank = 65535;
  EXPECT_OK(f.Validate());
}

TEST(KvKeyTest, DTypeCodesRoundTripAndUnknownCodesAreNotADType) {
  for (DType d : {DType::kF32, DType::kF16, DType::kBF16}) {
    EXPECT_EQ(DTypeFromKvCode(static_cast<uint8_t>(KvDTypeCode(d))), d);
  }
  EXPECT_EQ(DTypeFromKvCode(3), std::nullopt);
  EXPECT_EQ(DTypeFromKvCode(255), std::nullopt);
}

TEST(KvKeyTest, HexRoundTrip) {
  const BlockKey k = KvFormat().Root();
  ASSERT_OK_AND_ASSIGN(BlockKey back, BlockKey::FromHex(k.Hex()));
  EXPECT_EQ(back, k);
}

}  // namespace
}  // namespace tandem
