// Tests for router/openai_api.h and router/openai_render.h.
#include "router/openai_api.h"

#include <string>
#include <vector>

#include "common/http.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "router/openai_render.h"

namespace tandem::router {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Json = nlohmann::json;

constexpr char kModel[] = "SmolLM2-135M-Instruct";

ParseOptions Options(int64_t context = 2048) {
  ParseOptions o;
  o.model_name = kModel;
  o.context_length = context;
  // One token per byte of prompt text: enough to exercise the length checks.
  o.count_prompt_tokens = [](const CompletionRequest& r) -> absl::StatusOr<int64_t> {
    if (r.endpoint == Endpoint::kCompletions) return static_cast<int64_t>(r.prompt.size());
    int64_t n = 0;
    for (const Message& m : r.messages) n += static_cast<int64_t>(m.Text().size());
    return n;
  };
  return o;
}

absl::StatusOr<CompletionRequest> Chat(const std::string& body, int64_t context = 2048) {
  return ParseCompletionRequest(Endpoint::kChatCompletions, body, Options(context));
}
absl::StatusOr<CompletionRequest> Text(const std::string& body, int64_t context = 2048) {
  return ParseCompletionRequest(Endpoint::kCompletions, body, Options(context));
}

// Prefixes `fields` (a JSON fragment without braces, may be empty) with a valid model and messages.
std::string ChatBody(const std::string& fields) {
  std::string b = R"({"model":"SmolLM2-135M-Instruct","messages":[{"role":"user","content":"hi"}])";
  if (!fields.empty()) b += "," + fields;
  return b + "}";
}

TEST(ParseChat, FullRequest) {
  auto r = Chat(R"({
    "model": "SmolLM2-135M-Instruct", "stream": true, "max_completion_tokens": 128,
    "temperature": 0.5, "top_p": 0.9, "top_k": 40, "seed": 7, "stop": ["\n\n", "END"],
    "ignore_eos": true, "stream_options": {"include_usage": true}, "n": 1, "unknown_field": {"x": [1, 2]},
    "user": "someone", "documents": [{"id": "d1", "text": "doc text"}],
    "messages": [
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": [{"type": "document", "text": "DOC", "id": "d1"},
                                   {"type": "text", "text": "Summarize."}]},
      {"role": "assistant", "content": null}],
    "tandem": {"blend": "auto", "recompute_ratio": 0.15, "sparse_prefill": "sale",
               "store_kv": true}})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->endpoint, Endpoint::kChatCompletions);
  EXPECT_EQ(r->model, kModel);
  ASSERT_EQ(r->messages.size(), 3u);
  EXPECT_EQ(r->messages[0].role, "system");
  EXPECT_EQ(r->messages[0].Text(), "Be brief.");
  ASSERT_EQ(r->messages[1].content.size(), 2u);
  EXPECT_EQ(r->messages[1].content[0].type, ContentPart::Type::kDocument);
  EXPECT_EQ(r->messages[1].content[0].id, "d1");
  EXPECT_EQ(r->messages[1].content[1].type, ContentPart::Type::kText);
  EXPECT_EQ(r->messages[1].Text(), "DOCSummarize.");
  EXPECT_TRUE(r->messages[2].content.empty());
  EXPECT_EQ(r->max_tokens, 128);
  EXPECT_DOUBLE_EQ(r->temperature, 0.5);
  EXPECT_DOUBLE_EQ(r->top_p, 0.9);
  EXPECT_EQ(r->top_k, 40);
  EXPECT_TRUE(r->ignore_eos);
  EXPECT_EQ(r->seed, 7);
  EXPECT_THAT(r->stop, ElementsAre("\n\n", "END"));
  EXPECT_TRUE(r->stream);
  EXPECT_TRUE(r->include_usage);
  ASSERT_EQ(r->documents.size(), 1u);
  EXPECT_EQ(r->documents[0].id, "d1");
  EXPECT_EQ(r->documents[0].text, "doc text");
  EXPECT_EQ(r->tandem.blend, "auto");
  EXPECT_DOUBLE_EQ(r->tandem.recompute_ratio.value_or(-1), 0.15);
  EXPECT_EQ(r->tandem.sparse_prefill, "sale");
  EXPECT_EQ(r->tandem.store_kv, true);
  EXPECT_EQ(r->prompt_tokens, 9 + 13);
  EXPECT_EQ(r->effective_max_tokens, 128);
}

TEST(ParseChat, Defaults) {
  auto r = Chat(ChatBody(R"("stop":"x","temperature":null,"top_k":-1)"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->max_tokens.has_value());
  EXPECT_DOUBLE_EQ(r->temperature, 1.0);
  EXPECT_DOUBLE_EQ(r->top_p, 1.0);
  EXPECT_EQ(r->top_k, 0);
  EXPECT_FALSE(r->seed.has_value());
  EXPECT_FALSE(r->ignore_eos);
  EXPECT_THAT(r->stop, ElementsAre("x"));
  EXPECT_FALSE(r->stream);
  EXPECT_FALSE(r->include_usage);
  EXPECT_FALSE(r->tandem.blend.has_value());
  EXPECT_EQ(r->prompt_tokens, 2);
  EXPECT_EQ(r->effective_max_tokens, 2048 - 2);
}

TEST(ParseChat, ServerDefaultsFillOnlyTheFieldsLeftOut) {
  ParseOptions o = Options();
  o.defaults = {0.7, 0.9, 40, 256};
  auto r = ParseCompletionRequest(Endpoint::kChatCompletions, ChatBody(""), o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_DOUBLE_EQ(r->temperature, 0.7);
  EXPECT_DOUBLE_EQ(r->top_p, 0.9);
  EXPECT_EQ(r->top_k, 40);
  EXPECT_FALSE(r->max_tokens.has_value());
  EXPECT_EQ(r->effective_max_tokens, 256);
  // A field the client sends wins, one by one; top_k -1 turns the default top-k off.
  r = ParseCompletionRequest(Endpoint::kChatCompletions,
                             ChatBody(R"("temperature":0,"top_k":-1,"max_tokens":1000)"), o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_DOUBLE_EQ(r->temperature, 0.0);
  EXPECT_DOUBLE_EQ(r->top_p, 0.9);
  EXPECT_EQ(r->top_k, 0);
  EXPECT_EQ(r->effective_max_tokens, 1000);
  // The default never asks for more than the context has room for.
  r = ParseCompletionRequest(Endpoint::kCompletions,
                             R"({"model":"SmolLM2-135M-Instruct","prompt":")" +
                                 std::string(2000, 'a') + R"("})",
                             o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->effective_max_tokens, 48);
}

TEST(ParseCompletions, StringAndSingleElementArray) {
  auto r = Text(R"({"model":"SmolLM2-135M-Instruct","prompt":"Once upon","max_tokens":16,
                    "temperature":0,"seed":42,"stream":true})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->endpoint, Endpoint::kCompletions);
  EXPECT_EQ(r->prompt, "Once upon");
  EXPECT_TRUE(r->messages.empty());
  EXPECT_EQ(r->max_tokens, 16);
  EXPECT_DOUBLE_EQ(r->temperature, 0.0);
  EXPECT_EQ(r->seed, 42);
  EXPECT_TRUE(r->stream);
  EXPECT_EQ(r->prompt_tokens, 9);

  auto a = Text(R"({"model":"SmolLM2-135M-Instruct","prompt":["abc"]})");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->prompt, "abc");
}

TEST(ParseCompletions, MaxCompletionTokensIsChatOnly) {
  // The legacy endpoint has no max_completion_tokens: it is an unknown field, so ignored.
  auto r = Text(R"({"model":"SmolLM2-135M-Instruct","prompt":"p","max_completion_tokens":0})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->max_tokens.has_value());
}

struct BadCase {
  const char* name;
  Endpoint endpoint;
  std::string body;
  int http_status;
  const char* type;
  const char* param;  // "" = null
  const char* code;   // "" = null
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }

class BadInput : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadInput, RejectedByName) {
  const BadCase& c = GetParam();
  auto r = ParseCompletionRequest(c.endpoint, c.body, Options(/*context=*/64));
  ASSERT_FALSE(r.ok()) << c.name;
  ApiError e = ApiErrorFromStatus(r.status());
  EXPECT_EQ(e.http_status, c.http_status) << r.status();
  EXPECT_EQ(e.type, c.type) << r.status();
  EXPECT_EQ(e.param, c.param) << r.status();
  EXPECT_EQ(e.code, c.code) << r.status();
  EXPECT_FALSE(e.message.empty());
  // The rendered body has OpenAI's shape, with null for empty param/code.
  Json body = Json::parse(e.Body());
  ASSERT_TRUE(body.contains("error"));
  EXPECT_EQ(body["error"]["type"], c.type);
  EXPECT_EQ(body["error"]["message"], e.message);
  EXPECT_EQ(body["error"]["param"], *c.param ? Json(c.param) : Json());
  EXPECT_EQ(body["error"]["code"], *c.code ? Json(c.code) : Json());
}

constexpr Endpoint kC = Endpoint::kChatCompletions;
constexpr Endpoint kT = Endpoint::kCompletions;
constexpr char kIre[] = "invalid_request_error";

INSTANTIATE_TEST_SUITE_P(
    All, BadInput,
    ::testing::Values(
        BadCase{"malformed", kC, R"({"model": "x", )", 400, kIre, "", ""},
        BadCase{"empty_body", kC, "", 400, kIre, "", ""},
        BadCase{"not_object", kC, "[1,2]", 400, kIre, "", ""},
        BadCase{"bad_utf8", kC, "{\"model\":\"\xff\xfe\"}", 400, kIre, "", ""},
        BadCase{"no_model", kC, R"({"messages":[]})", 400, kIre, "model", ""},
        BadCase{"model_type", kC, R"({"model":5,"messages":[]})", 400, kIre, "model", ""},
        BadCase{"unknown_model", kC, R"({"model":"gpt-4","messages":[]})", 404, "not_found_error",
                "model", "model_not_found"},
        BadCase{"no_messages", kC, R"({"model":"SmolLM2-135M-Instruct"})", 400, kIre, "messages",
                ""},
        BadCase{"messages_type", kC, R"({"model":"SmolLM2-135M-Instruct","messages":"hi"})", 400,
                kIre, "messages", ""},
        BadCase{"messages_empty", kC, R"({"model":"SmolLM2-135M-Instruct","messages":[]})", 400,
                kIre, "messages", ""},
        BadCase{"message_not_object", kC, R"({"model":"SmolLM2-135M-Instruct","messages":[1]})",
                400, kIre, "messages[0]", ""},
        BadCase{"role_missing", kC,
                R"({"model":"SmolLM2-135M-Instruct","messages":[{"content":"x"}]})", 400, kIre,
                "messages[0].role", ""},
        BadCase{"role_unknown", kC,
                R"({"model":"SmolLM2-135M-Instruct","messages":[{"role":"x","content":"x"}]})", 400,
                kIre, "messages[0].role", ""},
        BadCase{"content_null_user", kC,
                R"({"model":"SmolLM2-135M-Instruct","messages":[{"role":"user"}]})", 400, kIre,
                "messages[0].content", ""},
        BadCase{"content_number", kC,
                R"({"model":"SmolLM2-135M-Instruct","messages":[{"role":"user","content":3}]})",
                400, kIre, "messages[0].content", ""},
        BadCase{"part_type", kC,
                R"({"model":"SmolLM2-135M-Instruct","messages":[{"role":"user","content":)"
                R"([{"type":"text","text":"a"},{"type":"image_url","image_url":{}}]}]})",
                400, kIre, "messages[0].content[1].type", ""},
        BadCase{"part_text_type", kC,
                R"({"model":"SmolLM2-135M-Instruct","messages":[{"role":"user","content":)"
                R"([{"type":"text","text":1}]}]})",
                400, kIre, "messages[0].content[0].text", ""},
        BadCase{"max_tokens_type", kC, ChatBody(R"("max_tokens":"10")"), 400, kIre, "max_tokens",
                ""},
        BadCase{"max_tokens_float", kC, ChatBody(R"("max_tokens":1.5)"), 400, kIre, "max_tokens",
                ""},
        BadCase{"max_tokens_zero", kC, ChatBody(R"("max_tokens":0)"), 400, kIre, "max_tokens", ""},
        BadCase{"max_completion_tokens_neg", kC, ChatBody(R"("max_completion_tokens":-3)"), 400,
                kIre, "max_completion_tokens", ""},
        BadCase{"max_tokens_over_context", kC, ChatBody(R"("max_tokens":65)"), 400, kIre,
                "max_tokens", ""},
        BadCase{"max_completion_tokens_over_context", kC,
                ChatBody(R"("max_completion_tokens":100)"), 400, kIre, "max_completion_tokens", ""},
        BadCase{"max_tokens_huge", kC, ChatBody(R"("max_tokens":18446744073709551615)"), 400, kIre,
                "max_tokens", ""},
        BadCase{"temperature_type", kC, ChatBody(R"("temperature":"hot")"), 400, kIre,
                "temperature", ""},
        BadCase{"temperature_range", kC, ChatBody(R"("temperature":2.5)"), 400, kIre, "temperature",
                ""},
        BadCase{"top_p_zero", kC, ChatBody(R"("top_p":0)"), 400, kIre, "top_p", ""},
        BadCase{"top_p_range", kC, ChatBody(R"("top_p":1.1)"), 400, kIre, "top_p", ""},
        BadCase{"top_k_range", kC, ChatBody(R"("top_k":-2)"), 400, kIre, "top_k", ""},
        BadCase{"ignore_eos_type", kC, ChatBody(R"("ignore_eos":"yes")"), 400, kIre, "ignore_eos",
                ""},
        BadCase{"seed_type", kC, ChatBody(R"("seed":"1")"), 400, kIre, "seed", ""},
        BadCase{"stop_type", kC, ChatBody(R"("stop":5)"), 400, kIre, "stop", ""},
        BadCase{"stop_too_many", kC, ChatBody(R"("stop":["a","b","c","d","e"])"), 400, kIre, "stop",
                ""},
        BadCase{"stop_elem_type", kC, ChatBody(R"("stop":["a",1])"), 400, kIre, "stop[1]", ""},
        BadCase{"stop_empty", kC, ChatBody(R"("stop":"")"), 400, kIre, "stop", ""},
        BadCase{"n_two", kC, ChatBody(R"("n":2)"), 400, kIre, "n", ""},
        BadCase{"n_type", kC, ChatBody(R"("n":"1")"), 400, kIre, "n", ""},
        BadCase{"stream_type", kC, ChatBody(R"("stream":"yes")"), 400, kIre, "stream", ""},
        BadCase{"stream_options_without_stream", kC,
                ChatBody(R"("stream_options":{"include_usage":true})"), 400, kIre, "stream_options",
                ""},
        BadCase{"include_usage_type", kC,
                ChatBody(R"("stream":true,"stream_options":{"include_usage":1})"), 400, kIre,
                "stream_options.include_usage", ""},
        BadCase{"documents_type", kC, ChatBody(R"("documents":{})"), 400, kIre, "documents", ""},
        BadCase{"document_text", kC, ChatBody(R"("documents":[{"id":"d"}])"), 400, kIre,
                "documents[0].text", ""},
        BadCase{"tandem_type", kC, ChatBody(R"("tandem":true)"), 400, kIre, "tandem", ""},
        BadCase{"tandem_blend", kC, ChatBody(R"("tandem":{"blend":"maybe"})"), 400, kIre,
                "tandem.blend", ""},
        BadCase{"tandem_ratio", kC, ChatBody(R"("tandem":{"recompute_ratio":1.5})"), 400, kIre,
                "tandem.recompute_ratio", ""},
        BadCase{"tandem_sparse", kC, ChatBody(R"("tandem":{"sparse_prefill":"x"})"), 400, kIre,
                "tandem.sparse_prefill", ""},
        BadCase{"tandem_store_kv", kC, ChatBody(R"("tandem":{"store_kv":"yes"})"), 400, kIre,
                "tandem.store_kv", ""},
        // Context 64, one token per byte: 64 prompt bytes leave no room for a completion.
        BadCase{"chat_prompt_too_long", kC,
                R"({"model":"SmolLM2-135M-Instruct","messages":[{"role":"user","content":")" +
                    std::string(64, 'a') + R"("}]})",
                400, kIre, "messages", "context_length_exceeded"},
        BadCase{"prompt_plus_max_tokens", kT,
                R"({"model":"SmolLM2-135M-Instruct","max_tokens":40,"prompt":")" +
                    std::string(30, 'a') + R"("})",
                400, kIre, "prompt", "context_length_exceeded"},
        BadCase{"no_prompt", kT, R"({"model":"SmolLM2-135M-Instruct"})", 400, kIre, "prompt", ""},
        BadCase{"prompt_type", kT, R"({"model":"SmolLM2-135M-Instruct","prompt":7})", 400, kIre,
                "prompt", ""},
        BadCase{"prompt_batch", kT, R"({"model":"SmolLM2-135M-Instruct","prompt":["a","b"]})", 400,
                kIre, "prompt", ""},
        BadCase{"prompt_tokens_array", kT, R"({"model":"SmolLM2-135M-Instruct","prompt":[1,2]})",
                400, kIre, "prompt", ""}),
    [](const ::testing::TestParamInfo<BadCase>& info) { return std::string(info.param.name); });

TEST(ParseLengths, PromptJustFitsAndCounterErrorsPassThrough) {
  // 63 prompt tokens + 1 completion token == context 64: accepted.
  auto r =
      Text(R"({"model":"SmolLM2-135M-Instruct","prompt":")" + std::string(63, 'a') + R"("})", 64);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->effective_max_tokens, 1);

  ParseOptions o = Options(64);
  o.count_prompt_tokens = [](const CompletionRequest&) -> absl::StatusOr<int64_t> {
    return absl::InternalError("tokenizer broke");
  };
  auto e = ParseCompletionRequest(Endpoint::kCompletions,
                                  R"({"model":"SmolLM2-135M-Instruct","prompt":"x"})", o);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(ApiErrorFromStatus(e.status()).http_status, 500);

  // Without a counter the prompt length is not checked, but max_tokens still is.
  o.count_prompt_tokens = nullptr;
  auto n = ParseCompletionRequest(Endpoint::kCompletions,
                                  R"({"model":"SmolLM2-135M-Instruct","prompt":"x"})", o);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(n->prompt_tokens, -1);
}

TEST(ParseRobustness, EveryPrefixAndByteFlipIsAnErrorOrOk) {
  const std::string body =
      ChatBody(R"("max_tokens":5,"stop":["a"],"tandem":{"blend":"on"},"documents":[{"text":"t"}])");
  ASSERT_TRUE(Chat(body).ok());
  for (size_t n = 0; n < body.size(); ++n) {
    auto r = Chat(body.substr(0, n));
    EXPECT_FALSE(r.ok()) << n;
    EXPECT_EQ(ApiErrorFromStatus(r.status()).http_status, 400) << n;
  }
  // Single-byte corruptions: whatever the outcome, it is a value, never a crash or a throw.
  for (size_t i = 0; i < body.size(); ++i) {
    for (char c : {'\0', '"', '{', ']', '9', '\xff', ' '}) {
      std::string b = body;
      b[i] = c;
      auto r = Chat(b);
      if (!r.ok()) {
        EXPECT_LT(ApiErrorFromStatus(r.status()).http_status, 500) << b;
      }
    }
  }
}

TEST(ParseRobustness, DeepNestingDoesNotCrash) {
  const int depth = 100000;
  std::string nested = std::string(depth, '[') + std::string(depth, ']');
  EXPECT_FALSE(Chat(nested).ok());
  // Deep nesting inside an ignored field parses and is ignored.
  auto r = Chat(ChatBody("\"x\":" + nested));
  EXPECT_TRUE(r.ok()) << r.status();
  // Unbalanced: malformed.
  auto m = Chat(std::string(depth, '['));
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(ApiErrorFromStatus(m.status()).http_status, 400);
}

TEST(ApiErrorTest, BodyMatchesCommonHttpErrorBody) {
  absl::Status s = InvalidParamError("max_tokens", "too \"big\"", "some_code");
  EXPECT_EQ(ApiErrorFromStatus(s).Body(), ErrorBody(s, ErrorDetail{"max_tokens", "some_code"}));
  absl::Status plain = absl::UnavailableError("busy");
  ApiError e = ApiErrorFromStatus(plain);
  EXPECT_EQ(e.http_status, 503);
  EXPECT_EQ(e.type, "service_unavailable_error");
  EXPECT_EQ(e.Body(), ErrorBody(plain));
  EXPECT_EQ(e.Body(),
            R"({"error":{"message":"busy","type":"service_unavailable_error","param":null,)"
            R"("code":null}})");
}

ResponseHeader Header(const char* id) { return ResponseHeader{id, 1700000000, kModel}; }

TEST(Render, ChatCompletion) {
  Completion c{"Hello!", "stop", Usage{12, 3, 8}, R"({"request_id":"r-1"})"};
  Json j = Json::parse(RenderChatCompletion(Header("chatcmpl-1"), c));
  EXPECT_EQ(j["id"], "chatcmpl-1");
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["created"], 1700000000);
  EXPECT_EQ(j["model"], kModel);
  ASSERT_EQ(j["choices"].size(), 1u);
  EXPECT_EQ(j["choices"][0]["index"], 0);
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["message"]["content"], "Hello!");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  EXPECT_TRUE(j["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(j["usage"]["prompt_tokens"], 12);
  EXPECT_EQ(j["usage"]["completion_tokens"], 3);
  EXPECT_EQ(j["usage"]["total_tokens"], 15);
  EXPECT_EQ(j["usage"]["prompt_tokens_details"]["cached_tokens"], 8);
  EXPECT_EQ(j["tandem"]["request_id"], "r-1");
}

TEST(Render, TextCompletionAndBadUtf8) {
  Completion c{"abc\xff", "length", Usage{2, 5, -1}, ""};
  Json j = Json::parse(RenderCompletion(Endpoint::kCompletions, Header("cmpl-9"), c));
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["choices"][0]["text"], "abc\xEF\xBF\xBD");  // U+FFFD
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["total_tokens"], 7);
  EXPECT_FALSE(j["usage"].contains("prompt_tokens_details"));
  EXPECT_FALSE(j.contains("tandem"));
}

TEST(Render, ChatChunks) {
  ResponseHeader h = Header("chatcmpl-2");
  Chunk first;
  first.role = "assistant";
  first.content = "";
  Json a = Json::parse(RenderChunk(Endpoint::kChatCompletions, h, first));
  EXPECT_EQ(a["object"], "chat.completion.chunk");
  EXPECT_EQ(a["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(a["choices"][0]["delta"]["content"], "");
  EXPECT_TRUE(a["choices"][0]["finish_reason"].is_null());
  EXPECT_FALSE(a.contains("usage"));

  Chunk last;
  last.finish_reason = "stop";
  Json b = Json::parse(RenderChunk(Endpoint::kChatCompletions, h, last));
  EXPECT_TRUE(b["choices"][0]["delta"].is_object());
  EXPECT_TRUE(b["choices"][0]["delta"].empty());
  EXPECT_EQ(b["choices"][0]["finish_reason"], "stop");

  Chunk usage;
  usage.usage_only = true;
  usage.usage = Usage{4, 6, -1};
  Json c = Json::parse(RenderChunk(Endpoint::kChatCompletions, h, usage));
  EXPECT_TRUE(c["choices"].is_array());
  EXPECT_TRUE(c["choices"].empty());
  EXPECT_EQ(c["usage"]["total_tokens"], 10);
}

TEST(Render, TextChunk) {
  Chunk ch;
  ch.content = " world";
  Json j = Json::parse(RenderChunk(Endpoint::kCompletions, Header("cmpl-3"), ch));
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["choices"][0]["text"], " world");
  EXPECT_EQ(j["choices"][0]["index"], 0);
  EXPECT_TRUE(j["choices"][0]["finish_reason"].is_null());
}

TEST(Sse, ExactBytes) {
  EXPECT_EQ(SseData(R"({"a":1})"), "data: {\"a\":1}\n\n");
  EXPECT_EQ(SseDone(), "data: [DONE]\n\n");
  ApiError e = ApiErrorFromStatus(absl::UnavailableError("decode node lost"));
  EXPECT_EQ(SseError(e),
            "data: {\"error\":{\"message\":\"decode node lost\",\"type\":"
            "\"service_unavailable_error\",\"param\":null,\"code\":null}}\n\n");
  // A rendered chunk is one line, so it cannot break the event framing.
  Chunk ch;
  ch.content = "line1\nline2\r\n\n";
  std::string json = RenderChunk(Endpoint::kChatCompletions, Header("c"), ch);
  EXPECT_EQ(json.find('\n'), std::string::npos);
  EXPECT_EQ(json.find('\r'), std::string::npos);
}

TEST(Render, Models) {
  Json j = Json::parse(RenderModels({kModel}, 1700000000));
  EXPECT_EQ(j["object"], "list");
  ASSERT_EQ(j["data"].size(), 1u);
  EXPECT_EQ(j["data"][0]["id"], kModel);
  EXPECT_EQ(j["data"][0]["object"], "model");
  EXPECT_EQ(j["data"][0]["created"], 1700000000);
  EXPECT_EQ(j["data"][0]["owned_by"], "tandem");
}

}  // namespace
}  // namespace tandem::router
