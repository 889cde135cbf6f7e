"""``cryocurate agreement`` and ``cryocurate consensus``: a campaign's agreement figures and its
stored consensus, from a terminal.

Why in the CLI as well as on the campaign page: the figures belong in reports and pipelines
(``--json``, ``--csv``), and a server without a browser still needs its consensus computed.
Both commands are thin layers over :mod:`cryocurate.grading.campaign_agreement` and
:mod:`cryocurate.grading.consensus_store`, so the numbers are the page's numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from cryocurate import grading
from cryocurate.cli import console

if TYPE_CHECKING:
    from cryocurate.grading.campaign_agreement import CampaignAgreement

Root = typer.Argument(..., help="The portal root.")
CampaignOption = typer.Option(..., "--campaign", help="The campaign's id.")
AsJson = typer.Option(False, "--json", help="Print JSON instead of tables.")


def number(value: float | int | None, digits: int = 2) -> str:
    """A figure for a table: fixed digits, an em dash where it is undefined."""
    if value is None:
        return "—"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def signed(value: float | None) -> str:
    """A bias: always with its sign, so +0.40 and −0.40 read as directions."""
    return "—" if value is None else f"{value:+.2f}"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f} %"


def scope_title(data: dict[str, Any]) -> str:
    scope = data["scope"]
    if scope["kind"] == "run":
        return f"run {scope['run_id']} ({scope.get('run_name') or '?'})"
    if scope["kind"] == "lab":
        return f"lab {scope['lab']}"
    return "whole campaign"


def alpha_line(alpha: dict[str, Any]) -> str:
    """``α = 0.71 (95 % CI 0.64–0.77, 120 items)``."""
    if alpha["estimate"] is None:
        return f"α undefined ({alpha['n_items']} items with two or more grades)"
    level = round(100 * alpha["confidence"])
    ci = (
        f"{number(alpha['ci_low'])}–{number(alpha['ci_high'])}"
        if alpha["ci_low"] is not None
        else "—"
    )
    return f"α = {number(alpha['estimate'])} ({level} % CI {ci}, {alpha['n_items']} items)"


def print_agreement(agreement: CampaignAgreement, scopes: list[dict[str, Any]] | None) -> None:
    """The report as rich tables: α, κ matrix, per labeller, distributions, confusions."""
    from rich.table import Table

    data = agreement.to_dict()
    keys = data["level_labels"] or [str(v) for v in data["levels"]]
    out = console.out
    out.print(
        f"Campaign {data['campaign_id']} {data['campaign_name']!r}, {scope_title(data)}: "
        f"{data['n_items']} items, {data['n_grades']} grades",
        markup=False,
    )
    out.print(f"Krippendorff's {alpha_line(data['alpha'])} (ordinal)", markup=False)
    fleiss = data["fleiss_kappa"]
    out.print(
        f"Fleiss' κ (nominal) = {number(fleiss['estimate'])} on {fleiss['n_items']} items "
        "graded by everyone",
        markup=False,
    )

    names = data["labellers"]
    kappa = Table("κ (quadratic)", *names, title="Pairwise Cohen's κ, quadratic weights")
    for name, row, shared in zip(
        names, data["pairwise_kappa"]["kappa"], data["pairwise_kappa"]["n_shared"], strict=True
    ):
        kappa.add_row(name, *(f"{number(k)} ({n})" for k, n in zip(row, shared, strict=True)))
    out.print(kappa)
    out.print("(in brackets: items both graded)")

    per = Table(
        "Labeller",
        "Graded",
        "Bias",
        "Exact",
        "Within one",
        "κ vs others",
        "Repeats",
        "Repeat κ",
        "Repeat exact",
        title="Each labeller against the consensus of the others",
    )
    for stats in data["per_labeller"]:
        repeats = stats["repeats"] or {}
        per.add_row(
            stats["name"],
            str(stats["n_graded"]),
            signed(stats["bias"]["mean"]),
            percent(stats["consensus"]["exact"]),
            percent(stats["consensus"]["within_one"]),
            number(stats["consensus"]["kappa"]),
            str(repeats.get("n", 0)),
            number(repeats.get("kappa")),
            percent(repeats.get("exact")),
        )
    out.print(per)
    out.print(data["bias_meaning"], markup=False)

    dist = Table("Labeller", *keys, "Total", title="Grade distribution")
    for stats in data["per_labeller"]:
        dist.add_row(stats["name"], *map(str, stats["distribution"]), str(stats["n_graded"]))
    dist.add_row("all", *map(str, data["distribution"]), str(data["n_grades"]))
    out.print(dist)

    for stats in data["per_labeller"]:
        table = Table(
            "others ↓ / own →",
            *keys,
            title=f"Confusion of {stats['name']} (rows: consensus of the others)",
        )
        for key, row in zip(keys, stats["consensus"]["confusion"], strict=True):
            table.add_row(key, *map(str, row))
        out.print(table)

    if scopes:
        overview = Table("Scope", "Items", "Grades", "α", "CI", title="α per run and per lab")
        for scope in scopes:
            what = (
                f"run {scope['run_id']} ({scope['run_name']})"
                if scope["kind"] == "run"
                else f"lab {scope['lab']}"
            )
            alpha = scope["alpha"]
            overview.add_row(
                what,
                str(scope["n_items"]),
                str(scope["n_grades"]),
                number(alpha["estimate"]),
                f"{number(alpha['ci_low'])}–{number(alpha['ci_high'])}",
            )
        out.print(overview)


def agreement(
    root: Path = Root,
    campaign_id: int = CampaignOption,
    run_id: int | None = typer.Option(None, "--run", help="Only this run of the campaign."),
    lab: str | None = typer.Option(None, "--lab", help="Only the runs of this lab."),
    as_json: bool = AsJson,
    csv_path: Path | None = typer.Option(
        None, "--csv", help="Also write every figure to this CSV file (long format)."
    ),
    resamples: int = typer.Option(1000, "--resamples", min=0, help="Bootstrap resamples for α."),
) -> None:
    """How far the campaign's labellers agree: α with its interval, κ per pair, each
    labeller's bias, consistency and confusion against the others, grade distributions.

    Example: cryocurate agreement ./portal --campaign 1 --csv agreement.csv
    """
    from cryocurate.grading.campaign_agreement import (
        agreement_csv,
        campaign_agreement,
        scope_summaries,
    )
    from cryocurate.grading.ratings import load_ratings
    from cryocurate.portal import Portal

    with Portal.open(root) as portal, portal.transaction() as session:
        campaign = grading.get_campaign(session, campaign_id)
        ratings = load_ratings(session, campaign)
        result = campaign_agreement(
            session, campaign, run_id=run_id, lab=lab, n_resamples=resamples, ratings=ratings
        )
        scopes = (
            scope_summaries(session, campaign, ratings=ratings)
            if run_id is None and lab is None
            else None
        )
    if csv_path is not None:
        csv_path.write_text(agreement_csv(result), encoding="utf-8")
        console.err.print(f"Wrote {csv_path}.", markup=False)
    if as_json:
        data = result.to_dict()
        if scopes is not None:
            data["scopes"] = scopes
        console.out.print(json.dumps(data, indent=2, allow_nan=False), markup=False)
        return
    print_agreement(result, scopes)


def consensus(root: Path = Root, campaign_id: int = CampaignOption, as_json: bool = AsJson) -> None:
    """Compute and store the campaign's consensus (one final grade per item, bias-corrected;
    a reviewer's decision wins) and list the items flagged for review.

    Example: cryocurate consensus ./portal --campaign 1
    """
    from rich.table import Table

    from cryocurate.grading.consensus_store import compute_consensus, flagged_items
    from cryocurate.portal import Portal

    with Portal.open(root) as portal, portal.transaction() as session:
        campaign = grading.get_campaign(session, campaign_id)
        summary = compute_consensus(session, campaign)
        flagged = flagged_items(session, campaign)
    if as_json:
        data = {**summary.to_dict(), "flagged": flagged}
        console.out.print(json.dumps(data, indent=2, allow_nan=False), markup=False)
        return
    out = console.out
    out.print(
        f"{summary.n_items} items, {summary.n_graded} graded, {summary.n_final} with a final "
        f"grade; {summary.n_flagged} flagged (grades two or more apart), {summary.n_settled} "
        f"settled by a reviewer, {summary.n_open} flagged still open.",
        markup=False,
    )
    out.print(
        f"Consensus annotations: {len(summary.runs)} runs "
        f"({', '.join(str(r['annotation_id']) for r in summary.runs) or 'none'}).",
        markup=False,
    )
    if not flagged:
        return
    table = Table(
        "Item", "Where", "Grades", "Median", "Model", "P", "Settled", title="Flagged for review"
    )
    for row in flagged:
        decision = row["decision"]
        table.add_row(
            str(row["item_id"]),
            row["label"],
            " ".join(f"{g['grade']}" for g in row["grades"]),
            row["median_grade"],
            row["model_grade"] or "—",
            number(row["model_probability"]),
            f"{decision['grade']} by {decision['reviewer']}" if decision else "—",
        )
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command("agreement")(agreement)
    app.command("consensus")(consensus)
