"""python benchmarks/linear_ceiling.py

The ceiling for any fp32 decode step of SmolLM2-135M's shape: the time of its linear
layers alone (q,k,v,o, gate, up, down per layer x 30, tied LM head) at M rows, as a fraction
of the 1024^3 matmul rate measured in the same process."""

import statistics
import time

import torch

torch.set_num_threads(2)


def rate(n=1024, r=7):
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    ts = []
    for _ in range(r):
        t = time.perf_counter()
        a @ b
        ts.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(ts)


H, I, KV, V, L = 576, 1536, 192, 49152, 30
shapes = [(H, H), (KV, H), (KV, H), (H, H), (I, H), (I, H), (H, I)]
ws = [[torch.randn(o, i) for (o, i) in shapes] for _ in range(L)]
head = torch.randn(V, H)
F = torch.nn.functional
for M in (64, 16):
    x = torch.randn(M, H)
    xi = torch.randn(M, I)
    flop = 2 * M * (sum(o * i for o, i in shapes) * L + V * H)

    def step():
        for lay in ws:
            for w in lay:
                F.linear(xi if w.shape[1] == I else x, w)
        F.linear(x, head)

    step()
    ts = []
    for _ in range(9):
        t = time.perf_counter()
        step()
        ts.append(time.perf_counter() - t)
    r = rate()
    t = statistics.median(ts)
    print(
        f"M={M}: linear layers {t * 1e3:.1f} ms/step, bound {flop / r * 1e3:.1f} ms, bound/time {flop / r / t:.2f}, matmul rate {r / 1e9:.0f} GFLOP/s, weights {sum(o * i for o, i in shapes) * L * 4 / 1e6 + V * H * 4 / 1e6:.0f} MB -> {(sum(o * i for o, i in shapes) * L + V * H) * 4 / t / 1e9:.1f} GB/s"
    )
