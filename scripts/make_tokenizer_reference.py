#!/usr/bin/env python3
"""Writes tests/data/tokenizer_reference.jsonl: token ids from llama.cpp (an independent
implementation) for a fixed, varied corpus, which tests/model_format/tokenizer_model_test.cc
compares with our Tokenizer id for id.

Needs: llama-cpp-python (it builds llama.cpp from source; any version whose llama.cpp knows the
"smollm" pre-tokenizer, tested with 0.3.36) and the model GGUF.

Run (from the repository root):
  python3 -m venv .venv-ref && .venv-ref/bin/pip install llama-cpp-python
  .venv-ref/bin/python scripts/make_tokenizer_reference.py \\
      [--model models/SmolLM2-135M-Instruct.Q4_1.gguf] [--out tests/data/tokenizer_reference.jsonl]

Each line: {"text": str, "special": bool, "ids": [int, ...]} where ids =
Llama(..., vocab_only=True).tokenize(text.encode(), add_bos=False, special=special).
The corpus is deterministic (fixed seed), so rerunning with the same llama.cpp gives the same file.
Only valid UTF-8 is written: llama.cpp replaces invalid bytes with U+FFFD, which our tokenizer
deliberately does not (it byte-maps them so Decode(Encode(s)) == s).
"""
import argparse
import json
import random

SEED = 20240611

PROSE = [
    "Hello, we can use",
    "The capital of France is",
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face",
    "Hello world! 123",
    "Café déjà vu.",
    "  multiple   spaces",
    "The quick brown fox jumps over the lazy dog.",
    "It was the best of times, it was the worst of times, it was the age of wisdom.",
    "Mr. O'Neil's dog didn't bark; they'd've heard it, wouldn't they?",
    "I'm sure you're right, we'll see. She's here and I've got it.",
    "I'LL DO IT. DON'T STOP. WE'RE HERE. THEY'VE GONE. HE'S OK. I'M FINE. IT'D BE.",
    "don't won't can't shouldn't y'all 'tis 'twas rock'n'roll",
    "E-mail: john.doe+test@example.com, URL: https://example.org/a/b?c=1&d=2#frag",
    "In 1969, Apollo 11 landed; 3.14159 is pi, 2^10 = 1024, and 1,000,000 is a million.",
    "Prices: $19.99, €5,00, £3.50, ¥1000, ₹250 — 50% off!!!",
    "Dates: 2024-01-31T12:34:56Z, 31/01/2024, Jan 31st, 12:00 p.m.",
    "naïve façade coöperate résumé jalapeño Zürich São Paulo Ångström",
    "Ελληνικά: Καλημέρα κόσμε! Русский: Привет, мир! Українська: Добрий день.",
    "中文：你好，世界！我们今天去公园散步。",
    "日本語：こんにちは、世界！カタカナとひらがなと漢字。東京タワー",
    "한국어: 안녕하세요, 세계! 오늘 날씨가 좋네요.",
    "العربية: مرحبا بالعالم! كيف حالك؟ ١٢٣٤٥",
    "עברית: שלום עולם! हिन्दी: नमस्ते दुनिया। ไทย: สวัสดีชาวโลก",
    "Emoji: 😀😃😄 👍🏽 ❤️ 🇫🇷🇯🇵 👨‍👩‍👧‍👦 👩🏽‍💻 🏳️‍🌈 1️⃣ #️⃣",
    "Math: ∀x∈ℝ, x² ≥ 0; ∑ᵢ aᵢ = ∞; √2 ≈ 1.414; ½ + ¼ = ¾; Ⅻ ⅷ ① ⑳",
    "Full-width: ＡＢＣ１２３！？ and half-width ｶﾀｶﾅ",
    "Zero\u200bwidth\u200cjoiners\u200dand\ufeffBOM and soft\u00adhyphen",
    "Non-breaking\u00a0space, em\u2003space, ideographic\u3000space, NEL\u0085next.",
    "Control chars: \x01\x02\x07\x1b[0m\x7f and unit\x1fseparator\x1c",
    "Combining: e\u0301 a\u0308 n\u0303 o\u0327 Z\u0335\u0321a\u0336l\u0337g\u0338o",
]

CODE = [
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i] * b[i];\n}\n",
    "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 42); return 0; }\n",
    "fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n"
    "    println!(\"{:?}\", v);\n}\n",
    "const f = async (x) => { await fetch(`/api/${x}`); return x ?? null; };\n",
    "SELECT id, name FROM users WHERE age >= 18 AND name LIKE '%son' ORDER BY id DESC;",
    "<div class=\"box\" id='main'><p>Hello &amp; welcome</p></div>",
    "{\"key\": [1, 2.5, -3e10, true, null], \"nested\": {\"a\": \"b\"}}",
    "x = [i**2 for i in range(10) if i % 2 == 0]  # comment\r\n",
    "if [ -f \"$HOME/.bashrc\" ]; then source ~/.bashrc; fi && echo $PATH | tr ':' '\\n'",
    "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"hi\")\n}\n",
    "public static void main(String[] args) throws Exception { System.out.println(args.length); }",
    "    indented four\n        indented eight\n\t\ttabs\n  \t mixed \t\n",
    "a==b!=c<=d>=e&&f||g<<h>>i->j::k...l;;;m,,,",
    "/* block */ // line\n#define MAX(a,b) ((a)>(b)?(a):(b))\n",
    "$ ls -la | grep '^d' > out.txt 2>&1\n",
    "```python\nprint('hello')\n```\n",
    "\\begin{equation} E = mc^2 \\end{equation}",
]

WHITESPACE = [
    "", " ", "  ", "   ", "\n", "\n\n", "\n\n\n", "\t", "\t\t", "\r\n", "\r\n\r\n", " \n", "\n ",
    " \t \n ", "a ", " a", "a  ", "  a", "a\n", "\na", "a \n b", "a\t\tb", "a   b", "a\r\nb",
    "word \n\n  next", "trailing spaces   ", "   leading spaces", "\u3000\u3000全角",
    " ! ", "  !!  ", "x\u00a0\u00a0y", "\v\f", " \v a",
]

NUMBERS = [
    "0", "7", "42", "123", "1234567890", "3.14", "-2.5e-10", "1,234,567", "0x1F", "1st 2nd 3rd",
    "٠١٢٣٤٥٦٧٨٩", "१२३", "１２３", "²³¹", "½⅓", "Ⅳ", "①②", "v1.2.3", "a1b2c3", " 12 34 ",
]

PUNCT = [
    "!!!", "???", "...", "—–-", "«quoted»", "“smart” ‘quotes’", "(((nested)))", "[]{}<>",
    "@#$%^&*", "~`|\\", "''", "' s", "'s", "'S", "'re", "'ll've", "''s", "'", "\"'\"",
    "--option=value", ":-) ;-( :D <3", "¡¿", "。、！？「」", "!?!?!?", "_-_-_", "***bold***",
]

SPECIAL = [
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|im_start|>user\nHi<|im_end|>\n",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
    "text<|im_end|>more", "<|im_start|><|im_start|>", "<|im_end", "|im_end|>", "< |im_end| >",
    "<reponame>tandem<filename>a.py<gh_stars>10", "<jupyter_code>x=1<jupyter_output>1",
    "<empty_output><issue_start><issue_comment><issue_closed><jupyter_start><jupyter_text>",
    "<jupyter_script><file_sep><repo_name>", " <|im_start|> ", "\n<|im_end|>\n",
    "<|endoftext|><|endoftext|>", "x<|im_start|>y<|im_end|>z",
]

# Code point ranges for random strings (no surrogates): ASCII, Latin, Greek/Cyrillic, CJK,
# kana, Hangul, Arabic, symbols, emoji, and the whitespace classes.
RANGES = [
    (0x20, 0x7E), (0x20, 0x7E), (0x20, 0x7E), (0xA0, 0x17F), (0x370, 0x4FF), (0x4E00, 0x4FFF),
    (0x3040, 0x30FF), (0xAC00, 0xAD00), (0x600, 0x6FF), (0x2000, 0x206F), (0x2190, 0x22FF),
    (0x1F300, 0x1F6FF), (0x1F900, 0x1F9FF), (0x660, 0x669), (0x0, 0x1F), (0x300, 0x36F),
]
SPACES = [" ", "  ", "\n", "\t", "\r\n", "\u00a0", "\u3000"]


def random_text(rng):
    parts = []
    for _ in range(rng.randint(1, 12)):
        lo, hi = rng.choice(RANGES)
        parts.append("".join(chr(rng.randint(lo, hi)) for _ in range(rng.randint(1, 6))))
        if rng.random() < 0.5:
            parts.append(rng.choice(SPACES))
    return "".join(parts)


def mixed_text(rng, pools):
    pieces = [rng.choice(rng.choice(pools)) for _ in range(rng.randint(2, 5))]
    seps = ["", " ", "\n", "  ", "\t"]
    return "".join(p + rng.choice(seps) for p in pieces)


def corpus():
    rng = random.Random(SEED)
    items = []  # (text, special)
    fixed = PROSE + CODE + WHITESPACE + NUMBERS + PUNCT
    for s in fixed:
        items.append((s, False))
    for s in SPECIAL:
        items.append((s, True))
        items.append((s, False))
    pools = [PROSE, CODE, WHITESPACE, NUMBERS, PUNCT]
    for _ in range(80):
        items.append((mixed_text(rng, pools), False))
    for _ in range(30):
        items.append((mixed_text(rng, pools + [SPECIAL]), rng.random() < 0.5))
    for _ in range(80):
        items.append((random_text(rng), False))
    # Word-level variety: uppercase/lowercase contractions and long words.
    for w in ["DON'T", "Don't", "don'T", "it's", "IT'S", "we've", "WE'VE", "you'd", "YOU'D"]:
        items.append((f"{w} say {w.lower()}!", False))
    items.append(("a" * 300, False))
    items.append(("ab" * 150 + " " + "!" * 100 + " " * 50 + "end", False))
    items.append(("\n".join(CODE), False))
    items.append((" ".join(PROSE), False))
    return items


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="models/SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--out", default="tests/data/tokenizer_reference.jsonl")
    args = ap.parse_args()
    from llama_cpp import Llama  # imported here so --help works without it

    llm = Llama(model_path=args.model, vocab_only=True, verbose=False)
    items = corpus()
    with open(args.out, "w", encoding="utf-8") as f:
        for text, special in items:
            ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=special)
            f.write(json.dumps({"text": text, "special": special, "ids": ids},
                               ensure_ascii=False) + "\n")
    print(f"wrote {len(items)} strings to {args.out}")


if __name__ == "__main__":
    main()
