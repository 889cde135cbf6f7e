"""The Browse Datasets query, its facet counts, and the dataset and deposition page queries.

Why a module of its own: the pages must stay fast on a big catalog (1,000 datasets, 50,000 runs,
200,000 annotations), so every page is a handful of SQL queries, each bounded by the page shown
(25 datasets, 100 runs), never a Python loop over runs or annotations.

Filters are compiled by :mod:`cryocurate.catalog.filters` (the API's engine): each filter of the
panel is a small spec on ``datasets`` (nested relationships become ``EXISTS``), so the page and
``/api/v1/datasets?…`` mean the same thing, and the JSON answer shows the spec it ran.

Facet counts are *disjunctive*: a facet's counts apply every filter but its own, so ticking a
second organism still shows how many datasets it would add. One ``GROUP BY`` query per facet.

Search splits the text into words (``"quoted phrases"`` stay one term) and requires every term
(AND) to occur, case-insensitively, in the title, the description, an author's name or an
annotated object's name.

Who sees which annotation is not this module's rule (grade annotations are hidden from some
visitors: :func:`cryocurate.grading.access.annotation_guards`); every function that reads
annotations takes the caller's ``guards`` (as :func:`cryocurate.catalog.filters.where` does)
and counts, lists and matches only the annotations they admit. None: every annotation (the
CLI, on the portal root). The facet summary is cached per engine *and* per guard.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from sqlalchemy import ColumnElement, func, select, true
from sqlalchemy.orm import Session

from cryocurate.catalog import models as m
from cryocurate.catalog.filters import Guards, entity, where
from cryocurate.catalog.queries import natural_key
from cryocurate.errors import InputError

PER_PAGE = 25
MAX_PER_PAGE = 100
RUNS_PER_PAGE = 100
_DATASETS = entity("datasets")


# ----------------------------------------------------------------------------------------------
# The query: what the filter panel and the search bar ask for, read from / written to a URL.


# A "double-quoted phrase" (its closing quote optional) or a run of non-blank characters.
_TERM = re.compile(r'"([^"]*)"?|(\S+)')


def search_terms(text: str) -> list[str]:
    """``ribosome "cell wall" lamella`` → ``["ribosome", "cell wall", "lamella"]`` (an unclosed
    quote is read as if closed; blank terms dropped).

    Only double quotes group words: an apostrophe is a letter (``O'Brien``, ``5' end``), so a
    search for a name never fails on an unbalanced quote (shell-style splitting did: a 500)."""
    terms = (m.group(1) if m.group(1) is not None else m.group(2) for m in _TERM.finditer(text))
    return [" ".join(t.split()) for t in terms if t and t.strip()]


def _floats(value: str | None) -> float | None:
    if value is None or not str(value).strip():
        return None
    try:
        return float(value)
    except ValueError:
        raise InputError(f"not a number: {value!r}") from None


def _ints(values: Iterable[str]) -> tuple[int, ...]:
    out = []
    for value in values:
        for part in re.split(r"[,\s]+", value):
            if part:
                try:
                    out.append(int(part))
                except ValueError:
                    raise InputError(f"not a dataset id: {part!r}") from None
    return tuple(out)


@dataclass(frozen=True)
class BrowseQuery:
    """One state of the Browse Datasets page; every field is a URL parameter of that name."""

    q: str = ""
    ground_truth: bool = False
    author: str = ""
    dataset_id: tuple[int, ...] = ()
    organism: tuple[str, ...] = ()
    microscope: tuple[str, ...] = ()
    camera: tuple[str, ...] = ()
    quality_min: int | None = None
    quality_max: int | None = None
    tilt_min: float | None = None
    tilt_max: float | None = None
    voxel_min: float | None = None
    voxel_max: float | None = None
    object: tuple[str, ...] = ()
    method_type: tuple[str, ...] = ()
    sample_type: tuple[str, ...] = ()
    kind: tuple[str, ...] = ()
    page: int = 1
    per_page: int = PER_PAGE

    @classmethod
    def from_params(cls, params: Iterable[tuple[str, str]]) -> BrowseQuery:
        """From query-string pairs (repeated keys for several values); unknown keys ignored."""
        multi: dict[str, list[str]] = {}
        for key, value in params:
            multi.setdefault(key, []).append(value)

        def one(key: str) -> str | None:
            values = [v for v in multi.get(key, []) if v.strip()]
            return values[-1].strip() if values else None

        def many(key: str) -> tuple[str, ...]:
            return tuple(dict.fromkeys(v.strip() for v in multi.get(key, []) if v.strip()))

        def integer(key: str, default: int | None, lo: int, hi: int) -> int | None:
            value = _floats(one(key))
            return default if value is None else max(lo, min(hi, int(value)))

        return cls(
            q=" ".join((one("q") or "").split()),
            ground_truth=(one("ground_truth") or "").lower() in ("1", "true", "on", "yes"),
            author=one("author") or "",
            dataset_id=_ints(multi.get("dataset_id", [])),
            organism=many("organism"),
            microscope=many("microscope"),
            camera=many("camera"),
            quality_min=integer("quality_min", None, 1, 5),
            quality_max=integer("quality_max", None, 1, 5),
            tilt_min=_floats(one("tilt_min")),
            tilt_max=_floats(one("tilt_max")),
            voxel_min=_floats(one("voxel_min")),
            voxel_max=_floats(one("voxel_max")),
            object=many("object"),
            method_type=many("method_type"),
            sample_type=many("sample_type"),
            kind=many("kind"),
            page=integer("page", 1, 1, 1_000_000) or 1,
            per_page=integer("per_page", PER_PAGE, 1, MAX_PER_PAGE) or PER_PAGE,
        )

    def params(self, **changes: Any) -> list[tuple[str, str]]:
        """This query (with ``changes``) as query-string pairs, defaults left out."""
        query = _replace(self, **changes)
        pairs: list[tuple[str, str]] = []
        for f in fields(query):
            value = getattr(query, f.name)
            if value == f.default or value in ((), "", None, False):
                continue
            if isinstance(value, tuple):
                pairs += [(f.name, str(v)) for v in value]
            elif isinstance(value, bool):
                pairs.append((f.name, "1"))
            else:
                pairs.append((f.name, _num(value)))
        return pairs

    def active(self) -> bool:
        """Whether any filter or search is set (paging aside)."""
        return bool(self.specs())

    def specs(self) -> dict[str, dict[str, Any]]:
        """Each set filter as a filter spec on ``datasets``, by facet name."""
        specs: dict[str, dict[str, Any]] = {}
        if self.q:
            specs["q"] = {"_and": [_term_spec(t) for t in search_terms(self.q)]}
        if self.ground_truth:
            specs["ground_truth"] = {"runs": {"annotations": {"ground_truth_status": True}}}
        if self.author:
            specs["author"] = {"authors": {"name": {"_contains": self.author}}}
        if self.dataset_id:
            specs["dataset_id"] = {"id": {"_in": list(self.dataset_id)}}
        if self.organism:
            specs["organism"] = {"organism_name": {"_in": list(self.organism)}}
        if self.sample_type:
            specs["sample_type"] = {"sample_type": {"_in": list(self.sample_type)}}
        if self.kind:
            specs["kind"] = {"runs": {"kind": {"_in": list(self.kind)}}}
        if self.microscope:
            specs["microscope"] = _tilt({"microscope_model": {"_in": list(self.microscope)}})
        if self.camera:
            specs["camera"] = _tilt({"camera_model": {"_in": list(self.camera)}})
        if quality := _range(self.quality_min, self.quality_max):
            specs["quality"] = _tilt({"tilt_series_quality": quality})
        if tilt := _range(self.tilt_min, self.tilt_max):
            specs["tilt"] = _tilt({"tilt_range": tilt})
        if voxel := _range(self.voxel_min, self.voxel_max):
            specs["voxel"] = {"runs": {"tomogram_voxel_spacings": {"voxel_spacing": voxel}}}
        if self.object:
            specs["object"] = {"runs": {"annotations": {"object_name": {"_in": list(self.object)}}}}
        if self.method_type:
            specs["method_type"] = {
                "runs": {"annotations": {"method_type": {"_in": list(self.method_type)}}}
            }
        return specs

    def where_spec(self, *, without: str = "") -> dict[str, Any]:
        """All filters as one spec (the API's ``where``), leaving out the facet ``without``."""
        return {"_and": [spec for name, spec in self.specs().items() if name != without]}

    def condition(self, *, without: str = "", guards: Guards | None = None) -> ColumnElement[bool]:
        return where(_DATASETS, self.where_spec(without=without), guards=guards)


def _visible(guards: Guards | None) -> ColumnElement[bool]:
    """The condition on :class:`~cryocurate.catalog.models.Annotation` rows ``guards`` admit."""
    return (guards or {}).get("annotations", true())


def _replace(query: BrowseQuery, **changes: Any) -> BrowseQuery:
    values = {f.name: getattr(query, f.name) for f in fields(query)}
    values.update(changes)
    return BrowseQuery(**values)


def _num(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _term_spec(term: str) -> dict[str, Any]:
    contains = {"_contains": term}
    return {
        "_or": [
            {"title": contains},
            {"description": contains},
            {"authors": {"name": contains}},
            {"runs": {"annotations": {"object_name": contains}}},
        ]
    }


def _tilt(spec: dict[str, Any]) -> dict[str, Any]:
    return {"runs": {"tiltseries": spec}}


def _range(lo: float | None, hi: float | None) -> dict[str, Any] | None:
    ops: dict[str, Any] = {}
    if lo is not None:
        ops["_gte"] = lo
    if hi is not None:
        ops["_lte"] = hi
    return ops or None


# ----------------------------------------------------------------------------------------------
# The answer.


@dataclass(frozen=True)
class FacetValue:
    value: str
    label: str
    count: int
    selected: bool


@dataclass(frozen=True)
class DatasetRow:
    id: int
    title: str
    organism_name: str | None
    sample_type: str | None
    deposition_id: int | None
    n_runs: int
    objects: list[str]
    has_ground_truth: bool
    empiar: list[str]
    key_photo: str | None
    kinds: list[str]


@dataclass(frozen=True)
class BrowseResult:
    total: int
    page: int
    per_page: int
    pages: int
    datasets: list[DatasetRow]
    facets: dict[str, list[FacetValue]]
    ground_truth_count: int
    ranges: dict[str, dict[str, float | None]]
    where: dict[str, Any]
    all_datasets: int = 0
    terms: list[str] = field(default_factory=list)


def browse(session: Session, query: BrowseQuery, guards: Guards | None = None) -> BrowseResult:
    """The page of datasets matching ``query``, with the filter panel's counts, all of them
    over the annotations ``guards`` admit (see the module's docstring).

    Each set filter is one query for the ids of the datasets it admits (at most the catalog's
    datasets, a few thousand); the page, the total and every facet's base set are
    intersections of those sets, so a filter's SQL runs once however many facets need it."""
    summary = facet_summary(session, guards)
    admitted = {
        name: set(
            session.scalars(select(m.Dataset.id).where(where(_DATASETS, spec, guards=guards)))
        )
        for name, spec in query.specs().items()
        if name != "q"
    }
    if query.q:
        admitted["q"] = _search_ids(session, summary, search_terms(query.q))

    def matching(without: str = "") -> set[int]:
        found = set(summary.dataset_ids)
        for name, ids in admitted.items():
            if name != without:
                found &= ids
        return found

    result = sorted(matching())
    total = len(result)
    pages = max(1, -(-total // query.per_page))
    page = min(query.page, pages)
    shown = result[(page - 1) * query.per_page : page * query.per_page]
    return BrowseResult(
        total=total,
        page=page,
        per_page=query.per_page,
        pages=pages,
        datasets=dataset_rows(session, shown, guards),
        facets=facets(summary, query, matching),
        ground_truth_count=len(matching("ground_truth") & summary.values["ground_truth"]["1"]),
        ranges=summary.ranges,
        where=query.where_spec(),
        all_datasets=len(summary.dataset_ids),
        terms=search_terms(query.q),
    )


def _search_ids(session: Session, summary: FacetSummary, terms: Sequence[str]) -> set[int]:
    """Datasets matching every term, as :func:`_term_spec` defines it, but faster: a term is
    matched against the few distinct object names in the summary, not the annotations."""
    found: set[int] | None = None
    for term in terms:
        contains = {"_contains": term}
        spec = {
            "_or": [
                {"title": contains},
                {"description": contains},
                {"authors": {"name": contains}},
            ]
        }
        ids = set(session.scalars(select(m.Dataset.id).where(where(_DATASETS, spec))))
        needle = term.lower()
        for name, datasets in summary.values["object"].items():
            if needle in name.lower():
                ids |= datasets
        found = ids if found is None else found & ids
    return found or set()


def dataset_rows(
    session: Session, ids: Sequence[int], guards: Guards | None = None
) -> list[DatasetRow]:
    """The table rows of datasets ``ids`` (in that order): a fixed number of queries."""
    if not ids:
        return []
    datasets = {d.id: d for d in session.scalars(select(m.Dataset).where(m.Dataset.id.in_(ids)))}
    n_runs: dict[int, int] = {}
    kinds: dict[int, list[str]] = {}
    for dataset_id, kind, n in session.execute(
        select(m.Run.dataset_id, m.Run.kind, func.count())
        .where(m.Run.dataset_id.in_(ids))
        .group_by(m.Run.dataset_id, m.Run.kind)
    ):
        n_runs[dataset_id] = n_runs.get(dataset_id, 0) + int(n)
        kinds.setdefault(dataset_id, []).append(str(getattr(kind, "value", kind)))
    objects: dict[int, set[str]] = {}
    ground_truth: set[int] = set()
    for dataset_id, name, gt in session.execute(
        select(m.Run.dataset_id, m.Annotation.object_name, m.Annotation.ground_truth_status)
        .join(m.Annotation, m.Annotation.run_id == m.Run.id)
        .where(m.Run.dataset_id.in_(ids), _visible(guards))
        .distinct()
    ):
        objects.setdefault(dataset_id, set()).add(name)
        if gt:
            ground_truth.add(dataset_id)
    empiar: dict[int, set[str]] = {}
    for dataset_id, entry in session.execute(
        select(m.Run.dataset_id, m.TiltSeries.related_empiar_entry)
        .join(m.TiltSeries, m.TiltSeries.run_id == m.Run.id)
        .where(m.Run.dataset_id.in_(ids), m.TiltSeries.related_empiar_entry.is_not(None))
        .distinct()
    ):
        empiar.setdefault(dataset_id, set()).add(entry)
    photos = key_photos(session, ids)
    rows = []
    for dataset_id in ids:
        d = datasets[dataset_id]
        entries = empiar.get(dataset_id, set()) | {
            e for e in _split(d.related_database_entries) if e.upper().startswith("EMPIAR")
        }
        rows.append(
            DatasetRow(
                id=d.id,
                title=d.title,
                organism_name=d.organism_name,
                sample_type=d.sample_type.value if d.sample_type else None,
                deposition_id=d.deposition_id,
                n_runs=n_runs.get(dataset_id, 0),
                objects=sorted(objects.get(dataset_id, set()), key=str.lower),
                has_ground_truth=dataset_id in ground_truth,
                empiar=sorted(entries),
                key_photo=photos.get(dataset_id),
                kinds=sorted(kinds.get(dataset_id, [])),
            )
        )
    return rows


def key_photos(session: Session, ids: Sequence[int]) -> dict[int, str]:
    """A picture per dataset, as a URL: a tomogram's key photo, else a class average."""
    from cryocurate.store import layout

    photos: dict[int, str] = {}
    for dataset_id, url in session.execute(
        select(
            m.Run.dataset_id,
            func.min(func.coalesce(m.Tomogram.key_photo_thumbnail_url, m.Tomogram.key_photo_url)),
        )
        .join(m.Tomogram, m.Tomogram.run_id == m.Run.id)
        .where(m.Run.dataset_id.in_(ids))
        .group_by(m.Run.dataset_id)
    ):
        if url:
            photos[dataset_id] = url if "://" in url else f"/data/{url.lstrip('/')}"
    missing = [i for i in ids if i not in photos]
    if missing:
        for dataset_id, run_name in session.execute(
            select(m.Run.dataset_id, func.min(m.Run.name))
            .where(m.Run.dataset_id.in_(missing), m.Run.kind == m.RunKind.class2d)
            .group_by(m.Run.dataset_id)
        ):
            photos[dataset_id] = f"/data/{dataset_id}/{run_name}/{layout.class_image_relpath(0)}"
    return photos


def _split(text: str | None) -> list[str]:
    return [p.strip() for p in re.split(r"[,;\s]+", text or "") if p.strip()]


# ----------------------------------------------------------------------------------------------
# Facets.

SAMPLE_TYPE_LABELS = {t.value: t.value.replace("_", " ") for t in m.SampleType}
KIND_LABELS = {"class2d": "2D classification", "tomography": "Tomography"}


@dataclass
class FacetSummary:
    """Which datasets have which facet values: facet → value → dataset ids. Small (a few
    thousand datasets × a few dozen values) and built by 5 queries, so it is kept per engine
    and rebuilt when the catalog's row counts change, or in the background after
    :data:`SUMMARY_TTL_S`."""

    dataset_ids: frozenset[int]
    values: dict[str, dict[str, set[int]]]
    ranges: dict[str, dict[str, float | None]]
    fingerprint: tuple[Any, ...]
    built: float


SUMMARY_TTL_S = 30.0
_SummaryKey = tuple[int, str]  # the engine's id, the guard's SQL
_SUMMARIES: dict[_SummaryKey, FacetSummary] = {}
_SUMMARY_LOCK = threading.Lock()


def _fingerprint(session: Session) -> tuple[Any, ...]:
    parts: list[Any] = []
    for model in (m.Dataset, m.Run, m.Annotation, m.TiltSeries, m.TomogramVoxelSpacing):
        parts += [func.count(model.id), func.max(model.id)]
    subqueries = [select(p).scalar_subquery() for p in parts]
    # Closing a campaign publishes its consensus (a guard admits it): counts change at once.
    closed = select(func.count(m.Campaign.id)).where(m.Campaign.closed.is_(True))
    subqueries.append(closed.scalar_subquery())
    return tuple(session.execute(select(*subqueries)).one())


def _guard_key(session: Session, guards: Guards | None) -> str:
    """The guards as SQL text, so summaries built under different guards never mix."""
    if not guards:
        return ""
    dialect = session.get_bind().dialect
    return "\n".join(
        f"{name}: " + str(cond.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        for name, cond in sorted(guards.items())
    )


def facet_summary(session: Session, guards: Guards | None = None) -> FacetSummary:
    """The catalog's facet summary over the annotations ``guards`` admit (cached per engine
    and guard; see :class:`FacetSummary`). Pass a guard that does not depend on the visitor
    (the web passes what an anonymous visitor may see), or each visitor gets a cache entry.

    Rows added or removed change the fingerprint and rebuild it at once, so new data shows
    in the counts immediately. Older than :data:`SUMMARY_TTL_S` with the same fingerprint
    (edits that change values but no counts), it is still served while a background thread
    rebuilds it: no visitor waits for the periodic refresh.
    """
    engine = session.get_bind()
    key = (id(engine), _guard_key(session, guards))
    fingerprint = _fingerprint(session)
    with _SUMMARY_LOCK:
        cached = _SUMMARIES.get(key)
        if cached is not None and cached.fingerprint == fingerprint:
            if time.monotonic() - cached.built >= SUMMARY_TTL_S and key not in _REFRESHING:
                _REFRESHING.add(key)
                threading.Thread(
                    target=_refresh,
                    args=(engine, key, guards),
                    daemon=True,
                    name="facet-refresh",
                ).start()
            return cached
    summary = _build_summary(session, fingerprint, guards)
    with _SUMMARY_LOCK:
        _SUMMARIES[key] = summary
    return summary


_REFRESHING: set[_SummaryKey] = set()


def _refresh(engine: Any, key: _SummaryKey, guards: Guards | None) -> None:
    try:
        with Session(engine) as session:
            summary = _build_summary(session, _fingerprint(session), guards)
        with _SUMMARY_LOCK:
            _SUMMARIES[key] = summary
    finally:
        with _SUMMARY_LOCK:
            _REFRESHING.discard(key)


FACETS = (
    "organism",
    "sample_type",
    "kind",
    "object",
    "method_type",
    "ground_truth",
    "microscope",
    "camera",
    "quality",
)


def _build_summary(
    session: Session, fingerprint: tuple[Any, ...], guards: Guards | None = None
) -> FacetSummary:
    values: dict[str, dict[str, set[int]]] = {name: {} for name in FACETS}
    values["ground_truth"]["1"] = set()

    def add(name: str, value: Any, dataset_id: int) -> None:
        if value is not None:
            values[name].setdefault(str(_value(value)), set()).add(dataset_id)

    ids = set()
    for dataset_id, organism, sample_type in session.execute(
        select(m.Dataset.id, m.Dataset.organism_name, m.Dataset.sample_type)
    ):
        ids.add(dataset_id)
        add("organism", organism, dataset_id)
        add("sample_type", sample_type, dataset_id)
    for dataset_id, kind in session.execute(select(m.Run.dataset_id, m.Run.kind).distinct()):
        add("kind", kind, dataset_id)
    for dataset_id, name, method, gt in session.execute(
        select(
            m.Run.dataset_id,
            m.Annotation.object_name,
            m.Annotation.method_type,
            m.Annotation.ground_truth_status,
        )
        .join(m.Annotation, m.Annotation.run_id == m.Run.id)
        .where(_visible(guards))
        .distinct()
    ):
        add("object", name, dataset_id)
        add("method_type", method, dataset_id)
        if gt:
            values["ground_truth"]["1"].add(dataset_id)
    for dataset_id, microscope, camera, quality in session.execute(
        select(
            m.Run.dataset_id,
            m.TiltSeries.microscope_model,
            m.TiltSeries.camera_model,
            m.TiltSeries.tilt_series_quality,
        )
        .join(m.TiltSeries, m.TiltSeries.run_id == m.Run.id)
        .distinct()
    ):
        add("microscope", microscope, dataset_id)
        add("camera", camera, dataset_id)
        add("quality", quality, dataset_id)
    return FacetSummary(frozenset(ids), values, ranges(session), fingerprint, time.monotonic())


def facets(
    summary: FacetSummary, query: BrowseQuery, matching: Callable[[str], set[int]]
) -> dict[str, list[FacetValue]]:
    """Per facet, its values with how many datasets each would match (the other filters
    applied); selected values are listed even when they match nothing."""
    selected_quality = (
        [str(q) for q in range(1, 6) if _in_range(q, query.quality_min, query.quality_max)]
        if query.quality_min or query.quality_max
        else []
    )
    selected: dict[str, Sequence[str]] = {
        "organism": query.organism,
        "sample_type": query.sample_type,
        "kind": query.kind,
        "object": query.object,
        "method_type": query.method_type,
        "microscope": query.microscope,
        "camera": query.camera,
        "quality": selected_quality,
    }
    labels: dict[str, Mapping[str, str]] = {
        "sample_type": SAMPLE_TYPE_LABELS,
        "kind": KIND_LABELS,
        "quality": {
            str(q): f"{q} · {text.split(':')[0]}" for q, text in m.TILT_SERIES_QUALITY.items()
        },
    }
    out: dict[str, list[FacetValue]] = {}
    for name, chosen in selected.items():
        base = matching(name)
        counts = {value: len(ids & base) for value, ids in summary.values[name].items()}
        for value in chosen:
            counts.setdefault(value, 0)
        if name == "quality":
            order = sorted(counts.items(), key=lambda kv: -int(kv[0]))
        else:
            order = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0].lower()))
        names = labels.get(name, {})
        out[name] = [FacetValue(v, names.get(v, v), n, v in chosen) for v, n in order]
    return out


def _in_range(value: float, lo: float | None, hi: float | None) -> bool:
    return (lo is None or value >= lo) and (hi is None or value <= hi)


def ranges(session: Session) -> dict[str, dict[str, float | None]]:
    """The catalog's spans of tilt range and voxel spacing, for the inputs' hints."""
    tilt = session.execute(
        select(func.min(m.TiltSeries.tilt_range), func.max(m.TiltSeries.tilt_range))
    ).one()
    voxel = session.execute(
        select(
            func.min(m.TomogramVoxelSpacing.voxel_spacing),
            func.max(m.TomogramVoxelSpacing.voxel_spacing),
        )
    ).one()
    return {
        "tilt": {"min": tilt[0], "max": tilt[1]},
        "voxel": {"min": voxel[0], "max": voxel[1]},
    }


# ----------------------------------------------------------------------------------------------
# The dataset overview page.

AUTHOR_FIELDS = (
    "name",
    "email",
    "orcid",
    "affiliation_name",
    "affiliation_address",
    "affiliation_identifier",
    "corresponding_author_status",
    "primary_author_status",
)


def _author(a: m.AuthorFields) -> dict[str, Any]:
    return {name: getattr(a, name) for name in AUTHOR_FIELDS}


def _value(v: Any) -> Any:
    return getattr(v, "value", v)


@dataclass(frozen=True)
class RunRow:
    id: int
    name: str
    kind: str
    tilt_series_quality: int | None
    objects: list[str]
    has_ground_truth: bool
    n_annotations: int
    # 2D classification runs: what the dataset page shows instead of tilt-series columns.
    n_classes: int | None = None
    n_particles: int | None = None
    software: str | None = None


def dataset_overview(
    session: Session,
    dataset_id: int,
    runs_page: int = 1,
    per_page: int = RUNS_PER_PAGE,
    guards: Guards | None = None,
) -> dict[str, Any] | None:
    """Everything the Dataset Overview page shows, or None if there is no such dataset; its
    annotation counts and objects are of the annotations ``guards`` admit."""
    d = session.get(m.Dataset, dataset_id)
    if d is None:
        return None
    deposition = session.get(m.Deposition, d.deposition_id) if d.deposition_id else None
    in_dataset = m.Run.dataset_id == dataset_id
    ts = session.execute(
        select(
            func.min(m.TiltSeries.tilt_min),
            func.max(m.TiltSeries.tilt_max),
            func.min(m.TiltSeries.tilt_series_quality),
            func.max(m.TiltSeries.tilt_series_quality),
            func.count(),
        )
        .join(m.Run, m.Run.id == m.TiltSeries.run_id)
        .where(in_dataset)
    ).one()

    def distinct_values(column: Any, join: Any) -> list[str]:
        stmt = (
            select(column)
            .select_from(m.Run)
            .join(join, join.run_id == m.Run.id)
            .where(in_dataset, column.is_not(None))
            .distinct()
        )
        if join is m.Annotation:
            stmt = stmt.where(_visible(guards))
        return sorted({str(_value(v)) for v in session.scalars(stmt)}, key=str.lower)

    n_runs = int(session.scalar(select(func.count()).where(in_dataset)) or 0)
    n_annotations = int(
        session.scalar(
            select(func.count())
            .select_from(m.Annotation)
            .join(m.Run, m.Run.id == m.Annotation.run_id)
            .where(in_dataset, _visible(guards))
        )
        or 0
    )
    pages = max(1, -(-n_runs // per_page))
    runs_page = max(1, min(runs_page, pages))
    microscopes = distinct_values(m.TiltSeries.microscope_model, m.TiltSeries)
    cameras = distinct_values(m.TiltSeries.camera_model, m.TiltSeries)
    spacings = [
        _num(v)
        for v in sorted(
            session.scalars(
                select(m.TomogramVoxelSpacing.voxel_spacing)
                .join(m.Run, m.Run.id == m.TomogramVoxelSpacing.run_id)
                .where(in_dataset)
                .distinct()
            )
        )
    ]
    objects = distinct_values(m.Annotation.object_name, m.Annotation)
    empiar = distinct_values(m.TiltSeries.related_empiar_entry, m.TiltSeries)
    groups = [
        {
            "title": "Overview",
            "items": [
                ("Dataset ID", d.id),
                ("Title", d.title),
                ("Description", d.description),
                ("Lab", d.lab),
                ("Deposition", f"{deposition.id}: {deposition.title}" if deposition else None),
                ("Deposition date", d.deposition_date),
                ("Release date", d.release_date),
                ("Last modified", d.last_modified_date),
                ("Runs", n_runs),
                ("Annotations", n_annotations),
            ],
        },
        {
            "title": "Sample and experimental conditions",
            "items": [
                ("Sample type", _value(d.sample_type)),
                ("Organism", d.organism_name),
                ("Organism taxonomy id", d.organism_taxid),
                ("Sample preparation", d.sample_preparation),
                ("Grid preparation", d.grid_preparation),
                ("Other setup", d.other_setup),
            ],
        },
        {
            "title": "Tilt series and tomograms",
            "items": [
                ("Microscopes", ", ".join(microscopes) or None),
                ("Cameras", ", ".join(cameras) or None),
                ("Tilt series", ts[4] or None),
                (
                    "Tilt range (°)",
                    f"{_num(ts[0])} to {_num(ts[1])}" if ts[0] is not None else None,
                ),
                (
                    "Tilt-series quality",
                    (f"{ts[2]}–{ts[3]}" if ts[2] != ts[3] else str(ts[2]))
                    if ts[2] is not None
                    else None,
                ),
                ("Voxel spacings (Å)", ", ".join(spacings) or None),
                ("Annotated objects", ", ".join(objects) or None),
            ],
        },
        {
            "title": "Cross-references",
            "items": [
                ("Publications", d.dataset_publications),
                ("Related database entries", d.related_database_entries),
                ("Related EMPIAR entries (tilt series)", ", ".join(empiar) or None),
            ],
        },
    ]
    run_rows = run_table(session, dataset_id, runs_page, per_page, guards)
    return {
        "dataset": {
            **_DATASETS.to_dict({f: getattr(d, f) for f in _DATASETS.fields}),
            "deposition": {"id": deposition.id, "title": deposition.title} if deposition else None,
        },
        "groups": [
            {"title": g["title"], "items": [{"label": k, "value": v} for k, v in g["items"]]}
            for g in groups
        ],
        "authors": [_author(a) for a in d.authors],
        "funding": [
            {"funding_agency_name": f.funding_agency_name, "grant_id": f.grant_id}
            for f in d.funding_sources
        ],
        "n_runs": n_runs,
        "n_annotations": n_annotations,
        "runs": run_rows,
        "runs_page": runs_page,
        "runs_pages": pages,
        "key_photo": key_photos(session, [dataset_id]).get(dataset_id),
    }


def run_table(
    session: Session, dataset_id: int, page: int, per_page: int, guards: Guards | None = None
) -> list[RunRow]:
    """One page of a dataset's runs with quality and the annotated objects (of the annotations
    ``guards`` admit): 3 queries.

    Runs are in natural order of their names (``P1_J2`` before ``P1_J10``, as people count
    jobs), then by id. SQL cannot sort that way on both databases, so the names and ids of
    all the dataset's runs are read and the page is cut here: two short columns per run."""
    listed = session.execute(
        select(m.Run.id, m.Run.name, m.Run.kind).where(m.Run.dataset_id == dataset_id)
    ).all()
    listed.sort(key=lambda r: (natural_key(r.name), r.id))
    runs = listed[(page - 1) * per_page : page * per_page]
    ids = [r.id for r in runs]
    quality: dict[int, int] = {}
    objects: dict[int, set[str]] = {}
    gt: set[int] = set()
    n_annotations: dict[int, int] = {}
    if ids:
        for run_id, q in session.execute(
            select(m.TiltSeries.run_id, func.max(m.TiltSeries.tilt_series_quality))
            .where(m.TiltSeries.run_id.in_(ids))
            .group_by(m.TiltSeries.run_id)
        ):
            if q is not None:
                quality[run_id] = int(q)
        for run_id, name, is_gt, n in session.execute(
            select(
                m.Annotation.run_id,
                m.Annotation.object_name,
                m.Annotation.ground_truth_status,
                func.count(),
            )
            .where(m.Annotation.run_id.in_(ids), _visible(guards))
            .group_by(
                m.Annotation.run_id, m.Annotation.object_name, m.Annotation.ground_truth_status
            )
        ):
            objects.setdefault(run_id, set()).add(name)
            n_annotations[run_id] = n_annotations.get(run_id, 0) + int(n)
            if is_gt:
                gt.add(run_id)
    jobs = (
        {
            job.run_id: job
            for job in session.scalars(select(m.Class2DJob).where(m.Class2DJob.run_id.in_(ids)))
        }
        if ids
        else {}
    )
    return [
        RunRow(
            id=r.id,
            name=r.name,
            kind=str(_value(r.kind)),
            tilt_series_quality=quality.get(r.id),
            objects=sorted(objects.get(r.id, set()), key=str.lower),
            has_ground_truth=r.id in gt,
            n_annotations=n_annotations.get(r.id, 0),
            n_classes=jobs[r.id].n_classes if r.id in jobs else None,
            n_particles=jobs[r.id].n_particles if r.id in jobs else None,
            software=jobs[r.id].software if r.id in jobs else None,
        )
        for r in runs
    ]


# ----------------------------------------------------------------------------------------------
# The deposition page.

MAX_DEPOSITION_DATASETS = 500


def deposition_overview(
    session: Session, deposition_id: int, guards: Guards | None = None
) -> dict[str, Any] | None:
    """A deposition, its authors and the datasets submitted with it (their objects of the
    annotations ``guards`` admit), or None."""
    dep = session.get(m.Deposition, deposition_id)
    if dep is None:
        return None
    ids = list(
        session.scalars(
            select(m.Dataset.id)
            .where(m.Dataset.deposition_id == deposition_id)
            .order_by(m.Dataset.id)
            .limit(MAX_DEPOSITION_DATASETS)
        )
    )
    n_datasets = int(
        session.scalar(
            select(func.count())
            .select_from(m.Dataset)
            .where(m.Dataset.deposition_id == deposition_id)
        )
        or 0
    )
    ent = entity("depositions")
    return {
        "deposition": ent.to_dict({f: getattr(dep, f) for f in ent.fields}),
        "authors": [_author(a) for a in dep.authors],
        "datasets": dataset_rows(session, ids, guards),
        "n_datasets": n_datasets,
        "n_runs": int(
            session.scalar(
                select(func.count())
                .select_from(m.Run)
                .join(m.Dataset, m.Dataset.id == m.Run.dataset_id)
                .where(m.Dataset.deposition_id == deposition_id)
            )
            or 0
        ),
    }
