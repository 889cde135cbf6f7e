"""Read queries behind the Run Overview page and the tomogram viewer.

Everything returned is plain data (dicts, lists, numbers, strings) so one context serves both
the HTML page and its JSON twin. Three queries:

- :func:`run_overview` — a run's summary (a subset of its metadata, its files counted by type,
  the tilt-series quality), its tomograms (for the Download Run dialog), its annotations
  (for the annotations table, each with its metadata and files) and, for a ``class2d`` run,
  its class averages (for the gallery), each with its grades.
- :func:`class_grades` — "grades per class average" of some runs, gathered from the runs' grade
  annotations by kind (see below).
- :func:`viewer_setup` — one tomogram (by run or by tomogram id) with the annotation layers
  that can be drawn on it, and which of them are shown by default (:func:`default_layers`).
- :func:`tomogram_files` / :func:`annotation_files` — the stored paths the slice and overlay
  endpoints read.

Default layers follow the seed's rule ("display as many annotations as possible without
overlap or occlusion"): per object, ground truth is shown before predictions (a curator's
pick first, then ground truth, then the rest hidden); a segmentation mask is hidden by default
when point annotations are shown, so a whole-cytoplasm mask never covers particle picks,
unless a curator recommended it.

Grades in the gallery come from annotations, as the design says grades are: a campaign's
consensus is a hybrid ground-truth annotation of its run, a model's predicted grades (a later
issue) an automated one. :func:`class_grades` is the one query behind every place a class
average shows a grade (the gallery, the per-run grading summary); it reads the kind of each
grade annotation from its method type (:data:`GRADE_KINDS`) and answers one row shape for all
kinds, so a new source of grades is a new kind of annotation, not a new branch in the pages.
Which annotations a viewer may see is decided above this layer (the caller passes their ids).
A tile reads "kept" or "dropped" as a cryoSPARC Select 2D gallery does: the best three levels
of the scale are kept (A–C on the letter scale; 3–5 on the tilt-series scale).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session, selectinload

from cryocurate.catalog.annotation_metadata import annotation_metadata
from cryocurate.catalog.filters import Guards
from cryocurate.catalog.models import (
    TILT_SERIES_QUALITY,
    Annotation,
    AnnotationMethodType,
    AnnotationShape,
    Campaign,
    CampaignItem,
    ConsensusGrade,
    GradeAnnotation,
    GradeScale,
    ObjectSetting,
    ReviewDecision,
    Run,
    RunKind,
    Tomogram,
)
from cryocurate.store import layout

#: Shapes drawn as points, and as mask outlines.
POINT_SHAPES = ("Point", "OrientedPoint", "InstanceSegmentation")
MASK_SHAPES = ("SegmentationMask", "InstanceSegmentationMask")
#: Radius (voxels of the annotation's spacing) of a point's marker when the object has none.
DEFAULT_POINT_RADIUS_VOX = 5.0
#: Colours of the overlay layers, in order (distinguishable, readable on grey).
LAYER_COLOURS = ("#ffbf00", "#00c8ff", "#ff4fd8", "#7dff5a", "#ff7a1a", "#b58cff")


def file_url(path: str | None) -> str | None:
    """The ``/files/…`` URL of a path of the data tree (None stays None)."""
    if not path:
        return None
    if "://" in path:
        return path
    return "/files/" + path.lstrip("/")


def _quality(q: int | None) -> dict[str, Any] | None:
    if q is None:
        return None
    return {"score": q, "label": TILT_SERIES_QUALITY.get(q, "")}


def _tomogram_row(t: Tomogram) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "voxel_spacing": t.voxel_spacing,
        "size": {"x": t.size_x, "y": t.size_y, "z": t.size_z},
        "processing": t.processing.value if t.processing else None,
        "reconstruction_method": t.reconstruction_method.value if t.reconstruction_method else None,
        "reconstruction_software": t.reconstruction_software,
        "ctf_corrected": t.ctf_corrected,
        "is_visualization_default": t.is_visualization_default,
        "mrc_url": file_url(t.mrc_file),
        "file_size_mrc": t.file_size_mrc,
        "omezarr_url": file_url(t.omezarr_dir),
        "file_size_omezarr": t.file_size_omezarr,
        "zip_url": f"/download/tomogram/{t.id}.zip",
        "key_photo_url": file_url(t.key_photo_thumbnail_url or t.key_photo_url),
        "view_url": f"/tomograms/{t.id}/view",
    }


def _file_rows(a: Annotation) -> list[dict[str, Any]]:
    return [
        {
            "id": f.id,
            "shape_type": shape.shape_type.value,
            "format": f.format,
            "path": f.path,
            "url": file_url(f.path),
            "file_size": f.file_size,
            "voxel_spacing": f.tomogram_voxel_spacing.voxel_spacing
            if f.tomogram_voxel_spacing
            else None,
            "is_visualization_default": f.is_visualization_default,
        }
        for shape in a.annotation_shapes
        for f in shape.annotation_files
    ]


def _download_file(files: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The one file a Download button fetches: ndjson for points, MRC for masks."""
    for wanted in ("ndjson", "mrc"):
        for f in files:
            if f["format"] == wanted:
                return f
    return None


def _grading_row(a: Annotation, grading: dict[str, Any]) -> dict[str, Any]:
    """What a grade annotation adds to its row: whose grades, in which campaign, how many,
    and the download of its ndjson (written from the database when asked: grades change)."""
    return {
        "campaign_id": grading["campaign_id"],
        "campaign_name": grading["campaign_name"],
        "labeller": grading["labeller_name"],  # None: the campaign's consensus
        "grades": grading["grades"],
        "download_url": f"/download/annotation/{a.id}.ndjson",
        "overview_url": f"/campaigns/{grading['campaign_id']}/overview",
    }


def _annotation_row(a: Annotation, grading: dict[str, Any] | None = None) -> dict[str, Any]:
    """One row of the annotations table; ``grading`` (from
    :func:`~cryocurate.grading.annotations.grade_annotations_of_run`) marks a grade
    annotation, whose only download is its grades' ndjson (it has no files in the tree)."""
    files = _file_rows(a)
    meta_files = [
        {"format": f["format"], "path": f["path"].rsplit("/", 1)[-1], "shape": f["shape_type"]}
        for f in files
    ]
    return {
        "id": a.id,
        "object_name": a.object_name,
        "object_id": a.object_id,
        "object_count": a.object_count,
        "shape_types": [s.shape_type.value for s in a.annotation_shapes],
        "method_type": a.method_type.value,
        "annotation_method": a.annotation_method,
        "confidence_precision": a.confidence_precision,
        "confidence_recall": a.confidence_recall,
        "ground_truth_status": a.ground_truth_status,
        "is_curator_recommended": a.is_curator_recommended,
        "ground_truth_annotation_id": a.ground_truth_annotation_id,
        "metadata_url": file_url(a.metadata_path),
        "metadata": annotation_metadata(a, meta_files),
        "files": files,
        "download": _download_file(files),
        "zip_url": f"/download/annotation/{a.id}.zip",
        "grading": _grading_row(a, grading) if grading is not None else None,
    }


def _summary(run: Run) -> dict[str, Any]:
    """A subset of the run's metadata (tilt series, tomograms) as label → value."""
    facts: dict[str, Any] = {"Dataset": run.dataset.title, "Run ID": run.id, "Kind": run.kind.value}
    ts = run.tiltseries[0] if run.tiltseries else None
    if ts is not None:
        if ts.microscope_manufacturer or ts.microscope_model:
            mf = ts.microscope_manufacturer.value if ts.microscope_manufacturer else ""
            facts["Microscope"] = " ".join(p for p in (mf, ts.microscope_model or "") if p)
        if ts.acceleration_voltage:
            facts["Acceleration voltage"] = f"{ts.acceleration_voltage / 1000:g} kV"
        if ts.tilt_min is not None and ts.tilt_max is not None:
            facts["Tilt range"] = f"{ts.tilt_min:g}° to {ts.tilt_max:g}°"
        if ts.tilt_step:
            facts["Tilt step"] = f"{ts.tilt_step:g}°"
        if ts.total_flux:
            facts["Total flux"] = f"{ts.total_flux:g} e⁻/Å²"
        if ts.camera_manufacturer or ts.camera_model:
            facts["Camera"] = " ".join(
                p for p in (ts.camera_manufacturer or "", ts.camera_model or "") if p
            )
    spacings = [vs.voxel_spacing for vs in run.tomogram_voxel_spacings]
    if spacings:
        facts["Voxel spacings"] = ", ".join(f"{v:g} Å" for v in spacings)
    if run.tomograms:
        t = min(run.tomograms, key=lambda t: t.voxel_spacing)
        facts["Tomogram size"] = f"{t.size_x} × {t.size_y} × {t.size_z} voxels"
        if t.reconstruction_method:
            facts["Reconstruction"] = t.reconstruction_method.value
    job = run.class2d_job
    if job is not None:
        facts["Software"] = f"{job.software} (iteration {job.iteration})"
        if job.project_uid or job.job_uid:
            facts["Job"] = " ".join(p for p in (job.project_uid, job.job_uid) if p)
        facts["Pixel size"] = f"{job.pixel_size_a:.3g} Å"
        facts["Box size"] = f"{job.box_size} px"
        facts["Classes"] = job.n_classes
        facts["Particles"] = f"{job.n_particles:,}"
    return facts


def _file_counts(run: Run) -> list[dict[str, Any]]:
    """The run's files counted by type (as the portal's summary lists them)."""
    counts: Counter[str] = Counter()
    for ts in run.tiltseries:
        if ts.mrc_file:
            counts["Tilt series (MRC)"] += 1
        if ts.omezarr_dir:
            counts["Tilt series (OME-Zarr)"] += 1
        if ts.angle_list:
            counts["Tilt angles (rawtlt)"] += 1
    for t in run.tomograms:
        if t.mrc_file:
            counts["Tomogram (MRC)"] += 1
        if t.omezarr_dir:
            counts["Tomogram (OME-Zarr)"] += 1
    for a in run.annotations:
        for shape in a.annotation_shapes:
            for f in shape.annotation_files:
                counts[f"Annotation ({f.format})"] += 1
    if run.kind is RunKind.class2d:
        n = len(run.class_averages)
        if n:
            counts["Class average images (PNG)"] += n
            counts["Class average stack (MRCS)"] += 1
    return [{"type": k, "count": v} for k, v in counts.items()]


# ── grades per class average ────────────────────────────────────────────────────────────────

#: The kind of a run's grade annotation (one not tied to a labeller), by its method type: what
#: the gallery shows. A labeller's own grades (manual) are not shown on tiles.
GRADE_KINDS: dict[AnnotationMethodType, str] = {
    AnnotationMethodType.hybrid: "consensus",
    AnnotationMethodType.automated: "prediction",
}
#: Which kind a tile shows first when a class average has several.
KIND_ORDER = ("consensus", "prediction")
#: The levels a Select 2D reader keeps, per scale (the better three of five).
KEPT_VALUES: dict[GradeScale, frozenset[int]] = {
    GradeScale.letters: frozenset({1, 2, 3}),  # A, B, C
    GradeScale.tilt_series: frozenset({3, 4, 5}),
}


def class_grades(
    session: Session,
    run_ids: Collection[int],
    annotation_ids: Collection[int] | None = None,
    *,
    detail: bool = False,
) -> list[dict[str, Any]]:
    """Every grade a grade annotation of ``run_ids`` gives a class average, one row each:
    ``{"kind", "annotation_id", "ground_truth", "campaign_id", "campaign_name", "scale",
    "run_id", "class_average_id", "grade" (key), "value", "kept", "settled"}`` and, with
    ``detail`` (for reviewers and admins: they say how far the labellers disagree),
    ``"spread", "flagged", "n_grades"``. ``annotation_ids`` limits the rows to the annotations
    the viewer may see. Items without a final grade are left out.

    The grade is the final one: a reviewer's decision, else the stored model's. For a
    prediction annotation it is the model's grade, which a reviewer may also override."""
    if not run_ids or (annotation_ids is not None and not annotation_ids):
        return []
    final = func.coalesce(ReviewDecision.value, ConsensusGrade.model_value)
    query = (
        select(
            Annotation.id,
            Annotation.method_type,
            Annotation.ground_truth_status,
            GradeAnnotation.campaign_id,
            CampaignItem.run_id,
            CampaignItem.class_average_id,
            final,
            ReviewDecision.value,
            ConsensusGrade.spread,
            ConsensusGrade.flagged,
            ConsensusGrade.n_grades,
        )
        .join(GradeAnnotation, GradeAnnotation.annotation_id == Annotation.id)
        .join(
            CampaignItem,
            and_(
                CampaignItem.campaign_id == GradeAnnotation.campaign_id,
                CampaignItem.run_id == GradeAnnotation.run_id,
            ),
        )
        .outerjoin(
            ConsensusGrade,
            and_(
                ConsensusGrade.campaign_id == CampaignItem.campaign_id,
                ConsensusGrade.item_id == CampaignItem.id,
            ),
        )
        .outerjoin(
            ReviewDecision,
            and_(
                ReviewDecision.campaign_id == CampaignItem.campaign_id,
                ReviewDecision.item_id == CampaignItem.id,
            ),
        )
        .where(
            Annotation.run_id.in_(list(run_ids)),
            GradeAnnotation.user_id.is_(None),
            Annotation.method_type.in_(list(GRADE_KINDS)),
            CampaignItem.class_average_id.is_not(None),
            final.is_not(None),
        )
        .order_by(CampaignItem.run_id, CampaignItem.class_average_id, Annotation.id)
    )
    if annotation_ids is not None:
        query = query.where(Annotation.id.in_(list(annotation_ids)))
    rows = session.execute(query).all()
    campaigns = {
        c.id: c
        for c in session.scalars(select(Campaign).where(Campaign.id.in_({r[3] for r in rows})))
    }
    out = []
    for aid, method, gt, cid, run_id, ca_id, value, decided, spread, flagged, n in rows:
        campaign = campaigns[cid]
        keys = {int(level["value"]): str(level["key"]) for level in campaign.levels}
        row: dict[str, Any] = {
            "kind": GRADE_KINDS[method],
            "annotation_id": aid,
            "ground_truth": gt,
            "campaign_id": cid,
            "campaign_name": campaign.name,
            "scale": campaign.scale.value,
            "run_id": run_id,
            "class_average_id": ca_id,
            "grade": keys.get(int(value), str(value)),
            "value": int(value),
            "kept": int(value) in KEPT_VALUES[campaign.scale],
            "settled": decided is not None,
        }
        if detail:
            row.update(spread=spread, flagged=bool(flagged), n_grades=n or 0)
        out.append(row)
    return out


def _mark_order(mark: dict[str, Any]) -> tuple[int, int]:
    """Consensus before prediction; of two campaigns, the later one first."""
    return (KIND_ORDER.index(mark["kind"]), -mark["campaign_id"])


def _class_rows(run: Run, grades: list[dict[str, Any]]) -> list[dict[str, Any]]:
    base = f"/data/{run.dataset_id}/{run.name}/"
    by_class: dict[int, list[dict[str, Any]]] = {}
    for mark in grades:
        by_class.setdefault(mark["class_average_id"], []).append(mark)
    rows = []
    for ca in run.class_averages:
        marks = sorted(by_class.get(ca.id, []), key=_mark_order)
        rows.append(
            {
                "id": ca.id,  # what a campaign's rubric names its example images by
                "class_index": ca.class_index,
                "resolution_a": ca.resolution_a,
                "particle_count": ca.particle_count,
                "class_fraction": ca.class_fraction,
                "mean_ess": ca.mean_ess,
                "mean_posterior": ca.mean_posterior,
                "image_url": base + layout.class_image_relpath(ca.class_index),
                # The tile's grade (the first of ``grades``; None: ungraded) and every grade
                # annotation's grade of this class average, consensus first.
                "grade": marks[0] if marks else None,
                "grades": marks,
            }
        )
    return rows


def _load_run(session: Session, run_id: int) -> Run | None:
    return session.scalars(
        select(Run)
        .where(Run.id == run_id)
        .options(
            selectinload(Run.dataset),
            selectinload(Run.tiltseries),
            selectinload(Run.tomograms),
            selectinload(Run.tomogram_voxel_spacings),
            selectinload(Run.class2d_job),
            selectinload(Run.class_averages),
            selectinload(Run.annotations).selectinload(Annotation.authors),
            selectinload(Run.annotations)
            .selectinload(Annotation.annotation_shapes)
            .selectinload(AnnotationShape.annotation_files),
        )
    ).one_or_none()


def run_overview(
    session: Session,
    run_id: int,
    grade_links: Mapping[int, dict[str, Any]] | None = None,
    hidden: Collection[int] = (),
    *,
    grade_detail: bool = False,
) -> dict[str, Any] | None:
    """Everything the Run Overview page shows, or None when there is no such run.

    ``grade_links`` (annotation id → campaign, labeller, count: what
    :func:`cryocurate.grading.annotations.grade_annotations_of_run` answers) marks the
    annotations that hold grades; ``hidden`` are annotations the visitor may not see
    (:func:`cryocurate.grading.access.visible_grade_links`). The caller passes both, as
    grading is a layer above this, and only the shown annotations' grades reach the gallery.
    ``grade_detail``: add each grade's spread and flag (see :func:`class_grades`)."""
    run = _load_run(session, run_id)
    if run is None:
        return None
    grades = (
        class_grades(session, [run.id], list(grade_links or {}), detail=grade_detail)
        if run.kind is RunKind.class2d
        else []
    )
    ts = run.tiltseries[0] if run.tiltseries else None
    tomograms = sorted(run.tomograms, key=lambda t: (t.voxel_spacing, t.id))
    grade_links = grade_links or {}
    annotations = [
        _annotation_row(a, grade_links.get(a.id)) for a in run.annotations if a.id not in hidden
    ]
    return {
        "run": {
            "id": run.id,
            "name": run.name,
            "kind": run.kind.value,
            "dataset_id": run.dataset_id,
            "dataset_title": run.dataset.title,
            "created_at": run.created_at,
        },
        "summary": _summary(run),
        "quality": _quality(ts.tilt_series_quality if ts else None),
        "files": _file_counts(run),
        "tomograms": [_tomogram_row(t) for t in tomograms],
        "annotations": annotations,
        "classes": _class_rows(run, grades) if run.kind is RunKind.class2d else [],
        "grade_detail": grade_detail,
        "downloads": {
            "run_zip": f"/download/run/{run.id}.zip",
            "run_manifest": f"/download/run/{run.id}.json",
        },
        "view_url": f"/runs/{run.id}/view" if tomograms else None,
    }


# ── the viewer ──────────────────────────────────────────────────────────────────────────────


def default_layers(layers: list[dict[str, Any]]) -> set[int]:
    """Ids of the annotation layers shown by default (see the module docstring)."""
    by_object: dict[str, list[dict[str, Any]]] = {}
    for layer in layers:
        by_object.setdefault(layer["object_id"], []).append(layer)
    shown: set[int] = set()
    for group in by_object.values():
        for kind in ("points", "mask"):
            same = [g for g in group if g["kind"] == kind]
            if not same:
                continue
            picks = [g for g in same if g["is_curator_recommended"]]
            picks = picks or [g for g in same if g["ground_truth_status"]] or same[:1]
            shown.update(g["annotation_id"] for g in picks)
    points_shown = any(
        layer["kind"] == "points" and layer["annotation_id"] in shown for layer in layers
    )
    if points_shown:
        for layer in layers:
            if layer["kind"] == "mask" and not layer["is_curator_recommended"]:
                shown.discard(layer["annotation_id"])
    return shown


@dataclass(frozen=True)
class TomogramFiles:
    """What the slice endpoint needs about one tomogram."""

    id: int
    omezarr_dir: str | None
    voxel_spacing: float
    size_zyx: tuple[int, int, int]


def tomogram_files(session: Session, tomogram_id: int) -> TomogramFiles | None:
    t = session.get(Tomogram, tomogram_id)
    if t is None:
        return None
    return TomogramFiles(t.id, t.omezarr_dir, t.voxel_spacing, (t.size_z, t.size_y, t.size_x))


@dataclass(frozen=True)
class AnnotationFiles:
    """What the overlay endpoints need about one annotation: its ndjson, mask pyramid."""

    id: int
    ndjson: str | None
    mask_zarr: str | None
    voxel_spacing: float | None


def annotation_files(
    session: Session, annotation_id: int, guards: Guards | None = None
) -> AnnotationFiles | None:
    """The annotation's files for the viewer, or None (no such annotation, or one ``guards``
    hide: :func:`cryocurate.grading.access.annotation_guards`)."""
    a = session.get(Annotation, annotation_id)
    if a is None or annotation_id not in _visible_ids(session, [annotation_id], guards):
        return None
    ndjson = mask = None
    spacing: float | None = None
    for shape in a.annotation_shapes:
        for f in shape.annotation_files:
            if f.format == "ndjson" and ndjson is None:
                ndjson = f.path
            elif f.format == "zarr" and mask is None:
                mask = f.path
            if f.tomogram_voxel_spacing is not None and spacing is None:
                spacing = f.tomogram_voxel_spacing.voxel_spacing
    return AnnotationFiles(a.id, ndjson, mask, spacing)


def _point_radius(session: Session, object_id: str, voxel_spacing: float) -> float:
    setting = session.get(ObjectSetting, object_id)
    if setting is not None and setting.radius_a and voxel_spacing > 0:
        return max(1.0, setting.radius_a / voxel_spacing)
    return DEFAULT_POINT_RADIUS_VOX


def _visible_ids(session: Session, ids: Collection[int], guards: Guards | None) -> Collection[int]:
    """Those of the annotations ``ids`` that ``guards`` admit (all of them without a guard)."""
    guard = (guards or {}).get("annotations")
    if guard is None or not ids:
        return ids
    return set(session.scalars(select(Annotation.id).where(Annotation.id.in_(list(ids)), guard)))


def viewer_setup(
    session: Session,
    *,
    run_id: int | None = None,
    tomogram_id: int | None = None,
    guards: Guards | None = None,
) -> dict[str, Any] | None:
    """The tomogram to view (the run's default one, or the one named) and its layers: the
    annotations ``guards`` admit."""
    tomo: Tomogram | None
    if tomogram_id is not None:
        tomo = session.get(Tomogram, tomogram_id)
    else:
        tomo = session.scalars(
            select(Tomogram)
            .where(Tomogram.run_id == run_id)
            .order_by(Tomogram.is_visualization_default.desc(), Tomogram.voxel_spacing, Tomogram.id)
            .limit(1)
        ).one_or_none()
    if tomo is None:
        return None
    run = tomo.run
    layers: list[dict[str, Any]] = []
    admitted = _visible_ids(session, [a.id for a in run.annotations], guards)
    for a in run.annotations:
        if a.id not in admitted:
            continue
        for shape in a.annotation_shapes:
            files = [
                f
                for f in shape.annotation_files
                if f.tomogram_voxel_spacing_id in (None, tomo.tomogram_voxel_spacing_id)
            ]
            kind = (
                "points"
                if shape.shape_type.value in POINT_SHAPES
                else "mask"
                if shape.shape_type.value in MASK_SHAPES
                else None
            )
            formats = {f.format for f in files}
            if kind is None or (kind == "points" and "ndjson" not in formats):
                continue
            if kind == "mask" and "zarr" not in formats:
                continue
            layers.append(
                {
                    "annotation_id": a.id,
                    "kind": kind,
                    "shape_type": shape.shape_type.value,
                    "object_name": a.object_name,
                    "object_id": a.object_id,
                    "ground_truth_status": a.ground_truth_status,
                    "is_curator_recommended": a.is_curator_recommended,
                    "method_type": a.method_type.value,
                    "annotation_method": a.annotation_method,
                    "object_count": a.object_count,
                    "radius_vox": _point_radius(session, a.object_id, tomo.voxel_spacing),
                    "points_url": f"/annotations/{a.id}/points.json" if kind == "points" else None,
                    "outline_url": f"/annotations/{a.id}/outline.png" if kind == "mask" else None,
                }
            )
    layers.sort(
        key=lambda g: (not g["ground_truth_status"], g["kind"] != "points", g["annotation_id"])
    )
    shown = default_layers(layers)
    for i, layer in enumerate(layers):
        layer["visible"] = layer["annotation_id"] in shown
        layer["colour"] = LAYER_COLOURS[i % len(LAYER_COLOURS)]
        layer["label"] = (
            f"{layer['object_name']} · {layer['shape_type']} · "
            + ("ground truth" if layer["ground_truth_status"] else layer["method_type"])
            + f" (#{layer['annotation_id']})"
        )
    return {
        "run": {
            "id": run.id,
            "name": run.name,
            "dataset_id": run.dataset_id,
            "dataset_title": run.dataset.title,
        },
        "tomogram": _tomogram_row(tomo),
        "layers": layers,
    }
