#!/usr/bin/env python3
"""Tandem vs llama.cpp on the same GGUF, prompts and thread count, in one run.

    .venv-ref/bin/python bench/generate_bench.py [--threads 2] [--rounds 2]

Runs build/bench/decode_bench (Tandem in-process: decode, prefill at 512 and 2,048 tokens, and the
memory-bandwidth roofline it measures) and llama.cpp through llama-cpp-python in this process on
the same synthetic token ids (the same LCG as decode_bench.cc), alternating rounds, and prints
`BENCH <name> candidate=<tandem> baseline=<llama.cpp> ratio=<tandem/llama.cpp>` per figure.
Needs scripts/setup_reference.sh and a build.
"""
import argparse
import os
import re
import subprocess
import time

from llama_cpp import Llama

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def synthetic_prompt(n, vocab=49152):
    state, out = 12345, []
    for _ in range(n):
        state = (state * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        out.append(200 + (state >> 33) % (vocab - 400))
    return out


def llama_cpp_figures(llm, decode_tokens, repeats):
    figures = {}
    best = 0.0
    for _ in range(repeats):
        llm.reset()
        llm.eval(synthetic_prompt(16))
        tok = int(llm.scores[llm.n_tokens - 1].argmax())
        start = time.perf_counter()
        for _ in range(decode_tokens - 1):
            llm.eval([tok])
            tok = int(llm.scores[llm.n_tokens - 1].argmax())
        best = max(best, (decode_tokens - 1) / (time.perf_counter() - start))
    figures["decode"] = best
    for n in (512, 2048):
        best = 0.0
        prompt = synthetic_prompt(n)
        for _ in range(repeats):
            llm.reset()
            start = time.perf_counter()
            llm.eval(prompt)
            best = max(best, n / (time.perf_counter() - start))
        figures[f"prefill_{n}"] = best
    return figures


def tandem_figures(binary, model, threads, decode_tokens, repeats):
    out = subprocess.run([binary, f"--model={model}", f"--threads={threads}",
                          f"--decode_tokens={decode_tokens}", f"--repeats={repeats}"],
                         check=True, capture_output=True, text=True).stdout
    figures, lines = {}, []
    for line in out.splitlines():
        m = re.match(r"BENCH (\S+) .*candidate=([\d.]+)", line)
        if m:
            figures[m.group(1)] = float(m.group(2))
            lines.append(line)
    return figures, lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "bench", "decode_bench"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--decode_tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()

    llm = Llama(model_path=args.model, n_ctx=4096, n_batch=512, n_threads=args.threads,
                n_threads_batch=args.threads, logits_all=False, verbose=False)
    best_t, best_l, best_lines = {}, {}, {}
    for _ in range(args.rounds):
        t, lines = tandem_figures(args.binary, args.model, args.threads, args.decode_tokens,
                                  args.repeats)
        lc = llama_cpp_figures(llm, args.decode_tokens, args.repeats)
        for (k, v), line in zip(t.items(), lines):
            if v > best_t.get(k, 0.0):
                best_t[k], best_lines[k] = v, line
        for k, v in lc.items():
            best_l[k] = max(best_l.get(k, 0.0), v)
    # Tandem's own lines (with the roofline measured in the same round), best round of each.
    for line in best_lines.values():
        print(line)
    for name in ("decode", "prefill_512", "prefill_2048"):
        print(f"BENCH vs_llama_cpp_{name} threads={args.threads} candidate={best_t[name]:.1f} "
              f"baseline={best_l[name]:.1f} ratio={best_t[name] / best_l[name]:.3f}")


if __name__ == "__main__":
    main()
