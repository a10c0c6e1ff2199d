"""Time per request of the exported `inpaint` signature, as TF Serving would run it.

    python benchmarks/serving_latency.py [--model saved_models/celeba64 | --width 64]

With --model, times that exported model; otherwise exports the paper's architecture
(untrained; speed does not depend on the weights) to a temporary folder first.
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from _common import table  # noqa: E402

from tfinpaint import (
    masks,  # noqa: E402
    store,  # noqa: E402
)
from tfinpaint.export import export  # noqa: E402
from tfinpaint.models import build_pair  # noqa: E402
from tfinpaint.store import latest_version  # noqa: E402


def untrained_export(width: int) -> Path:
    run = Path(tempfile.mkdtemp())
    g, d = build_pair(64, width, 100)
    card = store.ModelCard(format=store.RUN_FORMAT, image_size=64, latent_dim=100, width=width)
    base = run / "export"
    export(store.Model(g, d, card, run), base)
    return base


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--width", type=int, default=64)
    args = ap.parse_args()
    base = args.model or untrained_export(args.width)
    sig = tf.saved_model.load(str(latest_version(base))).signatures["inpaint"]
    rng = np.random.default_rng(0)
    rows = []
    for iterations in (100, 1500):
        for batch in (1, 8):
            image = tf.constant(rng.integers(0, 256, (batch, 64, 64, 3), dtype=np.uint8))
            mask = tf.constant(np.stack([masks.block(64)] * batch))
            fixed = dict(
                image=image, mask=mask, lam=tf.constant(0.003), restarts=tf.constant(1), seed=tf.constant(0, tf.int64)
            )
            sig(iterations=tf.constant(2), **fixed)  # warm up
            t = time.perf_counter()
            sig(iterations=tf.constant(iterations), **fixed)
            dt = time.perf_counter() - t
            rows.append((iterations, batch, f"{dt:.2f}", f"{dt / iterations / batch * 1000:.1f}"))
    print(f"serving `inpaint` signature of {base}")
    print(table(("iterations", "batch", "seconds per request", "ms per image-iteration"), rows))


if __name__ == "__main__":
    main()
