"""Benchmark: how close extraction gets to the time it takes just to read its input.

Cases:

  a  one cryoSPARC job: 200 classes, 256 px, 1,000,000 particles (the job of issue #13,
     on which Magellon's extract_mrc.py took 1.78 s)
  b  40 cryoSPARC jobs: 100 classes, 128 px, 200,000 particles each

For each case the jobs are generated once with ``cryocurate synth`` (cached under
``benchmarks/_data/``), then, side by side in the same run:

* floor: reading every byte of every input file extraction must read (the final iteration's
  class averages, their metadata, the particles, job.json), warm page cache, one reader;
* read+sha256: the same, hashing as it reads (extraction records each input's SHA-256);
* extract: ``cryocurate extract`` into a fresh portal root (a subprocess, default workers);
* in-process: the same extraction timed inside a process that has already imported
  everything (``Extraction.run`` alone: extraction's own work, without the start-up);
* rerun: the same command again, which must find every job unchanged.

With ``--baseline SRC`` (the ``src`` folder of another checkout, e.g. made with
``git archive <commit> src | tar -x -C /tmp/base``) the baseline's extract and in-process
times are measured side by side, alternating with this tree's round by round; with
``--magellon DIR`` (a folder holding Magellon's ``extract_mrc.py`` and its ``massest/``;
it needs pandas, mrcfile, scipy and matplotlib) so is Magellon's whole process.

Peak memory is the largest sum of RSS over the extracting process and its workers, sampled
every 10 ms. Each timing is the median of ``--repeat`` runs.

Usage: python benchmarks/extract.py [--cases a b] [--repeat 3] [--baseline SRC]
       [--magellon DIR] [--write benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
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
    "a": {"jobs": 1, "n_classes": 200, "box": 256, "n_particles": 1_000_000},
    "b": {"jobs": 40, "n_classes": 100, "box": 128, "n_particles": 200_000},
}


SRC = HERE.parent / "src"

# Extraction's own work, in a process that has imported everything already: prints seconds.
IN_PROCESS = """
import sys, time
from pathlib import Path
from cryocurate.ingest.datasets import DatasetChoice
from cryocurate.ingest.extract import Extraction
from cryocurate.portal import Portal
root, jobs = Path(sys.argv[1]), [Path(j) for j in sys.argv[2:]]
with Portal.create(root) as portal:
    start = time.perf_counter()
    outcomes = Extraction(portal, DatasetChoice(spec="bench")).run(jobs)
    took = time.perf_counter() - start
assert all(o.status == "new" for o in outcomes), outcomes
print(took)
"""


@dataclass
class Result:
    case: str
    jobs: int
    input_mb: float
    floor_s: float
    hash_floor_s: float
    extract_s: float
    in_process_s: float
    rerun_s: float
    peak_mb: float
    base_extract_s: float | None = None
    base_in_process_s: float | None = None
    magellon_s: float | None = None
    magellon_peak_mb: float | None = None

    @property
    def ratio(self) -> float:
        return self.extract_s / self.floor_s


def make_jobs(case: str) -> list[Path]:
    spec = CASES[case]
    base = DATA / f"{case}-{spec['n_classes']}-{spec['box']}-{spec['n_particles']}"
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


def env_for(src: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(src)}


def run_tracked(
    argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[float, float]:
    """Run ``argv``; return (wall seconds, peak summed RSS of the process tree in MB)."""
    start = time.perf_counter()
    proc = psutil.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=cwd)
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


def extract_once(src: Path, jobs: list[Path], root: Path) -> tuple[float, float, float]:
    """(whole-process seconds, peak MB, rerun seconds) of ``cryocurate extract`` from ``src``."""
    cli = [sys.executable, "-m", "cryocurate"]
    shutil.rmtree(root, ignore_errors=True)
    subprocess.run([*cli, "init", str(root)], check=True, capture_output=True, env=env_for(src))
    argv = [*cli, "extract", *map(str, jobs), "--root", str(root), "--dataset", "bench"]
    wall, peak = run_tracked(argv, env_for(src))
    rerun = run_tracked(argv, env_for(src))[0]
    return wall, peak, rerun


def in_process_once(src: Path, jobs: list[Path], root: Path) -> float:
    shutil.rmtree(root, ignore_errors=True)
    proc = subprocess.run(
        [sys.executable, "-c", IN_PROCESS, str(root), *map(str, jobs)],
        capture_output=True,
        text=True,
        env=env_for(src),
    )
    if proc.returncode != 0:
        raise SystemExit(f"in-process extraction failed: {proc.stderr[-2000:]}")
    return float(proc.stdout.split()[-1])


def magellon_once(folder: Path, jobs: list[Path], out: Path) -> tuple[float, float]:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    if len(jobs) == 1:
        args = ["-j", str(jobs[0])]
    else:
        listing = out.parent / f"{out.name}-jobs.txt"
        listing.write_text("".join(f"{j}\n" for j in jobs))
        args = ["-l", str(listing)]
    return run_tracked([sys.executable, "extract_mrc.py", *args, "-d", str(out)], cwd=folder)


def bench(case: str, repeat: int, baseline: Path | None, magellon: Path | None) -> Result:
    jobs = make_jobs(case)
    files = input_files(jobs)
    size_mb = sum(f.stat().st_size for f in files) / 2**20
    read_all(files)  # warm the page cache
    trees = {"this": SRC, **({"base": baseline} if baseline is not None else {})}
    runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in trees}
    inproc: dict[str, list[float]] = {name: [] for name in trees}
    floors, hash_floors, mag = [], [], []
    for i in range(repeat):
        floors.append(read_all(files))
        hash_floors.append(read_all(files, sha256=True))
        order = list(trees) if i % 2 == 0 else list(trees)[::-1]
        for name in order:  # side by side, alternating who goes first
            runs[name].append(extract_once(trees[name], jobs, DATA / f"portal-{case}-{name}"))
            inproc[name].append(in_process_once(trees[name], jobs, DATA / f"inproc-{case}"))
        if magellon is not None:
            mag.append(magellon_once(magellon, jobs, DATA / f"magellon-{case}"))
    for name in trees:
        shutil.rmtree(DATA / f"portal-{case}-{name}", ignore_errors=True)
    shutil.rmtree(DATA / f"inproc-{case}", ignore_errors=True)
    shutil.rmtree(DATA / f"magellon-{case}", ignore_errors=True)

    def med(values: list[float]) -> float:
        return statistics.median(values)

    return Result(
        case=case,
        jobs=len(jobs),
        input_mb=size_mb,
        floor_s=med(floors),
        hash_floor_s=med(hash_floors),
        extract_s=med([r[0] for r in runs["this"]]),
        in_process_s=med(inproc["this"]),
        rerun_s=med([r[2] for r in runs["this"]]),
        peak_mb=max(r[1] for r in runs["this"]),
        base_extract_s=med([r[0] for r in runs["base"]]) if "base" in runs else None,
        base_in_process_s=med(inproc["base"]) if "base" in inproc else None,
        magellon_s=med([m[0] for m in mag]) if mag else None,
        magellon_peak_mb=max(m[1] for m in mag) if mag else None,
    )


def table(results: list[Result]) -> str:
    lines = [
        "| case | jobs | input MB | read floor s | read+sha256 s | extract s (whole process) "
        "| in-process s | in-process ÷ read+sha256 | rerun s | peak RSS MB "
        "| baseline extract s | baseline in-process s | baseline ÷ this (whole, in-process) "
        "| Magellon extract_mrc.py s (peak MB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        spec = CASES[r.case]
        size = f"{spec['n_classes']} cl × {spec['box']} px × {spec['n_particles']:,} ptcl"
        base = (
            f"{r.base_extract_s:.2f} | {r.base_in_process_s:.2f} "
            f"| {r.base_extract_s / r.extract_s:.2f}×, {r.base_in_process_s / r.in_process_s:.2f}×"
            if r.base_extract_s is not None and r.base_in_process_s is not None
            else "— | — | —"
        )
        mag = f"{r.magellon_s:.2f} ({r.magellon_peak_mb:,.0f})" if r.magellon_s else "—"
        lines.append(
            f"| {r.case}: {size} | {r.jobs} | {r.input_mb:,.0f} | {r.floor_s:.2f} "
            f"| {r.hash_floor_s:.2f} | {r.extract_s:.2f} | {r.in_process_s:.2f} "
            f"| {r.in_process_s / r.hash_floor_s:.1f}× | {r.rerun_s:.2f} | {r.peak_mb:,.0f} "
            f"| {base} | {mag} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="the src folder of the tree to compare")
    parser.add_argument("--magellon", type=Path, help="the folder holding extract_mrc.py")
    parser.add_argument("--write", type=Path, help="update this RESULTS.md section")
    args = parser.parse_args()
    load_start = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    baseline = args.baseline.resolve() if args.baseline else None
    magellon = args.magellon.resolve() if args.magellon else None
    results = [bench(case, args.repeat, baseline, magellon) for case in args.cases]
    load_end = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    command = "python benchmarks/extract.py --cases " + " ".join(args.cases)
    command += f" --repeat {args.repeat}"
    command += " --baseline SRC" if baseline else ""
    command += " --magellon DIR" if magellon else ""
    text = (
        f"## extract ({time.strftime('%Y-%m-%d')}, {machine()}; load average {load_start} at "
        f"the start, {load_end} at the end)\n\n"
        f"Run with `{command} --write benchmarks/RESULTS.md`.\n\n"
        + table(results)
        + "\n\nread floor: every input byte read once, warm page cache, one thread. read+sha256: "
        "the same plus the SHA-256 that class_averages_metadata.json records for each input. "
        "extract and rerun: whole processes, the CLI's start-up included; in-process: "
        "`Extraction.run` alone in a process that has imported everything. Medians of "
        f"{args.repeat} rounds, this tree and the baseline alternating. Targets (issue #13): "
        "case a ≤ 1.0 s whole process, in-process ≤ 2× read+sha256, peak < 300 MiB; case b "
        "in-process ≤ 2× read+sha256."
    )
    print(text)
    if args.write:
        write_section(args.write, "extract", text)


if __name__ == "__main__":
    main()
