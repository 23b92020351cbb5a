// cli/generate.h
//
// `tandem generate`: loads the model in-process, renders the prompt (raw text, or chat messages
// through the file's ChatML template), streams the generated text to stdout and prints timing to
// stderr. Wiring only; the work is in runtime/ and common/model_format.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace tandem::cli {

// `args` are the positional arguments after "generate" (a prompt may be given there too).
absl::Status RunGenerate(const std::vector<std::string>& args);

}  // namespace tandem::cli
