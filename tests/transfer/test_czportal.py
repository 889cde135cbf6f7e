"""``cryocurate import-czportal``: both layouts, round trips, what is cataloged, bad folders."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cryocurate.catalog.models import (
    Annotation,
    Dataset,
    IdentifiedObject,
    Run,
    RunKind,
    TiltSeries,
    Tomogram,
)
from cryocurate.cli.main import main
from cryocurate.errors import ConflictError, FormatError, InputError
from cryocurate.ingest.datasets import DatasetFields, create_dataset
from cryocurate.portal import Portal
from cryocurate.transfer import czportal
from cryocurate.transfer.czportal import detect_layout, import_czportal
from cryocurate.transfer.download import copy_entries, list_entity

from .conftest import TOMO_RUN, Source, assert_same_tree, tree_files


def cli(capsys, *argv):
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in argv])
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out, out.err


def download(root: Path, dest: Path, name: str, kind: str = "dataset", entity_id: int = 10000):
    with Portal.open(root) as portal:
        copy_entries(list_entity(portal, kind, entity_id, name), dest)
    return dest


@pytest.fixture(scope="module")
def downloads(tmp_path_factory, class_job) -> dict[str, Path]:
    """The test dataset downloaded once in each layout (pristine; copy before damaging)."""
    from .conftest import build_source

    base = tmp_path_factory.mktemp("czportal")
    source = build_source(base / "source", None, class_job)
    return {name: download(source.root, base / name, name) / "10000" for name in ("v1", "v2")}


def fresh(tmp_path: Path, database_url: str | None, name: str = "target") -> Portal:
    return Portal.create(tmp_path / name, database_url=database_url)


@pytest.mark.parametrize("name", ["v1", "v2"])
def test_round_trip(sqlite_source: Source, tmp_path, database_url, name, capsys):
    """download → import into a fresh root → download again: the same files."""
    first = download(sqlite_source.root, tmp_path / "first", name)
    target = fresh(tmp_path, database_url)
    target.close()
    code, out, err = cli(capsys, "import-czportal", target.root, first / "10000")
    assert code == 0, err
    assert out.startswith(f"Imported dataset 10000 ({name} layout): 2 runs, 1 tomograms")
    second = download(target.root, tmp_path / "second", name)
    assert_same_tree(first, second)
    with Portal.open(target.root) as portal:
        assert not list((portal.data_dir / ".staging").glob("*"))


def test_detect_layout(downloads, tmp_path):
    assert detect_layout(downloads["v1"]) == "v1"
    assert detect_layout(downloads["v2"]) == "v2"
    mixed = shutil.copytree(downloads["v2"], tmp_path / "mixed" / "10000")
    shutil.copytree(downloads["v1"] / TOMO_RUN / "Tomograms", mixed / TOMO_RUN / "Tomograms")
    with pytest.raises(FormatError, match="mixes the portal's two layouts"):
        detect_layout(mixed)


@pytest.mark.parametrize("name", ["v1", "v2"])
def test_import_catalogs_what_the_metadata_says(downloads, tmp_path, database_url, name):
    with fresh(tmp_path, database_url) as portal:
        result = import_czportal(portal, downloads[name])
        assert result.notes == []
        with portal.transaction() as s:
            ds = s.get(Dataset, 10000)
            assert ds.title == "Ribosomes in situ" and ds.lab == "Lab T"
            assert (ds.organism_name, ds.organism_taxid) == ("Homo sapiens", 9606)
            assert ds.sample_type.value == "cell" and ds.related_database_entries == "EMPIAR-10000"
            assert str(ds.release_date) == "2024-02-03"
            assert [(a.name, a.orcid, a.primary_author_status) for a in ds.authors] == [
                ("Ada A", "0000-0001", True),
                ("Bo B", None, False),
            ]
            assert [(f.funding_agency_name, f.grant_id) for f in ds.funding_sources] == [
                ("NIH", "R01")
            ]
            runs = {r.name: r for r in ds.runs}
            assert runs["P1_J12"].kind is RunKind.class2d
            assert runs["P1_J12"].class2d_job.n_classes == 4
            assert len(runs["P1_J12"].class_averages) == 4
            run = runs[TOMO_RUN]
            assert run.kind is RunKind.tomography
            [ts] = s.scalars(select(TiltSeries).where(TiltSeries.run_id == run.id)).all()
            assert (ts.tilt_min, ts.tilt_max, ts.tilt_range, ts.tilt_series_quality) == (
                -30, 30, 60, 4,
            )  # fmt: skip
            assert ts.microscope_manufacturer.value == "TFS" and ts.camera_model == "4i"
            assert ts.microscope_energy_filter == "Selectris" and ts.total_flux == 120
            assert (ts.size_x, ts.size_y, ts.size_z) == (32, 24, 7)
            assert ts.mrc_file == f"10000/{TOMO_RUN}/TiltSeries/TS_001.mrc"
            assert ts.angle_list == f"10000/{TOMO_RUN}/TiltSeries/TS_001.rawtlt"
            [tomo] = s.scalars(select(Tomogram).where(Tomogram.run_id == run.id)).all()
            assert (tomo.size_x, tomo.size_y, tomo.size_z, tomo.voxel_spacing) == (32, 24, 16, 10)
            assert tomo.reconstruction_method.value == "WBP" and tomo.ctf_corrected is True
            assert tomo.fiducial_alignment_status.value == "FIDUCIAL"
            assert tomo.scale_1_dimensions == "16,12,8"
            vs = f"10000/{TOMO_RUN}/Tomograms/VoxelSpacing10.000"
            assert tomo.mrc_file == f"{vs}/CanonicalTomogram/TS_001.mrc"
            assert tomo.omezarr_dir == f"{vs}/CanonicalTomogram/TS_001.zarr"
            assert tomo.key_photo_url == f"{vs}/KeyPhotos/key-photo-snapshot.png"
            assert json.loads(tomo.neuroglancer_config) == {"layers": [{"type": "image"}]}
            points, mask = s.scalars(
                select(Annotation).where(Annotation.run_id == run.id).order_by(Annotation.id)
            ).all()
            assert (points.object_id, points.object_name) == ("GO:0022626", "cytosolic ribosome")
            assert points.method_type.value == "hybrid" and points.ground_truth_status is True
            assert (points.confidence_precision, points.confidence_recall) == (87.5, 90.0)
            assert points.object_count == 3
            assert (
                points.metadata_path == f"{vs}/Annotations/{points.id}-cytosolic_ribosome-1.0.json"
            )
            assert mask.method_type.value == "automated" and mask.ground_truth_status is False
            assert mask.ground_truth_used == points.metadata_path
            assert mask.ground_truth_annotation_id == points.id
            files = {
                (sh.shape_type.value, f.format, f.path, f.is_visualization_default)
                for a in (points, mask)
                for sh in a.annotation_shapes
                for f in sh.annotation_files
            }
            stem = f"{vs}/Annotations/{mask.id}-membrane-1.0_segmentationmask"
            ndjson = f"{vs}/Annotations/{points.id}-cytosolic_ribosome-1.0_point.ndjson"
            assert files == {
                ("Point", "ndjson", ndjson, True),
                ("SegmentationMask", "mrc", f"{stem}.mrc", True),
                ("SegmentationMask", "zarr", f"{stem}.zarr", False),
            }  # fmt: skip
            for a in (points, mask):
                for sh in a.annotation_shapes:
                    for f in sh.annotation_files:
                        assert (portal.data_dir / f.path).exists()
                        assert f.tomogram_voxel_spacing.voxel_spacing == 10.0


def test_dataset_id_kept_refused_or_new(downloads, tmp_path, database_url, capsys):
    with fresh(tmp_path, database_url) as portal:
        assert import_czportal(portal, downloads["v2"]).dataset_id == 10000
        # the id sequence moved past the kept id (PostgreSQL needs telling)
        assert create_dataset(portal, DatasetFields(title="made here")) == 10001
        with pytest.raises(ConflictError, match="dataset 10000 already exists"):
            import_czportal(portal, downloads["v1"])
        root = portal.root
    code, _, err = cli(capsys, "import-czportal", root, downloads["v1"])
    assert code == 2 and err.count("\n") == 1
    assert "dataset 10000 already exists in this portal (import it under a new id with " in err
    code, out, _ = cli(capsys, "import-czportal", root, downloads["v1"], "--dataset-id", "new")
    assert code == 0 and "Imported dataset 10002" in out
    again = download(root, tmp_path / "again", "v1", "dataset", 10002)
    meta = json.loads((again / "10002" / "dataset_metadata.json").read_text())
    assert meta["dataset_identifier"] == 10002
    run_meta = json.loads((again / "10002" / TOMO_RUN / "run_metadata.json").read_text())
    assert run_meta["dataset_id"] == 10002
    ann = next((again / "10002").rglob("*-membrane-1.0.json"))
    used = json.loads(ann.read_text())["confidence"]["ground_truth_used"]
    assert used.startswith(f"10002/{TOMO_RUN}/") and (again / used).is_file()


def test_v2_folders_beyond_v1s_room_are_skipped_with_a_note(downloads, tmp_path):
    folder = shutil.copytree(downloads["v2"], tmp_path / "src" / "10000")
    vs = folder / TOMO_RUN / "Reconstructions" / "VoxelSpacing10.000"
    shutil.copytree(vs / "Tomograms" / "100", vs / "Tomograms" / "101")
    shutil.copytree(
        folder / TOMO_RUN / "TiltSeries" / "100", folder / TOMO_RUN / "TiltSeries" / "101"
    )
    with fresh(tmp_path, None) as portal:
        result = import_czportal(portal, folder)
        assert len(result.notes) == 2
        assert all("skipped" in n for n in result.notes)
        assert result.n_tomograms == 1
        again = download(portal.root, tmp_path / "again", "v2")
    assert_same_tree(downloads["v2"].parent, again)


# ── bad folders: one clear line, nothing stored ────────────────────────────────────────────


def _tomo_meta(f: Path) -> Path:
    return next(f.rglob("tomogram_metadata.json"))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:2000])


DAMAGE: dict[str, tuple[Callable[[Path], object], type[Exception], str]] = {
    "no dataset metadata": (
        lambda f: (f / "dataset_metadata.json").unlink(),
        InputError,
        "holds no dataset_metadata.json",
    ),
    "broken dataset metadata": (
        lambda f: (f / "dataset_metadata.json").write_text("{not json"),
        FormatError,
        "is not readable JSON",
    ),
    "no title": (
        lambda f: (f / "dataset_metadata.json").write_text('{"dataset_identifier": 10000}'),
        FormatError,
        "has no dataset_title",
    ),
    "no runs": (
        lambda f: [shutil.rmtree(p) for p in f.iterdir() if p.is_dir()],
        InputError,
        "holds no run folders",
    ),
    "run without metadata": (
        lambda f: (f / TOMO_RUN / "run_metadata.json").unlink(),
        InputError,
        "holds no run_metadata.json",
    ),
    "broken tomogram metadata": (
        lambda f: _tomo_meta(f).write_text("[1, 2"),
        FormatError,
        "tomogram_metadata.json: is not readable JSON",
    ),
    "truncated tomogram": (
        lambda f: _truncate(next(f.rglob("TS_001.mrc"))),
        FormatError,
        "truncated",
    ),
    "no tomogram file": (
        lambda f: [
            shutil.rmtree(p) if p.is_dir() else p.unlink()
            for p in _tomo_meta(f).parent.iterdir()
            if p.name.startswith("TS_001")
        ],
        InputError,
        "holds no tomogram MRC or OME-Zarr",
    ),
    "bad ndjson": (
        lambda f: next(f.rglob("*_point.ndjson")).write_text('{"type": "point"}\n'),
        FormatError,
        "line 1 is not a point with a location",
    ),
    "annotation without object": (
        lambda f: next(f.rglob("*ribosome-1.0.json")).write_text('{"files": []}'),
        FormatError,
        "has no annotation metadata JSON",
    ),
    "bad method type": (
        lambda f: _edit(next(f.rglob("*ribosome-1.0.json")), method_type="guessed"),
        FormatError,
        "method_type 'guessed' is not one of manual, automated, hybrid, simulated",
    ),
    "quality out of scale": (
        lambda f: _edit(next(f.rglob("tiltseries_metadata.json")), tilt_series_quality=9),
        FormatError,
        "tilt_series_quality 9 is not on the 1–5 scale",
    ),
    "unknown shape": (
        lambda f: _rename(next(f.rglob("*_point.ndjson")), "_point", "_blob"),
        FormatError,
        "not one of the portal's",
    ),
}


def _rename(path: Path, old: str, new: str) -> None:
    path.rename(path.with_name(path.name.replace(old, new)))


def _edit(path: Path, **changes: object) -> None:
    doc = json.loads(path.read_text())
    doc.update(changes)
    path.write_text(json.dumps(doc))


def _assert_nothing_stored(portal: Portal) -> None:
    with portal.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Dataset)) == 0
        assert s.scalar(select(func.count()).select_from(Run)) == 0
    assert sorted(p.name for p in portal.data_dir.iterdir() if p.name != ".staging") in (
        [],
        [".swaps"],
    )
    assert not list((portal.data_dir / ".staging").glob("*"))


@pytest.mark.parametrize("name", ["v1", "v2"])
@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_bad_folders_store_nothing(downloads, tmp_path, case, name):
    damage, error, message = DAMAGE[case]
    folder = shutil.copytree(downloads[name], tmp_path / "src" / "10000")
    damage(folder)
    with fresh(tmp_path, None) as portal:
        with pytest.raises(error) as info:
            import_czportal(portal, folder)
        assert message in str(info.value)
        assert "\n" not in str(info.value)
        assert str(tmp_path / "src") in str(info.value)  # says where
        _assert_nothing_stored(portal)


def test_wrong_folders_say_what_to_give(downloads, tmp_path, capsys):
    with fresh(tmp_path, None) as portal:
        root = portal.root
    code, _, err = cli(capsys, "import-czportal", root, downloads["v2"] / TOMO_RUN)
    assert code == 2 and "is a run folder, not a dataset folder (give the folder above it" in err
    code, _, err = cli(capsys, "import-czportal", root, tmp_path / "nowhere")
    assert code == 2 and "no such folder" in err
    code, _, err = cli(capsys, "import-czportal", root, downloads["v2"].parent)
    assert code == 2 and "holds no dataset_metadata.json" in err


def test_failure_while_committing_leaves_nothing(downloads, tmp_path, database_url, monkeypatch):
    def boom(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(czportal, "_write_metadata", boom)
    with fresh(tmp_path, database_url) as portal:
        with pytest.raises(OSError, match="disk full"):
            import_czportal(portal, downloads["v2"])
        _assert_nothing_stored(portal)


def test_a_real_portal_style_folder(tmp_path, downloads):
    """Metadata as the CZ portal writes it: tree-relative files[] paths, extra fields,
    enum spellings with spaces, an early v1 voxel spacing name (13.48)."""
    folder = shutil.copytree(downloads["v2"], tmp_path / "src" / "10000")
    meta = folder / "dataset_metadata.json"
    doc = json.loads(meta.read_text())
    doc.update(cell_strain={"id": "x", "name": "HeLa"}, key_photos={"snapshot": "Images/a.png"})
    meta.write_text(json.dumps(doc))
    ann = next(folder.rglob("cytosolic_ribosome-1.0.json"))
    doc = json.loads(ann.read_text())
    rel = ann.parent.relative_to(folder.parent).as_posix()
    doc["files"][0]["path"] = f"{rel}/cytosolic_ribosome-1.0_point.ndjson"
    doc["annotation_publications"] = "doi:10.1/x"
    ann.write_text(json.dumps(doc))
    _edit(_tomo_meta(folder), reconstruction_method="Fourier Space", processing="denoised")
    _edit(
        folder / TOMO_RUN / "run_metadata.json",
        identified_objects=[{"object_id": "GO:0005739", "object_name": "mitochondrion"}],
    )
    with fresh(tmp_path, None) as portal:
        import_czportal(portal, folder)
        with portal.transaction() as s:
            tomo = s.scalars(select(Tomogram)).one()
            assert tomo.reconstruction_method.value == "Fourier_Space"
            assert tomo.processing.value == "denoised"
            point = s.scalars(select(Annotation).order_by(Annotation.id)).first()
            assert point.annotation_publication == "doi:10.1/x"
            [seen] = s.scalars(select(IdentifiedObject)).all()
            assert (seen.object_id, seen.object_name) == ("GO:0005739", "mitochondrion")
        stored = json.loads((portal.data_dir / point.metadata_path).read_text())
        assert stored["files"][0]["path"] == (
            f"10000/{TOMO_RUN}/Tomograms/VoxelSpacing10.000/Annotations/"
            f"{point.id}-cytosolic_ribosome-1.0_point.ndjson"
        )
        assert (portal.data_dir / stored["files"][0]["path"]).is_file()
        kept = json.loads((portal.data_dir / "10000" / "dataset_metadata.json").read_text())
        assert kept["cell_strain"] == {"id": "x", "name": "HeLa"}  # fields we have no column for


def test_progress_counts_every_byte(downloads, tmp_path):
    seen: list[int] = []
    plans: list[czportal.Plan] = []
    with fresh(tmp_path, None) as portal:
        import_czportal(portal, downloads["v1"], progress=seen.append, on_plan=plans.append)
    total = sum(p.stat().st_size for p in tree_files(downloads["v1"]).values())
    assert sum(seen) == plans[0].total_bytes == total
