// common/process.h
//
// What every Tandem server process shares at its edge (ARCHITECTURE.md §8): the --host, --node_id
// and --ready_file flags, the ready file that tests and `tandem serve` wait for, a fresh process
// epoch, and the wait for SIGINT / SIGTERM that starts a drain. Only processes call these.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/cluster_secret.h"
#include "common/flags.h"

namespace tandem {

TANDEM_DECLARE_FLAG(std::string, host);
TANDEM_DECLARE_FLAG(std::string, node_id);
TANDEM_DECLARE_FLAG(std::string, ready_file);
TANDEM_DECLARE_FLAG(int32_t, http_threads);
TANDEM_DECLARE_FLAG(std::string, cluster_secret_file);

// True for 127.0.0.0/8, ::1 and "localhost": an address only this machine can reach.
bool IsLoopbackHost(std::string_view host);

// The secret --cluster_secret_file names. Without the flag: nullptr (with a warning that the
// internal planes are unauthenticated) when --host is loopback, else InvalidArgument: a node that
// other machines can reach must not run open.
absl::StatusOr<std::shared_ptr<const ClusterSecret>> ClusterSecretFromFlags();

// A process epoch: unix microseconds at start, mixed with the pid, so a restarted node is never
// taken for its previous life even when it comes back within the same microsecond.
uint64_t NewProcessEpoch();

// --node_id, or "<role>-<hostname>-<pid>" when unset.
std::string NodeIdFromFlags(const std::string& role);

// Writes {"pid": N, "ports": {"http": 8100, ...}} to `path` atomically (temp file + rename), so a
// reader never sees half a file. No-op for an empty path.
absl::Status WriteReadyFile(const std::string& path, const std::map<std::string, int>& ports);

// Blocks SIGINT and SIGTERM in the calling thread and every thread it starts afterwards; call it
// first in main(), before any thread exists, then WaitForTerminationSignal() once serving.
void BlockTerminationSignals();
// Waits for SIGINT or SIGTERM and returns its number.
int WaitForTerminationSignal();

}  // namespace tandem
