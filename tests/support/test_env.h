// tests/support/test_env.h
//
// Where tests find the repository and the model: $TANDEM_SOURCE_DIR (set by ctest) and $TANDEM_MODEL,
// else <source>/models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/setup.sh puts it there).
#pragma once

#include <cstdlib>
#include <string>

namespace tandem::testing {

inline std::string SourceDir() {
  const char* dir = std::getenv("TANDEM_SOURCE_DIR");
  return dir != nullptr ? std::string(dir) : std::string(".");
}

inline std::string ModelPath() {
  const char* model = std::getenv("TANDEM_MODEL");
  if (model != nullptr && *model != '\0') return model;
  return SourceDir() + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

}  // namespace tandem::testing
