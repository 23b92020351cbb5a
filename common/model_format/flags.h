// common/model_format/flags.h
//
// --model, the GGUF every process of a cluster reads: nodes for the weights, the router for the
// tokenizer, chat template and fingerprints. Declared here, below kernels/, so that the router
// (which must not link kernels) and the nodes share one flag. Only processes read it.
#pragma once

#include <string>

#include "common/flags.h"

namespace tandem::format {

TANDEM_DECLARE_FLAG(std::string, model);

}  // namespace tandem::format
