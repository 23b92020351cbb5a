// kv_store/kv_seal.h
//
// KvSeal: the keyed MAC that KV blocks carry at rest in a shared tier (Redis; RocksDB as an
// option), so that whoever can write to the tier cannot plant KV that steers other users' output
// (ARCHITECTURE.md §5.1, §9). XXH3 in the block header only catches accidents: anyone can compute
// it. A sealed block is the §5.1 block with
//
//   format_version = 3 (kSealedFormatVersion)    readers that predate sealing reject it (version)
//   byte 192          unchanged (a document block's k_rope, kv_block.h)
//   byte 193          the sealed block's own format version (1, or 2 for a document block)
//   bytes [196, 208)  a random 96-bit nonce
//   bytes [208, 224)  tag = AES-256-GMAC(key, nonce, header [0, 208) ++ [224, 248) ++ tokens and
//                     payload [256, end)), key = the cluster secret's kv_at_rest key
//   header_checksum   recomputed over the sealed header
//
// Why GMAC: it is a MAC (unforgeable without the key, unlike a keyed XXH3 whose collisions can be
// constructed), it is in OpenSSL (already linked), and with AES-NI and carry-less multiply it runs
// at several GB/s per core, where HMAC-SHA256 (SHA-NI) runs near 1.5 GB/s and would cost more than
// the Redis read of a 5.9 MB block. A random 96-bit nonce per seal keeps the chance of a repeat
// negligible for far more than 2^32 seals under one key (NIST SP 800-38D's limit for random IVs),
// and rotating the cluster secret rotates the key.
//
// Open() checks the tag and turns the bytes back into the ordinary version-1 or -2 block in place
// (the caller then parses it as usual), so everything past the shared tier sees one format. A block
// that is not sealed, or whose tag fails, is a miss with reason `auth`.
//
// Immutable; thread-safe.
#pragma once

#include <memory>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "common/cluster_secret.h"
#include "kv_store/kv_block.h"

namespace tandem::kv {

// Above every unsealed version (kv_block.h: 1 prefix blocks, 2 document blocks).
inline constexpr uint16_t kSealedFormatVersion = 3;

class KvSeal {
 public:
  explicit KvSeal(std::shared_ptr<const ClusterSecret> secret);

  // The sealed copy of a version-1 or version-2 block's bytes. InvalidArgument for bytes shorter
  // than a header or of another version.
  absl::StatusOr<std::shared_ptr<Bytes>> Seal(absl::Span<const uint8_t> block) const;
  // Checks `bytes` (sealed) and rewrites them into the block they seal. DataLoss with
  // MissReason kAuth when they are not sealed or the tag does not verify; `bytes` may then be
  // partly rewritten and must not be used.
  absl::Status Open(Bytes& bytes) const;

 private:
  std::array<uint8_t, 16> Tag(absl::Span<const uint8_t> sealed_bytes) const;

  std::shared_ptr<const ClusterSecret> secret_;
};

}  // namespace tandem::kv
