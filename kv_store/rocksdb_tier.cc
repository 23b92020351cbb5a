#include "kv_store/rocksdb_tier.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <glog/logging.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace tandem::kv {
namespace {

constexpr std::string_view kFormatKey = "_tandem/format";

rocksdb::Slice KeySlice(const BlockKey& k) {
  return rocksdb::Slice(reinterpret_cast<const char*>(k.bytes.data()), k.bytes.size());
}

absl::Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat("rocksdb ", AV(what), ": ", s.ToString()));
}

// Creates the directory and proves it is writable with a probe file, so that a bad --kv_disk_path
// fails at start with the path and the errno, not later inside RocksDB.
absl::Status CheckWritableDir(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("kv_disk_path '", path, "' cannot be created: ", ec.message()));
  }
  const std::string probe = path + "/.tandem_write_probe";
  const int fd = ::open(probe.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0600);
  if (fd < 0 || ::write(fd, "x", 1) != 1) {
    const int err = errno;
    if (fd >= 0) ::close(fd);
    return absl::FailedPreconditionError(
        absl::StrCat("kv_disk_path '", path, "' is not writable: ", std::strerror(err)));
  }
  ::close(fd);
  ::unlink(probe.c_str());
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<rocksdb::DB>> OpenDb(const std::string& path) {
  TANDEM_RETURN_IF_ERROR(CheckWritableDir(path));
  rocksdb::Options o;
  o.create_if_missing = true;
  o.IncreaseParallelism(2);
  o.compression = rocksdb::kNoCompression;  // f16 KV does not compress; CPU is for the model
  o.enable_blob_files = true;
  o.min_blob_size = 4096;
  o.blob_compression_type = rocksdb::kNoCompression;
  o.enable_blob_garbage_collection = true;
  o.write_buffer_size = 64 << 20;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(o, path, &raw);
  if (!s.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("kv_disk_path '", path, "': cannot open RocksDB: ", s.ToString()));
  }
  return std::unique_ptr<rocksdb::DB>(raw);
}

rocksdb::WriteOptions CacheWrite() {
  rocksdb::WriteOptions w;
  w.disableWAL = true;
  return w;
}

}  // namespace

absl::StatusOr<std::unique_ptr<RocksDbTier>> RocksDbTier::Open(const RocksDbTierOptions& options,
                                                               const KvFormat& format,
                                                               MetricsRegistry* metrics) {
  return OpenImpl(options, format, metrics, /*write_format=*/true);
}

absl::StatusOr<std::unique_ptr<RocksDbTier>> RocksDbTier::OpenImpl(
    const RocksDbTierOptions& options, const KvFormat& format, MetricsRegistry* metrics,
    bool write_format) {
  TANDEM_RETURN_IF_ERROR(format.Validate());
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<rocksdb::DB> db, OpenDb(options.path));
  std::string stored;
  rocksdb::Status s = db->Get(rocksdb::ReadOptions(), rocksdb::Slice(kFormatKey.data(),
                                                                     kFormatKey.size()), &stored);
  if (s.ok()) {
    absl::StatusOr<KvFormat> f = KvFormat::Decode(stored);
    if (!f.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "kv_disk_path '", options.path, "': unreadable _tandem/format record: ",
          f.status().message()));
    }
    if (const std::string diff = f->Diff(format); !diff.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("kv_disk_path '", options.path, "' holds KV of another format: ", diff,
                       " (use another directory, or empty it with `tandem kv clear "
                       "--kv_disk_path=", options.path, "`)"));
    }
  } else if (s.IsNotFound() && !write_format) {
    // An operator's tool on a cleared directory: keep it format-free for its next owner.
  } else if (s.IsNotFound()) {
    rocksdb::WriteOptions w;
    w.sync = true;
    TANDEM_RETURN_IF_ERROR(FromRocks(
        db->Put(w, rocksdb::Slice(kFormatKey.data(), kFormatKey.size()), format.Encode()),
        "write format record"));
  } else {
    return FromRocks(s, "read format record");
  }
  std::unique_ptr<RocksDbTier> tier(new RocksDbTier(options, format, metrics, std::move(db)));
  TANDEM_RETURN_IF_ERROR(tier->LoadIndex());
  return tier;
}

absl::StatusOr<std::unique_ptr<RocksDbTier>> RocksDbTier::OpenExisting(
    const RocksDbTierOptions& options, MetricsRegistry* metrics) {
  if (!std::filesystem::exists(options.path + "/CURRENT")) {
    return absl::NotFoundError(absl::StrCat("kv_disk_path '", options.path,
                                            "' holds no RocksDB database"));
  }
  KvFormat format;
  bool has_format = true;
  {  // closed before the tier opens it again (RocksDB's lock)
    TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<rocksdb::DB> db, OpenDb(options.path));
    std::string stored;
    rocksdb::Status s =
        db->Get(rocksdb::ReadOptions(), rocksdb::Slice(kFormatKey.data(), kFormatKey.size()),
                &stored);
    if (s.IsNotFound()) {
      has_format = false;  // cleared by ClearAll(): no blocks, and no format to keep
    } else {
      TANDEM_RETURN_IF_ERROR(FromRocks(s, "read format record"));
      TANDEM_ASSIGN_OR_RETURN(format, KvFormat::Decode(stored));
    }
  }
  return OpenImpl(options, format, metrics, /*write_format=*/has_format);
}

RocksDbTier::RocksDbTier(const RocksDbTierOptions& options, const KvFormat& format,
                         MetricsRegistry* metrics, std::unique_ptr<rocksdb::DB> db)
    : KvTier(TierId::kRocksDb, format, metrics), options_(options), db_(std::move(db)) {
  this->metrics().SetCapacity(options_.capacity_bytes);
}

RocksDbTier::~RocksDbTier() {
  rocksdb::FlushOptions f;
  f.wait = true;
  rocksdb::Status s = db_->Flush(f);
  if (!s.ok()) LOG(WARNING) << "rocksdb tier " << options_.path << ": flush at close: " << s.ToString();
  s = db_->Close();
  if (!s.ok()) LOG(WARNING) << "rocksdb tier " << options_.path << ": close: " << s.ToString();
}

absl::Status RocksDbTier::LoadIndex() {
  absl::MutexLock lock(&mu_);
  // The iterator must die before the DB (RocksDB asserts are on): keep it in this scope.
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (it->key().size() != 32) continue;  // _tandem/* records
    BlockKey k;
    std::memcpy(k.bytes.data(), it->key().data(), 32);
    Touch(k, static_cast<int64_t>(it->value().size()));
  }
  TANDEM_RETURN_IF_ERROR(FromRocks(it->status(), "scan at open"));
  metrics().SetUsed(used_);
  return absl::OkStatus();
}

void RocksDbTier::Touch(const BlockKey& key, int64_t size) {
  auto it = index_.find(key);
  if (it != index_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    used_ += size - it->second.size;
    it->second.size = size;
    return;
  }
  lru_.push_front(key);
  index_[key] = Entry{size, lru_.begin()};
  used_ += size;
}

void RocksDbTier::Forget(const BlockKey& key) {
  auto it = index_.find(key);
  if (it == index_.end()) return;
  used_ -= it->second.size;
  lru_.erase(it->second.lru);
  index_.erase(it);
}

absl::StatusOr<std::shared_ptr<const Bytes>> RocksDbTier::GetRaw(const BlockKey& key) {
  rocksdb::PinnableSlice value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), db_->DefaultColumnFamily(), KeySlice(key),
                               &value);
  if (s.IsNotFound()) return absl::NotFoundError(absl::StrCat("rocksdb: no block ", key.Hex()));
  TANDEM_RETURN_IF_ERROR(FromRocks(s, "get"));
  return std::shared_ptr<const Bytes>(Bytes::Copy(std::string_view(value.data(), value.size())));
}

absl::StatusOr<KvBlock> RocksDbTier::DoGet(const BlockKey& key, absl::Time) {
  uint64_t puts_before;
  {
    absl::MutexLock lock(&mu_);
    puts_before = put_events_;
  }
  absl::StatusOr<std::shared_ptr<const Bytes>> raw = GetRaw(key);
  if (absl::IsNotFound(raw.status())) {
    // An eviction racing a re-put of the same key can leave the index ahead of the DB. A put in
    // flight, or one that began or ended while we read, is the other way the index runs ahead (or
    // was ahead when we read): its entry must stay, or the block lands unindexed (never evicted,
    // outside the budget).
    absl::MutexLock lock(&mu_);
    if (put_events_ == puts_before && !pending_puts_.contains(key)) {
      Forget(key);
      metrics().SetUsed(used_);
    }
  }
  TANDEM_ASSIGN_OR_RETURN(std::shared_ptr<const Bytes> bytes, std::move(raw));
  {
    absl::MutexLock lock(&mu_);
    if (index_.contains(key)) Touch(key, static_cast<int64_t>(bytes->size()));
  }
  return ParseStored(std::move(bytes), key);
}

absl::Status RocksDbTier::DoPut(const KvBlock& block, absl::Time) {
  const int64_t size = static_cast<int64_t>(block.size());
  if (size > options_.capacity_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "rocksdb tier: block of ", size, " bytes exceeds the budget of ", options_.capacity_bytes));
  }
  std::vector<BlockKey> victims;
  {
    // Reserve the space first (evicting as needed), so concurrent puts never overshoot.
    absl::MutexLock lock(&mu_);
    if (index_.contains(block.key())) {
      Touch(block.key(), size);
      return absl::OkStatus();
    }
    // Never evict a block whose put is still in flight: its Delete could land before its Put.
    auto pos = lru_.end();
    while (used_ + size > options_.capacity_bytes && pos != lru_.begin()) {
      --pos;
      if (pending_puts_.contains(*pos)) continue;
      const BlockKey victim = *pos;
      pos = std::next(pos);  // Forget erases the node `victim` came from
      victims.push_back(victim);
      Forget(victim);
    }
    Touch(block.key(), size);
    pending_puts_.insert(block.key());
    ++put_events_;
    evictions_ += static_cast<int64_t>(victims.size());
    metrics().SetUsed(used_);
  }
  for (const BlockKey& k : victims) {
    rocksdb::Status s = db_->Delete(CacheWrite(), KeySlice(k));
    if (!s.ok()) LOG(WARNING) << "rocksdb tier: evicting " << k.Hex() << ": " << s.ToString();
    NotifyEvicted(k);
  }
  metrics().Evicted(static_cast<int64_t>(victims.size()));
  const auto b = block.bytes();
  rocksdb::Status s = db_->Put(CacheWrite(), KeySlice(block.key()),
                               rocksdb::Slice(reinterpret_cast<const char*>(b.data()), b.size()));
  absl::MutexLock lock(&mu_);
  pending_puts_.erase(block.key());
  ++put_events_;
  if (!s.ok()) {
    Forget(block.key());
    metrics().SetUsed(used_);
    return FromRocks(s, "put");
  }
  return absl::OkStatus();
}

absl::Status RocksDbTier::PutRawForTesting(const BlockKey& key, std::string_view bytes) {
  TANDEM_RETURN_IF_ERROR(FromRocks(
      db_->Put(CacheWrite(), KeySlice(key), rocksdb::Slice(bytes.data(), bytes.size())), "put"));
  absl::MutexLock lock(&mu_);
  Touch(key, static_cast<int64_t>(bytes.size()));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<bool>> RocksDbTier::Contains(absl::Span<const BlockKey> keys,
                                                        absl::Time) {
  absl::MutexLock lock(&mu_);
  std::vector<bool> out(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) out[i] = index_.contains(keys[i]);
  return out;
}

absl::Status RocksDbTier::Erase(const BlockKey& key) {
  {
    absl::MutexLock lock(&mu_);
    Forget(key);
    metrics().SetUsed(used_);
  }
  return FromRocks(db_->Delete(CacheWrite(), KeySlice(key)), "delete");
}

TierStats RocksDbTier::Stats() const {
  absl::MutexLock lock(&mu_);
  TierStats s;
  s.used_bytes = used_;
  s.capacity_bytes = options_.capacity_bytes;
  s.entries = static_cast<int64_t>(index_.size());
  s.evictions = evictions_;
  return s;
}

absl::Status RocksDbTier::ForEachKey(const std::function<void(const BlockKey&, int64_t)>& fn) {
  std::vector<std::pair<BlockKey, int64_t>> keys;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [k, e] : index_) keys.emplace_back(k, e.size);
  }
  for (const auto& [k, size] : keys) fn(k, size);
  return absl::OkStatus();
}

absl::Status RocksDbTier::Clear() {
  std::vector<BlockKey> keys;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [k, e] : index_) keys.push_back(k);
  }
  for (const BlockKey& k : keys) TANDEM_RETURN_IF_ERROR(Erase(k));
  return absl::OkStatus();
}

absl::Status RocksDbTier::ClearAll() {
  TANDEM_RETURN_IF_ERROR(Clear());
  rocksdb::WriteOptions w;
  w.sync = true;
  return FromRocks(db_->Delete(w, rocksdb::Slice(kFormatKey.data(), kFormatKey.size())),
                   "delete format record");
}

}  // namespace tandem::kv
