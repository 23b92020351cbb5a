// router/router_service.cc
#include "router/router_service.h"

#include <algorithm>
#include <random>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/http_client.h"
#include "common/status.h"
#include "glog/logging.h"
#include "nlohmann/json.hpp"
#include "router/detokenizer.h"
#include "router/internal/decode_relay.h"
#include "router/openai_render.h"
#include "router/openai_stream.h"
#include "router/segmenter.h"
#include "router/stop_matcher.h"

namespace tandem::router {

using internal::RelayDecode;
using internal::RelayResult;
using internal::TextVerdict;


namespace {

using Json = nlohmann::ordered_json;

uint64_t RandomU64() {
  thread_local std::mt19937_64 rng(std::random_device{}() ^
                                   static_cast<uint64_t>(absl::ToUnixNanos(absl::Now())));
  return rng();
}

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

}  // namespace

RouterService::RouterService(RouterServiceOptions options, const ServedModel& model,
                             NodeRegistry& registry, const KvIndexView& index,
                             RoutingPolicy& policy, RouterMetrics& metrics)
    : options_(std::move(options)), model_(model), registry_(registry), index_(index),
      policy_(policy), metrics_(metrics) {}

RouterService::~RouterService() = default;

absl::StatusOr<PreparedRequest> RouterService::Prepare(Endpoint endpoint,
                                                       std::string_view body) const {
  SegmentedPrompt segmented;
  // Exactly what `tandem generate` encodes (raw text without special tokens, or the chat template
  // with only its own markers as control tokens), with each document's ids joined in
  // (router/segmenter.h).
  auto tokenize = [this](const CompletionRequest& r) {
    return SegmentPrompt(r, model_.tokenizer(), model_.chat_template(), model_.context_length());
  };
  ParseOptions po;
  po.model_name = options_.served_model_name;
  po.context_length = model_.context_length();
  po.defaults = options_.generation_defaults;
  po.count_prompt_tokens = [&](const CompletionRequest& r) -> absl::StatusOr<int64_t> {
    TANDEM_ASSIGN_OR_RETURN(segmented, tokenize(r));
    return static_cast<int64_t>(segmented.tokens.size());
  };
  TANDEM_ASSIGN_OR_RETURN(CompletionRequest api, ParseCompletionRequest(endpoint, body, po));
  if (api.prompt_tokens < 0) {  // the model declares no context length: nothing counted yet
    TANDEM_ASSIGN_OR_RETURN(segmented, tokenize(api));
    api.prompt_tokens = static_cast<int64_t>(segmented.tokens.size());
    const int64_t fallback = options_.generation_defaults.max_tokens;
    api.effective_max_tokens = api.max_tokens.value_or(fallback > 0 ? fallback : 256);
  }
  if (segmented.tokens.empty()) {
    return InvalidParamError(endpoint == Endpoint::kCompletions ? "prompt" : "messages",
                             "the prompt encodes to no tokens");
  }
  PreparedRequest req;
  req.api = std::move(api);
  req.prompt = std::move(segmented.tokens);
  req.documents = std::move(segmented.documents);
  req.request_id = absl::StrFormat("r-%016x", RandomU64());
  req.accepted = absl::Now();
  req.sampling.temperature = req.api.temperature;
  req.sampling.top_p = req.api.top_p;
  req.sampling.top_k = req.api.top_k;
  req.sampling.rng_state =
      req.api.seed ? static_cast<uint64_t>(*req.api.seed) : RandomU64();
  return req;
}

RouteRequest RouterService::MakeRouteRequest(const PreparedRequest& req) const {
  RouteRequest r;
  r.request_id = req.request_id;
  r.prompt_tokens = static_cast<int64_t>(req.prompt.size());
  r.max_tokens = req.api.effective_max_tokens;
  if (std::optional<KvFormat> format = registry_.cluster_format()) {
    // Nodes store the prompt's full blocks only, so only those can be held.
    const size_t full = req.prompt.size() / format->block_tokens * format->block_tokens;
    r.block_keys = ChainKeys(*format, absl::MakeConstSpan(req.prompt.data(), full));
    r.block_tokens = format->block_tokens;
  }
  return r;
}

namespace {

// The prefill node ran the prompt but could not deliver its KV to the reserved decode node (NACK,
// deadline, stale epoch): it answers 503 with code kv_transfer_failed
// (prefill_node/prefill_service.cc), which StatusFromHttpReply carries as the error-code payload.
bool IsTransferFailure(const absl::Status& st) {
  return ErrorCodeOf(st) == kErrorKvTransferFailed;
}

// A node's failure as the client sees it (ARCHITECTURE.md §9): the request was valid when the
// router accepted it, so a node's 4xx is never the client's 400/404. Retryable ones (and failed
// transfers) are 503 + Retry-After, the rest 502 bad gateway (server_error, upstream_error).
absl::Status ForClient(const absl::Status& st) {
  if (IsRetryable(st) || IsTransferFailure(st)) return absl::UnavailableError(st.message());
  return WithHttpStatus(WithErrorDetail(absl::InternalError(st.message()), "", "upstream_error"),
                        502);
}

// Moves the nodes in `failed` behind the others, keeping the policy's order otherwise: a node
// that failed this request is tried again only when nothing else is left.
void FailedLast(std::vector<NodeId>& ranked, const std::vector<NodeId>& failed) {
  std::stable_partition(ranked.begin(), ranked.end(), [&](const NodeId& id) {
    return std::find(failed.begin(), failed.end(), id) == failed.end();
  });
}

// The reservation id in a reserve reply that does not parse as a whole, so that it can still be
// cancelled; 0 when there is none.
uint64_t ReservationIdOf(const std::string& body) {
  const Json j = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("target") || !j["target"].is_object()) return 0;
  const Json& id = j["target"].value("reservation_id", Json());
  return id.is_number_unsigned() ? id.get<uint64_t>() : 0;
}

}  // namespace

absl::StatusOr<node_api::ReserveReply> RouterService::Reserve(ActiveRequest& a) {
  const absl::Time give_up = a.req.accepted + options_.max_queue;
  node_api::ReserveRequest body;
  body.request_id = a.req.request_id;
  body.prompt_tokens = static_cast<int64_t>(a.req.prompt.size());
  body.max_tokens = a.req.api.effective_max_tokens;
  HttpCallOptions call;
  call.cluster_auth = options_.cluster_auth;
  call.connect_timeout = options_.control_timeout;
  call.io_timeout = options_.control_timeout;
  while (true) {
    std::vector<NodeView> nodes = registry_.UsableNodes(NodeRole::kDecode);
    if (nodes.empty()) {
      return absl::UnavailableError("no usable decode node; see the router's /ready");
    }
    body.deadline_ms = node_api::NowUnixMs() +
                       absl::ToInt64Milliseconds(options_.prefill_timeout + options_.control_timeout);
    std::vector<NodeId> ranked = policy_.RankDecode(a.route, nodes);
    FailedLast(ranked, a.failed_decode_nodes);
    bool any_full = false;
    absl::Status refused;  // the last answer that was neither a reservation nor "full"
    for (const NodeId& id : ranked) {
      auto node = std::find_if(nodes.begin(), nodes.end(), [&](const auto& n) { return n.id == id; });
      if (node == nodes.end()) continue;
      absl::StatusOr<HttpReply> reply =
          HttpPostJson(node->endpoint, "/internal/v1/reserve", node_api::ToJson(body), call);
      if (!reply.ok()) {
        registry_.MarkDown(id, reply.status());
        metrics_.CountRetry("decode_unreachable");
        continue;
      }
      const absl::Status st = StatusFromHttpReply(reply->status, reply->body);
      if (st.code() == absl::StatusCode::kResourceExhausted ||
          st.code() == absl::StatusCode::kUnavailable) {
        VLOG(1) << "req=" << a.req.request_id << " decode node " << id << " is full: " << st;
        any_full = true;
        continue;
      }
      if (!st.ok()) {
        LOG(WARNING) << "req=" << a.req.request_id << " decode node " << id
                     << " refused the reservation: " << st;
        refused = Annotate(st, absl::StrCat("reserve on decode node ", id));
        continue;
      }
      absl::StatusOr<node_api::ReserveReply> r =
          node_api::FromJson<node_api::ReserveReply>(reply->body);
      if (!r.ok()) {
        // Whatever the node holds for us is freed, if its id can be read at all.
        if (const uint64_t rid = ReservationIdOf(reply->body); rid != 0) {
          node_api::CancelRequest c;
          c.request_id = a.req.request_id;
          c.reservation_id = rid;
          HttpPostJson(node->endpoint, "/internal/v1/cancel", node_api::ToJson(c), call)
              .IgnoreError();
        }
        refused = Annotate(r.status(), absl::StrCat("bad reserve reply from decode node ", id));
        LOG(WARNING) << "req=" << a.req.request_id << " " << refused;
        continue;
      }
      a.decode_node = *node;
      return r;
    }
    // No node is merely full: waiting would not help, the nodes turned the request down.
    if (!any_full && !refused.ok()) return ForClient(refused);
    if (absl::Now() + options_.queue_retry_interval > give_up) {
      return absl::UnavailableError(absl::StrCat(
          "every decode node is full; waited ", absl::ToInt64Milliseconds(options_.max_queue),
          " ms (--router_max_queue_ms)"));
    }
    absl::SleepFor(options_.queue_retry_interval);
  }
}

absl::Status RouterService::PrefillOnce(ActiveRequest& a) {
  std::vector<NodeView> nodes = registry_.UsableNodes(NodeRole::kPrefill);
  if (nodes.empty()) return absl::UnavailableError("no usable prefill node; see the router's /ready");
  std::vector<NodeId> ranked = policy_.RankPrefill(a.route, index_, nodes);
  FailedLast(ranked, a.failed_prefill_nodes);
  auto node = ranked.empty() ? nodes.end()
                             : std::find_if(nodes.begin(), nodes.end(),
                                            [&](const auto& n) { return n.id == ranked[0]; });
  if (node == nodes.end()) {
    return absl::UnavailableError("the routing policy ranked no usable prefill node");
  }
  node_api::PrefillRequest body;
  body.request_id = a.req.request_id;
  body.tokens = a.req.prompt;
  body.sampling = a.req.sampling;
  body.sparse_prefill = a.req.api.tandem.sparse_prefill.value_or("");
  body.store_kv = a.req.api.tandem.store_kv.value_or(true);
  body.documents = a.req.documents;
  const TandemOptions& tandem = a.req.api.tandem;
  body.blend.enabled = tandem.blend.value_or("auto") != "off";
  // "on" blends documents of any size; "auto" leaves it to the node's --blend_min_tokens.
  if (tandem.blend.value_or("auto") == "on") body.blend.min_blend_tokens = 0;
  body.blend.recompute_ratio = tandem.recompute_ratio.value_or(-1.0);
  body.blend.check_layer = static_cast<int32_t>(tandem.check_layer.value_or(-1));
  body.blend.deviation = tandem.blend_deviation.value_or("");
  body.target = a.reservation.target;
  body.deadline_ms = node_api::NowUnixMs() + absl::ToInt64Milliseconds(options_.prefill_timeout);
  HttpCallOptions call;
  call.cluster_auth = options_.cluster_auth;
  call.connect_timeout = options_.control_timeout;
  call.io_timeout = options_.prefill_timeout;
  const absl::Time sent = absl::Now();
  absl::StatusOr<HttpReply> reply =
      HttpPostJson(node->endpoint, "/internal/v1/prefill", node_api::ToJson(body), call);
  absl::Status st = reply.ok() ? StatusFromHttpReply(reply->status, reply->body) : reply.status();
  if (st.ok()) {
    absl::StatusOr<node_api::PrefillReply> parsed =
        node_api::FromJson<node_api::PrefillReply>(reply->body);
    if (parsed.ok()) {
      a.prefill = *std::move(parsed);
      a.prefill_node = *node;
      a.router_queue_ms = Ms(sent - a.req.accepted);
      return absl::OkStatus();
    }
    st = absl::InternalError(absl::StrCat("bad prefill reply: ", parsed.status().message()));
  }
  if (!reply.ok()) {
    registry_.MarkDown(node->id, st);
    // It may still be working on the prompt: it must not ship into the next reservation.
    node_api::CancelRequest c;
    c.request_id = a.req.request_id;
    HttpCallOptions quick;
    quick.cluster_auth = options_.cluster_auth;
    quick.connect_timeout = quick.io_timeout = absl::Milliseconds(500);
    HttpPostJson(node->endpoint, "/internal/v1/cancel", node_api::ToJson(c), quick).IgnoreError();
  }
  if (reply.ok() && IsTransferFailure(st)) {
    a.failed_decode_nodes.push_back(a.decode_node.id);
  } else {
    a.failed_prefill_nodes.push_back(node->id);
  }
  // An unreachable node is retryable whatever its transport error was.
  if (!reply.ok() && !IsRetryable(st)) st = absl::UnavailableError(st.message());
  return Annotate(st, absl::StrCat("prefill on ", node->id));
}

absl::Status RouterService::AdmitAttempt(ActiveRequest& a) {
  if (registry_.UsableNodes(NodeRole::kPrefill).empty()) {
    return absl::UnavailableError("no usable prefill node; see the router's /ready");
  }
  a.route = MakeRouteRequest(a.req);
  while (true) {
    TANDEM_ASSIGN_OR_RETURN(a.reservation, Reserve(a));
    a.reserved = true;
    const absl::Status st = PrefillOnce(a);
    if (st.ok()) {
      a.StartRunning();
      return absl::OkStatus();
    }
    // Whatever failed, the reservation may have a partial or refused transfer in it: the next
    // attempt reserves afresh (on another decode node when the transfer failed).
    CancelBestEffort(a, /*prefill_too=*/false);
    a.reserved = false;
    const bool transfer = IsTransferFailure(st);
    if ((!IsRetryable(st) && !transfer) || a.retries >= options_.max_retries) {
      LOG(WARNING) << "req=" << a.req.request_id << " prefill failed after " << a.retries
                   << " retries: " << st;
      return ForClient(st);
    }
    ++a.retries;
    metrics_.CountRetry(transfer ? "transfer_failed" : "prefill_error");
    LOG(WARNING) << "req=" << a.req.request_id << " prefill failed, retrying: " << st;
  }
}

absl::StatusOr<std::shared_ptr<ActiveRequest>> RouterService::Admit(PreparedRequest req) {
  auto active = std::make_shared<ActiveRequest>(std::move(req), &metrics_);
  TANDEM_RETURN_IF_ERROR(AdmitAttempt(*active));
  return active;
}

int RouterService::Abandon(ActiveRequest& a) {
  if (a.body_started) return 0;
  a.body_started = true;
  VLOG(1) << "req=" << a.req.request_id << " client left before the stream started";
  CancelBestEffort(a, /*prefill_too=*/true);
  a.reserved = false;
  return 499;
}

void RouterService::CancelBestEffort(const ActiveRequest& a, bool prefill_too) {
  HttpCallOptions call;
  call.cluster_auth = options_.cluster_auth;
  call.connect_timeout = absl::Milliseconds(500);
  call.io_timeout = absl::Milliseconds(500);
  node_api::CancelRequest c;
  c.request_id = a.req.request_id;
  if (a.reserved) {
    c.reservation_id = a.reservation.target.reservation_id;
    HttpPostJson(a.decode_node.endpoint, "/internal/v1/cancel", node_api::ToJson(c), call)
        .IgnoreError();
  }
  if (prefill_too && !a.prefill_node.id.empty()) {
    c.reservation_id = 0;
    HttpPostJson(a.prefill_node.endpoint, "/internal/v1/cancel", node_api::ToJson(c), call)
        .IgnoreError();
  }
}

void RouterService::Finish(ActiveRequest& a) {
  const absl::Time end = absl::Now();
  const double e2e_s = absl::ToDoubleSeconds(end - a.req.accepted);
  const double ttft_s = absl::ToDoubleSeconds(a.first_token_at - a.req.accepted);
  metrics_.e2e->Labels({}).Observe(e2e_s);
  if (a.completion_tokens > 1) {
    metrics_.tpot->Labels({}).Observe((e2e_s - ttft_s) / static_cast<double>(a.completion_tokens - 1));
  }
  metrics_.prompt_tokens->Labels({}).Increment(static_cast<double>(a.req.prompt.size()));
  metrics_.generation_tokens->Labels({}).Increment(static_cast<double>(a.completion_tokens));
  metrics_.cached_prompt_tokens->Labels({}).Increment(static_cast<double>(a.prefill.cached_tokens));
}

namespace {

// The phase breakdown (ARCHITECTURE.md §2) in ms, from the router's clock and the nodes' replies.
Json TimingsMs(const ActiveRequest& a, absl::Time end) {
  const node_api::Timings& p = a.prefill.timings;
  const node_api::Timings& d = a.decode_timings;
  const bool decoded = a.decode_started_at != absl::InfinitePast();
  Json t;
  t["queue"] = a.router_queue_ms + p.queue;
  t["kv_load"] = p.kv_load;
  t["blend"] = p.blend;
  t["prefill"] = p.prefill;
  t["first_token"] = Ms(a.first_token_at - a.req.accepted);
  t["transfer"] = d.transfer > 0 ? d.transfer : p.transfer;
  t["decode_queue"] = d.decode_queue;
  t["decode"] = d.decode > 0 ? d.decode : decoded ? Ms(end - a.decode_started_at) : 0.0;
  t["e2e"] = Ms(end - a.req.accepted);
  return t;
}

std::string TandemJson(const ActiveRequest& a, const Json& timings) {
  Json j;
  j["request_id"] = a.req.request_id;
  j["prefill_node"] = a.prefill_node.node_id.empty() ? a.prefill_node.id : a.prefill_node.node_id;
  j["decode_node"] = a.decode_node.node_id.empty() ? a.decode_node.id : a.decode_node.node_id;
  j["timings_ms"] = timings;
  const node_api::BlendReport& blend = a.prefill.blend;
  j["kv"] = Json{
      {"cached_tokens", a.prefill.cached_tokens}, {"transfer_bytes", a.prefill.transfer_bytes},
      {"reused_tokens", blend.reused_tokens},     {"recomputed_tokens", blend.recomputed_tokens},
      {"computed_tokens", blend.computed_tokens}, {"document_hits", blend.document_hits},
      {"document_misses", blend.document_misses}};
  j["attention"] = Json{{"method", a.prefill.attention_method},
                        {"density", a.prefill.attention_density}};
  // The sampling the nodes ran with, defaults filled in (the seed stays the client's business).
  j["sampling"] = Json{{"temperature", a.req.sampling.temperature},
                       {"top_p", a.req.sampling.top_p},
                       {"top_k", a.req.sampling.top_k},
                       {"max_tokens", a.req.api.effective_max_tokens}};
  j["retries"] = a.retries;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void ObservePhases(RouterMetrics& m, const Json& timings) {
  for (const auto& [phase, ms] : timings.items()) {
    if (phase == "e2e") continue;  // its own histogram
    m.ObservePhase(phase, ms.get<double>() / 1000.0);
  }
}

ResponseHeader HeaderFor(const PreparedRequest& r, std::string_view model_name) {
  ResponseHeader h;
  h.id = absl::StrCat(r.api.endpoint == Endpoint::kChatCompletions ? "chatcmpl-" : "cmpl-",
                      r.request_id);
  h.created = absl::ToUnixSeconds(r.accepted);
  h.model = std::string(model_name);
  return h;
}

Usage UsageOf(const ActiveRequest& a) {
  Usage u;
  u.prompt_tokens = static_cast<int64_t>(a.req.prompt.size());
  u.completion_tokens = a.completion_tokens;
  u.cached_tokens = a.prefill.cached_tokens;
  return u;
}

ApiError UpstreamError(const absl::Status& st) {
  ApiError e;
  e.http_status = 502;
  e.message = absl::StrCat("the generation failed after it started: ", st.message());
  e.type = "server_error";
  e.code = "upstream_error";
  return e;
}

}  // namespace

void RouterService::ObserveTtft(ActiveRequest& a) {
  if (a.ttft_observed) return;
  a.ttft_observed = true;
  metrics_.ttft->Labels({}).Observe(absl::ToDoubleSeconds(a.first_token_at - a.req.accepted));
}

RelayResult RouterService::DecodeWithRetry(ActiveRequest& a, IncrementalDetokenizer& detok,
                                           const std::function<TextVerdict(const std::string&)>&
                                               on_text) {
  while (true) {
    RelayResult relay = RelayDecode(a, model_, detok, on_text, options_.decode_timeout,
                                    options_.control_timeout, metrics_, options_.cluster_auth);
    if (relay.stream_broke) registry_.MarkDown(a.decode_node.id, relay.error);
    if (relay.kind == RelayResult::Kind::kDone) return relay;
    // Stopped early, client gone or failed: the decode node must stop and free the KV.
    CancelBestEffort(a, relay.kind == RelayResult::Kind::kClientGone);
    a.reserved = false;
    if (relay.kind != RelayResult::Kind::kFailed) return relay;
    // No decoded token reached anyone yet, so another pair of nodes can take over: same prompt
    // and random stream give the same first token, which the client already has. Whatever the
    // decode node said (an expired reservation, a failed transfer, a broken connection), a fresh
    // reservation elsewhere is the remedy; the retry limit bounds it.
    if (relay.decode_tokens > 0 || a.retries >= options_.max_retries) return relay;
    ++a.retries;
    metrics_.CountRetry("decode_error");
    LOG(WARNING) << "req=" << a.req.request_id << " decode on " << a.decode_node.id
                 << " failed before its first decoded token, retrying: " << relay.error;
    a.failed_decode_nodes.push_back(a.decode_node.id);
    const int32_t first = a.prefill.first_token;
    if (absl::Status st = AdmitAttempt(a); !st.ok()) {
      relay.error = Annotate(st, "admitting again after a failed decode");
      return relay;
    }
    if (a.prefill.first_token != first) {
      CancelBestEffort(a, /*prefill_too=*/false);
      a.reserved = false;
      relay.error = absl::InternalError(absl::StrCat(
          "the retried prefill produced first token ", a.prefill.first_token, ", not ", first));
      return relay;
    }
  }
}

int RouterService::Stream(ActiveRequest& a, const std::function<bool(std::string_view)>& write) {
  a.body_started = true;
  CompletionStream stream(a.req.api.endpoint, HeaderFor(a.req, options_.served_model_name),
                          a.req.api.stop, a.req.api.include_usage);
  IncrementalDetokenizer detok(model_);
  bool client_gone = false;
  auto emit = [&](const std::string& bytes) {
    if (!client_gone && !bytes.empty() && !write(bytes)) client_gone = true;
    return !client_gone;
  };

  const int32_t first = a.prefill.first_token;
  const bool first_is_eog = !a.req.api.ignore_eos && model_.IsEndOfGeneration(first);
  if (first_is_eog) {
    a.finish_reason = "stop";
    emit(stream.OnText(""));
  } else {
    a.completion_tokens = 1;
    emit(stream.OnText(detok.Push(first)));
  }
  a.first_token_at = a.last_token_at = absl::Now();
  ObserveTtft(a);

  const bool decode = !first_is_eog && !client_gone && !stream.stopped() &&
                      a.req.api.effective_max_tokens > 1;
  RelayResult relay;
  relay.kind = RelayResult::Kind::kDone;
  if (decode) {
    relay = DecodeWithRetry(a, detok, [&](const std::string& text) {
      if (!emit(stream.OnText(text))) return TextVerdict::kClientGone;
      return stream.stopped() ? TextVerdict::kStop : TextVerdict::kContinue;
    });
  } else {
    if (stream.stopped()) a.finish_reason = "stop";
    // The reservation was never claimed by a decode call.
    CancelBestEffort(a, client_gone);
    a.reserved = false;
  }

  int code = 200;
  const absl::Time end = absl::Now();
  const Json timings = TimingsMs(a, end);
  switch (relay.kind) {
    case RelayResult::Kind::kDone:
    case RelayResult::Kind::kStopped:
      emit(stream.OnText(detok.Flush()));
      emit(stream.Finish(a.finish_reason, UsageOf(a), TandemJson(a, timings)));
      break;
    case RelayResult::Kind::kClientGone:
      code = 499;
      break;
    case RelayResult::Kind::kFailed:
      LOG(WARNING) << "req=" << a.req.request_id << " decode stream on " << a.decode_node.id
                   << " failed after the stream started: " << relay.error;
      emit(stream.Fail(UpstreamError(relay.error)));
      code = 502;
      break;
  }
  if (client_gone) code = 499;
  if (code == 200) ObservePhases(metrics_, timings);
  Finish(a);
  return code;
}

HttpResult RouterService::Complete(PreparedRequest req) {
  ActiveRequest a(std::move(req), &metrics_);
  if (absl::Status admitted = AdmitAttempt(a); !admitted.ok()) {
    ApiError e = ApiErrorFromStatus(admitted);
    return HttpResult{e.http_status, e.Body(), e.http_status == 503 ? "1" : ""};
  }
  StopMatcher stop(a.req.api.stop);
  IncrementalDetokenizer detok(model_);
  std::string text;
  const int32_t first = a.prefill.first_token;
  const bool first_is_eog = !a.req.api.ignore_eos && model_.IsEndOfGeneration(first);
  if (first_is_eog) {
    a.finish_reason = "stop";
  } else {
    a.completion_tokens = 1;
    StopMatcher::Result r = stop.Feed(detok.Push(first));
    text += r.emit;
  }
  a.first_token_at = a.last_token_at = absl::Now();
  ObserveTtft(a);
  const bool decode = !first_is_eog && !stop.stopped() && a.req.api.effective_max_tokens > 1;
  RelayResult relay;
  relay.kind = RelayResult::Kind::kDone;
  if (decode) {
    relay = DecodeWithRetry(a, detok, [&](const std::string& t) {
      StopMatcher::Result r = stop.Feed(t);
      text += r.emit;
      return r.stopped ? TextVerdict::kStop : TextVerdict::kContinue;
    });
  } else {
    CancelBestEffort(a, false);  // the reservation was never claimed by a decode call
    a.reserved = false;
  }
  if (relay.kind == RelayResult::Kind::kFailed) {
    LOG(WARNING) << "req=" << a.req.request_id << " decode stream on " << a.decode_node.id
                 << " failed: " << relay.error;
    Finish(a);
    // Tokens were decoded: the answer is truncated, 502. None were: nothing is lost, and the
    // error is the node's as any admission error (503 when another try may work).
    ApiError e = relay.decode_tokens > 0 ? UpstreamError(relay.error)
                                         : ApiErrorFromStatus(ForClient(relay.error));
    return HttpResult{e.http_status, e.Body(), e.http_status == 503 ? "1" : ""};
  }
  if (!stop.stopped()) {
    StopMatcher::Result r = stop.Feed(detok.Flush());
    text += r.emit;
    if (!r.stopped) text += stop.Flush();
  }
  if (stop.stopped()) a.finish_reason = "stop";
  const Json timings = TimingsMs(a, absl::Now());
  ObservePhases(metrics_, timings);
  Finish(a);
  Completion c;
  c.text = std::move(text);
  c.finish_reason = a.finish_reason;
  c.usage = UsageOf(a);
  c.tandem_json = TandemJson(a, timings);
  return HttpResult{200,
                    RenderCompletion(a.req.api.endpoint,
                                     HeaderFor(a.req, options_.served_model_name), c),
                    ""};
}

}  // namespace tandem::router
