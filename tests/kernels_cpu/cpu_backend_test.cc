// Checks the "cpu" backend against cpu_ref on every op it accelerates, for each ISA variant this
// machine runs (TANDEM_CPU_ISA forces the lower ones), plus malformed-input errors. The Perf test
// prints achieved bandwidth / FLOP rates for hand runs; it asserts only correctness.
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "kernels/internal/backend_factories.h"
#include "tests/support/nmse.h"

namespace tandem::kernels {
namespace {

using ::tandem::testing::Nmse;

std::vector<float> RandomFloats(std::mt19937& rng, int64_t n, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

void PutHalf(uint8_t* p, float f) {
  const uint16_t h = FloatToHalf(f);
  std::memcpy(p, &h, 2);
}

// Random weight rows with valid (finite, modest) fp16 scale fields for every block format.
std::vector<uint8_t> RandomWeights(std::mt19937& rng, DType dt, int64_t rows, int64_t cols) {
  const int64_t row_bytes = DTypeRowBytes(dt, cols);
  std::vector<uint8_t> w(static_cast<size_t>(rows * row_bytes));
  if (dt == DType::kF32 || dt == DType::kF16 || dt == DType::kBF16) {
    const std::vector<float> f = RandomFloats(rng, rows * cols);
    for (int64_t i = 0; i < rows * cols; ++i) {
      if (dt == DType::kF32) std::memcpy(&w[i * 4], &f[i], 4);
      if (dt == DType::kF16) PutHalf(&w[i * 2], f[i]);
      if (dt == DType::kBF16) {
        const uint16_t b = FloatToBF16(f[i]);
        std::memcpy(&w[i * 2], &b, 2);
      }
    }
    return w;
  }
  std::uniform_int_distribution<int> byte(0, 255);
  for (auto& b : w) b = static_cast<uint8_t>(byte(rng));
  std::uniform_real_distribution<float> scale(0.001f, 0.05f);
  const int64_t bb = DTypeBlockBytes(dt);
  for (int64_t off = 0; off < static_cast<int64_t>(w.size()); off += bb) {
    uint8_t* blk = &w[off];
    switch (dt) {
      case DType::kQ4_1:
      case DType::kQ5_1:
      case DType::kQ4_K:
      case DType::kQ5_K:
        PutHalf(blk, scale(rng));
        PutHalf(blk + 2, -scale(rng) * 4);
        break;
      case DType::kQ6_K:
        PutHalf(blk + 208, scale(rng));
        break;
      default:
        PutHalf(blk, scale(rng));
        break;  // q4_0, q5_0, q8_0: d first
    }
  }
  return w;
}

class CpuBackendTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    setenv("TANDEM_CPU_ISA", GetParam().c_str(), 1);
    ref_ = CreateCpuRefBackend();
    cpu_ = CreateCpuBackend(2, ref_.get());
    unsetenv("TANDEM_CPU_ISA");
  }
  // Runs `call` (built over `outputs`) on both backends from the same inputs; returns the NMSE of
  // the first output.
  std::unique_ptr<KernelBackend> ref_;
  std::unique_ptr<KernelBackend> cpu_;
  std::mt19937 rng_{42};
};

TEST_P(CpuBackendTest, MatMulMatchesReference) {
  struct Case {
    DType dt;
    int64_t out, in;
    double tol;
  };
  const Case cases[] = {
      {DType::kQ4_1, 96, 576, 1e-4}, {DType::kQ8_0, 70, 256, 1e-4}, {DType::kF32, 33, 200, 1e-6},
      {DType::kF16, 40, 72, 1e-6},   {DType::kBF16, 17, 64, 1e-6},  {DType::kQ4_0, 24, 64, 1e-6},
      {DType::kQ5_1, 9, 96, 1e-6},   {DType::kQ6_K, 12, 512, 1e-6}, {DType::kQ4_K, 5, 256, 1e-6},
  };
  for (const Case& c : cases) {
    for (int64_t n : {1, 2, 5, 9}) {
      for (bool accumulate : {false, true}) {
        std::vector<uint8_t> w = RandomWeights(rng_, c.dt, c.out, c.in);
        std::vector<float> x = RandomFloats(rng_, n * c.in);
        std::vector<float> y0 = RandomFloats(rng_, n * c.out);
        std::vector<float> y_ref = y0, y_cpu = y0;
        MatMulParams p;
        p.w = TensorView::Contiguous(w.data(), c.dt, {c.out, c.in});
        p.x = TensorView::Contiguous(x.data(), DType::kF32, {n, c.in});
        p.accumulate = accumulate;
        p.y = TensorView::Contiguous(y_ref.data(), DType::kF32, {n, c.out});
        ASSERT_TRUE(ref_->Run(p).ok());
        p.y = TensorView::Contiguous(y_cpu.data(), DType::kF32, {n, c.out});
        ASSERT_TRUE(cpu_->Run(p).ok());
        const double e = Nmse(y_cpu, y_ref);
        EXPECT_LT(e, c.tol) << DTypeName(c.dt) << " n=" << n << " acc=" << accumulate;
        if (n == 5 && !accumulate) std::printf("matmul %s nmse %.3g\n", DTypeName(c.dt).data(), e);
      }
    }
  }
}

TEST_P(CpuBackendTest, MatMulRejectsMismatchedShapes) {
  std::vector<float> w(64 * 8), x(2 * 32), y(2 * 8);
  MatMulParams p;
  p.w = TensorView::Contiguous(w.data(), DType::kF32, {8, 64});
  p.x = TensorView::Contiguous(x.data(), DType::kF32, {2, 32});
  p.y = TensorView::Contiguous(y.data(), DType::kF32, {2, 8});
  EXPECT_EQ(cpu_->Run(p).code(), absl::StatusCode::kInvalidArgument);
}

struct AttnSetup {
  int64_t n_heads = 9, n_kv = 3, hd = 64, page_tokens = 16, num_pages = 0;
  DType dt = DType::kF16;
  std::vector<int32_t> q_seq, q_pos, page_table;
  int64_t max_pages = 0;
};

void RunAttention(KernelBackend& b, const AttnSetup& s, std::vector<float>& q,
                  std::vector<uint8_t>& kp, std::vector<uint8_t>& vp, std::vector<float>& out,
                  absl::Status* status) {
  const int64_t n = static_cast<int64_t>(s.q_seq.size());
  PagedAttentionParams p;
  p.q = TensorView::Contiguous(q.data(), DType::kF32, {n, s.n_heads, s.hd});
  p.k_pool = TensorView::Contiguous(kp.data(), s.dt, {s.num_pages, s.page_tokens, s.n_kv, s.hd});
  p.v_pool = TensorView::Contiguous(vp.data(), s.dt, {s.num_pages, s.page_tokens, s.n_kv, s.hd});
  p.out = TensorView::Contiguous(out.data(), DType::kF32, {n, s.n_heads, s.hd});
  p.q_seq = TensorView::Contiguous(const_cast<int32_t*>(s.q_seq.data()), DType::kI32, {n});
  p.q_pos = TensorView::Contiguous(const_cast<int32_t*>(s.q_pos.data()), DType::kI32, {n});
  const int64_t n_seqs = static_cast<int64_t>(s.page_table.size()) / s.max_pages;
  p.page_table = TensorView::Contiguous(const_cast<int32_t*>(s.page_table.data()), DType::kI32,
                                        {n_seqs, s.max_pages});
  p.scale = 0.125f;
  *status = b.Run(p);
}

TEST_P(CpuBackendTest, PagedAttentionMatchesReference) {
  for (DType dt : {DType::kF16, DType::kF32}) {
    // Two sequences: one prefill chunk of 40 tokens at positions 10..49, one decode at 1000
    // (long enough for split-K), on shuffled pages.
    AttnSetup s;
    s.dt = dt;
    s.max_pages = 64;
    s.num_pages = 2 * s.max_pages;
    std::vector<int32_t> pages(static_cast<size_t>(s.num_pages));
    std::iota(pages.begin(), pages.end(), 0);
    std::shuffle(pages.begin(), pages.end(), rng_);
    s.page_table = pages;
    for (int t = 0; t < 40; ++t) {
      s.q_seq.push_back(0);
      s.q_pos.push_back(10 + t);
    }
    s.q_seq.push_back(1);
    s.q_pos.push_back(1000);
    const int64_t n = static_cast<int64_t>(s.q_seq.size());
    std::vector<float> q = RandomFloats(rng_, n * s.n_heads * s.hd, -2, 2);
    const int64_t pool_elems = s.num_pages * s.page_tokens * s.n_kv * s.hd;
    const int64_t esize = dt == DType::kF16 ? 2 : 4;
    std::vector<uint8_t> kp(static_cast<size_t>(pool_elems * esize)), vp(kp.size());
    const std::vector<float> kf = RandomFloats(rng_, pool_elems, -2, 2);
    const std::vector<float> vf = RandomFloats(rng_, pool_elems);
    for (int64_t i = 0; i < pool_elems; ++i) {
      if (esize == 2) {
        PutHalf(&kp[i * 2], kf[i]);
        PutHalf(&vp[i * 2], vf[i]);
      } else {
        std::memcpy(&kp[i * 4], &kf[i], 4);
        std::memcpy(&vp[i * 4], &vf[i], 4);
      }
    }
    std::vector<float> out_ref(q.size()), out_cpu(q.size());
    absl::Status st;
    RunAttention(*ref_, s, q, kp, vp, out_ref, &st);
    ASSERT_TRUE(st.ok()) << st;
    RunAttention(*cpu_, s, q, kp, vp, out_cpu, &st);
    ASSERT_TRUE(st.ok()) << st;
    const double e = Nmse(out_cpu, out_ref);
    EXPECT_LT(e, 1e-6) << DTypeName(dt);
    std::printf("paged_attention %s nmse %.3g\n", DTypeName(dt).data(), e);

    // A page index out of range is rejected before anything is written.
    AttnSetup bad = s;
    bad.page_table[1 * bad.max_pages + 3] = static_cast<int32_t>(bad.num_pages);
    RunAttention(*cpu_, bad, q, kp, vp, out_cpu, &st);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
  }
}

TEST_P(CpuBackendTest, ElementwiseOpsMatchReference) {
  const int64_t n = 7, d = 576;
  auto both = [&](auto make, std::vector<float> init, const char* name, double tol) {
    std::vector<float> a = init, b = init;
    ASSERT_TRUE(ref_->Run(make(a)).ok()) << name;
    ASSERT_TRUE(cpu_->Run(make(b)).ok()) << name;
    const double e = Nmse(b, a);
    EXPECT_LT(e, tol) << name;
    std::printf("%s nmse %.3g\n", name, e);
  };
  const std::vector<float> w = RandomFloats(rng_, d, 0.5f, 1.5f);
  both(
      [&](std::vector<float>& x) -> OpCall {
        RmsNormParams p;
        p.x = TensorView::Contiguous(x.data(), DType::kF32, {n, d});
        p.out = p.x;
        p.weight = TensorView::Contiguous(const_cast<float*>(w.data()), DType::kF32, {d});
        return p;
      },
      RandomFloats(rng_, n * d, -3, 3), "rmsnorm", 1e-10);
  std::vector<int32_t> pos = {0, 1, 17, 300, 8191, -5, 4000};
  for (RopeStyle style : {RopeStyle::kAdjacentPairs, RopeStyle::kHalfSplit}) {
    both(
        [&](std::vector<float>& x) -> OpCall {
          RopeParams p;
          p.x = TensorView::Contiguous(x.data(), DType::kF32, {n, 9, 64});
          p.positions = TensorView::Contiguous(pos.data(), DType::kI32, {n});
          p.n_rot = 64;
          p.freq_base = 100000.0f;
          p.style = style;
          return p;
        },
        RandomFloats(rng_, n * 9 * 64), "rope", 1e-10);
  }
  const std::vector<float> up = RandomFloats(rng_, n * 1536, -4, 4);
  both(
      [&](std::vector<float>& g) -> OpCall {
        SwiGluParams p;
        p.gate = TensorView::Contiguous(g.data(), DType::kF32, {n, 1536});
        p.up = TensorView::Contiguous(const_cast<float*>(up.data()), DType::kF32, {n, 1536});
        p.out = p.gate;
        return p;
      },
      RandomFloats(rng_, n * 1536, -20, 20), "swiglu", 1e-10);
  both(
      [&](std::vector<float>& x) -> OpCall {
        SoftmaxParams p;
        p.x = TensorView::Contiguous(x.data(), DType::kF32, {n, 1001});
        p.scale = 0.7f;
        return p;
      },
      RandomFloats(rng_, n * 1001, -30, 30), "softmax", 1e-10);
}

TEST_P(CpuBackendTest, KvWriteMatchesReferenceExactly) {
  for (DType dt : {DType::kF16, DType::kF32}) {
    const int64_t n = 5, kv = 3, hd = 64, pages = 4, pt = 8;
    std::vector<float> k = RandomFloats(rng_, n * kv * hd, -70000, 70000);
    k[3] = 1e-6f;  // f16 subnormal
    std::vector<float> v = RandomFloats(rng_, n * kv * hd);
    std::vector<int32_t> slots = {0, 9, 31, 8, 17};
    const size_t bytes = static_cast<size_t>(pages * pt * kv * hd * (dt == DType::kF16 ? 2 : 4));
    std::vector<uint8_t> kr(bytes), vr(bytes), kc(bytes), vc(bytes);
    auto make = [&](std::vector<uint8_t>& kp, std::vector<uint8_t>& vp) {
      KvWriteParams p;
      p.k = TensorView::Contiguous(k.data(), DType::kF32, {n, kv, hd});
      p.v = TensorView::Contiguous(v.data(), DType::kF32, {n, kv, hd});
      p.k_pool = TensorView::Contiguous(kp.data(), dt, {pages, pt, kv, hd});
      p.v_pool = TensorView::Contiguous(vp.data(), dt, {pages, pt, kv, hd});
      p.slots = TensorView::Contiguous(slots.data(), DType::kI32, {n});
      return p;
    };
    ASSERT_TRUE(ref_->Run(make(kr, vr)).ok());
    ASSERT_TRUE(cpu_->Run(make(kc, vc)).ok());
    EXPECT_EQ(kr, kc);
    EXPECT_EQ(vr, vc);
    slots[2] = static_cast<int32_t>(pages * pt);
    EXPECT_EQ(cpu_->Run(make(kc, vc)).code(), absl::StatusCode::kInvalidArgument);
  }
}

double CpuNow() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// Wall seconds per call, taking the best of 5 rounds (the machine is shared); `cpu_sec` gets the
// process CPU seconds per call of that round (both threads, spinning included).
double Seconds(const std::function<void()>& fn, int iters, double* cpu_sec = nullptr) {
  fn();
  double best = INFINITY;
  for (int round = 0; round < 5; ++round) {
    const double c0 = CpuNow();
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i) fn();
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / iters;
    if (s < best) {
      best = s;
      if (cpu_sec != nullptr) *cpu_sec = (CpuNow() - c0) / iters;
    }
  }
  return best;
}

// Hand-run numbers (disabled in ctest: it takes seconds): ./cpu_backend_test
// --gtest_also_run_disabled_tests --gtest_filter='*Perf*'. Asserts only that the ops succeed.
TEST_P(CpuBackendTest, DISABLED_Perf) {
  struct Shape {
    DType dt;
    int64_t out, in, n;
    const char* name;
  };
  const Shape shapes[] = {{DType::kQ4_1, 1536, 576, 1, "q4_1 576x1536 (gate/up)"},
                          {DType::kQ4_1, 576, 1536, 1, "q4_1 1536x576 (down)"},
                          {DType::kQ8_0, 49152, 576, 1, "q8_0 576x49152 (lm head)"},
                          {DType::kQ4_1, 1536, 576, 64, "q4_1 576x1536 n=64"},
                          {DType::kQ4_1, 576, 1536, 64, "q4_1 1536x576 n=64"}};
  for (const Shape& s : shapes) {
    // Enough distinct copies of the weights that they do not sit in cache (> 64 MB).
    const int64_t row_bytes = DTypeRowBytes(s.dt, s.in);
    const int64_t copies = s.n == 1 ? std::max<int64_t>(1, (96 << 20) / (row_bytes * s.out)) : 1;
    std::vector<uint8_t> w1 = RandomWeights(rng_, s.dt, s.out, s.in);
    std::vector<uint8_t> w(w1.size() * copies);
    for (int64_t c = 0; c < copies; ++c) std::memcpy(&w[c * w1.size()], w1.data(), w1.size());
    std::vector<float> x = RandomFloats(rng_, s.n * s.in), y(static_cast<size_t>(s.n * s.out));
    int64_t c = 0;
    double cpu_sec = 0;
    const double sec = Seconds(
        [&] {
          MatMulParams p;
          p.w = TensorView::Contiguous(&w[(c++ % copies) * w1.size()], s.dt, {s.out, s.in});
          p.x = TensorView::Contiguous(x.data(), DType::kF32, {s.n, s.in});
          p.y = TensorView::Contiguous(y.data(), DType::kF32, {s.n, s.out});
          ASSERT_TRUE(cpu_->Run(p).ok());
        },
        s.n == 1 ? 100 : 10, &cpu_sec);
    std::printf("[%s] %-28s %8.1f us  %6.2f GB/s  %7.2f GFLOP/s  (%.0f us cpu)\n",
                GetParam().c_str(), s.name, sec * 1e6, w1.size() / sec / 1e9,
                2.0 * s.n * s.out * s.in / sec / 1e9, cpu_sec * 1e6);
  }
  // Read bandwidth the same way: both threads summing disjoint halves of a 96 MB buffer.
  std::vector<float> big(static_cast<size_t>(24 << 20), 1.0f);
  MatMulParams p;  // an f32 "matvec" with n = 1 over 96 MB: reads every byte once
  std::vector<float> x1(4096, 1.0f), y1(6144);
  p.w = TensorView::Contiguous(big.data(), DType::kF32, {6144, 4096});
  p.x = TensorView::Contiguous(x1.data(), DType::kF32, {1, 4096});
  p.y = TensorView::Contiguous(y1.data(), DType::kF32, {1, 6144});
  const double sec = Seconds([&] { ASSERT_TRUE(cpu_->Run(p).ok()); }, 3);
  std::printf("[%s] f32 read 96MB (bandwidth)     %8.1f us  %6.2f GB/s\n", GetParam().c_str(),
              sec * 1e6, big.size() * 4.0 / sec / 1e9);
  const double msec =
      Seconds([&] { std::memcpy(big.data(), big.data() + big.size() / 2, big.size() * 2); }, 2);
  // Dispatch overhead: a matmul so small that the pool's round trip dominates.
  std::vector<float> wt(16 * 64, 0.5f), xt(64, 1.0f), yt(16);
  MatMulParams tiny;
  tiny.w = TensorView::Contiguous(wt.data(), DType::kF32, {16, 64});
  tiny.x = TensorView::Contiguous(xt.data(), DType::kF32, {1, 64});
  tiny.y = TensorView::Contiguous(yt.data(), DType::kF32, {1, 16});
  const double tsec = Seconds([&] { ASSERT_TRUE(cpu_->Run(tiny).ok()); }, 2000);
  std::printf("[%s] tiny 16x64 matmul (dispatch round trip): %.2f us\n", GetParam().c_str(),
              tsec * 1e6);
  // Attention: one decode token at 2048 context, and a 512-token prefill, f16 pools.
  for (int64_t prefill : {int64_t{1}, int64_t{512}}) {
    AttnSetup a;
    a.max_pages = 2048 / a.page_tokens;
    a.num_pages = a.max_pages;
    for (int32_t i = 0; i < a.num_pages; ++i) a.page_table.push_back(i);
    for (int64_t t = 0; t < prefill; ++t) {
      a.q_seq.push_back(0);
      a.q_pos.push_back(static_cast<int32_t>(prefill == 1 ? 2047 : t));
    }
    std::vector<float> q = RandomFloats(rng_, prefill * 9 * 64);
    std::vector<uint8_t> kp(static_cast<size_t>(a.num_pages * a.page_tokens * 3 * 64 * 2)),
        vp(kp.size());
    for (size_t i = 0; i < kp.size(); i += 2) {
      PutHalf(&kp[i], 0.01f * (i % 97));
      PutHalf(&vp[i], 0.01f * (i % 89));
    }
    std::vector<float> out(q.size());
    absl::Status st;
    double acpu = 0;
    const double asec =
        Seconds([&] { RunAttention(*cpu_, a, q, kp, vp, out, &st); }, prefill == 1 ? 50 : 2, &acpu);
    ASSERT_TRUE(st.ok()) << st;
    const double flops = prefill == 1 ? 4.0 * 9 * 64 * 2048 : 4.0 * 9 * 64 * prefill * prefill / 2;
    std::printf("[%s] attention %s: %.1f us, %.2f GFLOP/s (%.0f us cpu)\n", GetParam().c_str(),
                prefill == 1 ? "decode ctx 2048" : "prefill 512", asec * 1e6, flops / asec / 1e9,
                acpu * 1e6);
  }
  std::printf("memcpy 48MB single thread: %.2f GB/s (read+write)\n", big.size() * 4.0 / msec / 1e9);
}

INSTANTIATE_TEST_SUITE_P(Isa, CpuBackendTest, ::testing::Values("auto", "avx2"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace tandem::kernels
