// router/router.h
//
// Router: one running router, everything RunRouter wires together (ARCHITECTURE.md §2): the served
// model, metrics, KV index, node registry with its pollers, routing policy, RouterService and the
// HTTP server with the OpenAI routes. Tests start it in-process on a free port; RunRouter adds the
// flags, the ready file and the signal wait.
//
// Owns every piece. Start() blocks while the GGUF is read and the port bound; the object is
// thread-safe to query while it serves. Stop() (or the destructor) stops HTTP first, then the
// pollers.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "common/http.h"
#include "common/metrics.h"
#include "router/kv_index.h"
#include "router/metrics.h"
#include "router/node_registry.h"
#include "router/options.h"
#include "router/policy/routing_policy.h"
#include "router/router_service.h"
#include "router/served_model.h"

namespace tandem::router {

class Router {
 public:
  // Loads options.model_path, binds options.host:options.port (0: a free port) and starts
  // polling the nodes. Errors: the options' Validate(), the GGUF's, or Unavailable when the port
  // is taken.
  static absl::StatusOr<std::unique_ptr<Router>> Start(const RouterOptions& options);
  ~Router();
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  void Stop();
  int port() const { return server_->port(); }
  NodeRegistry& registry() { return *registry_; }
  const ServedModel& model() const { return *model_; }

 private:
  Router() = default;

  std::unique_ptr<ServedModel> model_;
  std::unique_ptr<MetricsRegistry> metrics_registry_;
  std::unique_ptr<RouterMetrics> metrics_;
  std::unique_ptr<KvIndex> index_;
  std::unique_ptr<NodeRegistry> registry_;
  std::unique_ptr<RoutingPolicy> policy_;
  std::unique_ptr<RouterService> service_;
  std::unique_ptr<HttpServer> server_;
};

}  // namespace tandem::router
