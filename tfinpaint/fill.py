"""Filling photos: any size in, the same size out, known pixels untouched.

`fill` is the whole job: it reads photos (paths or arrays) a batch at a time, makes or
reads their masks, crops and resizes each to the model's input by the model's own
preprocessing, runs the latent search, resizes G(z) back and blends it into the
original once, at full resolution. Nothing but the current batch is held in memory.
Only the region the model sees can be filled: the model's centre crop, or, for a face model
(`align`), each face found, seen through a frame that a similarity transform lays on its
landmarks the way the training faces lay (`faces`). A grayscale photo gets a grayscale result.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image
from scipy import ndimage

from tfinpaint import blend as blend_lib
from tfinpaint import data as data_lib
from tfinpaint import faces as faces_lib
from tfinpaint import files, store
from tfinpaint import images as images_lib
from tfinpaint import masks as masks_lib
from tfinpaint.constants import ALIGNS, FACES
from tfinpaint.errors import ArgumentError, DataError, MaskError, ModelError, OutputError, no_such_image
from tfinpaint.search import BLENDS, SearchSettings, inpaint, refines


class Listed(NamedTuple):
    """A photo found in a folder or by a glob: its path, and its name relative to where the
    search started (results keep that relative place under the output folder)."""

    path: Path
    name: str


Photo = str | os.PathLike | np.ndarray | Listed
MaskSpec = str | os.PathLike | np.ndarray | Sequence[np.ndarray]


# The region the model sees must be at least this share of the model's side (16 pixels for
# a 64x64 model): below it, the photo holds too little to fill from.
MIN_VIEW = 0.25
# Below this share of known pixels in the model's view, a result carries a warning: the
# fill is then mostly the model's own guess, however well it is blended (random 80% keeps 20%).
MIN_KNOWN = 0.1
# A face is filled only if its frame spans at least this share of the model's side in the
# photo (32 pixels for a 64x64 model, about 12 pixels from eye to eye for CelebA's layout).
MIN_FACE_VIEW = 0.5


@dataclasses.dataclass
class Prepared:
    """One region of a photo the model sees (its crop, or one face's frame) and the hole
    it fills, in the photo's own pixels and in the model's.

    Attributes:
        original: uint8 `[H, W, 3]`.
        mask: `[H, W, 1]`, 1 = known: 0 only at the photo pixels this view fills.
        box: (top, left, height, width) of the photo the region touches.
        model_image: float32 `[S, S, 3]` in [-1, 1]; zero in the hole.
        model_mask: `[S, S, 1]`; a model pixel is known only if all its photo pixels are.
        frame: for a face, the frame the model sees it through; None for the plain crop.
    """

    original: np.ndarray
    mask: np.ndarray
    box: tuple[int, int, int, int]
    model_image: np.ndarray
    model_mask: np.ndarray
    frame: faces_lib.Frame | None = None


@dataclasses.dataclass
class View:
    """One region of a photo filled: how the model saw it, G(z), the search's final loss
    and its loss at every iteration (`[iterations]`, of the restart chosen)."""

    prepared: Prepared
    generated: np.ndarray
    loss: float
    history: np.ndarray | None = None


@dataclasses.dataclass
class FilledPhoto:
    """One filled photo.

    Attributes:
        name: the photo's file name, or `image_<i>` for an array.
        source: the photo's path (None for an array).
        image: uint8 `[H, W, 3]`, or `[H, W, 1]` for a grayscale photo: the photo with
            its hole filled; known pixels as given.
        views: what the model saw and drew: one view (the crop), or one per face filled.
        warning: why this result may disappoint (almost nothing of the view was known, no
            face found, faces too small left alone), or None.
        icc_profile: the photo file's colour profile, which `save` writes with the result.
    """

    name: str
    source: Path | None
    image: np.ndarray
    views: list[View]
    warning: str | None = None
    icc_profile: bytes | None = None

    @property
    def generated(self) -> np.ndarray:
        """G(z) `[S, S, 3]` in [-1, 1] of the first view."""
        return self.views[0].generated

    @property
    def loss(self) -> float:
        """The search's final loss for the first view."""
        return self.views[0].loss

    @property
    def prepared(self) -> Prepared:
        """The photo, its hole and the first view's model input."""
        return self.views[0].prepared

    def panel(self) -> np.ndarray:
        image = np.repeat(self.image, 3, axis=-1) if self.image.shape[-1] == 1 else self.image
        if self.prepared.frame is None:
            return panel(self.prepared, self.generated, image)
        return face_panel(self.views, image)


class Failed(NamedTuple):
    """A photo that could not be filled (with `errors="report"`): its name, path and why."""

    name: str
    source: Path | None
    message: str


def mask_in_photo(model_mask: np.ndarray, shape: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    """A mask made at the model's size, stretched (nearest) over the region the model sees."""
    top, left, h, w = box
    full = np.ones(shape + (1,), np.float32)
    full[top : top + h, left : left + w] = images_lib.resize(model_mask, h, w, Image.NEAREST) > 0.5
    return full


def check_mask_shape(mask: np.ndarray, shape: tuple[int, int], name: str) -> None:
    if mask.shape[:2] != shape:
        raise MaskError(f"Expected a mask of shape {shape + (1,)} for {name}, got {mask.shape}")


def prepare(original: np.ndarray, mask: np.ndarray, preprocess: str, size: int, name: str = "image") -> Prepared:
    """Crop and resize a photo and its mask `[H, W, 1]` to the model's input."""
    h, w = original.shape[:2]
    check_mask_shape(mask, (h, w), name)
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
    # A model pixel is known when at least half of the photo pixels under it are; where some
    # are missing, its value is the mean of the known ones alone (no missing pixel goes in),
    # so a mask made at the model's size (random pixels, say) comes back as it was made.
    known = known.astype(np.float32)
    share = images_lib.resize(known, size, size, Image.BOX)
    model_mask = (share >= 0.5 - 1e-6).astype(np.float32)
    # the resize's kernel reaches past each pixel's own photo pixels: near a missing one, use
    # the mean of the known ones instead
    partial = ndimage.maximum_filter(share < 1.0 - 1e-6, size=(5, 5, 1))
    if partial.any():
        crop01 = crop.astype(np.float32) / 127.5 - 1.0
        mean_known = images_lib.resize(crop01 * known, size, size, Image.BOX) / np.maximum(share, 1e-6)
        model_image = np.where(partial, mean_known, model_image)
    model_image = np.where(model_mask > 0.5, model_image, 0.0).astype(np.float32)
    return Prepared(original, mask.astype(np.float32), box, model_image, model_mask)


def paste_back(prep: Prepared, generated: np.ndarray, method: str = "poisson") -> np.ndarray:
    """Blend G(z) `[S, S, 3]` in [-1, 1], resized to the crop, into the original photo.

    Only the hole's bounding box (and a pixel around it) is blended, so memory follows the
    hole, not the photo. Where the hole reaches the edge of the crop, G(z) stops: Poisson
    blending takes the boundary there from the photo's own known pixels beyond the edge
    instead of G(z)'s difference to them, so no seam appears along the crop. A face's
    view is drawn through its frame (`faces.Frame.place`), and stops where the frame does.

    Returns uint8 `[H, W, 3]` whose known pixels equal the original's exactly.
    """
    if method not in BLENDS:
        raise ArgumentError(f"Unknown blend {method!r}; expected one of {BLENDS}")
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
    if prep.frame is not None:
        values, guided = prep.frame.place(generated, (r0, r1, c0, c1))
        source = np.where(guided[..., None], values, target)
    else:
        source, guided = target.copy(), np.zeros(target.shape[:2], bool)
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


def prepare_face(
    original: np.ndarray, mask: np.ndarray, frame: faces_lib.Frame, size: int, fills: np.ndarray
) -> Prepared:
    """A face's view of a photo: the photo and its whole mask `[H, W, 1]` through the face's
    frame; `fills` (bool `[H, W]`) the hole pixels this view fills."""
    h, w = original.shape[:2]
    model_image, model_mask = frame.sample_known(original, mask, size)
    model_image = np.where(model_mask > 0.5, model_image / 127.5 - 1.0, 0.0).astype(np.float32)
    top, bottom, left, right = frame.window(h, w)
    own = np.where(fills[..., None], 0.0, 1.0).astype(np.float32)
    return Prepared(original, own, (top, left, bottom - top, right - left), model_image, model_mask, frame)


def assign_hole(mask: np.ndarray, frames: Sequence[faces_lib.Frame], name: str) -> list[np.ndarray]:
    """Which hole pixels each face's view fills (bool `[H, W]` each): a pixel inside several
    frames goes to the one whose centre it is nearest (in the frames' own units).

    Raises:
        MaskError: some missing pixel lies inside no face's frame.
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
        raise MaskError(
            f"The mask of {name} has {int((owner < 0).sum())} missing pixels outside every face the model sees "
            f"(the first at ({xs[i]}, {ys[i]}))"
        )
    out = []
    for k in range(len(frames)):
        fills = np.zeros(hole.shape, bool)
        fills[ys[owner == k], xs[owner == k]] = True
        out.append(fills)
    return out


def face_panel(views: Sequence[View], result: np.ndarray, height: int = 256) -> np.ndarray:
    """The photo, then for each face: its view with the hole (white), G(z), and the result
    around the face (the part of the photo its frame covers, as the photo has it)."""

    def scaled(image: np.ndarray, nearest: bool = False) -> np.ndarray:
        h, w = image.shape[:2]
        size = (max(1, round(w * height / h)), height)
        return np.asarray(Image.fromarray(image).resize(size, Image.NEAREST if nearest else Image.LANCZOS))

    columns = [scaled(views[0].prepared.original)]
    for view in views:
        prep = view.prepared
        top, left, h, w = prep.box
        masked = np.where(prep.model_mask > 0.5, images_lib.to_uint8(prep.model_image), 255).astype(np.uint8)
        columns += [
            scaled(masked, nearest=True),
            scaled(images_lib.to_uint8(view.generated)),
            scaled(result[top : top + h, left : left + w]),
        ]
    return images_lib.side_by_side(columns)


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
    frames: Sequence[faces_lib.Frame] | None = None,
    max_pixels: int = data_lib.MAX_PIXELS,
    **kind_options,
) -> np.ndarray:
    """The photo-sized mask `[H, W, 1]` of photo number `index` from a mask spec.

    `spec` is a kind (`block`, `random`, `half`, `pattern`: made at the model's size,
    seeded per photo by (seed, index), in the model's crop or in each face's frame), a
    mask file (for every photo), a folder of mask files matched to the photos by name, one
    array `[H, W, 1]` for every photo, or a sequence of arrays, one per photo (1 = known).
    """
    h, w = shape
    if isinstance(spec, np.ndarray) or (isinstance(spec, Sequence) and not isinstance(spec, str)):
        m = np.asarray(spec if isinstance(spec, np.ndarray) else spec[index], np.float32)
        return m[..., None] if m.ndim == 2 else m
    if spec in masks_lib.KINDS and frames:
        out = np.ones((h, w, 1), np.float32)
        for k, frame in enumerate(frames):  # the first face's mask is the one the crop would get
            rng = np.random.default_rng([seed, index, *([k] if k else [])])
            m = masks_lib.make(spec, size, rng=rng, **kind_options)
            out = np.minimum(out, frame.mask_from_model(m, h, w))
        return out
    if spec in masks_lib.KINDS:
        m = masks_lib.make(spec, size, rng=np.random.default_rng([seed, index]), **kind_options)
        return mask_in_photo(m, (h, w), data_lib.crop_box(h, w, preprocess))
    path = Path(spec)
    if path.is_dir():
        return masks_lib.load(masks_lib.find_in_folder(path, name), h, w, invert, max_pixels)
    if path.is_file():
        return masks_lib.load(path, h, w, invert, max_pixels)
    raise masks_lib.no_such_mask(spec)


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
        elif files.is_glob(spec):
            parts = Path(spec).parts
            first = next(i for i, part in enumerate(parts) if files.is_glob(part))
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


def _photo_path(photo: Photo) -> Path | None:
    if isinstance(photo, np.ndarray):
        return None
    return photo.path if isinstance(photo, Listed) else Path(photo)


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
    path = _photo_path(photo)
    if not path.is_file():
        raise no_such_image(path)
    image = data_lib.load_image_file(path, max_pixels)
    return photo_name(photo, index), path, image, data_lib.is_grayscale(path)


def face_frames(
    original: np.ndarray,
    model: store.Model,
    template: faces_lib.Template | None,
    align: str,
    which: str,
    name: str,
) -> tuple[list[faces_lib.Frame] | None, str | None]:
    """The frames of the faces to fill in a photo, largest first, or None to fill the
    model's centre crop; and a warning, or None.

    `align`: `on` fills every face found (`which="largest"`: the largest only); `auto`
    does so too unless the photo holds one face whose landmarks, seen through the crop,
    are as close to the template as 95% of the training faces' are (the photo is laid out
    like the training images), or no face at all (then the crop is filled, with a warning); `off` (or a
    model with no face `template`, the model card's) always fills the crop.

    Raises:
        DataError: with `on`, no face found; any face found, but all too small to fill.
    """
    if align == "off" or template is None:
        return None, None
    found = faces_lib.detector()(original)
    h, w = original.shape[:2]
    if not found:
        if align == "on":
            raise DataError(f"No face found in {name}")
        return None, f"no face found in {name}: filled the model's centre crop as it is"
    if align == "auto" and len(found) == 1:
        crop = faces_lib.Frame.of_box(data_lib.crop_box(h, w, model.preprocess))
        if template.error(found[0], crop) <= template.typical:
            return None, None
    frames = sorted((faces_lib.Frame.on_face(f, template) for f in found), key=lambda f: -f.side)
    least = math.ceil(model.image_size * MIN_FACE_VIEW)
    big = [f for f in frames if f.side >= least]
    if not big:
        eyes = least * float(np.linalg.norm(template.landmarks[1] - template.landmarks[0]))
        what = "The face" if len(frames) == 1 else f"All {len(frames)} faces"
        raise DataError(
            f"{what} found in {name} {'is' if len(frames) == 1 else 'are'} too small to fill: the model's view of "
            f"{'it' if len(frames) == 1 else 'the largest'} spans {frames[0].side:.0f} pixels, under the {least} "
            f"a {model.image_size}x{model.image_size} model needs (about {eyes:.0f} pixels from eye to eye)"
        )
    warning = None
    if which == "largest":
        big = big[:1]
    elif len(big) < len(frames):
        warning = (
            f"{len(frames) - len(big)} of the {len(frames)} faces in {name} are too small to fill "
            f"(their view spans under {least} pixels) and were left as they are"
        )
    return big, warning


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
    return [
        path
        for path, image in outputs
        if images_lib.save_png(path, image, replace=overwrite, icc_profile=result.icc_profile)
    ]


def _check_inputs(photos: Sequence[Photo], mask: MaskSpec, max_pixels: int, model: store.Model) -> None:
    """The cheap checks, before any photo is filled: the mask exists (a mask file is
    readable); every file exists, is an image within `max_pixels` and large enough for the
    model (from its header), and has its mask."""
    folder = None if isinstance(mask, (np.ndarray, Sequence)) and not isinstance(mask, str) else Path(mask)
    if folder is not None:
        masks_lib.check_spec(mask)
        if str(mask) not in masks_lib.KINDS and folder.is_file():
            masks_lib.load(folder, 8, 8, max_pixels=max_pixels)  # readable, once, before any photo
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


@dataclasses.dataclass
class _Pending:
    """A photo read and prepared, waiting for its views' searches (or failed)."""

    name: str
    path: Path | None
    gray: bool = False
    preps: list[Prepared] = dataclasses.field(default_factory=list)
    warning: str | None = None
    failure: str | None = None
    views: dict[int, View] = dataclasses.field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.failure is not None or len(self.views) == len(self.preps)


# The keyword options of `fill` that shape generated masks (`masks.make`'s).
MASK_OPTIONS = ("block_size", "missing", "side")


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
    align: str = "auto",
    face: str = "all",
    errors: str = "raise",
    **options,
) -> Iterator[FilledPhoto | Failed]:
    """Fill the holes of photos with the model, a batch at a time; yields one result per photo.

    Args:
        photos: image files, folders (searched recursively), globs, or uint8 arrays
            `[H, W, 3]` (`[H, W]` grayscale), of any size.
        model: a loaded `store.Model`, a shipped model's name, a run or an export folder
            (None: the default shipped model).
        mask: see `photo_mask`: a kind (made in the model's crop, or in each face's
            frame), a mask file, a folder of masks, or arrays (in the photo's pixels).
        settings: search settings (default: the model card's); keyword `options` that are
            `SearchSettings` fields replace single fields, the others (`block_size`,
            `missing`, `side`) shape generated masks.
        blend: `poisson` (eq. 6) or `overlay` (eq. 5), at the photo's full resolution.
        batch_size: views (crops or faces) searched together.
        seed: seeds generated masks (per photo) and, unless `settings` says otherwise,
            the initial latents.
        invert: mask files: black = missing instead of white.
        progress: called as `progress(label, iteration, iterations, loss)` during each
            batch's search; `label` names the batch ("Filling 1-16 of 40").
        max_pixels: photos with more pixels are refused before any search.
        align: `auto`, `on` or `off`: whether a face model fills the faces it finds,
            each through its own frame, or the centre crop (`face_frames`).
        face: `all` faces found, or the `largest` only.
        errors: `raise` stops at the first photo that cannot be filled (no face, faces
            too small, a hole outside every face); `report` yields a `Failed` for it and
            goes on.

    Yields:
        `FilledPhoto`s (and, with `errors="report"`, `Failed`s), in the order of `photos`.
    """
    if blend not in BLENDS:
        raise ArgumentError(f"Unknown blend {blend!r}; expected one of {BLENDS}")
    for value, choices in ((align, ALIGNS), (face, FACES), (errors, ("raise", "report"))):
        if value not in choices:
            raise ArgumentError(f"Unknown choice {value!r}; expected one of {choices}")
    if not isinstance(model, store.Model):
        model = store.load_model(model)
    template = model.card.face_template()
    if align == "on" and template is None:
        raise ModelError(f"Model {model.path} is not a face model (its card has no landmark template): it cannot align")
    search_fields = {f.name for f in dataclasses.fields(SearchSettings)}
    chosen = {k: v for k, v in options.items() if k in search_fields}
    mask_options = {k: v for k, v in options.items() if k not in search_fields and v is not None}
    unknown = sorted(set(options) - search_fields - set(MASK_OPTIONS))
    if unknown:  # a typo would otherwise be dropped silently with a mask file
        raise ArgumentError(
            f"Unknown option {unknown[0]!r} of fill: expected a search setting ({', '.join(sorted(search_fields))}) "
            f"or a mask option ({', '.join(MASK_OPTIONS)})"
        )
    if settings is None:
        settings = model.card.search_settings(**{"seed": seed, **chosen})
    elif chosen:
        settings = dataclasses.replace(settings, **{k: v for k, v in chosen.items() if v is not None})
    settings.starts_from_encoder(model.encoder)  # refuses --init encoder without one, before any photo
    photos = expand(photos)
    _check_inputs(photos, mask, max_pixels, model)
    total, size = len(photos), model.image_size

    def read(i: int) -> _Pending:
        try:
            name, path, original, gray = read_photo(photos[i], i, max_pixels)
        except DataError as e:  # damaged or truncated: the header was fine, the pixels are not
            if errors == "raise":
                raise
            return _Pending(photo_name(photos[i], i), _photo_path(photos[i]), failure=str(e))
        label = str(path or name)
        try:
            frames, warning = face_frames(original, model, template, align, face, label)
            kw = dict(seed=seed, invert=invert, frames=frames, max_pixels=max_pixels, **mask_options)
            m = photo_mask(mask, i, name, original.shape[:2], model.preprocess, size, **kw)
            if frames is None:
                preps = [prepare(original, m, model.preprocess, size, label)]
            else:
                check_mask_shape(m, original.shape[:2], label)
                holes = assign_hole(m, frames, label)
                keep = [k for k, h in enumerate(holes) if h.any()] or [0]
                preps = [prepare_face(original, m, frames[k], size, holes[k]) for k in keep]
        except (DataError, MaskError) as e:
            if errors == "raise":
                raise
            return _Pending(name, path, failure=str(e))
        if not (m < 0.5).any():
            warning = f"{label}: its mask marks no pixel as missing, so nothing was filled: the photo is as it was"
        return _Pending(name, path, gray, preps, warning or known_share_warning(preps[0], label))

    def search(queue: list[tuple[int, _Pending, int]]) -> None:
        first, last = queue[0][0] + 1, queue[-1][0] + 1
        label = f"Filling {first}-{last} of {total}" if last > first else f"Filling {first} of {total}"
        if len(queue) > last - first + 1:
            label += f" ({len(queue)} faces)"
        preps = [pending.preps[k] for _, pending, k in queue]
        # the batch's steps: the refinement's only if one of its views is refined (a block is not)
        refined = bool(np.any(refines(settings, np.stack([p.model_mask for p in preps]))))
        steps = settings.iterations + (settings.refine_steps if refined else 0)
        report = (lambda it, loss, label=label: progress(label, it, steps, loss)) if progress else None
        result = inpaint(
            np.stack([p.model_image for p in preps]),
            np.stack([p.model_mask for p in preps]),
            model.generator,
            model.discriminator,
            settings,
            blend=None,
            progress=report,
            encoder=model.encoder,
        )
        for j, (_, pending, k) in enumerate(queue):
            pending.views[k] = View(pending.preps[k], result.generated[j], float(result.loss[j]), result.history[:, j])

    def finish(pending: _Pending) -> FilledPhoto | Failed:
        if pending.failure is not None:
            return Failed(pending.name, pending.path, pending.failure)
        views = [pending.views[k] for k in range(len(pending.preps))]
        image = views[0].prepared.original
        for view in views:  # faces one after another, each on the last's result
            image = paste_back(dataclasses.replace(view.prepared, original=image), view.generated, blend)
        image = to_grayscale(image) if pending.gray else image
        profile = data_lib.icc_profile(pending.path) if pending.path else None
        return FilledPhoto(pending.name, pending.path, image, views, pending.warning, profile)

    waiting: list[_Pending] = []
    queue: list[tuple[int, _Pending, int]] = []
    for i in range(total):
        pending = read(i)
        waiting.append(pending)
        queue += [(i, pending, k) for k in range(len(pending.preps))]
        while len(queue) >= batch_size or (i == total - 1 and queue):
            search(queue[:batch_size])
            queue = queue[batch_size:]
        while waiting and waiting[0].done:
            yield finish(waiting.pop(0))
