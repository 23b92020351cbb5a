// kernels/model/flags.h
//
// The model runner's flags (--threads, --kv_dtype, --max_batch_tokens, ...) and the functions that
// turn them into RunnerOptions and KvCacheOptions. Only processes call these (libraries take
// Options structs).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "common/flags.h"
#include "common/model_format/flags.h"
#include "kernels/model/kv_cache.h"
#include "kernels/model/model_runner.h"

namespace tandem::model {

// --model lives in common/model_format/flags.h (the router reads it too).
using format::FLAGS_model;
TANDEM_DECLARE_FLAG(int32_t, threads);

// InvalidArgument naming the flag on a bad value.
absl::StatusOr<RunnerOptions> RunnerOptionsFromFlags();
// --kv_layout, --kv_dtype, --kv_page_tokens (capacity and sequences are the engine's).
absl::StatusOr<KvCacheOptions> KvCacheOptionsFromFlags();
// --prefill_attention, --sale_threshold, --power_window_blocks, --power_sink_blocks.
absl::StatusOr<kernels::SparseConfig> SparseConfigFromFlags();

}  // namespace tandem::model
