#include "decode_node/http_api.h"

#include <memory>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/node_api.h"
#include "common/status.h"
#include "glog/logging.h"

namespace tandem::decode {
namespace {

constexpr char kJson[] = "application/json";

void WriteJson(httplib::Response& res, const std::string& body) { res.set_content(body, kJson); }

}  // namespace

void RegisterDecodeRoutes(HttpServer& server, DecodeService& service,
                          std::function<void()> on_drain) {
  server.Post("/internal/v1/reserve", [&service](const httplib::Request& req,
                                                 httplib::Response& res) {
    auto body = node_api::FromJson<node_api::ReserveRequest>(req.body);
    if (!body.ok()) return WriteError(res, body.status());
    auto reply = service.Reserve(*body);
    if (!reply.ok()) {
      VLOG(1) << "req=" << body->request_id << " reserve refused: " << reply.status();
      return WriteError(res, reply.status());
    }
    WriteJson(res, node_api::ToJson(*reply));
  });

  server.Post("/internal/v1/decode", [&service](const httplib::Request& req,
                                                httplib::Response& res) {
    auto body = node_api::FromJson<node_api::DecodeRequest>(req.body);
    if (!body.ok()) return WriteError(res, body.status());
    auto call = service.StartDecode(*body);
    if (!call.ok()) return WriteError(res, call.status());
    // The provider is a copyable std::function; the call rides in a shared_ptr, and releases its
    // reservation if httplib never runs the provider (client gone before the headers).
    std::shared_ptr<DecodeCall> shared(std::move(*call));
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream", [&service, shared](size_t /*offset*/, httplib::DataSink& sink) {
          service.RunDecode(*shared, [&sink](const node_api::DecodeEvent& e) {
            const std::string sse = e.ToSse();
            return sink.write(sse.data(), sse.size());
          });
          sink.done();
          return true;
        });
  });

  server.Post("/internal/v1/cancel", [&service](const httplib::Request& req,
                                                httplib::Response& res) {
    auto body = node_api::FromJson<node_api::CancelRequest>(req.body);
    if (!body.ok()) return WriteError(res, body.status());
    if (absl::Status s = service.Cancel(*body); !s.ok()) return WriteError(res, s);
    WriteJson(res, "{}");
  });

  server.Post("/internal/v1/drain", [&service, on_drain = std::move(on_drain)](
                                        const httplib::Request&, httplib::Response& res) {
    LOG(INFO) << "node=" << service.node_id() << " drain requested over HTTP";
    service.Drain();
    if (on_drain) on_drain();
    WriteJson(res, "{}");
  });

  server.Get("/internal/v1/status", [&service](const httplib::Request& req,
                                               httplib::Response& res) {
    uint64_t since = 0;
    if (req.has_param("since") && !absl::SimpleAtoi(req.get_param_value("since"), &since)) {
      return WriteError(res, absl::InvalidArgumentError(absl::StrCat(
                                 "since: '", req.get_param_value("since"),
                                 "' is not an unsigned integer")));
    }
    WriteJson(res, node_api::ToJson(service.Status(since)));
  });

  server.Get("/ready", [&service](const httplib::Request&, httplib::Response& res) {
    if (service.ready()) return WriteJson(res, R"({"ready":true})");
    res.status = 503;
    res.set_header("Retry-After", "1");
    WriteJson(res, R"({"ready":false,"reasons":["draining"]})");
  });
}

}  // namespace tandem::decode
