// common/hash.h
//
// The two hashes Tandem uses: SHA-256 (OpenSSL libcrypto) where a collision would serve wrong KV
// (KV block keys, format and vocabulary fingerprints), and XXH3-64 (libxxhash) where speed matters
// and a collision only costs a miss (in-memory tables, checksums of block payloads). Hex helpers
// print and parse keys for logs, Redis keys and the /v1/kv/lookup API.
// Pure functions, thread-safe, no allocation beyond the returned strings.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace tandem {

using Sha256Digest = std::array<uint8_t, 32>;

Sha256Digest Sha256(const void* data, size_t size);
inline Sha256Digest Sha256(std::string_view bytes) { return Sha256(bytes.data(), bytes.size()); }
inline Sha256Digest Sha256(absl::Span<const uint8_t> bytes) {
  return Sha256(bytes.data(), bytes.size());
}

// Incremental SHA-256 over several buffers, without concatenating them (e.g. parent key, format
// root and token ids of a KV block key). Not thread-safe; one hasher per computation.
class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(const Sha256Hasher&) = delete;
  Sha256Hasher& operator=(const Sha256Hasher&) = delete;

  void Update(const void* data, size_t size);
  void Update(std::string_view bytes) { Update(bytes.data(), bytes.size()); }
  // Returns the digest; the hasher is then reset and may be reused.
  Sha256Digest Finish();

 private:
  void* ctx_;  // EVP_MD_CTX*, kept opaque so that this header does not include OpenSSL
};

// XXH3 64-bit with `seed` (0 is XXH3's default).
uint64_t Xxh3_64(const void* data, size_t size, uint64_t seed = 0);
inline uint64_t Xxh3_64(std::string_view bytes, uint64_t seed = 0) {
  return Xxh3_64(bytes.data(), bytes.size(), seed);
}

// Lower-case hex, two digits per byte.
std::string HexEncode(absl::Span<const uint8_t> bytes);
inline std::string HexEncode(const Sha256Digest& digest) {
  return HexEncode(absl::MakeConstSpan(digest));
}
// Inverse of HexEncode (either case). InvalidArgument naming the offending input on odd length
// or a non-hex character.
absl::StatusOr<std::string> HexDecode(std::string_view hex);
// Parses exactly 64 hex digits into a digest.
absl::StatusOr<Sha256Digest> Sha256DigestFromHex(std::string_view hex);

}  // namespace tandem
