"""MRC stacks, STAR loops and PNG previews: the files extraction reads and writes."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest
from PIL import Image

from cryocurate.errors import FormatError, MissingFileError
from cryocurate.formats.mrc import read_stack, write_stack
from cryocurate.formats.png import to_uint8, write_png
from cryocurate.formats.star import find_loop, read_blocks, read_loop_columns


def test_stack_round_trip_keeps_values_and_pixel_size(tmp_path):
    data = np.random.default_rng(0).normal(size=(3, 16, 16)).astype(np.float32)
    write_stack(tmp_path / "s.mrcs", data, 1.23)
    stack = read_stack(tmp_path / "s.mrcs")
    np.testing.assert_array_equal(stack.data, data)
    assert stack.voxel_size_a == pytest.approx(1.23, rel=1e-6)
    with mrcfile.open(tmp_path / "s.mrcs") as m:
        assert m.is_image_stack()


def test_int16_stack_is_read_as_float32_unchanged(tmp_path):
    data = np.arange(2 * 8 * 8, dtype=np.int16).reshape(2, 8, 8)
    with mrcfile.new(tmp_path / "i.mrc") as m:
        m.set_data(data)
    stack = read_stack(tmp_path / "i.mrc")
    assert stack.data.dtype == np.float32
    np.testing.assert_array_equal(stack.data, data.astype(np.float32))


def test_mrc_without_map_id_is_accepted(tmp_path):
    write_stack(tmp_path / "m.mrc", np.ones((2, 8, 8), np.float32), 1.0)
    raw = bytearray((tmp_path / "m.mrc").read_bytes())
    raw[208:212] = b"\0\0\0\0"
    raw[212:216] = b"\0\0\0\0"
    (tmp_path / "m.mrc").write_bytes(bytes(raw))
    assert read_stack(tmp_path / "m.mrc").data.shape == (2, 8, 8)


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda p: p.write_bytes(b"short"), "shorter than the 1024-byte header"),
        (lambda p: p.write_bytes(p.read_bytes()[:-100]), "header promises"),
        (lambda p: p.write_bytes(b"x" * 4096), "MRC"),
    ],
)
def test_bad_mrc_files(tmp_path, damage, words):
    p = tmp_path / "bad.mrc"
    write_stack(p, np.ones((2, 8, 8), np.float32), 1.0)
    damage(p)
    with pytest.raises(FormatError, match=words) as info:
        read_stack(p)
    assert str(p) in str(info.value)


def test_missing_mrc(tmp_path):
    with pytest.raises(MissingFileError):
        read_stack(tmp_path / "none.mrc")


STAR = """
# version 30001

data_optics

loop_
_rlnOpticsGroup #1
_rlnImagePixelSize #2
1 1.5

data_particles

loop_
_rlnImageName #1
_rlnClassNumber #2
_rlnMaxValueProbDistribution #3
000001@a.mrcs 2 0.5
000002@a.mrcs 1 0.25
000003@a.mrcs 2 0.125
"""


def test_streamed_loop_columns_across_chunks(tmp_path):
    p = tmp_path / "d.star"
    p.write_text(STAR)
    header = find_loop(p, ["particles"])
    assert header.columns == ["rlnImageName", "rlnClassNumber", "rlnMaxValueProbDistribution"]
    cols = read_loop_columns(p, ["particles"], ["rlnClassNumber"], chunk_rows=2)
    np.testing.assert_array_equal(cols["rlnClassNumber"], [2, 1, 2])
    with pytest.raises(FormatError, match="lacks column"):
        read_loop_columns(p, ["particles"], ["rlnNope"])
    with pytest.raises(FormatError, match="non-number"):
        read_loop_columns(p, ["particles"], ["rlnImageName"])


def test_nan_is_a_number_in_star_loops(tmp_path):
    p = tmp_path / "d.star"
    p.write_text("data_particles\n\nloop_\n_rlnA #1\n_rlnB #2\n1 nan\n2 0.5\n")
    cols = read_loop_columns(p, ["particles"], ["rlnB"])
    assert np.isnan(cols["rlnB"][0]) and cols["rlnB"][1] == 0.5


def test_relion30_single_block(tmp_path):
    p = tmp_path / "d.star"
    p.write_text("data_\n\nloop_\n_rlnClassNumber #1\n3\n1\n")
    cols = read_loop_columns(p, ["particles", "images", ""], ["rlnClassNumber"])
    np.testing.assert_array_equal(cols["rlnClassNumber"], [3, 1])
    assert read_blocks(p)[""] is not None


def test_png_contrast_ignores_outliers(tmp_path):
    img = np.zeros((32, 32))
    img[:16] = 1.0
    img[0, 0] = 1e9
    px = to_uint8(img)
    assert px[1:16].min() == 255 and px[16:].max() == 0
    assert (to_uint8(np.ones((8, 8))) == 128).all()
    write_png(tmp_path / "p.png", px)
    with Image.open(tmp_path / "p.png") as im:
        assert im.mode == "L"
        np.testing.assert_array_equal(np.asarray(im), px)
