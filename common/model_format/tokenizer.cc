// common/model_format/tokenizer.cc
//
// Byte-level BPE (../shared/model.md §5), matching llama.cpp's LLM_TOKENIZER_BPE for the supported
// pre-tokenizers. Symbols are token ids from the start (a byte's byte-level token), so a merge is
// one hash lookup on an id pair.
#include "common/model_format/tokenizer.h"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <queue>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "common/model_format/pretokenizer.h"
#include "common/model_format/unicode.h"
#include "common/status.h"

namespace tandem::format {
namespace {

// tokenizer.ggml.token_type values (llama.cpp llama_token_type).
constexpr int32_t kTypeNormal = 1;
constexpr int32_t kTypeUnknown = 2;
constexpr int32_t kTypeControl = 3;
constexpr int32_t kTypeUserDefined = 4;
constexpr int32_t kTypeUnused = 5;

// Bounds the per-piece cache so adversarial input cannot grow it without limit.
constexpr size_t kMaxCacheEntries = 1 << 16;

struct Merge {
  int32_t rank;
  TokenId merged;
};

struct SpecialToken {
  TokenId id;
  std::string text;
  bool always;  // user-defined tokens are split out even when parse_special is false
};

uint64_t PairKey(TokenId left, TokenId right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

// The bytes a vocab string stands for: each character mapped back through bytes_to_unicode.
// A character outside the 256 (not expected in a byte-level vocab) is kept as its UTF-8.
std::string ByteDecode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    uint32_t cp = 0;
    const int len = DecodeUtf8(text, pos, &cp);
    if (len == 0) {
      out.push_back(text[pos++]);
      continue;
    }
    const int byte = CodePointToByte(cp);
    if (byte >= 0) {
      out.push_back(static_cast<char>(byte));
    } else {
      out.append(text.substr(pos, static_cast<size_t>(len)));
    }
    pos += static_cast<size_t>(len);
  }
  return out;
}

void HashU64(EVP_MD_CTX* ctx, uint64_t v) {
  unsigned char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(v >> (8 * i));
  EVP_DigestUpdate(ctx, b, sizeof(b));
}

void HashString(EVP_MD_CTX* ctx, std::string_view s) {
  HashU64(ctx, s.size());
  EVP_DigestUpdate(ctx, s.data(), s.size());
}

// SHA-256 over a length-prefixed canonical encoding: tag, pre-tokenizer name, tokens with their
// types, merges. Any change to what Encode/Decode would do changes the fingerprint.
std::string Fingerprint(std::string_view pre, const std::vector<std::string>& tokens,
                        const std::vector<int32_t>& types, const GgufArray& merges) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  HashString(ctx, "tandem-vocab-v1");
  HashString(ctx, pre);
  HashU64(ctx, tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    HashString(ctx, tokens[i]);
    HashU64(ctx, static_cast<uint64_t>(static_cast<int64_t>(types[i])));
  }
  HashU64(ctx, merges.strings.size());
  for (std::string_view m : merges.strings) HashString(ctx, m);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, digest, &len);
  EVP_MD_CTX_free(ctx);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 15]);
  }
  return hex;
}

}  // namespace

struct Tokenizer::Impl {
  PreTokenizerKind pre = PreTokenizerKind::kSmolLm;
  std::vector<std::string> tokens;       // vocab strings as stored (byte-level characters)
  std::vector<int32_t> types;            // tokenizer.ggml.token_type
  std::vector<std::string> token_bytes;  // what each token decodes to
  absl::flat_hash_map<std::string, TokenId> token_to_id;
  absl::flat_hash_map<uint64_t, Merge> merges;  // PairKey(left, right) -> rank and result
  std::array<TokenId, 256> byte_token{};
  std::vector<SpecialToken> specials;  // longest text first
  std::string fingerprint;

  mutable absl::Mutex mu;
  mutable absl::flat_hash_map<std::string, std::vector<TokenId>> cache ABSL_GUARDED_BY(mu);

  void Bpe(std::string_view piece, std::vector<TokenId>* out) const;
  void EncodeText(std::string_view text, std::vector<TokenId>* out) const;
};

// Merges the lowest-rank adjacent pair, leftmost first on ties, until none is in the table.
// Symbols form a linked list over piece positions; the heap holds candidate pairs and stale
// entries (a side already merged away or changed) are skipped when popped.
void Tokenizer::Impl::Bpe(std::string_view piece, std::vector<TokenId>* out) const {
  const int n = static_cast<int>(piece.size());
  if (n == 1) {
    const TokenId id = byte_token[static_cast<uint8_t>(piece[0])];
    if (id >= 0) out->push_back(id);
    return;
  }
  {
    absl::MutexLock lock(&mu);
    auto it = cache.find(AV(piece));
    if (it != cache.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<TokenId> ids(n);
  std::vector<int> next(n);
  std::vector<int> prev(n);
  for (int i = 0; i < n; ++i) {
    ids[i] = byte_token[static_cast<uint8_t>(piece[i])];
    next[i] = i + 1;
    prev[i] = i - 1;
  }
  struct Candidate {
    int32_t rank;
    int left;
    TokenId left_id;
    TokenId right_id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : left > o.left;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  const auto push = [&](int left) {
    if (left < 0 || next[left] >= n) return;
    auto it = merges.find(PairKey(ids[left], ids[next[left]]));
    if (it != merges.end()) heap.push({it->second.rank, left, ids[left], ids[next[left]]});
  };
  for (int i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    const int left = c.left;
    if (ids[left] != c.left_id) continue;
    const int right = next[left];
    if (right >= n || ids[right] != c.right_id) continue;
    ids[left] = merges.find(PairKey(c.left_id, c.right_id))->second.merged;
    ids[right] = -1;
    next[left] = next[right];
    if (next[right] < n) prev[next[right]] = left;
    push(prev[left]);
    push(left);
  }
  std::vector<TokenId> result;
  for (int i = 0; i < n; i = next[i]) {
    if (ids[i] >= 0) result.push_back(ids[i]);  // < 0: a byte the vocab cannot represent
  }
  out->insert(out->end(), result.begin(), result.end());
  absl::MutexLock lock(&mu);
  if (cache.size() >= kMaxCacheEntries) cache.clear();
  cache.emplace(std::string(piece), std::move(result));
}

void Tokenizer::Impl::EncodeText(std::string_view text, std::vector<TokenId>* out) const {
  std::vector<std::string_view> pieces;
  PreTokenize(pre, text, &pieces);
  for (std::string_view piece : pieces) Bpe(piece, out);
}

absl::StatusOr<Tokenizer> Tokenizer::FromGguf(const GgufFile& file) {
  const std::string& path = file.path();
  auto impl = std::make_unique<Impl>();

  TANDEM_ASSIGN_OR_RETURN(std::string_view model, file.GetString("tokenizer.ggml.model"));
  if (model != "gpt2") {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": tokenizer.ggml.model is \"", AV(model),
        "\"; supported: \"gpt2\" (byte-level BPE)"));
  }
  std::string_view pre = "default";
  if (file.Has("tokenizer.ggml.pre")) {
    TANDEM_ASSIGN_OR_RETURN(pre, file.GetString("tokenizer.ggml.pre"));
  }
  if (pre == "smollm") {
    impl->pre = PreTokenizerKind::kSmolLm;
  } else if (pre == "gpt2" || pre == "gpt-2" || pre == "default") {
    impl->pre = PreTokenizerKind::kGpt2;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": tokenizer.ggml.pre is \"", AV(pre),
                     "\"; supported: \"smollm\", \"gpt2\", \"gpt-2\", \"default\""));
  }

  TANDEM_ASSIGN_OR_RETURN(const GgufArray* tokens, file.GetArray("tokenizer.ggml.tokens"));
  if (tokens->element_type != GgufValueType::kString || tokens->strings.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": tokenizer.ggml.tokens must be a non-empty string array"));
  }
  const size_t n_vocab = tokens->strings.size();
  if (n_vocab > static_cast<size_t>(INT32_MAX)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": tokenizer.ggml.tokens too large"));
  }
  impl->tokens.assign(tokens->strings.begin(), tokens->strings.end());
  impl->types.assign(n_vocab, kTypeNormal);
  if (file.Has("tokenizer.ggml.token_type")) {
    TANDEM_ASSIGN_OR_RETURN(std::vector<int64_t> types,
                            file.GetIntArray("tokenizer.ggml.token_type"));
    if (types.size() != n_vocab) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": tokenizer.ggml.token_type has ", types.size(),
          " entries, tokens has ", n_vocab));
    }
    for (size_t i = 0; i < n_vocab; ++i) impl->types[i] = static_cast<int32_t>(types[i]);
  }

  impl->token_to_id.reserve(n_vocab);
  impl->token_bytes.resize(n_vocab);
  for (size_t i = 0; i < n_vocab; ++i) {
    const TokenId id = static_cast<TokenId>(i);
    const std::string& text = impl->tokens[i];
    impl->token_to_id.insert_or_assign(text, id);  // last wins, as in llama.cpp
    const int32_t type = impl->types[i];
    if (type == kTypeControl || type == kTypeUnknown || type == kTypeUserDefined) {
      impl->token_bytes[i] = text;  // special tokens are stored as plain text
      if (!text.empty()) impl->specials.push_back({id, text, type == kTypeUserDefined});
    } else if (type != kTypeUnused) {
      impl->token_bytes[i] = ByteDecode(text);
    }
  }
  std::stable_sort(impl->specials.begin(), impl->specials.end(),
                   [](const SpecialToken& a, const SpecialToken& b) {
                     return a.text.size() > b.text.size();
                   });

  // A byte whose byte-level character is not in the vocab (SmolLM2 lacks 21, e.g. 0x04 and
  // 0xF5..0xFF) cannot be represented: it is dropped, as llama.cpp does. It takes part in no merge.
  for (int b = 0; b < 256; ++b) {
    std::string ch;
    AppendUtf8(ByteToCodePoint(static_cast<uint8_t>(b)), &ch);
    auto it = impl->token_to_id.find(ch);
    impl->byte_token[b] = it == impl->token_to_id.end() ? -1 : it->second;
  }

  TANDEM_ASSIGN_OR_RETURN(const GgufArray* merges, file.GetArray("tokenizer.ggml.merges"));
  if (merges->element_type != GgufValueType::kString) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": tokenizer.ggml.merges must be a string array"));
  }
  impl->merges.reserve(merges->strings.size());
  for (size_t rank = 0; rank < merges->strings.size(); ++rank) {
    const std::string_view m = merges->strings[rank];
    const size_t space = m.size() > 1 ? m.find(' ', 1) : std::string_view::npos;
    if (space == std::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": tokenizer.ggml.merges[", rank, "] = \"", AV(m), "\" is not \"left right\""));
    }
    const std::string left(m.substr(0, space));
    const std::string right(m.substr(space + 1));
    auto l = impl->token_to_id.find(left);
    auto r = impl->token_to_id.find(right);
    auto merged = impl->token_to_id.find(left + right);
    if (l == impl->token_to_id.end() || r == impl->token_to_id.end() ||
        merged == impl->token_to_id.end()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": tokenizer.ggml.merges[", rank,
                                                     "] = \"", AV(m),
                                                     "\" names a token missing from the vocab"));
    }
    // The first (lowest-rank) occurrence of a pair wins.
    impl->merges.try_emplace(PairKey(l->second, r->second),
                             Merge{static_cast<int32_t>(rank), merged->second});
  }
  impl->fingerprint = Fingerprint(pre, impl->tokens, impl->types, *merges);
  return Tokenizer(std::move(impl));
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

std::vector<TokenId> Tokenizer::Encode(std::string_view text, bool parse_special) const {
  // Split out special tokens first, longest text first, each over the remaining raw fragments
  // (llama.cpp's tokenizer_st_partition). id < 0 marks raw text.
  struct Fragment {
    size_t begin;
    size_t end;
    TokenId id;
  };
  std::vector<Fragment> fragments = {{0, text.size(), -1}};
  std::vector<Fragment> next;
  for (const SpecialToken& special : impl_->specials) {
    if (!parse_special && !special.always) continue;
    next.clear();
    for (const Fragment& f : fragments) {
      if (f.id >= 0) {
        next.push_back(f);
        continue;
      }
      const std::string_view window = text.substr(0, f.end);
      size_t pos = f.begin;
      for (size_t m; (m = window.find(special.text, pos)) != std::string_view::npos;) {
        if (m > pos) next.push_back({pos, m, -1});
        next.push_back({m, m + special.text.size(), special.id});
        pos = m + special.text.size();
      }
      if (pos < f.end) next.push_back({pos, f.end, -1});
    }
    fragments.swap(next);
  }
  std::vector<TokenId> out;
  for (const Fragment& f : fragments) {
    if (f.id >= 0) {
      out.push_back(f.id);
    } else {
      impl_->EncodeText(text.substr(f.begin, f.end - f.begin), &out);
    }
  }
  return out;
}

std::string Tokenizer::Decode(absl::Span<const TokenId> ids, bool skip_special) const {
  std::string out;
  for (TokenId id : ids) {
    if (id < 0 || id >= vocab_size()) continue;  // not a token: contributes nothing
    if (skip_special && IsControl(id)) continue;
    out += impl_->token_bytes[static_cast<size_t>(id)];
  }
  return out;
}

std::string Tokenizer::TokenBytes(TokenId id) const {
  if (id < 0 || id >= vocab_size()) return "";
  return impl_->token_bytes[static_cast<size_t>(id)];
}

int32_t Tokenizer::vocab_size() const { return static_cast<int32_t>(impl_->tokens.size()); }

bool Tokenizer::IsControl(TokenId id) const {
  if (id < 0 || id >= vocab_size()) return false;
  const int32_t type = impl_->types[static_cast<size_t>(id)];
  return type == kTypeControl || type == kTypeUnknown;
}

std::string Tokenizer::VocabFingerprint() const { return impl_->fingerprint; }

namespace {

// True when s[pos..] is a proper prefix of a valid UTF-8 sequence, i.e. more bytes could still
// complete it. The second byte's allowed range excludes overlongs, surrogates and > U+10FFFF.
bool IsIncompleteUtf8(std::string_view s, size_t pos) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(s[i]); };
  const uint8_t b0 = byte(pos);
  size_t need;
  uint8_t lo = 0x80;
  uint8_t hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return false;
  }
  const size_t have = s.size() - pos;
  if (have >= need) return false;
  for (size_t i = 1; i < have; ++i) {
    const uint8_t b = byte(pos + i);
    if (i == 1 ? (b < lo || b > hi) : (b & 0xC0) != 0x80) return false;
  }
  return true;
}

constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD

}  // namespace

std::string StreamDecoder::Push(TokenId id) {
  pending_ += tokenizer_->TokenBytes(id);
  std::string out;
  size_t pos = 0;
  while (pos < pending_.size()) {
    uint32_t cp = 0;
    const int len = DecodeUtf8(pending_, pos, &cp);
    if (len > 0) {
      out.append(pending_, pos, static_cast<size_t>(len));
      pos += static_cast<size_t>(len);
    } else if (IsIncompleteUtf8(pending_, pos)) {
      break;  // wait for the token that completes it
    } else {
      out += kReplacement;
      ++pos;
    }
  }
  pending_.erase(0, pos);
  return out;
}

std::string StreamDecoder::Flush() {
  std::string out = pending_.empty() ? "" : kReplacement;
  pending_.clear();
  return out;
}

}  // namespace tandem::format
