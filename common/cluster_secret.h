// common/cluster_secret.h
//
// ClusterSecret: the one shared secret of a Tandem cluster (ARCHITECTURE.md §9, issue 13). It is
// read from a file (`--cluster_secret_file`, so a Kubernetes Secret can be mounted; `tandem serve`
// writes a fresh one per run with mode 0600) and never printed. Every plane derives its own key
// from it, so a key leaked from one use (say, a KV MAC verified by a debugging tool) does not
// authenticate another: key(purpose) = HMAC-SHA256(secret, "tandem-key-v1/" + purpose name).
//
// Mac() is HMAC-SHA256 over length-prefixed parts (so ("ab","c") and ("a","bc") differ). It is what
// the control plane (common/http_auth.h) and the data-plane handshake sign with; the KV-at-rest
// seal uses AES-GMAC under its own key (kv_store/kv_seal.h) because it runs over megabytes.
//
// Immutable after construction; shared as std::shared_ptr<const ClusterSecret>; thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/hash.h"
#include "common/metrics.h"

namespace tandem {

enum class KeyPurpose { kControlPlane, kDataPlane, kKvAtRest };
std::string_view KeyPurposeName(KeyPurpose purpose);  // "control_plane", "data_plane", "kv_at_rest"

using SecretKey = std::array<uint8_t, 32>;

class ClusterSecret {
 public:
  // Shorter secrets are refused: 32 bytes is the HMAC-SHA256 key size.
  static constexpr size_t kMinBytes = 32;

  // Reads `path`; surrounding whitespace (a trailing newline) is not part of the secret.
  // InvalidArgument naming the file (never its contents) when unreadable, empty or too short.
  static absl::StatusOr<std::shared_ptr<const ClusterSecret>> ReadFile(const std::string& path);
  // The secret itself (tests, and ReadFile).
  static absl::StatusOr<std::shared_ptr<const ClusterSecret>> FromBytes(std::string_view secret);
  // Creates `path` (it must not exist) with mode 0600 holding 64 random hex digits and a newline.
  static absl::Status WriteNewFile(const std::string& path);

  const SecretKey& Key(KeyPurpose purpose) const;
  // HMAC-SHA256 under Key(purpose) of the parts, each preceded by its u64le length.
  Sha256Digest Mac(KeyPurpose purpose, std::initializer_list<std::string_view> parts) const;

 private:
  explicit ClusterSecret(std::string_view secret);
  std::array<SecretKey, 3> keys_;
};

// Registers tandem_auth_refusals_total{plane, reason} on `registry`: every caller refused for lack
// of the cluster secret (plane control: HTTP 401; data: handshake failed or BEGIN refused).
CounterFamily* AuthRefusalsCounter(MetricsRegistry& registry);

// HMAC-SHA256(key, data) as OpenSSL computes it.
Sha256Digest HmacSha256(absl::Span<const uint8_t> key, std::string_view data);
// Equal sizes and equal bytes, in time independent of where they differ.
bool ConstantTimeEquals(absl::Span<const uint8_t> a, absl::Span<const uint8_t> b);
// Bytes from OpenSSL's CSPRNG (RAND_bytes); aborts if it cannot be seeded, which no caller could
// recover from safely.
void SecureRandomBytes(void* out, size_t size);
uint64_t SecureRandomU64();
std::string SecureRandomHex(size_t bytes);

}  // namespace tandem
