// tests/consistency/transport_frame_test.cc
//
// The §5.3 frame header is frozen by a golden byte dump; truncated, garbage and
// hostile frames are rejected with InvalidArgument, never a crash; the bodies
// round-trip.
#include <string>
#include <vector>

#include "common/hash.h"
#include "gtest/gtest.h"
#include "kv_store/transfer/frame.h"
#include "tests/support/status_matchers.h"

namespace tandem::kv {
namespace {

using ::tandem::testing::StatusIs;

FrameHeader Sample() {
  FrameHeader h;
  h.type = FrameType::kBlock;
  for (int i = 0; i < 16; ++i) h.id.bytes[i] = static_cast<uint8_t>(0xA0 + i);
  h.sender_epoch = 0x0102030405060708ull;
  h.receiver_epoch = 0x1122334455667788ull;
  h.body_bytes = 0x5C0000;
  return h;
}

TEST(TransportFrameTest, GoldenHeaderBytes) {
  const auto bytes = EncodeFrameHeader(Sample());
  EXPECT_EQ(HexEncode(absl::MakeConstSpan(bytes.data(), bytes.size())),
            "54584652"                          // "TXFR"
            "0100"                              // version 1
            "0200"                              // BLOCK
            "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"  // transfer id
            "0807060504030201"                  // sender epoch
            "8877665544332211"                  // receiver epoch
            "00005c0000000000");                // body length
}

TEST(TransportFrameTest, HeaderRoundTrips) {
  const auto bytes = EncodeFrameHeader(Sample());
  ASSERT_OK_AND_ASSIGN(FrameHeader h, DecodeFrameHeader(bytes));
  EXPECT_EQ(h.type, FrameType::kBlock);
  EXPECT_EQ(h.id, Sample().id);
  EXPECT_EQ(h.sender_epoch, Sample().sender_epoch);
  EXPECT_EQ(h.receiver_epoch, Sample().receiver_epoch);
  EXPECT_EQ(h.body_bytes, Sample().body_bytes);
}

TEST(TransportFrameTest, TruncatedAndGarbageHeadersAreRejected) {
  const auto good = EncodeFrameHeader(Sample());
  for (size_t n = 0; n < kFrameHeaderBytes; ++n) {
    EXPECT_THAT(DecodeFrameHeader(absl::MakeConstSpan(good.data(), n)).status(),
                StatusIs(absl::StatusCode::kInvalidArgument, "bytes, need 48"));
  }
  auto bad = good;
  bad[0] = 'X';
  EXPECT_THAT(DecodeFrameHeader(bad).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "magic"));
  bad = good;
  bad[4] = 2;
  EXPECT_THAT(DecodeFrameHeader(bad).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "version 2"));
  for (uint8_t type : {0, 7, 255}) {
    bad = good;
    bad[6] = type;
    EXPECT_THAT(DecodeFrameHeader(bad).status(),
                StatusIs(absl::StatusCode::kInvalidArgument, "type"));
  }
  bad = good;
  bad[47] = 0xFF;  // a body of ~2^63 bytes is garbage, not an allocation
  EXPECT_THAT(DecodeFrameHeader(bad).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "body_bytes"));
  // Random bytes never crash and (almost surely) never decode.
  uint64_t x = 88172645463325252ull;
  for (int trial = 0; trial < 1000; ++trial) {
    std::array<uint8_t, kFrameHeaderBytes> junk;
    for (auto &b : junk) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      b = static_cast<uint8_t>(x);
    }
    EXPECT_FALSE(DecodeFrameHeader(junk).ok());
  }
}

TEST(TransportFrameTest, BeginBodyRoundTripsAndRejectsGarbage) {
  TransferMeta meta;
  meta.request_id = "req-9";
  meta.first_token = 17;
  meta.block_count = 2;
  meta.total_bytes = 12345;
  meta.keys = {NextBlockKey(BlockKey{}, std::vector<KvTokenId>{1}),
               NextBlockKey(BlockKey{}, std::vector<KvTokenId>{2})};
  meta.deadline = absl::Now() + absl::Seconds(5);
  const std::string body = EncodeBeginBody(meta, 99);
  TransferMeta got;
  ReservationId r = 0;
  ASSERT_OK(DecodeBeginBody(body, &got, &r));
  EXPECT_EQ(r, 99u);
  EXPECT_EQ(got.request_id, "req-9");
  EXPECT_EQ(got.first_token, 17);
  EXPECT_EQ(got.block_count, 2u);
  EXPECT_EQ(got.total_bytes, 12345u);
  EXPECT_EQ(got.keys, meta.keys);
  EXPECT_LT(got.deadline, absl::Now() + absl::Seconds(6));

  EXPECT_THAT(DecodeBeginBody("{", &got, &r), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(DecodeBeginBody("[]", &got, &r), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(DecodeBeginBody(R"({"request_id": 5})", &got, &r),
              StatusIs(absl::StatusCode::kInvalidArgument, "missing or mistyped"));
  std::string wrong_count = body;
  wrong_count.replace(wrong_count.find("\"block_count\":2"), 15, "\"block_count\":3");
  EXPECT_THAT(DecodeBeginBody(wrong_count, &got, &r),
              StatusIs(absl::StatusCode::kInvalidArgument, "block_count 3"));
}

TEST(TransportFrameTest, BlockCountOver32BitsIsRejectedNotTruncated) {
  TransferMeta meta;
  meta.block_count = 1;
  meta.keys = {NextBlockKey(BlockKey{}, std::vector<KvTokenId>{1})};
  std::string body = EncodeBeginBody(meta, 1);
  // 2^32 + 1 would truncate to 1 and match the single key.
  body.replace(body.find("\"block_count\":1"), 15, "\"block_count\":4294967297");
  TransferMeta got;
  ReservationId r = 0;
  EXPECT_THAT(DecodeBeginBody(body, &got, &r),
              StatusIs(absl::StatusCode::kInvalidArgument, "block_count 4294967297"));
}

TEST(TransportFrameTest, BodyLengthIsCappedPerFrameType) {
  auto decode = [](FrameType type, uint64_t body_bytes) {
    FrameHeader h = Sample();
    h.type = type;
    h.body_bytes = body_bytes;
    return DecodeFrameHeader(EncodeFrameHeader(h)).status();
  };
  EXPECT_OK(decode(FrameType::kBegin, kMaxControlBody));
  EXPECT_THAT(decode(FrameType::kBegin, uint64_t{3} << 30),
              StatusIs(absl::StatusCode::kInvalidArgument, "for BEGIN"));
  EXPECT_THAT(decode(FrameType::kAck, kMaxControlBody + 1),
              StatusIs(absl::StatusCode::kInvalidArgument, "body_bytes"));
  EXPECT_THAT(decode(FrameType::kNack, kMaxControlBody + 1),
              StatusIs(absl::StatusCode::kInvalidArgument, "body_bytes"));
  EXPECT_OK(decode(FrameType::kEnd, 8));
  EXPECT_THAT(decode(FrameType::kEnd, 9), StatusIs(absl::StatusCode::kInvalidArgument, "END"));
  EXPECT_OK(decode(FrameType::kCancel, 0));
  EXPECT_THAT(decode(FrameType::kCancel, 1),
              StatusIs(absl::StatusCode::kInvalidArgument, "CANCEL"));
  EXPECT_OK(decode(FrameType::kBlock, kMaxBlockBody));
  EXPECT_THAT(decode(FrameType::kBlock, kMaxBlockBody + 1),
              StatusIs(absl::StatusCode::kInvalidArgument, "BLOCK"));
}

TEST(TransportFrameTest, EndAndReplyBodies) {
  ASSERT_OK_AND_ASSIGN(uint64_t n, DecodeEndBody(EncodeEndBody(7)));
  EXPECT_EQ(n, 7u);
  EXPECT_THAT(DecodeEndBody("abc").status(), StatusIs(absl::StatusCode::kInvalidArgument));

  ASSERT_OK_AND_ASSIGN(Reply r,
                       DecodeReplyBody(EncodeReplyBody(absl::DataLossError("bad"), "checksum")));
  EXPECT_THAT(r.status, StatusIs(absl::StatusCode::kDataLoss, "bad"));
  EXPECT_EQ(r.reason, "checksum");
  EXPECT_THAT(DecodeReplyBody(R"({"code": 99, "reason": "", "message": ""})").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "code 99"));
  EXPECT_THAT(DecodeReplyBody("nope").status(), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace tandem::kv
