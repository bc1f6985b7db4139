"""The ceiling of any fp32 decode step of the default policy's shape.

    python benchmarks/linear_ceiling.py

Times only the linear layers of one decode step of SmolLM2-135M (30 layers x q, k, v, o,
gate, up, down, and the tied LM head) on random inputs of the step's shape, at 64 and 16
rows, and prints ``bound / time`` with the bound from the 1024^3 fp32 matmul rate measured
in the same process (as ``benchmarks/sampling.py`` does). No decode that also runs
attention, norms and sampling can beat this ratio. Medians of 9.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

HIDDEN, MLP, KV, VOCAB, LAYERS = 576, 1536, 192, 49152, 30
SHAPES = [(HIDDEN, HIDDEN), (KV, HIDDEN), (KV, HIDDEN), (HIDDEN, HIDDEN),
          (MLP, HIDDEN), (MLP, HIDDEN), (HIDDEN, MLP)]  # fmt: skip


def median_seconds(fn, repeats: int = 9) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def matmul_rate(n: int = 1024) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / median_seconds(lambda: a @ b)


def main() -> None:
    torch.set_num_threads(2)
    layers = [[torch.randn(o, i) for o, i in SHAPES] for _ in range(LAYERS)]
    head = torch.randn(VOCAB, HIDDEN)
    params = sum(o * i for o, i in SHAPES) * LAYERS + VOCAB * HIDDEN
    for rows in (64, 16):
        x, x_mlp = torch.randn(rows, HIDDEN), torch.randn(rows, MLP)

        def step(x=x, x_mlp=x_mlp) -> None:
            for weights in layers:
                for w in weights:
                    F.linear(x_mlp if w.shape[1] == MLP else x, w)
            F.linear(x, head)

        took = median_seconds(step)
        rate = matmul_rate()
        bound = 2 * rows * params / rate
        print(f"{rows} rows: linear layers {took * 1e3:.1f} ms/step, bound {bound * 1e3:.1f} ms, "
              f"bound/time {bound / took:.2f}, matmul {rate / 1e9:.0f} GFLOP/s, "
              f"weights {params * 4 / 1e6:.0f} MB read at {params * 4 / took / 1e9:.1f} GB/s")  # fmt: skip


if __name__ == "__main__":
    main()
