"""The Python client against a live ``cryocurate serve`` on loopback, on SQLite and PostgreSQL.

Requests are counted with httpx's own event hooks on the client's real connection, to show
that relationships load once per page, not once per object.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import zipfile

import pytest

from cryocurate.client import (
    Annotation,
    APIError,
    ClassAverage,
    Client,
    Dataset,
    Filter,
    Model,
    Run,
    Tomogram,
)
from cryocurate.client._codegen import MODELS_FILE, render
from cryocurate.client._downloads import fetch
from cryocurate.web import api
from tests.client.sample import DATASETS, POINTS, Sample, build_catalog

APO, RIBO, SPLICE, MEMBRANES = DATASETS.values()


def ids(objects: list[Model]) -> list[int]:
    return [o.id for o in objects]  # type: ignore[attr-defined]


@pytest.fixture
def served(tmp_path, database_url, live_server) -> tuple[Sample, str]:
    sample = build_catalog(tmp_path / "portal", database_url)
    argv = [sys.executable, "-m", "cryocurate", "serve", str(sample.root), "--port"]
    url = live_server(lambda port: [*argv, str(port)])
    return sample, str(url)


def test_find_filters_like_the_cz_client(served):
    sample, url = served
    runs = sample.runs
    plus_two = dt.timezone(dt.timedelta(hours=2))
    ribosome = Dataset.runs.annotations.object_name == "ribosome"
    with Client(url) as client:
        cases: list[tuple[type[Model], list[Filter], list[int]]] = [
            (Dataset, [ribosome], [RIBO]),
            (Dataset, [Dataset.runs.annotations.object_name.ilike("ribosome")], [APO, RIBO]),
            (Dataset, [Dataset.organism_name != "Homo sapiens"], [RIBO]),
            (Dataset, [Dataset.id > 10001], [SPLICE, MEMBRANES]),
            (Dataset, [Dataset.id >= 10001, Dataset.id <= 10002], [RIBO, SPLICE]),
            (Dataset, [Dataset.id < 10001], [APO]),
            (Dataset, [Dataset.title.like("Ribo%")], [RIBO]),
            (Dataset, [Dataset.title.like("ribo%")], []),
            (Dataset, [Dataset.title.contains("50%_")], [SPLICE]),
            (Dataset, [Dataset.id._in([10000, 10002])], [APO, SPLICE]),
            (Dataset, [Dataset.id.not_in([10000, 10002])], [RIBO, MEMBRANES]),
            (Dataset, [Dataset.organism_name.is_null(True)], [SPLICE]),
            (Dataset, [Dataset.organism_name.is_null(False)], [APO, RIBO, MEMBRANES]),
            (Dataset, [Dataset.sample_type == "cell"], [RIBO]),
            (Dataset, [Dataset.release_date >= dt.date(2024, 6, 1)], [RIBO, MEMBRANES]),
            (
                Dataset,
                [Dataset.created_at < dt.datetime(2024, 6, 15, 10, 30, 0, 0, plus_two)],
                [APO],
            ),
            # the CZ client's own examples
            (
                Annotation,
                [Annotation.run.dataset_id == RIBO, Annotation.ground_truth_status == True],  # noqa: E712
                [sample.annotations["TS_01_ribosome"]],
            ),
            (Tomogram, [Tomogram.tomogram_voxel_spacing.run.name == "TS_01"], [1]),
            # a list merges (same run); & keeps the conditions apart (any runs)
            (Dataset, [Dataset.runs.name == "J7", ribosome], []),
            (Dataset, [(Dataset.runs.name == "J7") & ribosome], [RIBO]),
            (
                Dataset,
                [(Dataset.sample_type == "cell") | Dataset.organism_name.is_null()],
                [RIBO, SPLICE],
            ),
            (Dataset, [~Dataset.runs.exists()], [MEMBRANES]),
            (Run, [Run.dataset.runs.name == "J7"], [runs["TS_01"], runs["TS_02"], runs["J7"]]),
        ]
        failures = []
        for model, filters, expected in cases:
            got = ids(model.find(client, filters))
            if got != expected:
                failures.append(
                    f"{model.__name__} {[f.spec for f in filters]}: {got} != {expected}"
                )
        assert not failures, "\n".join(failures)

        ordered = Dataset.find(client, order_by=[Dataset.organism_name, Dataset.id.desc()])
        assert ids(ordered) == [MEMBRANES, APO, RIBO, SPLICE]
        assert ids(Dataset.find(client, order_by="-release_date")) == [MEMBRANES, RIBO, APO, SPLICE]


def test_get_by_id_count_to_dict_and_relationships(served):
    sample, url = served
    with Client(url) as client:
        apo = Dataset.get_by_id(client, APO)
        assert apo is not None and apo.title == "Apoferritin, Lab A"
        assert apo.release_date == dt.date(2024, 3, 1)
        assert apo.created_at == dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)
        assert apo.to_dict()["organism_taxid"] == 9606 and "runs" not in apo.to_dict()
        assert Dataset.get_by_id(client, 99) is None

        assert Dataset.count(client) == 4
        assert Dataset.count(client, [Dataset.runs.kind == "class2d"]) == 3
        ribosome = [Annotation.object_name == "ribosome"]
        assert Annotation.count(client, ribosome) == len(Annotation.find(client, ribosome)) == 3

        runs = apo.runs
        assert [r.name for r in runs] == ["J1", "J2"] and apo.runs is runs  # cached
        assert [a.name for a in apo.authors] == ["Ada", "Bo"]
        assert apo.deposition is not None and apo.deposition.title == "Lab A 2024"
        j1 = runs[0]
        assert j1.dataset.id == APO
        assert j1.class2d_job is not None and j1.class2d_job.software == "cryosparc"
        assert [c.particle_count for c in j1.class_averages] == [100, 200, 300]
        assert j1.class_averages[0].run.name == "J1"
        splice = Dataset.get_by_id(client, SPLICE)
        assert splice is not None and splice.deposition is None
        ts01 = Run.get_by_id(client, sample.runs["TS_01"])
        assert ts01 is not None
        files = [
            f for a in ts01.annotations for s in a.annotation_shapes for f in s.annotation_files
        ]
        assert [f.path for f in files] == [sample.files["points"]]
        assert files[0].tomogram_voxel_spacing.voxel_spacing == 13.48

        with pytest.raises(TypeError, match=r"relationship to Dataset.*organism_name"):
            _ = Run.dataset == 1
        with pytest.raises(AttributeError, match="no field or relationship 'colour'"):
            _ = Dataset.runs.colour
        with pytest.raises(APIError, match="unknown field 'colour'") as err:
            Dataset.find(client, [{"colour": {"_eq": 1}}])
        assert err.value.status == 400
        with pytest.raises(AttributeError, match="read-only"):
            apo.title = "x"  # type: ignore[misc]
        with pytest.raises(TypeError, match="combine filters"):
            bool(Dataset.id == 1)


def test_paging_across_page_boundaries_and_batched_relationships(served):
    sample, url = served
    all_runs = sorted(sample.runs.values())
    with Client(url, page_size=2) as client:
        paths: list[str] = []
        client.http.event_hooks["request"].append(lambda request: paths.append(request.url.path))

        runs = Run.find(client)
        assert ids(runs) == all_runs and len(paths) == 3  # 6 runs, 2 per page

        paths.clear()
        titles = [run.dataset.title for run in runs]
        assert titles[:2] == ["Apoferritin, Lab A"] * 2 and titles[-1] == "Spliceosome 50%_test"
        assert paths == ["/api/v1/datasets/query"] * 3  # one per page of runs, not per run
        paths.clear()
        assert [run.dataset.title for run in runs] == titles and paths == []  # cached

        paths.clear()
        some = Run.find(client, order_by="-id", limit=3, offset=1)
        assert ids(some) == sorted(all_runs, reverse=True)[1:4] and len(paths) == 2
        top = ClassAverage.find(client, order_by="-particle_count", limit=5)
        assert [c.particle_count for c in top] == [300, 200, 100, 60, 50]
        assert ids(list(Run.find_iter(client, [Run.kind == "class2d"]))) == ids(
            Run.find(client, [Run.kind == "class2d"])
        )
        assert Run.find(client, limit=0) == []

        # A relationship whose rows span several pages is fetched whole.
        first_page = Dataset.find(client, limit=2)
        paths.clear()
        assert [r.name for r in first_page[1].runs] == ["TS_01", "TS_02", "J7"]
        assert [r.name for r in first_page[0].runs] == ["J1", "J2"]
        assert len(paths) == 3  # 5 runs of both datasets, 2 per page

    with Client(url) as client:
        runs = Run.find(client)
        paths = []
        client.http.event_hooks["request"].append(lambda request: paths.append(request.url.path))
        counts = {run.name: len(run.annotations) for run in runs}
        assert counts == {"J1": 1, "J2": 0, "TS_01": 2, "TS_02": 2, "J7": 0, "J3": 0}
        assert len(paths) == 1


def test_generated_models_match_the_server_schema():
    """If this fails, a model changed: run ``python -m cryocurate.client._codegen URL``."""
    assert render(api.schema()) == MODELS_FILE.read_text(encoding="utf-8")


def test_the_client_imports_nothing_of_the_server():
    code = """
import sys, cryocurate.client
server = {"sqlalchemy", "fastapi", "starlette", "alembic", "uvicorn"}
ours = {"cryocurate.catalog", "cryocurate.web", "cryocurate.portal", "cryocurate.cli"}
print(sorted(m for m in sys.modules
             if m.split(".")[0] in server or ".".join(m.split(".")[:2]) in ours))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_downloads_land_at_portal_paths_skip_complete_files_and_resume(served, tmp_path):
    sample, url = served
    dest = tmp_path / "dl"
    points, meta = (dest / sample.files[k] for k in ("points", "metadata"))
    with Client(url) as client:
        annotation = Annotation.get_by_id(client, sample.annotations["TS_01_ribosome"])
        assert annotation is not None
        paths = annotation.download(dest)
        assert sorted(paths) == sorted([points, meta, dest / f"{RIBO}/dataset_metadata.json"])
        assert points.read_bytes() == POINTS
        assert annotation.download(dest, format="mrc") == []
        assert annotation.download(dest, shape="Point") == []
        assert annotation.download_metadata(dest) == [meta, dest / f"{RIBO}/dataset_metadata.json"]

        sent: list[tuple[str, str, str | None]] = []
        client.http.event_hooks["request"].append(
            lambda r: sent.append((r.method, r.url.path, r.headers.get("range")))
        )
        before = points.stat().st_mtime_ns
        assert points in annotation.download(dest, format="ndjson", shape="OrientedPoint")
        assert points.stat().st_mtime_ns == before  # same size: skipped
        assert not [s for s in sent if s[0] == "GET" and s[1].startswith("/files/")]

        # Interrupted: a .part of the first 1000 bytes is resumed with a Range request.
        single = tmp_path / "single"
        single.mkdir()
        part = single / (points.name + ".part")
        part.write_bytes(POINTS[:1000])
        sent.clear()
        ndjson = annotation.annotation_shapes[0].annotation_files[0]
        assert ndjson.download(single) == [single / points.name]
        assert (single / points.name).read_bytes() == POINTS and not part.exists()
        assert ("GET", f"/files/{sample.files['points']}", "bytes=1000-") in sent

        # A stale .part longer than the file, and a wrong-sized copy, are replaced.
        part.write_bytes(b"x" * (len(POINTS) + 5))
        (single / points.name).write_bytes(b"short")
        ndjson.download(single)
        assert (single / points.name).read_bytes() == POINTS

        with pytest.raises(APIError) as err:
            fetch(client, "/files/nothing/here.txt", tmp_path / "here.txt")
        assert err.value.status == 404


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_run_and_dataset_download_everything_and_zip(served, tmp_path):
    sample, url = served
    dest = tmp_path / "dl"
    with Client(url) as client:
        run = Run.get_by_id(client, sample.runs["TS_01"])
        assert run is not None
        paths = run.download_everything(dest)
        assert dest / sample.files["points"] in paths
        assert (dest / sample.files["points"]).read_bytes() == POINTS
        assert all(p.is_relative_to(dest / str(RIBO)) for p in paths)

        dataset = Dataset.get_by_id(client, RIBO)
        assert dataset is not None
        assert set(paths) <= set(dataset.download_everything(dest))

        archive = run.download_zip(tmp_path)
        assert archive == tmp_path / f"run-{run.id}.zip"
        with zipfile.ZipFile(archive) as zf:
            assert zf.read(sample.files["points"]) == POINTS
        before = archive.stat().st_mtime_ns
        run.download_zip(tmp_path)
        assert archive.stat().st_mtime_ns == before  # complete: skipped
