// The flags of KvStoreOptions (ARCHITECTURE.md §6), and the namespace and block size that are part
// of the cluster's KvFormat.
#include "common/flags.h"

#include "absl/strings/str_cat.h"
#include "common/kv_key.h"
#include "common/status.h"
#include "kv_store/options.h"

TANDEM_FLAG(int64_t, kv_memory_bytes, tandem::kv::KvStoreOptions{}.memory_bytes,
            "Memory KV tier budget in bytes; 0 = off.");
TANDEM_FLAG(std::string, kv_disk_path, "", "RocksDB KV tier directory; empty = off.");
TANDEM_FLAG(int64_t, kv_disk_bytes, tandem::kv::KvStoreOptions{}.disk_bytes,
            "RocksDB KV tier budget in bytes.");
TANDEM_SECRET_FLAG(std::string, redis_url, "",
                   "Shared Redis KV tier, redis://[:password@]host:port[/db]; empty = off.");
TANDEM_FLAG(
    int32_t, redis_timeout_ms,
    static_cast<int32_t>(absl::ToInt64Milliseconds(tandem::kv::KvStoreOptions{}.redis_timeout)),
    "Redis connect and command timeout (ms).");
TANDEM_FLAG(int32_t, redis_pool_size, tandem::kv::KvStoreOptions{}.redis_pool_size,
            "Connections kept open to Redis.");
TANDEM_FLAG(int64_t, redis_ttl_s, absl::ToInt64Seconds(tandem::kv::KvStoreOptions{}.redis_ttl),
            "TTL of KV blocks in Redis (s); 0 = no expiry.");
TANDEM_FLAG(int64_t, kv_write_behind_bytes, tandem::kv::KvStoreOptions{}.write_behind_bytes,
            "Bytes queued per lower KV tier before puts are dropped.");
TANDEM_FLAG(int32_t, kv_prefetch_threads, tandem::kv::KvStoreOptions{}.prefetch_threads,
            "Threads serving KV prefetches.");
TANDEM_FLAG(std::string, kv_namespace, "", "Tenant namespace of KV keys (cluster-wide).");
TANDEM_FLAG(int32_t, kv_block_tokens, tandem::kDefaultKvBlockTokens,
            "Tokens per KV block (cluster-wide).");
TANDEM_FLAG(std::string, transport, tandem::kv::DataPlaneOptions{}.transport,
            "KV data plane between prefill and decode nodes: tcp, or ucx when built with UCX.");
TANDEM_FLAG(int32_t, kv_transfer_timeout_ms,
            static_cast<int32_t>(
                absl::ToInt64Milliseconds(tandem::kv::DataPlaneOptions{}.transfer_timeout)),
            "Deadline of one request's KV transfer, prefill node to decode node (ms).");

namespace tandem::kv {

absl::Status KvStoreOptions::Validate() const {
  auto bad = [](std::string_view flag, auto value, std::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("--", AV(flag), "=", value, ": ", AV(why)));
  };
  if (memory_bytes < 0) return bad("kv_memory_bytes", memory_bytes, "must be >= 0");
  if (disk_bytes <= 0) return bad("kv_disk_bytes", disk_bytes, "must be > 0");
  if (redis_timeout <= absl::ZeroDuration()) {
    return bad("redis_timeout_ms", absl::ToInt64Milliseconds(redis_timeout), "must be > 0");
  }
  if (redis_pool_size < 1) return bad("redis_pool_size", redis_pool_size, "must be >= 1");
  if (redis_ttl < absl::ZeroDuration()) {
    return bad("redis_ttl_s", absl::ToInt64Seconds(redis_ttl), "must be >= 0");
  }
  if (write_behind_bytes < 0) return bad("kv_write_behind_bytes", write_behind_bytes, ">= 0");
  if (prefetch_threads < 1) return bad("kv_prefetch_threads", prefetch_threads, "must be >= 1");
  return absl::OkStatus();
}

KvStoreOptions KvStoreOptionsFromFlags() {
  KvStoreOptions o;
  o.memory_bytes = GetFlag(FLAGS_kv_memory_bytes);
  o.disk_path = GetFlag(FLAGS_kv_disk_path);
  o.disk_bytes = GetFlag(FLAGS_kv_disk_bytes);
  o.redis_url = GetFlag(FLAGS_redis_url);
  o.redis_timeout = absl::Milliseconds(GetFlag(FLAGS_redis_timeout_ms));
  o.redis_pool_size = GetFlag(FLAGS_redis_pool_size);
  o.redis_ttl = absl::Seconds(GetFlag(FLAGS_redis_ttl_s));
  o.write_behind_bytes = GetFlag(FLAGS_kv_write_behind_bytes);
  o.prefetch_threads = GetFlag(FLAGS_kv_prefetch_threads);
  return o;
}

std::string KvNamespaceFromFlags() { return GetFlag(FLAGS_kv_namespace); }
int32_t KvBlockTokensFromFlags() { return GetFlag(FLAGS_kv_block_tokens); }

}  // namespace tandem::kv

namespace tandem::kv {

absl::StatusOr<DataPlaneOptions> DataPlaneOptionsFromFlags() {
  DataPlaneOptions o;
  o.transport = GetFlag(FLAGS_transport);
  if (o.transport != "tcp" && o.transport != "ucx") {
    return absl::InvalidArgumentError(
        absl::StrCat("--transport=", o.transport, ": must be tcp or ucx"));
  }
  const int32_t ms = GetFlag(FLAGS_kv_transfer_timeout_ms);
  if (ms <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--kv_transfer_timeout_ms=", ms, ": must be > 0"));
  }
  o.transfer_timeout = absl::Milliseconds(ms);
  return o;
}

}  // namespace tandem::kv
