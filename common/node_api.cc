#include "common/node_api.h"

#include <limits>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/status.h"
#include "nlohmann/json.hpp"

namespace tandem::node_api {
namespace {

using Json = nlohmann::json;

// Reads the fields of one JSON object, remembering the first error so that a FromJson() reads
// like a field list and reports the first bad field by its path.
class Reader {
 public:
  Reader(const Json& obj, std::string path) : obj_(obj), path_(std::move(path)) {}

  const Json* Find(const char* name, bool required) {
    auto it = obj_.find(name);
    if (it == obj_.end() || it->is_null()) {
      if (required) Fail(name, "is required");
      return nullptr;
    }
    return &*it;
  }
  void Int(const char* name, int64_t& out, bool required = false) {
    const Json* v = Find(name, required);
    if (v == nullptr) return;
    if (v->is_number_integer() && !(v->is_number_unsigned() &&
                                    v->get<uint64_t>() > static_cast<uint64_t>(
                                                             std::numeric_limits<int64_t>::max()))) {
      out = v->get<int64_t>();
    } else {
      Fail(name, "must be an integer");
    }
  }
  void Int32(const char* name, int32_t& out, bool required = false) {
    int64_t wide = out;
    Int(name, wide, required);
    if (wide < std::numeric_limits<int32_t>::min() || wide > std::numeric_limits<int32_t>::max()) {
      Fail(name, "is out of range");
      return;
    }
    out = static_cast<int32_t>(wide);
  }
  void Int(const char* name, int& out, bool required = false) {
    int32_t v = out;
    Int32(name, v, required);
    out = v;
  }
  void U64(const char* name, uint64_t& out, bool required = false) {
    const Json* v = Find(name, required);
    if (v == nullptr) return;
    // Epochs, ids and RNG states use all 64 bits; JSON carries them as decimal strings so that no
    // JSON library on the way rounds them to a double.
    if (v->is_string()) {
      if (!absl::SimpleAtoi(v->get<std::string>(), &out)) Fail(name, "must be a decimal u64");
    } else if (v->is_number_unsigned()) {
      out = v->get<uint64_t>();
    } else if (v->is_number_integer() && v->get<int64_t>() >= 0) {
      out = static_cast<uint64_t>(v->get<int64_t>());
    } else {
      Fail(name, "must be a non-negative integer");
    }
  }
  void Double(const char* name, double& out, bool required = false) {
    const Json* v = Find(name, required);
    if (v == nullptr) return;
    if (v->is_number()) {
      out = v->get<double>();
    } else {
      Fail(name, "must be a number");
    }
  }
  void Bool(const char* name, bool& out) {
    const Json* v = Find(name, false);
    if (v == nullptr) return;
    if (v->is_boolean()) {
      out = v->get<bool>();
    } else {
      Fail(name, "must be a boolean");
    }
  }
  void String(const char* name, std::string& out, bool required = false) {
    const Json* v = Find(name, required);
    if (v == nullptr) return;
    if (v->is_string()) {
      out = v->get<std::string>();
    } else {
      Fail(name, "must be a string");
    }
  }
  void Tokens(const char* name, std::vector<int32_t>& out) {
    const Json* v = Find(name, true);
    if (v == nullptr) return;
    if (!v->is_array()) return Fail(name, "must be an array of token ids");
    out.clear();
    out.reserve(v->size());
    for (const Json& t : *v) {
      if (!t.is_number_integer() || t.get<int64_t>() < 0 ||
          t.get<int64_t>() > std::numeric_limits<int32_t>::max()) {
        return Fail(name, "must hold non-negative 32-bit token ids");
      }
      out.push_back(static_cast<int32_t>(t.get<int64_t>()));
    }
  }
  // A nested object, read by `read` with a Reader for it.
  template <typename F>
  void Object(const char* name, bool required, F read) {
    const Json* v = Find(name, required);
    if (v == nullptr) return;
    if (!v->is_object()) return Fail(name, "must be an object");
    Reader nested(*v, Path(name));
    read(nested);
    if (status_.ok()) status_ = nested.status();
  }
  template <typename F>
  void Array(const char* name, F read_item) {
    const Json* v = Find(name, false);
    if (v == nullptr) return;
    if (!v->is_array()) return Fail(name, "must be an array");
    for (size_t i = 0; i < v->size() && status_.ok(); ++i) {
      if (!(*v)[i].is_object()) return Fail(name, "must hold objects");
      Reader item((*v)[i], absl::StrCat(Path(name), "[", i, "]"));
      read_item(item);
      status_ = item.status();
    }
  }

  const absl::Status& status() const { return status_; }

 private:
  std::string Path(const char* name) const {
    return path_.empty() ? std::string(name) : absl::StrCat(path_, ".", name);
  }
  void Fail(const char* name, std::string_view what) {
    if (status_.ok()) {
      status_ = absl::InvalidArgumentError(absl::StrCat("'", Path(name), "' ", AV(what)));
    }
  }

  const Json& obj_;
  std::string path_;
  absl::Status status_;
};

absl::StatusOr<Json> ParseObject(std::string_view body) {
  Json json = Json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return absl::InvalidArgumentError("the body is not valid JSON");
  if (!json.is_object()) return absl::InvalidArgumentError("the body must be a JSON object");
  return json;
}

std::string Dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

Json SamplingToJson(const Sampling& s) {
  return Json{{"temperature", s.temperature},
              {"top_p", s.top_p},
              {"top_k", s.top_k},
              {"rng_state", std::to_string(s.rng_state)}};
}
void ReadSampling(Reader& r, Sampling& s) {
  r.Double("temperature", s.temperature);
  r.Double("top_p", s.top_p);
  r.Int("top_k", s.top_k);
  r.U64("rng_state", s.rng_state);
}

Json TargetToJson(const DecodeTarget& t) {
  return Json{{"transport", t.transport},
              {"host", t.host},
              {"port", t.port},
              {"node_id", t.node_id},
              {"epoch", std::to_string(t.epoch)},
              {"reservation_id", std::to_string(t.reservation_id)},
              {"transfer_token", t.transfer_token}};
}
void ReadTarget(Reader& r, DecodeTarget& t) {
  r.String("transport", t.transport, true);
  r.String("host", t.host, true);
  r.Int("port", t.port, true);
  r.String("node_id", t.node_id, true);
  r.U64("epoch", t.epoch, true);
  r.U64("reservation_id", t.reservation_id, true);
  r.String("transfer_token", t.transfer_token);
}

Json TimingsToJson(const Timings& t) {
  return Json{{"queue", t.queue},     {"kv_load", t.kv_load},   {"blend", t.blend},
              {"prefill", t.prefill}, {"transfer", t.transfer}, {"decode_queue", t.decode_queue},
              {"decode", t.decode}};
}
void ReadTimings(Reader& r, Timings& t) {
  r.Double("queue", t.queue);
  r.Double("kv_load", t.kv_load);
  r.Double("blend", t.blend);
  r.Double("prefill", t.prefill);
  r.Double("transfer", t.transfer);
  r.Double("decode_queue", t.decode_queue);
  r.Double("decode", t.decode);
}

Json DocumentsToJson(const std::vector<DocumentSpan>& docs) {
  Json out = Json::array();
  for (const DocumentSpan& d : docs) out.push_back(Json{{"begin", d.begin}, {"end", d.end}});
  return out;
}

Json BlendSettingsToJson(const BlendSettings& b) {
  return Json{{"enabled", b.enabled},
              {"recompute_ratio", b.recompute_ratio},
              {"check_layer", b.check_layer},
              {"deviation", b.deviation},
              {"min_blend_tokens", b.min_blend_tokens}};
}

template <typename T, typename F>
absl::StatusOr<T> ReadBody(std::string_view body, F read) {
  TANDEM_ASSIGN_OR_RETURN(Json json, ParseObject(body));
  T value;
  Reader r(json, "");
  read(r, value);
  TANDEM_RETURN_IF_ERROR(r.status());
  return value;
}

}  // namespace

int64_t NowUnixMs() { return absl::ToUnixMillis(absl::Now()); }

std::string TimingsJson(const Timings& t) { return Dump(TimingsToJson(t)); }

std::string ToJson(const ReserveRequest& v) {
  return Dump(Json{{"request_id", v.request_id},
                   {"prompt_tokens", v.prompt_tokens},
                   {"max_tokens", v.max_tokens},
                   {"deadline_ms", v.deadline_ms}});
}
template <>
absl::StatusOr<ReserveRequest> FromJson(std::string_view body) {
  return ReadBody<ReserveRequest>(body, [](Reader& r, ReserveRequest& v) {
    r.String("request_id", v.request_id, true);
    r.Int("prompt_tokens", v.prompt_tokens, true);
    r.Int("max_tokens", v.max_tokens, true);
    r.Int("deadline_ms", v.deadline_ms);
  });
}

std::string ToJson(const ReserveReply& v) {
  return Dump(Json{{"target", TargetToJson(v.target)}, {"expires_ms", v.expires_ms}});
}
template <>
absl::StatusOr<ReserveReply> FromJson(std::string_view body) {
  return ReadBody<ReserveReply>(body, [](Reader& r, ReserveReply& v) {
    r.Object("target", true, [&](Reader& t) { ReadTarget(t, v.target); });
    r.Int("expires_ms", v.expires_ms);
  });
}

std::string ToJson(const PrefillRequest& v) {
  return Dump(Json{{"request_id", v.request_id},
                   {"tokens", v.tokens},
                   {"documents", DocumentsToJson(v.documents)},
                   {"blend", BlendSettingsToJson(v.blend)},
                   {"sampling", SamplingToJson(v.sampling)},
                   {"sparse_prefill", v.sparse_prefill},
                   {"store_kv", v.store_kv},
                   {"target", TargetToJson(v.target)},
                   {"deadline_ms", v.deadline_ms}});
}
template <>
absl::StatusOr<PrefillRequest> FromJson(std::string_view body) {
  return ReadBody<PrefillRequest>(body, [](Reader& r, PrefillRequest& v) {
    r.String("request_id", v.request_id, true);
    r.Tokens("tokens", v.tokens);
    r.Array("documents", [&](Reader& d) {
      DocumentSpan span;
      d.Int32("begin", span.begin, true);
      d.Int32("end", span.end, true);
      v.documents.push_back(span);
    });
    r.Object("blend", false, [&](Reader& b) {
      b.Bool("enabled", v.blend.enabled);
      b.Double("recompute_ratio", v.blend.recompute_ratio);
      b.Int32("check_layer", v.blend.check_layer);
      b.String("deviation", v.blend.deviation);
      b.Int32("min_blend_tokens", v.blend.min_blend_tokens);
    });
    r.Object("sampling", false, [&](Reader& s) { ReadSampling(s, v.sampling); });
    r.String("sparse_prefill", v.sparse_prefill);
    r.Bool("store_kv", v.store_kv);
    r.Object("target", true, [&](Reader& t) { ReadTarget(t, v.target); });
    r.Int("deadline_ms", v.deadline_ms);
  });
}

std::string ToJson(const PrefillReply& v) {
  return Dump(Json{{"first_token", v.first_token},
                   {"blend", Json{{"reused_tokens", v.blend.reused_tokens},
                                  {"recomputed_tokens", v.blend.recomputed_tokens},
                                  {"computed_tokens", v.blend.computed_tokens},
                                  {"document_hits", v.blend.document_hits},
                                  {"document_misses", v.blend.document_misses}}},
                   {"rng_state", std::to_string(v.rng_state)},
                   {"transfer_id", v.transfer_id},
                   {"prompt_tokens", v.prompt_tokens},
                   {"cached_tokens", v.cached_tokens},
                   {"transfer_bytes", v.transfer_bytes},
                   {"attention_method", v.attention_method},
                   {"attention_density", v.attention_density},
                   {"timings_ms", TimingsToJson(v.timings)}});
}
template <>
absl::StatusOr<PrefillReply> FromJson(std::string_view body) {
  return ReadBody<PrefillReply>(body, [](Reader& r, PrefillReply& v) {
    r.Int32("first_token", v.first_token, true);
    r.U64("rng_state", v.rng_state, true);
    r.String("transfer_id", v.transfer_id);
    r.Int("prompt_tokens", v.prompt_tokens);
    r.Int("cached_tokens", v.cached_tokens);
    r.Int("transfer_bytes", v.transfer_bytes);
    r.String("attention_method", v.attention_method);
    r.Double("attention_density", v.attention_density);
    r.Object("timings_ms", false, [&](Reader& t) { ReadTimings(t, v.timings); });
    r.Object("blend", false, [&](Reader& b) {
      b.Int("reused_tokens", v.blend.reused_tokens);
      b.Int("recomputed_tokens", v.blend.recomputed_tokens);
      b.Int("computed_tokens", v.blend.computed_tokens);
      b.Int("document_hits", v.blend.document_hits);
      b.Int("document_misses", v.blend.document_misses);
    });
  });
}

std::string ToJson(const DecodeRequest& v) {
  return Dump(Json{{"request_id", v.request_id},
                   {"reservation_id", std::to_string(v.reservation_id)},
                   {"transfer_id", v.transfer_id},
                   {"first_token", v.first_token},
                   {"sampling", SamplingToJson(v.sampling)},
                   {"max_tokens", v.max_tokens},
                   {"ignore_eos", v.ignore_eos},
                   {"deadline_ms", v.deadline_ms}});
}
template <>
absl::StatusOr<DecodeRequest> FromJson(std::string_view body) {
  return ReadBody<DecodeRequest>(body, [](Reader& r, DecodeRequest& v) {
    r.String("request_id", v.request_id, true);
    r.U64("reservation_id", v.reservation_id, true);
    r.String("transfer_id", v.transfer_id);
    r.Int32("first_token", v.first_token, true);
    r.Object("sampling", false, [&](Reader& s) { ReadSampling(s, v.sampling); });
    r.Int("max_tokens", v.max_tokens, true);
    r.Bool("ignore_eos", v.ignore_eos);
    r.Int("deadline_ms", v.deadline_ms);
  });
}

std::string ToJson(const CancelRequest& v) {
  return Dump(Json{{"request_id", v.request_id},
                   {"reservation_id", std::to_string(v.reservation_id)}});
}
template <>
absl::StatusOr<CancelRequest> FromJson(std::string_view body) {
  return ReadBody<CancelRequest>(body, [](Reader& r, CancelRequest& v) {
    r.String("request_id", v.request_id, true);
    r.U64("reservation_id", v.reservation_id);
  });
}

std::string ToJson(const NodeStatus& v) {
  Json events = Json::array();
  for (const KvEventEntry& e : v.events) {
    events.push_back(Json{{"seq", e.seq}, {"op", e.op}, {"key", e.key}, {"tier", e.tier}});
  }
  return Dump(Json{{"node_id", v.node_id},
                   {"role", v.role},
                   {"epoch", std::to_string(v.epoch)},
                   {"ready", v.ready},
                   {"degraded", v.degraded},
                   {"kv_format", v.kv_format},
                   {"vocab_fingerprint", v.vocab_fingerprint},
                   {"load", Json{{"queued_tokens", v.load.queued_tokens},
                                 {"running", v.load.running},
                                 {"waiting", v.load.waiting},
                                 {"kv_free_ratio", v.load.kv_free_ratio}}},
                   {"events", events},
                   {"next_seq", v.next_seq},
                   {"events_truncated", v.events_truncated}});
}
template <>
absl::StatusOr<NodeStatus> FromJson(std::string_view body) {
  return ReadBody<NodeStatus>(body, [](Reader& r, NodeStatus& v) {
    r.String("node_id", v.node_id, true);
    r.String("role", v.role, true);
    r.U64("epoch", v.epoch, true);
    r.Bool("ready", v.ready);
    if (const Json* d = r.Find("degraded", false); d != nullptr && d->is_array()) {
      for (const Json& s : *d) {
        if (s.is_string()) v.degraded.push_back(s.get<std::string>());
      }
    }
    r.String("kv_format", v.kv_format);
    r.String("vocab_fingerprint", v.vocab_fingerprint);
    r.Object("load", false, [&](Reader& l) {
      l.Int("queued_tokens", v.load.queued_tokens);
      l.Int("running", v.load.running);
      l.Int("waiting", v.load.waiting);
      l.Double("kv_free_ratio", v.load.kv_free_ratio);
    });
    r.Array("events", [&](Reader& e) {
      KvEventEntry entry;
      e.U64("seq", entry.seq);
      e.String("op", entry.op, true);
      e.String("key", entry.key, true);
      e.String("tier", entry.tier);
      v.events.push_back(std::move(entry));
    });
    r.U64("next_seq", v.next_seq);
    r.Bool("events_truncated", v.events_truncated);
  });
}

std::string DecodeEvent::ToSse() const {
  Json data;
  const char* name = "token";
  switch (kind) {
    case Kind::kToken:
      data = Json{{"id", token}};
      break;
    case Kind::kDone:
      name = "done";
      data = Json{{"finish_reason", finish_reason},
                  {"completion_tokens", completion_tokens},
                  {"timings_ms", TimingsToJson(timings)}};
      break;
    case Kind::kError:
      name = "error";
      data = Json{{"code", http_status}, {"message", message}, {"retryable", retryable}};
      break;
  }
  return absl::StrCat("event: ", name, "\ndata: ", Dump(data), "\n\n");
}

absl::StatusOr<DecodeEvent> DecodeEvent::FromSse(std::string_view event, std::string_view data) {
  TANDEM_ASSIGN_OR_RETURN(Json json, ParseObject(data));
  DecodeEvent e;
  Reader r(json, AV(event).empty() ? "" : std::string(event));
  if (event == "token") {
    e.kind = Kind::kToken;
    r.Int32("id", e.token, true);
  } else if (event == "done") {
    e.kind = Kind::kDone;
    r.String("finish_reason", e.finish_reason, true);
    r.Int("completion_tokens", e.completion_tokens);
    r.Object("timings_ms", false, [&](Reader& t) { ReadTimings(t, e.timings); });
  } else if (event == "error") {
    e.kind = Kind::kError;
    r.Int("code", e.http_status);
    r.String("message", e.message);
    r.Bool("retryable", e.retryable);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unknown decode event '", AV(event), "'"));
  }
  TANDEM_RETURN_IF_ERROR(r.status());
  return e;
}

}  // namespace tandem::node_api
