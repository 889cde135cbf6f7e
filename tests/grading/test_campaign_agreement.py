"""Agreement and consensus of a real campaign, graded through ``grading.record`` by simulated
labellers (one harsher than the others), on SQLite and PostgreSQL: the figures equal the pure
statistics on the same matrix, per run too; the consensus is stored as a hybrid ground-truth
annotation; a reviewer's decision overrides the model and survives recomputation; and the
CLI prints the same."""

from __future__ import annotations

import csv
import io
import json
import uuid

import numpy as np
import pytest
import sqlalchemy as sa

from cryocurate import accounts, grading
from cryocurate.catalog.models import (
    AnnotationMethodType,
    CampaignItem,
    ConsensusGrade,
    GradeAnnotation,
    QueueEntry,
    ReviewDecision,
)
from cryocurate.grading.access import ForbiddenError
from cryocurate.grading.agreement import agreement_report
from cryocurate.grading.annotations import grades_ndjson
from cryocurate.grading.campaign_agreement import (
    agreement_csv,
    campaign_agreement,
    scope_summaries,
)
from cryocurate.grading.consensus_store import compute_consensus, flagged_items, settle
from cryocurate.portal import Portal
from tests.cli_in_process import cli
from tests.grading.portal import LABELLERS, PASSWORD, REVIEWER, build_grading_portal

THIRD = "lina@lab-b.org"
KEYS = "ABCDF"
BIAS = {LABELLERS[0]: 0, LABELLERS[1]: 1, THIRD: 0}  # lars is a grade harsher


def simulate(root, run_ids) -> dict:
    """Create the campaign and grade every item by three labellers; returns the truth:
    ``{"cid", "emails", "items", "runs", "values"}`` with ``values[email][item]``, and one
    item forced to a two-grade disagreement (``"split"``)."""
    rng = np.random.default_rng(7)
    with Portal.open(root) as portal, portal.transaction() as s:
        user = accounts.add_user(s, THIRD, "labeller", lab="Lab B")
        accounts.accept_invite(s, accounts.create_invite(s, user), PASSWORD)
        spec = grading.CampaignSpec(
            "agreement", run_ids, labellers=[*LABELLERS, THIRD], seed=5, repeat_share=0.25
        )
        campaign = grading.create_campaign(s, spec)
        cid = campaign.id
        items = list(
            s.execute(
                sa.select(CampaignItem.id, CampaignItem.run_id)
                .where(CampaignItem.campaign_id == cid)
                .order_by(CampaignItem.id)
            )
        )
        truth = {item: int(rng.integers(1, 5)) for item, _ in items}
        split = items[0][0]
        values: dict[str, dict[int, int]] = {}
        for email in sorted(BIAS):
            labeller = accounts.get_user(s, email)
            mine = values.setdefault(email, {})
            for item, _ in items:
                noise = int(rng.choice([-1, 0, 0, 0, 1]))
                mine[item] = int(np.clip(truth[item] + BIAS[email] + noise, 1, 5))
            if email == LABELLERS[0]:
                mine[split] = 1
            elif email == LABELLERS[1]:
                mine[split] = 4
            for item, value in mine.items():
                request = grading.GradeRequest(uuid.uuid4().hex, item, KEYS[value - 1])
                grading.record(s, campaign, labeller, request)
            repeats = s.scalars(
                sa.select(QueueEntry.item_id).where(
                    QueueEntry.campaign_id == cid,
                    QueueEntry.user_id == labeller.id,
                    QueueEntry.repeat.is_(True),
                )
            )
            for item in repeats:
                again = KEYS[int(np.clip(mine[item] + rng.choice([0, 0, 1]), 1, 5)) - 1]
                request = grading.GradeRequest(uuid.uuid4().hex, item, again, repeat=True)
                grading.record(s, campaign, labeller, request)
    emails = sorted(BIAS)
    return {
        "cid": cid,
        "emails": emails,
        "items": [item for item, _ in items],
        "runs": {item: run for item, run in items},
        "values": values,
        "split": split,
    }


@pytest.fixture
def graded(tmp_path, database_url):
    built = build_grading_portal(tmp_path, database_url, n_classes=8)
    return built, simulate(built.root, built.run_ids)


def _matrix(sim, items) -> np.ndarray:
    return np.array([[sim["values"][e][i] for i in items] for e in sim["emails"]], dtype=float)


def test_figures_equal_the_statistics_on_the_same_matrix(graded):
    built, sim = graded
    with Portal.open(built.root) as portal, portal.transaction() as s:
        campaign = grading.get_campaign(s, sim["cid"])
        whole = campaign_agreement(s, campaign, n_resamples=200)
        per_run = {
            r: campaign_agreement(s, campaign, run_id=r, n_resamples=200) for r in built.run_ids
        }
        per_lab = campaign_agreement(s, campaign, lab="Lab B", n_resamples=200)
        scopes = scope_summaries(s, campaign)
        csv_text = agreement_csv(whole)
    data = whole.to_dict()
    expected = agreement_report(
        _matrix(sim, sim["items"]), [1, 2, 3, 4, 5], sim["emails"], n_resamples=200
    ).to_dict()
    for key in ("levels", "labellers", "n_items", "n_grades", "alpha", "pairwise_kappa"):
        assert data[key] == expected[key], key
    assert data["distribution"] == expected["distribution"]
    for got, want in zip(data["per_labeller"], expected["per_labeller"], strict=True):
        assert got["bias"] == want["bias"] and got["consensus"] == want["consensus"]
        assert got["repeats"] is not None and got["repeats"]["n"] >= 1
    assert data["level_labels"] == list(KEYS)
    assert "positive = harsher" in data["bias_meaning"]
    bias = {row["name"]: row["bias"]["mean"] for row in data["per_labeller"]}
    assert bias[LABELLERS[1]] > 0.5 > bias[LABELLERS[0]]  # the harsh one shows
    assert 0 < data["alpha"]["estimate"] < 1
    assert data["alpha"]["ci_low"] <= data["alpha"]["estimate"] <= data["alpha"]["ci_high"]

    for run_id, result in per_run.items():
        items = [i for i in sim["items"] if sim["runs"][i] == run_id]
        want = agreement_report(
            _matrix(sim, items), [1, 2, 3, 4, 5], sim["emails"], n_resamples=200
        ).to_dict()
        got = result.to_dict()
        assert got["scope"]["kind"] == "run" and got["scope"]["run_id"] == run_id
        assert got["n_items"] == len(items) == 8
        assert got["alpha"] == want["alpha"] and got["pairwise_kappa"] == want["pairwise_kappa"]
    lab_b = [i for i in sim["items"] if built.labs[sim["runs"][i]] == "Lab B"]
    assert per_lab.report.n_items == len(lab_b)
    assert [x["kind"] for x in scopes] == ["run", "run", "lab", "lab"]
    assert all(x["n_items"] == 8 for x in scopes)

    rows = list(csv.DictReader(io.StringIO(csv_text)))
    alpha_row = next(r for r in rows if r["figure"] == "alpha" and r["statistic"] == "estimate")
    assert float(alpha_row["value"]) == pytest.approx(data["alpha"]["estimate"])
    assert {r["figure"] for r in rows} >= {"pairwise_kappa", "bias", "consensus_confusion"}


def test_consensus_is_stored_reviewed_and_kept(graded):
    built, sim = graded
    split = sim["split"]
    with Portal.open(built.root) as portal, portal.transaction() as s:
        campaign = grading.get_campaign(s, sim["cid"])
        summary = compute_consensus(s, campaign)
        assert summary.n_items == summary.n_graded == summary.n_final == 16
        assert summary.n_flagged >= 1 and summary.n_open == summary.n_flagged
        assert s.scalar(sa.select(sa.func.count()).select_from(ConsensusGrade)) == 16
        flagged = flagged_items(s, campaign)
        row = next(r for r in flagged if r["item_id"] == split)
        assert sorted(g["grade"] for g in row["grades"]) == sorted(
            KEYS[sim["values"][e][split] - 1] for e in sim["emails"]
        )
        assert row["spread"] >= 2 and row["model_grade"] in KEYS
        assert 0 < row["model_probability"] <= 1 and row["image_url"].startswith("/data/")
        links = list(s.scalars(sa.select(GradeAnnotation).where(GradeAnnotation.user_id.is_(None))))
        assert sorted(link.run_id for link in links) == built.run_ids
        for link in links:
            assert link.annotation.method_type is AnnotationMethodType.hybrid
            assert link.annotation.ground_truth_status is True
            assert link.annotation.object_count == 8
        lines = [json.loads(x) for x in grades_ndjson(s, links[0].annotation_id)]
        assert len(lines) == 8 and [x["class_index"] for x in lines] == list(range(8))
        assert all(x["settled_by"] is None and x["grade"] == x["model_grade"] for x in lines)
        assert set(lines[0]) >= {"median", "mean", "spread", "n_grades", "model_probability"}

        labeller = accounts.get_user(s, LABELLERS[0])
        with pytest.raises(ForbiddenError):
            settle(s, campaign, split, labeller, "A")
        reviewer = accounts.get_user(s, REVIEWER)
        other = "F" if row["model_grade"] != "F" else "A"
        settled = settle(s, campaign, split, reviewer, other.lower(), note="looked closely")
        assert settled["final_grade"] == other and settled["decision"]["reviewer"] == REVIEWER
        assert flagged_items(s, campaign, open_only=True) == [
            r for r in flagged_items(s, campaign) if r["item_id"] != split
        ]
        unflagged = next(i for i in sim["items"] if i not in {r["item_id"] for r in flagged})
        assert settle(s, campaign, unflagged, reviewer, "C")["final_grade"] == "C"

    # A new grade and a recomputation: the reviews stay and still win.
    with Portal.open(built.root) as portal, portal.transaction() as s:
        campaign = grading.get_campaign(s, sim["cid"])
        again = compute_consensus(s, campaign)
        assert again.n_settled == 2 and again.n_open == summary.n_open - 1
        assert s.scalar(sa.select(sa.func.count()).select_from(ReviewDecision)) == 2
        split_row = next(r for r in flagged_items(s, campaign) if r["item_id"] == split)
        assert split_row["final_grade"] == other and split_row["decision"]["note"]
        run = sim["runs"][split]
        link = s.scalar(
            sa.select(GradeAnnotation).where(
                GradeAnnotation.user_id.is_(None), GradeAnnotation.run_id == run
            )
        )
        lines = {
            x["class_average_id"]: x for x in map(json.loads, grades_ndjson(s, link.annotation_id))
        }
        item = s.get(CampaignItem, split)
        assert lines[item.class_average_id]["grade"] == other
        assert lines[item.class_average_id]["settled_by"] == REVIEWER


def test_cli_prints_the_same_figures(graded, capsys, tmp_path):
    built, sim = graded
    root, cid = built.root, sim["cid"]
    code, out, err = cli(capsys, "agreement", root, "--campaign", cid, "--json", "--resamples", 200)
    assert code == 0, err
    data = json.loads(out)
    with Portal.open(root) as portal, portal.transaction() as s:
        expected = campaign_agreement(s, grading.get_campaign(s, cid), n_resamples=200).to_dict()
    assert {k: v for k, v in data.items() if k != "scopes"} == expected
    assert [x["kind"] for x in data["scopes"]] == ["run", "run", "lab", "lab"]

    target = tmp_path / "figures.csv"
    code, out, err = cli(capsys, "agreement", root, "--campaign", cid, "--csv", target)
    assert code == 0, err
    assert f"α = {data['alpha']['estimate']:.2f}" in out
    assert "Pairwise Cohen's κ" in out and "positive = harsher" in out
    assert "Grade distribution" in out and LABELLERS[1] in out
    assert target.read_text().startswith("figure,statistic,labeller")

    run_id = built.run_ids[1]
    code, out, err = cli(capsys, "agreement", root, "--campaign", cid, "--run", run_id, "--json")
    assert code == 0 and json.loads(out)["n_items"] == 8
    code, _, err = cli(capsys, "agreement", root, "--campaign", cid, "--run", 99999)
    assert code != 0 and "no run 99999" in err

    code, out, err = cli(capsys, "consensus", root, "--campaign", cid)
    assert code == 0, err
    assert "16 items, 16 graded" in out and "Flagged for review" in out
    code, out, _ = cli(capsys, "consensus", root, "--campaign", cid, "--json")
    data = json.loads(out)
    assert data["n_items"] == 16 and sim["split"] in [x["item_id"] for x in data["flagged"]]
