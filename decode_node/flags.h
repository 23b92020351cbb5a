// decode_node/flags.h
//
// The decode node's own flags (--decode_port, --decode_data_port, --decode_max_seqs,
// --decode_kv_capacity_tokens, --decode_reservation_ttl_ms, --decode_advertise_host,
// --decode_drain_timeout_ms) and DecodeOptionsFromFlags, which gathers them with the shared model,
// KV-format and data-plane flags into DecodeOptions. Only processes call these (RunDecodeNode,
// `tandem serve`); the library takes DecodeOptions.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/flags.h"
#include "decode_node/options.h"

namespace tandem::decode {

TANDEM_DECLARE_FLAG(int32_t, decode_port);
TANDEM_DECLARE_FLAG(int32_t, decode_data_port);

// Every flag DecodeOptions covers (--model, --backend, --kv_dtype, --kv_page_tokens,
// --max_batch_tokens, --kv_block_tokens, --kv_namespace, --transport, --host, --node_id,
// --decode_*) plus a fresh process epoch, validated: InvalidArgument naming the bad flag.
absl::StatusOr<DecodeOptions> DecodeOptionsFromFlags();

// --decode_port; InvalidArgument outside 0..65535 (0 binds a free port).
absl::StatusOr<int> DecodePortFromFlags();

// --decode_drain_timeout_ms: how long a draining node waits for its streams before it ends them
// and exits. tandem serve's --serve_stop_timeout_s must exceed it, or serve kills the node first.
absl::StatusOr<absl::Duration> DecodeDrainTimeoutFromFlags();

}  // namespace tandem::decode
