#include "common/process.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "glog/logging.h"
#include "nlohmann/json.hpp"

namespace tandem {

TANDEM_FLAG(std::string, host, "127.0.0.1",
            "Address the process's HTTP (and data plane) ports bind; 0.0.0.0 opens them to other "
            "machines (then --cluster_secret_file is required).");
TANDEM_FLAG(std::string, node_id, "", "This node's id in the cluster; default <role>-<host>-<pid>.");
TANDEM_FLAG(std::string, ready_file, "",
            "Once serving, write {pid, ports} as JSON to this file (tests, tandem serve).");
TANDEM_FLAG(int32_t, http_threads, 64,
            "HTTP worker threads; each open SSE stream holds one.");
TANDEM_FLAG(
    std::string, cluster_secret_file, "",
    "File holding the cluster secret (>= 32 bytes; a mounted Kubernetes Secret) that "
    "authenticates the router to the nodes' /internal/ APIs, the data plane, and KV blocks "
    "in the shared tier. Required unless --host is loopback; tandem serve makes one per run.");

bool IsLoopbackHost(std::string_view host) {
  return host == "localhost" || host == "::1" || host == "[::1]" || host.substr(0, 4) == "127.";
}

absl::StatusOr<std::shared_ptr<const ClusterSecret>> ClusterSecretFromFlags() {
  const std::string path = GetFlag(FLAGS_cluster_secret_file);
  if (path.empty()) {
    const std::string host = GetFlag(FLAGS_host);
    if (!IsLoopbackHost(host)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--cluster_secret_file is required when --host (", host,
          ") is reachable from other machines: without it anyone could drain the node or take "
          "its KV transfers"));
    }
    LOG(WARNING) << "no --cluster_secret_file: internal APIs and the data plane are "
                    "unauthenticated (acceptable only because --host is loopback)";
    return std::shared_ptr<const ClusterSecret>();
  }
  return ClusterSecret::ReadFile(path);
}

uint64_t NewProcessEpoch() {
  const uint64_t micros = static_cast<uint64_t>(absl::ToUnixMicros(absl::Now()));
  return (micros << 8) ^ static_cast<uint64_t>(getpid());
}

std::string NodeIdFromFlags(const std::string& role) {
  std::string id = GetFlag(FLAGS_node_id);
  if (!id.empty()) return id;
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  return absl::StrCat(role, "-", host, "-", getpid());
}

absl::Status WriteReadyFile(const std::string& path, const std::map<std::string, int>& ports) {
  if (path.empty()) return absl::OkStatus();
  nlohmann::json json{{"pid", getpid()}, {"ports", ports}};
  const std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << json.dump() << "\n";
    if (!out.good()) {
      return absl::FailedPreconditionError(absl::StrCat("--ready_file: cannot write ", tmp));
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::FailedPreconditionError(absl::StrCat("--ready_file: cannot rename to ", path));
  }
  return absl::OkStatus();
}

namespace {
sigset_t TerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}
}  // namespace

void BlockTerminationSignals() {
  sigset_t set = TerminationSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // A client that disconnects mid-stream must not kill the process with SIGPIPE.
  signal(SIGPIPE, SIG_IGN);
}

int WaitForTerminationSignal() {
  sigset_t set = TerminationSignals();
  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
  return sig;
}

}  // namespace tandem
