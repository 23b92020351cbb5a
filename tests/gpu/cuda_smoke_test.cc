// tests/gpu/cuda_smoke_test.cc
//
// A quick check of the "cuda:0" backend against cpu_ref: MatMul over every weight dtype on both the
// GEMV and the tiled path (with accumulate), and Sample (greedy and seeded top-k/top-p draws). The
// full op coverage is tests/consistency/backend_ops_test.cc. Without a device every test skips,
// except the one that checks that the absence is reported cleanly.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "common/tensor_view.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "kernels/internal/backend_factories.h"
#include "tests/support/status_matchers.h"

namespace tandem::kernels {
namespace {

using ::tandem::testing::StatusIs;

#define SKIP_WITHOUT_CUDA()                                                      \
  if (CudaDeviceCount() == 0) {                                                  \
    GTEST_SKIP() << "no CUDA device (CudaDeviceCount() == 0: no driver or GPU)"; \
  }

// Random bytes for a weight matrix of `dtype`, with every fp16/bf16 field a small finite value.
std::vector<uint8_t> RandomWeights(DType dtype, int64_t rows, int64_t cols, std::mt19937& rng) {
  const int64_t bytes = rows * DTypeRowBytes(dtype, cols);
  std::vector<uint8_t> w(static_cast<size_t>(bytes));
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> small(-0.05f, 0.05f);
  for (auto& b : w) b = static_cast<uint8_t>(byte(rng));
  auto put_half = [&](int64_t off, float v) {
    const uint16_t h = FloatToHalf(v);
    std::memcpy(&w[static_cast<size_t>(off)], &h, 2);
  };
  if (dtype == DType::kF32) {
    for (int64_t i = 0; i < rows * cols; ++i) {
      const float v = small(rng) * 20.0f;
      std::memcpy(&w[static_cast<size_t>(4 * i)], &v, 4);
    }
    return w;
  }
  if (dtype == DType::kF16 || dtype == DType::kBF16) {
    for (int64_t i = 0; i < rows * cols; ++i) {
      const float v = small(rng) * 20.0f;
      const uint16_t h = dtype == DType::kF16 ? FloatToHalf(v) : FloatToBF16(v);
      std::memcpy(&w[static_cast<size_t>(2 * i)], &h, 2);
    }
    return w;
  }
  const int64_t block_bytes = DTypeBlockBytes(dtype);
  for (int64_t off = 0; off < bytes; off += block_bytes) {
    switch (dtype) {
      case DType::kQ4_1:
      case DType::kQ5_1:
      case DType::kQ4_K:
      case DType::kQ5_K:
        put_half(off, small(rng));
        put_half(off + 2, small(rng));
        break;
      case DType::kQ6_K:
        put_half(off + 208, small(rng));
        break;
      default:  // q4_0, q5_0, q8_0: d first
        put_half(off, small(rng));
        break;
    }
  }
  return w;
}

std::vector<float> RandomFloats(int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(rng);
  return v;
}

class CudaSmokeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_WITHOUT_CUDA();
    ASSERT_OK_AND_ASSIGN(cuda_, GetBackend("cuda:0"));
    ASSERT_OK_AND_ASSIGN(ref_, GetBackend("cpu_ref"));
  }

  // Uploads host bytes into a new device buffer.
  DeviceBuffer Upload(const void* data, int64_t bytes) {
    auto buf = DeviceBuffer::Create(*cuda_, bytes);
    EXPECT_OK(buf.status());
    if (!buf.ok()) return DeviceBuffer();
    EXPECT_OK(cuda_->CopyToDevice(buf->data(), data, bytes));
    return std::move(buf).value();
  }

  KernelBackend* cuda_ = nullptr;
  KernelBackend* ref_ = nullptr;
};

TEST(CudaAvailabilityTest, AbsentDeviceIsUnavailableNotACrash) {
  if (CudaDeviceCount() > 0) GTEST_SKIP() << "a CUDA device is present";
  EXPECT_THAT(GetBackend("cuda:0"), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(CreateCudaBackend(0), StatusIs(absl::StatusCode::kUnavailable));
}

TEST_F(CudaSmokeTest, MatMulMatchesCpuRefForEveryWeightDType) {
  const DType dtypes[] = {DType::kF32,  DType::kF16,  DType::kBF16, DType::kQ4_0,
                          DType::kQ4_1, DType::kQ5_0, DType::kQ5_1, DType::kQ8_0,
                          DType::kQ4_K, DType::kQ5_K, DType::kQ6_K};
  const int64_t out = 96, in = 512;  // out: partial 64-wide tiles; in: whole k-quant blocks
  std::mt19937 rng(7);
  for (DType dtype : dtypes) {
    for (int64_t n : {1, 3, 8, 9, 70}) {  // GEMV up to 8 tokens, tiled above
      for (bool accumulate : {false, true}) {
        SCOPED_TRACE(std::string(DTypeName(dtype)) + " n=" + std::to_string(n) +
                     (accumulate ? " accumulate" : ""));
        const std::vector<uint8_t> w = RandomWeights(dtype, out, in, rng);
        const std::vector<float> x = RandomFloats(n * in, rng);
        const std::vector<float> y0 = RandomFloats(n * out, rng);

        std::vector<float> y_ref = y0;
        MatMulParams ref;
        ref.w = TensorView::Contiguous(const_cast<uint8_t*>(w.data()), dtype, {out, in});
        ref.x = TensorView::Contiguous(const_cast<float*>(x.data()), DType::kF32, {n, in});
        ref.y = TensorView::Contiguous(y_ref.data(), DType::kF32, {n, out});
        ref.accumulate = accumulate;
        ASSERT_OK(ref_->Run(ref));

        DeviceBuffer dw = Upload(w.data(), static_cast<int64_t>(w.size()));
        DeviceBuffer dx = Upload(x.data(), n * in * 4);
        DeviceBuffer dy = Upload(y0.data(), n * out * 4);
        MatMulParams p;
        p.w = dw.View(dtype, {out, in});
        p.x = dx.View(DType::kF32, {n, in});
        p.y = dy.View(DType::kF32, {n, out});
        p.accumulate = accumulate;
        ASSERT_TRUE(cuda_->Supports(p));
        ASSERT_OK(cuda_->Run(p));
        ASSERT_OK(cuda_->Synchronize());
        std::vector<float> y(static_cast<size_t>(n * out));
        ASSERT_OK(cuda_->CopyToHost(y.data(), dy.data(), n * out * 4));
        for (int64_t i = 0; i < n * out; ++i) {
          ASSERT_NEAR(y[i], y_ref[i], 1e-3f + 1e-4f * std::fabs(y_ref[i])) << "at " << i;
        }
      }
    }
  }
}

TEST_F(CudaSmokeTest, UnsupportedWeightDTypeIsInvalidArgumentNamingIt) {
  DeviceBuffer dw = Upload(std::vector<uint8_t>(36 * 4).data(), 36 * 4);
  DeviceBuffer dx = Upload(std::vector<float>(32).data(), 32 * 4);
  DeviceBuffer dy = Upload(std::vector<float>(4).data(), 4 * 4);
  MatMulParams p;
  p.w = dw.View(DType::kQ8_1, {4, 32});
  p.x = dx.View(DType::kF32, {1, 32});
  p.y = dy.View(DType::kF32, {1, 4});
  EXPECT_FALSE(cuda_->Supports(p));
  EXPECT_THAT(cuda_->Run(p), StatusIs(absl::StatusCode::kInvalidArgument, "q8_1"));
}

TEST_F(CudaSmokeTest, SampleMatchesCpuRef) {
  const int64_t vocab = 5000;
  std::mt19937 rng(11);
  std::vector<SamplingConfig> configs = {{0.0f, 0, 1.0f}, {0.8f, 0, 1.0f},  {1.0f, 40, 1.0f},
                                         {0.7f, 0, 0.9f}, {1.3f, 50, 0.8f}, {1.0f, 1, 1.0f},
                                         {0.5f, 0, 0.0f}};
  const int64_t n = static_cast<int64_t>(configs.size());
  std::vector<float> logits = RandomFloats(n * vocab, rng);
  for (auto& v : logits) v *= 6.0f;
  logits[3] = logits[7] = 50.0f;  // a tie in row 0: the lower id must win
  DeviceBuffer dl = Upload(logits.data(), n * vocab * 4);
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    std::vector<uint64_t> rng_ref(n, seed), rng_cuda(n, seed);
    std::vector<int32_t> tok_ref(n), tok_cuda(n);
    SampleParams ref{TensorView::Contiguous(logits.data(), DType::kF32, {n, vocab}), configs,
                     absl::MakeSpan(rng_ref), absl::MakeSpan(tok_ref)};
    ASSERT_OK(ref_->Run(ref));
    SampleParams p{dl.View(DType::kF32, {n, vocab}), configs, absl::MakeSpan(rng_cuda),
                   absl::MakeSpan(tok_cuda)};
    ASSERT_OK(cuda_->Run(p));
    EXPECT_EQ(tok_cuda, tok_ref) << "seed " << seed;
    EXPECT_EQ(rng_cuda, rng_ref) << "seed " << seed;
  }
}

}  // namespace
}  // namespace tandem::kernels
