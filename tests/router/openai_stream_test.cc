// Tests for router/openai_stream.h: the SSE byte stream of one request, parsed back.
#include "router/openai_stream.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace tandem::router {
namespace {

using Json = nlohmann::json;

// Splits SSE bytes into the payloads of its `data: ` events; fails the test on bad framing.
std::vector<std::string> Events(const std::string& sse) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < sse.size()) {
    size_t end = sse.find("\n\n", pos);
    EXPECT_NE(end, std::string::npos) << "unterminated event at " << pos;
    if (end == std::string::npos) break;
    std::string event = sse.substr(pos, end - pos);
    EXPECT_EQ(event.rfind("data: ", 0), 0u) << event;
    EXPECT_EQ(event.find('\n'), std::string::npos) << event;
    out.push_back(event.substr(6));
    pos = end + 2;
  }
  return out;
}

ResponseHeader Header() { return ResponseHeader{"chatcmpl-7", 1700000000, "m"}; }

TEST(CompletionStreamTest, ChatWithStopAndUsage) {
  CompletionStream s(Endpoint::kChatCompletions, Header(), {"</s>"}, /*include_usage=*/true);
  std::string sse;
  for (const char* d : {"Hel", "lo", " </", "s> ignored"}) {
    sse += s.OnText(d);
    if (s.stopped()) break;
  }
  EXPECT_TRUE(s.stopped());
  sse += s.Finish("length", Usage{5, 4, -1});
  EXPECT_EQ(s.Finish("length", Usage{}), "");
  EXPECT_EQ(s.OnText("late"), "");

  std::vector<std::string> ev = Events(sse);
  ASSERT_GE(ev.size(), 3u);
  EXPECT_EQ(ev.back(), "[DONE]");
  std::string text;
  std::string finish;
  int role_chunks = 0;
  Json usage;
  for (size_t i = 0; i + 1 < ev.size(); ++i) {
    Json j = Json::parse(ev[i]);
    EXPECT_EQ(j["object"], "chat.completion.chunk");
    EXPECT_EQ(j["id"], "chatcmpl-7");
    if (j["choices"].empty()) {
      usage = j["usage"];
      EXPECT_EQ(i, ev.size() - 2) << "usage chunk must be last";
      continue;
    }
    const Json& c = j["choices"][0];
    if (c["delta"].contains("role")) {
      EXPECT_EQ(i, 0u);
      EXPECT_EQ(c["delta"]["role"], "assistant");
      ++role_chunks;
    }
    if (c["delta"].contains("content")) text += c["delta"]["content"].get<std::string>();
    if (!c["finish_reason"].is_null()) finish = c["finish_reason"];
  }
  EXPECT_EQ(role_chunks, 1);
  EXPECT_EQ(text, "Hello ");
  EXPECT_EQ(finish, "stop");  // a matched stop overrides the caller's reason
  EXPECT_EQ(usage["prompt_tokens"], 5);
  EXPECT_EQ(usage["total_tokens"], 9);
}

TEST(CompletionStreamTest, TextCompletionFlushesHeldTextAndHasNoUsageChunk) {
  CompletionStream s(Endpoint::kCompletions, Header(), {"STOP"}, /*include_usage=*/false);
  std::string sse = s.OnText("one ST");
  sse += s.OnText("");
  sse += s.Finish("length", Usage{1, 2, -1});
  std::vector<std::string> ev = Events(sse);
  ASSERT_EQ(ev.size(), 4u);  // "one ", "ST" (flushed), finish, [DONE]
  EXPECT_EQ(Json::parse(ev[0])["choices"][0]["text"], "one ");
  EXPECT_EQ(Json::parse(ev[1])["choices"][0]["text"], "ST");
  Json last = Json::parse(ev[2]);
  EXPECT_EQ(last["object"], "text_completion");
  EXPECT_EQ(last["choices"][0]["finish_reason"], "length");
  EXPECT_FALSE(last.contains("usage"));
  EXPECT_EQ(ev[3], "[DONE]");
}

TEST(CompletionStreamTest, FailEndsWithFinishReasonErrorThenErrorEvent) {
  CompletionStream s(Endpoint::kChatCompletions, Header(), {}, /*include_usage=*/true);
  std::string sse = s.OnText("partial");
  sse += s.Fail(ApiErrorFromStatus(absl::UnavailableError("decode node lost")));
  EXPECT_EQ(s.Finish("stop", Usage{}), "");
  std::vector<std::string> ev = Events(sse);
  ASSERT_EQ(ev.size(), 5u);  // role, "partial", finish_reason "error", error, [DONE]
  Json last = Json::parse(ev[2]);
  EXPECT_EQ(last["choices"][0]["finish_reason"], "error");
  EXPECT_FALSE(last.contains("usage") && !last["usage"].is_null());
  Json err = Json::parse(ev[3]);
  EXPECT_EQ(err["error"]["message"], "decode node lost");
  EXPECT_EQ(err["error"]["type"], "service_unavailable_error");
  EXPECT_EQ(ev[4], "[DONE]");
  for (const std::string& e : ev) EXPECT_EQ(e.find("finish_reason\":\"stop"), std::string::npos);
  EXPECT_EQ(sse.substr(sse.size() - 14), "data: [DONE]\n\n");
}

TEST(CompletionStreamTest, TandemExtensionRidesOnTheFinalChunk) {
  const std::string tandem = R"({"request_id":"r-1","timings_ms":{"queue":1.5}})";
  for (bool include_usage : {false, true}) {
    CompletionStream s(Endpoint::kCompletions, Header(), {}, include_usage);
    std::string sse = s.OnText("Hi");
    sse += s.Finish("length", Usage{3, 1, 0}, tandem);
    std::vector<std::string> events = Events(sse);
    ASSERT_GE(events.size(), 3u);
    ASSERT_EQ(events.back(), "[DONE]");
    for (size_t i = 0; i + 1 < events.size(); ++i) {
      Json j = Json::parse(events[i]);
      EXPECT_EQ(j.contains("tandem"), i + 2 == events.size()) << include_usage << " event " << i;
    }
    Json last = Json::parse(events[events.size() - 2]);
    EXPECT_EQ(last["tandem"]["request_id"], "r-1");
    EXPECT_EQ(last.contains("usage"), include_usage);
  }
}

}  // namespace
}  // namespace tandem::router
