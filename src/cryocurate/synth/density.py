"""The 3D object a synthetic job is made of: weighted points in Å, plus smooth ellipsoids.

Every class average of one synthetic job is a projection of *one* density, as in a real
data set where all classes are views of the same particle. We keep the density as points
rather than a voxel grid because rotating points is exact and cheap (numpy only, no scipy),
and a cloud of residue-sized points with α-helices and β-sheets gives projections the
rod-and-sheet texture that good 2D class averages of proteins show at 4–8 Å.

Two sources:

* :func:`random_density` builds a protein-like object from a seed: a few domains (asymmetric,
  cyclic, dihedral or elongated arrangements), each packed with helices, sheets and loops,
  sometimes in a detergent micelle (a smooth low-density ellipsoid).
* :func:`density_from_map` turns a user's MRC map into weighted points (voxels above a
  threshold), rescaled when it would fill the box badly (radius outside 15–36 % of the box
  edge): class averages look like class averages only when the particle fills about half the
  box, and a synthetic job does not need the map's true size.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from cryocurate.errors import FormatError, InputError
from cryocurate.formats.mrc import read_stack

#: Residues per Å³ in a folded protein (about 1 residue per 130 Å³).
PROTEIN_DENSITY = 1.0 / 130.0

#: The particle's radius as a fraction of the box edge (diameter ≈ 60 % of the box).
RADIUS_FRACTION = 0.3

#: Share of a domain's mass in its smooth body; the rest is in helices and sheets.
BODY_FRACTION = 0.3

#: Radii (fractions of the box edge) a user map keeps; outside, it is scaled to RADIUS_FRACTION.
MIN_RADIUS_FRACTION = 0.15
MAX_RADIUS_FRACTION = 0.36


@dataclass(frozen=True)
class Ellipsoid:
    """A uniform ellipsoid: ``x`` is inside when ``(x - centre)ᵀ M (x - centre) ≤ 1``.

    ``density`` is in residues per Å³, so it adds up with the points in one unit.
    """

    centre: np.ndarray
    matrix: np.ndarray
    density: float


@dataclass(frozen=True)
class Density:
    """A particle as points (Å, centred on the centre of mass) with weights (residues).

    ``point_sigma_a`` is the Gaussian width each point is blurred with when projected;
    ``radius_a`` bounds the mass (used to place masks and clip tests).
    """

    points: np.ndarray
    weights: np.ndarray
    radius_a: float
    point_sigma_a: float = 1.2
    ellipsoids: tuple[Ellipsoid, ...] = field(default_factory=tuple)
    description: str = ""


# --------------------------------------------------------------------------- geometry


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A rotation matrix drawn uniformly from SO(3) (via a random unit quaternion)."""
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def axis_rotation(axis: str, angle: float) -> np.ndarray:
    """The rotation by ``angle`` radians about the ``"x"``, ``"y"`` or ``"z"`` axis."""
    c, s = np.cos(angle), np.sin(angle)
    if axis == "z":
        return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    if axis == "y":
        return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


def _perpendiculars(axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    helper = np.array([1.0, 0.0, 0.0]) if abs(axis[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = np.cross(axis, helper)
    u /= np.linalg.norm(u)
    return u, np.cross(axis, u)


# --------------------------------------------------------------------- secondary structure


def _helix(rng: np.random.Generator, centre: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """An α-helix: 1.5 Å rise and 100° turn per residue on a 2.3 Å radius."""
    n = int(rng.integers(9, 24))
    u, v = _perpendiculars(axis)
    j = np.arange(n) - (n - 1) / 2
    theta = np.deg2rad(100.0) * j + rng.uniform(0, 2 * np.pi)
    return (
        centre
        + np.outer(j * 1.5, axis)
        + 2.3 * (np.outer(np.cos(theta), u) + np.outer(np.sin(theta), v))
    )


def _sheet(rng: np.random.Generator, centre: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """A twisted β-sheet: strands 3.3 Å per residue, 4.8 Å apart, pleated by ±0.9 Å."""
    n_strands = int(rng.integers(3, 7))
    length = int(rng.integers(5, 10))
    u, v = _perpendiculars(axis)
    pts = []
    for s in range(n_strands):
        twist = np.deg2rad(-20.0) * (s - (n_strands - 1) / 2)
        along = np.cos(twist) * axis + np.sin(twist) * v
        j = np.arange(length) - (length - 1) / 2
        offset = (s - (n_strands - 1) / 2) * 4.8 * u
        pleat = 0.9 * np.where(np.arange(length) % 2 == 0, 1.0, -1.0)
        pts.append(centre + offset + np.outer(j * 3.3, along) + np.outer(pleat, np.cross(u, along)))
    return np.concatenate(pts)


def _inside(points: np.ndarray, centre: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    d = points - centre
    return np.einsum("ij,jk,ik->i", d, matrix, d) <= 1.0


def _ellipsoid_matrix(rotation: np.ndarray, semi_axes: np.ndarray) -> np.ndarray:
    return rotation @ np.diag(1.0 / semi_axes**2) @ rotation.T


def _sample_in_ellipsoid(
    rng: np.random.Generator, n: int, rotation: np.ndarray, semi_axes: np.ndarray
) -> np.ndarray:
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    r = rng.uniform(0, 1, size=(n, 1)) ** (1 / 3)
    return (d * r * semi_axes) @ rotation.T


def _domain(
    rng: np.random.Generator, centre: np.ndarray, rotation: np.ndarray, semi_axes: np.ndarray
) -> tuple[np.ndarray, list[Ellipsoid]]:
    """One domain: a lumpy body of uniform ellipsoids plus helices and sheets inside it.

    Protein interiors are close-packed, so a domain's projection is mostly its thickness
    (the smooth body); the secondary-structure elements add the rods and ridges that good
    class averages show. Random loose points would instead look like speckle noise.
    """
    matrix = _ellipsoid_matrix(rotation, semi_axes)
    body = [Ellipsoid(centre=centre.copy(), matrix=matrix, density=BODY_FRACTION * PROTEIN_DENSITY)]
    for _ in range(int(rng.integers(1, 4))):  # bumps make the outline lumpy
        direction = _unit(rng)
        scale = rng.uniform(0.4, 0.65)
        bump_axes = semi_axes * scale
        surface = rotation @ (direction * semi_axes)
        bump_rot = random_rotation(rng)
        body.append(
            Ellipsoid(
                centre=centre + 0.75 * surface,
                matrix=_ellipsoid_matrix(bump_rot, bump_axes),
                density=BODY_FRACTION * PROTEIN_DENSITY,
            )
        )
    volume = 4 / 3 * np.pi * float(np.prod(semi_axes))
    target = int(volume * PROTEIN_DENSITY * (1 - BODY_FRACTION))
    helix_fraction = rng.uniform(0.35, 0.9)
    pieces: list[np.ndarray] = [np.zeros((0, 3))]
    centres: list[np.ndarray] = []
    total = 0
    attempts = 0
    while total < target and attempts < 400:
        attempts += 1
        c = _sample_in_ellipsoid(rng, 1, rotation, semi_axes * 0.8)[0]
        if any(np.linalg.norm(c - o) < 8.5 for o in centres):
            continue
        axis = _unit(rng)
        piece = _helix(rng, c, axis) if rng.uniform() < helix_fraction else _sheet(rng, c, axis)
        piece = piece[_inside(piece, np.zeros(3), matrix)]
        if len(piece) < 4:
            continue
        centres.append(c)
        pieces.append(piece)
        total += len(piece)
    return np.concatenate(pieces) + centre, body


# ----------------------------------------------------------------------------- layouts


def _layout(rng: np.random.Generator, radius: float) -> tuple[str, list[tuple], bool]:
    """Domain centres, orientations and semi-axes for one of a few common architectures."""
    arch = str(rng.choice(["asymmetric", "cyclic", "cyclic", "dihedral", "elongated"]))
    domains: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def semi(scale: float) -> np.ndarray:
        return scale * radius * rng.uniform(0.3, 0.45, size=3) * np.array([1.0, 1.0, 1.2])

    micelle = False
    if arch == "asymmetric":
        n = int(rng.integers(3, 7))
        pos = np.zeros(3)
        for _ in range(n):
            domains.append((pos.copy(), random_rotation(rng), semi(1.0)))
            pos = pos + _unit(rng) * radius * rng.uniform(0.35, 0.5)
    elif arch == "elongated":
        n = int(rng.integers(3, 5))
        bend = rng.uniform(-0.5, 0.5)
        for i in range(n):
            t = i - (n - 1) / 2
            pos = np.array([t * radius * 0.5, bend * t * t * radius * 0.12, 0.0])
            domains.append((pos, random_rotation(rng), semi(1.3)))
    else:
        order = int(rng.integers(3, 9)) if arch == "cyclic" else int(rng.integers(2, 5))
        per = int(rng.integers(1, 3))
        sub_axes = [semi(0.85) for _ in range(per)]
        size = float(np.mean([a.mean() for a in sub_axes]))
        # neighbouring subunits touch: their centres ~1.6 domain radii apart around the ring
        ring = 1.6 * size / (2 * np.sin(np.pi / order)) * rng.uniform(0.9, 1.1)
        lift = 0.9 * size if arch == "dihedral" else 0.0  # the two rings of a dihedral touch
        sub = []
        for j, a in enumerate(sub_axes):
            z = (j - (per - 1) / 2) * 1.5 * size + lift
            centre = np.array([ring * rng.uniform(0.85, 1.05), 0.0, z])
            sub.append((centre, random_rotation(rng), a))
        for k in range(order):
            rot = axis_rotation("z", 2 * np.pi * k / order)
            for c, r, a in sub:
                domains.append((rot @ c, rot @ r, a))
                if arch == "dihedral":
                    flip = axis_rotation("x", np.pi)
                    domains.append((flip @ rot @ c, flip @ rot @ r, a))
        micelle = arch == "cyclic" and rng.uniform() < 0.35
        arch = f"{arch} C{order}" if arch == "cyclic" else f"dihedral D{order}"
    return arch, domains, micelle


def random_density(rng: np.random.Generator, *, box: int, pixel_size: float) -> Density:
    """A protein-like density that fills about 60 % of the box edge, from ``rng``.

    The layout is drawn first, then its domain centres are scaled so the whole particle
    fits the target radius; only then are the domains packed, so helix geometry (1.5 Å
    rise, 2.3 Å radius) stays true to life whatever the box.
    """
    radius = RADIUS_FRACTION * box * pixel_size
    arch, domains, micelle = _layout(rng, radius)
    centres = np.array([c for c, _, _ in domains])
    centres -= centres.mean(axis=0)
    reach = max(
        float(np.linalg.norm(c) + a.max()) for c, (_, _, a) in zip(centres, domains, strict=True)
    )
    scale = radius / reach
    points = []
    bodies: list[Ellipsoid] = []
    for c, (_, rot, semi_axes) in zip(centres, domains, strict=True):
        pts, body = _domain(rng, c * scale, rot, np.maximum(semi_axes * scale, 6.0))
        points.append(pts)
        bodies.extend(body)
    pts = np.concatenate(points)
    if micelle:
        semi_axes = np.array([radius * 0.85, radius * 0.85, 17.0])
        bodies.append(
            Ellipsoid(
                centre=np.array([0.0, 0.0, rng.uniform(-0.3, 0.3) * radius]),
                matrix=_ellipsoid_matrix(np.eye(3), semi_axes),
                density=0.3 * PROTEIN_DENSITY,
            )
        )
        arch += " in a micelle"
    # centre on the centre of mass of bodies and points together, as 2D jobs re-centre
    masses = np.array(
        [e.density * 4 / 3 * np.pi / np.sqrt(np.linalg.det(e.matrix)) for e in bodies]
    )
    com = (
        pts.sum(axis=0) + (masses[:, None] * np.array([e.centre for e in bodies])).sum(axis=0)
    ) / (len(pts) + masses.sum())
    pts = pts - com
    bodies = [Ellipsoid(centre=e.centre - com, matrix=e.matrix, density=e.density) for e in bodies]
    r = float(np.percentile(np.linalg.norm(pts, axis=1), 99.5)) if len(pts) else radius
    residues = round(len(pts) + float(masses.sum()))
    return Density(
        points=pts,
        weights=np.ones(len(pts)),
        radius_a=max(r, radius * 0.8),
        ellipsoids=tuple(bodies),
        description=f"random {arch}, about {residues:,} residues",
    )


# ------------------------------------------------------------------------------ from a map


def _weighted_radius(points: np.ndarray, weights: np.ndarray, quantile: float = 0.99) -> float:
    """The radius holding ``quantile`` of the mass (faint far voxels barely count)."""
    r = np.linalg.norm(points, axis=1)
    order = np.argsort(r)
    cumulative = np.cumsum(weights[order])
    at = int(np.searchsorted(cumulative, quantile * cumulative[-1]))
    return float(r[order][min(at, len(r) - 1)])


def density_from_map(
    path: str | os.PathLike[str],
    *,
    box: int,
    pixel_size: float,
    max_points: int = 80_000,
    seed: int = 0,
) -> Density:
    """Turn an MRC map into weighted points: every voxel above the 90th percentile.

    Weights are the voxel value minus that threshold, so the contour is soft. The points are
    centred on their centre of mass. The map's voxel size comes from its header (0 means
    ``pixel_size``); a particle whose radius (99 % of the mass) is under 15 % or over 36 % of
    the box edge is rescaled to 30 %, so it fills the box as particles in class averages do.

    Raises:
        MissingFileError: the map does not exist or cannot be read.
        FormatError: not an MRC map, or no density above the threshold.
    """
    stack = read_stack(path, require_square=False)
    data = stack.data.astype(np.float64)
    voxel = stack.voxel_size_a if stack.voxel_size_a > 0 else pixel_size
    if data.shape[0] < 4:
        raise FormatError(
            f"holds {data.shape[0]} section(s), not a 3D map",
            where=path,
            hint="pass a 3D density (an .mrc volume)",
        )
    threshold = float(np.percentile(data, 90.0))
    if not np.isfinite(threshold) or float(data.max()) <= threshold:
        raise FormatError("the map is flat: no density above its 90th percentile", where=path)
    zz, yy, xx = np.nonzero(data > threshold)
    weights = data[zz, yy, xx] - threshold
    nz, ny, nx = data.shape
    pts = np.stack([(xx - nx / 2) * voxel, (yy - ny / 2) * voxel, (zz - nz / 2) * voxel], axis=1)
    if len(pts) > max_points:
        rng = np.random.default_rng(seed)
        keep = rng.choice(len(pts), size=max_points, replace=False, p=weights / weights.sum())
        keep.sort()
        total = weights.sum()
        pts, weights = pts[keep], np.full(max_points, total / max_points)
    pts = pts - np.average(pts, axis=0, weights=weights)
    radius = _weighted_radius(pts, weights)
    if radius <= 0:
        raise InputError("the map's density is a single voxel", where=path)
    extent = box * pixel_size
    note = ""
    if not MIN_RADIUS_FRACTION * extent <= radius <= MAX_RADIUS_FRACTION * extent:
        factor = RADIUS_FRACTION * extent / radius
        pts = pts * factor
        note = f", scaled by {factor:.2f} to fill {2 * RADIUS_FRACTION:.0%} of the box"
        radius = RADIUS_FRACTION * extent
    # scale weights to residues so noise levels match the random densities
    weights = weights * (len(pts) / weights.sum())
    return Density(
        points=pts,
        weights=weights,
        radius_a=radius,
        point_sigma_a=max(1.2, 0.6 * voxel),
        description=f"map {os.fspath(path)} ({nx}×{ny}×{nz} at {voxel:.2f} Å{note})",
    )
