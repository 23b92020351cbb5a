// Backend-ops consistency harness (after llama.cpp's test-backend-ops): every case of AllCases() is
// run on cpu_ref and on each selected backend, through that backend's own memory, and judged by the
// one Compare() in op_case.cc. Each (case, backend) pair is its own test, so ctest lists them.
//
//   backend_ops_test [--mode=test|perf|support] [--backends=cpu,cuda:0] [--ops=matmul(type=q4_1]
//
// --backends (or $TANDEM_BACKENDS) picks the backends compared with cpu_ref; an unavailable CUDA
// backend skips with the reason. --ops keeps the cases whose name contains the string. perf prints
// GFLOP/s and GB/s per backend and case (run by hand; no test asserts speed). support prints which
// backend supports which case.
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "tests/consistency/op_case.h"
#include "tests/support/status_matchers.h"

namespace tandem::kernels::testing {
namespace {

struct Options {
  std::string mode = "test";
  std::vector<std::string> backends = {"cpu", "cuda:0"};
  std::string ops;
};

Options& Opts() {
  static Options* opts = new Options();
  return *opts;
}

// The filtered case list, built once (cases are cheap until MakeInputs()).
std::vector<std::unique_ptr<OpCase>>& Cases() {
  static auto* cases = [] {
    auto* kept = new std::vector<std::unique_ptr<OpCase>>();
    for (auto& c : AllCases()) {
      if (Opts().ops.empty() || c->Name().find(Opts().ops) != std::string::npos) {
        kept->push_back(std::move(c));
      }
    }
    return kept;
  }();
  return *cases;
}

// A seed derived from the case name: stable across runs and backends, different across cases.
std::mt19937 RngFor(const std::string& name) {
  std::seed_seq seq(name.begin(), name.end());
  return std::mt19937(seq);
}

bool IsCuda(const std::string& backend) { return backend.rfind("cuda", 0) == 0; }

// One (case, backend) pair; registered dynamically in main() so that each pair is its own test
// with a readable name ("matmul.type_q4_1_n_1_in_576_out_1536_acc_0__cpu").
class BackendOpsTest : public ::testing::Test {
 public:
  BackendOpsTest(size_t index, std::string backend) : index_(index), backend_(std::move(backend)) {}
  void TestBody() override;

 private:
  size_t index_;
  std::string backend_;
};

void BackendOpsTest::TestBody() {
  const std::string& backend_name = backend_;
  OpCase& c = *Cases()[index_];
  absl::StatusOr<KernelBackend*> backend = GetBackend(backend_name);
  if (!backend.ok()) {
    if (IsCuda(backend_name)) GTEST_SKIP() << backend.status().ToString();
    FAIL() << backend.status().ToString();
  }
  ASSERT_OK_AND_ASSIGN(KernelBackend * ref, GetBackend("cpu_ref"));

  std::mt19937 rng = RngFor(c.Name());
  c.Clear();
  c.MakeInputs(rng);
  absl::StatusOr<RunResult> want = RunOnBackend(c, *ref);
  ASSERT_TRUE(want.ok()) << want.status().ToString();
  ASSERT_TRUE(want->supported) << "cpu_ref must support every case: " << c.Name();
  ASSERT_TRUE(want->violations.empty()) << "cpu_ref: " << want->violations.front();
  absl::StatusOr<RunResult> got = RunOnBackend(c, **backend);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  if (!got->supported) {
    // The cpu backend forwards whatever it has no fast kernel for, so it supports everything.
    if (backend_name == "cpu") FAIL() << "cpu must support every case (forward to cpu_ref)";
    c.Clear();
    GTEST_SKIP() << "NOT_SUPPORTED: " << backend_name << " " << c.Name();
  }
  const CompareReport rep = Compare(c, *want, *got);
  std::printf("%-70s %-8s nmse=%.3g max=%.3g %s\n", c.Name().c_str(), backend_name.c_str(),
              rep.worst_nmse, c.MaxNmse(), rep.ok ? "OK" : "FAIL");
  EXPECT_TRUE(rep.ok) << c.Name() << " on " << backend_name << ":\n"
                      << rep.message
                      << (c.MaxNmseReason().empty() ? "" : "tolerance: " + c.MaxNmseReason());
  c.Clear();
}

// Letters, digits and single underscores: safe in gtest filters and ctest names.
std::string Sanitize(const std::string& name) {
  std::string out;
  for (char ch : name) {
    if (std::isalnum(static_cast<unsigned char>(ch))) {
      out.push_back(ch);
    } else if (ch == '.') {
      out += "p";  // "scale=0.125" -> "scale_0p125"
    } else if (ch == '-') {
      out += "m";
    } else if (out.empty() || out.back() != '_') {
      out.push_back('_');
    }
  }
  while (!out.empty() && out.back() == '_') out.pop_back();
  return out;
}

void RegisterCaseTests() {
  for (size_t i = 0; i < Cases().size(); ++i) {
    const OpCase& c = *Cases()[i];
    for (const std::string& b : Opts().backends) {
      const std::string test = Sanitize(c.Vars()) + "__" + Sanitize(b);
      ::testing::RegisterTest(c.Op().c_str(), test.c_str(), nullptr, nullptr, __FILE__, __LINE__,
                              [i, b]() -> ::testing::Test* { return new BackendOpsTest(i, b); });
    }
  }
}

// --mode=perf: cpu_ref first as the baseline, then each selected backend that is available.
int RunPerf() {
  std::vector<std::string> names = {"cpu_ref"};
  names.insert(names.end(), Opts().backends.begin(), Opts().backends.end());
  std::vector<KernelBackend*> backends;
  for (const std::string& n : names) {
    absl::StatusOr<KernelBackend*> b = GetBackend(n);
    if (b.ok()) {
      backends.push_back(*b);
    } else {
      std::printf("# %s: %s\n", n.c_str(), b.status().ToString().c_str());
    }
  }
  std::printf("%-70s %-8s %12s %10s %10s\n", "case", "backend", "us/run", "GFLOP/s", "GB/s");
  for (auto& c : Cases()) {
    std::mt19937 rng = RngFor(c->Name());
    c->Clear();
    c->MakeInputs(rng);
    for (KernelBackend* b : backends) {
      absl::StatusOr<double> sec = TimeOnBackend(*c, *b, 0.2);
      if (!sec.ok()) {
        std::printf("%-70s %-8s %s\n", c->Name().c_str(), std::string(b->Name()).c_str(),
                    absl::IsUnimplemented(sec.status()) ? "NOT_SUPPORTED"
                                                        : sec.status().ToString().c_str());
        continue;
      }
      std::printf("%-70s %-8s %12.1f %10.2f %10.2f\n", c->Name().c_str(),
                  std::string(b->Name()).c_str(), *sec * 1e6, c->Flops() / *sec * 1e-9,
                  c->Bytes() / *sec * 1e-9);
      std::fflush(stdout);
    }
    c->Clear();
  }
  return 0;
}

// --mode=support: one line per case and backend.
int RunSupport() {
  for (auto& c : Cases()) {
    std::mt19937 rng = RngFor(c->Name());
    c->Clear();
    c->MakeInputs(rng);
    for (const std::string& n : Opts().backends) {
      absl::StatusOr<KernelBackend*> b = GetBackend(n);
      if (!b.ok()) {
        std::printf("%-70s %-8s UNAVAILABLE\n", c->Name().c_str(), n.c_str());
        continue;
      }
      absl::StatusOr<RunResult> r = RunOnBackend(*c, **b);
      std::printf(
          "%-70s %-8s %s\n", c->Name().c_str(), n.c_str(),
          !r.ok() ? r.status().ToString().c_str() : (r->supported ? "SUPPORTED" : "NOT_SUPPORTED"));
    }
    c->Clear();
  }
  return 0;
}

}  // namespace
}  // namespace tandem::kernels::testing

int main(int argc, char** argv) {
  using tandem::kernels::testing::Opts;
  if (const char* env = std::getenv("TANDEM_BACKENDS"); env != nullptr && *env != '\0') {
    Opts().backends = absl::StrSplit(env, ',', absl::SkipEmpty());
  }
  // Our flags are consumed here, before gtest sees argv, so the test list already reflects them.
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--mode=", 0) == 0) {
      Opts().mode = arg.substr(7);
    } else if (arg.rfind("--backends=", 0) == 0) {
      Opts().backends = absl::StrSplit(arg.substr(11), ',', absl::SkipEmpty());
    } else if (arg.rfind("--ops=", 0) == 0) {
      Opts().ops = arg.substr(6);
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  ::testing::InitGoogleTest(&argc, argv);
  if (Opts().mode == "perf") return tandem::kernels::testing::RunPerf();
  if (Opts().mode == "support") return tandem::kernels::testing::RunSupport();
  if (Opts().mode != "test") {
    std::fprintf(stderr, "--mode=%s: want test, perf or support\n", Opts().mode.c_str());
    return 2;
  }
  tandem::kernels::testing::RegisterCaseTests();
  return RUN_ALL_TESTS();
}
