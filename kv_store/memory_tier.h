// kv_store/memory_tier.h
//
// MemoryTier: validated KvBlocks in process memory, least-recently-used first out, within a byte
// budget. A Get returns the stored block itself (refcounted, zero-copy), so blocks are validated
// once on their way in (Build or Parse) and not again. Eviction never invalidates a block a reader
// holds: its bytes are shared and live as long as the last KvBlock copy.
// Thread-safe (one mutex; every operation is O(1) besides eviction).
#pragma once

#include <list>

#include "absl/container/flat_hash_map.h"
#include "kv_store/kv_tier.h"

namespace tandem::kv {

class MemoryTier final : public KvTier {
 public:
  MemoryTier(const KvFormat& format, int64_t capacity_bytes, MetricsRegistry* metrics);

  absl::StatusOr<std::vector<bool>> Contains(absl::Span<const BlockKey> keys,
                                             absl::Time deadline) override;
  absl::Status Erase(const BlockKey& key) override;
  TierStats Stats() const override;
  absl::Status ForEachKey(const std::function<void(const BlockKey&, int64_t)>& fn) override;
  absl::Status Clear() override;

 protected:
  absl::StatusOr<KvBlock> DoGet(const BlockKey& key, absl::Time deadline) override;
  absl::Status DoPut(const KvBlock& block, absl::Time deadline) override;

 private:
  struct Entry {
    KvBlock block;
    std::list<BlockKey>::iterator lru;  // position in lru_ (front = most recent)
  };

  const int64_t capacity_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<BlockKey, Entry> entries_ ABSL_GUARDED_BY(mu_);
  std::list<BlockKey> lru_ ABSL_GUARDED_BY(mu_);
  int64_t used_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t evictions_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace tandem::kv
