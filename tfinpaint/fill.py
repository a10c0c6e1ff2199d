"""Filling photos: any size in, the same size out, known pixels untouched.

`fill` is the whole job: it reads photos (paths or arrays) a batch at a time, makes or
reads their masks, crops and resizes each to the model's input by the model's own
preprocessing, runs the latent search, resizes G(z) back and blends it into the
original once, at full resolution. Nothing but the current batch is held in memory.
Only the crop the model sees can be filled. A grayscale photo gets a grayscale result.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from tfinpaint import blend as blend_lib
from tfinpaint import data as data_lib
from tfinpaint import files, store
from tfinpaint import images as images_lib
from tfinpaint import masks as masks_lib
from tfinpaint.errors import DataError, MaskError, TfinpaintError
from tfinpaint.search import BLENDS, SearchSettings, inpaint


class Listed(NamedTuple):
    """A photo found in a folder or by a glob: its path, and its name relative to where the
    search started (results keep that relative place under the output folder)."""

    path: Path
    name: str


Photo = str | os.PathLike | np.ndarray | Listed
MaskSpec = str | os.PathLike | np.ndarray | Sequence[np.ndarray]


class OutputError(TfinpaintError, ValueError):
    """An output file that must not or cannot be written."""


# The region the model sees must be at least this share of the model's side (16 pixels for
# a 64x64 model): below it, the photo holds too little to fill from.
MIN_VIEW = 0.25
# Below this share of known pixels in the model's view, a result carries a warning: the
# fill is then mostly the model's own guess, however well it is blended (random 80% keeps 20%).
MIN_KNOWN = 0.1


@dataclasses.dataclass
class Prepared:
    """One photo and its hole, in the photo's own pixels and in the model's.

    Attributes:
        original: uint8 `[H, W, 3]`.
        mask: `[H, W, 1]`, 1 = known.
        box: (top, left, height, width) of the region the model sees.
        model_image: float32 `[S, S, 3]` in [-1, 1]; zero in the hole.
        model_mask: `[S, S, 1]`; a model pixel is known only if all its photo pixels are.
    """

    original: np.ndarray
    mask: np.ndarray
    box: tuple[int, int, int, int]
    model_image: np.ndarray
    model_mask: np.ndarray


@dataclasses.dataclass
class FilledPhoto:
    """One filled photo.

    Attributes:
        name: the photo's file name, or `image_<i>` for an array.
        source: the photo's path (None for an array).
        image: uint8 `[H, W, 3]`, or `[H, W, 1]` for a grayscale photo: the photo with
            its hole filled; known pixels as given.
        generated: G(z) `[S, S, 3]` in [-1, 1] at the model's size.
        loss: the search's final loss for this photo.
        prepared: the photo, its mask and the model's view of them.
        warning: why this result may disappoint (almost nothing of the view was known), or None.
    """

    name: str
    source: Path | None
    image: np.ndarray
    generated: np.ndarray
    loss: float
    prepared: Prepared
    warning: str | None = None

    def panel(self) -> np.ndarray:
        image = np.repeat(self.image, 3, axis=-1) if self.image.shape[-1] == 1 else self.image
        return panel(self.prepared, self.generated, image)


def mask_in_photo(model_mask: np.ndarray, shape: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    """A mask made at the model's size, stretched (nearest) over the region the model sees."""
    top, left, h, w = box
    full = np.ones(shape + (1,), np.float32)
    full[top : top + h, left : left + w] = images_lib.resize(model_mask, h, w, Image.NEAREST) > 0.5
    return full


def prepare(original: np.ndarray, mask: np.ndarray, preprocess: str, size: int, name: str = "image") -> Prepared:
    """Crop and resize a photo and its mask `[H, W, 1]` to the model's input."""
    h, w = original.shape[:2]
    if mask.shape[:2] != (h, w):
        raise MaskError(f"Expected a mask of shape {(h, w, 1)} for {name}, got {mask.shape}")
    top, left, bh, bw = box = data_lib.crop_box(h, w, preprocess)
    outside = mask.copy()
    outside[top : top + bh, left : left + bw] = 1.0
    if (outside < 0.5).any():
        raise MaskError(
            f"The mask of {name} has missing pixels outside the {bw}x{bh} region at ({left}, {top}) "
            f"that the model sees ({preprocess} preprocessing)"
        )
    crop = original[top : top + bh, left : left + bw]
    known = mask[top : top + bh, left : left + bw]
    model_image = data_lib.preprocess_numpy(crop, "svhn", size)  # already cropped: resize only
    model_mask = (images_lib.resize(known.astype(np.float32), size, size, Image.BOX) > 1.0 - 1e-6).astype(np.float32)
    model_image = np.where(model_mask > 0.5, model_image, 0.0).astype(np.float32)
    return Prepared(original, mask.astype(np.float32), box, model_image, model_mask)


def paste_back(prep: Prepared, generated: np.ndarray, method: str = "poisson") -> np.ndarray:
    """Blend G(z) `[S, S, 3]` in [-1, 1], resized to the crop, into the original photo.

    Only the hole's bounding box (and a pixel around it) is blended, so memory follows the
    hole, not the photo. Where the hole reaches the edge of the crop, G(z) stops: Poisson
    blending takes the boundary there from the photo's own known pixels beyond the edge
    instead of G(z)'s difference to them, so no seam appears along the crop.

    Returns uint8 `[H, W, 3]` whose known pixels equal the original's exactly.
    """
    if method not in BLENDS:
        raise ValueError(f"Unknown blend {method!r}; expected one of {BLENDS}")
    result = prep.original.copy()
    hole = prep.mask[..., 0] < 0.5
    rows, cols = np.flatnonzero(hole.any(axis=1)), np.flatnonzero(hole.any(axis=0))
    if not rows.size:
        return result
    height, width = hole.shape
    r0, r1 = max(rows[0] - 1, 0), min(rows[-1] + 2, height)
    c0, c1 = max(cols[0] - 1, 0), min(cols[-1] + 2, width)
    window = np.s_[r0:r1, c0:c1]
    target = prep.original[window].astype(np.float64)
    source = target.copy()
    guided = np.zeros(target.shape[:2], bool)
    top, left, h, w = prep.box
    a0, a1, b0, b1 = max(r0, top), min(r1, top + h), max(c0, left), min(c1, left + w)
    part = (a0 - top, a1 - top, b0 - left, b1 - left)  # of G(z) resized to the crop: only what the window needs
    gen = images_lib.resize(generated, h, w, Image.BICUBIC, part)
    source[a0 - r0 : a1 - r0, b0 - c0 : b1 - c0] = (gen + 1.0) * 127.5
    guided[a0 - r0 : a1 - r0, b0 - c0 : b1 - c0] = True
    mask = prep.mask[window]
    if method == "poisson":
        out = blend_lib.poisson(source, target, mask, guided)
    else:
        out = blend_lib.overlay(source, target, mask)
    result[window] = np.clip(np.round(out), 0, 255).astype(np.uint8)
    return result


def panel(prep: Prepared, generated: np.ndarray, result: np.ndarray) -> np.ndarray:
    """Original, masked input, G(z) and the result side by side (the region the model sees)."""
    top, left, h, w = prep.box
    crop = np.s_[top : top + h, left : left + w]
    masked = np.where(prep.mask[crop] > 0.5, prep.original[crop], 255).astype(np.uint8)
    gen = images_lib.to_uint8(images_lib.resize(generated, h, w, Image.BICUBIC))
    return images_lib.side_by_side([prep.original[crop], masked, gen, result[crop]])


def photo_mask(
    spec: MaskSpec,
    index: int,
    name: str,
    shape: tuple[int, int],
    preprocess: str,
    size: int,
    *,
    seed: int = 0,
    invert: bool = False,
    **kind_options,
) -> np.ndarray:
    """The photo-sized mask `[H, W, 1]` of photo number `index` from a mask spec.

    `spec` is a kind (`block`, `random`, `half`, `pattern`: made at the model's size,
    seeded per photo by (seed, index)), a mask file (for every photo), a folder of mask
    files matched to the photos by name, one array `[H, W, 1]` for every photo, or a
    sequence of arrays, one per photo (1 = known).
    """
    h, w = shape
    if isinstance(spec, np.ndarray) or (isinstance(spec, Sequence) and not isinstance(spec, str)):
        m = np.asarray(spec if isinstance(spec, np.ndarray) else spec[index], np.float32)
        return m[..., None] if m.ndim == 2 else m
    if spec in masks_lib.KINDS:
        m = masks_lib.make(spec, size, rng=np.random.default_rng([seed, index]), **kind_options)
        return mask_in_photo(m, (h, w), data_lib.crop_box(h, w, preprocess))
    path = Path(spec)
    if path.is_dir():
        return masks_lib.load(masks_lib.find_in_folder(path, name), h, w, invert)
    if path.is_file():
        return masks_lib.load(path, h, w, invert)
    raise MaskError(f"Mask {str(spec)!r} is neither one of {masks_lib.KINDS} nor an existing mask file or folder")


def expand(photos: Iterable[Photo]) -> list[Photo]:
    """Photos given as files, folders (searched recursively) or globs, as a list of files
    (folders' and globs' as `Listed`); arrays pass through. Paths that do not exist are
    kept, for `fill`'s checks to name.

    Raises:
        DataError: a folder holds no image, or a glob matches none.
    """
    out: list[Photo] = []
    for photo in photos:
        if isinstance(photo, (np.ndarray, Listed)) or Path(photo).is_file():
            out.append(photo)
            continue
        spec = str(photo)
        if Path(spec).is_dir():
            root = Path(spec)
        elif any(c in spec for c in "*?["):
            parts = Path(spec).parts
            first = next(i for i, part in enumerate(parts) if any(c in part for c in "*?["))
            root = Path(*parts[:first]) if first else Path(".")
        else:
            out.append(photo)
            continue
        found = data_lib.list_images(spec)
        if not found:
            raise DataError(f"No images {'found in' if Path(spec).is_dir() else 'match'} {spec}")
        out += [Listed(Path(f), os.path.relpath(f, root)) for f in found]
    return out


def photo_name(photo: Photo, index: int) -> str:
    """The name a photo's results are written under: its file name, its path relative to
    the folder it was found in, or `image_<index>` for an array."""
    if isinstance(photo, np.ndarray):
        return f"image_{index}"
    return photo.name if isinstance(photo, Listed) else Path(photo).name


def read_photo(
    photo: Photo, index: int, max_pixels: int = data_lib.MAX_PIXELS
) -> tuple[str, Path | None, np.ndarray, bool]:
    """(name, path or None, uint8 `[H, W, 3]`, whether it is grayscale) of a photo given as
    a path or an array (`[H, W, 3]`, or `[H, W]` / `[H, W, 1]` for grayscale)."""
    if isinstance(photo, np.ndarray):
        image = photo if photo.ndim == 3 else photo[..., None]
        if image.dtype != np.uint8 or image.shape[-1] not in (1, 3):
            raise DataError(f"Expected photo {index} as uint8 [H, W, 3], got {photo.dtype} {list(photo.shape)}")
        gray = image.shape[-1] == 1
        return f"image_{index}", None, np.repeat(image, 3, axis=-1) if gray else image, gray
    path = photo.path if isinstance(photo, Listed) else Path(photo)
    if not path.is_file():
        raise DataError(f"Cannot read image {path}: no such file")
    image = data_lib.load_image_file(path, max_pixels)
    return photo_name(photo, index), path, image, data_lib.is_grayscale(path)


def check_size(height: int, width: int, preprocess: str, size: int, name: str) -> None:
    """Refuse a photo whose region the model sees is under `MIN_VIEW` of the model's side."""
    _, _, h, w = data_lib.crop_box(height, width, preprocess)
    least = max(1, int(np.ceil(size * MIN_VIEW)))
    if min(h, w) < least:
        raise DataError(
            f"Image {name} is {width}x{height}: the region the model sees ({w}x{h}, {preprocess} preprocessing) "
            f"must be at least {least}x{least} pixels"
        )


def known_share_warning(prep: Prepared, name: str) -> str | None:
    """A warning if under `MIN_KNOWN` of the model's view of a photo is known."""
    share = float(prep.model_mask.mean())
    if share >= MIN_KNOWN:
        return None
    return (
        f"only {share:.0%} of the region the model sees in {name} is known (under {MIN_KNOWN:.0%}): "
        "the fill is mostly the model's own guess"
    )


def to_grayscale(image: np.ndarray) -> np.ndarray:
    """uint8 `[H, W, 3]` to `[H, W, 1]` by ITU-R 601 luma; a pixel with R = G = B keeps its value."""
    luma = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.clip(np.round(luma), 0, 255).astype(np.uint8)[..., None]


def output_paths(name: str, out: Path) -> tuple[Path, Path]:
    """Where a photo's result and panel go: `OUT/STEM_filled.png`, `OUT/STEM_panel.png`
    (under the photo's relative folder, for one found in a folder)."""
    where = Path(out) / Path(name).parent
    stem = Path(name).stem
    return where / f"{stem}_filled.png", where / f"{stem}_panel.png"


def check_outputs(photos: Sequence[Photo], out: Path, panel: bool, overwrite: bool) -> list[Photo]:
    """Check, before any work, where the results go; returns the photos still to fill.

    Without `overwrite`, a photo whose outputs all exist is left out, so a run that was
    interrupted fills only what is missing when run again. Temporaries left in `out` by
    killed runs are removed.

    Raises:
        OutputError: two photos would be written to one name, or `out` cannot be written.
    """
    out = Path(out)
    names = [output_paths(photo_name(p, i), out) for i, p in enumerate(photos)]
    filled = [n[0] for n in names]
    if len(set(filled)) != len(filled):
        seen: set[Path] = set()
        dup = next(f for f in filled if f in seen or seen.add(f))
        raise OutputError(f"Two photos would both be written to {dup}; give them different names")
    try:
        out.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out).close()
    except OSError as e:
        raise OutputError(f"Cannot write results to {out}: {e.strerror or e}") from None
    files.remove_stale_temporaries(out)
    if overwrite:
        return list(photos)
    return [p for p, (result, pan) in zip(photos, names) if not (result.exists() and (pan.exists() or not panel))]


def save(result: FilledPhoto, out: str | os.PathLike, panel: bool = False, overwrite: bool = False) -> list[Path]:
    """Write a result (and its panel) to `out`, each file atomically; returns the paths written.

    Without `overwrite`, an existing file is kept, whoever wrote it (another run, meanwhile)."""
    filled_path, panel_path = output_paths(result.name, Path(out))
    outputs = [(filled_path, result.image)]
    if panel:
        outputs.append((panel_path, result.panel()))
    return [path for path, image in outputs if images_lib.save_png(path, image, replace=overwrite)]


def _check_inputs(photos: Sequence[Photo], mask: MaskSpec, max_pixels: int, model: store.Model) -> None:
    """The cheap checks, before any photo is filled: every file exists, is an image within
    `max_pixels` and large enough for the model (from its header), and has its mask."""
    folder = None if isinstance(mask, (np.ndarray, Sequence)) and not isinstance(mask, str) else Path(mask)
    for i, photo in enumerate(photos):
        if isinstance(photo, np.ndarray):
            check_size(*photo.shape[:2], model.preprocess, model.image_size, f"image_{i}")
            continue
        photo = photo.path if isinstance(photo, Listed) else photo
        if not Path(photo).is_file():
            raise DataError(f"Cannot read image {photo}: no such file")
        width, height = data_lib.check_image_file(photo, max_pixels)
        check_size(height, width, model.preprocess, model.image_size, str(photo))
        if folder is not None and folder.is_dir():
            masks_lib.find_in_folder(folder, photo)


Progress = Callable[[str, int, int, float], None]


def fill(
    photos: Iterable[Photo],
    model: store.Model | str | os.PathLike | None = None,
    mask: MaskSpec = "block",
    *,
    settings: SearchSettings | None = None,
    blend: str = "poisson",
    batch_size: int = 16,
    seed: int = 0,
    invert: bool = False,
    progress: Progress | None = None,
    max_pixels: int = data_lib.MAX_PIXELS,
    **options,
) -> Iterator[FilledPhoto]:
    """Fill the holes of photos with the model, a batch at a time; yields one result per photo.

    Args:
        photos: image files, folders (searched recursively), globs, or uint8 arrays
            `[H, W, 3]` (`[H, W]` grayscale), of any size.
        model: a loaded `store.Model`, a shipped model's name, a run or an export folder
            (None: the default shipped model).
        mask: see `photo_mask`: a kind, a mask file, a folder of masks, or arrays.
        settings: search settings (default: the model card's); keyword `options` that are
            `SearchSettings` fields replace single fields, the others (`block_size`,
            `missing`, `side`) shape generated masks.
        blend: `poisson` (eq. 6) or `overlay` (eq. 5), at the photo's full resolution.
        batch_size: photos searched together.
        seed: seeds generated masks (per photo) and, unless `settings` says otherwise,
            the initial latents.
        invert: mask files: black = missing instead of white.
        progress: called as `progress(label, iteration, iterations, loss)` during each
            batch's search; `label` names the batch ("Filling 1-16 of 40").
        max_pixels: photos with more pixels are refused before any search.

    Yields:
        `FilledPhoto`s, in the order of `photos`.
    """
    if blend not in BLENDS:
        raise ValueError(f"Unknown blend {blend!r}; expected one of {BLENDS}")
    if not isinstance(model, store.Model):
        model = store.load_model(model)
    search_fields = {f.name for f in dataclasses.fields(SearchSettings)}
    chosen = {k: v for k, v in options.items() if k in search_fields}
    mask_options = {k: v for k, v in options.items() if k not in search_fields and v is not None}
    if settings is None:
        settings = model.card.search_settings(**{"seed": seed, **chosen})
    elif chosen:
        settings = dataclasses.replace(settings, **{k: v for k, v in chosen.items() if v is not None})
    photos = expand(photos)
    _check_inputs(photos, mask, max_pixels, model)
    total = len(photos)
    for start in range(0, total, batch_size):
        batch = []
        for i in range(start, min(start + batch_size, total)):
            name, path, original, gray = read_photo(photos[i], i, max_pixels)
            m = photo_mask(
                mask,
                i,
                name,
                original.shape[:2],
                model.preprocess,
                model.image_size,
                seed=seed,
                invert=invert,
                **mask_options,
            )
            prep = prepare(original, m, model.preprocess, model.image_size, str(path or name))
            batch.append((name, path, gray, prep))
        label = f"Filling {start + 1}-{start + len(batch)} of {total}"
        report = (lambda it, loss, label=label: progress(label, it, settings.iterations, loss)) if progress else None
        result = inpaint(
            np.stack([b[3].model_image for b in batch]),
            np.stack([b[3].model_mask for b in batch]),
            model.generator,
            model.discriminator,
            settings,
            blend=None,
            progress=report,
        )
        for k, (name, path, gray, prep) in enumerate(batch):
            image = paste_back(prep, result.generated[k], blend)
            if gray:
                image = to_grayscale(image)
            warning = known_share_warning(prep, str(path or name))
            yield FilledPhoto(name, path, image, result.generated[k], float(result.loss[k]), prep, warning)
