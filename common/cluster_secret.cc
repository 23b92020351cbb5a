#include "common/cluster_secret.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace tandem {
namespace {

constexpr KeyPurpose kPurposes[] = {KeyPurpose::kControlPlane, KeyPurpose::kDataPlane,
                                    KeyPurpose::kKvAtRest};

void AppendLength(std::string& out, size_t n) {
  for (int i = 0; i < 8; ++i)
    out.push_back(static_cast<char>((static_cast<uint64_t>(n) >> (8 * i)) & 0xff));
}

}  // namespace

CounterFamily* AuthRefusalsCounter(MetricsRegistry& registry) {
  return registry.Counter("tandem_auth_refusals_total",
                          "Callers refused for lack of the cluster secret (control plane: HTTP "
                          "401; data plane: handshake failed or BEGIN refused), by reason.",
                          {"plane", "reason"});
}

std::string_view KeyPurposeName(KeyPurpose purpose) {
  switch (purpose) {
    case KeyPurpose::kControlPlane:
      return "control_plane";
    case KeyPurpose::kDataPlane:
      return "data_plane";
    case KeyPurpose::kKvAtRest:
      return "kv_at_rest";
  }
  return "unknown";
}

Sha256Digest HmacSha256(absl::Span<const uint8_t> key, std::string_view data) {
  Sha256Digest out{};
  unsigned int len = 0;
  const unsigned char* ok =
      HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(), &len);
  TANDEM_CHECK(ok != nullptr && len == out.size()) << "HMAC-SHA256 failed";
  return out;
}

bool ConstantTimeEquals(absl::Span<const uint8_t> a, absl::Span<const uint8_t> b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

void SecureRandomBytes(void* out, size_t size) {
  TANDEM_CHECK(RAND_bytes(static_cast<unsigned char*>(out), static_cast<int>(size)) == 1)
      << "OpenSSL RAND_bytes failed: no entropy";
}

uint64_t SecureRandomU64() {
  uint64_t v = 0;
  SecureRandomBytes(&v, sizeof(v));
  return v;
}

std::string SecureRandomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  SecureRandomBytes(raw.data(), raw.size());
  return HexEncode(absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(raw.data()), raw.size()));
}

ClusterSecret::ClusterSecret(std::string_view secret) {
  const auto key =
      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(secret.data()), secret.size());
  for (KeyPurpose p : kPurposes) {
    keys_[static_cast<int>(p)] = HmacSha256(key, "tandem-key-v1/" + std::string(KeyPurposeName(p)));
  }
}

absl::StatusOr<std::shared_ptr<const ClusterSecret>> ClusterSecret::FromBytes(
    std::string_view secret) {
  if (secret.size() < kMinBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cluster secret has ", secret.size(), " bytes; at least ", kMinBytes, " are required"));
  }
  return std::shared_ptr<const ClusterSecret>(new ClusterSecret(secret));
}

absl::StatusOr<std::shared_ptr<const ClusterSecret>> ClusterSecret::ReadFile(
    const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read the cluster secret file ", path, ": ", std::strerror(errno)));
  }
  std::ostringstream text;
  text << in.rdbuf();
  std::string secret = text.str();
  const absl::string_view stripped = absl::StripAsciiWhitespace(secret);
  auto made = FromBytes(std::string_view(stripped.data(), stripped.size()));
  OPENSSL_cleanse(secret.data(), secret.size());
  if (!made.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cluster secret file ", path, ": ", made.status().message()));
  }
  return made;
}

absl::Status ClusterSecret::WriteNewFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot create the cluster secret file ", path, ": ", std::strerror(errno)));
  }
  std::string text = SecureRandomHex(32) + "\n";
  const ssize_t n = ::write(fd, text.data(), text.size());
  OPENSSL_cleanse(text.data(), text.size());
  const bool closed = ::close(fd) == 0;
  if (n != static_cast<ssize_t>(text.size()) || !closed) {
    ::unlink(path.c_str());
    return absl::UnavailableError(absl::StrCat("cannot write the cluster secret file ", path));
  }
  return absl::OkStatus();
}

const SecretKey& ClusterSecret::Key(KeyPurpose purpose) const {
  return keys_[static_cast<int>(purpose)];
}

Sha256Digest ClusterSecret::Mac(KeyPurpose purpose,
                                std::initializer_list<std::string_view> parts) const {
  std::string message;
  size_t total = 0;
  for (std::string_view p : parts) total += 8 + p.size();
  message.reserve(total);
  for (std::string_view p : parts) {
    AppendLength(message, p.size());
    message.append(p);
  }
  return HmacSha256(Key(purpose), message);
}

}  // namespace tandem
