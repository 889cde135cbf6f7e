"""``cryocurate campaign create|list|show|add-labellers|add-runs|describe|rubric|grades``.

Why a CLI as well as the admin page: campaigns over hundreds of runs are easier to script
than to tick, a server without a browser still needs them, and exports of grades belong in
pipelines. Every command is a thin layer over :mod:`cryocurate.grading`; bad input ends as one
line on stderr through the error boundary of :mod:`cryocurate.cli.main`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from cryocurate import grading
from cryocurate.cli import console
from cryocurate.errors import InputError, NotFoundError
from cryocurate.grading.defaults import DEFAULT_REPEAT_SHARE

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from cryocurate.catalog.models import GradeScale

app = typer.Typer(help="Create and manage grading campaigns.", no_args_is_help=True)

Root = typer.Argument(..., help="The portal root.")
CampaignId = typer.Argument(..., help="The campaign's id (see `cryocurate campaign list`).")
AsJson = typer.Option(False, "--json", help="Print JSON instead of tables.")

SCALES = {"letters": "letters", "tilt-series": "tilt_series", "tilt_series": "tilt_series"}
FORMATS = ("csv", "json", "ndjson")


def parse_scale(text: str) -> GradeScale:
    """``letters`` or ``tilt-series`` (the stored ``tilt_series`` is accepted too)."""
    from cryocurate.catalog.models import GradeScale

    scale = SCALES.get(text.strip().lower())
    if scale is None:
        raise InputError(f"unknown scale {text!r}", hint="use letters or tilt-series")
    return GradeScale(scale)


def parse_describe(pairs: Iterable[str]) -> dict[str, str]:
    """``["B=Clear features", …]`` → ``{"B": "Clear features"}``."""
    descriptions: dict[str, str] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip() or not text.strip():
            raise InputError(f"--describe {pair!r} is not GRADE=TEXT", hint='e.g. "B=Keep it"')
        descriptions[key.strip()] = text.strip()
    return descriptions


def _dataset_runs(session: Session, dataset_ids: Sequence[int], scale: GradeScale) -> list[int]:
    """The runs of these datasets that hold what ``scale`` grades: class averages, or tilt
    series for the tilt-series scale."""
    import sqlalchemy as sa

    from cryocurate.catalog.models import Dataset, GradeScale, Run, RunKind, TiltSeries

    run_ids: list[int] = []
    for dataset_id in dataset_ids:
        if session.get(Dataset, dataset_id) is None:
            raise NotFoundError(f"no dataset with id {dataset_id}")
        query = sa.select(Run.id).where(Run.dataset_id == dataset_id).order_by(Run.id)
        if scale is GradeScale.letters:
            query = query.where(Run.kind == RunKind.class2d)
        else:
            query = query.where(Run.id.in_(sa.select(TiltSeries.run_id)))
        found = list(session.scalars(query))
        if not found:
            what = "class2d runs" if scale is GradeScale.letters else "runs with tilt series"
            raise InputError(f"dataset {dataset_id} has no {what}")
        run_ids.extend(found)
    return run_ids


@app.command()
def create(
    root: Path = Root,
    name: str = typer.Option(..., "--name", help="The campaign's name (unique)."),
    run: list[int] | None = typer.Option(None, "--run", help="A run to grade; repeatable."),
    dataset: list[int] | None = typer.Option(
        None, "--dataset", help="Take all of a dataset's class2d (or tilt-series) runs; repeatable."
    ),
    scale: str = typer.Option("letters", "--scale", help="letters (A–F) or tilt-series (1–5)."),
    labeller: list[str] | None = typer.Option(
        None, "--labeller", help="A labeller's email; repeatable."
    ),
    grades_per_item: int | None = typer.Option(
        None, "--grades-per-item", help="Grades each item needs (default: every labeller's)."
    ),
    repeat_share: float = typer.Option(
        DEFAULT_REPEAT_SHARE,
        "--repeat-share",
        help="Share of items shown again later, unannounced, to measure consistency.",
    ),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the labellers' orders."),
    describe: list[str] | None = typer.Option(
        None, "--describe", help='A grade\'s rubric text, "B=text"; repeatable.'
    ),
    description: str | None = typer.Option(None, "--description", help="What the campaign is."),
) -> None:
    """Create a campaign: its runs' items go into every labeller's own shuffled queue.

    Example: cryocurate campaign create ./portal --name "Spring 2D" --dataset 10000
    --labeller lena@lab-a.org --labeller lars@lab-b.org --describe "C=Keep if needed"
    """
    from cryocurate.portal import Portal

    grade_scale = parse_scale(scale)
    descriptions = parse_describe(describe or [])
    if not run and not dataset:
        raise InputError("a campaign needs runs", hint="pass --run ID or --dataset ID")
    with Portal.open(root) as portal, portal.transaction() as session:
        run_ids = list(run or []) + _dataset_runs(session, dataset or [], grade_scale)
        spec = grading.CampaignSpec(
            name=name,
            run_ids=run_ids,
            scale=grade_scale,
            labellers=list(labeller or []),
            grades_per_item=grades_per_item,
            repeat_share=repeat_share,
            descriptions=descriptions,
            description=description,
            seed=seed,
        )
        campaign = grading.create_campaign(session, spec)
        progress = grading.campaign_progress(session, campaign)
        campaign_id, n_labellers = campaign.id, len(progress["per_labeller"])
    console.err.print(
        f"Created campaign {campaign_id} ({name.strip()}): {progress['items']} items in "
        f"{len(dict.fromkeys(run_ids))} runs, {n_labellers} labellers.",
        markup=False,
    )
    console.out.print(str(campaign_id))


@app.command("list")
def list_(root: Path = Root, as_json: bool = AsJson) -> None:
    """List the campaigns with their progress toward the target.

    Example: cryocurate campaign list ./portal --json
    """
    from rich.table import Table

    from cryocurate.portal import Portal

    with Portal.open(root) as portal, portal.transaction() as session:
        rows = [grading.campaign_summary(session, c) for c in grading.list_campaigns(session)]
    if as_json:
        console.out.print(json.dumps(rows, indent=2), markup=False)
        return
    if not rows:
        console.err.print("No campaigns yet; create one with `cryocurate campaign create`.")
        return
    table = Table("ID", "Name", "Scale", "Items", "Labellers", "Graded", box=None)
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["name"],
            r["scale"],
            str(r["items"]),
            str(r["labellers"]),
            f"{r['done']} / {r['target']}",
        )
    console.out.print(table)


def _details(session: Session, campaign_id: int) -> dict[str, Any]:
    from cryocurate.grading.campaigns import labeller_users

    campaign = grading.load_campaign(session, campaign_id)
    keys = {int(level["value"]): str(level["key"]) for level in campaign.levels}
    return {
        "id": campaign.id,
        "name": campaign.name,
        "description": campaign.description,
        "scale": campaign.scale.value,
        "item_kind": campaign.item_kind.value,
        "levels": campaign.levels,
        "grades_per_item": campaign.grades_per_item,
        "repeat_share": campaign.repeat_share,
        "seed": campaign.seed,
        "runs": grading.campaign_runs(campaign),
        "labellers": [u.email for u in labeller_users(session, campaign)],
        "rubric": [
            {
                "grade": keys.get(e.value, str(e.value)),
                "class_average_id": e.class_average_id,
                "tiltseries_id": e.tiltseries_id,
                "caption": e.caption,
            }
            for e in campaign.rubric_examples
        ],
        "progress": grading.campaign_progress(session, campaign),
    }


def _pct(done: int, target: int) -> str:
    return f"{100 * done / target:.0f} %" if target else "—"


@app.command()
def show(root: Path = Root, campaign_id: int = CampaignId, as_json: bool = AsJson) -> None:
    """Show a campaign: its scale and rubric, runs, labellers, and progress per lab and per
    labeller.

    Example: cryocurate campaign show ./portal 1
    """
    from rich.table import Table

    from cryocurate.portal import Portal

    with Portal.open(root) as portal, portal.transaction() as session:
        info = _details(session, campaign_id)
    if as_json:
        console.out.print(json.dumps(info, indent=2), markup=False)
        return
    out = console.out
    out.print(f"Campaign {info['id']}: {info['name']}", markup=False)
    if info["description"]:
        out.print(info["description"], markup=False)
    per_item = info["grades_per_item"] or "every labeller"
    out.print(
        f"{info['scale']} scale · {per_item} grades per item · "
        f"repeat share {info['repeat_share']:g} · seed {info['seed']}",
        markup=False,
    )
    levels = Table("Grade", "Name", "Description", "Examples", title="Scale")
    for level in info["levels"]:
        examples = [
            str(e["class_average_id"] or e["tiltseries_id"])
            for e in info["rubric"]
            if e["grade"] == str(level["key"])
        ]
        levels.add_row(str(level["key"]), level["name"], level["description"], ", ".join(examples))
    out.print(levels)
    progress = info["progress"]
    out.print(
        f"Progress: {progress['done']} of {progress['target']} grades "
        f"({_pct(progress['done'], progress['target'])}), {progress['items']} items in "
        f"{len(info['runs'])} runs",
        markup=False,
    )
    labs = Table("Lab", "Items", "Graded", "Target", "Done", title="Per lab")
    for row in progress["per_lab"]:
        labs.add_row(
            row["lab"],
            str(row["items"]),
            str(row["done"]),
            str(row["target"]),
            _pct(row["done"], row["target"]),
        )
    out.print(labs)
    runs = Table("Run", "Name", "Dataset", "Lab", "Items", "Graded", "Target", title="Per run")
    for row in progress["per_run"]:
        runs.add_row(
            str(row["run_id"]),
            row["run_name"],
            str(row["dataset_id"]),
            row["lab"],
            str(row["items"]),
            str(row["done"]),
            str(row["target"]),
        )
    out.print(runs)
    people = Table("Labeller", "Lab", "Graded", "Items", "Repeats", "Skipped", title="Per labeller")
    for row in progress["per_labeller"]:
        people.add_row(
            row["labeller"],
            row["lab"],
            str(row["graded"]),
            str(row["items"]),
            f"{row['repeats_graded']} / {row['repeats']}",
            str(row["skipped"]),
        )
    out.print(people)


@app.command("add-labellers")
def add_labellers(
    root: Path = Root,
    campaign_id: int = CampaignId,
    emails: list[str] = typer.Argument(..., help="Labellers' emails."),
) -> None:
    """Add labellers; each gets the campaign's items in an order of their own.

    Example: cryocurate campaign add-labellers ./portal 1 lars@lab-b.org
    """
    from cryocurate.portal import Portal

    with Portal.open(root) as portal, portal.transaction() as session:
        added = grading.add_labellers(session, grading.get_campaign(session, campaign_id), emails)
        names = [u.email for u in added]
    if names:
        console.err.print(f"Added {', '.join(names)}.", markup=False)
    else:
        console.err.print("Nothing to add: all of them already grade in this campaign.")


@app.command("add-runs")
def add_runs(
    root: Path = Root,
    campaign_id: int = CampaignId,
    runs: list[int] = typer.Argument(..., help="Run ids."),
) -> None:
    """Add runs; their items go to the end of every labeller's queue.

    Example: cryocurate campaign add-runs ./portal 1 7 8
    """
    from cryocurate.portal import Portal

    with Portal.open(root) as portal, portal.transaction() as session:
        n = grading.add_runs(session, grading.get_campaign(session, campaign_id), runs)
    console.err.print(f"Added {n} items.")


def _set_closed(root: Path, campaign_id: int, closed: bool) -> None:
    from cryocurate.portal import Portal

    with Portal.open(root) as portal, portal.transaction() as session:
        campaign = grading.get_campaign(session, campaign_id)
        changed, name = grading.set_closed(session, campaign, closed), campaign.name
    state = "closed" if closed else "open"
    if changed:
        console.err.print(f"Campaign {campaign_id} ({name}) is now {state}.", markup=False)
    else:
        console.err.print(f"Campaign {campaign_id} ({name}) was already {state}.", markup=False)


@app.command()
def close(root: Path = Root, campaign_id: int = CampaignId) -> None:
    """Close a campaign: no more grades are accepted, and its consensus annotations (not the
    labellers' own grades) become public on the portal. `campaign reopen` undoes it.

    Example: cryocurate campaign close ./portal 1
    """
    _set_closed(root, campaign_id, True)


@app.command()
def reopen(root: Path = Root, campaign_id: int = CampaignId) -> None:
    """Reopen a closed campaign: grades are accepted again, and its consensus is for reviewers
    and admins until it is closed once more.

    Example: cryocurate campaign reopen ./portal 1
    """
    _set_closed(root, campaign_id, False)


@app.command()
def describe(
    root: Path = Root,
    campaign_id: int = CampaignId,
    grade: str = typer.Argument(..., help="The grade's key: A–F, or 1–5 for tilt series."),
    text: str = typer.Argument(..., help="What the grade means, as labellers will read it."),
) -> None:
    """Change the rubric's description of one grade.

    Example: cryocurate campaign describe ./portal 1 B "Clear features; keep"
    """
    from cryocurate.portal import Portal

    if not text.strip():
        raise InputError("the description is empty")
    with Portal.open(root) as portal, portal.transaction() as session:
        grading.set_descriptions(session, grading.get_campaign(session, campaign_id), {grade: text})
    console.err.print(f"Grade {grade.strip().upper()} is now described as: {text.strip()}")


@app.command()
def rubric(
    root: Path = Root,
    campaign_id: int = CampaignId,
    grade: str = typer.Argument(..., help="The grade's key: A–F, or 1–5 for tilt series."),
    item_ids: list[int] = typer.Argument(
        ..., help="Class average ids (tilt series ids for a tilt-series campaign)."
    ),
    caption: list[str] | None = typer.Option(
        None, "--caption", help="A caption per example, in order; repeatable."
    ),
) -> None:
    """Set the example images of one grade (replacing its earlier examples).

    Example: cryocurate campaign rubric ./portal 1 A 12 40 --caption "crisp" --caption "side view"
    """
    from cryocurate.portal import Portal

    captions = list(caption or [])
    if len(captions) > len(item_ids):
        raise InputError(f"{len(captions)} captions for {len(item_ids)} examples")
    with Portal.open(root) as portal, portal.transaction() as session:
        campaign = grading.get_campaign(session, campaign_id)
        examples = grading.set_rubric_examples(session, campaign, grade, item_ids, captions)
        n = len(examples)
    console.err.print(f"Grade {grade.strip().upper()} has {n} example(s).")


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.datetime | dt.date) else value


def _format_grades(rows: list[dict[str, Any]], fmt: str) -> str:
    rows = [{k: _plain(v) for k, v in row.items()} for row in rows]
    if fmt == "json":
        return json.dumps(rows, indent=2) + "\n"
    if fmt == "ndjson":
        return "".join(json.dumps(row) + "\n" for row in rows)
    buffer = io.StringIO()
    fields = list(rows[0]) if rows else ["item_id", "run_id", "labeller", "grade"]
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


@app.command()
def grades(
    root: Path = Root,
    campaign_id: int = CampaignId,
    labeller: str | None = typer.Option(None, "--labeller", help="Only this labeller's grades."),
    fmt: str = typer.Option("csv", "--format", help="csv, json or ndjson."),
    out: Path | None = typer.Option(None, "--out", help="Write to this file (atomically)."),
) -> None:
    """Export the current grades (first looks and repeats) to stdout or a file.

    Example: cryocurate campaign grades ./portal 1 --format ndjson --out grades.ndjson
    """
    from cryocurate import accounts, atomic
    from cryocurate.portal import Portal

    fmt = fmt.strip().lower()
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}", hint="use csv, json or ndjson")
    with Portal.open(root) as portal, portal.transaction() as session:
        campaign = grading.get_campaign(session, campaign_id)
        user = accounts.get_user(session, labeller) if labeller else None
        rows = grading.grade_rows(session, campaign, user)
    text = _format_grades(rows, fmt)
    if out is None:
        console.out.file.write(text)
        return
    atomic.write_text(out, text)
    console.err.print(f"Wrote {len(rows)} grades to {out}.", markup=False)


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="campaign")
