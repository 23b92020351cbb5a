// router/node_main.h
//
// RunRouter: the whole tandem-router process after flag parsing (also `tandem router` and the
// router child of `tandem serve`): reads the router's flags, starts the Router, writes
// --ready_file {"http": port}, waits for SIGINT/SIGTERM and stops. Blocks until then.
#pragma once

#include "absl/status/status.h"

namespace tandem::router {

// Call after ParseFlagsOrExit and logging setup, before any other thread starts (it blocks the
// termination signals first). InvalidArgument naming a bad flag; the Router's start errors.
absl::Status RunRouter();

}  // namespace tandem::router
