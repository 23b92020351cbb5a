#include "prefill_node/node_main.h"

#include <signal.h>
#include <unistd.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "common/flags.h"
#include "common/http.h"
#include "common/metrics.h"
#include "common/process.h"
#include "common/status.h"
#include "glog/logging.h"
#include "kernels/backend.h"
#include "kernels/model/flags.h"
#include "prefill_node/flags.h"
#include "prefill_node/http_api.h"
#include "prefill_node/prefill_service.h"

namespace tandem::prefill {

absl::Status RunPrefillNode() {
  BlockTerminationSignals();
  TANDEM_ASSIGN_OR_RETURN(PrefillOptions options, PrefillOptionsFromFlags());
  TANDEM_ASSIGN_OR_RETURN(const int port, PrefillPortFromFlags());
  const int32_t http_threads = GetFlag(FLAGS_http_threads);
  if (http_threads < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--http_threads: ", http_threads, " must be >= 1"));
  }
  LOG(INFO) << "node=" << options.node_id << " epoch=" << options.epoch
            << " effective configuration:\n"
            << EffectiveFlags();
  kernels::SetCpuThreads(GetFlag(model::FLAGS_threads));

  MetricsRegistry metrics;
  HttpServerOptions http_options;
  http_options.host = GetFlag(FLAGS_host);
  http_options.port = port;
  http_options.num_threads = http_threads;
  HttpServer server(http_options, &metrics);
  if (options.cluster_secret != nullptr) {
    server.RequireClusterAuth(
        std::make_shared<ControlPlaneAuth>(options.cluster_secret, AuthRefusalsCounter(metrics)));
  }
  // The drain endpoint ends the process the same way a signal does: the signal is blocked in
  // every thread, so it waits for the sigwait below.
  PrefillHttpApi api(server, [] { kill(getpid(), SIGTERM); });
  TANDEM_RETURN_IF_ERROR(server.Start());

  absl::StatusOr<std::unique_ptr<PrefillService>> service =
      PrefillService::Create(options, metrics);
  if (!service.ok()) {
    server.Stop();
    return Annotate(service.status(), "starting the prefill node");
  }
  api.Attach(service->get());
  TANDEM_RETURN_IF_ERROR(WriteReadyFile(GetFlag(FLAGS_ready_file), {{"http", server.port()}}));
  LOG(INFO) << "node=" << options.node_id << " serving on " << server.host() << ":"
            << server.port();

  const int sig = WaitForTerminationSignal();
  LOG(INFO) << "node=" << options.node_id << " signal " << sig << ": draining";
  (*service)->Drain();
  server.Stop();
  api.Attach(nullptr);
  service->reset();
  LOG(INFO) << "node=" << options.node_id << " stopped";
  return absl::OkStatus();
}

}  // namespace tandem::prefill
