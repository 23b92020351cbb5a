#include "kv_store/memory_tier.h"

#include "absl/strings/str_cat.h"

namespace tandem::kv {

MemoryTier::MemoryTier(const KvFormat& format, int64_t capacity_bytes, MetricsRegistry* metrics)
    : KvTier(TierId::kMemory, format, metrics), capacity_(capacity_bytes) {
  this->metrics().SetCapacity(capacity_);
}

absl::StatusOr<KvBlock> MemoryTier::DoGet(const BlockKey& key, absl::Time) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return absl::NotFoundError(absl::StrCat("memory: no block ", key.Hex()));
  lru_.splice(lru_.begin(), lru_, it->second.lru);
  return it->second.block;
}

absl::Status MemoryTier::DoPut(const KvBlock& block, absl::Time) {
  const int64_t size = static_cast<int64_t>(block.size());
  if (size > capacity_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("memory tier: block of ", size, " bytes exceeds the budget of ", capacity_));
  }
  std::vector<BlockKey> evicted;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = entries_.find(block.key()); it != entries_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second.lru);  // same key = same bytes: keep it
      return absl::OkStatus();
    }
    // Evict from the cold end until the new block fits (it fits an empty tier, checked above).
    while (used_ + size > capacity_) {
      auto e = entries_.find(lru_.back());
      used_ -= static_cast<int64_t>(e->second.block.size());
      evicted.push_back(lru_.back());
      entries_.erase(e);
      lru_.pop_back();
    }
    lru_.push_front(block.key());
    entries_[block.key()] = Entry{block, lru_.begin()};
    used_ += size;
    evictions_ += static_cast<int64_t>(evicted.size());
    metrics().SetUsed(used_);
  }
  metrics().Evicted(static_cast<int64_t>(evicted.size()));
  for (const BlockKey& k : evicted) NotifyEvicted(k);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<bool>> MemoryTier::Contains(absl::Span<const BlockKey> keys,
                                                       absl::Time) {
  absl::MutexLock lock(&mu_);
  std::vector<bool> out(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) out[i] = entries_.contains(keys[i]);
  return out;
}

absl::Status MemoryTier::Erase(const BlockKey& key) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return absl::OkStatus();
  used_ -= static_cast<int64_t>(it->second.block.size());
  lru_.erase(it->second.lru);
  entries_.erase(it);
  metrics().SetUsed(used_);
  return absl::OkStatus();
}

TierStats MemoryTier::Stats() const {
  absl::MutexLock lock(&mu_);
  TierStats s;
  s.used_bytes = used_;
  s.capacity_bytes = capacity_;
  s.entries = static_cast<int64_t>(entries_.size());
  s.evictions = evictions_;
  return s;
}

absl::Status MemoryTier::ForEachKey(const std::function<void(const BlockKey&, int64_t)>& fn) {
  absl::MutexLock lock(&mu_);
  for (const auto& [k, e] : entries_) fn(k, static_cast<int64_t>(e.block.size()));
  return absl::OkStatus();
}

absl::Status MemoryTier::Clear() {
  absl::MutexLock lock(&mu_);
  entries_.clear();
  lru_.clear();
  used_ = 0;
  metrics().SetUsed(used_);
  return absl::OkStatus();
}

}  // namespace tandem::kv
