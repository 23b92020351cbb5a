// kv_store/tiered_store.h
//
// TieredKvStore: memory -> rocksdb -> redis behind one API (ARCHITECTURE.md §4.5). GetMany never
// fails as a whole: each key gets a validated block or a miss with a reason. A hit in a lower tier
// is promoted into the tiers above it (memory at once, rocksdb through write-behind).
//
// Writes are write-behind, not write-through: PutAsync inserts into memory synchronously (so the
// block is reusable on this node at once) and queues the same refcounted block for RocksDB and
// Redis, one bounded queue and one writer thread per lower tier. Why: the put runs on the prefill
// path before the first token, and a 5.9 MB block costs ~10 ms in RocksDB and more in Redis;
// write-through would add that to TTFT and make TTFT depend on Redis being up. Every tier is a
// cache, so a queued write that is lost (queue full, crash, tier down) only costs a later
// recompute, never a wrong answer: drops are counted in tandem_kv_put_dropped_total{tier,reason}.
// A slow Redis cannot hold back RocksDB writes because each tier has its own queue.
//
// Prefetch() runs GetMany on a small thread pool and returns a future, so a prefill node can load
// the next blocks while it computes. ContainsMany answers the router's "which tier holds it".
// KvEventLog records stored and evicted keys for the router's status poll.
//
// Thread-safe. The destructor drains the write-behind queues (each write bounded by the tier's
// timeout) and joins its threads.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "kv_store/kv_events.h"
#include "kv_store/kv_tier.h"
#include "kv_store/options.h"

namespace tandem::kv {

struct Lookup {
  std::optional<KvBlock> block;  // set on a hit
  TierId tier = TierId::kMemory;  // where it hit, or the tier that gave `reason`
  MissReason reason = MissReason::kNotFound;  // meaningful on a miss
};

class TieredKvStore {
 public:
  // Opens the tiers named by `options` (a RocksDB error is fatal: FailedPrecondition naming the
  // path; a Redis that is down is not: the tier starts unavailable). `metrics` must outlive the
  // store.
  static absl::StatusOr<std::unique_ptr<TieredKvStore>> Create(const KvStoreOptions& options,
                                                               const KvFormat& format,
                                                               MetricsRegistry& metrics);
  // From tiers built by the caller (tests, tools), in look-up order.
  static std::unique_ptr<TieredKvStore> FromTiers(std::vector<std::unique_ptr<KvTier>> tiers,
                                                  const KvStoreOptions& options,
                                                  const KvFormat& format);
  ~TieredKvStore();

  std::vector<Lookup> GetMany(absl::Span<const BlockKey> keys, absl::Time deadline);
  // Memory now; lower tiers in `tiers` through the write-behind queues.
  void PutAsync(KvBlock block, TierMask tiers = kAllTiers);
  std::vector<TierMask> ContainsMany(absl::Span<const BlockKey> keys, absl::Time deadline);
  std::shared_future<std::vector<Lookup>> Prefetch(std::vector<BlockKey> keys, absl::Time deadline);
  // Blocks until every write queued so far has been attempted (drain, tests).
  void Flush();

  KvEventLog& events() { return events_; }
  const KvFormat& format() const { return format_; }
  // The tier with `id`, or nullptr when it is not configured.
  KvTier* tier(TierId id);
  const std::vector<std::unique_ptr<KvTier>>& tiers() const { return tiers_; }

 private:
  class WriteBehind;
  TieredKvStore(std::vector<std::unique_ptr<KvTier>> tiers, const KvStoreOptions& options,
                const KvFormat& format);

  const KvStoreOptions options_;
  const KvFormat format_;
  std::vector<std::unique_ptr<KvTier>> tiers_;
  std::vector<std::unique_ptr<WriteBehind>> writers_;  // parallel to tiers_; null for memory
  KvEventLog events_;

  std::mutex prefetch_mu_;
  std::condition_variable prefetch_cv_;
  std::deque<std::function<void()>> prefetch_tasks_;
  bool stopping_ = false;
  std::vector<std::thread> prefetch_threads_;
};

}  // namespace tandem::kv
