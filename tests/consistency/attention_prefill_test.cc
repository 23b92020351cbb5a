// attention_prefill beyond backend agreement: a sparse method with every block selected equals
// dense (cpu_ref bit for bit, the fast cpu path to rounding), the sparse methods really skip
// blocks and report it, and malformed configurations are InvalidArgument.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "kernels/op.h"
#include "tests/support/nmse.h"
#include "tests/support/status_matchers.h"

namespace tandem::kernels {
namespace {

struct Problem {
  int64_t n_q, n_kv, heads, kv_heads, hd;
  std::vector<float> q, k, v;
  std::vector<int32_t> q_pos, kv_pos;

  Problem(int64_t nq, int64_t nkv, int64_t h, int64_t kvh, int64_t d, uint32_t seed)
      : n_q(nq), n_kv(nkv), heads(h), kv_heads(kvh), hd(d) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    q.resize(n_q * heads * hd);
    k.resize(n_kv * kv_heads * hd);
    v.resize(k.size());
    for (float& x : q) x = 3.0f * u(rng);
    for (float& x : k) x = u(rng);
    for (float& x : v) x = u(rng);
    // Attention sinks, as trained models have: the first 32 keys share a direction with every
    // query, so that most other blocks carry little relative weight and SALE can skip them.
    for (int64_t t = 0; t < n_q; ++t)
      for (int64_t h = 0; h < heads; ++h) q[(t * heads + h) * hd] += 5.0f;
    for (int64_t j = 0; j < std::min<int64_t>(32, n_kv); ++j)
      for (int64_t g = 0; g < kv_heads; ++g) k[(j * kv_heads + g) * hd] += 10.0f;
    q_pos.resize(n_q);
    kv_pos.resize(n_kv);
    std::iota(q_pos.begin(), q_pos.end(), static_cast<int32_t>(n_kv - n_q));
    std::iota(kv_pos.begin(), kv_pos.end(), 0);
  }

  // Runs on `backend_name`; returns the output.
  std::vector<float> Run(const char* backend_name, const SparseConfig& sparse,
                         AttentionStats* stats = nullptr, absl::Status* status = nullptr) {
    std::vector<float> out(q.size(), -7.0f);
    AttentionPrefillParams p{
        .q = TensorView::Contiguous(q.data(), DType::kF32, {n_q, heads, hd}),
        .k = TensorView::Contiguous(k.data(), DType::kF32, {n_kv, kv_heads, hd}),
        .v = TensorView::Contiguous(v.data(), DType::kF32, {n_kv, kv_heads, hd}),
        .out = TensorView::Contiguous(out.data(), DType::kF32, {n_q, heads, hd}),
        .q_pos = TensorView::Contiguous(q_pos.data(), DType::kI32, {n_q}),
        .kv_pos = TensorView::Contiguous(kv_pos.data(), DType::kI32, {n_kv}),
        .scale = 1.0f / std::sqrt(static_cast<float>(hd)),
        .sparse = sparse,
        .stats = stats};
    absl::StatusOr<KernelBackend*> b = GetBackend(backend_name);
    EXPECT_TRUE(b.ok());
    absl::Status s = (*b)->Run(p);
    if (status != nullptr) {
      *status = s;
    } else {
      EXPECT_TRUE(s.ok()) << s;
    }
    return out;
  }
};

using ::tandem::testing::Nmse;

SparseConfig Sale(float tau) {
  SparseConfig c;
  c.method = SparseMethod::kSale;
  c.sale_threshold = tau;
  c.sale_min_tokens = 0;
  return c;
}
SparseConfig Power(int32_t block, int32_t window) {
  SparseConfig c;
  c.method = SparseMethod::kPowerAttention;
  c.power_block = block;
  c.power_window_blocks = window;
  return c;
}

TEST(AttentionPrefillTest, AllBlocksSelectedEqualsDense) {
  Problem pr(300, 300, 9, 3, 64, 1);
  const std::vector<float> dense_ref = pr.Run("cpu_ref", SparseConfig{});
  EXPECT_EQ(pr.Run("cpu_ref", Sale(0.0f)), dense_ref);
  EXPECT_EQ(pr.Run("cpu_ref", Power(64, 1 << 20)), dense_ref);
  const std::vector<float> dense_cpu = pr.Run("cpu", SparseConfig{});
  EXPECT_LT(Nmse(dense_cpu, dense_ref), 1e-10);
  EXPECT_EQ(pr.Run("cpu", Power(64, 1 << 20)), dense_cpu);
  EXPECT_LT(Nmse(pr.Run("cpu", Sale(0.0f)), dense_cpu), 1e-12);
}

TEST(AttentionPrefillTest, SparseMethodsSkipBlocksAndReportDensity) {
  Problem pr(1024, 1024, 3, 1, 64, 2);
  AttentionStats dense_stats, sale_stats, power_stats;
  const std::vector<float> dense = pr.Run("cpu", SparseConfig{}, &dense_stats);
  EXPECT_EQ(dense_stats.causal_blocks, 3 * 16 * 17 / 2);
  EXPECT_EQ(dense_stats.density(), 1.0);

  const std::vector<float> sale = pr.Run("cpu", Sale(0.008f), &sale_stats);
  EXPECT_EQ(sale_stats.causal_blocks, 3 * 272);  // q block i (64) sees key blocks 0..2i+1 (32)
  EXPECT_LT(sale_stats.density(), 1.0);
  EXPECT_GT(sale_stats.density(), 0.0);
  EXPECT_LT(Nmse(sale, dense), 0.05);
  std::printf("sale density %.3f nmse %.3g\n", sale_stats.density(), Nmse(sale, dense));

  // 16 blocks of 64: block i reads i - {0, 1, 2, 4, 8} and block 0.
  const std::vector<float> power = pr.Run("cpu", Power(64, 1), &power_stats);
  int64_t want = 0;
  for (int i = 0; i < 16; ++i) {
    for (int j = 0; j <= i; ++j) {
      const int d = i - j;
      want += (d == 0 || (d & (d - 1)) == 0 || j == 0) ? 1 : 0;
    }
  }
  EXPECT_EQ(power_stats.computed_blocks, 3 * want);
  EXPECT_EQ(power_stats.causal_blocks, 3 * 16 * 17 / 2);
  // The reference agrees on the counts.
  AttentionStats ref_stats;
  pr.Run("cpu_ref", Power(64, 1), &ref_stats);
  EXPECT_EQ(ref_stats.computed_blocks, power_stats.computed_blocks);
}

TEST(AttentionPrefillTest, SaleBelowMinTokensIsDense) {
  Problem pr(200, 200, 9, 3, 64, 3);
  SparseConfig c = Sale(0.5f);
  c.sale_min_tokens = 1024;
  AttentionStats stats;
  EXPECT_EQ(pr.Run("cpu_ref", c, &stats), pr.Run("cpu_ref", SparseConfig{}));
  EXPECT_EQ(stats.density(), 1.0);
}

TEST(AttentionPrefillTest, BadConfigIsInvalidArgument) {
  Problem pr(8, 8, 9, 3, 64, 4);
  for (const char* backend : {"cpu_ref", "cpu"}) {
    absl::Status s;
    SparseConfig c = Sale(-1.0f);
    pr.Run(backend, c, nullptr, &s);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("sale_threshold"));
    c = Power(0, 1);
    pr.Run(backend, c, nullptr, &s);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    c.method = static_cast<SparseMethod>(9);
    pr.Run(backend, c, nullptr, &s);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  }
}

}  // namespace
}  // namespace tandem::kernels

namespace tandem::kernels {
namespace {

// Degenerate inputs are answered, never read or written out of bounds: no keys at all (the stats
// path once indexed an empty block table), and NaN/Inf in Q and K (SALE's int4 estimate once cast
// a NaN to int8).
TEST(AttentionPrefillTest, EmptyKeysAndNonFiniteInputsAreSafe) {
  for (const char* backend : {"cpu_ref", "cpu"}) {
    for (const SparseConfig& config : {SparseConfig{}, Sale(0.008f), Power(16, 1)}) {
      Problem empty(/*nq=*/0, /*nkv=*/0, 4, 2, 64, /*seed=*/5);
      AttentionStats stats;
      absl::Status status;
      empty.Run(backend, config, &stats, &status);
      EXPECT_EQ(stats.computed_blocks, 0) << backend << " " << status;

      Problem bad(/*nq=*/64, /*nkv=*/64, 4, 2, 64, /*seed=*/6);
      bad.q[3] = std::numeric_limits<float>::quiet_NaN();
      bad.k[70] = std::numeric_limits<float>::infinity();
      bad.Run(backend, config, &stats, &status);  // any Status is fine; UB/crash is not
    }
  }
}

}  // namespace
}  // namespace tandem::kernels
