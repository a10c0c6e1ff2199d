"""Small image helpers shared by the package: value ranges, masks, grids, resizing, PNG files.

Numpy and Pillow only. Model images are float in [-1, 1]; photos and files are uint8.
"""

from __future__ import annotations

import io
import math
import os
from typing import NamedTuple

import numpy as np
from PIL import Image

from tfinpaint import files

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def to_uint8(images) -> np.ndarray:
    """Floats in [-1, 1] to uint8 in [0, 255], rounding."""
    return np.clip(np.round((np.asarray(images) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def to_float(images) -> np.ndarray:
    """uint8 in [0, 255] to float32 in [-1, 1]."""
    return (np.asarray(images, np.float32) / 127.5 - 1.0).astype(np.float32)


def known(mask) -> np.ndarray:
    """The known pixels of a mask `[..., H, W, 1]` or `[H, W]` as booleans `[..., H, W]` (1 = known)."""
    mask = np.asarray(mask)
    return (mask[..., 0] if mask.ndim >= 3 and mask.shape[-1] == 1 else mask) > 0.5


class Box(NamedTuple):
    """A rectangle of pixels: rows `top` to `top + height`, columns `left` to `left + width`
    (the one rectangle of the package: crops, windows, parts of a resize)."""

    top: int
    left: int
    height: int
    width: int

    @property
    def bottom(self) -> int:
        return self.top + self.height

    @property
    def right(self) -> int:
        return self.left + self.width

    @property
    def slices(self) -> tuple[slice, slice]:
        """Index an array `[H, W, ...]` with it: `array[box.slices]`."""
        return np.s_[self.top : self.bottom, self.left : self.right]

    @classmethod
    def spanning(cls, top: int, bottom: int, left: int, right: int) -> Box:
        return cls(top, left, bottom - top, right - left)

    def shifted(self, dy: int, dx: int) -> Box:
        return self._replace(top=self.top + dy, left=self.left + dx)

    def intersection(self, other: Box) -> Box:
        """The part of both (empty: height or width 0)."""
        top, left = max(self.top, other.top), max(self.left, other.left)
        bottom, right = min(self.bottom, other.bottom), min(self.right, other.right)
        return Box(top, left, max(bottom - top, 0), max(right - left, 0))


# Share of the width kept by the `celeba` preset: the paper's 108x108 centre of a
# 178x218 aligned face (54x54 of the half-size copies in ../shared/data).
CELEBA_CROP = 108 / 178


def crop_box(height: int, width: int, preset: str) -> Box:
    """The region a preset keeps of an image."""
    if preset == "svhn":
        return Box(0, 0, height, width)
    side = min(height, width)
    if preset == "celeba":
        side = min(side, int(round(width * CELEBA_CROP)))
    return Box((height - side) // 2, (width - side) // 2, side, side)


def resize(array: np.ndarray, height: int, width: int, resample=Image.BICUBIC, part: Box | None = None) -> np.ndarray:
    """Resize a float `[h, w, c]` array channel by channel with Pillow (float32 out).

    `part`: compute only these rows and columns of the `[height, width]` result (the same
    values, to float32 rounding), so a small part of a large resize costs only its own size."""
    top, left, h, w = part or Box(0, 0, height, width)
    sy, sx = array.shape[0] / height, array.shape[1] / width
    box = (left * sx, top * sy, (left + w) * sx, (top + h) * sy)
    size = (w, h)
    chans = [
        np.asarray(Image.fromarray(array[..., k].astype(np.float32), mode="F").resize(size, resample, box))
        for k in range(array.shape[-1])
    ]
    return np.stack(chans, axis=-1)


def grid(images: np.ndarray, rows: int) -> np.ndarray:
    """`[n, h, w, c]` floats in [-1, 1] to one uint8 grid image `[rows*h, cols*w, c]`."""
    n, h, w, c = images.shape
    cols = math.ceil(n / rows)
    out = np.full((rows * h, cols * w, c), -1.0, np.float32)
    for i, im in enumerate(images):
        r, k = divmod(i, cols)
        out[r * h : (r + 1) * h, k * w : (k + 1) * w] = im
    return to_uint8(out)


def side_by_side(columns: list[np.ndarray], gap: int = 4, fill: int = 255) -> np.ndarray:
    """uint8 images `[h, w_i, c]` of one height joined left to right with `gap` pixels of `fill`."""
    h, c = columns[0].shape[0], columns[0].shape[2]
    spacer = np.full((h, gap, c), fill, np.uint8)
    parts = []
    for k, col in enumerate(columns):
        parts += [spacer, col] if k else [col]
    return np.concatenate(parts, axis=1)


class TooLarge(ValueError):
    """An image over the pixel limit: `pixels` and `size` (width, height) say by how much."""

    def __init__(self, size: tuple[int, int], max_pixels: int):
        self.size, self.pixels, self.max_pixels = size, size[0] * size[1], max_pixels
        megapixels = f"{self.pixels / 1e6:.1f} megapixels"
        super().__init__(f"{size[0]}x{size[1]} ({megapixels}), over the limit of {max_pixels / 1e6:g} megapixels")


def open_image(path: str | os.PathLike, max_pixels: int) -> Image.Image:
    """An image file opened (its header read, nothing decoded), refused over `max_pixels`.

    Pillow's own limit (89 megapixels) would raise DecompressionBombError mid-read; this one
    is checked from the header instead, before any pixel is decoded.

    Raises:
        TooLarge: over `max_pixels`.
        OSError, UnidentifiedImageError, ValueError: as Pillow raises them for unreadable files.
    """
    saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        im = Image.open(path)
    finally:
        Image.MAX_IMAGE_PIXELS = saved
    if im.width * im.height > max_pixels:
        im.close()
        raise TooLarge(im.size, max_pixels)
    return im


def save_png(
    path: str | os.PathLike, image: np.ndarray, replace: bool = True, icc_profile: bytes | None = None
) -> bool:
    """Write a uint8 image `[H, W, C]` (C = 1 or 3) as PNG, atomically, creating the folder,
    with `icc_profile` (the colour profile of the photo it comes from) if given.

    Returns False, writing nothing, if `replace` is off and `path` exists.
    """
    data = png_bytes(image, icc_profile)
    return files.write_atomically(path, lambda tmp: tmp.write_bytes(data), replace=replace)


def png_bytes(image: np.ndarray, icc_profile: bytes | None = None) -> bytes:
    """A uint8 image `[H, W, C]` (C = 1 or 3) encoded as PNG, with `icc_profile` if given."""
    picture = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    extra = {"icc_profile": icc_profile} if icc_profile else {}
    out = io.BytesIO()
    picture.save(out, format="PNG", **extra)
    return out.getvalue()
