// matmul and embedding cases.
#include <string>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "tests/consistency/cases.h"

namespace tandem::kernels::testing {
namespace {

class MatMulCase : public OpCase {
 public:
  MatMulCase(DType w, int64_t n, int64_t in, int64_t out, bool acc)
      : w_(w), n_(n), in_(in), out_(out), acc_(acc) {}

  std::string Op() const override { return std::string(MatMulParams::kName); }
  std::string Vars() const override {
    return absl::StrCat("type=", AV(DTypeName(w_)), ",n=", n_, ",in=", in_, ",out=", out_,
                        ",acc=", acc_ ? 1 : 0);
  }
  double MaxNmse() const override {
    if (DTypeIsQuantized(w_)) return 5e-4;
    if (w_ == DType::kBF16) return 5e-5;
    if (w_ == DType::kF16) return 1e-6;
    return 1e-7;
  }
  std::string MaxNmseReason() const override {
    if (DTypeIsQuantized(w_)) {
      return "fast paths quantize x to Q8_0/Q8_1/Q8_K blocks for integer dot products (llama.cpp's "
             "vec_dot_type): rounding x to 1/254 of its block max gives NMSE ~2e-5";
    }
    if (w_ == DType::kBF16) return "x may be rounded to bf16 (8-bit mantissa): NMSE ~5e-6";
    if (w_ == DType::kF16) return "x may be rounded to f16 (11-bit mantissa): NMSE ~1e-7";
    return "";
  }
  double Flops() const override { return 2.0 * n_ * in_ * out_; }

  void MakeInputs(std::mt19937& rng) override {
    FillWeights(Add("w", w_, {out_, in_}, Role::kIn), rng);
    FillUniform(Add("x", DType::kF32, {n_, in_}, Role::kIn), rng, -1.0f, 1.0f);
    FillUniform(Add("y", DType::kF32, {n_, out_}, Role::kOut), rng, -1.0f, 1.0f);
  }
  OpCall MakeCall(const std::vector<TensorView>& v) override {
    return MatMulParams{.w = v[0], .x = v[1], .y = v[2], .accumulate = acc_};
  }

 private:
  DType w_;
  int64_t n_, in_, out_;
  bool acc_;
};

class EmbeddingCase : public OpCase {
 public:
  EmbeddingCase(DType t, int64_t vocab, int64_t d, int64_t n)
      : t_(t), vocab_(vocab), d_(d), n_(n) {}

  std::string Op() const override { return std::string(EmbeddingParams::kName); }
  std::string Vars() const override {
    return absl::StrCat("type=", AV(DTypeName(t_)), ",vocab=", vocab_, ",d=", d_, ",n=", n_);
  }
  // Only the gathered rows are read.
  double Bytes() const override {
    return static_cast<double>(n_) * (DTypeRowBytes(t_, d_) + 4 * d_ + 4);
  }

  void MakeInputs(std::mt19937& rng) override {
    FillWeights(Add("table", t_, {vocab_, d_}, Role::kIn), rng);
    std::vector<int32_t> ids(static_cast<size_t>(n_));
    std::uniform_int_distribution<int32_t> id(0, static_cast<int32_t>(vocab_ - 1));
    for (int32_t& i : ids) i = id(rng);
    ids.front() = 0;  // both ends of the table
    ids.back() = static_cast<int32_t>(vocab_ - 1);
    SetI32(Add("ids", DType::kI32, {n_}, Role::kIn), ids);
    FillUniform(Add("out", DType::kF32, {n_, d_}, Role::kOut), rng, -1.0f, 1.0f);
  }
  OpCall MakeCall(const std::vector<TensorView>& v) override {
    return EmbeddingParams{.table = v[0], .ids = v[1], .out = v[2]};
  }

 private:
  DType t_;
  int64_t vocab_, d_, n_;
};

}  // namespace

std::unique_ptr<OpCase> MakeMatMulCase(DType w, int64_t n, int64_t in, int64_t out,
                                       bool accumulate) {
  return std::make_unique<MatMulCase>(w, n, in, out, accumulate);
}

std::unique_ptr<OpCase> MakeEmbeddingCase(DType table, int64_t vocab, int64_t d, int64_t n) {
  return std::make_unique<EmbeddingCase>(table, vocab, d, n);
}

}  // namespace tandem::kernels::testing
