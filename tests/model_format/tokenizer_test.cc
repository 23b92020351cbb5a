// tests/model_format/tokenizer_test.cc
//
// Unit tests of the byte-level BPE pieces on a tiny synthetic vocab (no model file): Unicode
// classes, UTF-8 decoding, the pre-tokenizer splits, merge order, special tokens, decoding,
// streaming, fingerprint and load errors. The real vocab is tested in tokenizer_model_test.cc.
#include <random>
#include <string>
#include <vector>

#include "common/model_format/pretokenizer.h"
#include "common/model_format/tokenizer.h"
#include "common/model_format/unicode.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/model_format/gguf_writer.h"
#include "tests/support/status_matchers.h"

namespace tandem::format {
namespace {

using ::tandem::testing::GgufWriter;
using ::tandem::testing::StatusIs;
using ::testing::ElementsAre;

std::string ByteChar(uint8_t b) {
  std::string s;
  AppendUtf8(ByteToCodePoint(b), &s);
  return s;
}

// Vocab: 0..2 control, 3 user-defined "<tool>", 4..259 the 256 byte characters (id = 4 + byte),
// then the merge results. Merges in rank order.
struct TinyVocab {
  std::vector<std::string> tokens = {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool>"};
  std::vector<int32_t> types = {3, 3, 3, 4};
  std::vector<std::string> merges;
  std::string pre = "smollm";

  TinyVocab() {
    for (int b = 0; b < 256; ++b) {
      tokens.push_back(ByteChar(static_cast<uint8_t>(b)));
      types.push_back(1);
    }
    for (const char* m : {"a b", "ab c", "Ġ a", "b c", "c c", "a a", "Ġa b"}) AddMerge(m);
  }
  void AddMerge(const std::string& m) {
    merges.push_back(m);
    const size_t sp = m.find(' ');
    tokens.push_back(m.substr(0, sp) + m.substr(sp + 1));
    types.push_back(1);
  }
  std::string Build() const {
    GgufWriter w;
    w.AddString("tokenizer.ggml.model", "gpt2");
    if (!pre.empty()) w.AddString("tokenizer.ggml.pre", pre);
    w.AddStringArray("tokenizer.ggml.tokens", tokens);
    w.AddI32Array("tokenizer.ggml.token_type", types);
    w.AddStringArray("tokenizer.ggml.merges", merges);
    return w.Build();
  }
  absl::StatusOr<Tokenizer> Load() const {
    auto file = GgufFile::FromBytes(Build(), "tiny.gguf");
    if (!file.ok()) return file.status();
    return Tokenizer::FromGguf(*file);
  }
  TokenId Id(const std::string& text) const {
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (tokens[i] == text) return static_cast<TokenId>(i);
    }
    return -1;
  }
};

TokenId B(char c) { return 4 + static_cast<uint8_t>(c); }

std::vector<std::string> Split(std::string_view text, PreTokenizerKind kind) {
  std::vector<std::string_view> pieces;
  PreTokenize(kind, text, &pieces);
  return std::vector<std::string>(pieces.begin(), pieces.end());
}

TEST(UnicodeTest, Classes) {
  EXPECT_TRUE(IsUnicodeLetter('a'));
  EXPECT_TRUE(IsUnicodeLetter(0xE9));    // é
  EXPECT_TRUE(IsUnicodeLetter(0x4E2D));  // 中
  EXPECT_TRUE(IsUnicodeLetter(0xD55C));  // 한
  EXPECT_FALSE(IsUnicodeLetter('1'));
  EXPECT_FALSE(IsUnicodeLetter(0x301));  // combining acute (Mn)
  EXPECT_TRUE(IsUnicodeNumber('7'));
  EXPECT_TRUE(IsUnicodeNumber(0x663));   // Arabic-Indic 3
  EXPECT_TRUE(IsUnicodeNumber(0xBD));    // ½ (No)
  EXPECT_TRUE(IsUnicodeNumber(0x2163));  // Ⅳ (Nl)
  EXPECT_FALSE(IsUnicodeNumber('x'));
  for (uint32_t cp : {0x09u, 0x0Au, 0x0Bu, 0x0Cu, 0x0Du, 0x20u, 0x85u, 0xA0u, 0x3000u, 0x2028u}) {
    EXPECT_TRUE(IsUnicodeWhitespace(cp)) << cp;
  }
  // U+001C..U+001F are str.isspace() in Python but not White_Space (llama.cpp agrees).
  for (uint32_t cp : {0x1Cu, 0x1Fu, 0x200Bu, 0xFEFFu, 0x61u}) EXPECT_FALSE(IsUnicodeWhitespace(cp));
  EXPECT_STREQ(unicode_internal::kUnicodeVersion, "15.1.0");
}

TEST(UnicodeTest, DecodeUtf8RejectsMalformed) {
  uint32_t cp = 0;
  EXPECT_EQ(DecodeUtf8("\xC3\xA9", 0, &cp), 2);
  EXPECT_EQ(cp, 0xE9u);
  EXPECT_EQ(DecodeUtf8("\xF0\x9F\x98\x80", 0, &cp), 4);
  EXPECT_EQ(cp, 0x1F600u);
  EXPECT_EQ(DecodeUtf8("\xC0\x80", 0, &cp), 0);          // overlong
  EXPECT_EQ(DecodeUtf8("\xE0\x80\x80", 0, &cp), 0);      // overlong
  EXPECT_EQ(DecodeUtf8("\xED\xA0\x80", 0, &cp), 0);      // surrogate
  EXPECT_EQ(DecodeUtf8("\xF4\x90\x80\x80", 0, &cp), 0);  // > U+10FFFF
  EXPECT_EQ(DecodeUtf8("\xE4\xB8", 0, &cp), 0);          // truncated
  EXPECT_EQ(DecodeUtf8("\x80", 0, &cp), 0);              // lone continuation
}

TEST(UnicodeTest, ByteMapIsGpt2Scheme) {
  EXPECT_EQ(ByteToCodePoint(' '), 0x120u);   // Ġ
  EXPECT_EQ(ByteToCodePoint('\n'), 0x10Au);  // Ċ
  EXPECT_EQ(ByteToCodePoint('\t'), 0x109u);
  EXPECT_EQ(ByteToCodePoint('!'), static_cast<uint32_t>('!'));
  EXPECT_EQ(ByteToCodePoint(0xAD), 0x143u);  // the last of the 68 remapped bytes
  for (int b = 0; b < 256; ++b) EXPECT_EQ(CodePointToByte(ByteToCodePoint(b)), b);
  EXPECT_EQ(CodePointToByte(0x144), -1);
  EXPECT_EQ(CodePointToByte(0x20), -1);
}

TEST(PreTokenizerTest, Gpt2Pattern) {
  const auto k = PreTokenizerKind::kGpt2;
  EXPECT_THAT(Split("Hello world", k), ElementsAre("Hello", " world"));
  EXPECT_THAT(Split("a   b", k), ElementsAre("a", "  ", " b"));
  EXPECT_THAT(Split("a   ", k), ElementsAre("a", "   "));
  EXPECT_THAT(Split("don't I'LL we're", k),
              ElementsAre("don", "'t", " I", "'", "LL", " we", "'re"));
  EXPECT_THAT(Split("x 123 45", k), ElementsAre("x", " 123", " 45"));
  EXPECT_THAT(Split("hi!!! ?", k), ElementsAre("hi", "!!!", " ?"));
  EXPECT_THAT(Split("a\n\nb", k), ElementsAre("a", "\n", "\n", "b"));
  EXPECT_THAT(Split("a\n\n b", k), ElementsAre("a", "\n\n", " b"));
  EXPECT_THAT(Split("\t\tx", k), ElementsAre("\t", "\t", "x"));
  EXPECT_THAT(Split("café", k), ElementsAre("café"));
  EXPECT_THAT(Split("中文 text", k), ElementsAre("中文", " text"));
  EXPECT_THAT(Split("'", k), ElementsAre("'"));
  EXPECT_TRUE(Split("", k).empty());
}

TEST(PreTokenizerTest, SmolLmIsolatesDigits) {
  const auto k = PreTokenizerKind::kSmolLm;
  EXPECT_THAT(Split("Hello world! 123", k),
              ElementsAre("Hello", " world", "!", " ", "1", "2", "3"));
  EXPECT_THAT(Split("a1b", k), ElementsAre("a", "1", "b"));
  EXPECT_THAT(Split("x  1", k), ElementsAre("x", "  ", "1"));  // the run ends at the digit
  EXPECT_THAT(Split("٣½", k), ElementsAre("٣", "½"));
}

TEST(PreTokenizerTest, InvalidBytesKeptAsOther) {
  const std::string text = "ab\xFF\xFE cd\x80";
  EXPECT_THAT(Split(text, PreTokenizerKind::kSmolLm),
              ElementsAre("ab", "\xFF\xFE", " cd", "\x80"));
}

TEST(PreTokenizerTest, PiecesConcatenateToInput) {
  std::mt19937 rng(7);
  for (int iter = 0; iter < 500; ++iter) {
    std::string s(rng() % 40, '\0');
    for (char& c : s) c = static_cast<char>(rng() % 256);
    std::string joined;
    for (const auto& p : Split(s, PreTokenizerKind::kSmolLm)) {
      EXPECT_FALSE(p.empty());
      joined += p;
    }
    EXPECT_EQ(joined, s);
  }
}

TEST(TokenizerTest, MergesByRankLeftmostFirst) {
  TinyVocab v;
  ASSERT_OK_AND_ASSIGN(Tokenizer tok, v.Load());
  EXPECT_EQ(tok.vocab_size(), static_cast<int32_t>(v.tokens.size()));
  EXPECT_THAT(tok.Encode("abc", false), ElementsAre(v.Id("abc")));
  EXPECT_THAT(tok.Encode("bcc", false), ElementsAre(v.Id("bc"), B('c')));
  EXPECT_THAT(tok.Encode("aaa", false), ElementsAre(v.Id("aa"), B('a')));
  EXPECT_THAT(tok.Encode("ccc", false), ElementsAre(v.Id("cc"), B('c')));
  // "Ġ a" (rank 2) before "a b" would be wrong: "a b" is rank 0, then "Ġ ab" is no merge.
  EXPECT_THAT(tok.Encode(" ab", false), ElementsAre(B(' '), v.Id("ab")));
  EXPECT_THAT(tok.Encode(" a", false), ElementsAre(v.Id("Ġa")));
  EXPECT_THAT(tok.Encode("x", false), ElementsAre(B('x')));
  EXPECT_TRUE(tok.Encode("", true).empty());
  // Cached pieces give the same answer the second time.
  EXPECT_THAT(tok.Encode("abc abc", false), ElementsAre(v.Id("abc"), B(' '), v.Id("abc")));
  EXPECT_THAT(tok.Encode("abc abc", false), ElementsAre(v.Id("abc"), B(' '), v.Id("abc")));
}

TEST(TokenizerTest, SpecialTokens) {
  TinyVocab v;
  ASSERT_OK_AND_ASSIGN(Tokenizer tok, v.Load());
  EXPECT_THAT(tok.Encode("<|im_start|>ab<|im_end|>", true), ElementsAre(1, v.Id("ab"), 2));
  const std::vector<TokenId> plain = tok.Encode("<|im_end|>", false);
  EXPECT_GT(plain.size(), 1u);
  EXPECT_EQ(tok.Decode(plain), "<|im_end|>");
  // User-defined tokens are split out even without parse_special (as llama.cpp does).
  EXPECT_THAT(tok.Encode("a<tool>", false), ElementsAre(B('a'), 3));
  EXPECT_TRUE(tok.IsControl(0));
  EXPECT_TRUE(tok.IsControl(2));
  EXPECT_FALSE(tok.IsControl(3));
  EXPECT_FALSE(tok.IsControl(B('a')));
  EXPECT_FALSE(tok.IsControl(-1));
  EXPECT_FALSE(tok.IsControl(1 << 30));
}

TEST(TokenizerTest, Decode) {
  TinyVocab v;
  ASSERT_OK_AND_ASSIGN(Tokenizer tok, v.Load());
  const std::vector<TokenId> ids = {1, v.Id("Ġa"), B('\n'), 3, 2};
  EXPECT_EQ(tok.Decode(ids), "<|im_start|> a\n<tool><|im_end|>");
  EXPECT_EQ(tok.Decode(ids, /*skip_special=*/true), " a\n<tool>");
  EXPECT_EQ(tok.TokenBytes(B('\t')), "\t");
  EXPECT_EQ(tok.TokenBytes(-5), "");
  const std::vector<TokenId> bad = {-1, 99999, B('z')};
  EXPECT_EQ(tok.Decode(bad), "z");
}

TEST(TokenizerTest, RoundTripsAnyBytes) {
  TinyVocab v;
  ASSERT_OK_AND_ASSIGN(Tokenizer tok, v.Load());
  std::mt19937 rng(11);
  for (int iter = 0; iter < 300; ++iter) {
    std::string s(rng() % 64, '\0');
    for (char& c : s) c = static_cast<char>(rng() % 256);
    EXPECT_EQ(tok.Decode(tok.Encode(s, false)), s);
  }
}

TEST(TokenizerTest, StreamDecoderHoldsIncompleteUtf8) {
  TinyVocab v;
  ASSERT_OK_AND_ASSIGN(Tokenizer tok, v.Load());
  StreamDecoder dec = tok.NewStreamDecoder();
  // "é" = C3 A9 and "😀" = F0 9F 98 80, one byte token at a time.
  EXPECT_EQ(dec.Push(B('a')), "a");
  EXPECT_EQ(dec.Push(B('\xC3')), "");
  EXPECT_EQ(dec.Push(B('\xA9')), "é");
  EXPECT_EQ(dec.Push(B('\xF0')), "");
  EXPECT_EQ(dec.Push(B('\x9F')), "");
  EXPECT_EQ(dec.Push(B('\x98')), "");
  EXPECT_EQ(dec.Push(B('\x80')), "😀");
  EXPECT_EQ(dec.Flush(), "");
  // An invalid byte becomes U+FFFD at once; an unfinished sequence at the end on Flush.
  EXPECT_EQ(dec.Push(B('\xFF')), "\xEF\xBF\xBD");
  EXPECT_EQ(dec.Push(B('\xE4')), "");
  EXPECT_EQ(dec.Push(B('x')), "\xEF\xBF\xBDx");
  EXPECT_EQ(dec.Push(B('\xE4')), "");
  EXPECT_EQ(dec.Flush(), "\xEF\xBF\xBD");
  EXPECT_EQ(dec.Push(1), "<|im_start|>");
}

TEST(TokenizerTest, Fingerprint) {
  TinyVocab v;
  ASSERT_OK_AND_ASSIGN(Tokenizer a, v.Load());
  ASSERT_OK_AND_ASSIGN(Tokenizer b, v.Load());
  EXPECT_EQ(a.VocabFingerprint().size(), 64u);
  EXPECT_EQ(a.VocabFingerprint(), b.VocabFingerprint());
  TinyVocab w;
  w.AddMerge("c a");
  ASSERT_OK_AND_ASSIGN(Tokenizer c, w.Load());
  EXPECT_NE(a.VocabFingerprint(), c.VocabFingerprint());
  TinyVocab t;
  t.types[3] = 3;
  ASSERT_OK_AND_ASSIGN(Tokenizer d, t.Load());
  EXPECT_NE(a.VocabFingerprint(), d.VocabFingerprint());
}

TEST(TokenizerTest, PreKinds) {
  TinyVocab v;
  v.AddMerge("1 2");
  ASSERT_OK_AND_ASSIGN(Tokenizer smollm, v.Load());
  EXPECT_THAT(smollm.Encode("12", false), ElementsAre(B('1'), B('2')));
  v.pre = "gpt2";
  ASSERT_OK_AND_ASSIGN(Tokenizer gpt2, v.Load());
  EXPECT_THAT(gpt2.Encode("12", false), ElementsAre(v.Id("12")));
  v.pre = "";  // absent: the default, GPT-2 pattern
  ASSERT_OK_AND_ASSIGN(Tokenizer absent, v.Load());
  EXPECT_THAT(absent.Encode("12", false), ElementsAre(v.Id("12")));
  v.pre = "llama3";
  EXPECT_THAT(v.Load(), StatusIs(absl::StatusCode::kInvalidArgument, "llama3"));
}

TEST(TokenizerTest, UnrepresentableBytesAreDropped) {
  TinyVocab v;
  v.tokens[4 + 'q'] = "not-q";  // no byte-level token for 'q'
  ASSERT_OK_AND_ASSIGN(Tokenizer tok, v.Load());
  EXPECT_THAT(tok.Encode("aqb", false), ElementsAre(B('a'), v.Id("b")));
  EXPECT_THAT(tok.Encode("q", false), ElementsAre());
  EXPECT_THAT(tok.Encode("abqc", false), ElementsAre(v.Id("ab"), B('c')));
}

TEST(TokenizerTest, LoadErrors) {
  {
    TinyVocab v;
    v.merges.push_back("nospace");
    EXPECT_THAT(v.Load(), StatusIs(absl::StatusCode::kInvalidArgument, "nospace"));
  }
  {
    TinyVocab v;
    v.merges.push_back("x y");  // "xy" is not in the vocab
    EXPECT_THAT(v.Load(), StatusIs(absl::StatusCode::kInvalidArgument, "merges[7]"));
  }
  {
    TinyVocab v;
    v.types.pop_back();
    EXPECT_THAT(v.Load(), StatusIs(absl::StatusCode::kInvalidArgument, "token_type"));
  }
  {
    GgufWriter w;
    w.AddString("tokenizer.ggml.model", "llama");
    ASSERT_OK_AND_ASSIGN(GgufFile f, GgufFile::FromBytes(w.Build(), "spm.gguf"));
    EXPECT_THAT(Tokenizer::FromGguf(f),
                StatusIs(absl::StatusCode::kInvalidArgument, "\"llama\""));
  }
  {
    GgufWriter w;
    ASSERT_OK_AND_ASSIGN(GgufFile f, GgufFile::FromBytes(w.Build(), "empty.gguf"));
    EXPECT_FALSE(Tokenizer::FromGguf(f).ok());
  }
}

}  // namespace
}  // namespace tandem::format
