"""The errors a user should see as one line: every one derives from `TfinpaintError`.

Each also derives from the built-in type that describes it (`ValueError` for bad
input, `RuntimeError` for a process that cannot go on), so callers may catch either.
"""


def first_line(error: BaseException, limit: int = 200) -> str:
    """The first line of an error's message, at most `limit` characters: for one-line reports."""
    return (str(error).strip().splitlines() or [""])[0][:limit]


class TfinpaintError(Exception):
    """Base of every expected failure; its message names the thing and the problem."""


class BackendError(TfinpaintError, ImportError):
    """Keras is configured for a backend other than TensorFlow."""


class DataError(TfinpaintError, ValueError):
    """A dataset spec or image file that names nothing usable."""


def no_such_image(path) -> "DataError":
    """The error for a photo path that names no file."""
    return DataError(f"Cannot read image {path}: no such file")


class MaskError(TfinpaintError, ValueError):
    """A mask spec or mask file that cannot be used."""


class ModelError(TfinpaintError, ValueError):
    """A model path or name that does not lead to a usable tfinpaint model."""


class TrainingError(TfinpaintError, RuntimeError):
    """Training cannot start or cannot go on."""


class ArgumentError(TfinpaintError, ValueError):
    """An argument of the wrong kind, shape or range, given to the library from Python (the
    command line checks its options before they get here)."""


class BlendError(TfinpaintError, ArithmeticError):
    """Poisson blending did not converge."""


class OutputError(TfinpaintError, ValueError):
    """An output file that must not or cannot be written."""


class MissingDependency(TfinpaintError, ImportError):
    """An optional package that a feature needs (a baseline's, say) is not installed."""


class ExportError(TfinpaintError, RuntimeError):
    """The export cannot be written; nothing was left half-written."""
