#include "kv_store/kv_seal.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "common/little_endian.h"
#include "common/status.h"

namespace tandem::kv {
namespace {

// Byte 192 is the document blocks' k_rope (kv_block.h) and stays as it is; 193 keeps the sealed
// block's own version; [194, 196) are zero.
constexpr size_t kInnerVersionOffset = 193;
constexpr size_t kNonceOffset = 196;
constexpr size_t kNonceBytes = 12;
constexpr size_t kTagOffset = 208;
constexpr size_t kTagBytes = 16;
constexpr size_t kChecksumOffset = 248;

uint16_t VersionOf(const uint8_t* p) { return static_cast<uint16_t>(p[4] | (p[5] << 8)); }
void SetVersion(uint8_t* p, uint16_t v) {
  p[4] = static_cast<uint8_t>(v & 0xff);
  p[5] = static_cast<uint8_t>(v >> 8);
}
void SetHeaderChecksum(uint8_t* p) {
  const uint64_t sum = Xxh3_64(p, kChecksumOffset);
  for (int i = 0; i < 8; ++i) p[kChecksumOffset + i] = static_cast<uint8_t>(sum >> (8 * i));
}

absl::Status AuthMiss(std::string_view why) {
  return MissStatus(absl::StatusCode::kDataLoss, MissReason::kAuth,
                    absl::StrCat("kv block refused: ", AV(why)));
}

}  // namespace

KvSeal::KvSeal(std::shared_ptr<const ClusterSecret> secret) : secret_(std::move(secret)) {
  TANDEM_CHECK(secret_ != nullptr) << "KvSeal needs a cluster secret";
}

std::array<uint8_t, kTagBytes> KvSeal::Tag(absl::Span<const uint8_t> b) const {
  // AES-256-GCM with AAD only (no plaintext) is GMAC; the EVP cipher API takes the AAD in pieces,
  // so the tag field is skipped without copying the block.
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  TANDEM_CHECK(ctx != nullptr) << "EVP_CIPHER_CTX_new failed";
  const SecretKey& key = secret_->Key(KeyPurpose::kKvAtRest);
  int ok = EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, nullptr, nullptr);
  ok &= EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, kNonceBytes, nullptr);
  ok &= EVP_EncryptInit_ex(ctx, nullptr, nullptr, key.data(), b.data() + kNonceOffset);
  int len = 0;
  ok &= EVP_EncryptUpdate(ctx, nullptr, &len, b.data(), kTagOffset);
  ok &= EVP_EncryptUpdate(ctx, nullptr, &len, b.data() + kTagOffset + kTagBytes,
                          static_cast<int>(kChecksumOffset - kTagOffset - kTagBytes));
  // EVP_EncryptUpdate takes an int length: feed the payload in chunks below 2 GiB.
  const uint8_t* rest = b.data() + kHeaderBytes;
  size_t left = b.size() - kHeaderBytes;
  while (left > 0) {
    const size_t n = std::min<size_t>(left, size_t{1} << 30);
    ok &= EVP_EncryptUpdate(ctx, nullptr, &len, rest, static_cast<int>(n));
    rest += n;
    left -= n;
  }
  ok &= EVP_EncryptFinal_ex(ctx, nullptr, &len);
  std::array<uint8_t, kTagBytes> tag{};
  ok &= EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, kTagBytes, tag.data());
  EVP_CIPHER_CTX_free(ctx);
  TANDEM_CHECK(ok == 1) << "AES-GMAC failed in OpenSSL";
  return tag;
}

absl::StatusOr<std::shared_ptr<Bytes>> KvSeal::Seal(absl::Span<const uint8_t> block) const {
  const uint16_t inner = block.size() < kHeaderBytes ? 0 : VersionOf(block.data());
  if (inner != kFormatVersion && inner != kDocumentFormatVersion) {
    return absl::InvalidArgumentError("KvSeal: not a version-1 or version-2 kv block");
  }
  auto out = std::make_shared<Bytes>(block.size());
  uint8_t* p = out->data();
  std::memcpy(p, block.data(), block.size());
  SetVersion(p, kSealedFormatVersion);
  p[kInnerVersionOffset] = static_cast<uint8_t>(inner);
  std::memset(p + kInnerVersionOffset + 1, 0, kNonceOffset - kInnerVersionOffset - 1);
  SecureRandomBytes(p + kNonceOffset, kNonceBytes);
  std::memset(p + kNonceOffset + kNonceBytes, 0, kTagOffset - kNonceOffset - kNonceBytes);
  const auto tag = Tag(out->span());
  std::memcpy(p + kTagOffset, tag.data(), kTagBytes);
  SetHeaderChecksum(p);
  return out;
}

absl::Status KvSeal::Open(Bytes& bytes) const {
  if (bytes.size() < kHeaderBytes || std::memcmp(bytes.data(), "TKVB", 4) != 0) {
    return AuthMiss("not a kv block");
  }
  uint8_t* p = bytes.data();
  const uint16_t version = VersionOf(p);
  if (version != kSealedFormatVersion) {
    return AuthMiss(
        absl::StrCat("not sealed (format version ", version,
                     "): a shared tier holds only blocks signed with the cluster secret"));
  }
  const auto want = Tag(bytes.span());
  if (!ConstantTimeEquals(want, absl::MakeConstSpan(p + kTagOffset, kTagBytes))) {
    return AuthMiss("MAC does not verify under this cluster's secret");
  }
  const uint16_t inner = p[kInnerVersionOffset];
  if (inner != kFormatVersion && inner != kDocumentFormatVersion) {
    return AuthMiss(absl::StrCat("seals a block of format version ", inner,
                                 ", which this build does not read"));
  }
  SetVersion(p, inner);
  std::memset(p + kInnerVersionOffset, 0, kChecksumOffset - kInnerVersionOffset);
  SetHeaderChecksum(p);
  return absl::OkStatus();
}

}  // namespace tandem::kv
