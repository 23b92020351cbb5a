#!/usr/bin/env python3
"""End-to-end cost of disaggregation on one machine (ARCHITECTURE.md §12, e2e_bench).

Candidate: `tandem serve` (router + prefill node + decode node as processes, KV shipped over the data
plane) under N concurrent streaming clients, measured at the client: TTFT (request sent -> first
content chunk), TPOT ((last chunk - first chunk) / (tokens - 1)) and throughput (completion tokens /
wall time of the whole load).

Baseline, same run, same prompts, same token budget: one process running `tandem generate` on each
prompt (the model loaded once per prompt, but its own timers exclude the load): TTFT = its prefill
time, TPOT = 1 / its decode rate, throughput = tokens / (prefill + decode time), sequential, which is
all a single-request process can do.

Prints `BENCH e2e <config> candidate=<v> baseline=<v> ratio=<v>` lines; --json writes them.
Run: .venv-test/bin/python bench/e2e_bench.py --tandem build/cli/tandem [--clients 1,4,16]
"""

import argparse
import concurrent.futures
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time

import openai

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "cluster"))
import tandem_cluster as tc  # noqa: E402

TOPICS = ["the ocean", "volcanoes", "the moon", "bees", "rivers", "glaciers", "deserts", "owls",
          "thunderstorms", "coral reefs", "comets", "forests", "penguins", "tides", "caves",
          "rainbows"]


def prompts(n, words, first=0):
    filler = ("Tandem splits prefill and decode across nodes and ships the KV cache between them. "
              * max(1, words // 14))
    # Each prompt starts differently, so no request reuses another's KV blocks (the cost of
    # disaggregation is measured, not the prefix cache; the baseline has none).
    return [f"Request {i} ({TOPICS[i % len(TOPICS)]}).\n{filler}\nWrite a short paragraph about "
            f"{TOPICS[i % len(TOPICS)]}.\nAnswer:" for i in range(first, first + n)]


def baseline(tandem, prompt_list, max_tokens, threads):
    ttft, tpot, tokens, busy = [], [], 0, 0.0
    for p in prompt_list:
        out = subprocess.run([tandem, "generate", f"--model={tc.MODEL}", "--prompt", p,
                              f"--max_tokens={max_tokens}", "--temperature=0", "--ignore_eos",
                              f"--threads={threads}"],
                             capture_output=True, check=True, cwd=tc.SOURCE_DIR)
        m = re.search(r"prompt: (\d+) tokens, prefill ([\d.]+) tokens/s \| generated: (\d+) "
                      r"tokens, decode ([\d.]+) tokens/s", out.stderr.decode())
        n_prompt, prefill_tps, n_gen, decode_tps = (int(m[1]), float(m[2]), int(m[3]),
                                                    float(m[4]))
        prefill_s = n_prompt / prefill_tps
        ttft.append(prefill_s)
        tpot.append(1.0 / decode_tps)
        tokens += n_gen
        busy += prefill_s + (n_gen - 1) / decode_tps
    return {"ttft_p50": statistics.median(ttft), "tpot_p50": statistics.median(tpot),
            "throughput": tokens / busy, "prompt_tokens": n_prompt}


def one_stream(client, model, prompt, max_tokens):
    start = time.perf_counter()
    first = last = None
    n = 0
    for chunk in client.completions.create(model=model, prompt=prompt, max_tokens=max_tokens,
                                           temperature=0, stream=True,
                                           extra_body={"ignore_eos": True}):
        for choice in chunk.choices:
            if choice.text:
                now = time.perf_counter()
                first = first or now
                last = now
                n += 1
    return {"ttft": first - start, "tpot": (last - first) / max(1, n - 1), "chunks": n}


def candidate(client, model, prompt_list, max_tokens, clients):
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=clients) as pool:
        results = list(pool.map(lambda p: one_stream(client, model, p, max_tokens), prompt_list))
    wall = time.perf_counter() - start
    usage_tokens = max_tokens * len(prompt_list)
    ttfts = sorted(r["ttft"] for r in results)
    p99 = ttfts[min(len(ttfts) - 1, math.ceil(0.99 * len(ttfts)) - 1)]
    return {"ttft_p50": statistics.median(ttfts), "ttft_p99": p99,
            "tpot_p50": statistics.median(r["tpot"] for r in results),
            "throughput": usage_tokens / wall}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tandem", default=os.path.join(tc.SOURCE_DIR, "build/cli/tandem"))
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--requests_per_client", type=int, default=2)
    parser.add_argument("--prompt_words", type=int, default=400)
    parser.add_argument("--max_tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0,
                        help="cpu threads of tandem generate and of each node; 0 = every core")
    parser.add_argument("--transport", default="tcp")
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    tandem = os.path.abspath(args.tandem)
    levels = [int(c) for c in args.clients.split(",")]

    base_prompts = prompts(4, args.prompt_words)
    base = baseline(tandem, base_prompts, args.max_tokens, args.threads)
    print(f"baseline tandem generate: prompt {base['prompt_tokens']} tokens, TTFT p50 "
          f"{base['ttft_p50'] * 1e3:.1f} ms, TPOT p50 {base['tpot_p50'] * 1e3:.2f} ms, "
          f"{base['throughput']:.1f} tok/s")

    serve_args = ["--serve_port=0", f"--transport={args.transport}"]
    if args.threads > 0:
        serve_args.append(f"--threads={args.threads}")
    serve = tc.TandemProcess(tandem, "serve", serve_args, name="bench")
    lines = []
    try:
        serve.wait_ready(timeout=300)
        client = openai.OpenAI(base_url=serve.url("/v1"), api_key="none", max_retries=0,
                               timeout=600)
        model = client.models.list().data[0].id
        one_stream(client, model, "Warm-up: say hi.", 4)
        # Every request of the run gets a prompt of its own (numbered past the baseline's), so
        # none reuses KV blocks another stored: the prefix cache would flatter the candidate.
        next_prompt = 1000
        for clients in levels:
            n = clients * args.requests_per_client
            cand = candidate(client, model, prompts(n, args.prompt_words, next_prompt),
                             args.max_tokens, clients)
            next_prompt += n
            for metric, lower_is_better in (("ttft_p50", True), ("tpot_p50", True),
                                            ("throughput", False)):
                c, b = cand[metric], base[metric]
                ratio = c / b
                unit = "tok/s" if metric == "throughput" else "ms"
                scale = 1 if metric == "throughput" else 1e3
                line = (f"BENCH e2e clients={clients} {metric}_{unit} candidate={c * scale:.2f} "
                        f"baseline={b * scale:.2f} ratio={ratio:.3f}")
                print(line, flush=True)
                lines.append({"clients": clients, "metric": metric, "candidate": c,
                              "baseline": b, "ratio": ratio})
            print(f"      clients={clients} ttft_p99_ms={cand['ttft_p99'] * 1e3:.1f}", flush=True)
    finally:
        serve.stop()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(lines, f, indent=1)


if __name__ == "__main__":
    main()
