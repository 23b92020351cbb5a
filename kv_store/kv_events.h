// kv_store/kv_events.h
//
// KvEventLog: the bounded, sequence-numbered log of "stored" and "evicted" events that the router's
// status poll reads (ARCHITECTURE.md §2, §4.5) to keep its index of which node holds which key.
// A reader passes the next sequence number it wants; if the log has already dropped events past
// that point, `truncated` tells the reader to rebuild from a full ContainsMany instead.
// Thread-safe; owned by TieredKvStore.
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/kv_key.h"
#include "kv_store/kv_tier.h"

namespace tandem::kv {

struct KvEvent {
  enum class Kind : uint8_t { kStored, kEvicted };
  uint64_t seq = 0;
  Kind kind = Kind::kStored;
  TierId tier = TierId::kMemory;
  BlockKey key;
};

class KvEventLog {
 public:
  explicit KvEventLog(size_t capacity = 65536) : capacity_(capacity) {}

  void Add(KvEvent::Kind kind, TierId tier, const BlockKey& key);

  struct Batch {
    std::vector<KvEvent> events;
    uint64_t next_seq = 0;   // pass this next time
    bool truncated = false;  // events between `from` and events.front() were dropped
  };
  // Events with seq >= from, at most `max` of them.
  Batch Since(uint64_t from, size_t max = 4096) const;

 private:
  const size_t capacity_;
  mutable absl::Mutex mu_;
  std::deque<KvEvent> events_ ABSL_GUARDED_BY(mu_);
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace tandem::kv
