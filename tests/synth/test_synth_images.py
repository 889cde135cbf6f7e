"""The images: one density seen from many sides, sharper for better grades, junk as junk."""

from __future__ import annotations

import numpy as np
import pytest

from cryocurate.synth.density import random_density, random_rotation
from cryocurate.synth.images import Renderer, cryosparc_mask, project, soft_disc
from cryocurate.synth.plan import rng_for

BOX, PS = 64, 2.0


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    density = random_density(rng_for(3, 2), box=BOX, pixel_size=PS)
    return Renderer(density, box=BOX, pixel_size=PS, mask=cryosparc_mask(BOX))


def centre_of_mass(img: np.ndarray) -> np.ndarray:
    w = np.clip(img, 0, None)
    y, x = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
    return np.array([(w * x).sum(), (w * y).sum()]) / w.sum()


def render(r: Renderer, kind: str, res: float, noise: float = 0.0, seed: int = 1) -> np.ndarray:
    rot = random_rotation(np.random.default_rng(seed))
    return r.render(
        kind, resolution_a=res, noise=noise, rotation=rot, geometry_seed=seed, noise_seed=seed
    )


def test_projections_are_of_one_density(renderer):
    rng = np.random.default_rng(0)
    masses = [project(renderer.density, random_rotation(rng), BOX, PS).sum() for _ in range(6)]
    assert np.ptp(masses) / np.mean(masses) < 0.02  # same mass from every side
    views = [project(renderer.density, random_rotation(rng), BOX, PS) for _ in range(2)]
    assert not np.allclose(views[0], views[1])


def test_good_class_is_centred_and_masked(renderer):
    img = render(renderer, "particle", 6.0)
    assert img.dtype == np.float32 and img.shape == (BOX, BOX)
    assert np.linalg.norm(centre_of_mass(img) - BOX // 2) < 3.0
    outside = soft_disc(BOX, renderer.mask) == 0
    assert outside.any() and not img[outside].any()


def test_blur_grows_with_worse_resolution(renderer):
    def high_power(img: np.ndarray) -> float:
        f = np.abs(np.fft.fftshift(np.fft.fft2(img))) ** 2
        y, x = np.mgrid[0:BOX, 0:BOX]
        r = np.hypot(x - BOX // 2, y - BOX // 2)
        return float(f[r > BOX / 8].sum() / f.sum())

    powers = [high_power(render(renderer, "particle", res)) for res in (5.0, 12.0, 30.0)]
    assert powers[0] > powers[1] > powers[2]


def test_kinds(renderer):
    assert not render(renderer, "empty", 30.0).any()
    clipped = render(renderer, "clipped", 20.0)
    assert np.linalg.norm(centre_of_mass(clipped) - BOX // 2) > 6.0
    for kind in ("mixed", "aggregate", "ice", "carbon_edge", "noise"):
        img = render(renderer, kind, 25.0, noise=0.5)
        assert np.isfinite(img).all() and img.std() > 0, kind
    with pytest.raises(ValueError):
        render(renderer, "unicorn", 10.0)


def test_rendering_is_deterministic(renderer):
    a = render(renderer, "ice", 30.0, noise=0.4, seed=5)
    b = render(renderer, "ice", 30.0, noise=0.4, seed=5)
    assert np.array_equal(a, b)
