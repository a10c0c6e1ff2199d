"""Latent-search speed (image-iterations per second), the refinement's, and Poisson blending time.

    python benchmarks/inpaint_speed.py [--width 64] [--iterations 30]

Uses the paper's architecture (64x64, width 64) with untrained weights: speed does not
depend on the weights.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from _common import table  # noqa: E402

from tfinpaint import blend, masks  # noqa: E402
from tfinpaint.models import build_encoder, build_pair  # noqa: E402
from tfinpaint.search import inpaint  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=30)
    args = ap.parse_args()
    g, d = build_pair(64, args.width, 100)
    e = build_encoder(64, args.width, 100)
    rng = np.random.default_rng(0)
    rows = []
    for start, encoder in (("random z", None), ("encoder's z", e)):
        for batch in (1, 8, 64):
            y = rng.uniform(-1, 1, (batch, 64, 64, 3)).astype(np.float32)
            kw = dict(blend="overlay", encoder=encoder)
            inpaint(y, masks.block(64), g, d, iterations=2, **kw)  # trace
            t = time.perf_counter()
            inpaint(y, masks.block(64), g, d, iterations=args.iterations, **kw)
            dt = time.perf_counter() - t
            rows.append((start, batch, f"{batch * args.iterations / dt:.1f}", f"{dt / args.iterations * 1000:.1f}"))
    print(f"Latent search, 64x64, width {args.width}, {args.iterations} iterations (the encoder's pass included)")
    print(table(("start", "batch", "image-iterations/s", "ms per iteration"), rows))

    rows = []
    for refine in ("features", "generator"):
        for batch in (1, 8):
            y = rng.uniform(-1, 1, (batch, 64, 64, 3)).astype(np.float32)
            m = masks.random(64, 0.8, rng)
            kw = dict(iterations=0, refine=refine, blend=None)
            inpaint(y, m, g, d, refine_steps=2, **kw)  # trace
            t = time.perf_counter()
            inpaint(y, m, g, d, refine_steps=args.iterations, **kw)
            dt = time.perf_counter() - t
            per_image = dt / args.iterations * 100 / batch
            rows.append((refine, batch, f"{dt / args.iterations * 1000:.1f}", f"{per_image:.2f}"))
    print(f"\nRefinement beyond z, 64x64, width {args.width}, {args.iterations} steps")
    print(table(("refine", "batch", "ms per step (whole batch)", "s per image for 100 steps"), rows))

    rows = []
    for size in (64, 512):
        src = rng.uniform(0, 255, (size, size, 3))
        tgt = rng.uniform(0, 255, (size, size, 3))
        for name, mask in (("block", masks.block(size)), ("random 80%", masks.random(size, 0.8, rng))):
            t = time.perf_counter()
            solver = blend.PoissonSolver(mask)
            t_factor = time.perf_counter() - t
            t = time.perf_counter()
            solver.blend(src, tgt)
            t_solve = time.perf_counter() - t
            rows.append((f"{size}x{size}", name, solver.hole.size, f"{t_factor * 1000:.1f}", f"{t_solve * 1000:.1f}"))
    print("\nPoisson blending (scipy.sparse LU), 3 channels")
    print(table(("image", "mask", "hole pixels", "build + factorise ms", "solve ms"), rows))


if __name__ == "__main__":
    main()
