#include "prefill_node/prefill_service.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "common/status.h"
#include "glog/logging.h"
#include "runtime/blend.h"
#include "runtime/block_io.h"
#include "runtime/document_kv.h"
#include "runtime/sampling.h"

namespace tandem::prefill {
namespace {

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

absl::Status Bad(BadField* bad, std::string param, std::string message) {
  if (bad != nullptr) *bad = BadField{param, ""};
  return absl::InvalidArgumentError(absl::StrCat(param, ": ", message));
}

// The request's completion, set once by the worker (or by the scheduler when it drops the job)
// and awaited by the request's thread.
struct Outcome {
  absl::Mutex mu;
  bool done ABSL_GUARDED_BY(mu) = false;
  absl::Status status ABSL_GUARDED_BY(mu);
  void Set(absl::Status s) {
    absl::MutexLock lock(&mu);
    status = std::move(s);
    done = true;
  }
};

// The tier lookups of a queued request, started once the scheduler took it: set by the request's
// thread right after Submit, awaited by the worker (which may pick the job up first).
struct PendingLookups {
  absl::Mutex mu;
  bool set ABSL_GUARDED_BY(mu) = false;
  std::shared_future<std::vector<kv::Lookup>> future ABSL_GUARDED_BY(mu);
  void Set(std::shared_future<std::vector<kv::Lookup>> f) {
    absl::MutexLock lock(&mu);
    future = std::move(f);
    set = true;
  }
  std::shared_future<std::vector<kv::Lookup>> Wait() {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(&set));
    return future;
  }
};

}  // namespace

PrefillService::PrefillService(const PrefillOptions& options, MetricsRegistry& metrics)
    : options_(options), metrics_(metrics) {}

absl::StatusOr<std::unique_ptr<PrefillService>> PrefillService::Create(
    const PrefillOptions& options, MetricsRegistry& metrics) {
  TANDEM_RETURN_IF_ERROR(options.Validate());
  std::unique_ptr<PrefillService> s(new PrefillService(options, metrics));
  TANDEM_ASSIGN_OR_RETURN(s->model_, runtime::LoadedModel::Load(options.model));
  TANDEM_RETURN_IF_ERROR(s->model_->Identify());
  // The blend defaults against this model (a check layer past its last layer), at start: checked
  // only per request, a bad flag would fail every request of a node that reports ready.
  TANDEM_RETURN_IF_ERROR(options.blend.Validate(s->model_->config()));
  TANDEM_ASSIGN_OR_RETURN(
      s->store_, kv::TieredKvStore::Create(options.kv_store, s->model_->kv_format(), metrics));

  PrefillMetrics* m = &s->metrics_;
  s->scheduler_ = std::make_unique<PrefillScheduler>(options.max_waiting,
                                                     [m](const PrefillScheduler::Load& load) {
                                                       m->SetWaiting(load.waiting);
                                                       m->SetRunning(load.running);
                                                     });
  LOG(INFO) << "node=" << options.node_id << " prefill service ready: model "
            << options.model.model_path << ", backend " << s->model_->backend().Name() << ", kv "
            << s->model_->kv_format().DebugString();
  return s;
}

PrefillService::~PrefillService() {
  scheduler_.reset();  // drops queued requests, finishes the running one, joins the worker
  absl::MutexLock lock(&transports_mu_);
  for (auto& [name, transport] : transports_) {
    transport->Shutdown(absl::Seconds(1)).IgnoreError();
  }
}

absl::Status PrefillService::ValidateRequest(const node_api::PrefillRequest& request,
                                             BadField* bad) const {
  const format::ModelConfig& config = model_->config();
  // Room for one generated token: the first one, sampled here.
  TANDEM_RETURN_IF_ERROR(runtime::CheckPrompt(request.tokens, 1, config, "tokens", bad));
  if (!SparseFor(request.sparse_prefill).ok()) {
    return Bad(bad, "sparse_prefill",
               absl::StrCat("'", request.sparse_prefill,
                            "' is not one of \"\" (node default), dense, sale, power"));
  }
  TANDEM_RETURN_IF_ERROR(runtime::CheckSampling(request.sampling, config, "sampling.", bad));
  int32_t next = 0;
  for (size_t i = 0; i < request.documents.size(); ++i) {
    const node_api::DocumentSpan& d = request.documents[i];
    if (d.begin < next || d.end <= d.begin || d.end > static_cast<int32_t>(request.tokens.size())) {
      return Bad(bad, absl::StrCat("documents[", i, "]"),
                 absl::StrCat("[", d.begin, ", ", d.end,
                              ") is empty, overlaps the previous "
                              "document or ends past the ",
                              request.tokens.size(), " tokens"));
    }
    next = d.end;
  }
  if (const absl::StatusOr<runtime::BlendOptions> blend = BlendFor(request.blend); !blend.ok()) {
    return Bad(bad, "blend", std::string(blend.status().message()));
  }
  if (request.target.host.empty()) return Bad(bad, "target.host", "empty");
  if (request.target.port <= 0 || request.target.port > 65535) {
    return Bad(bad, "target.port", absl::StrCat(request.target.port, " is outside 1..65535"));
  }
  if (request.target.transport.empty()) return Bad(bad, "target.transport", "empty");
  return absl::OkStatus();
}

absl::StatusOr<kernels::SparseConfig> PrefillService::SparseFor(std::string_view method) const {
  kernels::SparseConfig c = options_.model.runner.prefill_attention;
  if (method.empty()) return c;
  const std::optional<kernels::SparseMethod> parsed = kernels::ParseSparseMethod(method);
  if (!parsed.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat("unknown sparse_prefill '", AV(method), "'"));
  }
  c.method = *parsed;
  return c;
}

absl::StatusOr<runtime::BlendOptions> PrefillService::BlendFor(
    const node_api::BlendSettings& settings) const {
  runtime::BlendOptions o = options_.blend;
  if (settings.recompute_ratio >= 0) o.recompute_ratio = settings.recompute_ratio;
  if (settings.check_layer >= 0) o.check_layer = settings.check_layer;
  if (settings.min_blend_tokens >= 0) o.min_blend_tokens = settings.min_blend_tokens;
  if (!settings.deviation.empty()) {
    const std::optional<runtime::BlendDeviation> d =
        runtime::ParseBlendDeviation(settings.deviation);
    if (!d.has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat("deviation '", settings.deviation, "' is not value or key"));
    }
    o.deviation = *d;
  }
  TANDEM_RETURN_IF_ERROR(o.Validate(model_->config()));
  return o;
}

absl::StatusOr<node_api::PrefillReply> PrefillService::Prefill(
    const node_api::PrefillRequest& request) {
  TANDEM_RETURN_IF_ERROR(ValidateRequest(request));
  if (draining_.load()) return absl::UnavailableError("prefill node draining");
  // Reject an unknown transport name before queueing, so a bad target costs no compute.
  TANDEM_RETURN_IF_ERROR(TransportFor(request.target.transport).status());
  {
    absl::MutexLock lock(&in_flight_mu_);
    ++in_flight_;
  }
  absl::Cleanup done = [this] {
    absl::MutexLock lock(&in_flight_mu_);
    --in_flight_;
  };

  const absl::Time deadline =
      request.deadline_ms > 0 ? absl::FromUnixMillis(request.deadline_ms) : absl::InfiniteFuture();
  auto lookups = std::make_shared<PendingLookups>();
  auto outcome = std::make_shared<Outcome>();
  auto computed = std::make_shared<Computed>();
  TANDEM_ASSIGN_OR_RETURN(
      uint64_t job, scheduler_->Submit(
                        request.request_id, static_cast<int64_t>(request.tokens.size()), deadline,
                        [this, &request, lookups, outcome, computed](absl::Duration queued) {
                          absl::StatusOr<Computed> r = Compute(request, lookups->Wait());
                          if (r.ok()) {
                            *computed = *std::move(r);
                            computed->queue_ms = Ms(queued);
                          }
                          outcome->Set(r.status());
                        },
                        [outcome](const absl::Status& reason) { outcome->Set(reason); }));
  // Admitted: the tier reads start now, on the store's prefetch threads, so they overlap the queue
  // wait (and the compute of the requests ahead) instead of adding to this request's prefill. A
  // request the queue refused costs no tier read.
  lookups->Set(PrefetchReusable(request.tokens, deadline));

  // Wait while queued at most until the deadline; a running job is never abandoned (its compute
  // is bounded and `request` must outlive it).
  {
    absl::MutexLock lock(&outcome->mu);
    const absl::Condition is_done(&outcome->done);
    if (!outcome->mu.AwaitWithDeadline(is_done, deadline)) {
      outcome->mu.Unlock();
      scheduler_->ExpireIfQueued(job);
      outcome->mu.Lock();
      outcome->mu.Await(is_done);
    }
    TANDEM_RETURN_IF_ERROR(
        Annotate(outcome->status, absl::StrCat("prefill of ", request.request_id)));
  }

  node_api::PrefillReply reply;
  const absl::Time ship_start = absl::Now();
  TANDEM_RETURN_IF_ERROR(Ship(request, *computed, &reply.transfer_id, &reply.transfer_bytes));
  reply.timings.transfer = Ms(absl::Now() - ship_start);
  reply.first_token = computed->first_token;
  reply.rng_state = computed->rng_state;
  reply.prompt_tokens = static_cast<int64_t>(request.tokens.size());
  reply.cached_tokens = computed->cached_tokens;
  reply.attention_method = computed->attention_method;
  reply.attention_density = computed->attention_density;
  reply.timings.queue = computed->queue_ms;
  reply.timings.kv_load = computed->kv_load_ms;
  reply.timings.blend = computed->blend_ms;
  reply.blend = computed->blend;
  reply.timings.prefill = computed->prefill_ms;
  VLOG(1) << "req=" << request.request_id << " node=" << options_.node_id << " prompt "
          << reply.prompt_tokens << " cached " << reply.cached_tokens << " first token "
          << reply.first_token << " transfer " << reply.transfer_id;
  return reply;
}

std::shared_future<std::vector<kv::Lookup>> PrefillService::PrefetchReusable(
    const std::vector<int32_t>& tokens, absl::Time deadline) {
  // The longest reusable prefix is made of whole blocks short of the block holding the last
  // prompt token: its logits are needed, and only a forward over it produces them.
  const int32_t bt = model_->kv_format().block_tokens;
  const size_t reusable = static_cast<size_t>((static_cast<int32_t>(tokens.size()) - 1) / bt);
  if (reusable == 0) return {};
  std::vector<BlockKey> keys =
      ChainKeys(model_->kv_format(),
                absl::MakeConstSpan(tokens).subspan(0, reusable * static_cast<size_t>(bt)));
  return store_->Prefetch(std::move(keys),
                          std::min(deadline, absl::Now() + options_.transfer_timeout));
}

absl::StatusOr<PrefillService::Computed> PrefillService::Compute(
    const node_api::PrefillRequest& request,
    const std::shared_future<std::vector<kv::Lookup>>& lookups) {
  const std::vector<int32_t>& tokens = request.tokens;
  const int32_t n = static_cast<int32_t>(tokens.size());
  const int32_t bt = model_->kv_format().block_tokens;
  TANDEM_ASSIGN_OR_RETURN(kernels::SparseConfig sparse, SparseFor(request.sparse_prefill));
  Computed out;

  // KV reuse: the prefix of whole blocks the prefetch found, up to the first miss; then the
  // memory tier again from there, for blocks that requests ahead in the queue stored after the
  // prefetch looked (a burst sharing a cold prefix computes it once).
  absl::Time start = absl::Now();
  std::vector<kv::KvBlock> hits;
  const size_t reusable = static_cast<size_t>((n - 1) / bt);
  auto usable = [bt](const kv::KvBlock& b, size_t index) {
    return b.num_tokens() == bt && b.pos_begin() == static_cast<int32_t>(index) * bt;
  };
  if (lookups.valid()) {
    for (const kv::Lookup& found : lookups.get()) {
      if (!found.block.has_value() || !usable(*found.block, hits.size())) break;
      hits.push_back(*found.block);
    }
  }
  if (hits.size() < reusable && store_->tier(kv::TierId::kMemory) != nullptr) {
    const std::vector<BlockKey> keys =
        ChainKeys(model_->kv_format(),
                  absl::MakeConstSpan(tokens).subspan(0, reusable * static_cast<size_t>(bt)));
    kv::KvTier* memory = store_->tier(kv::TierId::kMemory);
    while (hits.size() < reusable) {
      absl::StatusOr<kv::KvBlock> b = memory->Get(keys[hits.size()], absl::InfiniteFuture());
      if (!b.ok() || !usable(*b, hits.size())) break;
      hits.push_back(*std::move(b));
    }
  }
  const int32_t hit_tokens = static_cast<int32_t>(hits.size()) * bt;

  model::KvCache& cache = model_->kv_cache();
  TANDEM_ASSIGN_OR_RETURN(model::SeqId seq, cache.AddSequence());
  absl::Cleanup release = [&cache, seq] { cache.RemoveSequence(seq); };
  TANDEM_RETURN_IF_ERROR(runtime::ImportBlocks(cache, seq, hits));
  // Documents' position-independent KV (CacheBlend): looked up by their own keys, computed and
  // stored when missing.
  std::vector<runtime::BlendDocument> documents;
  if (request.blend.enabled && !request.documents.empty()) {
    const absl::Time deadline = request.deadline_ms > 0 ? absl::FromUnixMillis(request.deadline_ms)
                                                        : absl::Now() + options_.transfer_timeout;
    TANDEM_ASSIGN_OR_RETURN(documents, DocumentsFor(request, hit_tokens, deadline, out.blend));
  }
  out.kv_load_ms = Ms(absl::Now() - start);
  out.cached_tokens = hit_tokens;

  // The rest of the prompt and the first sample, as runtime::Generate does them, or blended.
  start = absl::Now();
  model::Logits logits;
  int32_t exact_end = n;  // KV past this position is blended: an approximation, never stored
  if (!documents.empty()) {
    TANDEM_ASSIGN_OR_RETURN(const runtime::BlendOptions blend, BlendFor(request.blend));
    runtime::BlendInput in;
    in.seq = seq;
    in.tokens = tokens;
    in.cached_prefix = hit_tokens;
    in.documents = documents;
    TANDEM_ASSIGN_OR_RETURN(runtime::BlendResult blended,
                            runtime::Blend(model_->runner(), cache, in, blend));
    logits = std::move(blended.logits);
    const runtime::BlendStats& stats = blended.stats;
    out.blend.reused_tokens = stats.reused_tokens;
    out.blend.recomputed_tokens = stats.recomputed_tokens;
    out.blend.computed_tokens = stats.computed_tokens;
    out.blend_ms = Ms(absl::Now() - start);
    metrics_.Blend(stats.reused_tokens, stats.recomputed_tokens, stats.computed_tokens,
                   out.blend.document_hits, out.blend.document_misses);
    out.cached_tokens += stats.reused_tokens - stats.recomputed_tokens;
    if (stats.blended && blend.recompute_ratio < 1.0) {
      exact_end = documents[stats.exact_tokens > 0 ? 1 : 0].begin;
    }
  } else {
    model::ForwardBatch batch;
    batch.Add(seq, std::vector<int32_t>(tokens.begin() + hit_tokens, tokens.end()), hit_tokens,
              /*want_last_logits=*/true);
    batch.prefill_attention = sparse;
    TANDEM_ASSIGN_OR_RETURN(logits, model_->runner().Forward(batch, cache));
  }
  uint64_t rng = request.sampling.rng_state;
  TANDEM_ASSIGN_OR_RETURN(out.first_token,
                          runtime::SampleRow(model_->backend(), logits.values, 0,
                                             runtime::ToSamplingConfig(request.sampling), rng));
  out.rng_state = rng;
  out.attention_method = std::string(kernels::SparseMethodName(logits.attention.method));
  out.attention_density = logits.attention.density();
  metrics_.Attention(out.attention_method, out.attention_density,
                     logits.attention.timed
                         ? std::optional<double>(logits.attention.attention_seconds)
                         : std::nullopt);
  metrics_.Tokens(n - static_cast<int32_t>(out.cached_tokens),
                  static_cast<int32_t>(out.cached_tokens));

  // Export: the reused blocks as they came, the computed ones out of the cache.
  const KvFormat& format = model_->kv_format();
  const BlockKey parent = hits.empty() ? format.Root() : hits.back().key();
  TANDEM_ASSIGN_OR_RETURN(
      std::vector<kv::KvBlock> computed,
      runtime::ExportBlocks(cache, seq, format, tokens, static_cast<int32_t>(hits.size()), parent));
  if (request.store_kv) {
    for (const kv::KvBlock& b : computed) {
      if (b.num_tokens() == bt && b.pos_begin() + bt <= exact_end) store_->PutAsync(b);
    }
  }
  out.blocks = std::move(hits);
  out.blocks.insert(out.blocks.end(), std::make_move_iterator(computed.begin()),
                    std::make_move_iterator(computed.end()));
  out.prefill_ms = Ms(absl::Now() - start);
  return out;
}

absl::StatusOr<std::vector<runtime::BlendDocument>> PrefillService::DocumentsFor(
    const node_api::PrefillRequest& request, int32_t prefix, absl::Time deadline,
    node_api::BlendReport& report) {
  const KvFormat& format = model_->kv_format();
  const std::vector<int32_t> preamble = runtime::DocumentPreamble(model_->config());
  std::vector<runtime::BlendDocument> out;
  for (const node_api::DocumentSpan& span : request.documents) {
    if (span.begin < prefix) continue;  // within the reused prefix: exact already, or cut by it
    const absl::Span<const int32_t> tokens =
        absl::MakeConstSpan(request.tokens)
            .subspan(static_cast<size_t>(span.begin), static_cast<size_t>(span.end - span.begin));
    runtime::BlendDocument doc;
    doc.begin = span.begin;
    for (const kv::Lookup& found :
         store_->GetMany(DocumentKeys(format, preamble, tokens), deadline)) {
      if (!found.block.has_value()) break;
      doc.blocks.push_back(*found.block);
    }
    if (!runtime::CheckDocumentBlocks(doc.blocks, tokens).ok()) {
      ++report.document_misses;
      TANDEM_ASSIGN_OR_RETURN(
          doc.blocks, runtime::ComputeDocumentBlocks(model_->runner(), model_->kv_cache(), format,
                                                     preamble, tokens));
      if (request.store_kv) {
        for (const kv::KvBlock& b : doc.blocks) store_->PutAsync(b);
      }
    } else {
      ++report.document_hits;
    }
    out.push_back(std::move(doc));
  }
  return out;
}

kv::TransportOptions PrefillService::MakeTransportOptions() const {
  kv::TransportOptions o;
  o.node_id = options_.node_id;
  o.epoch = options_.epoch;
  o.secret = options_.cluster_secret;
  return o;
}

absl::StatusOr<kv::Transport*> PrefillService::TransportFor(const std::string& name) {
  absl::MutexLock lock(&transports_mu_);
  auto it = transports_.find(name);
  if (it != transports_.end()) return it->second.get();
  absl::StatusOr<std::unique_ptr<kv::Transport>> t = kv::NewTransport(name, MakeTransportOptions());
  if (!t.ok()) {
    if (t.status().code() == absl::StatusCode::kInvalidArgument) {
      return absl::InvalidArgumentError(absl::StrCat("target.transport: ", t.status().message()));
    }
    return t.status();
  }
  kv::Transport* raw = t->get();
  transports_.emplace(name, *std::move(t));
  return raw;
}

absl::Status PrefillService::Ship(const node_api::PrefillRequest& request, const Computed& computed,
                                  std::string* transfer_id, int64_t* bytes) {
  const std::string& name = request.target.transport;
  TANDEM_ASSIGN_OR_RETURN(kv::Transport * transport, TransportFor(name));
  kv::TransferDesc desc;
  desc.id = kv::TransferId::Random();
  desc.dst.host = request.target.host;
  desc.dst.port = static_cast<uint16_t>(request.target.port);
  desc.dst.node_id = request.target.node_id;
  desc.dst.epoch = request.target.epoch;
  desc.reservation = request.target.reservation_id;
  desc.meta.request_id = request.request_id;
  desc.meta.first_token = computed.first_token;
  desc.meta.transfer_token = request.target.transfer_token;
  desc.blocks = computed.blocks;
  desc.deadline = absl::Now() + options_.transfer_timeout;
  *transfer_id = desc.id.Hex();
  *bytes = 0;
  for (const kv::KvBlock& b : computed.blocks) *bytes += static_cast<int64_t>(b.size());

  const absl::Time start = absl::Now();
  const absl::Time deadline = desc.deadline;
  absl::Status status;
  absl::StatusOr<kv::TransferHandle> handle = transport->Post(std::move(desc));
  if (handle.ok()) {
    // A little past the transfer's own deadline, so the transport reports its own reason.
    status = transport->Wait(*handle, deadline + absl::Seconds(1));
    if (status.code() == absl::StatusCode::kDeadlineExceeded) transport->Cancel(*handle);
  } else {
    status = handle.status();
  }
  if (!status.ok()) {
    metrics_.TransferFailed(name, status);  // by the original code: the reason label stays exact
    // Passed through, a NACK's NotFound/FailedPrecondition/DataLoss would reach the client as a
    // non-retryable 404/400/500; the original code stays in the message for the operator.
    // The reply names the decode node by id only: transport errors name addresses (connect
    // failures, ports), which a caller of this API must not learn. The log keeps the details.
    LOG(WARNING) << "req=" << request.request_id << " kv transfer " << *transfer_id << " to "
                 << request.target.node_id << " at " << request.target.host << ":"
                 << request.target.port << " failed: " << status;
    const std::string address = absl::StrCat(request.target.host, ":", request.target.port);
    const std::string detail =
        absl::StrReplaceAll(std::string(status.message()),
                            {{address, "<decode node>"}, {request.target.host, "<decode node>"}});
    absl::Status failed = absl::UnavailableError(
        absl::StrCat("kv transfer ", *transfer_id, " of ", request.request_id, " to decode node ",
                     request.target.node_id, " failed (", absl::StatusCodeToString(status.code()),
                     "): ", detail));
    // Only a transfer that was under way blames the target (NACK, unreachable, stale epoch,
    // deadline), so the router reserves on another decode node; a Post this node refused (it is
    // shutting down) is this node's failure, and the router moves to another prefill node.
    return handle.ok() ? WithErrorCode(std::move(failed), kErrorKvTransferFailed) : failed;
  }
  metrics_.TransferDone(name, *bytes, absl::ToDoubleSeconds(absl::Now() - start));
  return absl::OkStatus();
}

bool PrefillService::Cancel(std::string_view request_id) {
  return scheduler_->CancelQueued(request_id);
}

std::vector<std::string> PrefillService::Degraded() const {
  std::vector<std::string> out;
  for (const auto& tier : store_->tiers()) {
    if (tier->id() != kv::TierId::kMemory && !tier->Stats().available) {
      out.emplace_back(tier->Name());
    }
  }
  return out;
}

node_api::NodeStatus PrefillService::Status(uint64_t since_event_seq) const {
  node_api::NodeStatus s;
  s.node_id = options_.node_id;
  s.role = "prefill";
  s.epoch = options_.epoch;
  s.ready = ready();
  s.degraded = Degraded();
  s.kv_format = model_->kv_format_hex();
  s.vocab_fingerprint = model_->vocab_fingerprint_hex();
  const PrefillScheduler::Load load = scheduler_->load();
  s.load.queued_tokens = load.queued_tokens;
  s.load.waiting = load.waiting;
  s.load.running = load.running;
  s.load.kv_free_ratio = 1;
  for (const auto& tier : store_->tiers()) {
    if (tier->id() != kv::TierId::kMemory) continue;
    const kv::TierStats stats = tier->Stats();
    if (stats.capacity_bytes > 0) {
      s.load.kv_free_ratio =
          std::clamp(1.0 - static_cast<double>(stats.used_bytes) / stats.capacity_bytes, 0.0, 1.0);
    }
  }
  const kv::KvEventLog::Batch batch = store_->events().Since(since_event_seq);
  for (const kv::KvEvent& e : batch.events) {
    s.events.push_back(
        node_api::KvEventEntry{e.seq, e.kind == kv::KvEvent::Kind::kStored ? "stored" : "evicted",
                               e.key.Hex(), std::string(kv::TierName(e.tier))});
  }
  s.next_seq = batch.next_seq;
  s.events_truncated = batch.truncated;
  return s;
}

void PrefillService::BeginDrain() {
  if (!draining_.exchange(true)) LOG(INFO) << "node=" << options_.node_id << " draining";
}

void PrefillService::Drain() {
  BeginDrain();
  absl::MutexLock drain_lock(&drain_mu_);
  if (drained_) return;
  scheduler_->Drain();
  {
    absl::MutexLock lock(&in_flight_mu_);
    auto idle = [this]() ABSL_SHARED_LOCKS_REQUIRED(in_flight_mu_) { return in_flight_ == 0; };
    in_flight_mu_.Await(absl::Condition(&idle));
  }
  store_->Flush();
  {
    absl::MutexLock lock(&transports_mu_);
    for (auto& [name, transport] : transports_) {
      transport->Shutdown(absl::Seconds(1)).IgnoreError();
    }
  }
  drained_ = true;
  LOG(INFO) << "node=" << options_.node_id << " drained";
}

}  // namespace tandem::prefill
