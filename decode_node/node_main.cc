#include "decode_node/node_main.h"

#include <signal.h>
#include <unistd.h>

#include <memory>

#include "absl/time/clock.h"
#include "common/flags.h"
#include "common/http.h"
#include "common/metrics.h"
#include "common/process.h"
#include "common/status.h"
#include "decode_node/decode_service.h"
#include "decode_node/flags.h"
#include "decode_node/http_api.h"
#include "glog/logging.h"
#include "kernels/backend.h"
#include "kernels/model/flags.h"

namespace tandem::decode {

absl::Status RunDecodeNode() {
  BlockTerminationSignals();
  TANDEM_ASSIGN_OR_RETURN(DecodeOptions options, DecodeOptionsFromFlags());
  TANDEM_ASSIGN_OR_RETURN(const int http_port, DecodePortFromFlags());
  TANDEM_ASSIGN_OR_RETURN(const absl::Duration drain_timeout, DecodeDrainTimeoutFromFlags());
  LOG(INFO) << "node=" << options.node_id << " effective configuration:\n" << EffectiveFlags();
  kernels::SetCpuThreads(GetFlag(model::FLAGS_threads));

  MetricsRegistry metrics;
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<DecodeService> service,
                          DecodeService::Create(options, &metrics));
  HttpServerOptions http_options;
  http_options.host = GetFlag(FLAGS_host);
  http_options.port = http_port;
  http_options.num_threads = GetFlag(FLAGS_http_threads);
  HttpServer http(http_options, &metrics);
  if (options.cluster_secret != nullptr) {
    http.RequireClusterAuth(
        std::make_shared<ControlPlaneAuth>(options.cluster_secret, AuthRefusalsCounter(metrics)));
  }
  // A drain over HTTP ends the process like SIGTERM does: the main thread is the one waiting.
  RegisterDecodeRoutes(http, *service, [] { ::kill(::getpid(), SIGTERM); });
  TANDEM_RETURN_IF_ERROR(http.Start());
  TANDEM_RETURN_IF_ERROR(WriteReadyFile(GetFlag(FLAGS_ready_file),
                                        {{"http", http.port()}, {"data", service->data_port()}}));
  LOG(INFO) << "node=" << options.node_id << " decode node ready: http " << http_options.host
            << ":" << http.port() << ", data " << options.advertise_host << ":"
            << service->data_port() << ", epoch " << options.epoch;

  const int signal = WaitForTerminationSignal();
  LOG(INFO) << "node=" << options.node_id << " draining (signal " << signal << ")";
  service->Drain();
  if (!service->WaitDrained(absl::Now() + drain_timeout)) {
    LOG(WARNING) << "node=" << options.node_id << " drain timeout: ending the remaining streams";
  }
  service->Shutdown();
  http.Stop();
  LOG(INFO) << "node=" << options.node_id << " decode node stopped";
  return absl::OkStatus();
}

}  // namespace tandem::decode
