// tests/consistency/transport_test.cc
//
// The transport round-trip harness (ARCHITECTURE.md §11, issue 6): every
// transport this build has
// ("tcp", and "ucx" when built) moves patterned blocks built from strided
// tensors and must deliver them byte for byte, validated; and must fail loudly,
// never silently, on an expired deadline, a peer epoch change, a flipped byte,
// a receiver killed mid-transfer and a cancel.
#include "kv_store/transfer/transport.h"

#include <unistd.h>

#include <array>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "gtest/gtest.h"
#include "kv_store/transfer/frame.h"
#include "kv_store/transfer/tcp_socket.h"
#include "kv_store/transfer/tcp_transport.h"
#include "tests/consistency/transport_test_support.h"
#include "tests/support/status_matchers.h"

namespace tandem::kv {
namespace {

using ::tandem::kv::testing::HoldsPattern;
using ::tandem::kv::testing::PatternBlocks;
using ::tandem::kv::testing::PatternDims;
using ::tandem::kv::testing::RecordingSink;
using ::tandem::kv::testing::TransportTestFormat;
using ::tandem::testing::StatusIs;

class TransportTest : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    // UCX reads these at ucp_init; loopback only, tcp for the client/server
    // wireup, shm for data.
    setenv("UCX_TLS", "tcp,sm,self", /*overwrite=*/0);
    setenv("UCX_NET_DEVICES", "lo", /*overwrite=*/1);  // never eth0 in tests
  }

  void SetUp() override {
    format_ = TransportTestFormat(dims_.tokens);
    sender_ = Make("prefill-0", 11);
    receiver_ = Make("decode-0", 21);
    ASSERT_OK_AND_ASSIGN(port_, receiver_->Listen(ListenOpts(), &sink_));
  }
  void TearDown() override {
    if (sender_) {
      EXPECT_OK(sender_->Shutdown(absl::Seconds(1)));
    }
    if (receiver_) {
      EXPECT_OK(receiver_->Shutdown(absl::Seconds(1)));
    }
    sink_.Gate(false);
  }

  std::unique_ptr<Transport> Make(const std::string& node, uint64_t epoch) {
    absl::StatusOr<std::unique_ptr<Transport>> t =
        NewTransport(GetParam(), TransportOptions{node, epoch});
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? *std::move(t) : nullptr;
  }
  ListenOptions ListenOpts() const {
    ListenOptions o;
    o.format = format_;
    return o;
  }
  TransferDesc Desc(std::vector<KvBlock> blocks, uint64_t epoch = 21,
                    absl::Duration timeout = absl::Seconds(10)) const {
    TransferDesc d;
    d.id = TransferId::Random();
    d.dst = PeerAddress{"127.0.0.1", port_, "decode-0", epoch};
    d.reservation = 77;
    d.meta.request_id = "req-1";
    d.meta.first_token = 42;
    d.blocks = std::move(blocks);
    d.deadline = absl::Now() + timeout;
    return d;
  }
  std::vector<KvBlock> Blocks(int n) {
    absl::StatusOr<std::vector<KvBlock>> b = PatternBlocks(format_, n, dims_);
    EXPECT_TRUE(b.ok()) << b.status();
    return b.ok() ? *b : std::vector<KvBlock>();
  }

  PatternDims dims_;
  KvFormat format_;
  RecordingSink sink_;
  std::unique_ptr<Transport> sender_;
  std::unique_ptr<Transport> receiver_;
  uint16_t port_ = 0;
};

TEST_P(TransportTest, PatternedStridedBlocksRoundTripByteForByte) {
  std::vector<KvBlock> blocks = Blocks(5);
  ASSERT_EQ(blocks.size(), 5u);
  TransferDesc d = Desc(blocks);
  const TransferId id = d.id;
  ASSERT_OK_AND_ASSIGN(TransferHandle h, sender_->Post(std::move(d)));
  EXPECT_OK(sender_->Wait(h, absl::Now() + absl::Seconds(10)));
  EXPECT_EQ(sender_->Poll(h).first, TransferState::kDone);

  std::optional<absl::Status> end = sink_.AwaitEnd(id);
  ASSERT_TRUE(end.has_value());
  EXPECT_OK(*end);
  std::optional<RecordingSink::Record> rec = sink_.Get(id);
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->reservation, 77u);
  EXPECT_EQ(rec->meta.request_id, "req-1");
  EXPECT_EQ(rec->meta.first_token, 42);
  EXPECT_EQ(rec->meta.block_count, 5u);
  ASSERT_EQ(rec->blocks.size(), blocks.size());
  for (size_t i = 0; i < blocks.size(); ++i) {
    const KvBlock& got = rec->blocks[i];
    EXPECT_EQ(got.key(), blocks[i].key()) << "block " << i;
    ASSERT_EQ(got.size(), blocks[i].size()) << "block " << i;
    EXPECT_EQ(0, std::memcmp(got.bytes().data(), blocks[i].bytes().data(), got.size()))
        << "block " << i;
    EXPECT_TRUE(HoldsPattern(got, static_cast<int>(i), dims_)) << "block " << i;
    // The received bytes verify on their own (header and payload checksums, key
    // chain).
    EXPECT_OK(KvBlock::Parse(got.shared_bytes(), format_, blocks[i].key()).status());
  }
}

TEST_P(TransportTest, ManyTransfersShareOneConnection) {
  std::vector<TransferHandle> handles;
  for (int i = 0; i < 8; ++i) {
    ASSERT_OK_AND_ASSIGN(TransferHandle h, sender_->Post(Desc(Blocks(2))));
    handles.push_back(h);
  }
  for (TransferHandle h : handles) EXPECT_OK(sender_->Wait(h, absl::Now() + absl::Seconds(10)));
}

// An open connection with nothing to carry must not cost a core: a decode node spends most of
// its life like this, beside a prefill node that needs the CPU. (The TCP reader once polled with
// a zero timeout when no transfer was open, and slowed a co-located prefill node down 1.8x.)
TEST_P(TransportTest, IdleConnectionCostsNoCpu) {
  ASSERT_OK_AND_ASSIGN(TransferHandle h, sender_->Post(Desc(Blocks(1))));
  ASSERT_OK(sender_->Wait(h, absl::Now() + absl::Seconds(10)));
  auto cpu_seconds = [] {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + ts.tv_nsec * 1e-9;
  };
  const double before = cpu_seconds();
  absl::SleepFor(absl::Seconds(1));
  const double used = cpu_seconds() - before;
  std::printf("IDLE %s: %.3f s of CPU in 1 s with one idle connection\n", GetParam().c_str(), used);
  // A thread spinning on the connection would use ~1 s; sleeping on the socket (tcp) or the UCX
  // worker's wakeup fd uses ~0.01 s (ucx used 0.1 s while it napped 200 us at a time).
  EXPECT_LT(used, 0.06);
}

// Cancel and Post after Shutdown are answered without touching the stopped transport's
// internals (UCX: the worker is destroyed by then).
TEST_P(TransportTest, CancelAndPostAfterShutdownAreHarmless) {
  ASSERT_OK_AND_ASSIGN(TransferHandle h, sender_->Post(Desc(Blocks(1))));
  ASSERT_OK(sender_->Wait(h, absl::Now() + absl::Seconds(10)));
  ASSERT_OK(sender_->Shutdown(absl::Seconds(1)));
  sender_->Cancel(h);
  sender_->Cancel(h + 1000);
  EXPECT_FALSE(sender_->Post(Desc(Blocks(1))).ok());
  EXPECT_EQ(sender_->Poll(h).first, TransferState::kDone);
}

TEST_P(TransportTest, PostRejectsBadDescriptors) {
  TransferDesc no_deadline = Desc(Blocks(1));
  no_deadline.deadline = absl::InfinitePast();
  EXPECT_THAT(sender_->Post(std::move(no_deadline)).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "deadline"));
  EXPECT_THAT(sender_->Post(Desc({})).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "blocks"));
  EXPECT_THAT(sender_->Poll(987654).second, StatusIs(absl::StatusCode::kNotFound));
}

TEST_P(TransportTest, ExpiredDeadlineFails) {
  ASSERT_OK_AND_ASSIGN(TransferHandle h,
                       sender_->Post(Desc(Blocks(1), 21, -absl::Milliseconds(1))));
  EXPECT_THAT(sender_->Wait(h, absl::Now() + absl::Seconds(10)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_EQ(sender_->Poll(h).first, TransferState::kFailed);
}

TEST_P(TransportTest, DeadlinePassingWhileReceiverStallsFailsBothSides) {
  sink_.Gate(true);  // the receiver holds the first block until released
  TransferDesc d = Desc(Blocks(3), 21, absl::Milliseconds(300));
  const TransferId id = d.id;
  ASSERT_OK_AND_ASSIGN(TransferHandle h, sender_->Post(std::move(d)));
  EXPECT_THAT(sender_->Wait(h, absl::Now() + absl::Seconds(10)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  sink_.Gate(false);
  std::optional<absl::Status> end = sink_.AwaitEnd(id);
  ASSERT_TRUE(end.has_value()) << "the receiver was never told";
  EXPECT_FALSE(end->ok());
  // The transport recovers: the next transfer goes through.
  ASSERT_OK_AND_ASSIGN(TransferHandle next, sender_->Post(Desc(Blocks(1))));
  EXPECT_OK(sender_->Wait(next, absl::Now() + absl::Seconds(10)));
}

TEST_P(TransportTest, StaleReceiverEpochIsAborted) {
  TransferDesc d = Desc(Blocks(2), /*epoch=*/20);  // the receiver is at 21
  const TransferId id = d.id;
  ASSERT_OK_AND_ASSIGN(TransferHandle h, sender_->Post(std::move(d)));
  EXPECT_THAT(sender_->Wait(h, absl::Now() + absl::Seconds(10)),
              StatusIs(absl::StatusCode::kAborted, "peer epoch changed"));
  EXPECT_FALSE(sink_.Get(id).has_value()) << "a stale-epoch transfer reached the sink";
}

TEST_P(TransportTest, RestartedReceiverIsNeverConfusedWithTheOldOne) {
  ASSERT_OK_AND_ASSIGN(TransferHandle first, sender_->Post(Desc(Blocks(1))));
  ASSERT_OK(sender_->Wait(first, absl::Now() + absl::Seconds(10)));
  // decode-0 restarts with epoch 22 (on a new port, as a restarted process
  // would).
  ASSERT_OK(receiver_->Shutdown(absl::Seconds(1)));
  receiver_ = Make("decode-0", 22);
  ASSERT_OK_AND_ASSIGN(port_, receiver_->Listen(ListenOpts(), &sink_));
  // A sender still addressing epoch 21 is refused by the new process...
  ASSERT_OK_AND_ASSIGN(TransferHandle stale, sender_->Post(Desc(Blocks(1), 21)));
  EXPECT_THAT(sender_->Wait(stale, absl::Now() + absl::Seconds(10)),
              StatusIs(absl::StatusCode::kAborted, "peer epoch changed"));
  // ...the new epoch works...
  ASSERT_OK_AND_ASSIGN(TransferHandle fresh, sender_->Post(Desc(Blocks(1), 22)));
  EXPECT_OK(sender_->Wait(fresh, absl::Now() + absl::Seconds(10)));
  // ...and once epoch 22 was seen, epoch 21 is refused without being sent.
  ASSERT_OK_AND_ASSIGN(TransferHandle old, sender_->Post(Desc(Blocks(1), 21)));
  EXPECT_THAT(sender_->Wait(old, absl::Now() + absl::Seconds(10)),
              StatusIs(absl::StatusCode::kAborted, "peer epoch changed"));
}

TEST_P(TransportTest, FlippedPayloadByteIsNackedNeverDelivered) {
  std::vector<KvBlock> blocks = Blocks(3);
  // Corrupt block 1 after it was sealed (its bytes were allocated mutable by
  // Build).
  auto* raw = const_cast<uint8_t*>(blocks[1].bytes().data());
  raw[blocks[1].header().payload_offset + 5] ^= 0x10;
  TransferDesc d = Desc(blocks);
  const TransferId id = d.id;
  ASSERT_OK_AND_ASSIGN(TransferHandle h, sender_->Post(std::move(d)));
  EXPECT_THAT(sender_->Wait(h, absl::Now() + absl::Seconds(10)),
              StatusIs(absl::StatusCode::kDataLoss, "checksum"));
  EXPECT_EQ(sender_->Poll(h).first, TransferState::kFailed);
  std::optional<absl::Status> end = sink_.AwaitEnd(id);
  ASSERT_TRUE(end.has_value());
  EXPECT_THAT(*end, StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_EQ(sink_.Get(id)->blocks.size(), 1u) << "only the good block before it is delivered";
}

TEST_P(TransportTest, FlippedHeaderByteIsNacked) {
  std::vector<KvBlock> blocks = Blocks(2);
  const_cast<uint8_t*>(blocks[0].bytes().data())[150] ^= 0x01;  // num_tokens
  ASSERT_OK_AND_ASSIGN(TransferHandle h, sender_->Post(Desc(blocks)));
  EXPECT_THAT(sender_->Wait(h, absl::Now() + absl::Seconds(10)),
              StatusIs(absl::StatusCode::kDataLoss));
}

TEST_P(TransportTest, RejectedBeginIsNackedWithTheSinksStatus) {
  sink_.RejectNextBegin();
  ASSERT_OK_AND_ASSIGN(TransferHandle h, sender_->Post(Desc(Blocks(2))));
  EXPECT_THAT(sender_->Wait(h, absl::Now() + absl::Seconds(10)),
              StatusIs(absl::StatusCode::kResourceExhausted, "no reservation"));
}

TEST_P(TransportTest, ReceiverKilledMidTransferFailsBothSides) {
  sink_.Gate(true);
  TransferDesc d = Desc(Blocks(4));
  const TransferId id = d.id;
  ASSERT_OK_AND_ASSIGN(TransferHandle h, sender_->Post(std::move(d)));
  ASSERT_TRUE(sink_.AwaitBlocks(1));
  std::thread killer([&] { EXPECT_OK(receiver_->Shutdown(absl::ZeroDuration())); });
  // Wait until the receiver is shutting down (it refuses new posts from then on) before letting
  // the sink return, so the rest of the transfer cannot complete first.
  const absl::Time until = absl::Now() + absl::Seconds(10);
  while (absl::Now() < until) {
    TransferDesc probe = Desc(Blocks(1), 21, -absl::Seconds(1));  // fails at once if accepted
    if (!receiver_->Post(std::move(probe)).ok()) break;
  }
  sink_.Gate(false);
  EXPECT_THAT(sender_->Wait(h, absl::Now() + absl::Seconds(10)),
              StatusIs(absl::StatusCode::kUnavailable));
  killer.join();
  std::optional<absl::Status> end = sink_.AwaitEnd(id);
  ASSERT_TRUE(end.has_value()) << "the receiver's sink was never told";
  EXPECT_THAT(*end, StatusIs(absl::StatusCode::kUnavailable));
  receiver_.reset();
}

TEST_P(TransportTest, SenderKilledMidTransferTellsTheReceiver) {
  sink_.Gate(true);
  TransferDesc d = Desc(Blocks(4));
  const TransferId id = d.id;
  ASSERT_OK_AND_ASSIGN(TransferHandle h, sender_->Post(std::move(d)));
  ASSERT_TRUE(sink_.AwaitBlocks(1));
  std::thread killer([&] { EXPECT_OK(sender_->Shutdown(absl::ZeroDuration())); });
  killer.join();
  EXPECT_NE(sender_->Poll(h).first, TransferState::kDone);
  sink_.Gate(false);
  std::optional<absl::Status> end = sink_.AwaitEnd(id);
  ASSERT_TRUE(end.has_value()) << "the receiver's sink was never told";
  // The whole transfer may already sit in the receiver's socket buffer: then it
  // completes there, but the sender never reports kDone without the ACK.
  if (!end->ok()) {
    EXPECT_THAT(*end, StatusIs(absl::StatusCode::kUnavailable));
  }
  sender_.reset();
}

TEST_P(TransportTest, CancelPendingAndInFlight) {
  sink_.Gate(true);
  TransferDesc d1 = Desc(Blocks(3));
  const TransferId id1 = d1.id;
  ASSERT_OK_AND_ASSIGN(TransferHandle h1, sender_->Post(std::move(d1)));
  TransferDesc d2 = Desc(Blocks(1));
  const TransferId id2 = d2.id;
  ASSERT_OK_AND_ASSIGN(TransferHandle h2, sender_->Post(std::move(d2)));
  ASSERT_TRUE(sink_.AwaitBlocks(1));
  sender_->Cancel(h2);  // still queued behind h1
  EXPECT_THAT(sender_->Wait(h2, absl::Now() + absl::Seconds(10)),
              StatusIs(absl::StatusCode::kCancelled));
  EXPECT_EQ(sender_->Poll(h2).first, TransferState::kCancelled);
  sender_->Cancel(h1);  // in flight
  EXPECT_THAT(sender_->Wait(h1, absl::Now() + absl::Seconds(10)),
              StatusIs(absl::StatusCode::kCancelled));
  EXPECT_EQ(sender_->Poll(h1).first, TransferState::kCancelled);
  sink_.Gate(false);
  EXPECT_TRUE(sink_.AwaitEnd(id1).has_value());
  EXPECT_FALSE(sink_.Get(id2).has_value()) << "a transfer cancelled while queued was sent";
  // The stream stays usable after a cancel.
  ASSERT_OK_AND_ASSIGN(TransferHandle h3, sender_->Post(Desc(Blocks(2))));
  EXPECT_OK(sender_->Wait(h3, absl::Now() + absl::Seconds(10)));
}

// Frame-level misbehaviour from a raw TCP peer: a sender that vanishes after one BLOCK ends the
// transfer on the receiver with Unavailable; a garbage header closes only that connection.
TEST(TcpTransportRawTest, TruncatedStreamAndGarbageAreContained) {
  const PatternDims dims;
  const KvFormat format = TransportTestFormat(dims.tokens);
  RecordingSink sink;
  TcpTransport receiver(TransportOptions{"decode-0", 21});
  ListenOptions lo;
  lo.format = format;
  ASSERT_OK_AND_ASSIGN(uint16_t port, receiver.Listen(lo, &sink));
  ASSERT_OK_AND_ASSIGN(std::vector<KvBlock> blocks, PatternBlocks(format, 2, dims));

  auto send_frame = [](int fd, FrameHeader h, std::string_view body) {
    h.body_bytes = body.size();
    const auto head = EncodeFrameHeader(h);
    ASSERT_OK(tcp::SendAll(fd, head.data(), head.size(), absl::Now() + absl::Seconds(5), nullptr));
    ASSERT_OK(tcp::SendAll(fd, body.data(), body.size(), absl::Now() + absl::Seconds(5), nullptr));
  };
  TransferMeta meta;
  meta.block_count = 2;
  meta.keys = {blocks[0].key(), blocks[1].key()};
  FrameHeader h;
  h.id = TransferId::Random();
  h.sender_epoch = 11;
  h.receiver_epoch = 21;
  ASSERT_OK_AND_ASSIGN(int fd, tcp::Connect("127.0.0.1", port, absl::Now() + absl::Seconds(5)));
  h.type = FrameType::kBegin;
  send_frame(fd, h, EncodeBeginBody(meta, 1));
  h.type = FrameType::kBlock;
  send_frame(fd, h,
             std::string_view(reinterpret_cast<const char*>(blocks[0].bytes().data()),
                              blocks[0].size()));
  ASSERT_TRUE(sink.AwaitBlocks(1));
  close(fd);  // the sender dies mid-transfer
  std::optional<absl::Status> end = sink.AwaitEnd(h.id);
  ASSERT_TRUE(end.has_value());
  EXPECT_THAT(*end, StatusIs(absl::StatusCode::kUnavailable, "lost mid-transfer"));

  ASSERT_OK_AND_ASSIGN(int junk, tcp::Connect("127.0.0.1", port, absl::Now() + absl::Seconds(5)));
  const std::string garbage(64, 'x');
  ASSERT_OK(
      tcp::SendAll(junk, garbage.data(), garbage.size(), absl::Now() + absl::Seconds(5), nullptr));
  char c;
  size_t got = 0;
  EXPECT_THAT(tcp::RecvAll(junk, &c, 1, absl::Now() + absl::Seconds(10), nullptr, &got),
              StatusIs(absl::StatusCode::kUnavailable));  // the receiver hung up (FIN or RST)
  close(junk);

  // The receiver still serves well-behaved senders.
  TcpTransport sender(TransportOptions{"prefill-0", 11});
  TransferDesc d;
  d.id = TransferId::Random();
  d.dst = PeerAddress{"127.0.0.1", port, "decode-0", 21};
  d.blocks = blocks;
  d.deadline = absl::Now() + absl::Seconds(10);
  ASSERT_OK_AND_ASSIGN(TransferHandle t, sender.Post(std::move(d)));
  EXPECT_OK(sender.Wait(t, absl::Now() + absl::Seconds(10)));
  EXPECT_OK(sender.Shutdown(absl::Seconds(1)));
  EXPECT_OK(receiver.Shutdown(absl::Seconds(1)));
}

// A raw TCP peer speaking frames to a TcpTransport receiver.
class TcpRawPeerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    format_ = TransportTestFormat(dims_.tokens);
    ListenOptions lo;
    lo.format = format_;
    ASSERT_OK_AND_ASSIGN(port_, receiver_.Listen(lo, &sink_));
    ASSERT_OK_AND_ASSIGN(blocks_, PatternBlocks(format_, 2, dims_));
  }
  void TearDown() override { EXPECT_OK(receiver_.Shutdown(absl::Seconds(1))); }

  absl::StatusOr<int> Connect() {
    return tcp::Connect("127.0.0.1", port_, absl::Now() + absl::Seconds(5));
  }
  static void SendFrame(int fd, FrameHeader h, std::string_view body) {
    h.body_bytes = body.size();
    const auto head = EncodeFrameHeader(h);
    ASSERT_OK(tcp::SendAll(fd, head.data(), head.size(), absl::Now() + absl::Seconds(5), nullptr));
    ASSERT_OK(tcp::SendAll(fd, body.data(), body.size(), absl::Now() + absl::Seconds(5), nullptr));
  }
  // The next ACK/NACK on fd.
  static absl::StatusOr<Reply> ReadReply(int fd) {
    std::array<uint8_t, kFrameHeaderBytes> head;
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    TANDEM_RETURN_IF_ERROR(tcp::RecvAll(fd, head.data(), head.size(), deadline, nullptr));
    TANDEM_ASSIGN_OR_RETURN(FrameHeader h, DecodeFrameHeader(head));
    std::string body(h.body_bytes, '\0');
    TANDEM_RETURN_IF_ERROR(tcp::RecvAll(fd, body.data(), body.size(), deadline, nullptr));
    return DecodeReplyBody(body);
  }
  FrameHeader Header(FrameType type, const TransferId& id, uint64_t receiver_epoch = 21) const {
    FrameHeader h;
    h.type = type;
    h.id = id;
    h.sender_epoch = 11;
    h.receiver_epoch = receiver_epoch;
    return h;
  }
  std::string Begin(absl::Time deadline = absl::InfiniteFuture()) const {
    TransferMeta meta;
    meta.block_count = 2;
    meta.keys = {blocks_[0].key(), blocks_[1].key()};
    meta.deadline = deadline;
    return EncodeBeginBody(meta, 1);
  }
  std::string_view BlockBody(int i) const {
    return std::string_view(reinterpret_cast<const char*>(blocks_[i].bytes().data()),
                            blocks_[i].size());
  }

  PatternDims dims_;
  KvFormat format_;
  RecordingSink sink_;
  TcpTransport receiver_{TransportOptions{"decode-0", 21}};
  uint16_t port_ = 0;
  std::vector<KvBlock> blocks_;
};

// A header announcing a 3 GiB BEGIN body is rejected before any allocation: that connection is
// closed and the receiver keeps serving others.
TEST_F(TcpRawPeerTest, HugeBodyLengthClosesOnlyThatConnection) {
  ASSERT_OK_AND_ASSIGN(int bad, Connect());
  FrameHeader h = Header(FrameType::kBegin, TransferId::Random());
  h.body_bytes = uint64_t{3} << 30;
  const auto head = EncodeFrameHeader(h);
  ASSERT_OK(tcp::SendAll(bad, head.data(), head.size(), absl::Now() + absl::Seconds(5), nullptr));
  char c;
  EXPECT_THAT(tcp::RecvAll(bad, &c, 1, absl::Now() + absl::Seconds(10), nullptr),
              StatusIs(absl::StatusCode::kUnavailable));
  close(bad);

  ASSERT_OK_AND_ASSIGN(int fd, Connect());
  const TransferId id = TransferId::Random();
  SendFrame(fd, Header(FrameType::kBegin, id), Begin());
  SendFrame(fd, Header(FrameType::kBlock, id), BlockBody(0));
  SendFrame(fd, Header(FrameType::kBlock, id), BlockBody(1));
  SendFrame(fd, Header(FrameType::kEnd, id), EncodeEndBody(2));
  ASSERT_OK_AND_ASSIGN(Reply r, ReadReply(fd));
  EXPECT_OK(r.status);
  close(fd);
}

// A sender that sends BEGIN and then goes silent does not hold the sink's reservation past the
// transfer's deadline.
TEST_F(TcpRawPeerTest, SilentSenderIsFailedAtTheDeadline) {
  ASSERT_OK_AND_ASSIGN(int fd, Connect());
  const TransferId id = TransferId::Random();
  SendFrame(fd, Header(FrameType::kBegin, id), Begin(absl::Now() + absl::Milliseconds(500)));
  std::optional<absl::Status> end = sink_.AwaitEnd(id);
  ASSERT_TRUE(end.has_value()) << "the silent transfer was never ended";
  EXPECT_THAT(*end, StatusIs(absl::StatusCode::kDeadlineExceeded));
  ASSERT_OK_AND_ASSIGN(Reply r, ReadReply(fd));
  EXPECT_THAT(r.status, StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_EQ(r.reason, "deadline");
  close(fd);
}

// A BEGIN NACKed for a stale receiver epoch may be retried with the same id at the right epoch.
TEST_F(TcpRawPeerTest, StaleEpochNackAllowsRetryWithTheSameId) {
  ASSERT_OK_AND_ASSIGN(int fd, Connect());
  const TransferId id = TransferId::Random();
  SendFrame(fd, Header(FrameType::kBegin, id, /*receiver_epoch=*/20), Begin());
  ASSERT_OK_AND_ASSIGN(Reply stale, ReadReply(fd));
  EXPECT_EQ(stale.reason, "stale_epoch");
  SendFrame(fd, Header(FrameType::kBegin, id), Begin());
  SendFrame(fd, Header(FrameType::kBlock, id), BlockBody(0));
  SendFrame(fd, Header(FrameType::kBlock, id), BlockBody(1));
  SendFrame(fd, Header(FrameType::kEnd, id), EncodeEndBody(2));
  ASSERT_OK_AND_ASSIGN(Reply r, ReadReply(fd));
  EXPECT_OK(r.status) << r.reason;
  close(fd);
}

// A BLOCK of a transfer that is not open is skipped (not stored) and the stream stays framed.
TEST_F(TcpRawPeerTest, BlockOfUnknownTransferIsSkipped) {
  ASSERT_OK_AND_ASSIGN(int fd, Connect());
  SendFrame(fd, Header(FrameType::kBlock, TransferId::Random()), BlockBody(0));
  const TransferId id = TransferId::Random();
  SendFrame(fd, Header(FrameType::kBegin, id), Begin());
  SendFrame(fd, Header(FrameType::kBlock, id), BlockBody(0));
  SendFrame(fd, Header(FrameType::kBlock, id), BlockBody(1));
  SendFrame(fd, Header(FrameType::kEnd, id), EncodeEndBody(2));
  ASSERT_OK_AND_ASSIGN(Reply r, ReadReply(fd));
  EXPECT_OK(r.status) << r.reason;
  close(fd);
}

// Connect gives up once its stop predicate is set, whatever the deadline.
TEST_F(TcpRawPeerTest, ConnectHonoursStop) {
  EXPECT_THAT(tcp::Connect("127.0.0.1", port_, absl::InfiniteFuture(), [] { return true; }),
              StatusIs(absl::StatusCode::kCancelled));
}

INSTANTIATE_TEST_SUITE_P(Transports, TransportTest, ::testing::ValuesIn(AvailableTransports()),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

}  // namespace
}  // namespace tandem::kv
