// tests/consistency/transport_auth_test.cc
//
// The data plane's cluster-secret handshake and receiver limits (issue 13) over TCP: a transfer
// between holders of the secret completes; a sender without it (or with another) never reaches the
// sink and is counted; a sender with the secret ships nothing to a receiver that cannot prove it
// (only the 40-byte HELLO leaves the process); connections beyond the cap are closed at once, and
// an idle connection is closed after the idle timeout.
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include "common/cluster_secret.h"
#include "gtest/gtest.h"
#include "kv_store/transfer/handshake.h"
#include "kv_store/transfer/tcp_socket.h"
#include "kv_store/transfer/tcp_transport.h"
#include "tests/consistency/transport_test_support.h"
#include "tests/support/status_matchers.h"

namespace tandem::kv {
namespace {

using ::tandem::kv::testing::PatternBlocks;
using ::tandem::kv::testing::PatternDims;
using ::tandem::kv::testing::RecordingSink;
using ::tandem::kv::testing::TransportTestFormat;

std::shared_ptr<const ClusterSecret> Secret(char fill) {
  return *ClusterSecret::FromBytes(std::string(32, fill));
}

class TransportAuthTest : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    setenv("UCX_TLS", "tcp,sm,self", /*overwrite=*/0);
    setenv("UCX_NET_DEVICES", "lo", /*overwrite=*/1);
  }
  std::string Name() const { return GetParam(); }
  void SetUp() override {
    format_ = TransportTestFormat(dims_.tokens);
    refusals_ = AuthRefusalsCounter(metrics_);
  }
  void TearDown() override {
    if (sender_) {
      EXPECT_OK(sender_->Shutdown(absl::Seconds(1)));
    }
    if (receiver_) {
      EXPECT_OK(receiver_->Shutdown(absl::Seconds(1)));
    }
  }
  void StartReceiver(std::shared_ptr<const ClusterSecret> secret, int max_connections = 64,
                     absl::Duration idle = absl::Seconds(60)) {
    TransportOptions o{"decode-0", 21};
    o.secret = std::move(secret);
    o.auth_refusals = refusals_;
    o.max_connections = max_connections;
    o.idle_timeout = idle;
    absl::StatusOr<std::unique_ptr<Transport>> t = NewTransport(Name(), o);
    ASSERT_TRUE(t.ok()) << t.status();
    receiver_ = *std::move(t);
    ListenOptions l;
    l.format = format_;
    ASSERT_OK_AND_ASSIGN(port_, receiver_->Listen(l, &sink_));
  }
  void StartSender(std::shared_ptr<const ClusterSecret> secret) {
    TransportOptions o{"prefill-0", 11};
    o.secret = std::move(secret);
    absl::StatusOr<std::unique_ptr<Transport>> t = NewTransport(Name(), o);
    ASSERT_TRUE(t.ok()) << t.status();
    sender_ = *std::move(t);
  }
  // Posts a 3-block transfer to `port` and returns its final status.
  absl::Status Ship(uint16_t port, TransferId* id = nullptr) {
    TransferDesc d;
    d.id = TransferId::Random();
    if (id != nullptr) *id = d.id;
    d.dst = PeerAddress{"127.0.0.1", port, "decode-0", 21};
    d.reservation = 77;
    d.meta.request_id = "req-auth";
    d.meta.first_token = 1;
    absl::StatusOr<std::vector<KvBlock>> blocks = PatternBlocks(format_, 3, dims_);
    if (!blocks.ok()) return blocks.status();
    d.blocks = *std::move(blocks);
    d.deadline = absl::Now() + absl::Seconds(10);
    absl::StatusOr<TransferHandle> h = sender_->Post(std::move(d));
    if (!h.ok()) return h.status();
    return sender_->Wait(*h, absl::Now() + absl::Seconds(15));
  }
  double Refused(const std::string& reason) { return refusals_->Labels({"data", reason}).Value(); }

  PatternDims dims_;
  KvFormat format_;
  MetricsRegistry metrics_;
  CounterFamily* refusals_ = nullptr;
  RecordingSink sink_;
  std::unique_ptr<Transport> sender_;
  std::unique_ptr<Transport> receiver_;
  uint16_t port_ = 0;
};

TEST_P(TransportAuthTest, HoldersOfTheSecretTransfer) {
  StartReceiver(Secret('a'));
  StartSender(Secret('a'));
  TransferId id;
  ASSERT_OK(Ship(port_, &id));
  std::optional<RecordingSink::Record> rec = sink_.Get(id);
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->blocks.size(), 3u);
  // The cached, authenticated connection carries a second transfer.
  ASSERT_OK(Ship(port_));
}

TEST_P(TransportAuthTest, SenderWithoutTheSecretNeverReachesTheSink) {
  StartReceiver(Secret('a'));
  StartSender(nullptr);
  TransferId id;
  EXPECT_FALSE(Ship(port_, &id).ok());
  EXPECT_FALSE(sink_.Get(id).has_value());
  EXPECT_GE(Refused("no_handshake"), 1);
}

TEST_P(TransportAuthTest, SenderWithAnotherSecretIsRefused) {
  StartReceiver(Secret('a'));
  StartSender(Secret('b'));
  TransferId id;
  const absl::Status s = Ship(port_, &id);
  EXPECT_TRUE(absl::IsUnauthenticated(s)) << s;
  EXPECT_FALSE(sink_.Get(id).has_value());
}

INSTANTIATE_TEST_SUITE_P(AllTransports, TransportAuthTest,
                         ::testing::ValuesIn(AvailableTransports()),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

// TCP only: raw sockets stand in for the peer.
class TcpAuthTest : public TransportAuthTest {};

// An impostor that listens where the sender was told to ship and answers anything: the sender
// sends its HELLO and nothing more.
TEST_P(TcpAuthTest, NothingIsShippedToAnImpostor) {
  StartSender(Secret('a'));
  ASSERT_OK_AND_ASSIGN(auto listening, tcp::Listen("127.0.0.1", 0));
  size_t received = 0;
  std::thread impostor([&] {
    absl::StatusOr<int> fd = tcp::Accept(listening.first, absl::Seconds(10));
    if (!fd.ok() || *fd < 0) return;
    std::array<uint8_t, kChallengeBytes> junk{};
    std::memcpy(junk.data(), "TXHS", 4);  // looks like a CHALLENGE, proof all zeros
    char buf[65536];
    absl::Time until = absl::Now() + absl::Seconds(5);
    bool answered = false;
    while (absl::Now() < until) {
      if (tcp::Readable(*fd, absl::Milliseconds(50))) {
        const ssize_t n = recv(*fd, buf, sizeof(buf), 0);
        if (n <= 0) break;
        received += static_cast<size_t>(n);
        if (!answered) {
          answered = true;
          (void)send(*fd, junk.data(), junk.size(), MSG_NOSIGNAL);
        }
      }
    }
    close(*fd);
  });
  const absl::Status s = Ship(listening.second);
  impostor.join();
  close(listening.first);
  EXPECT_TRUE(absl::IsUnauthenticated(s)) << s;
  EXPECT_EQ(received, kHelloBytes) << "only the HELLO may leave the sender";
}

TEST_P(TcpAuthTest, ConnectionsBeyondTheCapAreClosedAndIdleOnesTimeOut) {
  StartReceiver(nullptr, /*max_connections=*/2, /*idle=*/absl::Milliseconds(1500));
  std::vector<int> fds;
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(int fd, tcp::Connect("127.0.0.1", port_, absl::Now() + absl::Seconds(5)));
    fds.push_back(fd);
    absl::SleepFor(absl::Milliseconds(100));  // let the acceptor take it
  }
  // The third is closed at once; the first two stay open until idle.
  char c;
  ASSERT_TRUE(tcp::Readable(fds[2], absl::Seconds(2)));
  EXPECT_EQ(recv(fds[2], &c, 1, 0), 0);
  EXPECT_GE(Refused("too_many_connections"), 1);
  EXPECT_FALSE(tcp::Readable(fds[0], absl::Milliseconds(50)));
  ASSERT_TRUE(tcp::Readable(fds[0], absl::Seconds(3))) << "idle connection not closed";
  EXPECT_EQ(recv(fds[0], &c, 1, 0), 0);
  for (int fd : fds) close(fd);
  // Room again: a real sender is served.
  absl::SleepFor(absl::Milliseconds(100));
  StartSender(nullptr);
  ASSERT_OK(Ship(port_));
}

INSTANTIATE_TEST_SUITE_P(Tcp, TcpAuthTest, ::testing::Values(std::string("tcp")));

}  // namespace
}  // namespace tandem::kv
