// common/http_auth.h
//
// ControlPlaneAuth: how the router proves to a node's /internal/ API that it holds the cluster
// secret (ARCHITECTURE.md §5.2, §9). Each request carries one header,
//
//   X-Tandem-Auth: v1 <unix_ms> <nonce: 32 hex> <sha256(body): 64 hex> <mac: 64 hex>
//
// where mac = HMAC-SHA256 under the control-plane key of ("tandem-http-v1", method, target (path
// and query), unix_ms, nonce, body digest). The node checks the header before reading the body (so
// a stranger's megabytes are never read), then the body against the digest. A request older or
// newer than the replay window (30 s) is refused, and so is a nonce already seen inside the window,
// so a recorded request cannot be played again. Strangers get 401 with a body that says only
// "unauthenticated"; each refusal is counted in tandem_auth_refusals_total{plane="control",reason}.
//
// Replies are not signed: a caller who can impersonate a node's address is out of scope here (mTLS
// on the control plane is the remedy, not built yet).
//
// Thread-safe (the nonce cache has its own lock). Borrows nothing; holds the secret by shared_ptr.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/cluster_secret.h"
#include "common/metrics.h"
#include "httplib.h"

namespace tandem {

inline constexpr char kAuthHeader[] = "X-Tandem-Auth";

class ControlPlaneAuth {
 public:
  static constexpr absl::Duration kReplayWindow = absl::Seconds(30);

  // `refusals`, when given, is the tandem_auth_refusals_total family (labels plane, reason).
  ControlPlaneAuth(std::shared_ptr<const ClusterSecret> secret, CounterFamily* refusals = nullptr);

  // The X-Tandem-Auth value for one request.
  std::string Sign(std::string_view method, std::string_view target, std::string_view body,
                   absl::Time now = absl::Now()) const;

  // Checks the header of `req` (method, target, time, nonce, MAC); the body is not looked at.
  // Unauthenticated with a reason label as the message (missing, malformed, expired, replayed,
  // bad_mac); counted. A nonce is remembered only once its MAC verified.
  absl::Status VerifyHeader(const httplib::Request& req, absl::Time now = absl::Now()) const;
  // The body against the digest the verified header carries; Unauthenticated "body" otherwise.
  absl::Status VerifyBody(const httplib::Request& req) const;

  // For tests and for the data plane: counts one refusal.
  void CountRefusal(std::string_view plane, std::string_view reason) const;

  const ClusterSecret& secret() const { return *secret_; }

 private:
  absl::Status Refuse(std::string_view reason) const;

  std::shared_ptr<const ClusterSecret> secret_;
  CounterFamily* refusals_;
  mutable absl::Mutex mu_;
  mutable absl::flat_hash_map<std::string, absl::Time> seen_nonces_ ABSL_GUARDED_BY(mu_);
  mutable absl::Time last_prune_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace tandem
