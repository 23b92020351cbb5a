// tests/consistency/op_case.h
//
// The pieces of the backend-ops harness (after llama.cpp's test-backend-ops): OpCase describes one
// op call with its tensors, initial contents, tolerance and cost; RunOnBackend() executes it on any
// KernelBackend through that backend's own memory (DeviceBuffer + copies, so CUDA works the same
// way), surrounded by guard regions; Compare() is the one judgement of a backend's result against
// cpu_ref's. Cases own their host data; none of this is thread-safe (tests run one case at a time).
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/dtype.h"
#include "common/tensor_view.h"
#include "kernels/backend.h"
#include "kernels/op.h"

namespace tandem::kernels::testing {

// kOut tensors are compared after the run (they may also be read: in-place ops, accumulate, pools).
// kIn tensors must come back bit-identical.
enum class Role { kIn, kOut };

struct CaseTensor {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  Role role = Role::kIn;
  std::vector<uint8_t> init;  // initial contents, DTypeRowBytes-sized

  int64_t bytes() const;
  int64_t numel() const;
  float* f32() { return reinterpret_cast<float*>(init.data()); }
  int32_t* i32() { return reinterpret_cast<int32_t*>(init.data()); }
};

class OpCase {
 public:
  virtual ~OpCase() = default;

  virtual std::string Op() const = 0;    // the call's OpName: "matmul" (RunOnBackend checks)
  virtual std::string Vars() const = 0;  // "type=q4_1,n=1,in=576,out=1536"
  std::string Name() const { return Op() + "(" + Vars() + ")"; }
  // Largest accepted NMSE against cpu_ref. Cases that relax it explain why in MaxNmseReason().
  virtual double MaxNmse() const { return 1e-7; }
  virtual std::string MaxNmseReason() const { return ""; }
  virtual double Flops() const { return 0.0; }
  // Bytes the op must move at least: every tensor once (override where that is wrong).
  virtual double Bytes() const;

  // Declares the tensors (through Add) and fills their initial contents from `rng`.
  virtual void MakeInputs(std::mt19937& rng) = 0;
  // The call over `views` (device views of tensors(), in order). Host-side state the call points
  // at (sample's configs, rng states, tokens) lives in the case and is reset here.
  virtual OpCall MakeCall(const std::vector<TensorView>& views) = 0;
  // Host-side results that must be EQUAL across backends (sample: tokens, then rng states).
  virtual std::vector<int64_t> HostResults() const { return {}; }

  const std::vector<CaseTensor>& tensors() const { return tensors_; }
  void Clear() { tensors_.clear(); }

 protected:
  CaseTensor& Add(std::string name, DType dtype, std::vector<int64_t> shape, Role role);

 private:
  std::vector<CaseTensor> tensors_;
};

// Filling helpers.
void FillUniform(CaseTensor& t, std::mt19937& rng, float lo, float hi);  // f32, f16, bf16
// Random but valid blocks for any weight dtype: random quant bits, scale fields with magnitudes
// that give weights of order 0.1 (f16 scales never inf/NaN); floats uniform in [-0.5, 0.5].
void FillWeights(CaseTensor& t, std::mt19937& rng);
void SetI32(CaseTensor& t, const std::vector<int32_t>& values);

// What one backend produced for one case.
struct RunResult {
  bool supported = true;                      // false: Supports() said no, nothing ran
  std::vector<std::vector<uint8_t>> outputs;  // per tensor (empty for kIn tensors)
  std::vector<int64_t> host;                  // OpCase::HostResults()
  std::vector<std::string> violations;        // guard regions written, inputs modified
};

// Copies the case's tensors into guarded buffers from `backend`, runs, synchronizes, copies back.
// Errors are the backend's (allocation, copy, Run) with the case name prepended, or Internal when
// the call's OpName is not c.Op().
absl::StatusOr<RunResult> RunOnBackend(OpCase& c, KernelBackend& backend);

// Seconds per Run() of the case on `backend` (after one warm-up), repeating for >= min_seconds.
absl::StatusOr<double> TimeOnBackend(OpCase& c, KernelBackend& backend, double min_seconds);

struct CompareReport {
  bool ok = true;
  double worst_nmse = 0.0;
  std::string message;  // one line per problem
};

// The one comparison: per output tensor, no NaN, infinities agree (position and sign), NMSE
// against the reference at most c.MaxNmse(); host results equal; no guard violations.
CompareReport Compare(const OpCase& c, const RunResult& ref, const RunResult& got);

// Normalised mean squared error sum((a-b)^2) / sum(b^2) over finite pairs (absolute when b is 0).
double Nmse(const std::vector<double>& a, const std::vector<double>& b);

// Every case of the harness, in a stable order.
std::vector<std::unique_ptr<OpCase>> AllCases();

}  // namespace tandem::kernels::testing
