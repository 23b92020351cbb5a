// AVX-512 VNNI variant of the matmul kernels (see gemm_x86.inc): vpdpbusd on 256-bit registers.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/cpu/kernels.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")
#define TANDEM_GEMM_VNNI 1

namespace tandem::kernels::cpu::avx512vnni {
#include "kernels/cpu/gemm_x86.inc"
}  // namespace tandem::kernels::cpu::avx512vnni

#pragma GCC pop_options
