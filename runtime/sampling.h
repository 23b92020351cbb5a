// runtime/sampling.h
//
// Turning logits rows into tokens, the one way every engine does it: the backend's Sample op
// (kernels/op.h gives its exact semantics and the rng every backend shares), then a
// synchronisation so the tokens can be read on the host. Also the one conversion from the control
// plane's sampling fields to the op's config. Stateless functions; blocking.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/node_api.h"
#include "common/tensor_view.h"
#include "kernels/backend.h"
#include "kernels/op.h"

namespace tandem::runtime {

// The op's config for a request's sampling fields (checked first with CheckSampling).
kernels::SamplingConfig ToSamplingConfig(const node_api::Sampling& sampling);

// out[i] = a token drawn from logits row i [n, vocab] with configs[i], advancing rng_states[i]
// once. Blocks until the tokens are on the host.
absl::Status SampleRows(kernels::KernelBackend& backend, const TensorView& logits,
                        absl::Span<const kernels::SamplingConfig> configs,
                        absl::Span<uint64_t> rng_states, absl::Span<int32_t> out);

// The token of logits row `row`.
absl::StatusOr<int32_t> SampleRow(kernels::KernelBackend& backend, const TensorView& logits,
                                  int64_t row, const kernels::SamplingConfig& config,
                                  uint64_t& rng_state);

}  // namespace tandem::runtime
