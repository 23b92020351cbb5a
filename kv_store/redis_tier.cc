#include "kv_store/redis_tier.h"

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include <glog/logging.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace tandem::kv {
namespace {

timeval TimeoutTv(absl::Duration d) {
  if (d < absl::Milliseconds(1)) d = absl::Milliseconds(1);
  return absl::ToTimeval(d);
}

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

// hiredis reports a socket timeout as an I/O error with errno EAGAIN.
absl::Status ContextError(const redisContext* c, int saved_errno, std::string_view what) {
  const std::string msg = absl::StrCat("redis ", AV(what), ": ", c->errstr);
  if (c->err == REDIS_ERR_IO &&
      (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK || saved_errno == ETIMEDOUT ||
       saved_errno == EINPROGRESS)) {
    return MissStatus(absl::StatusCode::kDeadlineExceeded, MissReason::kTimeout, msg);
  }
  return MissStatus(absl::StatusCode::kUnavailable, MissReason::kTierUnavailable, msg);
}

// `s` with Redis glob metacharacters escaped, so that a namespace is matched literally.
std::string GlobEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

}  // namespace

class RedisTier::Conn {
 public:
  explicit Conn(redisContext* c) : c_(c) {}
  ~Conn() { redisFree(c_); }
  redisContext* get() { return c_; }
  bool broken = false;

 private:
  redisContext* c_;
};

// The URL with its credentials replaced, for messages: a password never reaches a log or an error.
std::string RedactedRedisUrl(std::string_view url) {
  const size_t at = url.rfind('@');
  if (at == std::string_view::npos) return std::string(url);
  const size_t scheme = url.find("://");
  const size_t start = scheme == std::string_view::npos ? 0 : scheme + 3;
  return absl::StrCat(AV(url.substr(0, start)), "<redacted>", AV(url.substr(at)));
}

absl::StatusOr<RedisAddress> ParseRedisUrl(std::string_view url) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("--redis_url '", RedactedRedisUrl(url), "': ", AV(why),
                     " (expected redis://[:password@]host:port[/db])"));
  };
  constexpr std::string_view kScheme = "redis://";
  if (url.substr(0, kScheme.size()) != kScheme) return bad("scheme is not redis://");
  std::string_view rest = url.substr(kScheme.size());
  RedisAddress a;
  if (const size_t at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view cred = rest.substr(0, at);
    rest = rest.substr(at + 1);
    if (const size_t colon = cred.find(':'); colon != std::string_view::npos) {
      a.user = std::string(cred.substr(0, colon));
      a.password = std::string(cred.substr(colon + 1));
    } else {
      a.password = std::string(cred);
    }
  }
  if (const size_t slash = rest.find('/'); slash != std::string_view::npos) {
    std::string_view db = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
    if (!db.empty() && (!absl::SimpleAtoi(AV(db), &a.db) || a.db < 0)) return bad("bad db number");
  }
  if (const size_t colon = rest.rfind(':'); colon != std::string_view::npos) {
    if (!absl::SimpleAtoi(AV(rest.substr(colon + 1)), &a.port) || a.port <= 0 || a.port > 65535) {
      return bad("bad port");
    }
    rest = rest.substr(0, colon);
  }
  if (rest.empty()) return bad("no host");
  a.host = std::string(rest);
  return a;
}

absl::StatusOr<std::unique_ptr<RedisTier>> RedisTier::Create(const RedisTierOptions& options,
                                                             const KvFormat& format,
                                                             MetricsRegistry* metrics) {
  TANDEM_RETURN_IF_ERROR(format.Validate());
  TANDEM_ASSIGN_OR_RETURN(RedisAddress address, ParseRedisUrl(options.url));
  if (options.pool_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--redis_pool_size ", options.pool_size, " must be >= 1"));
  }
  return std::unique_ptr<RedisTier>(new RedisTier(options, std::move(address), format, metrics));
}

RedisTier::RedisTier(const RedisTierOptions& options, RedisAddress address, const KvFormat& format,
                     MetricsRegistry* metrics)
    : KvTier(TierId::kRedis, format, metrics),
      options_(options),
      seal_(options.seal_secret ? std::make_unique<KvSeal>(options.seal_secret) : nullptr),
      address_(std::move(address)),
      prefix_(absl::StrCat("tandem:", format.ns, ":kv:")),
      format_key_(absl::StrCat("tandem:", format.ns, ":format:", format.Root().Hex())),
      backoff_(options.breaker_base) {
  this->metrics().SetCapacity(0);
  if (metrics != nullptr) {
    circuit_open_ = &metrics
                         ->Gauge("tandem_kv_tier_circuit_open",
                                 "1 while the tier's circuit breaker is open: calls fail at once "
                                 "until a probe succeeds.",
                                 {"tier"})
                         ->Labels({std::string(Name())});
  }
}

RedisTier::~RedisTier() {
  absl::MutexLock lock(&pool_mu_);
  idle_.clear();
}

std::string RedisTier::RedisKey(const BlockKey& key) const { return prefix_ + key.Hex(); }

absl::Status RedisTier::EnsureFormatRecord(absl::Time deadline) {
  if (format_recorded_.load(std::memory_order_acquire)) return absl::OkStatus();
  const std::string encoded = format().Encode();
  std::optional<std::string> stored;
  TANDEM_RETURN_IF_ERROR(Command({"GET", format_key_}, deadline, [&](void* p) -> absl::Status {
    auto* r = static_cast<redisReply*>(p);
    if (r->type == REDIS_REPLY_STRING) stored.emplace(r->str, r->len);
    return absl::OkStatus();
  }));
  if (!stored) {
    // NX: of two nodes writing at once, the first record stays; both hold the same bytes anyway.
    TANDEM_RETURN_IF_ERROR(Command({"SET", format_key_, encoded, "NX"}, deadline,
                                   [](void*) { return absl::OkStatus(); }));
  } else if (*stored != encoded) {
    absl::StatusOr<KvFormat> f = KvFormat::Decode(*stored);
    const std::string why = f.ok() ? f->Diff(format()) : std::string(SV(f.status().message()));
    return absl::FailedPreconditionError(absl::StrCat(
        "redis key ", format_key_, " holds another format: ", why.empty() ? "bytes differ" : why));
  }
  format_recorded_.store(true, std::memory_order_release);
  return absl::OkStatus();
}

bool RedisTier::BreakerOpen() const {
  absl::MutexLock lock(&breaker_mu_);
  return failed_;
}

void RedisTier::OnSuccess() {
  absl::MutexLock lock(&breaker_mu_);
  if (failed_) {
    LOG(INFO) << "redis tier " << address_.host << ":" << address_.port << " is back";
    // It may have come back empty: write the format record again with the next put.
    format_recorded_.store(false, std::memory_order_release);
  }
  failed_ = false;
  probing_ = false;
  backoff_ = options_.breaker_base;
  if (circuit_open_ != nullptr) circuit_open_->Set(0);
}

void RedisTier::OnFailure() {
  bool first = false;
  {
    absl::MutexLock lock(&breaker_mu_);
    if (probing_) {  // the probe failed: stay open, longer
      backoff_ = std::min(backoff_ * 2, options_.breaker_max);
      probing_ = false;
    } else if (failed_) {
      return;  // already open; concurrent callers that failed together open it once
    } else {
      backoff_ = options_.breaker_base;
      first = true;
    }
    failed_ = true;
    open_until_ = absl::Now() + backoff_;
    if (circuit_open_ != nullptr) circuit_open_->Set(1);
  }
  if (first) {
    LOG(WARNING) << "redis tier " << address_.host << ":" << address_.port
                 << " failed; skipping it for " << options_.breaker_base
                 << " (doubling up to " << options_.breaker_max << ")";
  }
  // Pooled connections to a server that failed are most likely dead too.
  absl::MutexLock lock(&pool_mu_);
  open_conns_ -= static_cast<int>(idle_.size());
  idle_.clear();
}

absl::StatusOr<std::unique_ptr<RedisTier::Conn>> RedisTier::Acquire(absl::Time deadline) {
  bool probe = false;
  {
    absl::MutexLock lock(&breaker_mu_);
    if (failed_) {
      if (absl::Now() < open_until_ || probing_) {
        return MissStatus(absl::StatusCode::kUnavailable, MissReason::kTierUnavailable,
                          "redis tier: circuit breaker open");
      }
      probing_ = probe = true;  // this caller probes
    }
  }
  {
    absl::MutexLock lock(&pool_mu_);
    auto can_take = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(pool_mu_) {
      return !idle_.empty() || open_conns_ < options_.pool_size;
    };
    if (!pool_mu_.AwaitWithDeadline(absl::Condition(&can_take), deadline)) {
      if (probe) {
        absl::MutexLock b(&breaker_mu_);
        probing_ = false;
      }
      return MissStatus(absl::StatusCode::kDeadlineExceeded, MissReason::kTimeout,
                        "redis tier: no pooled connection before the deadline");
    }
    if (!idle_.empty()) {
      std::unique_ptr<Conn> c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
    ++open_conns_;
  }
  const absl::Duration budget = std::min(options_.timeout, deadline - absl::Now());
  auto fail = [&](absl::Status s) {
    {
      absl::MutexLock lock(&pool_mu_);
      --open_conns_;
    }
    OnFailure();
    return s;
  };
  if (budget <= absl::ZeroDuration()) {
    return fail(MissStatus(absl::StatusCode::kDeadlineExceeded, MissReason::kTimeout,
                           "redis tier: deadline passed before connecting"));
  }
  errno = 0;
  redisContext* raw = redisConnectWithTimeout(address_.host.c_str(), address_.port,
                                              TimeoutTv(budget));
  const int err = errno;
  if (raw == nullptr) {
    return fail(MissStatus(absl::StatusCode::kUnavailable, MissReason::kTierUnavailable,
                           "redis tier: out of memory for a context"));
  }
  auto conn = std::make_unique<Conn>(raw);
  if (raw->err != 0) {
    return fail(ContextError(raw, err, absl::StrCat("connect ", address_.host, ":", address_.port)));
  }
  redisSetTimeout(raw, TimeoutTv(std::min(options_.timeout, deadline - absl::Now())));
  auto simple = [&](const std::vector<std::string>& argv) -> absl::Status {
    std::vector<const char*> a;
    std::vector<size_t> l;
    for (const auto& s : argv) {
      a.push_back(s.data());
      l.push_back(s.size());
    }
    Reply r(static_cast<redisReply*>(
        redisCommandArgv(raw, static_cast<int>(a.size()), a.data(), l.data())));
    if (!r) return ContextError(raw, errno, argv[0]);
    if (r->type == REDIS_REPLY_ERROR) {
      return absl::UnavailableError(absl::StrCat("redis ", argv[0], ": ", r->str));
    }
    return absl::OkStatus();
  };
  if (!address_.password.empty()) {
    std::vector<std::string> auth = {"AUTH"};
    if (!address_.user.empty()) auth.push_back(address_.user);
    auth.push_back(address_.password);
    if (absl::Status s = simple(auth); !s.ok()) {
      return fail(MissStatus(s.code(), *MissReasonOf(s), SV(s.message())));
    }
  }
  if (address_.db != 0) {
    if (absl::Status s = simple({"SELECT", std::to_string(address_.db)}); !s.ok()) {
      return fail(MissStatus(s.code(), *MissReasonOf(s), SV(s.message())));
    }
  }
  return conn;
}

void RedisTier::Release(std::unique_ptr<Conn> conn) {
  absl::MutexLock lock(&pool_mu_);
  if (conn->broken || conn->get()->err != 0) {
    --open_conns_;
    return;
  }
  idle_.push_back(std::move(conn));
}

absl::Status RedisTier::Command(const std::vector<std::string_view>& argv, absl::Time deadline,
                                const std::function<absl::Status(void* reply)>& fn) {
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<Conn> conn, Acquire(deadline));
  const absl::Duration budget = std::min(options_.timeout, deadline - absl::Now());
  if (budget <= absl::ZeroDuration()) {
    Release(std::move(conn));
    {
      absl::MutexLock lock(&breaker_mu_);
      probing_ = false;
    }
    return MissStatus(absl::StatusCode::kDeadlineExceeded, MissReason::kTimeout,
                      "redis tier: deadline passed");
  }
  redisContext* c = conn->get();
  redisSetTimeout(c, TimeoutTv(budget));
  std::vector<const char*> a;
  std::vector<size_t> l;
  for (std::string_view s : argv) {
    a.push_back(s.data());
    l.push_back(s.size());
  }
  errno = 0;
  Reply r(static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(a.size()), a.data(), l.data())));
  const int err = errno;
  if (!r) {
    absl::Status s = ContextError(c, err, argv[0]);
    conn->broken = true;
    Release(std::move(conn));
    OnFailure();
    return s;
  }
  Release(std::move(conn));
  OnSuccess();
  if (r->type == REDIS_REPLY_ERROR) {
    return MissStatus(absl::StatusCode::kUnavailable, MissReason::kTierUnavailable,
                      absl::StrCat("redis ", AV(argv[0]), ": ", r->str));
  }
  return fn(r.get());
}

absl::StatusOr<std::shared_ptr<const Bytes>> RedisTier::GetRaw(const BlockKey& key,
                                                                absl::Time deadline) {
  return Fetch(key, deadline);
}

absl::StatusOr<std::shared_ptr<Bytes>> RedisTier::Fetch(const BlockKey& key, absl::Time deadline) {
  const std::string rk = RedisKey(key);
  std::shared_ptr<Bytes> out;
  TANDEM_RETURN_IF_ERROR(Command({"GET", rk}, deadline, [&](void* p) -> absl::Status {
    auto* r = static_cast<redisReply*>(p);
    if (r->type == REDIS_REPLY_NIL) return absl::NotFoundError(absl::StrCat("redis: no ", rk));
    if (r->type != REDIS_REPLY_STRING) return absl::InternalError("redis GET: not a string");
    out = Bytes::Copy(std::string_view(r->str, r->len));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<KvBlock> RedisTier::DoGet(const BlockKey& key, absl::Time deadline) {
  TANDEM_ASSIGN_OR_RETURN(std::shared_ptr<Bytes> bytes, Fetch(key, deadline));
  if (seal_ != nullptr) {
    if (absl::Status s = seal_->Open(*bytes); !s.ok()) {
      // Planted, written by a node of another cluster, or by a reader that predates sealing:
      // never used, and erased so the next writer replaces it with a sealed block.
      LOG(WARNING) << "redis tier: erasing block " << key.Hex() << ": " << s.message();
      if (absl::Status e = Erase(key); !e.ok()) {
        LOG(WARNING) << "redis tier: could not erase unauthenticated block " << key.Hex() << ": "
                     << e;
      }
      return s;
    }
  }
  return ParseStored(std::move(bytes), key);
}

absl::Status RedisTier::PutRawForTesting(const BlockKey& key, std::string_view bytes) {
  return Command({"SET", RedisKey(key), bytes}, absl::Now() + absl::Seconds(5),
                 [](void*) { return absl::OkStatus(); });
}

absl::Status RedisTier::DoPut(const KvBlock& block, absl::Time deadline) {
  TANDEM_RETURN_IF_ERROR(EnsureFormatRecord(deadline));
  std::shared_ptr<Bytes> sealed;
  if (seal_ != nullptr) {
    TANDEM_ASSIGN_OR_RETURN(sealed, seal_->Seal(block.bytes()));
  }
  const auto b = sealed != nullptr ? sealed->span() : block.bytes();
  const std::string_view value(reinterpret_cast<const char*>(b.data()), b.size());
  const std::string rk = RedisKey(block.key());
  const std::string ttl = std::to_string(absl::ToInt64Milliseconds(options_.ttl));
  if (options_.ttl > absl::ZeroDuration()) {
    return Command({"SET", rk, value, "PX", ttl}, deadline, [](void*) { return absl::OkStatus(); });
  }
  return Command({"SET", rk, value}, deadline, [](void*) { return absl::OkStatus(); });
}

absl::StatusOr<std::vector<bool>> RedisTier::Contains(absl::Span<const BlockKey> keys,
                                                      absl::Time deadline) {
  std::vector<bool> out(keys.size(), false);
  if (keys.empty()) return out;
  // One EXISTS per key (MGET would ship the values). Pipelining them is a later optimisation.
  for (size_t i = 0; i < keys.size(); ++i) {
    const std::string rk = RedisKey(keys[i]);
    TANDEM_RETURN_IF_ERROR(Command({"EXISTS", rk}, deadline, [&](void* p) {
      out[i] = static_cast<redisReply*>(p)->integer == 1;
      return absl::OkStatus();
    }));
  }
  return out;
}

absl::Status RedisTier::Erase(const BlockKey& key) {
  return Command({"DEL", RedisKey(key)}, absl::Now() + options_.timeout,
                 [](void*) { return absl::OkStatus(); });
}

TierStats RedisTier::Stats() const {
  TierStats s;
  auto* self = const_cast<RedisTier*>(this);
  s.available = !BreakerOpen();
  absl::Status st = self->Command({"INFO", "memory"}, absl::Now() + options_.timeout,
                                  [&](void* p) {
    auto* r = static_cast<redisReply*>(p);
    if (r->type != REDIS_REPLY_STRING) return absl::OkStatus();
    std::string_view info(r->str, r->len);
    for (std::string_view field : {"used_memory:", "maxmemory:"}) {
      const size_t at = info.find(field);
      if (at == std::string_view::npos) continue;
      const size_t end = info.find('\r', at);
      int64_t v = 0;
      if (absl::SimpleAtoi(AV(info.substr(at + field.size(), end - at - field.size())), &v)) {
        (field == "used_memory:" ? s.used_bytes : s.capacity_bytes) = v;
      }
    }
    return absl::OkStatus();
  });
  if (!st.ok()) s.available = false;
  if (st.ok()) {
    int64_t n = 0;
    if (self->ScanKeys([&](const std::string&) { ++n; }).ok()) s.entries = n;
  }
  self->metrics().SetUsed(s.used_bytes);
  return s;
}

absl::Status RedisTier::ScanKeys(const std::function<void(const std::string&)>& fn) {
  std::string cursor = "0";
  const std::string pattern = GlobEscape(prefix_) + "*";
  const absl::Duration op = std::max(options_.timeout, absl::Seconds(2));
  do {
    TANDEM_RETURN_IF_ERROR(Command({"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"},
                                   absl::Now() + op, [&](void* p) -> absl::Status {
      auto* r = static_cast<redisReply*>(p);
      if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        return absl::InternalError("redis SCAN: unexpected reply");
      }
      cursor.assign(r->element[0]->str, r->element[0]->len);
      for (size_t i = 0; i < r->element[1]->elements; ++i) {
        fn(std::string(r->element[1]->element[i]->str, r->element[1]->element[i]->len));
      }
      return absl::OkStatus();
    }));
  } while (cursor != "0");
  return absl::OkStatus();
}

absl::Status RedisTier::ForEachKey(const std::function<void(const BlockKey&, int64_t)>& fn) {
  std::vector<std::string> keys;
  TANDEM_RETURN_IF_ERROR(ScanKeys([&](const std::string& k) { keys.push_back(k); }));
  const absl::Duration op = std::max(options_.timeout, absl::Seconds(2));
  for (const std::string& k : keys) {
    absl::StatusOr<BlockKey> key = BlockKey::FromHex(std::string_view(k).substr(prefix_.size()));
    if (!key.ok()) continue;
    int64_t len = 0;
    TANDEM_RETURN_IF_ERROR(Command({"STRLEN", k}, absl::Now() + op, [&](void* p) {
      len = static_cast<redisReply*>(p)->integer;
      return absl::OkStatus();
    }));
    fn(*key, len);
  }
  return absl::OkStatus();
}

absl::Status RedisTier::Clear() {
  std::vector<BlockKey> keys;
  TANDEM_RETURN_IF_ERROR(ForEachKey([&](const BlockKey& k, int64_t) { keys.push_back(k); }));
  for (const BlockKey& k : keys) TANDEM_RETURN_IF_ERROR(Erase(k));
  return absl::OkStatus();
}

}  // namespace tandem::kv
