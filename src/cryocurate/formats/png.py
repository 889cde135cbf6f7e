"""8-bit PNG previews of float images, with contrast that survives outliers.

Magellon's extractor stretched each image from its minimum to its maximum, so one hot pixel
turned a class average grey, and then truncated to JPEG quality 75. Here the contrast window
is a pair of robust percentiles, values are rounded (not truncated) to 0–255, and the file is a
lossless PNG. Row 0 of the array is the top row of the picture, as in the MRC file.
"""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image

from cryocurate.atomic import atomic_path

LOW_PERCENTILE = 0.5
HIGH_PERCENTILE = 99.5


def to_uint8(
    image: np.ndarray, low: float = LOW_PERCENTILE, high: float = HIGH_PERCENTILE
) -> np.ndarray:
    """Map ``image`` to uint8 with the ``low``/``high`` percentiles at 0 and 255.

    A flat image (no contrast between the percentiles) becomes mid-grey rather than noise.
    """
    arr = np.asarray(image, dtype=np.float32)  # 8-bit output needs no more precision
    lo, hi = (float(v) for v in np.percentile(arr, [low, high]))
    if not np.isfinite(lo) or not np.isfinite(hi) or hi <= lo:
        return np.full(arr.shape, 128, dtype=np.uint8)
    return scale_to_uint8(arr, lo, hi)


def robust_window(
    sample: np.ndarray, low: float = LOW_PERCENTILE, high: float = HIGH_PERCENTILE
) -> tuple[float, float]:
    """The ``low``/``high`` percentiles of ``sample``, as a window shared by many images (a
    tomogram level's slices, a tilt series' tilts); a flat or non-finite sample gives a
    window one unit wide, so every image of it scales without dividing by zero."""
    lo, hi = (float(v) for v in np.percentile(sample, [low, high]))
    if not np.isfinite(lo) or not np.isfinite(hi) or hi <= lo:
        lo = lo if np.isfinite(lo) else 0.0
        hi = lo + 1.0
    return lo, hi


def scale_to_uint8(image: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``image`` with ``lo`` at 0 and ``hi`` at 255, rounded and clipped (``hi > lo``)."""
    scaled = (np.asarray(image, dtype=np.float32) - np.float32(lo)) * np.float32(255.0 / (hi - lo))
    np.rint(scaled, out=scaled)
    np.clip(scaled, 0, 255, out=scaled)
    return scaled.astype(np.uint8)


def write_png(path: str | os.PathLike[str], pixels: np.ndarray, *, durable: bool = True) -> None:
    """Write a 2D uint8 array as a greyscale PNG, atomically.

    Compression level 1: previews are written by the thousand and read by browsers; level 1
    is several times faster than the default and the files are barely larger on noisy images.
    """
    if pixels.dtype != np.uint8 or pixels.ndim != 2:
        raise ValueError("write_png expects a 2D uint8 array")
    with atomic_path(path, durable=durable) as tmp:
        Image.fromarray(pixels, mode="L").save(tmp, format="PNG", compress_level=1)


def png_bytes(pixels: np.ndarray) -> bytes:
    """A 2D uint8 array as greyscale PNG bytes (level 1, as :func:`write_png`), for images
    answered over HTTP rather than stored."""
    if pixels.dtype != np.uint8 or pixels.ndim != 2:
        raise ValueError("png_bytes expects a 2D uint8 array")
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
