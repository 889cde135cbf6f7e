"""Stored zips made as streams: read back by Python's zipfile and by Info-ZIP's unzip, which
check every CRC; Zip64 exercised for real (a member past 4 GiB, offsets past 4 GiB, more than
65,535 members), not by lowering a threshold."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import time
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from cryocurate.errors import ConflictError, InputError
from cryocurate.formats.stored_zip import Member, StoredZip

UNZIP = shutil.which("unzip")
needs_unzip = pytest.mark.skipif(UNZIP is None, reason="Info-ZIP unzip is not installed")


def build(contents: dict[str, bytes], mtime: float = 1_700_000_000.0) -> tuple[StoredZip, bytes]:
    archive = StoredZip([Member(name, len(data), mtime) for name, data in contents.items()])
    blocks = ([data[i : i + 7] for i in range(0, len(data), 7)] for data in contents.values())
    return archive, b"".join(archive.stream(blocks))


def unzip_test(path: Path, *members: str) -> str:
    assert UNZIP is not None
    done = subprocess.run([UNZIP, "-t", str(path), *members], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_every_member_reads_back_with_its_name_size_time_and_mode() -> None:
    contents = {
        "10000/TS_1/run_metadata.json": b'{"run_name": "TS_1"}',
        "10000/TS_1/Tomograms/a.mrc": os.urandom(300_001),
        "10000/Ångström/ü.ndjson": b'{"type": "point"}\n',
        "10000/empty": b"",
    }
    archive, data = build(contents)
    assert len(data) == archive.size == len(archive)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        assert [i.filename for i in zf.infolist()] == list(contents)
        for info in zf.infolist():
            assert zf.read(info) == contents[info.filename]
            assert info.compress_type == zipfile.ZIP_STORED
            assert info.date_time == time.localtime(1_700_000_000)[:6]
            assert info.external_attr >> 16 == 0o100644


@needs_unzip
def test_unzip_checks_the_crcs_and_restores_the_exact_time(tmp_path: Path) -> None:
    contents = {"a/b.bin": os.urandom(50_000), "a/ü.txt": b"x" * 10}
    _, data = build(contents, mtime=1_600_000_001.0)  # odd second: DOS time cannot hold it
    (tmp_path / "t.zip").write_bytes(data)
    assert "No errors detected" in unzip_test(tmp_path / "t.zip")
    subprocess.run([UNZIP, "-q", str(tmp_path / "t.zip"), "-d", str(tmp_path / "out")], check=True)
    for name, body in contents.items():
        extracted = tmp_path / "out" / name
        assert extracted.read_bytes() == body
        assert extracted.stat().st_mtime == 1_600_000_001  # from the extended timestamp


def test_the_same_members_give_the_same_bytes() -> None:
    contents = {"x": b"1" * 1000, "y/z": b"2"}
    assert build(contents)[1] == build(contents)[1]


class SparseSink:
    """A file written without storing runs of zeros: a 4 GiB archive of a sparse member takes
    no disk space and little time."""

    def __init__(self, path: Path) -> None:
        self.f = path.open("wb")
        self.zeros = b""

    def write(self, block: bytes) -> None:
        if len(self.zeros) != len(block):
            self.zeros = bytes(len(block))
        if block == self.zeros:
            self.f.seek(len(block), os.SEEK_CUR)
        else:
            self.f.write(block)

    def close(self) -> None:
        self.f.truncate()
        self.f.close()


def big_member(size: int, block: int = 8 << 20) -> Iterator[bytes]:
    """``MRC`` then zeros, made in memory: a 4 GiB member without a 4 GiB file."""
    yield b"MRC"
    zeros = bytes(block)
    left = size - 3
    while left:
        n = min(block, left)
        yield zeros if n == block else bytes(n)
        left -= n


@pytest.mark.slow
@needs_unzip
def test_zip64_a_member_past_4_gib_and_a_member_after_it(tmp_path: Path) -> None:
    size = (4 << 30) + 3
    small = b"after the big one"
    archive = StoredZip([Member("d/big.mrc", size, 1_700_000_000), Member("d/small", 17, 0.0)])
    out = tmp_path / "t.zip"
    sink = SparseSink(out)
    for block in archive.stream([big_member(size), [small]]):
        sink.write(block)
    sink.close()
    crc = 0
    for block in big_member(size):
        crc = zlib.crc32(block, crc)
    assert out.stat().st_size == archive.size > 4 << 30
    with zipfile.ZipFile(out) as zf:
        big_info, small_info = zf.infolist()
        assert (big_info.file_size, big_info.CRC) == (size, crc)
        assert small_info.header_offset > 4 << 30
        assert zf.read("d/small") == small
        with zf.open("d/big.mrc") as member:
            assert member.read(3) == b"MRC"
    # unzip finds the second member through the Zip64 offset and checks its CRC (a CRC check
    # of the 4 GiB member would take unzip 15 s)
    assert "testing: d/small" in unzip_test(out, "d/small")
    listing = subprocess.run([UNZIP, "-Z", str(out)], capture_output=True, text=True, check=True)
    assert f"{size} " in listing.stdout


@pytest.mark.slow
@needs_unzip
def test_zip64_more_than_65535_members(tmp_path: Path) -> None:
    contents = {f"chunks/{i}": str(i).encode() for i in range(70_000)}
    archive, data = build(contents)
    assert len(data) == archive.size
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert len(zf.infolist()) == 70_000
        assert zf.read("chunks/69999") == b"69999"
    (tmp_path / "t.zip").write_bytes(data)
    unzip_test(tmp_path / "t.zip")


@pytest.mark.parametrize("blocks", [[b"abc"], [b"abcdef", b"gh"]])
def test_a_member_that_changed_size_stops_the_stream(blocks: list[bytes]) -> None:
    archive = StoredZip([Member("a.mrc", 5, 0.0)])
    with pytest.raises(ConflictError, match=r"a\.mrc.*bytes where 5 were listed.*try again"):
        b"".join(archive.stream([blocks]))


@pytest.mark.parametrize("name", ["", "/etc/passwd", "a/../../b", "a\\b", "a//b", "a/"])
def test_names_that_would_land_outside_the_folder_are_refused(name: str) -> None:
    with pytest.raises(InputError, match="relative path"):
        StoredZip([Member(name, 0, 0.0)])


def test_a_name_twice_is_refused() -> None:
    with pytest.raises(InputError, match="same name twice"):
        StoredZip([Member("a", 0, 0.0), Member("a", 0, 0.0)])
