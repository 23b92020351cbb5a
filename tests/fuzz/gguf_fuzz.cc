// libFuzzer target for the GGUF reader: any byte string must parse or fail with a Status, never
// crash, hang or read out of bounds (run under ASan). Built when TANDEM_FUZZ=ON (clang).
//   build/gguf_fuzz -max_total_time=60 corpus/
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/model_format/fingerprint.h"
#include "common/model_format/gguf.h"
#include "common/model_format/model_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::StatusOr<tandem::format::GgufFile> file = tandem::format::GgufFile::FromBytes(
      std::string(reinterpret_cast<const char*>(data), size), "fuzz.gguf");
  if (!file.ok()) return 0;
  // Exercise every accessor on whatever parsed: views must stay inside the image.
  for (const tandem::format::TensorInfo& t : file->tensors()) {
    absl::StatusOr<tandem::TensorView> v = file->TensorData(t.name);
    if (v.ok() && v->nbytes() > 0) {
      volatile uint8_t last = static_cast<const uint8_t*>(v->data)[v->nbytes() - 1];
      (void)last;
    }
  }
  for (const tandem::format::GgufKv& kv : file->metadata()) {
    (void)file->GetInt(kv.key);
    (void)file->GetFloat(kv.key);
    (void)file->GetString(kv.key);
    (void)file->GetIntArray(kv.key);
  }
  (void)tandem::format::ModelConfigFromGguf(*file);
  (void)tandem::format::ModelFingerprint(*file);
  return 0;
}
