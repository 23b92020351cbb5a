#include "common/http_auth.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/hash.h"

namespace tandem {
namespace {

constexpr char kVersion[] = "v1";
constexpr char kDomain[] = "tandem-http-v1";
constexpr absl::Duration kPruneEvery = absl::Seconds(5);

std::string_view Std(absl::string_view s) { return std::string_view(s.data(), s.size()); }

bool DecodeHex(absl::string_view hex, size_t bytes, std::string* out) {
  if (hex.size() != 2 * bytes) return false;
  absl::StatusOr<std::string> raw = HexDecode(Std(hex));
  if (!raw.ok()) return false;
  *out = *std::move(raw);
  return true;
}

}  // namespace

ControlPlaneAuth::ControlPlaneAuth(std::shared_ptr<const ClusterSecret> secret,
                                   CounterFamily* refusals)
    : secret_(std::move(secret)), refusals_(refusals) {}

std::string ControlPlaneAuth::Sign(std::string_view method, std::string_view target,
                                   std::string_view body, absl::Time now) const {
  const std::string ms = absl::StrCat(absl::ToUnixMillis(now));
  const std::string nonce = SecureRandomHex(16);
  const std::string digest = HexEncode(Sha256(body));
  const std::string mac = HexEncode(
      secret_->Mac(KeyPurpose::kControlPlane, {kDomain, method, target, ms, nonce, digest}));
  return absl::StrCat(kVersion, " ", ms, " ", nonce, " ", digest, " ", mac);
}

void ControlPlaneAuth::CountRefusal(std::string_view plane, std::string_view reason) const {
  if (refusals_ != nullptr)
    refusals_->Labels({std::string(plane), std::string(reason)}).Increment();
}

absl::Status ControlPlaneAuth::Refuse(std::string_view reason) const {
  CountRefusal("control", reason);
  return absl::UnauthenticatedError(std::string(reason));
}

absl::Status ControlPlaneAuth::VerifyHeader(const httplib::Request& req, absl::Time now) const {
  if (!req.has_header(kAuthHeader)) return Refuse("missing");
  const std::string value = req.get_header_value(kAuthHeader);
  std::vector<absl::string_view> parts = absl::StrSplit(value, ' ');
  int64_t ms = 0;
  std::string nonce_raw, digest_raw, mac_raw;
  if (parts.size() != 5 || parts[0] != kVersion || !absl::SimpleAtoi(parts[1], &ms) ||
      !DecodeHex(parts[2], 16, &nonce_raw) || !DecodeHex(parts[3], 32, &digest_raw) ||
      !DecodeHex(parts[4], 32, &mac_raw)) {
    return Refuse("malformed");
  }
  const absl::Time sent = absl::FromUnixMillis(ms);
  if (sent < now - kReplayWindow || sent > now + kReplayWindow) return Refuse("expired");
  // req.target is the request line's target as sent (path and query, still percent-encoded).
  const Sha256Digest want =
      secret_->Mac(KeyPurpose::kControlPlane,
                   {kDomain, req.method, req.target, Std(parts[1]), Std(parts[2]), Std(parts[3])});
  if (!ConstantTimeEquals(
          want,
          absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(mac_raw.data()), mac_raw.size()))) {
    return Refuse("bad_mac");
  }
  absl::MutexLock lock(&mu_);
  if (now - last_prune_ > kPruneEvery) {
    absl::erase_if(seen_nonces_, [&](const auto& e) { return e.second < now - kReplayWindow; });
    last_prune_ = now;
  }
  if (!seen_nonces_.emplace(std::move(nonce_raw), sent).second) return Refuse("replayed");
  return absl::OkStatus();
}

absl::Status ControlPlaneAuth::VerifyBody(const httplib::Request& req) const {
  const std::string value = req.get_header_value(kAuthHeader);
  std::vector<absl::string_view> parts = absl::StrSplit(value, ' ');
  if (parts.size() != 5) return Refuse("malformed");
  if (parts[3] != HexEncode(Sha256(req.body))) return Refuse("body");
  return absl::OkStatus();
}

}  // namespace tandem
