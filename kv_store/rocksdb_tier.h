// kv_store/rocksdb_tier.h
//
// RocksDbTier: blocks on a local SSD in one RocksDB database per node (ARCHITECTURE.md §4.5, §5.3).
// Keys are the 32 raw BlockKey bytes; values are §5.1 blocks, kept in blob files (BlobDB) so that
// multi-MB values stay out of compaction. A `_tandem/format` record holds the KvFormat the database
// was created for; opening it with another format fails, naming the differing field, so a node can
// never serve a directory written by another model or layout.
//
// The byte budget is logical (sum of value sizes), kept by an in-memory LRU index that Open() builds
// by scanning the keys (the order then is scan order, i.e. unknown recency). Deleted blocks free
// disk space when blob garbage collection runs, so the disk may briefly hold more than the budget.
// Writes skip the WAL (a cache may lose its last writes in a crash, never serve wrong ones: every
// read is validated); the destructor flushes, so a clean restart keeps everything.
// Thread-safe.
#pragma once

#include <list>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "kv_store/kv_tier.h"

namespace rocksdb {
class DB;
}

namespace tandem::kv {

struct RocksDbTierOptions {
  std::string path;               // directory, created if missing. --kv_disk_path
  int64_t capacity_bytes = 20LL << 30;  // logical budget. --kv_disk_bytes
};

class RocksDbTier final : public KvTier {
 public:
  // FailedPrecondition naming the path when the directory cannot be created or written, or when it
  // holds another format (naming the field); Internal with RocksDB's message otherwise.
  static absl::StatusOr<std::unique_ptr<RocksDbTier>> Open(const RocksDbTierOptions& options,
                                                           const KvFormat& format,
                                                           MetricsRegistry* metrics);
  // For operators' tools: opens with whatever format the `_tandem/format` record holds; without a
  // record (after ClearAll) with a default format, and writes none.
  static absl::StatusOr<std::unique_ptr<RocksDbTier>> OpenExisting(
      const RocksDbTierOptions& options, MetricsRegistry* metrics);
  ~RocksDbTier() override;

  absl::StatusOr<std::vector<bool>> Contains(absl::Span<const BlockKey> keys,
                                             absl::Time deadline) override;
  absl::Status Erase(const BlockKey& key) override;
  TierStats Stats() const override;
  absl::Status ForEachKey(const std::function<void(const BlockKey&, int64_t)>& fn) override;
  absl::Status Clear() override;
  // Clear() and the `_tandem/format` record, so that the directory can be reopened with any
  // format (`tandem kv clear`, the remedy Open() suggests on a format mismatch). This tier keeps
  // its format until it is closed.
  absl::Status ClearAll();

  // The stored bytes of `key` without validation (`tandem kv verify` parses them itself).
  absl::StatusOr<std::shared_ptr<const Bytes>> GetRaw(const BlockKey& key);
  // Stores `bytes` under `key` unchecked: tests use it to plant corrupt and foreign blocks.
  absl::Status PutRawForTesting(const BlockKey& key, std::string_view bytes);

 protected:
  absl::StatusOr<KvBlock> DoGet(const BlockKey& key, absl::Time deadline) override;
  absl::Status DoPut(const KvBlock& block, absl::Time deadline) override;

 private:
  RocksDbTier(const RocksDbTierOptions& options, const KvFormat& format, MetricsRegistry* metrics,
              std::unique_ptr<rocksdb::DB> db);
  static absl::StatusOr<std::unique_ptr<RocksDbTier>> OpenImpl(const RocksDbTierOptions& options,
                                                               const KvFormat& format,
                                                               MetricsRegistry* metrics,
                                                               bool write_format);
  absl::Status LoadIndex();
  void Touch(const BlockKey& key, int64_t size) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Forget(const BlockKey& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  struct Entry {
    int64_t size;
    std::list<BlockKey>::iterator lru;
  };
  const RocksDbTierOptions options_;
  std::unique_ptr<rocksdb::DB> db_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<BlockKey, Entry> index_ ABSL_GUARDED_BY(mu_);
  std::list<BlockKey> lru_ ABSL_GUARDED_BY(mu_);
  int64_t used_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t evictions_ ABSL_GUARDED_BY(mu_) = 0;
  // Keys indexed by DoPut whose db_->Put has not returned yet.
  absl::flat_hash_set<BlockKey> pending_puts_ ABSL_GUARDED_BY(mu_);
  // Counts starts and ends of the puts that indexed a new key; DoGet drops an entry only if none
  // happened while it read.
  uint64_t put_events_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace tandem::kv
