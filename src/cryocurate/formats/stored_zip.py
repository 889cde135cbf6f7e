"""Stored (uncompressed) zip archives written as a stream, their length known before byte one.

A download of a run is a zip of MRC files and Zarr chunks that do not compress, made while it
is sent. Three things decide how fast that goes, and why this module exists rather than a
general zip library:

* **The length comes first.** Every member is stored, so the archive's size follows from the
  names and sizes alone (:attr:`StoredZip.size`): ``Content-Length`` is exact, browsers show
  progress and clients can tell a cut download from a whole one.
* **The bytes pass through untouched.** The caller hands over each member's content in
  blocks of its choosing (read ahead of the network, from any thread); the writer yields those
  very objects, adding only headers. Nothing is copied or re-chunked.
* **The CRC-32 is nearly free.** It is computed by zlib-ng, which uses carry-less
  multiplication where the processor has it (an order of magnitude faster than zlib on
  x86-64), so on a small machine the checksum no longer competes with the network for a core.

The layout follows PKWARE's APPNOTE 6.3 as Python's :mod:`zipfile` and zipstream-ng write it:
a data descriptor after each member (its CRC is known only once it is read), Zip64 records
where sizes, offsets or the member count outgrow the classic fields, UTF-8 names flagged as
such, Unix permissions, and the modification time both as a DOS time (local, as zip tools do)
and in the extended-timestamp field (UTC, which Info-ZIP's ``unzip`` restores).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate

from zlib_ng.zlib_ng import crc32

from cryocurate.errors import ConflictError, InputError

ZIP64_LIMIT = (1 << 31) - 1  # as zipfile: sizes and offsets past this use Zip64 fields
COUNT_LIMIT = 0xFFFF  # members in the classic end record
VERSION = 20  # 2.0: stored members, folders
VERSION_ZIP64 = 45  # 4.5: Zip64 extensions
UNIX = 3  # "version made by" high byte: external attributes are Unix modes
S_IFREG = 0o100000
FLAG_DESCRIPTOR = 0x08  # CRC and sizes follow the data
FLAG_UTF8 = 0x800
EXTENDED_TIMESTAMP = 0x5455

_LOCAL = struct.Struct("<4s5H3L2H")  # 30 bytes
_CENTRAL = struct.Struct("<4s6H3L5H2L")  # 46 bytes
_DESCRIPTOR = struct.Struct("<4s3L")
_DESCRIPTOR64 = struct.Struct("<4sL2Q")
_END = struct.Struct("<4s4H2LH")  # 22 bytes
_END64 = struct.Struct("<4sQ2H2L4Q")  # 56 bytes
_LOCATOR64 = struct.Struct("<4sLQL")  # 20 bytes
_TIMESTAMP = struct.Struct("<HHBl")  # extended timestamp with the modification time only


@dataclass(frozen=True, slots=True)
class Member:
    """One file of the archive: its name inside it (relative, ``/``-separated), its exact
    size, its modification time (seconds since the epoch) and its Unix permissions."""

    name: str
    size: int
    mtime: float
    mode: int = 0o644


def _check_name(name: str) -> bytes:
    parts = name.split("/")
    if not name or name.startswith("/") or "\\" in name or "" in parts or ".." in parts:
        raise InputError(
            "not a relative path with '/' separators", where=name or "(empty name)",
            hint="zip member names must not be absolute, empty, or climb out with '..'",
        )  # fmt: skip
    return name.encode("utf-8")


def _dos_time(mtime: float) -> tuple[int, int]:
    """(date, time) in MS-DOS format, local time, clamped to 1980–2107 as zip requires."""
    t = time.localtime(min(max(mtime, 315532800), 4354819199))
    year = min(max(t.tm_year, 1980), 2107)
    return (year - 1980) << 9 | t.tm_mon << 5 | t.tm_mday, (
        t.tm_hour << 11 | t.tm_min << 5 | t.tm_sec // 2
    )


class StoredZip:
    """The archive of ``members``, in that order; :meth:`stream` writes it.

    Every header is computed here, before anything is read, so :attr:`size` is exact and a
    bad name is refused before the first byte goes out.
    """

    def __init__(self, members: Sequence[Member]) -> None:
        seen: set[str] = set()
        for m in members:
            if m.name in seen:
                raise InputError("the same name twice in one zip", where=m.name)
            seen.add(m.name)
        self.members = list(members)
        self._names = [_check_name(m.name) for m in self.members]
        self._zip64 = [m.size > ZIP64_LIMIT for m in self.members]
        self._stamps = [
            _TIMESTAMP.pack(EXTENDED_TIMESTAMP, 5, 1, min(max(int(m.mtime), 0), 2**31 - 1))
            for m in self.members
        ]
        sizes = [
            _LOCAL.size + len(name) + len(stamp) + (20 if z64 else 0)
            + m.size + (_DESCRIPTOR64.size if z64 else _DESCRIPTOR.size)
            for m, name, stamp, z64 in zip(
                self.members, self._names, self._stamps, self._zip64, strict=True
            )
        ]  # fmt: skip
        self._offsets = [0, *accumulate(sizes)]
        self._central_size = sum(len(self._central_header(i)) for i in range(len(self.members)))
        self._end = self._end_records()
        self.size = self._offsets[-1] + self._central_size + len(self._end)

    def __len__(self) -> int:
        return self.size

    def _flags(self, i: int) -> int:
        return FLAG_DESCRIPTOR | (0 if self.members[i].name.isascii() else FLAG_UTF8)

    def local_header(self, i: int) -> bytes:
        """Member ``i``'s local header. The CRC and sizes are left at zero, as the data
        descriptor that follows the data carries them."""
        m, name = self.members[i], self._names[i]
        date, tod = _dos_time(m.mtime)
        extra = self._stamps[i]
        size_field = 0
        if self._zip64[i]:  # the sizes are in the descriptor; the Zip64 field says so
            extra += struct.pack("<HH2Q", 1, 16, 0, 0)
            size_field = 0xFFFFFFFF
        version = VERSION_ZIP64 if self._zip64[i] else VERSION
        return _LOCAL.pack(
            b"PK\x03\x04", version, self._flags(i), 0, tod, date,
            0, size_field, size_field, len(name), len(extra),
        ) + name + extra  # fmt: skip

    def descriptor(self, i: int, crc: int) -> bytes:
        """Member ``i``'s data descriptor: its CRC-32 and (twice, stored) its size."""
        size = self.members[i].size
        if self._zip64[i]:
            return _DESCRIPTOR64.pack(b"PK\x07\x08", crc, size, size)
        return _DESCRIPTOR.pack(b"PK\x07\x08", crc, size, size)

    def _central_header(self, i: int, crc: int = 0) -> bytes:
        m, name, offset = self.members[i], self._names[i], self._offsets[i]
        date, tod = _dos_time(m.mtime)
        big: list[int] = []
        size_field = m.size
        if m.size > ZIP64_LIMIT:
            big += [m.size, m.size]
            size_field = 0xFFFFFFFF
        offset_field = offset
        if offset > ZIP64_LIMIT:
            big.append(offset)
            offset_field = 0xFFFFFFFF
        extra = self._stamps[i]
        if big:
            extra = struct.pack(f"<HH{len(big)}Q", 1, 8 * len(big), *big) + extra
        version = VERSION_ZIP64 if big or self._zip64[i] else VERSION
        mode = (S_IFREG | (m.mode & 0o7777)) << 16
        return _CENTRAL.pack(
            b"PK\x01\x02", UNIX << 8 | version, version, self._flags(i), 0, tod, date,
            crc, size_field, size_field, len(name), len(extra), 0, 0, 0, mode, offset_field,
        ) + name + extra  # fmt: skip

    def _end_records(self) -> bytes:
        count, start, length = len(self.members), self._offsets[-1], self._central_size
        end = _END.pack(
            b"PK\x05\x06", 0, 0, min(count, COUNT_LIMIT), min(count, COUNT_LIMIT),
            min(length, 0xFFFFFFFF), min(start, 0xFFFFFFFF), 0,
        )  # fmt: skip
        if count < COUNT_LIMIT and start <= ZIP64_LIMIT and length <= ZIP64_LIMIT:
            return end
        end64 = _END64.pack(
            b"PK\x06\x06", _END64.size - 12, UNIX << 8 | VERSION_ZIP64, VERSION_ZIP64, 0, 0,
            count, count, length, start,
        )  # fmt: skip
        locator = _LOCATOR64.pack(b"PK\x06\x07", 0, start + length, 1)
        return end64 + locator + end

    def stream(self, contents: Iterable[Iterable[bytes]]) -> Iterator[bytes]:
        """The archive, given each member's content (in member order) as blocks of bytes.

        The blocks themselves are yielded between the headers. A member whose blocks do not
        add up to its size raises :class:`ConflictError` (the file changed since it was
        listed): the archive would no longer match its announced length.
        """
        central: list[bytes] = []
        count = 0
        for i, blocks in enumerate(contents):
            if i >= len(self.members):
                raise InputError("more contents than members", where=f"content {i + 1}")
            m = self.members[i]
            yield self.local_header(i)
            crc = n = 0
            for block in blocks:
                crc = crc32(block, crc)
                n += len(block)
                if n > m.size:
                    break
                yield block
            if n != m.size:
                raise ConflictError(
                    f"{n}{'+' if n > m.size else ''} bytes where {m.size} were listed",
                    where=m.name, hint="the file changed while the zip was made; try again",
                )  # fmt: skip
            yield self.descriptor(i, crc)
            central.append(self._central_header(i, crc))
            count += 1
        if count != len(self.members):
            raise InputError(f"contents for {count} of {len(self.members)} members")
        yield b"".join(central) + self._end


__all__ = ["ZIP64_LIMIT", "Member", "StoredZip"]
