"""cryoSPARC ``.cs`` datasets: column-selective reads of both encodings, streaming writes.

A ``.cs`` file is one table (a numpy structured array) in one of two encodings, told apart by
the first six bytes:

* ``\\x93NUMPY``: a plain ``.npy`` file, as cryoSPARC writes job outputs on disk;
* ``\\x95CSDAT``: cryosparc-tools' stream format (JSON header, one block per column, LZ4
  compression, a heap for strings).

Only the columns asked for are read, and the file is never held in memory whole: a
five-million-particle ``particles.cs`` costs the memory of the few columns extraction needs.

The reader is written against the layout documented in cryosparc-tools (which the tests use
as the reference implementation), because cryosparc-tools loads every requested column through
a full in-memory copy of the file.

How each encoding is read:

* numpy: the ``.npy`` header is parsed by hand (versions 1.0, 2.0 and 3.0, headers of any
  size, Python 2 ``3L`` shapes), then the rows are read sequentially in chunks of about
  :data:`_CHUNK_BYTES` into one reused buffer, and only the wanted fields are copied out of
  each chunk. No ``mmap``: mapped pages count against the process's resident size, which is
  what memory limits (and the people reading ``top``) look at.
* CSDAT: the JSON header is parsed, then the column blocks (``u32`` LE byte count + bytes)
  are walked in header order, seeking past unwanted ones; wanted ones are read straight into
  their result array, or LZ4-decompressed (one raw block per column). String columns hold
  ``u64`` offsets into a heap of NUL-terminated UTF-8 strings that fills the rest of the file.

Every problem surfaces as a :mod:`cryocurate.errors` exception naming the file; numpy, lz4 and
json errors never escape.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import json
import math
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import lz4.block
import numpy as np

from cryocurate.atomic import atomic_path
from cryocurate.errors import FormatError, MissingFileError

NUMPY_MAGIC = b"\x93NUMPY"
CSDAT_MAGIC = b"\x95CSDAT"

_CHUNK_BYTES = 32 * 1024 * 1024
"""Bytes of rows read at once from a numpy-encoded file (the one buffer a read allocates).

Read at call time, so tests can shrink it to exercise chunk boundaries."""

_MAX_HEADER_BYTES = 1024**3
"""Largest header accepted. numpy refuses headers over 10000 bytes unless told otherwise, and
real particle files with many long field names exceed that; cryosparc-tools allows 1 GiB."""

_NUMPY_KINDS = frozenset("biufcSU")  # bool, ints, floats, complex, bytes, unicode
_CSDAT_KINDS = frozenset("biufcO")  # numeric, plus O: u64 offsets into the string heap
_NOT_CS = "not a cryoSPARC .cs dataset"
_NOT_CS_HINT = "expected a particles.cs / class_averages.cs file written by cryoSPARC"


@dataclass(frozen=True)
class CsField:
    """One column of a ``.cs`` table, as declared by the file's header.

    ``dtype`` is the per-element dtype (no subarray part): ``|S<n>`` for numpy-encoded string
    columns, ``object`` for CSDAT ones, whose bytes live in the string heap. ``shape`` is the
    per-row shape, ``()`` for scalars and e.g. ``(2,)`` for ``blob/shape``.
    """

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]

    @property
    def is_string(self) -> bool:
        """Whether :func:`read_cs` returns this column as ``str`` objects."""
        return self.dtype.kind in "SUO"


@dataclass(frozen=True)
class CsHeader:
    """What a ``.cs`` file holds, read from its header alone (see :func:`inspect_cs`)."""

    path: Path
    encoding: Literal["numpy", "csdat"]
    length: int
    fields: dict[str, CsField]


@dataclass(frozen=True)
class _Layout:
    """The header plus where the data starts, which only the readers need."""

    header: CsHeader
    data_offset: int
    file_size: int
    row_dtype: np.dtype | None = None  # numpy: the structured record dtype
    compressed: frozenset[str] = frozenset()  # CSDAT: LZ4-compressed columns


# --------------------------------------------------------------------------- public API


def inspect_cs(path: str | os.PathLike[str]) -> CsHeader:
    """Read only the header of a ``.cs`` file: its encoding, row count and fields.

    Cheap whatever the file's size, so callers can check for the fields they need (and give a
    good error) before committing to a read. A numpy-encoded file shorter than its header
    promises is reported here already (a ``stat`` tells); a truncated CSDAT file is only
    found by :func:`read_cs`, which walks its column blocks.
    """
    with _opened(path) as fh:
        return _read_layout(fh, Path(path)).header


def read_cs(
    path: str | os.PathLike[str],
    fields: Sequence[str],
    *,
    optional: Sequence[str] = (),
) -> dict[str, np.ndarray]:
    """Read the named columns of a ``.cs`` file, in either encoding, and nothing else.

    Returns ``{name: array}`` in the order asked for. Each array is a plain, writable,
    C-contiguous numpy array in native byte order, of shape ``(rows, *field.shape)``; string
    columns come back as object arrays of ``str`` in both encodings (numpy ``|S<n>`` bytes are
    decoded as UTF-8), so callers never care which encoding a job wrote.

    Fields in ``optional`` that the file lacks are left out of the result; a missing field of
    ``fields`` raises :class:`FormatError` naming it. Memory stays at the size of the result
    plus one read buffer of about :data:`_CHUNK_BYTES` (numpy) or one compressed column (CSDAT).
    """
    required = _names(fields, "fields")
    wanted = list(dict.fromkeys([*required, *_names(optional, "optional")]))
    p = Path(path)
    with _opened(path) as fh:
        layout = _read_layout(fh, p)
        header = layout.header
        missing = [name for name in required if name not in header.fields]
        if missing:
            raise _missing_fields_error(p, missing, header)
        present = [name for name in wanted if name in header.fields]
        if header.encoding == "numpy":
            return _read_numpy_columns(fh, layout, present)
        return _read_csdat_columns(fh, layout, present)


# --------------------------------------------------------------------------- shared helpers


def _names(names: Sequence[str], argument: str) -> list[str]:
    """Check a field-name list; a bare string would otherwise be read as its characters."""
    if isinstance(names, str | bytes):
        raise TypeError(f"read_cs: {argument} must be a sequence of field names, not a string")
    result = list(names)
    for name in result:
        if not isinstance(name, str):
            raise TypeError(f"read_cs: field names must be str, got {name!r}")
    return result


@contextlib.contextmanager
def _opened(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Open ``path`` unbuffered, turning every OS error (now or while reading) into ours."""
    try:
        fh = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by the ``with`` below
    except FileNotFoundError as err:
        raise MissingFileError(
            "file does not exist", where=path, hint="check the path and the job folder"
        ) from err
    except IsADirectoryError as err:
        raise MissingFileError(
            "is a folder, not a .cs file", where=path, hint="give the .cs file inside it"
        ) from err
    except OSError as err:
        raise MissingFileError(
            f"cannot be opened: {err.strerror or err}", where=path, hint="check its permissions"
        ) from err
    with fh:
        try:
            yield fh
        except OSError as err:
            raise MissingFileError(
                f"cannot be read: {err.strerror or err}",
                where=path,
                hint="check the disk or file system it lives on, or copy the file again",
            ) from err


def _readinto_full(fh: BinaryIO, view: memoryview) -> int:
    """Fill ``view`` from ``fh``; return the bytes read (fewer only at end of file).

    Raw reads may come back short (Linux caps one ``read`` near 2 GiB), hence the loop.
    """
    total = 0
    size = len(view)
    while total < size:
        got = fh.readinto(view[total:])
        if not got:
            break
        total += got
    return total


def _read_exact(fh: BinaryIO, size: int, path: Path, what: str) -> bytearray:
    """Read exactly ``size`` bytes of ``what``, or raise a truncation :class:`FormatError`."""
    offset = fh.tell()
    available = max(0, os.fstat(fh.fileno()).st_size - offset)
    if size > available:  # before allocating: a damaged length field may claim gigabytes
        raise _truncated(path, what, offset, size, available)
    buf = bytearray(size)
    got = _readinto_full(fh, memoryview(buf))
    if got < size:
        raise _truncated(path, what, offset, size, got)
    return buf


def _truncated(path: Path, what: str, offset: int, size: int, got: int) -> FormatError:
    return FormatError(
        f"truncated file: {what} needs {size} bytes at offset {offset}, only {got} are there",
        where=path,
        hint="the file was cut short (interrupted copy or write?); copy it again",
    )


def _native(dtype: np.dtype) -> np.dtype:
    """``dtype`` in native byte order (results should not carry the file's byte order)."""
    return dtype if dtype.isnative else dtype.newbyteorder("=")


def _missing_fields_error(path: Path, missing: list[str], header: CsHeader) -> FormatError:
    names = list(header.fields)
    shown = ", ".join(names[:12])
    if len(names) > 12:
        shown += f", … ({len(names) - 12} more)"
    listed = ", ".join(repr(name) for name in missing)
    close = difflib.get_close_matches(missing[0], names, n=1)
    hint = f"did you mean {close[0]!r}?" if close else "is this the right .cs file of the job?"
    return FormatError(
        f"required field{'s' if len(missing) > 1 else ''} {listed} missing; "
        f"the file has {len(names)} fields: {shown}",
        where=path,
        hint=hint,
    )


def _read_layout(fh: BinaryIO, path: Path) -> _Layout:
    """Sniff the encoding from the magic bytes and parse the matching header."""
    file_size = os.fstat(fh.fileno()).st_size
    magic = bytes(fh.read(6) or b"")
    if magic == NUMPY_MAGIC:
        return _numpy_layout(fh, path, file_size)
    if magic == CSDAT_MAGIC:
        return _csdat_layout(fh, path, file_size)
    what = "the file is empty" if file_size == 0 else f"it starts with {magic!r}"
    raise FormatError(
        f"{_NOT_CS}: {what}, not {NUMPY_MAGIC!r} or {CSDAT_MAGIC!r}",
        where=path,
        hint=_NOT_CS_HINT,
    )


def _field_kind_error(path: Path, name: str, dtype: np.dtype) -> FormatError:
    if dtype.hasobject:
        reason = "holds pickled Python objects, which cryoSPARC never writes"
    else:
        reason = f"has dtype {dtype}, which a cryoSPARC table never holds"
    return FormatError(f"{_NOT_CS}: field {name!r} {reason}", where=path, hint=_NOT_CS_HINT)


# --------------------------------------------------------------------------- numpy encoding

_DECODE_CACHE_SIZE = 65536
_PY2_LONG = re.compile(r"(?<=[0-9])[lL](?=\s*[,)\]}])")
_QUOTED = re.compile(r"""('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""")


def _strip_py2_longs(text: str) -> str:
    """Drop the ``L`` of Python 2 longs (``(3L,)``) outside quoted strings, as numpy does."""
    parts = _QUOTED.split(text)
    return "".join(part if i % 2 else _PY2_LONG.sub("", part) for i, part in enumerate(parts))


def _parse_npy_dict(text: str, version: tuple[int, int], path: Path) -> dict:
    """Evaluate the header's dict literal (safely: literals only, never code)."""
    candidates = [text]
    if version < (3, 0):  # Python 2 wrote 1.0/2.0 headers with ``3L`` shapes
        candidates.append(_strip_py2_longs(text))
    error: Exception | None = None
    for candidate in candidates:
        try:
            value = ast.literal_eval(candidate)
        except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError) as err:
            error = err
            continue
        if isinstance(value, dict):
            return value
        break
    raise FormatError(
        f"{_NOT_CS}: the .npy header is not a dict literal"
        + (f" ({type(error).__name__})" if error else ""),
        where=path,
        hint="the file is damaged or was not written by numpy.save",
    )


def _numpy_layout(fh: BinaryIO, path: Path, file_size: int) -> _Layout:
    """Parse a ``.npy`` header (1.0, 2.0 or 3.0, any size) and check it describes a table."""
    ver = _read_exact(fh, 2, path, "the .npy version")
    version = (ver[0], ver[1])
    if version == (1, 0):
        len_size, encoding = 2, "latin1"
    elif version in ((2, 0), (3, 0)):
        len_size, encoding = 4, "latin1" if version == (2, 0) else "utf8"
    else:
        raise FormatError(
            f"{_NOT_CS}: unknown .npy format version {version[0]}.{version[1]}",
            where=path,
            hint="numpy writes versions 1.0, 2.0 and 3.0 only",
        )
    header_size = int.from_bytes(
        _read_exact(fh, len_size, path, "the .npy header length"), "little"
    )
    if header_size > _MAX_HEADER_BYTES:
        raise FormatError(
            f"{_NOT_CS}: its .npy header claims {header_size} bytes", where=path, hint=_NOT_CS_HINT
        )
    raw = _read_exact(fh, header_size, path, "the .npy header")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as err:
        raise FormatError(
            f"{_NOT_CS}: the .npy header is not valid {encoding} text ({err.reason})",
            where=path,
            hint="the file is damaged",
        ) from err
    meta = _parse_npy_dict(text, version, path)
    for key in ("descr", "fortran_order", "shape"):
        if key not in meta:
            raise FormatError(
                f"{_NOT_CS}: the .npy header has no {key!r}", where=path, hint="the file is damaged"
            )
    try:
        dtype = np.lib.format.descr_to_dtype(meta["descr"])
    except Exception as err:  # numpy raises TypeError, ValueError, KeyError… on bad descrs
        raise FormatError(
            f"{_NOT_CS}: the .npy header's dtype {meta['descr']!r:.200} is invalid ({err})",
            where=path,
            hint="the file is damaged",
        ) from err
    shape = meta["shape"]
    if dtype.names is None:
        raise FormatError(
            f"{_NOT_CS}: it is a plain .npy array of {dtype}, not a table of named fields",
            where=path,
            hint=_NOT_CS_HINT,
        )
    if meta["fortran_order"] is not False:
        raise FormatError(
            f"{_NOT_CS}: the .npy array is stored in Fortran order",
            where=path,
            hint="cryoSPARC writes one-dimensional C-order tables",
        )
    if (
        not isinstance(shape, tuple)
        or len(shape) != 1
        or not isinstance(shape[0], int)
        or isinstance(shape[0], bool)
        or shape[0] < 0
    ):
        raise FormatError(
            f"{_NOT_CS}: the .npy table has shape {shape!r}, not one dimension of rows",
            where=path,
            hint=_NOT_CS_HINT,
        )
    if dtype.itemsize == 0:
        raise FormatError(f"{_NOT_CS}: its rows hold no bytes", where=path, hint=_NOT_CS_HINT)
    fields: dict[str, CsField] = {}
    for name in dtype.names:
        field_dtype = dtype.fields[name][0]
        base = field_dtype.base
        if base.kind not in _NUMPY_KINDS or base.names is not None:
            raise _field_kind_error(path, name, base)
        fields[name] = CsField(name=name, dtype=base, shape=tuple(field_dtype.shape))
    length = shape[0]
    data_offset = 6 + 2 + len_size + header_size
    expected = data_offset + length * dtype.itemsize
    if file_size < expected:
        raise _truncated(
            path,
            f"{length} rows of {dtype.itemsize} bytes",
            data_offset,
            length * dtype.itemsize,
            file_size - data_offset,
        )
    header = CsHeader(path=path, encoding="numpy", length=length, fields=fields)
    return _Layout(header=header, data_offset=data_offset, file_size=file_size, row_dtype=dtype)


def _read_numpy_columns(fh: BinaryIO, layout: _Layout, names: list[str]) -> dict[str, np.ndarray]:
    """Stream the rows through one reused buffer, copying out only the wanted fields."""
    header, dtype = layout.header, layout.row_dtype
    assert dtype is not None
    length, itemsize = header.length, dtype.itemsize
    out: dict[str, np.ndarray] = {}
    for name in names:
        field = header.fields[name]
        result_dtype = np.dtype(object) if field.is_string else _native(field.dtype)
        out[name] = np.empty((length, *field.shape), dtype=result_dtype)
    if not names or length == 0:
        return out
    rows_per_chunk = max(1, _CHUNK_BYTES // itemsize)
    buf = bytearray(min(rows_per_chunk, length) * itemsize)
    caches: dict[str, dict[bytes, str]] = {name: {} for name in names}
    fh.seek(layout.data_offset)
    start = 0
    while start < length:
        rows = min(rows_per_chunk, length - start)
        size = rows * itemsize
        got = _readinto_full(fh, memoryview(buf)[:size])
        if got < size:  # the file shrank since the header was checked
            raise _truncated(
                header.path, f"rows {start}–{start + rows - 1}", fh.tell() - got, size, got
            )
        chunk = np.frombuffer(buf, dtype=dtype, count=rows)
        for name, result in out.items():
            column = chunk[name]
            if header.fields[name].dtype.kind == "S":
                column = _decode_bytes(column, caches[name], header.path, name)
            result[start : start + rows] = column
        del chunk, column  # release the buffer export before the next readinto
        start += rows
    return out


def _decode_bytes(column: np.ndarray, cache: dict[bytes, str], path: Path, name: str) -> np.ndarray:
    """Decode a fixed-width bytes column as UTF-8, decoding each distinct value about once.

    Particle files repeat a few thousand micrograph paths over millions of rows, usually in
    runs (particles are stored micrograph by micrograph): then only the first value of each
    run is looked at. Otherwise every value goes through ``cache``, which also carries decoded
    values from one chunk to the next.
    """
    flat = column.reshape(-1)
    if not len(flat):
        return np.empty(column.shape, dtype=object)
    starts = np.concatenate(([0], np.flatnonzero(flat[1:] != flat[:-1]) + 1))
    runs = len(starts) * 4 <= len(flat)
    values = (flat[starts] if runs else flat).tolist()  # .tolist() strips trailing NULs

    def decode(raw: bytes) -> str:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise FormatError(
                f"string field {name!r} holds bytes that are not UTF-8: {raw[:80]!r}",
                where=path,
                hint="the file is damaged, or was written with another text encoding",
            ) from err
        if len(cache) < _DECODE_CACHE_SIZE:  # all-distinct columns must not double up
            cache[raw] = text
        return text

    decoded = np.empty(len(values), dtype=object)
    decoded[:] = [cache[raw] if raw in cache else decode(raw) for raw in values]
    if runs:
        decoded = np.repeat(decoded, np.diff(np.append(starts, len(flat))))
    return decoded.reshape(column.shape)


# --------------------------------------------------------------------------- CSDAT encoding


def _csdat_error(path: Path, message: str) -> FormatError:
    return FormatError(
        f"{_NOT_CS}: bad CSDAT header: {message}",
        where=path,
        hint="the file is damaged, or was written by a cryosparc-tools older than 4.4",
    )


def _csdat_field(entry: object, path: Path) -> CsField:
    """One ``[name, dtypestr]`` or ``[name, dtypestr, shape]`` entry of the JSON header."""
    if not isinstance(entry, list) or len(entry) not in (2, 3):
        raise _csdat_error(path, f"field entry {entry!r:.100} is not [name, dtype(, shape)]")
    name, dtype_str = entry[0], entry[1]
    shape = entry[2] if len(entry) == 3 else []
    if not isinstance(name, str) or not isinstance(dtype_str, str):
        raise _csdat_error(path, f"field entry {entry!r:.100} is not [name, dtype(, shape)]")
    if not isinstance(shape, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        raise _csdat_error(path, f"field {name!r} has a bad shape {shape!r:.100}")
    try:
        dtype = np.dtype(dtype_str)
    except (TypeError, ValueError, SyntaxError) as err:
        raise _csdat_error(path, f"field {name!r} has an unknown dtype {dtype_str!r:.100}") from err
    if dtype.kind not in _CSDAT_KINDS or dtype.names is not None or dtype.subdtype is not None:
        raise _field_kind_error(path, name, dtype)
    return CsField(name=name, dtype=dtype, shape=tuple(shape))


def _csdat_layout(fh: BinaryIO, path: Path, file_size: int) -> _Layout:
    """Parse the u32-length-prefixed JSON header that follows the CSDAT magic."""
    header_size = int.from_bytes(_read_exact(fh, 4, path, "the CSDAT header length"), "little")
    if header_size > _MAX_HEADER_BYTES:
        raise _csdat_error(path, f"it claims {header_size} bytes")
    raw = _read_exact(fh, header_size, path, "the CSDAT JSON header")
    try:
        meta = json.loads(raw)
    except (ValueError, RecursionError) as err:  # JSONDecodeError and UnicodeDecodeError
        raise _csdat_error(path, f"its {header_size} bytes are not valid JSON ({err})") from err
    if not isinstance(meta, dict):
        raise _csdat_error(path, "it is not a JSON object")
    length = meta.get("length")
    if not isinstance(length, int) or isinstance(length, bool) or length < 0:
        raise _csdat_error(path, f'"length" is {length!r:.100}, not a row count')
    entries = meta.get("dtype")
    if not isinstance(entries, list):
        raise _csdat_error(path, '"dtype" is missing or not a list')
    compression = meta.get("compression")
    if compression not in (None, "lz4"):
        raise _csdat_error(path, f"unknown compression {compression!r:.100}")
    compressed = meta.get("compressed_fields") or []
    if not isinstance(compressed, list) or not all(isinstance(n, str) for n in compressed):
        raise _csdat_error(path, '"compressed_fields" is not a list of names')
    fields: dict[str, CsField] = {}
    for entry in entries:
        field = _csdat_field(entry, path)
        if field.name in fields:
            raise _csdat_error(path, f"field {field.name!r} appears twice")
        fields[field.name] = field
    header = CsHeader(path=path, encoding="csdat", length=length, fields=fields)
    return _Layout(
        header=header,
        data_offset=6 + 4 + header_size,
        file_size=file_size,
        compressed=frozenset(compressed),
    )


def _storage_dtype(field: CsField) -> np.dtype:
    """How a CSDAT column's elements are stored: strings as u64 heap offsets."""
    return np.dtype("<u8") if field.dtype.kind == "O" else field.dtype


def _read_csdat_columns(fh: BinaryIO, layout: _Layout, names: list[str]) -> dict[str, np.ndarray]:
    """Walk the column blocks, reading the wanted ones and seeking past the rest.

    Every block is walked even when the wanted ones come early, so that a file cut short
    anywhere is reported instead of returning columns from a damaged file.
    """
    header, path = layout.header, layout.header.path
    length, size = header.length, layout.file_size
    wanted = set(names)
    columns: dict[str, np.ndarray] = {}
    fh.seek(layout.data_offset)
    pos = layout.data_offset
    for field in header.fields.values() if length else ():  # no blocks at all for 0 rows
        count = int.from_bytes(
            _read_exact(fh, 4, path, f"the block size of {field.name!r}"), "little"
        )
        pos += 4
        if pos + count > size:
            raise _truncated(path, f"the column block of {field.name!r}", pos, count, size - pos)
        if field.name in wanted:
            columns[field.name] = _read_csdat_block(fh, layout, field, count)
        else:
            fh.seek(count, os.SEEK_CUR)
        pos += count
    heap_size = size - pos
    has_strings = any(f.dtype.kind == "O" for f in header.fields.values())
    heap = bytearray()
    if heap_size:
        if length and any(header.fields[name].dtype.kind == "O" for name in names):
            heap = _read_exact(fh, heap_size, path, "the string heap")
            last = heap[-1:]
        else:
            fh.seek(size - 1)
            last = fh.read(1)
        if last != b"\0":
            raise FormatError(
                f"truncated file: the string heap ({heap_size} bytes from offset {pos}) "
                "does not end with a NUL",
                where=path,
                hint="the file was cut short (interrupted copy or write?); copy it again",
            )
    elif has_strings:
        raise _truncated(path, "the string heap", pos, 1, 0)
    out: dict[str, np.ndarray] = {}
    for name in names:
        field = header.fields[name]
        if length == 0:
            kind = object if field.dtype.kind == "O" else _native(field.dtype)
            out[name] = np.empty((0, *field.shape), dtype=kind)
        elif field.dtype.kind == "O":
            out[name] = _heap_strings(columns[name], heap, path, name)
        else:
            out[name] = columns[name]
    return out


def _read_csdat_block(fh: BinaryIO, layout: _Layout, field: CsField, count: int) -> np.ndarray:
    """Read one column block of ``count`` bytes into a ``(rows, *shape)`` array."""
    path, length = layout.header.path, layout.header.length
    storage = _storage_dtype(field)
    expected = length * storage.itemsize * math.prod(field.shape)
    if field.name in layout.compressed:
        if expected > 256 * count + 64:  # LZ4 cannot expand a block more than ~255 times
            raise FormatError(
                f"column {field.name!r} holds a {count}-byte LZ4 block, which cannot expand "
                f"to the {expected} bytes {length} rows need",
                where=path,
                hint="the file is damaged; copy it again or re-export it",
            )
        payload = _read_exact(fh, count, path, f"the column block of {field.name!r}")
        try:
            data = lz4.block.decompress(payload, uncompressed_size=expected, return_bytearray=True)
        except Exception as err:  # lz4.block.LZ4BlockError, or MemoryError on absurd sizes
            raise FormatError(
                f"corrupt LZ4 block for column {field.name!r} ({count} bytes, should expand "
                f"to {expected}): {err}",
                where=path,
                hint="the file is damaged; copy it again or re-export it",
            ) from err
        del payload
        if len(data) != expected:
            raise FormatError(
                f"LZ4 block for column {field.name!r} expands to {len(data)} bytes, "
                f"{length} rows need {expected}",
                where=path,
                hint="the file is damaged; copy it again or re-export it",
            )
        array = np.frombuffer(data, dtype=storage).reshape((length, *field.shape))
    else:
        if count != expected:
            raise FormatError(
                f"column {field.name!r} holds {count} bytes, {length} rows need {expected}",
                where=path,
                hint="the file is damaged; copy it again or re-export it",
            )
        array = np.empty((length, *field.shape), dtype=storage)
        if expected:
            offset = fh.tell()
            got = _readinto_full(fh, memoryview(array.reshape(-1).view(np.uint8)))
            if got < expected:
                raise _truncated(path, f"the column block of {field.name!r}", offset, expected, got)
    if not storage.isnative:
        array = array.astype(_native(storage))
    return array


def _heap_strings(offsets: np.ndarray, heap: bytearray, path: Path, name: str) -> np.ndarray:
    """Turn u64 heap offsets into ``str``, decoding each distinct offset once."""
    flat = offsets.reshape(-1)
    distinct, inverse = np.unique(flat, return_inverse=True)
    if len(distinct) and int(distinct[-1]) >= len(heap):
        raise FormatError(
            f"string field {name!r} points at heap offset {int(distinct[-1])}, "
            f"past the {len(heap)}-byte string heap",
            where=path,
            hint="the file is damaged; copy it again or re-export it",
        )
    decoded = np.empty(len(distinct), dtype=object)
    for i, start in enumerate(distinct.tolist()):
        end = heap.find(b"\0", start)
        if end < 0:  # cannot happen after the trailing-NUL check, kept for safety
            end = len(heap)
        try:
            decoded[i] = heap[start:end].decode("utf-8")
        except UnicodeDecodeError as err:
            raise FormatError(
                f"string field {name!r} holds bytes that are not UTF-8: {heap[start:end][:80]!r}",
                where=path,
                hint="the file is damaged",
            ) from err
    return decoded[inverse.reshape(-1)].reshape(offsets.shape)


# --------------------------------------------------------------------------- writing


def write_cs_numpy(
    path: str | os.PathLike[str],
    dtype: np.dtype,
    chunks: Iterable[np.ndarray],
    length: int,
    *,
    durable: bool = True,
) -> None:
    """Write a numpy-encoded ``.cs`` file from row chunks, in constant memory.

    ``length`` must equal the total number of rows the chunks hold; the ``.npy`` header is
    written first and the chunks streamed after it. The file appears atomically.
    """
    dtype = np.dtype(dtype)
    with atomic_path(path, durable=durable) as tmp, open(tmp, "wb") as fh:
        header = {
            "descr": np.lib.format.dtype_to_descr(dtype),
            "fortran_order": False,
            "shape": (int(length),),
        }
        try:  # version 1.0 as numpy.save writes it; 2.0 only for headers over 64 KiB
            np.lib.format.write_array_header_1_0(fh, header)
        except ValueError:
            np.lib.format.write_array_header_2_0(fh, header)
        written = 0
        for chunk in chunks:
            chunk = np.ascontiguousarray(chunk, dtype=dtype)
            fh.write(chunk.tobytes())
            written += len(chunk)
        if written != length:
            raise ValueError(f"write_cs_numpy: promised {length} rows, got {written}")
