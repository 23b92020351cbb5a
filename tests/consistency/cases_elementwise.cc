// rmsnorm, rope, swiglu, softmax and row_distance cases.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/consistency/cases.h"

namespace tandem::kernels::testing {
namespace {

class RmsNormCase : public OpCase {
 public:
  RmsNormCase(int64_t n, int64_t d, bool in_place) : n_(n), d_(d), in_place_(in_place) {}

  std::string Op() const override { return std::string(RmsNormParams::kName); }
  std::string Vars() const override {
    return absl::StrCat("n=", n_, ",d=", d_, ",in_place=", in_place_ ? 1 : 0);
  }
  double Flops() const override { return 4.0 * n_ * d_; }

  void MakeInputs(std::mt19937& rng) override {
    FillUniform(Add("x", DType::kF32, {n_, d_}, in_place_ ? Role::kOut : Role::kIn), rng, -2, 2);
    FillUniform(Add("weight", DType::kF32, {d_}, Role::kIn), rng, 0.5f, 1.5f);
    if (!in_place_) FillUniform(Add("out", DType::kF32, {n_, d_}, Role::kOut), rng, -1, 1);
  }
  OpCall MakeCall(const std::vector<TensorView>& v) override {
    return RmsNormParams{.x = v[0], .weight = v[1], .out = in_place_ ? v[0] : v[2], .eps = 1e-5f};
  }

 private:
  int64_t n_, d_;
  bool in_place_;
};

class RopeCase : public OpCase {
 public:
  RopeCase(RopeStyle style, int64_t n, int64_t heads, int64_t hd, int n_rot, bool large)
      : style_(style), n_(n), heads_(heads), hd_(hd), n_rot_(n_rot), large_(large) {}

  std::string Op() const override { return std::string(RopeParams::kName); }
  std::string Vars() const override {
    return absl::StrCat("style=", style_ == RopeStyle::kAdjacentPairs ? "adjacent" : "half_split",
                        ",n=", n_, ",heads=", heads_, ",hd=", hd_, ",n_rot=", n_rot_,
                        ",pos=", large_ ? "large" : "seq");
  }
  double MaxNmse() const override { return large_ ? 1e-5 : 1e-7; }
  std::string MaxNmseReason() const override {
    return large_ ? "positions up to |8192|: an fp32 angle p*base^(-2i/n) is off by up to "
                    "ulp(8192) ~ 1e-3 rad for the low frequencies (cpu_ref uses double)"
                  : "";
  }
  double Flops() const override { return 6.0 * n_ * heads_ * n_rot_ / 2; }

  void MakeInputs(std::mt19937& rng) override {
    FillUniform(Add("x", DType::kF32, {n_, heads_, hd_}, Role::kOut), rng, -1, 1);
    std::vector<int32_t> pos(static_cast<size_t>(n_));
    std::uniform_int_distribution<int32_t> any(-8192, 8192);
    for (int64_t t = 0; t < n_; ++t) pos[t] = large_ ? any(rng) : static_cast<int32_t>(t);
    if (large_ && n_ >= 3) {
      pos[0] = 8192;
      pos[1] = -8192;
      pos[2] = -1;  // a small delta re-rotation, as CacheBlend issues
    }
    SetI32(Add("positions", DType::kI32, {n_}, Role::kIn), pos);
  }
  OpCall MakeCall(const std::vector<TensorView>& v) override {
    return RopeParams{
        .x = v[0], .positions = v[1], .freq_base = 100000.0f, .n_rot = n_rot_, .style = style_};
  }

 private:
  RopeStyle style_;
  int64_t n_, heads_, hd_;
  int n_rot_;
  bool large_;
};

class SwiGluCase : public OpCase {
 public:
  SwiGluCase(int64_t n, int64_t f) : n_(n), f_(f) {}

  std::string Op() const override { return std::string(SwiGluParams::kName); }
  std::string Vars() const override { return absl::StrCat("n=", n_, ",f=", f_); }
  double Flops() const override { return 5.0 * n_ * f_; }

  void MakeInputs(std::mt19937& rng) override {
    // Wide enough that exp(-z) overflows fp32 at the negative end.
    FillUniform(Add("gate", DType::kF32, {n_, f_}, Role::kIn), rng, -100, 20);
    FillUniform(Add("up", DType::kF32, {n_, f_}, Role::kIn), rng, -3, 3);
    FillUniform(Add("out", DType::kF32, {n_, f_}, Role::kOut), rng, -1, 1);
  }
  OpCall MakeCall(const std::vector<TensorView>& v) override {
    return SwiGluParams{.gate = v[0], .up = v[1], .out = v[2]};
  }

 private:
  int64_t n_, f_;
};

class SoftmaxCase : public OpCase {
 public:
  SoftmaxCase(int64_t n, int64_t d, float scale) : n_(n), d_(d), scale_(scale) {}

  std::string Op() const override { return std::string(SoftmaxParams::kName); }
  std::string Vars() const override { return absl::StrCat("n=", n_, ",d=", d_, ",scale=", scale_); }
  double Flops() const override { return 4.0 * n_ * d_; }

  void MakeInputs(std::mt19937& rng) override {
    FillUniform(Add("x", DType::kF32, {n_, d_}, Role::kOut), rng, -30, 30);
  }
  OpCall MakeCall(const std::vector<TensorView>& v) override {
    return SoftmaxParams{.x = v[0], .scale = scale_};
  }

 private:
  int64_t n_, d_;
  float scale_;
};

// A token's reused K (or V) against the fresh one: b is a plus noise of `spread`, so rows range
// from nearly equal (the common case) to far apart.
class RowDistanceCase : public OpCase {
 public:
  RowDistanceCase(int64_t n, int64_t d) : n_(n), d_(d) {}

  std::string Op() const override { return std::string(RowDistanceParams::kName); }
  std::string Vars() const override { return absl::StrCat("n=", n_, ",d=", d_); }
  double Flops() const override { return 3.0 * n_ * d_; }

  void MakeInputs(std::mt19937& rng) override {
    CaseTensor& a = Add("a", DType::kF32, {n_, d_}, Role::kIn);
    FillUniform(a, rng, -4, 4);
    const std::vector<float> a_values(a.f32(), a.f32() + n_ * d_);
    // b = a + spread * noise: rows 0, 5, ... are identical, the others increasingly far apart.
    CaseTensor& b = Add("b", DType::kF32, {n_, d_}, Role::kIn);
    FillUniform(b, rng, -1, 1);
    for (int64_t i = 0; i < n_; ++i) {
      const float spread = static_cast<float>(i % 5) * 0.25f;
      for (int64_t j = 0; j < d_; ++j) {
        b.f32()[i * d_ + j] = a_values[i * d_ + j] + spread * b.f32()[i * d_ + j];
      }
    }
    FillUniform(Add("out", DType::kF32, {n_}, Role::kOut), rng, -1, 1);
  }
  OpCall MakeCall(const std::vector<TensorView>& v) override {
    return RowDistanceParams{.a = v[0], .b = v[1], .out = v[2]};
  }

 private:
  int64_t n_, d_;
};

}  // namespace

std::unique_ptr<OpCase> MakeRmsNormCase(int64_t n, int64_t d, bool in_place) {
  return std::make_unique<RmsNormCase>(n, d, in_place);
}
std::unique_ptr<OpCase> MakeRopeCase(RopeStyle style, int64_t n, int64_t heads, int64_t head_dim,
                                     int n_rot, bool large_positions) {
  return std::make_unique<RopeCase>(style, n, heads, head_dim, n_rot, large_positions);
}
std::unique_ptr<OpCase> MakeSwiGluCase(int64_t n, int64_t f) {
  return std::make_unique<SwiGluCase>(n, f);
}
std::unique_ptr<OpCase> MakeSoftmaxCase(int64_t n, int64_t d, float scale) {
  return std::make_unique<SoftmaxCase>(n, d, scale);
}
std::unique_ptr<OpCase> MakeRowDistanceCase(int64_t n, int64_t d) {
  return std::make_unique<RowDistanceCase>(n, d);
}

}  // namespace tandem::kernels::testing
