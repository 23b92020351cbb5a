// kv_store_bench: Tandem's KV tiers against the bare engines they wrap, in one process and run
// (ARCHITECTURE.md §12). For 256-token SmolLM2-sized blocks (30 layers x K,V x 256 x 3 x 64 f16 =
// 5.9 MB) it prints, per operation:
//   BENCH kv_store <config> candidate=<GB/s> baseline=<GB/s> ratio=<candidate time / baseline time>
//         p50_us=<candidate> base_p50_us=<baseline>
// with baselines: memcpy of the same bytes (block build, parse = checksum + key hash, memory tier),
// raw RocksDB Put/Get with the same options (rocksdb tier), raw hiredis SET/GET on the same
// redis-server (redis tier; the bench starts its own on a free port). ratio 1.10 = 10% overhead.
//
//   kv_store_bench [--blocks=N] [--no_redis]
#include <rocksdb/db.h>
#include <rocksdb/options.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "common/cluster_secret.h"
#include "common/hash.h"
#include "common/kv_key.h"
#include "kv_store/kv_block.h"
#include "kv_store/kv_seal.h"
#include "kv_store/memory_tier.h"
#include "kv_store/redis_tier.h"
#include "kv_store/rocksdb_tier.h"
#include "tests/support/redis_server.h"

namespace tandem::kv {
namespace {

constexpr int kLayers = 30, kHeads = 3, kHeadDim = 64, kTokens = 256;

struct Timing {
  double total_s = 0;
  double p50_us = 0;
};

Timing Measure(int n, const std::function<void(int)>& op) {
  std::vector<double> us;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    op(i);
    us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0)
                     .count());
  }
  Timing t;
  t.total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::sort(us.begin(), us.end());
  t.p50_us = us[us.size() / 2];
  return t;
}

void Report(const std::string& config, double bytes, Timing cand, Timing base) {
  std::printf("BENCH kv_store %s candidate=%.3f baseline=%.3f ratio=%.3f p50_us=%.0f "
              "base_p50_us=%.0f\n",
              config.c_str(), bytes / cand.total_s / 1e9, bytes / base.total_s / 1e9,
              cand.total_s / base.total_s, cand.p50_us, base.p50_us);
  std::fflush(stdout);
}

struct Source {
  std::vector<std::vector<uint16_t>> data;  // 2 * kLayers tensors
  std::vector<TensorView> k, v;
};

Source MakeSource(uint32_t seed) {
  Source s;
  const size_t elems = size_t{kTokens} * kHeads * kHeadDim;
  uint32_t x = seed * 2654435761u + 1;
  for (int l = 0; l < 2 * kLayers; ++l) {
    s.data.emplace_back(elems);
    for (auto& e : s.data.back()) {
      x = x * 1664525u + 1013904223u;
      e = static_cast<uint16_t>(x >> 16);
    }
  }
  for (int l = 0; l < 2 * kLayers; ++l) {
    TensorView t =
        TensorView::Contiguous(s.data[l].data(), DType::kF16, {kTokens, kHeads, kHeadDim});
    (l % 2 ? s.v : s.k).push_back(t);
  }
  return s;
}

int Main(int argc, char** argv) {
  int n = 40;
  bool redis = true;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--blocks=", 0) == 0) n = std::max(2, std::atoi(a.c_str() + 9));
    if (a == "--no_redis") redis = false;
  }
  KvFormat f;
  f.model = Sha256("kv_store_bench");
  f.dtype = DType::kF16;
  f.block_tokens = kTokens;

  // n distinct blocks (distinct tokens) from 4 distinct payload sources.
  std::vector<Source> sources;
  for (uint32_t i = 0; i < 4; ++i) sources.push_back(MakeSource(i));
  std::vector<std::vector<KvTokenId>> tokens(n, std::vector<KvTokenId>(kTokens));
  for (int i = 0; i < n; ++i) {
    for (int t = 0; t < kTokens; ++t) tokens[i][t] = i * kTokens + t;
  }
  std::vector<KvBlock> blocks(n);
  Timing build = Measure(n, [&](int i) {
    const Source& s = sources[i % 4];
    blocks[i] = *KvBlock::Build(f, f.Root(), tokens[i], 0, s.k, s.v);
  });
  const double block_bytes = static_cast<double>(blocks[0].size());
  const double total = block_bytes * n;
  std::printf("# block: %d layers x K,V x %d tokens x %d heads x %d f16 = %.0f bytes; %d blocks\n",
              kLayers, kTokens, kHeads, kHeadDim, block_bytes, n);

  // memcpy of the same bytes, into a fresh destination each time (as a tier's read does).
  std::vector<std::vector<uint8_t>> dst(n);
  Timing memcpy_t = Measure(n, [&](int i) {
    dst[i].resize(blocks[i].size());
    std::memcpy(dst[i].data(), blocks[i].bytes().data(), blocks[i].size());
  });
  Report("build_vs_memcpy", total, build, memcpy_t);
  Timing parse = Measure(n, [&](int i) {
    if (!KvBlock::Parse(blocks[i].shared_bytes(), f, blocks[i].key()).ok()) std::abort();
  });
  Report("parse_validate_vs_memcpy", total, parse, memcpy_t);
  Timing xxh = Measure(n, [&](int i) {
    volatile uint64_t h = Xxh3_64(blocks[i].bytes().data(), blocks[i].size());
    (void)h;
  });
  Report("xxh3_checksum_vs_memcpy", total, xxh, memcpy_t);
  Timing sha = Measure(n, [&](int i) {
    volatile uint8_t b = NextBlockKey(f.Root(), tokens[i]).bytes[0];
    (void)b;
  });
  std::printf("# key hash: SHA-256 of 256 token ids = %.2f us per block (%.4f%% of a memcpy)\n",
              sha.total_s / n * 1e6, 100.0 * sha.total_s / memcpy_t.total_s);

  // Memory tier: Put stores the refcounted block (no copy), Get returns it.
  {
    MemoryTier mem(f, int64_t{1} << 40, nullptr);
    const absl::Time far = absl::Now() + absl::Hours(1);
    Timing put = Measure(n, [&](int i) { (void)mem.Put(blocks[i], far); });
    Report("memory_put_vs_memcpy", total, put, memcpy_t);
    Timing get = Measure(n, [&](int i) { (void)mem.Get(blocks[i].key(), far); });
    Report("memory_get_vs_memcpy", total, get, memcpy_t);
  }

  // RocksDB tier vs raw RocksDB with the tier's options.
  {
    char tmpl[] = "/tmp/tandem-kv-bench-XXXXXX";
    const std::string dir = ::mkdtemp(tmpl);
    rocksdb::Options o;
    o.create_if_missing = true;
    o.IncreaseParallelism(2);
    o.compression = rocksdb::kNoCompression;
    o.enable_blob_files = true;
    o.min_blob_size = 4096;
    o.blob_compression_type = rocksdb::kNoCompression;
    o.enable_blob_garbage_collection = true;
    o.write_buffer_size = 64 << 20;
    rocksdb::DB* raw = nullptr;
    if (!rocksdb::DB::Open(o, dir + "/raw", &raw).ok()) std::abort();
    rocksdb::WriteOptions w;
    w.disableWAL = true;
    Timing raw_put = Measure(n, [&](int i) {
      const auto& k = blocks[i].key().bytes;
      (void)raw->Put(w, rocksdb::Slice(reinterpret_cast<const char*>(k.data()), 32),
                     rocksdb::Slice(reinterpret_cast<const char*>(blocks[i].bytes().data()),
                                    blocks[i].size()));
    });
    Timing raw_get = Measure(n, [&](int i) {
      const auto& k = blocks[i].key().bytes;
      rocksdb::PinnableSlice v;
      (void)raw->Get(rocksdb::ReadOptions(), raw->DefaultColumnFamily(),
                     rocksdb::Slice(reinterpret_cast<const char*>(k.data()), 32), &v);
      auto copy = Bytes::Copy(std::string_view(v.data(), v.size()));  // a tier hands out owned bytes
    });
    auto tier = *RocksDbTier::Open({dir + "/tier", int64_t{1} << 40}, f, nullptr);
    const absl::Time far = absl::Now() + absl::Hours(1);
    Timing put = Measure(n, [&](int i) { (void)tier->Put(blocks[i], far); });
    Timing get = Measure(n, [&](int i) {
      if (!tier->Get(blocks[i].key(), far).ok()) std::abort();
    });
    Report("rocksdb_put_vs_raw_put", total, put, raw_put);
    Report("rocksdb_get_vs_raw_get", total, get, raw_get);
    tier.reset();
    delete raw;
    std::filesystem::remove_all(dir);
  }

  if (redis && testing::RedisServer::Available()) {
    testing::RedisServer server;
    if (!server.Start().ok()) {
      std::printf("# redis-server did not start; redis rows skipped\n");
      return 0;
    }
    redisContext* c = server.Connect();
    Timing raw_set = Measure(n, [&](int i) {
      const std::string key = "raw:" + blocks[i].key().Hex();
      auto* r = static_cast<redisReply*>(redisCommand(c, "SET %b %b", key.data(), key.size(),
                                                      blocks[i].bytes().data(), blocks[i].size()));
      if (r) freeReplyObject(r);
    });
    Timing raw_get = Measure(n, [&](int i) {
      const std::string key = "raw:" + blocks[i].key().Hex();
      auto* r = static_cast<redisReply*>(redisCommand(c, "GET %b", key.data(), key.size()));
      if (r == nullptr || r->type != REDIS_REPLY_STRING) std::abort();
      auto copy = Bytes::Copy(std::string_view(r->str, r->len));
      freeReplyObject(r);
    });
    redisFree(c);
    RedisTierOptions ro;
    ro.url = server.Url();
    ro.timeout = absl::Seconds(2);
    auto tier = *RedisTier::Create(ro, f, nullptr);
    const absl::Time far = absl::Now() + absl::Hours(1);
    Timing put = Measure(n, [&](int i) {
      if (!tier->Put(blocks[i], absl::Now() + absl::Seconds(2)).ok()) std::abort();
    });
    Timing get = Measure(n, [&](int i) {
      if (!tier->Get(blocks[i].key(), far).ok()) std::abort();
    });
    Report("redis_put_vs_hiredis_set", total, put, raw_set);
    Report("redis_get_vs_hiredis_get", total, get, raw_get);

    // The cost of the MAC on blocks at rest (kv_seal.h): the same tier with the cluster secret,
    // on the same server, against the unsealed tier measured just above.
    RedisTierOptions sealed_options = ro;
    sealed_options.seal_secret = *ClusterSecret::FromBytes(std::string(32, 'b'));
    KvFormat sealed_format = f;
    sealed_format.ns = "sealed";  // its own keys, so every get verifies a sealed block
    auto sealed = *RedisTier::Create(sealed_options, sealed_format, nullptr);
    Timing sealed_put = Measure(n, [&](int i) {
      if (!sealed->Put(blocks[i], absl::Now() + absl::Seconds(2)).ok()) std::abort();
    });
    Timing sealed_get = Measure(n, [&](int i) {
      if (!sealed->Get(blocks[i].key(), far).ok()) std::abort();
    });
    Report("redis_sealed_put_vs_redis_put", total, sealed_put, put);
    Report("redis_sealed_get_vs_redis_get", total, sealed_get, get);
  }

  {
    // The MAC alone against the XXH3 check every block already pays.
    KvSeal seal(*ClusterSecret::FromBytes(std::string(32, 'b')));
    std::vector<std::shared_ptr<Bytes>> sealed_bytes;
    for (const KvBlock& b : blocks) sealed_bytes.push_back(*seal.Seal(b.bytes()));
    uint64_t sink = 0;
    Timing xxh3 =
        Measure(n, [&](int i) { sink += Xxh3_64(blocks[i].bytes().data(), blocks[i].size()); });
    Timing open = Measure(n, [&](int i) {
      // Open verifies, then rewrites the header in place: each sealed copy is opened once.
      if (!seal.Open(*sealed_bytes[i]).ok()) std::abort();
    });
    std::printf("# xxh3 sink %llu\n", static_cast<unsigned long long>(sink));
    Report("kv_seal_open_vs_xxh3", total, open, xxh3);
  }
  return 0;
}

}  // namespace
}  // namespace tandem::kv

int main(int argc, char** argv) { return tandem::kv::Main(argc, argv); }
