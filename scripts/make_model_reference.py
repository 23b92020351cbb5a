#!/usr/bin/env python3
"""Writes tests/data/model_reference.json: llama.cpp's logits and greedy continuations for the GGUF.

The independent implementation is llama.cpp through llama-cpp-python (PyPI). Set up with
scripts/setup_reference.sh, then run:

    .venv-ref/bin/python scripts/make_model_reference.py [--model models/...gguf]

For each of 24 prompts (10 to ~1,000 tokens; prose, code, chat, numbers, other languages) it records
the token ids llama.cpp's tokenizer produced (so the C++ test does not depend on our tokenizer),
the top-8 logits (id, value) at every position, and 64 greedy tokens generated past the prompt with
end-of-generation ignored (temperature 0, no repeat penalty). Deterministic: fixed texts, 2 threads.
"""
import argparse
import json
import os
import sys

import numpy as np
from llama_cpp import Llama

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PARAGRAPHS = [
    "The history of the printing press begins in the fifteenth century, when Johannes Gutenberg "
    "combined movable metal type, oil-based ink and a wooden screw press. Within fifty years, "
    "presses operated in more than two hundred European cities, and the cost of books fell sharply.",
    "Photosynthesis converts light energy into chemical energy. In the chloroplasts of plant cells, "
    "chlorophyll absorbs red and blue light, water is split to release oxygen, and carbon dioxide is "
    "fixed into sugars through the Calvin cycle.",
    "def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\n"
    "print([fibonacci(i) for i in range(10)])\n",
    "Mount Everest, at 8,849 metres above sea level, is the highest mountain on Earth. It was first "
    "summited on 29 May 1953 by Tenzing Norgay and Edmund Hillary, who climbed the southeast ridge.",
    "To make a simple tomato sauce, warm two tablespoons of olive oil, add a chopped onion and cook "
    "it until soft. Stir in garlic, then crushed tomatoes, salt and a little sugar, and simmer for "
    "twenty minutes before adding fresh basil.",
    "#include <stdio.h>\n\nint main(void) {\n  int sum = 0;\n  for (int i = 1; i <= 100; ++i) sum += i;\n"
    "  printf(\"%d\\n\", sum);\n  return 0;\n}\n",
    "The mitochondrion is often called the powerhouse of the cell. It produces adenosine triphosphate "
    "through oxidative phosphorylation, using a gradient of protons across its inner membrane.",
    "In 1969 the Apollo 11 mission landed two astronauts on the Moon. Neil Armstrong and Buzz Aldrin "
    "spent about two and a half hours outside the lunar module, collecting 21.5 kilograms of samples.",
    "A binary search tree keeps its keys in order: every key in the left subtree of a node is smaller "
    "than the node's key, and every key in the right subtree is larger. Lookups take time proportional "
    "to the height of the tree, which is logarithmic when the tree is balanced.",
    "Le petit village se trouve au bord d'une rivière calme. Chaque matin, les habitants se retrouvent "
    "au marché pour acheter du pain frais, du fromage et des légumes de saison.",
    "The quarterly report shows revenue of 4.2 million dollars, up 12% from the previous quarter, while "
    "operating costs rose by 3%. The board expects growth to continue through the end of the year.",
    "SELECT customers.name, COUNT(orders.id) AS order_count\nFROM customers\n"
    "LEFT JOIN orders ON orders.customer_id = customers.id\nGROUP BY customers.name\n"
    "ORDER BY order_count DESC;\n",
]

QUESTIONS = [
    "Here is a simple fact about geography: the capital of France is",
    "Once upon a time, in a small village by the sea, there lived",
    "Question: What is 12 times 7?\nAnswer:",
    "List three primary colors and one secondary color, with a short example of each:",
]


def chat(user, system="You are a helpful AI assistant named SmolLM, trained by Hugging Face"):
    return (f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
            "<|im_start|>assistant\n")


def build_prompts():
    prompts = list(QUESTIONS)
    prompts.append(chat("What is the tallest mountain in the world?"))
    prompts.append(chat("Write a Python function that reverses a string."))
    # Longer prompts: concatenated paragraphs, growing towards ~1,000 tokens.
    for count in (1, 2, 3, 4, 5, 6, 8, 9, 10):
        start = count % len(PARAGRAPHS)
        parts = [PARAGRAPHS[(start + i) % len(PARAGRAPHS)] for i in range(count)]
        prompts.append("\n\n".join(parts))
    long_text = "\n\n".join(PARAGRAPHS * 2)
    prompts.append(chat("Summarize the following text in one sentence.\n\n" + "\n\n".join(PARAGRAPHS[:6])))
    prompts.append(chat("Explain what this code does:\n" + PARAGRAPHS[2] + PARAGRAPHS[5]))
    prompts.append(long_text[:2600])
    prompts.append(long_text[:4000])
    prompts.append("1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,")
    prompts.append("日本の首都は東京です。中国の首都は北京です。韓国の首都は")
    prompts.append(long_text[:5600])
    return prompts


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "data", "model_reference.json"))
    ap.add_argument("--top", type=int, default=8)
    ap.add_argument("--generate", type=int, default=64)
    args = ap.parse_args()

    # The most exact configuration llama.cpp offers: f32 KV cache (type 0) and no flash attention.
    # With an f16 cache llama.cpp also rounds Q and the softmax weights to f16 inside attention,
    # and its own f16 and f32 runs then disagree on the top-1 token at ~0.6% of positions.
    llm = Llama(model_path=args.model, n_ctx=2048, n_batch=512, logits_all=True, n_threads=2,
                flash_attn=False, type_k=0, type_v=0, verbose=False)
    cases = []
    for text in build_prompts():
        tokens = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        tokens = tokens[:1000]  # the range: 10 to 1,000 tokens
        assert len(tokens) >= 10, (len(tokens), text[:40])
        llm.reset()
        llm.eval(tokens)
        scores = np.array(llm.scores[: llm.n_tokens], dtype=np.float32)
        top_ids = np.argsort(-scores, axis=1, kind="stable")[:, : args.top]
        top_vals = np.take_along_axis(scores, top_ids, axis=1)
        generated = []
        for _ in range(args.generate):
            nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            generated.append(nxt)
            llm.eval([nxt])
        cases.append({
            "text": text,
            "tokens": [int(t) for t in tokens],
            "top_ids": top_ids.astype(int).tolist(),
            "top_logits": [[round(float(v), 3) for v in row] for row in top_vals],
            "greedy": generated,
        })
        print(f"{len(tokens):5d} tokens  greedy: {llm.detokenize(generated[:12])!r}", file=sys.stderr)
    meta = {
        "generator": "scripts/make_model_reference.py",
        "llama_cpp_python": __import__("llama_cpp").__version__,
        "n_threads": 2,
        "kv_cache": "f32, flash_attn off",
        "top": args.top,
        "greedy_tokens": args.generate,
        "note": "llama.cpp quantizes activations to Q8_1 for Q4_1 weights; compare with a tolerance",
    }
    with open(args.out, "w") as f:
        json.dump({"meta": meta, "cases": cases}, f, separators=(",", ":"))
    print(f"wrote {args.out}: {len(cases)} prompts, "
          f"{sum(len(c['tokens']) for c in cases)} positions", file=sys.stderr)


if __name__ == "__main__":
    main()
