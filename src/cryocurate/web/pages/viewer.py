"""View Tomogram: the in-browser viewer page and the endpoints it reads.

``GET /runs/{id}/view`` · ``GET /tomograms/{id}/view`` (and ``.json`` twins)
    The viewer page: the tomogram's pyramid levels, the annotation layers and which are shown
    by default (:func:`cryocurate.catalog.run_pages.default_layers`).
``GET /tomograms/{id}/slice.png?z=&level=``
    One z slice of one pyramid level as an 8-bit greyscale PNG. The contrast window is the
    level's robust percentiles (0.5 %, 99.5 %), computed once per level and cached, so every
    slice of a tomogram has the same grey scale (the browser adds its own contrast on top).
``GET /annotations/{id}/points.json[?z0=&z1=]``
    A point annotation's points (voxel ``x, y, z``), and for oriented points each rotated
    x axis (the first column of ``xyz_rotation_matrix``), optionally only ``z0 ≤ z < z1``.
``GET /annotations/{id}/outline.png?z=&level=&colour=``
    The outline of a segmentation mask on one slice of one level of its pyramid, as a
    transparent PNG with the outline in ``colour``.

Slices never come from the MRC: they come from the OME-Zarr pyramid. A level up to
``LEVEL_CACHE_BYTES`` is read into memory whole on its first slice (one 256³ chunk band is
decoded once, not once per slice) and kept in a small LRU; a larger level is read one slice at
a time. The viewer opens at the finest level up to ``OPEN_LEVEL_BYTES``, so a 2 GB tomogram
opens on its 4×-binned level (about 32 MB) in well under a second.
"""

from __future__ import annotations

import io
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from PIL import Image

from cryocurate.catalog.run_pages import annotation_files, tomogram_files, viewer_setup
from cryocurate.errors import CryocurateError, InputError, NotFoundError
from cryocurate.formats.annotations import read_ndjson
from cryocurate.formats.omezarr import read_level, read_pyramid_info
from cryocurate.formats.png import png_bytes, robust_window, scale_to_uint8
from cryocurate.grading import access
from cryocurate.portal import Portal
from cryocurate.web.auth import current_user
from cryocurate.web.deps import DbInt, portal_of
from cryocurate.web.pages.render import render

router = APIRouter()

#: A level up to this size is held in memory whole once a slice of it is asked for.
LEVEL_CACHE_BYTES = 256 * 2**20
#: The cache holds at most this much in all (least recently used levels go first).
CACHE_BYTES = 768 * 2**20
#: The viewer opens at the finest level up to this size.
OPEN_LEVEL_BYTES = 64 * 2**20
#: Values sampled for a level's percentiles.
SAMPLE_VALUES = 2_000_000
SLICE_CACHE_CONTROL = "public, max-age=3600"


# ── the level cache ─────────────────────────────────────────────────────────────────────────


@dataclass
class _Level:
    data: np.ndarray | None  # the whole level, or None when it is too large to hold
    lo: float
    hi: float
    nbytes: int


class LevelCache:
    """Pyramid levels held in memory (LRU by bytes) with their contrast windows."""

    def __init__(self, max_bytes: int = CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, int, int], _Level] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[tuple[str, int, int], threading.Lock] = {}

    def level(self, zarr_dir: Path, level: int) -> _Level:
        key = (str(zarr_dir), level, _mtime_ns(zarr_dir))
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:  # one thread loads a level; the others wait for it
            with self._lock:
                if key in self._items:
                    return self._items[key]
            item = self._load(zarr_dir, level)
            with self._lock:
                self._items[key] = item
                self._loading.pop(key, None)
                total = sum(i.nbytes for i in self._items.values())
                while total > self.max_bytes and len(self._items) > 1:
                    _, old = self._items.popitem(last=False)
                    total -= old.nbytes
            return item

    def _load(self, zarr_dir: Path, level: int) -> _Level:
        arr = read_level(zarr_dir, level)
        nbytes = int(np.prod(arr.shape)) * np.dtype(str(arr.dtype)).itemsize
        if nbytes <= LEVEL_CACHE_BYTES:
            data = np.asarray(arr[...])
            lo, hi = _window(data)
            return _Level(data, lo, hi, nbytes)
        # Too large to hold: borrow the contrast of the coarsest level (same intensities).
        info = read_pyramid_info(zarr_dir)
        coarse = self.level(zarr_dir, info.levels - 1) if level != info.levels - 1 else None
        if coarse is not None:
            return _Level(None, coarse.lo, coarse.hi, 0)
        mid = np.asarray(arr[arr.shape[0] // 2])
        lo, hi = _window(mid)
        return _Level(None, lo, hi, 0)


def _mtime_ns(path: Path) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


def _window(data: np.ndarray) -> tuple[float, float]:
    """Robust percentiles of ``data`` (a strided sample of at most ``SAMPLE_VALUES``)."""
    flat = data.reshape(-1)
    step = max(1, flat.size // SAMPLE_VALUES)
    return robust_window(flat[::step].astype(np.float32, copy=False))


CACHE = LevelCache()


def _slice(zarr_dir: Path, level: int, z: int) -> tuple[np.ndarray, _Level]:
    item = CACHE.level(zarr_dir, level)
    if item.data is not None:
        if not 0 <= z < item.data.shape[0]:
            raise IndexError(z)
        return item.data[z], item
    arr = read_level(zarr_dir, level)
    if not 0 <= z < arr.shape[0]:
        raise IndexError(z)
    return np.asarray(arr[z]), item


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def slice_png(zarr_dir: Path, level: int, z: int) -> bytes:
    """One slice as an 8-bit PNG in the level's cached contrast window."""
    plane, item = _slice(zarr_dir, level, z)
    return png_bytes(scale_to_uint8(plane, item.lo, item.hi))


def outline(mask: np.ndarray) -> np.ndarray:
    """The boundary pixels of a 2D label image: labelled pixels with a differently labelled
    4-neighbour (or on the image edge)."""
    padded = np.pad(mask, 1, mode="constant")
    centre = padded[1:-1, 1:-1]
    same = (
        (padded[:-2, 1:-1] == centre)
        & (padded[2:, 1:-1] == centre)
        & (padded[1:-1, :-2] == centre)
        & (padded[1:-1, 2:] == centre)
    )
    return (mask != 0) & ~same


def outline_png(zarr_dir: Path, level: int, z: int, colour: tuple[int, int, int]) -> bytes:
    plane, _ = _slice(zarr_dir, level, z)
    edge = outline(plane)
    rgba = np.zeros((*plane.shape, 4), dtype=np.uint8)
    rgba[edge] = (*colour, 255)
    return _png(Image.fromarray(rgba, mode="RGBA"))


# ── pages ───────────────────────────────────────────────────────────────────────────────────


def _levels(portal: Portal, omezarr_dir: str | None) -> tuple[list[dict[str, Any]], int]:
    if not omezarr_dir:
        return [], 0
    info = read_pyramid_info(portal.data_dir / omezarr_dir)
    itemsize = np.dtype(info.dtype).itemsize if info.dtype else 4
    levels = [
        {
            "level": lv,
            "shape_zyx": list(shape),
            "binning": info.binning[lv],
            "nbytes": int(np.prod(shape)) * itemsize,
        }
        for lv, shape in enumerate(info.shapes)
    ]
    fitting = [lv["level"] for lv in levels if lv["nbytes"] <= OPEN_LEVEL_BYTES]
    return levels, (min(fitting) if fitting else len(levels) - 1)


def _viewer(request: Request, **which: int) -> Response:
    portal = portal_of(request)
    with portal.transaction() as session:
        guards = access.annotation_guards(current_user(request))  # layers this visitor sees
        setup = viewer_setup(session, **which, guards=guards)
    if setup is None:
        what = " and ".join(f"{k.removesuffix('_id')} {v}" for k, v in which.items())
        raise NotFoundError(f"no tomogram to view for {what}")
    tomo = setup["tomogram"]
    omezarr = tomo["omezarr_url"].removeprefix("/files/") if tomo["omezarr_url"] else None
    try:
        levels, start = _levels(portal, omezarr)
    except CryocurateError as err:
        raise NotFoundError(f"tomogram pyramid unreadable: {err}") from err
    viewer = {
        "tomogram_id": tomo["id"],
        "voxel_spacing": tomo["voxel_spacing"],
        "levels": levels,
        "level": start,
        "slice_url": f"/tomograms/{tomo['id']}/slice.png",
        "layers": setup["layers"],
    }
    return render(request, "viewer.html", {**setup, "viewer": viewer})


@router.get("/runs/{run_id:int}/view.json", include_in_schema=False)
@router.get("/runs/{run_id:int}/view", name="run_viewer", include_in_schema=False)
def run_viewer(run_id: DbInt, request: Request) -> Response:
    """The viewer on a run's default tomogram."""
    return _viewer(request, run_id=run_id)


@router.get("/tomograms/{tomogram_id:int}/view.json", include_in_schema=False)
@router.get("/tomograms/{tomogram_id:int}/view", name="tomogram_viewer", include_in_schema=False)
def tomogram_viewer(tomogram_id: DbInt, request: Request) -> Response:
    """The viewer on one tomogram."""
    return _viewer(request, tomogram_id=tomogram_id)


# ── data endpoints ──────────────────────────────────────────────────────────────────────────


@router.get(
    "/tomograms/{tomogram_id:int}/slice.png",
    name="tomogram_slice",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "The slice as a PNG"}},
)
def tomogram_slice(
    tomogram_id: DbInt,
    request: Request,
    z: Annotated[int, Query(ge=0)],
    level: Annotated[int, Query(ge=0, le=16)] = 0,
) -> Response:
    """One z slice of one pyramid level, as a PNG."""
    portal = portal_of(request)
    with portal.transaction() as session:
        files = tomogram_files(session, tomogram_id)
    if files is None or not files.omezarr_dir:
        raise NotFoundError("no such tomogram pyramid")
    try:
        body = slice_png(portal.data_dir / files.omezarr_dir, level, z)
    except IndexError as err:
        raise NotFoundError("no such slice or level") from err
    except CryocurateError as err:
        raise NotFoundError(str(err)) from err
    return Response(body, media_type="image/png", headers={"Cache-Control": SLICE_CACHE_CONTROL})


@router.get("/annotations/{annotation_id:int}/points.json", name="annotation_points")
def annotation_points(
    annotation_id: DbInt,
    request: Request,
    z0: float | None = None,
    z1: float | None = None,
) -> JSONResponse:
    """A point annotation's points in voxels (``x, y, z``), and oriented points' x axes."""
    portal = portal_of(request)
    guards = access.annotation_guards(current_user(request))
    with portal.transaction() as session:
        files = annotation_files(session, annotation_id, guards)
    if files is None or not files.ndjson:
        raise NotFoundError("no such point annotation")
    try:
        points = read_ndjson(portal.data_dir / files.ndjson)
    except CryocurateError as err:
        raise NotFoundError(str(err)) from err
    keep = np.ones(len(points), dtype=bool)
    if z0 is not None:
        keep &= points.xyz[:, 2] >= z0
    if z1 is not None:
        keep &= points.xyz[:, 2] < z1
    xyz = np.round(points.xyz[keep], 3)
    axes = None
    if points.rotations is not None:
        axes = np.round(points.rotations[keep][:, :, 0], 4).tolist()  # R · (1, 0, 0)
    return JSONResponse(
        {
            "annotation_id": annotation_id,
            "kind": points.kind,
            "voxel_spacing": files.voxel_spacing,
            "count": int(keep.sum()),
            "xyz": xyz.tolist(),
            "x_axes": axes,
            "instance_ids": points.instance_ids[keep].tolist()
            if points.instance_ids is not None
            else None,
        },
        headers={"Cache-Control": SLICE_CACHE_CONTROL},
    )


_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")


@router.get(
    "/annotations/{annotation_id:int}/outline.png",
    name="annotation_outline",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "The outline as a PNG"}},
)
def annotation_outline(
    annotation_id: DbInt,
    request: Request,
    z: Annotated[int, Query(ge=0)],
    level: Annotated[int, Query(ge=0, le=16)] = 0,
    colour: Annotated[str, Query(pattern="^#?[0-9a-fA-F]{6}$")] = "ff4fd8",
) -> Response:
    """The outline of a segmentation mask on one slice, as a transparent PNG."""
    match = _HEX.match(colour)
    if match is None:
        raise InputError(f"colour must be 6 hex digits, not {colour!r}")
    rgb = bytes.fromhex(match.group(1))
    portal = portal_of(request)
    guards = access.annotation_guards(current_user(request))
    with portal.transaction() as session:
        files = annotation_files(session, annotation_id, guards)
    if files is None or not files.mask_zarr:
        raise NotFoundError("no such segmentation mask")
    try:
        body = outline_png(portal.data_dir / files.mask_zarr, level, z, (rgb[0], rgb[1], rgb[2]))
    except IndexError as err:
        raise NotFoundError("no such slice or level") from err
    except CryocurateError as err:
        raise NotFoundError(str(err)) from err
    return Response(body, media_type="image/png", headers={"Cache-Control": SLICE_CACHE_CONTROL})
