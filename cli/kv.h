// cli/kv.h
//
// `tandem kv`: the operator's view of a node's KV tiers, opened from --kv_disk_path (RocksDB, with
// the format its _tandem/format record names) and --redis_url (namespace --kv_namespace):
//   tandem kv stats            entries, used and capacity bytes, availability per tier
//   tandem kv list [N]         up to N keys (default 100) with their size and tier
//   tandem kv lookup <hex>     which tiers hold the key; its header (tokens, positions, format)
//   tandem kv verify           reads every block and checks header, key chain and checksum;
//                              DataLoss (exit 1) when any block is bad, naming it
//   tandem kv clear            removes every block from the configured tiers, and the disk tier's
//                              format record (so another model may use the directory)
// Wiring only: the work is in kv_store/.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace tandem::cli {

// `args` are the positional arguments after "kv".
absl::Status RunKv(const std::vector<std::string>& args);

}  // namespace tandem::cli
