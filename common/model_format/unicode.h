// common/model_format/unicode.h
//
// The few Unicode facts the byte-level BPE tokenizer needs: code point classes for the GPT-2
// pre-tokenizer (\p{L}, \p{N}, \s, from the generated unicode_tables.cc, which match llama.cpp's
// unicode-data.cpp exactly for Unicode 15.1), a strict UTF-8 decoder that reports invalid bytes
// instead of throwing, and GPT-2's byte <-> printable-character mapping (../shared/model.md §5.1).
// Pure functions over constant tables: thread-safe, no allocation except the returned strings.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tandem::format {

namespace unicode_internal {
struct CodePointRange {
  uint32_t first;
  uint32_t last;  // inclusive
};
extern const char kUnicodeVersion[];
extern const CodePointRange kLetterRanges[];
extern const size_t kLetterRangesSize;
extern const CodePointRange kNumberRanges[];
extern const size_t kNumberRangesSize;
extern const CodePointRange kWhitespaceRanges[];
extern const size_t kWhitespaceRangesSize;
}  // namespace unicode_internal

// General category L* / N*, and the White_Space property (what the pre-tokenizer calls \s).
bool IsUnicodeLetter(uint32_t cp);
bool IsUnicodeNumber(uint32_t cp);
bool IsUnicodeWhitespace(uint32_t cp);

// Decodes the UTF-8 sequence starting at s[pos] (pos < s.size()). Returns its length (1..4) and
// sets *cp; returns 0 when the byte at pos does not start a valid, complete, shortest-form
// sequence of a scalar value (the caller then treats that one byte on its own).
int DecodeUtf8(std::string_view s, size_t pos, uint32_t* cp);

// Appends the UTF-8 encoding of a scalar value.
void AppendUtf8(uint32_t cp, std::string* out);

// GPT-2 bytes_to_unicode: the code point that stands for `byte` in vocab and merge strings.
uint32_t ByteToCodePoint(uint8_t byte);
// The inverse: the byte a code point stands for, or -1 when cp is not one of the 256.
int CodePointToByte(uint32_t cp);

}  // namespace tandem::format
