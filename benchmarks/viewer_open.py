"""Benchmark: how long a 2 GB tomogram takes to open in View Tomogram.

A 1024×1024×512 float32 tomogram (2 GiB) with a few dense particles is written once, in
slabs, and ingested with `cryocurate ingest run` into a portal root cached under
`benchmarks/_data/viewer-2gb/`. A server (`cryocurate serve`, one worker) is started fresh,
then headless Debian Chromium opens `/runs/<id>/view` several times; each time is measured
from navigation start to the first slice drawn (the viewer's canvas gets `data-ready`).
The first open pays for loading the level the viewer opens on into the server; later opens
are what a second visitor sees. Baseline, side by side: the same browser opening a static
file of the server (`/static/viewer.js`), i.e. the cost of a page load itself.

Usage: python benchmarks/viewer_open.py [--opens 5] [--write benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import mrcfile
import numpy as np

from results import machine, write_section
from server import CHROMIUM, CHROMIUM_ARGS, served

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data" / "viewer-2gb"
SHAPE_ZYX = (512, 1024, 1024)


def cli(*argv: str) -> str:
    out = subprocess.run([sys.executable, "-m", "cryocurate", *argv], check=True,
                         capture_output=True, text=True)  # fmt: skip
    return out.stdout


def write_tomogram(path: Path) -> None:
    nz, ny, nx = SHAPE_ZYX
    rng = np.random.default_rng(0)
    with mrcfile.new_mmap(path, shape=SHAPE_ZYX, mrc_mode=2, overwrite=True) as m:
        m.voxel_size = 10.0
        yy, xx = np.mgrid[:ny, :nx]
        centres = rng.uniform(64, 960, size=(60, 2))
        blob = np.zeros((ny, nx), np.float32)
        for cy, cx in centres:
            blob += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 200.0).astype(np.float32)
        for z0 in range(0, nz, 32):
            slab = rng.normal(0, 0.3, (32, ny, nx)).astype(np.float32)
            slab += blob * np.float32(np.sin(np.pi * (z0 + 16) / nz))
            m.data[z0 : z0 + 32] = slab


def prepare() -> tuple[Path, int]:
    root = DATA / "portal"
    marker = DATA / "run_id"
    if marker.exists() and root.exists():
        return root, int(marker.read_text())
    DATA.mkdir(parents=True, exist_ok=True)
    tomo = DATA / "TS_2GB.mrc"
    print("  writing a 2 GiB tomogram …", file=sys.stderr, flush=True)
    write_tomogram(tomo)
    cli("init", str(root))
    cli("dataset", "create", str(root), "--title", "Viewer benchmark")
    print("  ingesting it (pyramid, key photos) …", file=sys.stderr, flush=True)
    out = cli("ingest", "run", str(root), "--dataset", "10000", str(tomo))
    run_id = int(out.split("Run ", 1)[1].split(" ", 1)[0])
    tomo.unlink()  # the portal keeps its own copy
    marker.write_text(str(run_id))
    return root, run_id


def measure(base: str, run_id: int, opens: int) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    out: dict[str, list[float]] = {"viewer": [], "static": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for _ in range(opens):
            for what, url in (("static", f"{base}/static/viewer.js"),
                              ("viewer", f"{base}/runs/{run_id}/view")):  # fmt: skip
                page = browser.new_page()
                start = time.perf_counter()
                page.goto(url)
                if what == "viewer":
                    page.wait_for_selector('canvas[data-ready="1"]', timeout=60_000)
                out[what].append((time.perf_counter() - start) * 1e3)
                page.close()
        browser.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--opens", type=int, default=5)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    root, run_id = prepare()
    with served(root, "/static/viewer.js", log=Path(os.devnull)) as (base, _server):
        t = measure(base, run_id, args.opens)
    v, s = t["viewer"], t["static"]
    rows = [
        "| open | ms |",
        "|---|---:|",
        f"| first open (the server loads the level the viewer opens on) | {v[0]:.0f} |",
        f"| later opens, median of {len(v) - 1} | {statistics.median(v[1:]):.0f} |",
        f"| later opens, max | {max(v[1:]):.0f} |",
        f"| baseline: a static file in the same browser, median | {statistics.median(s):.0f} |",
    ]
    nz, ny, nx = SHAPE_ZYX
    text = (
        f"## viewer open ({time.strftime('%Y-%m-%d')}, {machine()})\n\n"
        f"View Tomogram on a {nx}×{ny}×{nz} float32 tomogram "
        f"({nx * ny * nz * 4 / 2**30:.0f} GiB), headless Chromium, from navigation start to "
        "the first slice drawn. Target: under a second.\n\n" + "\n".join(rows)
    )
    print(text)
    if args.write:
        write_section(args.write, "viewer-open", text)


if __name__ == "__main__":
    main()
