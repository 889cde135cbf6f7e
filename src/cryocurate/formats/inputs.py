"""The one check every reader makes before it opens a file: there, a file, readable.

It turns the OS's errors into :class:`~cryocurate.errors.MissingFileError` with the path,
so a missing or unreadable input is one clear line rather than a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryocurate.errors import MissingFileError


def check_readable(path: Path) -> None:
    """Raise :class:`MissingFileError` unless ``path`` is a regular file we may read."""
    if not path.is_file():
        raise MissingFileError(
            "file not found" if not path.exists() else "is not a file", where=path
        )
    if not os.access(path, os.R_OK):
        raise MissingFileError("cannot be read (permission denied)", where=path)
