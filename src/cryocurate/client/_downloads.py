"""Downloads, as the CZ client does them: file by file, skipping what is already complete.

Why this way: ``download_everything`` asks the server what a download holds
(``GET /download/<kind>/<id>.json``: each file's portal path, size and ``/files/`` URL, or the
content of generated metadata) and fetches each file (``GET /files/<path>``, streamed). A local
file with the server's size is skipped, which makes a re-run cheap; a partial ``<name>.part`` is
resumed with an HTTP Range request when the server honours one (else that file starts over);
nothing is ever half-written under its final name. ``download_zip`` fetches the same as one zip
(``GET /download/<kind>/<id>.zip``) for those who want an archive.

The mixins give the generated model classes the CZ client's download methods.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import unquote

from cryocurate.client._client import _api_error
from cryocurate.client._errors import DownloadError

if TYPE_CHECKING:
    from cryocurate.client._client import Client

_IDENTITY = {"Accept-Encoding": "identity"}  # sizes must be the file's, not a gzip stream's


def remote_size(client: Client, url: str) -> int | None:
    """The size the server announces for ``url`` (HEAD), or None if it does not say."""
    response = client.http.head(url, headers=_IDENTITY)
    if response.status_code in (405, 501):
        return None
    if response.status_code >= 400:
        raise _api_error(response)
    length = response.headers.get("content-length")
    return int(length) if length and length.isdigit() else None


def fetch(client: Client, url: str, dest: Path, size: int | None = None) -> Path:
    """Download ``url`` to ``dest``: skipped if ``dest`` has the server's size, resumed from
    ``dest.part`` if one is there. Returns ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if size is None:
        size = remote_size(client, url)
    if size is not None and dest.is_file() and dest.stat().st_size == size:
        return dest
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    if size is not None and have > size:
        have = 0
    if size is None or have < size:
        headers = {**_IDENTITY, **({"Range": f"bytes={have}-"} if have else {})}
        with client.http.stream("GET", url, headers=headers) as response:
            if response.status_code == 416:  # our part is stale: start over
                part.unlink(missing_ok=True)
                return fetch(client, url, dest, size)
            if response.status_code >= 400:
                response.read()
                raise _api_error(response)
            resumed = response.status_code == 206 and have > 0
            with part.open("ab" if resumed else "wb") as fh:
                # as httpx reads them: re-chunking to a fixed size halved the speed (RESULTS.md)
                for chunk in response.iter_bytes():
                    fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
    got = part.stat().st_size
    if size is not None and got != size:
        raise DownloadError(f"{url}: got {got} of {size} bytes (run again to resume)")
    part.replace(dest)
    return dest


def _safe_member(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or re.match(r"^[A-Za-z]:", name):
        raise DownloadError(f"refusing a path outside the destination: {name!r}")
    return path


def _write_content(target: Path, data: bytes) -> None:
    if target.is_file() and target.read_bytes() == data:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(target)


def manifest(client: Client, kind: str, ident: Any, layout: str = "v1") -> dict[str, Any]:
    """What a download of ``kind`` (dataset, run, tomogram, annotation) holds:
    ``GET /download/<kind>/<id>.json`` (each file's path, size, and URL or content)."""
    url = f"/download/{kind}/{ident}.json"
    return client.request("GET", url, params={"layout": layout}).json()  # type: ignore[no-any-return]


def download_entries(client: Client, entries: list[dict[str, Any]], dest: Path) -> list[Path]:
    """Write manifest entries under ``dest`` at their paths: files fetched (skipped or resumed by
    size), generated metadata written if it differs."""
    out = []
    for entry in entries:
        target = dest.joinpath(*_safe_member(entry["path"]).parts)
        if "content" in entry:
            _write_content(target, str(entry["content"]).encode("utf-8"))
        else:
            fetch(client, entry["url"], target, entry.get("size"))
        out.append(target)
    return out


def _tree_path(entry: dict[str, Any]) -> str | None:
    url = entry.get("url")
    return unquote(url.removeprefix("/files/")) if url else None


def _dest(dest_path: str | os.PathLike[str] | None) -> Path:
    return Path(dest_path) if dest_path is not None else Path.cwd()


def _file(client: Client, relpath: str | None, dest_path: Any, size: int | None = None) -> Path:
    if not relpath:
        raise DownloadError("the catalog records no file for this object")
    name = PurePosixPath(relpath).name
    return fetch(client, client.file_url(relpath), _dest(dest_path) / name, size)


class EntityDownloads:
    """``download_everything`` (file by file, as the CZ client does) and ``download_zip``."""

    _download_kind: ClassVar[str] = ""
    if TYPE_CHECKING:
        _client: Client
        id: int

    def download_everything(
        self, dest_path: str | os.PathLike[str] | None = None, layout: str = "v1"
    ) -> list[Path]:
        """Everything of this object under ``dest`` at the portal's paths
        (``<dataset_id>/<run_name>/…``), so parts merge into the whole; ``layout`` is v1 (as
        stored) or v2. Complete files are skipped and partial ones resumed. Returns the files."""
        dest = _dest(dest_path)
        listing = manifest(self._client, self._download_kind, self.id, layout)
        return download_entries(self._client, listing["files"], dest)

    def download_zip(
        self, dest_path: str | os.PathLike[str] | None = None, layout: str = "v1"
    ) -> Path:
        """The same as one zip file, ``<dest>/<kind>-<id>.zip`` (skipped if complete)."""
        url = f"/download/{self._download_kind}/{self.id}.zip?layout={layout}"
        name = f"{self._download_kind}-{self.id}.zip"
        return fetch(self._client, url, _dest(dest_path) / name)


class DatasetDownloads(EntityDownloads):
    """``Dataset.download_everything``, ``download_zip``."""

    _download_kind = "dataset"


class RunDownloads(EntityDownloads):
    """``Run.download_everything``, ``download_zip``."""

    _download_kind = "run"


class TomogramDownloads(EntityDownloads):
    """``Tomogram.download_mrcfile``, ``download_everything``, ``download_zip``."""

    _download_kind = "tomogram"
    if TYPE_CHECKING:
        mrc_file: str | None
        file_size_mrc: int | None

    def download_mrcfile(self, dest_path: str | os.PathLike[str] | None = None) -> Path:
        """The tomogram's MRC file, into ``dest``."""
        return _file(self._client, self.mrc_file, dest_path, self.file_size_mrc)


class AnnotationDownloads(EntityDownloads):
    """``Annotation.download``, ``download_metadata``, ``download_everything``."""

    _download_kind = "annotation"
    if TYPE_CHECKING:
        metadata_path: str | None
        annotation_shapes: list[Any]

    def _split(
        self,
        format: str | None,  # the CZ client's name
        shape: str | None,
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(the manifest entries of the files asked for, the metadata entries)."""
        every, wanted = [], []
        for s in self.annotation_shapes:
            for f in s.annotation_files:
                every.append(f.path.strip("/"))
                if (shape is None or s.shape_type == shape) and (format in (None, f.format)):
                    wanted.append(f.path.strip("/"))

        def under(tree: str | None, roots: list[str]) -> bool:
            return tree is not None and any(tree == r or tree.startswith(r + "/") for r in roots)

        files = manifest(self._client, self._download_kind, self.id)["files"]
        chosen = [e for e in files if under(_tree_path(e), wanted)]
        metadata = [e for e in files if not under(_tree_path(e), every)]
        return chosen, metadata

    def download(
        self,
        dest_path: str | os.PathLike[str] | None = None,
        format: str | None = None,  # the CZ client's name
        shape: str | None = None,
    ) -> list[Path]:
        """The annotation's files (only those of ``format``, e.g. "ndjson", and ``shape``, e.g.
        "OrientedPoint", if given), with the metadata JSON when any file matched; at the
        portal's paths under ``dest``."""
        chosen, metadata = self._split(format, shape)
        entries = chosen + metadata if chosen else []
        return download_entries(self._client, entries, _dest(dest_path))

    def download_metadata(self, dest_path: str | os.PathLike[str] | None = None) -> list[Path]:
        """The metadata JSON (annotation, run, dataset) only."""
        _, metadata = self._split(None, None)
        return download_entries(self._client, metadata, _dest(dest_path))


class AnnotationFileDownloads:
    """``AnnotationFile.download`` (one file; a Zarr folder through its annotation)."""

    if TYPE_CHECKING:
        _client: Client
        path: str
        format: str
        file_size: int | None
        annotation_shape: Any

    def download(self, dest_path: str | os.PathLike[str] | None = None) -> list[Path]:
        """The file, into ``dest`` by its name (a Zarr folder: all of it, at portal paths)."""
        if self.format == "zarr":
            annotation = self.annotation_shape.annotation
            chosen, _ = annotation._split("zarr", self.annotation_shape.shape_type)
            mine = [e for e in chosen if (_tree_path(e) or "").startswith(self.path.strip("/"))]
            return download_entries(self._client, mine, _dest(dest_path))
        return [_file(self._client, self.path, dest_path, self.file_size)]


class TiltSeriesDownloads:
    """``TiltSeries.download_mrcfile`` and ``download_angle_list``."""

    if TYPE_CHECKING:
        _client: Client
        mrc_file: str | None
        angle_list: str | None
        file_size_mrc: int | None

    def download_mrcfile(self, dest_path: str | os.PathLike[str] | None = None) -> Path:
        return _file(self._client, self.mrc_file, dest_path, self.file_size_mrc)

    def download_angle_list(self, dest_path: str | os.PathLike[str] | None = None) -> Path:
        return _file(self._client, self.angle_list, dest_path)


MIXINS: dict[str, str] = {
    "Dataset": "DatasetDownloads",
    "Run": "RunDownloads",
    "Annotation": "AnnotationDownloads",
    "AnnotationFile": "AnnotationFileDownloads",
    "Tomogram": "TomogramDownloads",
    "TiltSeries": "TiltSeriesDownloads",
}
"""Which generated class gets which download mixin (read by the code generator)."""
