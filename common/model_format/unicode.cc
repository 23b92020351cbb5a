// common/model_format/unicode.cc
//
// Lookups over the generated range tables (binary search, ASCII answered directly), the UTF-8
// codec and the GPT-2 byte mapping. See unicode.h.
#include "common/model_format/unicode.h"

#include <algorithm>
#include <array>

namespace tandem::format {
namespace {

using unicode_internal::CodePointRange;

bool InRanges(const CodePointRange* ranges, size_t n, uint32_t cp) {
  const CodePointRange* end = ranges + n;
  // First range whose last >= cp; cp is inside when that range also starts at or before it.
  const CodePointRange* it = std::lower_bound(
      ranges, end, cp, [](const CodePointRange& r, uint32_t v) { return r.last < v; });
  return it != end && it->first <= cp;
}

// bytes_to_unicode: printable Latin-1 bytes keep their value; the other 68, in increasing order,
// take U+0100, U+0101, ...
struct ByteMap {
  std::array<uint32_t, 256> to_cp{};
  std::array<int16_t, 0x180> to_byte{};  // every mapped code point is < U+0144
  ByteMap() {
    to_byte.fill(-1);
    uint32_t next = 0x100;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      to_cp[b] = printable ? static_cast<uint32_t>(b) : next++;
      to_byte[to_cp[b]] = static_cast<int16_t>(b);
    }
  }
};

const ByteMap& GetByteMap() {
  static const ByteMap* map = new ByteMap();
  return *map;
}

}  // namespace

bool IsUnicodeLetter(uint32_t cp) {
  if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
  return InRanges(unicode_internal::kLetterRanges, unicode_internal::kLetterRangesSize, cp);
}

bool IsUnicodeNumber(uint32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  return InRanges(unicode_internal::kNumberRanges, unicode_internal::kNumberRangesSize, cp);
}

bool IsUnicodeWhitespace(uint32_t cp) {
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
  return InRanges(unicode_internal::kWhitespaceRanges, unicode_internal::kWhitespaceRangesSize,
                  cp);
}

int DecodeUtf8(std::string_view s, size_t pos, uint32_t* cp) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(s[i]); };
  const uint8_t b0 = byte(pos);
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  int len;
  uint32_t value;
  uint32_t min;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2, value = b0 & 0x1F, min = 0x80;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3, value = b0 & 0x0F, min = 0x800;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4, value = b0 & 0x07, min = 0x10000;
  } else {
    return 0;  // continuation byte, overlong lead C0/C1, or F5..FF
  }
  if (pos + len > s.size()) return 0;
  for (int i = 1; i < len; ++i) {
    const uint8_t b = byte(pos + i);
    if ((b & 0xC0) != 0x80) return 0;
    value = (value << 6) | (b & 0x3F);
  }
  if (value < min || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF)) return 0;
  *cp = value;
  return len;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

uint32_t ByteToCodePoint(uint8_t byte) { return GetByteMap().to_cp[byte]; }

int CodePointToByte(uint32_t cp) {
  const auto& map = GetByteMap().to_byte;
  return cp < map.size() ? map[cp] : -1;
}

}  // namespace tandem::format
