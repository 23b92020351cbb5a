// router/openai_api.cc: request parsing and validation for the OpenAI endpoints.
#include "router/openai_api.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/http.h"
#include "common/status.h"
#include "nlohmann/json.hpp"

namespace tandem::router {
namespace {

using Json = nlohmann::json;

constexpr char kParamUrl[] = "tandem.dev/openai.param";
constexpr char kCodeUrl[] = "tandem.dev/openai.code";
constexpr char kHttpStatusUrl[] = "tandem.dev/openai.http_status";
constexpr size_t kMaxStops = 4;

std::string_view TypeName(const Json& v) { return v.type_name(); }

absl::Status WrongType(std::string_view param, std::string_view want, const Json& got) {
  return InvalidParamError(
      param, absl::StrCat("'", AV(param), "' must be ", AV(want), ", got ", AV(TypeName(got))));
}

// Absent and null both mean "not given": clients send either for an unset optional field.
const Json* Field(const Json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

absl::StatusOr<int64_t> GetInt(const Json& v, std::string_view param) {
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return InvalidParamError(param, absl::StrCat("'", AV(param), "' is out of range: ", u));
    }
    return static_cast<int64_t>(u);
  }
  if (v.is_number_integer()) return v.get<int64_t>();
  return WrongType(param, "an integer", v);
}

absl::StatusOr<double> GetNumber(const Json& v, std::string_view param) {
  if (!v.is_number()) return WrongType(param, "a number", v);
  return v.get<double>();
}

absl::StatusOr<std::string> GetString(const Json& v, std::string_view param) {
  if (!v.is_string()) return WrongType(param, "a string", v);
  return v.get<std::string>();
}

absl::StatusOr<bool> GetBool(const Json& v, std::string_view param) {
  if (!v.is_boolean()) return WrongType(param, "a boolean", v);
  return v.get<bool>();
}

absl::Status NumberInRange(double v, double lo, double hi, std::string_view param) {
  if (std::isnan(v) || v < lo || v > hi) {
    return InvalidParamError(
        param, absl::StrCat("'", AV(param), "' must be in [", lo, ", ", hi, "], got ", v));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ContentPart>> ParseContent(const Json& v, const std::string& param,
                                                      bool null_ok) {
  std::vector<ContentPart> parts;
  if (v.is_null()) {
    if (null_ok) return parts;
    return InvalidParamError(param, absl::StrCat("'", param, "' is required"));
  }
  if (v.is_string()) {
    parts.push_back(ContentPart{ContentPart::Type::kText, v.get<std::string>(), ""});
    return parts;
  }
  if (!v.is_array()) return WrongType(param, "a string or an array of content parts", v);
  for (size_t j = 0; j < v.size(); ++j) {
    const Json& p = v[j];
    std::string pp = absl::StrCat(param, "[", j, "]");
    if (!p.is_object()) return WrongType(pp, "an object", p);
    const Json* type = Field(p, "type");
    if (type == nullptr) return InvalidParamError(pp + ".type", "content part has no 'type'");
    // Declared apart: GCC 12 sees the moved-into string as maybe uninitialized otherwise.
    std::string t;
    TANDEM_ASSIGN_OR_RETURN(t, GetString(*type, pp + ".type"));
    ContentPart part;
    if (t == "text") {
      part.type = ContentPart::Type::kText;
    } else if (t == "document") {
      part.type = ContentPart::Type::kDocument;
    } else {
      return InvalidParamError(pp + ".type", absl::StrCat("unsupported content part type '", t,
                                                          "'; expected 'text' or 'document'"));
    }
    const Json* text = Field(p, "text");
    if (text == nullptr) return InvalidParamError(pp + ".text", "content part has no 'text'");
    TANDEM_ASSIGN_OR_RETURN(part.text, GetString(*text, pp + ".text"));
    if (const Json* id = Field(p, "id")) {
      TANDEM_ASSIGN_OR_RETURN(part.id, GetString(*id, pp + ".id"));
    }
    parts.push_back(std::move(part));
  }
  return parts;
}

absl::StatusOr<std::vector<Message>> ParseMessages(const Json& body) {
  const Json* v = Field(body, "messages");
  if (v == nullptr) return InvalidParamError("messages", "'messages' is required");
  if (!v->is_array()) return WrongType("messages", "an array", *v);
  if (v->empty()) return InvalidParamError("messages", "'messages' must not be empty");
  std::vector<Message> messages;
  for (size_t i = 0; i < v->size(); ++i) {
    const Json& m = (*v)[i];
    std::string mp = absl::StrCat("messages[", i, "]");
    if (!m.is_object()) return WrongType(mp, "an object", m);
    Message msg;
    const Json* role = Field(m, "role");
    if (role == nullptr) return InvalidParamError(mp + ".role", "message has no 'role'");
    TANDEM_ASSIGN_OR_RETURN(msg.role, GetString(*role, mp + ".role"));
    if (msg.role != "system" && msg.role != "developer" && msg.role != "user" &&
        msg.role != "assistant" && msg.role != "tool") {
      return InvalidParamError(mp + ".role", absl::StrCat("unknown role '", msg.role, "'"));
    }
    auto it = m.find("content");
    // An assistant turn may carry null content (it had tool calls); every other turn needs text.
    Json null_content;
    const Json& content = it == m.end() ? null_content : *it;
    TANDEM_ASSIGN_OR_RETURN(msg.content,
                            ParseContent(content, mp + ".content", msg.role == "assistant"));
    messages.push_back(std::move(msg));
  }
  return messages;
}

absl::StatusOr<std::string> ParsePrompt(const Json& body) {
  const Json* v = Field(body, "prompt");
  if (v == nullptr) return InvalidParamError("prompt", "'prompt' is required");
  if (v->is_string()) return v->get<std::string>();
  // The legacy API also takes a batch of prompts; one element is the same request.
  if (v->is_array() && v->size() == 1 && (*v)[0].is_string()) return (*v)[0].get<std::string>();
  if (v->is_array()) {
    return InvalidParamError("prompt",
                             "'prompt' must be a string or an array of exactly one "
                             "string; batches and token arrays are not supported");
  }
  return WrongType("prompt", "a string", *v);
}

absl::StatusOr<std::vector<std::string>> ParseStop(const Json& v) {
  std::vector<std::string> stops;
  if (v.is_string()) {
    stops.push_back(v.get<std::string>());
  } else if (v.is_array()) {
    if (v.size() > kMaxStops) {
      return InvalidParamError(
          "stop", absl::StrCat("'stop' takes at most ", kMaxStops, " sequences, got ", v.size()));
    }
    for (size_t i = 0; i < v.size(); ++i) {
      TANDEM_ASSIGN_OR_RETURN(std::string s, GetString(v[i], absl::StrCat("stop[", i, "]")));
      stops.push_back(std::move(s));
    }
  } else {
    return WrongType("stop", "a string or an array of strings", v);
  }
  for (const std::string& s : stops) {
    if (s.empty()) return InvalidParamError("stop", "stop sequences must not be empty");
  }
  return stops;
}

absl::StatusOr<std::vector<Document>> ParseDocuments(const Json& v) {
  if (!v.is_array()) return WrongType("documents", "an array", v);
  std::vector<Document> docs;
  for (size_t i = 0; i < v.size(); ++i) {
    std::string dp = absl::StrCat("documents[", i, "]");
    Document d;
    if (v[i].is_string()) {  // a bare string is the document's text
      d.text = v[i].get<std::string>();
      docs.push_back(std::move(d));
      continue;
    }
    if (!v[i].is_object()) return WrongType(dp, "a string or an object", v[i]);
    if (const Json* id = Field(v[i], "id")) {
      TANDEM_ASSIGN_OR_RETURN(d.id, GetString(*id, dp + ".id"));
    }
    const Json* text = Field(v[i], "text");
    if (text == nullptr) return InvalidParamError(dp + ".text", "document has no 'text'");
    TANDEM_ASSIGN_OR_RETURN(d.text, GetString(*text, dp + ".text"));
    docs.push_back(std::move(d));
  }
  return docs;
}

absl::Status OneOf(const std::string& v, std::initializer_list<const char*> allowed,
                   std::string_view param) {
  std::string list;
  for (const char* a : allowed) {
    if (v == a) return absl::OkStatus();
    absl::StrAppend(&list, list.empty() ? "" : ", ", a);
  }
  return InvalidParamError(
      param, absl::StrCat("'", AV(param), "' must be one of ", list, "; got '", v, "'"));
}

absl::StatusOr<TandemOptions> ParseTandem(const Json& v) {
  if (!v.is_object()) return WrongType("tandem", "an object", v);
  TandemOptions t;
  if (const Json* f = Field(v, "blend")) {
    TANDEM_ASSIGN_OR_RETURN(t.blend, GetString(*f, "tandem.blend"));
    TANDEM_RETURN_IF_ERROR(OneOf(*t.blend, {"auto", "on", "off"}, "tandem.blend"));
  }
  if (const Json* f = Field(v, "recompute_ratio")) {
    TANDEM_ASSIGN_OR_RETURN(t.recompute_ratio, GetNumber(*f, "tandem.recompute_ratio"));
    TANDEM_RETURN_IF_ERROR(NumberInRange(*t.recompute_ratio, 0, 1, "tandem.recompute_ratio"));
  }
  if (const Json* f = Field(v, "check_layer")) {
    TANDEM_ASSIGN_OR_RETURN(t.check_layer, GetInt(*f, "tandem.check_layer"));
    if (*t.check_layer < 0 || *t.check_layer > 1000) {
      return InvalidParamError(
          "tandem.check_layer",
          absl::StrCat("'tandem.check_layer' must be a layer index >= 0; got ", *t.check_layer));
    }
  }
  if (const Json* f = Field(v, "blend_deviation")) {
    TANDEM_ASSIGN_OR_RETURN(t.blend_deviation, GetString(*f, "tandem.blend_deviation"));
    TANDEM_RETURN_IF_ERROR(OneOf(*t.blend_deviation, {"value", "key"}, "tandem.blend_deviation"));
  }
  if (const Json* f = Field(v, "sparse_prefill")) {
    TANDEM_ASSIGN_OR_RETURN(t.sparse_prefill, GetString(*f, "tandem.sparse_prefill"));
    TANDEM_RETURN_IF_ERROR(
        OneOf(*t.sparse_prefill, {"dense", "sale", "power"}, "tandem.sparse_prefill"));
  }
  if (const Json* f = Field(v, "store_kv")) {
    TANDEM_ASSIGN_OR_RETURN(t.store_kv, GetBool(*f, "tandem.store_kv"));
  }
  return t;
}

// Sampling and streaming fields shared by both endpoints.
absl::Status ParseCommon(const Json& body, int64_t context_length, CompletionRequest& req) {
  const char* max_name = "max_tokens";
  const Json* max = Field(body, "max_tokens");
  if (max == nullptr && req.endpoint == Endpoint::kChatCompletions) {
    max = Field(body, "max_completion_tokens");
    max_name = "max_completion_tokens";
  }
  if (max != nullptr) {
    TANDEM_ASSIGN_OR_RETURN(req.max_tokens, GetInt(*max, max_name));
    if (*req.max_tokens < 1) {
      return InvalidParamError(
          max_name, absl::StrCat("'", max_name, "' must be at least 1, got ", *req.max_tokens));
    }
    if (context_length > 0 && *req.max_tokens > context_length) {
      return InvalidParamError(
          max_name, absl::StrCat("'", max_name, "' is ", *req.max_tokens,
                                 ", more than the model's context length of ", context_length));
    }
  }
  if (const Json* f = Field(body, "temperature")) {
    TANDEM_ASSIGN_OR_RETURN(req.temperature, GetNumber(*f, "temperature"));
    TANDEM_RETURN_IF_ERROR(NumberInRange(req.temperature, 0, 2, "temperature"));
  }
  if (const Json* f = Field(body, "top_p")) {
    TANDEM_ASSIGN_OR_RETURN(req.top_p, GetNumber(*f, "top_p"));
    TANDEM_RETURN_IF_ERROR(NumberInRange(req.top_p, 0, 1, "top_p"));
    if (req.top_p == 0) return InvalidParamError("top_p", "'top_p' must be greater than 0");
  }
  if (const Json* f = Field(body, "top_k")) {
    TANDEM_ASSIGN_OR_RETURN(req.top_k, GetInt(*f, "top_k"));
    if (req.top_k < -1) {
      return InvalidParamError("top_k", absl::StrCat("'top_k' must be >= 0 (or -1 to disable), "
                                                     "got ",
                                                     req.top_k));
    }
    if (req.top_k == -1) req.top_k = 0;
  }
  if (const Json* f = Field(body, "ignore_eos")) {
    TANDEM_ASSIGN_OR_RETURN(req.ignore_eos, GetBool(*f, "ignore_eos"));
  }
  if (const Json* f = Field(body, "seed")) {
    TANDEM_ASSIGN_OR_RETURN(req.seed, GetInt(*f, "seed"));
  }
  if (const Json* f = Field(body, "stop")) {
    TANDEM_ASSIGN_OR_RETURN(req.stop, ParseStop(*f));
  }
  if (const Json* f = Field(body, "n")) {
    TANDEM_ASSIGN_OR_RETURN(int64_t n, GetInt(*f, "n"));
    if (n != 1) {
      return InvalidParamError("n", absl::StrCat("only n=1 is supported, got ", n));
    }
  }
  if (const Json* f = Field(body, "stream")) {
    TANDEM_ASSIGN_OR_RETURN(req.stream, GetBool(*f, "stream"));
  }
  if (const Json* f = Field(body, "stream_options")) {
    if (!f->is_object()) return WrongType("stream_options", "an object", *f);
    if (!req.stream) {
      return InvalidParamError("stream_options",
                               "'stream_options' is only allowed when 'stream' is true");
    }
    if (const Json* u = Field(*f, "include_usage")) {
      TANDEM_ASSIGN_OR_RETURN(req.include_usage, GetBool(*u, "stream_options.include_usage"));
    }
  }
  if (const Json* f = Field(body, "documents")) {
    TANDEM_ASSIGN_OR_RETURN(req.documents, ParseDocuments(*f));
  }
  if (const Json* f = Field(body, "tandem")) {
    TANDEM_ASSIGN_OR_RETURN(req.tandem, ParseTandem(*f));
  }
  return absl::OkStatus();
}

absl::Status CheckLengths(CompletionRequest& req, const ParseOptions& options) {
  const int64_t ctx = options.context_length;
  if (ctx <= 0) return absl::OkStatus();
  if (!options.count_prompt_tokens) return absl::OkStatus();
  TANDEM_ASSIGN_OR_RETURN(req.prompt_tokens, options.count_prompt_tokens(req));
  const char* prompt_param = req.endpoint == Endpoint::kChatCompletions ? "messages" : "prompt";
  if (req.prompt_tokens >= ctx) {
    return InvalidParamError(
        prompt_param,
        absl::StrCat("This model's maximum context length is ", ctx, " tokens. However, your ",
                     prompt_param, " resulted in ", req.prompt_tokens,
                     " tokens, leaving no room for the completion."),
        "context_length_exceeded");
  }
  if (req.max_tokens && req.prompt_tokens + *req.max_tokens > ctx) {
    return InvalidParamError(
        prompt_param,
        absl::StrCat("This model's maximum context length is ", ctx,
                     " tokens. However, you requested ", req.prompt_tokens + *req.max_tokens,
                     " tokens (", req.prompt_tokens, " in the ", prompt_param, ", ",
                     *req.max_tokens, " in the completion)."),
        "context_length_exceeded");
  }
  const int64_t room = ctx - req.prompt_tokens;
  const int64_t fallback =
      options.defaults.max_tokens > 0 ? std::min(options.defaults.max_tokens, room) : room;
  req.effective_max_tokens = req.max_tokens ? *req.max_tokens : fallback;
  return absl::OkStatus();
}

}  // namespace

std::string Message::Text() const {
  std::string out;
  for (const ContentPart& p : content) out += p.text;
  return out;
}

absl::Status InvalidParamError(std::string_view param, std::string_view message,
                               std::string_view code) {
  return WithErrorDetail(absl::InvalidArgumentError(AV(message)), param, code);
}

absl::Status WithErrorDetail(absl::Status status, std::string_view param, std::string_view code) {
  if (!param.empty()) status.SetPayload(kParamUrl, absl::Cord(AV(param)));
  if (!code.empty()) status.SetPayload(kCodeUrl, absl::Cord(AV(code)));
  return status;
}

absl::Status WithHttpStatus(absl::Status status, int http_status) {
  status.SetPayload(kHttpStatusUrl, absl::Cord(absl::StrCat(http_status)));
  return status;
}

ApiError ApiErrorFromStatus(const absl::Status& status) {
  ApiError e;
  e.http_status = HttpStatusFromStatus(status);
  if (auto h = status.GetPayload(kHttpStatusUrl)) {
    int code = 0;
    if (absl::SimpleAtoi(std::string(*h), &code) && code >= 400 && code <= 599) e.http_status = code;
  }
  e.message = std::string(status.message());
  e.type = std::string(ErrorTypeForHttpStatus(e.http_status));
  if (auto p = status.GetPayload(kParamUrl)) e.param = std::string(*p);
  if (auto c = status.GetPayload(kCodeUrl)) e.code = std::string(*c);
  return e;
}

std::string ApiError::Body() const {
  nlohmann::ordered_json error;
  error["message"] = message;
  error["type"] = type;
  error["param"] = param.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(param);
  error["code"] = code.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(code);
  nlohmann::ordered_json body;
  body["error"] = std::move(error);
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

absl::StatusOr<CompletionRequest> ParseCompletionRequest(Endpoint endpoint, std::string_view body,
                                                         const ParseOptions& options) {
  Json json = Json::parse(body.begin(), body.end(), /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) {
    return InvalidParamError("",
                             "We could not parse the JSON body of your request: it is not "
                             "valid JSON.");
  }
  if (!json.is_object()) {
    return InvalidParamError(
        "", absl::StrCat("the request body must be a JSON object, got ", AV(TypeName(json))));
  }
  CompletionRequest req;
  req.endpoint = endpoint;
  req.temperature = options.defaults.temperature;
  req.top_p = options.defaults.top_p;
  req.top_k = options.defaults.top_k;
  const Json* model = Field(json, "model");
  if (model == nullptr) return InvalidParamError("model", "'model' is required");
  TANDEM_ASSIGN_OR_RETURN(req.model, GetString(*model, "model"));
  if (req.model != options.model_name) {
    return WithErrorDetail(absl::NotFoundError(absl::StrCat("The model '", req.model,
                                                            "' does not exist; this "
                                                            "server serves '",
                                                            options.model_name, "'")),
                           "model", "model_not_found");
  }
  if (endpoint == Endpoint::kChatCompletions) {
    TANDEM_ASSIGN_OR_RETURN(req.messages, ParseMessages(json));
  } else {
    TANDEM_ASSIGN_OR_RETURN(req.prompt, ParsePrompt(json));
  }
  TANDEM_RETURN_IF_ERROR(ParseCommon(json, options.context_length, req));
  TANDEM_RETURN_IF_ERROR(CheckLengths(req, options));
  return req;
}

}  // namespace tandem::router
