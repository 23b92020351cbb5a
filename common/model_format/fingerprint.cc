#include "common/model_format/fingerprint.h"

#include <algorithm>
#include <cstring>
#include <string_view>
#include <vector>

#include "common/hash.h"
#include "common/status.h"

namespace tandem::format {
namespace {

// Streams a canonical little-endian encoding into SHA-256. Every variable-length field carries its
// length, so no two different models encode to the same byte stream.
class Hasher {
 public:
  void Bytes(const void* p, size_t n) {
    if (n > 0) sha_.Update(p, n);
  }
  template <typename T>
  void Pod(T v) {
    Bytes(&v, sizeof(v));  // x86-64 and aarch64 are little-endian, like GGUF
  }
  void Str(std::string_view s) {
    Pod<uint64_t>(s.size());
    Bytes(s.data(), s.size());
  }
  Fingerprint Finish() { return Fingerprint{sha_.Finish()}; }

 private:
  Sha256Hasher sha_;
};

uint64_t ScalarBytes(GgufValueType t) {
  switch (t) {
    case GgufValueType::kU8: case GgufValueType::kI8: case GgufValueType::kBool: return 1;
    case GgufValueType::kU16: case GgufValueType::kI16: return 2;
    case GgufValueType::kU32: case GgufValueType::kI32: case GgufValueType::kF32: return 4;
    default: return 8;
  }
}

// End of `count` encoded elements of `type` starting at `p`. The parser has already validated
// these bytes, so the walk stays inside the image.
const uint8_t* SkipElements(const uint8_t* p, GgufValueType type, uint64_t count) {
  if (type == GgufValueType::kString) {
    for (uint64_t i = 0; i < count; ++i) {
      uint64_t len;
      std::memcpy(&len, p, 8);
      p += 8 + len;
    }
    return p;
  }
  if (type == GgufValueType::kArray) {
    for (uint64_t i = 0; i < count; ++i) {
      uint32_t elem;
      uint64_t n;
      std::memcpy(&elem, p, 4);
      std::memcpy(&n, p + 4, 8);
      p = SkipElements(p + 12, static_cast<GgufValueType>(elem), n);
    }
    return p;
  }
  return p + count * ScalarBytes(type);
}

void HashValue(Hasher& h, GgufValueType type, const GgufValue& value) {
  const uint64_t n = ScalarBytes(type);
  if (const auto* u = std::get_if<uint64_t>(&value)) {
    h.Bytes(u, n);  // low bytes first: the original width, little-endian
  } else if (const auto* i = std::get_if<int64_t>(&value)) {
    h.Bytes(i, n);
  } else if (const auto* d = std::get_if<double>(&value)) {
    if (type == GgufValueType::kF32) {
      h.Pod(static_cast<float>(*d));  // exact: it was read from an f32
    } else {
      h.Pod(*d);
    }
  } else if (const auto* b = std::get_if<bool>(&value)) {
    h.Pod<uint8_t>(*b ? 1 : 0);
  } else if (const auto* s = std::get_if<std::string_view>(&value)) {
    h.Str(*s);
  } else if (const auto* a = std::get_if<GgufArray>(&value)) {
    h.Pod(static_cast<uint32_t>(a->element_type));
    h.Pod(a->count);
    const uint8_t* end = SkipElements(a->data, a->element_type, a->count);
    h.Bytes(a->data, static_cast<size_t>(end - a->data));
  }
}

}  // namespace

std::string Fingerprint::Hex() const { return HexEncode(bytes); }

Fingerprint ModelFingerprint(const GgufFile& file) {
  Hasher h;
  h.Str("tandem-model-fingerprint-v1");

  std::vector<const GgufKv*> kvs;
  for (const GgufKv& kv : file.metadata()) kvs.push_back(&kv);
  std::sort(kvs.begin(), kvs.end(),
            [](const GgufKv* a, const GgufKv* b) { return a->key < b->key; });
  h.Pod<uint64_t>(kvs.size());
  for (const GgufKv* kv : kvs) {
    h.Str(kv->key);
    h.Pod(static_cast<uint32_t>(kv->type));
    HashValue(h, kv->type, kv->value);
  }

  std::vector<const TensorInfo*> tensors;
  for (const TensorInfo& t : file.tensors()) tensors.push_back(&t);
  std::sort(tensors.begin(), tensors.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->name < b->name; });
  h.Pod<uint64_t>(tensors.size());
  for (const TensorInfo* t : tensors) {
    h.Str(t->name);
    h.Pod<uint32_t>(static_cast<uint32_t>(t->dims.size()));
    for (int64_t d : t->dims) h.Pod(d);
    h.Pod(t->ggml_type);
    h.Pod(t->offset);
    h.Pod(t->size_bytes);
    const absl::Span<const uint8_t> data = file.TensorBytes(*t);
    h.Pod<uint64_t>(Xxh3_64(data.data(), data.size()));
  }
  return h.Finish();
}

absl::StatusOr<std::string> VocabFingerprintHex(const GgufFile& file) {
  TANDEM_ASSIGN_OR_RETURN(const GgufArray* tokens, file.GetArray("tokenizer.ggml.tokens"));
  if (tokens->element_type != GgufValueType::kString) {
    return absl::InvalidArgumentError("tokenizer.ggml.tokens is not a string array");
  }
  Sha256Hasher hasher;
  for (std::string_view token : tokens->strings) {
    const uint64_t size = token.size();
    hasher.Update(&size, sizeof(size));
    hasher.Update(token);
  }
  return HexEncode(hasher.Finish());
}

}  // namespace tandem::format
