// common/model_format/pretokenizer.h
//
// The pre-tokenizer of byte-level BPE (../shared/model.md §5.2): splits text into the pieces that
// BPE merges within. kGpt2 is the GPT-2 pattern
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// matched by hand over code points; kSmolLm first isolates every \p{N} code point and then applies
// the GPT-2 pattern to each run between them (llama.cpp's LLAMA_VOCAB_PRE_TYPE_SMOLLM). \s is the
// Unicode White_Space property, as in llama.cpp. Bytes that are not valid UTF-8 each count as one
// code point of class "other" (like U+FFFD, which llama.cpp substitutes), but the pieces keep the
// original bytes, so concatenating the pieces always gives back the input.
// Stateless; thread-safe.
#pragma once

#include <string_view>
#include <vector>

namespace tandem::format {

enum class PreTokenizerKind { kGpt2, kSmolLm };

// Appends the pieces of `text` (views into it, in order, none empty) to *pieces.
void PreTokenize(PreTokenizerKind kind, std::string_view text,
                 std::vector<std::string_view>* pieces);

}  // namespace tandem::format
