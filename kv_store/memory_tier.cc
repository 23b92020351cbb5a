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
    // Only unpinned blocks can go: if even all of them would not make room, fail before evicting
    // anything, so a put that cannot land does not empty the tier.
    int64_t pinned = 0;
    if (used_ + size > capacity_) {
      for (const auto& [k, e] : entries_) {
        if (e.pins > 0) pinned += static_cast<int64_t>(e.block.size());
      }
    }
    if (used_ + size > capacity_ && pinned + size > capacity_) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "memory tier: ", size, " bytes do not fit; ", pinned, " of ", capacity_,
          " bytes are pinned"));
    }
    // Evict from the cold end, skipping pinned blocks, until the new block fits.
    auto victim = lru_.end();
    while (used_ + size > capacity_ && victim != lru_.begin()) {
      --victim;
      auto e = entries_.find(*victim);
      if (e->second.pins > 0) continue;
      used_ -= static_cast<int64_t>(e->second.block.size());
      evicted.push_back(*victim);
      entries_.erase(e);
      victim = lru_.erase(victim);
    }
    lru_.push_front(block.key());
    entries_[block.key()] = Entry{block, 0, lru_.begin()};
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
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->second.pins > 0) {
      ++it;
      continue;
    }
    used_ -= static_cast<int64_t>(it->second.block.size());
    lru_.erase(it->second.lru);
    entries_.erase(it++);
  }
  metrics().SetUsed(used_);
  return absl::OkStatus();
}

bool MemoryTier::Pin(const BlockKey& key) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return false;
  ++it->second.pins;
  return true;
}

void MemoryTier::Unpin(const BlockKey& key) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(key);
  if (it != entries_.end() && it->second.pins > 0) --it->second.pins;
}

}  // namespace tandem::kv
