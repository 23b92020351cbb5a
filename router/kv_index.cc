// router/kv_index.cc
#include "router/kv_index.h"

namespace tandem::router {
namespace {

// One bit per tier name; an unknown or empty tier name gets its own bit, so "stored" without a
// tier still counts and "evicted" without a tier (below) clears them all.
uint8_t TierBit(const std::string& tier) {
  if (tier == "memory") return 1;
  if (tier == "rocksdb") return 2;
  if (tier == "redis") return 4;
  return 8;
}

}  // namespace

int KvIndex::Apply(const NodeId& node, absl::Span<const node_api::KvEventEntry> events) {
  int skipped = 0;
  absl::MutexLock lock(&mu_);
  NodeKeys& keys = nodes_[node];
  for (const node_api::KvEventEntry& e : events) {
    absl::StatusOr<BlockKey> key = BlockKey::FromHex(e.key);
    if (!key.ok()) {
      ++skipped;
      continue;
    }
    if (e.op == "stored") {
      keys.tiers[*key] |= TierBit(e.tier);
    } else if (e.op == "evicted") {
      auto it = keys.tiers.find(*key);
      if (it == keys.tiers.end()) continue;
      it->second &= e.tier.empty() ? 0 : static_cast<uint8_t>(~TierBit(e.tier));
      if (it->second == 0) keys.tiers.erase(it);
    } else {
      ++skipped;
    }
  }
  return skipped;
}

void KvIndex::ResetNode(const NodeId& node) {
  absl::MutexLock lock(&mu_);
  nodes_[node].tiers.clear();
}

void KvIndex::SetStale(const NodeId& node, bool stale) {
  absl::MutexLock lock(&mu_);
  nodes_[node].stale = stale;
}

int64_t KvIndex::HeldPrefixTokens(const NodeId& node, absl::Span<const BlockKey> block_keys,
                                  int32_t block_tokens) const {
  absl::MutexLock lock(&mu_);
  auto it = nodes_.find(node);
  if (it == nodes_.end() || it->second.stale) return 0;
  int64_t held_blocks = 0;
  for (const BlockKey& key : block_keys) {
    if (!it->second.tiers.contains(key)) break;
    ++held_blocks;
  }
  return held_blocks * block_tokens;
}

size_t KvIndex::NumKeys(const NodeId& node) const {
  absl::MutexLock lock(&mu_);
  auto it = nodes_.find(node);
  return it == nodes_.end() ? 0 : it->second.tiers.size();
}

}  // namespace tandem::router
