"""Small generated cryo-ET data for tests: a tomogram with particles at known places, its
tilt series and angles, and annotation files about those particles."""

from __future__ import annotations

import json
from pathlib import Path

import mrcfile
import numpy as np

SHAPE_ZYX = (40, 96, 80)  # nz, ny, nx
VOXEL_A = 10.0
ANGLES = np.arange(-60.0, 61.0, 3.0)


def particle_centres(n: int = 12, seed: int = 0) -> np.ndarray:
    """Voxel coordinates (x, y, z) of the particles, well inside the volume."""
    rng = np.random.default_rng(seed)
    nz, ny, nx = SHAPE_ZYX
    return np.column_stack(
        [rng.uniform(8, nx - 8, n), rng.uniform(8, ny - 8, n), rng.uniform(6, nz - 6, n)]
    )


def write_tomogram(path: Path, centres: np.ndarray, voxel_a: float | None = VOXEL_A) -> Path:
    nz, ny, nx = SHAPE_ZYX
    z, y, x = np.mgrid[:nz, :ny, :nx]
    vol = np.random.default_rng(1).normal(0, 0.1, SHAPE_ZYX).astype(np.float32)
    for cx, cy, cz in centres:
        vol += np.exp(-((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2) / 8.0).astype(np.float32)
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(vol)
        if voxel_a:
            m.voxel_size = voxel_a
    return path


def write_tilt_series(path: Path, n: int = len(ANGLES)) -> Path:
    data = np.random.default_rng(2).normal(size=(n, 64, 64)).astype(np.float32)
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(data)
        m.voxel_size = VOXEL_A / 2
    return path


def write_rawtlt(path: Path, angles: np.ndarray = ANGLES) -> Path:
    path.write_text("".join(f"{a:.2f}\n" for a in angles))
    return path


def write_points_ndjson(path: Path, xyz: np.ndarray, rotations: np.ndarray | None = None) -> Path:
    with open(path, "w") as fh:
        for i, (x, y, z) in enumerate(xyz):
            row: dict = {
                "type": "point" if rotations is None else "orientedPoint",
                "location": {"x": float(x), "y": float(y), "z": float(z)},
            }
            if rotations is not None:
                row["xyz_rotation_matrix"] = rotations[i].tolist()
            fh.write(json.dumps(row) + "\n")
    return path


def write_relion_star(path: Path, xyz: np.ndarray) -> Path:
    lines = [
        "# version 30001",
        "",
        "data_particles",
        "",
        "loop_",
        "_rlnCoordinateX #1",
        "_rlnCoordinateY #2",
        "_rlnCoordinateZ #3",
        "_rlnAngleRot #4",
        "_rlnAngleTilt #5",
        "_rlnAnglePsi #6",
    ]
    for x, y, z in xyz:
        lines.append(f"{x:.3f} {y:.3f} {z:.3f} 10.0 20.0 30.0")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_mask(
    path: Path,
    centres: np.ndarray,
    radius: float = 3.0,
    shape_zyx: tuple[int, int, int] = SHAPE_ZYX,
) -> Path:
    nz, ny, nx = shape_zyx
    z, y, x = np.mgrid[:nz, :ny, :nx]
    mask = np.zeros(shape_zyx, dtype=np.int8)
    for cx, cy, cz in centres:
        mask[(x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 <= radius**2] = 1
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(mask)
        m.voxel_size = VOXEL_A
    return path
