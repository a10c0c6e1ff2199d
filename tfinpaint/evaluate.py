"""Scoring inpainting on real images: our search against simple baselines, per mask kind.

Images are scored at the model's resolution after its own preprocessing, on [0, 1],
as the paper does (64x64 faces and digits).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from tfinpaint import data as data_lib
from tfinpaint import masks as masks_lib
from tfinpaint import metrics


@dataclasses.dataclass(frozen=True)
class Score:
    """Mean PSNR (dB) and SSIM of one method on one mask kind over `n` images."""

    mask: str
    method: str
    n: int
    psnr: float
    ssim: float


def load_images(files: Sequence[str | Path], preprocess: str, size: int) -> np.ndarray:
    """Files to float32 `[N, size, size, 3]` in [-1, 1], by the model's preprocessing."""
    return np.stack([data_lib.preprocess_numpy(data_lib.load_image_file(f), preprocess, size) for f in files]).astype(
        np.float32
    )


def make_masks(kind: str, n: int, size: int, seed: int) -> np.ndarray:
    """`n` masks of one kind; random kinds are seeded per image."""
    return np.stack([masks_lib.make(kind, size, rng=np.random.default_rng([seed, i])) for i in range(n)])


def score(images: np.ndarray, filled: np.ndarray) -> tuple[float, float]:
    """Mean PSNR and SSIM of filled images against the originals, both in [-1, 1]."""
    a, b = (images + 1.0) / 2.0, (np.clip(filled, -1.0, 1.0) + 1.0) / 2.0
    return (
        float(np.mean([metrics.psnr(x, y) for x, y in zip(a, b)])),
        float(np.mean([metrics.ssim(x, y) for x, y in zip(a, b)])),
    )


def evaluate(
    model,
    files: Sequence[str | Path],
    kinds: Sequence[str] = ("block", "random", "half"),
    settings=None,
    seed: int = 0,
    batch_size: int = 64,
    progress: Callable[[str], None] | None = None,
) -> list[Score]:
    """Fill `files` under each mask kind with the model (Poisson blending) and with the
    mean colour of the known pixels; returns one `Score` per mask kind and method."""
    from tfinpaint.inpaint import SearchSettings, inpaint

    settings = settings or SearchSettings(**model.card.get("search", {}))
    images = load_images(files, model.preprocess, model.image_size)
    out = []
    for kind in kinds:
        m = make_masks(kind, len(images), model.image_size, seed)
        filled = []
        for start in range(0, len(images), batch_size):
            if progress:
                progress(f"{kind}: images {start + 1}-{min(start + batch_size, len(images))} of {len(images)}")
            sl = slice(start, start + batch_size)
            filled.append(inpaint(images[sl], m[sl], model.generator, model.discriminator, settings).filled)
        out.append(Score(kind, "ours", len(images), *score(images, np.concatenate(filled))))
        mean = np.stack([metrics.mean_colour_fill(x, k) for x, k in zip(images, m)])
        out.append(Score(kind, "mean colour", len(images), *score(images, mean)))
    return out
