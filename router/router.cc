// router/router.cc
#include "router/router.h"

#include <random>

#include "absl/time/clock.h"
#include "common/status.h"
#include "glog/logging.h"
#include "router/router_http.h"

namespace tandem::router {

absl::StatusOr<std::unique_ptr<Router>> Router::Start(const RouterOptions& options) {
  TANDEM_RETURN_IF_ERROR(options.Validate());
  std::unique_ptr<Router> r(new Router());
  TANDEM_ASSIGN_OR_RETURN(r->model_, ServedModel::Load(options.model_path));
  r->metrics_registry_ = std::make_unique<MetricsRegistry>();
  r->metrics_ = std::make_unique<RouterMetrics>(*r->metrics_registry_);
  r->index_ = std::make_unique<KvIndex>();
  NodeRegistryOptions nodes;
  nodes.prefill_nodes = options.prefill_nodes;
  nodes.decode_nodes = options.decode_nodes;
  nodes.prefill_dns = options.prefill_dns;
  nodes.decode_dns = options.decode_dns;
  nodes.dns_refresh = options.dns_refresh;
  nodes.poll_interval = options.poll_interval;
  nodes.poll_timeout = std::max(absl::Seconds(1), 2 * options.poll_interval);
  r->registry_ = std::make_unique<NodeRegistry>(nodes, r->model_->identity(), r->index_.get(),
                                                r->metrics_.get());
  TANDEM_ASSIGN_OR_RETURN(r->policy_, NewRoutingPolicy(options.policy, std::random_device{}()));
  r->service_ = std::make_unique<RouterService>(options.service, *r->model_, *r->registry_,
                                                *r->index_, *r->policy_, *r->metrics_);
  HttpServerOptions http;
  http.host = options.host;
  http.port = options.port;
  http.num_threads = options.http_threads;
  r->server_ = std::make_unique<HttpServer>(http, r->metrics_registry_.get());
  RouterHttpOptions api;
  api.api_key = options.api_key;
  api.served_model_name = options.service.served_model_name;
  api.created = absl::ToUnixSeconds(absl::Now());
  RegisterRouterRoutes(*r->server_, *r->service_, *r->registry_, *r->metrics_, api);
  TANDEM_RETURN_IF_ERROR(r->server_->Start());
  r->registry_->Start();
  LOG(INFO) << "router serving " << options.service.served_model_name << " on " << options.host
            << ":" << r->server_->port() << " policy=" << options.policy
            << " prefill_nodes=" << options.prefill_nodes.size() << "+"
            << options.prefill_dns.size() << " dns"
            << " decode_nodes=" << options.decode_nodes.size() << "+" << options.decode_dns.size()
            << " dns";
  return r;
}

Router::~Router() { Stop(); }

void Router::Stop() {
  if (server_) server_->Stop();
  if (registry_) registry_->Stop();
}

}  // namespace tandem::router
