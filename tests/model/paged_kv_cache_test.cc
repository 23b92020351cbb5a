// The paged KV layout on its own (no model): which keys a call may read (KvAccess::Prepare; the
// row order and key-limit rules are the runner's, runner_seam_test), how lengths move (Commit,
// SetLength), room and sequence slots, host copies across page boundaries, and the registry.
#include "kernels/model/paged_kv_cache.h"

#include <numeric>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "tests/support/status_matchers.h"

namespace tandem::model {
namespace {

using ::tandem::testing::StatusIs;

format::ModelConfig TinyConfig() {
  format::ModelConfig c;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 4;
  c.n_rot = 4;
  c.d_model = 16;
  c.context_length = 64;
  return c;
}

std::unique_ptr<PagedKvCache> Cache(KvCacheOptions o = {
                                        .page_tokens = 4, .capacity_tokens = 32, .max_seqs = 2}) {
  auto backend = kernels::GetBackend("cpu_ref");
  EXPECT_TRUE(backend.ok());
  auto cache = PagedKvCache::Create(**backend, TinyConfig(), o);
  EXPECT_TRUE(cache.ok()) << cache.status();
  return std::move(cache).value();
}

RowBatch Rows(SeqId seq, std::vector<int32_t> positions, std::vector<int32_t> limits = {}) {
  RowBatch r;
  r.seq_ids.assign(positions.size(), seq);
  r.positions = std::move(positions);
  r.key_limits = std::move(limits);
  return r;
}

TEST(PagedKvCacheTest, PrepareAcceptsRowsWhoseKeysAreHeldOrComputed) {
  auto cache = Cache();
  const SeqId s = cache->AddSequence().value();
  EXPECT_OK(cache->Prepare(Rows(s, {0, 1, 2, 3, 4})));
  EXPECT_EQ(cache->free_pages(), 8 - 2);  // 5 positions take two 4-token pages
  cache->Commit(Rows(s, {0, 1, 2, 3, 4}));
  EXPECT_EQ(cache->Length(s), 5);
  // Non-consecutive rows inside what is held (CacheBlend's recompute set) leave the length.
  EXPECT_OK(cache->Prepare(Rows(s, {1, 3})));
  cache->Commit(Rows(s, {1, 3}));
  EXPECT_EQ(cache->Length(s), 5);
  // A row past a gap may be written when it reads only keys before the gap.
  EXPECT_OK(cache->Prepare(Rows(s, {7}, {5})));
  cache->Commit(Rows(s, {7}, {5}));
  EXPECT_EQ(cache->Length(s), 5) << "position 7 is written but 5 and 6 are not";
}

TEST(PagedKvCacheTest, PrepareRefusesRowsItCannotServe) {
  auto cache = Cache();
  const SeqId s = cache->AddSequence().value();
  EXPECT_THAT(cache->Prepare(Rows(s, {3})), StatusIs(absl::StatusCode::kInvalidArgument,
                                                     "position 0 is neither held nor computed"));
  EXPECT_THAT(cache->Prepare(Rows(s, {0, 2})),
              StatusIs(absl::StatusCode::kInvalidArgument, "position 1 is neither held"));
  EXPECT_THAT(cache->Prepare(Rows(5, {0})), StatusIs(absl::StatusCode::kInvalidArgument, "5"));
  // Room: 32 tokens in all; a second sequence cannot take 40 more.
  const SeqId t = cache->AddSequence().value();
  std::vector<int32_t> many(40);
  std::iota(many.begin(), many.end(), 0);
  EXPECT_THAT(cache->Prepare(Rows(t, many)), StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(cache->Reserve(t, 65), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(cache->AddSequence(), StatusIs(absl::StatusCode::kResourceExhausted));
  cache->RemoveSequence(t);
  EXPECT_EQ(cache->free_pages(), 8);
}

TEST(PagedKvCacheTest, HostTokensRoundTripAcrossPages) {
  auto cache = Cache({.dtype = DType::kF32, .page_tokens = 4, .capacity_tokens = 32});
  const SeqId a = cache->AddSequence().value();
  const SeqId b = cache->AddSequence().value();
  ASSERT_OK(cache->Reserve(b, 3));  // interleave pages, so a's pages are not contiguous
  ASSERT_OK(cache->Reserve(a, 11));
  const KvRowFormat rows = cache->row_format();
  EXPECT_EQ(rows.layers, 2);
  EXPECT_EQ(rows.row_bytes(), 2 * 4 * 4);
  std::vector<float> k(9 * 8), v(9 * 8), k_out(9 * 8), v_out(9 * 8);
  std::iota(k.begin(), k.end(), 1.0f);
  std::iota(v.begin(), v.end(), 1000.0f);
  auto view = [](std::vector<float>& x) {
    return TensorView::Contiguous(x.data(), DType::kF32, {9, 2, 4});
  };
  ASSERT_OK(cache->WriteTokens(a, 1, 2, view(k), view(v)));  // positions 2..10, three pages
  ASSERT_OK(cache->ReadTokens(a, 1, 2, view(k_out), view(v_out)));
  EXPECT_EQ(k_out, k);
  EXPECT_EQ(v_out, v);
  EXPECT_THAT(cache->WriteTokens(a, 1, 4, view(k), view(v)),
              StatusIs(absl::StatusCode::kInvalidArgument, "outside the 12 reserved"));
  EXPECT_THAT(cache->WriteTokens(a, 2, 0, view(k), view(v)),
              StatusIs(absl::StatusCode::kInvalidArgument, "no layer 2"));
}

TEST(PagedKvCacheTest, LayoutsAreCreatedByName) {
  auto backend = kernels::GetBackend("cpu_ref");
  ASSERT_TRUE(backend.ok());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<KvCache> cache,
                       CreateKvCache(**backend, TinyConfig(), KvCacheOptions{}));
  EXPECT_EQ(cache->layout(), "paged");
  KvFormat format;
  format.dtype = DType::kF32;
  cache->DescribeFormat(format);
  EXPECT_EQ(format.dtype, DType::kF16);
  EXPECT_EQ(format.layout, KvLayout::kGqa);
  EXPECT_EQ(cache->capacity_tokens(), 64);  // one context by default
  EXPECT_THAT(CreateKvCache(**backend, TinyConfig(), {.layout = "ring"}),
              StatusIs(absl::StatusCode::kInvalidArgument, "'ring' is not one of paged"));
  EXPECT_THAT(KvCacheOptions{.dtype = DType::kBF16}.Validate(),
              StatusIs(absl::StatusCode::kInvalidArgument, "bf16"));
}

}  // namespace
}  // namespace tandem::model
