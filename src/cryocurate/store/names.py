"""Names and paths that come from input, made safe for the data tree: the one place that does it.

Everything cryocurate writes lands under a root (the portal's data tree, a download's
destination, an export's folder), and many of the names it writes come from input a lab was
handed: a ``job.json``'s ``project_uid``/``uid``, a job folder's name, a Magellon job folder,
an annotation's version, a run folder of an import. Three rules, each one function here:

**Names** become one path segment with :func:`safe_segment`, and are *sanitised*, not refused:
path separators (``/`` and ``\\``), NUL and other control or format characters become ``_``,
surrounding spaces and leading dots go (so no ``.``, ``..`` or hidden name), and a name longer
than :data:`MAX_SEGMENT_BYTES` is cut and given a hash of the whole name. The result depends
only on the name, so a rerun finds the same run; a name that is already safe is returned as
it is (every name a real cryoSPARC, RELION or Magellon job has). Callers print the name a
sanitised one became. :func:`check_segment` is the refusing form, for names that must already
be safe (the layout's own path builders, the run folders of a portal download).

**Writes** are proven to stay inside their root with :func:`contained`: the target is resolved
(every symbolic link followed, as ``/files/`` resolves reads) and must be the root or under it,
else :class:`~cryocurate.errors.UnsafePathError`. :func:`check_export_folder` keeps an
export's folder, which ``--force`` replaces wholesale, from holding the portal root or lying in
its data tree. (:mod:`cryocurate.store.layout` refuses an unsafe run name in every path it
builds, and :mod:`cryocurate.store.tree` checks every swap target, and every leftover one,
with :func:`contained`.)

**Inputs** are read only from inside the folder being imported or extracted:
:func:`check_inside` refuses a file (or folder) whose symbolic links lead out of it, naming
the link and its target. Files a user names on the command line are theirs and are followed.

Messages quote input names through :func:`printable`, so a name with a newline or a terminal
escape still makes one harmless line.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path

from cryocurate.errors import UnsafePathError

MAX_SEGMENT_BYTES = 128
"""Longest name kept whole (UTF-8 bytes); file names built from it (``<run>.zarr``,
``<id>-<object>-<version>_segmentationmask.zarr``) must stay under the 255 of most filesystems."""

FALLBACK = "unnamed"
"""What a name with nothing usable in it (``..``, ``///``, only spaces) becomes."""

_UNSAFE_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}  # control, format, surrogate, line breaks


def _unsafe_char(c: str) -> bool:
    return c in "/\\" or unicodedata.category(c) in _UNSAFE_CATEGORIES


def is_safe_segment(text: object) -> bool:
    """True for a string that is usable, as it is, as one file or folder name."""
    return (
        isinstance(text, str)
        and text != ""
        and text == text.strip()
        and not text.startswith(".")
        and len(text.encode("utf-8", "surrogatepass")) <= MAX_SEGMENT_BYTES
        and not any(_unsafe_char(c) for c in text)
    )


def safe_segment(text: object, *, what: str = "name") -> str:
    """``text`` as one safe path segment (see the module docstring); deterministic.

    ``what`` is not part of the result; it says in tracebacks and logs what was named.
    """
    if is_safe_segment(text):
        assert isinstance(text, str)
        return text
    original = "" if text is None else str(text)
    cleaned = re.sub(r"_+", "_", "".join("_" if _unsafe_char(c) else c for c in original))
    cleaned = cleaned.strip().lstrip(".").strip() or FALLBACK
    raw = cleaned.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_SEGMENT_BYTES:
        digest = hashlib.sha256(original.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        head = raw[: MAX_SEGMENT_BYTES - 9].decode("utf-8", "ignore").rstrip()
        cleaned = f"{head}-{digest}"
    assert is_safe_segment(cleaned), (what, original, cleaned)
    return cleaned


def printable(text: object) -> str:
    """``text`` with control and format characters escaped (``\\n``, ``\\x1b``…), for
    messages: a name from input must not break the one-line error or drive the terminal."""
    return "".join(c if c in "/\\" or not _unsafe_char(c) else repr(c)[1:-1] for c in str(text))


def check_segment(text: object, *, what: str = "name", where: object = None) -> str:
    """``text`` if it is a safe single path segment, else one :class:`UnsafePathError` line."""
    if is_safe_segment(text):
        assert isinstance(text, str)
        return text
    raise UnsafePathError(
        f"{what} {text!r} cannot be a file or folder name (a path separator, a leading dot, "
        f"a control character, surrounding spaces or more than {MAX_SEGMENT_BYTES} bytes)",
        where=None if where is None else printable(where),
        hint=f"rename it; it would be stored as {safe_segment(text)!r}",
    )


def check_relpath(rel: str, *, what: str = "path", where: object = None) -> str:
    """A relative POSIX path from input whose every part is a safe segment (no ``..``,
    no absolute path, no hidden part)."""
    if not rel or rel.startswith("/"):
        raise UnsafePathError(
            f"{what} {rel!r} is not a relative path",
            where=None if where is None else printable(where),
        )
    for part in rel.split("/"):
        check_segment(part, what=what, where=where)
    return rel


def _within(real: str, root_real: str) -> bool:
    return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)


def real_path_within(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> str | None:
    """The real path of ``path`` (every link followed) when it lies inside ``root`` (or is
    it), else None: the containment check of readers, which answer "not found" where
    :func:`contained` refuses a write."""
    real = os.path.realpath(path)
    return real if _within(real, os.path.realpath(root)) else None


def contained(root: str | os.PathLike[str], path: str | os.PathLike[str], *,
              what: str = "write") -> Path:  # fmt: skip
    """``path`` (absolute, or relative to ``root``), proven to resolve inside ``root``.

    Every symbolic link of the part that exists is followed, so neither ``..`` nor a link
    planted in the tree leads a write out of it. Raises :class:`UnsafePathError`.
    """
    full = Path(root) / path
    root_real = os.path.realpath(root)
    real = os.path.realpath(full)
    if not _within(real, root_real):
        raise UnsafePathError(
            f"refusing a {what} outside {printable(root)}: it resolves to {printable(real)}",
            where=printable(full),
            hint="a name or link from the input leads out of the folder; nothing was written",
        )
    return full


def check_inside(folder: str | os.PathLike[str], paths: Iterable[str | os.PathLike[str]], *,
                 what: str = "folder") -> None:  # fmt: skip
    """Refuse any of ``paths`` that resolves outside ``folder`` (a symbolic link out of it).

    ``folder`` itself is resolved first, so a link *to* the folder (RELION's job aliases) is
    fine; only links inside it that lead out are refused, one line naming the link.
    """
    folder_real = os.path.realpath(folder)
    for path in paths:
        real = os.path.realpath(path)
        if not _within(real, folder_real):
            raise UnsafePathError(
                f"is a symbolic link to {printable(real)}, outside the {what} {printable(folder)}",
                where=printable(path),
                hint=f"links out of the {what} are not followed; copy the file in its place",
            )


def check_apart(out: str | os.PathLike[str], root: str | os.PathLike[str], *,
                what: str = "output folder", inside_ok: bool = False) -> None:  # fmt: skip
    """Refuse an output folder (which ``--force`` may replace wholesale) that is ``root`` or
    holds it, or (unless ``inside_ok``) lies inside it."""
    out_real, root_real = os.path.realpath(out), os.path.realpath(root)
    if _within(root_real, out_real) or (not inside_ok and _within(out_real, root_real)):
        raise UnsafePathError(
            f"the {what} overlaps {root}",
            where=out,
            hint="write it to a folder that neither holds the portal nor lies in its data tree",
        )


def check_export_folder(out: str | os.PathLike[str], portal_root: str | os.PathLike[str],
                        data_dir: str | os.PathLike[str]) -> None:  # fmt: skip
    """An export's ``OUT``: never the portal root or a folder above it (``--force`` would
    delete the portal), never in the data tree (it would be served without being cataloged)."""
    check_apart(out, portal_root, what="output folder", inside_ok=True)
    check_apart(out, data_dir, what="output folder")


__all__ = [
    "FALLBACK",
    "MAX_SEGMENT_BYTES",
    "check_apart",
    "check_export_folder",
    "check_inside",
    "check_relpath",
    "check_segment",
    "contained",
    "is_safe_segment",
    "printable",
    "safe_segment",
]
