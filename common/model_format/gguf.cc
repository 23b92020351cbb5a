#include "common/model_format/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status.h"

namespace tandem::format {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint64_t kDefaultAlignment = 32;
constexpr uint64_t kMaxKeyBytes = 65535;
constexpr uint64_t kMaxTensorNameBytes = 64;
constexpr int kMaxArrayDepth = 8;  // real files nest at most once; bounds hostile recursion
// Smallest possible encodings, used to reject counts the remaining bytes cannot hold before
// reserving memory for them: key (u64 len + 1 byte) + type (u32) + a 1-byte value, and
// name (u64 len + 1 byte) + n_dims (u32) + one dim (u64) + type (u32) + offset (u64).
constexpr uint64_t kMinKvBytes = 8 + 1 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 8 + 4 + 8;

// Bytes of one scalar of `type`, 0 for string and array (variable length), -1 when unknown.
int ScalarSize(uint32_t type) {
  switch (static_cast<GgufValueType>(type)) {
    case GgufValueType::kU8: case GgufValueType::kI8: case GgufValueType::kBool: return 1;
    case GgufValueType::kU16: case GgufValueType::kI16: return 2;
    case GgufValueType::kU32: case GgufValueType::kI32: case GgufValueType::kF32: return 4;
    case GgufValueType::kU64: case GgufValueType::kI64: case GgufValueType::kF64: return 8;
    case GgufValueType::kString: case GgufValueType::kArray: return 0;
  }
  return -1;
}

std::string TypeName(GgufValueType t) {
  static constexpr const char* kNames[] = {"u8",  "i8",     "u16",   "i16", "u32", "i32", "f32",
                                           "bool", "string", "array", "u64", "i64", "f64"};
  const auto i = static_cast<uint32_t>(t);
  return i < 13 ? kNames[i] : absl::StrCat("type ", i);
}

// Bounds-checked little-endian reader over the file image. Every read checks the remaining bytes
// first, so a truncated file fails with the offset and the field being read.
class Reader {
 public:
  Reader(const uint8_t* data, uint64_t size, const std::string& file)
      : data_(data), size_(size), file_(file) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }
  const uint8_t* here() const { return data_ + pos_; }

  absl::Status Error(std::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(file_, ": ", AV(what)));
  }
  absl::Status Need(uint64_t n, std::string_view what) const {
    if (n > remaining()) {
      return Error(absl::StrCat("truncated at byte ", pos_, " reading ", AV(what), " (need ", n,
                                " bytes, ", remaining(), " left of ", size_, ")"));
    }
    return absl::OkStatus();
  }
  absl::Status Skip(uint64_t n, std::string_view what) {
    TANDEM_RETURN_IF_ERROR(Need(n, what));
    pos_ += n;
    return absl::OkStatus();
  }
  template <typename T>
  absl::StatusOr<T> Read(std::string_view what) {
    TANDEM_RETURN_IF_ERROR(Need(sizeof(T), what));
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  absl::StatusOr<std::string_view> ReadString(std::string_view what, uint64_t max_len) {
    TANDEM_ASSIGN_OR_RETURN(uint64_t len, Read<uint64_t>(what));
    if (len > remaining()) {
      return Error(absl::StrCat(AV(what), " at byte ", pos_ - 8, " has length ", len,
                                ", past the end of the file (", remaining(), " bytes left)"));
    }
    if (len > max_len) {
      return Error(absl::StrCat(AV(what), " at byte ", pos_ - 8, " has length ", len,
                                " (at most ", max_len, " allowed)"));
    }
    std::string_view s(reinterpret_cast<const char*>(data_ + pos_), len);
    pos_ += len;
    return s;
  }

 private:
  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
  const std::string& file_;
};

template <typename T, typename Stored>
absl::Status ReadScalar(Reader& r, std::string_view what, GgufValue* out) {
  TANDEM_ASSIGN_OR_RETURN(T v, r.Read<T>(what));
  *out = static_cast<Stored>(v);
  return absl::OkStatus();
}

}  // namespace

struct GgufFile::Impl {
  std::string path;
  std::string owned;  // FromBytes keeps the image here; Open maps it instead
  void* map = nullptr;
  const uint8_t* data = nullptr;
  uint64_t size = 0;
  uint32_t version = 0;
  uint64_t alignment = kDefaultAlignment;
  uint64_t data_start = 0;
  std::vector<GgufKv> metadata;
  std::vector<TensorInfo> tensors;
  absl::flat_hash_map<std::string, size_t> key_index;
  absl::flat_hash_map<std::string, size_t> tensor_index;

  ~Impl() {
    if (map != nullptr) munmap(map, size);
  }

  absl::Status Parse();
  absl::Status ParseValue(Reader& r, uint32_t type, const std::string& key, int depth,
                          GgufValue* out);
  absl::Status ParseTensorInfo(Reader& r, uint64_t index);
  absl::Status CheckTensorLayout();
  const GgufKv* FindKv(std::string_view key) const {
    auto it = key_index.find(AV(key));
    return it == key_index.end() ? nullptr : &metadata[it->second];
  }
  absl::Status Error(std::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", AV(what)));
  }
};

absl::Status GgufFile::Impl::ParseValue(Reader& r, uint32_t type, const std::string& key,
                                        int depth, GgufValue* out) {
  const auto where = [&] { return absl::StrCat("value of key '", key, "'"); };
  switch (static_cast<GgufValueType>(type)) {
    case GgufValueType::kU8: return ReadScalar<uint8_t, uint64_t>(r, where(), out);
    case GgufValueType::kU16: return ReadScalar<uint16_t, uint64_t>(r, where(), out);
    case GgufValueType::kU32: return ReadScalar<uint32_t, uint64_t>(r, where(), out);
    case GgufValueType::kU64: return ReadScalar<uint64_t, uint64_t>(r, where(), out);
    case GgufValueType::kI8: return ReadScalar<int8_t, int64_t>(r, where(), out);
    case GgufValueType::kI16: return ReadScalar<int16_t, int64_t>(r, where(), out);
    case GgufValueType::kI32: return ReadScalar<int32_t, int64_t>(r, where(), out);
    case GgufValueType::kI64: return ReadScalar<int64_t, int64_t>(r, where(), out);
    case GgufValueType::kF32: return ReadScalar<float, double>(r, where(), out);
    case GgufValueType::kF64: return ReadScalar<double, double>(r, where(), out);
    case GgufValueType::kBool: {
      TANDEM_ASSIGN_OR_RETURN(auto v, r.Read<uint8_t>(where()));
      if (v > 1) return Error(absl::StrCat(where(), " is bool ", int{v}, " (must be 0 or 1)"));
      *out = v == 1;
      return absl::OkStatus();
    }
    case GgufValueType::kString: {
      TANDEM_ASSIGN_OR_RETURN(auto s, r.ReadString(where(), std::numeric_limits<uint64_t>::max()));
      *out = s;
      return absl::OkStatus();
    }
    case GgufValueType::kArray: break;
    default:
      return Error(absl::StrCat("key '", key, "' has unknown value type ", type));
  }
  if (depth >= kMaxArrayDepth) {
    return Error(absl::StrCat("key '", key, "': arrays nested deeper than ", kMaxArrayDepth));
  }
  GgufArray arr;
  TANDEM_ASSIGN_OR_RETURN(uint32_t elem, r.Read<uint32_t>(absl::StrCat(where(), " element type")));
  TANDEM_ASSIGN_OR_RETURN(arr.count, r.Read<uint64_t>(absl::StrCat(where(), " element count")));
  const int scalar = ScalarSize(elem);
  if (scalar < 0) {
    return Error(absl::StrCat("key '", key, "' is an array of unknown value type ", elem));
  }
  arr.element_type = static_cast<GgufValueType>(elem);
  // A string element needs at least its u64 length, a nested array its type and count.
  const uint64_t min_elem =
      scalar > 0 ? scalar : (arr.element_type == GgufValueType::kString ? 8 : 12);
  if (arr.count > r.remaining() / min_elem) {
    return Error(absl::StrCat("key '", key, "' claims ", arr.count, " array elements but only ",
                              r.remaining(), " bytes remain"));
  }
  arr.data = r.here();
  if (scalar > 0) {
    if (arr.element_type == GgufValueType::kBool) {
      for (uint64_t i = 0; i < arr.count; ++i) {
        if (arr.data[i] > 1) {
          return Error(absl::StrCat("key '", key, "' element ", i, " is bool ", int{arr.data[i]}));
        }
      }
    }
    TANDEM_RETURN_IF_ERROR(r.Skip(arr.count * scalar, where()));
  } else if (arr.element_type == GgufValueType::kString) {
    arr.strings.reserve(arr.count);
    for (uint64_t i = 0; i < arr.count; ++i) {
      TANDEM_ASSIGN_OR_RETURN(
          auto s, r.ReadString(absl::StrCat(where(), " element ", i),
                               std::numeric_limits<uint64_t>::max()));
      arr.strings.push_back(s);
    }
  } else {
    GgufValue ignored;
    for (uint64_t i = 0; i < arr.count; ++i) {
      TANDEM_RETURN_IF_ERROR(ParseValue(r, static_cast<uint32_t>(GgufValueType::kArray), key,
                                        depth + 1, &ignored));
    }
  }
  *out = std::move(arr);
  return absl::OkStatus();
}

absl::Status GgufFile::Impl::ParseTensorInfo(Reader& r, uint64_t index) {
  TensorInfo t;
  TANDEM_ASSIGN_OR_RETURN(
      auto name, r.ReadString(absl::StrCat("name of tensor #", index), kMaxTensorNameBytes));
  if (name.empty()) return Error(absl::StrCat("tensor #", index, " has an empty name"));
  t.name = std::string(name);
  const auto tensor = [&] { return absl::StrCat("tensor '", t.name, "'"); };
  TANDEM_ASSIGN_OR_RETURN(uint32_t n_dims, r.Read<uint32_t>(absl::StrCat(tensor(), " n_dims")));
  if (n_dims == 0 || n_dims > static_cast<uint32_t>(TensorView::kMaxDims)) {
    return Error(absl::StrCat(tensor(), " has n_dims ", n_dims, " (must be 1..",
                              TensorView::kMaxDims, ")"));
  }
  uint64_t numel = 1;
  for (uint32_t d = 0; d < n_dims; ++d) {
    TANDEM_ASSIGN_OR_RETURN(uint64_t dim, r.Read<uint64_t>(absl::StrCat(tensor(), " dims")));
    if (dim == 0 || dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        __builtin_mul_overflow(numel, dim, &numel) ||
        numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Error(absl::StrCat(tensor(), " has dim ", d, " = ", dim,
                                " (zero, or the element count overflows)"));
    }
    t.dims.push_back(static_cast<int64_t>(dim));
  }
  TANDEM_ASSIGN_OR_RETURN(t.ggml_type, r.Read<uint32_t>(absl::StrCat(tensor(), " type")));
  TANDEM_ASSIGN_OR_RETURN(t.offset, r.Read<uint64_t>(absl::StrCat(tensor(), " offset")));
  const std::optional<DType> dtype = DTypeFromGgmlType(t.ggml_type);
  if (!dtype.has_value()) {
    return Error(absl::StrCat(tensor(), " has unsupported ggml type ", t.ggml_type,
                              " (supported: 0 f32, 1 f16, 2 q4_0, 3 q4_1, 6 q5_0, 7 q5_1, 8 q8_0, "
                              "12 q4_k, 13 q5_k, 14 q6_k, 30 bf16)"));
  }
  t.dtype = *dtype;
  const int64_t block = DTypeBlockElems(t.dtype);
  if (t.dims[0] % block != 0) {
    return Error(absl::StrCat(tensor(), " of type ", AV(DTypeName(t.dtype)), " has ne0 = ",
                              t.dims[0], ", not a multiple of the block size ", block));
  }
  // Blocks per row times bytes per block times the other dims; each step checked for overflow.
  uint64_t size = static_cast<uint64_t>(t.dims[0] / block);
  if (__builtin_mul_overflow(size, static_cast<uint64_t>(DTypeBlockBytes(t.dtype)), &size)) {
    return Error(absl::StrCat(tensor(), " byte size overflows"));
  }
  for (size_t d = 1; d < t.dims.size(); ++d) {
    if (__builtin_mul_overflow(size, static_cast<uint64_t>(t.dims[d]), &size)) {
      return Error(absl::StrCat(tensor(), " byte size overflows"));
    }
  }
  t.size_bytes = size;
  if (!tensor_index.emplace(t.name, tensors.size()).second) {
    return Error(absl::StrCat("duplicate tensor name '", t.name, "'"));
  }
  tensors.push_back(std::move(t));
  return absl::OkStatus();
}

absl::Status GgufFile::Impl::CheckTensorLayout() {
  std::vector<const TensorInfo*> by_offset;
  by_offset.reserve(tensors.size());
  for (const TensorInfo& t : tensors) {
    if (t.offset % alignment != 0) {
      return Error(absl::StrCat("tensor '", t.name, "' offset ", t.offset,
                                " is not a multiple of the alignment ", alignment));
    }
    uint64_t end = 0;
    if (__builtin_add_overflow(data_start, t.offset, &end) ||
        __builtin_add_overflow(end, t.size_bytes, &end) || end > size) {
      return Error(absl::StrCat("tensor '", t.name, "' data [", t.offset, ", +", t.size_bytes,
                                ") at data start ", data_start, " runs past the end of the file (",
                                size, " bytes)"));
    }
    by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const TensorInfo& prev = *by_offset[i - 1];
    if (by_offset[i]->offset < prev.offset + prev.size_bytes) {
      return Error(absl::StrCat("tensor '", by_offset[i]->name, "' at offset ",
                                by_offset[i]->offset, " overlaps tensor '", prev.name, "' [",
                                prev.offset, ", ", prev.offset + prev.size_bytes, ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status GgufFile::Impl::Parse() {
  Reader r(data, size, path);
  TANDEM_ASSIGN_OR_RETURN(uint32_t magic, r.Read<uint32_t>("magic"));
  if (magic != kMagic) {
    return Error(absl::StrFormat("bad magic 0x%08x (not a GGUF file; expected \"GGUF\")", magic));
  }
  TANDEM_ASSIGN_OR_RETURN(version, r.Read<uint32_t>("version"));
  if (version == 1) return Error("GGUF version 1 is not supported (u32 counts); use v2 or v3");
  if (version == 0x02000000u || version == 0x03000000u) {
    return Error("GGUF version is byte-swapped: big-endian files are not supported");
  }
  if (version != 2 && version != 3) {
    return Error(absl::StrCat("unsupported GGUF version ", version, " (supported: 2, 3)"));
  }
  TANDEM_ASSIGN_OR_RETURN(uint64_t tensor_count, r.Read<uint64_t>("tensor count"));
  TANDEM_ASSIGN_OR_RETURN(uint64_t kv_count, r.Read<uint64_t>("metadata kv count"));
  if (kv_count > r.remaining() / kMinKvBytes) {
    return Error(absl::StrCat("metadata kv count ", kv_count, " cannot fit in the ",
                              r.remaining(), " bytes that follow the header"));
  }
  if (tensor_count > r.remaining() / kMinTensorInfoBytes) {
    return Error(absl::StrCat("tensor count ", tensor_count, " cannot fit in the ",
                              r.remaining(), " bytes that follow the header"));
  }
  metadata.reserve(kv_count);
  for (uint64_t i = 0; i < kv_count; ++i) {
    GgufKv kv;
    TANDEM_ASSIGN_OR_RETURN(auto key, r.ReadString(absl::StrCat("key #", i), kMaxKeyBytes));
    if (key.empty()) return Error(absl::StrCat("metadata key #", i, " is empty"));
    kv.key = std::string(key);
    TANDEM_ASSIGN_OR_RETURN(uint32_t type,
                            r.Read<uint32_t>(absl::StrCat("type of key '", kv.key, "'")));
    TANDEM_RETURN_IF_ERROR(ParseValue(r, type, kv.key, 0, &kv.value));
    kv.type = static_cast<GgufValueType>(type);
    if (!key_index.emplace(kv.key, metadata.size()).second) {
      return Error(absl::StrCat("duplicate metadata key '", kv.key, "'"));
    }
    metadata.push_back(std::move(kv));
  }
  if (const GgufKv* kv = FindKv("general.alignment"); kv != nullptr) {
    const uint64_t* a = std::get_if<uint64_t>(&kv->value);
    if (a == nullptr || *a == 0 || (*a & (*a - 1)) != 0 || *a > (1u << 30)) {
      return Error("general.alignment must be an unsigned power of two");
    }
    alignment = *a;
  }
  tensors.reserve(tensor_count);
  for (uint64_t i = 0; i < tensor_count; ++i) TANDEM_RETURN_IF_ERROR(ParseTensorInfo(r, i));
  data_start = r.pos() + (alignment - r.pos() % alignment) % alignment;
  if (!tensors.empty() && data_start > size) {
    return Error(absl::StrCat("tensor data section starts at ", data_start,
                              ", past the end of the file (", size, " bytes)"));
  }
  return CheckTensorLayout();
}

GgufFile::GgufFile(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GgufFile::GgufFile(GgufFile&&) noexcept = default;
GgufFile& GgufFile::operator=(GgufFile&&) noexcept = default;
GgufFile::~GgufFile() = default;

absl::StatusOr<GgufFile> GgufFile::Open(const std::string& path) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    const std::string what = absl::StrCat(path, ": cannot open: ", std::strerror(err));
    return err == ENOENT ? absl::NotFoundError(what) : absl::InvalidArgumentError(what);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  impl->size = static_cast<uint64_t>(st.st_size);
  if (impl->size == 0) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, ": empty file"));
  }
  void* map = ::mmap(nullptr, impl->size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int err = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (map == MAP_FAILED) {
    return absl::InternalError(absl::StrCat(path, ": mmap failed: ", std::strerror(err)));
  }
  impl->map = map;
  impl->data = static_cast<const uint8_t*>(map);
  TANDEM_RETURN_IF_ERROR(impl->Parse());
  return GgufFile(std::move(impl));
}

absl::StatusOr<GgufFile> GgufFile::FromBytes(std::string bytes, std::string name) {
  auto impl = std::make_unique<Impl>();
  impl->path = std::move(name);
  impl->owned = std::move(bytes);
  impl->data = reinterpret_cast<const uint8_t*>(impl->owned.data());
  impl->size = impl->owned.size();
  TANDEM_RETURN_IF_ERROR(impl->Parse());
  return GgufFile(std::move(impl));
}

const std::string& GgufFile::path() const { return impl_->path; }
uint32_t GgufFile::version() const { return impl_->version; }
uint64_t GgufFile::alignment() const { return impl_->alignment; }
uint64_t GgufFile::file_size() const { return impl_->size; }
absl::Span<const GgufKv> GgufFile::metadata() const { return impl_->metadata; }
absl::Span<const TensorInfo> GgufFile::tensors() const { return impl_->tensors; }
bool GgufFile::Has(std::string_view key) const { return impl_->FindKv(key) != nullptr; }

namespace {
absl::Status NotFoundKey(const std::string& path, std::string_view key) {
  return absl::NotFoundError(absl::StrCat(path, ": metadata key '", AV(key), "' is missing"));
}
absl::Status WrongType(const std::string& path, const GgufKv& kv, std::string_view wanted) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": metadata key '", kv.key, "' is ",
                                                 TypeName(kv.type), ", expected ", AV(wanted)));
}
}  // namespace

absl::StatusOr<int64_t> GgufFile::GetInt(std::string_view key) const {
  const GgufKv* kv = impl_->FindKv(key);
  if (kv == nullptr) return NotFoundKey(impl_->path, key);
  if (const auto* u = std::get_if<uint64_t>(&kv->value)) {
    if (*u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return absl::InvalidArgumentError(
          absl::StrCat(impl_->path, ": metadata key '", kv->key, "' = ", *u, " is out of range"));
    }
    return static_cast<int64_t>(*u);
  }
  if (const auto* i = std::get_if<int64_t>(&kv->value)) return *i;
  if (const auto* b = std::get_if<bool>(&kv->value)) return *b ? 1 : 0;
  return WrongType(impl_->path, *kv, "an integer");
}

absl::StatusOr<double> GgufFile::GetFloat(std::string_view key) const {
  const GgufKv* kv = impl_->FindKv(key);
  if (kv == nullptr) return NotFoundKey(impl_->path, key);
  if (const auto* d = std::get_if<double>(&kv->value)) return *d;
  if (const auto* u = std::get_if<uint64_t>(&kv->value)) return static_cast<double>(*u);
  if (const auto* i = std::get_if<int64_t>(&kv->value)) return static_cast<double>(*i);
  return WrongType(impl_->path, *kv, "a number");
}

absl::StatusOr<std::string_view> GgufFile::GetString(std::string_view key) const {
  const GgufKv* kv = impl_->FindKv(key);
  if (kv == nullptr) return NotFoundKey(impl_->path, key);
  if (const auto* s = std::get_if<std::string_view>(&kv->value)) return *s;
  return WrongType(impl_->path, *kv, "a string");
}

absl::StatusOr<bool> GgufFile::GetBool(std::string_view key) const {
  const GgufKv* kv = impl_->FindKv(key);
  if (kv == nullptr) return NotFoundKey(impl_->path, key);
  if (const auto* b = std::get_if<bool>(&kv->value)) return *b;
  return WrongType(impl_->path, *kv, "a bool");
}

absl::StatusOr<const GgufArray*> GgufFile::GetArray(std::string_view key) const {
  const GgufKv* kv = impl_->FindKv(key);
  if (kv == nullptr) return NotFoundKey(impl_->path, key);
  if (const auto* a = std::get_if<GgufArray>(&kv->value)) return a;
  return WrongType(impl_->path, *kv, "an array");
}

absl::StatusOr<std::vector<int64_t>> GgufFile::GetIntArray(std::string_view key) const {
  TANDEM_ASSIGN_OR_RETURN(const GgufArray* a, GetArray(key));
  const int size = ScalarSize(static_cast<uint32_t>(a->element_type));
  const bool is_float =
      a->element_type == GgufValueType::kF32 || a->element_type == GgufValueType::kF64;
  if (size <= 0 || is_float) {
    return absl::InvalidArgumentError(absl::StrCat(impl_->path, ": metadata key '", AV(key),
                                                   "' is an array of ",
                                                   TypeName(a->element_type),
                                                   ", expected integers"));
  }
  std::vector<int64_t> out(a->count);
  for (uint64_t i = 0; i < a->count; ++i) {
    const uint8_t* p = a->data + i * size;
    switch (a->element_type) {
      case GgufValueType::kU8: case GgufValueType::kBool: out[i] = p[0]; break;
      case GgufValueType::kI8: out[i] = static_cast<int8_t>(p[0]); break;
      case GgufValueType::kU16: { uint16_t v; std::memcpy(&v, p, 2); out[i] = v; break; }
      case GgufValueType::kI16: { int16_t v; std::memcpy(&v, p, 2); out[i] = v; break; }
      case GgufValueType::kU32: { uint32_t v; std::memcpy(&v, p, 4); out[i] = v; break; }
      case GgufValueType::kI32: { int32_t v; std::memcpy(&v, p, 4); out[i] = v; break; }
      case GgufValueType::kI64: { std::memcpy(&out[i], p, 8); break; }
      case GgufValueType::kU64: {
        uint64_t v;
        std::memcpy(&v, p, 8);
        if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
          return absl::InvalidArgumentError(absl::StrCat(
              impl_->path, ": metadata key '", AV(key), "' element ", i, " is out of range"));
        }
        out[i] = static_cast<int64_t>(v);
        break;
      }
      default: break;
    }
  }
  return out;
}

absl::StatusOr<const TensorInfo*> GgufFile::FindTensor(std::string_view name) const {
  auto it = impl_->tensor_index.find(AV(name));
  if (it == impl_->tensor_index.end()) {
    return absl::NotFoundError(absl::StrCat(impl_->path, ": tensor '", AV(name), "' not found"));
  }
  return &impl_->tensors[it->second];
}

absl::Span<const uint8_t> GgufFile::TensorBytes(const TensorInfo& info) const {
  return absl::Span<const uint8_t>(impl_->data + impl_->data_start + info.offset, info.size_bytes);
}

absl::StatusOr<TensorView> GgufFile::TensorData(std::string_view name) const {
  TANDEM_ASSIGN_OR_RETURN(const TensorInfo* info, FindTensor(name));
  TensorView v;
  // The mapping is read-only: callers must not write through the view.
  v.data = const_cast<uint8_t*>(impl_->data + impl_->data_start + info->offset);
  v.dtype = info->dtype;
  v.ndim = static_cast<int>(info->dims.size());
  for (int i = 0; i < v.ndim; ++i) v.shape[i] = info->dims[v.ndim - 1 - i];
  v.stride_bytes[v.ndim - 1] = DTypeBlockBytes(info->dtype);
  int64_t stride = DTypeRowBytes(info->dtype, v.shape[v.ndim - 1]);
  for (int i = v.ndim - 2; i >= 0; --i) {
    v.stride_bytes[i] = stride;
    stride *= v.shape[i];
  }
  return v;
}

}  // namespace tandem::format
