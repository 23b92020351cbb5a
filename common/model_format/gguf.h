// common/model_format/gguf.h
//
// GgufFile reads a GGUF v2/v3 model file (../shared/model.md §1): it mmaps the file read-only, parses
// and validates the header, metadata and tensor infos at Open, and then hands out views of tensor
// data without copying. Every malformed input (truncation, bad magic or version, absurd counts or
// lengths, unknown value or tensor types, misaligned, overlapping or out-of-bounds tensors) is an
// InvalidArgument naming the file and the offending key or tensor; nothing is read past the end.
// The mapping lives as long as the GgufFile (move-only) and every TensorView taken from it.
// Immutable after Open, so const methods are thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/tensor_view.h"

namespace tandem::format {

enum class GgufValueType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};

// A metadata value. Arrays keep their element type; string arrays are views into the mapping.
struct GgufArray {
  GgufValueType element_type;
  uint64_t count = 0;
  const uint8_t* data = nullptr;  // first element inside the mapping (for numeric arrays)
  std::vector<std::string_view> strings;  // filled when element_type == kString
};
using GgufValue = std::variant<uint64_t, int64_t, double, bool, std::string_view, GgufArray>;

struct GgufKv {
  std::string key;
  GgufValueType type;
  GgufValue value;
};

struct TensorInfo {
  std::string name;
  uint32_t ggml_type = 0;
  DType dtype = DType::kF32;
  std::vector<int64_t> dims;  // GGML order: dims[0] (ne0) is innermost
  uint64_t offset = 0;        // relative to the data section
  uint64_t size_bytes = 0;
};

class GgufFile {
 public:
  static absl::StatusOr<GgufFile> Open(const std::string& path);
  // Parses an in-memory image (the fuzz target and unit tests use this). `bytes` is copied.
  static absl::StatusOr<GgufFile> FromBytes(std::string bytes, std::string name = "<memory>");

  GgufFile(GgufFile&&) noexcept;
  GgufFile& operator=(GgufFile&&) noexcept;
  ~GgufFile();

  const std::string& path() const;
  uint32_t version() const;
  uint64_t alignment() const;
  uint64_t file_size() const;
  absl::Span<const GgufKv> metadata() const;
  absl::Span<const TensorInfo> tensors() const;

  // NotFound when absent; InvalidArgument when the key holds another type.
  // GetInt accepts every integer type (and bool); GetFloat accepts f32/f64 and integers.
  absl::StatusOr<int64_t> GetInt(std::string_view key) const;
  absl::StatusOr<double> GetFloat(std::string_view key) const;
  absl::StatusOr<std::string_view> GetString(std::string_view key) const;
  absl::StatusOr<bool> GetBool(std::string_view key) const;
  absl::StatusOr<const GgufArray*> GetArray(std::string_view key) const;
  // Numeric array converted element-wise (InvalidArgument for non-integer element types).
  absl::StatusOr<std::vector<int64_t>> GetIntArray(std::string_view key) const;
  bool Has(std::string_view key) const;

  // NotFound naming the tensor when absent.
  absl::StatusOr<const TensorInfo*> FindTensor(std::string_view name) const;
  // A CPU view of the tensor's bytes in PyTorch order (outermost first): dims reversed.
  absl::StatusOr<TensorView> TensorData(std::string_view name) const;
  // The raw bytes of the tensor data section of one tensor.
  absl::Span<const uint8_t> TensorBytes(const TensorInfo& info) const;

 private:
  struct Impl;
  explicit GgufFile(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::format
