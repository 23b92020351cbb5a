// prefill_node/flags.h
//
// The prefill node's own flags (--prefill_port, --prefill_max_waiting) and PrefillOptionsFromFlags,
// which gathers them with the shared model, KV store and data-plane flags into PrefillOptions.
// Only processes call these (RunPrefillNode, `tandem serve`); the library takes PrefillOptions.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "common/flags.h"
#include "prefill_node/options.h"

namespace tandem::prefill {

TANDEM_DECLARE_FLAG(int32_t, prefill_port);
TANDEM_DECLARE_FLAG(int32_t, prefill_max_waiting);

// Every flag PrefillOptions covers (--model, --backend, --kv_*, --redis_*, --transport,
// --kv_transfer_timeout_ms, --prefill_*, --node_id) plus a fresh process epoch, validated:
// InvalidArgument naming the bad flag.
absl::StatusOr<PrefillOptions> PrefillOptionsFromFlags();

// --prefill_port; InvalidArgument outside 0..65535 (0 binds a free port).
absl::StatusOr<int> PrefillPortFromFlags();

}  // namespace tandem::prefill
