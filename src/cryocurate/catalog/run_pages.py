"""Read queries behind the Run Overview page and the tomogram viewer.

Everything returned is plain data (dicts, lists, numbers, strings) so one context serves both
the HTML page and its JSON twin. Three queries:

- :func:`run_overview` — a run's summary (a subset of its metadata, its files counted by type,
  the tilt-series quality), its tomograms (for the Download Run dialog), its annotations
  (for the annotations table, each with its metadata and files) and, for a ``class2d`` run,
  its class averages (for the gallery).
- :func:`viewer_setup` — one tomogram (by run or by tomogram id) with the annotation layers
  that can be drawn on it, and which of them are shown by default (:func:`default_layers`).
- :func:`tomogram_files` / :func:`annotation_files` — the stored paths the slice and overlay
  endpoints read.

Default layers follow the seed's rule ("display as many annotations as possible without
overlap or occlusion"): per object, ground truth is shown before predictions (a curator's
pick first, then ground truth, then the rest hidden); a segmentation mask is hidden by default
when point annotations are shown, so a whole-cytoplasm mask never covers particle picks,
unless a curator recommended it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from cryocurate.catalog.annotation_metadata import annotation_metadata
from cryocurate.catalog.models import (
    TILT_SERIES_QUALITY,
    Annotation,
    AnnotationShape,
    ObjectSetting,
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


def _class_rows(run: Run) -> list[dict[str, Any]]:
    base = f"/data/{run.dataset_id}/{run.name}/"
    rows = []
    for ca in run.class_averages:
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
                # GRADE SLOT: no grades exist yet; the consensus grade goes here once grading
                # exists (the gallery shows it when it is not None).
                "consensus_grade": None,
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
) -> dict[str, Any] | None:
    """Everything the Run Overview page shows, or None when there is no such run.

    ``grade_links`` (annotation id → campaign, labeller, count: what
    :func:`cryocurate.grading.annotations.grade_annotations_of_run` answers) marks the
    annotations that hold grades; ``hidden`` are annotations the visitor may not see
    (:func:`cryocurate.grading.access.visible_grade_links`). The caller passes both, as
    grading is a layer above this."""
    run = _load_run(session, run_id)
    if run is None:
        return None
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
        "classes": _class_rows(run) if run.kind is RunKind.class2d else [],
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


def annotation_files(session: Session, annotation_id: int) -> AnnotationFiles | None:
    a = session.get(Annotation, annotation_id)
    if a is None:
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


def viewer_setup(
    session: Session, *, run_id: int | None = None, tomogram_id: int | None = None
) -> dict[str, Any] | None:
    """The tomogram to view (the run's default one, or the one named) and its layers."""
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
    for a in run.annotations:
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
