"""The campaign's agreement page, its downloads and the reviewer's screen.

* ``GET /campaigns/{id}/agreement[?run=ID|lab=NAME]``: α with its interval, the pairwise κ
  heatmap, each labeller's confusion heatmap against the others, bias and consistency bars,
  grade histograms, α per run and lab; ``agreement.json`` / ``agreement.csv``: every figure.
* ``GET /campaigns/{id}/review[?item=ID]``: the flagged items one at a time; ``POST
  /campaigns/{id}/review/{item_id}`` settles one (``{"grade", "note"}``), ``POST
  /campaigns/{id}/consensus`` recomputes the consensus. Both POSTs need the CSRF header,
  which the auth middleware checks for every session request.

Reviewers and admins only: the figures reveal every labeller's grades. The plots are inline
SVG drawn here on the server, so the page needs no plotting library, prints, and reads the
same with scripts off; every number a plot shows is also in the CSV.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from markupsafe import Markup, escape
from pydantic import BaseModel, Field

from cryocurate.catalog.models import Role, User
from cryocurate.grading import get_campaign
from cryocurate.grading.campaign_agreement import (
    CampaignAgreement,
    agreement_csv,
    campaign_agreement,
    level_keys,
    scope_summaries,
)
from cryocurate.grading.consensus_store import (
    compute_consensus,
    consensus_items,
    flagged_items,
    settle,
)
from cryocurate.grading.ratings import load_ratings
from cryocurate.web.auth import csrf_token, require_role
from cryocurate.web.deps import DbInt, portal_of
from cryocurate.web.pages.render import render, wants_json

router = APIRouter()
Reviewer = Depends(require_role(Role.reviewer, Role.admin))


# ----------------------------------------------------------------------------------------------
# Inline SVG plots: pure functions of the numbers, escaped text, a title and axis labels each.

LIGHT, DARK = (247, 251, 255), (8, 48, 107)  # a sequential blue scale, light = low


def colour(fraction: float) -> str:
    """The scale's colour at ``fraction`` (clipped to 0–1)."""
    t = min(max(fraction, 0.0), 1.0)
    r, g, b = (round(lo + (hi - lo) * t) for lo, hi in zip(LIGHT, DARK, strict=True))
    return f"rgb({r},{g},{b})"


def _text(x: float, y: float, text: object, **attrs: object) -> str:
    # ``class_`` for the reserved word; other underscores are SVG's hyphens (``text_anchor``).
    extra = "".join(
        f' {k.rstrip("_").replace("_", "-")}="{escape(str(v))}"' for k, v in attrs.items()
    )
    return f'<text x="{x:.1f}" y="{y:.1f}"{extra}>{escape(str(text))}</text>'


def _svg(width: float, height: float, title: str, body: list[str], testid: str) -> Markup:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" data-testid="{escape(testid)}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}" '
        f'role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>'
    )
    heading = _text(width / 2, 16, title, text_anchor="middle", class_="plot-title")
    return Markup(head + heading + "".join(body) + "</svg>")  # every text escaped above


def _legend(x: float, y: float, height: float, low: str, high: str, label: str) -> list[str]:
    steps = 20
    parts = [
        f'<rect class="legend-step" x="{x:.1f}" y="{y + height * (1 - (i + 1) / steps):.1f}" '
        f'width="12" height="{height / steps + 0.5:.1f}" fill="{colour(i / (steps - 1))}"/>'
        for i in range(steps)
    ]
    parts.append(_text(x + 16, y + 10, high, class_="legend-label"))
    parts.append(_text(x + 16, y + height, low, class_="legend-label"))
    parts.append(_text(x, y - 6, label, class_="legend-label"))
    return parts


def heatmap(
    values: Sequence[Sequence[float | int | None]],
    rows: Sequence[str],
    columns: Sequence[str],
    *,
    title: str,
    x_label: str,
    y_label: str,
    low: float,
    high: float,
    digits: int,
    legend: str,
    testid: str,
) -> Markup:
    """A labelled heatmap: every cell coloured on the scale ``low``–``high`` and its value
    written in it (``—`` where undefined), with a colour legend."""
    cell = 54 if len(columns) <= 6 else 40
    left = 12 + 7 * max((len(r) for r in rows), default=4) + 18
    # Long column names (emails) are written slanted, so the header grows with them.
    longest = max((len(c) for c in columns), default=1)
    slanted = longest > 3
    top, legend_w = (34 + int(5 * longest) if slanted else 44), 90
    width = left + cell * len(columns) + legend_w
    height = top + cell * len(rows) + 56
    body: list[str] = []
    span = (high - low) or 1.0
    for i, (name, row) in enumerate(zip(rows, values, strict=True)):
        y = top + i * cell
        body.append(_text(left - 6, y + cell / 2 + 4, name, text_anchor="end", class_="tick"))
        for j, value in enumerate(row):
            x = left + j * cell
            fraction = 0.0 if value is None else (float(value) - low) / span
            fill = "#eee" if value is None else colour(fraction)
            shown = "—" if value is None else f"{value:.{digits}f}"
            body.append(
                f'<rect class="cell" data-testid="{escape(testid)}-cell" data-row="{escape(name)}" '
                f'data-column="{escape(columns[j])}" data-value="{escape(shown)}" x="{x}" y="{y}" '
                f'width="{cell - 2}" height="{cell - 2}" fill="{fill}"/>'
            )
            ink = "#fff" if value is not None and fraction > 0.55 else "#111"
            body.append(
                _text(x + cell / 2 - 1, y + cell / 2 + 4, shown, text_anchor="middle", fill=ink,
                      class_="cell-value")
            )  # fmt: skip
    for j, name in enumerate(columns):
        x = left + j * cell + cell / 2 - 1
        if slanted:
            body.append(_text(x, top - 6, name, class_="tick",
                              transform=f"rotate(-45 {x:.1f} {top - 6})"))  # fmt: skip
        else:
            body.append(_text(x, top - 6, name, text_anchor="middle", class_="tick"))
    plot_w = cell * len(columns)
    body.append(_text(left + plot_w / 2, top + cell * len(rows) + 20, x_label,
                      text_anchor="middle", class_="axis-label"))  # fmt: skip
    mid = top + cell * len(rows) / 2
    body.append(_text(12, mid, y_label, text_anchor="middle", class_="axis-label",
                      transform=f"rotate(-90 12 {mid:.1f})"))  # fmt: skip
    low_text, high_text = f"{low:.{digits}f}", f"{high:.{digits}f}"
    body += _legend(left + plot_w + 16, top + 14, min(140, cell * len(rows) - 14), low_text,
                    high_text, legend)  # fmt: skip
    return _svg(width, height, title, body, testid)


def bar_chart(
    values: Sequence[float | None],
    names: Sequence[str],
    *,
    title: str,
    x_label: str,
    low: float,
    high: float,
    digits: int,
    signed: bool,
    testid: str,
) -> Markup:
    """Horizontal bars from zero, one per name, value written at the bar's end; an axis with
    ``low``, 0 and ``high`` ticks (``signed``: bars may go left of zero)."""
    left = 12 + 7 * max((len(n) for n in names), default=4)
    plot_w, row_h, top = 300, 26, 30
    width = left + plot_w + 70
    height = top + row_h * len(names) + 46
    span = (high - low) or 1.0

    def at(v: float) -> float:
        return left + (min(max(v, low), high) - low) / span * plot_w

    zero = at(0.0)
    body: list[str] = []
    for i, (name, value) in enumerate(zip(names, values, strict=True)):
        y = top + i * row_h
        body.append(_text(left - 6, y + row_h / 2 + 4, name, text_anchor="end", class_="tick"))
        if value is None:
            body.append(_text(zero + 4, y + row_h / 2 + 4, "—", class_="bar-value"))
            continue
        x0, x1 = sorted((zero, at(value)))
        shown = f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
        body.append(
            f'<rect class="bar" data-testid="{escape(testid)}-bar" data-name="{escape(name)}" '
            f'data-value="{escape(shown)}" x="{x0:.1f}" y="{y + 4}" width="{max(x1 - x0, 1):.1f}" '
            f'height="{row_h - 8}" fill="{colour(0.65)}"/>'
        )
        body.append(_text(max(x1, zero) + 4, y + row_h / 2 + 4, shown, class_="bar-value"))
    axis_y = top + row_h * len(names)
    body.append(
        f'<line x1="{left}" x2="{left + plot_w}" y1="{axis_y}" y2="{axis_y}" stroke="#555"/>'
    )
    body.append(f'<line x1="{zero:.1f}" x2="{zero:.1f}" y1="{top}" y2="{axis_y}" stroke="#555"/>')
    for tick in sorted({low, 0.0, high}):
        label = f"{tick:+.1f}" if signed and tick else f"{tick:.1f}"
        body.append(_text(at(tick), axis_y + 14, label, text_anchor="middle", class_="tick"))
    body.append(_text(left + plot_w / 2, axis_y + 34, x_label, text_anchor="middle",
                      class_="axis-label"))  # fmt: skip
    return _svg(width, height, title, body, testid)


def histogram(counts: Sequence[int], keys: Sequence[str], *, title: str, testid: str) -> Markup:
    """Vertical bars of grade counts per level, the count above each bar."""
    left, top, bar_w, plot_h = 44, 34, 36, 120
    width = left + bar_w * len(keys) + 20
    height = top + plot_h + 44
    peak = max(max(counts, default=0), 1)
    body: list[str] = []
    base = top + plot_h
    for i, (key, n) in enumerate(zip(keys, counts, strict=True)):
        x = left + i * bar_w
        h = plot_h * n / peak
        body.append(
            f'<rect class="bar" data-testid="{escape(testid)}-bar" data-level="{escape(key)}" '
            f'data-value="{n}" x="{x + 4}" y="{base - h:.1f}" width="{bar_w - 8}" '
            f'height="{h:.1f}" fill="{colour(0.65)}"/>'
        )
        body.append(_text(x + bar_w / 2, base - h - 4, n, text_anchor="middle", class_="bar-value"))
        body.append(_text(x + bar_w / 2, base + 14, key, text_anchor="middle", class_="tick"))
    body.append(
        f'<line x1="{left}" x2="{left + bar_w * len(keys)}" y1="{base}" y2="{base}" stroke="#555"/>'
    )
    body.append(_text(left + bar_w * len(keys) / 2, base + 34, "grade", text_anchor="middle",
                      class_="axis-label"))  # fmt: skip
    mid = top + plot_h / 2
    body.append(_text(14, mid, "grades given", text_anchor="middle", class_="axis-label",
                      transform=f"rotate(-90 14 {mid})"))  # fmt: skip
    return _svg(width, height, title, body, testid)


def agreement_plots(data: dict[str, Any]) -> dict[str, Any]:
    """Every plot of a report's ``to_dict()``."""
    keys = data["level_labels"] or [str(v) for v in data["levels"]]
    names = data["labellers"]
    per = data["per_labeller"]
    plots: dict[str, Any] = {
        "kappa": heatmap(
            data["pairwise_kappa"]["kappa"], names, names,
            title="Pairwise Cohen's κ (quadratic weights)", x_label="labeller",
            y_label="labeller", low=0.0, high=1.0, digits=2, legend="κ", testid="kappa",
        ),
        "bias": bar_chart(
            [p["bias"]["mean"] for p in per], names, title="Bias: mean offset from the others",
            x_label="grades (see the sign's meaning below)", low=-2.0, high=2.0, digits=2,
            signed=True, testid="bias",
        ),
        "consistency": bar_chart(
            [(p["repeats"] or {}).get("kappa") for p in per], names,
            title="Consistency on repeated items (κ)", x_label="κ, own first vs second look",
            low=0.0, high=1.0, digits=2, signed=False, testid="consistency",
        ),
        "agreement": bar_chart(
            [p["consensus"]["exact"] for p in per], names,
            title="Exact agreement with the others' consensus", x_label="share of items",
            low=0.0, high=1.0, digits=2, signed=False, testid="exact",
        ),
        "distribution": histogram(
            data["distribution"], keys, title="All grades", testid="histogram-all"
        ),
    }  # fmt: skip
    plots["confusions"] = [
        {
            "name": p["name"],
            "svg": heatmap(
                p["consensus"]["confusion"], keys, keys,
                title=f"{p['name']} against the others", x_label=f"grade by {p['name']}",
                y_label="consensus of the others", low=0.0,
                high=float(max((max(r) for r in p["consensus"]["confusion"]), default=1) or 1),
                digits=0, legend="items", testid="confusion",
            ),
        }
        for p in per
    ]  # fmt: skip
    plots["histograms"] = [
        {
            "name": p["name"],
            "svg": histogram(p["distribution"], keys, title=p["name"], testid="histogram"),
        }
        for p in per
    ]
    return plots


# ----------------------------------------------------------------------------------------------
# Agreement page and downloads


def _report(
    request: Request, campaign_id: int, run: int | None, lab: str | None, *, with_scopes: bool
) -> tuple[CampaignAgreement, list[dict[str, Any]]]:
    """The report of the chosen scope (404 for a campaign, run or lab that is not there) and,
    when asked, α per run and lab to choose from."""
    with portal_of(request).transaction() as session:
        campaign = get_campaign(session, campaign_id)
        ratings = load_ratings(session, campaign)
        result = campaign_agreement(session, campaign, run_id=run, lab=lab, ratings=ratings)
        scopes = scope_summaries(session, campaign, ratings=ratings) if with_scopes else []
    return result, scopes


def _agreement(
    request: Request, campaign_id: int, run: int | None, lab: str | None
) -> dict[str, Any]:
    """The report as a dict, with the runs and labs to choose from (the page and its JSON)."""
    result, scopes = _report(request, campaign_id, run, lab, with_scopes=True)
    data = result.to_dict()
    data["scopes"] = scopes
    return data


@router.get("/campaigns/{campaign_id:int}/agreement.json", name="campaign_agreement_json")
def agreement_json(
    campaign_id: DbInt,
    request: Request,
    run: DbInt | None = None,
    lab: str | None = None,
    user: User = Reviewer,
) -> Response:
    """Every figure of the page as JSON (the report's ``to_dict()`` plus α per run and lab)."""
    return JSONResponse(_agreement(request, campaign_id, run, lab))


@router.get(
    "/campaigns/{campaign_id:int}/agreement.csv",
    name="campaign_agreement_csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "Long-format CSV"}},
)
def agreement_csv_download(
    campaign_id: DbInt,
    request: Request,
    run: DbInt | None = None,
    lab: str | None = None,
    user: User = Reviewer,
) -> Response:
    """Every figure of the chosen scope as long-format CSV, one number per row."""
    result, _ = _report(request, campaign_id, run, lab, with_scopes=False)
    suffix = f"-run{run}" if run is not None else (f"-lab-{lab}" if lab else "")
    filename = f"campaign{campaign_id}{suffix}-agreement.csv".replace('"', "")
    return Response(
        agreement_csv(result),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get(
    "/campaigns/{campaign_id:int}/agreement", name="campaign_agreement", include_in_schema=False
)
def agreement_page(
    campaign_id: DbInt,
    request: Request,
    run: DbInt | None = None,
    lab: str | None = None,
    user: User = Reviewer,
) -> Response:
    """The agreement page of the whole campaign or of one run or lab."""
    data = _agreement(request, campaign_id, run, lab)
    if wants_json(request):
        return JSONResponse(data)
    query = f"?run={run}" if run is not None else (f"?lab={quote(lab)}" if lab else "")
    context = {
        "agreement": data,
        "keys": data["level_labels"],
        "run": run,
        "lab": lab,
        "query": query,
        "plots": agreement_plots(data),
        "csrf_token": csrf_token(request),
    }
    return render(request, "campaign_agreement.html", context)


# ----------------------------------------------------------------------------------------------
# Review screen


class SettleIn(BaseModel):
    grade: str = Field(max_length=8)
    note: str | None = Field(default=None, max_length=2000)


def _script_json(data: dict[str, Any]) -> Markup:
    text = json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)  # escaped above


@router.get("/campaigns/{campaign_id:int}/review", name="campaign_review", include_in_schema=False)
def review_page(
    campaign_id: DbInt, request: Request, item: DbInt | None = None, user: User = Reviewer
) -> Response:
    """The next flagged item nobody has settled (or ``?item=ID``), with everyone's grades
    and the model's verdict; the grade keys settle it (``static/agreement.js``)."""
    with portal_of(request).transaction() as session:
        campaign = get_campaign(session, campaign_id)
        flagged = flagged_items(session, campaign)
        computed = bool(flagged) or bool(consensus_items(session, campaign))
        levels = sorted(campaign.levels, key=lambda lv: lv["value"])
        keys = level_keys(campaign)
        name = campaign.name
    open_items = [row for row in flagged if row["decision"] is None]
    current = (
        next((row for row in flagged if row["item_id"] == item), None)
        if item is not None
        else (open_items[0] if open_items else None)
    )
    config = {
        "campaign_id": campaign_id,
        "csrf_token": csrf_token(request),
        "keys": keys,
        "item_id": current["item_id"] if current else None,
    }
    context = {
        "campaign": {"id": campaign_id, "name": name},
        "levels": [{"key": str(lv["key"]), "name": lv["name"]} for lv in levels],
        "computed": computed,
        "n_flagged": len(flagged),
        "n_open": len(open_items),
        "item": current,
        "flagged": flagged,
        "config": config,
        "config_json": _script_json(config),
    }
    return render(request, "review.html", context)


@router.post(  # the review page's script calls it: not the API
    "/campaigns/{campaign_id:int}/review/{item_id:int}",
    name="campaign_settle",
    include_in_schema=False,
)
def settle_item(
    campaign_id: DbInt, item_id: DbInt, body: SettleIn, request: Request, user: User = Reviewer
) -> Response:
    """Settle one item with the reviewer's grade; answers the item's row as JSON."""
    with portal_of(request).transaction() as session:
        campaign = get_campaign(session, campaign_id)
        row = settle(session, campaign, item_id, user, body.grade, body.note)
    return JSONResponse({"ok": True, "item": row})


@router.post(
    "/campaigns/{campaign_id:int}/consensus", name="campaign_consensus", include_in_schema=False
)
def recompute(campaign_id: DbInt, request: Request, user: User = Reviewer) -> Response:
    """Recompute and store the consensus from the current grades; answers the summary."""
    with portal_of(request).transaction() as session:
        campaign = get_campaign(session, campaign_id)
        summary = compute_consensus(session, campaign)
    return JSONResponse({"ok": True, **summary.to_dict()})
