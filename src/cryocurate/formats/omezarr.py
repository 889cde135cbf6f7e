"""OME-Zarr image pyramids of tomograms and masks, written from MRC volumes in bounded memory.

The CryoET Data Portal publishes every tomogram and segmentation mask twice: as an MRC file
and as an OME-Zarr pyramid that viewers (Neuroglancer, napari) and copick read. This module
writes that pyramid the way the portal does, and reads it back for viewers and the catalog:

- OME-NGFF 0.4 on Zarr format 2 (``.zgroup``/``.zattrs``/``.zarray``, ``/`` as chunk-key
  separator, Blosc-LZ4 chunks), which every portal tool reads;
- datasets ``"0"``, ``"1"``, ``"2"`` binned 1×, 2×, 4×; chunks 256³ (clipped to the volume);
- axes ``z, y, x``, each ``{"type": "space", "unit": "angstrom"}``; level ``l`` has the single
  coordinate transformation ``scale = [vs·2^l] * 3`` (no translation, as on the portal).

Binning and odd sizes. Each level is the previous one binned 2×2×2, by **mean** for
tomograms and by **max** for label masks (:func:`write_mask_pyramid`): labels must not be
averaged, max keeps every labelled object visible at every level however thin it is, and for
the portal's binary masks it is exactly what the portal computes (``downscale_local_mean``
then ``> 0``). A mode would be marginally more faithful at boundaries between two labels but
costs far more and can drop small objects. An odd size rounds **up** (``n → ⌈n/2⌉``), as on
the portal, whose ``skimage.transform.downscale_local_mean`` pads the volume to a multiple of
the block size; level shapes therefore match the portal's ``scale_1_dimensions`` etc. Unlike
the portal, the last, partial block is averaged over the voxels it has rather than padded
with zeros, so the edge of a binned tomogram is not darkened. Rounding down instead would
silently drop the last plane of every odd axis, at every level.

Memory. Level 0 is read from the MRC with plain positioned reads, one block of at most
``_BLOCK_BYTES`` at a time (a z/y chunk band as many chunks wide as fit: one 256³ float32
chunk) — never the whole volume, and not through a memory map either: pages of a mapped
file stay resident (and count in the process's RSS) until the kernel needs them back. Each
coarser level is then built chunk by chunk from level-0 pieces read from the MRC again and
binned ``l`` times, so at most one output chunk and one level-0 chunk are in memory at once
(re-reading the MRC, usually from the page cache, is also faster than decoding the level
below from the zarr). A 1000×1000×300 float32 tomogram (1.2 GB) peaks at about 260 MiB RSS,
50 of them the interpreter and its imports. The price is I/O: rows are read full width, so
each level reads the MRC ``⌈nx / 256⌉`` times (cheap from the page cache; slow for a volume
much larger than the machine's memory).

Atomicity. The pyramid is written into a temporary folder next to the target and renamed into
place at the end; a failure (a truncated MRC, a NaN, Ctrl-C) removes it and leaves the target
as it was.

    >>> info = write_pyramid("TS_01.mrc", "TS_01.zarr", voxel_spacing_a=13.48)  # doctest: +SKIP
    >>> info.shapes, info.scale_dimensions()["scale_1_dimensions"]            # doctest: +SKIP
    (((300, 1000, 1000), (150, 500, 500), (75, 250, 250)), '500,500,150')
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import mrcfile
import mrcfile.utils
import numcodecs
import numpy as np
import zarr
import zarr.errors
import zarr.storage
from numpy.typing import DTypeLike

from cryocurate.atomic import _UMASK, TMP_PREFIX, fsync_dir, fsync_tree
from cryocurate.errors import ConflictError, FormatError, MissingFileError
from cryocurate.formats.mrc import HEADER_BYTES, _check_header, check_data_size

NGFF_VERSION = "0.4"
UNIT = "angstrom"
AXES = ("z", "y", "x")
LEVELS = 3
CHUNK = (256, 256, 256)
#: Blosc-LZ4 with byte shuffle: zarr-python 2's default, read by every zarr v2 implementation.
COMPRESSOR = numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)
#: Upper bound of one block read from the MRC while writing level 0.
_BLOCK_BYTES = 64 * 2**20
#: Length units of NGFF 0.4 (UDUNITS-2 names) that we convert to ångström.
_ANGSTROMS_PER_UNIT = {"angstrom": 1.0, "nanometer": 10.0, "picometer": 0.01, "micrometer": 1e4}

Shape3 = tuple[int, int, int]
Scale3 = tuple[float, float, float]
Progress = Callable[[int, int], None]
Reduction = Literal["mean", "max"]


# ── reading MRC volumes in blocks ───────────────────────────────────────────────────────────


class MrcVolume:
    """A 3D MRC volume whose header has been checked, read block by block with plain reads.

    ``shape`` is ``(nz, ny, nx)``; a single image reads as a volume one slice deep. ``dtype``
    is the file's own (byte order included); :meth:`read` converts to the dtype asked for.
    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            size = self.path.stat().st_size
        except OSError as err:
            raise MissingFileError(f"cannot read: {err.strerror or err}", where=self.path) from err
        if not self.path.is_file():
            raise MissingFileError("is not a file", where=self.path)
        if size < HEADER_BYTES:
            raise FormatError(
                f"not an MRC file: {size} bytes, shorter than the {HEADER_BYTES}-byte header",
                where=self.path,
                hint="the file is truncated or of another kind",
            )
        _check_header(self.path, size)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                with mrcfile.open(self.path, mode="r", permissive=True, header_only=True) as mrc:
                    header = mrc.header
                    voxel = float(mrc.voxel_size.x)
            except (ValueError, OSError, EOFError) as err:
                raise FormatError(f"not a readable MRC file: {err}", where=self.path) from err
        self.mode = int(header.mode)
        try:
            dtype = np.dtype(mrcfile.utils.data_dtype_from_header(header))
        except ValueError as err:
            raise FormatError(f"unsupported MRC mode {self.mode}", where=self.path) from err
        if dtype.kind == "c":
            raise FormatError(
                f"holds complex values (mode {self.mode}), not a real-valued volume",
                where=self.path,
            )
        shape = tuple(int(n) for n in mrcfile.utils.data_shape_from_header(header))
        if len(shape) == 2:
            shape = (1, *shape)
        if len(shape) != 3:
            raise FormatError(
                f"holds a stack of volumes (shape {shape}), not one volume", where=self.path
            )
        self.dtype = dtype
        self.shape: Shape3 = (shape[0], shape[1], shape[2])
        self.voxel_size_a = voxel
        self._offset = HEADER_BYTES + int(header.nsymbt)
        check_data_size(
            self.path,
            shape=self.shape,
            mode=self.mode,
            ext_bytes=int(header.nsymbt),
            itemsize=dtype.itemsize,
            size=size,
        )
        self._fh = open(self.path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        self._scratch = bytearray()

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> MrcVolume:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(
        self,
        z: slice,
        y: slice = slice(None),
        x: slice = slice(None),
        *,
        dtype: DTypeLike = np.float32,
    ) -> np.ndarray:
        """Read ``volume[z, y, x]`` (unit-step slices) as a new C-ordered array of ``dtype``.

        Each z plane costs one read of the rows ``y`` spans, full width, so the memory used is
        the result plus one such band of rows.
        """
        nz, ny, nx = self.shape
        (z0, z1, zs), (y0, y1, ys), (x0, x1, xs) = z.indices(nz), y.indices(ny), x.indices(nx)
        if (zs, ys, xs) != (1, 1, 1):
            raise ValueError("MrcVolume.read takes slices with step 1")
        z1, y1, x1 = max(z0, z1), max(y0, y1), max(x0, x1)
        out = np.empty((z1 - z0, y1 - y0, x1 - x0), dtype=dtype)
        item = self.dtype.itemsize
        nbytes = (y1 - y0) * nx * item
        if len(self._scratch) < nbytes:
            self._scratch = bytearray(nbytes)
        view = memoryview(self._scratch)[:nbytes]
        for i, plane in enumerate(range(z0, z1)):
            self._read_exactly(self._offset + (plane * ny + y0) * nx * item, view)
            rows = np.frombuffer(view, dtype=self.dtype).reshape(y1 - y0, nx)
            out[i] = rows[:, x0:x1]
        return out

    def _read_exactly(self, offset: int, view: memoryview) -> None:
        self._fh.seek(offset)
        done = 0
        while done < len(view):
            n = self._fh.readinto(view[done:])
            if not n:
                raise FormatError(
                    f"truncated: the data ends at byte {offset + done:,}",
                    where=self.path,
                    hint="the file changed while it was read, or was copied incompletely",
                )
            done += n


# ── what a pyramid is ───────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class PyramidInfo:
    """The facts of one OME-Zarr pyramid that the catalog and the viewers need.

    ``shapes``, ``scales`` and ``chunks`` have one ``(z, y, x)`` entry per level, finest
    first. ``scales`` are in ``unit`` (``"angstrom"`` for what we write); ``unit`` is ``None``
    for the portal's earliest pyramids, whose scales were unit-less binning factors 1/2/4.
    """

    path: Path
    shapes: tuple[Shape3, ...]
    scales: tuple[Scale3, ...]
    chunks: tuple[Shape3, ...]
    dtype: str
    unit: str | None = UNIT
    paths: tuple[str, ...] = ("0", "1", "2")
    reduction: str | None = None

    @property
    def levels(self) -> int:
        return len(self.shapes)

    @property
    def voxel_spacing_a(self) -> float | None:
        """The finest level's voxel size in Å, or ``None`` when the scales carry no unit."""
        factor = _ANGSTROMS_PER_UNIT.get(self.unit or "")
        return None if factor is None else self.scales[0][2] * factor

    @property
    def binning(self) -> tuple[float, ...]:
        """Each level's binning relative to level 0 (1, 2, 4…), with or without units."""
        return tuple(scale[2] / self.scales[0][2] for scale in self.scales)

    def dimensions(self, level: int) -> str:
        """``"x,y,z"`` of one level, as the portal's ``scale_<l>_dimensions`` strings."""
        nz, ny, nx = self.shapes[level]
        return f"{nx},{ny},{nz}"

    def scale_dimensions(self) -> dict[str, str]:
        """``{"scale_0_dimensions": "x,y,z", …}``: the portal's Tomogram fields."""
        return {f"scale_{lv}_dimensions": self.dimensions(lv) for lv in range(self.levels)}

    def metadata_scales(self) -> list[dict[str, int]]:
        """``[{"z":…, "y":…, "x":…}, …]``: ``scales`` of the portal's tomogram_metadata.json."""
        return [dict(zip(AXES, shape, strict=True)) for shape in self.shapes]

    def metadata_size(self) -> dict[str, int]:
        """``{"z":…, "y":…, "x":…}`` of level 0: ``size`` of tomogram_metadata.json."""
        return self.metadata_scales()[0]


def level_shapes(shape: Sequence[int], levels: int) -> list[Shape3]:
    """Shapes of ``levels`` levels, each the previous one halved, odd sizes rounded up."""
    shapes = [(int(shape[0]), int(shape[1]), int(shape[2]))]
    for _ in range(levels - 1):
        z, y, x = shapes[-1]
        shapes.append(((z + 1) // 2, (y + 1) // 2, (x + 1) // 2))
    return shapes


def multiscales_metadata(
    voxel_spacing_a: float, levels: int, *, name: str = "", reduction: Reduction = "mean"
) -> dict[str, Any]:
    """The root ``.zattrs`` of a pyramid: NGFF 0.4 ``multiscales`` with Å scales."""
    datasets = [
        {
            "path": str(lv),
            "coordinateTransformations": [
                {"type": "scale", "scale": [float(voxel_spacing_a) * 2**lv] * 3}
            ],
        }
        for lv in range(levels)
    ]
    how = "mean" if reduction == "mean" else "maximum"
    return {
        "multiscales": [
            {
                "version": NGFF_VERSION,
                "name": name,
                "axes": [{"name": a, "type": "space", "unit": UNIT} for a in AXES],
                "datasets": datasets,
                "type": reduction,
                "metadata": {
                    "description": f"each level is the previous one binned 2x2x2 by {how}; "
                    "odd sizes round up, the last block reduced over the voxels it has",
                    "method": "cryocurate.formats.omezarr",
                },
            }
        ]
    }


# ── writing ─────────────────────────────────────────────────────────────────────────────────


def write_pyramid(
    mrc_path: str | os.PathLike[str],
    zarr_dir: str | os.PathLike[str],
    *,
    voxel_spacing_a: float | None,
    levels: int = LEVELS,
    chunk: Sequence[int] = CHUNK,
    progress: Progress | None = None,
    durable: bool = True,
) -> PyramidInfo:
    """Write the float32 OME-Zarr pyramid of the tomogram in ``mrc_path`` to ``zarr_dir``.

    Level 0 holds the MRC's values converted to float32 (int8/int16/uint16/float16 keep their
    numbers); levels 1… are 2×2×2 means. ``voxel_spacing_a`` sets the scales (``None``: the
    MRC header's voxel size, rounded to 3 decimals as the portal does). ``progress(done,
    total)`` is called with 0 first and then after each block (one z/y band of level 0, or
    one chunk of a coarser level). An existing pyramid at ``zarr_dir`` is replaced; a
    ``durable`` write is fsynced before it is renamed into place (pass ``False`` inside a
    staging folder that is synced as a whole).

    Raises:
        MissingFileError: ``mrc_path`` does not exist.
        FormatError: not an MRC volume, truncated, complex, or with NaN/infinite voxels.
        ConflictError: ``zarr_dir`` exists and is not a zarr folder.
    """
    return _write(
        mrc_path, zarr_dir, voxel_spacing_a, levels, chunk, progress, durable, "mean", np.float32
    )


def write_mask_pyramid(
    mrc_path: str | os.PathLike[str],
    zarr_dir: str | os.PathLike[str],
    *,
    voxel_spacing_a: float | None,
    levels: int = LEVELS,
    chunk: Sequence[int] = CHUNK,
    dtype: DTypeLike | None = None,
    progress: Progress | None = None,
    durable: bool = True,
) -> PyramidInfo:
    """Write the OME-Zarr pyramid of a label mask (binary or multi-label), binned by max.

    The labels keep the MRC's integer dtype (int8 for the portal's masks), or are converted to
    the integer ``dtype`` given, which a float mask needs; its values must then be whole
    numbers that fit. Labels are assumed non-negative (0 = background): where two labels
    meet inside one 2×2×2 block, the higher one wins. All-zero chunks are not stored (zarr
    reads them as the fill value 0). Otherwise as :func:`write_pyramid`.
    """
    with MrcVolume(mrc_path) as vol:
        source, mode = vol.dtype, vol.mode
    if dtype is None:
        if source.kind not in "iu":
            raise FormatError(
                f"the mask is stored as {source.name} (mode {mode}), not integers",
                where=mrc_path,
                hint="pass dtype='int8' (or another integer type) to convert its labels",
            )
        target = source.newbyteorder("=")
    else:
        target = np.dtype(dtype)
        if target.kind not in "iu":
            raise ValueError(f"a mask's dtype must be an integer type, not {target.name}")
    return _write(
        mrc_path, zarr_dir, voxel_spacing_a, levels, chunk, progress, durable, "max", target
    )


def _write(
    mrc_path: str | os.PathLike[str],
    zarr_dir: str | os.PathLike[str],
    voxel_spacing_a: float | None,
    levels: int,
    chunk: Sequence[int],
    progress: Progress | None,
    durable: bool,
    reduction: Reduction,
    dtype: DTypeLike,
) -> PyramidInfo:
    if levels < 1:
        raise ValueError(f"levels must be at least 1, not {levels}")
    if len(chunk) != 3 or min(int(c) for c in chunk) < 1:
        raise ValueError(f"chunk must be three positive sizes (z, y, x), not {tuple(chunk)}")
    dtype = np.dtype(dtype)
    target = Path(zarr_dir)
    with MrcVolume(mrc_path) as vol:
        if voxel_spacing_a is None:
            voxel_spacing_a = round(vol.voxel_size_a, 3)
            if voxel_spacing_a <= 0:
                raise FormatError(
                    "the header gives no voxel size",
                    where=vol.path,
                    hint="pass the voxel spacing in Å explicitly",
                )
        voxel_spacing_a = float(voxel_spacing_a)
        if not (math.isfinite(voxel_spacing_a) and voxel_spacing_a > 0):
            raise ValueError(f"voxel_spacing_a must be a positive number, not {voxel_spacing_a}")
        shapes = level_shapes(vol.shape, levels)
        chunks = [_clip(chunk, shape) for shape in shapes]
        with _staged_folder(target, durable=durable) as tmp:
            root = zarr.open_group(store=zarr.storage.LocalStore(tmp), mode="w", zarr_format=2)
            root.attrs.update(
                multiscales_metadata(voxel_spacing_a, levels, name=target.stem, reduction=reduction)
            )
            arrays = [
                root.create_array(
                    str(lv),
                    shape=shape,
                    chunks=chunks[lv],
                    dtype=dtype,
                    compressors=COMPRESSOR,
                    fill_value=0,
                    chunk_key_encoding={"name": "v2", "separator": "/"},
                )
                for lv, shape in enumerate(shapes)
            ]
            # Tomograms are read straight into float32; labels in their own dtype, so that a
            # conversion can be checked before it happens.
            read_as = dtype if reduction == "mean" else vol.dtype.newbyteorder("=")
            itemsize = max(4, read_as.itemsize, dtype.itemsize)
            plan = _level0_blocks(vol.shape, chunks[0], itemsize)
            total = len(plan) + sum(
                _count_chunks(shapes[lv], chunks[lv]) for lv in range(1, levels)
            )
            tick = _ticker(progress, total)

            def read(block: tuple[slice, ...]) -> np.ndarray:
                return _checked(vol.read(*block, dtype=read_as), dtype, vol.path, block[0])

            for block in plan:
                data = read(block)
                arrays[0][block] = data
                del data
                tick()
            for lv in range(1, levels):
                _write_level(read, vol.shape, chunks[0], arrays[lv], lv, reduction, tick)
    return PyramidInfo(
        path=target,
        shapes=tuple(shapes),
        scales=tuple((voxel_spacing_a * 2**lv,) * 3 for lv in range(levels)),
        chunks=tuple(chunks),
        dtype=dtype.name,
        unit=UNIT,
        paths=tuple(str(lv) for lv in range(levels)),
        reduction=reduction,
    )


def _clip(chunk: Sequence[int], shape: Shape3) -> Shape3:
    return (
        min(int(chunk[0]), shape[0]),
        min(int(chunk[1]), shape[1]),
        min(int(chunk[2]), shape[2]),
    )


def _count_chunks(shape: Shape3, chunks: Shape3) -> int:
    return math.prod(-(-n // c) for n, c in zip(shape, chunks, strict=True))


def _ranges(n: int, step: int) -> list[slice]:
    return [slice(a, min(a + step, n)) for a in range(0, n, step)]


def _level0_blocks(shape: Shape3, chunks: Shape3, itemsize: int) -> list[tuple[slice, ...]]:
    """Chunk-aligned blocks of level 0: one z/y chunk band, as many x chunks as fit."""
    cz, cy, cx = chunks
    per_chunk = cz * cy * cx * itemsize
    width = cx * max(1, _BLOCK_BYTES // per_chunk)
    return [
        (zs, ys, xs)
        for zs in _ranges(shape[0], cz)
        for ys in _ranges(shape[1], cy)
        for xs in _ranges(shape[2], width)
    ]


def _ticker(progress: Progress | None, total: int) -> Callable[[], None]:
    done = 0
    if progress is not None:
        progress(0, total)

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    return tick


def _checked(data: np.ndarray, dtype: np.dtype, path: Path, zs: slice) -> np.ndarray:
    """``data`` as ``dtype``, refusing NaN/infinite voxels and labels the dtype cannot hold."""
    where = f"slices {zs.start}–{zs.stop - 1}, 0-based"
    if dtype.kind == "f":
        if not np.isfinite(data).all():
            raise FormatError(
                f"NaN or infinite voxels (in {where})",
                where=path,
                hint="the reconstruction is damaged; re-export it",
            )
        return data.astype(dtype, copy=False)
    if data.dtype == dtype:
        return data
    info = np.iinfo(dtype)
    lo, hi = data.min(), data.max()
    whole = data.dtype.kind in "iu" or bool(np.array_equal(np.floor(data), data))
    if not whole or lo < info.min or hi > info.max:
        raise FormatError(
            f"mask values that are not whole numbers or do not fit {dtype.name} (in {where})",
            where=path,
            hint="pass a wider integer dtype, or threshold the mask first",
        )
    return data.astype(dtype)


def _write_level(
    read: Callable[[tuple[slice, ...]], np.ndarray],
    shape0: Shape3,
    chunk0: Shape3,
    dst: zarr.Array,
    level: int,
    reduction: Reduction,
    tick: Callable[[], None],
) -> None:
    """Fill level ``level`` chunk by chunk, binning pieces of level 0 read from the MRC again.

    Re-reading the MRC (from the page cache, typically) is faster than decoding the level
    below from the zarr and needs less memory: one output chunk plus one level-0 piece of at
    most a level-0 chunk. Binning a piece ``level`` times gives exactly the values of binning
    the whole volume level by level, because pieces start on multiples of ``2^level`` and
    only the volume's own end is padded.
    """
    factor = 2**level
    # The piece of level ``level`` that one level-0 chunk (rounded to the factor) bins into.
    steps = [max(1, c // factor) for c in chunk0]
    for zs in _ranges(dst.shape[0], dst.chunks[0]):
        for ys in _ranges(dst.shape[1], dst.chunks[1]):
            for xs in _ranges(dst.shape[2], dst.chunks[2]):
                whole = (zs, ys, xs)
                out = np.empty(tuple(s.stop - s.start for s in whole), dst.dtype)
                for sz in _sub(zs, steps[0]):
                    for sy in _sub(ys, steps[1]):
                        for sx in _sub(xs, steps[2]):
                            piece = read(
                                tuple(
                                    slice(s.start * factor, min(s.stop * factor, n))
                                    for s, n in zip((sz, sy, sx), shape0, strict=True)
                                )
                            )
                            for _ in range(level):
                                piece = bin2(piece, reduction)
                            out[
                                sz.start - zs.start : sz.stop - zs.start,
                                sy.start - ys.start : sy.stop - ys.start,
                                sx.start - xs.start : sx.stop - xs.start,
                            ] = piece
                            del piece
                dst[whole] = out
                del out
                tick()


def _sub(whole: slice, step: int) -> Iterator[slice]:
    for a in range(whole.start, whole.stop, step):
        yield slice(a, min(a + step, whole.stop))


def bin2(block: np.ndarray, reduction: Reduction = "mean") -> np.ndarray:
    """Bin a 3D block 2×2×2 by mean (float) or max (labels); odd sizes round up.

    The last block of an odd axis is reduced over the voxels it has (the block is padded by
    repeating its edge, which leaves a mean or a max unchanged). A mean is computed in the
    block's float dtype by pairwise sums, a max keeps the dtype.
    """
    if block.ndim != 3:
        raise ValueError(f"bin2 expects a 3D block, not shape {block.shape}")
    pad = [(0, n % 2) for n in block.shape]
    if any(p for _, p in pad):
        block = np.pad(block, pad, mode="edge")
    op = np.add if reduction == "mean" else np.maximum
    acc = op(block[0::2], block[1::2])
    acc = op(acc[:, 0::2], acc[:, 1::2])
    acc = op(acc[:, :, 0::2], acc[:, :, 1::2])
    if reduction == "mean":
        acc *= acc.dtype.type(0.125)
    return acc


# ── the temporary folder renamed into place ─────────────────────────────────────────────────


def _is_replaceable(path: Path) -> bool:
    """An existing target may be replaced only if it is an empty folder or a zarr."""
    if not path.is_dir() or path.is_symlink():
        return False
    names = {p.name for p in path.iterdir()}
    return not names or bool(names & {".zgroup", ".zattrs", ".zarray", "zarr.json"})


@contextlib.contextmanager
def _staged_folder(target: Path, *, durable: bool) -> Iterator[Path]:
    """Yield an empty temporary folder next to ``target``; rename it over ``target`` on success.

    A previous ``target`` is moved aside first and deleted after the rename, so for a moment
    between the two renames the target is absent (a directory cannot be renamed over a
    non-empty one). If the block raises, the temporary folder is deleted.
    """
    if (target.exists() or target.is_symlink()) and not _is_replaceable(target):
        raise ConflictError("exists and is not a zarr folder; refusing to replace it", where=target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{target.name}-", dir=target.parent))
    os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp makes it private; publish it as mkdir would
    try:
        yield tmp
        if durable:
            fsync_tree(tmp)
        old: Path | None = None
        if target.exists():
            old = target.with_name(f"{TMP_PREFIX}{target.name}-old-{uuid.uuid4().hex[:8]}")
            os.rename(target, old)
        try:
            os.rename(tmp, target)
        except BaseException:
            if old is not None:
                os.rename(old, target)
            raise
        if durable:
            fsync_dir(target.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ── reading ─────────────────────────────────────────────────────────────────────────────────


#: What zarr raises for a folder that is not a zarr, or holds malformed metadata.
_ZARR_ERRORS = (zarr.errors.BaseZarrError, ValueError, OSError, KeyError, TypeError)


def _open_group(path: Path) -> zarr.Group:
    if not path.is_dir():
        raise MissingFileError("no such zarr folder", where=path)
    try:
        return zarr.open_group(store=zarr.storage.LocalStore(path, read_only=True), mode="r")
    except _ZARR_ERRORS as err:
        raise FormatError(f"not a zarr group: {err}", where=path) from err


def _scale_of(transforms: Any, where: Path) -> list[float] | None:
    if not transforms:
        return None
    scale = [1.0, 1.0, 1.0]
    for t in transforms:
        if not isinstance(t, dict):
            raise FormatError("a coordinate transformation is not an object", where=where)
        if t.get("type") == "scale":
            values = t.get("scale")
            if not isinstance(values, list) or len(values) < 3:
                raise FormatError(f"a scale transform without 3 values: {values!r}", where=where)
            scale = [a * float(b) for a, b in zip(scale, values[-3:], strict=True)]
    return scale


def read_pyramid_info(zarr_dir: str | os.PathLike[str]) -> PyramidInfo:
    """Parse an OME-Zarr pyramid's ``multiscales`` metadata and its arrays' shapes and chunks.

    Accepts what we write, the portal's current pyramids, and its earliest ones whose axes
    carry no unit (``unit`` is then ``None`` and the scales are binning factors); NGFF 0.4 on
    Zarr v2 or 0.5 on Zarr v3 (metadata under ``"ome"``). Only 3D ``z, y, x`` images are
    accepted. Pyramids without transforms get the scales 1, 2, 4… and no unit.

    Raises:
        MissingFileError: ``zarr_dir`` is not a folder.
        FormatError: not a zarr group, or no usable ``multiscales`` metadata.
    """
    path = Path(zarr_dir)
    group = _open_group(path)
    attrs = dict(group.attrs)
    ome = attrs.get("ome")
    multiscales = attrs.get("multiscales") or (
        ome.get("multiscales") if isinstance(ome, dict) else None
    )
    if not isinstance(multiscales, list) or not multiscales or not isinstance(multiscales[0], dict):
        raise FormatError(
            "no OME-NGFF multiscales metadata", where=path, hint="is this an image pyramid?"
        )
    ms = multiscales[0]
    axes = ms.get("axes") or list(AXES)
    names = [a.get("name") if isinstance(a, dict) else a for a in axes]
    if names[-3:] != list(AXES) or len(names) != 3:
        raise FormatError(f"axes {names} are not z, y, x", where=path)
    units = {a.get("unit") if isinstance(a, dict) else None for a in axes}
    if len(units) != 1:
        raise FormatError(f"the axes have different units: {sorted(map(str, units))}", where=path)
    unit = units.pop()
    datasets = ms.get("datasets")
    if not isinstance(datasets, list) or not datasets:
        raise FormatError("multiscales metadata lists no datasets", where=path)
    global_scale = _scale_of(ms.get("coordinateTransformations"), path) or [1.0, 1.0, 1.0]
    shapes: list[Shape3] = []
    scales: list[Scale3] = []
    chunks: list[Shape3] = []
    paths: list[str] = []
    dtype = ""
    for lv, ds in enumerate(datasets):
        if not isinstance(ds, dict) or not isinstance(ds.get("path"), str):
            raise FormatError(f"dataset {lv} has no path", where=path)
        arr = _open_array(path, ds["path"])
        if arr.ndim != 3:
            raise FormatError(f"dataset {ds['path']!r} is {arr.ndim}D, not 3D", where=path)
        scale = _scale_of(ds.get("coordinateTransformations"), path)
        if scale is None:
            scale, unit = [float(2**lv)] * 3, None
        scale = [a * b for a, b in zip(scale, global_scale, strict=True)]
        shapes.append((int(arr.shape[0]), int(arr.shape[1]), int(arr.shape[2])))
        chunks.append((int(arr.chunks[0]), int(arr.chunks[1]), int(arr.chunks[2])))
        scales.append((scale[0], scale[1], scale[2]))
        paths.append(ds["path"])
        dtype = dtype or str(np.dtype(str(arr.dtype)).name)
    reduction = ms.get("type")
    return PyramidInfo(
        path=path,
        shapes=tuple(shapes),
        scales=tuple(scales),
        chunks=tuple(chunks),
        dtype=dtype,
        unit=unit,
        paths=tuple(paths),
        reduction=reduction if isinstance(reduction, str) else None,
    )


def _open_array(root: Path, sub: str) -> zarr.Array:
    where = root / sub
    if not where.is_dir():
        raise FormatError(f"dataset {sub!r} is listed but missing", where=root)
    try:
        return zarr.open_array(store=zarr.storage.LocalStore(where, read_only=True), mode="r")
    except _ZARR_ERRORS as err:
        raise FormatError(f"dataset {sub!r} is not a zarr array: {err}", where=root) from err


def read_level(zarr_dir: str | os.PathLike[str], level: int) -> zarr.Array:
    """The read-only zarr array of one pyramid level (0 = finest), indexed ``[z, y, x]``."""
    info = read_pyramid_info(zarr_dir)
    if not 0 <= level < info.levels:
        raise IndexError(f"level {level} out of range: the pyramid has {info.levels} levels")
    return _open_array(info.path, info.paths[level])


def read_slice(zarr_dir: str | os.PathLike[str], level: int, z: int) -> np.ndarray:
    """One z slice ``(y, x)`` of one level, as a numpy array (row 0 = top of the picture)."""
    arr = read_level(zarr_dir, level)
    if not 0 <= z < arr.shape[0]:
        raise IndexError(f"slice {z} out of range: level {level} has {arr.shape[0]} slices")
    return np.asarray(arr[z])
