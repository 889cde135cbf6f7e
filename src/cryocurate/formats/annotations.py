"""Point annotations in every format users bring, as one in-memory shape: :class:`Points`.

The portal stores point annotations as newline-delimited JSON (ndjson) in **voxel**
coordinates of the tomogram at the annotation's voxel spacing: 0-based, fractional allowed,
axes named ``x, y, z`` (x = MRC column / fastest axis, z = slowest, beam direction). A numpy
volume read from MRC or Zarr is indexed ``[z, y, x]``. Three shapes exist, one per file::

    {"type": "point", "location": {"x": X, "y": Y, "z": Z}}
    {"type": "orientedPoint", "location": {...}, "xyz_rotation_matrix": [[...], [...], [...]]}
    {"type": "instancePoint", "location": {...}, "instance_id": N}

``xyz_rotation_matrix`` is the active rotation object → tomogram (the rotation to apply to
the template to place it in the tomogram), in x, y, z order.

Every reader here returns :class:`Points` in those voxel coordinates:

* :func:`read_ndjson` – the portal's own files, exactly.
* :func:`read_relion_star` – RELION particle STAR (3.0, 3.1+/4 with an optics block, 5 with
  centred Å coordinates). Pixels are rescaled to voxels, origins subtracted, Euler angles
  turned into matrices as the portal's ingestion does (``from_euler("ZYZ").inv()``).
* :func:`read_copick` – copick picks JSON (Å, 4×4 ``transformation_``).
* :func:`read_csv_points` – plain ``x, y, z`` tables (comma or whitespace, header optional).

:func:`detect_format` / :func:`read_points` pick the reader; :func:`write_ndjson` writes the
portal's format atomically; :func:`validate_points` and :func:`validate_mask` apply the
portal's validation rules (bounds ``0 ≤ x ≤ size_x − 1``, proper rotation matrices, masks
exactly the tomogram's shape). Every problem is one :class:`~cryocurate.errors.FormatError`
line naming the file (and the line, for text formats), the problem and what to do.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any, Literal, get_args

import numpy as np

from cryocurate.atomic import write_text
from cryocurate.errors import FormatError, InputError
from cryocurate.formats.inputs import check_readable
from cryocurate.formats.star import find_loop, read_blocks, read_loop_columns

PointKind = Literal["point", "orientedPoint", "instancePoint"]
POINT_KINDS: tuple[str, ...] = get_args(PointKind)

FileFormat = Literal["ndjson", "star", "copick", "csv"]

#: The portal's ndjson file-name suffix for each kind.
NDJSON_SUFFIX: dict[str, str] = {
    "point": "_point.ndjson",
    "orientedPoint": "_orientedpoint.ndjson",
    "instancePoint": "_instancesegmentation.ndjson",
}

#: Default tolerance on ``|R·Rᵀ − I|`` and ``|det R − 1|`` for rotation matrices.
ROTATION_TOLERANCE = 1e-3

_EXAMPLE_LINE = '{"type": "point", "location": {"x": 10.0, "y": 20.0, "z": 30.0}}'

PathLike = str | os.PathLike[str]


# --------------------------------------------------------------------------------------------
# The in-memory shape
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Points:
    """Point annotations of one object in one tomogram, in voxel coordinates.

    ``xyz``: ``(n, 3)`` float64, x, y, z order, 0-based voxel coordinates.
    ``rotations``: ``(n, 3, 3)`` float64 object → tomogram rotations (xyz order), or None.
    ``instance_ids``: ``(n,)`` int64, or None.
    ``kind``: which portal shape these are; left out, it is inferred: ``orientedPoint`` with
    rotations, else ``instancePoint`` with instance ids, else ``point``.

    A Points holds exactly the data its kind has: ``rotations`` is set if and only if the
    kind is ``orientedPoint``, ``instance_ids`` if and only if it is ``instancePoint``. Given
    an explicit kind, arrays that kind does not carry are dropped (``Points(xyz, rotations=R,
    kind="point")`` is plain points), so ``instance_ids is not None`` always means instance
    points. Arrays are copied and made read-only.
    """

    xyz: np.ndarray
    rotations: np.ndarray | None = None
    instance_ids: np.ndarray | None = None
    kind: PointKind | None = None

    def __post_init__(self) -> None:
        xyz = np.array(self.xyz, dtype=np.float64)
        if xyz.size == 0:
            xyz = xyz.reshape(0, 3)
        if xyz.ndim != 2 or xyz.shape[1] != 3:
            raise InputError(f"points must be an (n, 3) array of x, y, z; got shape {xyz.shape}")
        n = len(xyz)
        xyz.setflags(write=False)
        object.__setattr__(self, "xyz", xyz)
        if self.rotations is not None:
            rot = np.array(self.rotations, dtype=np.float64)
            if rot.size == 0 and n == 0:
                rot = rot.reshape(0, 3, 3)
            if rot.shape != (n, 3, 3):
                raise InputError(
                    f"rotations must be an ({n}, 3, 3) array for {n} points; got {rot.shape}"
                )
            rot.setflags(write=False)
            object.__setattr__(self, "rotations", rot)
        if self.instance_ids is not None:
            raw = np.asarray(self.instance_ids)
            ids = raw.astype(np.int64)
            if ids.shape != (n,) or not np.array_equal(ids, raw):
                raise InputError(f"instance_ids must be {n} integers; got {raw.shape} {raw.dtype}")
            ids.setflags(write=False)
            object.__setattr__(self, "instance_ids", ids)
        kind = self.kind
        if kind is None:
            if self.rotations is not None:
                kind = "orientedPoint"
            elif self.instance_ids is not None:
                kind = "instancePoint"
            else:
                kind = "point"
        if kind not in POINT_KINDS:
            raise InputError(f"unknown point kind {kind!r}; use one of {', '.join(POINT_KINDS)}")
        if kind == "orientedPoint" and self.rotations is None:
            raise InputError("orientedPoint annotations need rotation matrices")
        if kind == "instancePoint" and self.instance_ids is None:
            raise InputError("instancePoint annotations need instance ids")
        object.__setattr__(self, "kind", kind)
        if kind != "orientedPoint":
            object.__setattr__(self, "rotations", None)
        if kind != "instancePoint":
            object.__setattr__(self, "instance_ids", None)

    def __len__(self) -> int:
        return len(self.xyz)

    def __repr__(self) -> str:
        return f"Points({len(self)} {self.kind})"

    def as_kind(self, kind: PointKind) -> Points:
        """The same locations as ``kind``: ``"point"`` always works; others need their data."""
        return replace(self, kind=kind)

    def angstrom(self, voxel_spacing_a: float) -> np.ndarray:
        """``(n, 3)`` x, y, z positions in Å: voxel coordinates × voxel spacing."""
        return self.xyz * float(voxel_spacing_a)

    def indices_zyx(self) -> np.ndarray:
        """``(n, 3)`` int64 ``[z, y, x]`` indices of the nearest voxel, for ``volume[z, y, x]``."""
        return np.rint(self.xyz[:, ::-1]).astype(np.int64)


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _positive(value: float, name: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError) as err:
        raise InputError(f"{name} must be a number, got {value!r}") from err
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"{name} must be a positive number of Å, got {value}")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _read_text_lines(path: Path) -> list[str]:
    check_readable(path)
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise FormatError(
            f"is not UTF-8 text (byte {err.start} cannot be decoded)",
            where=path,
            hint="annotation files are text; was a binary file given?",
        ) from err


def _fmt(value: float) -> str:
    return f"{value:.6g}"


# --------------------------------------------------------------------------------------------
# ndjson (the portal's own format)
# --------------------------------------------------------------------------------------------


def _ndjson_location(obj: dict[str, Any], where: str) -> tuple[float, float, float]:
    loc = obj.get("location")
    if not isinstance(loc, dict):
        raise FormatError(
            'lacks a "location" object',
            where=where,
            hint=f"each line needs a location, e.g. {_EXAMPLE_LINE}",
        )
    values = []
    for axis in "xyz":
        v = loc.get(axis)
        if not _is_number(v) or not math.isfinite(v):
            shown = "missing" if axis not in loc else repr(v)
            raise FormatError(
                f"location.{axis} is {shown}, not a finite number",
                where=where,
                hint="locations are voxel coordinates x, y, z",
            )
        values.append(float(v))
    return values[0], values[1], values[2]


def _ndjson_matrix(obj: dict[str, Any], where: str) -> list[list[float]]:
    m = obj.get("xyz_rotation_matrix")
    if (
        not isinstance(m, list)
        or len(m) != 3
        or not all(isinstance(r, list) and len(r) == 3 for r in m)
        or not all(_is_number(v) and math.isfinite(v) for r in m for v in r)
    ):
        shown = "missing" if "xyz_rotation_matrix" not in obj else "not a 3×3 matrix of numbers"
        raise FormatError(
            f"xyz_rotation_matrix is {shown}",
            where=where,
            hint="orientedPoint lines need a 3×3 rotation matrix as three rows of three numbers",
        )
    return m


def _ndjson_instance_id(obj: dict[str, Any], where: str) -> int:
    v = obj.get("instance_id")
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if not isinstance(v, int) or isinstance(v, bool):
        shown = "missing" if "instance_id" not in obj else repr(v)
        raise FormatError(
            f"instance_id is {shown}, not an integer",
            where=where,
            hint="instancePoint lines need an integer instance_id grouping points into objects",
        )
    return v


def read_ndjson(path: PathLike) -> Points:
    """Read a portal ndjson annotation file: one JSON object per line, one type per file.

    Blank lines are skipped; keys other than type/location/xyz_rotation_matrix/instance_id
    are ignored. An empty file gives zero ``point`` points. Errors name the line.
    """
    path = Path(path)
    lines = _read_text_lines(path)
    kind: str | None = None
    kind_line = 0
    xyz: list[tuple[float, float, float]] = []
    rotations: list[list[list[float]]] = []
    ids: list[int] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise FormatError(
                f"not valid JSON: {err.msg} at column {err.colno}",
                where=where,
                hint=f"each line must be one JSON object, e.g. {_EXAMPLE_LINE}",
            ) from err
        if not isinstance(obj, dict):
            raise FormatError(
                f"is a JSON {type(obj).__name__}, not an object",
                where=where,
                hint=f"each line must be one JSON object, e.g. {_EXAMPLE_LINE}",
            )
        this = obj.get("type")
        if this not in POINT_KINDS:
            shown = "missing" if "type" not in obj else repr(this)
            raise FormatError(
                f"type is {shown}",
                where=where,
                hint=f"use one of {', '.join(POINT_KINDS)}",
            )
        if kind is None:
            kind, kind_line = this, number
        elif this != kind:
            raise FormatError(
                f"type {this!r} in a file of {kind!r} annotations (line {kind_line})",
                where=where,
                hint="one annotation file holds one type; split it into one file per type",
            )
        xyz.append(_ndjson_location(obj, where))
        if kind == "orientedPoint":
            rotations.append(_ndjson_matrix(obj, where))
        elif kind == "instancePoint":
            ids.append(_ndjson_instance_id(obj, where))
    return Points(
        np.array(xyz, dtype=np.float64).reshape(-1, 3),
        rotations=np.array(rotations, dtype=np.float64) if kind == "orientedPoint" else None,
        instance_ids=np.array(ids, dtype=np.int64) if kind == "instancePoint" else None,
        kind=kind or "point",  # type: ignore[arg-type]
    )


def ndjson_lines(points: Points) -> list[str]:
    """The portal ndjson lines for ``points`` (keys: type, location, then matrix or id)."""
    bad = ~np.isfinite(points.xyz).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(f"point {i} (counting from 0) has a non-finite coordinate {points.xyz[i]}")
    kind = points.kind
    # Python's float repr is exactly what json.dumps writes for a finite float, so the lines
    # are formatted directly (several times faster than json.dumps per line, same text).
    head = f'{{"type": "{kind}", "location": {{"x": '
    locations = [f'{head}{x!r}, "y": {y!r}, "z": {z!r}}}' for x, y, z in points.xyz.tolist()]
    if kind == "orientedPoint":
        assert points.rotations is not None
        if not np.isfinite(points.rotations).all():
            i = int(np.argmax(~np.isfinite(points.rotations).all(axis=(1, 2))))
            raise InputError(f"point {i} (counting from 0) has a non-finite rotation matrix")
        tails = [
            f', "xyz_rotation_matrix": [[{a!r}, {b!r}, {c!r}], [{d!r}, {e!r}, {f!r}], '
            f"[{g!r}, {h!r}, {k!r}]]}}"
            for (a, b, c, d, e, f, g, h, k) in points.rotations.reshape(-1, 9).tolist()
        ]
    elif kind == "instancePoint":
        assert points.instance_ids is not None
        tails = [f', "instance_id": {i}}}' for i in points.instance_ids.tolist()]
    else:
        tails = ["}"] * len(locations)
    return [loc + tail for loc, tail in zip(locations, tails, strict=True)]


def write_ndjson(path: PathLike, points: Points, *, durable: bool = True) -> None:
    """Write ``points`` as the portal's ndjson, atomically (a reader never sees half a file)."""
    lines = ndjson_lines(points)
    write_text(path, "".join(line + "\n" for line in lines), durable=durable)


# --------------------------------------------------------------------------------------------
# RELION STAR
# --------------------------------------------------------------------------------------------

_XYZ = ("X", "Y", "Z")
_COORDS = [f"rlnCoordinate{a}" for a in _XYZ]
_CENTERED = [f"rlnCenteredCoordinate{a}Angst" for a in _XYZ]
_ANGLES = ["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]
_SUBTOMO_ANGLES = ["rlnTomoSubtomogramRot", "rlnTomoSubtomogramTilt", "rlnTomoSubtomogramPsi"]
_ORIGIN_A = [f"rlnOrigin{a}Angst" for a in _XYZ]
_ORIGIN_PX = [f"rlnOrigin{a}" for a in _XYZ]
_NAME_COLUMNS = ("rlnTomoName", "rlnMicrographName")
_PARTICLE_BLOCKS = ("particles", "", "images")


def relion_rotations(angles_deg: np.ndarray) -> np.ndarray:
    """``(n, 3, 3)`` object → tomogram matrices from RELION ``(rot, tilt, psi)`` in degrees.

    Exactly the portal's ingestion: ``Rotation.from_euler("ZYZ", angles, degrees=True)
    .inv().as_matrix()``, which is the matrix RELION's own ``Euler_angles2matrix`` builds.
    """
    from scipy.spatial.transform import Rotation

    angles = np.asarray(angles_deg, dtype=np.float64).reshape(-1, 3)
    if len(angles) == 0:
        return np.zeros((0, 3, 3))
    return Rotation.from_euler("ZYZ", angles, degrees=True).inv().as_matrix().reshape(-1, 3, 3)


def _all_or_none(columns: Sequence[str], names: Sequence[str], path: Path, block: str) -> bool:
    present = [n for n in names if n in columns]
    if present and len(present) != len(names):
        missing = [n for n in names if n not in columns]
        raise FormatError(
            f"data_{block} has {', '.join('_' + p for p in present)} "
            f"but not {', '.join('_' + m for m in missing)}",
            where=path,
            hint="these columns come as a set of three",
        )
    return bool(present)


def _run_matches(name: str, run: str) -> bool:
    pure = PurePosixPath(name.replace("\\", "/"))
    return name == run or pure.name == run or pure.stem == run


def _coordinate_pixel_sizes(
    path: Path, n: int, optics_groups: np.ndarray | None, fallback: float
) -> np.ndarray:
    """Per-particle pixel size (Å) of rlnCoordinateX/Y/Z: data_optics' tilt-series pixel size
    when the file states one, else ``fallback``."""
    try:
        header = find_loop(path, ["optics"])
    except FormatError:
        return np.full(n, fallback)
    if "rlnTomoTiltSeriesPixelSize" not in header.columns:
        return np.full(n, fallback)
    wanted = ["rlnTomoTiltSeriesPixelSize"]
    if "rlnOpticsGroup" in header.columns:
        wanted.append("rlnOpticsGroup")
    optics = read_loop_columns(path, ["optics"], wanted)
    sizes = optics["rlnTomoTiltSeriesPixelSize"]
    if len(sizes) == 0 or not (np.isfinite(sizes) & (sizes > 0)).all():
        raise FormatError(
            "data_optics has a missing or non-positive _rlnTomoTiltSeriesPixelSize",
            where=path,
            hint="give coordinate_pixel_size_a explicitly",
        )
    if len(np.unique(sizes)) == 1:
        return np.full(n, float(sizes[0]))
    if optics_groups is None or "rlnOpticsGroup" not in optics:
        raise FormatError(
            "data_optics lists several tilt-series pixel sizes but the particles name no "
            "_rlnOpticsGroup",
            where=path,
            hint="give coordinate_pixel_size_a explicitly",
        )
    table = dict(
        zip(optics["rlnOpticsGroup"].astype(np.int64).tolist(), sizes.tolist(), strict=True)
    )
    groups = optics_groups.astype(np.int64)
    unknown = sorted(set(groups.tolist()) - set(table))
    if unknown:
        raise FormatError(
            f"particles refer to optics group(s) {unknown[:5]} that data_optics does not list",
            where=path,
        )
    return np.array([table[g] for g in groups.tolist()], dtype=np.float64)


def read_relion_star(
    path: PathLike,
    voxel_spacing_a: float,
    *,
    coordinate_pixel_size_a: float | None = None,
    run_name: str | None = None,
    tomogram_shape_xyz: Sequence[int] | None = None,
) -> Points:
    """Read a RELION particle STAR file as voxel coordinates of a tomogram at ``voxel_spacing_a``.

    Coordinates: ``rlnCoordinateX/Y/Z`` are pixels of size ``coordinate_pixel_size_a`` (Å);
    left out, it is the file's ``rlnTomoTiltSeriesPixelSize`` (RELION 4 writes coordinates in
    unbinned tilt-series pixels and states that size in ``data_optics``) and otherwise
    ``voxel_spacing_a`` (picks made on this very tomogram). The portal's ingestion
    ``coordinate / binning`` is the same thing with ``binning = voxel_spacing_a /
    coordinate_pixel_size_a``. No 1-based → 0-based shift is applied (the portal applies none).
    Files with only RELION 5's ``rlnCenteredCoordinateX/Y/ZAngst`` need
    ``tomogram_shape_xyz``: the centre is ``size / 2`` voxels, as copick takes it.

    Shifts: ``rlnOriginX/Y/ZAngst`` (3.1+) are subtracted in Å; ``rlnOriginX/Y/Z`` (3.0) in
    coordinate pixels. With ``rlnTomoSubtomogramRot/Tilt/Psi`` (RELION 4), the origin is
    rotated by that matrix first and the particle's rotation is ``A_subtomogram @ A_particle``,
    as RELION composes them.

    Rotations: ``rlnAngleRot/Tilt/Psi`` → :func:`relion_rotations`; points are
    ``orientedPoint`` when the file has angles, ``point`` otherwise.

    Runs: with ``run_name``, only rows whose ``rlnTomoName`` (else ``rlnMicrographName``)
    equals it, or whose file name or stem equals it, are kept. Without it, a file holding
    picks of several tomograms is refused rather than merged.
    """
    path = Path(path)
    voxel_spacing_a = _positive(voxel_spacing_a, "voxel_spacing_a")
    if coordinate_pixel_size_a is not None:
        coordinate_pixel_size_a = _positive(coordinate_pixel_size_a, "coordinate_pixel_size_a")
    header = find_loop(path, _PARTICLE_BLOCKS)
    block, columns = header.block, header.columns
    has_coords = _all_or_none(columns, _COORDS, path, block)
    has_centered = _all_or_none(columns, _CENTERED, path, block)
    if not has_coords and not has_centered:
        raise FormatError(
            f"data_{block} has no _rlnCoordinateX/Y/Z (nor RELION 5's "
            "_rlnCenteredCoordinateX/Y/ZAngst)",
            where=path,
            hint=f"is this a particle STAR file? its columns are {', '.join(columns[:8])}",
        )
    if not has_coords and tomogram_shape_xyz is None:
        raise FormatError(
            "coordinates are RELION 5 centred Å (_rlnCenteredCoordinateXAngst…), which need "
            "the tomogram's size",
            where=path,
            hint="pass tomogram_shape_xyz=(size_x, size_y, size_z) of the target tomogram",
        )
    has_angles = _all_or_none(columns, _ANGLES, path, block)
    has_subtomo = _all_or_none(columns, _SUBTOMO_ANGLES, path, block)
    has_origin_a = _all_or_none(columns, _ORIGIN_A, path, block)
    has_origin_px = not has_origin_a and _all_or_none(columns, _ORIGIN_PX, path, block)
    wanted = list(_COORDS if has_coords else _CENTERED)
    for flag, names in (
        (has_angles, _ANGLES),
        (has_subtomo, _SUBTOMO_ANGLES),
        (has_origin_a, _ORIGIN_A),
        (has_origin_px, _ORIGIN_PX),
    ):
        if flag:
            wanted += names
    has_groups = "rlnOpticsGroup" in columns
    if has_groups:
        wanted.append("rlnOpticsGroup")
    data = read_loop_columns(path, [block], wanted)
    n = len(data[wanted[0]])

    keep = _select_run(path, block, columns, n, run_name)

    def cols(names: Sequence[str]) -> np.ndarray:
        return np.stack([data[c] for c in names], axis=1)[keep]

    n = int(keep.sum())
    rotation = relion_rotations(cols(_ANGLES)) if has_angles else None
    subtomo = relion_rotations(cols(_SUBTOMO_ANGLES)) if has_subtomo else None
    origin_a = cols(_ORIGIN_A) if has_origin_a else np.zeros((n, 3))
    if subtomo is not None:
        origin_a = np.einsum("nij,nj->ni", subtomo, origin_a)
        rotation = subtomo if rotation is None else np.einsum("nij,njk->nik", subtomo, rotation)

    if has_coords:
        if coordinate_pixel_size_a is not None:
            pixel = np.full(n, coordinate_pixel_size_a)
        else:
            groups = data["rlnOpticsGroup"][keep] if has_groups else None
            pixel = _coordinate_pixel_sizes(path, n, groups, voxel_spacing_a)
        coords_px = cols(_COORDS)
        if has_origin_px:
            origin_px = cols(_ORIGIN_PX)
            if subtomo is not None:
                origin_px = np.einsum("nij,nj->ni", subtomo, origin_px)
            coords_px = coords_px - origin_px
        xyz = (coords_px * pixel[:, None] - origin_a) / voxel_spacing_a
    else:
        assert tomogram_shape_xyz is not None
        shape = np.asarray(tomogram_shape_xyz, dtype=np.float64).reshape(3)
        xyz = (cols(_CENTERED) - origin_a) / voxel_spacing_a + shape / 2.0

    bad = ~np.isfinite(xyz).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(keep)[np.argmax(bad)]) + 1
        raise FormatError(
            f"particle {row} of data_{block} has a non-finite coordinate or origin",
            where=path,
            hint="remove or fix that row",
        )
    return Points(xyz, rotations=rotation, kind="orientedPoint" if has_angles else "point")


def _select_run(
    path: Path, block: str, columns: Sequence[str], n: int, run_name: str | None
) -> np.ndarray:
    """Boolean mask of the rows that belong to ``run_name`` (all rows when there is one run)."""
    name_column = next((c for c in _NAME_COLUMNS if c in columns), None)
    if name_column is None:
        if run_name is not None:
            raise FormatError(
                f"data_{block} has no _rlnTomoName or _rlnMicrographName to select run "
                f"{run_name!r} by",
                where=path,
                hint="leave out the run name if the file holds the picks of one tomogram",
            )
        return np.ones(n, dtype=bool)
    table = read_blocks(path, strings=[name_column])[block]
    names = table[name_column].astype(str).to_numpy()
    if len(names) != n:  # pragma: no cover - both readers parse the same rows
        raise FormatError(f"data_{block} rows could not be read consistently", where=path)
    distinct = list(dict.fromkeys(names.tolist()))
    if run_name is None:
        if len(distinct) > 1:
            shown = ", ".join(distinct[:5]) + (", …" if len(distinct) > 5 else "")
            raise FormatError(
                f"holds picks of {len(distinct)} tomograms (_{name_column}: {shown})",
                where=path,
                hint="pass the run name to read one tomogram's picks",
            )
        return np.ones(n, dtype=bool)
    matching = {d for d in distinct if _run_matches(d, run_name)}
    keep = np.isin(names, list(matching))
    if not keep.any():
        shown = ", ".join(distinct[:5]) + (", …" if len(distinct) > 5 else "")
        raise FormatError(
            f"no particle belongs to run {run_name!r} (_{name_column} values: {shown})",
            where=path,
            hint="check the run name against the file's tomogram names",
        )
    return keep


# --------------------------------------------------------------------------------------------
# copick
# --------------------------------------------------------------------------------------------


def read_copick(
    path: PathLike,
    voxel_spacing_a: float,
    *,
    include_translation: bool = True,
    kind: PointKind | None = None,
) -> Points:
    """Read a copick picks JSON file as voxel coordinates of a tomogram at ``voxel_spacing_a``.

    ``points[].location`` is in Å. copick's 4×4 ``transformation_`` maps object → tomogram;
    its upper-left 3×3 is the rotation and its last column a shift in Å, and copick's own
    exporters place a particle at ``location + translation``. We do the same by default, so
    a pick refined by a shift lands where copick puts it; ``include_translation=False``
    reproduces the portal's ``from_copick`` ingestion, which ignores the translation (the two
    agree for the usual zero translation). Voxel = Å / ``voxel_spacing_a``.

    ``kind`` left out: ``orientedPoint`` if any rotation differs from identity (and
    ``trust_orientation`` is not false), else ``instancePoint`` if any ``instance_id`` is
    non-zero, else ``point``. Give ``kind`` to choose: the portal's ndjson cannot carry both
    rotations and instance ids, so the result holds the data of its kind only.
    """
    path = Path(path)
    voxel_spacing_a = _positive(voxel_spacing_a, "voxel_spacing_a")
    check_readable(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise FormatError("is not UTF-8 text", where=path) from err
    except json.JSONDecodeError as err:
        raise FormatError(
            f"not valid JSON: {err.msg} at column {err.colno}",
            where=f"{path}:{err.lineno}",
            hint="a copick picks file is one JSON object with a points list",
        ) from err
    if not isinstance(doc, dict) or "points" not in doc:
        raise FormatError(
            'is not a copick picks file: no top-level "points"',
            where=path,
            hint='expected {"pickable_object_name": …, "unit": "angstrom", "points": […]}',
        )
    unit = doc.get("unit", "angstrom")
    if unit not in (None, "angstrom"):
        raise FormatError(
            f"unit is {unit!r}; copick picks are in angstrom",
            where=path,
            hint='convert the locations to Å and set "unit": "angstrom"',
        )
    raw = doc["points"] or []
    if not isinstance(raw, list):
        raise FormatError('"points" is not a list', where=path)
    n = len(raw)
    loc = np.zeros((n, 3))
    transforms = np.tile(np.eye(4), (n, 1, 1))
    ids = np.zeros(n, dtype=np.int64)
    for i, p in enumerate(raw):
        what = f"point {i} (counting from 0)"
        if not isinstance(p, dict) or not isinstance(p.get("location"), dict):
            raise FormatError(f"{what} has no location object", where=path)
        for a, axis in enumerate("xyz"):
            v = p["location"].get(axis)
            if not _is_number(v) or not math.isfinite(v):
                raise FormatError(f"{what}: location.{axis} is {v!r}, not a number", where=path)
            loc[i, a] = v
        t = p.get("transformation_")
        if t is not None:
            try:
                m = np.array(t, dtype=np.float64)
            except (TypeError, ValueError):
                m = np.zeros(0)
            if m.shape != (4, 4) or not np.isfinite(m).all():
                raise FormatError(f"{what}: transformation_ is not a 4×4 matrix", where=path)
            if not np.allclose(m[3], [0.0, 0.0, 0.0, 1.0]):
                raise FormatError(
                    f"{what}: transformation_ last row is {m[3].tolist()}, not [0, 0, 0, 1]",
                    where=path,
                    hint="copick transforms are rigid 4×4 matrices",
                )
            transforms[i] = m
        iid = p.get("instance_id", 0)
        if iid is None:
            iid = 0
        if isinstance(iid, float) and iid.is_integer():
            iid = int(iid)
        if not isinstance(iid, int) or isinstance(iid, bool):
            raise FormatError(f"{what}: instance_id is {iid!r}, not an integer", where=path)
        ids[i] = iid
    position = loc + transforms[:, :3, 3] if include_translation else loc
    rotations = transforms[:, :3, :3].copy()
    if kind is None:
        oriented = doc.get("trust_orientation", True) is not False and not np.allclose(
            rotations, np.eye(3), atol=1e-9
        )
        kind = "orientedPoint" if oriented else "instancePoint" if ids.any() else "point"
    return Points(position / voxel_spacing_a, rotations=rotations, instance_ids=ids, kind=kind)


# --------------------------------------------------------------------------------------------
# CSV / whitespace tables
# --------------------------------------------------------------------------------------------


def _split(line: str) -> list[str]:
    if "," in line:
        return [f.strip().strip('"').strip("'") for f in line.split(",")]
    return [f.strip('"').strip("'") for f in line.split()]


def _number(word: str) -> float | None:
    try:
        v = float(word)
    except ValueError:
        return None
    return v


def read_csv_points(path: PathLike) -> Points:
    """Read ``x, y, z`` voxel coordinates from a comma- or whitespace-separated table.

    A header is optional. With one, the columns named ``x``, ``y``, ``z`` (any case) are read,
    other columns are ignored, and an ``instance_id`` column makes ``instancePoint`` points.
    Without one, every row must have exactly three numbers. ``#`` lines and blank lines are
    skipped. Errors name the line.
    """
    path = Path(path)
    lines = _read_text_lines(path)
    header: list[str] | None = None
    index = [0, 1, 2]
    id_index: int | None = None
    width: int | None = None
    xyz: list[list[float]] = []
    ids: list[int] = []
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        where = f"{path}:{number}"
        fields = _split(stripped)
        if width is None:
            width = len(fields)
            if any(_number(f) is None for f in fields[:3]):
                header = [f.lower() for f in fields]
                missing = [a for a in "xyz" if a not in header]
                if missing:
                    raise FormatError(
                        f"header names no {', '.join(missing)} column "
                        f"(it names {', '.join(fields)})",
                        where=where,
                        hint="name the coordinate columns x, y, z, or leave the header out",
                    )
                index = [header.index(a) for a in "xyz"]
                id_index = header.index("instance_id") if "instance_id" in header else None
                continue
            if width != 3:
                raise FormatError(
                    f"has {width} columns and no header",
                    where=where,
                    hint="give exactly x, y, z per row, or a header naming the x, y, z columns",
                )
        if len(fields) != width:
            raise FormatError(
                f"has {len(fields)} columns where the first row has {width}",
                where=where,
                hint="every row needs the same columns; check for stray separators",
            )
        row = []
        for axis, col in zip("xyz", index, strict=True):
            v = _number(fields[col])
            if v is None or not math.isfinite(v):
                raise FormatError(f"{axis} is {fields[col]!r}, not a finite number", where=where)
            row.append(v)
        xyz.append(row)
        if id_index is not None:
            v = _number(fields[id_index])
            if v is None or not v.is_integer():
                raise FormatError(
                    f"instance_id is {fields[id_index]!r}, not an integer", where=where
                )
            ids.append(int(v))
    return Points(
        np.array(xyz, dtype=np.float64).reshape(-1, 3),
        instance_ids=np.array(ids, dtype=np.int64) if id_index is not None else None,
    )


# --------------------------------------------------------------------------------------------
# Format detection and one entry point
# --------------------------------------------------------------------------------------------

_SUFFIXES: dict[str, FileFormat] = {
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".star": "star",
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".xyz": "csv",
}


def _sniff_json(path: Path, head: str) -> FileFormat | None:
    first = next((line for line in head.splitlines() if line.strip()), "")
    try:
        obj = json.loads(first)
    except json.JSONDecodeError:
        obj = None
    if isinstance(obj, dict) and "type" in obj and "location" in obj:
        return "ndjson"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if isinstance(doc, dict) and "points" in doc:
        return "copick"
    return None


def detect_format(path: PathLike) -> FileFormat:
    """Which reader fits ``path``: by extension, and by content for ``.json`` and the unknown.

    Returns ``"ndjson"`` (``.ndjson``, ``.jsonl``), ``"star"`` (``.star``, RELION),
    ``"copick"`` (``.json``; ``"ndjson"`` if its first line is a portal point) or ``"csv"``
    (``.csv``, ``.tsv``, ``.txt``, ``.xyz``). Other names are sniffed: ``data_`` → STAR,
    ``{`` → JSON as above, numbers or a header → CSV.
    """
    path = Path(path)
    check_readable(path)
    suffix = path.suffix.lower()
    if suffix in _SUFFIXES:
        return _SUFFIXES[suffix]
    with open(path, "rb") as fh:
        head = fh.read(65536).decode("utf-8", errors="replace")
    body = [ln.strip() for ln in head.splitlines() if ln.strip() and not ln.startswith("#")]
    first = body[0] if body else ""
    if first.startswith("data_"):
        return "star"
    if first.startswith("{"):
        found = _sniff_json(path, head)
        if found:
            return found
    elif first and suffix != ".json":
        return "csv"
    raise FormatError(
        "cannot tell which annotation format this is",
        where=path,
        hint="use .ndjson (portal), .star (RELION), .json (copick picks) or .csv (x, y, z)",
    )


def read_points(
    path: PathLike,
    *,
    voxel_spacing_a: float | None = None,
    format: FileFormat | None = None,
    **options: Any,
) -> Points:
    """Read any supported file as voxel coordinates; RELION and copick need ``voxel_spacing_a``.

    ``options`` go to the reader (``run_name=``, ``coordinate_pixel_size_a=``…).
    """
    path = Path(path)
    fmt = format or detect_format(path)
    if fmt in ("star", "copick"):
        if voxel_spacing_a is None:
            raise InputError(
                f"{fmt} coordinates need the target tomogram's voxel spacing",
                where=path,
                hint="give voxel_spacing_a in Å",
            )
        reader = read_relion_star if fmt == "star" else read_copick
        return reader(path, voxel_spacing_a, **options)
    if options:
        raise InputError(f"{fmt} files take no options ({', '.join(options)})", where=path)
    if fmt == "ndjson":
        return read_ndjson(path)
    if fmt == "csv":
        return read_csv_points(path)
    raise InputError(f"unknown annotation format {fmt!r}", where=path)


# --------------------------------------------------------------------------------------------
# Validation (the portal's rules)
# --------------------------------------------------------------------------------------------


def validate_points(
    points: Points,
    shape_xyz: Sequence[int],
    *,
    path: PathLike | None = None,
    object_count: int | None = None,
    tolerance: float = ROTATION_TOLERANCE,
) -> None:
    """Apply the portal's rules to ``points`` for a tomogram of ``shape_xyz`` voxels.

    * every location satisfies ``0 ≤ x ≤ size_x − 1`` (same for y, z);
    * rotation matrices (when present) are orthonormal within ``tolerance`` and have
      determinant +1 (a proper rotation, not a reflection);
    * with ``object_count``: the number of points (distinct instance ids for
      ``instancePoint``) equals it, as the portal checks against the metadata.

    Raises :class:`FormatError` naming ``path`` (the file checked), how many points fail, and
    the first of them (indices count from 0).
    """
    shape = np.asarray(shape_xyz, dtype=np.float64).reshape(-1)
    if shape.shape != (3,) or (shape < 1).any():
        raise InputError(f"tomogram shape must be three positive sizes x, y, z; got {shape_xyz}")
    xyz = points.xyz
    finite = np.isfinite(xyz).all(axis=1)
    if not finite.all():
        i = int(np.argmax(~finite))
        raise FormatError(
            f"{int((~finite).sum())} of {len(xyz)} points have non-finite coordinates; "
            f"the first is point {i} at {xyz[i].tolist()}",
            where=path,
        )
    upper = shape - 1
    outside = ((xyz < 0) | (xyz > upper)).any(axis=1)
    if outside.any():
        i = int(np.argmax(outside))
        x, y, z = (_fmt(v) for v in xyz[i])
        sx, sy, sz = (int(s) for s in shape)
        raise FormatError(
            f"{int(outside.sum())} of {len(xyz)} points lie outside the tomogram "
            f"(0 ≤ x ≤ {sx - 1}, 0 ≤ y ≤ {sy - 1}, 0 ≤ z ≤ {sz - 1}); "
            f"the first is point {i} at x={x}, y={y}, z={z}",
            where=path,
            hint="coordinates must be voxels of this tomogram in x, y, z order: check the voxel "
            "spacing or binning, and that the axes are not in z, y, x order",
        )
    if points.rotations is not None and len(points):
        _validate_rotations(points.rotations, path, tolerance)
    if object_count is not None:
        if points.kind == "instancePoint" and points.instance_ids is not None:
            found, what = len(np.unique(points.instance_ids)), "distinct instance ids"
        else:
            found, what = len(points), "points"
        if found != object_count:
            raise FormatError(
                f"has {found} {what} but the metadata says object_count = {object_count}",
                where=path,
                hint="fix object_count in the annotation metadata or the file",
            )


def _validate_rotations(rot: np.ndarray, where: PathLike | None, tolerance: float) -> None:
    finite = np.isfinite(rot).all(axis=(1, 2))
    safe = np.where(finite[:, None, None], rot, 0.0)
    gram = np.einsum("nij,nkj->nik", safe, safe)
    error = np.where(finite, np.abs(gram - np.eye(3)).max(axis=(1, 2)), np.inf)
    det = np.linalg.det(safe)
    not_orthonormal = error > tolerance
    reflection = ~not_orthonormal & (np.abs(det - 1.0) > tolerance)
    bad = not_orthonormal | reflection
    if not bad.any():
        return
    i = int(np.argmax(bad))
    count = f"{int(bad.sum())} of {len(rot)} rotation matrices are not rotations"
    if not_orthonormal[i]:
        raise FormatError(
            f"{count}; the first, of point {i}, is not orthonormal "
            f"(|R·Rᵀ − I| up to {_fmt(error[i])} > {tolerance:g})",
            where=where,
            hint="xyz_rotation_matrix must be a pure rotation: no scaling, shear or rounding "
            "to few digits",
        )
    raise FormatError(
        f"{count}; the first, of point {i}, has determinant {_fmt(det[i])}, "
        "a reflection rather than a rotation",
        where=where,
        hint="an axis is flipped (handedness): check the Euler convention and axis order",
    )


def validate_mask(
    mask_shape_zyx: Sequence[int],
    tomogram_shape_zyx: Sequence[int],
    *,
    path: PathLike | None = None,
) -> None:
    """A segmentation mask must have exactly its tomogram's shape (both given as z, y, x).

    Raises :class:`FormatError` naming ``path`` (the mask file) and, where it can tell, why:
    axes reversed, or binned.
    """
    mask = tuple(int(s) for s in mask_shape_zyx)
    tomo = tuple(int(s) for s in tomogram_shape_zyx)
    if mask == tomo:
        return
    shown = "×".join(map(str, mask))
    expected = "×".join(map(str, tomo))
    hint = "write the mask at the tomogram's size for this voxel spacing"
    if len(mask) == 3 and len(tomo) == 3:
        if mask[::-1] == tomo:
            hint = "its axes look reversed (x, y, z instead of z, y, x): transpose the mask"
        else:
            ratios = {t / m for t, m in zip(tomo, mask, strict=True) if m}
            if len(ratios) == 1 and (r := ratios.pop()) != 1:
                hint = (
                    f"it looks {'binned' if r > 1 else 'upsampled'} by {_fmt(max(r, 1 / r))}: "
                    "write it at the tomogram's voxel spacing"
                )
    raise FormatError(
        f"segmentation mask is {shown} (z×y×x) but the tomogram is {expected}",
        where=path,
        hint=hint,
    )
