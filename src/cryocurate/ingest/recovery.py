"""Finishing or undoing the work of a writer that died.

Every write to the data tree builds its files in a staging folder and swaps them into place
inside the catalog transaction (see :mod:`cryocurate.store.tree`). A writer killed between
the swap and the end of its commit leaves a swap holder behind; the next writer calls
:func:`recover`, which asks the catalog whether the dead writer's commit happened and keeps
the new folder or puts the old one back accordingly. Half-built staging folders are deleted.

The question to ask is recorded with each swap (``check``):

* ``{"kind": "class_averages", "dataset_id", "run_name"}``: committed if the catalog's
  fingerprint for that run equals the one in the new ``class_averages_metadata.json``;
* ``{"kind": "run", "dataset_id", "run_name"}``: committed if that run exists;
* ``{"kind": "dataset", "dataset_id"}``: committed if that dataset exists.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from cryocurate.catalog.models import Class2DJob, Dataset, Run
from cryocurate.portal import Portal
from cryocurate.store import layout, tree


def class_averages_check(dataset_id: int, run_name: str) -> dict[str, Any]:
    return {"kind": "class_averages", "dataset_id": dataset_id, "run_name": run_name}


def run_check(dataset_id: int, run_name: str) -> dict[str, Any]:
    return {"kind": "run", "dataset_id": dataset_id, "run_name": run_name}


def dataset_check(dataset_id: int) -> dict[str, Any]:
    return {"kind": "dataset", "dataset_id": dataset_id}


def _committed(portal: Portal, swap: tree.Swap) -> bool:
    check = swap.check
    kind = check.get("kind")
    try:
        with portal.transaction() as session:
            if kind == "dataset":
                return session.get(Dataset, int(check["dataset_id"])) is not None
            run = session.scalars(
                select(Run).where(
                    Run.dataset_id == int(check["dataset_id"]), Run.name == check["run_name"]
                )
            ).first()
            if kind == "run":
                return run is not None
            if kind == "class_averages" and run is not None:
                job = session.get(Class2DJob, run.id)
                meta = json.loads(
                    (swap.final / layout.CLASS_AVERAGES_METADATA).read_text(encoding="utf-8")
                )
                return job is not None and job.fingerprint == meta.get("fingerprint")
    except (KeyError, ValueError, TypeError, OSError):
        return False
    return False


def recover(portal: Portal) -> None:
    """Finish or undo swaps whose writer died, and drop half-built staging folders."""
    for path in tree.stale_staging(layout.staging_root(portal.data_dir)):
        tree.discard(path)
    for swap in tree.leftovers(portal.data_dir / tree.SWAPS):
        if _committed(portal, swap):
            swap.commit()
        else:
            swap.rollback()
            _drop_if_orphan(portal, swap.final.parent)


def _drop_if_orphan(portal: Portal, folder: Path) -> None:
    """Remove run and dataset folders that a dead writer made but never cataloged."""
    while folder != portal.data_dir and folder.is_relative_to(portal.data_dir):
        rel = folder.relative_to(portal.data_dir).parts
        if len(rel) > 2:
            return
        metadata = layout.RUN_METADATA if len(rel) == 2 else layout.DATASET_METADATA
        try:
            contents = {p.name for p in folder.iterdir()}
            dataset_id = int(rel[0])
        except (OSError, ValueError):
            return
        if contents - {metadata}:
            return
        with portal.transaction() as session:
            if len(rel) == 2:
                known = session.scalars(
                    select(Run.id).where(Run.dataset_id == dataset_id, Run.name == rel[1])
                ).first()
            else:
                known = session.get(Dataset, dataset_id)
        if known is not None:
            return
        tree.discard(folder)
        folder = folder.parent
