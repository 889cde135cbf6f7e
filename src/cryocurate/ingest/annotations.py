"""Ingesting annotations of tomograms, and scoring them against the run's ground truth.

An annotation file (portal ndjson, RELION STAR, copick picks JSON, plain CSV, or a
segmentation-mask MRC) is read into voxel coordinates of one voxel spacing of a run,
validated against that spacing's tomogram (points inside it, rotations proper, masks its
shape), and stored in the portal's v1 layout::

    Tomograms/VoxelSpacing<vs>/Annotations/<id>-<object>-<version>.json       metadata
    Tomograms/VoxelSpacing<vs>/Annotations/<id>-<object>-<version>_point.ndjson   (or
        _orientedpoint.ndjson, _instancesegmentation.ndjson, _segmentationmask.mrc + .zarr)

Precision and recall are computed here, reproducibly, against the run's ground-truth
annotation of the same object (``object_id``) in the same voxel spacing: points match one to
one (optimal assignment) within a distance, by default half the object's radius; masks are
scored voxel by voxel (precision, recall, Dice). Adding a ground truth re-scores the other
annotations of that object. The portal only shows author-supplied numbers; these come with
the ground truth used and the rule, stored on the annotation.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from cryocurate import atomic
from cryocurate.catalog.annotation_metadata import annotation_metadata
from cryocurate.catalog.models import (
    Annotation,
    AnnotationAuthor,
    AnnotationFile,
    AnnotationMethodType,
    AnnotationShape,
    AnnotationShapeType,
    ObjectSetting,
    Run,
    RunKind,
    Tomogram,
    TomogramVoxelSpacing,
)
from cryocurate.errors import InputError, NotFoundError
from cryocurate.evaluation.matching import default_max_distance, match_points, score_masks
from cryocurate.formats import annotations as fmt
from cryocurate.formats.mrc import read_header
from cryocurate.formats.omezarr import write_mask_pyramid
from cryocurate.portal import Portal
from cryocurate.store import layout, names, tree

MASK_SUFFIXES = {".mrc", ".mrcs", ".map", ".rec"}

# Radii (Å) of the CZII CryoET object-identification challenge's particles: the defaults for
# the matching distance (half the radius) until a portal sets its own with `objects set`.
KNOWN_RADII_A = {
    "apo-ferritin": 60.0,
    "apoferritin": 60.0,
    "beta-amylase": 65.0,
    "beta-galactosidase": 90.0,
    "ribosome": 150.0,
    "thyroglobulin": 130.0,
    "virus-like-particle": 135.0,
}

_SHAPES = {
    "point": (AnnotationShapeType.Point, "point"),
    "orientedPoint": (AnnotationShapeType.OrientedPoint, "orientedpoint"),
    "instancePoint": (AnnotationShapeType.InstanceSegmentation, "instancesegmentation"),
}
_POINT_SHAPES = {
    AnnotationShapeType.Point,
    AnnotationShapeType.OrientedPoint,
    AnnotationShapeType.InstanceSegmentation,
}


@dataclass(frozen=True)
class AnnotationSpec:
    """What the user says about an annotation (``ingest annotation`` options)."""

    object_name: str
    object_id: str
    method_type: str
    method: str
    ground_truth: bool = False
    object_description: str | None = None
    object_state: str | None = None
    software: str | None = None
    authors: list[str] = field(default_factory=list)
    version: str = "1.0"

    def check(self) -> None:
        if self.method_type not in AnnotationMethodType.__members__:
            raise InputError(
                f"method type {self.method_type!r} is not one of the portal's",
                hint="use manual, automated, hybrid or simulated",
            )
        if not self.object_name.strip() or not self.object_id.strip():
            raise InputError("an annotation needs an object name and an object id")


@dataclass(frozen=True)
class IngestedAnnotation:
    annotation_id: int
    shape_type: str
    object_count: int
    files: list[str]
    precision: float | None  # percent
    recall: float | None
    rule: dict[str, Any] | None
    rescored: list[int]  # other annotations whose numbers changed (when this is ground truth)


def _voxel_spacing(session: Session, run: Run, wanted: float | None) -> TomogramVoxelSpacing:
    spacings = list(run.tomogram_voxel_spacings)
    if not spacings:
        raise InputError(
            f"run {run.id} has no tomogram to annotate",
            hint="ingest its tomogram first with `cryocurate ingest run`",
        )
    if wanted is None:
        if len(spacings) > 1:
            listed = ", ".join(f"{s.voxel_spacing:g}" for s in spacings)
            raise InputError(
                f"run {run.id} has tomograms at several voxel spacings ({listed})",
                hint="choose one with --voxel-spacing",
            )
        return spacings[0]
    for s in spacings:
        if abs(s.voxel_spacing - wanted) < 1e-3:
            return s
    raise InputError(f"run {run.id} has no tomogram at voxel spacing {wanted:g} Å")


def _tomogram(spacing: TomogramVoxelSpacing) -> Tomogram:
    tomos = sorted(spacing.tomograms, key=lambda t: (not t.is_visualization_default, t.id))
    if not tomos:
        raise InputError(f"voxel spacing {spacing.voxel_spacing:g} Å has no tomogram")
    return tomos[0]


def read_points(path: Path, voxel_spacing_a: float, file_format: str | None = None) -> fmt.Points:
    """Any supported point file, in voxel coordinates of ``voxel_spacing_a``."""
    kind = file_format or fmt.detect_format(path)
    if kind == "ndjson":
        return fmt.read_ndjson(path)
    if kind == "star":
        return fmt.read_relion_star(path, voxel_spacing_a)
    if kind == "copick":
        return fmt.read_copick(path, voxel_spacing_a)
    if kind == "csv":
        return fmt.read_csv_points(path)
    raise InputError(
        f"unknown annotation format {kind!r}", where=path, hint="use ndjson, star, copick or csv"
    )


def _match_distance(session: Session, spec_or_row: Any) -> tuple[float | None, dict[str, Any]]:
    """The matching distance for an object (Å), and where it came from."""
    setting = session.get(ObjectSetting, spec_or_row.object_id)
    if setting is not None and setting.match_distance_a:
        return setting.match_distance_a, {
            "match_distance_a": setting.match_distance_a,
            "source": "object settings",
        }
    if setting is not None and setting.radius_a:
        d = default_max_distance(setting.radius_a)
        return d, {
            "radius_a": setting.radius_a,
            "match_distance_a": d,
            "source": "object settings: half the radius",
        }
    radius = KNOWN_RADII_A.get(spec_or_row.object_name.strip().lower())
    if radius is not None:
        d = default_max_distance(radius)
        return d, {
            "radius_a": radius,
            "match_distance_a": d,
            "source": "CZII challenge radius: half the radius",
        }
    return None, {}


def _points_file(portal: Portal, annotation: Annotation) -> tuple[Path, float] | None:
    for shape in annotation.annotation_shapes:
        if shape.shape_type in _POINT_SHAPES:
            for f in shape.annotation_files:
                if f.format == "ndjson" and f.tomogram_voxel_spacing is not None:
                    return portal.data_dir / f.path, f.tomogram_voxel_spacing.voxel_spacing
    return None


def _mask_file(portal: Portal, annotation: Annotation) -> Path | None:
    for shape in annotation.annotation_shapes:
        if shape.shape_type == AnnotationShapeType.SegmentationMask:
            for f in shape.annotation_files:
                if f.format == "mrc":
                    return portal.data_dir / f.path
    return None


def _score(portal: Portal, session: Session, pred: Annotation, truth: Annotation) -> None:
    """Compute and store ``pred``'s precision and recall against ``truth``."""
    pred_points, truth_points = _points_file(portal, pred), _points_file(portal, truth)
    if pred_points and truth_points:
        distance, rule = _match_distance(session, pred)
        if distance is None:
            pred.confidence_precision = pred.confidence_recall = None
            pred.confidence_rule = {
                "kind": "points",
                "unscored": f"no radius known for object {pred.object_name!r}",
                "hint": "set one with `cryocurate objects set ROOT OBJECT_ID --radius Å`",
            }
            return
        (p_path, vs), (t_path, _) = pred_points, truth_points
        score = match_points(
            fmt.read_ndjson(p_path).xyz * vs, fmt.read_ndjson(t_path).xyz * vs, distance
        )
        pred.confidence_precision = 100.0 * score.precision
        pred.confidence_recall = 100.0 * score.recall
        pred.confidence_rule = {
            "kind": "points",
            "matching": "one-to-one, optimal assignment, Euclidean distance in Å",
            **rule,
            "n_predicted": score.n_pred,
            "n_ground_truth": score.n_truth,
            "n_matched": score.n_matched,
        }
    else:
        p_mask, t_mask = _mask_file(portal, pred), _mask_file(portal, truth)
        if not (p_mask and t_mask):
            return
        import mrcfile

        with mrcfile.mmap(p_mask, permissive=True) as a, mrcfile.mmap(t_mask, permissive=True) as b:
            score = score_masks(
                (np.asarray(a.data[z]), np.asarray(b.data[z])) for z in range(a.data.shape[0])
            )
        pred.confidence_precision = 100.0 * score.precision
        pred.confidence_recall = 100.0 * score.recall
        pred.confidence_rule = {
            "kind": "voxels",
            "dice": score.dice,
            "n_predicted": score.n_pred,
            "n_ground_truth": score.n_truth,
            "n_overlap": score.n_overlap,
        }
    pred.ground_truth_annotation_id = truth.id
    pred.ground_truth_used = truth.metadata_path


def _file_entries(a: Annotation) -> list[dict[str, Any]]:
    return [
        {
            "format": f.format,
            "path": Path(f.path).name,
            "shape": shape.shape_type.value,
            "is_visualization_default": f.is_visualization_default,
        }
        for shape in a.annotation_shapes
        for f in shape.annotation_files
    ]


def _write_metadata(portal: Portal, a: Annotation) -> None:
    assert a.metadata_path is not None
    atomic.write_json(portal.data_dir / a.metadata_path, annotation_metadata(a, _file_entries(a)))


@dataclass(frozen=True)
class _Target:
    """Where an annotation goes, read in a short read-only transaction."""

    spacing_id: int
    voxel_spacing: float
    shape_xyz: tuple[int, int, int]
    annotations_dir: Path


def _target(portal: Portal, run_id: int, voxel_spacing: float | None) -> _Target:
    with portal.transaction() as session:
        run = session.get(Run, run_id)
        if run is None:
            raise NotFoundError(f"no run {run_id}")
        if run.kind != RunKind.tomography:
            raise InputError(f"run {run_id} is a {run.kind.value} run, not a tomography run")
        spacing = _voxel_spacing(session, run, voxel_spacing)
        tomo = _tomogram(spacing)
        run_dir = layout.run_dir(portal.data_dir, run.dataset_id, run.name)
        return _Target(
            spacing_id=spacing.id,
            voxel_spacing=spacing.voxel_spacing,
            shape_xyz=(tomo.size_x, tomo.size_y, tomo.size_z),
            annotations_dir=layout.voxel_spacing_dir(run_dir, spacing.voxel_spacing)
            / layout.ANNOTATIONS,
        )


def ingest_annotation(
    portal: Portal,
    run_id: int,
    path: str | os.PathLike[str],
    spec: AnnotationSpec,
    *,
    voxel_spacing: float | None = None,
    file_format: str | None = None,
) -> IngestedAnnotation:
    """Validate and store one annotation file; score it (or, for ground truth, the others).

    The slow part (reading, validating, writing the stored files and any mask pyramid) happens
    in a staging folder before the write transaction opens; the transaction then only names
    the files after the new id, moves them into place, scores and commits.
    """
    spec.check()
    path = Path(path)
    if not path.is_file():
        raise InputError("annotation file not found", where=path)
    is_mask = path.suffix.lower() in MASK_SUFFIXES and file_format in (None, "mrc")
    target = _target(portal, run_id, voxel_spacing)
    vs = target.voxel_spacing
    staging = tree.new_staging_dir(layout.staging_root(portal.data_dir), "annotation")
    placed: list[Path] = []
    try:
        # (staged file, suffix after the stem, format)
        staged: list[tuple[Path, str, str]] = []
        if is_mask:
            header = read_header(path)
            tomo_zyx = (target.shape_xyz[2], target.shape_xyz[1], target.shape_xyz[0])
            fmt.validate_mask((header.nz, header.ny, header.nx), tomo_zyx, path=path)
            shape_type, suffix = AnnotationShapeType.SegmentationMask, "segmentationmask"
            shutil.copyfile(path, staging / "mask.mrc")
            write_mask_pyramid(
                staging / "mask.mrc", staging / "mask.zarr", voxel_spacing_a=vs, durable=False
            )
            staged += [
                (staging / "mask.mrc", f"_{suffix}.mrc", "mrc"),
                (staging / "mask.zarr", f"_{suffix}.zarr", "zarr"),
            ]
            object_count = 1  # one semantic segmentation
        else:
            points = read_points(path, vs, file_format)
            fmt.validate_points(points, target.shape_xyz, path=path)
            shape_type, suffix = _SHAPES[points.kind]
            fmt.write_ndjson(staging / "points.ndjson", points, durable=False)
            staged.append((staging / "points.ndjson", f"_{suffix}.ndjson", "ndjson"))
            object_count = _object_count(points)
        atomic.fsync_tree(staging)

        with portal.transaction() as session:
            spacing = session.get(TomogramVoxelSpacing, target.spacing_id)
            if spacing is None:
                raise NotFoundError(f"run {run_id} lost its tomogram while annotating")
            today = dt.date.today()
            annotation = Annotation(
                run_id=run_id,
                annotation_method=spec.method,
                annotation_software=spec.software,
                method_type=AnnotationMethodType(spec.method_type),
                ground_truth_status=spec.ground_truth,
                object_id=spec.object_id,
                object_name=spec.object_name,
                object_description=spec.object_description,
                object_state=spec.object_state,
                object_count=object_count,
                version=spec.version,
                deposition_date=today,
                last_modified_date=today,
                authors=[
                    AnnotationAuthor(name=n, author_list_order=i, primary_author_status=(i == 0))
                    for i, n in enumerate(spec.authors)
                ],
            )
            session.add(annotation)
            session.flush()
            stem = layout.annotation_stem(annotation.id, spec.object_name, spec.version)
            annotation.metadata_path = portal.tree_path(target.annotations_dir / f"{stem}.json")
            shape = AnnotationShape(annotation=annotation, shape_type=shape_type)
            target.annotations_dir.mkdir(parents=True, exist_ok=True)
            for src, tail, kind in staged:
                final = names.contained(portal.data_dir, target.annotations_dir / f"{stem}{tail}")
                shape.annotation_files.append(
                    AnnotationFile(
                        tomogram_voxel_spacing=spacing,
                        format=kind,
                        path=portal.tree_path(final),
                        file_size=_size(src),
                        is_visualization_default=kind != "zarr",
                    )
                )
                os.rename(src, final)  # in place before scoring, which reads them
                placed.append(final)
            session.add(shape)
            session.flush()
            rescored = _rescore(portal, session, annotation, spacing)
            for a in [annotation, *rescored]:
                _write_metadata(portal, a)
            placed.append(portal.data_dir / annotation.metadata_path)
            result = IngestedAnnotation(
                annotation_id=annotation.id,
                shape_type=shape_type.value,
                object_count=object_count,
                files=[portal.tree_path(p) for p in placed],
                precision=annotation.confidence_precision,
                recall=annotation.confidence_recall,
                rule=annotation.confidence_rule,
                rescored=[a.id for a in rescored],
            )
    except BaseException:
        for p in placed:
            if p.is_dir():
                tree.discard(p)
            else:
                p.unlink(missing_ok=True)
        raise
    finally:
        tree.discard(staging)
    return result


def _object_count(points: fmt.Points) -> int:
    """Instances for instance points, else points (the portal's ``object_count``)."""
    if points.instance_ids is not None:
        return len(np.unique(points.instance_ids))
    return len(points.xyz)


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _rescore(
    portal: Portal, session: Session, new: Annotation, spacing: TomogramVoxelSpacing
) -> list[Annotation]:
    """Score ``new`` against ground truth, or, if it is ground truth, re-score the others."""
    same_object = [
        a
        for a in session.scalars(
            select(Annotation).where(
                Annotation.run_id == new.run_id,
                Annotation.object_id == new.object_id,
                Annotation.id != new.id,
            )
        )
        if any(
            f.tomogram_voxel_spacing_id == spacing.id
            for s in a.annotation_shapes
            for f in s.annotation_files
        )
    ]
    if new.ground_truth_status:
        others = [a for a in same_object if not a.ground_truth_status]
        for a in others:
            _score(portal, session, a, new)
        return others
    truths = sorted((a for a in same_object if a.ground_truth_status), key=lambda a: -a.id)
    if truths:
        _score(portal, session, new, truths[0])
    return []


def rescore_object(portal: Portal, session: Session, object_id: str) -> int:
    """Re-score every non-ground-truth annotation of an object against its run's ground truth
    (after the object's matching distance changed); returns how many were scored."""
    count = 0
    annotations = session.scalars(select(Annotation).where(Annotation.object_id == object_id))
    by_run: dict[int, list[Annotation]] = {}
    for a in annotations:
        by_run.setdefault(a.run_id, []).append(a)
    for group in by_run.values():
        truths = sorted((a for a in group if a.ground_truth_status), key=lambda a: -a.id)
        if not truths:
            continue
        for a in group:
            if not a.ground_truth_status:
                _score(portal, session, a, truths[0])
                _write_metadata(portal, a)
                count += 1
    return count
