"""Scoring inpainting on real images: our search against simple baselines, per mask kind.

One pipeline (`compare`) serves `tfinpaint evaluate`, the model cards' held-out figures
and the tuning scripts. Images are scored at the model's resolution after its own
preprocessing, on [0, 1], as the paper does (64x64 faces and digits). The mask kind
`none` measures how closely G itself reproduces each image (G(z) after the search, no
blending): the ceiling of every fill.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from tfinpaint import baselines, faces, metrics, photos, store
from tfinpaint import data as data_lib
from tfinpaint import images as images_lib
from tfinpaint import masks as masks_lib
from tfinpaint.constants import EVAL_KINDS, EVAL_METHODS, OURS
from tfinpaint.errors import ArgumentError, DataError, ModelError
from tfinpaint.search import SearchSettings, inpaint


def load_images(
    files: Sequence[str | Path], preprocess: str, size: int, template: faces.Template | None = None
) -> np.ndarray:
    """Files to float32 `[N, size, size, 3]` in [-1, 1], by the model's preprocessing, or,
    with a face template, each file's largest face seen through its frame (as `fill` aligns).

    Raises:
        DataError: with a template, a file in which no face is found.
    """
    if template is None:
        images = [data_lib.preprocess_numpy(photos.load_image_file(f), preprocess, size) for f in files]
        return np.stack(images).astype(np.float32)
    out = []
    for f in files:
        photo = photos.load_image_file(f)
        found = faces.detector()(photo)
        if not found:
            raise DataError(f"No face found in {f}")
        frame = max((faces.Frame.on_face(face, template) for face in found), key=lambda fr: fr.side)
        out.append(frame.sample(photo, size) / 127.5 - 1.0)
    return np.stack(out).astype(np.float32)


KINDS = EVAL_KINDS
METHODS = EVAL_METHODS


def make_masks(kind: str, n: int, size: int, seed: int) -> np.ndarray:
    """`n` masks of one kind (`none`: nothing missing); random kinds are seeded per image."""
    if kind == "none":
        return np.ones((n, size, size, 1), np.float32)
    return np.stack([masks_lib.make(kind, size, rng=np.random.default_rng([seed, i])) for i in range(n)])


@dataclasses.dataclass(frozen=True)
class Row:
    """Mean scores of one method on one mask kind over `n` images (all on [0, 1]).

    `*_box` are measured on the bounding box of each image's hole; `l1_hole` is the
    mean absolute error over the hole's pixels; `detail_hole` is the fill's fine detail
    in the hole against the photo's (`metrics.detail`): 1 as detailed as the photo, below
    1 smoother, above 1 noisier. `sharpness_hole` is the median over images of the fill's
    `metrics.sharpness` (squared Laplacian of grey levels, hole eroded by 2 pixels) over the
    photo's: the same reading, less sensitive to the hole's edge; NaN where no hole is left
    after the erosion (a random mask's scattered pixels).
    """

    mask: str
    method: str
    n: int
    psnr: float
    ssim: float
    psnr_box: float
    ssim_box: float
    l1_hole: float
    detail_hole: float
    sharpness_hole: float


def hole_box(mask: np.ndarray) -> tuple[slice, slice]:
    """Bounding box of a mask's hole (the whole image when there is none)."""
    rows, cols = np.nonzero(np.asarray(mask).reshape(mask.shape[:2]) < 0.5)
    if rows.size == 0:
        return slice(None), slice(None)
    return slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1)


def measure(original: np.ndarray, filled: np.ndarray, mask: np.ndarray) -> tuple[float, ...]:
    """(PSNR, SSIM, PSNR on the hole's box, SSIM on the hole's box, mean L1 in the hole, detail in
    the hole against the original's, sharpness in the eroded hole against the original's), on
    [0, 1]; with no hole, the last three cover the whole image."""
    box = hole_box(mask)
    hole = np.asarray(mask).reshape(mask.shape[:2]) < 0.5
    l1 = float(np.abs(filled - original)[hole].mean()) if hole.any() else 0.0
    where = hole if hole.any() else None
    region, erode = (hole, 2) if hole.any() else (np.ones_like(hole), 0)
    return (
        metrics.psnr(original, filled),
        metrics.ssim(original, filled),
        metrics.psnr(original[box], filled[box]),
        metrics.ssim(original[box], filled[box]),
        l1,
        metrics.detail(filled, where) / max(metrics.detail(original, where), 1e-12),
        metrics.sharpness(filled, region, erode) / max(metrics.sharpness(original, region, erode), 1e-12),
    )


def _repository(model: store.Model) -> Path | None:
    """Shipped cards record their data relative to the repository they were made in."""
    return store.shipped_dir().parent if model.shipped else None


def training_images(model: store.Model) -> list[str]:
    """The files the model's run trained on (its datasets minus its held-out list)."""
    folders = model.card.dataset_folders(_repository(model))
    if not folders:
        raise DataError(f"The training images of {model.path} ({model.card.dataset or 'unknown'}) cannot be found")
    held = {Path(f).name for f in model.card.heldout}
    return [f for folder in folders for f in photos.list_images(folder) if Path(f).name not in held]


def choose_images(data_dir: str | Path, model, n: int) -> tuple[list[str], str]:
    """Up to `n` images of `data_dir` to score, and a note on how they relate to training.

    When `data_dir` is the model's training folder, only its held-out images are used.
    """
    files = photos.list_images(data_dir)
    if not files:
        raise DataError(f"No images found in {data_dir}")
    folders = [f.resolve() for f in model.card.dataset_folders(_repository(model))]
    held = {Path(f).name for f in model.card.heldout}
    if Path(data_dir).resolve() in folders:
        files = [f for f in files if Path(f).name in held]
        if not files:
            raise DataError(f"{data_dir} is the model's training folder and none of it was held out")
        return files[:n], f"held-out images of the model's training folder ({len(files)} held out)"
    try:
        trained = {Path(f).name for f in training_images(model)}
    except DataError:
        return files[:n], "images from outside the model's training folder (its training images were not found)"
    overlap = sum(Path(f).name in trained for f in files[:n])
    if overlap:
        return files[:n], f"WARNING: {overlap} of these {min(n, len(files))} images have the names of training images"
    return files[:n], "images from outside the model's training folder"


def run_method(
    method: str,
    images01: np.ndarray,
    masks: np.ndarray,
    model: store.Model | None = None,
    settings: SearchSettings | None = None,
    candidates: np.ndarray | None = None,
    batch_size: int = 64,
    generated: bool = False,
    latents: np.ndarray | None = None,
) -> np.ndarray:
    """Fill `[N, H, W, C]` images in [0, 1] with one method; returns filled images in [0, 1].

    With `generated`, `ours` returns G(z) itself instead of the blended result. `latents`
    (the `ours-*` methods): the z found by the same search with no refinement, to refine
    from instead of searching again (what `search_latents` returns).
    """
    if method in OURS:
        settings = settings or model.card.search_settings()
        if method != "ours":
            settings = dataclasses.replace(settings, refine=method.removeprefix("ours-"))
        if latents is not None:
            settings = dataclasses.replace(settings, iterations=0, restarts=1)
        out = []
        for start in range(0, len(images01), batch_size):
            sl = slice(start, start + batch_size)
            z = None if latents is None else latents[sl]
            r = inpaint(
                images01[sl] * 2 - 1,
                masks[sl],
                model.generator,
                model.discriminator,
                settings,
                latents=z,
                encoder=model.encoder,
            )
            out.append(r.generated if generated else r.filled)
        return np.clip((np.concatenate(out) + 1) / 2, 0, 1)
    fns = {
        "mean": metrics.mean_colour_fill,
        "tv": lambda x, m: baselines.total_variation(x, m)[0],
        "lowrank": lambda x, m: baselines.low_rank(x, m)[0],
        "telea": lambda x, m: baselines.opencv(x, m, "telea"),
        "ns": lambda x, m: baselines.opencv(x, m, "ns"),
        "biharmonic": baselines.biharmonic,
        "nearest": lambda x, m: baselines.nearest_neighbour(x, m, candidates)[0],
    }
    if method not in fns:
        raise ArgumentError(f"Unknown method {method!r}; expected some of {METHODS}")
    return np.clip(np.stack([fns[method](x, m) for x, m in zip(images01, masks)]), 0, 1)


def search_latents(
    images01: np.ndarray, masks: np.ndarray, model: store.Model, settings: SearchSettings, batch_size: int = 64
) -> np.ndarray:
    """The z search alone (no refinement) on `[N, H, W, C]` images in [0, 1]: the chosen z `[N, latent]`."""
    plain = dataclasses.replace(settings, refine="none")
    return np.concatenate(
        [
            inpaint(
                images01[i : i + batch_size] * 2 - 1,
                masks[i : i + batch_size],
                model.generator,
                model.discriminator,
                plain,
                blend=None,
                encoder=model.encoder,
            ).z
            for i in range(0, len(images01), batch_size)
        ]
    )


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
            "| method | n | PSNR | SSIM | PSNR (hole box) | SSIM (hole box) | L1 (hole) | detail (hole) "
            "| sharpness (hole) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {r.method} | {r.n} | {r.psnr:.2f} | {r.ssim:.3f} | {r.psnr_box:.2f} | {r.ssim_box:.3f} | "
            f"{r.l1_hole:.4f} | {r.detail_hole:.2f} | {r.sharpness_hole:.2f} |"
            for r in rows
            if r.mask == kind
        ]
        lines.append("")
    (out / "results.md").write_text("\n".join(lines))


def kind_settings(settings: SearchSettings, kind: str) -> SearchSettings:
    """The settings a mask kind is searched with: with no hole the CVPR weights are all zero
    (they weight known pixels by the missing ones around them), so `none` searches unweighted."""
    return dataclasses.replace(settings, weighted=False) if kind == "none" else settings


def compare(
    model: store.Model,
    files: Sequence[str | Path],
    kinds: Sequence[str],
    methods: Sequence[str],
    out: Path | None = None,
    seed: int = 0,
    settings: SearchSettings | None = None,
    note: str = "",
    progress: Callable[[str], None] | None = None,
    align: bool = False,
) -> list[Row]:
    """Score each method under each mask kind on `files`; with `out`, write the tables and
    one figure per mask kind there. With `align` (a face model), each photo's largest face
    is scored in its own frame, as `fill --align` fills it.

    Under the kind `none` only `ours` is scored, on G(z) itself (no blending), searched with
    unweighted contextual loss (`kind_settings`).
    """
    for kind in kinds:
        if kind not in KINDS:
            raise ArgumentError(f"Unknown mask kind {kind!r}; expected some of {KINDS}")
    settings = settings or model.card.search_settings()
    template = model.card.face_template() if align else None
    if align and template is None:
        raise ModelError(f"Model {model.path} is not a face model (its card has no landmark template): it cannot align")
    images01 = (load_images(files, model.preprocess, model.image_size, template) + 1.0) / 2.0
    candidates = None
    if "nearest" in methods:
        candidates = (data_lib.preprocess_files(training_images(model), model.preprocess, model.image_size) + 1.0) / 2.0
    rows = []
    for kind in kinds:
        m = make_masks(kind, len(images01), model.image_size, seed)
        filled = {}
        ks = kind_settings(settings, kind)
        ours = [x for x in methods if x in OURS]
        # Several of our columns share one z search: each refines from the same z
        latents = search_latents(images01, m, model, ks) if len(ours) > 1 and ks.restarts == 1 else None
        for method in methods if kind != "none" else ours:
            if progress:
                progress(f"{kind}: {method}")
            z = latents if method in OURS else None
            filled[method] = run_method(method, images01, m, model, ks, candidates, generated=kind == "none", latents=z)
            scores = np.array([measure(x, f, k) for x, f, k in zip(images01, filled[method], m)])
            sharp = scores[:, -1][~np.isnan(scores[:, -1])]  # a median: one noisy fill does not pull it
            sharpness = float(np.median(sharp)) if sharp.size else math.nan
            rows.append(Row(kind, method, len(images01), *map(float, scores[:, :-1].mean(axis=0)), sharpness))
        if out is not None:
            images_lib.save_png(Path(out) / f"figure_{kind}.png", comparison_grid(images01, m, filled))
    if out is not None:
        header = {
            "model": str(model.path),
            "images": len(images01),
            "data": note,
            "masks": ", ".join(kinds),
            "aligned": "each photo's largest face, in its own frame" if align else "no (the model's centre crop)",
            "random mask": "80% missing",
            "seed": seed,
            "search": dataclasses.asdict(settings),
            "columns of the figures": "original, masked input, " + ", ".join(methods),
        }
        write_tables(rows, Path(out), header)
    return rows
