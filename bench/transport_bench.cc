// transport_bench: KV transfer throughput over each transport on loopback
// against an in-process memcpy of the same bytes (ARCHITECTURE.md §12). For
// 1-64 MB transfers made of ~1 MB §5.1 blocks (30 layers x K,V x 45 tokens x 3
// heads x 64 f16), it times Post -> ACK (frames, socket, the receiver's full
// validation of every block) and prints
//   BENCH transport <name> mb=<size> gbps=<GB/s> memcpy_gbps=<GB/s>
//   ratio=<transfer/memcpy time>
//         p50_ms=<transfer>
// GB = 1e9 bytes. UCX rows (when built) run once with UCX_TLS=sm,self,tcp and
// once with tcp only.
//
//   transport_bench [--max_mb=64] [--iters=5]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/cluster_secret.h"
#include "kv_store/transfer/transport.h"
#include "tests/consistency/transport_test_support.h"

namespace tandem::kv {
namespace {

using Clock = std::chrono::steady_clock;

class CountingSink : public TransferSink {
 public:
  absl::Status OnBegin(const TransferMeta &, ReservationId) override { return absl::OkStatus(); }
  absl::Status OnBlock(const TransferId &, KvBlock block) override {
    bytes_ += block.size();
    return absl::OkStatus();
  }
  void OnEnd(const TransferId &, const absl::Status &) override {}

 private:
  std::atomic<uint64_t> bytes_{0};
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median seconds of one memcpy of `bytes` bytes into a warm destination.
double MemcpySeconds(size_t bytes, int iters) {
  std::vector<uint8_t> src(bytes, 1), dst(bytes, 0);
  std::vector<double> s;
  for (int i = 0; i < iters + 1; ++i) {
    const auto t0 = Clock::now();
    std::memcpy(dst.data(), src.data(), bytes);
    const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
    if (i > 0) s.push_back(dt);  // the first touches the pages
  }
  if (dst[bytes / 2] != 1) std::abort();
  return Median(s);
}

// `secret`: both ends run the cluster-secret handshake (once per connection, so its cost is in
// the first, untimed transfer) and BEGIN carries a transfer token, as in a secured cluster.
int Run(const std::string &name, const std::string &label, int max_mb, int iters,
        std::shared_ptr<const ClusterSecret> secret) {
  testing::PatternDims dims{30, 3, 64, 45};
  const KvFormat format = testing::TransportTestFormat(dims.tokens);
  absl::StatusOr<std::vector<KvBlock>> all = testing::PatternBlocks(format, max_mb, dims);
  if (!all.ok()) {
    std::fprintf(stderr, "blocks: %s\n", all.status().ToString().c_str());
    return 1;
  }
  TransportOptions send_options{"bench-prefill", 1};
  TransportOptions receive_options{"bench-decode", 2};
  send_options.secret = secret;
  receive_options.secret = secret;
  auto sender = NewTransport(name, send_options);
  auto receiver = NewTransport(name, receive_options);
  if (!sender.ok() || !receiver.ok()) {
    std::fprintf(stderr, "%s: %s\n", name.c_str(),
                 (!sender.ok() ? sender.status() : receiver.status()).ToString().c_str());
    return 1;
  }
  CountingSink sink;
  ListenOptions lo;
  lo.format = format;
  absl::StatusOr<uint16_t> port = (*receiver)->Listen(lo, &sink);
  if (!port.ok()) {
    std::fprintf(stderr, "listen: %s\n", port.status().ToString().c_str());
    return 1;
  }
  int rc = 0;
  for (int mb = 1; mb <= max_mb; mb *= 4) {
    std::vector<KvBlock> blocks(all->begin(), all->begin() + mb);
    size_t bytes = 0;
    for (const KvBlock &b : blocks) bytes += b.size();
    std::vector<double> secs;
    for (int i = 0; i < iters + 1; ++i) {  // the first run sets up the connection
      TransferDesc d;
      d.id = TransferId::Random();
      d.dst = PeerAddress{"127.0.0.1", *port, "bench-decode", 2};
      d.blocks = blocks;
      if (secret != nullptr) d.meta.transfer_token = "0123456789abcdef0123456789abcdef";
      d.deadline = absl::Now() + absl::Seconds(60);
      const auto t0 = Clock::now();
      absl::StatusOr<TransferHandle> h = (*sender)->Post(std::move(d));
      absl::Status s = h.ok() ? (*sender)->Wait(*h, absl::Now() + absl::Seconds(60)) : h.status();
      const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
      if (!s.ok()) {
        std::fprintf(stderr, "%s %d MB: %s\n", label.c_str(), mb, s.ToString().c_str());
        rc = 1;
        break;
      }
      if (i > 0) secs.push_back(dt);
    }
    if (secs.empty()) continue;
    const double t = Median(secs);
    const double base = MemcpySeconds(bytes, iters);
    std::printf(
        "BENCH transport %s mb=%.1f gbps=%.2f memcpy_gbps=%.2f "
        "ratio=%.1f p50_ms=%.2f\n",
        label.c_str(), bytes / 1e6, bytes / t / 1e9, bytes / base / 1e9, t / base, t * 1e3);
    std::fflush(stdout);
  }
  (void)(*sender)->Shutdown(absl::Seconds(1));
  (void)(*receiver)->Shutdown(absl::Seconds(1));
  return rc;
}

}  // namespace
}  // namespace tandem::kv

int main(int argc, char **argv) {
  int max_mb = 64, iters = 5;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--max_mb=", 0) == 0 && absl::SimpleAtoi(a.substr(9), &max_mb) && max_mb >= 1) {
      continue;
    }
    if (a.rfind("--iters=", 0) == 0 && absl::SimpleAtoi(a.substr(8), &iters) && iters >= 1) {
      continue;
    }
    std::fprintf(stderr, "transport_bench: unknown or bad flag '%s'\n", a.c_str());
    return 2;
  }
  int rc = 0;
  const auto secret = *tandem::ClusterSecret::FromBytes(std::string(32, 's'));
  // Each transport plain, then with the cluster-secret handshake ("+auth"), in the same run.
  for (const std::string &name : tandem::kv::AvailableTransports()) {
    for (const bool auth : {false, true}) {
      const auto s = auth ? secret : nullptr;
      const std::string suffix = auth ? "+auth" : "";
      if (name == "ucx") {
        setenv("UCX_NET_DEVICES", "lo", 1);
        setenv("UCX_TLS", "sm,self,tcp", 1);
        rc |= tandem::kv::Run(name, "ucx-shm" + suffix, max_mb, iters, s);
        setenv("UCX_TLS", "tcp", 1);
        rc |= tandem::kv::Run(name, "ucx-tcp" + suffix, max_mb, iters, s);
      } else {
        rc |= tandem::kv::Run(name, name + suffix, max_mb, iters, s);
      }
    }
  }
  return rc;
}
