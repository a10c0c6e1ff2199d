"""The `tfinpaint` command line; installed as the package `tfinpaint.cli`."""

from .main import main

__all__ = ["main"]
