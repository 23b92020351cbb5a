#!/usr/bin/env python3
"""PyTorch scaled_dot_product_attention at the shapes of bench/gpu_prefill_attention_bench.cu.

Llama-3.1-8B attention: 32 query heads, 8 KV heads (expanded to 32, as platform.md's table),
head_dim 128, bf16, causal, batch 1. Per backend (flash, cuDNN) and token count: 2 warm-ups, then
the median of --reps runs timed with CUDA events. FLOPs = 4 * heads * head_dim * n^2 / 2, the same
count our bench prints, so the TFLOP/s columns compare directly. Prints one BENCH line each.

  python3 bench/gpu_prefill_sdpa.py [--tokens 16384,32768,65536,131072] [--reps 5]
"""
import argparse
import sys


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", default="16384,32768,65536,131072")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    try:
        import torch
        from torch.nn.attention import SDPBackend, sdpa_kernel
        import torch.nn.functional as F
    except ImportError as e:
        print(f"SKIP gpu_prefill_sdpa: {e}")
        return 0
    if not torch.cuda.is_available():
        print("SKIP gpu_prefill_sdpa: no CUDA device")
        return 0
    heads, kv_heads, hd = 32, 8, 128
    print(f"device {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    backends = [("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)]
    for n in (int(t) for t in args.tokens.split(",")):
        g = torch.Generator(device="cuda").manual_seed(n)
        q = torch.rand(1, heads, n, hd, device="cuda", dtype=torch.bfloat16, generator=g) * 2 - 1
        k = torch.rand(1, kv_heads, n, hd, device="cuda", dtype=torch.bfloat16, generator=g) * 2 - 1
        v = torch.rand(1, kv_heads, n, hd, device="cuda", dtype=torch.bfloat16, generator=g) * 2 - 1
        k = k.repeat_interleave(heads // kv_heads, dim=1)
        v = v.repeat_interleave(heads // kv_heads, dim=1)
        flops = 4.0 * heads * hd * n * n / 2.0
        for name, backend in backends:
            try:
                with sdpa_kernel(backend):
                    for _ in range(2):
                        F.scaled_dot_product_attention(q, k, v, is_causal=True)
                    times = []
                    for _ in range(args.reps):
                        start = torch.cuda.Event(enable_timing=True)
                        stop = torch.cuda.Event(enable_timing=True)
                        start.record()
                        F.scaled_dot_product_attention(q, k, v, is_causal=True)
                        stop.record()
                        stop.synchronize()
                        times.append(start.elapsed_time(stop))
                ms = sorted(times)[len(times) // 2]
                print(f"BENCH gpu_prefill_sdpa tokens={n} backend={name} ms={ms:.3f} "
                      f"tflops={flops / ms * 1e-9:.1f}", flush=True)
            except RuntimeError as e:
                print(f"BENCH gpu_prefill_sdpa tokens={n} backend={name} error={str(e)[:120]!r}",
                      flush=True)
        del q, k, v
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
