// kv_store/options.h
//
// KvStoreOptions: which tiers a TieredKvStore opens and their budgets (ARCHITECTURE.md §6). Filled
// by KvStoreOptionsFromFlags() (kv_store/flags.cc) in a process's main(); libraries never read
// flags. Plain value type.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/cluster_secret.h"

namespace tandem::kv {

struct KvStoreOptions {
  // Memory tier budget in bytes; 0 disables the tier. Default: 2 GiB. --kv_memory_bytes.
  int64_t memory_bytes = 2LL << 30;
  // RocksDB directory; "" disables the tier. Default: "". --kv_disk_path.
  std::string disk_path;
  // RocksDB logical budget. Default: 20 GiB. --kv_disk_bytes.
  int64_t disk_bytes = 20LL << 30;
  // Shared Redis tier, redis://[:password@]host:port[/db]; "" disables it. --redis_url.
  std::string redis_url;
  // Connect and command timeout; a slower Redis is a `timeout` miss. Default 50 ms.
  // --redis_timeout_ms.
  absl::Duration redis_timeout = absl::Milliseconds(50);
  // Connections kept to Redis. Default 8. --redis_pool_size.
  int redis_pool_size = 8;
  // TTL of blocks in Redis; 0 = none (rely on allkeys-lru). Default 24 h. --redis_ttl_s.
  absl::Duration redis_ttl = absl::Hours(24);
  // Bytes queued for write-behind per lower tier before puts are dropped (and counted).
  // Trade-off: memory held vs. puts lost under a slow tier. Default 256 MiB.
  // --kv_write_behind_bytes.
  int64_t write_behind_bytes = 256LL << 20;
  // Threads serving Prefetch(). Default 2. --kv_prefetch_threads.
  int prefetch_threads = 2;
  // Circuit breaker of the Redis tier (§9): first open period and its cap.
  absl::Duration redis_breaker_base = absl::Seconds(1);
  absl::Duration redis_breaker_max = absl::Seconds(30);
  // Seals blocks written to Redis and refuses unsealed or forged ones (kv_seal.h). A node sets it
  // to its cluster secret (--cluster_secret_file), which it must have when --redis_url is set.
  std::shared_ptr<const ClusterSecret> seal_secret{};

  // InvalidArgument naming the flag and value.
  absl::Status Validate() const;
};

// From the --kv_* and --redis_* flags (kv_store/flags.cc).
KvStoreOptions KvStoreOptionsFromFlags();

}  // namespace tandem::kv

namespace tandem::kv {
// The cluster-wide KvFormat fields declared in kv_store/flags.cc: --kv_namespace,
// --kv_block_tokens. (--kv_dtype, --model and the latent flags are declared by their owners.)
std::string KvNamespaceFromFlags();
int32_t KvBlockTokensFromFlags();
}  // namespace tandem::kv

namespace tandem::kv {
// The data plane a node uses for KV transfers: --transport, --kv_transfer_timeout_ms.
struct DataPlaneOptions {
  std::string transport = "tcp";  // "tcp" | "ucx"
  absl::Duration transfer_timeout = absl::Seconds(5);
};
// InvalidArgument naming the flag on a bad value.
absl::StatusOr<DataPlaneOptions> DataPlaneOptionsFromFlags();
}  // namespace tandem::kv
