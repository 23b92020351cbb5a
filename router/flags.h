// router/flags.h
//
// The router's flags (--router_port, --prefill_nodes, --decode_nodes, --api_key,
// --served_model_name, --router_policy, --router_max_retries, --router_max_queue_ms,
// --router_poll_ms, --router_prefill_timeout_ms, --router_decode_timeout_ms; plus the shared
// --host, --http_threads from common/process.h and --model from common/model_format/flags.h).
// Only processes call this.
#pragma once

#include "absl/status/statusor.h"
#include "router/options.h"

namespace tandem::router {

// Reads the flags into RouterOptions and Validate()s them; InvalidArgument names the flag.
absl::StatusOr<RouterOptions> RouterOptionsFromFlags();

}  // namespace tandem::router
