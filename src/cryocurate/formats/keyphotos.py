"""Key photos of a tomogram: the snapshot and thumbnail PNGs the portal shows for each one.

The portal's v1 layout keeps them as ``KeyPhotos/key-photo-snapshot.png`` and
``KeyPhotos/key-photo-thumbnail.png`` next to the tomogram (the portal's ingestion makes them
from the same kind of picture: a projection through a slab at the centre of the volume).
Here the picture is the **mean of the central slab** of z slices (10 % of the depth by
default), which averages the noise of a single slice away while staying thin enough to keep
the features sharp. Only those slices are read: from an MRC file with plain positioned reads
(see :class:`~cryocurate.formats.omezarr.MrcVolume`), from an OME-Zarr pyramid at the
coarsest level still large enough for the snapshot, or from any 3D array (numpy, zarr).

The contrast window is the one of every preview in the project,
:func:`cryocurate.formats.png.to_uint8`, applied to each picture after it was resized
(Pillow's Lanczos filter on the float image), so the thumbnail gets the contrast of what it
shows. The snapshot keeps the volume's x/y size up to 1024 px on its long side; the thumbnail
is 256 px on its long side. Neither is ever enlarged. Row 0 of the volume is the top row of the
pictures, as everywhere else in the project.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np
from PIL import Image

from cryocurate.formats.omezarr import MrcVolume, read_level, read_pyramid_info
from cryocurate.formats.png import to_uint8, write_png

SNAPSHOT = "key-photo-snapshot.png"
THUMBNAIL = "key-photo-thumbnail.png"
SNAPSHOT_MAX = 1024
THUMBNAIL_MAX = 256
#: Fraction of the depth averaged into the picture when no slab depth is given.
SLAB_FRACTION = 0.1
#: How much of the slab is read at once.
_GROUP_BYTES = 32 * 2**20


class ArrayLike3D(Protocol):
    """Anything with a 3D ``shape`` that returns a ``(y, x)`` array for ``source[z]``."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    def __getitem__(self, key: Any) -> Any: ...


Source = str | os.PathLike[str] | ArrayLike3D


class KeyPhotos(NamedTuple):
    """Paths of the two PNGs written."""

    snapshot: Path
    thumbnail: Path


def slab_range(depth: int, slab: int | None = None) -> tuple[int, int]:
    """``(z0, z1)`` of the central ``slab`` slices (default: 10 % of ``depth``, at least 1)."""
    if slab is None:
        slab = round(depth * SLAB_FRACTION)
    slab = max(1, min(int(slab), depth))
    z0 = depth // 2 - slab // 2
    return z0, z0 + slab


def central_slab(
    source: Source, *, slab: int | None = None, min_size: int | None = None
) -> np.ndarray:
    """The mean of the central ``slab`` z slices of ``source`` as a float32 ``(y, x)`` image.

    ``source`` is an MRC file, an OME-Zarr folder or a 3D array indexed ``[z, y, x]``. From a
    pyramid, level 0 is read, or with ``min_size`` the coarsest level whose long side is still
    at least ``min_size`` pixels (the slab depth then counts slices of that level).
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            info = read_pyramid_info(path)
            level = 0
            for lv in range(info.levels):
                if min_size is not None and max(info.shapes[lv][1:]) >= min_size:
                    level = lv
            return _slab_mean(read_level(path, level), slab)
        with MrcVolume(path) as vol:
            return _slab_mean(vol, slab)
    return _slab_mean(source, slab)


def _slab_mean(volume: ArrayLike3D | MrcVolume, slab: int | None) -> np.ndarray:
    """Sum the slab a few slices at a time: one read per group, not the whole slab at once."""
    shape = tuple(int(n) for n in volume.shape)
    if len(shape) != 3:
        raise ValueError(f"expected a 3D volume (z, y, x), not shape {shape}")
    z0, z1 = slab_range(shape[0], slab)
    group = max(1, _GROUP_BYTES // (shape[1] * shape[2] * 4))
    total = np.zeros(shape[1:], dtype=np.float64)
    for za in range(z0, z1, group):
        zb = min(za + group, z1)
        if isinstance(volume, MrcVolume):
            slices = volume.read(slice(za, zb))
        else:
            slices = np.asarray(volume[za:zb], dtype=np.float32)
        total += slices.sum(axis=0, dtype=np.float64)
        del slices
    return (total / (z1 - z0)).astype(np.float32)


def fit_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """``(width, height)`` scaled so that the long side is at most ``long_side``; never enlarged."""
    scale = min(1.0, long_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def render(image: np.ndarray, long_side: int) -> np.ndarray:
    """A float ``(y, x)`` image resized to fit ``long_side`` (Lanczos), then made 8-bit."""
    height, width = image.shape
    size = fit_size(width, height, long_side)
    if size != (width, height):
        picture = Image.fromarray(np.ascontiguousarray(image, dtype=np.float32))
        image = np.asarray(picture.resize(size, Image.Resampling.LANCZOS))
    return to_uint8(image)


def key_photos(
    source: Source,
    out_dir: str | os.PathLike[str],
    *,
    slab: int | None = None,
    snapshot_max: int = SNAPSHOT_MAX,
    thumbnail_max: int = THUMBNAIL_MAX,
    durable: bool = True,
) -> KeyPhotos:
    """Write ``key-photo-snapshot.png`` and ``key-photo-thumbnail.png`` into ``out_dir``.

    Both show the mean of the central ``slab`` z slices (see :func:`central_slab`); each file
    is written atomically. Returns their paths (a named tuple ``(snapshot, thumbnail)``).

    Raises:
        MissingFileError / FormatError: ``source`` is missing or not a readable volume.
    """
    image = central_slab(source, slab=slab, min_size=snapshot_max)
    out = Path(out_dir)
    photos = KeyPhotos(out / SNAPSHOT, out / THUMBNAIL)
    write_png(photos.snapshot, render(image, snapshot_max), durable=durable)
    write_png(photos.thumbnail, render(image, thumbnail_max), durable=durable)
    return photos
