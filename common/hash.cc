#include "common/hash.h"

#include <openssl/evp.h>
#include <xxhash.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace tandem {
namespace {

EVP_MD_CTX* Ctx(void* p) { return static_cast<EVP_MD_CTX*>(p); }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// A short prefix of bad input for error messages; keys can be long.
std::string Excerpt(std::string_view s) {
  return s.size() <= 80 ? std::string(s) : absl::StrCat(AV(s.substr(0, 80)), "...");
}

}  // namespace

// libcrypto fails SHA-256 only on allocation failure or a broken install; neither is input, so
// both are invariants here.
Sha256Digest Sha256(const void* data, size_t size) {
  Sha256Digest out;
  unsigned int out_len = 0;
  TANDEM_CHECK(EVP_Digest(data, size, out.data(), &out_len, EVP_sha256(), nullptr) == 1 &&
               out_len == out.size())
      << "EVP_Digest(sha256) failed";
  return out;
}

Sha256Hasher::Sha256Hasher() : ctx_(EVP_MD_CTX_new()) {
  TANDEM_CHECK(ctx_ != nullptr) << "EVP_MD_CTX_new failed";
  TANDEM_CHECK(EVP_DigestInit_ex(Ctx(ctx_), EVP_sha256(), nullptr) == 1) << "sha256 init failed";
}

Sha256Hasher::~Sha256Hasher() { EVP_MD_CTX_free(Ctx(ctx_)); }

void Sha256Hasher::Update(const void* data, size_t size) {
  TANDEM_CHECK(EVP_DigestUpdate(Ctx(ctx_), data, size) == 1) << "sha256 update failed";
}

Sha256Digest Sha256Hasher::Finish() {
  Sha256Digest out;
  unsigned int out_len = 0;
  TANDEM_CHECK(EVP_DigestFinal_ex(Ctx(ctx_), out.data(), &out_len) == 1 && out_len == out.size())
      << "sha256 final failed";
  TANDEM_CHECK(EVP_DigestInit_ex(Ctx(ctx_), EVP_sha256(), nullptr) == 1) << "sha256 init failed";
  return out;
}

uint64_t Xxh3_64(const void* data, size_t size, uint64_t seed) {
  return XXH3_64bits_withSeed(data, size, seed);
}

std::string HexEncode(absl::Span<const uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(bytes.size() * 2, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 0xF];
  }
  return out;
}

absl::StatusOr<std::string> HexDecode(std::string_view hex) {
  if (hex.size() % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("hex '", Excerpt(hex), "' has odd length ", hex.size()));
  }
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i) {
    const int hi = HexValue(hex[2 * i]);
    const int lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("hex '", Excerpt(hex), "' has a non-hex character at offset ",
                       hi < 0 ? 2 * i : 2 * i + 1));
    }
    out[i] = static_cast<char>((hi << 4) | lo);
  }
  return out;
}

absl::StatusOr<Sha256Digest> Sha256DigestFromHex(std::string_view hex) {
  if (hex.size() != 64) {
    return absl::InvalidArgumentError(absl::StrCat("sha256 hex '", Excerpt(hex), "' has ",
                                                   hex.size(), " characters, expected 64"));
  }
  TANDEM_ASSIGN_OR_RETURN(std::string bytes, HexDecode(hex));
  Sha256Digest out;
  std::memcpy(out.data(), bytes.data(), out.size());
  return out;
}

}  // namespace tandem
