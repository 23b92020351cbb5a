#include "common/http_client.h"

#include <chrono>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "httplib.h"
#include "nlohmann/json.hpp"

namespace tandem {
namespace {

std::chrono::microseconds Micros(absl::Duration d) {
  return std::chrono::microseconds(absl::ToInt64Microseconds(d));
}

std::unique_ptr<httplib::Client> MakeClient(const HttpEndpoint& to, const HttpCallOptions& o) {
  auto client = std::make_unique<httplib::Client>(to.host, to.port);
  client->set_connection_timeout(Micros(o.connect_timeout));
  client->set_read_timeout(Micros(o.io_timeout));
  client->set_write_timeout(Micros(o.io_timeout));
  client->set_keep_alive(false);
  if (!o.bearer_token.empty()) client->set_bearer_token_auth(o.bearer_token.c_str());
  return client;
}

absl::Status TransportError(httplib::Error error, const HttpEndpoint& to, const std::string& path) {
  std::string what = absl::StrCat(to.ToString(), path, ": ", httplib::to_string(error));
  if (error == httplib::Error::Read || error == httplib::Error::Write) {
    // httplib reports a read timeout as a read error; either way the peer stopped answering.
    return absl::UnavailableError(absl::StrCat("connection lost to ", what));
  }
  if (error == httplib::Error::ConnectionTimeout) {
    return absl::DeadlineExceededError(absl::StrCat("connect timed out to ", what));
  }
  return absl::UnavailableError(absl::StrCat("cannot reach ", what));
}

absl::StatusCode CodeFromHttp(int http_status) {
  switch (http_status) {
    case 400: return absl::StatusCode::kInvalidArgument;
    case 401: return absl::StatusCode::kUnauthenticated;
    case 403: return absl::StatusCode::kPermissionDenied;
    case 404: return absl::StatusCode::kNotFound;
    case 409: return absl::StatusCode::kAborted;
    case 429: return absl::StatusCode::kResourceExhausted;
    case 499: return absl::StatusCode::kCancelled;
    case 501: return absl::StatusCode::kUnimplemented;
    case 503: return absl::StatusCode::kUnavailable;
    case 504: return absl::StatusCode::kDeadlineExceeded;
    default: return http_status >= 500 ? absl::StatusCode::kInternal
                                       : absl::StatusCode::kInvalidArgument;
  }
}

}  // namespace

std::string HttpEndpoint::ToString() const {
  // An IPv6 literal goes in brackets, as in a URL, so the port stays unambiguous.
  if (host.find(':') != std::string::npos) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

absl::Status StatusFromHttpReply(int http_status, std::string_view body) {
  if (http_status >= 200 && http_status < 300) return absl::OkStatus();
  std::string message = absl::StrCat("HTTP ", http_status);
  std::string code;
  auto json = nlohmann::json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (json.is_object()) {
    auto error = json.find("error");
    if (error != json.end() && error->is_object()) {
      auto m = error->find("message");
      if (m != error->end() && m->is_string()) message = m->get<std::string>();
      auto c = error->find("code");
      if (c != error->end() && c->is_string()) code = c->get<std::string>();
    }
  }
  absl::Status status(CodeFromHttp(http_status), message);
  return code.empty() ? status : WithErrorCode(std::move(status), code);
}

absl::StatusOr<HttpReply> HttpGet(const HttpEndpoint& to, const std::string& path,
                                  const HttpCallOptions& options) {
  auto client = MakeClient(to, options);
  httplib::Headers headers;
  if (options.cluster_auth)
    headers.emplace(kAuthHeader, options.cluster_auth->Sign("GET", path, ""));
  httplib::Result result = client->Get(path.c_str(), headers);
  if (!result) return TransportError(result.error(), to, path);
  return HttpReply{result->status, result->body};
}

absl::StatusOr<HttpReply> HttpPostJson(const HttpEndpoint& to, const std::string& path,
                                       const std::string& body, const HttpCallOptions& options) {
  auto client = MakeClient(to, options);
  httplib::Headers headers;
  if (options.cluster_auth)
    headers.emplace(kAuthHeader, options.cluster_auth->Sign("POST", path, body));
  httplib::Result result = client->Post(path.c_str(), headers, body, "application/json");
  if (!result) return TransportError(result.error(), to, path);
  return HttpReply{result->status, result->body};
}

absl::StatusOr<std::string> CallJson(const HttpEndpoint& to, const std::string& path,
                                     const std::string& body, const HttpCallOptions& options) {
  TANDEM_ASSIGN_OR_RETURN(HttpReply reply, HttpPostJson(to, path, body, options));
  TANDEM_RETURN_IF_ERROR(StatusFromHttpReply(reply.status, reply.body));
  return std::move(reply.body);
}

bool SseParser::Feed(std::string_view bytes) {
  buffer_.append(bytes);
  size_t start = 0;
  while (true) {
    size_t nl = buffer_.find('\n', start);
    if (nl == std::string::npos) break;
    std::string_view line(buffer_.data() + start, nl - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    start = nl + 1;
    if (!Line(line)) {
      buffer_.erase(0, start);
      return false;
    }
  }
  buffer_.erase(0, start);
  return true;
}

bool SseParser::Line(std::string_view line) {
  if (line.empty()) {  // dispatch
    bool keep_going = true;
    if (has_data_) keep_going = on_event_(event_.empty() ? "message" : event_, data_);
    event_.clear();
    data_.clear();
    has_data_ = false;
    return keep_going;
  }
  if (line.front() == ':') return true;  // comment / keep-alive
  size_t colon = line.find(':');
  std::string_view field = line.substr(0, colon);
  std::string_view value = colon == std::string_view::npos ? "" : line.substr(colon + 1);
  if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  if (field == "event") {
    event_ = std::string(value);
  } else if (field == "data") {
    if (has_data_) data_.push_back('\n');
    data_.append(value);
    has_data_ = true;
  }
  return true;
}

absl::Status PostSse(const HttpEndpoint& to, const std::string& path, const std::string& body,
                     const SseParser::OnEvent& on_event, const HttpCallOptions& options,
                     int* http_status_out) {
  auto client = MakeClient(to, options);
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.body = body;
  req.set_header("Content-Type", "application/json");
  req.set_header("Accept", "text/event-stream");
  if (options.cluster_auth)
    req.set_header(kAuthHeader, options.cluster_auth->Sign("POST", path, body));
  int http_status = 0;
  std::string error_body;
  bool stopped = false;
  SseParser parser(on_event);
  req.response_handler = [&](const httplib::Response& res) {
    http_status = res.status;
    return true;
  };
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    if (http_status < 200 || http_status >= 300) {
      error_body.append(data, n);
      return true;
    }
    if (!parser.Feed(std::string_view(data, n))) {
      stopped = true;
      return false;
    }
    return true;
  };
  httplib::Result result = client->send(req);
  if (http_status_out != nullptr) *http_status_out = http_status;
  if (stopped) return absl::CancelledError("stream closed by the reader");
  if (http_status != 0 && (http_status < 200 || http_status >= 300)) {
    return StatusFromHttpReply(http_status, error_body);
  }
  if (!result) return TransportError(result.error(), to, path);
  return absl::OkStatus();
}

}  // namespace tandem
