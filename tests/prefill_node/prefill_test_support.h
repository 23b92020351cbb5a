// tests/prefill_node/prefill_test_support.h
//
// Shared by the prefill node tests: a decode-side stand-in (a TCP transport listening on 127.0.0.1
// whose TransferSink keeps every received transfer by transfer id), PrefillOptions for a test
// service on the real model, and a deterministic English prompt of a given token count.
// Header-only test support; BlockCollector is thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/model_format/gguf.h"
#include "common/model_format/tokenizer.h"
#include "kv_store/transfer/transport.h"
#include "prefill_node/options.h"
#include "tests/model/long_text.h"
#include "tests/support/test_env.h"

namespace tandem::prefill::testing {

class BlockCollector : public kv::TransferSink {
 public:
  struct Transfer {
    kv::TransferMeta meta;
    kv::ReservationId reservation = 0;
    std::vector<kv::KvBlock> blocks;
    std::optional<absl::Status> end;
  };

  // From now on every BEGIN is refused with `status` (the receiver NACKs it), as a decode node
  // refuses an unknown, expired or already filled reservation.
  void RejectBegins(absl::Status status) {
    absl::MutexLock lock(&mu_);
    reject_begin_ = std::move(status);
  }

  absl::Status OnBegin(const kv::TransferMeta& meta, kv::ReservationId r) override {
    absl::MutexLock lock(&mu_);
    if (!reject_begin_.ok()) return reject_begin_;
    transfers_[meta.id.Hex()] = Transfer{meta, r, {}, std::nullopt};
    return absl::OkStatus();
  }
  absl::Status OnBlock(const kv::TransferId& id, kv::KvBlock block) override {
    absl::MutexLock lock(&mu_);
    transfers_[id.Hex()].blocks.push_back(std::move(block));
    return absl::OkStatus();
  }
  void OnEnd(const kv::TransferId& id, const absl::Status& status) override {
    absl::MutexLock lock(&mu_);
    transfers_[id.Hex()].end = status;
  }
  // The transfer with this hex id, once it has ended (the prefill reply comes after the ACK, and
  // OnEnd after the ACK is sent, so wait briefly for it).
  std::optional<Transfer> Get(const std::string& hex) {
    absl::MutexLock lock(&mu_);
    auto ended = [this, &hex]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      auto it = transfers_.find(hex);
      return it != transfers_.end() && it->second.end.has_value();
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&ended), absl::Seconds(10))) return std::nullopt;
    return transfers_[hex];
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, Transfer> transfers_ ABSL_GUARDED_BY(mu_);
  absl::Status reject_begin_ ABSL_GUARDED_BY(mu_);
};

// A decode node's data plane for tests: listens on 127.0.0.1 with `format`.
struct TestReceiver {
  static constexpr uint64_t kEpoch = 77;
  BlockCollector sink;
  std::unique_ptr<kv::Transport> transport;
  uint16_t port = 0;

  // `node_id`: a sender remembers the newest epoch per node id, so a test that addresses a stale
  // epoch uses a node id of its own.
  absl::Status Start(const KvFormat& format, const std::string& node_id = "decode-test") {
    auto t = kv::NewTransport("tcp", kv::TransportOptions{node_id, kEpoch});
    if (!t.ok()) return t.status();
    transport = *std::move(t);
    kv::ListenOptions o;
    o.host = "127.0.0.1";
    o.format = format;
    auto p = transport->Listen(o, &sink);
    if (!p.ok()) return p.status();
    port = *p;
    return absl::OkStatus();
  }
  ~TestReceiver() {
    if (transport) transport->Shutdown(absl::Seconds(1)).IgnoreError();
  }
};

inline PrefillOptions TestPrefillOptions(int32_t block_tokens) {
  PrefillOptions o;
  o.model.model_path = ::tandem::testing::ModelPath();
  o.model.backend = "cpu";
  o.model.kv_block_tokens = block_tokens;
  o.kv_store.memory_bytes = int64_t{256} << 20;
  o.kv_store.prefetch_threads = 1;
  o.node_id = "prefill-test";
  o.epoch = 5;
  return o;
}

// The first `n` tokens of deterministic English filler.
inline std::vector<int32_t> TestPrompt(const format::GgufFile& gguf, int n, uint32_t seed) {
  const format::Tokenizer tokenizer = format::Tokenizer::FromGguf(gguf).value();
  std::vector<int32_t> tokens =
      tokenizer.Encode(::tandem::testing::LongText(int64_t{n} * 8, seed), false);
  tokens.resize(static_cast<size_t>(n));
  return tokens;
}

}  // namespace tandem::prefill::testing
