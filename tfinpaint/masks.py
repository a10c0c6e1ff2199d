"""Masks: float32 `[H, W, 1]`, 1 = known pixel, 0 = missing (the paper's M).

Generated kinds (`block`, `random`, `half`, `pattern`) are made at the size asked for;
mask files of any size are resized with nearest neighbour, white = missing unless
inverted. A folder of mask files gives each image the mask with its file name.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy.ndimage import gaussian_filter

from tfinpaint import images as images_lib
from tfinpaint.constants import MASK_KINDS, MAX_PIXELS, SIDES
from tfinpaint.errors import MaskError
from tfinpaint.images import IMAGE_EXTENSIONS

KINDS = MASK_KINDS


@dataclasses.dataclass(frozen=True)
class MaskOptions:
    """How the generated kinds are made, checked once when made: the `block`'s side in
    model pixels (None: half the model's side), the share of pixels `random` leaves
    missing, and the side `half` leaves missing."""

    block_size: int | None = None
    missing: float = 0.8
    side: str = "left"

    def __post_init__(self):
        if self.block_size is not None and (
            isinstance(self.block_size, bool) or not isinstance(self.block_size, int) or self.block_size < 1
        ):
            raise MaskError(f"block_size must be a whole number of at least 1, got {self.block_size!r}")
        if isinstance(self.missing, bool) or not isinstance(self.missing, (int, float)) or not 0 <= self.missing <= 1:
            raise MaskError(f"missing must be a share between 0 and 1, got {self.missing!r}")
        if self.side not in SIDES:
            raise MaskError(f"side must be one of {SIDES}, got {self.side!r}")

    def check(self, size: int) -> None:
        """Refuse a block larger than the model's side."""
        if self.block_size is not None and self.block_size > size:
            raise MaskError(f"block_size must be at most the model's side ({size}), got {self.block_size}")


def block(size: int, block_size: int | None = None) -> np.ndarray:
    """A centred square hole, `block_size` on a side (default: half of `size`)."""
    block_size = size // 2 if block_size is None else block_size
    if not 0 < block_size <= size:
        raise MaskError(f"Expected a block size between 1 and {size}, got {block_size}")
    m = np.ones((size, size, 1), np.float32)
    top = (size - block_size) // 2
    m[top : top + block_size, top : top + block_size] = 0.0
    return m


def random(size: int, missing: float = 0.8, rng: np.random.Generator | None = None) -> np.ndarray:
    """Each pixel missing independently with probability `missing`."""
    if not 0.0 <= missing <= 1.0:
        raise MaskError(f"Expected a missing fraction in [0, 1], got {missing}")
    rng = rng or np.random.default_rng(0)
    return (rng.random((size, size, 1)) >= missing).astype(np.float32)


def half(size: int, side: str = "left") -> np.ndarray:
    """One half of the image missing: `left`, `right`, `top` or `bottom`."""
    m = np.ones((size, size, 1), np.float32)
    h = size // 2
    regions = {"left": np.s_[:, :h], "right": np.s_[:, h:], "top": np.s_[:h, :], "bottom": np.s_[h:, :]}
    if side not in regions:
        raise MaskError(f"Expected a side in {SIDES}, got {side!r}")
    m[regions[side]] = 0.0
    return m


def pattern(size: int, coverage: float = 0.25, rng: np.random.Generator | None = None) -> np.ndarray:
    """Random blobs covering `coverage` of the image (smoothed noise, thresholded)."""
    rng = rng or np.random.default_rng(0)
    noise = gaussian_filter(rng.standard_normal((size, size)), sigma=size / 12, mode="wrap")
    hole = noise < np.quantile(noise, coverage)
    return (~hole).astype(np.float32)[..., None]


def strokes(size: int, count: int = 4, rng: np.random.Generator | None = None) -> np.ndarray:
    """Free-form holes: `count` brush strokes, each a random walk of thick line segments."""
    rng = rng or np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    hole = np.zeros((size, size), bool)
    for _ in range(count):
        y, x = rng.uniform(0, size, 2)
        radius = rng.uniform(size / 32, size / 10)
        angle = rng.uniform(0, 2 * np.pi)
        for _ in range(int(rng.integers(3, 8))):
            angle += rng.uniform(-1.0, 1.0)
            length = rng.uniform(size / 10, size / 4)
            for t in np.linspace(0, 1, 8):
                cy, cx = y + t * length * np.sin(angle), x + t * length * np.cos(angle)
                hole |= (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
            y, x = np.clip([y + length * np.sin(angle), x + length * np.cos(angle)], 0, size - 1)
    return (~hole).astype(np.float32)[..., None]


def any_kind(size: int, rng: np.random.Generator) -> np.ndarray:
    """A mask of a kind drawn at random, for training the encoder: the centre block, a block
    of random size and place, random 20-95% missing, a half, pattern blobs or strokes."""
    kind = rng.integers(6)
    if kind == 0:
        return block(size)
    if kind == 1:
        side = int(rng.integers(size // 8, size * 3 // 4 + 1))
        top, left = rng.integers(0, size - side + 1, 2)
        m = np.ones((size, size, 1), np.float32)
        m[top : top + side, left : left + side] = 0.0
        return m
    if kind == 2:
        return random(size, float(rng.uniform(0.2, 0.95)), rng)
    if kind == 3:
        return half(size, SIDES[int(rng.integers(4))])
    if kind == 4:
        return pattern(size, float(rng.uniform(0.1, 0.5)), rng)
    return strokes(size, int(rng.integers(1, 7)), rng)


def from_image(mask_image: np.ndarray, height: int, width: int, invert: bool = False) -> np.ndarray:
    """A mask from a grayscale image `[h, w]` (white = missing), resized to `[height, width, 1]`."""
    im = Image.fromarray(mask_image).resize((width, height), Image.NEAREST)
    missing = np.asarray(im) >= 128
    if invert:
        missing = ~missing
    return (~missing).astype(np.float32)[..., None]


def load(
    path: str | os.PathLike, height: int, width: int, invert: bool = False, max_pixels: int = MAX_PIXELS
) -> np.ndarray:
    """A mask file of any size and mode, resized to `[height, width, 1]` with nearest neighbour.

    Raises:
        MaskError: unreadable, or over `max_pixels` (the photos' limit, checked before decoding).
    """
    try:
        with images_lib.open_image(path, max_pixels) as im:
            im = ImageOps.exif_transpose(im)  # as shown, like the photos
            if im.mode in ("RGBA", "LA", "PA"):
                im = im.convert("RGBA")
                # transparent = known, whatever the colour underneath
                black = Image.new("RGBA", im.size, (0, 0, 0, 255))
                im = Image.alpha_composite(black, im)
            gray = np.asarray(im.convert("L"))
    except images_lib.TooLarge as e:
        raise MaskError(f"Mask {path} is {e}") from None
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise MaskError(f"Cannot read mask {path}: {e}") from None
    return from_image(gray, height, width, invert)


def find_in_folder(folder: str | os.PathLike, image_path: str | os.PathLike) -> Path:
    """The mask in `folder` named like the image (any image extension, optional `_mask`)."""
    stem = Path(image_path).stem
    folder = Path(folder)
    for name in (stem, f"{stem}_mask"):
        for ext in IMAGE_EXTENSIONS:
            for candidate in (folder / f"{name}{ext}", folder / f"{name}{ext.upper()}"):
                if candidate.is_file():
                    return candidate
    raise MaskError(f"No mask for {Path(image_path).name} in {folder} (looked for {stem}.png, {stem}_mask.png, ...)")


def make(
    kind: str,
    size: int,
    *,
    block_size: int | None = None,
    missing: float = 0.8,
    side: str = "left",
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """A generated mask of `kind` (`block`, `random`, `half` or `pattern`) at `size`."""
    if kind == "block":
        return block(size, block_size)
    if kind == "random":
        return random(size, missing, rng)
    if kind == "half":
        return half(size, side)
    if kind == "pattern":
        return pattern(size, rng=rng)
    raise MaskError(f"Unknown mask kind {kind!r}; expected one of {KINDS}, a mask file or a folder of masks")


def no_such_mask(spec) -> MaskError:
    """The error for a mask spec that is neither a kind nor an existing file or folder."""
    return MaskError(f"Mask {str(spec)!r} is neither one of {KINDS} nor an existing mask file or folder")


def check_spec(spec: str | os.PathLike) -> None:
    """Refuse a mask spec given by name that is neither a kind nor an existing file or folder
    (cheap: the command line checks it before TensorFlow starts)."""
    if str(spec) not in KINDS and not Path(spec).exists():
        raise no_such_mask(spec)
