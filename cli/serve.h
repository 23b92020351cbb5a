// cli/serve.h
//
// `tandem serve`: the one-command local cluster (ARCHITECTURE.md §3). Starts one prefill node, one
// decode node and the router as child processes of this binary (`tandem prefill|decode|router`,
// the same code paths a multi-node cluster runs: HTTP control plane on loopback, the KV data plane
// over --transport), waits until each wrote its ready file and the router reports ready, prints
// the OpenAI base URL, restarts a child that dies (on its old ports, with a new epoch), and stops
// them all on Ctrl-C or SIGTERM. Wiring only.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace tandem::cli {

// `self_args` are this process's own command-line flags, forwarded to every child (so
// `tandem serve --model X --threads 2` configures the nodes too).
absl::Status RunServe(const std::vector<std::string>& self_args);

}  // namespace tandem::cli
