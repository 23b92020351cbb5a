"""Builds the RAG quality set for bench/blend_bench (CacheBlend): prompts of 4-8 documents of real
text with planted facts, and a question that needs one or two of the documents.

Documents are passages of the license texts Debian ships in /usr/share/common-licenses (GPL, LGPL,
Apache, Artistic, MPL, GFDL, CC0, ...), 180-700 words each (about 256-1,024 tokens). Each prompt
plants a fact in one document ("The keeper of the Merrow lighthouse is Ada Quill.") and asks for it,
or, for a third of the prompts, splits it over two documents ("Ada Quill keeps the blue ledger."
in one, "The blue ledger is kept in Harlow." in another) and asks the two-hop question. The answer
is a single name or place, so accuracy is "the answer string appears in the 32-token greedy
answer". Deterministic for a seed.

Run: python3 bench/make_rag_set.py --out build/rag_set.jsonl [--prompts 100 --seed 1]
"""

import argparse
import json
import os
import random

LICENSES = "/usr/share/common-licenses"
FIRST = ["Ada", "Bram", "Cora", "Dov", "Elin", "Farah", "Gus", "Hana", "Ivo", "Jun", "Kira",
         "Lev", "Mira", "Nils", "Odile", "Pavel", "Quinn", "Rosa", "Sven", "Tamsin"]
LAST = ["Quill", "Marsh", "Okafor", "Lindqvist", "Brandt", "Moreau", "Tanaka", "Novak",
        "Castell", "Ferrand", "Hale", "Ibarra", "Janssen", "Kovacs", "Lowe", "Mendel"]
PLACES = ["Harlow", "Fenwick", "Merrow", "Ashby", "Corran", "Dunmore", "Elmstead", "Galloway",
          "Hythe", "Kestle", "Lanark", "Morven", "Penhallow", "Rydal", "Stroma", "Tarbet"]
THINGS = ["lighthouse", "windmill", "observatory", "ferry", "library", "bell tower", "dairy",
          "glassworks", "printing press", "orchard", "foundry", "archive"]
OBJECTS = ["blue ledger", "brass key", "silver compass", "red notebook", "oak chest",
           "copper lantern", "green map", "iron seal"]


def passages(min_words, max_words, rng):
    names = sorted(n for n in os.listdir(LICENSES)
                   if os.path.isfile(os.path.join(LICENSES, n)) and not os.path.islink(
                       os.path.join(LICENSES, n)))
    out = []
    for name in names:
        with open(os.path.join(LICENSES, name), encoding="utf-8", errors="replace") as f:
            words = f.read().split()
        i = 0
        while i + min_words <= len(words):
            n = rng.randint(min_words, max_words)
            out.append(" ".join(words[i:i + n]))
            i += n
    return out


def plant(text, sentence, rng):
    """Inserts `sentence` at a sentence boundary of `text` (or the start)."""
    cuts = [i + 2 for i in range(len(text) - 2) if text[i] == "." and text[i + 1] == " "]
    at = rng.choice(cuts) if cuts else 0
    return text[:at] + sentence + " " + text[at:]


def make(prompts, seed):
    rng = random.Random(seed)
    pool = passages(180, 700, rng)
    out = []
    for p in range(prompts):
        n_docs = rng.randint(4, 8)
        docs = rng.sample(pool, n_docs)
        person = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        place = rng.choice(PLACES)
        thing = rng.choice(THINGS)
        if p % 3 == 2:  # two hops, over two documents
            obj = rng.choice(OBJECTS)
            a, b = rng.sample(range(n_docs), 2)
            docs[a] = plant(docs[a], f"{person} keeps the {obj}.", rng)
            docs[b] = plant(docs[b], f"The {obj} is kept in {place}.", rng)
            question = f"In which town is the {obj} that {person} keeps?"
            answer = place
            hops = 2
        else:
            a = rng.randrange(n_docs)
            docs[a] = plant(docs[a], f"The keeper of the {place} {thing} is {person}.", rng)
            question = f"Who is the keeper of the {place} {thing}?"
            answer = person
            hops = 1
        out.append({"id": f"rag-{p:03d}", "docs": docs, "question": question, "answer": answer,
                    "hops": hops})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--prompts", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rows = make(args.prompts, args.seed)
    with open(args.out, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    print(f"wrote {len(rows)} prompts to {args.out}")


if __name__ == "__main__":
    main()
