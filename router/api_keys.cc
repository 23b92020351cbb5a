#include "router/api_keys.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace tandem::router {
namespace {

bool ValidName(absl::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
  });
}

bool SameBytes(std::string_view a, std::string_view b) {
  // Length leaks (it is not secret), contents do not.
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace

absl::StatusOr<std::vector<ApiKey>> ParseApiKeys(std::string_view text, std::string_view file) {
  std::vector<ApiKey> keys;
  absl::flat_hash_set<std::string> names, values;
  int line_number = 0;
  for (absl::string_view raw : absl::StrSplit(absl::string_view(text.data(), text.size()), '\n')) {
    ++line_number;
    const absl::string_view line = absl::StripAsciiWhitespace(raw);
    if (line.empty() || line.front() == '#') continue;
    const size_t colon = line.find(':');
    const std::string where = absl::StrCat("--api_keys_file ", std::string(file), ":", line_number);
    if (colon == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": expected name:key"));
    }
    ApiKey k{std::string(absl::StripAsciiWhitespace(line.substr(0, colon))),
             std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)))};
    if (!ValidName(k.name)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": key name must be 1-64 of [A-Za-z0-9_.-]"));
    }
    if (k.key.size() < kMinApiKeyBytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": the key of '", k.name, "' is shorter than ", kMinApiKeyBytes, " characters"));
    }
    if (!names.insert(k.name).second) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": name '", k.name, "' repeated"));
    }
    if (!values.insert(k.key).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": the key of '", k.name, "' is also another name's key"));
    }
    keys.push_back(std::move(k));
  }
  if (keys.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--api_keys_file ", std::string(file), ": no keys"));
  }
  return keys;
}

absl::StatusOr<std::vector<ApiKey>> ReadApiKeysFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("--api_keys_file: cannot read ", path));
  std::ostringstream text;
  text << in.rdbuf();
  return ParseApiKeys(text.str(), path);
}

const ApiKey* MatchApiKey(const std::vector<ApiKey>& keys, std::string_view token) {
  const ApiKey* found = nullptr;
  for (const ApiKey& k : keys) {
    if (SameBytes(k.key, token)) found = &k;  // no early exit
  }
  return found;
}

KeyLimiter::Slot::~Slot() { limiter_->Release(key_); }

absl::StatusOr<std::shared_ptr<KeyLimiter::Slot>> KeyLimiter::Acquire(const std::string& key) {
  absl::MutexLock lock(&mu_);
  State& s = keys_[key];
  if (limits_.max_concurrent > 0 && s.in_flight >= limits_.max_concurrent) {
    return absl::ResourceExhaustedError(
        absl::StrCat("Rate limit reached for key '", key, "': ", limits_.max_concurrent,
                     " requests in flight (--api_key_max_concurrent)"));
  }
  ++s.in_flight;
  return std::make_shared<Slot>(this, key);
}

void KeyLimiter::Release(const std::string& key) {
  absl::MutexLock lock(&mu_);
  auto it = keys_.find(key);
  if (it != keys_.end() && it->second.in_flight > 0) --it->second.in_flight;
}

std::optional<absl::Duration> KeyLimiter::Charge(const std::string& key, int64_t tokens,
                                                 absl::Time now) {
  if (limits_.tokens_per_minute <= 0) return std::nullopt;
  const double capacity = static_cast<double>(limits_.tokens_per_minute);
  const double per_second = capacity / 60.0;
  // A request larger than a minute's worth waits for a full bucket rather than forever.
  const double cost = std::min(static_cast<double>(std::max<int64_t>(tokens, 0)), capacity);
  absl::MutexLock lock(&mu_);
  State& s = keys_[key];
  if (s.bucket < 0) {
    s.bucket = capacity;
  } else {
    s.bucket = std::min(capacity, s.bucket + absl::ToDoubleSeconds(now - s.refilled) * per_second);
  }
  s.refilled = now;
  if (s.bucket >= cost) {
    s.bucket -= cost;
    return std::nullopt;
  }
  return absl::Seconds((cost - s.bucket) / per_second);
}

}  // namespace tandem::router
