"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every file cryocurate writes goes through :func:`atomic_path` (or the helpers built on it):
the content is written to a temporary name in the same folder, flushed to disk, and renamed
over the target. A crash or Ctrl-C at any moment leaves either the previous file or the new
one, plus at worst a stray ``.tmp-*`` file that the next write in that folder ignores.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TMP_PREFIX = ".tmp-"


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (POSIX needs the directory itself synced)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - some filesystems refuse to open directories
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def fsync_tree(folder: Path) -> None:
    """Make every file and folder under ``folder`` durable, before it is renamed into place.

    Files staged with ``durable=False`` are synced here in one pass, rather than each paying
    for its own fsync and directory sync while it is written.
    """
    for dirpath, _dirs, names in os.walk(folder):
        for name in names:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], *, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it over ``target`` on success.

    The caller writes the whole file to the yielded path (with any library: mrcfile, Pillow,
    numpy). If the block raises, the temporary file is removed and ``target`` is untouched.
    ``durable=False`` skips the fsyncs, for files inside a staging folder that is itself
    made durable before it is renamed into place.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=target.suffix, dir=target.parent)
    # mkstemp makes the file private (0600); published files get the usual umask-based mode.
    os.fchmod(fd, 0o666 & ~_UMASK)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if durable:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, target)
        if durable:
            fsync_dir(target.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_bytes(target: str | os.PathLike[str], data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target, durable=durable) as tmp:
        tmp.write_bytes(data)


def write_text(target: str | os.PathLike[str], text: str, *, durable: bool = True) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    write_bytes(target, text.encode("utf-8"), durable=durable)


def write_json(target: str | os.PathLike[str], obj: Any, *, durable: bool = True) -> None:
    """Write ``obj`` as indented JSON (NaN refused: JSON has no NaN) atomically."""
    text = json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    write_text(target, text, durable=durable)
