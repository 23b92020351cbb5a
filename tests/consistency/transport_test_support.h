// tests/consistency/transport_test_support.h
//
// Shared pieces of the transport round-trip harness and transport_bench:
// patterned KV blocks built from strided (non-contiguous) TensorViews, and a
// recording TransferSink whose OnBlock can be held at a gate so tests can act
// "mid-transfer" deterministically. Header-only test support; RecordingSink is
// thread-safe.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/hash.h"
#include "common/kv_key.h"
#include "kv_store/kv_block.h"
#include "kv_store/transfer/transport.h"

namespace tandem::kv::testing {

inline KvFormat TransportTestFormat(int block_tokens) {
  KvFormat f;
  f.model = Sha256("transport-test-model");
  f.dtype = DType::kF16;
  f.block_tokens = block_tokens;
  return f;
}

struct PatternDims {
  int layers = 3;
  int heads = 2;
  int head_dim = 16;
  int tokens = 16;
};

// The f16 bit pattern stored at (block, layer, k-or-v, token, head, dim).
inline uint16_t PatternValue(int block, int layer, int which, int t, int h, int d) {
  uint32_t x =
      static_cast<uint32_t>(block * 7919 + layer * 104729 + which * 31337 + t * 613 + h * 97 + d);
  x ^= x >> 13;
  x *= 0x5bd1e995u;
  x ^= x >> 15;
  return static_cast<uint16_t>(x & 0x7bff);  // avoid NaN/inf exponents
}

// `count` chained blocks; each layer's K/V lives in a buffer with a padded
// token stride (and the heads interleaved with another tensor), so Build copies
// from non-contiguous memory.
inline absl::StatusOr<std::vector<KvBlock>> PatternBlocks(const KvFormat &f, int count,
                                                          PatternDims d) {
  std::vector<KvBlock> out;
  BlockKey parent = f.Root();
  const int64_t row = static_cast<int64_t>(d.heads) * d.head_dim;
  const int64_t token_stride = row * 2 + 24;  // elements; padding makes it non-contiguous
  for (int b = 0; b < count; ++b) {
    std::vector<KvTokenId> tokens(d.tokens);
    for (int t = 0; t < d.tokens; ++t) tokens[t] = 1000 * b + t;
    std::vector<std::vector<uint16_t>> buf(d.layers);
    std::vector<TensorView> k, v;
    for (int l = 0; l < d.layers; ++l) {
      buf[l].assign(static_cast<size_t>(token_stride) * d.tokens, 0xFFFF);
      for (int which = 0; which < 2; ++which) {
        uint16_t *base = buf[l].data() + which * row;  // K then V in one token row
        for (int t = 0; t < d.tokens; ++t) {
          for (int h = 0; h < d.heads; ++h) {
            for (int e = 0; e < d.head_dim; ++e) {
              base[t * token_stride + h * d.head_dim + e] = PatternValue(b, l, which, t, h, e);
            }
          }
        }
        TensorView tv;
        tv.data = base;
        tv.dtype = DType::kF16;
        tv.ndim = 3;
        tv.shape = {d.tokens, d.heads, d.head_dim, 0};
        tv.stride_bytes = {token_stride * 2, d.head_dim * 2, 2, 0};
        (which == 0 ? k : v).push_back(tv);
      }
    }
    absl::StatusOr<KvBlock> block = KvBlock::Build(f, parent, tokens, b * d.tokens, k, v);
    if (!block.ok()) return block.status();
    parent = block->key();
    out.push_back(*std::move(block));
  }
  return out;
}

// True when `block` (block index `b`) holds exactly the pattern.
inline bool HoldsPattern(const KvBlock &block, int b, PatternDims d) {
  for (int l = 0; l < d.layers; ++l) {
    for (int which = 0; which < 2; ++which) {
      const TensorView tv = which == 0 ? block.k(l) : block.v(l);
      for (int t = 0; t < d.tokens; ++t) {
        const auto *r = tv.row<const uint8_t>(t);
        for (int h = 0; h < d.heads; ++h) {
          const auto *p = reinterpret_cast<const uint16_t *>(r + h * tv.stride_bytes[1]);
          for (int e = 0; e < d.head_dim; ++e) {
            if (p[e] != PatternValue(b, l, which, t, h, e)) return false;
          }
        }
      }
    }
  }
  return true;
}

class RecordingSink : public TransferSink {
 public:
  struct Record {
    TransferMeta meta;
    ReservationId reservation = 0;
    std::vector<KvBlock> blocks;
    std::optional<absl::Status> end;
  };

  absl::Status OnBegin(const TransferMeta &meta, ReservationId r) override {
    absl::MutexLock lock(&mu_);
    if (reject_next_begin_) {
      reject_next_begin_ = false;
      return absl::ResourceExhaustedError("no reservation");
    }
    records_[meta.id] = Record{meta, r, {}, std::nullopt};
    return absl::OkStatus();
  }
  absl::Status OnBlock(const TransferId &id, KvBlock block) override {
    absl::MutexLock lock(&mu_);
    records_[id].blocks.push_back(std::move(block));
    ++blocks_seen_;
    auto open = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !gated_; };
    mu_.Await(absl::Condition(&open));
    return absl::OkStatus();
  }
  void OnEnd(const TransferId &id, const absl::Status &status) override {
    absl::MutexLock lock(&mu_);
    records_[id].end = status;
  }

  void Gate(bool closed) {
    absl::MutexLock lock(&mu_);
    gated_ = closed;
  }
  void RejectNextBegin() {
    absl::MutexLock lock(&mu_);
    reject_next_begin_ = true;
  }
  // Waits (up to 10 s) until at least `n` blocks arrived in total.
  bool AwaitBlocks(int n) {
    absl::MutexLock lock(&mu_);
    auto got = [this, n]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return blocks_seen_ >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&got), absl::Seconds(10));
  }
  // Waits (up to 10 s) for OnEnd of `id`; nullopt if it never came.
  std::optional<absl::Status> AwaitEnd(const TransferId &id) {
    absl::MutexLock lock(&mu_);
    auto ended = [this, &id]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      auto it = records_.find(id);
      return it != records_.end() && it->second.end.has_value();
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&ended), absl::Seconds(10))) return std::nullopt;
    return records_[id].end;
  }
  std::optional<Record> Get(const TransferId &id) {
    absl::MutexLock lock(&mu_);
    auto it = records_.find(id);
    if (it == records_.end()) return std::nullopt;
    return it->second;
  }

 private:
  absl::Mutex mu_;
  absl::flat_hash_map<TransferId, Record> records_ ABSL_GUARDED_BY(mu_);
  int blocks_seen_ ABSL_GUARDED_BY(mu_) = 0;
  bool gated_ ABSL_GUARDED_BY(mu_) = false;
  bool reject_next_begin_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace tandem::kv::testing
