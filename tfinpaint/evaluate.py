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
    from tfinpaint.fill import search_settings
    from tfinpaint.inpaint import inpaint

    settings = settings or search_settings(model.card)
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


# --- the paper's comparison (`tfinpaint evaluate`) ---------------------------------

METHODS = ("ours", "tv", "telea", "ns", "biharmonic", "lowrank", "nearest")


@dataclasses.dataclass(frozen=True)
class Row:
    """Mean scores of one method on one mask kind over `n` images (all on [0, 1]).

    `*_box` are measured on the bounding box of each image's hole; `l1_hole` is the
    mean absolute error over the hole's pixels.
    """

    mask: str
    method: str
    n: int
    psnr: float
    ssim: float
    psnr_box: float
    ssim_box: float
    l1_hole: float


def hole_box(mask: np.ndarray) -> tuple[slice, slice]:
    """Bounding box of a mask's hole (the whole image when there is none)."""
    rows, cols = np.nonzero(np.asarray(mask).reshape(mask.shape[:2]) < 0.5)
    if rows.size == 0:
        return slice(None), slice(None)
    return slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1)


def measure(original: np.ndarray, filled: np.ndarray, mask: np.ndarray) -> tuple[float, ...]:
    """(PSNR, SSIM, PSNR on the hole's box, SSIM on the hole's box, mean L1 in the hole), on [0, 1]."""
    box = hole_box(mask)
    hole = np.asarray(mask).reshape(mask.shape[:2]) < 0.5
    l1 = float(np.abs(filled - original)[hole].mean()) if hole.any() else 0.0
    return (
        metrics.psnr(original, filled),
        metrics.ssim(original, filled),
        metrics.psnr(original[box], filled[box]),
        metrics.ssim(original[box], filled[box]),
        l1,
    )


def _dataset_folder(model) -> Path | None:
    """The model's training folder: as recorded, or relative to the repository (shipped models)."""
    from tfinpaint.fill import SHIPPED

    recorded = model.card.get("dataset", "")
    for candidate in (Path(recorded), SHIPPED.parent / recorded):
        if recorded and candidate.is_dir():
            return candidate
    return None


def training_images(model) -> list[str]:
    """The files the model's run trained on (its dataset minus its held-out list)."""
    from tfinpaint import data as data_lib

    dataset = _dataset_folder(model)
    if dataset is None:
        raise data_lib.DataError(
            f"The training images of {model.path} ({model.card.get('dataset', 'unknown')}) cannot be found"
        )
    held = {Path(f).name for f in model.card.get("heldout", [])}
    return [f for f in data_lib.list_images(dataset) if Path(f).name not in held]


def choose_images(data_dir: str | Path, model, n: int) -> tuple[list[str], str]:
    """Up to `n` images of `data_dir` to score, and a note on how they relate to training.

    When `data_dir` is the model's training folder, only its held-out images are used.
    """
    from tfinpaint import data as data_lib

    files = data_lib.list_images(data_dir)
    if not files:
        raise data_lib.DataError(f"No images found in {data_dir}")
    dataset = _dataset_folder(model)
    held = {Path(f).name for f in model.card.get("heldout", [])}
    if dataset is not None and dataset.resolve() == Path(data_dir).resolve():
        files = [f for f in files if Path(f).name in held]
        if not files:
            raise data_lib.DataError(f"{data_dir} is the model's training folder and none of it was held out")
        return files[:n], f"held-out images of the model's training folder ({len(files)} held out)"
    try:
        trained = {Path(f).name for f in training_images(model)}
    except data_lib.DataError:
        return files[:n], "images from outside the model's training folder (its training images were not found)"
    overlap = sum(Path(f).name in trained for f in files[:n])
    if overlap:
        return files[:n], f"WARNING: {overlap} of these {min(n, len(files))} images have the names of training images"
    return files[:n], "images from outside the model's training folder"


def run_method(
    method: str,
    images01: np.ndarray,
    masks: np.ndarray,
    model=None,
    settings=None,
    candidates: np.ndarray | None = None,
) -> np.ndarray:
    """Fill `[N, H, W, C]` images in [0, 1] with one method; returns filled images in [0, 1]."""
    from tfinpaint import baselines

    if method == "ours":
        from tfinpaint.inpaint import inpaint

        out = inpaint(images01 * 2 - 1, masks, model.generator, model.discriminator, settings).filled
        return np.clip((out + 1) / 2, 0, 1)
    fns = {
        "tv": lambda x, m: baselines.total_variation(x, m)[0],
        "lowrank": lambda x, m: baselines.low_rank(x, m)[0],
        "telea": lambda x, m: baselines.opencv(x, m, "telea"),
        "ns": lambda x, m: baselines.opencv(x, m, "ns"),
        "biharmonic": baselines.biharmonic,
        "nearest": lambda x, m: baselines.nearest_neighbour(x, m, candidates)[0],
    }
    if method not in fns:
        raise ValueError(f"Unknown method {method!r}; expected some of {METHODS}")
    return np.clip(np.stack([fns[method](x, m) for x, m in zip(images01, masks)]), 0, 1)


def comparison_grid(
    images01: np.ndarray, masks: np.ndarray, filled: dict[str, np.ndarray], rows: int = 8
) -> np.ndarray:
    """uint8 grid: one row per image; columns original, masked input (hole white), then each method."""
    cols = [images01[:rows], np.where(masks[:rows] > 0.5, images01[:rows], 1.0), *[f[:rows] for f in filled.values()]]
    n, h, w, _ = cols[0].shape
    gap = 2
    grid = np.ones((n * (h + gap) - gap, len(cols) * (w + gap) - gap, 3))
    for c, col in enumerate(cols):
        for r in range(n):
            grid[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = col[r]
    return np.round(grid * 255).astype(np.uint8)


def write_tables(rows: list[Row], out: Path, header: dict) -> None:
    """results.md, results.csv and results.json in `out`."""
    import csv
    import json

    out.mkdir(parents=True, exist_ok=True)
    fields = [f.name for f in dataclasses.fields(Row)]
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(dataclasses.asdict(r) for r in rows)
    (out / "results.json").write_text(
        json.dumps({**header, "results": [dataclasses.asdict(r) for r in rows]}, indent=2) + "\n"
    )
    lines = ["# Inpainting comparison\n", *[f"- {k}: {v}" for k, v in header.items()], ""]
    for kind in dict.fromkeys(r.mask for r in rows):
        lines += [
            f"## {kind}\n",
            "| method | n | PSNR | SSIM | PSNR (hole box) | SSIM (hole box) | L1 (hole) |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {r.method} | {r.n} | {r.psnr:.2f} | {r.ssim:.3f} | {r.psnr_box:.2f} | {r.ssim_box:.3f} | "
            f"{r.l1_hole:.4f} |"
            for r in rows
            if r.mask == kind
        ]
        lines.append("")
    (out / "results.md").write_text("\n".join(lines))


def compare(
    model,
    files: Sequence[str | Path],
    kinds: Sequence[str],
    methods: Sequence[str],
    out: Path,
    seed: int = 0,
    settings=None,
    note: str = "",
    progress: Callable[[str], None] | None = None,
) -> list[Row]:
    """Score each method under each mask kind on `files`; write tables and one figure per mask."""
    from tfinpaint.fill import search_settings
    from tfinpaint.train import save_png

    settings = settings or search_settings(model.card)
    images01 = (load_images(files, model.preprocess, model.image_size) + 1.0) / 2.0
    candidates = None
    if "nearest" in methods:
        candidates = (load_images(training_images(model), model.preprocess, model.image_size) + 1.0) / 2.0
    rows = []
    for kind in kinds:
        m = make_masks(kind, len(images01), model.image_size, seed)
        filled = {}
        for method in methods:
            if progress:
                progress(f"{kind}: {method}")
            filled[method] = run_method(method, images01, m, model, settings, candidates)
            scores = np.array([measure(x, f, k) for x, f, k in zip(images01, filled[method], m)])
            rows.append(Row(kind, method, len(images01), *map(float, scores.mean(axis=0))))
        save_png(out / f"figure_{kind}.png", comparison_grid(images01, m, filled))
    header = {
        "model": str(model.path),
        "images": len(images01),
        "data": note,
        "masks": ", ".join(kinds),
        "random mask": "80% missing",
        "seed": seed,
        "search": dataclasses.asdict(settings),
        "columns of the figures": "original, masked input, " + ", ".join(methods),
    }
    write_tables(rows, out, header)
    return rows
