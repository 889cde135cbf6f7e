"""What the path and symlink attacks share: real jobs, a portal nested a few folders deep (so
``../../../..`` from its dataset folder lands in a folder the test watches), and a snapshot
of everything outside the portal root (names, kinds, sizes, mtimes), taken before and after."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cryocurate.catalog.models import Dataset, Run
from cryocurate.portal import Portal
from cryocurate.store import layout
from cryocurate.synth import synth_cryosparc, synth_relion

SMALL = {"n_classes": 4, "box": 32, "n_particles": 200}


def snapshot(folder: Path, *, exclude: tuple[Path, ...] = ()) -> dict[str, tuple[int, int, int]]:
    """Every entry under ``folder`` (links not followed) but those in ``exclude``: its kind,
    size and mtime. A folder's mtime changes when anything is made or removed in it."""
    out: dict[str, tuple[int, int, int]] = {}
    for dirpath, dirs, files in os.walk(folder):
        here = Path(dirpath)
        dirs[:] = [d for d in dirs if here / d not in exclude]
        for name in [*dirs, *files]:
            path = here / name
            if path in exclude:
                continue
            st = path.lstat()
            out[path.relative_to(folder).as_posix()] = (
                stat.S_IFMT(st.st_mode),
                st.st_size if not stat.S_ISDIR(st.st_mode) else 0,
                st.st_mtime_ns,
            )
    return out


def counts(root: Path) -> tuple[int, int]:
    """(datasets, runs) in the catalog of ``root``."""
    with Portal.open(root) as portal, portal.transaction() as s:
        return (
            s.scalar(select(func.count()).select_from(Dataset)),
            s.scalar(select(func.count()).select_from(Run)),
        )


def run_names(root: Path) -> list[str]:
    with Portal.open(root) as portal, portal.transaction() as s:
        return sorted(s.scalars(select(Run.name)))


def run_dir(root: Path, name: str) -> Path:
    """The folder of the run called ``name`` (the only one by that name)."""
    with Portal.open(root) as portal, portal.transaction() as s:
        (dataset_id,) = s.scalars(select(Run.dataset_id).where(Run.name == name)).all()
        return layout.run_dir(portal.data_dir, dataset_id, name)


def dataset_ids(root: Path) -> list[int]:
    with Portal.open(root) as portal, portal.transaction() as s:
        return sorted(s.scalars(select(Dataset.id)))


def one_line(err: str) -> str:
    """The single line a refused command printed (no traceback)."""
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert "Traceback" not in err
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="session")
def pristine_jobs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("security-jobs")
    return {
        "cryosparc": synth_cryosparc(base / "cs" / "J12", seed=1, project_uid="P3", **SMALL),
        "relion": synth_relion(base / "relion" / "Class2D" / "job006", seed=4, **SMALL),
    }


@pytest.fixture
def nest(tmp_path: Path) -> Path:
    """``tmp/deep/a/b``: the portal root goes in ``b``, four levels above its datasets."""
    path = tmp_path / "deep" / "a" / "b"
    path.mkdir(parents=True)
    return path


@pytest.fixture
def root(nest: Path) -> Path:
    path = nest / "portal"
    Portal.create(path).close()
    return path


@pytest.fixture
def copy_job(pristine_jobs: dict[str, Path], tmp_path: Path):
    def copy(kind: str, where: str = "jobs") -> Path:
        source = pristine_jobs[kind]
        target = tmp_path / where / kind / source.name
        shutil.copytree(source, target, symlinks=True)
        return target

    return copy
