"""The JSON API under /api/v1 and the filter language under it, on SQLite and PostgreSQL.

Requests go through the real app in-process (httpx's ASGI transport); the catalog is
``tests/client/sample.py``'s, built with the models on a real database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from cryocurate.catalog.filters import ENTITIES, parse_params
from cryocurate.web.app import create_app
from tests.client.sample import DATASETS, Sample, build_catalog

APO, RIBO, SPLICE, MEMBRANES = DATASETS.values()


class Api:
    """Sends real HTTP requests through the app, without a socket (from a thread of its own,
    as another test's Playwright may hold an event loop in this one)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://portal") as c:
                return await c.request(method, url, **kwargs)

        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, send()).result()

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def ok(self, url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        r = self.get(url) if body is None else self.post(url, json=body)
        assert r.status_code == 200, f"{url}: {r.status_code} {r.text}"
        return r.json()  # type: ignore[no-any-return]

    def ids(self, url: str, body: dict[str, Any] | None = None) -> list[int]:
        return [item["id"] for item in self.ok(url, body)["items"]]


@pytest.fixture
def sample(tmp_path, database_url) -> Sample:
    return build_catalog(tmp_path / "portal", database_url)


@pytest.fixture
def api(sample) -> Iterator[Api]:
    app = create_app(sample.root)
    try:
        yield Api(app)
    finally:
        app.state.portal.close()


def test_every_operator_on_every_kind_of_field(api, sample):
    run, ann, ca = sample.runs, sample.annotations, sample.class_averages
    cases: list[tuple[str, list[int]]] = [
        # equality, on strings, ints, enums, dates, bools
        ("datasets?organism_name=Homo sapiens", [APO, MEMBRANES]),
        ("datasets?organism_name__eq=Homo%20sapiens", [APO, MEMBRANES]),
        ("datasets?organism_name__neq=Homo sapiens", [RIBO]),  # NULL is neither: SQL's rule
        ("datasets?lab=Lab A", [APO]),
        ("datasets?organism_taxid=9606", [APO]),
        ("datasets?sample_type=cell", [RIBO]),
        ("datasets?release_date=2024-03-01", [APO]),
        ("datasets?deposition_id=1", [APO]),
        # order comparisons
        ("datasets?id__gt=10001", [SPLICE, MEMBRANES]),
        ("datasets?id__gte=10001", [RIBO, SPLICE, MEMBRANES]),
        ("datasets?id__lt=10001", [APO]),
        ("datasets?id__lte=10001", [APO, RIBO]),
        ("datasets?organism_taxid__gt=5000", [APO]),
        ("datasets?release_date__gte=2024-06-01", [RIBO, MEMBRANES]),
        ("datasets?release_date__lt=2024-06-15", [APO]),
        ("datasets?created_at__gte=2024-06-15T08:30:00Z", [RIBO, SPLICE, MEMBRANES]),
        ("datasets?created_at__lt=2024-06-15T10:30:00%2B02:00", [APO]),  # = 08:30 UTC
        ("datasets?created_at__gte=2024-09-01", [SPLICE, MEMBRANES]),  # a date: UTC midnight
        ("datasets?id__gte=10001&id__lte=10002", [RIBO, SPLICE]),
        ("datasets?id__gte=10000&id__gte=10002", [SPLICE, MEMBRANES]),  # repeated: AND-ed
        # lists
        ("datasets?id__in=10000,10002", [APO, SPLICE]),
        ("datasets?id__in=[10000, 10003]", [APO, MEMBRANES]),
        ("datasets?id__nin=10000,10002", [RIBO, MEMBRANES]),
        ("datasets?sample_type__in=cell,tissue", [RIBO, MEMBRANES]),
        # patterns: like is case-sensitive on both databases, ilike and contains are not
        ("datasets?title__like=Ribo%25", [RIBO]),
        ("datasets?title__like=ribo%25", []),
        ("datasets?title__ilike=ribo%25", [RIBO]),
        ("datasets?title__like=Membrane_", [MEMBRANES]),
        ("datasets?title__like=%25\\_test", [SPLICE]),  # \ escapes a wildcard
        ("datasets?organism_name__ilike=%25SAPIENS", [APO, MEMBRANES]),
        ("datasets?lab__ilike=lab a", [APO, SPLICE]),
        ("datasets?title__contains=LAB A", [APO]),
        ("datasets?title__contains=50%25_", [SPLICE]),  # % and _ are literal here
        ("datasets?sample_type__like=%25ell", [RIBO]),
        # nulls
        ("datasets?organism_name__is_null=true", [SPLICE]),
        ("datasets?organism_name__is_null=false", [APO, RIBO, MEMBRANES]),
        ("datasets?sample_type__is_null=1", [SPLICE]),
        ("datasets?deposition_id__is_null=no", [APO]),
        # other entities and kinds
        ("annotations?ground_truth_status=true", [ann["TS_01_ribosome"]]),
        ("annotations?confidence_precision__gte=60", [ann["TS_01_ribosome"]]),
        ("annotations?confidence_precision__lt=60", [ann["TS_02_ribosome_auto"]]),
        (
            "annotations?method_type=automated",
            sorted([ann["TS_01_membrane"], ann["TS_02_ribosome_auto"]]),
        ),
        (
            "annotations?object_name__in=ribosome,membrane&ground_truth_status=false",
            sorted(
                [ann["TS_01_membrane"], ann["TS_02_ribosome_auto"], ann["TS_02_ribosome_manual"]]
            ),
        ),
        ("class_averages?resolution_a__lte=9", [ca[0], ca[3]]),
        ("class_averages?resolution_a__is_null=true", [ca[1]]),
        ("class_averages?particle_count__gte=200", [ca[1], ca[2]]),
        ("runs?kind=tomography", [run["TS_01"], run["TS_02"]]),
        ("runs?name__like=J%25", sorted([run["J1"], run["J2"], run["J7"], run["J3"]])),
        ("tiltseries?tilt_series_quality__gte=3&tilt_min=-60", [1]),
        ("tomograms?reconstruction_method=WBP&voxel_spacing__gt=13", [1]),
    ]
    failures = []
    for url, expected in cases:
        got = api.ids(f"/api/v1/{url}")
        if got != expected:
            failures.append(f"{url}: got {got}, expected {expected}")
    assert not failures, "\n".join(failures)


def test_ground_truth_false_matches_rows_left_at_the_default(api, sample):
    ids = api.ids("/api/v1/annotations?ground_truth_status=false")
    assert len(ids) == 4 and sample.annotations["TS_01_ribosome"] not in ids


def test_nested_filters_go_both_ways_and_never_duplicate_rows(api, sample):
    run, ann = sample.runs, sample.annotations
    cases: list[tuple[str, list[int]]] = [
        # down: 3 matching annotations on 2 runs, still one dataset, counted once
        ("datasets?runs.annotations.object_name=ribosome", [RIBO]),
        ("datasets?runs.annotations.object_name__ilike=ribosome", [APO, RIBO]),
        ("datasets?runs.kind=class2d", [APO, RIBO, SPLICE]),
        ("datasets?runs.class_averages.resolution_a__gt=20", [APO]),
        ("datasets?runs.annotations.annotation_shapes.annotation_files.format=ndjson", [RIBO]),
        ("depositions?datasets.runs.class_averages.particle_count__gte=300", [1]),
        # conditions on one path constrain the same related row
        ("datasets?runs.name=J7&runs.annotations.object_name=ribosome", []),
        ("datasets?runs.name=TS_02&runs.annotations.method_type=manual", [RIBO]),
        ("datasets?runs.name=TS_01&runs.annotations.confidence_precision__lt=60", []),
        # up
        (
            "annotations?run.dataset.organism_name=Saccharomyces cerevisiae",
            sorted(v for k, v in ann.items() if k.startswith("TS_")),
        ),
        ("class_averages?run.dataset.lab=Lab A", sample.class_averages[:5]),
        ("tomograms?tomogram_voxel_spacing.run.name=TS_01", [1]),
        ("annotation_files?annotation_shape.annotation.run.dataset.id=10001", [1]),
        ("dataset_authors?dataset.title__contains=apoferritin", [1, 2]),
        # up then down again
        ("runs?dataset.runs.name=J7", [run["TS_01"], run["TS_02"], run["J7"]]),
    ]
    failures = []
    for url, expected in cases:
        page = api.ok(f"/api/v1/{url}")
        got = [item["id"] for item in page["items"]]
        if got != expected or page["total"] != len(expected):
            failures.append(f"{url}: got {got} (total {page['total']}), expected {expected}")
    assert not failures, "\n".join(failures)

    # The JSON form adds _and/_or/_not and "has any".
    query = "/api/v1/datasets/query"
    separate_runs = {
        "_and": [{"runs": {"name": "J7"}}, {"runs": {"annotations": {"object_name": "ribosome"}}}]
    }
    assert api.ids(query, {"where": separate_runs}) == [RIBO]
    either = {"_or": [{"organism_name": {"_is_null": True}}, {"sample_type": "cell"}]}
    assert api.ids(query, {"where": either}) == [RIBO, SPLICE]
    assert api.ids(query, {"where": {"_not": {"runs": {}}}}) == [MEMBRANES]
    assert api.ids(query, {"where": {"runs": {}}}) == [APO, RIBO, SPLICE]
    assert api.ids(query, {"where": {"_or": []}}) == []
    nested = {"runs": {"annotations": {"object_name": {"_eq": "ribosome"}}}, "id": {"_gte": 1}}
    assert api.ids(query, {"where": nested}) == [RIBO]


def test_ordering_paging_and_totals(api, sample):
    base = "/api/v1/datasets"
    assert api.ids(f"{base}?order_by=-release_date") == [MEMBRANES, RIBO, APO, SPLICE]
    assert api.ids(f"{base}?order_by=release_date") == [APO, RIBO, MEMBRANES, SPLICE]
    assert api.ids(f"{base}?order_by=organism_name,-id") == [MEMBRANES, APO, RIBO, SPLICE]
    assert api.ids(f"{base}?order_by=organism_name&order_by=-id") == [MEMBRANES, APO, RIBO, SPLICE]
    body = {"order_by": [{"organism_name": "desc"}, "id"]}
    assert api.ids(f"{base}/query", body) == [RIBO, APO, MEMBRANES, SPLICE]

    url = "/api/v1/class_averages?order_by=-particle_count&limit=2"
    full = api.ids("/api/v1/class_averages?order_by=-particle_count")
    pages = [api.ok(f"{url}&offset={offset}") for offset in (0, 2, 4, 6)]
    assert [p["total"] for p in pages] == [6, 6, 6, 6]
    assert [(p["limit"], p["offset"]) for p in pages] == [(2, 0), (2, 2), (2, 4), (2, 6)]
    assert [len(p["items"]) for p in pages] == [2, 2, 2, 0]
    assert [i["id"] for p in pages for i in p["items"]] == full
    assert [i["particle_count"] for p in pages for i in p["items"]] == [300, 200, 100, 60, 50, 10]
    empty = api.ok("/api/v1/class_averages?limit=0&run.name=J1")
    assert empty == {"items": [], "total": 3, "limit": 0, "offset": 0}
    assert api.ok("/api/v1/runs")["limit"] == 100  # the default
    # deep pages need not pay for counting every match
    uncounted = api.ok(f"{url}&offset=2&count=false")
    assert uncounted["total"] is None
    assert [i["id"] for i in uncounted["items"]] == full[2:4]
    assert api.ok(f"{base}/query", {"count": False})["total"] is None
    assert api.get(base).headers["server-timing"].startswith("app;dur=")


def test_post_query_and_get_agree(api):
    flat = api.ok("/api/v1/runs?dataset.organism_name__ilike=%25cerev%25&order_by=-name&limit=2")
    spec = {
        "where": {"dataset": {"organism_name": {"_ilike": "%cerev%"}}},
        "order_by": ["-name"],
        "limit": 2,
    }
    assert api.ok("/api/v1/runs/query", spec) == flat
    assert [i["name"] for i in flat["items"]] == ["TS_02", "TS_01"] and flat["total"] == 3


def test_items_are_the_scalar_fields_as_json(api):
    item = api.ok(f"/api/v1/datasets/{APO}")
    assert set(item) == set(ENTITIES["datasets"].fields)
    assert item["release_date"] == "2024-03-01"
    assert item["created_at"] == "2024-03-01T12:00:00+00:00"  # UTC on both databases
    assert item["sample_type"] == "in_vitro" and item["organism_taxid"] == 9606
    job = api.ok("/api/v1/class2d_jobs?software=cryosparc")["items"][0]
    assert job["input_files"] == {} and job["run_id"] == job["run_id"]


def test_include_embeds_related_rows_or_ids_in_one_query_each(api, sample):
    statements: list[str] = []
    sa.event.listen(
        api.app.state.portal.engine,
        "before_cursor_execute",
        lambda _conn, _cur, statement, *_: statements.append(statement),
    )
    page = api.ok("/api/v1/runs?include=dataset,annotations.id&include=class2d_job")
    assert len(statements) == 5  # the page, its count, one per relationship
    by_name = {run["name"]: run for run in page["items"]}
    assert by_name["TS_01"]["dataset"]["title"] == "Ribosome 80S"
    assert by_name["TS_02"]["annotations"] == sorted(
        [sample.annotations["TS_02_ribosome_auto"], sample.annotations["TS_02_ribosome_manual"]]
    )
    assert by_name["J7"]["annotations"] == [] and by_name["J7"]["class2d_job"] is None
    assert by_name["J1"]["class2d_job"]["software"] == "cryosparc"

    apo = api.ok(f"/api/v1/datasets?id={APO}&include=runs,authors,deposition")["items"][0]
    assert [r["name"] for r in apo["runs"]] == ["J1", "J2"]
    assert [a["name"] for a in apo["authors"]] == ["Ada", "Bo"]
    assert apo["deposition"]["title"] == "Lab A 2024"
    splice = api.ok(f"/api/v1/datasets/{SPLICE}?include=deposition,runs.id")
    assert splice["deposition"] is None and splice["runs"] == [sample.runs["J3"]]


def test_errors_share_one_envelope(api):
    cases: list[tuple[str, str, Any, int, list[str]]] = [
        ("GET", "/api/v1/datasets?colour=red", None, 400, ["'colour'", "organism_name", "runs"]),
        ("GET", "/api/v1/datasets?runs.colour=red", None, 400, ["'runs.colour'", "kind"]),
        ("GET", "/api/v1/datasets?runs=3", None, 400, ["relationship", "name"]),
        ("GET", "/api/v1/datasets?id__like=1%25", None, 400, ["_like", "int"]),
        ("GET", "/api/v1/datasets?id__near=3", None, 400, ["'near'", "gte"]),
        ("GET", "/api/v1/datasets?id=abc", None, 400, ["'abc'", "int"]),
        ("GET", "/api/v1/datasets?release_date=2024-13-01", None, 400, ["release_date"]),
        ("GET", "/api/v1/datasets?sample_type=blob", None, 400, ["in_vitro", "tissue"]),
        ("GET", "/api/v1/datasets?title__is_null=maybe", None, 400, ["true or false"]),
        ("GET", "/api/v1/datasets?limit=5000", None, 400, ["limit"]),
        ("GET", "/api/v1/datasets?offset=-1", None, 400, ["offset"]),
        ("GET", "/api/v1/datasets?order_by=colour", None, 400, ["'colour'"]),
        ("GET", "/api/v1/datasets?include=colour", None, 400, ["colour", "runs"]),
        ("GET", "/api/v1/datasets/99", None, 404, ["99"]),
        ("GET", "/api/v1/datasets/abc", None, 400, ["ident"]),
        ("POST", "/api/v1/datasets/query", {"where": []}, 400, ["where"]),
        ("POST", "/api/v1/datasets/query", {"where": {"id": {"_in": 3}}}, 400, ["list"]),
        ("POST", "/api/v1/datasets/query", {"where": {"_xor": []}}, 400, ["_xor"]),
        ("POST", "/api/v1/datasets/query", {"where": {"_and": {}}}, 400, ["_and"]),
        ("POST", "/api/v1/datasets/query", {"order_by": [{"id": "up"}]}, 400, ["up"]),
        ("POST", "/api/v1/datasets/query", {"limit": "x"}, 400, ["limit"]),
        (
            "POST",
            "/api/v1/datasets/query",
            {"where": {"runs": {"annotations": {"object_count": {"_gt": "many"}}}}},
            400,
            ["runs.annotations.object_count", "'many'"],
        ),
    ]
    cases.append(("POST", "/api/v1/runs/query", b"{not json", 400, ["body", "JSON"]))
    for method, url, body, status, words in cases:
        if isinstance(body, bytes):
            r = api.request(method, url, content=body, headers={"content-type": "application/json"})
        else:
            r = (
                api.request(method, url, json=body)
                if body is not None
                else api.request(method, url)
            )
        assert r.status_code == status, f"{url} {body}: {r.status_code} {r.text}"
        data = r.json()
        assert set(data) == {"ok", "error", "status"}, data
        assert data["ok"] is False and data["status"] == status, data
        for word in words:
            assert word in data["error"], f"{url} {body}: {word!r} not in {data['error']!r}"


def test_openapi_documents_every_entity(api):
    spec = api.ok("/openapi.json")
    paths = spec["paths"]
    schema = api.ok("/api/v1/schema")
    assert [e["plural"] for e in schema["entities"]] == list(ENTITIES)
    for plural in ENTITIES:
        assert "get" in paths[f"/api/v1/{plural}"], plural
        assert "post" in paths[f"/api/v1/{plural}/query"], plural
        assert "get" in paths[f"/api/v1/{plural}/{{ident}}"], plural
    listing = paths["/api/v1/datasets"]["get"]
    assert "organism_name" in listing["description"] and "runs" in listing["description"]
    assert {p["name"] for p in listing["parameters"]} >= {"limit", "offset", "order_by", "include"}
    assert "organism_name" in spec["components"]["schemas"]["Dataset"]["properties"]
    runs = next(e for e in schema["entities"] if e["name"] == "Run")
    dataset = next(r for r in runs["relationships"] if r["name"] == "dataset")
    assert dataset == {
        "name": "dataset",
        "target": "Dataset",
        "many": False,
        "local": "dataset_id",
        "remote": "id",
    }


def test_flat_parameters_become_a_spec():
    params = [
        ("runs.annotations.object_name", "ribosome"),
        ("runs.name__ilike", "ts%"),
        ("id__in", "1, 2,3"),
        ("id__gte", "3"),
        ("id__gte", "4"),
        ("limit", "5"),
        ("order_by", "-id"),
    ]
    assert parse_params(params) == {
        "runs": {"annotations": {"object_name": {"_eq": "ribosome"}}, "name": {"_ilike": "ts%"}},
        "id": {"_in": ["1", "2", "3"], "_gte": "3"},
        "_and": [{"id": {"_gte": "4"}}],
    }
