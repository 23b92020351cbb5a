// decode_node/http_api.h
//
// The decode node's HTTP routes (ARCHITECTURE.md §5.2, §8) over a DecodeService:
//   POST /internal/v1/reserve  ReserveRequest -> ReserveReply; 503 + Retry-After when full
//   POST /internal/v1/decode   DecodeRequest  -> text/event-stream of DecodeEvent::ToSse()
//   POST /internal/v1/cancel   CancelRequest  -> {}; 404 for an unknown reservation
//   POST /internal/v1/drain    {}             -> {}; then `on_drain` (the process exits when idle)
//   GET  /internal/v1/status?since=N          -> NodeStatus
//   GET  /ready                               -> 200 {"ready":true}, 503 while draining
// A body that does not parse is 400 (WriteError); errors known before a stream starts (unknown
// reservation 404, bad fields 400) are plain HTTP errors, later ones are the stream's error event.
// Handlers run on the server's worker threads; a decode stream holds its worker for its life.
// The service (and the callback) are borrowed and must outlive the server's Stop().
#pragma once

#include <functional>

#include "common/http.h"
#include "decode_node/decode_service.h"

namespace tandem::decode {

// Adds the routes to `server` (before its Start()). `on_drain` runs after a drain request has
// been applied; null for none.
void RegisterDecodeRoutes(HttpServer& server, DecodeService& service,
                          std::function<void()> on_drain = nullptr);

}  // namespace tandem::decode
