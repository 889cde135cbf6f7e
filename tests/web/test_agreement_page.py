"""The agreement page, its downloads and the review screen: who may see them and what they
say through the real app (SQLite and PostgreSQL), and in a browser: a reviewer reads α, the
κ heatmap and the histograms, downloads the CSV and settles a flagged item with a key."""

from __future__ import annotations

import csv
import io
import sys

import pytest

from cryocurate import grading
from cryocurate.grading.campaign_agreement import campaign_agreement
from cryocurate.portal import Portal
from tests.grading.portal import ADMIN, LABELLERS, PASSWORD, REVIEWER, build_grading_portal
from tests.grading.test_campaign_agreement import simulate
from tests.web.test_auth import client, log_in

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.fixture
def graded(tmp_path, database_url):
    built = build_grading_portal(tmp_path, database_url, n_classes=6)
    return built, simulate(built.root, built.run_ids)


def _expected(root, cid: int) -> dict:
    with Portal.open(root) as portal, portal.transaction() as s:
        return campaign_agreement(s, grading.get_campaign(s, cid)).to_dict()


def test_the_page_and_its_downloads(graded):
    built, sim = graded
    root, cid = built.root, sim["cid"]
    lab = client(root)
    lab_token = log_in(lab, LABELLERS[0])
    for path in ("agreement", "agreement.json", "agreement.csv", "review"):
        assert lab.get(f"/campaigns/{cid}/{path}").status_code == 403, path
    r = lab.post(f"/campaigns/{cid}/consensus", headers={"X-CSRF-Token": lab_token})
    assert r.status_code == 403

    c = client(root)
    token = log_in(c, REVIEWER)
    expected = _expected(root, cid)
    page = c.get(f"/campaigns/{cid}/agreement", headers={"Accept": BROWSER_ACCEPT})
    assert page.status_code == 200
    html = page.text
    assert f"{expected['alpha']['estimate']:.2f}" in html
    assert html.count('data-testid="kappa-cell"') == len(expected["labellers"]) ** 2
    assert html.count('data-testid="confusion-cell"') == 3 * 25
    assert 'data-testid="histogram-all"' in html and "positive = harsher" in html
    data = c.get(f"/campaigns/{cid}/agreement.json").json()
    assert {k: v for k, v in data.items() if k != "scopes"} == expected
    run_id = built.run_ids[0]
    assert c.get(f"/campaigns/{cid}/agreement.json?run={run_id}").json()["n_items"] == 6
    assert c.get(f"/campaigns/{cid}/agreement.json?run=99999").status_code == 404
    download = c.get(f"/campaigns/{cid}/agreement.csv")
    assert download.status_code == 200 and "attachment" in download.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(download.text)))
    estimate = next(r for r in rows if r["figure"] == "alpha" and r["statistic"] == "estimate")
    assert float(estimate["value"]) == pytest.approx(expected["alpha"]["estimate"])

    review = c.get(f"/campaigns/{cid}/review", headers={"Accept": BROWSER_ACCEPT})
    assert review.status_code == 200 and 'id="no-consensus"' in review.text
    assert c.post(f"/campaigns/{cid}/consensus").status_code == 403  # no CSRF token
    summary = c.post(f"/campaigns/{cid}/consensus", headers={"X-CSRF-Token": token}).json()
    assert summary["n_items"] == 12 and summary["n_open"] >= 1
    review = c.get(f"/campaigns/{cid}/review", headers={"Accept": BROWSER_ACCEPT}).text
    assert f'data-item-id="{sim["split"]}"' in review
    r = c.post(
        f"/campaigns/{cid}/review/{sim['split']}",
        json={"grade": "Q"},
        headers={"X-CSRF-Token": token},
    )
    assert r.status_code == 400  # an InputError, answered by the boundary
    r = c.post(
        f"/campaigns/{cid}/review/{sim['split']}",
        json={"grade": "c", "note": "checked"},
        headers={"X-CSRF-Token": token},
    )
    assert r.status_code == 200 and r.json()["item"]["final_grade"] == "C"
    admin = client(root)
    log_in(admin, ADMIN)
    context = admin.get(f"/campaigns/{cid}/review?format=json").json()
    assert context["n_open"] == summary["n_open"] - 1


@pytest.mark.browser
def test_a_reviewer_reads_the_figures_and_settles_an_item(
    tmp_path, live_server, page, screenshot_dir
):
    built = build_grading_portal(tmp_path, n_classes=6)
    sim = simulate(built.root, built.run_ids)
    cid = sim["cid"]
    expected = _expected(built.root, cid)
    url = live_server(
        lambda port: [
            sys.executable, "-m", "cryocurate", "serve", str(built.root), "--port", str(port)
        ]
    )  # fmt: skip
    page.goto(f"{url}/campaigns/{cid}/agreement")
    page.get_by_label("Email").fill(REVIEWER)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{url}/campaigns/{cid}/agreement")

    alpha = page.get_by_test_id("alpha")
    assert f"α = {expected['alpha']['estimate']:.2f}" in alpha.inner_text()
    assert f"{expected['alpha']['ci_low']:.2f}–{expected['alpha']['ci_high']:.2f}" in (
        alpha.inner_text()
    )
    names = expected["labellers"]
    cells = page.locator("svg[data-testid=kappa] rect[data-testid=kappa-cell]")
    assert cells.count() == len(names) ** 2
    first_pair = expected["pairwise_kappa"]["kappa"][0][1]
    cell = page.locator(
        f"svg[data-testid=kappa] rect[data-row='{names[0]}'][data-column='{names[1]}']"
    )
    assert cell.get_attribute("data-value") == f"{first_pair:.2f}"
    kappa_text = page.locator("svg[data-testid=kappa]").text_content()
    assert f"{first_pair:.2f}" in kappa_text and "Pairwise Cohen's κ" in kappa_text
    histogram = page.locator("svg[data-testid=histogram-all]")
    counts = [
        int(histogram.locator(f"rect[data-level='{key}']").get_attribute("data-value"))
        for key in "ABCDF"
    ]
    assert counts == expected["distribution"]
    assert (
        str(max(counts)) in histogram.text_content() and "grades given" in histogram.text_content()
    )
    assert page.locator("svg[data-testid=confusion]").count() == len(names)
    assert page.locator("svg[data-testid=histogram]").count() == len(names)
    assert page.locator(".legend-step").count() >= 20
    page.screenshot(path=screenshot_dir / "campaign-agreement.png", full_page=True)

    with page.expect_download() as info:
        page.locator("#download-csv").click()
    saved = tmp_path / "agreement.csv"
    info.value.save_as(saved)
    rows = list(csv.DictReader(io.StringIO(saved.read_text())))
    assert {r["figure"] for r in rows} >= {"alpha", "pairwise_kappa", "distribution", "bias"}

    page.select_option("#run-select", str(built.run_ids[1]))
    page.wait_for_url(f"{url}/campaigns/{cid}/agreement?run={built.run_ids[1]}")
    assert "6 items" in page.locator("section[aria-labelledby=alpha-h]").inner_text()

    page.goto(f"{url}/campaigns/{cid}/review")
    assert page.locator("#no-consensus").is_visible()
    page.get_by_role("button", name="Recompute the consensus").click()
    item = page.locator("#review-item")
    item.wait_for()
    first = item.get_attribute("data-item-id")
    assert first == str(sim["split"])
    assert page.locator("#review-grades td.grade").count() == 3
    assert "Model:" in page.locator("#model").inner_text()
    open_before = int(page.locator("#review-count").get_attribute("data-open"))
    page.screenshot(path=screenshot_dir / "campaign-review.png", full_page=True)
    page.keyboard.press("c")
    page.wait_for_function(
        f"() => document.querySelector('#review-count').dataset.open === '{open_before - 1}'"
    )
    page.locator("#flagged-list summary").click()
    settled = page.locator(f"#flagged tr:has(a[href='?item={first}'])")
    assert "C" in settled.locator("td").nth(3).inner_text()
    assert REVIEWER in settled.inner_text()
