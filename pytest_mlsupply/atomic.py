"""Atomic file writes: a reader sees the old file or the new one, never half of one.

The new content goes to a temporary file in the same directory (so the final
rename never crosses filesystems), is flushed to disk, then renamed over the
target with ``os.replace``. No file locks: they silently do nothing on some
network filesystems, and a rename is atomic without them.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

_DEFAULT_MODE = 0o644


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write *text* (UTF-8, newlines as given, never translated) to *path* atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write *data* to *path* atomically, keeping the permissions of the file it replaces."""
    target = Path(path)
    try:
        mode = target.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = _DEFAULT_MODE
    fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp_name, mode)
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
