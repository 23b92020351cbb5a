#include "kv_store/tiered_store.h"

#include <glog/logging.h>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kv_store/memory_tier.h"
#include "kv_store/redis_tier.h"
#include "kv_store/rocksdb_tier.h"

namespace tandem::kv {

// One lower tier's bounded queue and writer thread.
class TieredKvStore::WriteBehind {
 public:
  WriteBehind(KvTier* tier, int64_t max_bytes, KvEventLog* events, absl::Duration op_timeout)
      : tier_(tier), max_bytes_(max_bytes), events_(events), op_timeout_(op_timeout),
        thread_([this] { Run(); }) {}
  ~WriteBehind() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  void Push(KvBlock block) {
    const int64_t size = static_cast<int64_t>(block.size());
    {
      std::lock_guard<std::mutex> l(mu_);
      if (queued_bytes_ + size <= max_bytes_) {
        queued_bytes_ += size;
        queue_.push_back(std::move(block));
        cv_.notify_all();
        return;
      }
    }
    tier_->metrics().Dropped("queue_full");
  }

  void Flush() {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return queue_.empty() && !busy_; });
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> l(mu_);
    while (true) {
      cv_.wait(l, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stop_ and drained
      KvBlock block = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
      l.unlock();
      absl::Status s = tier_->Put(block, absl::Now() + op_timeout_);
      if (s.ok()) {
        events_->Add(KvEvent::Kind::kStored, tier_->id(), block.key());
      } else {
        tier_->metrics().Dropped(MissReasonName(MissReasonOf(s).value_or(MissReason::kHeader)));
        VLOG(1) << tier_->Name() << " write-behind dropped " << block.key().Hex() << ": " << s;
      }
      l.lock();
      queued_bytes_ -= static_cast<int64_t>(block.size());
      busy_ = false;
      cv_.notify_all();
    }
  }

  KvTier* const tier_;
  const int64_t max_bytes_;
  KvEventLog* const events_;
  const absl::Duration op_timeout_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<KvBlock> queue_;
  int64_t queued_bytes_ = 0;
  bool busy_ = false;
  bool stop_ = false;
  std::thread thread_;  // last: starts after the members it uses
};

absl::StatusOr<std::unique_ptr<TieredKvStore>> TieredKvStore::Create(const KvStoreOptions& options,
                                                                     const KvFormat& format,
                                                                     MetricsRegistry& metrics) {
  TANDEM_RETURN_IF_ERROR(options.Validate());
  TANDEM_RETURN_IF_ERROR(format.Validate());
  std::vector<std::unique_ptr<KvTier>> tiers;
  if (options.memory_bytes > 0) {
    tiers.push_back(std::make_unique<MemoryTier>(format, options.memory_bytes, &metrics));
  }
  if (!options.disk_path.empty()) {
    TANDEM_ASSIGN_OR_RETURN(
        std::unique_ptr<RocksDbTier> disk,
        RocksDbTier::Open({options.disk_path, options.disk_bytes}, format, &metrics));
    tiers.push_back(std::move(disk));
  }
  if (!options.redis_url.empty()) {
    RedisTierOptions r;
    r.url = options.redis_url;
    r.timeout = options.redis_timeout;
    r.pool_size = options.redis_pool_size;
    r.ttl = options.redis_ttl;
    r.breaker_base = options.redis_breaker_base;
    r.breaker_max = options.redis_breaker_max;
    r.seal_secret = options.seal_secret;
    TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<RedisTier> redis,
                            RedisTier::Create(r, format, &metrics));
    tiers.push_back(std::move(redis));
  }
  return FromTiers(std::move(tiers), options, format);
}

std::unique_ptr<TieredKvStore> TieredKvStore::FromTiers(std::vector<std::unique_ptr<KvTier>> tiers,
                                                        const KvStoreOptions& options,
                                                        const KvFormat& format) {
  return std::unique_ptr<TieredKvStore>(new TieredKvStore(std::move(tiers), options, format));
}

TieredKvStore::TieredKvStore(std::vector<std::unique_ptr<KvTier>> tiers,
                             const KvStoreOptions& options, const KvFormat& format)
    : options_(options), format_(format), tiers_(std::move(tiers)) {
  for (auto& t : tiers_) {
    KvTier* tier = t.get();
    tier->SetEvictionListener([this, tier](const BlockKey& k) {
      events_.Add(KvEvent::Kind::kEvicted, tier->id(), k);
    });
    // A remote write may take longer than a look-up's timeout: a 5.9 MB SET is ~10 ms alone.
    const absl::Duration op = tier->id() == TierId::kRedis
                                  ? std::max(options_.redis_timeout * 4, absl::Milliseconds(200))
                                  : absl::Seconds(30);
    writers_.push_back(tier->id() == TierId::kMemory
                           ? nullptr
                           : std::make_unique<WriteBehind>(tier, options_.write_behind_bytes,
                                                           &events_, op));
  }
  for (int i = 0; i < options_.prefetch_threads; ++i) {
    prefetch_threads_.emplace_back([this] {
      std::unique_lock<std::mutex> l(prefetch_mu_);
      while (true) {
        prefetch_cv_.wait(l, [&] { return stopping_ || !prefetch_tasks_.empty(); });
        if (prefetch_tasks_.empty()) return;
        auto task = std::move(prefetch_tasks_.front());
        prefetch_tasks_.pop_front();
        l.unlock();
        task();
        l.lock();
      }
    });
  }
}

TieredKvStore::~TieredKvStore() {
  {
    std::lock_guard<std::mutex> l(prefetch_mu_);
    stopping_ = true;
  }
  prefetch_cv_.notify_all();
  for (auto& t : prefetch_threads_) t.join();
  writers_.clear();  // drains and joins before the tiers go
}

KvTier* TieredKvStore::tier(TierId id) {
  for (auto& t : tiers_) {
    if (t->id() == id) return t.get();
  }
  return nullptr;
}

std::vector<Lookup> TieredKvStore::GetMany(absl::Span<const BlockKey> keys, absl::Time deadline) {
  std::vector<Lookup> out(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    Lookup& r = out[i];
    bool have_reason = false;
    for (size_t t = 0; t < tiers_.size(); ++t) {
      KvTier& tier = *tiers_[t];
      absl::StatusOr<KvBlock> got = tier.Get(keys[i], deadline);
      if (got.ok()) {
        r.block = *std::move(got);
        r.tier = tier.id();
        // Promote into every tier above: memory now, the rest through write-behind.
        for (size_t up = 0; up < t; ++up) {
          if (writers_[up] == nullptr) {
            // The router's index learns of the copy the same way as of a PutAsync.
            if (tiers_[up]->Put(*r.block, deadline).ok()) {
              events_.Add(KvEvent::Kind::kStored, tiers_[up]->id(), r.block->key());
            }
          } else {
            writers_[up]->Push(*r.block);
          }
        }
        break;
      }
      const MissReason reason = *MissReasonOf(got.status());
      // Report the most telling reason: the first that is not a plain absence.
      if (!have_reason && (reason != MissReason::kNotFound || t == 0)) {
        r.reason = reason;
        r.tier = tier.id();
        have_reason = reason != MissReason::kNotFound;
      }
    }
  }
  return out;
}

void TieredKvStore::PutAsync(KvBlock block, TierMask tiers) {
  for (size_t t = 0; t < tiers_.size(); ++t) {
    if ((tiers & TierBit(tiers_[t]->id())) == 0) continue;
    if (writers_[t] == nullptr) {
      absl::Status s = tiers_[t]->Put(block, absl::Now() + absl::Seconds(1));
      if (s.ok()) {
        events_.Add(KvEvent::Kind::kStored, tiers_[t]->id(), block.key());
      } else {
        tiers_[t]->metrics().Dropped("rejected");
        VLOG(1) << "memory tier rejected " << block.key().Hex() << ": " << s;
      }
    } else {
      writers_[t]->Push(block);
    }
  }
}

std::vector<TierMask> TieredKvStore::ContainsMany(absl::Span<const BlockKey> keys,
                                                  absl::Time deadline) {
  std::vector<TierMask> out(keys.size(), 0);
  for (auto& tier : tiers_) {
    absl::StatusOr<std::vector<bool>> has = tier->Contains(keys, deadline);
    if (!has.ok()) continue;  // an unavailable tier holds nothing we can use now
    for (size_t i = 0; i < keys.size(); ++i) {
      if ((*has)[i]) out[i] |= TierBit(tier->id());
    }
  }
  return out;
}

std::shared_future<std::vector<Lookup>> TieredKvStore::Prefetch(std::vector<BlockKey> keys,
                                                                absl::Time deadline) {
  auto task = std::make_shared<std::packaged_task<std::vector<Lookup>()>>(
      [this, keys = std::move(keys), deadline] { return GetMany(keys, deadline); });
  std::shared_future<std::vector<Lookup>> f = task->get_future().share();
  {
    std::lock_guard<std::mutex> l(prefetch_mu_);
    prefetch_tasks_.push_back([task] { (*task)(); });
  }
  prefetch_cv_.notify_one();
  return f;
}

void TieredKvStore::Flush() {
  for (auto& w : writers_) {
    if (w != nullptr) w->Flush();
  }
}

}  // namespace tandem::kv
