"""tfinpaint: semantic image inpainting with deep generative models (Yeh et al., 2016).

`tfinpaint.inpaint(images, masks, generator, discriminator, ...)` is the Python API
(the module `tfinpaint.inpaint` is callable). Modules that import Keras check first
that it runs on TensorFlow; nothing heavy is imported by `import tfinpaint`.
"""

import importlib

__version__ = "0.1.0"


def __getattr__(name):
    if name in ("inpaint", "fill", "train", "export", "models", "data", "masks", "blend"):
        return importlib.import_module(f"tfinpaint.{name}")
    raise AttributeError(f"module 'tfinpaint' has no attribute {name!r}")
