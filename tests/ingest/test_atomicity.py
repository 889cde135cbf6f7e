"""A crash or Ctrl-C at any point leaves the previous state intact.

Real interruptions of the real CLI (SIGINT and SIGKILL to a subprocess while it stages a
job), plus the two crash windows around the catalog commit, recreated with the real store
and then recovered by the next extraction.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from cryocurate.catalog.models import Class2DJob
from cryocurate.ingest.datasets import DatasetChoice
from cryocurate.ingest.discover import find_job
from cryocurate.ingest.extract import Extraction, stage_job
from cryocurate.ingest.recovery import class_averages_check, recover
from cryocurate.store import layout, tree
from cryocurate.synth import synth_cryosparc

from .conftest import tree_state

BIG = {"n_classes": 120, "box": 128, "n_particles": 400_000}


def _extract(portal, jobs):
    return Extraction(portal, DatasetChoice("Atomic"), workers=1).run(jobs)


def _start(root: Path, job_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cryocurate",
            "extract",
            str(job_dir),
            "--root",
            str(root),
            "--dataset",
            "Atomic",
            "--workers",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_staging(root: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    staging = root / "data" / ".staging"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if staging.is_dir() and any(staging.iterdir()):
            return
        if proc.poll() is not None:
            pytest.fail(f"extraction ended before it could be interrupted: {proc.stderr.read()}")
        time.sleep(0.002)
    pytest.fail("extraction never started staging")


@pytest.fixture
def changed_job(sqlite_portal, job, tmp_path):
    """A job extracted once (small), then re-run in place as a big, changed job."""
    d = job("cryosparc")
    [first] = _extract(sqlite_portal, [d])
    assert first.status == "new"
    shutil.rmtree(d)
    synth_cryosparc(d, seed=50, project_uid="P3", **BIG)
    return d


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_extraction_keeps_the_previous_run(sqlite_portal, changed_job, sig):
    root = sqlite_portal.root
    before = tree_state(root / "data" / "10000")
    with sqlite_portal.transaction() as s:
        fingerprint = s.scalars(select(Class2DJob.fingerprint)).one()
    proc = _start(root, changed_job)
    _wait_for_staging(root, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and "Traceback" not in err
    assert tree_state(root / "data" / "10000") == before
    with sqlite_portal.transaction() as s:
        assert s.scalars(select(Class2DJob.fingerprint)).one() == fingerprint
    # the next extraction cleans up whatever the dead process left, then does the work
    [again] = _extract(sqlite_portal, [changed_job])
    assert again.status == "replaced"
    assert not any((root / "data" / ".staging").iterdir())


def _stage(portal, job_dir: Path) -> Path:
    staging = tree.new_staging_dir(layout.staging_root(portal.data_dir), "test")
    result = stage_job(find_job(job_dir), str(staging), None)
    assert result.status == "staged", result.message
    return staging / layout.CLASS_AVERAGES


def _fingerprint_on_disk(run_dir: Path) -> str:
    meta = run_dir / layout.CLASS_AVERAGES / layout.CLASS_AVERAGES_METADATA
    return json.loads(meta.read_text())["fingerprint"]


def test_crash_between_swap_and_commit_is_undone(sqlite_portal, job):
    d = job("cryosparc")
    [first] = _extract(sqlite_portal, [d])
    run_dir = layout.run_dir(sqlite_portal.data_dir, first.dataset_id, first.run_name)
    before = tree_state(run_dir)
    shutil.rmtree(d)
    synth_cryosparc(d, seed=77, n_classes=9, box=48, n_particles=1000, project_uid="P3")
    staged = _stage(sqlite_portal, d)
    # the writer swapped the new folder in and died before committing the catalog
    tree.swap_in(
        staged,
        run_dir / layout.CLASS_AVERAGES,
        sqlite_portal.data_dir / tree.SWAPS,
        check=class_averages_check(first.dataset_id, first.run_name),
    )
    assert tree_state(run_dir) != before
    recover(sqlite_portal)
    assert tree_state(run_dir) == before
    assert not any((sqlite_portal.data_dir / tree.SWAPS).iterdir())


def test_crash_after_commit_keeps_the_new_run(sqlite_portal, job):
    d = job("cryosparc")
    [first] = _extract(sqlite_portal, [d])
    run_dir = layout.run_dir(sqlite_portal.data_dir, first.dataset_id, first.run_name)
    shutil.rmtree(d)
    synth_cryosparc(d, seed=78, n_classes=9, box=48, n_particles=1000, project_uid="P3")
    staged = _stage(sqlite_portal, d)
    swap = tree.swap_in(
        staged,
        run_dir / layout.CLASS_AVERAGES,
        sqlite_portal.data_dir / tree.SWAPS,
        check=class_averages_check(first.dataset_id, first.run_name),
    )
    new_fingerprint = _fingerprint_on_disk(run_dir)
    with sqlite_portal.transaction() as s:  # the commit happened; the process died after it
        s.scalars(select(Class2DJob)).one().fingerprint = new_fingerprint
    assert swap.old.exists()
    recover(sqlite_portal)
    assert _fingerprint_on_disk(run_dir) == new_fingerprint
    assert not swap.holder.exists()


def test_crash_after_swapping_in_a_new_run_removes_it(sqlite_portal, job):
    d = job("relion")
    run_dir = sqlite_portal.data_dir / "10000" / "job006"
    staged = _stage(sqlite_portal, d)
    tree.swap_in(staged, run_dir / layout.CLASS_AVERAGES, sqlite_portal.data_dir / tree.SWAPS)
    (run_dir / layout.RUN_METADATA).write_text("{}")
    (run_dir.parent / layout.DATASET_METADATA).write_text("{}")
    recover(sqlite_portal)
    assert not (sqlite_portal.data_dir / "10000").exists()


def test_live_writers_swaps_are_left_alone(sqlite_portal, tmp_path):
    """A swap made by another living process is not 'recovered' under its feet."""
    swaps = sqlite_portal.data_dir / tree.SWAPS
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        holder = swaps / f"{socket.gethostname()}.{child.pid}.abcd1234"
        holder.mkdir(parents=True)
        (holder / tree.TARGET_FILE).write_text("../10000/run/ClassAverages")  # as swap_in writes
        assert tree.leftovers(swaps) == []
    finally:
        child.kill()
        child.wait()
    assert len(tree.leftovers(swaps)) == 1


@pytest.mark.parametrize("committed", [True, False])
def test_recovery_asks_the_catalog_about_whole_runs(sqlite_portal, job, committed):
    """A tomography run or an import swaps a whole folder; recovery checks the run exists."""
    from cryocurate.ingest.recovery import run_check

    d = job("relion")
    [first] = _extract(sqlite_portal, [d])
    name = first.run_name if committed else "never-committed"
    staged = layout.staging_root(sqlite_portal.data_dir) / "whole-run"
    staged.mkdir(parents=True)
    (staged / "run_metadata.json").write_text("{}")
    (staged / "payload.bin").write_bytes(b"new")
    final = sqlite_portal.data_dir / "10000" / name
    tree.swap_in(staged, final, sqlite_portal.data_dir / tree.SWAPS, check=run_check(10000, name))
    recover(sqlite_portal)
    assert (final / "payload.bin").exists() is committed
    assert not any((sqlite_portal.data_dir / tree.SWAPS).iterdir())
