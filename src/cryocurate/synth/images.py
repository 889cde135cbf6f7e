"""Class-average images: projections of one density, and the junk classes labs actually see.

A real 2D class average is the CTF-corrected mean of many aligned particle images, so it is
the particle's projection, low-pass filtered to the class's resolution, with the low
frequencies only partly restored (a faint dark halo), residual noise correlated at the
resolution scale, and a soft circular mask with a flat background outside. This module builds
exactly that, with numpy only:

1. **project**: rotate the density's points and splat them bilinearly onto the pixel grid
   (``np.bincount``); smooth ellipsoids (micelles) are added by their analytic chord length;
2. **filter** in Fourier space: each point's Gaussian width × a Wiener-residual CTF response
   averaged over a defocus range × an envelope that falls off at the class resolution;
3. **noise**: white noise filtered the same way, scaled relative to the particle's signal;
4. **mask**: a soft-edged disc, zero outside.

Junk kinds reuse the same filter chain on other signals: ice (bright spheres, shells or
smooth blobs, often off-centre), carbon edges (a bright half-plane with a straight edge),
aggregates (several overlapping particles), clipped particles (off-centre, cut by the box and
mask), mixed views (two orientations averaged), pure noise (with the faint central blob that
aligning noise produces) and empty classes (all zeros, as cryoSPARC and RELION write them).

Every random choice about a class's *shape* comes from its geometry seed, and every choice
about its *noise* from a separate seed, so iterations of one job show the same class getting
sharper, not a different class.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from cryocurate.synth.density import Density, random_rotation

#: Kinds of class the renderer knows; plan.py decides which grade each gets.
KINDS = (
    "particle",
    "mixed",
    "clipped",
    "aggregate",
    "ice",
    "carbon_edge",
    "noise",
    "empty",
)


@dataclass(frozen=True)
class Mask:
    """A soft disc: 1 inside ``radius_px``, a cosine edge ``width_px`` wide, 0 beyond."""

    radius_px: float
    width_px: float


def cryosparc_mask(box: int) -> Mask:
    """cryoSPARC's 2D window: inner radius 0.85, outer 0.99 of the half box."""
    return Mask(radius_px=0.85 * box / 2, width_px=0.14 * box / 2)


def relion_mask(box: int, particle_diameter_a: float, pixel_size: float) -> Mask:
    """RELION's particle mask: the particle diameter, with a 5-pixel soft edge."""
    radius = min(particle_diameter_a / 2 / pixel_size, box / 2 - 5)
    return Mask(radius_px=radius, width_px=5.0)


# ------------------------------------------------------------------------------- grids


@lru_cache(maxsize=16)
def _frequency(box: int, pixel_size: float) -> np.ndarray:
    """Spatial frequency |s| in 1/Å on the rfft2 grid of a ``box``² image."""
    fy = np.fft.fftfreq(box, d=pixel_size)
    fx = np.fft.rfftfreq(box, d=pixel_size)
    return np.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)


@lru_cache(maxsize=16)
def _radius(box: int) -> np.ndarray:
    c = box // 2
    y, x = np.mgrid[0:box, 0:box]
    return np.hypot(x - c, y - c)


@lru_cache(maxsize=16)
def _ctf_response(box: int, pixel_size: float) -> np.ndarray:
    """How much of each frequency a CTF-corrected average keeps (0..1).

    The Wiener-like ratio ctf²/(ctf² + k), averaged over 0.8–2.5 µm defocus at 300 kV,
    Cs 2.7 mm, 10 % amplitude contrast: low frequencies come back only partly (the
    characteristic dark halo), higher ones almost fully once enough defoci fill the zeros.
    """
    s = _frequency(box, pixel_size)
    volts = 300e3
    wavelength = 12.2643247 / np.sqrt(volts * (1 + volts * 0.978466e-6))
    cs = 2.7e7
    amp = 0.1
    acc = np.zeros_like(s)
    defoci = np.linspace(8000.0, 25000.0, 16)
    for df in defoci:
        chi = np.pi * wavelength * df * s**2 - 0.5 * np.pi * cs * wavelength**3 * s**4
        ctf = -(np.sqrt(1 - amp**2) * np.sin(chi) + amp * np.cos(chi))
        acc += ctf**2 / (ctf**2 + 0.08)
    acc /= len(defoci)
    return 0.45 + 0.55 * acc


def _envelope(
    box: int, pixel_size: float, resolution_a: float, sharpness: float = 0.8
) -> np.ndarray:
    """Fall-off to the class resolution: Gaussian, then a cosine taper to zero past it."""
    s = _frequency(box, pixel_size)
    sr = s * resolution_a
    env = np.exp(-sharpness * sr**2)
    taper = np.clip((sr - 1.0) / 0.3, 0.0, 1.0)
    return env * 0.5 * (1 + np.cos(np.pi * taper))


def soft_disc(box: int, mask: Mask) -> np.ndarray:
    """The mask as an image (float64, 0..1)."""
    r = _radius(box)
    edge = np.clip((r - mask.radius_px) / max(mask.width_px, 1e-6), 0.0, 1.0)
    return 0.5 * (1 + np.cos(np.pi * edge))


# --------------------------------------------------------------------------- projection


def _splat(xy_px: np.ndarray, weights: np.ndarray, box: int) -> np.ndarray:
    """Bilinear splat of points (x, y in pixels) onto a ``box``² grid; outside points drop."""
    x, y = xy_px[:, 0], xy_px[:, 1]
    x0 = np.floor(x).astype(np.int64)
    y0 = np.floor(y).astype(np.int64)
    fx, fy = x - x0, y - y0
    img = np.zeros(box * box)
    for dx, dy, w in (
        (0, 0, (1 - fx) * (1 - fy)),
        (1, 0, fx * (1 - fy)),
        (0, 1, (1 - fx) * fy),
        (1, 1, fx * fy),
    ):
        xi, yi = x0 + dx, y0 + dy
        ok = (xi >= 0) & (xi < box) & (yi >= 0) & (yi < box)
        img += np.bincount(yi[ok] * box + xi[ok], weights=(weights * w)[ok], minlength=box * box)
    return img.reshape(box, box)


def _ellipsoid_projection(
    density: Density, rotation: np.ndarray, box: int, pixel_size: float, shift_px: np.ndarray
) -> np.ndarray:
    """Residues per pixel from the density's uniform ellipsoids, by exact chord length."""
    img = np.zeros((box, box))
    if not density.ellipsoids:
        return img
    c = box // 2
    y, x = np.mgrid[0:box, 0:box]
    u = (x - c - shift_px[0]) * pixel_size
    v = (y - c - shift_px[1]) * pixel_size
    for e in density.ellipsoids:
        centre = rotation @ e.centre
        m = rotation @ e.matrix @ rotation.T
        du, dv = u - centre[0], v - centre[1]
        a = m[2, 2]
        b = m[2, 0] * du + m[2, 1] * dv
        g = m[0, 0] * du * du + 2 * m[0, 1] * du * dv + m[1, 1] * dv * dv
        disc = b * b - a * (g - 1.0)
        img += e.density * pixel_size**2 * 2 * np.sqrt(np.clip(disc, 0, None)) / a
    return img


def project(
    density: Density,
    rotation: np.ndarray,
    box: int,
    pixel_size: float,
    shift_px: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """The unfiltered projection along z of the rotated density (residues per pixel)."""
    shift = np.asarray(shift_px, dtype=np.float64)
    rotated = density.points @ rotation.T
    xy = rotated[:, :2] / pixel_size + box // 2 + shift
    img = _splat(xy, density.weights, box)
    return img + _ellipsoid_projection(density, rotation, box, pixel_size, shift)


def _filter(img: np.ndarray, transfer: np.ndarray) -> np.ndarray:
    return np.fft.irfft2(np.fft.rfft2(img) * transfer, s=img.shape)


def _point_blur(box: int, pixel_size: float, sigma_a: float) -> np.ndarray:
    s = _frequency(box, pixel_size)
    return np.exp(-2 * np.pi**2 * sigma_a**2 * s**2)


# ----------------------------------------------------------------------------- renderer


class Renderer:
    """Renders the class averages of one job: one density, one box, one mask.

    ``scale`` (the signal level of a typical view at 8 Å) makes noise and junk levels
    comparable across classes and iterations; images are divided by it, so a good class
    peaks at about 1–3.
    """

    def __init__(self, density: Density, *, box: int, pixel_size: float, mask: Mask) -> None:
        self.density = density
        self.box = box
        self.pixel_size = pixel_size
        self.mask = mask
        self.mask_img = soft_disc(box, mask)
        self.blur = _point_blur(box, pixel_size, density.point_sigma_a)
        self.ctf = _ctf_response(box, pixel_size)
        ref_rng = np.random.default_rng(12345)
        levels = []
        for _ in range(4):
            ref = _filter(
                project(density, random_rotation(ref_rng), box, pixel_size),
                self.blur * _envelope(box, pixel_size, 8.0),
            )
            levels.append(float(np.percentile(ref, 99.5)))
        self.scale = float(np.mean(levels)) or 1.0
        # per-pixel white noise that, filtered at 8 Å, has a standard deviation of 1/4
        probe = np.random.default_rng(0).normal(size=(box, box))
        probe = _filter(probe, self.ctf * _envelope(box, pixel_size, 8.0 * 0.85, sharpness=0.8))
        self.noise_unit = 0.25 / (float(probe.std()) or 1.0)

    # -- signals, in units of the reference level ------------------------------------

    def _particle(self, rotation: np.ndarray, shift=(0.0, 0.0)) -> np.ndarray:
        return project(self.density, rotation, self.box, self.pixel_size, shift) / self.scale

    def _ice(self, g: np.random.Generator) -> np.ndarray:
        box = self.box
        y, x = np.mgrid[0:box, 0:box].astype(np.float64)
        img = np.zeros((box, box))
        variant = g.choice(["sphere", "shell", "blobs", "sphere"])
        n = 1 if variant != "blobs" else int(g.integers(2, 5))
        for _ in range(n):
            radius = g.uniform(0.12, 0.42) * box
            off = g.uniform(0.0, 0.55) * box
            ang = g.uniform(0, 2 * np.pi)
            cx, cy = box // 2 + off * np.cos(ang), box // 2 + off * np.sin(ang)
            rr = np.hypot(x - cx, y - cy) / radius
            level = g.uniform(0.25, 0.6) * (radius / (0.2 * box))
            if variant == "sphere":
                img += level * np.sqrt(np.clip(1 - rr**2, 0, None))
            elif variant == "shell":
                inner = g.uniform(0.75, 0.92)
                outer = np.sqrt(np.clip(1 - rr**2, 0, None))
                hole = inner * np.sqrt(np.clip(1 - (rr / inner) ** 2, 0, None))
                img += 2.5 * level * (outer - hole)
            else:
                img += level * np.exp(-0.5 * (rr * 1.6) ** 2)
        return img * g.choice([1.0, -0.6])

    def _carbon(self, g: np.random.Generator) -> np.ndarray:
        box = self.box
        y, x = np.mgrid[0:box, 0:box].astype(np.float64)
        ang = g.uniform(0, 2 * np.pi)
        offset = g.uniform(-0.3, 0.3) * box
        d = (x - box // 2) * np.cos(ang) + (y - box // 2) * np.sin(ang) - offset
        level = g.uniform(0.5, 1.2)
        img = level / (1 + np.exp(-d / 0.7))
        img += g.uniform(0.4, 1.0) * level * np.exp(-0.5 * (d / 1.2) ** 2)
        if g.uniform() < 0.5:  # a particle stuck to the edge
            along = g.uniform(-0.2, 0.2) * box
            px = -np.sin(ang) * along - np.cos(ang) * (self.density.radius_a / self.pixel_size)
            py = np.cos(ang) * along - np.sin(ang) * (self.density.radius_a / self.pixel_size)
            shift = (px + np.cos(ang) * offset, py + np.sin(ang) * offset)
            img += 0.7 * self._particle(random_rotation(g), shift)
        return img

    def _signal(self, kind: str, rotation: np.ndarray, g: np.random.Generator) -> np.ndarray:
        box = self.box
        r_px = self.density.radius_a / self.pixel_size
        if kind == "particle":
            return self._particle(rotation)
        if kind == "mixed":
            tilt = np.deg2rad(g.uniform(18, 40))
            axis = g.normal(size=3)
            axis /= np.linalg.norm(axis)
            k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
            delta = np.eye(3) + np.sin(tilt) * k + (1 - np.cos(tilt)) * (k @ k)
            w = g.uniform(0.5, 0.65)
            return w * self._particle(rotation) + (1 - w) * self._particle(delta @ rotation)
        if kind == "clipped":
            off = g.uniform(0.26, 0.36) * box + 0.2 * r_px
            ang = g.uniform(0, 2 * np.pi)
            return self._particle(rotation, (off * np.cos(ang), off * np.sin(ang)))
        if kind == "aggregate":
            img = np.zeros((box, box))
            for _ in range(int(g.integers(3, 7))):
                off = g.uniform(0.2, 1.1) * r_px
                ang = g.uniform(0, 2 * np.pi)
                img += self._particle(random_rotation(g), (off * np.cos(ang), off * np.sin(ang)))
            return img * 0.8
        if kind == "ice":
            return self._ice(g)
        if kind == "carbon_edge":
            return self._carbon(g)
        if kind == "noise":
            level = g.uniform(0.15, 0.4)
            return level * np.exp(-0.5 * (_radius(box) / (0.8 * r_px)) ** 2)
        raise ValueError(f"unknown class kind {kind!r}")

    def render(
        self,
        kind: str,
        *,
        resolution_a: float,
        noise: float,
        rotation: np.ndarray,
        geometry_seed: int,
        noise_seed: int,
    ) -> np.ndarray:
        """One class average as float32 ``(box, box)``.

        ``noise`` is the residual noise's standard deviation relative to a typical view's
        signal; ``resolution_a`` sets the low-pass (ignored for empty classes).
        """
        box = self.box
        if kind == "empty":
            return np.zeros((box, box), dtype=np.float32)
        g = np.random.default_rng(geometry_seed)
        res = max(float(resolution_a), 2.0 * self.pixel_size)
        signal = self._signal(kind, rotation, g)
        transfer = self.blur * self.ctf * _envelope(box, self.pixel_size, res)
        img = _filter(signal, transfer)
        # white noise filtered like the signal: blurrier classes are smoother, as real ones
        n = np.random.default_rng(noise_seed).normal(scale=noise * self.noise_unit, size=(box, box))
        noise_transfer = self.ctf * _envelope(box, self.pixel_size, res * 0.85, sharpness=0.8)
        img = (img + _filter(n, noise_transfer)) * self.mask_img
        return img.astype(np.float32)
