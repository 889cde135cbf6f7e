"""Grade annotations of a running campaign, looked for as an outsider would (issue #11, finding
8): on a served portal, every page, JSON twin and download that lists annotations, their
authors or counts is asked for them, anonymously and as the *other* labeller, and none may give
away a trace (a labeller's name, a count, the object "2D class average quality" in the facets,
a zip). A reviewer still sees them all. Once the campaign is closed, its consensus is public
(the same routes show it to everyone) and the labellers' grades are still not.

The rule is :mod:`cryocurate.grading.access`'s; these tests check that each route applies it.
"""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from cryocurate.catalog.models import (
    Annotation,
    AnnotationFile,
    AnnotationShape,
    AnnotationShapeType,
    Campaign,
    Dataset,
    GradeAnnotation,
)
from cryocurate.portal import Portal
from tests.grading.portal import LABELLERS, PASSWORD, REVIEWER
from tests.web.graded import build_graded_portal

OBJECT = "2D class average quality"
LENA, LARS = (email.split("@")[0] for email in LABELLERS)  # their public names
CAMPAIGN = "Spring 2D"


@pytest.fixture
def served(tmp_path, database_url, live_server):
    graded = build_graded_portal(tmp_path, database_url, closed=False)  # running
    url = live_server(
        [sys.executable, "-m", "cryocurate", "serve", str(graded.root), "--port", "{port}"],
        timeout=60,
    )  # fmt: skip
    return str(url), graded


def _client(url: str, email: str | None = None) -> httpx.Client:
    c = httpx.Client(base_url=url, timeout=60, follow_redirects=False)
    if email is not None:
        page = c.get("/login").text
        token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        r = c.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token})
        assert r.status_code == 303, r.text
    return c


def _grade_annotations(root: Path) -> dict[int, str | None]:
    """Grade annotation id → its labeller's public name (None: the consensus)."""
    with Portal.open(root) as p, p.transaction() as s:
        rows = s.execute(sa.select(GradeAnnotation.annotation_id, GradeAnnotation.user_id))
        names = {}
        for annotation_id, user_id in rows:
            names[annotation_id] = None if user_id is None else _owner(s, annotation_id)
        return names


def _owner(s, annotation_id: int) -> str:
    (author,) = s.get(Annotation, annotation_id).authors
    return author.name


def _close(root: Path, campaign_id: int) -> None:
    with Portal.open(root) as p, p.transaction() as s:
        s.get(Campaign, campaign_id).closed = True


def _deposition_ids(root: Path) -> list[int]:
    with Portal.open(root) as p, p.transaction() as s:
        return sorted(
            set(
                s.scalars(
                    sa.select(Dataset.deposition_id).where(Dataset.deposition_id.is_not(None))
                )
            )
        )


def _browse(c: httpx.Client, **params: str) -> dict:
    r = c.get("/.json", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def _facet_values(answer: dict) -> set[str]:
    return {v["value"] for values in answer["result"]["facets"].values() for v in values}


def _traces(c: httpx.Client, graded, shown: set[int], hidden: set[int], names: set[str]) -> None:
    """What ``c`` finds of the grade annotations: exactly ``shown``, none of ``hidden``, no
    author in ``names``; counts on pages agree with what it may see."""
    first = graded.run_ids[0]
    listed = {a["id"] for a in c.get("/api/v1/annotations?limit=1000").json()["items"]}
    assert listed & (shown | hidden) == shown
    authors = {a["name"] for a in c.get("/api/v1/annotation_authors?limit=1000").json()["items"]}
    assert not authors & names
    run = c.get(f"/runs/{first}.json").json()
    assert {a["id"] for a in run["annotations"]} & (shown | hidden) <= shown
    for ident in hidden:
        for suffix in (".zip", ".json", ".zip?layout=v2", ".json?layout=v2"):
            r = c.get(f"/download/annotation/{ident}{suffix}")
            assert r.status_code == 404, (ident, suffix, r.status_code)
        assert c.head(f"/download/annotation/{ident}.zip").status_code == 404
        assert c.get(f"/api/v1/annotations/{ident}").status_code == 404
    for ident in shown:
        r = c.get(f"/download/annotation/{ident}.zip")
        assert r.status_code == 200 and r.content[:2] == b"PK"
        assert c.get(f"/download/annotation/{ident}.json").status_code == 200
    pages = [
        c.get("/").text,
        c.get("/?format=json").text,
        c.get("/", headers={"Accept": "application/json"}).text,
        c.get("/index.json").text,
        c.get(f"/datasets/{graded.dataset_id}").text,
        c.get(f"/datasets/{graded.dataset_id}.json").text,
        c.get(f"/runs/{first}").text,
        *(c.get(f"/depositions/{d}.json").text for d in _deposition_ids(graded.root)),
    ]
    for text in pages:
        for name in names:
            assert f'"{name}"' not in text and f">{name}<" not in text, name


def _public_counts(c: httpx.Client, graded) -> tuple[bool, int, int]:
    """What the browse page and the dataset page say of the grade annotations: whether the
    object is a facet value, how many datasets searching for it finds, the dataset's count."""
    facets = _facet_values(_browse(c))
    found = _browse(c, q=f'"{OBJECT.split(" ", 1)[1]}"')["result"]["total"]
    by_object = _browse(c, object=OBJECT)["result"]["total"]
    assert found == by_object
    dataset = c.get(f"/datasets/{graded.dataset_id}.json").json()
    objects = {o for run in dataset["runs"] for o in run["objects"]}
    assert (OBJECT in objects) == (dataset["n_annotations"] > 0)
    return OBJECT in facets, found, dataset["n_annotations"]


def test_a_running_campaigns_grades_leave_no_trace_but_for_those_the_rule_admits(served):
    url, graded = served
    owners = _grade_annotations(graded.root)
    consensus = {a for a, who in owners.items() if who is None}
    lenas = {a for a, who in owners.items() if who == LENA}
    larss = {a for a, who in owners.items() if who == LARS}
    assert consensus and lenas and larss
    everything = set(owners)

    nobody, lars, reviewer = _client(url), _client(url, LABELLERS[1]), _client(url, REVIEWER)
    # The attack: an anonymous visitor, then the other labeller, looking everywhere.
    _traces(nobody, graded, set(), everything, {LENA, LARS})
    assert _public_counts(nobody, graded) == (False, 0, 0)
    assert OBJECT not in nobody.get("/").text
    assert OBJECT not in nobody.get(f"/datasets/{graded.dataset_id}").text
    assert CAMPAIGN not in nobody.get(f"/runs/{graded.run_ids[0]}").text
    cid = graded.campaign_id
    for path in (
        f"/campaigns/{cid}.json", f"/campaigns/{cid}/overview.json",
        f"/campaigns/{cid}/agreement.json", f"/campaigns/{cid}/agreement.csv",
        f"/api/v1/campaigns/{cid}", f"/api/v1/campaigns/{cid}/progress", "/api/v1/campaigns",
    ):  # fmt: skip
        r = nobody.get(path, headers={"Accept": "application/json"})
        assert r.status_code in (401, 403, 404), (path, r.status_code)
        assert LENA not in r.text and CAMPAIGN not in r.text, path
    home = nobody.get("/home.json")
    assert LENA not in home.text and CAMPAIGN not in home.text
    _traces(lars, graded, larss, lenas | consensus, {LENA})
    # Browse pages count what an anonymous visitor sees, for everyone (one cached summary).
    assert _public_counts(lars, graded)[:2] == (False, 0)
    assert _public_counts(reviewer, graded)[:2] == (False, 0)

    # Those the rule admits: the reviewer sees every grade annotation, on every route.
    _traces(reviewer, graded, everything, set(), set())
    n_reviewer = reviewer.get(f"/datasets/{graded.dataset_id}.json").json()["n_annotations"]
    first_run = {a for a in everything if _run_of(graded.root, a) == graded.run_ids[0]}
    assert n_reviewer == len(first_run)

    # Closed: the consensus is published like any annotation; the labellers' grades are not.
    _close(graded.root, graded.campaign_id)
    _traces(nobody, graded, consensus, lenas | larss, {LENA, LARS})
    _traces(lars, graded, larss | consensus, lenas, {LENA})
    in_facets, found, n_public = _public_counts(nobody, graded)
    assert in_facets and found == 2  # both labs' datasets have a graded run
    assert n_public == len(consensus & first_run) == 1
    assert OBJECT in nobody.get("/").text


def _run_of(root: Path, annotation_id: int) -> int:
    with Portal.open(root) as p, p.transaction() as s:
        return s.get(Annotation, annotation_id).run_id


def test_grade_annotations_have_no_file_in_the_data_tree(served):
    """So ``/files/`` has nothing of theirs to serve: their ndjson is written from the
    database on request, for those who may read it (:mod:`cryocurate.web.grade_files`)."""
    _, graded = served
    with Portal.open(graded.root) as p, p.transaction() as s:
        grade = sa.select(GradeAnnotation.annotation_id)
        assert (
            s.scalar(
                sa.select(sa.func.count())
                .select_from(Annotation)
                .where(Annotation.id.in_(grade), Annotation.metadata_path.is_not(None))
            )
            == 0
        )
        assert (
            s.scalar(
                sa.select(sa.func.count())
                .select_from(AnnotationShape)
                .where(AnnotationShape.annotation_id.in_(grade))
            )
            == 0
        )


def _give_files(root: Path, annotation_id: int) -> list[str]:
    """A metadata JSON and an ndjson for the annotation, in the tree and the catalog, as an
    import or a later writer could leave them; their tree paths."""
    with Portal.open(root) as p, p.transaction() as s:
        a = s.get(Annotation, annotation_id)
        folder = f"{a.run.dataset_id}/{a.run.name}/Reconstructions/VoxelSpacing1.000/Annotations"
        paths = [f"{folder}/{annotation_id}-grades.json", f"{folder}/{annotation_id}-grades.ndjson"]
        for rel in paths:
            (p.data_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            line = {"type": "point", "location": {"x": 1, "y": 2, "z": 3}, "by": "lena's grades"}
            (p.data_dir / rel).write_text(json.dumps(line) + "\n")
        a.metadata_path = paths[0]
        shape = AnnotationShape(annotation=a, shape_type=AnnotationShapeType.Point)
        shape.annotation_files.append(AnnotationFile(format="ndjson", path=paths[1]))
        s.add(shape)
        return paths


def test_files_of_a_hidden_grade_annotation_stay_out_of_every_download(served):
    url, graded = served
    owners = _grade_annotations(graded.root)
    (lenas,) = [
        a
        for a, who in owners.items()
        if who == LENA and _run_of(graded.root, a) == graded.run_ids[0]
    ]
    paths = _give_files(graded.root, lenas)
    run = graded.run_ids[0]
    nobody, lars = _client(url), _client(url, LABELLERS[1])
    lena, reviewer = _client(url, LABELLERS[0]), _client(url, REVIEWER)
    for c, sees in ((nobody, False), (lars, False), (lena, True), (reviewer, True)):
        for rel in paths:
            for prefix in ("/files/", "/data/"):
                assert c.get(prefix + rel).status_code == (200 if sees else 404), (prefix, rel)
        for kind, ident in (("run", run), ("dataset", graded.dataset_id)):
            for layout in ("v1", "v2"):
                manifest = c.get(f"/download/{kind}/{ident}.json?layout={layout}")
                assert manifest.status_code == 200
                names = {f["path"].rsplit("/", 1)[-1] for f in manifest.json()["files"]}
                listed = {f"{lenas}-grades.json", f"{lenas}-grades.ndjson"} & names
                assert bool(listed) == sees, (kind, layout, names)
            archive = c.get(f"/download/{kind}/{ident}.zip")
            assert archive.status_code == 200
            with zipfile.ZipFile(io.BytesIO(archive.content)) as z:
                members = " ".join(z.namelist())
            assert (f"{lenas}-grades" in members) == sees
            assert (b"lena's grades" in archive.content) == sees
        got = c.get(f"/download/annotation/{lenas}.json")
        assert got.status_code == (200 if sees else 404)
        points = c.get(f"/annotations/{lenas}/points.json")  # the viewer's layer data
        assert points.status_code == (200 if sees else 404), points.text
