"""MRC image stacks: validated reads and atomic float32 writes, via mrcfile.

mrcfile is strict by default and raises on files many real programs write (no ``MAP`` id, a
zero machine stamp). We open permissively, collect its warnings, and then apply our own rules,
which are about what extraction needs: the data block is all there, the images are square,
the values are finite.

    >>> stack = read_stack("J12_020_class_averages.mrc")    # doctest: +SKIP
    >>> stack.data.shape, stack.voxel_size_a
    ((50, 128, 128), 1.2)
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import mrcfile
import numpy as np

from cryocurate.atomic import atomic_path
from cryocurate.errors import FormatError, MissingFileError

HEADER_BYTES = 1024
_ITEMSIZE = {0: 1, 1: 2, 2: 4, 4: 8, 6: 2, 12: 2}  # bytes per value, by MRC mode


@dataclass(frozen=True)
class MrcStack:
    """2D images as float32 ``(n, ny, nx)``, with the header's pixel size (0 if unset)."""

    path: Path
    data: np.ndarray
    voxel_size_a: float
    mode: int


_MODE_NAMES = {0: "int8", 1: "int16", 2: "float32", 4: "complex64", 6: "uint16", 12: "float16"}


def check_data_size(
    path: Path, *, shape: tuple[int, ...], mode: int, ext_bytes: int, itemsize: int, size: int
) -> None:
    """Refuse a file whose size is not exactly what its header describes.

    A header that promises less than the file holds is as wrong as one that promises more: a
    float32 stack labelled mode 1 (int16) is twice the size its header implies, and read as
    int16 it would yield garbage images that look like data. Every MRC reader calls this.

    Raises:
        FormatError: the file is shorter (truncated) or longer than the header says.
    """
    n = 1
    for dim in shape:
        n *= int(dim)
    expected = HEADER_BYTES + ext_bytes + n * itemsize
    if expected == size:
        return
    dims = "×".join(str(int(d)) for d in shape)
    described = f"{dims} mode {mode} ({_MODE_NAMES.get(mode, '?')})"
    if expected > size:
        raise FormatError(
            f"truncated: the header promises {expected:,} bytes ({described}) "
            f"but the file holds {size:,}",
            where=path,
            hint="copy the file again from its source",
        )
    data = size - HEADER_BYTES - ext_bytes
    fits = [
        f"mode {m} ({_MODE_NAMES[m]})"
        for m, item in _ITEMSIZE.items()
        if m != mode and n and data == n * item
    ]
    raise FormatError(
        f"the data size disagrees with the header: {described} is {expected:,} bytes "
        f"but the file holds {size:,}" + (f", which fits {' or '.join(fits)}" if fits else ""),
        where=path,
        hint="the header's mode or dimensions are wrong; re-export the file from the "
        "program that made it",
    )


def _check_header(path: Path, size: int) -> None:
    """Refuse headers that cannot describe this file, before mrcfile allocates for them.

    mrcfile trusts the header's extended-header length and allocates that many bytes first:
    a random 4 KB file can ask for gigabytes. Mode, dimensions and the extended header must
    be plausible in one byte order or the other.
    """
    with open(path, "rb") as fh:
        head = fh.read(HEADER_BYTES)
    for order in ("<", ">"):
        nx, ny, nz, mode = np.frombuffer(head[:16], dtype=f"{order}i4")
        nsymbt = int(np.frombuffer(head[92:96], dtype=f"{order}i4")[0])
        if mode in _ITEMSIZE and min(nx, ny, nz) > 0 and 0 <= nsymbt <= size - HEADER_BYTES:
            return
    raise FormatError(
        "not an MRC file: its header gives no valid mode, dimensions and extended header",
        where=path,
        hint="the file is damaged or of another kind",
    )


def read_stack(path: str | os.PathLike[str], *, require_square: bool = True) -> MrcStack:
    """Read a whole MRC stack as float32, refusing anything extraction cannot trust.

    A single 2D image (nz = 1) reads as a stack of one. Values are converted to float32
    without rescaling (int16/uint16/float16 averages keep their numbers).

    Raises:
        MissingFileError: the file does not exist or cannot be read.
        FormatError: not an MRC file, an unsupported mode, a file whose size is not the one
            the header describes (shorter or longer), non-square images, or NaN/infinite
            pixels.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        raise MissingFileError(f"cannot read: {err.strerror or err}", where=path) from err
    if not path.is_file():
        raise MissingFileError("is not a file", where=path)
    if size < HEADER_BYTES:
        raise FormatError(
            f"not an MRC file: {size} bytes, shorter than the {HEADER_BYTES}-byte header",
            where=path,
            hint="the file is truncated or of another kind",
        )
    _check_header(path, size)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with mrcfile.open(path, mode="r", permissive=True) as mrc:
                header = mrc.header
                ext_bytes = int(header.nsymbt)
                data = mrc.data
                voxel = float(mrc.voxel_size.x)
                mode = int(header.mode)
                if data is not None:
                    data = np.asarray(data)
                    if data.ndim == 2:
                        data = data[np.newaxis]
                    elif data.ndim == 4:  # a volume stack: flatten to images
                        data = data.reshape(-1, *data.shape[-2:])
                    data = data.astype(np.float32, copy=True)
        except (ValueError, OSError, EOFError) as err:
            raise FormatError(f"not a readable MRC file: {err}", where=path) from err
    itemsize = _ITEMSIZE.get(mode)
    if itemsize is None:
        raise FormatError(f"unsupported MRC mode {mode}", where=path)
    check_data_size(
        path,
        shape=(int(header.nz), int(header.ny), int(header.nx)),
        mode=mode,
        ext_bytes=ext_bytes,
        itemsize=itemsize,
        size=size,
    )
    if data is None:
        messages = "; ".join(str(w.message) for w in caught) or "no data block"
        raise FormatError(f"not a readable MRC file: {messages}", where=path)
    if data.ndim != 3 or data.shape[0] == 0:
        raise FormatError(f"holds no 2D images (shape {data.shape})", where=path)
    if require_square and data.shape[1] != data.shape[2]:
        raise FormatError(
            f"images are not square ({data.shape[2]}×{data.shape[1]} px)",
            where=path,
            hint="class averages are always square; is this the right file?",
        )
    finite = np.isfinite(data)
    if not finite.all():
        bad = np.unique(np.nonzero(~finite)[0])
        listed = ", ".join(str(int(i)) for i in bad[:5]) + (" …" if len(bad) > 5 else "")
        raise FormatError(
            f"NaN or infinite pixels in {len(bad)} image(s) (0-based: {listed})",
            where=path,
            hint="the job's output is damaged; re-run or re-export it",
        )
    return MrcStack(path=path, data=data, voxel_size_a=voxel, mode=mode)


@dataclass(frozen=True)
class MrcHeader:
    """What the header alone says: sizes (x fastest), mode, and voxel size (0 if unset)."""

    nx: int
    ny: int
    nz: int
    mode: int
    voxel_size_a: float


def read_header(path: str | os.PathLike[str]) -> MrcHeader:
    """Read the header only (no pixels), refusing files that are not MRC or whose size is not
    the one the header describes (truncated, or longer: see :func:`check_data_size`)."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        raise MissingFileError(f"cannot read: {err.strerror or err}", where=path) from err
    if size < HEADER_BYTES:
        raise FormatError(f"not an MRC file: {size} bytes, shorter than the header", where=path)
    _check_header(path, size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with mrcfile.open(path, mode="r", permissive=True, header_only=True) as mrc:
                h = mrc.header
                header = MrcHeader(
                    nx=int(h.nx),
                    ny=int(h.ny),
                    nz=int(h.nz),
                    mode=int(h.mode),
                    voxel_size_a=float(mrc.voxel_size.x),
                )
                ext_bytes = int(h.nsymbt)
        except (ValueError, OSError, EOFError) as err:
            raise FormatError(f"not a readable MRC file: {err}", where=path) from err
    itemsize = _ITEMSIZE.get(header.mode)
    if itemsize is None:
        raise FormatError(f"unsupported MRC mode {header.mode}", where=path)
    check_data_size(
        path,
        shape=(header.nz, header.ny, header.nx),
        mode=header.mode,
        ext_bytes=ext_bytes,
        itemsize=itemsize,
        size=size,
    )
    return header


def write_stack(
    path: str | os.PathLike[str],
    data: np.ndarray,
    voxel_size_a: float,
    *,
    label: str = "",
    durable: bool = True,
) -> None:
    """Write ``data`` (n, ny, nx) as a float32 image stack (ispg 0) with the pixel size set.

    The values are written unchanged; the header's min/max/mean/rms are computed by mrcfile
    (once, by ``set_data``: a second pass over a 50 MB stack costs a quarter of a second).
    The header carries ``label`` (up to 80 characters) or none: mrcfile's default label holds
    the wall-clock time, which would make two writes of the same images differ.
    """
    arr = np.ascontiguousarray(data, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[np.newaxis]
    with atomic_path(path, durable=durable) as tmp, mrcfile.new(tmp, overwrite=True) as mrc:
        mrc.set_data(arr)
        mrc.set_image_stack()
        mrc.voxel_size = float(voxel_size_a)
        mrc.header.label[0] = label[:80].ljust(80) if label else b""
        mrc.header.nlabl = 1 if label else 0


def read_section(
    path: str | os.PathLike[str], index: int, *, row_step: int = 1, col_step: int = 1
) -> np.ndarray:
    """One image (z section) of a stack as float32 ``(ny, nx)``, read through a memory map so
    only that image's pages are touched: a 4 GB tilt series costs the memory of one tilt.

    ``row_step``/``col_step`` > 1 read every n-th row/column only (a preview of a large
    image reads a fraction of its pages). The header is checked first, as in
    :func:`read_header`.

    Raises:
        MissingFileError, FormatError: as :func:`read_header`.
        IndexError: ``index`` is not a section of the file.
    """
    header = read_header(path)
    if not 0 <= index < header.nz:
        raise IndexError(f"section {index} of {header.nz}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with mrcfile.mmap(path, mode="r", permissive=True) as mrc:
                data = mrc.data
                if data is None:
                    raise FormatError("not a readable MRC file: no data block", where=Path(path))
                plane = data[index] if data.ndim == 3 else data
                return np.array(plane[::row_step, ::col_step], dtype=np.float32)
        except (ValueError, OSError, EOFError) as err:
            raise FormatError(f"not a readable MRC file: {err}", where=Path(path)) from err
