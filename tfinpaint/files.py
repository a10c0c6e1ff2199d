"""Writing results safely: atomically, without replacing another run's file, and
cleaning up after runs that were killed.

A file is written to a hidden temporary name in its own folder, `.NAME.PID.tmp`, then
moved into place in one step, so a reader (or a run killed mid-write) never sees half a
file. Without `replace`, the move is a hard link, which fails if the name exists: two
runs writing the same name cannot replace each other's result. Temporaries are named by
their writer's process id, so those of processes no longer running can be removed.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

_TEMP = re.compile(r"^\..+\.(?P<pid>\d+)\.tmp$")


def temp_path(path: Path) -> Path:
    """This process's temporary name for `path`, in the same folder."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def write_atomically(path: str | os.PathLike, write: Callable[[Path], None], replace: bool = True) -> bool:
    """Call `write(temporary_path)`, then move the file to `path` in one step.

    Returns:
        True if `path` now holds this file; False if `replace` is off and `path` existed
        (then nothing is changed).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        write(tmp)
        if replace:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)  # atomic, and refuses an existing name
        except FileExistsError:
            return False
        return True
    finally:
        tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporaries (files or folders) in `folder` left by processes that are no
    longer running; returns what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for p in folder.iterdir():
        m = _TEMP.match(p.name)
        if m and not _alive(int(m["pid"])):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() and not p.is_symlink() else p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def is_glob(spec) -> bool:
    """Whether a path spec is a glob pattern (holds `*`, `?` or `[`)."""
    return any(c in str(spec) for c in "*?[")
