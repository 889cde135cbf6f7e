"""Symbolic links are never followed out of the folder being imported or extracted (issue #11,
finding 3), and an import copies only the portal's kinds of file (finding 2).

``import-czportal`` refuses any link in a download (a portal download holds none); extraction
and ``import-magellon`` refuse links that lead out of the job or lab folder (the folder given
may itself be a link: RELION's job aliases are). Each refusal is one line naming the link,
a non-zero exit, nothing stored and nothing outside the root changed.
"""

# ruff: noqa: F811 (the fixtures imported from paths_helpers are test parameters)
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from cryocurate.formats import magellon as mg
from cryocurate.formats import tkteach
from cryocurate.portal import Portal
from cryocurate.transfer.download import copy_entries, list_entity
from tests.cli_in_process import cli
from tests.security.paths_helpers import (  # noqa: F401 (fixtures)
    copy_job,
    counts,
    nest,
    one_line,
    pristine_jobs,
    root,
    run_names,
    snapshot,
)
from tests.transfer.conftest import TOMO_RUN, build_source

# ── import-czportal ────────────────────────────────────────────────────────────────────────


@pytest.fixture(scope="module")
def downloads(tmp_path_factory, pristine_jobs) -> dict[str, Path]:
    """The transfer tests' dataset 10000, downloaded once in each layout (copy to damage)."""
    base = tmp_path_factory.mktemp("security-downloads")
    job = shutil.copytree(pristine_jobs["cryosparc"], base / "job" / "J12")
    source = build_source(base / "source", None, job)
    out = {}
    with Portal.open(source.root) as portal:
        for name in ("v1", "v2"):
            copy_entries(list_entity(portal, "dataset", 10000, name), base / name)
            out[name] = base / name / "10000"
    return out


def _download(downloads: dict[str, Path], name: str, tmp_path: Path) -> Path:
    return shutil.copytree(downloads[name], tmp_path / "incoming" / name / "10000")


def _assert_refused(capsys, tmp_path: Path, root: Path, folder: Path, link: Path) -> None:
    before = snapshot(tmp_path, exclude=(root,))
    code, stdout, err = cli(capsys, "import-czportal", root, folder)
    assert code == 2 and stdout == ""
    line = one_line(err)
    assert str(link) in line and "symbolic link" in line
    assert snapshot(tmp_path, exclude=(root,)) == before
    assert counts(root) == (0, 0)
    data = root / "data"
    assert [p for p in data.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("name", ["v1", "v2"])
def test_import_refuses_a_file_linked_to_etc_passwd(capsys, tmp_path, root, downloads, name):
    folder = _download(downloads, name, tmp_path)
    link = folder / "notes.txt"
    link.symlink_to("/etc/passwd")
    _assert_refused(capsys, tmp_path, root, folder, link)


@pytest.mark.parametrize("name", ["v1", "v2"])
def test_import_refuses_metadata_linked_to_a_file_elsewhere(
    capsys, tmp_path, root, downloads, name
):
    folder = _download(downloads, name, tmp_path)
    elsewhere = tmp_path / "elsewhere" / "private.json"
    elsewhere.parent.mkdir()
    run_meta = folder / TOMO_RUN / "run_metadata.json"
    shutil.copyfile(run_meta, elsewhere)
    run_meta.unlink()
    run_meta.symlink_to(elsewhere)
    _assert_refused(capsys, tmp_path, root, folder, run_meta)


def test_import_refuses_a_linked_run_folder(capsys, tmp_path, root, downloads):
    folder = _download(downloads, "v1", tmp_path)
    moved = shutil.move(folder / TOMO_RUN, tmp_path / "elsewhere-run")
    (folder / TOMO_RUN).symlink_to(moved)
    _assert_refused(capsys, tmp_path, root, folder, folder / TOMO_RUN)


@pytest.mark.parametrize("name", ["v1", "v2"])
def test_import_copies_only_the_portals_kinds_of_file(capsys, tmp_path, root, downloads, name):
    folder = _download(downloads, name, tmp_path)
    script = "<script>fetch('/me').then(r => r.json()).then(alert)</script>"
    annotations = next(folder.rglob("Annotations"))
    extra = [
        folder / "readme.html",
        folder / "notes.txt",
        folder / TOMO_RUN / "logo.svg",
        next(annotations.iterdir()).parent / "x.js",
        next(folder.rglob("*.zarr")) / "index.html",
    ]
    for path in extra:
        path.write_text(script)
    code, stdout, err = cli(capsys, "import-czportal", root, folder, "--json")
    assert code == 0, err
    result = json.loads(stdout)
    skipped = sorted(str(folder.parent / rel) for rel in result["skipped"])
    assert skipped == sorted(str(p) for p in extra)
    notes = [line for line in err.splitlines() if "not copied" in line]
    assert len(notes) == len(extra) and all(any(str(p) in n for n in notes) for p in extra)
    data = root / "data"
    stored = [p.name for p in data.rglob("*") if p.is_file()]
    assert not {"readme.html", "notes.txt", "logo.svg", "x.js", "index.html"} & set(stored)
    assert result["n_annotations"] == 2 and result["n_tomograms"] == 1
    # the text summary counts them too
    code, stdout, _ = cli(capsys, "import-czportal", root, folder, "--dataset-id", "new")
    assert code == 0 and f"{len(extra)} not copied" in stdout


# ── extract ────────────────────────────────────────────────────────────────────────────────


def _extract(capsys, root: Path, job: Path) -> tuple[int, str, str]:
    return cli(capsys, "extract", job, "--root", root, "--dataset", "Links", "--workers", 1)


@pytest.mark.parametrize("kind", ["cryosparc", "relion"])
@pytest.mark.parametrize("target", ["etc", "tmp"])
def test_extract_refuses_a_job_file_linked_out_of_the_job(
    capsys, tmp_path, root, copy_job, kind, target
):
    job = copy_job(kind)
    name = "J12_020_particles.cs" if kind == "cryosparc" else "run_it025_data.star"
    victim = job / name
    if target == "etc":
        linked: Path | str = "/etc/passwd"
    else:
        linked = tmp_path / "elsewhere" / name
        linked.parent.mkdir()
        shutil.copyfile(victim, linked)
    victim.unlink()
    victim.symlink_to(linked)
    before = snapshot(tmp_path, exclude=(root,))
    code, _, err = _extract(capsys, root, job)
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and str(victim) in errors[0] and "outside the job folder" in errors[0]
    assert "Traceback" not in err
    assert snapshot(tmp_path, exclude=(root,)) == before
    assert counts(root) == (0, 0)


def test_extract_refuses_a_job_json_linked_elsewhere(capsys, tmp_path, root, copy_job):
    job = copy_job("cryosparc")
    elsewhere = tmp_path / "elsewhere" / "job.json"
    elsewhere.parent.mkdir()
    shutil.move(job / "job.json", elsewhere)  # a valid job.json, but not the job's own
    (job / "job.json").symlink_to(elsewhere)
    code, _, err = _extract(capsys, root, job)
    assert code == 2 and counts(root) == (0, 0)
    assert f"{job / 'job.json'}: is a symbolic link" in err


def test_extract_follows_an_alias_of_the_job_folder(capsys, tmp_path, root, copy_job):
    """RELION's ``Class2D/<alias> -> job006`` links, given on the command line, are fine."""
    job = copy_job("relion")
    alias = job.parent / "my_best_2d"
    alias.symlink_to(job.name)
    code, _, err = _extract(capsys, root, alias)
    assert code == 0, err
    assert run_names(root) == ["my_best_2d"]


# ── import-magellon ────────────────────────────────────────────────────────────────────────

JOB = "P3_J12_64a1b2c3d4e5f6a7b8c9d0e1"


def _lab(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    lab = tmp_path / "lab"
    mg.write_job(
        lab,
        JOB,
        rng.normal(size=(3, 16, 16)),
        mg.metadata_records({f: np.full(3, 1.5) for f in mg.METADATA_FIELDS}),
    )
    return lab


def _link_out(path: Path, tmp_path: Path) -> Path:
    """Move ``path`` out of the lab folder and leave a link to it in its place."""
    target = tmp_path / "elsewhere" / path.name
    target.parent.mkdir(exist_ok=True)
    shutil.move(path, target)
    path.symlink_to(target)
    return path


@pytest.mark.parametrize("what", ["image", "npy", "job folder"])
def test_magellon_refuses_job_files_linked_out_of_the_lab(capsys, tmp_path, root, what):
    lab = _lab(tmp_path)
    path = {
        "image": lab / "images" / JOB / mg.image_name(JOB, 1),
        "npy": lab / "metadata" / f"{JOB}.npy",
        "job folder": lab / "images" / JOB,
    }[what]
    link = _link_out(path, tmp_path)
    before = snapshot(tmp_path, exclude=(root,))
    code, _, err = cli(capsys, "import-magellon", root, lab)
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and str(link) in errors[0] and "outside the Magellon folder" in err
    assert snapshot(tmp_path, exclude=(root,)) == before
    assert counts(root) == (0, 0)


def test_magellon_refuses_a_label_database_linked_out_of_the_lab(capsys, tmp_path, root):
    lab = _lab(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    tkteach.write_labels(
        elsewhere / "storage_reviewer@lab.edu.db",
        [tkteach.ImageLabel(dataset=JOB, name=mg.image_name(JOB, 0), letters=frozenset("A"))],
        lab_dir=str(lab),
    )
    link = lab / "storage_reviewer@lab.edu.db"
    link.symlink_to(elsewhere / "storage_reviewer@lab.edu.db")
    before = snapshot(tmp_path, exclude=(root,))
    code, stdout, err = cli(capsys, "import-magellon", root, lab)
    assert code == 2 and stdout == ""
    assert str(link) in one_line(err)
    assert snapshot(tmp_path, exclude=(root,)) == before
    assert counts(root) == (0, 0)
    assert os.path.islink(link)


@pytest.mark.parametrize("bad", ["evil\nname.json", "TS_001\x1b[2J", "tab\tname.mrc"])
def test_import_refuses_file_names_with_control_characters(capsys, tmp_path, root, downloads, bad):
    folder = _download(downloads, "v1", tmp_path)
    (folder / TOMO_RUN / bad).write_text("{}")
    before = snapshot(tmp_path, exclude=(root,))
    code, stdout, err = cli(capsys, "import-czportal", root, folder)
    assert code == 2 and stdout == ""
    assert "cannot be a file or folder name" in one_line(err)  # the name escaped, one line
    assert "\x1b" not in err
    assert snapshot(tmp_path, exclude=(root,)) == before
    assert counts(root) == (0, 0)
