// runtime/flags.h
//
// ModelOptions from the process's flags (--model, --backend, --max_batch_tokens, the prefill
// attention flags, --kv_layout, --kv_dtype, --kv_page_tokens, --kv_block_tokens, --kv_namespace).
// The flags are declared by their owners (kernels/model/flags.cc, kv_store/flags.cc); capacity and
// sequence counts of the KV cache are the engine's and stay at their defaults here. Only processes
// call this; libraries take ModelOptions.
#pragma once

#include "absl/status/statusor.h"
#include "common/flags.h"
#include "runtime/loaded_model.h"

namespace tandem::runtime {

TANDEM_DECLARE_FLAG(std::string, backend);

// InvalidArgument naming the flag on a bad value.
absl::StatusOr<ModelOptions> ModelOptionsFromFlags();

}  // namespace tandem::runtime
