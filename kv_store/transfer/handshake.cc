#include "kv_store/transfer/handshake.h"

#include <algorithm>
#include <cstring>
#include <string_view>

#include "absl/strings/str_cat.h"

namespace tandem::kv {
namespace {

constexpr char kMagic[4] = {'T', 'X', 'H', 'S'};
constexpr uint16_t kVersion = 1;

std::string_view View(const HandshakeNonce& n) {
  return std::string_view(reinterpret_cast<const char*>(n.data()), n.size());
}

}  // namespace

std::array<uint8_t, kHelloBytes> EncodeHello(const HandshakeNonce& sender_nonce) {
  std::array<uint8_t, kHelloBytes> out{};
  std::memcpy(out.data(), kMagic, 4);
  out[4] = kVersion & 0xff;
  out[5] = kVersion >> 8;
  std::memcpy(out.data() + 8, sender_nonce.data(), sender_nonce.size());
  return out;
}

absl::StatusOr<HandshakeNonce> DecodeHello(absl::Span<const uint8_t> bytes) {
  if (bytes.size() != kHelloBytes || std::memcmp(bytes.data(), kMagic, 4) != 0 ||
      bytes[4] != (kVersion & 0xff) || bytes[5] != (kVersion >> 8)) {
    return absl::InvalidArgumentError("not a data-plane HELLO");
  }
  HandshakeNonce n;
  std::memcpy(n.data(), bytes.data() + 8, n.size());
  return n;
}

Sha256Digest HandshakeProof(const ClusterSecret& secret, std::string_view role,
                            const HandshakeNonce& sender_nonce,
                            const HandshakeNonce& receiver_nonce) {
  return secret.Mac(KeyPurpose::kDataPlane,
                    {"tandem-dp-v1", role, View(sender_nonce), View(receiver_nonce)});
}

absl::Status TcpClientHandshake(int fd, const ClusterSecret& secret, absl::Time deadline,
                                const tcp::StopFn& stop) {
  deadline = std::min(deadline, absl::Now() + kHandshakeTimeout);
  HandshakeNonce mine;
  SecureRandomBytes(mine.data(), mine.size());
  const auto hello = EncodeHello(mine);
  if (absl::Status s = tcp::SendAll(fd, hello.data(), hello.size(), deadline, stop); !s.ok()) {
    return s;
  }
  std::array<uint8_t, kChallengeBytes> challenge{};
  if (absl::Status s = tcp::RecvAll(fd, challenge.data(), challenge.size(), deadline, stop);
      !s.ok()) {
    // A receiver without the secret reads our HELLO as a bad frame header and closes.
    return absl::UnauthenticatedError(
        absl::StrCat("data-plane handshake: the receiver did not answer (", s.message(),
                     "); it may not have the cluster secret"));
  }
  if (std::memcmp(challenge.data(), kMagic, 4) != 0) {
    return absl::UnauthenticatedError("data-plane handshake: the receiver sent no CHALLENGE");
  }
  HandshakeNonce theirs;
  std::memcpy(theirs.data(), challenge.data() + 8, theirs.size());
  const Sha256Digest want = HandshakeProof(secret, "receiver", mine, theirs);
  if (!ConstantTimeEquals(want, absl::MakeConstSpan(challenge.data() + 40, kProofBytes))) {
    return absl::UnauthenticatedError(
        "data-plane handshake: the receiver does not hold the cluster secret");
  }
  const Sha256Digest proof = HandshakeProof(secret, "sender", mine, theirs);
  return tcp::SendAll(fd, proof.data(), proof.size(), deadline, stop);
}

absl::Status TcpServerHandshake(int fd, const ClusterSecret& secret, absl::Time deadline,
                                const tcp::StopFn& stop) {
  deadline = std::min(deadline, absl::Now() + kHandshakeTimeout);
  std::array<uint8_t, kHelloBytes> hello{};
  if (absl::Status s = tcp::RecvAll(fd, hello.data(), hello.size(), deadline, stop); !s.ok()) {
    return absl::UnauthenticatedError("no_handshake");
  }
  absl::StatusOr<HandshakeNonce> theirs = DecodeHello(hello);
  if (!theirs.ok()) return absl::UnauthenticatedError("no_handshake");
  HandshakeNonce mine;
  SecureRandomBytes(mine.data(), mine.size());
  std::array<uint8_t, kChallengeBytes> challenge{};
  std::memcpy(challenge.data(), hello.data(), 8);
  std::memcpy(challenge.data() + 8, mine.data(), mine.size());
  const Sha256Digest proof = HandshakeProof(secret, "receiver", *theirs, mine);
  std::memcpy(challenge.data() + 40, proof.data(), proof.size());
  if (absl::Status s = tcp::SendAll(fd, challenge.data(), challenge.size(), deadline, stop);
      !s.ok()) {
    return s;
  }
  std::array<uint8_t, kProofBytes> answer{};
  if (absl::Status s = tcp::RecvAll(fd, answer.data(), answer.size(), deadline, stop); !s.ok()) {
    return absl::UnauthenticatedError("no_handshake");
  }
  const Sha256Digest want = HandshakeProof(secret, "sender", *theirs, mine);
  if (!ConstantTimeEquals(want, answer)) return absl::UnauthenticatedError("bad_proof");
  return absl::OkStatus();
}

}  // namespace tandem::kv
