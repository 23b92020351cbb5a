// common/little_endian.h
//
// Byte-order helpers for the on-disk and on-wire formats (ARCHITECTURE.md §5.1, KvFormat::Encode),
// which are little-endian whatever the host is. Written byte by byte, so they need no alignment and
// no host-endianness test. Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

namespace tandem {

// Writes the sizeof(T) low bytes of `v` at base[off..], least significant first.
template <typename T>
inline void StoreLe(uint8_t* base, size_t off, T v) {
  static_assert(std::is_integral_v<T>);
  for (size_t i = 0; i < sizeof(T); ++i) {
    base[off + i] = static_cast<uint8_t>(static_cast<uint64_t>(v) >> (8 * i));
  }
}

// Reads a little-endian T from base[off..].
template <typename T>
inline T LoadLe(const uint8_t* base, size_t off) {
  static_assert(std::is_integral_v<T>);
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<uint64_t>(base[off + i]) << (8 * i);
  return static_cast<T>(v);
}

// Appends a little-endian T to `out`.
template <typename T>
inline void AppendLe(std::string* out, T v) {
  static_assert(std::is_integral_v<T>);
  for (size_t i = 0; i < sizeof(T); ++i) {
    out->push_back(static_cast<char>(static_cast<uint64_t>(v) >> (8 * i)));
  }
}

}  // namespace tandem
