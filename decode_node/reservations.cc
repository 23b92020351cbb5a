#include "decode_node/reservations.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/cluster_secret.h"
#include "common/status.h"
#include "glog/logging.h"

namespace tandem::decode {
namespace {
// How long past its transfer's deadline an arriving transfer keeps its reservation, so that the
// transport, not the expiry, reports a late transfer.
constexpr absl::Duration kReceivingGrace = absl::Seconds(2);
}  // namespace

ReservationTable::ReservationTable(const ReservationLimits& limits, DecodeMetrics* metrics)
    : limits_(limits), metrics_(metrics) {
  absl::MutexLock lock(&mu_);
  PublishLocked();
}

absl::StatusOr<Reserved> ReservationTable::Reserve(const node_api::ReserveRequest& req) {
  if (req.prompt_tokens <= 0 || req.max_tokens <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("reserve: prompt_tokens ", req.prompt_tokens,
                                                   " and max_tokens ", req.max_tokens,
                                                   " must be positive"));
  }
  // Each alone first: both come from JSON as int64, and a sum that wraps negative would pass the
  // check below and then lower pages_used_.
  if (req.prompt_tokens > limits_.context_length || req.max_tokens > limits_.context_length ||
      req.prompt_tokens + req.max_tokens > limits_.context_length) {
    return absl::OutOfRangeError(absl::StrCat(
        "reserve: prompt_tokens ", req.prompt_tokens, " + max_tokens ", req.max_tokens,
        " exceed the model's context length of ", limits_.context_length, " tokens"));
  }
  const int64_t tokens = req.prompt_tokens + req.max_tokens;
  const int64_t pages = (tokens + limits_.page_tokens - 1) / limits_.page_tokens;
  const absl::Time now = absl::Now();
  absl::Time expires = now + limits_.ttl;
  if (req.deadline_ms > 0) expires = std::min(expires, absl::FromUnixMillis(req.deadline_ms));

  absl::MutexLock lock(&mu_);
  ExpireLocked(now);
  if (closed_) return absl::UnavailableError("decode node shutting down");
  if (draining_) return absl::UnavailableError("decode node draining: not taking new requests");
  if (static_cast<int64_t>(by_id_.size()) >= limits_.max_seqs) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "decode node overloaded: all ", limits_.max_seqs, " sequence slots are reserved"));
  }
  if (pages_used_ + pages > limits_.capacity_pages) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "decode node overloaded: ", tokens, " KV tokens requested, ",
        (limits_.capacity_pages - pages_used_) * limits_.page_tokens, " of ",
        limits_.capacity_pages * limits_.page_tokens, " free"));
  }
  uint64_t id = 0;
  while (id == 0 || by_id_.contains(id)) id = SecureRandomU64() >> 2;
  Reservation& r = by_id_[id];
  r.transfer_token = SecureRandomHex(16);
  r.request_id = req.request_id;
  r.prompt_tokens = req.prompt_tokens;
  r.max_tokens = req.max_tokens;
  r.pages = pages;
  r.expires = expires;
  r.cancelled = std::make_shared<std::atomic<bool>>(false);
  pages_used_ += pages;
  PublishLocked();
  VLOG(1) << "req=" << req.request_id << " reservation " << id << " holds " << tokens
          << " KV tokens until " << expires;
  return Reserved{id, r.transfer_token, expires};
}

absl::StatusOr<Claim> ReservationTable::ClaimForDecode(uint64_t id) {
  absl::MutexLock lock(&mu_);
  ExpireLocked(absl::Now());
  if (closed_) return absl::UnavailableError("decode node shutting down");
  auto it = by_id_.find(id);
  if (it == by_id_.end()) {
    return absl::NotFoundError(absl::StrCat("no reservation ", id, " (unknown or expired)"));
  }
  Reservation& r = it->second;
  if (r.claimed) {
    return absl::FailedPreconditionError(
        absl::StrCat("reservation ", id, " is already claimed by a decode call"));
  }
  r.claimed = true;
  PublishLocked();
  return Claim{id, r.prompt_tokens, r.max_tokens, r.cancelled};
}

absl::StatusOr<ReceivedKv> ReservationTable::AwaitTransfer(uint64_t id, absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto settled = [this, id]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    auto it = by_id_.find(id);
    return closed_ || it == by_id_.end() || it->second.cancelled->load() ||
           it->second.phase == TransferPhase::kComplete ||
           it->second.phase == TransferPhase::kFailed;
  };
  mu_.AwaitWithDeadline(absl::Condition(&settled), deadline);
  if (closed_) return absl::UnavailableError("decode node shutting down");
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return absl::NotFoundError(absl::StrCat("no reservation ", id));
  Reservation& r = it->second;
  if (r.cancelled->load()) return absl::CancelledError("decode cancelled");
  switch (r.phase) {
    case TransferPhase::kComplete:
      // The blocks move out once; the phase stays complete so a late resend is refused.
      return std::exchange(r.kv, ReceivedKv{});
    case TransferPhase::kFailed:
      return absl::UnavailableError(
          absl::StrCat("KV transfer failed: ", AV(r.failure.ToString())));
    case TransferPhase::kReceiving:
      return absl::DeadlineExceededError(absl::StrCat(
          "KV transfer ", r.transfer.Hex(), " incomplete at the decode deadline: ",
          r.kv.blocks.size(), " blocks received"));
    case TransferPhase::kAwaiting:
      break;
  }
  return absl::DeadlineExceededError("no KV transfer arrived by the decode deadline");
}

void ReservationTable::MarkRunning(uint64_t id) {
  absl::MutexLock lock(&mu_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return;
  it->second.running = true;
  PublishLocked();
}

ReservationLease ReservationTable::Lease(uint64_t id) {
  return ReservationLease(id, [this](uint64_t reservation) { Release(reservation); });
}

void ReservationTable::Release(uint64_t id) {
  absl::MutexLock lock(&mu_);
  EraseLocked(id);
  PublishLocked();
}

absl::Status ReservationTable::Cancel(uint64_t id) {
  absl::MutexLock lock(&mu_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return absl::NotFoundError(absl::StrCat("no reservation ", id));
  it->second.cancelled->store(true);
  if (!it->second.claimed) EraseLocked(id);
  PublishLocked();
  return absl::OkStatus();
}

void ReservationTable::StartDraining() {
  absl::MutexLock lock(&mu_);
  draining_ = true;
}

void ReservationTable::Close() {
  absl::MutexLock lock(&mu_);
  draining_ = true;
  closed_ = true;
}

bool ReservationTable::draining() const {
  absl::MutexLock lock(&mu_);
  return draining_;
}

bool ReservationTable::WaitEmpty(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  while (true) {
    ExpireLocked(absl::Now());
    if (by_id_.empty()) return true;
    if (absl::Now() >= deadline) return false;
    // Expiry is lazy, so wake up now and then to drop reservations nobody claims.
    auto empty = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return by_id_.empty(); };
    mu_.AwaitWithDeadline(absl::Condition(&empty),
                          std::min(deadline, absl::Now() + absl::Milliseconds(100)));
  }
}

ReservationLoad ReservationTable::Load() {
  absl::MutexLock lock(&mu_);
  ExpireLocked(absl::Now());
  ReservationLoad load;
  for (const auto& [id, r] : by_id_) {
    if (r.running) {
      ++load.running;
      continue;
    }
    load.queued_tokens += r.prompt_tokens + r.max_tokens;
    if (r.claimed) ++load.waiting;
  }
  load.reservations = static_cast<int64_t>(by_id_.size());
  load.kv_free_ratio =
      limits_.capacity_pages > 0
          ? 1.0 - static_cast<double>(pages_used_) / static_cast<double>(limits_.capacity_pages)
          : 0.0;
  return load;
}

absl::Status ReservationTable::OnBegin(const kv::TransferMeta& meta, kv::ReservationId rid) {
  absl::MutexLock lock(&mu_);
  ExpireLocked(absl::Now());
  auto it = by_id_.find(rid);
  if (it == by_id_.end()) {
    return absl::NotFoundError(absl::StrCat("no reservation ", rid, " (unknown or expired)"));
  }
  Reservation& r = it->second;
  // The token proves the sender got this reservation from the router (which got it from us).
  // Refused before anything else is looked at, so a stranger learns nothing about its state.
  const auto span = [](const std::string& s) {
    return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  };
  if (!ConstantTimeEquals(span(meta.transfer_token), span(r.transfer_token))) {
    if (metrics_ != nullptr) metrics_->AuthRefused("bad_transfer_token");
    return absl::PermissionDeniedError(
        absl::StrCat("transfer ", meta.id.Hex(), ": wrong or missing transfer token"));
  }
  if (r.cancelled->load()) return absl::CancelledError(absl::StrCat("reservation ", rid, " cancelled"));
  // A resend after a failed transfer starts over; anything else would mix two transfers' blocks.
  if (r.phase == TransferPhase::kReceiving || r.phase == TransferPhase::kComplete) {
    return absl::FailedPreconditionError(
        absl::StrCat("reservation ", rid, " already has transfer ", r.transfer.Hex()));
  }
  if (meta.block_count == 0) {
    return absl::InvalidArgumentError(absl::StrCat("transfer ", meta.id.Hex(), " has no blocks"));
  }
  by_transfer_.erase(r.transfer);
  // While the transfer arrives the reservation is held until the transfer's own deadline (the
  // transport then ends it and OnEnd restarts the clock), but never past a ttl from now: a BEGIN
  // without a deadline must not hold the KV room forever.
  r.expires = std::min(meta.deadline, absl::Now() + limits_.ttl) + kReceivingGrace;
  r.phase = TransferPhase::kReceiving;
  r.transfer = meta.id;
  r.transfer_blocks = meta.block_count;
  r.failure = absl::OkStatus();
  r.kv = ReceivedKv{};
  r.kv.first_token = meta.first_token;
  r.kv.transfer_id = meta.id.Hex();
  by_transfer_[meta.id] = rid;
  return absl::OkStatus();
}

absl::Status ReservationTable::OnBlock(const kv::TransferId& id, kv::KvBlock block) {
  const int64_t bytes = static_cast<int64_t>(block.size());
  absl::MutexLock lock(&mu_);
  Reservation* r = FindByTransferLocked(id);
  if (r == nullptr || r->phase != TransferPhase::kReceiving) {
    return absl::NotFoundError(absl::StrCat("transfer ", id.Hex(), " has no open reservation"));
  }
  if (block.pos_begin() != r->kv.prompt_len) {
    return absl::InvalidArgumentError(absl::StrCat("block at position ", block.pos_begin(),
                                                   " after ", r->kv.prompt_len,
                                                   " tokens: blocks must be contiguous from 0"));
  }
  if (r->kv.prompt_len + block.num_tokens() > r->prompt_tokens) {
    return absl::InvalidArgumentError(absl::StrCat(
        "transfer carries more than the ", r->prompt_tokens, " prompt tokens reserved"));
  }
  // The last block must complete the prompt the router reserved for: the decode would otherwise
  // continue from a prefix (and a NACK now lets the sender report it, rather than an ACKed
  // transfer that fails at admission).
  if (r->kv.blocks.size() + 1 == r->transfer_blocks &&
      r->kv.prompt_len + block.num_tokens() != r->prompt_tokens) {
    return absl::InvalidArgumentError(absl::StrCat(
        "transfer carries ", r->kv.prompt_len + block.num_tokens(), " prompt tokens, the ",
        "reservation is for ", r->prompt_tokens));
  }
  r->kv.prompt_len += block.num_tokens();
  r->kv.blocks.push_back(std::move(block));
  metrics_->TransferBytesIn(bytes);
  return absl::OkStatus();
}

void ReservationTable::OnEnd(const kv::TransferId& id, const absl::Status& status) {
  absl::MutexLock lock(&mu_);
  Reservation* r = FindByTransferLocked(id);
  if (!status.ok()) metrics_->TransferFailed(status);
  if (r == nullptr || r->phase != TransferPhase::kReceiving) return;
  // The prefill may have taken most of the original deadline; the decode call that follows needs
  // its own window to claim the KV (or a resend, after a failure).
  r->expires = absl::Now() + limits_.ttl;
  if (status.ok() && r->kv.prompt_len != r->prompt_tokens) {
    // Unreachable while OnBlock checks the last block; kept so a short transfer never decodes.
    r->phase = TransferPhase::kFailed;
    r->failure = absl::DataLossError(absl::StrCat("transfer carried ", r->kv.prompt_len,
                                                  " of ", r->prompt_tokens, " prompt tokens"));
    r->kv = ReceivedKv{};
    return;
  }
  if (status.ok()) {
    r->phase = TransferPhase::kComplete;
    r->kv.completed_at = absl::Now();
  } else {
    // The decode call waiting for it logs the failure (once, where it is handled).
    VLOG(1) << "req=" << r->request_id << " KV transfer " << id.Hex() << " failed: " << status;
    r->phase = TransferPhase::kFailed;
    r->failure = status;
    r->kv = ReceivedKv{};  // drop the partial blocks now rather than at release
  }
}

void ReservationTable::ExpireLocked(absl::Time now) {
  std::vector<uint64_t> expired;
  for (const auto& [id, r] : by_id_) {
    // A transfer in progress keeps its reservation until its own deadline plus a grace (set in
    // OnBegin), so a transfer that is on time is never NACKed for an expiry.
    if (!r.claimed && r.expires <= now) {
      expired.push_back(id);
    }
  }
  for (uint64_t id : expired) {
    VLOG(1) << "req=" << by_id_[id].request_id << " reservation " << id << " expired unclaimed";
    EraseLocked(id);
  }
  if (!expired.empty()) PublishLocked();
}

void ReservationTable::EraseLocked(uint64_t id) {
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return;
  // Wakes a transfer wait of this id (it sees the reservation gone) and stops the engine's use.
  it->second.cancelled->store(true);
  auto t = by_transfer_.find(it->second.transfer);
  if (t != by_transfer_.end() && t->second == id) by_transfer_.erase(t);
  pages_used_ -= it->second.pages;
  by_id_.erase(it);
}

void ReservationTable::PublishLocked() {
  int64_t waiting = 0;
  for (const auto& [id, r] : by_id_) waiting += r.claimed && !r.running;
  metrics_->SetWaiting(waiting);
  metrics_->SetKvUsage(limits_.capacity_pages > 0 ? static_cast<double>(pages_used_) /
                                                        static_cast<double>(limits_.capacity_pages)
                                                  : 1.0);
}

ReservationTable::Reservation* ReservationTable::FindByTransferLocked(const kv::TransferId& id) {
  auto t = by_transfer_.find(id);
  if (t == by_transfer_.end()) return nullptr;
  auto it = by_id_.find(t->second);
  return it == by_id_.end() ? nullptr : &it->second;
}

}  // namespace tandem::decode
