"""tfinpaint: semantic image inpainting with deep generative models (Yeh et al., 2016)."""

from tfinpaint._backend import require_tensorflow_backend

require_tensorflow_backend()

__version__ = "0.1.0"
