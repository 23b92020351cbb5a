// common/model_format/chat_template.cc
//
// ChatML rendering and recognition of the GGUF's Jinja template. We do not interpret Jinja: we
// compare the file's template, with whitespace outside string literals and Jinja trim markers
// removed, against the known ChatML forms, after lifting out the default system prompt.
#include "common/model_format/chat_template.h"

#include <cstring>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace tandem::format {
namespace {

constexpr char kImStart[] = "<|im_start|>";
constexpr char kImEnd[] = "<|im_end|>";
constexpr char kPromptSlot[] = "\x01PROMPT\x01";

// Plain ChatML, and SmolLM2's variant that inserts a default system message (kPromptSlot stands
// for it). Written here in normalized form (see Normalize).
constexpr char kChatMlLoop[] =
    "{{'<|im_start|>'+message['role']+'\n'+message['content']+'<|im_end|>'+'\n'}}";
constexpr char kChatMlTail[] =
    "{%endfor%}{%ifadd_generation_prompt%}{{'<|im_start|>assistant\n'}}{%endif%}";

std::string PlainForm() {
  return absl::StrCat("{%formessageinmessages%}", kChatMlLoop, kChatMlTail);
}

std::string DefaultSystemForm() {
  return absl::StrCat(
      "{%formessageinmessages%}{%ifloop.firstandmessages[0]['role']!='system'%}"
      "{{'<|im_start|>system\n",
      kPromptSlot, "<|im_end|>\n'}}{%endif%}", kChatMlLoop, kChatMlTail);
}

// Drops whitespace outside quoted strings and the '-' of Jinja's {%- -%} {{- -}} trim markers,
// and turns double quotes into single ones, so formatting differences do not matter.
std::string Normalize(std::string_view t) {
  std::string out;
  char quote = 0;
  for (size_t i = 0; i < t.size(); ++i) {
    char c = t[i];
    if (quote != 0) {
      if (c == '\\' && i + 1 < t.size()) {
        // Jinja's "\n" escape means a newline; keep any other escape as written.
        if (t[i + 1] == 'n') {
          out.push_back('\n');
        } else {
          out.push_back(c);
          out.push_back(t[i + 1]);
        }
        ++i;
        continue;
      }
      if (c == quote) {
        quote = 0;
        c = '\'';
      }
      out.push_back(c);
      continue;
    }
    if (c == '\'' || c == '"') {
      quote = c;
      out.push_back('\'');
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
    if (c == '-') {
      const std::string_view before = out;
      const std::string_view after = t.substr(i + 1);
      if (before.ends_with("{%") || before.ends_with("{{") || after.starts_with("%}") ||
          after.starts_with("}}")) {
        continue;  // a trim marker: "{%-", "{{-", "-%}", "-}}"
      }
    }
    out.push_back(c);
  }
  return out;
}

}  // namespace

ChatTemplate ChatTemplate::ChatMl(std::string default_system_prompt) {
  return ChatTemplate(std::move(default_system_prompt));
}

absl::StatusOr<ChatTemplate> ChatTemplate::FromGguf(const GgufFile& file) {
  TANDEM_ASSIGN_OR_RETURN(std::string_view jinja, file.GetString("tokenizer.chat_template"));
  const auto unsupported = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat(file.path(), ": tokenizer.chat_template is not a supported ChatML template (",
                     AV(why),
                     "); only ChatML with or without a default system prompt is built in"));
  };
  if (jinja.find(kImStart) == std::string_view::npos ||
      jinja.find(kImEnd) == std::string_view::npos) {
    return unsupported("no <|im_start|>/<|im_end|> markers");
  }
  const std::string norm = Normalize(jinja);
  if (norm == PlainForm()) return ChatTemplate(std::string());

  const std::string form = DefaultSystemForm();
  const size_t slot = form.find(kPromptSlot);
  const std::string_view prefix = std::string_view(form).substr(0, slot);
  const std::string_view suffix = std::string_view(form).substr(slot + std::strlen(kPromptSlot));
  if (norm.size() > prefix.size() + suffix.size() && norm.starts_with(prefix) &&
      norm.ends_with(suffix)) {
    // Inside a string literal Normalize keeps the text as is, so this is the prompt verbatim,
    // unless it closes the literal or uses escapes: then it is not a plain string and we refuse.
    std::string prompt = norm.substr(prefix.size(), norm.size() - prefix.size() - suffix.size());
    if (prompt.find_first_of("'\\") == std::string::npos) return ChatTemplate(std::move(prompt));
  }
  return unsupported("the Jinja differs from the known ChatML forms");
}

std::string ChatTemplate::Render(const std::vector<ChatMessage>& messages,
                                 bool add_generation_prompt) const {
  std::string out;
  if (!default_system_prompt_.empty() && !messages.empty() && messages[0].role != "system") {
    absl::StrAppend(&out, kImStart, "system\n", default_system_prompt_, kImEnd, "\n");
  }
  for (const ChatMessage& m : messages) {
    absl::StrAppend(&out, kImStart, m.role, "\n", m.content, kImEnd, "\n");
  }
  if (add_generation_prompt) absl::StrAppend(&out, kImStart, "assistant\n");
  return out;
}

std::vector<TokenId> ChatTemplate::EncodeChat(const Tokenizer& tokenizer,
                                              const std::vector<ChatMessage>& messages,
                                              bool add_generation_prompt) const {
  const std::vector<TokenId> im_start = tokenizer.Encode(kImStart, /*parse_special=*/true);
  const std::vector<TokenId> im_end = tokenizer.Encode(kImEnd, /*parse_special=*/true);
  const std::vector<TokenId> newline = tokenizer.Encode("\n", /*parse_special=*/false);
  std::vector<TokenId> out;
  const auto append = [&out](const std::vector<TokenId>& ids) {
    out.insert(out.end(), ids.begin(), ids.end());
  };
  // The text between the markers is one fragment, exactly as special-token splitting of the
  // rendered prompt would produce it, so pre-tokenization sees the same boundaries.
  const auto message = [&](std::string_view role, std::string_view content) {
    append(im_start);
    append(tokenizer.Encode(absl::StrCat(AV(role), "\n", AV(content)), /*parse_special=*/false));
    append(im_end);
    append(newline);
  };
  if (!default_system_prompt_.empty() && !messages.empty() && messages[0].role != "system") {
    message("system", default_system_prompt_);
  }
  for (const ChatMessage& m : messages) message(m.role, m.content);
  if (add_generation_prompt) {
    append(im_start);
    append(tokenizer.Encode("assistant\n", /*parse_special=*/false));
  }
  return out;
}

}  // namespace tandem::format
