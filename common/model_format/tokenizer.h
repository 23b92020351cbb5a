// common/model_format/tokenizer.h
//
// Tokenizer is the byte-level BPE of GGUF files with tokenizer.ggml.model == "gpt2" (../shared/model.md
// §5): GPT-2 byte<->unicode mapping, the pre-tokenizer named by tokenizer.ggml.pre ("smollm": every
// digit alone, then the GPT-2 split; "gpt2"/"gpt-2"/"default"/absent: the GPT-2 split; any other
// value fails FromGguf), merges by rank, special tokens split out first. Token ids equal llama.cpp's.
// Any byte string can be encoded: bytes that are not valid UTF-8 are byte-mapped like any other
// (llama.cpp would substitute U+FFFD), so Decode(Encode(s)) == s for every s, except that bytes
// whose byte-level character the vocab lacks are dropped, as in llama.cpp (SmolLM2 lacks 21: 0x04
// 0x06 0x13 0x14 0x16 0x1D 0xC0 0xC1 0xF1 0xF2 0xF5..0xFF; none occurs in UTF-8 text other than
// those six control characters and lead bytes of planes 4..12).
// Immutable after FromGguf; Encode/Decode are thread-safe (the merge cache is internally locked).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/model_format/gguf.h"

namespace tandem::format {

using TokenId = int32_t;

// Turns a stream of token ids into text, holding back an incomplete UTF-8 sequence until the token
// that completes it arrives (so SSE chunks never split a character). One per stream; not thread-safe.
class StreamDecoder {
 public:
  // Returns the text that became complete with this token (possibly empty).
  std::string Push(TokenId id);
  // Whatever is still held back (invalid bytes are flushed as U+FFFD).
  std::string Flush();

 private:
  friend class Tokenizer;
  explicit StreamDecoder(const class Tokenizer* tokenizer) : tokenizer_(tokenizer) {}
  const class Tokenizer* tokenizer_;
  std::string pending_;
};

class Tokenizer {
 public:
  static absl::StatusOr<Tokenizer> FromGguf(const GgufFile& file);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // parse_special: text equal to a control token ("<|im_start|>") becomes that token; otherwise it
  // is ordinary text. User-defined tokens (type 4) are split out either way, as in llama.cpp and
  // HF tokenizers. Never adds BOS.
  std::vector<TokenId> Encode(std::string_view text, bool parse_special) const;
  // Concatenated bytes of the tokens. Control tokens render as their text unless skip_special.
  std::string Decode(absl::Span<const TokenId> ids, bool skip_special = false) const;
  // Raw bytes of one token (after the byte<->unicode mapping is undone).
  std::string TokenBytes(TokenId id) const;
  StreamDecoder NewStreamDecoder() const { return StreamDecoder(this); }

  int32_t vocab_size() const;
  bool IsControl(TokenId id) const;
  // SHA-256 hex over tokens, types and merges: nodes compare it at registration.
  std::string VocabFingerprint() const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::format
