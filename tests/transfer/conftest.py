"""A small but complete dataset, written straight into a portal root in the v1 layout.

Dataset 10000 holds a 2D classification run (``P1_J12``, extracted for real from a synthetic
cryoSPARC job) and a tomography run (``TS_001``) with a tilt series, one tomogram (MRC and a
small OME-Zarr folder, key photos, a Neuroglancer config) and two annotations: ribosome
points (ndjson) and a membrane mask (MRC and OME-Zarr). Rows and files are written directly,
as the tomography and annotation ingest write them, so these tests do not wait for them.

Metadata paths use every convention the importer and the layout converter must handle:
names relative to the JSON's folder (``mrc_files``, ``files[].path``), ``../`` paths
(``key_photo``) and paths relative to the data tree (``angle_list``, ``ground_truth_used``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from cryocurate import atomic
from cryocurate.catalog.models import (
    Annotation,
    AnnotationAuthor,
    AnnotationFile,
    AnnotationMethodType,
    AnnotationShape,
    AnnotationShapeType,
    Dataset,
    DatasetAuthor,
    DatasetFunding,
    Run,
    RunKind,
    SampleType,
    TiltSeries,
    Tomogram,
    TomogramProcessing,
    TomogramReconstructionMethod,
    TomogramVoxelSpacing,
)
from cryocurate.formats.png import write_png
from cryocurate.ingest.datasets import DatasetChoice, dataset_metadata
from cryocurate.ingest.extract import Extraction, run_metadata
from cryocurate.portal import Portal
from cryocurate.store import layout
from cryocurate.synth import synth_cryosparc

DATASET_ID = 10000
TOMO_RUN = "TS_001"
CLASS_RUN = "P1_J12"
VS = 10.0
TOMO_SHAPE_ZYX = (16, 24, 32)


@dataclass(frozen=True)
class Source:
    """A portal root holding the test dataset, and the ids a test needs."""

    root: Path
    dataset_id: int
    class_run_id: int
    tomo_run_id: int
    tomogram_id: int
    point_annotation_id: int
    mask_annotation_id: int


@pytest.fixture(scope="session")
def class_job(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("class-job")
    return synth_cryosparc(base / "J12", n_classes=4, box=32, n_particles=200, seed=7)


def _mrc(path: Path, data: np.ndarray, voxel: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(data)
        m.voxel_size = voxel


def _zarr(folder: Path, data: np.ndarray, levels: int = 2) -> None:
    """A minimal OME-Zarr v2 folder (metadata in dot-files, one raw chunk per level)."""
    folder.mkdir(parents=True)
    (folder / ".zgroup").write_text('{"zarr_format": 2}\n')
    datasets = [{"path": str(i)} for i in range(levels)]
    (folder / ".zattrs").write_text(json.dumps({"multiscales": [{"datasets": datasets}]}))
    for i in range(levels):
        level = data[:: 2**i, :: 2**i, :: 2**i]
        (folder / str(i)).mkdir()
        meta = {"zarr_format": 2, "shape": level.shape, "chunks": level.shape,
                "dtype": level.dtype.str, "compressor": None, "order": "C"}  # fmt: skip
        (folder / str(i) / ".zarray").write_text(json.dumps(meta))
        (folder / str(i) / "0.0.0").write_bytes(np.ascontiguousarray(level).tobytes())


def _json(path: Path, document: object) -> None:
    atomic.write_json(path, document, durable=False)


def build_source(root: Path, database_url: str | None, class_job: Path) -> Source:
    """Make the portal root ``root`` with dataset 10000 (see the module docstring)."""
    rng = np.random.default_rng(3)
    with Portal.create(root, database_url=database_url) as portal:
        data = portal.data_dir
        with portal.transaction() as session:
            dataset = Dataset(
                title="Ribosomes in situ",
                description="Test dataset",
                lab="Lab T",
                organism_name="Homo sapiens",
                organism_taxid=9606,
                sample_type=SampleType.cell,
                sample_preparation="FIB milling",
                related_database_entries="EMPIAR-10000",
                deposition_date=dt.date(2024, 1, 2),
                release_date=dt.date(2024, 2, 3),
                last_modified_date=dt.date(2024, 3, 4),
            )
            dataset.authors = [
                DatasetAuthor(name="Ada A", orcid="0000-0001", primary_author_status=True),
                DatasetAuthor(name="Bo B", author_list_order=1, corresponding_author_status=True),
            ]
            dataset.funding_sources = [DatasetFunding(funding_agency_name="NIH", grant_id="R01")]
            session.add(dataset)
        Extraction(portal, DatasetChoice(str(DATASET_ID)), workers=1).run([class_job])

        run_dir = layout.run_dir(data, DATASET_ID, TOMO_RUN)
        vs_dir = layout.voxel_spacing_dir(run_dir, VS)
        canonical = vs_dir / layout.CANONICAL_TOMOGRAM
        annotations = vs_dir / layout.ANNOTATIONS
        ts_dir = run_dir / layout.TILT_SERIES

        def rel(p: Path) -> str:
            return p.relative_to(data).as_posix()

        with portal.transaction() as session:
            dataset = session.get(Dataset, DATASET_ID)
            doc = dataset_metadata(dataset)
            doc["funding"] = [{"funding_agency_name": "NIH", "grant_id": "R01"}]
            _json(layout.dataset_dir(data, DATASET_ID) / layout.DATASET_METADATA, doc)

            run = Run(dataset=dataset, name=TOMO_RUN, kind=RunKind.tomography)
            spacing = TomogramVoxelSpacing(run=run, voxel_spacing=VS)
            session.add_all([run, spacing])
            session.flush()

            # tilt series
            _mrc(ts_dir / f"{TOMO_RUN}.mrc", rng.random((7, 24, 32), dtype=np.float32), 5.0)
            (ts_dir / f"{TOMO_RUN}.rawtlt").write_text(
                "".join(f"{a}\n" for a in range(-30, 31, 10))
            )
            session.add(
                TiltSeries(
                    run=run, mrc_file=rel(ts_dir / f"{TOMO_RUN}.mrc"),
                    angle_list=rel(ts_dir / f"{TOMO_RUN}.rawtlt"),
                    acceleration_voltage=300000, spherical_aberration_constant=2.7,
                    microscope_manufacturer="TFS", microscope_model="Krios",
                    camera_manufacturer="Falcon", camera_model="4i",
                    tilt_min=-30, tilt_max=30, tilt_range=60, tilt_step=10,
                    tilt_series_quality=4, pixel_spacing=5.0, size_x=32, size_y=24, size_z=7,
                )
            )  # fmt: skip
            _json(
                ts_dir / layout.TILT_SERIES_METADATA,
                {
                    "run_name": TOMO_RUN,
                    "microscope": {"manufacturer": "TFS", "model": "Krios"},
                    "microscope_optical_setup": {"energy_filter": "Selectris"},
                    "camera": {"manufacturer": "Falcon", "model": "4i"},
                    "acceleration_voltage": 300000,
                    "spherical_aberration_constant": 2.7,
                    "tilting_scheme": "dose-symmetric",
                    "tilt_axis": 84.5,
                    "tilt_step": 10,
                    "tilt_range": {"min": -30, "max": 30},
                    "total_flux": 120,
                    "data_acquisition_software": "Tomo5",
                    "tilt_series_quality": 4,
                    "pixel_spacing": 5.0,
                    "is_aligned": False,
                    "mrc_files": [f"{TOMO_RUN}.mrc"],
                    "angle_list": rel(ts_dir / f"{TOMO_RUN}.rawtlt"),
                },
            )

            # tomogram
            volume = rng.random(TOMO_SHAPE_ZYX, dtype=np.float32)
            _mrc(canonical / f"{TOMO_RUN}.mrc", volume, VS)
            _zarr(canonical / f"{TOMO_RUN}.zarr", volume)
            photos = vs_dir / layout.KEY_PHOTOS
            photos.mkdir(parents=True)
            write_png(photos / layout.KEY_PHOTO_SNAPSHOT, np.full((8, 8), 90, np.uint8))
            write_png(photos / layout.KEY_PHOTO_THUMBNAIL, np.full((4, 4), 90, np.uint8))
            _json(canonical / "neuroglancer_config.json", {"layers": [{"type": "image"}]})
            tomo = Tomogram(
                name=TOMO_RUN, run=run, tomogram_voxel_spacing=spacing,
                size_x=32, size_y=24, size_z=16, voxel_spacing=VS,
                reconstruction_method=TomogramReconstructionMethod.WBP,
                reconstruction_software="IMOD", processing=TomogramProcessing.raw,
                ctf_corrected=True, mrc_file=rel(canonical / f"{TOMO_RUN}.mrc"),
                omezarr_dir=rel(canonical / f"{TOMO_RUN}.zarr"),
                file_size_mrc=(canonical / f"{TOMO_RUN}.mrc").stat().st_size,
                key_photo_url=rel(photos / layout.KEY_PHOTO_SNAPSHOT),
                key_photo_thumbnail_url=rel(photos / layout.KEY_PHOTO_THUMBNAIL),
                scale_0_dimensions="32,24,16", scale_1_dimensions="16,12,8",
            )  # fmt: skip
            session.add(tomo)
            session.flush()
            _json(
                canonical / layout.TOMOGRAM_METADATA,
                {
                    "run_name": TOMO_RUN,
                    "tomogram_id": tomo.id,
                    "voxel_spacing": VS,
                    "size": {"z": 16, "y": 24, "x": 32},
                    "scales": [{"z": 16, "y": 24, "x": 32}, {"z": 8, "y": 12, "x": 16}],
                    "reconstruction_method": "WBP",
                    "reconstruction_software": "IMOD",
                    "processing": "raw",
                    "ctf_corrected": True,
                    "fiducial_alignment_status": "FIDUCIAL",
                    "offset": {"x": 0, "y": 0, "z": 0},
                    "omezarr_dir": f"{TOMO_RUN}.zarr",
                    "mrc_files": [f"{TOMO_RUN}.mrc"],
                    "key_photo": {
                        "snapshot": f"../{layout.KEY_PHOTOS}/{layout.KEY_PHOTO_SNAPSHOT}",
                        "thumbnail": f"../{layout.KEY_PHOTOS}/{layout.KEY_PHOTO_THUMBNAIL}",
                    },
                    "neuroglancer_config_path": "neuroglancer_config.json",
                },
            )

            # annotations: ribosome points (ground truth), membrane mask
            points = Annotation(
                run=run, annotation_method="template matching + curation",
                method_type=AnnotationMethodType.hybrid, ground_truth_status=True,
                object_id="GO:0022626", object_name="cytosolic ribosome", object_count=3,
                confidence_precision=87.5, confidence_recall=90.0, version="1.0",
                authors=[AnnotationAuthor(name="Ada A", primary_author_status=True)],
            )  # fmt: skip
            mask = Annotation(
                run=run, annotation_method="membrain-seg",
                method_type=AnnotationMethodType.automated, object_id="GO:0016020",
                object_name="membrane", object_count=1, version="1.0",
            )  # fmt: skip
            session.add_all([points, mask])
            session.flush()
            p_stem = layout.annotation_stem(points.id, points.object_name, "1.0")
            m_stem = layout.annotation_stem(mask.id, mask.object_name, "1.0")
            ndjson = annotations / f"{p_stem}_point.ndjson"
            ndjson.parent.mkdir(parents=True)
            ndjson.write_text(
                "".join(
                    json.dumps({"type": "point", "location": {"x": x, "y": y, "z": z}}) + "\n"
                    for x, y, z in [(1, 2, 3), (10.5, 11, 12), (30, 20, 15)]
                )
            )
            mask_mrc = annotations / f"{m_stem}_segmentationmask.mrc"
            mask_zarr = annotations / f"{m_stem}_segmentationmask.zarr"
            labels = (volume > 0.5).astype(np.int8)
            _mrc(mask_mrc, labels, VS)
            _zarr(mask_zarr, labels, levels=1)
            shape_p = AnnotationShape(annotation=points, shape_type=AnnotationShapeType.Point)
            shape_m = AnnotationShape(
                annotation=mask, shape_type=AnnotationShapeType.SegmentationMask
            )
            session.add_all(
                [
                    shape_p,
                    shape_m,
                    AnnotationFile(
                        annotation_shape=shape_p, tomogram_voxel_spacing=spacing,
                        format="ndjson", path=rel(ndjson), file_size=ndjson.stat().st_size,
                    ),
                    AnnotationFile(
                        annotation_shape=shape_m, tomogram_voxel_spacing=spacing,
                        format="mrc", path=rel(mask_mrc), file_size=mask_mrc.stat().st_size,
                    ),
                    AnnotationFile(
                        annotation_shape=shape_m, tomogram_voxel_spacing=spacing,
                        format="zarr", path=rel(mask_zarr), is_visualization_default=False,
                    ),
                ]
            )  # fmt: skip
            points.metadata_path = rel(annotations / f"{p_stem}.json")
            mask.metadata_path = rel(annotations / f"{m_stem}.json")
            mask.ground_truth_used = points.metadata_path
            for a, files in (
                (points, [("ndjson", f"{p_stem}_point.ndjson", "Point", True)]),
                (
                    mask,
                    [
                        ("mrc", f"{m_stem}_segmentationmask.mrc", "SegmentationMask", True),
                        ("zarr", f"{m_stem}_segmentationmask.zarr", "SegmentationMask", False),
                    ],
                ),
            ):
                _json(
                    data / a.metadata_path,
                    {
                        "annotation_object": {"id": a.object_id, "name": a.object_name},
                        "annotation_method": a.annotation_method,
                        "method_type": a.method_type.value,
                        "ground_truth_status": a.ground_truth_status,
                        "object_count": a.object_count,
                        "version": a.version,
                        "authors": [
                            {"name": au.name, "primary_author_status": True} for au in a.authors
                        ],
                        "confidence": {
                            "precision": a.confidence_precision,
                            "recall": a.confidence_recall,
                            "ground_truth_used": a.ground_truth_used,
                        },
                        "files": [
                            {"format": f, "path": p, "shape": s, "is_visualization_default": v}
                            for f, p, s, v in files
                        ],
                    },
                )
            precompute = vs_dir / "NeuroglancerPrecompute" / f"{p_stem}_point"
            precompute.mkdir(parents=True)
            (precompute / "info").write_text('{"@type": "neuroglancer_annotations_v1"}')
            _json(run_dir / layout.RUN_METADATA, run_metadata(run))
            result = Source(
                root=root,
                dataset_id=DATASET_ID,
                class_run_id=session.query(Run.id).filter(Run.name == CLASS_RUN).scalar(),
                tomo_run_id=run.id,
                tomogram_id=tomo.id,
                point_annotation_id=points.id,
                mask_annotation_id=mask.id,
            )
    return result


@pytest.fixture
def source(tmp_path: Path, database_url: str, class_job: Path) -> Source:
    """The test dataset in a fresh portal root, on SQLite and on PostgreSQL."""
    return build_source(tmp_path / "source", database_url, class_job)


@pytest.fixture
def sqlite_source(tmp_path: Path, class_job: Path) -> Source:
    """The test dataset in a fresh portal root on SQLite only."""
    return build_source(tmp_path / "source", None, class_job)


def tree_files(folder: Path) -> dict[str, Path]:
    """Every file under ``folder`` by POSIX relative path."""
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}


def sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def assert_same_tree(a: Path, b: Path) -> None:
    """Same relative paths; same bytes, except metadata JSON, compared as documents."""
    fa, fb = tree_files(a), tree_files(b)
    assert sorted(fa) == sorted(fb)
    for rel, pa in fa.items():
        pb = fb[rel]
        if rel.endswith(".json") and ".zarr/" not in rel:
            assert json.loads(pa.read_text()) == json.loads(pb.read_text()), rel
        else:
            assert pa.read_bytes() == pb.read_bytes(), rel


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
