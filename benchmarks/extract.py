"""Benchmark: how close extraction gets to the time it takes just to read its input.

Cases (from the foundation issue):

  a  one cryoSPARC job: 200 classes, 256 px, 2,000,000 particles
  b  40 cryoSPARC jobs: 100 classes, 128 px, 200,000 particles each

For each case the jobs are generated once with ``cryocurate synth`` (cached under
``benchmarks/_data/``), then, side by side in the same run:

* floor: reading every byte of every input file extraction must read (the final iteration's
  class averages, their metadata, the particles, job.json), warm page cache, one reader;
* read+sha256: the same, hashing as it reads (extraction records each input's SHA-256);
* extract: ``cryocurate extract`` into a fresh portal root (a subprocess, default workers);
* rerun: the same command again, which must find every job unchanged.

Peak memory is the largest sum of RSS over the extracting process and its workers, sampled
every 10 ms. Each timing is the median of ``--repeat`` runs.

Usage: python benchmarks/extract.py [--cases a b] [--repeat 3] [--write benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from cryocurate.ingest.discover import find_job
from cryocurate.synth import synth_cryosparc
from results import machine, write_section

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data"

CASES = {
    "a": {"jobs": 1, "n_classes": 200, "box": 256, "n_particles": 2_000_000},
    "b": {"jobs": 40, "n_classes": 100, "box": 128, "n_particles": 200_000},
}


@dataclass
class Result:
    case: str
    jobs: int
    input_mb: float
    floor_s: float
    hash_floor_s: float
    extract_s: float
    rerun_s: float
    peak_mb: float

    @property
    def ratio(self) -> float:
        return self.extract_s / self.floor_s


def make_jobs(case: str) -> list[Path]:
    spec = CASES[case]
    base = DATA / case
    jobs = []
    for i in range(spec["jobs"]):
        job_dir = base / f"J{100 + i}"
        if not (job_dir / "truth.csv").exists():
            shutil.rmtree(job_dir, ignore_errors=True)
            print(f"  generating {job_dir} …", file=sys.stderr, flush=True)
            synth_cryosparc(
                job_dir,
                n_classes=spec["n_classes"],
                box=spec["box"],
                n_particles=spec["n_particles"],
                seed=1000 + i,
                project_uid="P1",
                job_uid=f"J{100 + i}",
                iterations=1,
            )
        jobs.append(job_dir)
    return jobs


def input_files(jobs: list[Path]) -> list[Path]:
    return [f for j in jobs for f in find_job(j).inputs]


def read_all(files: list[Path], *, sha256: bool = False) -> float:
    """Seconds to read every byte of ``files`` (and, optionally, SHA-256 them) in one thread."""
    buf = bytearray(8 << 20)
    view = memoryview(buf)
    start = time.perf_counter()
    for f in files:
        digest = hashlib.sha256()
        with open(f, "rb", buffering=0) as fh:
            while n := fh.readinto(buf):
                if sha256:
                    digest.update(view[:n])
    return time.perf_counter() - start


def run_tracked(argv: list[str]) -> tuple[float, float]:
    """Run ``argv``; return (wall seconds, peak summed RSS of the process tree in MB)."""
    start = time.perf_counter()
    proc = psutil.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            try:
                procs = [proc, *proc.children(recursive=True)]
                total = 0
                for p in procs:
                    with contextlib.suppress(psutil.Error):
                        total += p.memory_info().rss
                peak = max(peak, total)
            except psutil.Error:
                pass
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"extraction failed ({proc.returncode}): {err.decode()[-2000:]}")
    return wall, peak / 2**20


def bench(case: str, repeat: int) -> Result:
    jobs = make_jobs(case)
    files = input_files(jobs)
    size_mb = sum(f.stat().st_size for f in files) / 2**20
    cli = [sys.executable, "-m", "cryocurate"]
    root = DATA / f"portal-{case}"
    read_all(files)  # warm the page cache
    floors, hash_floors, walls, peaks, reruns = [], [], [], [], []
    for _ in range(repeat):
        floors.append(read_all(files))
        hash_floors.append(read_all(files, sha256=True))
        shutil.rmtree(root, ignore_errors=True)
        subprocess.run([*cli, "init", str(root)], check=True, capture_output=True)
        argv = [*cli, "extract", *map(str, jobs), "--root", str(root), "--dataset", "bench"]
        wall, peak = run_tracked(argv)
        walls.append(wall)
        peaks.append(peak)
        reruns.append(run_tracked(argv)[0])
    shutil.rmtree(root, ignore_errors=True)
    return Result(
        case=case,
        jobs=len(jobs),
        input_mb=size_mb,
        floor_s=statistics.median(floors),
        hash_floor_s=statistics.median(hash_floors),
        extract_s=statistics.median(walls),
        rerun_s=statistics.median(reruns),
        peak_mb=max(peaks),
    )


def table(results: list[Result]) -> str:
    lines = [
        "| case | jobs | input MB | read floor s | read+sha256 s | extract s | ratio to read "
        "| ratio to read+sha256 | rerun s | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        spec = CASES[r.case]
        size = f"{spec['n_classes']} cl × {spec['box']} px × {spec['n_particles']:,} ptcl"
        label = f"{r.case}: {size}"
        lines.append(
            f"| {label} | {r.jobs} | {r.input_mb:,.0f} | {r.floor_s:.2f} | {r.hash_floor_s:.2f} "
            f"| {r.extract_s:.2f} | {r.ratio:.1f}× | {r.extract_s / r.hash_floor_s:.1f}× "
            f"| {r.rerun_s:.2f} | {r.peak_mb:,.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--write", type=Path, help="update this RESULTS.md section")
    args = parser.parse_args()
    results = [bench(case, args.repeat) for case in args.cases]
    text = (
        f"## extract ({time.strftime('%Y-%m-%d')}, {machine()})\n\n"
        + table(results)
        + "\n\nread floor: every input byte read once, warm page cache, one thread. read+sha256: "
        "the same plus the SHA-256 that class_averages_metadata.json records for each input. "
        "extract and rerun include the CLI's start-up. Goal: ≤ 2× the read floor, and < 1 GiB "
        "peak for a."
    )
    print(text)
    if args.write:
        write_section(args.write, "extract", text)


if __name__ == "__main__":
    main()
