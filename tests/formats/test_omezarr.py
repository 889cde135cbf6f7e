"""OME-Zarr pyramids from MRC volumes: layout, NGFF metadata, values, atomicity, memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import zarr

from cryocurate.errors import ConflictError, FormatError, MissingFileError
from cryocurate.formats import omezarr
from cryocurate.formats.omezarr import (
    PyramidInfo,
    read_level,
    read_pyramid_info,
    read_slice,
    write_mask_pyramid,
    write_pyramid,
)

VOXEL = 13.48


def blobs(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """A float32 volume with a few Gaussian blobs on weak noise."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij")
    vol = rng.normal(0, 0.05, shape).astype(np.float32)
    for _ in range(5):
        cz, cy, cx = (rng.uniform(0, n) for n in shape)
        sigma = rng.uniform(3, 8)
        vol += np.exp(-((z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2) / (2 * sigma**2))
    return vol


def write_mrc(path: Path, data: np.ndarray, voxel: float = VOXEL) -> Path:
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = voxel
    return path


def reference_bin(vol: np.ndarray, reduce: str = "mean") -> np.ndarray:
    """2×2×2 binning in float64 by plain numpy, odd sizes rounded up (last block: its voxels)."""
    out_shape = tuple((n + 1) // 2 for n in vol.shape)
    out = np.empty(out_shape, dtype=np.float64)
    for i in range(out_shape[0]):
        for j in range(out_shape[1]):
            block = vol[2 * i : 2 * i + 2, 2 * j : 2 * j + 2].astype(np.float64)
            # the x axis in one go: pairs, plus a lone last column if odd
            pairs = block.reshape(-1, block.shape[-1])
            for k in range(out_shape[2]):
                cell = pairs[:, 2 * k : 2 * k + 2]
                out[i, j, k] = cell.mean() if reduce == "mean" else cell.max()
    return out


@pytest.fixture
def tomo(tmp_path: Path) -> tuple[Path, np.ndarray]:
    vol = blobs((64, 96, 80))
    return write_mrc(tmp_path / "TS_01.mrc", vol), vol


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".tmp-"))


# ── layout and metadata ──────────────────────────────────────────────────────────────────────


def test_levels_shapes_scales_and_chunks(tomo: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    mrc, _ = tomo
    info = write_pyramid(mrc, tmp_path / "TS_01.zarr", voxel_spacing_a=VOXEL)
    assert info.shapes == ((64, 96, 80), (32, 48, 40), (16, 24, 20))
    assert info.scales == ((13.48,) * 3, (26.96,) * 3, (53.92,) * 3)
    assert info.chunks == info.shapes  # 256³ clipped to the volume
    assert info.unit == "angstrom" and info.voxel_spacing_a == pytest.approx(13.48)
    assert info.binning == (1.0, 2.0, 4.0)
    assert info.dtype == "float32"
    assert info.scale_dimensions() == {
        "scale_0_dimensions": "80,96,64",
        "scale_1_dimensions": "40,48,32",
        "scale_2_dimensions": "20,24,16",
    }
    assert info.metadata_scales()[1] == {"z": 32, "y": 48, "x": 40}
    assert info.metadata_size() == {"z": 64, "y": 96, "x": 80}
    assert read_pyramid_info(tmp_path / "TS_01.zarr") == info


def test_ngff_04_metadata_on_zarr_v2(tomo: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    mrc, _ = tomo
    out = tmp_path / "TS_01.zarr"
    write_pyramid(mrc, out, voxel_spacing_a=VOXEL, chunk=(32, 64, 64))
    assert json.loads((out / ".zgroup").read_text()) == {"zarr_format": 2}
    (ms,) = json.loads((out / ".zattrs").read_text())["multiscales"]
    assert ms["version"] == "0.4"
    assert ms["axes"] == [
        {"name": "z", "type": "space", "unit": "angstrom"},
        {"name": "y", "type": "space", "unit": "angstrom"},
        {"name": "x", "type": "space", "unit": "angstrom"},
    ]
    assert ms["datasets"] == [
        {"path": str(lv), "coordinateTransformations": [{"type": "scale", "scale": [s] * 3}]}
        for lv, s in enumerate([13.48, 26.96, 53.92])
    ]
    assert ms["type"] == "mean"
    zarray = json.loads((out / "0" / ".zarray").read_text())
    assert zarray["zarr_format"] == 2
    assert zarray["dtype"] == "<f4"
    assert zarray["chunks"] == [32, 64, 64]
    assert zarray["dimension_separator"] == "/"
    assert zarray["compressor"]["id"] == "blosc"
    assert json.loads((out / "2" / ".zarray").read_text())["chunks"] == [16, 24, 20]
    assert (out / "0" / "1" / "1" / "1").is_file()  # z, y, x chunk keys as nested folders


def test_level0_is_the_mrc_and_coarser_levels_are_2x2x2_means(
    tomo: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    mrc, vol = tomo
    out = tmp_path / "TS_01.zarr"
    write_pyramid(mrc, out, voxel_spacing_a=VOXEL, chunk=(16, 32, 32))
    group = zarr.open_group(str(out), mode="r")
    np.testing.assert_array_equal(group["0"][:], mrcfile.read(mrc))
    level1 = vol.astype(np.float64).reshape(32, 2, 48, 2, 40, 2).mean(axis=(1, 3, 5))
    np.testing.assert_allclose(group["1"][:], level1, rtol=1e-6, atol=1e-6)
    level2 = level1.reshape(16, 2, 24, 2, 20, 2).mean(axis=(1, 3, 5))
    np.testing.assert_allclose(group["2"][:], level2, rtol=1e-6, atol=1e-6)
    assert group["1"].dtype == np.float32


def test_odd_sizes_round_up_and_chunks_do_not_change_values(tmp_path: Path) -> None:
    vol = blobs((23, 37, 30), seed=3)
    mrc = write_mrc(tmp_path / "odd.mrc", vol)
    small = write_pyramid(mrc, tmp_path / "small.zarr", voxel_spacing_a=10.0, chunk=(4, 6, 8))
    whole = write_pyramid(mrc, tmp_path / "whole.zarr", voxel_spacing_a=10.0)
    assert small.shapes == whole.shapes == ((23, 37, 30), (12, 19, 15), (6, 10, 8))
    assert small.chunks == ((4, 6, 8), (4, 6, 8), (4, 6, 8))
    ref1 = reference_bin(vol)
    ref2 = reference_bin(ref1)
    for info in (small, whole):
        np.testing.assert_allclose(read_level(info.path, 1)[:], ref1, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(read_level(info.path, 2)[:], ref2, rtol=1e-6, atol=1e-6)
    # the partial edge block is its voxels' mean, not darkened by zero padding
    assert read_level(whole.path, 1)[11, 18, 14] == pytest.approx(ref1[11, 18, 14], rel=1e-6)


def test_integer_mrc_keeps_its_numbers_and_header_voxel_size(tmp_path: Path) -> None:
    vol = (blobs((10, 20, 24)) * 1000).astype(np.int16)
    mrc = write_mrc(tmp_path / "int.mrc", vol, voxel=7.1234)
    info = write_pyramid(mrc, tmp_path / "int.zarr", voxel_spacing_a=None, levels=2)
    assert info.scales == ((7.123,) * 3, (14.246,) * 3)
    np.testing.assert_array_equal(read_level(info.path, 0)[:], vol.astype(np.float32))


def test_progress_counts_every_block(tomo: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    mrc, _ = tomo
    calls: list[tuple[int, int]] = []
    write_pyramid(
        mrc,
        tmp_path / "p.zarr",
        voxel_spacing_a=VOXEL,
        chunk=(32, 32, 32),
        progress=lambda done, total: calls.append((done, total)),
    )
    total = calls[0][1]
    # level 0: 2×3×1 bands (x fits in one block); level 1: 1×2×2 chunks; level 2: 1 chunk
    assert total == 6 + 4 + 1
    assert calls == [(k, total) for k in range(total + 1)]


def test_read_slice_and_level(tomo: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    mrc, vol = tomo
    out = tmp_path / "TS_01.zarr"
    write_pyramid(mrc, out, voxel_spacing_a=VOXEL)
    np.testing.assert_array_equal(read_slice(out, 0, 40), vol[40])
    assert read_slice(out, 2, 15).shape == (24, 20)
    arr = read_level(out, 1)
    assert arr.shape == (32, 48, 40)
    with pytest.raises(IndexError):
        read_slice(out, 0, 64)
    with pytest.raises(IndexError):
        read_level(out, 3)


# ── reading pyramids we did not write ───────────────────────────────────────────────────────


def _hand_made_pyramid(path: Path, axes: list, transforms: list | None) -> None:
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    datasets = []
    for lv, n in enumerate((32, 16, 8)):
        group.create_array(str(lv), shape=(n, n, n), chunks=(n, n, n), dtype="f4", fill_value=0)
        ds: dict = {"path": str(lv)}
        if transforms is not None:
            ds["coordinateTransformations"] = transforms[lv]
        datasets.append(ds)
    group.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": datasets}]


def test_reads_the_portals_early_unitless_scales(tmp_path: Path) -> None:
    axes = [{"name": a, "type": "space"} for a in "zyx"]
    scales = [[{"type": "scale", "scale": [f] * 3}] for f in (1.0, 2.0, 4.0)]
    _hand_made_pyramid(tmp_path / "early.zarr", axes, scales)
    info = read_pyramid_info(tmp_path / "early.zarr")
    assert info.unit is None and info.voxel_spacing_a is None
    assert info.binning == (1.0, 2.0, 4.0)
    assert info.shapes == ((32,) * 3, (16,) * 3, (8,) * 3)
    assert info.dimensions(1) == "16,16,16"


def test_reads_nanometres_and_axes_as_plain_names(tmp_path: Path) -> None:
    axes = [{"name": a, "type": "space", "unit": "nanometer"} for a in "zyx"]
    scales = [[{"type": "scale", "scale": [1.348 * f] * 3}] for f in (1, 2, 4)]
    _hand_made_pyramid(tmp_path / "nm.zarr", axes, scales)
    assert read_pyramid_info(tmp_path / "nm.zarr").voxel_spacing_a == pytest.approx(13.48)
    _hand_made_pyramid(tmp_path / "v03.zarr", ["z", "y", "x"], None)
    info = read_pyramid_info(tmp_path / "v03.zarr")
    assert info.unit is None and info.binning == (1.0, 2.0, 4.0)


def test_refuses_folders_that_are_not_pyramids(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError):
        read_pyramid_info(tmp_path / "absent.zarr")
    (tmp_path / "plain").mkdir()
    with pytest.raises(FormatError, match="not a zarr group"):
        read_pyramid_info(tmp_path / "plain")
    zarr.open_group(str(tmp_path / "bare.zarr"), mode="w", zarr_format=2)
    with pytest.raises(FormatError, match="multiscales"):
        read_pyramid_info(tmp_path / "bare.zarr")


# ── bad input and atomicity ─────────────────────────────────────────────────────────────────


def test_truncated_mrc_is_refused_and_leaves_nothing(
    tomo: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    mrc, _ = tomo
    data = mrc.read_bytes()
    mrc.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match="truncated") as err:
        write_pyramid(mrc, tmp_path / "TS_01.zarr", voxel_spacing_a=VOXEL)
    assert err.value.where == str(mrc)
    assert not (tmp_path / "TS_01.zarr").exists()
    assert leftovers(tmp_path) == []


def test_not_an_mrc_and_missing_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mrc"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(FormatError, match="not an MRC"):
        write_pyramid(junk, tmp_path / "junk.zarr", voxel_spacing_a=VOXEL)
    short = tmp_path / "short.mrc"
    short.write_bytes(b"MRC?")
    with pytest.raises(FormatError, match="shorter than"):
        write_pyramid(short, tmp_path / "short.zarr", voxel_spacing_a=VOXEL)
    with pytest.raises(MissingFileError):
        write_pyramid(tmp_path / "absent.mrc", tmp_path / "absent.zarr", voxel_spacing_a=VOXEL)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.mrc", "short.mrc"]


@pytest.mark.filterwarnings("ignore:Data array contains NaN")
def test_failure_midway_keeps_the_previous_pyramid(tmp_path: Path) -> None:
    vol = blobs((40, 32, 32))
    mrc = write_mrc(tmp_path / "t.mrc", vol)
    out = tmp_path / "t.zarr"
    write_pyramid(mrc, out, voxel_spacing_a=VOXEL)
    before = read_slice(out, 0, 5)
    vol[-1, 3, 3] = np.nan  # in the last block: earlier blocks are written before it is read
    write_mrc(mrc, vol)
    seen: list[int] = []
    with pytest.raises(FormatError, match="NaN") as err:
        write_pyramid(
            mrc, out, voxel_spacing_a=VOXEL, chunk=(8, 32, 32), progress=lambda d, t: seen.append(d)
        )
    assert "slices 32–39" in str(err.value)
    assert max(seen) == 4  # four blocks were written before the failure
    np.testing.assert_array_equal(read_slice(out, 0, 5), before)
    assert leftovers(tmp_path) == []


def test_replaces_a_pyramid_but_not_another_folder(
    tomo: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    mrc, _ = tomo
    out = tmp_path / "TS_01.zarr"
    write_pyramid(mrc, out, voxel_spacing_a=20.0)
    write_pyramid(mrc, out, voxel_spacing_a=VOXEL)
    assert read_pyramid_info(out).voxel_spacing_a == pytest.approx(VOXEL)
    assert leftovers(tmp_path) == []
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(ConflictError):
        write_pyramid(mrc, other, voxel_spacing_a=VOXEL)
    assert (other / "keep.txt").read_text() == "mine"


def test_bad_arguments(tomo: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    mrc, _ = tomo
    with pytest.raises(ValueError):
        write_pyramid(mrc, tmp_path / "a.zarr", voxel_spacing_a=0.0)
    with pytest.raises(ValueError):
        write_pyramid(mrc, tmp_path / "b.zarr", voxel_spacing_a=VOXEL, levels=0)
    with pytest.raises(ValueError):
        write_pyramid(mrc, tmp_path / "c.zarr", voxel_spacing_a=VOXEL, chunk=(0, 8, 8))
    assert not any(p.suffix == ".zarr" for p in tmp_path.iterdir())


# ── masks ───────────────────────────────────────────────────────────────────────────────────


def labels(shape: tuple[int, int, int]) -> np.ndarray:
    mask = np.zeros(shape, dtype=np.int8)
    mask[10:30, 20:60, 10:50] = 1  # a membrane-ish slab
    mask[41, 13, 7] = 2  # a single voxel of another label: must survive every level
    mask[50:53, 80:83, 60:63] = 3
    return mask


def test_mask_pyramid_keeps_labels_and_dtype(tmp_path: Path) -> None:
    mask = labels((57, 90, 70))
    mrc = write_mrc(tmp_path / "seg.mrc", mask)
    info = write_mask_pyramid(mrc, tmp_path / "seg.zarr", voxel_spacing_a=VOXEL, chunk=(16, 32, 32))
    assert info.dtype == "int8" and info.reduction == "max"
    assert info.shapes == ((57, 90, 70), (29, 45, 35), (15, 23, 18))
    level0, level1, level2 = (read_level(info.path, lv)[:] for lv in range(3))
    assert level0.dtype == level1.dtype == level2.dtype == np.int8
    np.testing.assert_array_equal(level0, mask)
    np.testing.assert_array_equal(level1, reference_bin(mask, "max").astype(np.int8))
    for level in (level1, level2):
        assert set(np.unique(level)) == {0, 1, 2, 3}
    assert level2[41 // 4, 13 // 4, 7 // 4] == 2
    attrs = json.loads((info.path / ".zattrs").read_text())
    assert attrs["multiscales"][0]["type"] == "max"


def test_float_masks_need_an_explicit_integer_dtype(tmp_path: Path) -> None:
    mask = labels((57, 90, 70)).astype(np.float32)
    mrc = write_mrc(tmp_path / "seg.mrc", mask)
    with pytest.raises(FormatError, match="dtype"):
        write_mask_pyramid(mrc, tmp_path / "a.zarr", voxel_spacing_a=VOXEL)
    info = write_mask_pyramid(mrc, tmp_path / "b.zarr", voxel_spacing_a=VOXEL, dtype="int8")
    np.testing.assert_array_equal(read_level(info.path, 0)[:], mask.astype(np.int8))
    mask[5, 5, 5] = 0.5
    write_mrc(mrc, mask)
    with pytest.raises(FormatError, match="whole numbers"):
        write_mask_pyramid(mrc, tmp_path / "c.zarr", voxel_spacing_a=VOXEL, dtype="int8")
    assert not (tmp_path / "c.zarr").exists()


def test_bin2_is_exact_for_blocks_and_edges() -> None:
    block = np.arange(3 * 4 * 5, dtype=np.float32).reshape(3, 4, 5)
    np.testing.assert_allclose(omezarr.bin2(block), reference_bin(block), rtol=1e-6)
    labels_ = np.array([[[0, 2], [1, 0]], [[0, 0], [0, 0]]], dtype=np.uint16)
    assert omezarr.bin2(labels_, "max").tolist() == [[[2]]]
    assert omezarr.bin2(labels_, "max").dtype == np.uint16


def test_pyramid_info_is_a_plain_record() -> None:
    info = PyramidInfo(
        path=Path("x.zarr"),
        shapes=((10, 20, 30),),
        scales=((5.0, 5.0, 5.0),),
        chunks=((10, 20, 30),),
        dtype="float32",
    )
    assert info.levels == 1 and info.dimensions(0) == "30,20,10"


# ── memory ──────────────────────────────────────────────────────────────────────────────────

BIG = (300, 1000, 1000)  # 1.2 GB of float32
PEAK_LIMIT_MIB = 450

# The child reports its own peak RSS. On Linux that is VmHWM: ru_maxrss would also count the
# parent's RSS at the time of the fork, which survives the exec.
MEASURE = textwrap.dedent(
    """
    import json, re, resource, sys, time
    from pathlib import Path
    from cryocurate.formats.omezarr import write_pyramid

    def peak_mib():
        status = Path("/proc/self/status")
        if status.exists():
            return int(re.search(r"VmHWM:\\s+(\\d+) kB", status.read_text()).group(1)) / 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # macOS: bytes

    start = time.perf_counter()
    info = write_pyramid(sys.argv[1], sys.argv[2], voxel_spacing_a=10.0, durable=False)
    print(json.dumps({
        "seconds": time.perf_counter() - start,
        "peak_mib": peak_mib(),
        "shapes": info.shapes,
    }))
    """
)


@pytest.mark.slow
def test_big_volume_is_written_in_bounded_memory(tmp_path: Path) -> None:
    mrc = tmp_path / "big.mrc"
    with mrcfile.new_mmap(mrc, shape=BIG, mrc_mode=2) as header:
        header.voxel_size = 10.0
    # Fill the data block slab by slab with noise (shifted per slab, so slabs differ).
    rng = np.random.default_rng(7)
    slab = rng.standard_normal((20, *BIG[1:]), dtype=np.float32)
    with open(mrc, "r+b") as fh:
        fh.seek(1024)
        for k in range(BIG[0] // 20):
            fh.write((slab + np.float32(k)).tobytes())
    del slab
    out = tmp_path / "big.zarr"
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, str(mrc), str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(result.stdout)
    print(f"\n1.2 GB tomogram: {report['seconds']:.1f} s, peak RSS {report['peak_mib']:.0f} MiB")
    assert report["shapes"] == [[300, 1000, 1000], [150, 500, 500], [75, 250, 250]]
    assert report["peak_mib"] < PEAK_LIMIT_MIB
    with mrcfile.mmap(mrc, mode="r") as source:
        np.testing.assert_array_equal(read_slice(out, 0, 299), source.data[299])
        expected = source.data[40:42, 600:602, 998:1000].mean()
    assert read_level(out, 1)[20, 300, 499] == pytest.approx(expected, rel=1e-5)
