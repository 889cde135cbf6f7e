"""Job folders (made by ``cryocurate.synth`` in the real formats) and portal roots for tests.

The synthetic jobs are generated once per session and copied for tests that damage them.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa

from cryocurate.portal import Portal
from cryocurate.synth import synth_cryosparc, synth_relion

SMALL = {"n_classes": 12, "box": 48, "n_particles": 3000}


@pytest.fixture(scope="session")
def job_library(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Pristine jobs of every format variant, built once."""
    base = tmp_path_factory.mktemp("jobs")
    return {
        "cryosparc": synth_cryosparc(base / "cs" / "J12", seed=1, project_uid="P3", **SMALL),
        "cryosparc_csdat": synth_cryosparc(
            base / "csdat" / "J14", seed=2, cs_format="csdat", job_uid="J14", **SMALL
        ),
        "cryosparc_legacy": synth_cryosparc(
            base / "legacy" / "J18",
            seed=3,
            legacy_names=True,
            project_uid="P209",
            job_uid="J18",
            **SMALL,
        ),
        "relion": synth_relion(base / "relion" / "Class2D" / "job006", seed=4, **SMALL),
        "relion30": synth_relion(
            base / "relion30" / "Class2D" / "job007", seed=5, relion_version="3.0", **SMALL
        ),
        "relion_continued": synth_relion(
            base / "relion_ct" / "Class2D" / "job009", seed=6, continued=True, **SMALL
        ),
    }


@pytest.fixture
def job(job_library: dict[str, Path], tmp_path: Path) -> Callable[[str], Path]:
    """``job("cryosparc")``: a private copy of a library job, free to damage."""

    def copy(kind: str, name: str | None = None) -> Path:
        source = job_library[kind]
        target = tmp_path / "jobs" / (name or kind) / source.name
        shutil.copytree(source, target)
        return target

    return copy


@pytest.fixture
def portal(tmp_path: Path, database_url: str) -> Portal:
    """A fresh portal root, on SQLite and on PostgreSQL."""
    p = Portal.create(tmp_path / "portal", database_url=database_url)
    yield p
    p.close()


@pytest.fixture
def sqlite_portal(tmp_path: Path) -> Portal:
    """A fresh portal root on SQLite only, for tests about files rather than the database."""
    p = Portal.create(tmp_path / "portal")
    yield p
    p.close()


def truth(job_dir: Path) -> list[dict[str, str]]:
    """The synthetic job's intended per-class facts (truth.csv beside the job files)."""
    path = job_dir / "truth.csv"
    if not path.exists():
        path = job_dir.parent / "truth.csv"
    with open(path, newline="") as fh:
        return sorted(csv.DictReader(fh), key=lambda r: int(r["class_index"]))


def tree_state(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and mtime: to prove nothing was rewritten."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def portal_state(
    root: Path, models: Sequence[type]
) -> tuple[dict[str, tuple[int, int]], dict[str, int]]:
    """Every file of the portal's data tree (:func:`tree_state`) and the row counts of
    ``models``: a refused command must leave both as they were."""
    with Portal.open(root) as portal, portal.transaction() as s:
        rows = {
            model.__name__: s.scalar(sa.select(sa.func.count()).select_from(model))
            for model in models
        }
        return tree_state(portal.data_dir), rows
