#include "common/model_format/flags.h"

namespace tandem::format {

TANDEM_FLAG(std::string, model, "models/SmolLM2-135M-Instruct.Q4_1.gguf",
            "Path of the GGUF model file (scripts/setup.sh puts SmolLM2 there).");

}  // namespace tandem::format
