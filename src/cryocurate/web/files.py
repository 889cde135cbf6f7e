"""Files over HTTP: each file of the data tree at its own URL, and whole downloads as zips.

``GET /files/<path>``
    One file of the data tree, with ``Content-Type``, ``Content-Length``, ``ETag`` and
    ``Last-Modified``, ``If-None-Match`` (304) and ``Range`` (206 with ``Content-Range``, 416
    when unsatisfiable), so viewers can read a slice of a large MRC or single Zarr chunks.
    Anything outside the tree (``..``, absolute paths, symbolic links leading out), folders
    and hidden names (staging, half-written files) answer 404.
``GET /download/<dataset|run|tomogram|annotation>/<id>.zip?layout=v1|v2``
    The download :func:`cryocurate.transfer.download.list_entity` describes, as a zip built
    while it is sent, in constant memory. Members are *stored*, not deflated: MRC and Zarr
    chunks compress poorly and the disk is the bottleneck. Zip64 is used past 4 GiB. The zip's
    size is known before the first byte, so ``Content-Length`` is exact and browsers show
    progress.
``GET /download/<kind>/<id>.json?layout=v1|v2``
    The same download as a manifest (path, size, and URL or content of each file), for
    clients that fetch files themselves, in parallel or resuming.

The zip is written by ``zipstream-ng`` (pure Python, maintained, sized stored zips with zip64)
rather than by hand; its generator is drained in a worker thread in 1 MiB batches so the event
loop is not blocked by disk reads.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import stat
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse

from cryocurate.errors import ConflictError, InputError, NotFoundError
from cryocurate.portal import Portal
from cryocurate.store import layouts
from cryocurate.transfer.download import Kind, Listing, list_entity

if TYPE_CHECKING:
    from zipstream import ZipStream

router = APIRouter()

ZIP_BATCH = 1 << 20

_BY_SUFFIX = {
    ".mrc": "application/octet-stream",
    ".mrcs": "application/octet-stream",
    ".st": "application/octet-stream",
    ".ali": "application/octet-stream",
    ".rec": "application/octet-stream",
    ".map": "application/octet-stream",
    ".ndjson": "application/x-ndjson",
    ".json": "application/json",
    ".rawtlt": "text/plain; charset=utf-8",
    ".tlt": "text/plain; charset=utf-8",
    ".star": "text/plain; charset=utf-8",
    ".mdoc": "text/plain; charset=utf-8",
    ".png": "image/png",
    ".glb": "model/gltf-binary",
}
_BY_NAME = {n: "application/json" for n in (".zarray", ".zattrs", ".zgroup", ".zmetadata")}


def media_type(name: str) -> str:
    """The ``Content-Type`` of a file of the data tree, by name."""
    if name in _BY_NAME:
        return _BY_NAME[name]
    suffix = Path(name).suffix.lower()
    if suffix in _BY_SUFFIX:
        return _BY_SUFFIX[suffix]
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def _portal(request: Request) -> Portal:
    return request.app.state.portal


def resolve_in_tree(data_dir: Path, rel: str) -> tuple[Path, os.stat_result] | None:
    """The regular file ``rel`` names inside ``data_dir``, or None (then: 404).

    The path must be public (:func:`layouts.is_public_path`: no ``..``, no absolute path, no
    hidden names) and, once every symbolic link is followed, still inside the tree.
    """
    if not layouts.is_public_path(rel):
        return None
    root = os.path.realpath(data_dir)
    real = os.path.realpath(os.path.join(root, rel))
    if not real.startswith(root + os.sep):
        return None
    try:
        st = os.stat(real)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return Path(real), st


def _not_modified(request: Request, response: FileResponse) -> bool:
    wanted = request.headers.get("if-none-match")
    if not wanted:
        return False
    etag = response.headers.get("etag", "")
    tags = {t.strip().removeprefix("W/") for t in wanted.split(",")}
    return "*" in tags or etag in tags


@router.head("/files/{path:path}", include_in_schema=False)
@router.get("/files/{path:path}", name="data_file")
def data_file(path: str, request: Request) -> Response:
    """One file of the data tree (Range requests supported)."""
    found = resolve_in_tree(_portal(request).data_dir, path)
    if found is None:
        raise HTTPException(status_code=404, detail="no such file")
    real, st = found
    response = FileResponse(
        real, stat_result=st, media_type=media_type(real.name), content_disposition_type="inline"
    )
    if _not_modified(request, response):
        headers = {k: response.headers[k] for k in ("etag", "last-modified")}
        return Response(status_code=304, headers=headers)
    return response


LayoutQuery = Annotated[str, Query(pattern="^v[12]$", description="Folder layout: v1 or v2.")]


def _listing(request: Request, kind: Kind, entity_id: int, layout: str) -> Listing:
    try:
        return list_entity(_portal(request), kind, entity_id, layout)
    except NotFoundError as err:
        raise HTTPException(status_code=404, detail=str(err)) from err
    except (InputError, ConflictError) as err:
        raise HTTPException(status_code=400, detail=str(err)) from err


def zip_stream(listing: Listing) -> ZipStream:
    """A sized, stored zip of a listing; nothing is read until it is iterated."""
    from zipstream import ZipStream  # only the zip routes need it

    zs = ZipStream(sized=True)
    for entry in listing.entries:
        if entry.content is not None:
            zs.add(entry.content, entry.path)
        else:
            assert entry.source is not None
            zs.add_path(str(entry.source), entry.path, recurse=False)
    return zs


def _batches(chunks: Iterator[bytes]) -> bytes:
    parts: list[bytes] = []
    size = 0
    for chunk in chunks:
        parts.append(chunk)
        size += len(chunk)
        if size >= ZIP_BATCH:
            break
    return b"".join(parts)


async def _drain(zs: ZipStream) -> AsyncIterator[bytes]:
    """Send one batch while the next is read: disk and network work at the same time.

    One reader thread (the zip generator is not thread-safe), one batch ahead, so memory
    stays at two batches whatever the download's size.
    """
    loop = asyncio.get_running_loop()
    chunks = iter(zs)
    reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zip-reader")
    try:
        ahead = loop.run_in_executor(reader, _batches, chunks)
        while batch := await ahead:
            ahead = loop.run_in_executor(reader, _batches, chunks)
            yield batch
    finally:
        reader.shutdown(wait=False, cancel_futures=True)


@router.head("/download/{kind}/{entity_id:int}.zip", include_in_schema=False)
@router.get("/download/{kind}/{entity_id:int}.zip", name="download_zip")
def download_zip(
    kind: Kind, entity_id: int, request: Request, layout: LayoutQuery = "v1"
) -> Response:
    """A dataset, run, tomogram or annotation as a zip in layout v1 or v2 (HEAD: its size)."""
    listing = _listing(request, kind, entity_id, layout)
    try:
        zs = zip_stream(listing)
    except FileNotFoundError as err:
        raise HTTPException(
            status_code=409, detail="the data changed while the zip was prepared; try again"
        ) from err
    headers = {
        "Content-Length": str(len(zs)),
        "Content-Disposition": f'attachment; filename="{listing.name}.zip"',
    }
    if request.method == "HEAD":
        return Response(media_type="application/zip", headers=headers)
    return StreamingResponse(_drain(zs), media_type="application/zip", headers=headers)


@router.get("/download/{kind}/{entity_id:int}.json", name="download_manifest")
def download_manifest(
    kind: Kind, entity_id: int, request: Request, layout: LayoutQuery = "v1"
) -> JSONResponse:
    """What the download holds: each file's path, size, and URL (or content, for metadata
    rewritten for the layout)."""
    listing = _listing(request, kind, entity_id, layout)
    files = []
    for e in listing.entries:
        item: dict[str, object] = {"path": e.path, "size": e.size}
        if e.content is not None:
            item["content"] = e.content.decode("utf-8")
        else:
            item["url"] = "/files/" + quote(e.tree_path or "")
        files.append(item)
    return JSONResponse(
        {
            "kind": listing.kind.value,
            "id": listing.entity_id,
            "dataset_id": listing.dataset_id,
            "layout": listing.layout,
            "total_bytes": listing.total_bytes,
            "files": files,
        }
    )


__all__ = ["media_type", "resolve_in_tree", "router", "zip_stream"]
