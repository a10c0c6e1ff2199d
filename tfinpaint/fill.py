"""Filling real photos: any size in, the same size out, known pixels untouched.

A photo is cropped and resized to the model's input by the model's own preprocessing,
its hole filled by the latent search, and G(z) (resized back) blended into the
original at full resolution. Only the crop the model sees can be filled.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from PIL import Image

from tfinpaint import blend as blend_lib
from tfinpaint import data as data_lib
from tfinpaint import masks as masks_lib

SHIPPED = Path(__file__).resolve().parents[1] / "saved_models"
DEFAULT_MODEL = "celeba64"


class ModelError(ValueError):
    """A model path or name that does not lead to a tfinpaint model."""


@dataclasses.dataclass
class Model:
    """A trained pair ready for `inpaint`, with its model card.

    Attributes:
        generator, discriminator: callables with `latent_dim`, `image_size`, `channels`.
        card: the model card (image size, latent size, preprocessing, search defaults...).
        path: where it was loaded from.
    """

    generator: object
    discriminator: object
    card: dict
    path: Path

    @property
    def image_size(self) -> int:
        return int(self.card["image_size"])

    @property
    def preprocess(self) -> str:
        return self.card.get("preprocess", "square")


def resolve_model_path(spec: str | Path | None) -> Path:
    """A model directory from a path or the name of a shipped model (None: the default)."""
    spec = DEFAULT_MODEL if spec is None else spec
    path = Path(spec)
    if not path.exists() and len(path.parts) == 1 and (SHIPPED / path).exists():
        path = SHIPPED / path
    if not path.exists():
        shipped = sorted(p.name for p in SHIPPED.iterdir() if p.is_dir()) if SHIPPED.is_dir() else []
        raise ModelError(f"Model {spec} does not exist (shipped models: {', '.join(shipped) or 'none'})")
    return path


def load_model(spec: str | Path | None = None) -> Model:
    """Load a training run directory or an exported model (`tfinpaint export`) by path or shipped name.

    Raises:
        ModelError: nothing there, or not a tfinpaint model.
    """
    path = resolve_model_path(spec)
    card_path = path / "model.json"
    if (path / "generator.keras").is_file() and card_path.is_file():
        from tfinpaint.train import load_run

        g, d, card = load_run(path)
        return Model(g, d, card, path)
    if card_path.is_file():
        from tfinpaint.export import load_exported

        g, d, card = load_exported(path)
        return Model(g, d, card, path)
    raise ModelError(f"{path} is not a tfinpaint model (no model.json with generator.keras or an exported SavedModel)")


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


def _resize(array: np.ndarray, height: int, width: int, resample) -> np.ndarray:
    """Resize a float `[h, w, c]` array channel by channel with Pillow."""
    chans = [
        np.asarray(Image.fromarray(array[..., k].astype(np.float32), mode="F").resize((width, height), resample))
        for k in range(array.shape[-1])
    ]
    return np.stack(chans, axis=-1)


def mask_in_photo(model_mask: np.ndarray, shape: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    """A mask made at the model's size, stretched (nearest) over the region the model sees."""
    top, left, h, w = box
    full = np.ones(shape + (1,), np.float32)
    full[top : top + h, left : left + w] = _resize(model_mask, h, w, Image.NEAREST) > 0.5
    return full


def prepare(original: np.ndarray, mask: np.ndarray, preprocess: str, size: int, name: str = "image") -> Prepared:
    """Crop and resize a photo and its mask `[H, W, 1]` to the model's input."""
    h, w = original.shape[:2]
    if mask.shape[:2] != (h, w):
        raise masks_lib.MaskError(f"Expected a mask of shape {(h, w, 1)} for {name}, got {mask.shape}")
    top, left, bh, bw = box = data_lib.crop_box(h, w, preprocess)
    outside = mask.copy()
    outside[top : top + bh, left : left + bw] = 1.0
    if (outside < 0.5).any():
        raise masks_lib.MaskError(
            f"The mask of {name} has missing pixels outside the {bw}x{bh} region at ({left}, {top}) "
            f"that the model sees ({preprocess} preprocessing)"
        )
    crop = original[top : top + bh, left : left + bw]
    known = mask[top : top + bh, left : left + bw]
    model_image = data_lib.preprocess_numpy(crop, "svhn", size)  # already cropped: resize only
    model_mask = (_resize(known.astype(np.float32), size, size, Image.BOX) > 1.0 - 1e-6).astype(np.float32)
    model_image = np.where(model_mask > 0.5, model_image, 0.0).astype(np.float32)
    return Prepared(original, mask.astype(np.float32), box, model_image, model_mask)


def paste_back(prep: Prepared, generated: np.ndarray, method: str = "poisson") -> np.ndarray:
    """Blend G(z) `[S, S, 3]` in [-1, 1], resized to the crop, into the original photo.

    Returns uint8 `[H, W, 3]` whose known pixels equal the original's exactly.
    """
    top, left, h, w = prep.box
    target = prep.original.astype(np.float64)
    source = target.copy()
    source[top : top + h, left : left + w] = (_resize(generated, h, w, Image.BICUBIC) + 1.0) * 127.5
    if method == "poisson":
        out = blend_lib.poisson(source, target, prep.mask)
    else:
        out = blend_lib.overlay(source, target, prep.mask)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def masks_for(
    spec: str,
    images: list[Path],
    shapes: list[tuple[int, int]],
    preprocess: str,
    size: int,
    *,
    seed: int = 0,
    invert: bool = False,
    **kind_options,
) -> list[np.ndarray]:
    """One photo-sized mask `[H, W, 1]` per image from a mask spec.

    `spec` is a kind (`block`, `random`, `half`, `pattern`: made at the model's size,
    seeded per image), a mask file (for every image), or a folder of mask files
    matched to the images by name.
    """
    out = []
    for i, (path, (h, w)) in enumerate(zip(images, shapes)):
        if spec in masks_lib.KINDS:
            rng = np.random.default_rng([seed, i])
            m = masks_lib.make(spec, size, rng=rng, **kind_options)
            out.append(mask_in_photo(m, (h, w), data_lib.crop_box(h, w, preprocess)))
        elif Path(spec).is_dir():
            out.append(masks_lib.load(masks_lib.find_in_folder(spec, path), h, w, invert))
        elif Path(spec).is_file():
            out.append(masks_lib.load(spec, h, w, invert))
        else:
            raise masks_lib.MaskError(
                f"Mask {spec!r} is neither one of {masks_lib.KINDS} nor an existing mask file or folder"
            )
    return out


def panel(prep: Prepared, generated: np.ndarray, result: np.ndarray) -> np.ndarray:
    """Original, masked input, G(z) and the result side by side (the region the model sees)."""
    top, left, h, w = prep.box
    crop = np.s_[top : top + h, left : left + w]
    masked = np.where(prep.mask[crop] > 0.5, prep.original[crop], 255).astype(np.uint8)
    gen = np.clip(np.round((_resize(generated, h, w, Image.BICUBIC) + 1.0) * 127.5), 0, 255).astype(np.uint8)
    gap = np.full((h, 4, 3), 255, np.uint8)
    return np.concatenate([prep.original[crop], gap, masked, gap, gen, gap, result[crop]], axis=1)


def save_image(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def search_settings(card: dict, **chosen):
    """The card's search settings (its `search` key), with the fields given and not None replaced."""
    from tfinpaint.inpaint import SearchSettings

    return SearchSettings(**{**card.get("search", {}), **{k: v for k, v in chosen.items() if v is not None}})
