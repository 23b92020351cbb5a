// kv_store/transfer/handshake.h
//
// The data plane's connection set-up when the cluster has a secret (ARCHITECTURE.md §5.3, §9):
// a mutual challenge-response, so the prefill node ships KV only to a receiver that proves it
// holds the cluster secret, and the receiver reads frames only from a sender that does.
//
//   sender   -> HELLO     "TXHS" u16 version=1 u16 0, sender nonce (32)             40 bytes
//   receiver -> CHALLENGE "TXHS" u16 version=1 u16 0, receiver nonce (32),
//                         receiver proof (32)                                       72 bytes
//   sender   -> PROOF     sender proof (32)                                         32 bytes
//
// proof(role) = HMAC-SHA256 under the data-plane key of ("tandem-dp-v1", role, sender nonce,
// receiver nonce), role "receiver" or "sender": fresh nonces on both sides make every proof good
// for one connection only, and the roles differ so neither proof can be reflected as the other.
// Frames (§5.3) follow on the same stream. The handshake authenticates the endpoints, not each
// frame: an on-path attacker is TLS's job; BEGIN's transfer token (transport.h) binds a transfer
// to its reservation.
//
// Pure functions plus the two TCP sides; thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/cluster_secret.h"
#include "kv_store/transfer/tcp_socket.h"

namespace tandem::kv {

using HandshakeNonce = std::array<uint8_t, 32>;
inline constexpr size_t kHelloBytes = 40;
inline constexpr size_t kChallengeBytes = 72;
inline constexpr size_t kProofBytes = 32;
// How long either side waits for the other's handshake message; also the longest an
// unauthenticated connection can hold a receiver thread.
inline constexpr absl::Duration kHandshakeTimeout = absl::Seconds(5);

std::array<uint8_t, kHelloBytes> EncodeHello(const HandshakeNonce& sender_nonce);
// InvalidArgument when the bytes are not a HELLO of this version (e.g. a frame header from a
// sender without the secret).
absl::StatusOr<HandshakeNonce> DecodeHello(absl::Span<const uint8_t> bytes);
Sha256Digest HandshakeProof(const ClusterSecret& secret, std::string_view role,
                            const HandshakeNonce& sender_nonce,
                            const HandshakeNonce& receiver_nonce);

// Sender side on a connected socket: Unauthenticated when the receiver's proof is wrong or it
// answers something else; Unavailable/DeadlineExceeded on I/O failure.
absl::Status TcpClientHandshake(int fd, const ClusterSecret& secret, absl::Time deadline,
                                const tcp::StopFn& stop);
// Receiver side on an accepted socket. Unauthenticated with the refusal reason as the message
// (no_handshake, bad_proof) when the sender fails it; Unavailable/DeadlineExceeded on I/O.
absl::Status TcpServerHandshake(int fd, const ClusterSecret& secret, absl::Time deadline,
                                const tcp::StopFn& stop);

}  // namespace tandem::kv
