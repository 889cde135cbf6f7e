"""Magellon's mass features, checked on images whose answer is known by hand."""

from __future__ import annotations

import numpy as np
import pytest

from cryocurate.ingest.features import MASS_SCALE, estimate_mass, mass_features


def disc_image(box: int, radius: float, height: float, background: float) -> np.ndarray:
    yy, xx = np.mgrid[:box, :box] - (box - 1) / 2
    img = np.full((box, box), background)
    img[np.hypot(yy, xx) <= radius] += height
    return img


def test_flat_disc_mass_is_its_area_times_height():
    img = disc_image(64, 10, height=2.0, background=0.5)
    img[3, 3:61] += 1e-3  # a little edge noise so the ring has a standard deviation
    area = int(np.count_nonzero(img > 1.0))
    # background mean over non-particle pixels ≈ 0.5; masked pixels hold 2.5 → 2.0 above it
    expected = area * 2.0 * 1.5**2 * MASS_SCALE
    assert estimate_mass(img, 1.5) == pytest.approx(expected, rel=1e-4)


def test_job_level_differences_use_mean_median_and_scipy_mode():
    imgs = np.stack([disc_image(48, r, 1.0, 0.0) for r in (4, 6, 6, 9)])
    imgs[:, 3, 3:45] += 1e-3
    f = mass_features(imgs, 1.0)
    m = f.mass_estimate
    assert f.dmean_mass == pytest.approx(np.abs(m - m.mean()))
    assert f.dmedian_mass == pytest.approx(np.abs(m - np.median(m)))
    # scipy.stats.mode: the most frequent value (the two r=6 discs), not the minimum
    assert f.dmode_mass == pytest.approx(np.abs(m - m[1]))


def test_all_distinct_masses_take_the_smallest_as_mode():
    imgs = np.stack([disc_image(48, r, 1.0, 0.0) for r in (4, 7, 9)])
    imgs[:, 3, 3:45] += 1e-3
    f = mass_features(imgs, 1.0)
    assert f.dmode_mass == pytest.approx(f.mass_estimate - f.mass_estimate.min())
