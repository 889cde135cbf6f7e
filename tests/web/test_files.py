"""Files and zips over HTTP: headers, Range requests, traversal attempts, streamed zips.

Most tests drive the app in-process (on SQLite and PostgreSQL); raw traversal attempts and the
memory bound need a real server (uvicorn in a subprocess), whose memory is measured with
psutil while it streams a zip of a 300 MB tomogram.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import sys
import threading
import time
import zipfile
from pathlib import Path

import httpx
import psutil
import pytest
from fastapi.testclient import TestClient

from cryocurate.portal import Portal
from cryocurate.synth import synth_cryosparc
from cryocurate.transfer.download import list_entity
from cryocurate.web.app import create_app
from tests.transfer.conftest import TOMO_RUN, Source, build_source

MRC = f"10000/{TOMO_RUN}/Tomograms/VoxelSpacing10.000/CanonicalTomogram/{TOMO_RUN}.mrc"
ZARRAY = (
    f"10000/{TOMO_RUN}/Tomograms/VoxelSpacing10.000/CanonicalTomogram/{TOMO_RUN}.zarr/0/.zarray"
)


@pytest.fixture(scope="module")
def class_job(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("class-job")
    return synth_cryosparc(base / "J12", n_classes=4, box=32, n_particles=200, seed=7)


@pytest.fixture
def source(tmp_path: Path, database_url: str, class_job: Path) -> Source:
    return build_source(tmp_path / "source", database_url, class_job)


@pytest.fixture
def sqlite_source(tmp_path: Path, class_job: Path) -> Source:
    return build_source(tmp_path / "source", None, class_job)


def _serve(root: Path):
    return lambda port: [
        sys.executable,
        "-m",
        "cryocurate",
        "serve",
        str(root),
        "--port",
        str(port),
    ]


@pytest.fixture
def served(source: Source):
    with TestClient(create_app(source.root)) as client:
        yield client, source


def _data(source: Source) -> Path:
    with Portal.open(source.root) as portal:
        return portal.data_dir


def test_file_headers(served):
    client, source = served
    body = (_data(source) / MRC).read_bytes()
    r = client.get(f"/files/{MRC}")
    assert r.status_code == 200 and r.content == body
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-length"] == str(len(body))
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["etag"] and r.headers["last-modified"]
    head = client.head(f"/files/{MRC}")
    assert head.status_code == 200 and head.headers["content-length"] == str(len(body))
    assert head.content == b""
    r = client.get(f"/files/{MRC}", headers={"If-None-Match": r.headers["etag"]})
    assert r.status_code == 304 and r.content == b""
    types = {
        ZARRAY: "application/json",
        f"10000/{TOMO_RUN}/TiltSeries/TS_001.rawtlt": "text/plain; charset=utf-8",
        "10000/dataset_metadata.json": "application/json",
        f"10000/{TOMO_RUN}/Tomograms/VoxelSpacing10.000/Annotations/"
        "1-cytosolic_ribosome-1.0_point.ndjson": "application/x-ndjson",
        f"10000/{TOMO_RUN}/Tomograms/VoxelSpacing10.000/KeyPhotos/key-photo-snapshot.png": (
            "image/png"
        ),
    }
    for path, media in types.items():
        r = client.get(f"/files/{path}")
        assert r.status_code == 200 and r.headers["content-type"] == media, path


def test_range_requests(served):
    client, source = served
    body = (_data(source) / MRC).read_bytes()
    n = len(body)
    cases = {
        "bytes=0-99": (0, 99),
        "bytes=1024-2047": (1024, 2047),
        "bytes=-100": (n - 100, n - 1),
        f"bytes={n - 10}-": (n - 10, n - 1),
        f"bytes=10-{n + 50}": (10, n - 1),
    }
    for header, (start, end) in cases.items():
        r = client.get(f"/files/{MRC}", headers={"Range": header})
        assert r.status_code == 206, header
        assert r.headers["content-range"] == f"bytes {start}-{end}/{n}"
        assert r.headers["content-length"] == str(end - start + 1)
        assert r.content == body[start : end + 1]
    for header in (f"bytes={n}-", f"bytes={n + 100}-{n + 200}"):
        r = client.get(f"/files/{MRC}", headers={"Range": header})
        assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{n}"
    stale = client.get(f"/files/{MRC}", headers={"Range": "bytes=0-9", "If-Range": '"old"'})
    assert stale.status_code == 200 and stale.content == body


def test_missing_hidden_and_folders_are_404(served):
    client, source = served
    data = _data(source)
    (data / "10000" / TOMO_RUN / ".tmp-half.mrc").write_bytes(b"half")
    (data / ".staging").mkdir(exist_ok=True)
    (data / ".staging" / "x.mrc").write_bytes(b"x")
    for path in (
        "10000/nope.mrc",
        f"10000/{TOMO_RUN}",
        f"10000/{TOMO_RUN}/.tmp-half.mrc",
        ".staging/x.mrc",
        "",
    ):
        assert client.get(f"/files/{path}").status_code == 404, path


@pytest.fixture
def live(sqlite_source: Source, live_server):
    url = live_server(_serve(sqlite_source.root))
    return url, sqlite_source


def _raw_get(url, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(url.host, url.port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_traversal_attempts_are_404(live, tmp_path):
    url, source = live
    data = _data(source)
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    os.symlink(secret, data / "10000" / "leak.txt")
    os.symlink(data / "10000" / "dataset_metadata.json", data / "10000" / "inside.json")
    assert _raw_get(url, f"/files/{MRC}")[0] == 200
    assert _raw_get(url, "/files/10000/inside.json")[0] == 200  # links inside the tree: fine
    for path in (
        "/files/../cryocurate.toml",
        "/files/10000/../../cryocurate.toml",
        "/files/%2e%2e/cryocurate.toml",
        "/files/10000/%2e%2e/%2e%2e/catalog.sqlite",
        "/files/..%2fcryocurate.toml",
        "/files//etc/passwd",
        "/files/%2fetc/passwd",
        f"/files/{secret}",
        "/files/10000/leak.txt",
        "/files/10000/./dataset_metadata.json",
        "/files/10000\\..\\..\\cryocurate.toml",
    ):
        status, body = _raw_get(url, path)
        assert status in (404, 400), (path, status)
        assert b"secret" not in body and b"[catalog]" not in body


# ── zips ────────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("name", ["v1", "v2"])
def test_zip_is_valid_stored_and_byte_identical(served, name):
    client, source = served
    with Portal.open(source.root) as portal:
        listings = {
            ("dataset", 10000): list_entity(portal, "dataset", 10000, name),
            ("run", source.tomo_run_id): list_entity(portal, "run", source.tomo_run_id, name),
            ("annotation", source.mask_annotation_id): list_entity(
                portal, "annotation", source.mask_annotation_id, name
            ),
        }
    for (kind, entity_id), listing in listings.items():
        r = client.get(f"/download/{kind}/{entity_id}.zip", params={"layout": name})
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/zip"
        assert r.headers["content-length"] == str(len(r.content))
        assert f'filename="{kind}-{entity_id}-{name}.zip"' in r.headers["content-disposition"]
        with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
            assert zf.testzip() is None
            assert zf.namelist() == [e.path for e in listing.entries]
            for e, info in zip(listing.entries, zf.infolist(), strict=True):
                assert info.compress_type == zipfile.ZIP_STORED
                expected = e.content if e.content is not None else e.source.read_bytes()
                assert zf.read(info) == expected, e.path
        head = client.head(f"/download/{kind}/{entity_id}.zip", params={"layout": name})
        assert head.status_code == 200 and head.headers["content-length"] == str(len(r.content))


def test_zip_and_manifest_errors(served):
    client, _ = served
    assert client.get("/download/dataset/999.zip").status_code == 404
    assert client.get("/download/run/999.zip").json()["error"] == "no run 999"
    assert client.get("/download/frames/1.zip").status_code == 400
    assert client.get("/download/dataset/10000.zip?layout=v3").status_code == 400


def test_manifest_lists_urls_and_rewritten_content(served):
    client, source = served
    m = client.get(f"/download/run/{source.tomo_run_id}.json", params={"layout": "v2"}).json()
    assert m["layout"] == "v2" and m["dataset_id"] == 10000
    assert sum(f["size"] for f in m["files"]) == m["total_bytes"]
    for f in m["files"]:
        if "url" in f:
            r = client.get(f["url"])
            assert r.status_code == 200 and len(r.content) == f["size"], f["path"]
        else:
            assert f["path"].endswith(".json") and len(f["content"].encode()) == f["size"]


@pytest.mark.slow
def test_zip_of_a_300_mb_run_streams_in_bounded_memory(tmp_path, class_job, live_server):
    size = 300 << 20
    source = build_source(tmp_path / "portal", None, class_job)
    big = _data(source) / MRC
    with open(big, "r+b") as fh:  # the tomogram grows to 300 MB: sparse, with random blocks
        fh.truncate(size)
        for offset in range(1 << 20, size, 37 << 20):
            fh.seek(offset)
            fh.write(os.urandom(1 << 20))
    url = live_server(_serve(source.root))
    server = psutil.Process(url.process.pid)
    zip_url = f"{url}/download/run/{source.tomo_run_id}.zip?layout=v2"
    httpx.get(f"{url}/download/run/{source.class_run_id}.zip").raise_for_status()  # warm up
    baseline = server.memory_info().rss
    peak = baseline
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, server.memory_info().rss)
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out = tmp_path / "run.zip"
    started = time.perf_counter()
    try:
        with httpx.stream("GET", zip_url, timeout=120) as r, open(out, "wb") as fh:
            assert r.status_code == 200
            time.sleep(1.0)  # a slow client: the server must wait, not buffer
            for chunk in r.iter_raw(1 << 20):
                fh.write(chunk)
        seconds = time.perf_counter() - started - 1.0
    finally:
        done.set()
        watcher.join()
    assert out.stat().st_size == int(r.headers["content-length"])
    growth = peak - baseline
    rate = out.stat().st_size / seconds / 1e6
    print(f"\nzip of {size >> 20} MB: {rate:.0f} MB/s, server RSS +{growth / 2**20:.1f} MiB")
    assert growth < 48 << 20, f"server memory grew by {growth / 2**20:.0f} MiB"
    member = f"10000/{TOMO_RUN}/Reconstructions/VoxelSpacing10.000/Tomograms/100/{TOMO_RUN}.mrc"
    with zipfile.ZipFile(out) as zf:
        info = zf.getinfo(member)
        assert info.file_size == size and info.compress_type == zipfile.ZIP_STORED
        digest = hashlib.sha256()
        with zf.open(info) as fh:  # reading to the end checks the CRC too
            while block := fh.read(8 << 20):
                digest.update(block)
    expected = hashlib.sha256()
    with open(big, "rb") as fh:
        while block := fh.read(8 << 20):
            expected.update(block)
    assert digest.hexdigest() == expected.hexdigest()


def _grow(path: Path, size: int) -> None:
    """Make ``path`` ``size`` bytes (sparse, with a random block every 37 MiB)."""
    with open(path, "r+b") as fh:
        fh.truncate(size)
        for offset in range(1 << 20, size, 37 << 20):
            fh.seek(offset)
            fh.write(os.urandom(1 << 20))


@pytest.mark.slow
def test_a_file_removed_during_a_zip_download_cuts_it_short(tmp_path, class_job, live_server):
    """The zip's length was promised before its first byte: a file that vanishes on the way
    must end the download visibly incomplete, never as a smaller zip that looks whole."""
    source = build_source(tmp_path / "portal", None, class_job)
    _grow(_data(source) / MRC, 200 << 20)
    url = live_server(_serve(source.root))
    with Portal.open(source.root) as portal:
        listing = list_entity(portal, "run", source.tomo_run_id)
    big = next(i for i, e in enumerate(listing.entries) if e.size == 200 << 20)
    victim = listing.entries[-1].source  # zipped after the tomogram
    assert victim is not None and big < len(listing.entries) - 1
    received = 0
    zip_url = f"{url}/download/run/{source.tomo_run_id}.zip"
    with pytest.raises(httpx.RemoteProtocolError), httpx.stream("GET", zip_url) as r:
        assert r.status_code == 200
        for chunk in r.iter_raw(1 << 20):
            if received == 0:
                victim.unlink()  # the server is still reading the 200 MB tomogram
            received += len(chunk)
    assert received < int(r.headers["content-length"])
    assert httpx.get(f"{url}/download/run/{source.class_run_id}.zip").status_code == 200
    log = url.log_path.read_text()
    assert f"zip download cut short: {victim}: was removed from the data tree" in log
    assert "Traceback" not in log


@pytest.mark.slow
def test_a_client_that_leaves_mid_zip_stops_the_server_reading(tmp_path, class_job, live_server):
    source = build_source(tmp_path / "portal", None, class_job)
    _grow(_data(source) / MRC, 200 << 20)
    url = live_server(_serve(source.root))
    server = psutil.Process(url.process.pid)
    httpx.get(f"{url}/download/run/{source.class_run_id}.zip").raise_for_status()  # warm up

    idle = server.num_threads()
    with httpx.stream("GET", f"{url}/download/run/{source.tomo_run_id}.zip") as r:
        next(r.iter_raw(1 << 20))
        assert server.num_threads() > idle  # the read-ahead thread is running
    deadline = time.monotonic() + 10
    while server.num_threads() > idle and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.num_threads() == idle, "the zip's read-ahead thread outlived its client"
    assert httpx.get(f"{url}/download/run/{source.class_run_id}.zip").status_code == 200
