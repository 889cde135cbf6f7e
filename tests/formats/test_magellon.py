"""Tests of the Magellon ``images/`` + ``metadata/`` layout (extract_mrc.py's output)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cryocurate.errors import FormatError, MissingFileError
from cryocurate.formats.magellon import (
    LEGACY_METADATA_FIELDS,
    METADATA_FIELDS,
    check_job_name,
    list_jobs,
    metadata_path,
    metadata_records,
    parse_image_name,
    read_job,
    read_metadata,
    to_uint8,
    write_job,
    write_metadata,
)

JOB = "P175_J66_5f0c1e2a3b4d5e6f7a8b9c0d"


def class_averages(n: int = 5, size: int = 48, seed: int = 0) -> np.ndarray:
    """Blobs in noise, float32, like a small 2D classification's averages."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size] - size / 2
    blobs = [np.exp(-(x**2 + y**2) / (2 * (3 + i) ** 2)) * (i + 1) for i in range(n)]
    return (np.stack(blobs) + rng.normal(0, 0.2, (n, size, size))).astype(np.float32)


def metadata(n: int = 5, legacy: bool = False) -> np.ndarray:
    fields = LEGACY_METADATA_FIELDS if legacy else METADATA_FIELDS
    values = np.arange(n * len(fields), dtype=np.float64).reshape(len(fields), n) / 7.0
    columns = dict(zip(fields, values, strict=True))
    columns["est_res"] = np.array([6.1, 7.5, np.inf, 19.2, 30.0][:n])  # empty class: inf
    return metadata_records(columns)


def test_write_then_read_a_job(tmp_path: Path) -> None:
    images, records = class_averages(), metadata()
    written = write_job(tmp_path, JOB, images, records)
    assert [p.name for p in written] == [f"{JOB}_{i}.jpg" for i in range(5)] + [f"{JOB}.npy"]
    for i, path in enumerate(written[:-1]):
        assert path.read_bytes()[:3] == b"\xff\xd8\xff"  # a real JPEG under .jpg
        with Image.open(path) as img:
            assert (img.format, img.mode, img.size) == ("JPEG", "L", (48, 48))
        # CryoSift's parsing of the file name (dataset.py) finds the class and key
        assert int(path.name.strip(".jpg").split("_")[-1]) == i
        assert path.name.split(".")[0] == f"{JOB}_{i}"

    job = read_job(tmp_path, JOB)
    assert job.images.images.dtype == np.float32 and job.images.images.shape == (5, 48, 48)
    expected = np.stack([to_uint8(im) for im in images]).astype(np.float32)
    assert np.abs(job.images.images - expected).max() <= 1.0  # JPEG quality 100
    assert job.metadata.dtype.names == METADATA_FIELDS
    assert all(job.metadata.dtype[name] == np.float64 for name in METADATA_FIELDS)
    for name in METADATA_FIELDS:
        np.testing.assert_array_equal(job.metadata[name], records[name])
    raw = np.load(metadata_path(tmp_path, JOB), allow_pickle=False)  # as CryoSift loads it
    assert raw.dtype.names == METADATA_FIELDS and len(raw) == 5


def test_to_uint8_rounds_and_keeps_flat_images_black() -> None:
    image = np.array([[0.0, 1.0], [0.5, 0.999]])
    assert to_uint8(image).tolist() == [[0, 255], [128, 255]]  # uint8(x*255) gave 127, 254
    assert to_uint8(np.full((3, 3), 2.5)).tolist() == [[0] * 3] * 3
    with pytest.raises(ValueError):
        to_uint8(np.array([[np.nan, 1.0]]))


def test_listing_ignores_strays_and_reports_empty_jobs(tmp_path: Path) -> None:
    write_job(tmp_path, JOB, class_averages(3), metadata(3))
    write_job(tmp_path, "P1_J2_u", class_averages(2), metadata(2))
    (tmp_path / "images" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (tmp_path / "images" / "notes.txt").write_text("x")
    (tmp_path / "images" / "P1_J9_u").mkdir()  # a failed extraction
    (tmp_path / "images" / JOB / ".DS_Store").write_bytes(b"x")
    (tmp_path / "images" / JOB / "Thumbs.db").write_bytes(b"x")
    write_metadata(metadata_path(tmp_path, "P3_J1_u"), metadata(2))
    listing = list_jobs(tmp_path)
    assert listing.jobs == ("P175_J66_5f0c1e2a3b4d5e6f7a8b9c0d", "P1_J2_u")
    assert listing.empty == ("P1_J9_u",)
    assert listing.ignored == (".DS_Store", "notes.txt")
    assert listing.metadata_only == ("P3_J1_u",)
    job = read_job(tmp_path, JOB)
    assert job.images.ignored == (".DS_Store", "Thumbs.db")
    with pytest.raises(FormatError, match="no class images"):
        read_job(tmp_path, "P1_J9_u")
    with pytest.raises(MissingFileError):
        list_jobs(tmp_path / "nowhere")


def test_mismatched_counts_refused_in_one_line(tmp_path: Path) -> None:
    write_job(tmp_path, JOB, class_averages(5), metadata(5))
    mpath = metadata_path(tmp_path, JOB)
    write_metadata(mpath, metadata(4))
    with pytest.raises(FormatError) as err:
        read_job(tmp_path, JOB)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(mpath))
    assert "4 metadata records for 5 class images" in message


def test_not_a_metadata_file_refused_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "metadata" / "J.npy"
    bad.parent.mkdir()
    bad.write_bytes(b"SQLite format 3\0" + b"\0" * 100)
    with pytest.raises(FormatError) as err:
        read_metadata(bad)
    assert "\n" not in str(err.value) and str(bad) in str(err.value)
    np.save(bad, np.zeros(3, dtype=[("est_res", "f8"), ("pixel_size", "f8")]))
    with pytest.raises(FormatError, match="not Magellon metadata"):
        read_metadata(bad)


def test_legacy_metadata_and_other_image_formats(tmp_path: Path) -> None:
    folder = tmp_path / "images" / "P1_J2_u"
    folder.mkdir(parents=True)
    pixels = np.arange(64, dtype=np.uint8).reshape(8, 8)
    Image.fromarray(pixels).save(folder / "P1_J2_u_0.png")
    Image.fromarray(pixels[::-1].copy()).save(folder / "P1_J2_u_1.TIF")
    Image.fromarray(np.stack([pixels] * 3, axis=-1)).save(folder / "P1_J2_u_2.jpeg", quality=100)
    write_metadata(metadata_path(tmp_path, "P1_J2_u"), metadata(3, legacy=True))
    job = read_job(tmp_path, "P1_J2_u")
    np.testing.assert_array_equal(job.images.images[0], pixels)  # lossless, values as stored
    np.testing.assert_array_equal(job.images.images[1], pixels[::-1])
    assert np.abs(job.images.images[2] - pixels).max() <= 2  # RGB JPEG → luma
    assert job.metadata.dtype.names == LEGACY_METADATA_FIELDS


def test_gaps_duplicates_and_sizes_refused(tmp_path: Path) -> None:
    write_job(tmp_path, JOB, class_averages(3), metadata(3))
    folder = tmp_path / "images" / JOB
    (folder / f"{JOB}_1.jpg").rename(folder / f"{JOB}_7.jpg")
    with pytest.raises(FormatError, match="gaps: no image for 1, 3, 4, 5, 6"):
        read_job(tmp_path, JOB)
    (folder / f"{JOB}_7.jpg").rename(folder / f"{JOB}_1.jpg")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(folder / f"{JOB}_1.png")
    with pytest.raises(FormatError, match="several files for one class"):
        read_job(tmp_path, JOB)
    (folder / f"{JOB}_1.jpg").unlink()
    with pytest.raises(FormatError, match="different sizes"):
        read_job(tmp_path, JOB)


def test_rewrite_removes_stale_class_images(tmp_path: Path) -> None:
    write_job(tmp_path, JOB, class_averages(5), metadata(5))
    folder = tmp_path / "images" / JOB
    (folder / "keep.txt").write_text("not ours")
    write_job(tmp_path, JOB, class_averages(3), metadata(3))
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [f"{JOB}_{i}.jpg" for i in range(3)] + ["keep.txt"]
    )
    assert len(read_job(tmp_path, JOB).metadata) == 3
    assert not [p for p in tmp_path.rglob(".tmp-*")]


def test_names() -> None:
    assert parse_image_name(f"{JOB}_12.jpg", JOB) == 12
    assert parse_image_name(f"{JOB}_3.JPEG", JOB) == 3
    assert parse_image_name(f"{JOB}_3.gif", JOB) is None
    assert parse_image_name(f"{JOB}_x.jpg", JOB) is None
    assert parse_image_name("P9_J1_u_3.jpg", JOB) is None
    check_job_name(JOB)
    for bad in ("", "a/b", "job.1", "j12_x", "p3_J1", ".hidden"):
        with pytest.raises(ValueError):
            check_job_name(bad)
    with pytest.raises(ValueError, match="records"):
        write_job(Path("/nonexistent"), JOB, class_averages(2), metadata(3))
    with pytest.raises(ValueError):
        metadata_records({"est_res": [1.0], "class_dist": [1.0]})
