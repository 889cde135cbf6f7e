"""``cryocurate download``: the files a user gets, resuming, merging, errors as one line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cryocurate.portal import Portal
from cryocurate.transfer.download import copy_entries, list_entity
from tests.cli_in_process import cli

from .conftest import TOMO_RUN, tree_files
from .test_layouts import V1_FILES, V2_FILES


@pytest.mark.parametrize(("name", "expected"), [("v1", V1_FILES), ("v2", V2_FILES)])
def test_download_dataset_writes_the_layout(source, tmp_path, capsys, name, expected):
    dest = tmp_path / "dl"
    code, out, err = cli(capsys, "download", source.root, "dataset", 10000, dest, "--layout", name)
    assert code == 0, err
    assert f"Downloaded dataset 10000 ({name})" in out and "already there" not in out
    files = tree_files(dest)
    assert sorted(files) == sorted(f"10000/{p}" for p in expected)
    with Portal.open(source.root) as portal:
        listing = list_entity(portal, "dataset", 10000, name)
    for e in listing.entries:
        data = files[e.path].read_bytes()
        assert data == (e.content if e.content is not None else e.source.read_bytes()), e.path
        if e.source is not None:  # copies keep the source's modification time
            assert files[e.path].stat().st_mtime == pytest.approx(e.source.stat().st_mtime)


def test_resume_skips_files_of_the_same_size(sqlite_source, tmp_path, capsys):
    dest = tmp_path / "dl"
    root = sqlite_source.root
    assert cli(capsys, "download", root, "run", sqlite_source.tomo_run_id, dest)[0] == 0
    files = tree_files(dest)
    mrc = files[f"10000/{TOMO_RUN}/TiltSeries/TS_001.mrc"]
    before = {k: p.stat().st_mtime_ns for k, p in files.items()}

    # Interrupted download: one file missing, one truncated, one same-size but different.
    files[f"10000/{TOMO_RUN}/run_metadata.json"].unlink()
    mrc.write_bytes(mrc.read_bytes()[:100])
    rawtlt = files[f"10000/{TOMO_RUN}/TiltSeries/TS_001.rawtlt"]
    rawtlt.write_bytes(b"x" * rawtlt.stat().st_size)
    os.utime(rawtlt, ns=(before[str(rawtlt.relative_to(dest))],) * 2)

    code, out, _ = cli(capsys, "download", root, "run", sqlite_source.tomo_run_id, dest)
    assert code == 0
    n = len(files)
    assert "2 files" in out and f"{n - 2} already there" in out
    with Portal.open(root) as portal:
        original = portal.data_dir / f"10000/{TOMO_RUN}/TiltSeries/TS_001.mrc"
        assert mrc.read_bytes() == original.read_bytes()
    assert rawtlt.read_bytes().startswith(b"xxx")  # same size: kept, as the CZ client does
    after = tree_files(dest)
    assert sorted(after) == sorted(files)
    untouched = set(files) - {
        f"10000/{TOMO_RUN}/run_metadata.json",
        f"10000/{TOMO_RUN}/TiltSeries/TS_001.mrc",
    }
    assert all(after[k].stat().st_mtime_ns == before[k] for k in untouched)
    assert not [p for p in dest.rglob(".tmp-*")]


def test_parts_merge_into_the_dataset_download(sqlite_source, tmp_path, capsys):
    parts, whole = tmp_path / "parts", tmp_path / "whole"
    s = sqlite_source
    for kind, entity_id in (
        ("annotation", s.point_annotation_id),
        ("annotation", s.mask_annotation_id),
        ("tomogram", s.tomogram_id),
        ("run", s.tomo_run_id),
        ("run", s.class_run_id),
    ):
        code, _, err = cli(capsys, "download", s.root, kind, entity_id, parts, "--layout", "v2")
        assert code == 0, err
    assert cli(capsys, "download", s.root, "dataset", 10000, whole, "--layout", "v2")[0] == 0
    a, b = tree_files(parts), tree_files(whole)
    assert sorted(a) == sorted(b)
    assert all(a[k].read_bytes() == b[k].read_bytes() for k in a)


def test_copy_reports_progress_in_bytes(sqlite_source, tmp_path):
    with Portal.open(sqlite_source.root) as portal:
        listing = list_entity(portal, "run", sqlite_source.tomo_run_id, "v2")
    seen: list[int] = []
    report = copy_entries(listing, tmp_path / "dl", progress=seen.append)
    assert sum(seen) == listing.total_bytes == report.bytes_written
    again: list[int] = []
    report = copy_entries(listing, tmp_path / "dl", progress=again.append)
    assert sum(again) == listing.total_bytes == report.bytes_skipped and report.written == 0


def test_download_errors_are_one_line(sqlite_source, tmp_path, capsys):
    root = sqlite_source.root
    code, _, err = cli(capsys, "download", root, "run", 999, tmp_path / "d")
    assert code == 2 and err.strip() == "Error: no run 999"
    code, _, err = cli(capsys, "download", root, "dataset", 10000, tmp_path / "d", "--layout", "v9")
    assert code == 2 and "v1 or v2" in err
    blocker = tmp_path / "blocked"
    (blocker / "10000").mkdir(parents=True)
    (blocker / "10000" / "dataset_metadata.json").mkdir()
    code, _, err = cli(capsys, "download", root, "dataset", 10000, blocker)
    assert code == 2 and "a folder stands where a file must go" in err
    assert err.strip().count("\n") == 0
    proc = subprocess.run(
        [sys.executable, "-m", "cryocurate", "download", str(root), "tomogram", "5", "x"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and proc.stderr.strip() == "Error: no tomogram 5"


def test_help_has_examples(capsys):
    for command in ("download", "import-czportal"):
        code, out, _ = cli(capsys, command, "--help")
        assert code == 0 and "Example" in out
