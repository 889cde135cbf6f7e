"""Names from input never make a path out of the portal root (issue #11, finding 1 and 8).

Each test is an attack: a crafted job.json, STAR values, Magellon job names, an annotation
version, a planted swap, an export or download aimed at the portal. Each checks that nothing
outside the root changed (a snapshot of the folders around it, before and after) and that the
run, when there is one, landed under the root with its safe name.
"""

# ruff: noqa: F811 (the fixtures imported from paths_helpers are test parameters)
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cryocurate.formats import magellon as mg
from cryocurate.ingest import annotations, tomography
from cryocurate.ingest.datasets import DatasetFields, create_dataset
from cryocurate.portal import Portal
from cryocurate.store import layout, names, tree
from cryocurate.transfer.czportal import import_czportal
from cryocurate.transfer.download import copy_entries, list_entity
from tests.cli_in_process import cli
from tests.ingest import tomo_data
from tests.security.paths_helpers import (  # noqa: F401 (fixtures)
    copy_job,
    counts,
    dataset_ids,
    nest,
    one_line,
    pristine_jobs,
    root,
    run_dir,
    run_names,
    snapshot,
)


def _set_job_json(job_dir: Path, **fields: object) -> None:
    path = job_dir / "job.json"
    doc = json.loads(path.read_text())
    doc.update(fields)
    path.write_text(json.dumps(doc))


def _extract(capsys, root: Path, *jobs: Path) -> tuple[int, str, str]:
    return cli(capsys, "extract", *jobs, "--root", root, "--dataset", "Attack", "--workers", 1)


@pytest.mark.parametrize(
    "project_uid, uid",
    [
        ("../../../../victim", "J99"),  # the job.json
        ("P3", "J1/../../../../../victim"),  # a uid with slashes
        ("..", ".."),
        ("P3\n", "J\x00\x1b[31m"),  # control characters
    ],
)
def test_job_json_names_cannot_leave_the_dataset(
    capsys, tmp_path, nest, root, copy_job, project_uid, uid
):
    job = copy_job("cryosparc")
    _set_job_json(job, project_uid=project_uid, uid=uid)
    # What the unfixed extraction wrote into and deleted from: a/victim_J99/.
    victim = nest.parent / "victim_J99"
    (victim / "ClassAverages").mkdir(parents=True)
    (victim / "run_metadata.json").write_text("keep me")
    (victim / "ClassAverages" / "mine.txt").write_text("keep me too")
    before = snapshot(tmp_path, exclude=(root,))

    code, _, err = _extract(capsys, root, job)

    assert code == 0, err
    assert snapshot(tmp_path, exclude=(root,)) == before
    wanted = f"{project_uid}_{uid}"
    safe = names.safe_segment(wanted)
    assert run_names(root) == [safe]
    assert names.is_safe_segment(safe) and "/" not in safe and not safe.startswith(".")
    folder = run_dir(root, safe)
    assert folder.parent.parent == root / "data"
    assert (folder / layout.CLASS_AVERAGES / layout.CLASS_AVERAGES_STACK).is_file()
    assert f"stored as {safe!r}" in err  # the user is told the name it became
    # a rerun finds the same run
    code, _, err = _extract(capsys, root, job)
    assert code == 0 and "unchanged" in err and run_names(root) == [safe]


def test_absolute_project_uid_writes_nowhere_else(capsys, tmp_path, root, copy_job):
    target = tmp_path / "elsewhere"
    target.mkdir()
    job = copy_job("cryosparc")
    _set_job_json(job, project_uid=str(target / "victim"), uid="J99")
    before = snapshot(tmp_path, exclude=(root,))
    code, _, err = _extract(capsys, root, job)
    assert code == 0, err
    assert snapshot(tmp_path, exclude=(root,)) == before
    assert list(target.iterdir()) == []
    (name,) = run_names(root)
    assert (run_dir(root, name) / layout.CLASS_AVERAGES).is_dir()


def test_star_values_with_dot_dot_are_not_paths(capsys, tmp_path, root, copy_job):
    """RELION's STAR files name other files (``000001@Class2D/job006/…``, particle stacks,
    micrographs): extraction reads only the image number, never those paths."""
    job = copy_job("relion")
    for star in job.glob("*.star"):
        text = star.read_text()
        text = text.replace("@Class2D/", "@../../../../../../../../etc/")
        text = text.replace("@Extract/", "@/etc/").replace("MotionCorr/", "../../../../x/")
        star.write_text(text)
    before = snapshot(tmp_path, exclude=(root,))
    code, _, err = _extract(capsys, root, job)
    assert code == 0, err
    assert snapshot(tmp_path, exclude=(root,)) == before
    assert run_names(root) == ["job006"]


def test_magellon_job_names_become_safe_folders(capsys, tmp_path, nest, root):
    """Job folder names of a lab folder are input: a backslash path and control characters
    become one safe segment under the dataset."""
    import numpy as np

    lab = tmp_path / "lab"
    jobs = ["P1_J1\\..\\..\\..\\..\\victim", "P1_J2 \x1b[2J"]
    for k, job in enumerate(jobs):
        images = np.random.default_rng(k).normal(size=(3, 16, 16))
        metadata = mg.metadata_records({f: np.full(3, 1.5) for f in mg.METADATA_FIELDS})
        (lab / "images" / job).mkdir(parents=True)
        (lab / "metadata").mkdir(exist_ok=True)
        for i, image in enumerate(images):
            mg.write_image(lab / "images" / job / mg.image_name(job, i), image)
        np.save(lab / "metadata" / f"{job}.npy", metadata)
    before = snapshot(tmp_path, exclude=(root,))
    code, _, err = cli(capsys, "import-magellon", root, lab)
    assert code == 0, err
    assert snapshot(tmp_path, exclude=(root,)) == before
    safe = sorted(names.safe_segment(j) for j in jobs)
    assert run_names(root) == safe
    for name in safe:
        assert (run_dir(root, name) / layout.CLASS_AVERAGES).is_dir()
    assert err.count("stored as") == 2
    assert "\x1b" not in err  # names are escaped in what is printed


def _tomography_run(tmp_path: Path, portal: Portal) -> tuple[int, int]:
    centres = tomo_data.particle_centres()
    files = tmp_path / "in"
    files.mkdir(exist_ok=True)
    tomo = tomo_data.write_tomogram(files / "TS_07.mrc", centres)
    dataset_id = create_dataset(portal, DatasetFields(title="Tomo", lab="Lab T"))
    run = tomography.ingest_run(portal, dataset_id, tomography.RunFiles(tomogram=tomo))
    return dataset_id, run.run_id


def test_annotation_version_cannot_leave_the_annotations_folder(tmp_path, root):
    with Portal.open(root) as portal:
        _, run_id = _tomography_run(tmp_path, portal)
        before = snapshot(tmp_path, exclude=(root,))
        points = tomo_data.write_points_ndjson(
            tmp_path / "picks.ndjson", tomo_data.particle_centres()
        )
        before = snapshot(tmp_path, exclude=(root,))
        result = annotations.ingest_annotation(
            portal,
            run_id,
            points,
            annotations.AnnotationSpec(
                object_name="../../../../../../ribosome", object_id="GO:1",
                method_type="manual", method="by hand", version="../../../../../../../../x",
            ),
        )  # fmt: skip
    assert snapshot(tmp_path, exclude=(root,)) == before
    for rel in result.files:
        path = root / "data" / rel
        assert path.exists() and os.path.realpath(path).startswith(str(root / "data") + "/")
        assert "/Annotations/" in rel and rel.split("/Annotations/")[1].count("/") == 0


def test_tomogram_run_name_is_made_safe(capsys, tmp_path, root):
    tomo = tomo_data.write_tomogram(tmp_path / "TS_07.mrc", tomo_data.particle_centres())
    with Portal.open(root) as portal:
        dataset_id = create_dataset(portal, DatasetFields(title="Tomo", lab="Lab T"))
    before = snapshot(tmp_path, exclude=(root,))
    code, out, err = cli(
        capsys, "ingest", "run", root, "--dataset", dataset_id, tomo,
        "--run-name", "../../../../victim",
    )  # fmt: skip
    assert code == 0, err
    assert snapshot(tmp_path, exclude=(root,)) == before
    (name,) = run_names(root)
    assert name == names.safe_segment("../../../../victim")
    assert "stored as" in err and name in out


def test_a_planted_swap_target_is_never_followed(capsys, tmp_path, root, copy_job):
    """Recovery moves a dead writer's folders back: a ``target`` that points out of the data
    tree (written by someone else) must not make it move or delete anything there."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    holder = root / "data" / tree.SWAPS / "otherhost.1.deadbeef"
    (holder / "old").mkdir(parents=True)
    (holder / tree.TARGET_FILE).write_text(os.path.relpath(victim, holder.parent))
    (holder / tree.CHECK_FILE).write_text(json.dumps({"kind": "dataset", "dataset_id": 9}))
    job = copy_job("cryosparc")
    before = snapshot(tmp_path, exclude=(root,))
    code, _, err = _extract(capsys, root, job)  # recovery runs first
    assert code == 0, err
    assert snapshot(tmp_path, exclude=(root,)) == before
    assert (victim / "precious.txt").read_text() == "keep me"


@pytest.mark.parametrize("command", ["export", "export-magellon"])
@pytest.mark.parametrize("where", ["above", "root", "data"])
def test_export_force_cannot_replace_the_portal(capsys, tmp_path, nest, root, command, where):
    """``--force`` replaces OUT wholesale: OUT may not hold the portal or lie in its data."""
    out = {"above": nest, "root": root, "data": root / "data" / "10000"}[where]
    out.mkdir(exist_ok=True)
    before = snapshot(tmp_path)
    code, stdout, err = cli(capsys, command, root, out, "--campaign", 1, "--force")
    assert code == 2 and stdout == ""
    assert "overlaps" in one_line(err)
    assert _without_catalog(snapshot(tmp_path), root, tmp_path) == _without_catalog(
        before, root, tmp_path
    )


def _without_catalog(snap: dict, root: Path, base: Path) -> dict:
    """The snapshot without the catalog's files and the root's own mtime (SQLite's journal
    comes and goes in the root while the command reads the catalog)."""
    rel = root.relative_to(base).as_posix()
    return {k: v for k, v in snap.items() if k != rel and "catalog.sqlite" not in k}


def test_download_into_a_folder_with_a_link_out_writes_nothing_there(
    capsys, tmp_path, root, copy_job
):
    code, _, err = _extract(capsys, root, copy_job("cryosparc"))
    assert code == 0, err
    dest = tmp_path / "dest"
    dest.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (dataset_id,) = dataset_ids(root)
    (dest / str(dataset_id)).symlink_to(elsewhere)  # a link planted in the destination
    before = snapshot(tmp_path, exclude=(root,))
    code, _, err = cli(capsys, "download", root, "dataset", dataset_id, dest)
    assert code == 2
    assert "outside" in one_line(err)
    assert snapshot(tmp_path, exclude=(root,)) == before
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("name", ["v1", "v2"])
@pytest.mark.parametrize("object_name", ["α-actinin", "(R)-ribosome", "ribo some/80S"])
def test_download_of_a_sanitised_annotation_name_imports_again(tmp_path, root, name, object_name):
    """Finding 8: the object name's file-name form may begin with ``_``; download → import
    round-trips in both layouts."""
    with Portal.open(root) as portal:
        dataset_id, run_id = _tomography_run(tmp_path, portal)
        points = tomo_data.write_points_ndjson(tmp_path / "p.ndjson", tomo_data.particle_centres())
        annotations.ingest_annotation(
            portal, run_id, points,
            annotations.AnnotationSpec(object_name=object_name, object_id="GO:1",
                                       method_type="manual", method="by hand"),
        )  # fmt: skip
        copy_entries(list_entity(portal, "dataset", dataset_id, name), tmp_path / "dl")
    with Portal.create(tmp_path / "fresh") as fresh:
        result = import_czportal(fresh, tmp_path / "dl" / str(dataset_id), dataset_id="new")
        assert (result.n_tomograms, result.n_annotations) == (1, 1)
        assert result.skipped == []


@pytest.mark.parametrize("image_file", ["../../secret.mrcs", "/etc/passwd", "images/../../x"])
def test_a_handed_export_cannot_make_the_loader_read_outside_it(tmp_path, image_file):
    """An export folder handed to a trainer names its stacks in its table: a name that leaves
    the folder is refused, not opened."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from cryocurate.errors import UnsafePathError
    from cryocurate.learn.loader import DEFAULT_FEATURES, ClassAverageDataset

    export = tmp_path / "export"
    export.mkdir()
    columns = {name: [1.0] for name in DEFAULT_FEATURES}
    columns |= {"split": ["train"], "final_value": [3], "image_file": [image_file],
                "image_index": [0]}  # fmt: skip
    pq.write_table(pa.table(columns), export / "class_averages.parquet")
    dataset = ClassAverageDataset(export, split="train")
    with pytest.raises(UnsafePathError):
        dataset.image(0)


def test_a_huge_dataset_identifier_is_one_line(capsys, tmp_path, root):
    """``dataset_identifier`` in an import's metadata is input too (SQLite cannot hold it)."""
    folder = tmp_path / "dl" / "10000"
    (folder / "TS_1").mkdir(parents=True)
    doc = {"dataset_title": "x", "dataset_identifier": 10**30}
    (folder / "dataset_metadata.json").write_text(json.dumps(doc))
    (folder / "TS_1" / "run_metadata.json").write_text("{}")
    code, _, err = cli(capsys, "import-czportal", root, folder)
    assert code == 2 and "64-bit" in one_line(err) and counts(root) == (0, 0)
