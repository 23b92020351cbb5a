#!/usr/bin/env python3
"""Speed of this tree against an earlier commit, measured in one run (a refactor must not cost speed).

Both builds run the same measurements in alternating order, round after round, on the same machine:
  decode_tok_s        tokens/s of one greedy decode after a 16-token prompt (bench/decode_bench)
  prefill_N_tok_s     tokens/s of an N-token prefill (bench/decode_bench, N = 512, 2048)
  serve_ttft_ms       `tandem serve`, one streaming client: request sent -> first content chunk,
                      median over distinct ~470-token prompts (no prefix reuse)
For each metric it prints the median per build, the ratio candidate/baseline, and the run's noise:
the spread (max - min) / median of each build's own rounds. A ratio within the noise is no change.

Wall time needs a quiet machine. --instructions adds a measure that does not: the instructions
`tandem generate` executes under valgrind's callgrind (one thread), for a decode-heavy run (16-token
prompt, 64 tokens) and a prefill-heavy one (~470-token prompt, 1 token). The same binary and input
give the same count whatever else the machine runs, so its ratio has no noise term.

    .venv-test/bin/python bench/before_after.py --baseline_commit 11c1f49 [--rounds 5]
    .venv-test/bin/python bench/before_after.py --baseline_build /path/to/other/build

--baseline_commit checks the commit out as a git worktree in build-base/src and builds decode_bench
and tandem into build-base/build (Release with debug info, like scripts/build.sh).
Prints `BENCH before_after <metric> candidate=<v> baseline=<v> ratio=<v> noise_candidate=<v>
noise_baseline=<v>` per metric.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import time

import openai

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "cluster"))
import tandem_cluster as tc  # noqa: E402

TOPICS = ["the ocean", "volcanoes", "the moon", "bees", "rivers", "glaciers", "deserts", "owls"]


def build_baseline(commit):
    src = os.path.join(tc.SOURCE_DIR, "build-base", "src")
    build = os.path.join(tc.SOURCE_DIR, "build-base", "build")
    if os.path.isdir(src):
        subprocess.run(["git", "-C", src, "checkout", "-q", "--detach", commit], check=True)
    else:
        subprocess.run(["git", "-C", tc.SOURCE_DIR, "worktree", "add", "-q", "--detach", src,
                        commit], check=True)
    if not os.path.exists(os.path.join(build, "build.ninja")):
        subprocess.run(["cmake", "-S", src, "-B", build, "-G", "Ninja",
                        "-DCMAKE_BUILD_TYPE=RelWithDebInfo"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", build, "--target", "decode_bench", "tandem"], check=True,
                   stdout=subprocess.DEVNULL)
    return build


def decode_bench(build, threads):
    out = subprocess.run([os.path.join(build, "bench", "decode_bench"), f"--model={tc.MODEL}",
                          f"--threads={threads}", "--repeats=1"],
                         capture_output=True, text=True, check=True, cwd=tc.SOURCE_DIR).stdout
    got = {}
    for line in out.splitlines():
        m = re.match(r"BENCH (decode|prefill_\d+) \S+ candidate=([\d.]+)", line)
        if m:
            got[f"{m[1]}_tok_s"] = float(m[2])
    return got


def prompt(i, words=400):
    filler = ("Tandem splits prefill and decode across nodes and ships the KV cache between them. "
              * max(1, words // 14))
    return (f"Request {i} ({TOPICS[i % len(TOPICS)]}).\n{filler}\nWrite a short paragraph about "
            f"{TOPICS[i % len(TOPICS)]}.\nAnswer:")


def serve_ttft(build, threads, requests, first_prompt):
    serve = tc.TandemProcess(os.path.join(build, "cli", "tandem"), "serve",
                             ["--serve_port=0", f"--threads={threads}"], name="before_after")
    try:
        serve.wait_ready(timeout=300)
        client = openai.OpenAI(base_url=serve.url("/v1"), api_key="none", max_retries=0,
                               timeout=600)
        model = client.models.list().data[0].id
        ttfts = []
        for i in range(-1, requests):  # -1: warm-up, not counted
            start = time.perf_counter()
            first = None
            for chunk in client.completions.create(
                    model=model, prompt=prompt(first_prompt + i), max_tokens=8, temperature=0,
                    stream=True, extra_body={"ignore_eos": True}):
                if first is None and any(c.text for c in chunk.choices):
                    first = time.perf_counter()
            if i >= 0:
                ttfts.append((first - start) * 1e3)
        return {"serve_ttft_ms": statistics.median(ttfts)}
    finally:
        serve.stop()


def instructions(build, prompt_text, max_tokens):
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         os.path.join(build, "cli", "tandem"), "generate", f"--model={tc.MODEL}", "--threads=1",
         "--temperature=0", "--ignore_eos", f"--max_tokens={max_tokens}", "--stats=false",
         "--prompt", prompt_text],
        capture_output=True, text=True, check=True, cwd=tc.SOURCE_DIR).stderr
    return int(re.search(r"Collected : (\d+)", out)[1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--candidate_build", default=os.path.join(tc.SOURCE_DIR, "build"))
    parser.add_argument("--baseline_build", default="")
    parser.add_argument("--baseline_commit", default="")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ttft_requests", type=int, default=5)
    parser.add_argument("--instructions", action="store_true",
                        help="also count instructions under callgrind (load-independent)")
    args = parser.parse_args()
    if bool(args.baseline_build) == bool(args.baseline_commit):
        parser.error("give exactly one of --baseline_build and --baseline_commit")
    baseline = args.baseline_build or build_baseline(args.baseline_commit)
    builds = {"candidate": os.path.abspath(args.candidate_build),
              "baseline": os.path.abspath(baseline)}

    if args.instructions:
        cases = {"decode_instructions": ("The capital of France is a city that", 64),
                 "prefill_instructions": (prompt(0), 1)}
        for metric, (text, max_tokens) in cases.items():
            counts = {name: instructions(build, text, max_tokens) for name, build in builds.items()}
            print(f"BENCH before_after {metric} candidate={counts['candidate']} "
                  f"baseline={counts['baseline']} "
                  f"ratio={counts['candidate'] / counts['baseline']:.4f}", flush=True)
    if args.rounds <= 0:
        return

    runs = {name: [] for name in builds}
    next_prompt = 0
    for r in range(args.rounds):
        order = ["candidate", "baseline"] if r % 2 == 0 else ["baseline", "candidate"]
        for name in order:
            got = decode_bench(builds[name], args.threads)
            got.update(serve_ttft(builds[name], args.threads, args.ttft_requests, next_prompt))
            next_prompt += args.ttft_requests + 1
            runs[name].append(got)
            print(f"round {r} {name}: " + " ".join(f"{k}={v:.1f}" for k, v in sorted(got.items())),
                  flush=True)

    for metric in sorted(runs["candidate"][0]):
        values = {name: [run[metric] for run in runs[name]] for name in builds}
        med = {name: statistics.median(v) for name, v in values.items()}
        noise = {name: (max(v) - min(v)) / med[name] for name, v in values.items()}
        print(f"BENCH before_after {metric} candidate={med['candidate']:.2f} "
              f"baseline={med['baseline']:.2f} ratio={med['candidate'] / med['baseline']:.3f} "
              f"noise_candidate={noise['candidate']:.3f} noise_baseline={noise['baseline']:.3f}",
              flush=True)


if __name__ == "__main__":
    main()
