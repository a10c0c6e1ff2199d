"""Where photos come from and where their results go: finding them (files, folders, globs),
reading one (as viewers show it, in one open), naming and writing results atomically.

Numpy and Pillow only: the command line's early checks use it before TensorFlow starts.
"""

from __future__ import annotations

import dataclasses
import glob as globlib
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from tfinpaint import files
from tfinpaint import images as images_lib
from tfinpaint import masks as masks_lib
from tfinpaint.constants import MAX_PIXELS
from tfinpaint.errors import DataError, OutputError, no_such_image
from tfinpaint.images import IMAGE_EXTENSIONS


class Listed(NamedTuple):
    """A photo found in a folder or by a glob: its path, and its name relative to where the
    search started (results keep that relative place under the output folder)."""

    path: Path
    name: str


# How a caller names a photo: a path, an array (uint8 `[H, W, 3]`, `[H, W]` grayscale) or a
# photo found in a folder.
PhotoSpec = str | os.PathLike | np.ndarray | Listed

EXIF_ORIENTATION = 0x0112  # the EXIF tag that says how a photo is turned to be shown
GRAYSCALE_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


@dataclasses.dataclass(frozen=True)
class Photo:
    """One photo, read.

    Attributes:
        name: what its results are named after (`photo_name`).
        path: its file, or None for an array.
        pixels: uint8 `[H, W, 3]` as shown (EXIF orientation applied); a grayscale photo's
            three channels are equal.
        gray: whether its result is written grayscale.
        icc_profile: the file's colour profile, written with its result.
    """

    name: str
    path: Path | None
    pixels: np.ndarray
    gray: bool = False
    icc_profile: bytes | None = None

    @property
    def label(self) -> str:
        """How messages name it: its path, or its name for an array."""
        return str(self.path or self.name)


def expand(photos: Iterable[PhotoSpec]) -> list[PhotoSpec]:
    """Photos given as files, folders (searched recursively) or globs, as a list of files
    (folders' and globs' as `Listed`); arrays pass through. Paths that do not exist are
    kept, for `check` to name.

    Raises:
        DataError: a folder holds no image, or a glob matches none.
    """
    out: list[PhotoSpec] = []
    for photo in photos:
        if isinstance(photo, (np.ndarray, Listed)) or Path(photo).is_file():
            out.append(photo)
            continue
        spec = str(photo)
        if Path(spec).is_dir():
            root = Path(spec)
        elif files.is_glob(spec):
            parts = Path(spec).parts
            first = next(i for i, part in enumerate(parts) if files.is_glob(part))
            root = Path(*parts[:first]) if first else Path(".")
        else:
            out.append(photo)
            continue
        found = list_images(spec)
        if not found:
            raise DataError(f"No images {'found in' if Path(spec).is_dir() else 'match'} {spec}")
        out += [Listed(Path(f), os.path.relpath(f, root)) for f in found]
    return out


def list_images(spec: str | os.PathLike) -> list[str]:
    """Image files under a folder (recursively) or matching a glob, sorted; only regular files
    (or links to them), so a FIFO or a link that loops does not stop the rest."""
    spec = str(spec)
    if os.path.isdir(spec):  # regular files only: a FIFO or a link to nowhere is no photo
        found = [
            path
            for root, _, names in os.walk(spec)
            for f in names
            if f.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(path := os.path.join(root, f))
        ]
    elif os.path.isfile(spec):
        found = [spec]
    else:
        found = [
            f for f in globlib.glob(spec, recursive=True) if os.path.isfile(f) and f.lower().endswith(IMAGE_EXTENSIONS)
        ]
    return sorted(found)


def photo_name(photo: PhotoSpec, index: int) -> str:
    """The name a photo's results are written under: its file name, its path relative to
    the folder it was found in, or `image_<index>` for an array."""
    if isinstance(photo, np.ndarray):
        return f"image_{index}"
    return photo.name if isinstance(photo, Listed) else Path(photo).name


def photo_path(photo: PhotoSpec) -> Path | None:
    """A photo's file, or None for an array."""
    if isinstance(photo, np.ndarray):
        return None
    return photo.path if isinstance(photo, Listed) else Path(photo)


def open_checked(path: str | os.PathLike, max_pixels: int) -> Image.Image:
    """The image, opened (its header read, nothing decoded) and within `max_pixels`.

    Raises:
        DataError: unreadable, or over the limit.
    """
    try:
        return images_lib.open_image(path, max_pixels)
    except images_lib.TooLarge as e:
        raise DataError(f"Image {path} is {e}; pass `max_pixels={e.pixels}` to fill it anyway") from None
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise DataError(f"Cannot read image {path}: {e}") from None


def header_size(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """(width, height) of an image as it is shown (its EXIF orientation applied), from its header.

    Raises:
        DataError: not a readable image, or over `max_pixels`.
    """
    with open_checked(path, max_pixels) as im:
        try:
            turned = im.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8)  # a quarter turn: as shown
        except (OSError, SyntaxError, ValueError):  # a PNG's EXIF may follow its pixels, read with
            turned = False  # them: cut off, the photo's own read reports it (and only it fails)
        return (im.height, im.width) if turned else im.size


def _pixels(im: Image.Image, path) -> np.ndarray:
    """An opened image of any mode (grayscale, RGBA, palette, 16-bit) as uint8 RGB, turned as
    its EXIF orientation says (how phones store portrait photos); alpha over white."""
    try:
        im = ImageOps.exif_transpose(im)
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(im, dtype=np.float64)
            top = 65535.0 if arr.max() > 255 else 255.0
            im = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8))
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            im = im.convert("RGBA")
            white = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(white, im)
        return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as e:  # a truncated or damaged file
        raise DataError(f"Cannot read image {path}: {e}") from None


def load_image_file(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Any image file as uint8 RGB `[H, W, 3]`, as viewers show it (see `read`).

    Raises:
        DataError: unreadable, or over `max_pixels` (checked before decoding).
    """
    with open_checked(path, max_pixels) as im:
        return _pixels(im, path)


def read(photo: PhotoSpec, index: int, max_pixels: int = MAX_PIXELS) -> Photo:
    """A photo given as a path (opened once: pixels, mode and colour profile) or as an array
    (`[H, W, 3]`, or `[H, W]` / `[H, W, 1]` for grayscale).

    Raises:
        DataError: no such file, unreadable or damaged, over `max_pixels`, or an array that is
            not uint8 with 1 or 3 channels.
    """
    if isinstance(photo, np.ndarray):
        image = photo if photo.ndim == 3 else photo[..., None]
        if image.dtype != np.uint8 or image.shape[-1] not in (1, 3):
            raise DataError(f"Expected photo {index} as uint8 [H, W, 3], got {photo.dtype} {list(photo.shape)}")
        gray = image.shape[-1] == 1
        return Photo(f"image_{index}", None, np.repeat(image, 3, axis=-1) if gray else image, gray)
    path = photo_path(photo)
    if not path.is_file():
        raise no_such_image(path)
    with open_checked(path, max_pixels) as im:
        gray, profile = im.mode in GRAYSCALE_MODES, im.info.get("icc_profile") or None
        return Photo(photo_name(photo, index), path, _pixels(im, path), gray, profile)


# The region the model sees must be at least this share of the model's side (16 pixels for
# a 64x64 model): below it, the photo holds too little to fill from.
MIN_VIEW = 0.25


def check_size(height: int, width: int, preprocess: str, size: int, name: str) -> None:
    """Refuse a photo whose region the model sees is under `MIN_VIEW` of the model's side."""
    box = images_lib.crop_box(height, width, preprocess)
    least = max(1, int(np.ceil(size * MIN_VIEW)))
    if min(box.height, box.width) < least:
        raise DataError(
            f"Image {name} is {width}x{height}: the region the model sees ({box.width}x{box.height}, {preprocess} "
            f"preprocessing) must be at least {least}x{least} pixels"
        )


def check(photos: Sequence[PhotoSpec], mask, max_pixels: int, preprocess: str, size: int) -> None:
    """The cheap checks, before any photo is filled: the mask exists (a mask file is
    readable); every file exists, is an image within `max_pixels` and large enough for the
    model (from its header), and has its mask in a folder of masks."""
    named = not isinstance(mask, (np.ndarray, Sequence)) or isinstance(mask, str)
    if named:
        masks_lib.check_spec(mask)
        if str(mask) not in masks_lib.KINDS and Path(mask).is_file():
            masks_lib.load(mask, 8, 8, max_pixels=max_pixels)  # readable, once, before any photo
    for i, photo in enumerate(photos):
        if isinstance(photo, np.ndarray):
            check_size(*photo.shape[:2], preprocess, size, f"image_{i}")
            continue
        path = photo_path(photo)
        if not path.is_file():
            raise DataError(f"Cannot read image {path}: no such file")
        width, height = header_size(path, max_pixels)
        check_size(height, width, preprocess, size, str(path))
        if named and Path(mask).is_dir():
            masks_lib.find_in_folder(mask, path)


def to_grayscale(image: np.ndarray) -> np.ndarray:
    """uint8 `[H, W, 3]` to `[H, W, 1]` by ITU-R 601 luma; a pixel with R = G = B keeps its value."""
    luma = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.clip(np.round(luma), 0, 255).astype(np.uint8)[..., None]


def output_paths(name: str, out: str | os.PathLike) -> tuple[Path, Path]:
    """Where a photo's result and panel go: `OUT/STEM_filled.png`, `OUT/STEM_panel.png`
    (under the photo's relative folder, for one found in a folder)."""
    where = Path(out) / Path(name).parent
    stem = Path(name).stem
    return where / f"{stem}_filled.png", where / f"{stem}_panel.png"


def still_to_fill(photos: Sequence[PhotoSpec], out: str | os.PathLike, panel: bool, overwrite: bool) -> list[PhotoSpec]:
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


def write(
    name: str,
    out: str | os.PathLike,
    image: np.ndarray,
    panel: np.ndarray | None = None,
    icc_profile: bytes | None = None,
    overwrite: bool = False,
) -> list[tuple[Path, bool]]:
    """Write a result (and its panel) under `out`, each file atomically, with the photo's
    colour profile. Without `overwrite`, an existing file is kept, whoever wrote it (another
    run, meanwhile). Returns each output's path and whether it was written."""
    filled_path, panel_path = output_paths(name, out)
    outputs = [(filled_path, image)] + ([(panel_path, panel)] if panel is not None else [])
    return [
        (path, images_lib.save_png(path, picture, replace=overwrite, icc_profile=icc_profile))
        for path, picture in outputs
    ]
