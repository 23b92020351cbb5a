// common/status.h
//
// Tandem's error conventions: canonical absl::Status codes only, detail in the message. Library code
// returns Status/StatusOr and propagates with the macros below; a process turns a Status into an exit
// code or an HTTP error at its edge (HttpStatusFromStatus), and logs it there once.
// TANDEM_CHECK is for our own invariants (bugs), never for input, disk or network.
// All functions are thread-safe and never block.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tandem {

// Debian's Abseil is built with its own string_view type; this adapts std -> absl.
inline absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }
inline std::string_view SV(absl::string_view s) { return std::string_view(s.data(), s.size()); }

// Retryable: kUnavailable, kResourceExhausted, kDeadlineExceeded, kAborted ("may succeed if
// re-attempted", possibly elsewhere). Everything else is final.
bool IsRetryable(const absl::Status& s);

// Keeps the code and payloads, prefixes the message: "while loading blocks of r-42: <original>".
absl::Status Annotate(const absl::Status& s, std::string_view context);

// A machine-readable error code ("kv_transfer_failed") carried as a Status payload, so that it
// survives the HTTP hop between processes: common/http's WriteError puts it in the body's "code"
// and common/http_client's StatusFromHttpReply reads it back into the same payload. Callers branch
// on the code, never on the message text.
absl::Status WithErrorCode(absl::Status status, std::string_view code);
// The code WithErrorCode attached, or "".
std::string ErrorCodeOf(const absl::Status& status);

// The code a prefill node gives a request whose KV it computed but could not deliver to the
// reserved decode node (NACK, deadline, stale epoch): the router then reserves elsewhere.
inline constexpr std::string_view kErrorKvTransferFailed = "kv_transfer_failed";

// The one Status -> HTTP mapping (ARCHITECTURE.md §9).
int HttpStatusFromStatus(const absl::Status& s);

// The one Status -> process exit code mapping: 0 ok, 2 invalid usage/input, 1 anything else.
int ExitCodeFromStatus(const absl::Status& s);

namespace internal {
[[noreturn]] void CheckFailed(const char* file, int line, const char* condition,
                              const std::string& message);
// Collects `<<` operands for the failure message of TANDEM_CHECK.
class CheckMessage {
 public:
  CheckMessage(const char* file, int line, const char* condition)
      : file_(file), line_(line), condition_(condition) {}
  [[noreturn]] ~CheckMessage() { CheckFailed(file_, line_, condition_, message_); }
  template <typename T>
  CheckMessage& operator<<(const T& value);
  std::string& message() { return message_; }

 private:
  const char* file_;
  int line_;
  const char* condition_;
  std::string message_;
};
}  // namespace internal
}  // namespace tandem

#include <sstream>
template <typename T>
tandem::internal::CheckMessage& tandem::internal::CheckMessage::operator<<(const T& value) {
  std::ostringstream os;
  os << value;
  message_ += os.str();
  return *this;
}

#define TANDEM_STATUS_CONCAT_INNER_(a, b) a##b
#define TANDEM_STATUS_CONCAT_(a, b) TANDEM_STATUS_CONCAT_INNER_(a, b)

#define TANDEM_RETURN_IF_ERROR(expr)                                          \
  do {                                                                        \
    ::absl::Status tandem_status_ = (expr);                                   \
    if (!tandem_status_.ok()) return tandem_status_;                          \
  } while (0)

#define TANDEM_ASSIGN_OR_RETURN(lhs, expr) \
  TANDEM_ASSIGN_OR_RETURN_IMPL_(TANDEM_STATUS_CONCAT_(tandem_statusor_, __LINE__), lhs, expr)
#define TANDEM_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                  \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

// Aborts with file:line and the streamed message when `cond` is false. For our own bugs only.
#define TANDEM_CHECK(cond) \
  if (cond) {              \
  } else                   \
    ::tandem::internal::CheckMessage(__FILE__, __LINE__, #cond)

#ifdef NDEBUG
#define TANDEM_DCHECK(cond) \
  if (true) {               \
  } else                    \
    ::tandem::internal::CheckMessage(__FILE__, __LINE__, #cond)
#else
#define TANDEM_DCHECK(cond) TANDEM_CHECK(cond)
#endif
