// tests/model_format/chat_template_test.cc
//
// ChatML rendering and recognition of tokenizer.chat_template on synthetic GGUF images (no model
// file). EncodeChat on the real vocab is tested in tokenizer_model_test.cc.
#include <string>
#include <vector>

#include "common/model_format/chat_template.h"
#include "gtest/gtest.h"
#include "tests/model_format/gguf_writer.h"
#include "tests/support/status_matchers.h"

namespace tandem::format {
namespace {

using ::tandem::testing::GgufWriter;
using ::tandem::testing::StatusIs;

constexpr char kSmolLm2Template[] =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
    "'<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|im_start|>assistant\n' }}{% endif %}";

absl::StatusOr<ChatTemplate> FromTemplate(const std::string& jinja) {
  GgufWriter w;
  w.AddString("tokenizer.chat_template", jinja);
  auto file = GgufFile::FromBytes(w.Build(), "chat.gguf");
  if (!file.ok()) return file.status();
  return ChatTemplate::FromGguf(*file);
}

TEST(ChatTemplateTest, RendersChatMl) {
  const ChatTemplate plain = ChatTemplate::ChatMl("");
  EXPECT_EQ(plain.Render({{"user", "Hi"}}, false), "<|im_start|>user\nHi<|im_end|>\n");
  EXPECT_EQ(plain.Render({{"user", "Hi"}, {"assistant", "Hello!"}}, true),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(plain.Render({}, true), "<|im_start|>assistant\n");
}

TEST(ChatTemplateTest, DefaultSystemPromptOnlyWithoutSystemMessage) {
  const ChatTemplate t = ChatTemplate::ChatMl("Be nice.");
  EXPECT_EQ(t.Render({{"user", "Hi"}}, true),
            "<|im_start|>system\nBe nice.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(t.Render({{"system", "Be terse."}, {"user", "Hi"}}, false),
            "<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");
  // A later system message does not suppress the default (the Jinja checks messages[0] only).
  EXPECT_EQ(t.Render({{"user", "a"}, {"system", "b"}}, false),
            "<|im_start|>system\nBe nice.<|im_end|>\n<|im_start|>user\na<|im_end|>\n"
            "<|im_start|>system\nb<|im_end|>\n");
  // The Jinja inserts the default inside its message loop, so not for an empty chat.
  EXPECT_EQ(t.Render({}, true), "<|im_start|>assistant\n");
}

TEST(ChatTemplateTest, RecognisesSmolLm2Template) {
  ASSERT_OK_AND_ASSIGN(ChatTemplate t, FromTemplate(kSmolLm2Template));
  EXPECT_EQ(t.default_system_prompt(),
            "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
}

TEST(ChatTemplateTest, RecognisesReformattedVariants) {
  // Other whitespace, trim markers, double quotes, "\n" escapes and another prompt.
  const std::string jinja =
      "{%- for message in messages -%}\n  {%- if loop.first and messages[0][\"role\"] != "
      "\"system\" -%}\n    {{- \"<|im_start|>system\\nYou are Tandem, be brief.<|im_end|>\\n\" "
      "-}}\n  {%- endif -%}\n  {{- '<|im_start|>' + message['role'] + '\\n' + message['content'] "
      "+ '<|im_end|>' + '\\n' -}}\n{%- endfor -%}\n{%- if add_generation_prompt -%}\n  {{- "
      "'<|im_start|>assistant\\n' -}}\n{%- endif -%}\n";
  ASSERT_OK_AND_ASSIGN(ChatTemplate t, FromTemplate(jinja));
  EXPECT_EQ(t.default_system_prompt(), "You are Tandem, be brief.");

  const std::string plain =
      "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
      "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ "
      "'<|im_start|>assistant\n' }}{% endif %}";
  ASSERT_OK_AND_ASSIGN(ChatTemplate p, FromTemplate(plain));
  EXPECT_EQ(p.default_system_prompt(), "");
}

TEST(ChatTemplateTest, RejectsOtherTemplates) {
  const std::string llama3 =
      "{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
      "'<|end_header_id|>\n\n' + message['content'] + '<|eot_id|>' }}{% endfor %}";
  EXPECT_THAT(FromTemplate(llama3), StatusIs(absl::StatusCode::kInvalidArgument, "chat.gguf"));
  // ChatML markers but extra logic (tools) that we would silently ignore.
  std::string tools = kSmolLm2Template;
  tools.insert(0, "{% if tools %}{{ tools | tojson }}{% endif %}");
  EXPECT_THAT(FromTemplate(tools), StatusIs(absl::StatusCode::kInvalidArgument, "ChatML"));
  // A "prompt" that is really an expression.
  std::string expr = kSmolLm2Template;
  expr.replace(expr.find("You are"), 7, "' + user_name + '");
  EXPECT_THAT(FromTemplate(expr), StatusIs(absl::StatusCode::kInvalidArgument));
  GgufWriter w;
  ASSERT_OK_AND_ASSIGN(GgufFile none, GgufFile::FromBytes(w.Build(), "none.gguf"));
  EXPECT_FALSE(ChatTemplate::FromGguf(none).ok());
}

}  // namespace
}  // namespace tandem::format
