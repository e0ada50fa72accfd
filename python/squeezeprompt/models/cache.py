"""The user cache directory and atomic directory writes.

Converting a GGUF model to fp32 takes 20-60 s; the result is cached under
``$SQUEEZEPROMPT_CACHE`` (default ``~/.cache/squeezeprompt``) so later loads take
seconds. A cache entry is written into a temporary sibling directory and renamed
into place, so a crash or a concurrent writer never leaves a half-written entry.

Example:
    >>> cache_dir().is_dir()
    True
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

CACHE_ENV = "SQUEEZEPROMPT_CACHE"


def cache_dir() -> Path:
    """The squeezeprompt cache root, created if missing.

    Example:
        >>> cache_dir().name != ""
        True
    """
    root = os.environ.get(CACHE_ENV)
    path = Path(root).expanduser() if root else Path.home() / ".cache" / "squeezeprompt"
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_dir_atomically(target: Path, fill: Callable[[Path], None]) -> Path:
    """Calls ``fill(tmp)`` on a fresh temporary directory, then renames it to ``target``.

    If ``target`` appeared meanwhile (another process won the race), the temporary
    copy is discarded and the existing entry kept: both are complete.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> out = write_dir_atomically(root / "entry", lambda d: (d / "f.txt").write_text("x"))
        >>> (out / "f.txt").read_text()
        'x'
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        # mkdtemp makes the directory private; a cache entry is meant to be shared.
        os.chmod(tmp, 0o755)
        fill(tmp)
        for f in tmp.rglob("*"):
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
