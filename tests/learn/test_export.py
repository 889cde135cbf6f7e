"""``cryocurate export`` of a graded campaign: lossless images, tables, datasheet, manifest,
splits that never share a job, and the PyTorch loader over the result."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from cryocurate import accounts, grading
from cryocurate.errors import ConflictError
from cryocurate.formats.mrc import read_stack
from cryocurate.learn.export import GRADE_COLUMNS, class_average_columns, export_campaign
from cryocurate.learn.splits import SPLITS
from cryocurate.portal import Portal
from cryocurate.store import layout
from tests.cli_in_process import cli
from tests.conftest import _unavailable
from tests.grading.portal import LABELLERS, build_grading_portal

N_CLASSES = 6
BOX = 24
KEYS = "ABCDF"
T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)


def _grade_for(labeller: int, item_id: int, repeat: bool) -> str | None:
    """A deterministic pattern: some items nobody grades, labellers off by one now and then."""
    if item_id % 7 == 0:
        return None
    value = (item_id * 3 + (labeller if item_id % 3 == 0 else 0) + repeat) % 5
    return KEYS[value]


def _campaign_with_grades(base: Path, database_url: str | None) -> tuple[Any, int, list[dict]]:
    built = build_grading_portal(base, database_url, n_classes=N_CLASSES, jobs_per_lab=3, box=BOX)
    recorded: list[dict[str, Any]] = []
    with Portal.open(built.root) as portal:
        spec = grading.CampaignSpec(
            name="export me", run_ids=built.run_ids, labellers=LABELLERS, seed=7, repeat_share=0.1
        )
        with portal.transaction() as s:
            cid = grading.create_campaign(s, spec).id
        for n, email in enumerate(LABELLERS):
            with portal.transaction() as s:
                user = accounts.get_user(s, email)
                entries = grading.window(s, grading.get_campaign(s, cid), user, 0, 500)
            for k, entry in enumerate(entries):
                grade = _grade_for(n, entry["item_id"], entry["repeat"])
                if grade is None:
                    continue
                given = T0 + dt.timedelta(minutes=n, seconds=k)
                request = grading.GradeRequest(
                    request_id=uuid.uuid4().hex,
                    item_id=entry["item_id"],
                    grade=grade,
                    repeat=entry["repeat"],
                    given_at=given,
                    seconds_on_item=1.5 + k,
                )
                with portal.transaction() as s:
                    campaign = grading.get_campaign(s, cid)
                    grading.record(s, campaign, accounts.get_user(s, email), request)
                recorded.append(
                    {
                        "item_id": entry["item_id"],
                        "labeller": email,
                        "grade": grade,
                        "value": KEYS.index(grade) + 1,
                        "repeat": entry["repeat"],
                        "given_at": given,
                        "seconds_on_item": 1.5 + k,
                    }
                )
    return built, cid, recorded


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_export(built: Any, out: Path, recorded: list[dict[str, Any]]) -> None:
    expected_columns = list(class_average_columns([1, 2, 3, 4, 5]))
    n_items = len(built.run_ids) * N_CLASSES

    # Tables: Parquet and CSV, the right columns and counts.
    table = pq.read_table(out / "class_averages.parquet")
    assert table.column_names == expected_columns
    rows = table.to_pylist()
    assert len(rows) == n_items
    with open(out / "class_averages.csv", newline="", encoding="utf-8") as fh:
        csv_rows = list(csv.DictReader(fh))
    assert list(csv_rows[0]) == expected_columns and len(csv_rows) == n_items
    assert [int(r["class_average_id"]) for r in csv_rows] == [r["class_average_id"] for r in rows]
    assert {r["run_id"] for r in rows} == set(built.run_ids)
    for row in rows:
        assert row["lab"] == built.labs[row["run_id"]]
        assert row["image_index"] == row["class_index"] and row["box_size"] == BOX
        if row["item_id"] % 7 == 0:  # nobody graded it: no consensus, no label
            assert row["n_grades"] == 0 and row["final_value"] is None
            assert row["final_source"] is None
        else:
            assert row["n_grades"] == 2 and row["final_source"] == "model"
            assert row["final_value"] == row["model_grade"]
            assert row["final_grade"] == KEYS[row["final_value"] - 1]
            assert row["settled"] is None

    # Splits: never one job on two sides; every lab in every split (3 jobs each).
    side = {}
    for row in rows:
        assert side.setdefault(row["run_id"], row["split"]) == row["split"]
    splits = json.loads((out / "splits.json").read_text())
    listed = [job for split in SPLITS for job in splits["jobs"][split]]
    assert sorted(listed) == sorted(built.run_ids) and len(set(listed)) == len(listed)
    assert {job: split for split in SPLITS for job in splits["jobs"][split]} == side
    for lab in ("Lab A", "Lab B"):
        assert splits["jobs_per_lab"][lab] == {"train": 1, "validation": 1, "test": 1}
    assert sum(splits["items"].values()) == n_items

    # Images: one float32 stack per run, equal (bit for bit) to the tree's.
    with Portal.open(built.root) as portal:
        for run_id in built.run_ids:
            row = next(r for r in rows if r["run_id"] == run_id)
            tree = (
                layout.run_dir(portal.data_dir, row["dataset_id"], row["run_name"])
                / layout.CLASS_AVERAGES
                / layout.CLASS_AVERAGES_STACK
            )
            exported = out / row["image_file"]
            assert exported.read_bytes() == tree.read_bytes()
            stack = read_stack(exported)
            assert stack.data.dtype == np.float32 and stack.data.shape == (N_CLASSES, BOX, BOX)
    assert len(list((out / "images").iterdir())) == len(built.run_ids)

    # Grades: the long table is what was recorded.
    grades = pq.read_table(out / "grades.parquet")
    assert grades.column_names == list(GRADE_COLUMNS)
    got = sorted(
        (
            g["item_id"],
            g["labeller"],
            g["grade"],
            g["value"],
            g["repeat"],
            g["given_at"],
            g["seconds_on_item"],
        )
        for g in grades.to_pylist()
    )
    want = sorted(
        (
            r["item_id"],
            r["labeller"],
            r["grade"],
            r["value"],
            r["repeat"],
            r["given_at"],
            r["seconds_on_item"],
        )
        for r in recorded
    )
    assert got == want
    with open(out / "grades.csv", newline="", encoding="utf-8") as fh:
        grade_csv = list(csv.DictReader(fh))
    assert list(grade_csv[0]) == list(GRADE_COLUMNS) and len(grade_csv) == len(recorded)
    by_item = {r["item_id"]: r for r in rows}
    for g in grades.to_pylist():
        assert g["class_average_id"] == by_item[g["item_id"]]["class_average_id"]
        assert g["run_id"] == by_item[g["item_id"]]["run_id"]

    # Datasheet: counts and agreement.
    readme = (out / "README.md").read_text()
    assert f"class averages (items): {n_items}" in readme
    assert f"grades: {len(recorded)}" in readme
    assert "labellers: 2" in readme and "jobs (runs): 6" in readme
    assert "alpha = " in readme and "CI [" in readme
    assert all(email in readme for email in LABELLERS)
    assert "Dawid" in readme and "splits.json" in readme and "ClassAverageDataset" in readme

    # Manifest: every other file, with matching hashes and sizes.
    manifest = json.loads((out / "manifest.json").read_text())
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert sorted(manifest["files"]) == [f for f in files if f != "manifest.json"]
    for name, info in manifest["files"].items():
        assert info["sha256"] == _sha256(out / name)
        assert info["bytes"] == (out / name).stat().st_size
    # The export is published with the usual mode (not the temporary folder's 0700), and
    # nothing temporary is left next to it.
    assert out.stat().st_mode & 0o777 == (out / "images").stat().st_mode & 0o777
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".tmp-")] == []


@pytest.mark.slow
def test_export_of_a_graded_campaign(tmp_path, database_url):
    built, cid, recorded = _campaign_with_grades(tmp_path, database_url)
    out = tmp_path / "exports" / "first"
    out.parent.mkdir()
    with Portal.open(built.root) as portal:
        summary = export_campaign(portal, cid, out, seed=4, n_resamples=200)
    assert summary.n_items == len(built.run_ids) * N_CLASSES
    assert summary.n_grades == len(recorded) and summary.n_labellers == 2
    _check_export(built, out, recorded)


# ----------------------------------------------------------------------------------------------
# The rest on one SQLite portal, built once.


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    base = tmp_path_factory.mktemp("graded")
    built, cid, recorded = _campaign_with_grades(base, None)
    out = base / "export"
    with Portal.open(built.root) as portal:
        export_campaign(portal, cid, out, seed=1, n_resamples=100)
    return built, cid, recorded, out


def test_export_is_deterministic(graded, tmp_path):
    built, cid, _, out = graded
    again = tmp_path / "again"
    with Portal.open(built.root) as portal:
        export_campaign(portal, cid, again, seed=1, n_resamples=100)
    assert (again / "manifest.json").read_bytes() == (out / "manifest.json").read_bytes()


def test_cli_export_and_refusals(graded, tmp_path, capsys):
    built, cid, recorded, _ = graded
    out = tmp_path / "cli"
    code, stdout, _ = cli(
        capsys, "export", built.root, out, "--campaign", cid, "--seed", 2, "--json"
    )
    assert code == 0
    summary = json.loads(stdout)
    assert summary["n_grades"] == len(recorded) and summary["campaign_id"] == cid
    assert sum(summary["items_per_split"].values()) == summary["n_items"]
    _check_export(built, out, recorded)

    # A non-empty OUT is refused with one line, and nothing is written anywhere.
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    before = sorted(p.name for p in tmp_path.iterdir())
    code, stdout, err = cli(capsys, "export", built.root, taken, "--campaign", cid)
    assert code == 2 and stdout == ""
    assert err.startswith("Error:") and "not empty" in err and len(err.strip().splitlines()) == 1
    assert [p.name for p in taken.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == before

    # --force replaces it; bad fractions and an unknown campaign are one-line errors.
    code, _, _ = cli(capsys, "export", built.root, taken, "--campaign", cid, "--force")
    assert code == 0 and not (taken / "notes.txt").exists()
    assert (taken / "manifest.json").is_file()
    code, _, err = cli(
        capsys, "export", built.root, tmp_path / "x", "-c", cid, "--fractions", "1,1"
    )
    assert code == 2 and "fractions" in err and not (tmp_path / "x").exists()
    code, _, err = cli(capsys, "export", built.root, tmp_path / "y", "--campaign", 999)
    assert code == 2 and "999" in err and not (tmp_path / "y").exists()


def test_settled_grades_override_the_final_label(graded, tmp_path):
    built, cid, _, out = graded
    rows = pq.read_table(out / "class_averages.parquet").to_pylist()
    graded_row = next(r for r in rows if r["final_value"] is not None)
    ungraded_row = next(r for r in rows if r["final_value"] is None)
    new = 5 if graded_row["final_value"] != 5 else 1
    settled = {graded_row["item_id"]: new, ungraded_row["item_id"]: 2}
    target = tmp_path / "settled"
    with Portal.open(built.root) as portal:
        export_campaign(portal, cid, target, seed=1, n_resamples=50, settled=settled)
        with pytest.raises(Exception, match="not on the campaign's scale"):
            export_campaign(portal, cid, tmp_path / "bad", settled={graded_row["item_id"]: 9})
    assert not (tmp_path / "bad").exists()
    by_item = {
        r["item_id"]: r for r in pq.read_table(target / "class_averages.parquet").to_pylist()
    }
    for item_id, value in settled.items():
        row = by_item[item_id]
        assert row["settled"] == value and row["final_value"] == value
        assert row["final_source"] == "settled" and row["final_grade"] == KEYS[value - 1]
    assert by_item[graded_row["item_id"]]["model_grade"] == graded_row["model_grade"]
    assert "settled by a reviewer: 2" in (target / "README.md").read_text()


def test_a_non_empty_out_is_refused_by_the_service(graded, tmp_path):
    built, cid, _, _ = graded
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with Portal.open(built.root) as portal, pytest.raises(ConflictError, match="not empty"):
        export_campaign(portal, cid, tmp_path / "full")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]


@pytest.fixture(scope="module")
def torch():
    try:
        import torch
    except ImportError:
        _unavailable("torch is not installed (bash .ci/run installs torch==2.13.0)")
    return torch


def test_loader_yields_tensors_of_one_split(graded, torch):
    from torch.utils.data import DataLoader

    from cryocurate.learn.loader import DEFAULT_FEATURES, ClassAverageDataset

    _, _, _, out = graded
    rows = pq.read_table(out / "class_averages.parquet").to_pylist()
    total = 0
    for split in SPLITS:
        data = ClassAverageDataset(out, split=split)
        want = [r for r in rows if r["split"] == split and r["final_value"] is not None]
        assert len(data) == len(want) > 0
        assert [r["class_average_id"] for r in data.rows] == [r["class_average_id"] for r in want]
        image, target, features = data[0]
        assert image.dtype == torch.float32 and tuple(image.shape) == (1, BOX, BOX)
        assert target.dtype == torch.int64 and int(target) == want[0]["final_value"]
        assert features.shape == (len(DEFAULT_FEATURES),) and features.dtype == torch.float32
        stack = read_stack(out / want[0]["image_file"]).data
        assert np.array_equal(image[0].numpy(), stack[want[0]["image_index"]])
        batch = next(iter(DataLoader(data, batch_size=4, num_workers=0)))
        assert tuple(batch[0].shape) == (min(4, len(data)), 1, BOX, BOX)
        total += len(data)
    assert total == sum(1 for r in rows if r["final_value"] is not None)

    everything = ClassAverageDataset(out, split=None, include_unlabelled=True, target="mean")
    assert len(everything) == len(rows)
    soft = ClassAverageDataset(out, split="train", target="posterior")
    assert soft[0][1].shape == (5,) and abs(float(soft[0][1].sum()) - 1) < 1e-5
    index = ClassAverageDataset(out, split="train", target="final_index")
    assert 0 <= int(index[0][1]) < 5
    flipped = ClassAverageDataset(out, split="test", transform=lambda t: t.flip(-1))
    assert torch.equal(flipped[0][0], ClassAverageDataset(out, split="test")[0][0].flip(-1))


def test_export_does_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, cryocurate.cli.main, cryocurate.learn.export, cryocurate.learn; "
        "sys.exit('torch' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_a_reviewers_decision_in_the_catalog_is_the_final_label(graded, tmp_path):
    """Without an explicit ``settled``, the export takes the reviewers' stored decisions."""
    from cryocurate.grading.consensus_store import settle
    from tests.grading.portal import REVIEWER

    built, cid, _, out = graded
    rows = pq.read_table(out / "class_averages.parquet").to_pylist()
    row = next(r for r in rows if r["final_value"] is not None)
    new = 5 if row["final_value"] != 5 else 1
    with Portal.open(built.root) as portal:
        with portal.transaction() as s:
            campaign = grading.get_campaign(s, cid)
            settle(s, campaign, row["item_id"], accounts.get_user(s, REVIEWER), KEYS[new - 1])
        export_campaign(portal, cid, tmp_path / "reviewed", seed=1, n_resamples=50)
    by_item = {
        r["item_id"]: r
        for r in pq.read_table(tmp_path / "reviewed" / "class_averages.parquet").to_pylist()
    }
    assert by_item[row["item_id"]]["final_source"] == "settled"
    assert by_item[row["item_id"]]["final_value"] == new
