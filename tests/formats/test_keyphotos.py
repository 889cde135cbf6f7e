"""Key photos: sizes, mode, what the central slab shows, and which slices are read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mrcfile
import numpy as np
import pytest
from PIL import Image

from cryocurate.errors import FormatError, MissingFileError
from cryocurate.formats.keyphotos import (
    SNAPSHOT,
    THUMBNAIL,
    central_slab,
    fit_size,
    key_photos,
    slab_range,
)
from cryocurate.formats.omezarr import write_pyramid


def disk(shape: tuple[int, int], cy: int, cx: int, r: int) -> np.ndarray:
    y, x = np.ogrid[: shape[0], : shape[1]]
    return (y - cy) ** 2 + (x - cx) ** 2 <= r**2


def volume_with_features(shape: tuple[int, int, int] = (40, 300, 400)) -> np.ndarray:
    """Noise; a bright disk through the central slab and another one in the top slices only."""
    nz, ny, nx = shape
    vol = np.random.default_rng(5).normal(0, 1, shape).astype(np.float32)
    centre = disk((ny, nx), ny // 2, nx // 4, 30)  # left half, through the central slab
    top = disk((ny, nx), ny // 2, 3 * nx // 4, 30)  # right half, slices 0-2 only
    vol[nz // 2 - 3 : nz // 2 + 3, centre] += 6
    vol[:3, top] += 6
    return vol


def write_mrc(path: Path, data: np.ndarray) -> Path:
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = 10.0
    return path


def test_snapshot_shows_the_central_slab_not_the_top(tmp_path: Path, screenshot_dir: Path) -> None:
    vol = volume_with_features()
    mrc = write_mrc(tmp_path / "TS_01.mrc", vol)
    photos = key_photos(mrc, tmp_path / "KeyPhotos")
    assert photos.snapshot == tmp_path / "KeyPhotos" / "key-photo-snapshot.png"
    assert photos.thumbnail == tmp_path / "KeyPhotos" / "key-photo-thumbnail.png"
    snap = Image.open(photos.snapshot)
    thumb = Image.open(photos.thumbnail)
    assert snap.mode == thumb.mode == "L"
    assert snap.size == (400, 300)  # (width, height): full size, under the 1024 px cap
    assert thumb.size == (256, 192)
    pixels = np.asarray(snap, dtype=np.float64)
    centre = pixels[disk(pixels.shape, 150, 100, 20)].mean()
    top = pixels[disk(pixels.shape, 150, 300, 20)].mean()
    background = pixels[:60].mean()
    assert centre > background + 60
    assert abs(top - background) < 10
    thumb_px = np.asarray(thumb, dtype=np.float64)
    assert thumb_px[disk(thumb_px.shape, 96, 64, 12)].mean() > thumb_px[:30].mean() + 60
    snap.save(screenshot_dir / "keyphotos-snapshot.png")  # for a person to look at


def test_row_zero_is_the_top_of_the_picture(tmp_path: Path) -> None:
    vol = np.zeros((5, 64, 48), dtype=np.float32)
    vol[:, :8, :] = 1.0  # the first rows are bright
    photos = key_photos(write_mrc(tmp_path / "t.mrc", vol), tmp_path)
    pixels = np.asarray(Image.open(photos.snapshot))
    assert pixels[:8].min() == 255 and pixels[8:].max() == 0


def test_long_sides_are_capped_and_never_enlarged(tmp_path: Path) -> None:
    wide = np.random.default_rng(0).normal(size=(3, 600, 2000)).astype(np.float32)
    photos = key_photos(wide, tmp_path / "wide")
    assert Image.open(photos.snapshot).size == (1024, 307)
    assert Image.open(photos.thumbnail).size == (256, 77)
    small = np.random.default_rng(0).normal(size=(3, 90, 120)).astype(np.float32)
    photos = key_photos(small, tmp_path / "small")
    assert Image.open(photos.snapshot).size == (120, 90)
    assert Image.open(photos.thumbnail).size == (120, 90)
    assert fit_size(300, 1000, 256) == (77, 256)


class RecordingVolume:
    """A real 3D array that remembers which z slices were asked for."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = data
        self.shape = data.shape
        self.read: set[int] = set()

    def __getitem__(self, key: Any) -> np.ndarray:
        z = key[0] if isinstance(key, tuple) else key
        zs = range(*z.indices(self.shape[0])) if isinstance(z, slice) else [z]
        self.read.update(zs)
        return self.data[key]


def test_only_the_central_slab_is_read(tmp_path: Path) -> None:
    source = RecordingVolume(np.random.default_rng(1).normal(size=(100, 32, 32)))
    key_photos(source, tmp_path)
    assert source.read == set(range(45, 55))  # 10 % of 100 slices, centred
    source = RecordingVolume(np.random.default_rng(1).normal(size=(100, 32, 32)))
    key_photos(source, tmp_path, slab=3)
    assert source.read == {49, 50, 51}
    assert slab_range(7) == (3, 4)  # at least one slice
    assert slab_range(10, slab=50) == (0, 10)


def test_mrc_and_pyramid_sources_agree(tmp_path: Path) -> None:
    vol = volume_with_features((20, 80, 100))
    mrc = write_mrc(tmp_path / "t.mrc", vol)
    expected = vol[9:11].mean(axis=0)
    np.testing.assert_allclose(central_slab(mrc), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(central_slab(vol), expected, rtol=1e-6, atol=1e-6)
    write_pyramid(mrc, tmp_path / "t.zarr", voxel_spacing_a=10.0)
    np.testing.assert_allclose(central_slab(tmp_path / "t.zarr"), expected, rtol=1e-6, atol=1e-6)
    # from a pyramid, the coarsest level still as large as the snapshot is read
    assert central_slab(tmp_path / "t.zarr", min_size=40).shape == (40, 50)
    assert central_slab(tmp_path / "t.zarr", min_size=1024).shape == (80, 100)


def test_bad_sources(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError):
        key_photos(tmp_path / "absent.mrc", tmp_path / "out")
    junk = tmp_path / "junk.mrc"
    junk.write_bytes(b"\x00" * 2048)
    with pytest.raises(FormatError):
        key_photos(junk, tmp_path / "out")
    with pytest.raises(ValueError):
        key_photos(np.zeros((4, 4)), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert SNAPSHOT != THUMBNAIL
