// kernels/cpu/kernels.h
//
// The SIMD kernels behind the "cpu" backend, as plain functions on raw pointers. Each ISA variant
// (AVX2+FMA+F16C; AVX-512 VNNI for the integer dots) is compiled under a `#pragma GCC target`
// region rather than global -m flags, so the binary runs everywhere and picks a variant at run time
// (SelectKernels). Machines without AVX2/FMA/F16C get no kernels: the backend then forwards every
// op to cpu_ref. All functions are pure and thread-safe on disjoint outputs.
#pragma once

#include <cstdint>

namespace tandem::kernels::cpu {

// Activations quantized for the integer dot products: llama.cpp's Q8_1 with fp32 scales.
// x[j] ~= d * q[j]; s = d * sum(q) carries the Q4_1 min term. Q8_0 weights use the same block
// (ignoring s), which rounds exactly like llama.cpp's Q8_0 activations.
struct BlockQ8 {
  float d;
  float s;
  int8_t q[32];
};
static_assert(sizeof(BlockQ8) == 40);

// y[i * y_stride + r] (+)= dot(row r of W, row i of x) for r in [r_begin, r_end), i in [0, n).
// W rows are w_stride bytes apart; x rows are x_stride bytes apart (BlockQ8 rows for the quantized
// weight types, f32 rows otherwise); k is the dot length in elements.
struct GemmArgs {
  const uint8_t* w;
  int64_t w_stride;
  const uint8_t* x;
  int64_t x_stride;
  int64_t n;
  int64_t k;
  float* y;
  int64_t y_stride;
  bool accumulate;
};
using GemmFn = void (*)(const GemmArgs& args, int64_t r_begin, int64_t r_end);

struct Kernels {
  const char* isa;                                               // "avx2", "avx512vnni"
  void (*quantize_q8)(const float* x, int64_t k, BlockQ8* out);  // k % 32 == 0
  GemmFn gemm_q4_1;                                              // W q4_1, x BlockQ8
  GemmFn gemm_q8_0;                                              // W q8_0, x BlockQ8
  GemmFn gemm_f32;                                               // W f32, x f32
  GemmFn gemm_f16;                                               // W f16, x f32
  GemmFn gemm_bf16;                                              // W bf16, x f32
};

// The best variant this CPU runs, or nullptr without AVX2+FMA+F16C.
const Kernels* SelectKernels();

namespace avx2 {
extern const Kernels kKernels;
}
namespace avx512vnni {
extern const Kernels kKernels;
}

}  // namespace tandem::kernels::cpu
