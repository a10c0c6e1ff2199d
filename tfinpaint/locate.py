"""Where a model is: a folder given by path, or a shipped model's name.

Nothing here imports TensorFlow, so the command line can refuse a model that does not
exist at once, before TensorFlow starts. Reading what is there is `tfinpaint.store`'s work.
"""

from __future__ import annotations

import importlib.resources
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
