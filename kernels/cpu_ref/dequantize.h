// kernels/cpu_ref/dequantize.h
//
// Reference dequantization of one row of any weight dtype (f32, f16, bf16 and the GGML block
// formats of ../shared/model.md §3) into fp32. This is the spec every backend's weight decoding is
// compared with; the fast CPU path reuses it for dtypes it has no SIMD kernel for. Pure functions
// on caller-owned memory; thread-safe.
#pragma once

#include <cstdint>

#include "common/dtype.h"

namespace tandem::kernels {

// Whether DequantizeRow() understands `dtype` (every float and GGML weight dtype; not i32/u8).
bool CanDequantize(DType dtype);

// Decodes `n` elements starting at `src` (n a multiple of DTypeBlockElems(dtype)) into dst[0..n).
// Unsupported dtypes (i32, u8) write zeros; callers check CanDequantize() first.
void DequantizeRow(DType dtype, const void* src, float* dst, int64_t n);

}  // namespace tandem::kernels
