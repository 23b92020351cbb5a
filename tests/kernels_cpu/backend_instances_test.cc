// NewBackend (kernels/backend.h): backend instances owned by their caller, one per thread, as TPLA
// ranks running as threads need them. Two instances of one backend run the same ops, a Q4_1
// matmul (the cpu backend quantizes activations into per-instance scratch) and SALE prefill
// attention, from two std::threads at once, each thread on its own inputs, and every result must
// be bit-identical to a run alone. (Both threads on one "cpu" instance fail this test: their
// activations mix in the shared scratch.) Also the registry's answers for names that do not
// resolve to a backend.
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/dtype.h"
#include "common/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "tests/support/status_matchers.h"

namespace tandem::kernels {
namespace {

using ::tandem::testing::StatusIs;

constexpr int64_t kTokens = 256, kHeads = 4, kKvHeads = 2, kHeadDim = 64;  // attention
constexpr int64_t kRows = 32, kIn = 576, kOut = 768;                       // matmul
constexpr int kRepeats = 8;  // runs per thread, so that the two threads overlap

// Host inputs of the workload, from a seed.
struct Inputs {
  std::vector<uint8_t> w;  // [kOut, kIn] q4_1
  std::vector<float> x;    // [kRows, kIn]
  std::vector<float> q;    // [kTokens, kHeads, kHeadDim]
  std::vector<float> k, v;  // [kTokens, kKvHeads, kHeadDim]
  std::vector<int32_t> pos;  // 0..kTokens-1, for queries and keys

  explicit Inputs(uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    auto fill = [&](std::vector<float>& t, int64_t n) {
      t.resize(static_cast<size_t>(n));
      for (float& f : t) f = uniform(rng);
    };
    fill(x, kRows * kIn);
    fill(q, kTokens * kHeads * kHeadDim);
    fill(k, kTokens * kKvHeads * kHeadDim);
    fill(v, kTokens * kKvHeads * kHeadDim);
    for (int32_t t = 0; t < kTokens; ++t) pos.push_back(t);
    // Q4_1 blocks of 32 weights: f16 scale d, f16 minimum m, 16 bytes of 4-bit quants.
    w.resize(static_cast<size_t>(DTypeRowBytes(DType::kQ4_1, kOut * kIn)));
    std::uniform_int_distribution<int> byte(0, 255);
    for (uint8_t& b : w) b = static_cast<uint8_t>(byte(rng));
    const size_t block_bytes = static_cast<size_t>(DTypeBlockBytes(DType::kQ4_1));
    for (size_t off = 0; off < w.size(); off += block_bytes) {
      const uint16_t d = FloatToHalf(0.01f), m = FloatToHalf(-0.08f);
      std::memcpy(&w[off], &d, 2);
      std::memcpy(&w[off + 2], &m, 2);
    }
  }
};

// The matmul output followed by the attention output, read back from `backend`.
absl::StatusOr<std::vector<float>> RunWorkload(KernelBackend& backend, const Inputs& in) {
  std::vector<DeviceBuffer> buffers;
  auto upload = [&](const void* data, int64_t bytes) -> absl::StatusOr<void*> {
    TANDEM_ASSIGN_OR_RETURN(DeviceBuffer buf, DeviceBuffer::Create(backend, bytes));
    TANDEM_RETURN_IF_ERROR(backend.CopyToDevice(buf.data(), data, bytes));
    buffers.push_back(std::move(buf));
    return buffers.back().data();
  };
  auto bytes = [](const auto& v) { return static_cast<int64_t>(v.size() * sizeof(v[0])); };
  const Device dev = backend.device();
  auto view = [&](void* p, DType t, std::initializer_list<int64_t> shape) {
    return TensorView::Contiguous(p, t, shape, dev);
  };
  TANDEM_ASSIGN_OR_RETURN(void* w, upload(in.w.data(), bytes(in.w)));
  TANDEM_ASSIGN_OR_RETURN(void* x, upload(in.x.data(), bytes(in.x)));
  TANDEM_ASSIGN_OR_RETURN(void* q, upload(in.q.data(), bytes(in.q)));
  TANDEM_ASSIGN_OR_RETURN(void* k, upload(in.k.data(), bytes(in.k)));
  TANDEM_ASSIGN_OR_RETURN(void* v, upload(in.v.data(), bytes(in.v)));
  TANDEM_ASSIGN_OR_RETURN(void* pos, upload(in.pos.data(), bytes(in.pos)));
  const int64_t y_elems = kRows * kOut, out_elems = kTokens * kHeads * kHeadDim;
  TANDEM_ASSIGN_OR_RETURN(DeviceBuffer y, DeviceBuffer::Create(backend, y_elems * 4));
  TANDEM_ASSIGN_OR_RETURN(DeviceBuffer out, DeviceBuffer::Create(backend, out_elems * 4));

  TANDEM_RETURN_IF_ERROR(backend.Run(MatMulParams{.w = view(w, DType::kQ4_1, {kOut, kIn}),
                                                  .x = view(x, DType::kF32, {kRows, kIn}),
                                                  .y = y.View(DType::kF32, {kRows, kOut}),
                                                  .accumulate = false}));
  SparseConfig sale;  // sink, window and estimated blocks at this length
  sale.method = SparseMethod::kSale;
  sale.sale_min_tokens = 0;
  const AttentionPrefillParams attention{
      .q = view(q, DType::kF32, {kTokens, kHeads, kHeadDim}),
      .k = view(k, DType::kF32, {kTokens, kKvHeads, kHeadDim}),
      .v = view(v, DType::kF32, {kTokens, kKvHeads, kHeadDim}),
      .out = out.View(DType::kF32, {kTokens, kHeads, kHeadDim}),
      .q_pos = view(pos, DType::kI32, {kTokens}),
      .kv_pos = view(pos, DType::kI32, {kTokens}),
      .scale = 0.125f,
      .sparse = sale,
      .stats = nullptr};
  TANDEM_RETURN_IF_ERROR(backend.Run(attention));
  TANDEM_RETURN_IF_ERROR(backend.Synchronize());
  std::vector<float> result(static_cast<size_t>(y_elems + out_elems));
  TANDEM_RETURN_IF_ERROR(backend.CopyToHost(result.data(), y.data(), y_elems * 4));
  TANDEM_RETURN_IF_ERROR(backend.CopyToHost(result.data() + y_elems, out.data(), out_elems * 4));
  return result;
}

// Runs each thread's workload (same ops, its own inputs, so that state shared by mistake would
// mix them) on an instance of `name` alone, then on two fresh instances from two threads at once.
void ExpectConcurrentRunsMatchAlone(const std::string& name) {
  const Inputs inputs[2] = {Inputs(7), Inputs(8)};
  const BackendOptions options{.cpu_threads = 1};
  std::vector<float> want[2];
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<KernelBackend> alone, NewBackend(name, options));
    for (int t = 0; t < 2; ++t) {
      ASSERT_OK_AND_ASSIGN(want[t], RunWorkload(*alone, inputs[t]));
    }
  }
  ASSERT_NE(want[0], want[1]);

  std::unique_ptr<KernelBackend> instances[2];
  for (auto& instance : instances) {
    ASSERT_OK_AND_ASSIGN(instance, NewBackend(name, options));
  }
  ASSERT_NE(instances[0].get(), instances[1].get());
  std::vector<absl::StatusOr<std::vector<float>>> got[2];
  auto work = [&](int t) {
    for (int i = 0; i < kRepeats; ++i) got[t].push_back(RunWorkload(*instances[t], inputs[t]));
  };
  std::thread t0(work, 0);
  std::thread t1(work, 1);
  t0.join();
  t1.join();
  for (int t = 0; t < 2; ++t) {
    ASSERT_EQ(got[t].size(), static_cast<size_t>(kRepeats));
    for (int i = 0; i < kRepeats; ++i) {
      ASSERT_OK(got[t][i].status());
      EXPECT_TRUE(*got[t][i] == want[t]) << name << ": thread " << t << ", run " << i
                                         << " differs from the run alone";
    }
  }
}

TEST(BackendInstancesTest, CpuInstancesRunConcurrentlyAndMatchARunAlone) {
  ExpectConcurrentRunsMatchAlone("cpu");
}

TEST(BackendInstancesTest, CpuRefInstancesRunConcurrentlyAndMatchARunAlone) {
  ExpectConcurrentRunsMatchAlone("cpu_ref");
}

TEST(BackendInstancesTest, CudaInstancesRunConcurrentlyAndMatchARunAlone) {
  absl::StatusOr<std::unique_ptr<KernelBackend>> probe = NewBackend("cuda:0");
  if (!probe.ok()) GTEST_SKIP() << "no CUDA backend: " << probe.status().ToString();
  ExpectConcurrentRunsMatchAlone("cuda:0");
}

TEST(BackendInstancesTest, InstancesAreNotTheSharedBackends) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<KernelBackend> cpu, NewBackend("cpu"));
  ASSERT_OK_AND_ASSIGN(KernelBackend * shared, GetBackend("cpu"));
  EXPECT_NE(cpu.get(), shared);
  EXPECT_EQ(cpu->Name(), "cpu");
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<KernelBackend> ref, NewBackend("cpu_ref"));
  EXPECT_EQ(ref->Name(), "cpu_ref");
}

TEST(BackendInstancesTest, NamesThatDoNotResolve) {
  EXPECT_THAT(NewBackend("tpu"), StatusIs(absl::StatusCode::kNotFound, "cpu_ref, cpu, cuda"));
  EXPECT_THAT(NewBackend("cuda:x"), StatusIs(absl::StatusCode::kNotFound));
  // Never a device this machine has, whether or not it has CUDA.
  EXPECT_THAT(NewBackend("cuda:4096"), StatusIs(absl::StatusCode::kUnavailable));
  absl::StatusOr<std::unique_ptr<KernelBackend>> cuda = NewBackend("cuda:0");
  if (!cuda.ok()) {
    EXPECT_THAT(cuda, StatusIs(absl::StatusCode::kUnavailable));
  }
  EXPECT_THAT(NewBackend("cpu", BackendOptions{.cpu_threads = -1}),
              StatusIs(absl::StatusCode::kInvalidArgument, "cpu_threads=-1"));
}

}  // namespace
}  // namespace tandem::kernels
