"""Replacing a whole folder so that a crash at any moment leaves the old one or the new one.

A run is built completely in a staging folder, then swapped in with two renames::

    final  → .swaps/<token>/old                (the previous version, kept aside)
    staged → final

and the previous version is deleted only after the caller has committed the catalog. If the
process dies between the renames and the commit, the next writer calls :func:`leftovers` and
decides, by comparing what the catalog says with what the folders hold, whether to keep the
new folder (``Swap.commit``) or put the old one back (``Swap.rollback``). Tokens name the
process that made them, so a live writer's swap is never "recovered" by another process.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryocurate.atomic import fsync_dir
from cryocurate.errors import UnsafePathError
from cryocurate.store.names import contained, real_path_within, safe_segment

log = logging.getLogger(__name__)


def _token() -> str:
    return f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"


def _token_is_live(token: str) -> bool:
    try:
        host, pid, _ = token.rsplit(".", 2)
        pid_n = int(pid)
    except ValueError:
        return False
    if host != socket.gethostname() or pid_n == os.getpid():
        return False
    try:
        os.kill(pid_n, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def new_staging_dir(staging_root: Path, label: str) -> Path:
    """A fresh, empty folder under ``staging_root`` to build one run in (``label``, often a
    job folder's name, is made one safe path segment)."""
    staging_root.mkdir(parents=True, exist_ok=True)
    path = contained(staging_root, f"{safe_segment(label, what='staging label')}~{_token()}")
    path.mkdir()
    return path


TARGET_FILE = "target"
CHECK_FILE = "check.json"
SWAPS = ".swaps"


@dataclass(frozen=True)
class Swap:
    """A folder swapped into place; ``holder`` keeps the previous version until committed."""

    final: Path
    holder: Path

    @property
    def check(self) -> dict[str, Any]:
        """What the writer said would prove its commit (see :func:`swap_in`); {} if nothing."""
        try:
            data = json.loads((self.holder / CHECK_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    @property
    def old(self) -> Path:
        return self.holder / "old"

    def commit(self) -> None:
        """Forget the previous version (call after the catalog transaction committed)."""
        discard(self.holder)

    def rollback(self) -> None:
        """Put the previous version back, or remove a folder that did not exist before."""
        if self.final.exists():
            trash = self.holder / "new"
            os.rename(self.final, trash)
        if self.old.exists():
            os.rename(self.old, self.final)
        discard(self.holder)
        fsync_dir(self.final.parent)


def swap_in(
    staged: Path, final: Path, swaps_root: Path, *, check: dict[str, Any] | None = None
) -> Swap:
    """Move ``staged`` to ``final``, setting any existing ``final`` aside under ``swaps_root``.

    ``swaps_root`` (on the same filesystem) is the one place a recovering writer looks: each
    swap gets a holder there recording its target, so a leftover is recognised even when
    ``final`` did not exist before (a crash then leaves a folder the catalog never saw).
    ``check`` is stored beside it: what a recovering writer should look for in the catalog to
    tell whether the dead writer committed (for example ``{"kind": "run", …}``).

    ``final`` must lie inside the tree that holds ``swaps_root`` (its parent), links resolved
    (:func:`cryocurate.store.names.contained`), and not be the tree itself or in ``.swaps``.
    """
    _check_target(swaps_root, final)
    final.parent.mkdir(parents=True, exist_ok=True)
    _check_target(swaps_root, final)  # again: mkdir may have met a link planted meanwhile
    holder = swaps_root / _token()
    holder.mkdir(parents=True)
    if check is not None:
        (holder / CHECK_FILE).write_text(json.dumps(check), encoding="utf-8")
    (holder / TARGET_FILE).write_text(os.path.relpath(final, swaps_root), encoding="utf-8")
    swap = Swap(final=final, holder=holder)
    try:
        if final.exists():
            os.rename(final, swap.old)
        os.rename(staged, final)
    except BaseException:
        swap.rollback()
        raise
    fsync_dir(final.parent)
    return swap


def _check_target(swaps_root: Path, final: Path) -> None:
    tree_root = swaps_root.parent
    contained(tree_root, final, what="swap")
    if os.path.realpath(final) == os.path.realpath(tree_root) or real_path_within(
        swaps_root, final
    ):
        raise UnsafePathError("refusing to swap the tree itself or its swaps", where=final)


def discard(path: Path) -> None:
    """Delete a folder that is no longer referenced (missing is fine)."""
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path)


def leftovers(swaps_root: Path) -> list[Swap]:
    """Swaps whose writer died before finishing; the caller decides which side wins.

    For each, ``commit()`` keeps the new folder and ``rollback()`` brings the old one back.
    A holder whose ``target`` names a place outside the tree (or the tree itself) was not
    written by a swap: it is left alone, with a warning, and never followed.
    """
    found: list[Swap] = []
    if not swaps_root.is_dir():
        return found
    for holder in sorted(swaps_root.iterdir()):
        if not holder.is_dir() or _token_is_live(holder.name):
            continue
        try:
            target = (holder / TARGET_FILE).read_text(encoding="utf-8").strip()
        except OSError:
            target = ""
        if not target:  # died before anything was moved
            discard(holder)
            continue
        final = Path(os.path.normpath(swaps_root / target))
        try:
            _check_target(swaps_root, final)
        except UnsafePathError as err:
            # Not written by us: following it could move or delete files outside the tree.
            log.warning("%s: swap left alone (its target is not in the tree): %s", holder, err)
            continue
        found.append(Swap(final=final, holder=holder))
    return found


def stale_staging(staging_root: Path) -> list[Path]:
    """Staging folders whose writer is gone: half-built runs, safe to delete."""
    if not staging_root.is_dir():
        return []
    stale = []
    for path in staging_root.iterdir():
        token = path.name.rsplit("~", 1)[-1]
        if not _token_is_live(token):
            stale.append(path)
    return stale
