// router/api_keys.h
//
// The router's API keys and per-key limits (issue 13). Keys come from --api_keys_file, one
// `name:key` per line (a Kubernetes Secret mounted as a file): the name is what logs and metrics
// show, the key is only ever compared, in constant time. KeyLimiter bounds each key's concurrent
// requests and its token rate (prompt tokens plus max_tokens, charged at admission, from a token
// bucket refilled per minute), so one tenant cannot take the cluster from the others; a request
// over either limit gets 429 with Retry-After, and other keys are unaffected.
//
// Thread-safe: KeyLimiter has its own lock; ApiKeys is immutable after construction.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace tandem::router {

struct ApiKey {
  std::string name;
  std::string key;
};

// Shorter keys are refused: they could be guessed.
inline constexpr size_t kMinApiKeyBytes = 16;

// Parses `name:key` lines ('#' comments and blank lines skipped). InvalidArgument naming the file
// and line (never a key) for a bad name ([A-Za-z0-9_.-], 1..64), a short key, or a repeated
// name or key.
absl::StatusOr<std::vector<ApiKey>> ParseApiKeys(std::string_view text, std::string_view file);
absl::StatusOr<std::vector<ApiKey>> ReadApiKeysFile(const std::string& path);

// The key a bearer token matches, compared in constant time against every key (so timing tells
// nothing about which, or how much of one, matched); nullptr when none does.
const ApiKey* MatchApiKey(const std::vector<ApiKey>& keys, std::string_view token);

struct KeyLimits {
  // Requests of one key in flight at once; 0 = unlimited. Default: 48: enough for one key to fill
  // a decode node (--decode_max_seqs 32), while 16 of the router's 64 workers stay for others.
  // Flag: --api_key_max_concurrent
  int max_concurrent = 48;
  // Tokens (prompt + max_tokens) one key may start per minute; 0 = unlimited. Default: 0.
  // Flag: --api_key_tokens_per_minute
  int64_t tokens_per_minute = 0;
};

class KeyLimiter {
 public:
  explicit KeyLimiter(KeyLimits limits) : limits_(limits) {}

  // Holds one concurrency slot of a key until destroyed.
  class Slot {
   public:
    Slot(KeyLimiter* limiter, std::string key) : limiter_(limiter), key_(std::move(key)) {}
    ~Slot();
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;

   private:
    KeyLimiter* limiter_;
    std::string key_;
  };

  // A slot, or ResourceExhausted naming the limit when the key is at max_concurrent.
  absl::StatusOr<std::shared_ptr<Slot>> Acquire(const std::string& key);
  // Takes `tokens` from the key's bucket: nullopt when they fit, else how long until they would.
  std::optional<absl::Duration> Charge(const std::string& key, int64_t tokens,
                                       absl::Time now = absl::Now());

 private:
  struct State {
    int in_flight = 0;
    double bucket = -1;  // tokens available; -1 until first use (starts full)
    absl::Time refilled;
  };
  void Release(const std::string& key);

  const KeyLimits limits_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, State> keys_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tandem::router
