// tests/gpu/flash_prefill_test.cc
//
// The bf16 tensor-core prefill path (kernels/cuda/flash_prefill.h) against the f32 AttentionPrefill
// of the "cuda:0" backend (itself checked against cpu_ref by backend_ops_test), on the same inputs
// rounded to bf16, at head_dim 128 with GQA 8/2 and 700 tokens (a partial last query tile):
// dense; sparse with every block selected == dense exactly; PowerAttention with the same blocks as
// the f32 path; SALE close to the f32 path's SALE. Skips without a CUDA device.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <utility>
#include <vector>

#include "common/dtype.h"
#include "common/tensor_view.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "kernels/cuda/flash_prefill.h"
#include "kernels/internal/backend_factories.h"
#include "kernels/op.h"
#include "tests/support/nmse.h"

namespace tandem::kernels {
namespace {

namespace fk = ::tandem::kernels::cuda;

#define SKIP_WITHOUT_CUDA()                                                      \
  if (CudaDeviceCount() == 0) {                                                  \
    GTEST_SKIP() << "no CUDA device (CudaDeviceCount() == 0: no driver or GPU)"; \
  }
#define ASSERT_CUDA(expr) ASSERT_EQ((expr), cudaSuccess) << cudaGetErrorString(expr)

constexpr int64_t kN = 700, kHeads = 8, kKvHeads = 2, kD = 128;

using ::tandem::testing::Nmse;

// Device buffer freed on scope exit.
struct DeviceBuffer {
  void* p = nullptr;
  explicit DeviceBuffer(size_t bytes) { EXPECT_EQ(cudaMalloc(&p, bytes), cudaSuccess); }
  ~DeviceBuffer() { (void)cudaFree(p); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

// Fills list entries with a valid-looking visit of keys 0..15 by every warp, so that a builder
// that left a slot unwritten (no -1 padding) changes the result instead of reading zeros.
void PoisonEntries(void* entries, size_t bytes) {
  const fk::FlashTileEntry poison{{0, 0, 0, 0}, {0xFF, 0xFF, 0xFF, 0xFF}};
  std::vector<fk::FlashTileEntry> host(bytes / sizeof(poison), poison);
  EXPECT_EQ(cudaMemcpy(entries, host.data(), host.size() * sizeof(poison), cudaMemcpyHostToDevice),
            cudaSuccess);
}

// Device room for the tile lists of `list_heads` heads, entries poisoned (PoisonEntries).
struct ListBuffers {
  explicit ListBuffers(int list_heads)
      : entries(fk::FlashTileEntriesBytes(kN, list_heads)),
        counts(fk::FlashTileCountsBytes(kN, list_heads)) {
    PoisonEntries(entries.p, fk::FlashTileEntriesBytes(kN, list_heads));
    lists.entries = static_cast<fk::FlashTileEntry*>(entries.p);
    lists.counts = static_cast<int32_t*>(counts.p);
  }
  DeviceBuffer entries, counts;
  fk::FlashTileLists lists;
};

class FlashPrefillTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (CudaDeviceCount() == 0) return;
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    // Low-noise logits (std ~0.3), an attention sink on dim 0 that every query attends, and a
    // heavy key every 150 tokens on dim 1: SALE keeps the blocks holding a heavy key (weight
    // ~0.07 against tau 0.008) and drops the rest (~3e-4), far from the threshold on both sides.
    // (A first version used logits of std ~1, where some row of every 64-row block cleared tau
    // somewhere, so SALE kept every block; tests/gpu/sale_test_density.py computes the density:
    // 0.63.)
    q_.resize(kN * kHeads * kD);
    k_.resize(kN * kKvHeads * kD);
    v_.resize(k_.size());
    for (float& x : q_) x = u(rng);
    for (float& x : k_) x = u(rng);
    for (float& x : v_) x = u(rng);
    for (int64_t r = 0; r < kN * kHeads; ++r) {
      q_[r * kD] += 6.0f;
      q_[r * kD + 1] += 3.0f;
    }
    for (int64_t r = 0; r < 32 * kKvHeads; ++r) k_[r * kD] += 10.0f;
    for (int64_t t = 75; t < kN; t += 150) {
      for (int64_t g = 0; g < kKvHeads; ++g) k_[(t * kKvHeads + g) * kD + 1] += 20.0f;
    }
    for (auto* t : {&q_, &k_, &v_}) {
      for (float& x : *t) x = BF16ToFloat(FloatToBF16(x));  // both paths see the same values
    }
    dq_ = Upload(q_);
    dk_ = Upload(k_);
    dv_ = Upload(v_);
    dout_ = std::make_unique<DeviceBuffer>(q_.size() * 2);
  }

  std::unique_ptr<DeviceBuffer> Upload(const std::vector<float>& x) {
    std::vector<uint16_t> h(x.size());
    for (size_t i = 0; i < x.size(); ++i) h[i] = FloatToBF16(x[i]);
    auto d = std::make_unique<DeviceBuffer>(h.size() * 2);
    EXPECT_EQ(cudaMemcpy(d->p, h.data(), h.size() * 2, cudaMemcpyHostToDevice), cudaSuccess);
    return d;
  }

  fk::FlashPrefillShape Shape() const {
    return fk::FlashPrefillShape{kN, static_cast<int>(kHeads), static_cast<int>(kKvHeads),
                                 1.0f / std::sqrt(static_cast<float>(kD))};
  }
  fk::FlashPrefillTensors Tensors() const { return {dq_->p, dk_->p, dv_->p, dout_->p}; }

  std::vector<float> DownloadOut() {
    std::vector<uint16_t> h(q_.size());
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(h.data(), dout_->p, h.size() * 2, cudaMemcpyDeviceToHost), cudaSuccess);
    std::vector<float> out(h.size());
    for (size_t i = 0; i < h.size(); ++i) out[i] = BF16ToFloat(h[i]);
    return out;
  }

  // The f32 op on cuda:0 over the same (bf16-valued) inputs.
  std::vector<float> RunF32(const SparseConfig& sparse, AttentionStats* stats) {
    absl::StatusOr<KernelBackend*> b = GetBackend("cuda:0");
    EXPECT_TRUE(b.ok()) << b.status();
    KernelBackend& be = **b;
    std::vector<int32_t> pos(kN);
    std::iota(pos.begin(), pos.end(), 0);
    std::vector<float> out(q_.size());
    auto up = [&](const void* src, int64_t bytes) {
      void* d = *be.Allocate(bytes);
      EXPECT_TRUE(be.CopyToDevice(d, src, bytes).ok());
      return d;
    };
    void* q = up(q_.data(), q_.size() * 4);
    void* k = up(k_.data(), k_.size() * 4);
    void* v = up(v_.data(), v_.size() * 4);
    void* o = *be.Allocate(q_.size() * 4);
    void* qp = up(pos.data(), kN * 4);
    void* kp = up(pos.data(), kN * 4);
    const Device dev{DeviceKind::kCuda, 0};
    AttentionPrefillParams p{
        .q = TensorView::Contiguous(q, DType::kF32, {kN, kHeads, kD}, dev),
        .k = TensorView::Contiguous(k, DType::kF32, {kN, kKvHeads, kD}, dev),
        .v = TensorView::Contiguous(v, DType::kF32, {kN, kKvHeads, kD}, dev),
        .out = TensorView::Contiguous(o, DType::kF32, {kN, kHeads, kD}, dev),
        .q_pos = TensorView::Contiguous(qp, DType::kI32, {kN}, dev),
        .kv_pos = TensorView::Contiguous(kp, DType::kI32, {kN}, dev),
        .scale = 1.0f / std::sqrt(static_cast<float>(kD)),
        .sparse = sparse,
        .stats = stats};
    EXPECT_TRUE(be.Run(p).ok());
    EXPECT_TRUE(be.Synchronize().ok());
    EXPECT_TRUE(be.CopyToHost(out.data(), o, out.size() * 4).ok());
    for (void* d : {q, k, v, o, qp, kp}) be.Free(d);
    return out;
  }

  std::vector<float> q_, k_, v_;
  std::unique_ptr<DeviceBuffer> dq_, dk_, dv_, dout_;
};

TEST_F(FlashPrefillTest, DenseMatchesF32Path) {
  SKIP_WITHOUT_CUDA();
  ASSERT_CUDA(fk::LaunchFlashPrefillDense(Shape(), Tensors(), nullptr));
  const std::vector<float> bf16 = DownloadOut();
  const std::vector<float> f32 = RunF32(SparseConfig{}, nullptr);
  const double nmse = Nmse(bf16, f32);
  std::printf("dense bf16 vs f32 nmse %.3g\n", nmse);
  EXPECT_LT(nmse, 2e-4);  // bf16 probabilities and output rounding (~2^-8 relative)
}

TEST_F(FlashPrefillTest, SparseWithEveryBlockEqualsDense) {
  SKIP_WITHOUT_CUDA();
  ASSERT_CUDA(fk::LaunchFlashPrefillDense(Shape(), Tensors(), nullptr));
  const std::vector<float> dense = DownloadOut();
  for (const auto& [qbs, kbs] : {std::pair{64, 64}, std::pair{64, 32}, std::pair{16, 16}}) {
    fk::FlashBlockMask mask;
    mask.q_block = qbs;
    mask.k_block = kbs;
    mask.n_qb = (kN + qbs - 1) / qbs;
    mask.n_kb = (kN + kbs - 1) / kbs;
    mask.mask_heads = kHeads;
    DeviceBuffer keep(fk::FlashMaskBytes(kN, kHeads, qbs, kbs));
    ASSERT_CUDA(cudaMemset(keep.p, 1, fk::FlashMaskBytes(kN, kHeads, qbs, kbs)));
    mask.keep = static_cast<uint8_t*>(keep.p);
    ListBuffers buffers(kHeads);
    fk::FlashTileLists& lists = buffers.lists;
    ASSERT_CUDA(cudaMemset(dout_->p, 0xFF, q_.size() * 2));
    ASSERT_CUDA(fk::LaunchBuildTileLists(Shape(), mask, &lists, nullptr));
    ASSERT_CUDA(fk::LaunchFlashPrefillSparse(Shape(), Tensors(), lists, nullptr));
    const std::vector<float> sparse = DownloadOut();
    int64_t differ = 0;
    for (size_t i = 0; i < dense.size(); ++i) differ += sparse[i] != dense[i] ? 1 : 0;
    EXPECT_EQ(differ, 0) << "mask " << qbs << "x" << kbs << ": same arithmetic, same order";
  }
}

// Gathered chunks: a random per-head mask at 16x16 granularity (the halves of a query tile keep
// different chunks, some rows keep no key at all) against masked softmax attention in double on
// the host over the same bf16 values. A row with no kept key outputs zeros.
TEST_F(FlashPrefillTest, RandomMaskMatchesHostReference) {
  SKIP_WITHOUT_CUDA();
  constexpr int kBlock = 16;
  fk::FlashBlockMask mask;
  mask.q_block = kBlock;
  mask.k_block = kBlock;
  mask.n_qb = (kN + kBlock - 1) / kBlock;
  mask.n_kb = mask.n_qb;
  mask.mask_heads = kHeads;
  std::vector<uint8_t> keep(static_cast<size_t>(kHeads * mask.n_qb * mask.n_kb));
  std::mt19937 rng(11);
  std::bernoulli_distribution kept(0.3);
  for (auto& b : keep) b = kept(rng) ? 1 : 0;
  DeviceBuffer keep_dev(keep.size());
  ASSERT_CUDA(cudaMemcpy(keep_dev.p, keep.data(), keep.size(), cudaMemcpyHostToDevice));
  mask.keep = static_cast<uint8_t*>(keep_dev.p);
  ListBuffers buffers(kHeads);
  fk::FlashTileLists& lists = buffers.lists;
  ASSERT_CUDA(cudaMemset(dout_->p, 0xFF, q_.size() * 2));  // NaN until written
  ASSERT_CUDA(fk::LaunchBuildTileLists(Shape(), mask, &lists, nullptr));
  ASSERT_CUDA(fk::LaunchFlashPrefillSparse(Shape(), Tensors(), lists, nullptr));
  const std::vector<float> got = DownloadOut();

  std::vector<float> want(q_.size(), 0.0f);
  const double scale = 1.0 / std::sqrt(static_cast<double>(kD));
  std::vector<double> logits(kN);
  for (int64_t h = 0; h < kHeads; ++h) {
    const int64_t g = h / (kHeads / kKvHeads);
    for (int64_t r = 0; r < kN; ++r) {
      const uint8_t* mrow = &keep[static_cast<size_t>((h * mask.n_qb + r / kBlock) * mask.n_kb)];
      double mx = -INFINITY;
      for (int64_t t = 0; t <= r; ++t) {
        logits[t] = -INFINITY;
        if (mrow[t / kBlock] == 0) continue;
        double dot = 0.0;
        for (int64_t d = 0; d < kD; ++d) {
          dot += double{q_[(r * kHeads + h) * kD + d]} * k_[(t * kKvHeads + g) * kD + d];
        }
        logits[t] = dot * scale;
        mx = std::max(mx, logits[t]);
      }
      if (mx == -INFINITY) continue;
      double sum = 0.0;
      std::vector<double> acc(kD, 0.0);
      for (int64_t t = 0; t <= r; ++t) {
        if (logits[t] == -INFINITY) continue;
        const double w = std::exp(logits[t] - mx);
        sum += w;
        for (int64_t d = 0; d < kD; ++d) acc[d] += w * v_[(t * kKvHeads + g) * kD + d];
      }
      for (int64_t d = 0; d < kD; ++d) {
        want[(r * kHeads + h) * kD + d] = static_cast<float>(acc[d] / sum);
      }
    }
  }
  const double nmse = Nmse(got, want);
  std::printf("random 16x16 mask (30%% kept) bf16 vs host double nmse %.3g\n", nmse);
  EXPECT_LT(nmse, 2e-4);  // NaN (an unwritten output) fails too
}

TEST_F(FlashPrefillTest, PowerMatchesF32PathBlockForBlock) {
  SKIP_WITHOUT_CUDA();
  SparseConfig c;
  c.method = SparseMethod::kPowerAttention;  // block 64, window 1, sink 1
  AttentionStats stats;
  const std::vector<float> f32 = RunF32(c, &stats);
  fk::FlashBlockMask mask;
  DeviceBuffer keep(fk::FlashMaskBytes(kN, 1, 64, 64));
  mask.keep = static_cast<uint8_t*>(keep.p);
  ListBuffers buffers(1);
  fk::FlashTileLists& lists = buffers.lists;
  ASSERT_CUDA(fk::LaunchPowerMask(Shape(), c, &mask, nullptr));
  ASSERT_CUDA(fk::LaunchBuildTileLists(Shape(), mask, &lists, nullptr));
  ASSERT_CUDA(fk::LaunchFlashPrefillSparse(Shape(), Tensors(), lists, nullptr));
  const std::vector<float> bf16 = DownloadOut();
  DeviceBuffer count(sizeof(unsigned long long));
  ASSERT_CUDA(fk::LaunchCountMask(mask, static_cast<unsigned long long*>(count.p), nullptr));
  unsigned long long kept = 0;
  ASSERT_CUDA(cudaMemcpy(&kept, count.p, sizeof(kept), cudaMemcpyDeviceToHost));
  EXPECT_EQ(static_cast<int64_t>(kept) * kHeads, stats.computed_blocks);
  const double nmse = Nmse(bf16, f32);
  std::printf("power bf16 vs f32 nmse %.3g, density %.3f\n", nmse, stats.density());
  EXPECT_LT(nmse, 2e-4);
}

TEST_F(FlashPrefillTest, SaleCloseToF32Path) {
  SKIP_WITHOUT_CUDA();
  SparseConfig c;
  c.method = SparseMethod::kSale;
  c.sale_min_tokens = 0;
  AttentionStats stats;
  const std::vector<float> f32 = RunF32(c, &stats);
  const std::vector<float> f32_dense = RunF32(SparseConfig{}, nullptr);

  const fk::FlashPrefillShape shape = Shape();
  DeviceBuffer ws_mem(fk::SaleWorkspaceBytes(shape));
  const fk::SaleWorkspace ws = fk::SaleWorkspaceCarve(shape, ws_mem.p);
  DeviceBuffer keep(fk::FlashMaskBytes(kN, kHeads, 64, 32));
  fk::FlashBlockMask mask;
  mask.keep = static_cast<uint8_t*>(keep.p);
  ListBuffers buffers(kHeads);
  fk::FlashTileLists& lists = buffers.lists;
  ASSERT_CUDA(fk::LaunchSaleQuantize(shape, Tensors(), ws, nullptr));
  ASSERT_CUDA(fk::LaunchSaleMandatoryMask(shape, c, &mask, nullptr));
  ASSERT_CUDA(fk::LaunchBuildTileLists(shape, mask, &lists, nullptr));
  ASSERT_CUDA(fk::LaunchFlashPrefillLse(shape, Tensors(), lists, ws.lse2, nullptr));
  ASSERT_CUDA(fk::LaunchSaleEstimate(shape, c, ws, mask, nullptr));
  ASSERT_CUDA(fk::LaunchBuildTileLists(shape, mask, &lists, nullptr));
  ASSERT_CUDA(fk::LaunchFlashPrefillSparse(shape, Tensors(), lists, nullptr));
  const std::vector<float> bf16 = DownloadOut();
  DeviceBuffer count(sizeof(unsigned long long));
  ASSERT_CUDA(fk::LaunchCountMask(mask, static_cast<unsigned long long*>(count.p), nullptr));
  unsigned long long kept = 0;
  ASSERT_CUDA(cudaMemcpy(&kept, count.p, sizeof(kept), cudaMemcpyDeviceToHost));
  const double density = static_cast<double>(kept) / static_cast<double>(stats.causal_blocks);
  std::printf("sale f32 density %.4f, bf16 density %.4f; nmse bf16 vs f32 sale %.3g, "
              "f32 sale vs f32 dense %.3g\n",
              stats.density(), density, Nmse(bf16, f32), Nmse(f32, f32_dense));
  // The K mean (f32 vs double) and the threshold (bf16 tensor cores vs double) differ in the last
  // bits, so a block at the threshold may flip; such a block carries a weight of about tau.
  EXPECT_NEAR(density, stats.density(), 0.02);
  EXPECT_LT(density, 0.9);
  EXPECT_LT(Nmse(bf16, f32), 1e-3);
}

}  // namespace
}  // namespace tandem::kernels
