"""A small synthetic tomography run: a tomogram, its tilt series and angles, in real formats.

For the demo and the tests of tilt-series grading: particles (Gaussian blobs) in a slab, a
tomogram of them, and a tilt series of their projections at the angles of a dose-symmetric
scheme (0°, +3°, −3°, −6°, +6° … as Hagen et al. 2017 collect them, so the file's order is
not the angles' order, as in real data). Noise grows with the accumulated dose and the
signal fades with the slab's apparent thickness (1/cos θ), so high tilts look as they do.

``quality`` makes the series worse in the ways the tilt-series quality scale describes:
5 is clean; 3 blurs a few high tilts (minor parts to discard); 2 also shifts a block of tilts
off-axis and blanks two (major parts to discard); 1 shifts every tilt at random (not
alignable). A grader can tell them apart by scrubbing the tilts.

    >>> files = synth_tilt_series_run("out/TS_01", quality=4, seed=1)   # doctest: +SKIP
    >>> files.tomogram, files.tilt_series, files.angles                   # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import mrcfile
import numpy as np

SHAPE_ZYX = (32, 128, 128)
VOXEL_A = 10.0


@dataclass(frozen=True)
class TomographyFiles:
    tomogram: Path
    tilt_series: Path
    angles: Path


def dose_symmetric(step: float = 3.0, max_angle: float = 60.0) -> np.ndarray:
    """Angles in acquisition order: 0, then pairs of ±n·step, alternating the first sign."""
    out = [0.0]
    for n in range(1, int(max_angle // step) + 1):
        a = n * step
        out += [a, -a] if n % 2 else [-a, a]
    return np.array(out)


def _blobs(rng: np.random.Generator, n: int) -> np.ndarray:
    nz, ny, nx = SHAPE_ZYX
    return np.column_stack(
        [
            rng.uniform(10, nx - 10, n),
            rng.uniform(10, ny - 10, n),
            rng.uniform(6, nz - 6, n),
            rng.uniform(2.0, 3.5, n),  # sigma, voxels
        ]
    )


def _tomogram(blobs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    nz, ny, nx = SHAPE_ZYX
    vol = rng.normal(0, 0.15, SHAPE_ZYX).astype(np.float32)
    z, y, x = np.ogrid[:nz, :ny, :nx]
    for cx, cy, cz, s in blobs:
        vol += np.exp(-((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2) / (2 * s * s)).astype(
            np.float32
        )
    return vol


def _projection(
    blobs: np.ndarray, angle: float, rng: np.random.Generator, dose: float, blur: float
) -> np.ndarray:
    nz, ny, nx = SHAPE_ZYX
    theta = np.deg2rad(angle)
    y, x = np.ogrid[:ny, :nx]
    image = np.zeros((ny, nx), dtype=np.float32)
    fade = np.cos(theta)  # a thicker slab at high tilt: less contrast
    for cx, cy, cz, s in blobs:
        px = (cx - nx / 2) * np.cos(theta) + (cz - nz / 2) * np.sin(theta) + nx / 2
        width = np.hypot(s, blur)
        image -= (
            fade
            * (s / width) ** 2
            * np.exp(-((x - px) ** 2 + (y - cy) ** 2) / (2 * width * width)).astype(np.float32)
        )
    image += rng.normal(0, 0.12 + 0.1 * dose, image.shape).astype(np.float32)
    return image


def synth_tilt_series_run(
    out: str | os.PathLike[str],
    *,
    quality: int = 5,
    n_particles: int = 40,
    seed: int = 0,
    name: str | None = None,
) -> TomographyFiles:
    """Write ``<name>.mrc`` (tomogram), ``<name>.st`` (tilt series) and ``<name>.rawtlt``
    into ``out`` (made if needed; ``name`` defaults to the folder's name)."""
    if not 1 <= quality <= 5:
        raise ValueError("quality is 1–5")
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    name = name or folder.name
    rng = np.random.default_rng(seed)
    blobs = _blobs(rng, n_particles)
    angles = dose_symmetric()
    tilts = []
    for i, angle in enumerate(angles):
        blur = 3.0 if quality <= 3 and abs(angle) >= 51 else 0.0
        image = _projection(blobs, float(angle), rng, dose=i / len(angles), blur=blur)
        if quality <= 2 and 30 <= angle <= 45:
            image = np.roll(image, (int(rng.integers(6, 14)), int(rng.integers(6, 14))), (0, 1))
        if quality <= 2 and angle in (-57.0, 57.0):
            image = rng.normal(0, 0.05, image.shape).astype(np.float32)
        if quality == 1:
            image = np.roll(image, tuple(int(v) for v in rng.integers(-20, 20, 2)), (0, 1))
        tilts.append(image)
    files = TomographyFiles(
        tomogram=folder / f"{name}.mrc",
        tilt_series=folder / f"{name}.st",
        angles=folder / f"{name}.rawtlt",
    )
    with mrcfile.new(files.tomogram, overwrite=True) as m:
        m.set_data(_tomogram(blobs, rng))
        m.voxel_size = VOXEL_A
    with mrcfile.new(files.tilt_series, overwrite=True) as m:
        m.set_data(np.stack(tilts).astype(np.float32))
        m.set_image_stack()
        m.voxel_size = VOXEL_A
    files.angles.write_text("".join(f"{a:.2f}\n" for a in angles))
    return files
