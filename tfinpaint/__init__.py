"""tfinpaint: semantic image inpainting with deep generative models (Yeh et al., 2016).

The Python API:

- `tfinpaint.load_model(name_or_path)`: a shipped model, a training run or an export.
- `tfinpaint.fill(photos, model, mask="block")`: photos of any size in, filled photos out.
- `tfinpaint.inpaint(images, masks, generator, discriminator)`: the latent search on
  images at the model's size.

Keras must run on TensorFlow: the backend is chosen here, once, before any module of
the package imports Keras (`KERAS_BACKEND` defaults to `tensorflow`), and
`check_backend()` raises `BackendError` if the environment asks for another. It runs
when `tfinpaint.models` (which every Keras model of the package comes from) is imported,
when the public functions below are first used, and before every CLI command, so the
CLI reports it as one line. Nothing heavy is imported by `import tfinpaint` itself.

TensorFlow turns its oneDNN CPU kernels on by itself only on CPUs with AVX-512; on an
AVX2-only CPU (this project's 2-core AMD EPYC) asking for them made the training step
1.5x faster. So `TF_ENABLE_ONEDNN_OPTS` defaults to 1 here, before TensorFlow loads (set
it to 0 to opt out; it has no effect on GPUs, or if TensorFlow was imported first).
"""

import importlib
import os

from tfinpaint.errors import BackendError, TfinpaintError

__version__ = "0.1.0"
__all__ = ["BackendError", "TfinpaintError", "check_backend", "fill", "inpaint", "load_model"]

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def check_backend() -> None:
    """Raise `BackendError` unless Keras is configured for TensorFlow."""
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend != "tensorflow":
        raise BackendError(
            f"tfinpaint needs Keras on the TensorFlow backend, but KERAS_BACKEND={backend!r}; "
            "unset it or set KERAS_BACKEND=tensorflow"
        )


# The public functions live in modules that import TensorFlow; load them on first use.
_LAZY = {
    "fill": ("tfinpaint.fill", "fill"),
    "inpaint": ("tfinpaint.search", "inpaint"),
    "load_model": ("tfinpaint.store", "load_model"),
}


def __getattr__(name):
    if name in _LAZY:
        check_backend()
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'tfinpaint' has no attribute {name!r}")
