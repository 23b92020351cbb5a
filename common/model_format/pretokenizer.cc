// common/model_format/pretokenizer.cc
//
// A hand-written matcher for the GPT-2 split pattern (no std::regex: it is slow and lacks \p).
// The alternatives are tried in pattern order at each position, exactly like a backtracking
// regex engine would, which for this pattern reduces to the branch structure below.
#include "common/model_format/pretokenizer.h"

#include <cstdint>

#include "common/model_format/unicode.h"

namespace tandem::format {
namespace {

enum class CpClass : uint8_t { kNone, kLetter, kNumber, kSpace, kOther };

struct CodePoint {
  uint32_t cp;      // the code point, or 0xFFFD for an invalid byte
  size_t offset;    // byte offset in the text
  CpClass cls;
};

CpClass Classify(uint32_t cp) {
  if (IsUnicodeLetter(cp)) return CpClass::kLetter;
  if (IsUnicodeNumber(cp)) return CpClass::kNumber;
  if (IsUnicodeWhitespace(cp)) return CpClass::kSpace;
  return CpClass::kOther;
}

std::vector<CodePoint> DecodeAll(std::string_view text) {
  std::vector<CodePoint> cps;
  cps.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    uint32_t cp = 0;
    int len = DecodeUtf8(text, pos, &cp);
    if (len == 0) {
      cp = 0xFFFD;
      len = 1;
    }
    cps.push_back({cp, pos, Classify(cp)});
    pos += static_cast<size_t>(len);
  }
  return cps;
}

// GPT-2 pattern over cps[begin, end), which is treated as a whole text (the lookahead of
// \s+(?!\S) does not see past `end`). `emit(a, b)` receives code point index ranges.
template <typename Emit>
void SplitGpt2(const std::vector<CodePoint>& cps, size_t begin, size_t end, Emit emit) {
  const auto cls_at = [&](size_t i) { return i < end ? cps[i].cls : CpClass::kNone; };
  size_t pos = begin;
  while (pos < end) {
    const uint32_t cp = cps[pos].cp;
    // 's|'t|'re|'ve|'m|'ll|'d (lowercase only)
    if (cp == '\'' && pos + 1 < end) {
      const uint32_t next = cps[pos + 1].cp;
      if (next == 's' || next == 't' || next == 'm' || next == 'd') {
        emit(pos, pos + 2);
        pos += 2;
        continue;
      }
      if (pos + 2 < end) {
        const uint32_t next2 = cps[pos + 2].cp;
        if ((next == 'r' && next2 == 'e') || (next == 'v' && next2 == 'e') ||
            (next == 'l' && next2 == 'l')) {
          emit(pos, pos + 3);
          pos += 3;
          continue;
        }
      }
    }
    // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional space, then a run of one class.
    const CpClass cls = cp == ' ' ? cls_at(pos + 1) : cps[pos].cls;
    if (cls == CpClass::kLetter || cls == CpClass::kNumber || cls == CpClass::kOther) {
      const size_t start = pos;
      if (cp == ' ') ++pos;
      while (cls_at(pos) == cls) ++pos;
      emit(start, pos);
      continue;
    }
    // \s+(?!\S) leaves the last space of a run for the word after it; \s+ takes a run at the end.
    size_t n = 0;
    while (cls_at(pos + n) == CpClass::kSpace) ++n;
    if (n > 1 && pos + n < end) {
      emit(pos, pos + n - 1);
      pos += n - 1;
    } else {
      const size_t len = n > 0 ? n : 1;  // n == 0 cannot happen: every class is covered above
      emit(pos, pos + len);
      pos += len;
    }
  }
}

}  // namespace

void PreTokenize(PreTokenizerKind kind, std::string_view text,
                 std::vector<std::string_view>* pieces) {
  if (text.empty()) return;
  const std::vector<CodePoint> cps = DecodeAll(text);
  const auto byte_offset = [&](size_t i) {
    return i < cps.size() ? cps[i].offset : text.size();
  };
  const auto emit = [&](size_t a, size_t b) {
    const size_t from = byte_offset(a);
    pieces->push_back(text.substr(from, byte_offset(b) - from));
  };
  if (kind == PreTokenizerKind::kGpt2) {
    SplitGpt2(cps, 0, cps.size(), emit);
    return;
  }
  // kSmolLm: every number code point alone; the GPT-2 pattern on each run between them.
  size_t run = 0;
  for (size_t i = 0; i <= cps.size(); ++i) {
    if (i < cps.size() && cps[i].cls != CpClass::kNumber) continue;
    if (run < i) SplitGpt2(cps, run, i, emit);
    if (i < cps.size()) emit(i, i + 1);
    run = i + 1;
  }
}

}  // namespace tandem::format
