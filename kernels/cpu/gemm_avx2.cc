// AVX2 + FMA + F16C variant of the matmul kernels (see gemm_x86.inc).
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/cpu/kernels.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#define TANDEM_GEMM_VNNI 0

namespace tandem::kernels::cpu::avx2 {
#include "kernels/cpu/gemm_x86.inc"
}  // namespace tandem::kernels::cpu::avx2

#pragma GCC pop_options
