"""Files over HTTP: each file of the data tree at its own URL, and whole downloads as zips.

``GET /files/<path>`` (and ``GET /data/<path>``, the same route under the name the pages use)
    One file of the data tree, with ``Content-Type``, ``Content-Length``, ``ETag`` and
    ``Last-Modified``, ``If-None-Match`` / ``If-Modified-Since`` (304) and ``Range`` (206
    with ``Content-Range``, 416 when unsatisfiable), so viewers can read a slice of a large
    MRC or single Zarr chunks. Anything outside the tree (``..``, absolute paths, symbolic
    links leading out), folders, hidden names (staging, swaps, half-written files) and the
    files of annotations the visitor may not see (:mod:`cryocurate.grading.access`) answer
    404, under both prefixes: one function, one set of rules. What a browser may do with a
    file (saved as an attachment, sandboxed; PNG and JPEG shown) is set for both by
    :mod:`cryocurate.web.headers`.
``GET /download/<dataset|run|tomogram|annotation>/<id>.zip?layout=v1|v2``
    The download :func:`cryocurate.transfer.download.list_entity` describes (without the
    annotations the visitor may not see; one of those asked for by id is 404), as a zip built
    while it is sent, in constant memory. Members are *stored*, not deflated: MRC and Zarr
    chunks compress poorly and the disk is the bottleneck. Zip64 is used past 4 GiB. The zip's
    size is known before the first byte, so ``Content-Length`` is exact and browsers show
    progress.
``GET /download/<kind>/<id>.json?layout=v1|v2``
    The same download as a manifest (path, size, and URL or content of each file), for
    clients that fetch files themselves, in parallel or resuming.

The zip is written by :mod:`cryocurate.formats.stored_zip` (headers only; the data blocks pass
through as read, the CRC by zlib-ng) in a thread of its own that reads up to 16 MiB ahead of
the network, so the event loop never waits on the disk and disk and network work at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mimetypes
import os
import stat
import threading
from collections.abc import AsyncIterator, Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.types import Send

from cryocurate.errors import CryocurateError, NotFoundError
from cryocurate.grading import access
from cryocurate.store import layouts, names
from cryocurate.transfer.download import (
    Kind,
    Listing,
    hidden_in_tree,
    list_entity,
    zip_archive,
    zip_blocks,
)
from cryocurate.web.auth import current_user
from cryocurate.web.deps import DbInt, portal_of

router = APIRouter()
log = logging.getLogger(__name__)

ZIP_BATCH = 1 << 20  # bytes per send, at least (files are read in blocks of this size)
ZIP_AHEAD = 16  # batches read ahead of the network: 16 MiB per download in flight

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


def resolve_in_tree(data_dir: Path, rel: str) -> tuple[Path, os.stat_result] | None:
    """The regular file ``rel`` names inside ``data_dir``, or None (then: 404).

    The path must be public (:func:`layouts.is_public_path`: no ``..``, no absolute path, no
    hidden names) and, once every symbolic link is followed, still inside the tree.
    """
    if not layouts.is_public_path(rel):
        return None
    real = names.real_path_within(data_dir, os.path.join(data_dir, rel))
    if real is None:
        return None
    try:
        st = os.stat(real)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return Path(real), st


class _DataFileResponse(FileResponse):
    """Starlette's file response, read in 1 MiB blocks instead of 64 KiB: each block is a hop
    to a worker thread and back, and a 512 MB tomogram is then 512 hops, not 8,192."""

    chunk_size = ZIP_BATCH


def _not_modified(request: Request, response: FileResponse, st: os.stat_result) -> bool:
    """Whether the client's copy is current: ``If-None-Match`` when sent (it wins, RFC 9110
    13.1.3), else ``If-Modified-Since``."""
    wanted = request.headers.get("if-none-match")
    if wanted:
        etag = response.headers.get("etag", "")
        tags = {t.strip().removeprefix("W/") for t in wanted.split(",")}
        return "*" in tags or etag in tags
    since = request.headers.get("if-modified-since")
    if not since:
        return False
    try:
        when = parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False
    return when.tzinfo is not None and int(st.st_mtime) <= int(when.timestamp())


# One function answers both prefixes: /files/ is the API's name for the tree, /data/ the one
# the pages' image URLs have always used. Two routes with one body, so no rule can differ.
@router.head("/files/{path:path}", include_in_schema=False)
@router.get(
    "/files/{path:path}",
    name="data_file",
    response_class=Response,
    responses={
        200: {"content": {"*/*": {}}, "description": "The file, typed by its name"},
        206: {"content": {"*/*": {}}, "description": "The requested range"},
        304: {"description": "Not modified"},
        416: {"description": "The range is not satisfiable"},
    },
)
@router.head("/data/{path:path}", include_in_schema=False)
@router.get("/data/{path:path}", name="data_tree_file", include_in_schema=False)
def data_file(path: str, request: Request) -> Response:
    """One file of the data tree (Range requests supported)."""
    portal = portal_of(request)
    found = resolve_in_tree(portal.data_dir, path)
    # A file of an annotation this visitor may not see is as absent as its download.
    guards = access.annotation_guards(current_user(request))
    if found is None or hidden_in_tree(portal, path, guards):
        raise NotFoundError("no such file")
    real, st = found
    response = _DataFileResponse(real, stat_result=st, media_type=media_type(real.name))
    if _not_modified(request, response, st):
        headers = {k: response.headers[k] for k in ("etag", "last-modified")}
        return Response(status_code=304, headers=headers)
    return response


LayoutQuery = Annotated[str, Query(pattern="^v[12]$", description="Folder layout: v1 or v2.")]


def _listing(request: Request, kind: Kind, entity_id: int, layout: str) -> Listing:
    # Annotations this visitor may not see (other labellers' grades, a running campaign's
    # consensus) are "not found" by id and left out of run and dataset downloads.
    guards = access.annotation_guards(current_user(request))
    return list_entity(portal_of(request), kind, entity_id, layout, guards)


def _batches(pieces: Iterator[bytes], at_least: int = ZIP_BATCH) -> Iterator[bytes]:
    """Pieces joined until at least ``at_least`` bytes: headers travel with the data next to
    them rather than as sends of their own; a block that is big enough passes uncopied."""
    parts: list[bytes] = []
    size = 0
    for piece in pieces:
        parts.append(piece)
        size += len(piece)
        if size >= at_least:
            yield b"".join(parts)
            parts, size = [], 0
    if parts:
        yield b"".join(parts)


async def _read_ahead(blocks: Iterator[bytes], depth: int = ZIP_AHEAD) -> AsyncIterator[bytes]:
    """``blocks`` made in a thread of their own, up to ``depth`` blocks ahead of the network.

    Reading the disk (and the CRC) then overlaps with sending: with a cold page cache the
    download runs at the pace of the slower of the two, not of their sum. Memory stays at
    ``depth`` blocks whatever the size of the download. If the client goes away, the thread
    stops at its next block and the files it had open are closed.
    """
    loop = asyncio.get_running_loop()
    ready: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()
    slots = threading.Semaphore(depth)
    stop = threading.Event()

    def produce() -> None:
        end: BaseException | None = None
        try:
            for block in blocks:
                while not slots.acquire(timeout=1.0):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                loop.call_soon_threadsafe(ready.put_nowait, block)
        except Exception as err:  # raised again in the event loop, where the response is
            end = err
        finally:
            close = getattr(blocks, "close", None)
            if close is not None:
                close()
        with contextlib.suppress(RuntimeError):  # the event loop is already closed
            loop.call_soon_threadsafe(ready.put_nowait, end)

    threading.Thread(target=produce, name="zip-read-ahead", daemon=True).start()
    try:
        while (block := await ready.get()) is not None:
            if isinstance(block, BaseException):
                raise block
            yield block
            slots.release()
    finally:
        stop.set()


class _ZipResponse(StreamingResponse):
    """A streamed zip that, when the data changes on the way (a file removed or resized), stops
    short and logs one line. Its length was promised in the headers, so the response is left
    unfinished and the server closes the connection: the client sees a cut download, never a
    smaller zip that looks whole, and the log holds no traceback for an error we expect."""

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        except CryocurateError as err:
            log.warning("zip download cut short: %s", err)


@router.head("/download/{kind}/{entity_id:int}.zip", include_in_schema=False)
@router.get(
    "/download/{kind}/{entity_id:int}.zip",
    name="download_zip",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}, "description": "The zip"}},
)
def download_zip(
    kind: Kind, entity_id: DbInt, request: Request, layout: LayoutQuery = "v1"
) -> Response:
    """A dataset, run, tomogram or annotation as a zip in layout v1 or v2 (HEAD: its size)."""
    listing = _listing(request, kind, entity_id, layout)
    archive = zip_archive(listing)
    headers = {
        "Content-Length": str(archive.size),
        "Content-Disposition": f'attachment; filename="{listing.name}.zip"',
    }
    if request.method == "HEAD":
        return Response(media_type="application/zip", headers=headers)
    blocks = _read_ahead(_batches(zip_blocks(listing, archive)))
    return _ZipResponse(blocks, media_type="application/zip", headers=headers)


@router.get("/download/{kind}/{entity_id:int}.json", name="download_manifest")
def download_manifest(
    kind: Kind, entity_id: DbInt, request: Request, layout: LayoutQuery = "v1"
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
    # A download like the zip (saved, not shown); clients reading it as JSON are unaffected.
    disposition = {"Content-Disposition": f'attachment; filename="{listing.name}.json"'}
    return JSONResponse(
        headers=disposition,
        content={
            "kind": listing.kind.value,
            "id": listing.entity_id,
            "dataset_id": listing.dataset_id,
            "layout": listing.layout,
            "total_bytes": listing.total_bytes,
            "files": files,
        },
    )


__all__ = ["media_type", "resolve_in_tree", "router"]
