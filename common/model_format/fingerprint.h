// common/model_format/fingerprint.h
//
// Fingerprint is a model's identity: SHA-256 over the GGUF's sorted metadata (key, type, value
// bytes), its tensor infos and the XXH3-64 of every tensor's data. Two nodes may exchange KV only
// when their fingerprints match; a fine-tune keeps every shape, so metadata alone is no identity.
// Plain value type; ModelFingerprint reads the whole tensor data once (about 10 ms per 100 MB) and
// is thread-safe on a const GgufFile.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "common/model_format/gguf.h"

namespace tandem::format {

struct Fingerprint {
  std::array<uint8_t, 32> bytes{};

  // 64 lowercase hex digits.
  std::string Hex() const;
  bool operator==(const Fingerprint&) const = default;
  auto operator<=>(const Fingerprint&) const = default;
  template <typename H>
  friend H AbslHashValue(H h, const Fingerprint& f) {
    return H::combine_contiguous(std::move(h), f.bytes.data(), f.bytes.size());
  }
};

Fingerprint ModelFingerprint(const GgufFile& file);

// SHA-256 hex over the vocabulary (tokenizer.ggml.tokens, each string length-prefixed): what a
// router and its nodes compare so that token ids mean the same text on both sides, without
// reading the weights. InvalidArgument when the file has no token list.
absl::StatusOr<std::string> VocabFingerprintHex(const GgufFile& file);

}  // namespace tandem::format
