// Runtime choice of the SIMD kernel variant (kernels.h).
#include "kernels/cpu/kernels.h"

#include <cstdlib>
#include <cstring>

namespace tandem::kernels::cpu {

const Kernels* SelectKernels() {
#if defined(__x86_64__)
  // env: TANDEM_CPU_ISA=avx2|none forces a lower variant (tests and benchmarks of each path).
  const char* forced = std::getenv("TANDEM_CPU_ISA");
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    __builtin_cpu_supports("f16c");
  if (!avx2 || (forced != nullptr && std::strcmp(forced, "none") == 0)) return nullptr;
  const bool vnni = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                    __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni");
  if (vnni && (forced == nullptr || std::strcmp(forced, "avx2") != 0)) return &avx512vnni::kKernels;
  return &avx2::kKernels;
#else
  return nullptr;
#endif
}

}  // namespace tandem::kernels::cpu
