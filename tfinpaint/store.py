"""The model on disk: model cards, training runs, exports and the shipped models.

A model is one of
- a training run (`tfinpaint train`): `model.json`, `generator.keras`, `discriminator.keras`;
- an export (`tfinpaint export`, a TF Serving base path): `model.json`, `<version>/` SavedModels;
- a shipped model's name (`celeba64`, `svhn64`): an export inside the installed package.

The model card (`ModelCard`) is read and written here only. Every other module asks this
one for a model; this one imports none of them but the models and the search settings.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

import keras
import tensorflow as tf

from tfinpaint import files
from tfinpaint.constants import IMAGE_SIZES, INITS, PREPROCESS, REFINES
from tfinpaint.errors import ModelError
from tfinpaint.faces import LANDMARKS, Template
from tfinpaint.locate import CARD, resolve, shipped_dir
from tfinpaint.models import Discriminator, Encoder, Generator, build_encoder, build_pair
from tfinpaint.settings import SearchSettings

RUN_FORMAT = "tfinpaint-run/1"
EXPORT_FORMAT = "tfinpaint-export/1"
# Importing them registers them with keras.saving, which is what loading a run needs.
KERAS_CLASSES = (Generator, Discriminator, Encoder)


# The model card's schema: each field's check and what it must be, for one-line messages.
def _whole(low: int = 0, high: int | None = None):
    def ok(v):
        return isinstance(v, int) and not isinstance(v, bool) and v >= low and (high is None or v <= high)

    return ok, f"a whole number ≥ {low}" if high is None else f"a whole number from {low} to {high}"


def _number(low: float = 0.0, above: bool = False, below: float | None = None):
    def ok(v):
        real = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        return real and (v > low if above else v >= low) and (below is None or v < below)

    limit = f"> {low:g}" if above else f"≥ {low:g}"
    return ok, f"a finite number {limit}" + (f" and < {below:g}" if below is not None else "")


def _one_of(choices):
    return (lambda v: isinstance(v, (str, int)) and not isinstance(v, bool) and v in choices), "one of " + ", ".join(
        json.dumps(c) for c in choices
    )


def _optional(check):
    ok, what = check
    return (lambda v: v is None or ok(v)), f"{what}, or null"


_BOOLEAN = (lambda v: isinstance(v, bool)), "true or false"
_TEXT = (lambda v: isinstance(v, str)), "a string"
_TEXTS = (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v)), "a list of strings"
_OBJECT = (lambda v: isinstance(v, dict)), "an object"
_POINT = (
    lambda v: isinstance(v, list) and len(v) == 2 and all(_number(-1.0)[0](x) for x in v),
    "a pair of finite numbers",
)

CARD_SCHEMA = {
    "format": _TEXT,
    "image_size": _one_of(IMAGE_SIZES),
    "latent_dim": _whole(1),
    "channels": _one_of((1, 3)),
    "width": _whole(1),
    "batch_norm": _BOOLEAN,
    "spectral_norm": _BOOLEAN,
    "preprocess": _one_of(PREPROCESS),
    "dataset": ((lambda v: _TEXT[0](v) or _TEXTS[0](v)), "a string or a list of strings"),
    "heldout": _TEXTS,
    "search": _OBJECT,
    "faces": _OBJECT,
    "encoder": _OBJECT,
}
SEARCH_SCHEMA = {
    "iterations": _whole(0),
    "lam": _number(0.0),
    "lr": _number(0.0, above=True),
    "beta1": _number(0.0, below=1.0),
    "restarts": _whole(1),
    "weighted": _BOOLEAN,
    "seed": _whole(0, 2**63 - 1),
    "refine": _one_of(REFINES),
    "refine_steps": _whole(0),
    "refine_lr": _optional(_number(0.0, above=True)),
    "init": _one_of(INITS),
    "min_z_rms": _number(0.0, below=1.0),
}
ENCODER_SCHEMA = {
    "width": _whole(1),
    "steps": _whole(0),
    "batch_size": _whole(1),
    "training_images": _whole(0),
    "training_seconds": _number(0.0),
}
FACES_SCHEMA = {
    "landmarks": ((lambda v: isinstance(v, dict) and set(v) == set(LANDMARKS)), "an object of the 5 landmarks"),
    "spread": _number(0.0),
    "typical": _number(0.0),
    "faces": _whole(1),
    "detector": _TEXT,
}


def check_card(data: dict, where: str) -> None:
    """Every field a card has, by `CARD_SCHEMA` and its entries' schemas.

    Raises:
        ModelError: one line naming the first field that is wrong and what it holds.
    """
    entries = [("", data, CARD_SCHEMA)]
    for name, schema in (("search", SEARCH_SCHEMA), ("encoder", ENCODER_SCHEMA), ("faces", FACES_SCHEMA)):
        if isinstance(data.get(name), dict):
            entries.append((f"{name}.", data[name], schema))
    if isinstance(data.get("faces"), dict) and isinstance(data["faces"].get("landmarks"), dict):
        entries.append(("faces.landmarks.", data["faces"]["landmarks"], dict.fromkeys(LANDMARKS, _POINT)))
    for prefix, values, schema in entries:
        for key, (ok, what) in schema.items():
            if key in values and not ok(values[key]):
                raise ModelError(f"{where}: {prefix}{key} must be {what}, got {json.dumps(values[key])}")


@dataclasses.dataclass(frozen=True)
class ModelCard:
    """What a model is and how it was made; `model.json` beside the weights. Frozen: a
    changed card is a new one (`dataclasses.replace`), written whole (`write`).

    Attributes:
        format: `tfinpaint-run/1` or `tfinpaint-export/1`.
        image_size, latent_dim, channels, width, batch_norm, spectral_norm: the architecture
            (`spectral_norm`: D's, in place of its batch norm).
        preprocess: how photos are cropped and resized for it (`celeba`, `svhn`, `square`).
        dataset: the training data: a TFDS name, a folder, or a list of folders.
        heldout: images of the dataset kept out of training (names or paths).
        search: search settings (`SearchSettings` fields) that `fill` uses by default.
        faces: for a model of faces, where its training faces have their landmarks
            (`faces.Template.to_dict`); empty for other models.
        encoder: for a model with an inpainting encoder, its width and how it was
            trained (`encode.train_encoder`); empty for models without one.
        extra: everything else the card says (training steps and time, data terms,
            held-out scores, ...), kept as it is.
    """

    format: str
    image_size: int
    latent_dim: int
    channels: int = 3
    width: int = 64
    batch_norm: bool = True
    spectral_norm: bool = False
    preprocess: str = "square"
    dataset: str | list[str] = ""
    heldout: list[str] = dataclasses.field(default_factory=list)
    search: dict = dataclasses.field(default_factory=dict)
    faces: dict = dataclasses.field(default_factory=dict)
    encoder: dict = dataclasses.field(default_factory=dict)
    extra: dict = dataclasses.field(default_factory=dict)

    REQUIRED = ("format", "image_size", "latent_dim")

    @classmethod
    def from_dict(cls, data: dict, where: str = "model card") -> ModelCard:
        if not isinstance(data, dict):
            raise ModelError(f"{where} is not a JSON object")
        missing = [k for k in cls.REQUIRED if k not in data]
        if missing:
            raise ModelError(f"{where} lacks {', '.join(missing)}")
        check_card(data, where)
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in data.items() if k in names}
        return cls(**known, extra={k: v for k, v in data.items() if k not in names})

    def to_dict(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        for empty in ("search", "faces", "encoder"):
            if not data[empty]:
                del data[empty]
        return {**data, **self.extra}

    @classmethod
    def read(cls, path: str | os.PathLike) -> ModelCard:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except OSError as e:
            raise ModelError(f"Cannot read the model card {path}: {e.strerror or e}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ModelError(f"The model card {path} is damaged (not valid JSON: {e})") from None
        return cls.from_dict(data, where=f"The model card {path}")

    def write(self, path: str | os.PathLike) -> None:
        """Write the card atomically, under the temporary name that `files` cleans up after
        a killed process."""
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        files.write_atomically(path, lambda tmp: tmp.write_text(text))

    def search_settings(self, **chosen) -> SearchSettings:
        """The card's search settings, with the fields given and not None replaced."""
        fields = {f.name for f in dataclasses.fields(SearchSettings)}
        base = {k: v for k, v in self.search.items() if k in fields}
        return SearchSettings(**{**base, **{k: v for k, v in chosen.items() if v is not None}})

    def face_template(self) -> Template | None:
        """The landmark template of a face model (None for other models).

        Raises:
            ModelError: the card's `faces` entry is damaged.
        """
        if not self.faces:
            return None
        try:
            return Template.from_dict(self.faces)
        except (KeyError, TypeError, ValueError) as e:
            raise ModelError(f"The model card's faces entry is damaged ({type(e).__name__}: {e})") from None

    def dataset_folders(self, relative_to: Path | None = None) -> list[Path]:
        """The training folders that exist: as recorded, or relative to `relative_to`
        (the repository, for shipped models whose cards record repository-relative paths)."""
        recorded = [self.dataset] if isinstance(self.dataset, str) else list(self.dataset)
        found = []
        for entry in recorded:
            for candidate in (Path(entry), *([relative_to / entry] if relative_to else [])):
                if entry and candidate.is_dir():
                    found.append(candidate)
                    break
        return found


@dataclasses.dataclass
class Model:
    """A trained pair ready for the search, with its card.

    Attributes:
        generator, discriminator: Keras models (for an export, rebuilt from its variables).
        card: the model card.
        path: where it was loaded from.
        encoder: the inpainting encoder (`models.Encoder`), or None for a model without one.
    """

    generator: object
    discriminator: object
    card: ModelCard
    path: Path
    encoder: object | None = None

    @property
    def image_size(self) -> int:
        return self.card.image_size

    @property
    def preprocess(self) -> str:
        return self.card.preprocess

    @property
    def shipped(self) -> bool:
        return self.path.parent.resolve() == shipped_dir().resolve()


def is_run(path: Path) -> bool:
    return (path / "generator.keras").is_file()


def load_card(spec: str | os.PathLike | None = None) -> tuple[Path, ModelCard]:
    """The folder and card of a model (as for `load_model`), without loading its weights."""
    path = resolve(spec)
    return path, ModelCard.read(path / CARD)


def load_model(spec: str | os.PathLike | None = None) -> Model:
    """Load a training run or an export by path, or a shipped model by name.

    Raises:
        ModelError: nothing there, not a tfinpaint model, or a damaged one.
    """
    path, card = load_card(spec)
    if is_run(path):
        g, d = _load_keras(path / "generator.keras"), _load_keras(path / "discriminator.keras")
        e = _load_keras(path / "encoder.keras") if card.encoder else None
        _check_matches(path, card, g, d)
        return Model(g, d, card, path, e)
    g, d, e = _load_export(path, card)
    return Model(g, d, card, path, e)


def _load_keras(path: Path) -> keras.Model:
    if not path.is_file():
        raise ModelError(f"{path.parent} is not a complete tfinpaint run ({path.name} is missing)")
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as e:  # zip, HDF5 and deserialisation errors of every kind
        if "safe_mode" in str(e):  # Keras refused code stored in the file (a Lambda layer, say)
            raise ModelError(
                f"{path} holds code (such as a Lambda layer) that Keras's safe mode refuses to run: "
                "a tfinpaint model holds none, so it was not written by tfinpaint"
            ) from None
        raise ModelError(f"{path} is damaged and cannot be loaded ({type(e).__name__})") from None


def _check_matches(path: Path, card: ModelCard, g: keras.Model, d: keras.Model) -> None:
    """Refuse a run whose generator and discriminator are not the models its card describes
    (files copied in from another run, say): the search, the export and the encoder all
    build from the card."""
    for model, what in ((g, "generator"), (d, "discriminator")):
        for key in ("latent_dim", "image_size", "channels", "width"):
            value, expected = getattr(model, key, None), getattr(card, key)
            if value is not None and value != expected:
                raise ModelError(
                    f"{path} does not match its model card: its {what}'s {key} is {value}, the card says {expected}"
                )


def latest_version(base: str | os.PathLike) -> Path:
    """The highest-numbered version folder of a TF Serving model base path."""
    base = Path(base)
    versions = sorted((int(p.name), p) for p in base.iterdir() if p.name.isdigit() and (p / "saved_model.pb").is_file())
    if not versions:
        raise ModelError(f"{base} holds no SavedModel version folder (and no generator.keras)")
    return versions[-1][1]


def _load_export(base: Path, card: ModelCard) -> tuple[keras.Model, keras.Model, keras.Model | None]:
    """G, D and E (None without an encoder) of an export as Keras models, rebuilt from the
    card and given the SavedModel's own variables (`served_variables`: G's weights, D's, then
    E's), so nothing is stored twice. The variables are read from the checkpoint alone: the
    search runs in Python, and loading the graph too would cost most of a second."""
    version = latest_version(base)
    g, d = build_pair(card.image_size, card.width, card.latent_dim, card.channels, card.batch_norm, card.spectral_norm)
    e = None
    if card.encoder:
        width = card.encoder.get("width", card.width)
        e = build_encoder(card.image_size, width, card.latent_dim, card.channels, card.batch_norm)
    models = [m for m in (g, d, e) if m is not None]
    try:
        reader = tf.train.load_checkpoint(str(version / "variables" / "variables"))
        names = reader.get_variable_to_shape_map()
        count = sum(1 for k in names if k.startswith("served_variables/"))
        values = [reader.get_tensor(f"served_variables/{i}/.ATTRIBUTES/VARIABLE_VALUE") for i in range(count)]
    except Exception as e:  # missing or damaged variables, or not a tfinpaint export
        raise ModelError(f"The SavedModel in {version} is damaged and cannot be loaded ({type(e).__name__})") from None
    if len(values) != sum(len(m.weights) for m in models):
        raise ModelError(f"The SavedModel in {version} does not match its model card's architecture")
    try:
        for m in models:
            m.set_weights(values[: len(m.weights)])
            values = values[len(m.weights) :]
    except ValueError as e:
        raise ModelError(f"The SavedModel in {version} does not match its model card's architecture ({e})") from None
    return g, d, e


def save_run(
    run_dir: Path, generator: keras.Model, discriminator: keras.Model, card: ModelCard, **more: keras.Model
) -> None:
    """Write a finished run's models and card: `generator.keras`, `discriminator.keras`,
    `<name>.keras` for each of `more`, and `model.json` last (its presence marks a whole run)."""
    generator.save(run_dir / "generator.keras")
    discriminator.save(run_dir / "discriminator.keras")
    for name, model in more.items():
        model.save(run_dir / f"{name}.keras")
    card.write(run_dir / CARD)


def run_card(run_dir: Path) -> ModelCard | None:
    """The card of a run directory, if it has one."""
    path = Path(run_dir) / CARD
    return ModelCard.read(path) if path.is_file() else None
