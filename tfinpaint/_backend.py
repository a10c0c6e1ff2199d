"""Make sure Keras runs on TensorFlow before anything imports it."""

import os


class BackendError(RuntimeError):
    """Keras is configured for a backend other than TensorFlow."""


def require_tensorflow_backend() -> None:
    backend = os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if backend != "tensorflow":
        raise BackendError(
            f"tfinpaint needs Keras on the TensorFlow backend, but KERAS_BACKEND={backend!r}; "
            "unset it or set KERAS_BACKEND=tensorflow"
        )
