"""Importing a dataset downloaded from the CZ CryoET Data Portal, in either of its layouts.

``cryocurate import-czportal ROOT FOLDER`` takes the folder named by the dataset id (as the
portal's ``download_everything``, ``aws s3 sync`` or our own ``cryocurate download`` writes it)
and stores it in the portal root: catalog rows from the metadata JSON, files copied into the
data tree's layout (v1). Which layout the folder is in is told by its folder names
(``Reconstructions/…`` or ``TiltSeries/<n>/`` is v2, ``Tomograms/VoxelSpacing…`` or files
directly in ``TiltSeries/`` is v1).

Three phases, so that a bad folder stores nothing and the catalog is locked only briefly:

1. **Plan** (read only): read and check every metadata JSON, MRC header and ndjson file, and
   decide where each file goes. Any problem ends here as one line: what, where, what to do.
2. **Stage**: copy the files into a staging folder beside the data tree, already in their
   final layout. Annotation file names carry the annotation's catalog id, not known yet, so
   they get a placeholder (``~a3~-ribosome-1.0.json``) renamed in phase 3.
3. **Commit**, in one transaction: insert the rows, rename the placeholders, write the
   metadata JSON with their file paths (and our ids) rewritten for their new place, swap the
   dataset folder into the data tree (:func:`cryocurate.store.tree.swap_in`) and commit; on
   any failure the swap is undone and the transaction rolled back.

The dataset keeps its id when it is free; otherwise the import is refused unless asked for a
new id (``--dataset-id new``). v1 holds one tilt series and one tomogram per run and voxel
spacing: from a v2 folder with more, the lowest-numbered is imported and the others are
reported as skipped. Fields the catalog has no column for stay in the copied metadata JSON.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import os
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from cryocurate import atomic
from cryocurate.catalog.models import (
    Annotation,
    AnnotationAuthor,
    AnnotationFile,
    AnnotationFileSource,
    AnnotationMethodType,
    AnnotationShape,
    AnnotationShapeType,
    Class2DJob,
    Dataset,
    DatasetAuthor,
    DatasetFunding,
    Deposition,
    FiducialAlignmentStatus,
    IdentifiedObject,
    Run,
    RunKind,
    SampleType,
    TiltSeries,
    TiltSeriesMicroscopeManufacturer,
    Tomogram,
    TomogramAuthor,
    TomogramProcessing,
    TomogramReconstructionMethod,
    TomogramVoxelSpacing,
)
from cryocurate.errors import ConflictError, FormatError, InputError, UnsafePathError
from cryocurate.formats.mrc import read_header
from cryocurate.ingest import recovery
from cryocurate.ingest.extract import upsert_class_rows
from cryocurate.portal import Portal
from cryocurate.store import layout, layouts, names, tree
from cryocurate.transfer.choices import DatasetIdPolicy
from cryocurate.transfer.download import copy_file, dump_json, is_metadata_json

ANNOTATION_MARK = re.compile(r"~a(\d+)~")
"""Placeholder for an annotation id at the start of staged annotation file names."""

MRC_SUFFIXES = (".mrc", ".mrcs", ".st", ".ali", ".rec", ".map")
ANGLE_SUFFIXES = (".rawtlt", ".tlt")
NDJSON_CHECK_LIMIT = 256 << 20  # check every line of point files up to this size

KNOWN_SUFFIXES = frozenset(
    (*MRC_SUFFIXES, *ANGLE_SUFFIXES, ".json", ".ndjson", ".png", ".jpg", ".jpeg", ".tif",
     ".tiff", ".eer", ".gain", ".mdoc", ".star", ".xf", ".glb")
)  # fmt: skip
"""Files an import copies: the portal's data and metadata formats (plus Zarr's and
Neuroglancer's own files in their folders). Anything else (``.html``, ``.svg``, ``.js``,
``notes.txt``…) is not copied into the tree, and each is named in a note."""
ZARR_METADATA = frozenset((".zarray", ".zattrs", ".zgroup", ".zmetadata", "zarr.json"))
_ZARR_CHUNK = re.compile(r"^\d+(?:\.\d+)*$")
_PRECOMPUTED = re.compile(r"^[A-Za-z0-9_-]+$")

_SHAPES = {s.value.lower(): s for s in AnnotationShapeType}
_SHAPES |= {"triangularmesh": AnnotationShapeType.Mesh, "mesh": AnnotationShapeType.Mesh}
_POINT_SHAPES = {
    AnnotationShapeType.Point,
    AnnotationShapeType.OrientedPoint,
    AnnotationShapeType.InstanceSegmentation,
}


# ── the plan ────────────────────────────────────────────────────────────────────────────────


@dataclass
class Planned:
    """One source file and where it goes, relative to the new dataset folder (may hold a
    placeholder for an annotation id)."""

    src: Path
    src_rel: str  # relative to the source root (the dataset folder's parent)
    dst: str  # relative to the destination dataset folder


@dataclass
class PlannedFile:
    """An annotation file (ndjson, MRC, OME-Zarr…): one row of AnnotationFile."""

    src_rel: str  # the file or .zarr folder, source-root-relative
    dst: str  # dataset-folder-relative (with placeholder)
    shape: AnnotationShapeType
    format: str
    size: int
    is_visualization_default: bool = True


@dataclass
class PlannedAnnotation:
    key: int
    vs: float
    metadata: dict[str, Any]
    metadata_src: str
    metadata_dst: str
    files: list[PlannedFile] = field(default_factory=list)


@dataclass
class PlannedTomogram:
    vs: float
    metadata: dict[str, Any]
    metadata_src: str | None
    size_xyz: tuple[int, int, int]
    mrc_dst: str | None = None
    mrc_size: int | None = None
    zarr_dst: str | None = None
    zarr_size: int | None = None
    snapshot_dst: str | None = None
    thumbnail_dst: str | None = None
    neuroglancer_config: str | None = None


@dataclass
class PlannedTiltSeries:
    metadata: dict[str, Any]
    metadata_src: str | None
    mrc_dst: str | None = None
    mrc_size: int | None = None
    zarr_dst: str | None = None
    angles_dst: str | None = None
    size_xyz: tuple[int, int, int] | None = None
    pixel_spacing: float | None = None


@dataclass
class PlannedRun:
    name: str
    kind: RunKind
    metadata: dict[str, Any]
    metadata_src: str
    tilt_series: PlannedTiltSeries | None = None
    spacings: list[float] = field(default_factory=list)
    tomograms: list[PlannedTomogram] = field(default_factory=list)
    annotations: list[PlannedAnnotation] = field(default_factory=list)
    class_averages: dict[str, Any] | None = None


@dataclass
class Plan:
    folder: Path
    layout: layouts.LayoutName
    source_dataset_id: int | None
    metadata: dict[str, Any]
    runs: list[PlannedRun]
    files: list[Planned]
    notes: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # source-root-relative, not copied

    @property
    def total_bytes(self) -> int:
        return sum(_size(p.src) for p in self.files)

    @property
    def src_prefix(self) -> str:
        return self.folder.name


@dataclass(frozen=True)
class ImportResult:
    """What an import stored."""

    dataset_id: int
    layout: str
    runs: list[str]
    n_files: int
    n_bytes: int
    n_tomograms: int
    n_annotations: int
    notes: list[str]
    skipped: list[str] = field(default_factory=list)
    """Files of the folder not copied (not of a kind the portal's layout holds), each also a
    line of ``notes``."""


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _tree_size(path: Path) -> int:
    if path.is_file():
        return _size(path)
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        total += sum(_size(Path(dirpath) / n) for n in files)
    return total


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise InputError(f"no {path.name}", where=path.parent) from err
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise FormatError(
            f"is not readable JSON ({err})",
            where=path,
            hint=f"the {what} is damaged; download it again",
        ) from err
    if not isinstance(document, dict):
        raise FormatError(f"the {what} is not a JSON object", where=path)
    return document


# ── reading values ──────────────────────────────────────────────────────────────────────────


class _Reader:
    """Typed reads from one metadata document; bad values name the file and the key."""

    def __init__(self, document: dict[str, Any], where: Path, notes: list[str]) -> None:
        self.d = document
        self.where = where
        self.notes = notes

    def get(self, *keys: str) -> Any:
        node: Any = self.d
        for key in keys:
            if not isinstance(node, dict):
                return None
            node = node.get(key)
        return node

    def _bad(self, keys: tuple[str, ...], expected: str) -> FormatError:
        return FormatError(
            f"{'.'.join(keys)} is {self.get(*keys)!r}, not {expected}", where=self.where
        )

    def str(self, *keys: str) -> str | None:
        v = self.get(*keys)
        if v is None or v == "":
            return None
        if isinstance(v, list):
            return ", ".join(str(x) for x in v)
        return str(v)

    def float(self, *keys: str) -> float | None:
        v = self.get(*keys)
        if v is None or v == "":
            return None
        if isinstance(v, bool):
            raise self._bad(keys, "a number")
        try:
            return float(v)
        except (TypeError, ValueError):
            raise self._bad(keys, "a number") from None

    def int(self, *keys: str) -> int | None:
        v = self.float(*keys)
        if v is None:
            return None
        if v != int(v):
            raise self._bad(keys, "a whole number")
        return int(v)

    def bool(self, *keys: str) -> bool | None:
        v = self.get(*keys)
        if v is None or isinstance(v, bool):
            return v
        if isinstance(v, str) and v.lower() in ("true", "false", "yes", "no"):
            return v.lower() in ("true", "yes")
        if isinstance(v, int) and v in (0, 1):
            return bool(v)
        raise self._bad(keys, "true or false")

    def date(self, *keys: str) -> dt.date | None:
        v = self.get(*keys)
        if not v:
            return None
        try:
            return dt.date.fromisoformat(str(v)[:10])
        except ValueError:
            self.notes.append(f"{self.where}: {'.'.join(keys)} {v!r} is not a date; left out")
            return None

    def enum(self, enum_type: type[enum.StrEnum], *keys: str) -> Any:
        v = self.get(*keys)
        if v is None or v == "":
            return None
        wanted = str(v).replace(" ", "_").replace("-", "_").lower()
        for member in enum_type:
            if member.value.lower() == wanted:
                return member
        self.notes.append(
            f"{self.where}: {'.'.join(keys)} {v!r} is not one of "
            f"{', '.join(m.value for m in enum_type)}; left out"
        )
        return None


# ── planning ────────────────────────────────────────────────────────────────────────────────


class _PlanIds:
    """Folder ids while planning: v2 folders v1 has no room for are left out (with a note),
    annotations get placeholders numbered in (run, voxel spacing, source id) order."""

    def __init__(self) -> None:
        self.tilt_series: dict[str, int | None] = {}
        self.tomograms: dict[tuple[str, float], int | None] = {}
        self.annotations: dict[tuple[str, float, int], int] = {}

    def tiltseries(self, run: str, source_id: int | None) -> int | str | None:
        if source_id is None:
            return ""
        return source_id if self.tilt_series.get(run) == source_id else None

    def tomogram(self, run: str, vs: float, source_id: int | None) -> int | str | None:
        if source_id is None:
            return ""
        return source_id if self.tomograms.get((run, vs)) == source_id else None

    def annotation(self, run: str, vs: float, source_id: int) -> int | str | None:
        key = self.annotations.get((run, vs, source_id))
        return source_id if key is None else f"~a{key}~"


def detect_layout(folder: Path) -> layouts.LayoutName:
    """``v2`` if any run has ``Reconstructions/`` or numbered ``TiltSeries/<n>/`` folders,
    ``v1`` if any has ``Tomograms/VoxelSpacing…`` or files directly in ``TiltSeries/``;
    a folder with both is refused. One with neither (2D runs only) reads the same in both."""
    seen: dict[str, Path] = {}
    for run in _run_folders(folder):
        if (run / layouts.RECONSTRUCTIONS).is_dir():
            seen.setdefault("v2", run / layouts.RECONSTRUCTIONS)
        tomograms = run / layout.TOMOGRAMS
        if tomograms.is_dir() and any(
            p.name.startswith("VoxelSpacing") for p in tomograms.iterdir()
        ):
            seen.setdefault("v1", tomograms)
        ts = run / layout.TILT_SERIES
        if ts.is_dir():
            for p in ts.iterdir():
                if p.is_dir() and p.name.isdigit():
                    seen.setdefault("v2", p)
                elif p.is_file() and not p.name.startswith("."):
                    seen.setdefault("v1", ts)
    if len(seen) == 2:
        raise FormatError(
            f"mixes the portal's two layouts ({seen['v1']} is v1, {seen['v2']} is v2)",
            where=folder,
            hint="download the dataset again into an empty folder",
        )
    return "v2" if "v2" in seen else "v1"


def _run_folders(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_dir() and not p.name.startswith(".") and p.name != layout.IMAGES
    )


def _walk(root: Path, start: Path, skipped: list[str]) -> list[tuple[Path, str]]:
    """Regular files under ``start`` that the import knows (:func:`is_known_file`), as
    root-relative POSIX names; the others go to ``skipped``. (:func:`_check_entries` has made
    sure that there is no symbolic link to follow.)"""
    out = []
    for dirpath, dirs, files in os.walk(start):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            # zarr v2 keeps its metadata in dot-files; everything else with a dot is junk
            if name.startswith(".") and not _inside_zarr(Path(dirpath)):
                continue
            path = Path(dirpath) / name
            if path.is_file():
                rel = path.relative_to(root).as_posix()
                (out.append((path, rel)) if is_known_file(rel) else skipped.append(rel))
    return out


def is_known_file(rel: str) -> bool:
    """True for a file an import copies: one of :data:`KNOWN_SUFFIXES`, or Zarr metadata or a
    chunk inside a ``.zarr`` folder."""
    name = posixpath.basename(rel)
    if layouts.is_inside_zarr(rel):
        return name in ZARR_METADATA or bool(_ZARR_CHUNK.match(name))
    if layouts.NEUROGLANCER_PRECOMPUTE in rel.split("/")[:-1] and _PRECOMPUTED.match(name):
        return True  # Neuroglancer's precomputed files: "info", "spatial0/0_0_0"…
    return posixpath.splitext(name)[1].lower() in KNOWN_SUFFIXES


def _check_entries(folder: Path) -> None:
    """A portal download holds no symbolic links; one in the folder is refused (one line,
    naming it and its target) rather than followed, wherever it points. Names are copied into
    the tree as they are, so each must be one safe path segment (no control characters…);
    hidden ones are never copied and not checked."""
    stack = [folder]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as it:
                entries = list(it)
        except OSError as err:
            raise InputError(f"cannot list folder: {err.strerror or err}", where=current) from err
        for entry in entries:
            if entry.is_symlink():
                raise UnsafePathError(
                    f"is a symbolic link (to {os.readlink(entry.path)}); imports do not "
                    "follow links",
                    where=entry.path,
                    hint="replace it with the file itself, or remove it",
                )
            if not entry.name.startswith("."):
                names.check_segment(entry.name, what="file name", where=entry.path)
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))


def _inside_zarr(path: Path) -> bool:
    return any(part.endswith(".zarr") for part in path.parts)


def plan_import(folder: Path) -> Plan:
    """Read and check a downloaded dataset folder; raise one clear error if it is unusable."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(
            "no such folder", where=folder, hint="give the folder named by the dataset id"
        )
    folder = folder.resolve()  # the folder given may be a link; nothing inside it may be
    if (folder / layout.RUN_METADATA).is_file():
        raise InputError(
            "is a run folder, not a dataset folder",
            where=folder,
            hint=f"give the folder above it, the one holding {layout.DATASET_METADATA}",
        )
    if not (folder / layout.DATASET_METADATA).is_file():
        raise InputError(
            f"holds no {layout.DATASET_METADATA}: not a dataset downloaded from the portal",
            where=folder,
            hint="give the folder named by the dataset id (e.g. …/10000)",
        )
    _check_entries(folder)  # before anything in it is read
    notes: list[str] = []
    metadata = _read_json(folder / layout.DATASET_METADATA, "dataset metadata")
    reader = _Reader(metadata, folder / layout.DATASET_METADATA, notes)
    if not reader.str("dataset_title"):
        raise FormatError(
            "has no dataset_title", where=folder / layout.DATASET_METADATA,
            hint="is this a CryoET Data Portal dataset_metadata.json?",
        )  # fmt: skip
    source_id = reader.int("dataset_identifier")
    if source_id is None and folder.name.isdigit():
        source_id = int(folder.name)
    if source_id is not None and not 0 < source_id < 2**63:
        raise FormatError(
            f"dataset id {source_id} is not a positive 64-bit number",
            where=folder / layout.DATASET_METADATA,
            hint="import it under a new id with --dataset-id new",
        )
    name = detect_layout(folder)
    src_layout = layouts.get(name)
    root = folder.parent
    prefix = folder.name
    runs_dirs = _run_folders(folder)
    if not runs_dirs:
        raise InputError(
            "holds no run folders", where=folder, hint="download the dataset's runs too"
        )
    ids = _PlanIds()
    files: list[Planned] = []
    runs: list[PlannedRun] = []
    skipped: list[str] = []
    # dataset-level files: metadata and key photos
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.name.startswith("."):
            rel = f"{prefix}/{path.name}"
            if is_known_file(rel):
                files.append(Planned(path, rel, path.name))
            else:
                skipped.append(rel)
    if (folder / layout.IMAGES).is_dir():
        for path, rel in _walk(root, folder / layout.IMAGES, skipped):
            files.append(Planned(path, rel, rel.split("/", 1)[1]))
    for run_dir in runs_dirs:
        _check_name(run_dir)
        if not (run_dir / layout.RUN_METADATA).is_file():
            raise InputError(
                f"holds no {layout.RUN_METADATA}: not a run folder",
                where=run_dir,
                hint="remove what is not a run from the dataset folder, or download it again",
            )
        run_meta = _read_json(run_dir / layout.RUN_METADATA, "run metadata")
        run_files = _walk(root, run_dir, skipped)
        _choose_folders(run_dir, name, ids, notes)
        plan = PlannedRun(
            name=run_dir.name,
            kind=RunKind.tomography,
            metadata=run_meta,
            metadata_src=f"{prefix}/{run_dir.name}/{layout.RUN_METADATA}",
        )
        _assign_annotation_keys(run_dir, src_layout, ids, runs_count=len(ids.annotations))
        by_dst: dict[str, Planned] = {}
        for path, rel in run_files:
            run_rel = rel.split("/", 2)[2]
            dst = layouts.convert_run_path(run_dir.name, run_rel, src_layout, layouts.V1, ids)
            if dst is None:
                continue
            planned = Planned(path, rel, f"{run_dir.name}/{dst}")
            files.append(planned)
            by_dst[planned.dst] = planned
        if (run_dir / layout.CLASS_AVERAGES).is_dir():
            _plan_class_averages(plan, run_dir, notes)
        else:
            _plan_tomography(plan, run_dir, src_layout, ids, by_dst, root, notes)
        runs.append(plan)
    for rel in skipped:
        notes.append(f"{root / rel}: not copied (not a kind of file the portal's layout holds)")
    return Plan(folder, name, source_id, metadata, runs, files, notes, skipped)


def _check_name(run_dir: Path) -> None:
    """A run folder's name becomes the run's name and folder as it is, so it must already be
    one safe path segment (a portal download's always is): refused, not renamed."""
    names.check_segment(run_dir.name, what="run folder name", where=run_dir)


def _choose_folders(run_dir: Path, name: str, ids: _PlanIds, notes: list[str]) -> None:
    """For v2: the tilt series and the tomogram of each voxel spacing v1 has room for."""
    if name != "v2":
        return
    ts_ids = sorted(int(p.name) for p in _dirs(run_dir / layout.TILT_SERIES) if p.name.isdigit())
    if ts_ids:
        ids.tilt_series[run_dir.name] = ts_ids[0]
        for other in ts_ids[1:]:
            notes.append(
                f"{run_dir / layout.TILT_SERIES / str(other)}: skipped (the data tree's "
                "layout holds one tilt series per run)"
            )
    for vs_dir in _dirs(run_dir / layouts.RECONSTRUCTIONS):
        vs = _vs_of(vs_dir)
        tomo_ids = sorted(
            int(p.name) for p in _dirs(vs_dir / layouts.V2_TOMOGRAMS) if p.name.isdigit()
        )
        if tomo_ids:
            ids.tomograms[(run_dir.name, vs)] = tomo_ids[0]
            for other in tomo_ids[1:]:
                notes.append(
                    f"{vs_dir / layouts.V2_TOMOGRAMS / str(other)}: skipped (the data tree's "
                    "layout holds one tomogram per voxel spacing)"
                )


def _dirs(path: Path) -> list[Path]:
    if not path.is_dir():
        return []
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _vs_of(vs_dir: Path) -> float:
    m = re.fullmatch(r"VoxelSpacing(\d+(?:\.\d+)?)", vs_dir.name)
    if m is None:
        raise FormatError(
            "is not a voxel spacing folder (VoxelSpacing<Å>, e.g. VoxelSpacing13.480)",
            where=vs_dir,
        )
    vs = float(m.group(1))
    if vs <= 0:
        raise FormatError("voxel spacing is not positive", where=vs_dir)
    return vs


def _vs_dirs(run_dir: Path, src: layouts.Layout) -> list[Path]:
    parent = run_dir / (layout.TOMOGRAMS if src is layouts.V1 else layouts.RECONSTRUCTIONS)
    return _dirs(parent)


def _annotation_groups(vs_dir: Path, src: layouts.Layout) -> dict[int, list[Path]]:
    """Annotation source id → its entries (files and .zarr folders)."""
    folder = vs_dir / layout.ANNOTATIONS
    groups: dict[int, list[Path]] = {}
    if not folder.is_dir():
        return groups
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and not is_known_file(entry.name):
            continue  # not copied (see _walk); the plan's notes name it
        if src is layouts.V2:
            if not (entry.is_dir() and entry.name.isdigit()):
                raise FormatError(
                    "is not an annotation folder (Annotations/<number>/)",
                    where=entry,
                    hint="download the dataset again",
                )
            groups[int(entry.name)] = sorted(
                p
                for p in entry.iterdir()
                if not p.name.startswith(".") and (p.is_dir() or is_known_file(p.name))
            )
        else:
            # The id is the leading number: the object part may itself begin with "_"
            # (object_slug("α-actinin") is "__actinin"), so no splitting at "_" here.
            m = re.match(r"^(\d+)-.", entry.name)
            annotation_id = int(m.group(1)) if m else None
            if annotation_id is None:
                raise FormatError(
                    "is not named <annotation id>-<object>-<version>…",
                    where=entry,
                    hint="annotations named by author (early portal data) are not supported; "
                    "download the dataset again in the current layout (v2)",
                )
            groups.setdefault(annotation_id, []).append(entry)
    return groups


def _assign_annotation_keys(
    run_dir: Path, src: layouts.Layout, ids: _PlanIds, runs_count: int
) -> None:
    key = runs_count
    for vs_dir in _vs_dirs(run_dir, src):
        vs = _vs_of(vs_dir)
        for source_id in sorted(_annotation_groups(vs_dir, src)):
            ids.annotations[(run_dir.name, vs, source_id)] = key
            key += 1


def _plan_class_averages(plan: PlannedRun, run_dir: Path, notes: list[str]) -> None:
    folder = run_dir / layout.CLASS_AVERAGES
    path = folder / layout.CLASS_AVERAGES_METADATA
    meta = _read_json(path, "class averages metadata")
    missing = [
        k
        for k in ("software", "iteration", "pixel_size_A", "box_size", "n_classes", "classes")
        if k not in meta
    ]
    if missing:
        raise FormatError(
            f"lacks {', '.join(missing)}", where=path, hint="is this a cryocurate download?"
        )
    if not (folder / layout.CLASS_AVERAGES_STACK).is_file():
        raise InputError(f"no {layout.CLASS_AVERAGES_STACK}", where=folder)
    if not isinstance(meta["classes"], list) or any(
        not isinstance(c, dict) or "class_index" not in c for c in meta["classes"]
    ):
        raise FormatError("classes is not a list of classes with class_index", where=path)
    plan.kind = RunKind.class2d
    plan.class_averages = meta


def _find(by_dst: dict[str, Planned], dst: str) -> Planned | None:
    return by_dst.get(dst)


def _under(by_dst: dict[str, Planned], dst_dir: str) -> list[Planned]:
    prefix = dst_dir.rstrip("/") + "/"
    return [p for d, p in by_dst.items() if d.startswith(prefix)]


def _plan_tomography(
    plan: PlannedRun,
    run_dir: Path,
    src: layouts.Layout,
    ids: _PlanIds,
    by_dst: dict[str, Planned],
    root: Path,
    notes: list[str],
) -> None:
    run = run_dir.name
    ts_dst = f"{run}/{layout.TILT_SERIES}"
    ts_files = [p for p in _under(by_dst, ts_dst) if p.dst.count("/") == 2 or ".zarr/" in p.dst]
    if ts_files:
        plan.tilt_series = _plan_tilt_series(run, ts_dst, ts_files, by_dst, root, notes)
    for vs_dir in _vs_dirs(run_dir, src):
        vs = _vs_of(vs_dir)
        plan.spacings.append(vs)
        vs_dst = f"{run}/" + layouts.V1.format("voxel_spacing", vs=vs)
        canonical = f"{vs_dst}/{layout.CANONICAL_TOMOGRAM}"
        if _under(by_dst, canonical):
            plan.tomograms.append(_plan_tomogram(run, vs, canonical, vs_dst, by_dst, notes))
        groups = _annotation_groups(vs_dir, src)
        for source_id in sorted(groups):
            key = ids.annotations[(run, vs, source_id)]
            plan.annotations.append(
                _plan_annotation(run, vs, key, groups[source_id], src, by_dst, root, notes)
            )
    if plan.tilt_series is None and not plan.tomograms and not plan.annotations:
        raise InputError(
            "holds no tilt series, tomogram, annotation or class averages",
            where=run_dir,
            hint="the download may be incomplete; download the run again",
        )


def _mrc_size(planned: Planned, notes: list[str]) -> tuple[tuple[int, int, int], float]:
    header = read_header(planned.src)  # FormatError for damaged or truncated files
    return (header.nx, header.ny, header.nz), header.voxel_size_a


def _pick(candidates: list[Planned], named: list[str], suffixes: tuple[str, ...]) -> Planned | None:
    for name in named:
        for p in candidates:
            if posixpath.basename(p.dst) == name:
                return p
    matching = [p for p in candidates if p.dst.lower().endswith(suffixes)]
    return matching[0] if len(matching) == 1 else None


def _named(meta: dict[str, Any], key: str) -> list[str]:
    value = meta.get(key)
    values = value if isinstance(value, list) else [value]
    return [posixpath.basename(str(v).rstrip("/")) for v in values if isinstance(v, str) and v]


def _plan_tilt_series(
    run: str,
    ts_dst: str,
    ts_files: list[Planned],
    by_dst: dict[str, Planned],
    root: Path,
    notes: list[str],
) -> PlannedTiltSeries:
    meta_p = _find(by_dst, f"{ts_dst}/{layout.TILT_SERIES_METADATA}")
    meta = _read_json(meta_p.src, "tilt series metadata") if meta_p else {}
    top = [p for p in ts_files if p.dst.count("/") == 2]
    mrc = _pick(top, [*_named(meta, "mrc_files"), _basename(meta.get("mrc_file")), f"{run}.mrc"],
                MRC_SUFFIXES)  # fmt: skip
    angles = _pick(top, [_basename(meta.get("angle_list")), f"{run}.rawtlt"], ANGLE_SUFFIXES)
    zarr_dirs = sorted({p.dst.split(".zarr/")[0] + ".zarr" for p in ts_files if ".zarr/" in p.dst})
    ts = PlannedTiltSeries(metadata=meta, metadata_src=meta_p.src_rel if meta_p else None)
    if mrc is not None:
        ts.size_xyz, voxel = _mrc_size(mrc, notes)
        ts.mrc_dst, ts.mrc_size = mrc.dst, _size(mrc.src)
        ts.pixel_spacing = round(voxel, 3) if voxel > 0 else None
    if angles is not None:
        ts.angles_dst = angles.dst
        _check_angles(angles.src)
    if zarr_dirs:
        ts.zarr_dst = zarr_dirs[0]
    if mrc is None and not zarr_dirs:
        raise InputError(
            "holds no tilt series MRC or OME-Zarr",
            where=(root / ts_files[0].src_rel).parent,
            hint="the download may be incomplete; download the run again",
        )
    return ts


def _basename(value: Any) -> str:
    return posixpath.basename(value.rstrip("/")) if isinstance(value, str) else ""


def _check_angles(path: Path) -> None:
    try:
        lines = [ln.split() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        [float(parts[0]) for parts in lines]
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise FormatError(f"is not a list of tilt angles ({err})", where=path) from err


def _plan_tomogram(
    run: str,
    vs: float,
    canonical: str,
    vs_dst: str,
    by_dst: dict[str, Planned],
    notes: list[str],
) -> PlannedTomogram:
    files = _under(by_dst, canonical)
    meta_p = _find(by_dst, f"{canonical}/{layout.TOMOGRAM_METADATA}")
    where = (meta_p or files[0]).src.parent
    meta = _read_json(meta_p.src, "tomogram metadata") if meta_p else {}
    reader = _Reader(meta, meta_p.src if meta_p else where, notes)
    top = [p for p in files if p.dst.count("/") == canonical.count("/") + 1]
    mrc = _pick(top, [*_named(meta, "mrc_files"), f"{run}.mrc"], MRC_SUFFIXES)
    zarr_name = _basename(meta.get("omezarr_dir")) or f"{run}.zarr"
    zarr_dst = f"{canonical}/{zarr_name}"
    has_zarr = bool(_under(by_dst, zarr_dst))
    if not has_zarr:
        zarrs = sorted({p.dst.split(".zarr/")[0] + ".zarr" for p in files if ".zarr/" in p.dst})
        zarr_dst = zarrs[0] if zarrs else ""
        has_zarr = bool(zarrs)
    if mrc is None and not has_zarr:
        raise InputError(
            "holds no tomogram MRC or OME-Zarr",
            where=where,
            hint="the download may be incomplete; download the run again",
        )
    size: tuple[int, int, int] | None = None
    if mrc is not None:
        size, _ = _mrc_size(mrc, notes)
    sx, sy, sz = reader.int("size", "x"), reader.int("size", "y"), reader.int("size", "z")
    if sx is not None and sy is not None and sz is not None:
        size = (sx, sy, sz)
    if size is None:
        raise FormatError(
            "gives no size {x, y, z} and there is no MRC to read it from",
            where=meta_p.src if meta_p else where,
        )
    tomo = PlannedTomogram(
        vs=vs,
        metadata=meta,
        metadata_src=meta_p.src_rel if meta_p else None,
        size_xyz=size,
    )
    if mrc is not None:
        tomo.mrc_dst, tomo.mrc_size = mrc.dst, _size(mrc.src)
    if has_zarr:
        tomo.zarr_dst = zarr_dst
        tomo.zarr_size = sum(_size(p.src) for p in _under(by_dst, zarr_dst))
    photos = f"{vs_dst}/{layout.KEY_PHOTOS}"
    if _find(by_dst, f"{photos}/{layout.KEY_PHOTO_SNAPSHOT}"):
        tomo.snapshot_dst = f"{photos}/{layout.KEY_PHOTO_SNAPSHOT}"
    if _find(by_dst, f"{photos}/{layout.KEY_PHOTO_THUMBNAIL}"):
        tomo.thumbnail_dst = f"{photos}/{layout.KEY_PHOTO_THUMBNAIL}"
    ng = _find(by_dst, f"{canonical}/{layouts.NEUROGLANCER_CONFIG}")
    if ng is not None:
        try:
            tomo.neuroglancer_config = json.dumps(
                json.loads(ng.src.read_text(encoding="utf-8")), separators=(",", ":")
            )
        except (OSError, UnicodeDecodeError, ValueError):
            notes.append(f"{ng.src}: not readable JSON; copied but not cataloged")
    return tomo


def _plan_annotation(
    run: str,
    vs: float,
    key: int,
    entries: list[Path],
    src: layouts.Layout,
    by_dst: dict[str, Planned],
    root: Path,
    notes: list[str],
) -> PlannedAnnotation:
    where = entries[0].parent if src is layouts.V2 else entries[0]
    metadata_paths = []
    for entry in entries:
        if entry.is_file() and entry.name.endswith(".json"):
            doc = _read_json(entry, "annotation metadata")
            if "annotation_object" in doc:
                metadata_paths.append((entry, doc))
    if len(metadata_paths) != 1:
        raise FormatError(
            "has no annotation metadata JSON (with annotation_object)"
            if not metadata_paths
            else "has several annotation metadata JSON files",
            where=where,
            hint="the download may be incomplete; download the annotation again",
        )
    meta_path, meta = metadata_paths[0]
    reader = _Reader(meta, meta_path, notes)
    if not reader.str("annotation_object", "name") or not reader.str("annotation_object", "id"):
        raise FormatError("annotation_object needs a name and an id", where=meta_path)
    if (
        reader.get("method_type") is not None
        and reader.enum(AnnotationMethodType, "method_type") is None
    ):
        raise FormatError(
            f"method_type {meta.get('method_type')!r} is not one of "
            + ", ".join(m.value for m in AnnotationMethodType),
            where=meta_path,
        )
    for k in ("precision", "recall"):
        value = reader.float("confidence", k)
        if value is not None and not 0 <= value <= 100:
            raise FormatError(
                f"confidence.{k} {value} is not a percentage (0–100)", where=meta_path
            )
    meta_rel = meta_path.relative_to(root).as_posix()
    meta_dst = _dst_of(by_dst, meta_rel)
    planned = PlannedAnnotation(
        key=key, vs=vs, metadata=meta, metadata_src=meta_rel, metadata_dst=meta_dst
    )
    declared = _declared_files(meta, meta_path, root)
    for entry in entries:
        if entry == meta_path:
            continue
        rel = entry.relative_to(root).as_posix()
        info = declared.get(entry.name, {})
        shape = _shape_of(entry, info, meta_path)
        fmt = str(info.get("format") or _format_of(entry)).lower()
        if entry.is_dir():
            if fmt == "zarr" and not _looks_like_zarr(entry):
                raise FormatError("is not an OME-Zarr folder", where=entry)
            dst = _dst_of_dir(by_dst, rel)
        else:
            dst = _dst_of(by_dst, rel)
            _check_annotation_file(entry, shape, fmt)
        visible = info.get("is_visualization_default")
        planned.files.append(
            PlannedFile(
                src_rel=rel,
                dst=dst,
                shape=shape,
                format=fmt,
                size=_tree_size(entry),
                is_visualization_default=True if visible is None else bool(visible),
            )
        )
    if not planned.files:
        raise InputError(
            "has metadata but no annotation files",
            where=meta_path,
            hint="the download may be incomplete; download the annotation again",
        )
    return planned


def _dst_of(by_dst: dict[str, Planned], src_rel: str) -> str:
    for p in by_dst.values():
        if p.src_rel == src_rel:
            return p.dst
    raise AssertionError(f"unplanned {src_rel}")


def _dst_of_dir(by_dst: dict[str, Planned], src_rel: str) -> str:
    prefix = src_rel + "/"
    for p in by_dst.values():
        if p.src_rel.startswith(prefix):
            return p.dst[: len(p.dst) - (len(p.src_rel) - len(src_rel))]
    raise InputError("is an empty folder", where=src_rel)


def _declared_files(meta: dict[str, Any], meta_path: Path, root: Path) -> dict[str, dict]:
    """``files[]`` of an annotation's metadata, by base name."""
    out: dict[str, dict] = {}
    for item in meta.get("files") or []:
        if isinstance(item, dict) and isinstance(item.get("path"), str):
            out[posixpath.basename(item["path"].rstrip("/"))] = item
    return out


def _shape_of(entry: Path, info: dict[str, Any], meta_path: Path) -> AnnotationShapeType:
    name = info.get("shape")
    if not name:
        stem = (
            entry.name.removesuffix(".zarr").rsplit(".", 1)[0]
            if entry.is_file()
            else (entry.name.removesuffix(".zarr"))
        )
        name = stem.rsplit("_", 1)[-1] if "_" in stem else ""
    shape = _SHAPES.get(str(name).replace("_", "").lower())
    if shape is None:
        raise FormatError(
            f"shape {name!r} is not one of the portal's ("
            + ", ".join(s.value for s in AnnotationShapeType)
            + ")",
            where=entry,
            hint=f"name it <object>-<version>_<shape>.<ext> or list it in {meta_path.name}",
        )
    return shape


def _format_of(entry: Path) -> str:
    return entry.suffix.lstrip(".").lower() or "bin"


def _looks_like_zarr(path: Path) -> bool:
    return any((path / n).is_file() for n in (".zgroup", ".zattrs", ".zarray", "zarr.json"))


def _check_annotation_file(path: Path, shape: AnnotationShapeType, fmt: str) -> None:
    if fmt == "mrc":
        read_header(path)
    elif fmt == "ndjson" and shape in _POINT_SHAPES and _size(path) <= NDJSON_CHECK_LIMIT:
        _check_ndjson(path)


def _check_ndjson(path: Path) -> None:
    """Every line is ``{"type": …, "location": {"x": …, "y": …, "z": …}, …}``."""
    try:
        with open(path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    point = json.loads(line)
                    loc = point["location"]
                    [float(loc[axis]) for axis in "xyz"]
                except (ValueError, KeyError, TypeError) as err:
                    raise FormatError(
                        f"line {number} is not a point with a location {{x, y, z}}",
                        where=path,
                        hint="see the portal's ndjson format",
                    ) from err
    except (OSError, UnicodeDecodeError) as err:
        raise FormatError(f"is not readable text ({err})", where=path) from err


# ── staging ─────────────────────────────────────────────────────────────────────────────────


def _stage(plan: Plan, staged: Path, progress: Callable[[int], None] | None) -> None:
    for p in plan.files:
        target = names.contained(staged, p.dst, what="copy")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            copy_file(p.src, target, progress)
        except OSError as err:
            raise InputError(f"cannot copy: {err.strerror or err}", where=p.src) from err


# ── committing ──────────────────────────────────────────────────────────────────────────────


def _bump_dataset_sequence(session: Session, dataset_id: int) -> None:
    """After inserting an explicit dataset id, keep PostgreSQL's identity ahead of it
    (SQLite's AUTOINCREMENT does this by itself)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    seq = session.scalar(text("SELECT pg_get_serial_sequence('datasets', 'id')"))
    if seq:
        session.execute(
            text(
                "SELECT setval(CAST(:seq AS regclass), "
                f"GREATEST(:id, (SELECT last_value FROM {seq})), true)"
            ),
            {"seq": seq, "id": dataset_id},
        )


def _authors(items: Any, cls: type, where: Path, notes: list[str]) -> list[Any]:
    out = []
    if not isinstance(items, list):
        return out
    for order, item in enumerate(items):
        if not isinstance(item, dict) or not item.get("name"):
            notes.append(f"{where}: an author without a name was left out")
            continue
        r = _Reader(item, where, notes)
        out.append(
            cls(
                name=str(item["name"]),
                email=r.str("email"),
                orcid=r.str("ORCID") or r.str("orcid"),
                affiliation_name=r.str("affiliation_name"),
                affiliation_address=r.str("affiliation_address"),
                affiliation_identifier=r.str("affiliation_identifier"),
                corresponding_author_status=bool(r.bool("corresponding_author_status")),
                primary_author_status=bool(
                    r.bool("primary_author_status") or r.bool("primary_annotator_status")
                ),
                author_list_order=r.int("author_list_order") or order,
            )
        )
    return out


def _dataset_row(session: Session, plan: Plan, dataset_id: int | None, notes: list[str]) -> Dataset:
    where = plan.folder / layout.DATASET_METADATA
    r = _Reader(plan.metadata, where, notes)
    deposition_id = r.int("deposition_id")
    if deposition_id is not None and session.get(Deposition, deposition_id) is None:
        deposition_id = None
    dataset = Dataset(
        title=r.str("dataset_title") or "",
        description=r.str("dataset_description"),
        lab=r.str("lab"),
        organism_name=r.str("organism", "name"),
        organism_taxid=r.int("organism", "taxonomy_id"),
        sample_type=r.enum(SampleType, "sample_type"),
        sample_preparation=r.str("sample_preparation"),
        grid_preparation=r.str("grid_preparation"),
        other_setup=r.str("other_setup"),
        dataset_publications=r.str("cross_references", "publications")
        or r.str("cross_references", "dataset_publications"),
        related_database_entries=r.str("cross_references", "related_database_entries"),
        deposition_date=r.date("dates", "deposition_date"),
        release_date=r.date("dates", "release_date"),
        last_modified_date=r.date("dates", "last_modified_date"),
        deposition_id=deposition_id,
    )
    if dataset_id is not None:
        dataset.id = dataset_id
    dataset.authors = _authors(plan.metadata.get("authors"), DatasetAuthor, where, notes)
    funding = plan.metadata.get("funding") or plan.metadata.get("funding_sources") or []
    dataset.funding_sources = [
        DatasetFunding(
            funding_agency_name=_Reader(f, where, notes).str("funding_agency_name"),
            grant_id=_Reader(f, where, notes).str("grant_id"),
        )
        for f in funding
        if isinstance(f, dict)
    ]
    return dataset


def _tilt_series_row(ts: PlannedTiltSeries, run: Run, paths: Callable[[str], str],
                     where: Path, notes: list[str]) -> TiltSeries:  # fmt: skip
    r = _Reader(ts.metadata, where, notes)

    def pick(nested: tuple[str, ...], flat: str, kind: str = "str") -> Any:
        read = getattr(r, kind)
        value = read(*nested)
        return value if value is not None else read(flat)

    tilt_min = pick(("tilt_range", "min"), "tilt_min", "float")
    tilt_max = pick(("tilt_range", "max"), "tilt_max", "float")
    tilt_range = (
        tilt_max - tilt_min
        if tilt_min is not None and tilt_max is not None
        else (r.float("tilt_range") if not isinstance(r.get("tilt_range"), dict) else None)
    )
    quality = r.int("tilt_series_quality")
    if quality is not None and not 1 <= quality <= 5:
        raise FormatError(f"tilt_series_quality {quality} is not on the 1–5 scale", where=where)
    manufacturer = r.get("microscope", "manufacturer") or r.get("microscope_manufacturer")
    size = ts.size_xyz or (r.int("size", "x"), r.int("size", "y"), r.int("size", "z"))
    return TiltSeries(
        run=run,
        mrc_file=paths(ts.mrc_dst) if ts.mrc_dst else None,
        omezarr_dir=paths(ts.zarr_dst) if ts.zarr_dst else None,
        angle_list=paths(ts.angles_dst) if ts.angles_dst else None,
        file_size_mrc=ts.mrc_size,
        acceleration_voltage=r.float("acceleration_voltage"),
        spherical_aberration_constant=r.float("spherical_aberration_constant"),
        microscope_manufacturer=_Reader({"m": manufacturer}, where, notes).enum(
            TiltSeriesMicroscopeManufacturer, "m"
        ),
        microscope_model=pick(("microscope", "model"), "microscope_model"),
        microscope_energy_filter=pick(
            ("microscope_optical_setup", "energy_filter"), "microscope_energy_filter"
        ),
        microscope_phase_plate=pick(
            ("microscope_optical_setup", "phase_plate"), "microscope_phase_plate"
        ),
        microscope_image_corrector=pick(
            ("microscope_optical_setup", "image_corrector"), "microscope_image_corrector"
        ),
        microscope_additional_info=pick(
            ("microscope", "additional_info"), "microscope_additional_info"
        ),
        camera_manufacturer=pick(("camera", "manufacturer"), "camera_manufacturer"),
        camera_model=pick(("camera", "model"), "camera_model"),
        tilt_min=tilt_min,
        tilt_max=tilt_max,
        tilt_range=tilt_range,
        tilt_step=r.float("tilt_step"),
        tilting_scheme=r.str("tilting_scheme"),
        tilt_axis=r.float("tilt_axis"),
        total_flux=r.float("total_flux"),
        data_acquisition_software=r.str("data_acquisition_software"),
        related_empiar_entry=r.str("related_empiar_entry"),
        binning_from_frames=r.float("binning_from_frames"),
        tilt_series_quality=quality,
        is_aligned=bool(r.bool("is_aligned")),
        pixel_spacing=r.float("pixel_spacing") or ts.pixel_spacing,
        aligned_tiltseries_binning=r.float("aligned_tiltseries_binning"),
        size_x=size[0],
        size_y=size[1],
        size_z=size[2],
    )


def _scale(r: _Reader, scales: Any, i: int) -> str | None:
    if not isinstance(scales, list) or len(scales) <= i or not isinstance(scales[i], dict):
        return None
    s = scales[i]
    if not all(k in s for k in ("x", "y", "z")):
        return None
    return f"{s['x']},{s['y']},{s['z']}"


def _tomogram_row(
    t: PlannedTomogram,
    run: Run,
    spacing: TomogramVoxelSpacing,
    paths: Callable[[str], str],
    where: Path,
    notes: list[str],
) -> Tomogram:
    r = _Reader(t.metadata, where, notes)
    tomo = Tomogram(
        name=r.str("name") or run.name,
        run=run,
        tomogram_voxel_spacing=spacing,
        size_x=t.size_xyz[0],
        size_y=t.size_xyz[1],
        size_z=t.size_xyz[2],
        voxel_spacing=r.float("voxel_spacing") or t.vs,
        fiducial_alignment_status=r.enum(FiducialAlignmentStatus, "fiducial_alignment_status"),
        reconstruction_method=r.enum(TomogramReconstructionMethod, "reconstruction_method"),
        reconstruction_software=r.str("reconstruction_software"),
        processing=r.enum(TomogramProcessing, "processing") or TomogramProcessing.raw,
        processing_software=r.str("processing_software"),
        tomogram_version=r.float("tomogram_version"),
        ctf_corrected=r.bool("ctf_corrected"),
        offset_x=r.int("offset", "x") or 0,
        offset_y=r.int("offset", "y") or 0,
        offset_z=r.int("offset", "z") or 0,
        scale_0_dimensions=_scale(r, t.metadata.get("scales"), 0),
        scale_1_dimensions=_scale(r, t.metadata.get("scales"), 1),
        scale_2_dimensions=_scale(r, t.metadata.get("scales"), 2),
        mrc_file=paths(t.mrc_dst) if t.mrc_dst else None,
        omezarr_dir=paths(t.zarr_dst) if t.zarr_dst else None,
        file_size_mrc=t.mrc_size,
        file_size_omezarr=t.zarr_size,
        key_photo_url=paths(t.snapshot_dst) if t.snapshot_dst else None,
        key_photo_thumbnail_url=paths(t.thumbnail_dst) if t.thumbnail_dst else None,
        neuroglancer_config=t.neuroglancer_config,
    )
    for flag in ("is_portal_standard", "is_author_submitted", "is_visualization_default"):
        value = r.bool(flag)
        if value is not None:
            setattr(tomo, flag, value)
    tomo.authors = _authors(t.metadata.get("authors"), TomogramAuthor, where, notes)
    return tomo


def _annotation_row(a: PlannedAnnotation, run: Run, where: Path, notes: list[str]) -> Annotation:
    r = _Reader(a.metadata, where, notes)
    method_type = r.enum(AnnotationMethodType, "method_type") or AnnotationMethodType.manual
    annotation = Annotation(
        run=run,
        annotation_publication=r.str("annotation_publications") or r.str("annotation_publication"),
        annotation_method=r.str("annotation_method") or method_type.value,
        annotation_software=r.str("annotation_software"),
        method_type=method_type,
        ground_truth_status=bool(r.bool("ground_truth_status")),
        is_curator_recommended=bool(r.bool("is_curator_recommended")),
        object_id=r.str("annotation_object", "id") or "",
        object_name=r.str("annotation_object", "name") or "",
        object_description=r.str("annotation_object", "description"),
        object_state=r.str("annotation_object", "state"),
        object_count=r.int("object_count"),
        confidence_precision=r.float("confidence", "precision"),
        confidence_recall=r.float("confidence", "recall"),
        ground_truth_used=r.str("confidence", "ground_truth_used"),
        confidence_rule=rule if isinstance(rule := r.get("confidence", "rule"), dict) else None,
        version=r.str("version") or "1.0",
        deposition_date=r.date("dates", "deposition_date"),
        release_date=r.date("dates", "release_date"),
        last_modified_date=r.date("dates", "last_modified_date"),
    )
    annotation.authors = _authors(a.metadata.get("authors"), AnnotationAuthor, where, notes)
    return annotation


@dataclass
class _Commit:
    """The placeholder → id table and the source → destination path table of one import."""

    plan: Plan
    dataset_dir: str = ""
    annotation_ids: dict[int, int] = field(default_factory=dict)
    run_ids: dict[str, int] = field(default_factory=dict)
    tomogram_ids: dict[str, int] = field(default_factory=dict)  # metadata dst → id

    def final(self, dst: str) -> str:
        """A planned destination (dataset-folder-relative) with placeholders filled in."""
        parts = dst.split("/")
        i = _marked_part(parts)
        if i is not None:
            parts[i] = ANNOTATION_MARK.sub(
                lambda m: str(self.annotation_ids[int(m.group(1))]), parts[i], count=1
            )
        return "/".join(parts)

    def tree_path(self, dst: str) -> str:
        return f"{self.dataset_dir}/{self.final(dst)}"

    def path_map(self) -> dict[str, str]:
        """Source-root-relative → tree-relative, for files and the folders that hold them."""
        out: dict[str, str] = {self.plan.src_prefix: self.dataset_dir}
        for p in self.plan.files:
            dst = self.tree_path(p.dst)
            out[p.src_rel] = dst
            s, d = p.src_rel.split("/"), dst.split("/")
            while len(s) > 1 and len(d) > 1 and s[-1] == d[-1]:
                s, d = s[:-1], d[:-1]
                out.setdefault("/".join(s), "/".join(d))
        return out


def _marked_part(parts: list[str]) -> int | None:
    """Index of the path part holding an annotation placeholder: the file or folder right
    under ``Annotations/`` or ``NeuroglancerPrecompute/`` (nowhere else, whatever names say)."""
    for i in range(1, len(parts)):
        if parts[i - 1] in (layout.ANNOTATIONS, layouts.NEUROGLANCER_PRECOMPUTE):
            return i if ANNOTATION_MARK.match(parts[i]) else None
    return None


def _rename_placeholders(staged: Path, commit: _Commit) -> None:
    done: set[str] = set()
    for p in commit.plan.files:
        parts = p.dst.split("/")
        i = _marked_part(parts)
        if i is None:
            continue
        marked = "/".join(parts[: i + 1])
        if marked not in done:
            target = staged / commit.final(marked)
            os.rename(staged / marked, target)
            atomic.fsync_dir(target.parent)
            done.add(marked)


_ID_KEYS = {
    layout.DATASET_METADATA: {"dataset_identifier": "dataset"},
    layout.RUN_METADATA: {"run_id": "run", "dataset_id": "dataset"},
    layout.TOMOGRAM_METADATA: {"tomogram_id": "tomogram"},
}


def _write_metadata(staged: Path, commit: _Commit, dataset_id: int) -> None:
    """Rewrite paths (and our ids) inside every metadata JSON for its new place."""
    mapping = commit.path_map()
    for p in commit.plan.files:
        if not is_metadata_json(p.src_rel):
            continue
        try:
            document = json.loads(p.src.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            continue  # copied as it is; the plan has read every document it depends on
        dst_tree = commit.tree_path(p.dst)
        rewritten = layouts.rewrite_paths(document, p.src_rel, dst_tree, mapping.get)
        if isinstance(rewritten, dict):
            run = p.dst.split("/")[0]
            ids = {
                "dataset": dataset_id,
                "run": commit.run_ids.get(run),
                "tomogram": commit.tomogram_ids.get(p.dst),
            }
            for key, kind in _ID_KEYS.get(posixpath.basename(p.dst), {}).items():
                if key in rewritten and ids[kind] is not None:
                    rewritten[key] = ids[kind]
        if rewritten != document:
            atomic.write_bytes(staged / commit.final(p.dst), dump_json(rewritten))


def _check_dataset_id(session: Session, plan: Plan, policy: DatasetIdPolicy) -> int | None:
    if policy is DatasetIdPolicy.new:
        return None
    if plan.source_dataset_id is None:
        raise InputError(
            "gives no dataset id (no dataset_identifier, and the folder is not named by one)",
            where=plan.folder,
            hint="import it under a new id with --dataset-id new",
        )
    if session.get(Dataset, plan.source_dataset_id) is not None:
        raise ConflictError(
            f"dataset {plan.source_dataset_id} already exists in this portal",
            where=plan.folder,
            hint="import it under a new id with --dataset-id new",
        )
    return plan.source_dataset_id


def import_czportal(
    portal: Portal,
    folder: str | os.PathLike[str],
    *,
    dataset_id: DatasetIdPolicy | str = DatasetIdPolicy.keep,
    progress: Callable[[int], None] | None = None,
    on_plan: Callable[[Plan], None] | None = None,
) -> ImportResult:
    """Import a dataset folder downloaded from the CZ CryoET Data Portal (v1 or v2 layout).

    Nothing is stored unless all of it is. ``progress(n)`` is called as bytes are copied;
    ``on_plan(plan)`` once the folder has been checked (to size a progress bar).
    """
    policy = DatasetIdPolicy(dataset_id)
    plan = plan_import(Path(folder))
    recovery.recover(portal)
    with portal.transaction() as session:
        _check_dataset_id(session, plan, policy)
    if on_plan is not None:
        on_plan(plan)
    staging = tree.new_staging_dir(layout.staging_root(portal.data_dir), "czportal-import")
    try:
        staged = staging / "dataset"
        staged.mkdir()
        _stage(plan, staged, progress)
        atomic.fsync_tree(staged)  # before the transaction: it may take a while for big datasets
        return _commit(portal, plan, policy, staging, staged)
    finally:
        tree.discard(staging)


def _commit(
    portal: Portal, plan: Plan, policy: DatasetIdPolicy, staging: Path, staged: Path
) -> ImportResult:
    notes = list(plan.notes)
    swap: tree.Swap | None = None
    try:
        with portal.transaction() as session:
            wanted = _check_dataset_id(session, plan, policy)
            dataset = _dataset_row(session, plan, wanted, notes)
            session.add(dataset)
            session.flush()
            if wanted is not None:
                _bump_dataset_sequence(session, dataset.id)
            commit = _Commit(plan=plan, dataset_dir=str(dataset.id))
            n_tomograms = n_annotations = 0
            annotations: list[tuple[Annotation, PlannedAnnotation]] = []
            for pr in plan.runs:
                run = Run(dataset=dataset, name=pr.name, kind=pr.kind)
                session.add(run)
                session.flush()
                commit.run_ids[pr.name] = run.id
                if pr.kind is RunKind.class2d:
                    _class2d_rows(session, run, pr)
                    continue
                n_tomograms += len(pr.tomograms)
                n_annotations += len(pr.annotations)
                annotations += _tomography_rows(session, run, pr, commit, notes)
            _link_ground_truth(annotations, commit)
            _rename_placeholders(staged, commit)
            _write_metadata(staged, commit, dataset.id)
            final = layout.dataset_dir(portal.data_dir, dataset.id)
            swap = tree.swap_in(
                staged,
                final,
                portal.data_dir / tree.SWAPS,
                check=recovery.dataset_check(dataset.id),
            )
            result = ImportResult(
                dataset_id=dataset.id,
                layout=plan.layout,
                runs=[r.name for r in plan.runs],
                n_files=len(plan.files),
                n_bytes=plan.total_bytes,
                n_tomograms=n_tomograms,
                n_annotations=n_annotations,
                notes=notes,
                skipped=list(plan.skipped),
            )
    except BaseException:
        if swap is not None:
            swap.rollback()
        raise
    if swap is not None:
        swap.commit()
    return result


def _class2d_rows(session: Session, run: Run, pr: PlannedRun) -> None:
    meta = pr.class_averages or {}
    sha = meta.get("sha256") or {}
    extracted = meta.get("extracted_at")
    try:
        extracted_at = dt.datetime.fromisoformat(extracted) if extracted else None
    except ValueError:
        extracted_at = None
    job = Class2DJob(
        software=str(meta["software"]),
        project_uid=meta.get("project_uid"),
        job_uid=meta.get("job_uid"),
        iteration=int(meta["iteration"]),
        pixel_size_a=float(meta["pixel_size_A"]),
        box_size=int(meta["box_size"]),
        n_classes=int(meta["n_classes"]),
        n_particles=int(meta.get("n_particles") or 0),
        source_path=str(meta.get("source_path") or ""),
        input_files={name: {"sha256": h} for name, h in sha.items()},
        fingerprint=str(meta.get("fingerprint") or ""),
        extracted_at=extracted_at or dt.datetime.now(dt.UTC),
        cryocurate_version=str(meta.get("cryocurate_version") or ""),
    )
    run.class2d_job = job
    session.add(job)
    rows = [
        {
            "resolution_A": None,
            "particle_count": 0,
            "class_fraction": 0.0,
            "mean_posterior": None,
            "mean_ess": None,
            "accuracy_rotations": None,
            "accuracy_translations_A": None,
            "pixel_size_A": job.pixel_size_a,
            "mass_estimate": None,
            "dmean_mass": None,
            "dmedian_mass": None,
            "dmode_mass": None,
            **c,
        }
        for c in meta["classes"]
    ]
    upsert_class_rows(session, run, rows)


def _link_ground_truth(
    annotations: list[tuple[Annotation, PlannedAnnotation]], commit: _Commit
) -> None:
    """``ground_truth_used`` names another annotation's metadata file: point it at its new
    place, and link the annotation it names when it came in the same import."""
    mapping = commit.path_map()
    by_path = {row.metadata_path: row for row, _ in annotations}
    for row, planned in annotations:
        confidence = planned.metadata.get("confidence")
        used = confidence.get("ground_truth_used") if isinstance(confidence, dict) else None
        if not isinstance(used, str) or not used:
            continue
        dst = commit.tree_path(planned.metadata_dst)
        row.ground_truth_used = layouts.rewrite_paths(used, planned.metadata_src, dst, mapping.get)
        truth = by_path.get(row.ground_truth_used)
        if truth is not None and truth is not row:
            row.ground_truth_annotation_id = truth.id


def _identified_objects(
    session: Session, run: Run, pr: PlannedRun, folder: Path, notes: list[str]
) -> None:
    """``identified_objects`` of ``run_metadata.json``: objects seen without annotation files."""
    items = pr.metadata.get("identified_objects")
    where = folder.parent / pr.metadata_src
    for item in items if isinstance(items, list) else []:
        r = _Reader(item if isinstance(item, dict) else {}, where, notes)
        object_id, name = r.str("object_id"), r.str("object_name")
        if not object_id or not name:
            notes.append(f"{where}: an identified object without object_id and object_name")
            continue
        session.add(
            IdentifiedObject(
                run=run,
                object_id=object_id,
                object_name=name,
                object_description=r.str("object_description"),
                object_state=r.str("object_state"),
            )
        )


def _tomography_rows(
    session: Session, run: Run, pr: PlannedRun, commit: _Commit, notes: list[str]
) -> list[tuple[Annotation, PlannedAnnotation]]:
    paths = commit.tree_path
    folder = commit.plan.folder
    if pr.tilt_series is not None:
        where = folder.parent / (pr.tilt_series.metadata_src or f"{folder.name}/{pr.name}")
        session.add(_tilt_series_row(pr.tilt_series, run, paths, where, notes))
    rows: list[tuple[Annotation, PlannedAnnotation]] = []
    _identified_objects(session, run, pr, folder, notes)
    spacings: dict[float, TomogramVoxelSpacing] = {}
    for vs in pr.spacings:
        spacings[vs] = TomogramVoxelSpacing(run=run, voxel_spacing=vs)
        session.add(spacings[vs])
    for t in pr.tomograms:
        where = folder.parent / (t.metadata_src or f"{folder.name}/{pr.name}")
        tomo = _tomogram_row(t, run, spacings[t.vs], paths, where, notes)
        session.add(tomo)
        session.flush()
        canonical = f"{pr.name}/" + layouts.V1.format("tomogram", vs=t.vs)
        commit.tomogram_ids[f"{canonical}/{layout.TOMOGRAM_METADATA}"] = tomo.id
    for a in pr.annotations:
        where = folder.parent / a.metadata_src
        annotation = _annotation_row(a, run, where, notes)
        rows.append((annotation, a))
        session.add(annotation)
        session.flush()
        commit.annotation_ids[a.key] = annotation.id
        annotation.metadata_path = paths(a.metadata_dst)
        shapes: dict[AnnotationShapeType, AnnotationShape] = {}
        for f in a.files:
            shape = shapes.get(f.shape)
            if shape is None:
                shape = shapes[f.shape] = AnnotationShape(annotation=annotation, shape_type=f.shape)
                session.add(shape)
            session.add(
                AnnotationFile(
                    annotation_shape=shape,
                    tomogram_voxel_spacing=spacings[a.vs],
                    format=f.format,
                    path=paths(f.dst),
                    file_size=f.size,
                    is_visualization_default=f.is_visualization_default,
                    source=AnnotationFileSource.dataset_author,
                )
            )
    session.flush()
    return rows


__all__ = [
    "DatasetIdPolicy",
    "ImportResult",
    "Plan",
    "detect_layout",
    "import_czportal",
    "plan_import",
]
