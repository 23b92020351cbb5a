// common/model_format/chat_template.h
//
// ChatTemplate renders chat messages into the prompt text the model was trained on. ChatML (the
// SmolLM2 template) is built in; FromGguf recognises the file's tokenizer.chat_template as ChatML
// (with or without a default system prompt) and fails at start on any other Jinja template rather
// than rendering it wrong. Immutable; thread-safe. EncodeChat is the safe way to tokenize a chat:
// only the template's own markup may become control tokens, never text inside a message.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model_format/gguf.h"
#include "common/model_format/tokenizer.h"

namespace tandem::format {

struct ChatMessage {
  std::string role;  // "system" | "user" | "assistant" (others pass through as given)
  std::string content;
};

class ChatTemplate {
 public:
  static absl::StatusOr<ChatTemplate> FromGguf(const GgufFile& file);
  static ChatTemplate ChatMl(std::string default_system_prompt);

  // `<|im_start|>{role}\n{content}<|im_end|>\n` per message (a default system message first when the
  // first message is not a system one and the template has a default), then
  // `<|im_start|>assistant\n` when add_generation_prompt. Encoding this with parse_special=true
  // would turn a "<|im_end|>" typed inside a message into a control token: use EncodeChat.
  std::string Render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;

  // The token ids of Render(messages, add_generation_prompt), built so that only the template's
  // own <|im_start|>/<|im_end|> markers become control tokens: the text between markers (role line
  // and content) is encoded with parse_special=false. Equals Encode(Render(...), true) whenever no
  // role or content contains special-token text.
  std::vector<TokenId> EncodeChat(const Tokenizer& tokenizer,
                                  const std::vector<ChatMessage>& messages,
                                  bool add_generation_prompt) const;

  const std::string& default_system_prompt() const { return default_system_prompt_; }

 private:
  explicit ChatTemplate(std::string default_system_prompt)
      : default_system_prompt_(std::move(default_system_prompt)) {}
  std::string default_system_prompt_;
};

}  // namespace tandem::format
