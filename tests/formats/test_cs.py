"""Tests of the ``.cs`` reader against cryosparc-tools, the reference implementation.

Datasets with the fields of a real ``particles.cs`` after 2D classification are written with
cryosparc-tools in both encodings (numpy, CSDAT with and without LZ4), and :func:`read_cs`
must return exactly the columns cryosparc-tools loads. Damaged files are made by hand
(truncated, overwritten, garbage) and must raise our errors, naming the file.
"""

from __future__ import annotations

import json
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import mrcfile
import numpy as np
import pytest
from cryosparc.dataset import CSDAT_FORMAT, NUMPY_FORMAT, Dataset

from cryocurate.errors import CryocurateError, FormatError, MissingFileError
from cryocurate.formats import cs
from cryocurate.formats.cs import CsField, CsHeader, inspect_cs, read_cs, write_cs_numpy

PARTICLE_FIELDS = [
    ("blob/path", "O"),
    ("blob/idx", "<u4"),
    ("blob/shape", "<u4", (2,)),
    ("blob/psize_A", "<f4"),
    ("blob/sign", "<f4"),
    ("blob/import_sig", "<u8"),
    ("ctf/type", "O"),
    ("ctf/exp_group_id", "<u4"),
    ("ctf/accel_kv", "<f4"),
    ("ctf/cs_mm", "<f4"),
    ("ctf/amp_contrast", "<f4"),
    ("ctf/df1_A", "<f4"),
    ("ctf/df2_A", "<f4"),
    ("ctf/df_angle_rad", "<f4"),
    ("ctf/phase_shift_rad", "<f4"),
    ("ctf/scale", "<f4"),
    ("ctf/shift_A", "<f4", (2,)),
    ("ctf/tetra_A", "<f4", (4,)),
    ("ctf/anisomag", "<f4", (4,)),
    ("ctf/bfactor", "<f4"),
    ("alignments2D/split", "<u4"),
    ("alignments2D/shift", "<f4", (2,)),
    ("alignments2D/pose", "<f4"),
    ("alignments2D/psize_A", "<f4"),
    ("alignments2D/class_posterior", "<f4"),
    ("alignments2D/class", "<u4"),
    ("alignments2D/class_ess", "<f4"),
]
STRING_FIELDS = ("blob/path", "ctf/type")
ENCODINGS = ("numpy", "csdat-lz4", "csdat-raw")


def make_particles(rows: int, seed: int = 0) -> Dataset:
    """A particles dataset as 2D classification leaves it, with varied strings."""
    rng = np.random.default_rng(seed)
    dset = Dataset.allocate(rows, PARTICLE_FIELDS)
    if rows == 0:
        return dset
    micrographs = [
        f"J3/extract/{i:04d}_micrograph_patch_aligned_doseweighted.mrc" for i in range(37)
    ]
    micrographs += [">J1/imported/ünïcode_stack.mrcs", ""]  # exported prefix, non-ASCII, empty
    dset["blob/path"] = [micrographs[i] for i in rng.integers(0, len(micrographs), rows)]
    dset["blob/idx"] = rng.integers(0, 400, rows, dtype=np.uint32)
    dset["blob/shape"] = np.full((rows, 2), 128, dtype=np.uint32)
    dset["blob/psize_A"] = 1.1
    dset["blob/sign"] = -1.0
    dset["blob/import_sig"] = rng.integers(0, 2**63, rows, dtype=np.uint64)
    dset["ctf/type"] = ["spline" if i % 3 else "" for i in range(rows)]
    for name, *_ in PARTICLE_FIELDS:
        if name.startswith(("ctf/", "alignments2D/")) and name != "ctf/type":
            column = dset[name]
            column[...] = rng.random(column.shape, dtype=np.float32) * 100
    dset["alignments2D/class"] = rng.integers(0, 50, rows, dtype=np.uint32)
    dset["alignments2D/split"] = rng.integers(0, 2, rows, dtype=np.uint32)
    return dset


def save(dset: Dataset, path: Path, encoding: str) -> Path:
    """Save ``dset`` with cryosparc-tools in one of the three encodings."""
    if encoding == "numpy":
        dset.save(path, format=NUMPY_FORMAT)
    elif encoding == "csdat-lz4":
        dset.save(path, format=CSDAT_FORMAT)
    else:  # Dataset.save always compresses; its stream() can leave columns raw
        path.write_bytes(b"".join(dset.stream(compression=None)))
    return path


def assert_columns_equal(got: np.ndarray, want: np.ndarray, name: str) -> None:
    assert got.shape == want.shape, name
    if got.dtype == object:
        assert all(isinstance(value, str) for value in got.reshape(-1)), name
        assert got.tolist() == [str(value) for value in want.tolist()], name
    else:
        assert got.dtype == want.dtype, name
        np.testing.assert_array_equal(got, want, err_msg=name)


def assert_error(
    error: type[CryocurateError], path: Path, call: Callable[[], object], match: str
) -> CryocurateError:
    """``call()`` raises ``error`` (exactly our type), naming ``path`` and matching ``match``."""
    with pytest.raises(error, match=match) as info:
        call()
    assert str(path) in str(info.value)
    assert info.value.where == str(path)
    assert info.value.hint
    return info.value


def csdat_blocks(raw: bytes) -> tuple[dict, dict[str, tuple[int, int]]]:
    """The JSON header of a CSDAT file and ``{field: (payload offset, byte count)}``."""
    header_size = int.from_bytes(raw[6:10], "little")
    header = json.loads(raw[10 : 10 + header_size])
    blocks = {}
    pos = 10 + header_size
    for entry in header["dtype"] if header["length"] else []:
        count = int.from_bytes(raw[pos : pos + 4], "little")
        blocks[entry[0]] = (pos + 4, count)
        pos += 4 + count
    return header, blocks


def npy_bytes(header_text: str, data: bytes = b"", version: tuple[int, int] = (1, 0)) -> bytes:
    """A hand-made ``.npy`` file, for headers numpy.save would never write."""
    text = header_text.encode("latin1" if version < (3, 0) else "utf8") + b"\n"
    size = len(text).to_bytes(2 if version == (1, 0) else 4, "little")
    return cs.NUMPY_MAGIC + bytes(version) + size + text + data


# --------------------------------------------------------------------------- faithful reads


@pytest.fixture(scope="module")
def particles() -> Dataset:
    return make_particles(1000)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_all_columns_match_cryosparc_tools(particles: Dataset, tmp_path: Path, encoding: str):
    path = save(particles, tmp_path / "J5_020_particles.cs", encoding)
    reference = Dataset.load(path)
    got = read_cs(path, particles.fields())
    assert list(got) == particles.fields()
    for name in particles.fields():
        assert_columns_equal(got[name], reference[name], name)
        assert_columns_equal(got[name], particles[name], name)
    assert got["blob/shape"].shape == (1000, 2)
    assert got["ctf/tetra_A"].shape == (1000, 4)
    assert got["alignments2D/class"].dtype == np.uint32
    assert "" in got["blob/path"].tolist() and ">J1/imported/ünïcode_stack.mrcs" in got["blob/path"]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_inspect_matches_cryosparc_tools(particles: Dataset, tmp_path: Path, encoding: str):
    path = save(particles, tmp_path / "particles.cs", encoding)
    header = inspect_cs(path)
    assert isinstance(header, CsHeader)
    assert header.path == path
    assert header.encoding == ("numpy" if encoding == "numpy" else "csdat")
    assert header.length == 1000 == Dataset.inspect(path)["length"]
    assert list(header.fields) == particles.fields()
    assert header.fields["blob/shape"] == CsField("blob/shape", np.dtype("<u4"), (2,))
    assert header.fields["alignments2D/pose"] == CsField("alignments2D/pose", np.dtype("<f4"), ())
    path_dtype = header.fields["blob/path"].dtype
    if encoding == "numpy":
        assert path_dtype.kind == "S" and path_dtype.itemsize >= 40
    else:
        assert path_dtype == np.dtype(object)
    assert header.fields["blob/path"].is_string and not header.fields["uid"].is_string
    for entry in Dataset.inspect(path)["dtype"]:
        field = header.fields[entry[0]]
        assert field.shape == tuple(entry[2] if len(entry) == 3 else ())
        if not field.is_string:
            assert field.dtype == np.dtype(entry[1])


def test_uncompressed_csdat_is_really_uncompressed(particles: Dataset, tmp_path: Path):
    raw = save(particles, tmp_path / "a.cs", "csdat-raw").read_bytes()
    packed = save(particles, tmp_path / "b.cs", "csdat-lz4").read_bytes()
    assert csdat_blocks(raw)[0]["compressed_fields"] == []
    assert "alignments2D/class" in csdat_blocks(packed)[0]["compressed_fields"]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_subset_and_optional_fields(particles: Dataset, tmp_path: Path, encoding: str):
    path = save(particles, tmp_path / "particles.cs", encoding)
    got = read_cs(
        path,
        ["alignments2D/class", "blob/path"],
        optional=["alignments2D/class_ess", "location/micrograph_uid", "blob/path"],
    )
    assert list(got) == ["alignments2D/class", "blob/path", "alignments2D/class_ess"]
    assert_columns_equal(got["alignments2D/class_ess"], particles["alignments2D/class_ess"], "ess")
    for array in got.values():
        assert isinstance(array, np.ndarray)
        assert array.flags.c_contiguous and array.flags.writeable
        assert len(array) == 1000
    assert read_cs(path, []) == {}
    assert read_cs(path, [], optional=["nope"]) == {}


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_zero_rows(tmp_path: Path, encoding: str):
    path = save(make_particles(0), tmp_path / "empty.cs", encoding)
    assert inspect_cs(path).length == 0
    got = read_cs(path, ["uid", "blob/path", "blob/shape", "alignments2D/class"])
    assert got["uid"].shape == (0,) and got["uid"].dtype == np.uint64
    assert got["blob/path"].shape == (0,) and got["blob/path"].dtype == object
    assert got["blob/shape"].shape == (0, 2) and got["blob/shape"].dtype == np.uint32
    assert got["alignments2D/class"].shape == (0,)


def test_write_cs_numpy_reads_back(tmp_path: Path):
    dtype = np.dtype(
        [("uid", "<u8"), ("blob/path", "S20"), ("blob/shape", "<u4", (2,)), ("blob/psize_A", "<f4")]
    )
    rows = np.zeros(25, dtype)
    rows["uid"] = np.arange(25) + 10**15
    rows["blob/path"] = [f"J9/class_{i}.mrc".encode() for i in range(25)]
    rows["blob/shape"] = [[i, 2 * i] for i in range(25)]
    rows["blob/psize_A"] = np.linspace(1, 2, 25)
    path = tmp_path / "written.cs"
    write_cs_numpy(path, dtype, (rows[i : i + 10] for i in range(0, 25, 10)), 25, durable=False)
    got = read_cs(path, ["uid", "blob/path", "blob/shape", "blob/psize_A"])
    np.testing.assert_array_equal(got["uid"], rows["uid"])
    assert got["blob/path"].tolist() == [f"J9/class_{i}.mrc" for i in range(25)]
    np.testing.assert_array_equal(got["blob/shape"], rows["blob/shape"])
    np.testing.assert_array_equal(got["blob/psize_A"], rows["blob/psize_A"])
    assert Dataset.load(path)["blob/path"].tolist() == got["blob/path"].tolist()


def test_numpy_save_reads_back(tmp_path: Path):
    dtype = np.dtype([("uid", "<u8"), ("name", "<U6"), ("big", ">f8"), ("pair", "<i2", (2,))])
    rows = np.array([(1, "αβγ", 1.5, (1, -2)), (2, "", -3.25, (3, 4))], dtype)
    path = tmp_path / "saved.cs"
    with path.open("wb") as fh:
        np.save(fh, rows)
    got = read_cs(path, ["name", "big", "pair"])
    assert got["name"].tolist() == ["αβγ", ""] and type(got["name"][0]) is str
    assert got["big"].dtype == np.dtype("=f8") and got["big"].tolist() == [1.5, -3.25]
    np.testing.assert_array_equal(got["pair"], [[1, -2], [3, 4]])


def test_header_over_numpy_default_limit(tmp_path: Path):
    dtype = np.dtype(
        [(f"alignments_class_{i}/some_rather_long_field_name", "<f4") for i in range(300)]
    )
    rows = np.zeros(3, dtype)
    rows[dtype.names[-1]] = [1, 2, 3]
    path = tmp_path / "wide.cs"
    with path.open("wb") as fh:
        np.save(fh, rows)
    header_size = int.from_bytes(path.read_bytes()[8:10], "little")
    assert header_size > 10000
    with pytest.raises(ValueError):  # numpy's own default refuses it
        np.load(path)
    assert len(inspect_cs(path).fields) == 300
    assert read_cs(path, [dtype.names[-1]])[dtype.names[-1]].tolist() == [1, 2, 3]


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_npy_header_versions(tmp_path: Path, version: tuple[int, int]):
    name = "ctf/Δ_defocus" if version == (3, 0) else "ctf/défocus"  # Δ is not latin-1
    rows = np.array([(7, 1.5), (8, 2.5)], dtype=[("uid", "<u8"), (name, "<f4")])
    header = np.lib.format.header_data_from_array_1_0(rows)
    text = repr(header)
    path = tmp_path / "v.cs"
    path.write_bytes(npy_bytes(text, rows.tobytes(), version))
    if version == (3, 0):  # numpy.save picks 3.0 by itself for such names
        with (tmp_path / "auto.npy").open("wb") as fh, pytest.warns(UserWarning, match="3.0"):
            np.save(fh, rows)
        assert (tmp_path / "auto.npy").read_bytes()[6:8] == b"\x03\x00"
        assert read_cs(tmp_path / "auto.npy", [name])[name].tolist() == [1.5, 2.5]
    got = read_cs(path, ["uid", name])
    assert got["uid"].tolist() == [7, 8] and got[name].tolist() == [1.5, 2.5]


def test_python2_long_shape(tmp_path: Path):
    rows = np.array([(1,), (2,), (3,)], dtype=[("uid", "<u8")])
    text = "{'descr': [('uid', '<u8')], 'fortran_order': False, 'shape': (3L,), }"
    path = tmp_path / "py2.cs"
    path.write_bytes(npy_bytes(text, rows.tobytes()))
    assert read_cs(path, ["uid"])["uid"].tolist() == [1, 2, 3]


@pytest.mark.parametrize("rows_per_chunk", [1, 7, 64, 1000])
def test_numpy_chunk_boundaries(
    particles: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows_per_chunk: int
):
    path = save(particles, tmp_path / "particles.cs", "numpy")
    itemsize = np.load(path, mmap_mode="r").dtype.itemsize
    monkeypatch.setattr(cs, "_CHUNK_BYTES", rows_per_chunk * itemsize + itemsize // 2)
    names = ["blob/path", "blob/shape", "alignments2D/class", "alignments2D/shift", "ctf/type"]
    got = read_cs(path, names)
    for name in names:
        assert_columns_equal(got[name], particles[name], name)


# --------------------------------------------------------------------------- errors


def test_missing_and_unreadable_files(tmp_path: Path):
    missing = tmp_path / "J5_020_particles.cs"
    assert_error(MissingFileError, missing, lambda: read_cs(missing, ["uid"]), "does not exist")
    assert_error(MissingFileError, missing, lambda: inspect_cs(missing), "does not exist")
    assert_error(MissingFileError, tmp_path, lambda: read_cs(tmp_path, ["uid"]), "folder")


def test_not_a_dataset(tmp_path: Path):
    text = tmp_path / "notes.cs"
    text.write_text("uid,blob/path\n1,a.mrc\n")
    empty = tmp_path / "empty.cs"
    empty.write_bytes(b"")
    mrc = tmp_path / "J5_020_class_averages.mrc"
    with mrcfile.new(mrc) as handle:
        handle.set_data(np.zeros((2, 4, 4), np.float32))
    plain = tmp_path / "plain.npy"
    np.save(plain, np.arange(10, dtype=np.float32))
    square = tmp_path / "square.npy"
    np.save(square, np.zeros((3, 3), dtype=[("uid", "<u8")]))
    pickled = tmp_path / "pickled.npy"
    np.save(pickled, np.zeros(3, dtype=[("uid", "<u8"), ("obj", "O")]), allow_pickle=True)
    fortran = tmp_path / "fortran.npy"
    fortran.write_bytes(
        npy_bytes("{'descr': [('uid', '<u8')], 'fortran_order': True, 'shape': (1,), }", bytes(8))
    )
    garbage_header = tmp_path / "garbage_header.npy"
    garbage_header.write_bytes(npy_bytes("{'descr': [('uid', '<u8')], import os", bytes(8)))
    bad_version = tmp_path / "v9.npy"
    bad_version.write_bytes(cs.NUMPY_MAGIC + b"\x09\x00" + bytes(100))
    for path in (text, empty, mrc, plain, square, pickled, fortran, garbage_header, bad_version):
        assert_error(FormatError, path, lambda p=path: read_cs(p, ["uid"]), "not a cryoSPARC")
        assert_error(FormatError, path, lambda p=path: inspect_cs(p), "not a cryoSPARC")


def test_missing_required_field(particles: Dataset, tmp_path: Path):
    for encoding in ENCODINGS:
        path = save(particles, tmp_path / f"passthrough_{encoding}.cs", encoding)
        error = assert_error(
            FormatError,
            path,
            lambda p=path: read_cs(p, ["blob/path", "alignments2D/clas"], optional=["x"]),
            "alignments2D/clas",
        )
        assert "28 fields" in error.message and "uid, blob/path" in error.message
        assert "more)" in error.message  # the list is kept short
        assert error.hint == "did you mean 'alignments2D/class'?"


def test_truncated_numpy(particles: Dataset, tmp_path: Path):
    whole = save(particles, tmp_path / "whole.cs", "numpy").read_bytes()
    path = tmp_path / "cut.cs"
    for keep in (len(whole) - 1, len(whole) - 300, 200, 60, 9, 7):
        path.write_bytes(whole[:keep])
        assert_error(FormatError, path, lambda: read_cs(path, ["uid"]), "truncated")
        assert_error(FormatError, path, lambda: inspect_cs(path), "truncated")
    path.write_bytes(whole[: len(whole) - 300])
    error = assert_error(FormatError, path, lambda: read_cs(path, []), "truncated")
    data_size = 1000 * np.load(tmp_path / "whole.cs", mmap_mode="r").dtype.itemsize
    assert f"needs {data_size} bytes" in error.message
    assert f"only {data_size - 300} are there" in error.message


@pytest.mark.parametrize("encoding", ["csdat-lz4", "csdat-raw"])
def test_truncated_csdat_anywhere(tmp_path: Path, encoding: str):
    whole = save(make_particles(5), tmp_path / "whole.cs", encoding).read_bytes()
    _, blocks = csdat_blocks(whole)
    data_start = min(offset for offset, _ in blocks.values()) - 4
    heap_start = max(offset + count for offset, count in blocks.values())
    path = tmp_path / "cut.cs"
    names = [entry[0] for entry in PARTICLE_FIELDS]
    # every cut from the first column block on; inside the JSON header, a sample is enough
    cuts = [*range(12), *range(12, data_start, 29), *range(data_start, len(whole))]
    for keep in cuts:
        path.write_bytes(whole[:keep])
        with pytest.raises(FormatError) as info:
            read_cs(path, names)
        assert str(path) in str(info.value)
        if keep < heap_start:  # anything but the heap is found even when only uid is read
            with pytest.raises(FormatError, match=r"truncated|not a cryoSPARC|JSON"):
                read_cs(path, ["uid"])


def test_corrupt_lz4_block(particles: Dataset, tmp_path: Path):
    raw = bytearray(save(particles, tmp_path / "ok.cs", "csdat-lz4").read_bytes())
    offset, count = csdat_blocks(bytes(raw))[1]["alignments2D/class"]
    raw[offset : offset + count] = b"\xff" * count
    path = tmp_path / "corrupt.cs"
    path.write_bytes(raw)
    assert_error(
        FormatError, path, lambda: read_cs(path, ["alignments2D/class"]), "LZ4.*alignments2D/class"
    )
    assert read_cs(path, ["blob/idx"])["blob/idx"].tolist() == particles["blob/idx"].tolist()


def test_wrong_block_size_and_heap_offset(particles: Dataset, tmp_path: Path):
    raw = bytearray(save(particles, tmp_path / "ok.cs", "csdat-raw").read_bytes())
    offset, count = csdat_blocks(bytes(raw))[1]["blob/path"]
    path = tmp_path / "bad.cs"
    bad_offset = raw.copy()
    bad_offset[offset : offset + 8] = (10**9).to_bytes(8, "little")
    path.write_bytes(bad_offset)
    assert_error(FormatError, path, lambda: read_cs(path, ["blob/path"]), "heap offset 1000000000")
    offset, count = csdat_blocks(bytes(raw))[1]["uid"]
    bad_size = raw.copy()
    bad_size[offset - 4 : offset] = (count - 8).to_bytes(4, "little")
    path.write_bytes(bad_size)
    assert_error(FormatError, path, lambda: read_cs(path, ["uid"]), "'uid' holds 7992 bytes")


def test_bad_csdat_json(particles: Dataset, tmp_path: Path):
    raw = save(particles, tmp_path / "ok.cs", "csdat-lz4").read_bytes()
    size = int.from_bytes(raw[6:10], "little")
    header = json.loads(raw[10 : 10 + size])
    path = tmp_path / "bad.cs"
    replacements = {
        "not valid JSON": (b'{"length": 1000, "dtype": [' + b"x" * size)[:size],
        "not a JSON object": b"[]",
        '"length"': json.dumps({**header, "length": -1}).encode(),
        "unknown dtype": json.dumps({**header, "dtype": [["uid", "<q9"]]}).encode(),
        "unknown compression": json.dumps({**header, "compression": "zip"}).encode(),
        "Python objects|never holds": json.dumps({**header, "dtype": [["uid", "<M8"]]}).encode(),
    }
    for match, replacement in replacements.items():
        path.write_bytes(raw[:10] + replacement.ljust(size) + raw[10 + size :])
        assert_error(FormatError, path, lambda: read_cs(path, ["uid"]), match)
        assert_error(FormatError, path, lambda: inspect_cs(path), match)


def test_header_that_lies_about_sizes(particles: Dataset, tmp_path: Path):
    raw = save(particles, tmp_path / "ok.cs", "csdat-lz4").read_bytes()
    size = int.from_bytes(raw[6:10], "little")
    header = json.loads(raw[10 : 10 + size])
    path = tmp_path / "lying.cs"

    def rewrite(**changes: object) -> None:
        text = json.dumps({**header, **changes}).encode()
        path.write_bytes(raw[:6] + len(text).to_bytes(4, "little") + text + raw[10 + size :])

    rewrite(length=1001)  # each LZ4 block expands to 1000 rows' worth, not 1001
    assert_error(FormatError, path, lambda: read_cs(path, ["alignments2D/class"]), "expands to")
    assert_error(FormatError, path, lambda: read_cs(path, ["uid"]), "'uid' holds 8000 bytes")
    rewrite(length=999)
    assert_error(FormatError, path, lambda: read_cs(path, ["alignments2D/class"]), "LZ4")
    rewrite(length=10**12)  # refused before anything that size is allocated
    assert_error(FormatError, path, lambda: read_cs(path, ["alignments2D/class"]), "cannot expand")
    path.write_bytes(raw[:6] + b"\x00\x00\x00\x10" + raw[10:])  # 256 MiB
    assert_error(FormatError, path, lambda: inspect_cs(path), "truncated")
    npy = save(particles, tmp_path / "ok_numpy.cs", "numpy").read_bytes()
    path.write_bytes(npy[:6] + b"\x02\x00\xff\xff\xff\x30" + npy[10:])
    assert_error(FormatError, path, lambda: inspect_cs(path), "truncated")


def test_non_utf8_strings(tmp_path: Path):
    rows = np.array([(1, b"ok"), (2, b"caf\xe9")], dtype=[("uid", "<u8"), ("blob/path", "S8")])
    path = tmp_path / "latin1.cs"
    with path.open("wb") as fh:
        np.save(fh, rows)
    assert_error(FormatError, path, lambda: read_cs(path, ["blob/path"]), "not UTF-8")
    assert read_cs(path, ["uid"])["uid"].tolist() == [1, 2]


def test_field_names_must_be_a_list(tmp_path: Path):
    with pytest.raises(TypeError):
        read_cs(tmp_path / "x.cs", "uid")


# --------------------------------------------------------------------------- memory


def test_reading_two_columns_of_a_big_file_stays_small(tmp_path: Path):
    """A million 256-byte rows: reading two columns must not cost anything like the file."""
    dtype = np.dtype(
        [
            ("uid", "<u8"),
            ("blob/path", "S64"),
            ("blob/idx", "<u4"),
            ("blob/shape", "<u4", (2,)),
            ("ctf/params", "<f4", (32,)),
            ("alignments2D/class", "<u4"),
            ("alignments2D/class_posterior", "<f4"),
            ("alignments2D/shift", "<f4", (2,)),
        ]
    )
    dtype = np.dtype(
        {"names": dtype.names, "formats": [dtype[n] for n in dtype.names], "itemsize": 256}
    )
    rows, chunk = 1_000_000, 100_000

    def chunks():
        for start in range(0, rows, chunk):
            block = np.zeros(chunk, dtype)
            index = np.arange(start, start + chunk)
            block["alignments2D/class"] = index % 50
            block["alignments2D/class_posterior"] = (index % 1000) / 1000
            yield block

    path = tmp_path / "J9_020_particles.cs"
    write_cs_numpy(path, dtype, chunks(), rows, durable=False)
    size = path.stat().st_size
    assert size > 200 * 2**20

    tracemalloc.start()
    started = time.perf_counter()
    try:
        got = read_cs(path, ["alignments2D/class", "alignments2D/class_posterior"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    elapsed = time.perf_counter() - started
    assert peak < size / 4, f"peak {peak / 2**20:.0f} MiB for a {size / 2**20:.0f} MiB file"
    assert got["alignments2D/class"].shape == (rows,)
    assert got["alignments2D/class"][-1] == (rows - 1) % 50
    assert np.bincount(got["alignments2D/class"]).tolist() == [rows // 50] * 50
    assert got["alignments2D/class_posterior"][1234] == np.float32(0.234)
    assert elapsed < 10
