"""Benchmark: the portal's HTML pages and the viewer's slices, served, on the benchmark catalog.

The catalog is the portal benchmark's (``benchmarks/catalog_fixture.py``, cached under
``benchmarks/_data/portal-sqlite/``, reused, made only if missing): 1,000 datasets, 50,000 runs,
200,000 annotations and 5,000,000 class averages, plus one real tomography run (a 1024 × 1024 ×
128 float32 tomogram of noise with its OME-Zarr pyramid), the tomogram the viewer shows here.
Target (the issue): every page under 100 ms server time at p95; the viewer shows a new slice
in under 50 ms once loaded.

How: ``cryocurate serve ROOT --port N`` runs in a subprocess on loopback with one worker, as
users run it. Every page is requested as HTML ``--warmup`` times, then ``--repeat`` rounds of
every page in turn (so a busy moment of the machine spreads over the pages) over one
keep-alive connection (httpx). The time is the server's own (``Server-Timing: …;dur=`` or
``X-Process-Time``) when the app sends one; otherwise the client's, from sending the request
to having read the whole body, an upper bound (the "floor" row, a static file, shows the HTTP
overhead in it); the table's caption says which. Beside it, the server process's CPU time per
request (its threads' ``/proc/…/schedstat``), which other work on the machine does not
inflate; and the whole run samples how many cores other processes kept busy.

Pages: Browse (``/``: plain, with search terms, with filters, the last page, and the request
that rebuilds the facet summary once its cache has expired), Dataset Overview (the dataset
with the most runs, its first and last page of runs), Deposition, Run Overview (a tomography
run with the most annotations and a median one; a ``class2d`` run with 100 class averages and
one with the most), and View Tomogram (``/runs/{id}/view``) for the real tomogram and for the
run with the most annotations (its many overlay layers).

The generated tomography runs have no files. To time the viewer page of an annotated run,
its default tomogram's OME-Zarr path is made, for the duration of the benchmark, a symbolic
link to the real tomogram's pyramid (its folders are created and removed afterwards; the
catalog is not changed). ``--no-link`` skips that row.

Slices (``GET /tomograms/{id}/slice.png?z=&level=``), at the level the viewer opens on and at
level 0 (full resolution): the first slice of a level (the server reads the level into its
cache), then consecutive z one at a time (as the user steps), then the viewer's prefetch burst
(z ± 1…8 after a slice is shown, over 6 connections as a browser sends them): each request's
time and the burst's wall time. With ``--browser`` (the default when Chromium is found) the
viewer is also driven in headless Chromium: z is stepped with the arrow keys (120 ms apart, so
the prefetch can run, then 33 ms apart, a held key) and the viewer's own key-press-to-frame
times (``window.viewerTimings``) are read: the issue's "new slice in under 50 ms", end to end.

``--explain`` (on by default) runs the same pages in this process (the app under FastAPI's
test client): the SQL statements of each page replayed with every row fetched, to tell the
database's share from Python's (ORM, context, Jinja2), with the slowest statement's query plan;
and, in a fresh process, the pauses of Python's full garbage collections on an
allocation-heavy page, with and without ``gc.freeze()``.

Usage: python benchmarks/pages.py [--quick] [--repeat 30] [--write benchmarks/RESULTS.md]
       [--no-browser] [--no-explain] [--no-link] [--expired-samples 3]

``--quick`` uses the 1/50 catalog (a smoke run). ``--write`` replaces the section between
``<!-- pages:start -->`` and ``<!-- pages:end -->`` of RESULTS.md (appended if missing).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from catalog_fixture import Fixture, ensure_portal
from cryocurate.portal import Portal
from results import machine, write_section
from server import CHROMIUM_ARGS
from server import served as serve_portal

PAGE_TARGET_MS = 100.0
SLICE_TARGET_MS = 50.0
PER_PAGE = 25  # the Browse page's default page size
PREFETCH = 8  # slices each side that the viewer fetches after showing one
BROWSER_CONNECTIONS = 6  # a browser's HTTP/1.1 connections per host


# ── the server ──────────────────────────────────────────────────────────────────────────────


@dataclass
class Server:
    base: str
    proc: psutil.Process

    def cpu_ms(self) -> float:
        """CPU time of the server process (and any children), in ms: on Linux the sum of its
        threads' ``/proc/…/schedstat`` (nanoseconds), else user + system (clock ticks)."""
        total = 0.0
        for p in [self.proc, *self.proc.children(recursive=True)]:
            tasks = Path(f"/proc/{p.pid}/task")
            try:
                total += sum(
                    int((t / "schedstat").read_text().split()[0]) / 1e6 for t in tasks.iterdir()
                )
                continue
            except (OSError, ValueError, IndexError):
                pass
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += (t.user + t.system) * 1000
        return total


@contextlib.contextmanager
def served(root: Path) -> Iterator[Server]:
    """``cryocurate serve ROOT --port N`` (one worker) on loopback."""
    with serve_portal(root, "/static/viewer.js") as (base, proc):
        yield Server(base, proc)


_DUR = re.compile(r"dur=([0-9.]+)")


def server_ms(response: httpx.Response) -> float | None:
    """The server's own time for a response, if the app reports it."""
    timing = response.headers.get("server-timing")
    if timing and (durations := [float(d) for d in _DUR.findall(timing)]):
        return max(durations)
    process = response.headers.get("x-process-time")  # seconds, by convention
    if process:
        return float(process.removesuffix("ms")) if process.endswith("ms") else float(process) * 1e3
    return None


class OtherLoad:
    """Samples, every second, how many cores processes other than this benchmark's (itself,
    its server, its browser) keep busy: the machine's busy CPU time minus this process
    tree's. Other work on the machine inflates latencies; this says how much there was."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.samples: list[float] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._me = psutil.Process()

    @staticmethod
    def _busy() -> float:
        t = psutil.cpu_times()
        return sum(t) - t.idle - getattr(t, "iowait", 0.0)

    def _ours(self, last: dict[int, float]) -> float:
        grown = 0.0
        for p in [self._me, *self._me.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                now = t.user + t.system
                grown += now - last.get(p.pid, now)
                last[p.pid] = now
        return grown

    def _run(self) -> None:
        last: dict[int, float] = {}
        self._ours(last)
        busy = self._busy()
        while not self._done.wait(self.interval):
            now = self._busy()
            ours = self._ours(last)
            self.samples.append(max(0.0, (now - busy - ours) / self.interval))
            busy = now

    def __enter__(self) -> OtherLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def summary(self) -> str:
        if not self.samples:
            return "not measured"
        ordered = sorted(self.samples)
        p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
        return (
            f"other processes kept {statistics.mean(self.samples):.2f} cores busy on average "
            f"(90th percentile of 1 s samples {p90:.2f}, max {ordered[-1]:.2f}) of "
            f"{os.cpu_count()}"
        )


# ── what is requested ───────────────────────────────────────────────────────────────────────


@dataclass
class Page:
    name: str
    path: str
    params: list[tuple[str, str]] = field(default_factory=list)
    floor: bool = False  # a reference row, not a page

    def url(self) -> str:
        return str(httpx.URL(self.path, params=self.params))


@dataclass
class Picks:
    """Representative ids of the catalog."""

    n_datasets: int
    big_dataset: int
    big_dataset_runs: int
    big_dataset_kind: str
    deposition: int
    deposition_datasets: int
    tomo_run_most: int
    tomo_run_most_annotations: int
    tomo_run_typical: int
    tomo_run_typical_annotations: int
    class2d_run: int
    class2d_classes: int
    class2d_run_most: int
    class2d_most_classes: int
    real_run: int
    real_tomogram: int
    real_omezarr: str
    linked_tomogram: int
    linked_omezarr: str | None


def pick(fixture: Fixture) -> Picks:
    """A big dataset, its deposition, tomography runs with many and a typical number of
    annotations, class2d runs with 100 and with the most classes, and the real tomogram."""

    def one(conn: sa.Connection, sql: str, **params: Any) -> Any:
        return conn.execute(sa.text(sql), params).one()

    with Portal.open(fixture.root) as portal, portal.engine.connect() as conn:
        n_datasets = conn.scalar(sa.text("SELECT count(*) FROM datasets"))
        big, big_runs = one(
            conn,
            "SELECT dataset_id, count(*) AS n FROM runs GROUP BY dataset_id "
            "ORDER BY n DESC, dataset_id LIMIT 1",
        )
        kind = conn.scalar(
            sa.text("SELECT kind FROM runs WHERE dataset_id = :d LIMIT 1"), {"d": big}
        )
        dep = conn.scalar(sa.text("SELECT deposition_id FROM datasets WHERE id = :d"), {"d": big})
        dep_n = conn.scalar(
            sa.text("SELECT count(*) FROM datasets WHERE deposition_id = :d"), {"d": dep}
        )
        per_run = conn.execute(
            sa.text(
                "SELECT run_id, count(*) AS n FROM annotations "
                "WHERE run_id <= :last GROUP BY run_id ORDER BY n DESC, run_id"
            ),
            {"last": fixture.counts["runs"]},
        ).all()
        most, most_n = per_run[0]
        typical, typical_n = per_run[len(per_run) // 2]
        c100, n100 = one(
            conn,
            "SELECT run_id, n_classes FROM class2d_jobs ORDER BY abs(n_classes - 100), run_id "
            "LIMIT 1",
        )
        cmax, nmax = one(
            conn,
            "SELECT run_id, n_classes FROM class2d_jobs ORDER BY n_classes DESC, run_id LIMIT 1",
        )
        real_tomo, real_zarr = one(
            conn,
            "SELECT id, omezarr_dir FROM tomograms WHERE run_id = :r "
            "ORDER BY is_visualization_default DESC, voxel_spacing, id LIMIT 1",
            r=fixture.download_run_id,
        )
        linked, linked_zarr = one(  # the tomogram the viewer picks for the run (viewer_setup)
            conn,
            "SELECT id, omezarr_dir FROM tomograms WHERE run_id = :r "
            "ORDER BY is_visualization_default DESC, voxel_spacing, id LIMIT 1",
            r=most,
        )
    return Picks(
        n_datasets=n_datasets,
        big_dataset=big,
        big_dataset_runs=big_runs,
        big_dataset_kind=str(kind),
        deposition=dep,
        deposition_datasets=dep_n,
        tomo_run_most=most,
        tomo_run_most_annotations=most_n,
        tomo_run_typical=typical,
        tomo_run_typical_annotations=typical_n,
        class2d_run=c100,
        class2d_classes=n100,
        class2d_run_most=cmax,
        class2d_most_classes=nmax,
        real_run=fixture.download_run_id,
        real_tomogram=real_tomo,
        real_omezarr=real_zarr,
        linked_tomogram=linked,
        linked_omezarr=linked_zarr,
    )


def pages(p: Picks, *, linked: bool) -> list[Page]:
    last = max(1, math.ceil(p.n_datasets / PER_PAGE))
    runs_pages = max(1, math.ceil(p.big_dataset_runs / 100))
    out = [
        Page("floor: a static file (/static/viewer.js)", "/static/viewer.js", floor=True),
        Page("browse", "/"),
        Page("browse, search: one word", "/", [("q", "ribosome")]),
        Page("browse, search: two words", "/", [("q", "membrane Krios")]),
        Page("browse, search: a phrase and a word", "/", [("q", '"cryo-FIB lamellae" actin')]),
        Page(
            "browse, 3 filters: organism, sample type, object",
            "/",
            [("organism", "Homo sapiens"), ("sample_type", "cell"), ("object", "ribosome")],
        ),
        Page(
            "browse, 3 tilt-series filters: microscope ×2, quality ≥ 4, ground truth",
            "/",
            [
                ("microscope", "Titan Krios"),
                ("microscope", "Krios G4"),
                ("quality_min", "4"),
                ("ground_truth", "1"),
            ],
        ),
        Page(
            "browse, search + 2 filters, page 2",
            "/",
            [("q", "ribosome"), ("kind", "tomography"), ("method_type", "manual"), ("page", "2")],
        ),
        Page(f"browse, last page ({last})", "/", [("page", str(last))]),
        Page(
            f"dataset overview ({p.big_dataset_runs} {p.big_dataset_kind} runs)",
            f"/datasets/{p.big_dataset}",
        ),
        Page(
            f"dataset overview, last page of runs ({runs_pages})",
            f"/datasets/{p.big_dataset}",
            [("page", str(runs_pages))],
        ),
        Page(f"deposition ({p.deposition_datasets} datasets)", f"/depositions/{p.deposition}"),
        Page(
            f"run: tomography, {p.tomo_run_most_annotations} annotations (the most)",
            f"/runs/{p.tomo_run_most}",
        ),
        Page(
            f"run: tomography, {p.tomo_run_typical_annotations} annotations (median)",
            f"/runs/{p.tomo_run_typical}",
        ),
        Page(f"run: class2d, {p.class2d_classes} class averages", f"/runs/{p.class2d_run}"),
        Page(
            f"run: class2d, {p.class2d_most_classes} class averages (the most)",
            f"/runs/{p.class2d_run_most}",
        ),
        Page("run: the real tomography run", f"/runs/{p.real_run}"),
        Page("viewer: the real tomogram (no annotations)", f"/runs/{p.real_run}/view"),
    ]
    if linked:
        out.append(
            Page(
                f"viewer: tomography run with {p.tomo_run_most_annotations} annotations",
                f"/runs/{p.tomo_run_most}/view",
            )
        )
    return out


@contextlib.contextmanager
def linked_pyramid(data_dir: Path, target: str | None, source: str) -> Iterator[bool]:
    """Make ``data_dir/target`` a symbolic link to ``data_dir/source`` while in use (creating
    and then removing the folders it needs); yields whether the link is there."""
    if not target:
        yield False
        return
    link = data_dir / target
    if link.exists() or link.is_symlink():
        yield link.exists()  # files of its own (or a link left behind): use them as they are
        return
    made: list[Path] = []
    parent = link.parent
    while not parent.exists():
        made.append(parent)
        parent = parent.parent
    for folder in reversed(made):
        folder.mkdir()
    try:
        link.symlink_to((data_dir / source).resolve(), target_is_directory=True)
        yield True
    finally:
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        for folder in made:  # deepest first
            with contextlib.suppress(OSError):
                folder.rmdir()


# ── measuring ───────────────────────────────────────────────────────────────────────────────


def p95(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


@dataclass
class Timing:
    name: str
    url: str
    times_ms: list[float]
    kb: float
    source: str  # "server" or "client"
    cpu_ms: float | None = None  # the server's CPU time per request, mean
    floor: bool = False  # a reference row: no target
    target_ms: float = PAGE_TARGET_MS
    note: str = ""

    @property
    def p50(self) -> float:
        return statistics.median(self.times_ms)

    @property
    def p95(self) -> float:
        return p95(self.times_ms)

    @property
    def max(self) -> float:
        return max(self.times_ms)

    @property
    def ok(self) -> bool:
        return self.p95 < self.target_ms


def timed_get(client: httpx.Client, url: str) -> tuple[float, httpx.Response]:
    """(ms, response): the server's time if it says, else send → whole body read."""
    start = time.perf_counter()
    response = client.get(url)
    _ = response.content
    elapsed = (time.perf_counter() - start) * 1000
    if response.status_code != 200:
        raise SystemExit(f"GET {url}: HTTP {response.status_code}: {response.text[:500]}")
    measured = server_ms(response)
    return (measured if measured is not None else elapsed), response


def _source(response: httpx.Response) -> str:
    return "server" if server_ms(response) is not None else "client"


def bench_pages(server: Server, todo: list[Page], warmup: int, repeat: int) -> list[Timing]:
    """Every page ``warmup`` times, then ``repeat`` rounds of every page in turn (so a busy
    moment of the machine spreads over the pages instead of landing on one)."""
    urls = [page.url() for page in todo]
    times: list[list[float]] = [[] for _ in todo]
    cpu = [0.0 for _ in todo]
    last: list[httpx.Response | None] = [None for _ in todo]
    with httpx.Client(base_url=server.base, timeout=300, headers={"Accept": "text/html"}) as client:
        for url in urls:
            for _ in range(warmup):
                timed_get(client, url)
        for _ in range(repeat):
            for i, url in enumerate(urls):
                before = server.cpu_ms()
                ms, last[i] = timed_get(client, url)
                cpu[i] += server.cpu_ms() - before
                times[i].append(ms)
    results = []
    for i, page in enumerate(todo):
        response = last[i]
        assert response is not None
        r = Timing(
            page.name,
            urls[i],
            times[i],
            len(response.content) / 1024,
            _source(response),
            cpu[i] / repeat,
            page.floor,
        )
        _log(f"{r.name}: p50 {r.p50:.1f} ms, p95 {r.p95:.1f} ms, max {r.max:.1f} ms")
        results.append(r)
    return results


def summary_ttl() -> float | None:
    """How long the Browse page's facet summary is cached (None: the app has no such cache)."""
    from cryocurate.catalog import search

    ttl = getattr(search, "SUMMARY_TTL_S", None)
    return float(ttl) if ttl is not None else None


def bench_expired_summary(server: Server, samples: int) -> Timing | None:
    """Browse requested once the facet summary has expired: the request that rebuilds it
    (what every request pays on a portal visited less often than the cache lives)."""
    ttl = summary_ttl()
    if ttl is None or samples < 1:
        return None
    times, cpu = [], 0.0
    response = None
    with httpx.Client(base_url=server.base, timeout=300, headers={"Accept": "text/html"}) as client:
        for i in range(samples):
            _log(f"waiting {ttl + 1:.0f} s for the facet summary to expire ({i + 1}/{samples}) …")
            time.sleep(ttl + 1)
            before = server.cpu_ms()
            ms, response = timed_get(client, "/")
            cpu += server.cpu_ms() - before
            times.append(ms)
    assert response is not None
    r = Timing(
        "browse, facet summary rebuilt",
        "/",
        times,
        len(response.content) / 1024,
        _source(response),
        cpu / samples,
        note=f"the first request after its {ttl:.0f} s cache expired",
    )
    _log(f"{r.name}: p50 {r.p50:.1f} ms, max {r.max:.1f} ms")
    return r


@dataclass
class SliceBench:
    tomogram_id: int
    levels: list[dict[str, Any]]
    open_level: int
    rows: list[Timing]
    bursts: list[dict[str, Any]]
    reads: dict[int, str] = field(default_factory=dict)


def level_reads(zarr_dir: Path) -> dict[int, str]:
    """Per pyramid level: its chunk shape and what one z slice decodes when the level is read
    a slice at a time (the viewer holds a level whole only up to its cache limit)."""
    import numpy as np

    from cryocurate.formats.omezarr import read_pyramid_info

    try:
        from cryocurate.web.pages.viewer import LEVEL_CACHE_BYTES
    except ImportError:
        LEVEL_CACHE_BYTES = 0
    info = read_pyramid_info(zarr_dir)
    itemsize = np.dtype(info.dtype).itemsize
    out = {}
    for lv, (shape, chunk) in enumerate(zip(info.shapes, info.chunks, strict=True)):
        per_slice = math.ceil(shape[1] / chunk[1]) * math.ceil(shape[2] / chunk[2])
        chunk_mib = math.prod(chunk) * itemsize / 2**20
        nbytes = math.prod(shape) * itemsize
        held = LEVEL_CACHE_BYTES and nbytes <= LEVEL_CACHE_BYTES
        text = f"chunks {'×'.join(map(str, chunk))} (z×y×x)"
        if held:
            text += "; held in memory whole after its first slice"
        else:
            text += (
                f"; read a slice at a time: each slice decodes {per_slice} chunks of "
                f"{chunk_mib:,.0f} MiB ({per_slice * chunk_mib:,.0f} MiB) for "
                f"{shape[1] * shape[2] * itemsize / 2**20:,.0f} MiB of pixels"
            )
        out[lv] = text
    return out


def bench_slices(server: Server, run_id: int, repeat: int, level0_repeat: int) -> SliceBench:
    """The viewer's slices: at the level it opens on and at level 0; first (cold) slice,
    consecutive z one at a time, and the prefetch burst."""
    with httpx.Client(base_url=server.base, timeout=300) as client:
        setup = client.get(f"/runs/{run_id}/view.json").json()
        viewer = setup["viewer"]
        tomo, levels, open_level = viewer["tomogram_id"], viewer["levels"], viewer["level"]
        rows: list[Timing] = []
        bursts: list[dict[str, Any]] = []
        plan = [(open_level, repeat, "the level the viewer opens on")]
        if open_level != 0:
            plan.append((0, level0_repeat, "full resolution"))
        for level, n, what in plan:
            depth = levels[level]["shape_zyx"][0]
            shape = "×".join(str(s) for s in reversed(levels[level]["shape_zyx"][1:]))
            mib = levels[level]["nbytes"] / 2**20
            label = f"level {level} ({what}; {shape} px, {mib:,.0f} MiB)"
            url = f"/tomograms/{tomo}/slice.png?level={level}&z="
            z0 = depth // 2
            before = server.cpu_ms()
            ms, response = timed_get(client, f"{url}{z0}")
            rows.append(
                Timing(
                    f"slice, {label}: first slice (reads the level)",
                    f"{url}{z0}",
                    [ms],
                    len(response.content) / 1024,
                    _source(response),
                    server.cpu_ms() - before,
                    floor=True,
                    note="once per level and server process: part of loading",
                )
            )
            zs = [(z0 + 1 + i) % depth for i in range(min(n, depth - 1))]
            times, sizes, cpu = [], [], 0.0
            for z in zs:
                before = server.cpu_ms()
                ms, response = timed_get(client, f"{url}{z}")
                cpu += server.cpu_ms() - before
                times.append(ms)
                sizes.append(len(response.content))
            rows.append(
                Timing(
                    f"slice, {label}: consecutive z",
                    f"{url}{zs[0]}…{zs[-1]}",
                    times,
                    statistics.mean(sizes) / 1024,
                    _source(response),
                    cpu / len(zs),
                    target_ms=SLICE_TARGET_MS,
                )
            )
            _log(f"{rows[-1].name}: p50 {rows[-1].p50:.1f} ms, p95 {rows[-1].p95:.1f} ms")
            burst = [z for d in range(1, PREFETCH + 1) for z in (z0 + d, z0 - d) if 0 <= z < depth]
            if level != open_level:
                burst = burst[: max(2, level0_repeat)]
            if burst:
                bursts.append(
                    {"level": level, "label": label, **prefetch_burst(server, url, burst)}
                )
                b = bursts[-1]
                _log(f"burst at level {level}: {b['n']} slices in {b['wall_ms']:.0f} ms")
    return SliceBench(tomo, levels, open_level, rows, bursts)


def prefetch_burst(server: Server, url: str, zs: list[int]) -> dict[str, Any]:
    """Request slices ``zs`` at once over ``BROWSER_CONNECTIONS`` connections, as the viewer's
    prefetch does; each request's time and the wall time until the last one is in."""
    local = threading.local()
    clients: list[httpx.Client] = []
    lock = threading.Lock()

    def get(z: int) -> float:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=server.base, timeout=300)
            with lock:
                clients.append(local.client)
        return timed_get(local.client, f"{url}{z}")[0]

    before = server.cpu_ms()
    start = time.perf_counter()
    try:
        with concurrent.futures.ThreadPoolExecutor(BROWSER_CONNECTIONS) as pool:
            times = list(pool.map(get, zs))
    finally:
        for c in clients:
            c.close()
    wall = (time.perf_counter() - start) * 1000
    return {
        "n": len(zs),
        "wall_ms": wall,
        "p50": statistics.median(times),
        "p95": p95(times),
        "cpu_ms": (server.cpu_ms() - before) / len(zs),
    }


# ── in the browser ──────────────────────────────────────────────────────────────────────────


def chromium() -> str | None:
    path = os.environ.get("CRYOCURATE_TEST_CHROMIUM", "").strip() or shutil.which("chromium")
    return path if path and os.access(path, os.X_OK) else None


def bench_browser(base: str, run_id: int, steps: int) -> dict[str, Any]:
    """Open the viewer in headless Chromium and wait for its first slice; then step z with
    the arrow keys: up from 0 with 120 ms between presses (time for the prefetch: "once
    loaded"), then down from the top with 33 ms between presses (a held key's auto-repeat).
    Each pass: the viewer's own key press → drawn and → next frame times."""
    from playwright.sync_api import sync_playwright

    path = chromium()
    assert path is not None
    canvas = "document.getElementById('viewer-canvas')"
    passes: list[dict[str, Any]] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            start = time.perf_counter()
            page.goto(f"{base}/runs/{run_id}/view")
            page.wait_for_function(f"() => {canvas}.dataset.ready === '1'", timeout=120_000)
            open_ms = (time.perf_counter() - start) * 1000
            page.focus("#viewer-canvas")
            for home, key, pause_ms, step in (
                ("Home", "ArrowUp", 120, 1),
                ("End", "ArrowDown", 33, -1),
            ):
                page.keyboard.press(home)
                page.wait_for_function(f"() => {canvas}.dataset.ready === '1'", timeout=60_000)
                z = int(page.evaluate(f"() => Number({canvas}.dataset.z)"))
                page.wait_for_timeout(500)  # the first prefetch
                page.evaluate("() => { window.viewerTimings.length = 0; }")
                for _ in range(steps):
                    page.wait_for_timeout(pause_ms)
                    page.keyboard.press(key)
                    z += step
                    page.wait_for_function(
                        f"() => {canvas}.dataset.z === '{z}' && {canvas}.dataset.ready === '1'",
                        timeout=60_000,
                    )
                page.wait_for_function(f"() => window.viewerTimings.length >= {steps}")
                timings = page.evaluate("() => window.viewerTimings")
                draw = [t["draw_ms"] for t in timings]
                frame = [t["frame_ms"] for t in timings]
                passes.append(
                    {
                        "key": key,
                        "from": home,
                        "pause_ms": pause_ms,
                        "steps": len(timings),
                        "draw_p50": statistics.median(draw),
                        "draw_p95": p95(draw),
                        "frame_p50": statistics.median(frame),
                        "frame_p95": p95(frame),
                        "frame_max": max(frame),
                    }
                )
        finally:
            browser.close()
    return {"open_ms": open_ms, "passes": passes}


# ── where the time goes (in this process) ───────────────────────────────────────────────────


@dataclass
class Breakdown:
    name: str
    total_ms: float
    statements: int
    sql_ms: float
    slowest_ms: float
    slowest_sql: str
    slowest_plan: str


def _short_sql(statement: str) -> str:
    text = " ".join(statement.split())
    head, sep, tail = text.partition(" FROM ")
    text = f"{head[:40]}… FROM {tail}" if sep and len(head) > 40 else text
    return text[:220] + ("…" if len(text) > 220 else "")


def replay(engine: sa.Engine, statements: list[tuple[str, Any]]) -> tuple[list[float], list[str]]:
    """Each statement run again on a raw connection with every row fetched, the best of 3:
    its full cost (SQLite does most of a query's work while rows are fetched, after
    ``execute`` returns); and, on SQLite, each one's query plan."""
    raw = engine.raw_connection()
    times, plans = [], []
    try:
        cursor = raw.cursor()
        for statement, params in statements:
            best = math.inf
            for _ in range(3):
                start = time.perf_counter()
                cursor.execute(statement, params)
                cursor.fetchall()
                best = min(best, (time.perf_counter() - start) * 1000)
            times.append(best)
            plan = ""
            if engine.dialect.name == "sqlite":
                cursor.execute(f"EXPLAIN QUERY PLAN {statement}", params)
                plan = "; ".join(str(row[-1]) for row in cursor.fetchall())
                plan = plan[:300] + ("…" if len(plan) > 300 else "")
            plans.append(plan)
        cursor.close()
    finally:
        raw.close()
    return times, plans


def explain(root: Path, todo: list[Page], repeat: int = 7) -> list[Breakdown]:
    """Each page in this process (the app under FastAPI's test client, no HTTP): the median
    of ``repeat`` requests, with the SQL statements it ran, each replayed with every row
    fetched to cost it. Browse is also run with its facet summary (cached per process)
    dropped before each request: what the request that rebuilds it pays."""
    from fastapi.testclient import TestClient

    from cryocurate.catalog import search
    from cryocurate.web.app import create_app

    app = create_app(root)
    engine: sa.Engine = app.state.portal.engine
    log: list[tuple[str, Any]] = []

    def _before(conn: Any, cursor: Any, statement: str, params: Any, *args: Any) -> None:
        log.append((statement, params))

    sa.event.listen(engine, "before_cursor_execute", _before)
    summaries: dict[Any, Any] = getattr(search, "_SUMMARIES", {})
    rows = [(page, False) for page in todo if not page.floor]
    if hasattr(search, "_SUMMARIES"):
        rows.insert(1, (Page("browse, facet summary rebuilt", rows[0][0].path), True))
    out = []
    try:
        with TestClient(app, headers={"Accept": "text/html"}) as client:
            for page, cold in rows:
                url = page.url()
                client.get(url)
                runs: list[tuple[float, list[tuple[str, Any]]]] = []
                for _ in range(repeat):
                    if cold:
                        summaries.clear()
                    log.clear()
                    start = time.perf_counter()
                    response = client.get(url)
                    total = (time.perf_counter() - start) * 1000
                    if response.status_code != 200:
                        raise SystemExit(f"GET {url} (in process): HTTP {response.status_code}")
                    runs.append((total, list(log)))
                runs.sort(key=lambda r: r[0])
                total, statements = runs[len(runs) // 2]
                selects = [
                    (st, pa) for st, pa in statements if st.lstrip().upper().startswith("SELECT")
                ]
                times, plans = replay(engine, selects)
                worst = max(range(len(times)), key=times.__getitem__) if times else None
                out.append(
                    Breakdown(
                        page.name,
                        total,
                        len(statements),
                        sum(times),
                        times[worst] if worst is not None else 0.0,
                        _short_sql(selects[worst][0]) if worst is not None else "",
                        plans[worst] if worst is not None else "",
                    )
                )
                _log(f"in process: {page.name}: {total:.1f} ms, SQL {sum(times):.1f} ms")
    finally:
        sa.event.remove(engine, "before_cursor_execute", _before)
        app.state.portal.close()
    return out


@dataclass
class GcProbe:
    page: str
    requests: int
    full: list[float]  # pauses of full (generation 2) collections, ms
    frozen_full: list[float]  # the same after gc.freeze()
    p95_ms: float
    frozen_p95_ms: float
    objects: int


def gc_probe(root: Path, page: Page, requests: int = 60) -> GcProbe:
    """:func:`gc_probe_here` in a fresh Python process (holding only the app, as the server
    does)."""
    import json

    argv = [sys.executable, __file__, "--gc-probe", str(root), page.url(), str(requests)]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return GcProbe(**{**json.loads(out.strip().splitlines()[-1]), "page": page.name})


def gc_probe_here(root: Path, page: Page, requests: int = 60) -> GcProbe:
    """Python's cyclic garbage collector on one allocation-heavy page, in this process: the
    pauses of full (generation 2) collections over ``requests`` requests, then the same after
    ``gc.freeze()`` (the objects alive after start-up moved out of the collector's way)."""
    import gc

    from fastapi.testclient import TestClient

    from cryocurate.web.app import create_app

    pauses: list[float] = []
    started = [0.0]

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        elif info.get("generation") == 2:
            pauses.append((time.perf_counter() - started[0]) * 1000)

    def run(client: Any) -> tuple[list[float], float]:
        for _ in range(3):
            client.get(page.url())
        pauses.clear()
        times = []
        for _ in range(requests):
            start = time.perf_counter()
            client.get(page.url())
            times.append((time.perf_counter() - start) * 1000)
        return list(pauses), p95(times)

    app = create_app(root)
    gc.callbacks.append(callback)
    try:
        with TestClient(app, headers={"Accept": "text/html"}) as client:
            full, plain_p95 = run(client)
            objects = len(gc.get_objects())
            gc.collect()
            gc.freeze()
            try:
                frozen, frozen_p95 = run(client)
            finally:
                gc.unfreeze()
    finally:
        gc.callbacks.remove(callback)
        app.state.portal.close()
    return GcProbe(page.name, requests, full, frozen, plain_p95, frozen_p95, objects)


# ── report ──────────────────────────────────────────────────────────────────────────────────


def _log(msg: str) -> None:
    print(f"  {msg}", file=sys.stderr, flush=True)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def page_table(results: list[Timing]) -> str:
    lines = [
        "| page | request | KiB | n | p50 ms | p95 ms | max ms | server CPU ms/req | target "
        "| met |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for r in results:
        met = "—" if r.floor else ("yes" if r.ok else "**no**")
        target = "—" if r.floor else f"< {r.target_ms:.0f}"
        name = r.name + (f" ({r.note})" if r.note else "")
        cpu = f"{r.cpu_ms:.1f}" if r.cpu_ms is not None else "—"
        lines.append(
            f"| {_cell(name)} | `{_cell(r.url)}` | {r.kb:,.1f} | {len(r.times_ms)} "
            f"| {r.p50:.1f} | {r.p95:.1f} | {r.max:.1f} | {cpu} | {target} | {met} |"
        )
    return "\n".join(lines)


def burst_table(bursts: list[dict[str, Any]]) -> str:
    lines = [
        "| prefetch burst | slices | connections | wall ms | per slice p50 ms | p95 ms "
        "| server CPU ms/slice |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for b in bursts:
        lines.append(
            f"| {_cell(b['label'])} | {b['n']} | {BROWSER_CONNECTIONS} | {b['wall_ms']:.0f} "
            f"| {b['p50']:.1f} | {b['p95']:.1f} | {b['cpu_ms']:.1f} |"
        )
    return "\n".join(lines)


def browser_table(b: dict[str, Any]) -> str:
    lines = [
        "| pass | presses | pause ms | key → drawn p50 ms | p95 ms | key → next frame p50 ms "
        "| p95 ms | max ms | < 50 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for p in b["passes"]:
        ok = "yes" if p["frame_p95"] < SLICE_TARGET_MS else "**no**"
        lines.append(
            f"| {p['key']} from {p['from']} | {p['steps']} | {p['pause_ms']} "
            f"| {p['draw_p50']:.1f} | {p['draw_p95']:.1f} | {p['frame_p50']:.1f} "
            f"| {p['frame_p95']:.1f} | {p['frame_max']:.1f} | {ok} |"
        )
    return "\n".join(lines)


def explain_table(rows: list[Breakdown]) -> str:
    lines = [
        "| page | in-process ms | SQL statements | SQL ms | other ms | slowest statement ms "
        "| slowest statement | its plan |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for b in rows:
        plan = f"`{_cell(b.slowest_plan)}`" if b.slowest_plan else ""
        lines.append(
            f"| {_cell(b.name)} | {b.total_ms:.1f} | {b.statements} | {b.sql_ms:.1f} "
            f"| {max(0.0, b.total_ms - b.sql_ms):.1f} | {b.slowest_ms:.1f} "
            f"| `{_cell(b.slowest_sql)}` | {plan} |"
        )
    return "\n".join(lines)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def database_version(fixture: Fixture) -> str:
    with Portal.open(fixture.root) as portal, portal.engine.connect() as conn:
        if portal.engine.dialect.name == "sqlite":
            return "SQLite " + str(conn.scalar(sa.text("SELECT sqlite_version()")))
        return "PostgreSQL " + str(conn.scalar(sa.text("SHOW server_version"))).split()[0]


@dataclass
class Run:
    fixture: Fixture
    picks: Picks
    quick: bool
    warmup: int
    repeat: int
    load_start: str
    load_end: str = ""
    other_load: str = ""
    page_results: list[Timing] = field(default_factory=list)
    slices: SliceBench | None = None
    browser: dict[str, Any] | None = None
    browser_note: str = ""
    breakdown: list[Breakdown] = field(default_factory=list)
    gc: GcProbe | None = None
    linked: bool = False


def misses(run: Run, *, near: bool = False) -> list[str]:
    """One line per page or slice row that misses its target (``near``: that meets it with
    less than 10 % to spare), with where its time goes."""
    by_name = {b.name: b for b in run.breakdown}
    rows = run.page_results + (run.slices.rows if run.slices else [])
    out = []
    for r in rows:
        if r.floor or (r.ok if not near else not r.ok or r.p95 < 0.9 * r.target_ms):
            continue
        line = f"{r.name}: p95 {r.p95:.0f} ms (p50 {r.p50:.0f} ms"
        if r.cpu_ms is not None:
            line += f", server CPU {r.cpu_ms:.0f} ms/request"
        line += ")"
        b = by_name.get(r.name)
        if b is not None:
            line += (
                f"; in process {b.total_ms:.0f} ms, of which SQL {b.sql_ms:.0f} ms in "
                f"{b.statements} statements (slowest {b.slowest_ms:.0f} ms)"
            )
        if r.p50 < r.target_ms / 2 and run.gc and run.gc.full:
            line += (
                f" — a tail, not the page's own cost: most likely a full garbage collection "
                f"landing on it ({statistics.median(run.gc.full):.0f} ms pauses, see above)"
            )
        if r.name.startswith("slice, level ") and run.slices:
            level = int(r.name.removeprefix("slice, level ").split()[0])
            if level in run.slices.reads:
                line += f" — level {level}: {run.slices.reads[level]}"
        out.append(line)
    return out


def report(run: Run) -> str:
    f, p = run.fixture, run.picks
    c = f.counts
    source = run.page_results[0].source if run.page_results else "client"
    how = (
        "server time from the response's timing header"
        if source == "server"
        else "**loopback client latency** (the app sends no `Server-Timing`/`X-Process-Time` "
        "header): request sent → whole body read over one keep-alive connection, an upper "
        "bound on the server time (the floor row, a static file, is the HTTP overhead in it)"
    )
    parts = [
        f"### {database_version(f)}{' (--quick)' if run.quick else ''} "
        f"({time.strftime('%Y-%m-%d')}, {machine()}; load average {run.load_start} at the "
        f"start, {run.load_end} at the end; {run.other_load})",
        "",
        f"Catalog: {c['datasets']:,} datasets, {c['runs']:,} runs ({c['class2d_jobs']:,} 2D, "
        f"{c['tiltseries']:,} tomography), {c['annotations']:,} annotations, "
        f"{c['class_averages']:,} class averages (`benchmarks/catalog_fixture.py`), plus run "
        f"{p.real_run}, a real tomogram of {'×'.join(map(str, f.sizes.tomogram_zyx[::-1]))} "
        "float32 voxels with its OME-Zarr pyramid. Server: `cryocurate serve ROOT` (uvicorn, "
        "1 worker) on loopback.",
        "",
        f"**Pages (HTML)** — {how}; {run.warmup} warm-up requests per page, then {run.repeat} "
        "rounds of every page in turn. Server CPU: the server process's user + system CPU "
        "time per request (mean; unlike the latency, not inflated by other work on the "
        f"machine). Target: p95 < {PAGE_TARGET_MS:.0f} ms. Slices "
        f"(`/tomograms/{{id}}/slice.png`): target p95 < {SLICE_TARGET_MS:.0f} ms; each z "
        "requested once, one after another (the browser caches what it has).",
        "",
        page_table(run.page_results + (run.slices.rows if run.slices else [])),
    ]
    if run.linked:
        parts += [
            "",
            f"The viewer row of run {p.tomo_run_most} reads the real tomogram's pyramid through "
            "a temporary symbolic link (generated runs have no files); its page lists the run's "
            f"{p.tomo_run_most_annotations} annotations as overlay layers.",
        ]
    if run.slices and run.slices.bursts:
        parts += [
            "",
            f"**Prefetch** — after drawing slice z the viewer requests z ± 1…{PREFETCH}; here "
            f"those slices all at once over {BROWSER_CONNECTIONS} connections (a browser's "
            "limit per host; fewer at level 0): wall time until the last one is in, and each "
            "request's latency under that load.",
            "",
            burst_table(run.slices.bursts),
        ]
    if run.browser:
        b = run.browser
        parts += [
            "",
            f"**In the browser** — headless Chromium on `/runs/{p.real_run}/view` (the page to "
            f"its first slice drawn: {b['open_ms']:.0f} ms), z stepped with the arrow keys and "
            "timed by the viewer itself (`window.viewerTimings`, key press → slice drawn and → "
            "the next frame): up from z = 0 with 120 ms between presses (the prefetch has "
            'time: "once loaded"), then down from the top with 33 ms between presses (a held '
            f"key). Target: a new slice in < {SLICE_TARGET_MS:.0f} ms.",
            "",
            browser_table(b),
        ]
    elif run.browser_note:
        parts += ["", f"**In the browser** — not run: {run.browser_note}."]
    if run.breakdown:
        parts += [
            "",
            "**Where the time goes** — the same pages in the benchmark's process (the app under "
            "FastAPI's test client, no HTTP, no other request running): the median of 7 "
            "requests; SQL: its statements replayed one by one on a raw connection with every "
            "row fetched (warm cache, the best of 3); other: Python (ORM, building the "
            "context, Jinja2). The slowest statement with SQLite's `EXPLAIN QUERY PLAN`.",
            "",
            explain_table(run.breakdown),
        ]
    if run.gc:
        g = run.gc

        def pauses(values: list[float]) -> str:
            if not values:
                return "none"
            return (
                f"{len(values)}, pause median {statistics.median(values):.0f} ms, "
                f"max {max(values):.0f} ms"
            )

        parts += [
            "",
            f'**Garbage collector** — {g.requests} requests of "{g.page}" in a fresh process '
            "holding only the app (under the test client) "
            f"({g.objects:,} objects tracked by the collector after them): full (generation 2) "
            f"collections: {pauses(g.full)}; request p95 {g.p95_ms:.0f} ms. The same after "
            f"`gc.freeze()` (start-up objects left out of collections): {pauses(g.frozen_full)}; "
            f"request p95 {g.frozen_p95_ms:.0f} ms.",
        ]
    missed = misses(run)
    parts += ["", "**Misses**" + (":" if missed else ": none."), ""]
    parts += [f"- {line}" for line in missed]
    close = misses(run, near=True)
    if close:
        parts += ["", "**Met with less than 10 % to spare**:", ""]
        parts += [f"- {line}" for line in close]
    return "\n".join(parts)


def write_results(path: Path, text: str) -> None:
    """Put ``text`` into the pages section of RESULTS.md."""
    header = "## pages\n\nRun with `python benchmarks/pages.py --write benchmarks/RESULTS.md`.\n\n"
    write_section(path, "pages", header + text)


def bench(run: Run, args: argparse.Namespace) -> None:
    fixture, picks = run.fixture, run.picks
    with Portal.open(fixture.root) as portal:
        data_dir = portal.data_dir
    target = picks.linked_omezarr if args.link else None
    with linked_pyramid(data_dir, target, picks.real_omezarr) as linked:
        run.linked = linked
        todo = pages(picks, linked=linked)
        with served(fixture.root) as server:
            _log(f"serving {fixture.root} at {server.base}")
            run.page_results = bench_pages(server, todo, args.warmup, args.repeat)
            expired = bench_expired_summary(server, args.expired_samples)
            if expired is not None:
                run.page_results.insert(2, expired)
            run.slices = bench_slices(server, picks.real_run, args.repeat, args.level0_repeat)
            run.slices.reads = level_reads(data_dir / picks.real_omezarr)
            want_browser = args.browser if args.browser is not None else chromium() is not None
            if want_browser and chromium() is None:
                run.browser_note = "Chromium not found"
            elif want_browser:
                slices = run.slices
                depth = slices.levels[slices.open_level]["shape_zyx"][0]
                steps = max(1, min(args.repeat, depth - 1))
                run.browser = bench_browser(server.base, picks.real_run, steps)
            else:
                run.browser_note = "--no-browser"
        if args.explain:
            run.breakdown = explain(fixture.root, todo)
            heavy = next(p for p in todo if p.path == f"/runs/{picks.class2d_run_most}")
            run.gc = gc_probe(fixture.root, heavy)


def main() -> None:
    if sys.argv[1:2] == ["--gc-probe"]:  # the child process of gc_probe()
        import json
        from dataclasses import asdict

        root, url, requests = sys.argv[2], sys.argv[3], int(sys.argv[4])
        probe = gc_probe_here(Path(root), Page(url, url), requests)
        print(json.dumps(asdict(probe)))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the 1/50 catalog: a smoke run")
    parser.add_argument("--repeat", type=int, default=30, help="timed requests per page")
    parser.add_argument("--warmup", type=int, default=3, help="untimed requests first")
    parser.add_argument("--level0-repeat", type=int, default=8, help="full-resolution slices")
    parser.add_argument(
        "--expired-samples", type=int, default=3, help="Browse requests after the cache expired"
    )
    parser.add_argument("--browser", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--explain", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--link", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--write", type=Path, help="update this RESULTS.md's pages section")
    args = parser.parse_args()
    if args.quick:
        args.repeat = min(args.repeat, 10)
        args.level0_repeat = min(args.level0_repeat, 3)
        args.expired_samples = min(args.expired_samples, 1)

    fixture = ensure_portal(None, quick=args.quick)
    picks = pick(fixture)
    run = Run(fixture, picks, args.quick, args.warmup, args.repeat, load_average())
    with OtherLoad() as other:
        bench(run, args)
    run.load_end = load_average()
    run.other_load = other.summary()
    text = report(run)
    print(text)
    if args.write:
        write_results(args.write, text)


if __name__ == "__main__":
    main()
