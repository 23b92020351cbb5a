// The harness must be able to fail: a deliberately faulty backend (cpu_ref plus one injected fault)
// is run through RunOnBackend() and Compare(), and each fault must be reported.
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "tests/consistency/cases.h"
#include "tests/consistency/op_case.h"
#include "tests/support/status_matchers.h"

namespace tandem::kernels::testing {
namespace {

enum class Fault {
  kNone,
  kPerturb,
  kNan,
  kInf,
  kGuardAfter,
  kGuardBefore,
  kWriteInput,
  kUnsupported,
  kRunError
};

// Forwards to cpu_ref, then corrupts the first output of a matmul or softmax as told.
class FaultyBackend : public KernelBackend {
 public:
  explicit FaultyBackend(Fault fault) : fault_(fault), ref_(*GetBackend("cpu_ref")) {}

  std::string_view Name() const override { return "faulty"; }
  Device device() const override { return ref_->device(); }
  bool Supports(const OpCall& call) const override {
    return fault_ != Fault::kUnsupported && ref_->Supports(call);
  }
  absl::Status Run(const OpCall& call) override {
    if (fault_ == Fault::kRunError) return absl::InternalError("injected");
    TANDEM_RETURN_IF_ERROR(ref_->Run(call));
    const MatMulParams* mm = std::get_if<MatMulParams>(&call);
    if (mm == nullptr) return absl::OkStatus();
    float* y = mm->y.as<float>();
    const int64_t n = mm->y.numel();
    switch (fault_) {
      case Fault::kPerturb:
        y[n / 2] += 0.5f * std::fabs(y[n / 2]) + 1.0f;
        break;
      case Fault::kNan:
        y[3] = std::numeric_limits<float>::quiet_NaN();
        break;
      case Fault::kInf:
        y[5] = std::numeric_limits<float>::infinity();
        break;
      case Fault::kGuardAfter:
        y[n] = 1.0f;
        break;
      case Fault::kGuardBefore:
        y[-1] = 1.0f;
        break;
      case Fault::kWriteInput:
        mm->x.as<float>()[0] += 1.0f;
        break;
      default:
        break;
    }
    return absl::OkStatus();
  }
  absl::Status Synchronize() override { return absl::OkStatus(); }
  absl::StatusOr<void*> Allocate(int64_t bytes) override { return ref_->Allocate(bytes); }
  void Free(void* ptr) override { ref_->Free(ptr); }
  absl::Status CopyToDevice(void* d, const void* s, int64_t b) override {
    return ref_->CopyToDevice(d, s, b);
  }
  absl::Status CopyToHost(void* d, const void* s, int64_t b) override {
    return ref_->CopyToHost(d, s, b);
  }

 private:
  Fault fault_;
  KernelBackend* ref_;
};

CompareReport RunFaulty(Fault fault, bool* supported = nullptr) {
  auto c = MakeMatMulCase(DType::kQ4_1, 7, 576, 192, false);
  std::mt19937 rng(1);
  c->MakeInputs(rng);
  FaultyBackend faulty(fault);
  absl::StatusOr<RunResult> want = RunOnBackend(*c, **GetBackend("cpu_ref"));
  absl::StatusOr<RunResult> got = RunOnBackend(*c, faulty);
  EXPECT_TRUE(want.ok() && got.ok());
  if (supported != nullptr) *supported = got->supported;
  return got->supported ? Compare(*c, *want, *got) : CompareReport{};
}

TEST(HarnessSelfTest, CleanBackendPasses) {
  const CompareReport rep = RunFaulty(Fault::kNone);
  EXPECT_TRUE(rep.ok) << rep.message;
  EXPECT_EQ(rep.worst_nmse, 0.0);
}

TEST(HarnessSelfTest, EachFaultIsReported) {
  const struct {
    Fault fault;
    const char* expect;
  } kCases[] = {
      {Fault::kPerturb, "NMSE"},
      {Fault::kNan, "NaN"},
      {Fault::kInf, "infinities disagree"},
      {Fault::kGuardAfter, "guard region of y"},
      {Fault::kGuardBefore, "guard region of y"},
      {Fault::kWriteInput, "input x was modified"},
  };
  for (const auto& k : kCases) {
    const CompareReport rep = RunFaulty(k.fault);
    EXPECT_FALSE(rep.ok) << k.expect;
    EXPECT_NE(rep.message.find(k.expect), std::string::npos) << rep.message;
  }
}

TEST(HarnessSelfTest, UnsupportedAndErrorsAreDistinct) {
  bool supported = true;
  RunFaulty(Fault::kUnsupported, &supported);
  EXPECT_FALSE(supported);
  auto c = MakeSoftmaxCase(2, 8, 1.0f);
  std::mt19937 rng(1);
  c->MakeInputs(rng);
  FaultyBackend broken(Fault::kRunError);
  EXPECT_THAT(RunOnBackend(*c, broken),
              tandem::testing::StatusIs(absl::StatusCode::kInternal, "softmax(n=2,d=8,scale=1)"));
}

// A case whose Op() is not its call's op: the --ops filter and the ctest name would lie about it.
class MislabelledCase : public OpCase {
 public:
  std::string Op() const override { return "rmsnorm"; }
  std::string Vars() const override { return "n=2"; }
  void MakeInputs(std::mt19937& rng) override {
    FillUniform(Add("x", DType::kF32, {2, 4}, Role::kOut), rng, -1, 1);
  }
  OpCall MakeCall(const std::vector<TensorView>& v) override { return SoftmaxParams{.x = v[0]}; }
};

TEST(HarnessSelfTest, CaseOpMustBeTheCallsOpName) {
  MislabelledCase c;
  std::mt19937 rng(1);
  c.MakeInputs(rng);
  EXPECT_THAT(RunOnBackend(c, **GetBackend("cpu_ref")),
              tandem::testing::StatusIs(absl::StatusCode::kInternal, "the call is softmax"));
}

TEST(HarnessSelfTest, NmseDefinition) {
  EXPECT_DOUBLE_EQ(Nmse({1, 2}, {1, 2}), 0.0);
  EXPECT_NEAR(Nmse({1.1, 2}, {1, 2}), 0.01 / 5, 1e-15);
  EXPECT_DOUBLE_EQ(Nmse({0.5}, {0}), 0.25);  // absolute when the reference is all zero
}

TEST(HarnessSelfTest, CaseNamesAreUniqueAndDescriptive) {
  std::set<std::string> names;
  for (const auto& c : AllCases()) EXPECT_TRUE(names.insert(c->Name()).second) << c->Name();
  EXPECT_TRUE(names.count("matmul(type=q4_1,n=1,in=576,out=1536,acc=0)"));
  EXPECT_TRUE(names.count("matmul(type=q8_0,n=1,in=576,out=49152,acc=0)"));
}

}  // namespace
}  // namespace tandem::kernels::testing
