#include "kv_store/kv_events.h"

namespace tandem::kv {

void KvEventLog::Add(KvEvent::Kind kind, TierId tier, const BlockKey& key) {
  absl::MutexLock lock(&mu_);
  events_.push_back(KvEvent{next_seq_++, kind, tier, key});
  while (events_.size() > capacity_) events_.pop_front();
}

KvEventLog::Batch KvEventLog::Since(uint64_t from, size_t max) const {
  absl::MutexLock lock(&mu_);
  Batch b;
  const uint64_t first = events_.empty() ? next_seq_ : events_.front().seq;
  b.truncated = from < first;
  const uint64_t start = std::max(from, first);
  for (uint64_t s = start; s < next_seq_ && b.events.size() < max; ++s) {
    b.events.push_back(events_[s - first]);
  }
  b.next_seq = start + b.events.size();
  return b;
}

}  // namespace tandem::kv
