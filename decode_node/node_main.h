// decode_node/node_main.h
//
// RunDecodeNode: the whole decode-node process after flag parsing, shared by the tandem-decode
// binary and `tandem serve`. Blocks SIGINT/SIGTERM first thing (call it before starting any
// thread), reads every flag, loads the model, serves HTTP (--host, --decode_port, --http_threads)
// and the KV data plane (--decode_data_port), writes --ready_file with {"http", "data"} ports,
// then waits for SIGINT/SIGTERM or POST /internal/v1/drain, drains (no new reservations, running
// streams finish, up to --decode_drain_timeout_ms; then the rest end with an error event and the
// transport, engine and HTTP server stop within a few seconds) and returns. Blocks for the
// process's life.
#pragma once

#include "absl/status/status.h"

namespace tandem::decode {

// InvalidArgument for a bad flag (exit code 2), NotFound for a missing model, Unavailable when a
// port is taken.
absl::Status RunDecodeNode();

}  // namespace tandem::decode
