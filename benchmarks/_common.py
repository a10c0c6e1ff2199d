"""Shared helpers for the benchmark scripts: FLOP counts, the machine's matmul ceiling, tables."""

import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as `import tfinpaint` does, before TensorFlow loads
import tensorflow as tf  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FACES = ROOT.parent / "shared" / "data" / "celeba_align_half"
sys.path.insert(0, str(ROOT))


def generator_flops(g) -> int:
    """Forward FLOPs (2 per multiply-add) of G for one z: the dense layer and the
    transposed convolutions, each of whose input pixels spreads a 5x5 kernel."""
    top = g.project.units // 16
    flops = 2 * g.latent_dim * g.project.units
    hw, c_in = 4, top
    for layer in [*g.ups, g.to_image]:
        flops += 2 * 25 * c_in * layer.filters * hw * hw
        c_in, hw = layer.filters, hw * 2
    return flops


def discriminator_flops(d) -> int:
    """Forward FLOPs of D for one image: stride-2 5x5 convolutions and the logit."""
    hw, c_in, flops = d.image_size, d.channels, 0
    for conv in d.convs:
        hw //= 2
        flops += 2 * 25 * c_in * conv.filters * hw * hw
        c_in = conv.filters
    return flops + 2 * hw * hw * c_in


def matmul_gflops(n: int = 4096, repeats: int = 5) -> float:
    """The machine's float32 matmul rate, the practical ceiling for the figures here."""
    a = tf.random.uniform([n, n])
    b = tf.random.uniform([n, n])
    (a @ b).numpy()
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        (a @ b).numpy()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def table(header: tuple, rows: list[tuple]) -> str:
    """A Markdown table."""
    cells = [[str(x) for x in r] for r in [header, *rows]]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]

    def line(r):
        return "| " + " | ".join(x.rjust(w) for x, w in zip(r, widths)) + " |"

    return "\n".join([line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, cells[1:])])
