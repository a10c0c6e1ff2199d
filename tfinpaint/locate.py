"""Where a model is: a folder given by path, or a shipped model's name.

Nothing here imports TensorFlow, so the command line can refuse a model that does not
exist at once, before TensorFlow starts. Reading what is there is `tfinpaint.store`'s work.
"""

from __future__ import annotations

import importlib.resources
import json
import os
from pathlib import Path

from tfinpaint.errors import ModelError

DEFAULT_MODEL = "celeba64"
CARD = "model.json"


def shipped_dir() -> Path:
    """The folder of the shipped models (package data, wherever the package is installed)."""
    return Path(str(importlib.resources.files("tfinpaint.saved_models")))


def shipped_names() -> list[str]:
    folder = shipped_dir()
    return sorted(p.name for p in folder.iterdir() if (p / CARD).is_file()) if folder.is_dir() else []


def geometry(path: Path) -> tuple[str, int] | None:
    """(preprocess, image size) from a model folder's card, or None if the card cannot be
    read that simply (`tfinpaint.store` says what is wrong with it when it loads it)."""
    try:
        card = json.loads((Path(path) / CARD).read_text())
        preprocess, size = card.get("preprocess", "square"), card["image_size"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    valid = isinstance(preprocess, str) and isinstance(size, int) and not isinstance(size, bool) and size > 0
    return (preprocess, size) if valid else None


def resolve(spec: str | os.PathLike | None) -> Path:
    """A model folder from a path or a shipped model's name (None: the default model).

    Raises:
        ModelError: nothing there, not a folder, or a folder without a model card.
    """
    spec = DEFAULT_MODEL if spec is None else spec
    path = Path(spec)
    if not path.exists() and len(path.parts) == 1 and (shipped_dir() / path).exists():
        path = shipped_dir() / path
    if not path.exists():
        raise ModelError(f"Model {spec} does not exist (shipped models: {', '.join(shipped_names()) or 'none'})")
    if not path.is_dir():
        raise ModelError(f"Model {spec} is not a folder")
    if not (path / CARD).is_file():
        raise ModelError(f"{path} is not a tfinpaint model (no {CARD})")
    return path
