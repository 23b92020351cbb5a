// router/node_main.cc
#include "router/node_main.h"

#include "common/flags.h"
#include "common/process.h"
#include "common/status.h"
#include "glog/logging.h"
#include "router/flags.h"
#include "router/router.h"

namespace tandem::router {

absl::Status RunRouter() {
  BlockTerminationSignals();
  TANDEM_ASSIGN_OR_RETURN(RouterOptions options, RouterOptionsFromFlags());
  LOG(INFO) << "tandem-router configuration:\n" << EffectiveFlags();
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<Router> router, Router::Start(options));
  TANDEM_RETURN_IF_ERROR(WriteReadyFile(GetFlag(FLAGS_ready_file), {{"http", router->port()}}));
  const int signal = WaitForTerminationSignal();
  LOG(INFO) << "router stopping on signal " << signal;
  router->Stop();
  return absl::OkStatus();
}

}  // namespace tandem::router
