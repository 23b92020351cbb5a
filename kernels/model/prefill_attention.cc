#include "kernels/model/prefill_attention.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/dtype.h"

namespace tandem::model {
namespace {

__attribute__((target("avx2,f16c"))) void HalfToFloatF16c(const uint16_t* src, int64_t n,
                                                          float* dst) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(dst + i,
                     _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  }
  for (; i < n; ++i) dst[i] = HalfToFloat(src[i]);
}

void HalfToFloatRow(const uint16_t* src, int64_t n, float* dst) {
  static const bool f16c = __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx2");
  if (f16c) {
    HalfToFloatF16c(src, n, dst);
    return;
  }
  for (int64_t i = 0; i < n; ++i) dst[i] = HalfToFloat(src[i]);
}

}  // namespace

absl::Status GatherSequenceKv(const TensorView& pool, absl::Span<const int32_t> pages,
                              int32_t n_tokens, float* dst) {
  if (pool.ndim != 4 || (pool.dtype != DType::kF32 && pool.dtype != DType::kF16) ||
      pool.device.kind != DeviceKind::kCpu || !pool.is_contiguous()) {
    return absl::InvalidArgumentError(
        absl::StrCat("gather kv: pool ", pool.DebugString(), " is not a host f32/f16 pool"));
  }
  const int64_t page_tokens = pool.shape[1];
  const int64_t row = pool.shape[2] * pool.shape[3];  // values per token
  if (n_tokens < 0 ||
      (n_tokens + page_tokens - 1) / page_tokens > static_cast<int64_t>(pages.size())) {
    return absl::InvalidArgumentError(absl::StrCat("gather kv: ", n_tokens, " tokens but ",
                                                   pages.size(), " pages of ", page_tokens));
  }
  for (int64_t start = 0, p = 0; start < n_tokens; start += page_tokens, ++p) {
    if (pages[p] < 0 || pages[p] >= pool.shape[0]) {
      return absl::InvalidArgumentError(
          absl::StrCat("gather kv: page ", pages[p], " not in [0, ", pool.shape[0], ")"));
    }
    const int64_t count = std::min<int64_t>(page_tokens, n_tokens - start) * row;
    const char* src = static_cast<const char*>(pool.data) + pages[p] * pool.stride_bytes[0];
    if (pool.dtype == DType::kF32) {
      std::memcpy(dst + start * row, src, static_cast<size_t>(count) * sizeof(float));
    } else {
      HalfToFloatRow(reinterpret_cast<const uint16_t*>(src), count, dst + start * row);
    }
  }
  return absl::OkStatus();
}

}  // namespace tandem::model
