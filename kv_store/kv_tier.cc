#include "kv_store/kv_tier.h"

#include <glog/logging.h>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace tandem::kv {
namespace {

// Latencies from a memory hit (~µs) to a Redis timeout (tens of ms) and a slow disk (s).
constexpr double kLatencyBuckets[] = {1e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3,
                                      1e-2, 2.5e-2, 5e-2, 0.1,  0.25,   0.5,  1,    2.5};

}  // namespace

std::string_view TierName(TierId id) {
  switch (id) {
    case TierId::kMemory:
      return "memory";
    case TierId::kRocksDb:
      return "rocksdb";
    case TierId::kRedis:
      return "redis";
  }
  return "unknown";
}

TierMetrics::TierMetrics(MetricsRegistry* r, std::string_view tier) : tier_(tier) {
  if (r == nullptr) return;
  const std::vector<std::string> t = {tier_};
  auto counter = [&](const char* name, const char* help) {
    return &r->Counter(name, help, {"tier"})->Labels(t);
  };
  lookups_ = counter("tandem_kv_lookups_total", "Block look-ups per tier.");
  hits_ = counter("tandem_kv_hits_total", "Block look-ups that returned a valid block.");
  lookup_tokens_ = counter("tandem_kv_lookup_tokens_total",
                           "Tokens looked up per tier (a miss counts the format's block size).");
  hit_tokens_ = counter("tandem_kv_hit_tokens_total", "Tokens of the blocks that hit.");
  evictions_ = counter("tandem_kv_evictions_total", "Blocks evicted to respect the byte budget.");
  bytes_read_ = counter("tandem_kv_tier_read_bytes_total", "Block bytes returned by the tier.");
  bytes_written_ = counter("tandem_kv_tier_written_bytes_total", "Block bytes stored in the tier.");
  used_ = &r->Gauge("tandem_kv_tier_used_bytes", "Bytes the tier holds.", {"tier"})->Labels(t);
  capacity_ = &r->Gauge("tandem_kv_tier_capacity_bytes", "The tier's byte budget (0: external).",
                        {"tier"})->Labels(t);
  get_seconds_ = &r->Histogram("tandem_kv_get_seconds", "Latency of one block Get.", {"tier"},
                               kLatencyBuckets)->Labels(t);
  put_seconds_ = &r->Histogram("tandem_kv_put_seconds", "Latency of one block Put.", {"tier"},
                               kLatencyBuckets)->Labels(t);
  misses_ = r->Counter("tandem_kv_misses_total", "Look-ups that returned no block, by reason.",
                       {"tier", "reason"});
  dropped_ = r->Counter("tandem_kv_put_dropped_total",
                        "Puts not stored: write-behind queue full or tier failure.",
                        {"tier", "reason"});
  // Pre-create every reason, so a rate() starts from 0 rather than from the first miss or drop.
  // A put is dropped for a full write-behind queue, a block another tier rejected, or the tier's
  // own failure (named like a miss: tiered_store.cc).
  for (int i = 0; i < kNumMissReasons; ++i) {
    const std::string reason(MissReasonName(static_cast<MissReason>(i)));
    misses_->Labels({tier_, reason});
    dropped_->Labels({tier_, reason});
  }
  for (const char* reason : {"queue_full", "rejected"}) dropped_->Labels({tier_, reason});
}

void TierMetrics::Lookup(absl::Duration latency, const absl::StatusOr<KvBlock>& result,
                         int miss_tokens) {
  if (lookups_ == nullptr) return;
  lookups_->Increment();
  get_seconds_->Observe(absl::ToDoubleSeconds(latency));
  if (result.ok()) {
    hits_->Increment();
    lookup_tokens_->Increment(result->num_tokens());
    hit_tokens_->Increment(result->num_tokens());
    bytes_read_->Increment(static_cast<double>(result->size()));
  } else {
    lookup_tokens_->Increment(miss_tokens);
    misses_->Labels({tier_, std::string(MissReasonName(*MissReasonOf(result.status())))})
        .Increment();
  }
}

void TierMetrics::Put(absl::Duration latency, int64_t bytes) {
  if (put_seconds_ == nullptr) return;
  put_seconds_->Observe(absl::ToDoubleSeconds(latency));
  bytes_written_->Increment(static_cast<double>(bytes));
}

void TierMetrics::Evicted(int64_t n) {
  if (evictions_ != nullptr) evictions_->Increment(static_cast<double>(n));
}

void TierMetrics::Dropped(std::string_view reason) {
  if (dropped_ != nullptr) dropped_->Labels({tier_, std::string(reason)}).Increment();
}

void TierMetrics::SetUsed(int64_t bytes) {
  if (used_ != nullptr) used_->Set(static_cast<double>(bytes));
}

void TierMetrics::SetCapacity(int64_t bytes) {
  if (capacity_ != nullptr) capacity_->Set(static_cast<double>(bytes));
}

absl::StatusOr<KvBlock> KvTier::Get(const BlockKey& key, absl::Time deadline) {
  const absl::Time start = absl::Now();
  absl::StatusOr<KvBlock> r = DoGet(key, deadline);
  metrics_.Lookup(absl::Now() - start, r, format_.block_tokens);
  return r;
}

absl::Status KvTier::Put(const KvBlock& block, absl::Time deadline) {
  KvFormat f = block.format();
  f.ns = format_.ns;
  if (const std::string diff = f.Diff(format_); !diff.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(AV(Name()), " tier: refusing a block of another format: ", diff));
  }
  const absl::Time start = absl::Now();
  absl::Status s = DoPut(block, deadline);
  if (s.ok()) metrics_.Put(absl::Now() - start, static_cast<int64_t>(block.size()));
  return s;
}

absl::StatusOr<KvBlock> KvTier::ParseStored(std::shared_ptr<const Bytes> bytes,
                                            const BlockKey& key) {
  absl::StatusOr<KvBlock> r = KvBlock::Parse(std::move(bytes), format_, key);
  if (r.ok()) return r;
  const MissReason reason = *MissReasonOf(r.status());
  if (reason == MissReason::kFormatMismatch) {
    if (!logged_incompatible_.exchange(true)) {
      LOG(ERROR) << "INCOMPATIBLE KV in the " << Name() << " tier: " << r.status().message()
                 << " (this node's format: " << format_.DebugString()
                 << "). Such blocks are misses and are erased; check --model and --kv_* flags"
                    " on every node sharing this tier.";
    }
  } else {
    LOG(WARNING) << Name() << " tier: erasing block " << key.Hex() << ": "
                 << r.status().message();
  }
  if (absl::Status e = Erase(key); !e.ok()) {
    LOG(WARNING) << Name() << " tier: could not erase bad block " << key.Hex() << ": " << e;
  }
  return r.status();
}

void KvTier::NotifyEvicted(const BlockKey& key) {
  if (on_evict_) on_evict_(key);
}

}  // namespace tandem::kv
