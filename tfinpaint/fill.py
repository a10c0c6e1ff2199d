"""Filling photos: any size in, the same size out, known pixels untouched.

`fill` streams photos a batch at a time: it reads each (`photos`), lays the model's views
on it and makes its mask there (`views`), searches G's latent space for every view of a
batch together (`search`), and pastes each G(z) back at full resolution. Nothing but the
current batch is held in memory. `fill_into` is the whole job of `tfinpaint fill`: it
fills into a folder, skipping what is done, and tells what happened as events.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import sys
import types
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from tfinpaint import masks as masks_lib
from tfinpaint import photos as photos_lib
from tfinpaint import store
from tfinpaint import views as views_lib
from tfinpaint.constants import ALIGNS, BLENDS, FACES, MAX_PIXELS
from tfinpaint.errors import ArgumentError, DataError, MaskError, ModelError
from tfinpaint.photos import Listed, PhotoSpec  # noqa: F401  (part of fill's interface)
from tfinpaint.refine import refines
from tfinpaint.search import SearchSettings, inpaint

MaskSpec = str | os.PathLike | np.ndarray | Sequence[np.ndarray]
Progress = Callable[[str, int, int, float], None]
# The keyword options of `fill` that shape generated masks (`masks.MaskOptions`' fields).
MASK_OPTIONS = tuple(f.name for f in dataclasses.fields(masks_lib.MaskOptions))


@dataclasses.dataclass(frozen=True)
class FilledPhoto:
    """One filled photo.

    Attributes:
        photo: the photo as read (its name, path, pixels and colour profile).
        image: uint8 `[H, W, 3]`, or `[H, W, 1]` for a grayscale photo: the photo with
            its hole filled; known pixels as given.
        views: what the model saw and drew: one view (the crop), or one per face filled.
        warning: why this result may disappoint (almost nothing of the view was known, no
            face found, faces too small left alone), or None.
    """

    photo: photos_lib.Photo
    image: np.ndarray
    views: tuple[views_lib.View, ...]
    warning: str | None = None

    @property
    def name(self) -> str:
        return self.photo.name

    @property
    def source(self) -> Path | None:
        return self.photo.path

    @property
    def hole(self) -> np.ndarray:
        """bool `[H, W]`: the pixels filled."""
        return np.logical_or.reduce([v.fills for v in self.views])

    def panel(self) -> np.ndarray:
        """See `views.panel`."""
        image = np.repeat(self.image, 3, axis=-1) if self.image.shape[-1] == 1 else self.image
        return views_lib.panel(self.photo.pixels, image, self.views)

    def save(self, out: str | os.PathLike, panel: bool = False, overwrite: bool = False) -> list[tuple[Path, bool]]:
        """Write the result (and its panel) under `out` (see `photos.write`)."""
        pictures = self.panel() if panel else None
        return photos_lib.write(self.name, out, self.image, pictures, self.photo.icc_profile, overwrite)


class Failed(NamedTuple):
    """A photo that could not be filled (with `errors="report"`): its name, path and why."""

    name: str
    source: Path | None
    message: str


class Found(NamedTuple):
    """The photos found: `total`, of which `done` were filled already (their outputs exist,
    and are kept)."""

    total: int
    done: int


class Written(NamedTuple):
    """A file written."""

    path: Path


class Kept(NamedTuple):
    """A file that appeared while its photo was filled, kept as it was (not `overwrite`)."""

    path: Path


class Warned(NamedTuple):
    """A photo filled, with a reason the result may disappoint."""

    message: str


Event = Found | Written | Kept | Warned | Failed


@dataclasses.dataclass
class _Pending:
    """A photo read and looked at, waiting for its views' searches; or failed."""

    name: str
    path: Path | None
    photo: photos_lib.Photo | None = None
    views: list[views_lib.View] = dataclasses.field(default_factory=list)
    warning: str | None = None
    failure: str | None = None

    @property
    def done(self) -> bool:
        return self.failure is not None or all(view.generated is not None for view in self.views)


@dataclasses.dataclass
class _Job:
    """What every photo of one `fill` shares: the model, the mask, the options."""

    model: store.Model
    mask: MaskSpec
    settings: SearchSettings
    blend: str
    seed: int
    invert: bool
    max_pixels: int
    align: str
    face: str
    mask_options: masks_lib.MaskOptions
    progress: Progress | None

    def look(self, index: int, spec: PhotoSpec) -> _Pending:
        """Read photo `index`, choose its views and make its mask in them."""
        photo = photos_lib.read(spec, index, self.max_pixels)
        size, preprocess = self.model.image_size, self.model.preprocess
        template = self.model.card.face_template()
        frames, warning = views_lib.frames(photo.pixels, size, preprocess, template, self.align, self.face, photo.label)
        options = dict(seed=self.seed, invert=self.invert, max_pixels=self.max_pixels)
        options.update(dataclasses.asdict(self.mask_options))
        mask = views_lib.photo_mask(self.mask, index, photo, frames, size, **options)
        holes = views_lib.assign_hole(mask, frames, photo.label, preprocess)
        keep = [k for k, hole in enumerate(holes) if hole.any()] or [0]
        views = [views_lib.look(photo.pixels, mask, frames[k], size, holes[k]) for k in keep]
        if not (mask < 0.5).any():
            warning = (
                f"{photo.label}: its mask marks no pixel as missing, so nothing was filled: the photo is as it was"
            )
        warning = warning or views_lib.known_share_warning(views[0], photo.label)
        return _Pending(photo.name, photo.path, photo, views, warning)

    def search(self, queue: list[tuple[int, _Pending, int]], total: int) -> None:
        """Search the views of `queue` (photo index, photo, view) together."""
        first, last = queue[0][0] + 1, queue[-1][0] + 1
        label = f"Filling {first}-{last} of {total}" if last > first else f"Filling {first} of {total}"
        if len(queue) > last - first + 1:
            label += f" ({len(queue)} faces)"
        views = [pending.views[k] for _, pending, k in queue]
        images, masks = np.stack([v.image for v in views]), np.stack([v.mask for v in views])
        # the batch's steps: the refinement's only if one of its views is refined (a block is not)
        steps = self.settings.iterations + (self.settings.refine_steps if np.any(refines(self.settings, masks)) else 0)
        report = (lambda it, loss: self.progress(label, it, steps, loss)) if self.progress else None
        m = self.model
        result = inpaint(
            images, masks, m.generator, m.discriminator, self.settings, blend=None, progress=report, encoder=m.encoder
        )
        for j, (_, pending, k) in enumerate(queue):
            fill = dict(generated=result.generated[j], loss=float(result.loss[j]), history=result.history[:, j])
            pending.views[k] = dataclasses.replace(pending.views[k], **fill)

    def finish(self, pending: _Pending) -> FilledPhoto | Failed:
        """Paste the views back, one after another, each on the last's result."""
        if pending.failure is not None:
            return Failed(pending.name, pending.path, pending.failure)
        image = pending.photo.pixels
        for view in pending.views:
            image = views_lib.paste_back(image, view, self.blend)
        image = photos_lib.to_grayscale(image) if pending.photo.gray else image
        return FilledPhoto(pending.photo, image, tuple(pending.views), pending.warning)


def _settings(model: store.Model, settings: SearchSettings | None, seed: int, options: dict) -> SearchSettings:
    """The search settings: the card's (or `settings`), with the fields `options` names."""
    fields = {f.name for f in dataclasses.fields(SearchSettings)}
    unknown = sorted(set(options) - fields - set(MASK_OPTIONS))
    if unknown:  # a typo would otherwise be dropped silently with a mask file
        raise ArgumentError(
            f"Unknown option {unknown[0]!r} of fill: expected a search setting ({', '.join(sorted(fields))}) "
            f"or a mask option ({', '.join(MASK_OPTIONS)})"
        )
    chosen = {k: v for k, v in options.items() if k in fields}
    if settings is None:
        settings = model.card.search_settings(**{"seed": seed, **chosen})
    elif chosen:
        settings = dataclasses.replace(settings, **{k: v for k, v in chosen.items() if v is not None})
    settings.starts_from_encoder(model.encoder)  # refuses init="encoder" without one, before any photo
    return settings


def fill(
    photos: Iterable[PhotoSpec],
    model: store.Model | str | os.PathLike | None = None,
    mask: MaskSpec = "block",
    *,
    settings: SearchSettings | None = None,
    blend: str = "poisson",
    batch_size: int = 16,
    seed: int = 0,
    invert: bool = False,
    progress: Progress | None = None,
    max_pixels: int = MAX_PIXELS,
    align: str = "auto",
    face: str = "all",
    errors: str = "raise",
    indices: Sequence[int] | None = None,
    checked: bool = False,
    **options,
) -> Iterator[FilledPhoto | Failed]:
    """Fill the holes of photos with the model, a batch at a time; yields one result per photo.

    Args:
        photos: image files, folders (searched recursively), globs, or uint8 arrays
            `[H, W, 3]` (`[H, W]` grayscale), of any size.
        model: a loaded `store.Model`, a shipped model's name, a run or an export folder
            (None: the default shipped model).
        mask: see `views.photo_mask`: a kind (made in the model's crop, or in each face's
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
            each through its own frame, or the centre crop (`views.frames`).
        face: `all` faces found, or the `largest` only.
        errors: `raise` stops at the first photo that cannot be filled (damaged, no face,
            faces too small, a hole outside every view); `report` yields a `Failed` for it
            and goes on.
        indices: each photo's place in the whole job, which seeds its generated mask
            (default: its place in `photos`), so that a share of a job filled apart (a
            Beam worker's batch, say) gets the masks the whole job would give it.
        checked: `photos.check` has passed on these photos, mask and model already (the
            command line runs it before TensorFlow starts): it is not run again.

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
    if align == "on" and model.card.face_template() is None:
        raise ModelError(f"Model {model.path} is not a face model (its card has no landmark template): it cannot align")
    settings = _settings(model, settings, seed, options)
    mask_options = masks_lib.MaskOptions(**{k: v for k, v in options.items() if k in MASK_OPTIONS and v is not None})
    mask_options.check(model.image_size)  # once, before any photo: not as many failures as photos
    photos = photos_lib.expand(photos)
    if indices is not None and len(indices) != len(photos):
        raise ArgumentError(f"Expected an index for each of the {len(photos)} photos, got {len(indices)}")
    if not checked:
        photos_lib.check(photos, mask, max_pixels, model.preprocess, model.image_size)
    job = _Job(model, mask, settings, blend, seed, invert, max_pixels, align, face, mask_options, progress)

    waiting: collections.deque[_Pending] = collections.deque()
    queue: list[tuple[int, _Pending, int]] = []
    for i, spec in enumerate(photos):
        try:
            pending = job.look(i if indices is None else indices[i], spec)
        except (DataError, MaskError) as e:  # damaged (the header was fine), no face, a hole outside
            if errors == "raise":
                raise
            pending = _Pending(photos_lib.photo_name(spec, i), photos_lib.photo_path(spec), failure=str(e))
        waiting.append(pending)
        queue += [(i, pending, k) for k in range(len(pending.views))]
        while len(queue) >= batch_size or (i == len(photos) - 1 and queue):
            job.search(queue[:batch_size], len(photos))
            queue = queue[batch_size:]
        while waiting and waiting[0].done:
            yield job.finish(waiting.popleft())


def fill_into(
    photos: Iterable[PhotoSpec],
    out: str | os.PathLike,
    model: store.Model | str | os.PathLike | None = None,
    mask: MaskSpec = "block",
    *,
    panel: bool = False,
    overwrite: bool = False,
    **options,
) -> Iterator[Event]:
    """`tfinpaint fill`'s job: fill photos into the folder `out`, each file written
    atomically, telling what happens as it happens.

    Photos whose outputs exist already are skipped unless `overwrite` (`Found` says how many),
    so running the same call again after an interruption fills only what is missing. A
    photo that cannot be filled is one `Failed` and the others are still filled. Other
    options are `fill`'s (`errors` is always `report`).

    Yields:
        `Found`, then per photo a `Warned` (if any) and a `Written` or `Kept` per file, or
        a `Failed`.

    Raises:
        OutputError: `out` cannot be written, or two photos would be written to one name.
    """
    photos = photos_lib.expand(photos)
    todo = photos_lib.still_to_fill(photos, out, panel, overwrite)
    yield Found(len(photos), len(photos) - len(todo))
    if not todo:
        return
    for result in fill(todo, model, mask, errors="report", **options):
        if isinstance(result, Failed):
            yield result
            continue
        if result.warning:
            yield Warned(result.warning)
        for path, written in result.save(out, panel=panel, overwrite=overwrite):
            yield Written(path) if written else Kept(path)


class _CallableModule(types.ModuleType):
    """`tfinpaint.fill` is this module once anything imports it (the import binds the package's
    attribute), while the package's API promises the function: called, the module is `fill`."""

    def __call__(self, *args, **kwargs):
        return fill(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
