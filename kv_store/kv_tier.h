// kv_store/kv_tier.h
//
// KvTier: the one interface of the three KV tiers (ARCHITECTURE.md §4.5): MemoryTier, RocksDbTier,
// RedisTier. Every tier stores §5.1 blocks under their BlockKey, validates what it reads with
// KvBlock::Parse against the KvFormat it was opened with, and erases a block that fails (so a
// corrupt or foreign block is reported once, as a miss with its reason, and never returned).
// Each tier records its own metrics (§7: lookups, hits, misses by reason, tokens, bytes in/out,
// latency, used/capacity bytes, evictions) through TierMetrics, and tells one listener about
// evictions (the store's KvEventLog).
//
// Thread-safe: every method may be called concurrently. Tiers are owned by TieredKvStore (or a
// test / the `tandem kv` command) and must outlive no one.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/kv_key.h"
#include "common/metrics.h"
#include "kv_store/kv_block.h"

namespace tandem::kv {

enum class TierId : uint8_t { kMemory = 0, kRocksDb = 1, kRedis = 2 };
inline constexpr int kNumTiers = 3;
std::string_view TierName(TierId id);  // "memory" | "rocksdb" | "redis"
using TierMask = uint8_t;              // bit i = TierId i
inline constexpr TierMask TierBit(TierId id) { return TierMask(1u << static_cast<int>(id)); }
inline constexpr TierMask kAllTiers = 0x7;

struct TierStats {
  int64_t used_bytes = 0;
  int64_t capacity_bytes = 0;  // 0 = unbounded / managed elsewhere (Redis maxmemory)
  int64_t entries = 0;
  int64_t evictions = 0;
  bool available = true;  // false while a remote tier's breaker is open
};

// The §7 metrics of one tier. Built from a registry (shared with the process) or, with nullptr,
// inert (every update is a no-op) for tools and tests that do not scrape.
class TierMetrics {
 public:
  TierMetrics(MetricsRegistry* registry, std::string_view tier);

  void Lookup(absl::Duration latency, const absl::StatusOr<KvBlock>& result, int miss_tokens);
  void Put(absl::Duration latency, int64_t bytes);
  void Evicted(int64_t n);
  void Dropped(std::string_view reason);
  void SetUsed(int64_t bytes);
  void SetCapacity(int64_t bytes);

 private:
  CounterFamily* misses_ = nullptr;
  CounterFamily* dropped_ = nullptr;
  std::string tier_;
  prometheus::Counter* lookups_ = nullptr;
  prometheus::Counter* hits_ = nullptr;
  prometheus::Counter* lookup_tokens_ = nullptr;
  prometheus::Counter* hit_tokens_ = nullptr;
  prometheus::Counter* evictions_ = nullptr;
  prometheus::Counter* bytes_read_ = nullptr;
  prometheus::Counter* bytes_written_ = nullptr;
  prometheus::Gauge* used_ = nullptr;
  prometheus::Gauge* capacity_ = nullptr;
  prometheus::Histogram* get_seconds_ = nullptr;
  prometheus::Histogram* put_seconds_ = nullptr;
};

class KvTier {
 public:
  KvTier(TierId id, const KvFormat& format, MetricsRegistry* metrics)
      : id_(id), format_(format), metrics_(metrics, TierName(id)) {}
  virtual ~KvTier() = default;
  KvTier(const KvTier&) = delete;
  KvTier& operator=(const KvTier&) = delete;

  TierId id() const { return id_; }
  std::string_view Name() const { return TierName(id_); }
  const KvFormat& format() const { return format_; }

  // NotFound on a miss; DataLoss with its MissReason when stored bytes fail validation (the entry
  // is erased first); Unavailable / DeadlineExceeded for a remote tier that is down or slow.
  // Records the lookup in the tier's metrics.
  absl::StatusOr<KvBlock> Get(const BlockKey& key, absl::Time deadline);
  // InvalidArgument when the block's format is not this tier's; ResourceExhausted when it cannot
  // fit the budget even after eviction.
  absl::Status Put(const KvBlock& block, absl::Time deadline);
  virtual absl::StatusOr<std::vector<bool>> Contains(absl::Span<const BlockKey> keys,
                                                     absl::Time deadline) = 0;
  virtual absl::Status Erase(const BlockKey& key) = 0;
  virtual TierStats Stats() const = 0;
  // Every stored key with its stored size, in no particular order (operators' `tandem kv list`).
  virtual absl::Status ForEachKey(const std::function<void(const BlockKey&, int64_t)>& fn) = 0;
  // Removes every block this tier holds for its namespace.
  virtual absl::Status Clear() = 0;

  // Called with each evicted key, from the thread that evicted it; set once, before use.
  void SetEvictionListener(std::function<void(const BlockKey&)> fn) { on_evict_ = std::move(fn); }
  TierMetrics& metrics() { return metrics_; }

 protected:
  virtual absl::StatusOr<KvBlock> DoGet(const BlockKey& key, absl::Time deadline) = 0;
  virtual absl::Status DoPut(const KvBlock& block, absl::Time deadline) = 0;
  // Shared by the persistent tiers: parses stored bytes; on failure erases the entry, logs (the
  // first format mismatch loudly, once per tier) and returns the DataLoss.
  absl::StatusOr<KvBlock> ParseStored(std::shared_ptr<const Bytes> bytes, const BlockKey& key);
  void NotifyEvicted(const BlockKey& key);

 private:
  const TierId id_;
  const KvFormat format_;
  TierMetrics metrics_;
  std::function<void(const BlockKey&)> on_evict_;
  std::atomic<bool> logged_incompatible_{false};
};

}  // namespace tandem::kv
