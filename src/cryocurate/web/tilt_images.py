"""A tilt series as a grader needs to see it: single tilts to scrub, and a montage of all.

``GET /tiltseries/{id}/tilts.json``
    How many tilts, their angles (from the ``.rawtlt``, in file order), the order that sorts
    them by angle (dose-symmetric series are not acquired in angle order, and a grader
    scrubs from −60° to +60°), the tilt nearest 0°, and the montage's layout (so a click on
    a montage tile can open that tilt).
``GET /tiltseries/{id}/tilts/{index}.png``
    Tilt ``index`` (file order), binned by block means to at most ``MAX_TILT_PX`` on its
    long side (block means, not subsampling: low-dose tilts are noisy, and averaging is what
    makes a binned tilt readable).
``GET /tiltseries/{id}/montage.png``
    Every tilt in angle order, ``MONTAGE_TILE_PX`` on its long side, labelled with its angle.

Why rendered here, from the tilt-series MRC, rather than written at ingest: tilt series
already in a portal root (extracted, imported) have no previews, and a campaign over them
should not need a migration step. Memory stays bounded: the MRC is memory-mapped and read
one tilt at a time (:func:`cryocurate.formats.mrc.read_section`); the montage reads every
n-th row of each tilt only. All tilts of a series share one contrast window (robust
percentiles of the tilt nearest 0°), so a tilt that is darker (thicker ice at high angle, a
shutter problem) shows darker, which is part of what the grader judges. Answers carry an
ETag from the file's size and mtime and may be cached for an hour.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from PIL import Image, ImageDraw

from cryocurate.catalog.models import TiltSeries
from cryocurate.errors import CryocurateError, NotFoundError
from cryocurate.formats.mrc import read_header, read_section
from cryocurate.formats.png import png_bytes, robust_window, scale_to_uint8
from cryocurate.ingest.tomography import read_angles
from cryocurate.web.deps import DbInt, portal_of
from cryocurate.web.files import resolve_in_tree

router = APIRouter()

#: A single tilt is binned to at most this many pixels on its long side.
MAX_TILT_PX = 1024
#: A montage tile's long side.
MONTAGE_TILE_PX = 160
#: The window's sample of the central tilt: at most this many pixels on its long side.
WINDOW_SAMPLE_PX = 512
CACHE_CONTROL = "public, max-age=3600"
#: Series whose header, angles and contrast window are kept (a few hundred bytes each).
SERIES_CACHE = 256


@dataclass(frozen=True)
class Series:
    """What every image of one tilt series needs, read once per file version."""

    path: Path
    etag: str
    nx: int
    ny: int
    n: int
    angles: list[float] | None
    order: list[int]  # file indices sorted by angle (file order without angles)
    zero: int  # the file index of the tilt nearest 0°
    lo: float
    hi: float

    def layout(self) -> dict[str, Any]:
        """The montage's grid: columns, rows and one tile's size in pixels."""
        columns = max(1, math.ceil(math.sqrt(self.n)))
        scale = MONTAGE_TILE_PX / max(self.nx, self.ny)
        tile_w, tile_h = max(1, round(self.nx * scale)), max(1, round(self.ny * scale))
        return {
            "columns": columns,
            "rows": math.ceil(self.n / columns),
            "tile": [tile_w, tile_h],
        }


_cache: OrderedDict[tuple[str, int, int], Series] = OrderedDict()
_lock = threading.Lock()


def _angles(data_dir: Path, rel: str | None, n: int) -> list[float] | None:
    """The ``.rawtlt``'s angles if it names one per tilt; else None (shown without)."""
    found = resolve_in_tree(data_dir, rel) if rel else None
    if found is None:
        return None
    try:
        angles = [float(a) for a in read_angles(found[0])]
    except CryocurateError:
        return None
    return angles if len(angles) == n else None


def _window(path: Path, index: int, nx: int, ny: int) -> tuple[float, float]:
    step = max(1, math.ceil(max(nx, ny) / WINDOW_SAMPLE_PX))
    return robust_window(read_section(path, index, row_step=step, col_step=step))


def series(request: Request, tiltseries_id: int) -> Series:
    """The tilt series' file facts, cached by (file, mtime, size); NotFoundError if it has
    no readable file in the data tree."""
    portal = portal_of(request)
    with portal.transaction() as session:
        ts = session.get(TiltSeries, tiltseries_id)
        rel, angle_rel = (ts.mrc_file, ts.angle_list) if ts is not None else (None, None)
    found = resolve_in_tree(portal.data_dir, rel) if rel else None
    if found is None:
        raise NotFoundError(f"tilt series {tiltseries_id} has no file in this portal")
    path, st = found
    key = (str(path), st.st_mtime_ns, st.st_size)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    header = read_header(path)
    angles = _angles(portal.data_dir, angle_rel, header.nz)
    if angles is not None:
        order = sorted(range(header.nz), key=lambda i: angles[i])
        zero = min(range(header.nz), key=lambda i: abs(angles[i]))
    else:
        order, zero = list(range(header.nz)), header.nz // 2
    lo, hi = _window(path, zero, header.nx, header.ny)
    item = Series(
        path=path,
        etag=f'"ts{tiltseries_id}-{st.st_mtime_ns:x}-{st.st_size:x}"',
        nx=header.nx,
        ny=header.ny,
        n=header.nz,
        angles=angles,
        order=order,
        zero=zero,
        lo=lo,
        hi=hi,
    )
    with _lock:
        _cache[key] = item
        while len(_cache) > SERIES_CACHE:
            _cache.popitem(last=False)
    return item


def _bin(image: np.ndarray, factor: int) -> np.ndarray:
    """Block means of ``factor``×``factor`` pixels (the ragged edge is dropped)."""
    if factor <= 1:
        return image
    ny, nx = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    view = image[:ny, :nx].reshape(ny // factor, factor, nx // factor, factor)
    return view.mean(axis=(1, 3), dtype=np.float32)


def tilt_png(s: Series, index: int) -> bytes:
    """One tilt (file order), binned to at most ``MAX_TILT_PX``, as PNG bytes."""
    factor = max(1, math.ceil(max(s.nx, s.ny) / MAX_TILT_PX))
    return png_bytes(scale_to_uint8(_bin(read_section(s.path, index), factor), s.lo, s.hi))


def montage_png(s: Series) -> bytes:
    """Every tilt in angle order, one tile each, labelled with its angle."""
    layout = s.layout()
    tile_w, tile_h = layout["tile"]
    gap = 2
    sheet = Image.new(
        "L",
        (layout["columns"] * (tile_w + gap) - gap, layout["rows"] * (tile_h + gap) - gap),
        color=24,
    )
    draw = ImageDraw.Draw(sheet)
    # Read every step-th row and column, then average pairs: a quarter of the pages at most.
    step = max(1, math.floor(max(s.nx, s.ny) / (2 * MONTAGE_TILE_PX)))
    pair = 2 if max(s.nx, s.ny) // step >= 2 * MONTAGE_TILE_PX else 1
    for slot, index in enumerate(s.order):
        pixels = _bin(read_section(s.path, index, row_step=step, col_step=step), pair)
        tile = Image.fromarray(scale_to_uint8(pixels, s.lo, s.hi), mode="L").resize(
            (tile_w, tile_h)
        )
        x = (slot % layout["columns"]) * (tile_w + gap)
        y = (slot // layout["columns"]) * (tile_h + gap)
        sheet.paste(tile, (x, y))
        label = f"{s.angles[index]:+.0f}°" if s.angles is not None else f"#{index}"
        draw.rectangle((x, y, x + 7 * len(label), y + 12), fill=0)
        draw.text((x + 2, y), label, fill=255)
    return png_bytes(np.asarray(sheet))


def _image(request: Request, s: Series, what: str, make: Any) -> Response:
    etag = f'{s.etag[:-1]}-{what}"'
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
    wanted = request.headers.get("if-none-match", "")
    if etag in {t.strip().removeprefix("W/") for t in wanted.split(",")}:
        return Response(status_code=304, headers=headers)
    return Response(make(), media_type="image/png", headers=headers)


@router.get("/tiltseries/{tiltseries_id:int}/tilts.json", name="tilt_series_tilts")
def tilts_info(tiltseries_id: DbInt, request: Request) -> Response:
    """The tilts of a tilt series: count, angles, angle order and montage layout."""
    s = series(request, tiltseries_id)
    base = f"/tiltseries/{tiltseries_id}"
    body = {
        "tiltseries_id": tiltseries_id,
        "count": s.n,
        "size": [s.nx, s.ny],
        "angles": s.angles,
        "order": s.order,
        "zero": s.zero,
        "tilt_url": f"{base}/tilts/",
        "montage_url": f"{base}/montage.png",
        "montage": s.layout(),
    }
    return JSONResponse(body, headers={"Cache-Control": "private, max-age=60"})


@router.get(
    "/tiltseries/{tiltseries_id:int}/tilts/{index:int}.png",
    name="tilt_series_tilt",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "The picture"}},
)
def tilt_image(tiltseries_id: DbInt, index: DbInt, request: Request) -> Response:
    """One tilt of a tilt series (file order) as a PNG."""
    s = series(request, tiltseries_id)
    if not 0 <= index < s.n:
        raise NotFoundError(f"tilt series {tiltseries_id} has tilts 0–{s.n - 1}, not {index}")
    return _image(request, s, f"t{index}", lambda: tilt_png(s, index))


@router.get(
    "/tiltseries/{tiltseries_id:int}/montage.png",
    name="tilt_series_montage",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "The picture"}},
)
def montage_image(tiltseries_id: DbInt, request: Request) -> Response:
    """All tilts of a tilt series, in angle order, as one PNG."""
    s = series(request, tiltseries_id)
    return _image(request, s, "montage", lambda: montage_png(s))


__all__ = ["Series", "montage_png", "router", "series", "tilt_png"]
