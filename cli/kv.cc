#include "cli/kv.h"

#include <cstdio>
#include <cstring>
#include <memory>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/cluster_secret.h"
#include "common/flags.h"
#include "common/process.h"
#include "common/status.h"
#include "kv_store/kv_seal.h"
#include "kv_store/kv_tier.h"
#include "kv_store/options.h"
#include "kv_store/redis_tier.h"
#include "kv_store/rocksdb_tier.h"

namespace tandem::cli {
namespace {

using kv::KvTier;

struct OpenTiers {
  std::unique_ptr<kv::RocksDbTier> disk;
  std::unique_ptr<kv::RedisTier> redis;
  // With --cluster_secret_file, Redis blocks are checked against their seal (kv_store/kv_seal.h)
  // and opened before they are parsed; without it, sealed blocks show as format version 3.
  std::unique_ptr<kv::KvSeal> seal;
  std::vector<KvTier*> all() const {
    std::vector<KvTier*> v;
    if (disk) v.push_back(disk.get());
    if (redis) v.push_back(redis.get());
    return v;
  }
};

absl::StatusOr<OpenTiers> Open() {
  const kv::KvStoreOptions o = kv::KvStoreOptionsFromFlags();
  TANDEM_RETURN_IF_ERROR(o.Validate());
  OpenTiers t;
  if (!o.disk_path.empty()) {
    TANDEM_ASSIGN_OR_RETURN(t.disk, kv::RocksDbTier::OpenExisting({o.disk_path, o.disk_bytes},
                                                                   nullptr));
  }
  if (!o.redis_url.empty()) {
    kv::RedisTierOptions r;
    r.url = o.redis_url;
    r.timeout = std::max(o.redis_timeout, absl::Seconds(2));  // an operator can wait
    // Blocks are parsed with ParseAnyFormat here, so only the namespace of this format matters.
    KvFormat f;
    f.ns = kv::KvNamespaceFromFlags();
    TANDEM_ASSIGN_OR_RETURN(t.redis, kv::RedisTier::Create(r, f, nullptr));
    if (const std::string file = GetFlag(FLAGS_cluster_secret_file); !file.empty()) {
      TANDEM_ASSIGN_OR_RETURN(std::shared_ptr<const ClusterSecret> secret,
                              ClusterSecret::ReadFile(file));
      t.seal = std::make_unique<kv::KvSeal>(std::move(secret));
    }
  }
  if (t.all().empty()) {
    return absl::InvalidArgumentError("tandem kv: set --kv_disk_path and/or --redis_url");
  }
  return t;
}

// The stored block; a Redis block opened from its seal when a secret is given (a seal that fails
// is DataLoss with MissReason auth, which the callers report as a bad block).
absl::StatusOr<std::shared_ptr<const kv::Bytes>> Raw(const OpenTiers& t, KvTier* tier,
                                                     const BlockKey& key) {
  if (tier->id() == kv::TierId::kRocksDb) return static_cast<kv::RocksDbTier*>(tier)->GetRaw(key);
  TANDEM_ASSIGN_OR_RETURN(
      std::shared_ptr<const kv::Bytes> raw,
      static_cast<kv::RedisTier*>(tier)->GetRaw(key, absl::Now() + absl::Seconds(5)));
  if (t.seal == nullptr) return raw;
  auto opened = std::make_shared<kv::Bytes>(raw->size());
  std::memcpy(opened->data(), raw->data(), raw->size());
  TANDEM_RETURN_IF_ERROR(t.seal->Open(*opened));
  return std::shared_ptr<const kv::Bytes>(std::move(opened));
}

bool IsAuthMiss(const absl::Status& s) { return kv::MissReasonOf(s) == kv::MissReason::kAuth; }

absl::Status Stats(const OpenTiers& t) {
  for (KvTier* tier : t.all()) {
    const kv::TierStats s = tier->Stats();
    std::printf("%-8s entries=%lld used_bytes=%lld capacity_bytes=%lld available=%s\n",
                std::string(tier->Name()).c_str(), static_cast<long long>(s.entries),
                static_cast<long long>(s.used_bytes), static_cast<long long>(s.capacity_bytes),
                s.available ? "yes" : "no");
    if (tier->id() == kv::TierId::kRocksDb) {
      std::printf("         format: %s\n", tier->format().DebugString().c_str());
    }
  }
  return absl::OkStatus();
}

absl::Status List(const OpenTiers& t, int64_t limit) {
  int64_t n = 0;
  for (KvTier* tier : t.all()) {
    TANDEM_RETURN_IF_ERROR(tier->ForEachKey([&](const BlockKey& k, int64_t size) {
      if (n++ < limit) {
        std::printf("%s %s %lld\n", std::string(tier->Name()).c_str(), k.Hex().c_str(),
                    static_cast<long long>(size));
      }
    }));
  }
  if (n > limit) std::printf("... %lld more\n", static_cast<long long>(n - limit));
  return absl::OkStatus();
}

absl::Status Lookup(const OpenTiers& t, const std::string& hex) {
  TANDEM_ASSIGN_OR_RETURN(BlockKey key, BlockKey::FromHex(hex));
  bool found = false;
  for (KvTier* tier : t.all()) {
    absl::StatusOr<std::shared_ptr<const kv::Bytes>> raw = Raw(t, tier, key);
    if (absl::IsNotFound(raw.status())) continue;
    if (!IsAuthMiss(raw.status())) TANDEM_RETURN_IF_ERROR(raw.status());
    found = true;
    absl::StatusOr<kv::KvBlock> b = raw.ok() ? kv::KvBlock::ParseAnyFormat(*raw, key)
                                             : absl::StatusOr<kv::KvBlock>(raw.status());
    if (!b.ok()) {
      std::printf("%s: %zu bytes, INVALID (%s): %s\n", std::string(tier->Name()).c_str(),
                  raw.ok() ? (*raw)->size() : size_t{0},
                  std::string(kv::MissReasonName(*kv::MissReasonOf(b.status()))).c_str(),
                  std::string(b.status().message()).c_str());
      continue;
    }
    std::printf("%s: %zu bytes, %d tokens at positions %d..%d, %d layers, parent %s\n  %s\n",
                std::string(tier->Name()).c_str(), b->size(), b->num_tokens(), b->pos_begin(),
                b->pos_begin() + b->num_tokens() - 1, b->num_layers(), b->parent().Hex().c_str(),
                b->format().DebugString().c_str());
  }
  if (!found) return absl::NotFoundError(absl::StrCat("no tier holds ", hex));
  return absl::OkStatus();
}

absl::Status Verify(const OpenTiers& t) {
  int64_t ok = 0, bad = 0;
  std::string first_bad;
  for (KvTier* tier : t.all()) {
    std::vector<BlockKey> keys;
    TANDEM_RETURN_IF_ERROR(tier->ForEachKey([&](const BlockKey& k, int64_t) { keys.push_back(k); }));
    for (const BlockKey& k : keys) {
      absl::StatusOr<std::shared_ptr<const kv::Bytes>> raw = Raw(t, tier, k);
      if (absl::IsNotFound(raw.status())) continue;  // evicted or expired meanwhile
      if (!IsAuthMiss(raw.status())) TANDEM_RETURN_IF_ERROR(raw.status());
      absl::Status s = raw.ok() ? kv::KvBlock::ParseAnyFormat(*raw, k).status() : raw.status();
      if (s.ok()) {
        ++ok;
        continue;
      }
      ++bad;
      const std::string line = absl::StrCat(AV(tier->Name()), " ", k.Hex(), ": ",
                                            AV(kv::MissReasonName(*kv::MissReasonOf(s))), ": ",
                                            s.message());
      std::printf("BAD %s\n", line.c_str());
      if (first_bad.empty()) first_bad = line;
    }
  }
  std::printf("verified %lld blocks: %lld ok, %lld bad\n", static_cast<long long>(ok + bad),
              static_cast<long long>(ok), static_cast<long long>(bad));
  if (bad > 0) {
    return absl::DataLossError(absl::StrCat(bad, " bad block(s); first: ", first_bad,
                                            " (nodes erase them on their next read)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RunKv(const std::vector<std::string>& args) {
  if (args.empty()) {
    return absl::InvalidArgumentError("tandem kv: missing subcommand (stats|list|lookup|verify|clear)");
  }
  const std::string& sub = args[0];
  TANDEM_ASSIGN_OR_RETURN(OpenTiers t, Open());
  if (sub == "stats") return Stats(t);
  if (sub == "list") {
    int64_t limit = 100;
    if (args.size() > 1 && (!absl::SimpleAtoi(args[1], &limit) || limit < 0)) {
      return absl::InvalidArgumentError(absl::StrCat("tandem kv list: '", args[1],
                                                     "' is not a count"));
    }
    return List(t, limit);
  }
  if (sub == "lookup") {
    if (args.size() != 2) return absl::InvalidArgumentError("tandem kv lookup <64 hex digits>");
    return Lookup(t, args[1]);
  }
  if (sub == "verify") return Verify(t);
  if (sub == "clear") {
    for (KvTier* tier : t.all()) {
      const int64_t before = tier->Stats().entries;
      // The disk tier also drops its format record, so that the directory can be reused by any
      // model (the remedy RocksDbTier::Open suggests on a format mismatch).
      TANDEM_RETURN_IF_ERROR(tier == t.disk.get() ? t.disk->ClearAll() : tier->Clear());
      std::printf("%s: cleared (%lld entries before)\n", std::string(tier->Name()).c_str(),
                  static_cast<long long>(before));
    }
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("tandem kv: unknown subcommand '", sub, "' (stats|list|lookup|verify|clear)"));
}

}  // namespace tandem::cli
