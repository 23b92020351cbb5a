// common/http_client.h
//
// The client side of the internal control plane (ARCHITECTURE.md §5.2): one JSON call to a node,
// and one streamed call whose Server-Sent Events are handed to a callback as they arrive. Both
// map transport failures to absl::Status (a refused or reset connection is Unavailable, a timeout
// DeadlineExceeded) and a non-2xx answer to the Status its JSON error body and HTTP code describe,
// so callers decide on retries by code (IsRetryable) rather than by parsing text.
//
// SseParser is the incremental SSE decoder behind PostSse, usable on its own (tests, the CLI).
// Free functions and per-call objects; thread-safe (each call uses its own connection).
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/http_auth.h"

namespace tandem {

struct HttpEndpoint {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string ToString() const;  // "host:port" ("[v6 address]:port")
};

struct HttpCallOptions {
  absl::Duration connect_timeout = absl::Seconds(2);
  // Per read or write on the socket, not for the whole call: a stream that keeps sending lives on.
  absl::Duration io_timeout = absl::Seconds(30);
  std::string bearer_token;  // sent as Authorization: Bearer <token> when not empty
  // Signs the request with the cluster secret (X-Tandem-Auth) when set: every /internal/ call.
  std::shared_ptr<const ControlPlaneAuth> cluster_auth{};
};

struct HttpReply {
  int status = 0;
  std::string body;
};

// The Status a non-2xx reply stands for: the code from its HTTP status (400 InvalidArgument, 401
// Unauthenticated, 404 NotFound, 429/503 Unavailable or ResourceExhausted, 504 DeadlineExceeded,
// 499 Cancelled, ...), the message from its {"error":{"message"}} body when there is one, and its
// "code" as the WithErrorCode payload (common/status.h).
absl::Status StatusFromHttpReply(int http_status, std::string_view body);

// GET or POST (JSON body) and the whole reply; any HTTP status is returned as a reply, transport
// failures as Unavailable / DeadlineExceeded naming the endpoint and path.
absl::StatusOr<HttpReply> HttpGet(const HttpEndpoint& to, const std::string& path,
                                  const HttpCallOptions& options = {});
absl::StatusOr<HttpReply> HttpPostJson(const HttpEndpoint& to, const std::string& path,
                                       const std::string& body,
                                       const HttpCallOptions& options = {});
// As HttpPostJson, but a non-2xx reply becomes its Status; returns the body of a 2xx reply.
absl::StatusOr<std::string> CallJson(const HttpEndpoint& to, const std::string& path,
                                     const std::string& body, const HttpCallOptions& options = {});

// Incremental decoder of text/event-stream: feed bytes as they arrive, get (event, data) per
// complete event. Comment lines are skipped, multi-line data is joined with '\n', an event
// without a name is "message". Return false from the callback to stop.
class SseParser {
 public:
  using OnEvent = std::function<bool(std::string_view event, std::string_view data)>;
  explicit SseParser(OnEvent on_event) : on_event_(std::move(on_event)) {}
  // False once the callback asked to stop.
  bool Feed(std::string_view bytes);

 private:
  bool Line(std::string_view line);

  OnEvent on_event_;
  std::string buffer_;
  std::string event_;
  std::string data_;
  bool has_data_ = false;
};

// POSTs `body` and feeds the 2xx reply's body through an SseParser into `on_event`. Returns OK
// when the server ends the stream (whether or not a terminal event came: the caller checks
// that), Cancelled when `on_event` returned false, the reply's Status for a non-2xx answer, and
// Unavailable when the connection breaks mid-stream. `http_status`, when given, receives the
// reply's HTTP status (0 when none arrived): a caller tells a node that answered with an error
// from a transport failure by it, since both can be Unavailable.
absl::Status PostSse(const HttpEndpoint& to, const std::string& path, const std::string& body,
                     const SseParser::OnEvent& on_event, const HttpCallOptions& options = {},
                     int* http_status = nullptr);

}  // namespace tandem
