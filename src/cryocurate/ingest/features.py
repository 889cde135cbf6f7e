"""Magellon's per-class mass features, computed exactly as its model was trained on them.

Magellon's ``extract_mrc.py`` fed its CNN six numbers per class average; three of them come
from ``massest/mass_est_lib.py`` (Stagg lab). For each average:

1. take the ring of pixels 3 px inside the box edge (rows and columns at index 3 and −3);
2. particle mask = pixels brighter than the ring's mean + 3 × its standard deviation;
3. subtract the mean of all pixels outside that mask (the background);
4. mass = Σ(masked pixels) × pixel_size² × 26.455.

Then, per job, ``dmean`` = |mass − mean(masses)|, ``dmedian`` = |mass − median(masses)| and
``dmode`` = |mass − mode(masses)|, where ``mode`` is ``scipy.stats.mode``: the most frequent
value, the smallest one on a tie, so in practice the smallest mass. Magellon kept only the
three differences; we also keep the mass itself.

Two deliberate differences, both documented in the README: sums are taken in float64 rather
than the MRC's float32 (the numbers agree to about 1e-6 relative), and the pixel size is the
job's (``blob/psize_A`` or ``rlnPixelSize``) instead of the MRC header's, which is often unset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EDGE_INSET_PX = 3
N_STD = 3.0
MASS_SCALE = 26.455


@dataclass(frozen=True)
class MassFeatures:
    """One value per class, in class-index order (NaN where a mass cannot be computed)."""

    mass_estimate: np.ndarray
    dmean_mass: np.ndarray
    dmedian_mass: np.ndarray
    dmode_mass: np.ndarray


def _edge_ring(img: np.ndarray, k: int) -> np.ndarray:
    return np.concatenate([img[k:-k, k], img[k:-k, -k], img[k, k:-k], img[-k, k:-k]])


def estimate_mass(image: np.ndarray, pixel_size_a: float) -> float:
    """Mass estimate of one class average (Magellon's ``calc_mass`` with its defaults)."""
    img = np.asarray(image, dtype=np.float64)
    if min(img.shape) <= 2 * EDGE_INSET_PX:
        return float("nan")
    ring = _edge_ring(img, EDGE_INSET_PX)
    particle = img > ring.mean() + N_STD * ring.std()
    background = ~particle
    if not background.any():
        return float("nan")
    centred = img - img[background].mean()
    return float(centred[particle].sum() * pixel_size_a**2 * MASS_SCALE)


def _mode(values: np.ndarray) -> float:
    """``scipy.stats.mode`` of a 1D array: the most frequent value, the smallest on ties."""
    finite = values[np.isfinite(values)]
    if len(finite) != len(values) or len(values) == 0:
        return float("nan")
    uniques, counts = np.unique(finite, return_counts=True)
    return float(uniques[np.argmax(counts)])


def mass_features(images: np.ndarray, pixel_size_a: float) -> MassFeatures:
    """Mass features for a stack ``(K, n, n)`` of class averages of one job."""
    masses = np.array([estimate_mass(img, pixel_size_a) for img in images], dtype=np.float64)
    with np.errstate(invalid="ignore"):
        mean = masses.mean() if len(masses) else np.nan
        median = np.median(masses) if len(masses) else np.nan
    mode = _mode(masses)
    return MassFeatures(
        mass_estimate=masses,
        dmean_mass=np.abs(masses - mean),
        dmedian_mass=np.abs(masses - median),
        dmode_mass=np.abs(masses - mode),
    )
