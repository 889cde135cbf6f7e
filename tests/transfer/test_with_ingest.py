"""Downloads and imports of runs made by the real tomography and annotation ingest."""

from __future__ import annotations

from pathlib import Path

import pytest

from cryocurate.ingest import annotations, tomography
from cryocurate.ingest.datasets import DatasetFields, create_dataset
from cryocurate.portal import Portal
from cryocurate.transfer.czportal import import_czportal
from cryocurate.transfer.download import copy_entries, list_entity
from tests.ingest import tomo_data

from .conftest import assert_same_tree


@pytest.fixture
def ingested(tmp_path: Path, database_url: str) -> tuple[Path, int]:
    """A portal with one run ingested for real: tomogram, tilt series, points and a mask."""
    centres = tomo_data.particle_centres()
    files = tmp_path / "in"
    files.mkdir()
    tomo = tomo_data.write_tomogram(files / "TS_07.mrc", centres)
    tilt = tomo_data.write_tilt_series(files / "TS_07.st")
    angles = tomo_data.write_rawtlt(files / "TS_07.rawtlt")
    points = tomo_data.write_points_ndjson(files / "picks.ndjson", centres)
    mask = tomo_data.write_mask(files / "mask.mrc", centres)
    with Portal.create(tmp_path / "portal", database_url=database_url) as portal:
        dataset_id = create_dataset(portal, DatasetFields(title="Ingested", lab="Lab I"))
        run = tomography.ingest_run(
            portal,
            dataset_id,
            tomography.RunFiles(tomogram=tomo, tilt_series=tilt, angles=angles),
            acquisition=tomography.Acquisition(tilt_series_quality=5, microscope_model="Krios"),
        )
        for path, name, gt in ((points, "ribosome", True), (mask, "ribosome", False)):
            annotations.ingest_annotation(
                portal,
                run.run_id,
                path,
                annotations.AnnotationSpec(
                    object_name=name,
                    object_id="GO:0022626",
                    method_type="manual",
                    method="by hand",
                    ground_truth=gt,
                ),
            )
    return tmp_path / "portal", run.run_id


@pytest.mark.parametrize("name", ["v1", "v2"])
def test_ingested_run_round_trips(ingested, tmp_path, name):
    root, run_id = ingested
    with Portal.open(root) as portal:
        listing = list_entity(portal, "run", run_id, name)
        copy_entries(listing, tmp_path / "first")
    paths = [e.path.split("/", 2)[2] for e in listing.entries if "/" in e.path.split("/", 1)[1]]
    vs = "Tomograms/VoxelSpacing10.000" if name == "v1" else "Reconstructions/VoxelSpacing10.000"
    tomo = "CanonicalTomogram" if name == "v1" else "Tomograms/100"
    assert f"{vs}/{tomo}/TS_07.mrc" in paths
    assert any(p.startswith(f"{vs}/{tomo}/TS_07.zarr/") for p in paths)
    assert ("TiltSeries/TS_07.mrc" if name == "v1" else "TiltSeries/100/TS_07.mrc") in paths
    photos = "KeyPhotos" if name == "v1" else "Images/100"
    assert f"{vs}/{photos}/key-photo-snapshot.png" in paths
    n_annotation_json = sum(
        1 for p in paths if "/Annotations/" in p and p.endswith(".json") and ".zarr/" not in p
    )
    assert n_annotation_json == 2
    with Portal.create(tmp_path / "fresh") as fresh:
        result = import_czportal(fresh, tmp_path / "first" / str(listing.dataset_id))
        assert (result.n_tomograms, result.n_annotations) == (1, 2)
        copy_entries(list_entity(fresh, "dataset", result.dataset_id, name), tmp_path / "second")
    assert_same_tree(tmp_path / "first", tmp_path / "second")
