"""The geometry between a photo's pixels and the model's: where the model looks, what it
sees, and how what it drew goes back into the photo.

A view is the model's square input laid on a photo by a frame: the model's centre crop
(`Crop`, axis-aligned, one scale per axis) or a face's frame (`faces.Frame`, a similarity
laid on its landmarks). Both answer the same questions (`window`, `look`, `place`,
`mask_from_model`, `to_frame`), so choosing the views, making masks in them, preparing
the model's input, pasting G(z) back and drawing a panel are one path each.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from tfinpaint import blend as blend_lib
from tfinpaint import data as data_lib
from tfinpaint import faces as faces_lib
from tfinpaint import images as images_lib
from tfinpaint import masks as masks_lib
from tfinpaint.constants import BLENDS
from tfinpaint.errors import ArgumentError, DataError, MaskError
from tfinpaint.images import Box
from tfinpaint.photos import Photo

# Below this share of known pixels in the model's view, a result carries a warning: the
# fill is then mostly the model's own guess, however well it is blended (random 80% keeps 20%).
MIN_KNOWN = 0.1
# A face is filled only if its frame spans at least this share of the model's side in the
# photo (32 pixels for a 64x64 model, about 12 pixels from eye to eye for CelebA's layout).
MIN_FACE_VIEW = 0.5


@dataclasses.dataclass(frozen=True)
class Crop(faces_lib.Frame):
    """The model's centre crop of a photo (its preprocessing's `crop_box`) as a frame: the
    crop is resized to the model's side by area averaging as training resizes it, and G(z)
    is resized back bicubically."""

    box: Box = Box(0, 0, 1, 1)

    @classmethod
    def of(cls, height: int, width: int, preprocess: str) -> Crop:
        box = data_lib.crop_box(height, width, preprocess)
        return cls(faces_lib.Frame.of_box(box).matrix, box)

    def window(self, height: int, width: int) -> Box:
        return self.box

    def look(self, photo: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        """The model's input: the crop's image (float32 `[S, S, 3]` in [-1, 1], zero in the
        hole) and mask `[S, S, 1]`. A model pixel is known when at least half of the photo
        pixels under it are; near a missing one its value is the mean of the known ones
        alone (no missing pixel goes in), so a mask made at the model's size comes back as
        it was made."""
        crop = photo[self.box.slices]
        known = mask[self.box.slices].astype(np.float32)
        image = data_lib.preprocess_numpy(crop, "svhn", size)  # already cropped: resize only
        share = images_lib.resize(known, size, size, Image.BOX)
        model_mask = (share >= 0.5 - 1e-6).astype(np.float32)
        # the resize's kernel reaches past each pixel's own photo pixels: near a missing one
        partial = ndimage.maximum_filter(share < 1.0 - 1e-6, size=(5, 5, 1))
        if partial.any():
            crop01 = crop.astype(np.float32) / 127.5 - 1.0
            mean_known = images_lib.resize(crop01 * known, size, size, Image.BOX) / np.maximum(share, 1e-6)
            image = np.where(partial, mean_known, image)
        return np.where(model_mask > 0.5, image, 0.0).astype(np.float32), model_mask

    def place(self, generated: np.ndarray, window: Box) -> tuple[np.ndarray, np.ndarray]:
        """G(z) resized to the crop, at the photo pixels of `window` (float64 on [0, 255]),
        and where the crop covers them: only the part the window needs is resized."""
        part = window.intersection(self.box)
        values = np.zeros((window.height, window.width, generated.shape[-1]))
        guided = np.zeros((window.height, window.width), bool)
        of_crop = part.shifted(-self.box.top, -self.box.left)  # of G(z) resized to the crop: what the window needs
        gen = images_lib.resize(generated, self.box.height, self.box.width, Image.BICUBIC, of_crop)
        inner = part.shifted(-window.top, -window.left).slices
        values[inner], guided[inner] = (gen + 1.0) * 127.5, True
        return values, guided

    def mask_from_model(self, model_mask: np.ndarray, height: int, width: int) -> np.ndarray:
        """A mask made at the model's size, stretched (nearest) over the crop."""
        full = np.ones((height, width, 1), np.float32)
        full[self.box.slices] = images_lib.resize(model_mask, self.box.height, self.box.width, Image.NEAREST) > 0.5
        return full

    def describe(self, preprocess: str) -> str:
        top, left, h, w = self.box
        return f"the {w}x{h} region at ({left}, {top}) that the model sees ({preprocess} preprocessing)"


@dataclasses.dataclass(frozen=True)
class View:
    """One region of a photo as the model sees it, and what the model drew there.

    Attributes:
        frame: how the model's square lies on the photo (a `Crop` or a face's frame).
        box: the photo pixels the frame touches.
        fills: bool `[H, W]`, the photo pixels this view fills (its part of the hole).
        image: the model's input, float32 `[S, S, 3]` in [-1, 1], zero in the hole.
        mask: `[S, S, 1]`, 1 = known, as the model sees the photo's mask.
        generated: G(z) `[S, S, 3]` in [-1, 1], once searched.
        loss: the search's final loss; `history`, its loss at every iteration `[iterations]`.
    """

    frame: faces_lib.Frame
    box: Box
    fills: np.ndarray
    image: np.ndarray
    mask: np.ndarray
    generated: np.ndarray | None = None
    loss: float | None = None
    history: np.ndarray | None = None

    @property
    def aligned(self) -> bool:
        """Whether the view is a face's frame rather than the model's crop."""
        return not isinstance(self.frame, Crop)


def look(photo: np.ndarray, mask: np.ndarray, frame: faces_lib.Frame, size: int, fills: np.ndarray) -> View:
    """A view of a photo uint8 `[H, W, 3]` and its whole mask `[H, W, 1]` (1 = known) through
    `frame`; `fills` (bool `[H, W]`) are the hole pixels this view fills."""
    image, model_mask = frame.look(photo, mask, size)
    return View(frame, frame.window(*photo.shape[:2]), fills, image, model_mask)


def paste_back(image: np.ndarray, view: View, method: str = "poisson") -> np.ndarray:
    """Blend the view's G(z) into the photo `image` (uint8 `[H, W, 3]`) at full resolution.

    Only the hole's bounding box (and a pixel around it) is blended, so memory follows the
    hole, not the photo. G(z) is drawn through the frame and stops where the frame does:
    Poisson blending then takes the boundary there from the photo's own known pixels
    beyond the edge instead of G(z)'s difference to them, so no seam appears.

    Returns uint8 `[H, W, 3]` whose pixels outside `view.fills` equal `image`'s exactly.
    """
    if method not in BLENDS:
        raise ArgumentError(f"Unknown blend {method!r}; expected one of {BLENDS}")
    result = image.copy()
    rows, cols = np.flatnonzero(view.fills.any(axis=1)), np.flatnonzero(view.fills.any(axis=0))
    if not rows.size:
        return result
    height, width = view.fills.shape
    window = Box.spanning(max(rows[0] - 1, 0), min(rows[-1] + 2, height), max(cols[0] - 1, 0), min(cols[-1] + 2, width))
    target = image[window.slices].astype(np.float64)
    values, guided = view.frame.place(view.generated, window)
    source = np.where(guided[..., None], values, target)
    known = np.where(view.fills[window.slices], 0.0, 1.0).astype(np.float32)[..., None]
    if method == "poisson":
        out = blend_lib.poisson(source, target, known, guided)
    else:
        out = blend_lib.overlay(source, target, known)
    result[window.slices] = np.clip(np.round(out), 0, 255).astype(np.uint8)
    return result


def panel(photo: np.ndarray, result: np.ndarray, views: Sequence[View], height: int = 256) -> np.ndarray:
    """What the model did, side by side. The crop: original, masked input, G(z) and result,
    at the crop's own pixels. Faces: the photo, then for each face its view with the hole
    (white), G(z), and the result around the face, each `height` pixels high."""
    if not views[0].aligned:
        (view,) = views
        crop = view.box.slices
        masked = np.where(view.fills[crop][..., None], 255, photo[crop]).astype(np.uint8)
        gen = images_lib.to_uint8(images_lib.resize(view.generated, view.box.height, view.box.width, Image.BICUBIC))
        return images_lib.side_by_side([photo[crop], masked, gen, result[crop]])

    def scaled(image: np.ndarray, nearest: bool = False) -> np.ndarray:
        h, w = image.shape[:2]
        size = (max(1, round(w * height / h)), height)
        return np.asarray(Image.fromarray(image).resize(size, Image.NEAREST if nearest else Image.LANCZOS))

    columns = [scaled(photo)]
    for view in views:
        masked = np.where(view.mask > 0.5, images_lib.to_uint8(view.image), 255).astype(np.uint8)
        columns += [
            scaled(masked, nearest=True),
            scaled(images_lib.to_uint8(view.generated)),
            scaled(result[view.box.slices]),
        ]
    return images_lib.side_by_side(columns)


def assign_hole(mask: np.ndarray, frames: Sequence[faces_lib.Frame], name: str, preprocess: str) -> list[np.ndarray]:
    """Which hole pixels each frame's view fills (bool `[H, W]` each): a pixel inside several
    frames goes to the one whose centre it is nearest (in the frames' own units).

    Raises:
        MaskError: some missing pixel lies inside no frame.
    """
    hole = mask[..., 0] < 0.5
    ys, xs = np.nonzero(hole)
    best = np.full(ys.shape, np.inf)
    owner = np.full(ys.shape, -1)
    for k, frame in enumerate(frames):
        uv = frame.to_frame(np.stack([xs, ys], axis=-1).astype(np.float64))
        distance = np.where(frame.inside(uv), np.abs(uv - 0.5).max(axis=1), np.inf)
        better = distance < best
        owner[better], best[better] = k, distance[better]
    if (owner < 0).any():
        i = int(np.flatnonzero(owner < 0)[0])
        where = frames[0].describe(preprocess) if isinstance(frames[0], Crop) else "every face the model sees"
        raise MaskError(
            f"The mask of {name} has {int((owner < 0).sum())} missing pixels outside {where} "
            f"(the first at ({xs[i]}, {ys[i]}))"
        )
    out = []
    for k in range(len(frames)):
        fills = np.zeros(hole.shape, bool)
        fills[ys[owner == k], xs[owner == k]] = True
        out.append(fills)
    return out


def frames(
    photo: np.ndarray,
    size: int,
    preprocess: str,
    template: faces_lib.Template | None,
    align: str,
    which: str,
    name: str,
) -> tuple[list[faces_lib.Frame], str | None]:
    """The frames to fill a photo through, largest first: the model's `Crop`, or the faces
    found; and a warning, or None.

    `align`: `on` fills every face found (`which="largest"`: the largest only); `auto`
    does so too unless the photo holds one face whose landmarks, seen through the crop,
    are as close to the template as 95% of the training faces' are (the photo is laid out
    like the training images), or no face at all (then the crop is filled, with a warning);
    `off` (or a model with no face `template`, the model card's) always fills the crop.

    Raises:
        DataError: with `on`, no face found; any face found, but all too small to fill.
    """
    h, w = photo.shape[:2]
    crop = Crop.of(h, w, preprocess)
    if align == "off" or template is None:
        return [crop], None
    found = faces_lib.detector()(photo)
    if not found:
        if align == "on":
            raise DataError(f"No face found in {name}")
        return [crop], f"no face found in {name}: filled the model's centre crop as it is"
    if align == "auto" and len(found) == 1 and template.error(found[0], crop) <= template.typical:
        return [crop], None
    on_faces = sorted((faces_lib.Frame.on_face(f, template) for f in found), key=lambda f: -f.side)
    least = math.ceil(size * MIN_FACE_VIEW)
    big = [f for f in on_faces if f.side >= least]
    if not big:
        eyes = least * float(np.linalg.norm(template.landmarks[1] - template.landmarks[0]))
        one = len(on_faces) == 1
        raise DataError(
            f"{'The face' if one else f'All {len(on_faces)} faces'} found in {name} {'is' if one else 'are'} too small "
            f"to fill: the model's view of {'it' if one else 'the largest'} spans {on_faces[0].side:.0f} pixels, under "
            f"the {least} a {size}x{size} model needs (about {eyes:.0f} pixels from eye to eye)"
        )
    if which == "largest":
        return big[:1], None
    if len(big) < len(on_faces):
        return big, (
            f"{len(on_faces) - len(big)} of the {len(on_faces)} faces in {name} are too small to fill "
            f"(their view spans under {least} pixels) and were left as they are"
        )
    return big, None


def photo_mask(
    spec,
    index: int,
    photo: Photo,
    frames: Sequence[faces_lib.Frame],
    size: int,
    *,
    seed: int = 0,
    invert: bool = False,
    max_pixels: int,
    **kind_options,
) -> np.ndarray:
    """The photo-sized mask `[H, W, 1]` (1 = known) of photo number `index` from a mask spec.

    `spec` is a kind (`block`, `random`, `half`, `pattern`: made at the model's size in each
    frame, seeded per photo and frame by (seed, index, frame)), a mask file (for every
    photo), a folder of mask files matched to the photos by name, one array `[H, W, 1]` for
    every photo, or a sequence of arrays, one per photo.
    """
    h, w = photo.pixels.shape[:2]
    if isinstance(spec, np.ndarray) or (isinstance(spec, Sequence) and not isinstance(spec, str)):
        m = np.asarray(spec if isinstance(spec, np.ndarray) else spec[index], np.float32)
        m = m[..., None] if m.ndim == 2 else m
    elif spec in masks_lib.KINDS:
        m = np.ones((h, w, 1), np.float32)
        for k, frame in enumerate(frames):  # the first frame's mask is the one the crop would get
            made = masks_lib.make(
                spec, size, rng=np.random.default_rng([seed, index, *([k] if k else [])]), **kind_options
            )
            m = np.minimum(m, frame.mask_from_model(made, h, w))
    elif Path(spec).is_dir():
        m = masks_lib.load(masks_lib.find_in_folder(spec, photo.name), h, w, invert, max_pixels)
    elif Path(spec).is_file():
        m = masks_lib.load(spec, h, w, invert, max_pixels)
    else:
        raise masks_lib.no_such_mask(spec)
    if m.shape[:2] != (h, w):
        raise MaskError(f"Expected a mask of shape {(h, w, 1)} for {photo.label}, got {m.shape}")
    return m


def known_share_warning(view: View, name: str) -> str | None:
    """A warning if under `MIN_KNOWN` of the model's view of a photo is known."""
    share = float(view.mask.mean())
    if share >= MIN_KNOWN:
        return None
    return (
        f"only {share:.0%} of the region the model sees in {name} is known (under {MIN_KNOWN:.0%}): "
        "the fill is mostly the model's own guess"
    )
