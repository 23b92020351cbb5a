// kernels/cuda/matmul.cc
//
// MatMul entry point: picks the GEMV or the tiled kernel by the number of tokens
// (matmul_heuristics.h). Host code only, so g++ compiles it; the kernels live in matmul_gemv.cu and
// matmul_tiled.cu.
#include "kernels/cuda/matmul_heuristics.h"
#include "kernels/cuda/op_args.h"

namespace tandem::kernels::cuda {

cudaError_t LaunchMatMul(const MatMulArgs& a, cudaStream_t stream) {
  if (a.n == 0 || a.out == 0) return cudaSuccess;
  return UseGemv(a.n) ? LaunchMatMulGemv(a, stream) : LaunchMatMulTiled(a, stream);
}

}  // namespace tandem::kernels::cuda
