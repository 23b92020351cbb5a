// The decode node's reservation table without a model (ARCHITECTURE.md §2 steps 3, 5, 6; §9):
// reservations whose transfer arrives after the original ttl are kept and their clock restarts
// when the transfer ends; counts near INT64_MAX are refused rather than wrapping; a transfer that
// does not cover the reserved prompt is NACKed; Close() wakes a decode call waiting for its KV.
// Blocks are tiny synthetic f32 KvBlocks: the table only looks at positions and sizes.
#include "decode_node/reservations.h"

#include <cstdint>
#include <cstdio>
#include <limits>
#include <numeric>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "common/kv_key.h"
#include "common/metrics.h"
#include "common/tensor_view.h"
#include "gtest/gtest.h"
#include "tests/support/status_matchers.h"

namespace tandem::decode {
namespace {

using tandem::testing::StatusIs;

constexpr int32_t kBlockTokens = 16;

ReservationLimits Limits(absl::Duration ttl) {
  ReservationLimits l;
  l.max_seqs = 4;
  l.capacity_pages = 64;  // 1024 tokens of 16-token pages
  l.page_tokens = 16;
  l.context_length = 8192;
  l.ttl = ttl;
  return l;
}

node_api::ReserveRequest Request(int64_t prompt_tokens, int64_t max_tokens) {
  node_api::ReserveRequest r;
  r.request_id = "r-table";
  r.prompt_tokens = prompt_tokens;
  r.max_tokens = max_tokens;
  return r;
}

// The prompt's KV as `prompt_len / 16` (rounded up) blocks of one layer, one head of 4 floats.
std::vector<kv::KvBlock> Blocks(int32_t prompt_len) {
  KvFormat format;
  format.dtype = DType::kF32;
  format.block_tokens = kBlockTokens;
  std::vector<kv::KvBlock> out;
  BlockKey parent = format.Root();
  for (int32_t begin = 0; begin < prompt_len; begin += kBlockTokens) {
    const int32_t n = std::min(kBlockTokens, prompt_len - begin);
    std::vector<int32_t> tokens(static_cast<size_t>(n));
    std::iota(tokens.begin(), tokens.end(), 100 + begin);
    std::vector<float> values(static_cast<size_t>(n) * 4, 0.5f);
    const TensorView t = TensorView::Contiguous(values.data(), DType::kF32, {n, 1, 4});
    absl::StatusOr<kv::KvBlock> b = kv::KvBlock::Build(format, parent, tokens, begin, {t}, {t});
    EXPECT_TRUE(b.ok()) << b.status();
    if (!b.ok()) break;
    parent = b->key();
    out.push_back(*std::move(b));
  }
  return out;
}

kv::TransferMeta Meta(size_t block_count, const Reserved& r) {
  kv::TransferMeta m;
  m.transfer_token = r.transfer_token;
  m.id = kv::TransferId::Random();
  m.request_id = "r-table";
  m.first_token = 7;
  m.block_count = static_cast<uint32_t>(block_count);
  return m;
}

class ReservationTableTest : public ::testing::Test {
 protected:
  MetricsRegistry registry_;
  DecodeMetrics metrics_{registry_, "tcp"};
};

TEST_F(ReservationTableTest, TransferArrivingAfterTheTtlIsKeptAndItsClockRestartsAtTheEnd) {
  // The router reserves for prefill timeout + control timeout; here the ttl stands in for it and
  // the prefill outlasts it.
  const absl::Duration ttl = absl::Seconds(1);
  ReservationTable table(Limits(ttl), &metrics_);
  ASSERT_OK_AND_ASSIGN(Reserved claimed_later, table.Reserve(Request(40, 8)));
  ASSERT_OK_AND_ASSIGN(Reserved orphan, table.Reserve(Request(40, 8)));
  const absl::Time reserved_at = absl::Now();
  absl::SleepFor(ttl / 2);

  const std::vector<kv::KvBlock> blocks = Blocks(40);
  ASSERT_EQ(blocks.size(), 3u);
  const kv::TransferMeta a = Meta(blocks.size(), claimed_later);
  const kv::TransferMeta b = Meta(blocks.size(), orphan);
  ASSERT_OK(table.OnBegin(a, claimed_later.id));
  ASSERT_OK(table.OnBegin(b, orphan.id));
  // Both transfers are still arriving when the original ttl passes.
  absl::SleepFor(ttl);
  ASSERT_GT(absl::Now(), reserved_at + ttl);
  EXPECT_EQ(table.Load().reservations, 2);
  for (const kv::KvBlock& block : blocks) {
    ASSERT_OK(table.OnBlock(a.id, block));
    ASSERT_OK(table.OnBlock(b.id, block));
  }
  const absl::Time before_end = absl::Now();
  table.OnEnd(a.id, absl::OkStatus());
  table.OnEnd(b.id, absl::OkStatus());
  const absl::Time ended_at = absl::Now();

  // Well past the original expiry, within a ttl of the transfer's end: still claimable.
  absl::SleepFor(ttl / 2);
  EXPECT_EQ(table.Load().reservations, 2);
  ASSERT_OK_AND_ASSIGN(Claim claim, table.ClaimForDecode(claimed_later.id));
  ASSERT_OK_AND_ASSIGN(ReceivedKv kv,
                       table.AwaitTransfer(claim.id, absl::Now() + absl::Seconds(5)));
  EXPECT_EQ(kv.prompt_len, 40);
  EXPECT_EQ(kv.blocks.size(), 3u);
  EXPECT_EQ(kv.first_token, 7);

  // The orphan (never claimed) still goes, a ttl after its transfer ended.
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (table.Load().reservations > 1 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(table.Load().reservations, 1);
  EXPECT_GE(absl::Now(), before_end + ttl);  // by the restarted clock, not the original
  EXPECT_THAT(table.ClaimForDecode(orphan.id), StatusIs(absl::StatusCode::kNotFound));
  std::printf("TTL %.0f ms: transfer ended %.0f ms past it, claimed %.0f ms after that; orphan "
              "dropped %.0f ms after its transfer ended\n",
              absl::ToDoubleMilliseconds(ttl),
              absl::ToDoubleMilliseconds(ended_at - reserved_at - ttl),
              absl::ToDoubleMilliseconds(ttl / 2),
              absl::ToDoubleMilliseconds(absl::Now() - before_end));
  table.Lease(claim.id).Release();
  EXPECT_EQ(table.Load().reservations, 0);
  EXPECT_EQ(table.Load().kv_free_ratio, 1.0);
}

// A transfer that begins and never ends (a sender that hangs, a BEGIN without a deadline) holds
// the KV room only until its deadline, at most a ttl after BEGIN, plus a grace: never forever.
TEST_F(ReservationTableTest, StalledTransferWithoutDeadlineStillFreesItsRoom) {
  const absl::Duration ttl = absl::Milliseconds(500);
  ReservationTable table(Limits(ttl), &metrics_);
  ASSERT_OK_AND_ASSIGN(Reserved r, table.Reserve(Request(40, 8)));
  const kv::TransferMeta meta = Meta(3, r);
  ASSERT_EQ(meta.deadline, absl::InfiniteFuture());
  const absl::Time begun = absl::Now();
  ASSERT_OK(table.OnBegin(meta, r.id));
  const absl::Time give_up = begun + absl::Seconds(30);
  while (table.Load().reservations > 0 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  const absl::Duration held = absl::Now() - begun;
  std::printf("STALLED transfer: room freed %.0f ms after BEGIN\n",
              absl::ToDoubleMilliseconds(held));
  EXPECT_EQ(table.Load().reservations, 0);
  EXPECT_GE(held, ttl);
  EXPECT_EQ(table.Load().kv_free_ratio, 1.0);
}

TEST_F(ReservationTableTest, AwaitingReservationStillExpiresAtItsDeadline) {
  ReservationTable table(Limits(absl::Seconds(300)), &metrics_);
  node_api::ReserveRequest req = Request(10, 10);
  req.deadline_ms = absl::ToUnixMillis(absl::Now() + absl::Milliseconds(200));
  ASSERT_OK_AND_ASSIGN(Reserved r, table.Reserve(req));
  EXPECT_LE(r.expires, absl::FromUnixMillis(req.deadline_ms));
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (table.Load().reservations > 0 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(table.Load().reservations, 0);
  EXPECT_THAT(table.OnBegin(Meta(1, r), r.id), StatusIs(absl::StatusCode::kNotFound));
}

// Reservation ids are random, and a BEGIN must carry the token issued with the reservation: a
// peer that guesses or learns an id still cannot take its transfer slot.
TEST_F(ReservationTableTest, BeginWithoutTheReservationsTokenIsRefused) {
  ReservationTable table(Limits(absl::Seconds(30)), &metrics_);
  ASSERT_OK_AND_ASSIGN(Reserved r, table.Reserve(Request(16, 8)));
  ASSERT_OK_AND_ASSIGN(Reserved other, table.Reserve(Request(16, 8)));
  EXPECT_NE(r.id + 1, other.id);
  EXPECT_EQ(r.transfer_token.size(), 32u);
  EXPECT_NE(r.transfer_token, other.transfer_token);
  kv::TransferMeta none = Meta(1, r);
  none.transfer_token.clear();
  EXPECT_THAT(table.OnBegin(none, r.id), StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(table.OnBegin(Meta(1, other), r.id), StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_EQ(registry_.Serialize().find(
                "tandem_auth_refusals_total{plane=\"data\",reason=\"bad_transfer_token\"} 2") !=
                std::string::npos,
            true)
      << registry_.Serialize();
  ASSERT_OK(table.OnBegin(Meta(1, r), r.id));
}

TEST_F(ReservationTableTest, CountsThatWouldOverflowAreOutOfRange) {
  ReservationTable table(Limits(absl::Seconds(30)), &metrics_);
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  // Each sum wraps negative in int64 and would pass a check of the sum alone.
  EXPECT_THAT(table.Reserve(Request(kMax, kMax)), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(table.Reserve(Request(kMax - 10, 20)), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(table.Reserve(Request(20, kMax - 10)), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(table.Reserve(Request(8193, 1)), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(table.Reserve(Request(-5, 10)), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(table.Load().reservations, 0);
  EXPECT_EQ(table.Load().kv_free_ratio, 1.0);
  // The table still admits exactly its capacity afterwards.
  ASSERT_OK(table.Reserve(Request(1000, 24)));
  EXPECT_THAT(table.Reserve(Request(1, 1)), StatusIs(absl::StatusCode::kResourceExhausted));
}

TEST_F(ReservationTableTest, TransferShortOfTheReservedPromptIsRejected) {
  ReservationTable table(Limits(absl::Seconds(30)), &metrics_);
  ASSERT_OK_AND_ASSIGN(Reserved r, table.Reserve(Request(40, 8)));
  const std::vector<kv::KvBlock> blocks = Blocks(32);  // two full blocks: 8 tokens short
  const kv::TransferMeta meta = Meta(blocks.size(), r);
  ASSERT_OK(table.OnBegin(meta, r.id));
  ASSERT_OK(table.OnBlock(meta.id, blocks[0]));
  const absl::Status last = table.OnBlock(meta.id, blocks[1]);
  EXPECT_THAT(last, StatusIs(absl::StatusCode::kInvalidArgument, "reservation is for 40"));
  std::printf("SHORT transfer refused: %s\n", last.ToString().c_str());
  table.OnEnd(meta.id, last);  // what the receiver does after the NACK
  ASSERT_OK_AND_ASSIGN(Claim claim, table.ClaimForDecode(r.id));
  EXPECT_THAT(table.AwaitTransfer(claim.id, absl::Now() + absl::Seconds(5)),
              StatusIs(absl::StatusCode::kUnavailable, "KV transfer failed"));
  table.Lease(claim.id).Release();
  EXPECT_EQ(table.Load().reservations, 0);
}

TEST_F(ReservationTableTest, CloseWakesADecodeCallWaitingForItsTransfer) {
  ReservationTable table(Limits(absl::Seconds(30)), &metrics_);
  ASSERT_OK_AND_ASSIGN(Reserved r, table.Reserve(Request(10, 10)));
  ASSERT_OK_AND_ASSIGN(Claim claim, table.ClaimForDecode(r.id));
  absl::Status waited;
  absl::Duration took;
  std::thread decode_call([&] {
    const absl::Time start = absl::Now();
    // Without Close() waking it, this waits the whole deadline and ends DeadlineExceeded.
    waited = table.AwaitTransfer(claim.id, absl::Now() + absl::Seconds(20)).status();
    took = absl::Now() - start;
  });
  absl::SleepFor(absl::Milliseconds(100));
  table.Close();
  decode_call.join();
  EXPECT_THAT(waited, StatusIs(absl::StatusCode::kUnavailable, "shutting down"));
  std::printf("CLOSE woke the transfer wait after %.0f ms: %s\n", absl::ToDoubleMilliseconds(took),
              waited.ToString().c_str());
  EXPECT_TRUE(table.draining());
  EXPECT_THAT(table.Reserve(Request(10, 10)), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(table.ClaimForDecode(r.id), StatusIs(absl::StatusCode::kUnavailable));
  table.Lease(claim.id).Release();
  EXPECT_TRUE(table.WaitEmpty(absl::Now() + absl::Seconds(1)));
}

// The room of a reservation is freed by whoever holds its lease, exactly once: dropped, released
// twice, moved from or overwritten.
TEST_F(ReservationTableTest, ALeaseFreesItsRoomExactlyOnce) {
  ReservationTable table(Limits(absl::Seconds(30)), &metrics_);
  ASSERT_OK_AND_ASSIGN(Reserved a, table.Reserve(Request(10, 10)));
  ASSERT_OK_AND_ASSIGN(Reserved b, table.Reserve(Request(10, 10)));
  ASSERT_OK(table.ClaimForDecode(a.id));
  ASSERT_OK(table.ClaimForDecode(b.id));
  ASSERT_EQ(table.Load().reservations, 2);
  {
    ReservationLease lease = table.Lease(a.id);
    ReservationLease moved = std::move(lease);
    EXPECT_FALSE(lease.held());  // NOLINT(bugprone-use-after-move): what a move leaves
    lease.Release();             // a moved-from lease frees nothing
    EXPECT_EQ(table.Load().reservations, 2);
    moved.Release();
    EXPECT_EQ(table.Load().reservations, 1);
    moved.Release();
  }
  int released = 0;
  {
    ReservationLease counting(b.id, [&](uint64_t) { ++released; });
    ReservationLease other = table.Lease(b.id);
    other = std::move(counting);  // assigning over a held lease frees what it held
    EXPECT_EQ(table.Load().reservations, 0);
    EXPECT_EQ(released, 0);
  }
  EXPECT_EQ(released, 1) << "the moved-in lease was released when dropped";
}

}  // namespace
}  // namespace tandem::decode
