#include "decode_node/decode_service.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/model_format/model_config.h"
#include "common/status.h"
#include "glog/logging.h"
#include "runtime/request_checks.h"
#include "runtime/sampling.h"

namespace tandem::decode {
namespace {

node_api::DecodeEvent Done(const char* reason, int64_t completion_tokens, absl::Time ready_at) {
  node_api::DecodeEvent e;
  e.kind = node_api::DecodeEvent::Kind::kDone;
  e.finish_reason = reason;
  e.completion_tokens = completion_tokens;
  e.timings.decode_queue =
      absl::ToDoubleMilliseconds(std::max(absl::Now() - ready_at, absl::ZeroDuration()));
  return e;
}

}  // namespace

DecodeService::DecodeService(const DecodeOptions& options, MetricsRegistry* metrics,
                             const ReservationLimits& limits)
    : options_(options),
      metrics_(*metrics, options.transport),
      reservations_(limits, &metrics_) {}

DecodeService::~DecodeService() { Shutdown(); }

absl::StatusOr<std::unique_ptr<DecodeService>> DecodeService::Create(const DecodeOptions& options,
                                                                     MetricsRegistry* metrics) {
  TANDEM_RETURN_IF_ERROR(options.Validate());
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<runtime::LoadedModel> model,
                          runtime::LoadedModel::Load(options.model));
  TANDEM_RETURN_IF_ERROR(model->Identify());
  ReservationLimits limits;
  limits.max_seqs = options.model.kv.max_seqs;
  // Reservations count the cache's allocation units, so an admitted request's room always fits.
  limits.page_tokens = model->kv_cache().allocation_tokens();
  limits.capacity_pages = model->kv_cache().capacity_tokens() / limits.page_tokens;
  limits.context_length = model->config().context_length;
  limits.ttl = options.reservation_ttl;

  auto service = std::unique_ptr<DecodeService>(new DecodeService(options, metrics, limits));
  service->model_ = std::move(model);
  service->batcher_ = std::make_unique<Batcher>(service->model_->runner(),
                                                service->model_->kv_cache(), &service->metrics_);

  TANDEM_ASSIGN_OR_RETURN(service->transport_,
                          kv::NewTransport(options.transport, service->MakeTransportOptions()));
  kv::ListenOptions listen;
  listen.host = options.data_host;
  listen.port = static_cast<uint16_t>(options.data_port);
  listen.format = service->model_->kv_format();
  TANDEM_ASSIGN_OR_RETURN(service->data_port_,
                          service->transport_->Listen(listen, &service->reservations_));
  LOG(INFO) << "node=" << options.node_id << " decode service up: model "
            << options.model.model_path << ", " << options.model.kv.max_seqs << " sequences, "
            << service->model_->kv_cache().capacity_tokens() << " KV tokens ("
            << service->model_->kv_cache().layout() << ", " << service->model_->kv_cache().bytes()
            << " bytes), " << options.transport << " data plane on " << options.data_host << ":"
            << service->data_port_;
  return service;
}

void DecodeService::Shutdown() {
  // First, so HTTP threads waiting for a transfer return now and http.Stop() need not wait for
  // their decode deadlines.
  reservations_.Close();
  if (transport_ != nullptr) {
    if (absl::Status s = transport_->Shutdown(absl::Seconds(1)); !s.ok()) {
      LOG(WARNING) << "node=" << options_.node_id << " data plane shutdown: " << s;
    }
    transport_.reset();
  }
  // The batcher object stays until the destructor: an HTTP call still in flight may Submit() and
  // gets an error stream rather than a dangling engine.
  if (batcher_ != nullptr) batcher_->Stop();
}

kv::TransportOptions DecodeService::MakeTransportOptions() {
  kv::TransportOptions o;
  o.node_id = options_.node_id;
  o.epoch = options_.epoch;
  o.secret = options_.cluster_secret;
  o.auth_refusals = metrics_.auth_refusals();
  return o;
}

absl::StatusOr<node_api::ReserveReply> DecodeService::Reserve(
    const node_api::ReserveRequest& req) {
  TANDEM_ASSIGN_OR_RETURN(Reserved r, reservations_.Reserve(req));
  node_api::ReserveReply reply;
  reply.target.transport = options_.transport;
  reply.target.host = options_.advertise_host;
  reply.target.port = data_port_;
  reply.target.node_id = options_.node_id;
  reply.target.epoch = options_.epoch;
  reply.target.reservation_id = r.id;
  reply.target.transfer_token = r.transfer_token;
  reply.expires_ms = absl::ToUnixMillis(r.expires);
  return reply;
}

absl::StatusOr<std::unique_ptr<DecodeCall>> DecodeService::StartDecode(
    const node_api::DecodeRequest& req) {
  const format::ModelConfig& config = model_->config();
  TANDEM_RETURN_IF_ERROR(runtime::CheckTokenId(req.first_token, config, "first_token"));
  if (req.max_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_tokens ", req.max_tokens, " must be >= 1 (the first token counts)"));
  }
  TANDEM_RETURN_IF_ERROR(runtime::CheckSampling(req.sampling, config, "sampling."));
  TANDEM_ASSIGN_OR_RETURN(Claim claim, reservations_.ClaimForDecode(req.reservation_id));
  ReservationLease lease = reservations_.Lease(claim.id);
  auto call = std::unique_ptr<DecodeCall>(new DecodeCall(req, std::move(claim), std::move(lease)));
  if (req.max_tokens > call->claim_.max_tokens) {
    return absl::InvalidArgumentError(absl::StrCat("max_tokens ", req.max_tokens,
                                                   " exceeds the ", call->claim_.max_tokens,
                                                   " reserved by reservation ", req.reservation_id));
  }
  return call;
}

void DecodeService::RunDecode(DecodeCall& call, const DecodeEventSink& sink) {
  const node_api::DecodeRequest& req = call.request_;
  const absl::Time deadline = req.deadline_ms > 0 ? absl::FromUnixMillis(req.deadline_ms)
                                                  : absl::Now() + options_.reservation_ttl;
  // Every terminal event is written after the room is freed, so a router that saw it may reserve
  // here again at once.
  auto release = [&call] { call.lease_.Release(); };
  absl::StatusOr<ReceivedKv> kv = reservations_.AwaitTransfer(call.claim_.id, deadline);
  if (!kv.ok()) {
    absl::Status s = kv.status();
    if (s.code() == absl::StatusCode::kDeadlineExceeded) metrics_.TransferFailed(s);
    // A transfer that failed or never came is worth retrying elsewhere (503 + retryable): the
    // router resends the held KV to another decode node.
    if (s.code() == absl::StatusCode::kDeadlineExceeded ||
        s.code() == absl::StatusCode::kNotFound) {
      s = absl::UnavailableError(s.message());
    }
    if (s.code() == absl::StatusCode::kCancelled) {
      VLOG(1) << "req=" << req.request_id << " cancelled before its KV arrived";
    } else {
      LOG(WARNING) << "req=" << req.request_id << " decode without KV: " << s;
    }
    release();
    sink(ErrorEvent(s));
    return;
  }
  if (!req.transfer_id.empty() && req.transfer_id != kv->transfer_id) {
    // The KV here is not what the router's prefill reply described (a stale transfer from an
    // earlier attempt, or a mixed-up reservation): decoding it would continue some other prefill.
    const absl::Status s = absl::UnavailableError(absl::StrCat(
        "reservation ", call.claim_.id, " received KV transfer ", kv->transfer_id,
        ", the decode request names transfer ", req.transfer_id));
    LOG(WARNING) << "req=" << req.request_id << " " << s;
    release();
    sink(ErrorEvent(s));
    return;
  }
  const std::vector<int32_t>& eog = model_->config().eog_token_ids;
  if (!req.ignore_eos && std::find(eog.begin(), eog.end(), req.first_token) != eog.end()) {
    release();
    sink(Done("stop", 0, kv->completed_at));
    return;
  }
  if (req.max_tokens <= 1) {
    release();
    sink(Done("length", 1, kv->completed_at));
    return;
  }
  DecodeJob job;
  job.request_id = req.request_id;
  job.prompt_len = kv->prompt_len;
  job.blocks = std::move(kv->blocks);
  job.first_token = req.first_token;
  job.sampling = runtime::ToSamplingConfig(req.sampling);
  job.rng_state = req.sampling.rng_state;
  job.max_tokens = req.max_tokens;
  job.ignore_eos = req.ignore_eos;
  job.cancelled = call.claim_.cancelled;
  job.ready_at = kv->completed_at;
  reservations_.MarkRunning(call.claim_.id);
  job.lease = std::move(call.lease_);  // the engine releases it when the sequence leaves the batch
  std::shared_ptr<DecodeStream> stream = batcher_->Submit(std::move(job));

  std::vector<node_api::DecodeEvent> events;
  bool client_gone = false;
  while (stream->Pop(&events)) {
    for (const node_api::DecodeEvent& e : events) {
      if (!client_gone && !sink(e)) {
        client_gone = true;
        VLOG(1) << "req=" << req.request_id << " client gone; cancelling the sequence";
        call.claim_.cancelled->store(true);
      }
    }
    events.clear();
  }
}

absl::Status DecodeService::Decode(const node_api::DecodeRequest& req,
                                   const DecodeEventSink& sink) {
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<DecodeCall> call, StartDecode(req));
  RunDecode(*call, sink);
  return absl::OkStatus();
}

absl::Status DecodeService::Cancel(const node_api::CancelRequest& req) {
  return reservations_.Cancel(req.reservation_id);
}

node_api::NodeStatus DecodeService::Status(uint64_t /*since*/) {
  node_api::NodeStatus st;
  st.node_id = options_.node_id;
  st.role = "decode";
  st.epoch = options_.epoch;
  st.ready = !reservations_.draining();
  st.kv_format = model_->kv_format_hex();
  st.vocab_fingerprint = model_->vocab_fingerprint_hex();
  const ReservationLoad load = reservations_.Load();
  st.load.queued_tokens = load.queued_tokens;
  st.load.running = load.running;
  st.load.waiting = load.waiting;
  st.load.kv_free_ratio = load.kv_free_ratio;
  return st;
}

}  // namespace tandem::decode
