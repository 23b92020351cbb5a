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
  std::shared_ptr<const ControlPlaneAuth> cluster_auth;
  if (options.cluster_secret != nullptr) {
    cluster_auth = std::make_shared<ControlPlaneAuth>(options.cluster_secret,
                                                      AuthRefusalsCounter(*r->metrics_registry_));
  }
  nodes.cluster_auth = cluster_auth;
  RouterServiceOptions service_options = options.service;
  service_options.cluster_auth = cluster_auth;
  r->registry_ = std::make_unique<NodeRegistry>(nodes, r->model_->identity(), r->index_.get(),
                                                r->metrics_.get());
  TANDEM_ASSIGN_OR_RETURN(r->policy_, NewRoutingPolicy(options.policy, std::random_device{}()));
  r->service_ = std::make_unique<RouterService>(service_options, *r->model_, *r->registry_,
                                                *r->index_, *r->policy_, *r->metrics_);
  HttpServerOptions http;
  http.host = options.host;
  http.port = options.port;
  http.num_threads = options.http_threads;
  http.max_body_bytes = options.max_body_bytes;
  http.max_queued_connections = options.max_queued_connections;
  http.tls_cert = options.tls_cert;
  http.tls_key = options.tls_key;
  http.refusals = r->metrics_registry_->Counter(
      "tandem_http_refusals_total",
      "Requests refused from their headers alone (body size, encoding, header size, capacity).",
      {"reason"});
  r->server_ = std::make_unique<HttpServer>(http, r->metrics_registry_.get());
  RouterHttpOptions api;
  api.api_keys = options.api_keys;
  if (!options.api_key.empty()) api.api_keys.push_back(ApiKey{"default", options.api_key});
  api.key_limits = options.key_limits;
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
