// kv_store/redis_tier.h
//
// RedisTier: the shared KV tier in a redis-server, through hiredis 0.14 (ARCHITECTURE.md §4.5,
// §5.3, §9). Blocks are stored under `tandem:<ns>:kv:<hex key>` with a TTL; capacity is Redis's
// job (`maxmemory-policy allkeys-lru`), so Stats() reports Redis's used memory and no budget, and
// counts this namespace's keys with SCAN (linear in the database's size: for operators' tools).
// Before its first put (and again after Redis comes back) the tier writes the KvFormat record
// `tandem:<ns>:format:<hex root>`, or, when one is there, checks that it holds this format and
// refuses to put (FailedPrecondition) if not.
//
// Failure model: every call is bounded by its deadline and by `timeout` (connect and command
// timeouts are the smaller of the two). A connection error or timeout drops that connection and
// opens a circuit breaker: for 1 s (doubling on each failed probe up to 30 s) calls fail at once
// with Unavailable (miss reason tier_unavailable) without touching the network; then one probe is
// let through, and its success closes the breaker. So a Redis that dies costs each caller at most
// one timeout, and a Redis that comes back is used again without any operator action.
//
// Connections come from a pool (at most `pool_size`; a caller waits for one until its deadline).
// Thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "kv_store/kv_seal.h"
#include "kv_store/kv_tier.h"

struct redisContext;

namespace tandem::kv {

struct RedisTierOptions {
  std::string url;  // redis://[[user]:password@]host[:port][/db]. --redis_url
  absl::Duration timeout = absl::Milliseconds(50);  // connect and command. --redis_timeout_ms
  int pool_size = 8;                                // --redis_pool_size
  absl::Duration ttl = absl::Hours(24);             // 0 = no expiry. --redis_ttl_s
  absl::Duration breaker_base = absl::Seconds(1);   // first open period, doubled per failed probe
  absl::Duration breaker_max = absl::Seconds(30);
  // When set, blocks are sealed (kv_seal.h) on put and must verify on get: a block without a
  // valid MAC under this secret is a miss with reason `auth`, erased. Nodes set it from
  // --cluster_secret_file; nullptr stores plain blocks (tools, a cluster without a secret).
  std::shared_ptr<const ClusterSecret> seal_secret{};
};

struct RedisAddress {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string user;
  std::string password;
  int db = 0;
};
// InvalidArgument naming the URL on anything malformed.
absl::StatusOr<RedisAddress> ParseRedisUrl(std::string_view url);

class RedisTier final : public KvTier {
 public:
  // Does not connect: a Redis that is down at start only makes the tier unavailable (a node is
  // degraded, not unready). InvalidArgument for a bad URL.
  static absl::StatusOr<std::unique_ptr<RedisTier>> Create(const RedisTierOptions& options,
                                                           const KvFormat& format,
                                                           MetricsRegistry* metrics);
  ~RedisTier() override;

  absl::StatusOr<std::vector<bool>> Contains(absl::Span<const BlockKey> keys,
                                             absl::Time deadline) override;
  absl::Status Erase(const BlockKey& key) override;
  TierStats Stats() const override;
  absl::Status ForEachKey(const std::function<void(const BlockKey&, int64_t)>& fn) override;
  absl::Status Clear() override;

  std::string RedisKey(const BlockKey& key) const;
  const std::string& FormatKey() const { return format_key_; }
  absl::StatusOr<std::shared_ptr<const Bytes>> GetRaw(const BlockKey& key, absl::Time deadline);
  absl::Status PutRawForTesting(const BlockKey& key, std::string_view bytes);
  bool BreakerOpen() const;

 protected:
  absl::StatusOr<KvBlock> DoGet(const BlockKey& key, absl::Time deadline) override;
  absl::Status DoPut(const KvBlock& block, absl::Time deadline) override;

 private:
  class Conn;
  RedisTier(const RedisTierOptions& options, RedisAddress address, const KvFormat& format,
            MetricsRegistry* metrics);

  // A connected, authenticated connection, or Unavailable/DeadlineExceeded (breaker open, pool
  // exhausted until the deadline, connect failure).
  absl::StatusOr<std::unique_ptr<Conn>> Acquire(absl::Time deadline);
  // Returns a healthy connection to the pool; a broken one is closed.
  void Release(std::unique_ptr<Conn> conn);
  // Runs `argv` (binary-safe) and hands the reply to `fn`; I/O errors feed the breaker.
  absl::Status Command(const std::vector<std::string_view>& argv, absl::Time deadline,
                       const std::function<absl::Status(void* reply)>& fn);
  void OnSuccess();
  void OnFailure();
  // Writes or checks the format record once (see the file comment).
  absl::Status EnsureFormatRecord(absl::Time deadline);
  // Calls `fn` with every Redis key of this namespace's blocks (SCAN, ns matched literally).
  absl::Status ScanKeys(const std::function<void(const std::string&)>& fn);

  // Fetches the stored value as it is (sealed or not).
  absl::StatusOr<std::shared_ptr<Bytes>> Fetch(const BlockKey& key, absl::Time deadline);

  const RedisTierOptions options_;
  const std::unique_ptr<const KvSeal> seal_;  // null without seal_secret
  const RedisAddress address_;
  const std::string prefix_;  // tandem:<ns>:kv:
  const std::string format_key_;  // tandem:<ns>:format:<hex root>
  std::atomic<bool> format_recorded_{false};

  mutable absl::Mutex pool_mu_;
  std::vector<std::unique_ptr<Conn>> idle_ ABSL_GUARDED_BY(pool_mu_);
  int open_conns_ ABSL_GUARDED_BY(pool_mu_) = 0;

  mutable absl::Mutex breaker_mu_;
  absl::Time open_until_ ABSL_GUARDED_BY(breaker_mu_) = absl::InfinitePast();
  absl::Duration backoff_ ABSL_GUARDED_BY(breaker_mu_);
  bool probing_ ABSL_GUARDED_BY(breaker_mu_) = false;
  bool failed_ ABSL_GUARDED_BY(breaker_mu_) = false;  // last call failed: next one is a probe
  // tandem_kv_tier_circuit_open{tier="redis"}: 1 from a failure until a call succeeds again (the
  // breaker's state; alert TandemKvTierCircuitOpen). Owned by the registry; null without one.
  prometheus::Gauge* circuit_open_ = nullptr;
};

}  // namespace tandem::kv
