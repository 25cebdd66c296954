"""Files written whole or not at all.

:func:`atomic_write` lets a writer fill a temporary file in the target's folder, syncs it to
disk, then renames it over the target (``os.replace``, atomic on POSIX): a crash, a kill or an
error while writing leaves the previous file (or no file) in place, never a half-written one.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Call ``write(temporary)`` to create a file, then move it to ``path`` atomically.

    The temporary file sits in the target's folder (same file system, so the rename is atomic)
    and gets the usual umask-based permissions; it is flushed and synced before the rename and
    the folder is synced afterwards, so the rename itself survives a power loss. If ``write``
    raises, the temporary file is removed and ``path`` is untouched. Returns ``path``.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        write(temporary)
        _sync_file(temporary)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _sync_folder(target.parent)
    return target


def _sync_file(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _sync_folder(folder: Path) -> None:
    """``fsync`` a folder so that a rename inside it is durable (no-op where unsupported)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
