"""``cryocurate campaign …`` through the real CLI entry point, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import uuid

import pytest
import sqlalchemy as sa

from cryocurate import accounts, grading
from cryocurate.catalog.models import ClassAverage, Run
from cryocurate.portal import Portal
from tests.cli_in_process import cli
from tests.grading.portal import LABELLERS, build_grading_portal


@pytest.fixture
def built(tmp_path, database_url):
    return build_grading_portal(tmp_path, database_url, n_classes=6)


def _dataset_of(root, run_id: int) -> int:
    with Portal.open(root) as p, p.transaction() as s:
        return s.get(Run, run_id).dataset_id


def _grade(root, cid: int, email: str, item_id: int, grade: str) -> None:
    request = grading.GradeRequest(request_id=uuid.uuid4().hex, item_id=item_id, grade=grade)
    with Portal.open(root) as p, p.transaction() as s:
        campaign = grading.get_campaign(s, cid)
        grading.record(s, campaign, accounts.get_user(s, email), request)


def test_create_show_edit_and_export(built, capsys, tmp_path):
    root = built.root
    first, second = built.run_ids
    code, out, err = cli(
        capsys, "campaign", "create", root, "--name", "Spring 2D", "--run", first,
        "--dataset", _dataset_of(root, second), "--labeller", LABELLERS[0], "--seed", 3,
        "--repeat-share", 0, "--describe", "B=Keep, clearly", "--description", "first pass",
    )  # fmt: skip
    assert code == 0, err
    cid = int(out.strip())
    assert "12 items in 2 runs, 1 labellers" in err

    code, out, _ = cli(capsys, "campaign", "list", root, "--json")
    assert code == 0
    assert json.loads(out) == [
        {
            "id": cid,
            "name": "Spring 2D",
            "scale": "letters",
            "items": 12,
            "labellers": 1,
            "done": 0,
            "target": 12,
            "closed": False,
        }
    ]
    code, out, _ = cli(capsys, "campaign", "list", root)
    assert code == 0 and "Spring 2D" in out and "0 / 12" in out

    assert cli(capsys, "campaign", "add-labellers", root, cid, LABELLERS[1])[0] == 0
    code, _, err = cli(capsys, "campaign", "describe", root, cid, "c", "Blurry but a particle")
    assert code == 0 and "Grade C" in err

    with Portal.open(root) as p, p.transaction() as s:
        class_ids = sorted(
            s.scalars(sa.select(ClassAverage.id).where(ClassAverage.run_id == first))
        )
    code, _, err = cli(
        capsys, "campaign", "rubric", root, cid, "A", class_ids[0], class_ids[1],
        "--caption", "crisp top view",
    )  # fmt: skip
    assert code == 0 and "2 example(s)" in err

    code, out, _ = cli(capsys, "campaign", "show", root, cid, "--json")
    info = json.loads(out)
    levels = {lv["key"]: lv["description"] for lv in info["levels"]}
    assert levels["B"] == "Keep, clearly" and levels["C"] == "Blurry but a particle"
    assert info["labellers"] == sorted(LABELLERS)
    assert [r["run_id"] for r in info["runs"]] == [first, second]
    assert info["rubric"][0] == {
        "grade": "A",
        "class_average_id": class_ids[0],
        "tiltseries_id": None,
        "caption": "crisp top view",
    }
    assert info["progress"]["target"] == 24
    assert {r["lab"] for r in info["progress"]["per_lab"]} == {"Lab A", "Lab B"}

    with Portal.open(root) as p, p.transaction() as s:
        user = accounts.get_user(s, LABELLERS[0])
        items = [r["item_id"] for r in grading.window(s, grading.get_campaign(s, cid), user, 0, 3)]
    for item, grade in zip(items, "ABF", strict=True):
        _grade(root, cid, LABELLERS[0], item, grade)
    _grade(root, cid, LABELLERS[1], items[0], "B")

    code, out, _ = cli(capsys, "campaign", "show", root, cid)
    assert code == 0
    for text in ("Per lab", "Per labeller", "Lab A", "Lab B", LABELLERS[0], "Keep, clearly"):
        assert text in out
    assert "4 of 24 grades" in out

    code, out, _ = cli(capsys, "campaign", "grades", root, cid)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 4 and {r["labeller"] for r in rows} == set(LABELLERS)
    code, out, _ = cli(
        capsys, "campaign", "grades", root, cid, "--labeller", LABELLERS[0], "--format", "ndjson"
    )
    lines = [json.loads(line) for line in out.splitlines()]
    assert sorted(r["grade"] for r in lines) == ["A", "B", "F"]
    target = tmp_path / "out" / "grades.json"
    code, out, err = cli(
        capsys, "campaign", "grades", root, cid, "--format", "json", "--out", target
    )
    assert code == 0 and out == "" and "Wrote 4 grades" in err
    assert len(json.loads(target.read_text())) == 4
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".tmp-")]

    # add-runs: a run already there adds nothing
    code, _, err = cli(capsys, "campaign", "add-runs", root, cid, first)
    assert code == 0 and "Added 0 items" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["create", "{root}", "--name", "x"], "a campaign needs runs"),
        (["create", "{root}", "--name", "x", "--run", "999999"], "no run with id 999999"),
        (["create", "{root}", "--name", "x", "--run", "{run}", "--scale", "abc"], "unknown scale"),
        (["create", "{root}", "--name", "x", "--run", "{run}", "--scale", "tilt-series"], "tilt"),
        (["create", "{root}", "--name", "x", "--dataset", "1"], "no dataset with id 1"),
        (["create", "{root}", "--name", "x", "--run", "{run}", "--describe", "B"], "GRADE=TEXT"),
        (["create", "{root}", "--name", "x", "--run", "{run}", "--describe", "Q=x"], "no grade"),
        (["create", "{root}", "--name", "x", "--run", "{run}", "--repeat-share", "2"], "range"),
        (["create", "{root}", "--name", "x", "--run", "{run}", "--labeller", "no@x.org"], "no@"),
        (["create", "{root}", "--name", "taken", "--run", "{run}"], "already exists"),
        (["show", "{root}", "99"], "no campaign with id 99"),
        (["describe", "{root}", "{cid}", "Z", "text"], "no grade 'Z'"),
        (["rubric", "{root}", "{cid}", "A", "999999"], "no class average with id 999999"),
        (["rubric", "{root}", "{cid}", "A", "1", "--caption", "a", "--caption", "b"], "captions"),
        (["grades", "{root}", "{cid}", "--format", "xml"], "unknown format"),
        (["grades", "{root}", "{cid}", "--labeller", "no@x.org"], "no user"),
        (["add-runs", "{root}", "{cid}", "999999"], "no run"),
        (["add-labellers", "{root}", "{cid}", "nobody@x.org"], "no user"),
    ],
)
def test_bad_input_is_one_line_and_non_zero(tmp_path, capsys, argv, message):
    built = build_grading_portal(tmp_path, n_classes=2)
    code, out, err = cli(
        capsys, "campaign", "create", built.root, "--name", "taken", "--run", built.run_ids[0]
    )
    assert code == 0, err
    cid = out.strip()
    args = [a.format(root=built.root, run=built.run_ids[0], cid=cid) for a in argv]
    code, out, err = cli(capsys, "campaign", *args)
    assert code != 0 and out == ""
    assert err.count("\n") == 1 and err.startswith("Error: ") and message in err, err


def test_help_has_examples(capsys):
    for command in (
        "create", "list", "show", "add-labellers", "add-runs", "describe", "rubric", "grades",
    ):  # fmt: skip
        code, out, _ = cli(capsys, "campaign", command, "--help")
        assert code == 0 and "Example" in out


def test_close_and_reopen_decide_who_sees_the_consensus(tmp_path, capsys, database_url):
    """`campaign close` ends grading and makes the campaign's consensus public (never the
    labellers' own grades); `campaign reopen` undoes both. Checked as an anonymous visitor of
    the API would see it, through the one access rule."""
    from cryocurate.catalog import filters
    from cryocurate.errors import ConflictError
    from cryocurate.grading import access
    from cryocurate.grading.consensus_store import compute_consensus
    from tests.web.graded import build_graded_portal

    g = build_graded_portal(tmp_path, database_url, closed=False)

    def public_methods() -> list[str]:
        search = filters.Search.from_spec(
            filters.ENTITIES["annotations"], {}, guards=access.annotation_guards(None)
        )
        with Portal.open(g.root) as p, p.transaction() as s:
            items, _ = search.fetch(s, count=False)
        return sorted(row["method_type"] for row in items)

    assert public_methods() == []  # running: no grade annotation is public
    code, _out, err = cli(capsys, "campaign", "close", str(g.root), str(g.campaign_id))
    assert code == 0 and "is now closed" in err
    assert public_methods() == ["hybrid", "hybrid"]  # the two runs' consensus, no labeller's
    code, _out, err = cli(capsys, "campaign", "close", str(g.root), str(g.campaign_id))
    assert code == 0 and "already closed" in err
    with Portal.open(g.root) as p, p.transaction() as s:
        campaign = grading.get_campaign(s, g.campaign_id)
        request = grading.GradeRequest(request_id=uuid.uuid4().hex, item_id=1, grade="A")
        with pytest.raises(ConflictError, match="closed"):
            grading.record(s, campaign, accounts.get_user(s, LABELLERS[0]), request)
    code, _out, err = cli(capsys, "campaign", "reopen", str(g.root), str(g.campaign_id))
    assert code == 0 and "is now open" in err
    assert public_methods() == []
    with Portal.open(g.root) as p, p.transaction() as s:
        compute_consensus(s, grading.get_campaign(s, g.campaign_id))  # still works when open
