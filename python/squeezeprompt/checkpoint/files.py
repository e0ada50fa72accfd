"""Crash-safe file writes and integrity checks for checkpoints.

A file is written to a temporary name in its final directory, flushed and fsynced,
then renamed over the target (atomic on POSIX); the directory is fsynced so the
rename itself survives a crash.

Example:
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> digest = write_atomic(d / "a.bin", b"abc")
    >>> digest == sha256_file(d / "a.bin")
    True
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

CHUNK = 1 << 20


def fsync_dir(path: Path) -> None:
    """Makes renames inside ``path`` durable (no-op where directories cannot be opened).

    Example:
        >>> fsync_dir(Path("."))
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # e.g. Windows: directory handles cannot be fsynced
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(target: Path, data: bytes) -> str:
    """Writes ``data`` to ``target`` via temp file + fsync + rename; returns its sha256.

    Example:
        >>> import tempfile
        >>> write_atomic(Path(tempfile.mkdtemp()) / "x", b"")[:8]
        'e3b0c442'
    """
    target = Path(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "f"; _ = p.write_bytes(b"abc")
        >>> sha256_file(p)[:8]
        'ba7816bf'
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            h.update(block)
    return h.hexdigest()
