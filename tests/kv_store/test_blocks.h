// tests/kv_store/test_blocks.h
//
// Small synthetic KV blocks for the kv_store tests: a KvFormat with a fixed fake fingerprint and
// blocks whose K/V bytes are a pattern derived from the key, so any hit can be checked for being
// whole and the right one (nothing torn). Header-only test support.
#pragma once

#include <cstring>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "common/metrics.h"
#include "common/hash.h"
#include "common/kv_key.h"
#include "kv_store/kv_block.h"

namespace tandem::kv::testing {

inline absl::Time Soon() { return absl::Now() + absl::Seconds(5); }

// Reads one sample of a counter from the text exposition, e.g.
// tandem_kv_misses_total{reason="checksum",tier="rocksdb"}.
inline double Sample(const MetricsRegistry& r, const std::string& series) {
  const std::string text = r.Serialize();
  const size_t at = text.find(series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 1));
}

inline KvFormat TestFormat(int block_tokens = 16) {
  KvFormat f;
  f.model = Sha256("golden-model");
  f.dtype = DType::kF16;
  f.block_tokens = block_tokens;
  return f;
}

struct BlockDims {
  int layers = 2;
  int heads = 2;
  int head_dim = 8;
};

// Tokens `first .. first + n - 1` chained from `parent` (Root() when omitted).
inline absl::StatusOr<KvBlock> MakeBlock(const KvFormat& f, int first, int n,
                                         BlockDims d = BlockDims(),
                                         const BlockKey* parent = nullptr) {
  std::vector<KvTokenId> tokens(n);
  for (int i = 0; i < n; ++i) tokens[i] = first + i;
  const BlockKey p = parent ? *parent : f.Root();
  const BlockKey key = NextBlockKey(p, tokens);
  const size_t elems = static_cast<size_t>(n) * d.heads * d.head_dim;
  std::vector<std::vector<uint16_t>> data(2 * d.layers, std::vector<uint16_t>(elems));
  std::vector<TensorView> k, v;
  for (int l = 0; l < 2 * d.layers; ++l) {
    for (size_t e = 0; e < elems; ++e) {
      data[l][e] = static_cast<uint16_t>(key.bytes[(e + l) % 32] * 257 + e + l);
    }
    TensorView t = TensorView::Contiguous(data[l].data(), DType::kF16, {n, d.heads, d.head_dim});
    (l % 2 == 0 ? k : v).push_back(t);
  }
  return KvBlock::Build(f, p, tokens, /*pos_begin=*/first, k, v);
}

// True when `b` holds exactly the pattern MakeBlock writes for its key.
inline bool PatternIntact(const KvBlock& b) {
  for (int l = 0; l < b.num_layers(); ++l) {
    for (int which = 0; which < 2; ++which) {
      const TensorView t = which == 0 ? b.k(l) : b.v(l);
      const auto* p = t.as<const uint16_t>();
      for (int64_t e = 0; e < t.numel(); ++e) {
        const int ll = 2 * l + which;
        if (p[e] != static_cast<uint16_t>(b.key().bytes[(e + ll) % 32] * 257 + e + ll)) {
          return false;
        }
      }
    }
  }
  return true;
}

}  // namespace tandem::kv::testing
