"""The `tfinpaint` command line; installed as the package `tfinpaint.cli`."""

from tfinpaint.cli.main import main

__all__ = ["main"]
