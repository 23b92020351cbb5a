// prefill_node/node_main.h
//
// RunPrefillNode: the whole life of a prefill node process (ARCHITECTURE.md §8), shared by the
// tandem-prefill binary and `tandem serve`. Call it from main() after ParseFlagsOrExit and
// InitLogging, before any other thread exists (it blocks SIGINT/SIGTERM first, so the signal
// reaches its sigwait).
#pragma once

#include "absl/status/status.h"

namespace tandem::prefill {

// Reads every flag it needs (PrefillOptionsFromFlags, --prefill_port, --host, --http_threads,
// --threads, --ready_file), starts HTTP, loads the model, writes the ready file {"http": port},
// serves until SIGINT, SIGTERM or POST /internal/v1/drain, drains and returns OK. InvalidArgument
// naming the flag on bad configuration (exit code 2), other errors when the model, the store or
// the port cannot be opened.
absl::Status RunPrefillNode();

}  // namespace tandem::prefill
