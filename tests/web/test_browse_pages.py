"""Browse Datasets, Dataset Overview and Deposition pages: queries on both databases, JSON twins
over HTTP, and a real Chromium walking through them as a new user would."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from cryocurate.catalog import models as m
from cryocurate.catalog.search import BrowseQuery, browse, dataset_overview, search_terms
from cryocurate.portal import Portal

ORGANISMS = ["Homo sapiens", "Saccharomyces cerevisiae", "Escherichia coli"]
MICROSCOPES = ["Krios G4", "Glacios"]
CAMERAS = ["K3", "Falcon 4"]
OBJECTS = ["ribosome", "membrane", "actin filament"]
N = 60


def build(root: Path, database_url: str | None = None) -> Portal:
    """60 datasets in 3 depositions. Dataset i (0-based): organism ORGANISMS[i % 3];
    even i are tomography (one run TS_i with a tilt series of quality i % 5 + 1, tilt range
    100 + i, microscope MICROSCOPES[i % 2], camera CAMERAS[(i // 2) % 2], voxel spacing 10 + i %
    3, and an annotation of OBJECTS[i % 3], manual when i % 4 == 0 else automated, ground truth
    when i % 6 == 0); odd i are 2D classification (two class2d runs). Dataset 7's description
    says "cell wall remodeling"; dataset 11's author is "Grace Hopper"."""
    portal = Portal.create(root, database_url=database_url)
    with portal.transaction() as s:
        for dep in range(1, 4):
            dp = m.Deposition(
                id=dep,
                title=f"Deposition {dep} of the test lab",
                description="Submitted together.",
                deposition_date=dt.date(2024, dep, 1),
                release_date=dt.date(2024, dep, 15),
            )
            dp.authors.append(m.DepositionAuthor(name=f"Depositor {dep}", author_list_order=0))
            s.add(dp)
        s.flush()
        for i in range(N):
            d = m.Dataset(
                title=f"Test dataset {i:02d} {'tomograms' if i % 2 == 0 else 'class averages'}",
                description="cell wall remodeling in yeast" if i == 7 else f"Dataset number {i}.",
                organism_name=ORGANISMS[i % 3],
                sample_type=m.SampleType.cell if i % 3 else m.SampleType.in_vitro,
                deposition_id=i % 3 + 1,
                related_database_entries="EMPIAR-11445" if i == 2 else None,
                dataset_publications="10.1101/2024.01.01.000001" if i == 2 else None,
            )
            d.authors.append(
                m.DatasetAuthor(
                    name="Grace Hopper" if i == 11 else f"Author {i}",
                    affiliation_name="Test University",
                    author_list_order=0,
                    primary_author_status=True,
                )
            )
            d.funding_sources.append(m.DatasetFunding(funding_agency_name="NIH", grant_id=f"G{i}"))
            s.add(d)
            s.flush()
            if i % 2 == 0:
                run = m.Run(dataset_id=d.id, name=f"TS_{i:02d}", kind=m.RunKind.tomography)
                s.add(run)
                s.flush()
                s.add(
                    m.TiltSeries(
                        run_id=run.id,
                        tilt_series_quality=i % 5 + 1,
                        tilt_min=-(50 + i / 2),
                        tilt_max=50 + i / 2,
                        tilt_range=100 + i,
                        microscope_model=MICROSCOPES[i % 2],
                        camera_model=CAMERAS[(i // 2) % 2],
                        related_empiar_entry="EMPIAR-10499" if i == 4 else None,
                    )
                )
                s.add(m.TomogramVoxelSpacing(run_id=run.id, voxel_spacing=10.0 + i % 3))
                s.add(
                    m.Annotation(
                        run_id=run.id,
                        annotation_method="manual picking" if i % 4 == 0 else "template matching",
                        method_type=m.AnnotationMethodType.manual
                        if i % 4 == 0
                        else m.AnnotationMethodType.automated,
                        ground_truth_status=i % 6 == 0,
                        object_id="GO:0005840",
                        object_name=OBJECTS[i % 3],
                    )
                )
            else:
                for j in range(2):
                    s.add(m.Run(dataset_id=d.id, name=f"J{i}{j}", kind=m.RunKind.class2d))
    return portal


def expected(pred: Any) -> int:
    return sum(1 for i in range(N) if pred(i))


# ----------------------------------------------------------------------------------------------
# The query, on SQLite and PostgreSQL.


def test_search_terms_keep_quoted_phrases():
    assert search_terms('ribosome "cell wall"  lamella') == ["ribosome", "cell wall", "lamella"]
    assert search_terms('"unclosed phrase') == ["unclosed phrase"]
    assert search_terms("   ") == []


def test_browse_filters_counts_and_search(tmp_path, database_url):
    portal = build(tmp_path / "portal", database_url)
    try:
        with portal.transaction() as s:

            def run(**kw: Any) -> Any:
                pairs = []
                for k, v in kw.items():
                    pairs += [(k, str(x)) for x in v] if isinstance(v, list) else [(k, str(v))]
                return browse(s, BrowseQuery.from_params(pairs))

            everything = run()
            assert everything.total == N and everything.pages == 3
            assert len(everything.datasets) == 25
            assert run(page=3).datasets[-1].title.startswith("Test dataset 59")
            assert everything.ground_truth_count == expected(lambda i: i % 6 == 0)
            gt = run(ground_truth=1)
            assert gt.total == expected(lambda i: i % 6 == 0)
            assert run(author="hopper").total == 1
            assert (
                run(dataset_id=f"{everything.datasets[0].id}, {everything.datasets[1].id}").total
                == 2
            )
            assert run(organism=ORGANISMS[0]).total == expected(lambda i: i % 3 == 0)
            both = run(organism=ORGANISMS[:2])
            assert both.total == expected(lambda i: i % 3 < 2)
            # disjunctive counts: the organism facet ignores the organism filter
            counts = {f.value: f.count for f in both.facets["organism"]}
            assert counts == {o: 20 for o in ORGANISMS}
            assert run(microscope="Glacios").total == 0  # only even i have tilt series
            assert run(microscope="Krios G4").total == 30
            assert run(camera="K3").total == expected(lambda i: i % 2 == 0 and (i // 2) % 2 == 0)
            assert run(quality_min=4).total == expected(lambda i: i % 2 == 0 and i % 5 + 1 >= 4)
            assert run(tilt_min=130, tilt_max=140).total == expected(
                lambda i: i % 2 == 0 and 130 <= 100 + i <= 140
            )
            assert run(voxel_min=11.5).total == expected(lambda i: i % 2 == 0 and i % 3 == 2)
            assert run(object="actin filament").total == expected(
                lambda i: i % 2 == 0 and i % 3 == 2
            )
            assert run(method_type="manual").total == expected(lambda i: i % 4 == 0)
            assert run(sample_type="in_vitro").total == expected(lambda i: i % 3 == 0)
            assert run(kind="class2d").total == 30
            combined = run(kind="tomography", organism=ORGANISMS[0], method_type="manual")
            assert combined.total == expected(lambda i: i % 2 == 0 and i % 3 == 0 and i % 4 == 0)
            kinds = {f.value: f.count for f in combined.facets["kind"]}
            assert kinds == {"tomography": combined.total, "class2d": 0}
            # search: every word, case-insensitive, across title/description/authors/objects
            assert run(q='"cell wall" YEAST').total == 1
            assert run(q='"wall cell"').total == 0
            assert run(q="grace hopper").total == 1
            assert run(q='"actin filament" tomograms').total == expected(
                lambda i: i % 2 == 0 and i % 3 == 2
            )
            row = run(dataset_id=str(everything.datasets[2].id)).datasets[0]
            assert row.empiar == ["EMPIAR-11445"] and row.n_runs == 1
            assert row.objects == ["actin filament"]
            overview = dataset_overview(s, everything.datasets[0].id)
            assert overview is not None
            assert overview["runs"][0].tilt_series_quality == 1
            assert [g["title"] for g in overview["groups"]][:2] == [
                "Overview",
                "Sample and experimental conditions",
            ]
    finally:
        portal.close()


# ----------------------------------------------------------------------------------------------
# Served for real: JSON twins and the browser.


@pytest.fixture(scope="module")
def served(tmp_path_factory, live_server_module) -> tuple[str, Portal]:
    root = tmp_path_factory.mktemp("browse") / "portal"
    build(root).close()
    url = live_server_module(
        lambda port: [sys.executable, "-m", "cryocurate", "serve", str(root), "--port", str(port)]
    )
    return url, root


def test_json_twins(served):
    url, _ = served
    for path in ("/.json", "/index.json"):
        data = httpx.get(url + path, params={"organism": ORGANISMS[0]}).json()
        assert data["result"]["total"] == 20
        assert data["query"]["organism"] == [ORGANISMS[0]]
        assert data["result"]["where"] == {"_and": [{"organism_name": {"_in": [ORGANISMS[0]]}}]}
    first = httpx.get(url + "/.json").json()["datasets"][0]
    ds = httpx.get(f"{url}/datasets/{first['id']}.json").json()
    assert ds["dataset"]["title"] == first["title"]
    assert "cryocurate download ROOT dataset" in ds["download"]["cli"]
    assert "Dataset.get_by_id(client," in ds["download"]["python"]
    assert ds["download"]["zip_url"] == f"/download/dataset/{first['id']}.zip"
    assert httpx.head(url + ds["download"]["zip_url"]).status_code == 200
    dep = httpx.get(f"{url}/depositions/1.json").json()
    assert dep["n_datasets"] == 20 and dep["authors"][0]["name"] == "Depositor 1"
    assert httpx.get(f"{url}/datasets/99999").status_code == 404
    assert httpx.get(f"{url}/depositions/99").status_code == 404
    assert httpx.get(url + "/", params={"tilt_min": "abc"}).status_code == 400


def _count(page: Any) -> int:
    return int(page.locator("#result-count").inner_text().replace(",", ""))


@pytest.mark.browser
def test_a_new_user_browses_filters_and_opens_a_dataset(served, page, screenshot_dir):
    url, _ = served
    page.goto(url + "/")
    assert _count(page) == N
    rows = page.get_by_role("table", name="Datasets").locator("tbody tr")
    assert rows.count() == 25

    # keyboard: skip link, brand, nav links…, then the search box and the filters
    for _ in range(12):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "q":
            break
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.press("Tab")  # Search button
    page.keyboard.press("Tab")  # the first filter
    assert page.evaluate("document.activeElement.name") == "ground_truth"
    page.screenshot(path=screenshot_dir / "browse.png", full_page=True)

    def check(label: str, name: str) -> None:
        with page.expect_navigation():
            page.locator(f"#facet-{name}").get_by_label(label).check()

    # each filter changes the table and the counts
    with page.expect_navigation():
        page.get_by_label("Has ground-truth annotations").check()
    assert _count(page) == expected(lambda i: i % 6 == 0)
    assert "ground_truth=1" in page.url
    page.goto(url + "/")
    check(ORGANISMS[0], "organism")
    assert _count(page) == 20
    # the organism facet still shows the others' counts (disjunctive)
    other = page.locator("#facet-organism").get_by_text(ORGANISMS[1]).locator("..")
    assert other.locator(".count").inner_text() == "20"
    check("Tomography", "kind")
    assert _count(page) == 10
    check("manual", "method_type")
    assert _count(page) == expected(lambda i: i % 2 == 0 and i % 3 == 0 and i % 4 == 0)
    filtered_url = page.url
    page.goto(url + "/")
    check("actin filament", "object")
    assert _count(page) == 10
    page.goto(url + "/")
    check("Krios G4", "microscope")
    assert _count(page) == 30
    check("K3", "camera")
    assert _count(page) == expected(lambda i: i % 2 == 0 and (i // 2) % 2 == 0)
    page.goto(url + "/")
    check("in vitro", "sample_type")
    assert _count(page) == 20
    page.goto(url + "/")
    with page.expect_navigation():
        page.get_by_label("Quality from").select_option("4")
    assert _count(page) == expected(lambda i: i % 2 == 0 and i % 5 + 1 >= 4)
    page.goto(url + "/")
    page.get_by_label("Tilt range (°) from").fill("150")
    with page.expect_navigation():
        page.get_by_label("Tilt range (°) from").press("Enter")
    assert _count(page) == expected(lambda i: i % 2 == 0 and 100 + i >= 150)
    page.goto(url + "/")
    page.get_by_label("Voxel spacing (Å) from").fill("11.5")
    with page.expect_navigation():
        page.get_by_label("Voxel spacing (Å) from").press("Enter")
    assert _count(page) == 10
    page.goto(url + "/")
    page.get_by_label("Author").fill("Hopper")
    with page.expect_navigation():
        page.get_by_label("Author").press("Enter")
    assert _count(page) == 1
    page.goto(url + "/")
    page.get_by_label("Dataset ID").fill("10000, 10001")
    with page.expect_navigation():
        page.get_by_label("Dataset ID").press("Enter")
    assert _count(page) == 2

    # a multi-word phrase in the search bar
    page.goto(url + "/")
    page.get_by_label("Search datasets").fill('"cell wall" remodeling')
    with page.expect_navigation():
        page.get_by_role("button", name="Search").click()
    assert _count(page) == 1
    # the one match is dataset 7, whose description (not shown in the table) says it
    assert "Test dataset 07" in page.get_by_role("table", name="Datasets").inner_text()
    assert page.get_by_role("link", name="Test dataset 07 class averages").is_visible()

    # paging, and the back button restores the previous filters
    page.goto(filtered_url)
    page.goto(url + "/")
    with page.expect_navigation():
        page.get_by_role("link", name="Next →").click()
    assert "page=2" in page.url
    assert page.get_by_text("Page 2 of 3").is_visible()
    page.go_back()
    page.go_back()
    assert page.url == filtered_url
    assert page.locator("#facet-organism").get_by_label(ORGANISMS[0]).is_checked()
    assert page.locator("#facet-kind").get_by_label("Tomography").is_checked()
    assert _count(page) == expected(lambda i: i % 2 == 0 and i % 3 == 0 and i % 4 == 0)

    # open a dataset
    page.goto(url + "/")
    with page.expect_navigation():
        page.get_by_role("link", name="Test dataset 02 tomograms").click()
    page.get_by_role("heading", name="Test dataset 02 tomograms").wait_for()
    runs = page.get_by_role("table", name="Runs")
    assert "TS_02" in runs.inner_text() and "3 / 5" in runs.inner_text()
    page.get_by_text("View All Info").click()
    info = page.locator("#all-info")
    for heading in ("Overview", "Sample and experimental conditions", "Cross-references",
                    "Authors", "Funding"):  # fmt: skip
        assert info.get_by_role("heading", name=heading).is_visible()
    assert "EMPIAR-11445" in info.inner_text()
    page.get_by_role("button", name="Download dataset").click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    text = dialog.inner_text()
    assert "cryocurate download ROOT dataset" in text
    assert "Dataset.get_by_id(client," in text and "download_everything" in text
    assert "/download/dataset/" in text
    page.screenshot(path=screenshot_dir / "dataset.png", full_page=True)
    dialog.get_by_role("button", name="Close").click()
    assert not dialog.is_visible()

    # its deposition
    with page.expect_navigation():
        page.get_by_role("link", name="Deposition 3").first.click()
    page.get_by_role("heading", name="Deposition 3 of the test lab").wait_for()
    assert (
        page.get_by_role("table", name="Datasets in this deposition").locator("tbody tr").count()
        == 20
    )
    page.screenshot(path=screenshot_dir / "deposition.png", full_page=True)
