"""A small catalog with known values, for the API tests and the client tests alike.

::

    Deposition 1 "Lab A 2024"
    10000 "Apoferritin, Lab A"   Homo sapiens, in_vitro, released 2024-03-01, deposition 1
        J1  class2d  3 classes, job (cryosparc); annotation "Ribosome" (capital R)
        J2  class2d  2 classes
    10001 "Ribosome 80S"          S. cerevisiae, cell, released 2024-06-15
        TS_01 tomography  ribosome (manual, ground truth, P 90), membrane (automated);
                          tilt series quality 4; voxel spacing 13.48 + tomogram;
                          ribosome points file (ndjson), metadata json
        TS_02 tomography  ribosome (automated, P 50), ribosome (manual); tilt series quality 2
        J7    class2d     no classes, no annotations
    10002 "Spliceosome 50%_test"  no organism, no sample type, no release date, lab "lab a"
        J3  class2d  1 class
    10003 "Membranes"             Homo sapiens, tissue, released 2025-01-01, no runs

Files are written into the data tree where the catalog says they are, so downloads have
something real to fetch.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from cryocurate.catalog import models as m
from cryocurate.portal import Portal

DATASETS = {"apo": 10000, "ribo": 10001, "splice": 10002, "membranes": 10003}
POINTS = b"".join(
    b'{"type": "orientedPoint", "location": {"x": %d, "y": 2, "z": 3}}\n' % i for i in range(400)
)


@dataclass
class Sample:
    root: Path
    datasets: dict[str, int] = field(default_factory=lambda: dict(DATASETS))
    runs: dict[str, int] = field(default_factory=dict)
    annotations: dict[str, int] = field(default_factory=dict)
    class_averages: list[int] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # name → path in the data tree


def _annotation(
    run: m.Run, name: str, method: m.AnnotationMethodType, **kw: object
) -> m.Annotation:
    a = m.Annotation(
        run=run,
        annotation_method=method.value,
        method_type=method,
        object_id="GO:0005840" if name.lower() == "ribosome" else "GO:0016020",
        object_name=name,
        **kw,
    )
    return a


def build_catalog(root: Path, database_url: str) -> Sample:
    """Make a portal root at ``root`` on ``database_url`` holding the catalog drawn above."""
    sample = Sample(root)
    with Portal.create(root, database_url=database_url) as portal, portal.transaction() as s:
        s.add(m.Deposition(id=1, title="Lab A 2024", deposition_date=dt.date(2024, 1, 10)))
        s.flush()
        apo = m.Dataset(
            title="Apoferritin, Lab A",
            lab="Lab A",
            organism_name="Homo sapiens",
            organism_taxid=9606,
            sample_type=m.SampleType.in_vitro,
            release_date=dt.date(2024, 3, 1),
            deposition_id=1,
            created_at=dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC),
        )
        ribo = m.Dataset(
            title="Ribosome 80S",
            lab="Lab B",
            organism_name="Saccharomyces cerevisiae",
            organism_taxid=4932,
            sample_type=m.SampleType.cell,
            release_date=dt.date(2024, 6, 15),
            created_at=dt.datetime(2024, 6, 15, 8, 30, tzinfo=dt.UTC),
        )
        splice = m.Dataset(
            title="Spliceosome 50%_test",
            lab="lab a",
            created_at=dt.datetime(2024, 9, 1, tzinfo=dt.UTC),
        )
        membranes = m.Dataset(
            title="Membranes",
            organism_name="Homo sapiens",
            sample_type=m.SampleType.tissue,
            release_date=dt.date(2025, 1, 1),
            created_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
        )
        for d in (apo, ribo, splice, membranes):
            s.add(d)
            s.flush()
        assert [apo.id, ribo.id, splice.id, membranes.id] == list(DATASETS.values())
        apo.authors = [
            m.DatasetAuthor(name="Ada", author_list_order=0, primary_author_status=True),
            m.DatasetAuthor(name="Bo", author_list_order=1, corresponding_author_status=True),
        ]

        runs = {
            "J1": m.Run(dataset=apo, name="J1", kind=m.RunKind.class2d),
            "J2": m.Run(dataset=apo, name="J2", kind=m.RunKind.class2d),
            "TS_01": m.Run(dataset=ribo, name="TS_01", kind=m.RunKind.tomography),
            "TS_02": m.Run(dataset=ribo, name="TS_02", kind=m.RunKind.tomography),
            "J7": m.Run(dataset=ribo, name="J7", kind=m.RunKind.class2d),
            "J3": m.Run(dataset=splice, name="J3", kind=m.RunKind.class2d),
        }
        s.add_all(runs.values())
        s.flush()
        sample.runs = {name: run.id for name, run in runs.items()}

        s.add(
            m.Class2DJob(
                run=runs["J1"],
                software="cryosparc",
                project_uid="P1",
                job_uid="J1",
                iteration=20,
                pixel_size_a=1.1,
                box_size=64,
                n_classes=3,
                n_particles=600,
                source_path="/data/P1/J1",
                input_files={},
                fingerprint="0" * 64,
                extracted_at=dt.datetime(2024, 3, 1, tzinfo=dt.UTC),
                cryocurate_version="0.1.0",
            )
        )
        classes = [
            ("J1", 0, 100, 8.5),
            ("J1", 1, 200, None),
            ("J1", 2, 300, 12.0),
            ("J2", 0, 50, 9.0),
            ("J2", 1, 60, 30.0),
            ("J3", 0, 10, 15.5),
        ]
        for run_name, index, count, resolution in classes:
            ca = m.ClassAverage(
                run=runs[run_name],
                class_index=index,
                particle_count=count,
                class_fraction=count / 600,
                resolution_a=resolution,
                pixel_size_a=1.1,
            )
            s.add(ca)
            s.flush()
            sample.class_averages.append(ca.id)

        ann = {
            "J1_Ribosome": _annotation(runs["J1"], "Ribosome", m.AnnotationMethodType.manual),
            "TS_01_ribosome": _annotation(
                runs["TS_01"],
                "ribosome",
                m.AnnotationMethodType.manual,
                ground_truth_status=True,
                confidence_precision=90.0,
                release_date=dt.date(2024, 6, 15),
            ),
            "TS_01_membrane": _annotation(
                runs["TS_01"], "membrane", m.AnnotationMethodType.automated
            ),
            "TS_02_ribosome_auto": _annotation(
                runs["TS_02"],
                "ribosome",
                m.AnnotationMethodType.automated,
                confidence_precision=50.0,
            ),
            "TS_02_ribosome_manual": _annotation(
                runs["TS_02"], "ribosome", m.AnnotationMethodType.manual
            ),
        }
        s.add_all(ann.values())
        s.flush()
        sample.annotations = {name: a.id for name, a in ann.items()}

        run_dir = f"{ribo.id}/TS_01"
        ts_dir = f"{run_dir}/Tomograms/VoxelSpacing13.480"
        points = (
            f"{ts_dir}/Annotations/{ann['TS_01_ribosome'].id}-ribosome-1.0_orientedpoint.ndjson"
        )
        meta = f"{ts_dir}/Annotations/{ann['TS_01_ribosome'].id}-ribosome-1.0.json"
        ann["TS_01_ribosome"].metadata_path = meta
        s.add(m.TiltSeries(run=runs["TS_01"], tilt_series_quality=4, tilt_min=-60, tilt_max=60))
        s.add(m.TiltSeries(run=runs["TS_02"], tilt_series_quality=2))
        spacing = m.TomogramVoxelSpacing(run=runs["TS_01"], voxel_spacing=13.48)
        s.add(spacing)
        s.flush()
        s.add(
            m.Tomogram(
                name="TS_01",
                run=runs["TS_01"],
                tomogram_voxel_spacing=spacing,
                size_x=64,
                size_y=64,
                size_z=32,
                voxel_spacing=13.48,
                reconstruction_method=m.TomogramReconstructionMethod.WBP,
            )
        )
        shape = m.AnnotationShape(
            annotation=ann["TS_01_ribosome"], shape_type=m.AnnotationShapeType.OrientedPoint
        )
        shape.annotation_files = [
            m.AnnotationFile(
                tomogram_voxel_spacing=spacing,
                format="ndjson",
                path=points,
                file_size=len(POINTS),
            )
        ]
        s.add(shape)

        data = portal.data_dir
        (data / points).parent.mkdir(parents=True, exist_ok=True)
        (data / points).write_bytes(POINTS)
        (data / meta).write_text('{"annotation_object": {"name": "ribosome"}}\n')
        (data / f"{ribo.id}/dataset_metadata.json").write_text('{"dataset_identifier": 10001}\n')
        sample.files = {"points": points, "metadata": meta}
    return sample
