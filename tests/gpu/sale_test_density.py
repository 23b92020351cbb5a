#!/usr/bin/env python3
"""The SALE density that tests/gpu/flash_prefill_test.cc's inputs should give, in float64 numpy.

Same distribution as the test's SetUp (not the same random numbers: numpy's generator, not
std::mt19937): logits without quantization, the mandatory sink + local window, a block kept when
some row's probability against the mandatory log-sum-exp exceeds tau = 0.008. Prints ~0.63, so the
test's `density < 0.9` has room; run with any python that has numpy (.venv-ref/bin/python).
"""
import numpy as np

# SparseConfig's SALE defaults (kernels/op.h): blocks of 64 query rows x 32 keys, a sink of 32
# tokens and a local window of 128 tokens before the query block, always computed; tau 0.008.
Q_BLOCK, K_BLOCK, SINK, WINDOW, TAU = 64, 32, 32, 128, 0.008
N, H, G, D = 700, 8, 2, 128  # the test's tokens, heads, KV heads, head_dim


def mandatory(qb: int, kb: int) -> bool:
    return kb * K_BLOCK < SINK or kb >= max(0, qb * Q_BLOCK - WINDOW) // K_BLOCK


def main() -> None:
    rng = np.random.default_rng(7)
    q = rng.uniform(-1, 1, (N, H, D))
    k = rng.uniform(-1, 1, (N, G, D))
    q[:, :, 0] += 6
    k[:SINK, :, 0] += 10
    q[:, :, 1] += 3
    k[np.arange(N) % 150 == 75, :, 1] += 20
    kept = causal = 0
    for h in range(H):
        g = h // (H // G)
        logits = (q[:, h, :] @ k[:, g, :].T) / np.sqrt(D)
        logits = np.where(np.tril(np.ones((N, N))) > 0, logits, -np.inf)
        for qb in range((N + Q_BLOCK - 1) // Q_BLOCK):
            r0, r1 = qb * Q_BLOCK, min(N, qb * Q_BLOCK + Q_BLOCK)
            blocks = range((r1 - 1) // K_BLOCK + 1)
            causal += len(blocks)
            in_mandatory = np.zeros((r1 - r0, N), bool)
            for kb in blocks:
                if mandatory(qb, kb):
                    kept += 1
                    in_mandatory[:, kb * K_BLOCK:(kb + 1) * K_BLOCK] = True
            lm = np.where(in_mandatory, logits[r0:r1], -np.inf)
            top = lm.max(1, keepdims=True)
            lse = np.log(np.exp(lm - top).sum(1, keepdims=True)) + top
            for kb in blocks:
                if not mandatory(qb, kb):
                    p = np.exp(logits[r0:r1, kb * K_BLOCK:(kb + 1) * K_BLOCK] - lse)
                    kept += bool((p > TAU).any())
    print("density", kept / causal)


if __name__ == "__main__":
    main()
