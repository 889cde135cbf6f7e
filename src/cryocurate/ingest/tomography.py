"""Ingesting a tomography run: a tomogram, optionally its tilt series, into the portal layout.

::

    <dataset>/<run>/run_metadata.json
    <dataset>/<run>/TiltSeries/<run>.mrc, <run>.rawtlt, tiltseries_metadata.json
    <dataset>/<run>/Tomograms/VoxelSpacing<vs>/CanonicalTomogram/<run>.mrc, <run>.zarr/,
                                                                 tomogram_metadata.json
    <dataset>/<run>/Tomograms/VoxelSpacing<vs>/KeyPhotos/key-photo-{snapshot,thumbnail}.png

The whole run folder is built in a staging folder (MRC copied, OME-Zarr pyramid and key
photos written, both streamed in bounded memory) and swapped into place with the catalog
rows in one transaction, like a 2D classification run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from cryocurate import atomic
from cryocurate.catalog.models import (
    TILT_SERIES_QUALITY,
    Dataset,
    Run,
    RunKind,
    TiltSeries,
    TiltSeriesMicroscopeManufacturer,
    Tomogram,
    TomogramProcessing,
    TomogramReconstructionMethod,
    TomogramVoxelSpacing,
)
from cryocurate.errors import ConflictError, FormatError, InputError, NotFoundError
from cryocurate.formats.keyphotos import key_photos
from cryocurate.formats.mrc import read_header
from cryocurate.formats.omezarr import write_pyramid
from cryocurate.ingest import recovery
from cryocurate.ingest.extract import run_metadata
from cryocurate.portal import Portal
from cryocurate.store import layout, names, tree

TILT_SERIES_SUFFIXES = {".st", ".ali", ".mrcs"}
ANGLE_SUFFIXES = {".rawtlt", ".tlt"}


@dataclass(frozen=True)
class Acquisition:
    """What the microscope did, as the portal's TiltSeries records it (all optional)."""

    microscope_manufacturer: str | None = None
    microscope_model: str | None = None
    camera_manufacturer: str | None = None
    camera_model: str | None = None
    acceleration_voltage: float | None = None  # volts
    spherical_aberration_constant: float | None = None  # mm
    tilt_step: float | None = None
    tilt_axis: float | None = None
    tilting_scheme: str | None = None
    total_flux: float | None = None  # e⁻/Å²
    data_acquisition_software: str | None = None
    tilt_series_quality: int | None = None

    def check(self) -> None:
        q = self.tilt_series_quality
        if q is not None and not 1 <= q <= 5:
            raise InputError(
                f"tilt-series quality {q} is not on the 1–5 scale",
                hint="5 excellent, 4 good, 3 medium, 2 marginal, 1 low",
            )
        m = self.microscope_manufacturer
        if m is not None and m not in TiltSeriesMicroscopeManufacturer.__members__:
            raise InputError(
                f"microscope manufacturer {m!r} is not one of the portal's",
                hint="use one of " + ", ".join(TiltSeriesMicroscopeManufacturer.__members__),
            )


@dataclass(frozen=True)
class TomogramFields:
    """How the tomogram was made (all optional, portal vocabularies)."""

    reconstruction_method: str | None = None
    reconstruction_software: str | None = None
    processing: str = "raw"
    processing_software: str | None = None
    ctf_corrected: bool | None = None

    def check(self) -> None:
        rm = self.reconstruction_method
        if rm is not None and rm not in TomogramReconstructionMethod.__members__:
            raise InputError(
                f"reconstruction method {rm!r} is not one of the portal's",
                hint="use one of " + ", ".join(TomogramReconstructionMethod.__members__),
            )
        if self.processing not in TomogramProcessing.__members__:
            raise InputError(
                f"processing {self.processing!r} is not one of the portal's",
                hint="use one of " + ", ".join(TomogramProcessing.__members__),
            )


@dataclass(frozen=True)
class RunFiles:
    """The files given for one run, sorted into their roles."""

    tomogram: Path
    tilt_series: Path | None = None
    angles: Path | None = None


def read_angles(path: Path) -> np.ndarray:
    """A ``.rawtlt``: one tilt angle (degrees) per line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise FormatError(f"cannot read tilt angles: {err}", where=path) from err
    angles = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            angles.append(float(line.split()[0]))
        except ValueError as err:
            raise FormatError(
                f"line {number} is not an angle: {line.strip()!r}", where=path
            ) from err
    if not angles:
        raise FormatError("holds no tilt angles", where=path)
    return np.array(angles)


def sort_paths(paths: Sequence[Path], tilt_series: Path | None = None) -> RunFiles:
    """Tell the tomogram, the tilt series and the angle list apart by name and content."""
    angles = [p for p in paths if p.suffix.lower() in ANGLE_SUFFIXES]
    mrcs = [p for p in paths if p.suffix.lower() not in ANGLE_SUFFIXES and p != tilt_series]
    for p in paths:
        if not p.is_file():
            raise InputError("file not found", where=p)
    if len(angles) > 1:
        raise InputError("several tilt-angle files given; give one .rawtlt")
    if tilt_series is None:
        named = [p for p in mrcs if p.suffix.lower() in TILT_SERIES_SUFFIXES]
        if len(named) == 1:
            tilt_series = named[0]
        elif angles and len(mrcs) == 2:
            n_angles = len(read_angles(angles[0]))
            matching = [p for p in mrcs if read_header(p).nz == n_angles]
            if len(matching) == 1:
                tilt_series = matching[0]
        if tilt_series is not None:
            mrcs.remove(tilt_series)
    if len(mrcs) != 1:
        raise InputError(
            f"expected one tomogram MRC, got {len(mrcs)}",
            hint="name the tilt series with --tilt-series if the files cannot be told apart",
        )
    if angles and tilt_series is None:
        raise InputError("a .rawtlt was given without a tilt series", where=angles[0])
    return RunFiles(tomogram=mrcs[0], tilt_series=tilt_series, angles=angles[0] if angles else None)


@dataclass
class IngestedRun:
    dataset_id: int
    run_id: int
    run_name: str
    tomogram_id: int
    voxel_spacing: float
    size_xyz: tuple[int, int, int]
    tilt_series_id: int | None = None
    files: list[str] = field(default_factory=list)
    renamed_from: str | None = None  # the name asked for, when it was not a safe folder name


def _voxel_spacing(path: Path, given: float | None) -> float:
    header = read_header(path)
    if given is not None:
        if given <= 0:
            raise InputError(f"--voxel-spacing {given} is not positive")
        return float(given)
    if header.voxel_size_a > 0:
        return round(float(header.voxel_size_a), 3)
    raise InputError(
        "the MRC header gives no voxel spacing", where=path, hint="give it with --voxel-spacing"
    )


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def ingest_run(
    portal: Portal,
    dataset_id: int,
    files: RunFiles,
    *,
    run_name: str | None = None,
    voxel_spacing: float | None = None,
    acquisition: Acquisition = Acquisition(),
    tomogram: TomogramFields = TomogramFields(),
    progress: Callable[[str, int, int], None] | None = None,
) -> IngestedRun:
    """Add one tomography run to a dataset; nothing is stored unless all of it is."""
    acquisition.check()
    tomogram.check()
    recovery.recover(portal)
    wanted = run_name or files.tomogram.stem
    name = names.safe_segment(wanted, what="run name")
    vs = _voxel_spacing(files.tomogram, voxel_spacing)
    header = read_header(files.tomogram)
    if header.nz < 2:
        raise FormatError("is a single image, not a tomogram", where=files.tomogram)
    size_xyz = (header.nx, header.ny, header.nz)
    angles = read_angles(files.angles) if files.angles else None
    ts_header = read_header(files.tilt_series) if files.tilt_series else None
    if angles is not None and ts_header is not None and len(angles) != ts_header.nz:
        raise InputError(
            f"{files.angles.name} lists {len(angles)} angles but the tilt series has "
            f"{ts_header.nz} images",
            where=files.angles,
        )

    with portal.transaction() as session:
        if session.get(Dataset, dataset_id) is None:
            raise NotFoundError(f"no dataset {dataset_id}")
        taken = session.scalar(select(Run.id).where(Run.dataset_id == dataset_id, Run.name == name))
        if taken is not None:
            raise ConflictError(
                f"dataset {dataset_id} already has a run named {name!r}",
                hint="give another name with --run-name",
            )

    staging = tree.new_staging_dir(layout.staging_root(portal.data_dir), name)
    try:
        vs_dir = layout.voxel_spacing_dir(staging, vs)
        canonical = vs_dir / layout.CANONICAL_TOMOGRAM
        _copy(files.tomogram, canonical / f"{name}.mrc")
        info = write_pyramid(
            canonical / f"{name}.mrc",
            canonical / f"{name}.zarr",
            voxel_spacing_a=vs,
            progress=(lambda done, total: progress("pyramid", done, total)) if progress else None,
            durable=False,  # the staging folder is synced as a whole before it is swapped in
        )
        key_photos(canonical / f"{name}.zarr", vs_dir / layout.KEY_PHOTOS, durable=False)
        atomic.fsync_tree(staging)
        if files.tilt_series is not None:
            ts_dir = staging / layout.TILT_SERIES
            _copy(files.tilt_series, ts_dir / f"{name}.mrc")
            if files.angles is not None:
                _copy(files.angles, ts_dir / f"{name}.rawtlt")
        result = _commit(
            portal,
            dataset_id,
            name,
            vs,
            size_xyz,
            info,
            staging,
            files,
            angles,
            ts_header,
            acquisition,
            tomogram,
        )
        if name != wanted:
            result.renamed_from = wanted
        return result
    finally:
        tree.discard(staging)


def _commit(
    portal: Portal,
    dataset_id: int,
    name: str,
    vs: float,
    size_xyz: tuple[int, int, int],
    info: Any,
    staging: Path,
    files: RunFiles,
    angles: np.ndarray | None,
    ts_header: Any,
    acquisition: Acquisition,
    fields: TomogramFields,
) -> IngestedRun:
    run_dir = names.contained(portal.data_dir, layout.run_dir(portal.data_dir, dataset_id, name))
    vs_dir = layout.voxel_spacing_dir(run_dir, vs)
    canonical = vs_dir / layout.CANONICAL_TOMOGRAM
    swap: tree.Swap | None = None
    try:
        with portal.transaction() as session:
            run = Run(dataset_id=dataset_id, name=name, kind=RunKind.tomography)
            spacing = TomogramVoxelSpacing(run=run, voxel_spacing=vs)
            mrc = canonical / f"{name}.mrc"
            zarr_dir = canonical / f"{name}.zarr"
            tomo = Tomogram(
                name=name,
                run=run,
                tomogram_voxel_spacing=spacing,
                size_x=size_xyz[0],
                size_y=size_xyz[1],
                size_z=size_xyz[2],
                voxel_spacing=vs,
                reconstruction_method=fields.reconstruction_method,
                reconstruction_software=fields.reconstruction_software,
                processing=TomogramProcessing(fields.processing),
                processing_software=fields.processing_software,
                ctf_corrected=fields.ctf_corrected,
                is_author_submitted=True,
                is_visualization_default=True,
                mrc_file=portal.tree_path(mrc),
                omezarr_dir=portal.tree_path(zarr_dir),
                file_size_mrc=os.path.getsize(files.tomogram),
                key_photo_url=portal.tree_path(
                    vs_dir / layout.KEY_PHOTOS / layout.KEY_PHOTO_SNAPSHOT
                ),
                key_photo_thumbnail_url=portal.tree_path(
                    vs_dir / layout.KEY_PHOTOS / layout.KEY_PHOTO_THUMBNAIL
                ),
                **info.scale_dimensions(),
            )
            session.add_all([run, spacing, tomo])
            ts = None
            if files.tilt_series is not None:
                ts = _tilt_series(portal, run, run_dir, name, angles, ts_header, acquisition)
                session.add(ts)
            session.flush()
            _write_metadata(staging, run, tomo, ts, vs, info)
            swap = tree.swap_in(
                staging,
                run_dir,
                portal.data_dir / tree.SWAPS,
                check=recovery.run_check(dataset_id, name),
            )
            result = IngestedRun(
                dataset_id=dataset_id,
                run_id=run.id,
                run_name=name,
                tomogram_id=tomo.id,
                voxel_spacing=vs,
                size_xyz=size_xyz,
                tilt_series_id=ts.id if ts else None,
                files=sorted(portal.tree_path(p) for p in run_dir.rglob("*") if p.is_file())[:50],
            )
    except BaseException:
        if swap is not None:
            swap.rollback()
        raise
    if swap is not None:
        swap.commit()
    return result


def _tilt_series(
    portal: Portal,
    run: Run,
    run_dir: Path,
    name: str,
    angles: np.ndarray | None,
    header: Any,
    a: Acquisition,
) -> TiltSeries:
    ts_dir = run_dir / layout.TILT_SERIES
    tilt_min = float(angles.min()) if angles is not None else None
    tilt_max = float(angles.max()) if angles is not None else None
    step = a.tilt_step
    if step is None and angles is not None and len(angles) > 1:
        step = float(np.median(np.abs(np.diff(np.sort(angles)))))
    return TiltSeries(
        run=run,
        mrc_file=portal.tree_path(ts_dir / f"{name}.mrc"),
        angle_list=portal.tree_path(ts_dir / f"{name}.rawtlt") if angles is not None else None,
        acceleration_voltage=a.acceleration_voltage,
        spherical_aberration_constant=a.spherical_aberration_constant,
        microscope_manufacturer=a.microscope_manufacturer,
        microscope_model=a.microscope_model,
        camera_manufacturer=a.camera_manufacturer,
        camera_model=a.camera_model,
        tilt_min=tilt_min,
        tilt_max=tilt_max,
        tilt_range=(tilt_max - tilt_min) if angles is not None else None,
        tilt_step=step,
        tilting_scheme=a.tilting_scheme,
        tilt_axis=a.tilt_axis,
        total_flux=a.total_flux,
        data_acquisition_software=a.data_acquisition_software,
        tilt_series_quality=a.tilt_series_quality,
        pixel_spacing=round(header.voxel_size_a, 3) if header.voxel_size_a > 0 else None,
        size_x=header.nx,
        size_y=header.ny,
        size_z=header.nz,
    )


def _write_metadata(
    staging: Path, run: Run, tomo: Tomogram, ts: TiltSeries | None, vs: float, info: Any
) -> None:
    atomic.write_json(staging / layout.RUN_METADATA, run_metadata(run), durable=False)
    canonical = layout.voxel_spacing_dir(staging, vs) / layout.CANONICAL_TOMOGRAM
    atomic.write_json(
        canonical / layout.TOMOGRAM_METADATA,
        {
            "run_name": run.name,
            "tomogram_id": tomo.id,
            "voxel_spacing": vs,
            "size": {"z": tomo.size_z, "y": tomo.size_y, "x": tomo.size_x},
            "scales": info.metadata_scales(),
            "reconstruction_method": tomo.reconstruction_method,
            "reconstruction_software": tomo.reconstruction_software,
            "processing": tomo.processing.value,
            "processing_software": tomo.processing_software,
            "ctf_corrected": tomo.ctf_corrected,
            "offset": {"x": 0, "y": 0, "z": 0},
            "omezarr_dir": f"{run.name}.zarr",
            "mrc_files": [f"{run.name}.mrc"],
            "key_photo": {
                "snapshot": f"../{layout.KEY_PHOTOS}/{layout.KEY_PHOTO_SNAPSHOT}",
                "thumbnail": f"../{layout.KEY_PHOTOS}/{layout.KEY_PHOTO_THUMBNAIL}",
            },
        },
        durable=False,
    )
    if ts is not None:
        meta = {
            k: v
            for k, v in asdict_tilt_series(ts).items()
            if k not in {"id", "run_id", "deposition_id"}
        }
        meta["run_name"] = run.name
        meta["tilt_series_quality_meaning"] = TILT_SERIES_QUALITY.get(ts.tilt_series_quality or 0)
        atomic.write_json(
            staging / layout.TILT_SERIES / layout.TILT_SERIES_METADATA, meta, durable=False
        )


def asdict_tilt_series(ts: TiltSeries) -> dict[str, Any]:
    """The catalog row as plain data (enums as their values)."""
    out: dict[str, Any] = {}
    for column in TiltSeries.__table__.columns:
        value = getattr(ts, column.key)
        out[column.key] = value.value if hasattr(value, "value") else value
    return out


__all__ = ["Acquisition", "IngestedRun", "RunFiles", "TomogramFields", "ingest_run", "sort_paths"]
