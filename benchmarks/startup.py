"""Benchmark: how long a ``cryocurate`` command takes before it does anything.

Whole processes, warm cache (each command runs once before it is timed):

* ``cryocurate --help``, ``--version`` and ``<command> --help`` for every group and command
  (enumerated from the CLI's registry, ``cryocurate.cli.main.COMMANDS``);
* ``cryocurate serve ROOT``: from the process start to the first ``200`` of ``GET /``;
* ``cryocurate demo --no-serve`` on a demo folder that is already built (every job unchanged:
  what a user pays to start the demo again), and the first build once.

With ``--baseline SRC`` (the ``src`` folder of another checkout, e.g. made with
``git archive <commit> src | tar -x -C /tmp/base``) the same commands of that tree run side by
side: alternating, baseline first on even rounds and second on odd ones, so load from other
work on the machine falls on both alike. Times are medians of ``--repeat`` rounds.

Usage: python benchmarks/startup.py [--baseline /tmp/base/src] [--repeat 7]
       [--write benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from results import machine, write_section
from server import free_port

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
DATA = HERE / "_data" / "startup"
TARGET_S = 0.25


def env_for(src: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(src), "COLUMNS": "100"}


def cli(src: Path, *argv: str) -> list[str]:
    return [sys.executable, "-m", "cryocurate", *argv]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(src: Path, argv: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system) of one ``cryocurate ARGV`` process."""
    cpu, start = _children_cpu(), time.perf_counter()
    proc = subprocess.run(cli(src, *argv), env=env_for(src), capture_output=True)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{argv} failed: {proc.stderr.decode()[-1000:]}")
    return took, _children_cpu() - cpu


def serve_once(src: Path, root: Path) -> tuple[float, float]:
    """Seconds from starting ``cryocurate serve`` to its first 200 for ``GET /`` (wall), and
    the server's CPU seconds until it was stopped right after."""
    port = free_port()
    cpu, start = _children_cpu(), time.perf_counter()
    took = None
    proc = subprocess.Popen(
        cli(src, "serve", str(root), "--port", str(port)),
        env=env_for(src),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit("the server exited")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200:
                    took = time.perf_counter() - start
                    break
            time.sleep(0.01)
        else:
            raise SystemExit("the server did not answer within 60 s")
    finally:
        proc.terminate()
        proc.wait(10)
    return took, _children_cpu() - cpu


def command_paths() -> list[list[str]]:
    """[], then every group and command path, from the registry of this tree."""
    sys.path.insert(0, str(SRC))
    sys.path.insert(0, str(HERE.parent))
    from tests.cli.commands import all_commands

    return [path for path, _ in all_commands()]


def side_by_side(
    trees: dict[str, Path], measure: Callable[[Path], tuple[float, float]], repeat: int
) -> dict[str, list[tuple[float, float]]]:
    """``measure(src)`` for every tree, alternating the order round by round."""
    names = list(trees)
    for name in names:  # warm the page cache and the bytecode caches
        measure(trees[name])
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for i in range(repeat):
        for name in names if i % 2 == 0 else names[::-1]:
            times[name].append(measure(trees[name]))
    return times


def load() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", type=Path, help="the src folder of the tree to compare")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--write", type=Path, help="update this RESULTS.md section")
    args = parser.parse_args()
    trees = {"this tree": SRC}
    if args.baseline is not None:
        trees["baseline"] = args.baseline.resolve()
    load_start = load()

    rows: list[tuple[str, dict[str, list[tuple[float, float]]]]] = []
    quick = (["--help"], ["--version"], ["extract", "--help"], ["campaign", "create", "--help"])
    for argv in quick:
        rows.append(
            (
                f"`cryocurate {' '.join(argv)}`",
                side_by_side(trees, lambda src, a=argv: run_once(src, a), args.repeat),
            )
        )

    # every command's --help, this tree only (the baseline's take ~1.6 s each)
    per_command, per_command_cpu = {}, {}
    for path in command_paths():
        argv = [*path, "--help"]
        run_once(SRC, argv)
        runs = [run_once(SRC, argv) for _ in range(max(3, args.repeat // 2))]
        per_command[" ".join(path)] = statistics.median(t for t, _ in runs)
        per_command_cpu[" ".join(path)] = statistics.median(c for _, c in runs)
    slowest = max(per_command, key=per_command.__getitem__)

    # demo: built once per tree (that is the first-build row), then rerun side by side
    first_build: dict[str, float] = {}
    for name, src in trees.items():
        folder = DATA / name.replace(" ", "-")
        shutil.rmtree(folder, ignore_errors=True)
        first_build[name] = run_once(src, ["demo", "--dir", str(folder), "--no-serve"])[0]
    folder_of = {src: DATA / name.replace(" ", "-") for name, src in trees.items()}
    rows.append(
        (
            "`cryocurate serve ROOT` until `GET /` answers 200 (the demo's portal)",
            side_by_side(
                trees, lambda src: serve_once(src, folder_of[src] / "portal"), args.repeat
            ),
        )
    )
    rows.append(
        (
            "`cryocurate demo --no-serve`, again (4 jobs unchanged)",
            side_by_side(
                trees,
                lambda src: run_once(src, ["demo", "--dir", str(folder_of[src]), "--no-serve"]),
                args.repeat,
            ),
        )
    )

    has_base = "baseline" in trees
    head = "| command | this tree s (median) | min s | CPU s (median) |"
    rule = "|---|---:|---:|---:|"
    if has_base:
        head += " baseline s (median) | baseline CPU s | baseline ÷ this (wall, CPU) |"
        rule += "---:|---:|---:|"
    lines = [head, rule]
    for label, times in rows:
        mine = statistics.median(t for t, _ in times["this tree"])
        mine_cpu = statistics.median(c for _, c in times["this tree"])
        fastest = min(t for t, _ in times["this tree"])
        line = f"| {label} | {mine:.3f} | {fastest:.3f} | {mine_cpu:.3f} |"
        if has_base:
            base = statistics.median(t for t, _ in times["baseline"])
            base_cpu = statistics.median(c for _, c in times["baseline"])
            ratios = f"{base / mine:.1f}×, {base_cpu / mine_cpu:.1f}×"
            line += f" {base:.3f} | {base_cpu:.3f} | {ratios} |"
        lines.append(line)
    mine_build = first_build["this tree"]
    demo_line = f"| `cryocurate demo --no-serve`, first build (once) | {mine_build:.2f} | — | — |"
    if has_base:
        base_build = first_build["baseline"]
        demo_line += f" {base_build:.2f} | — | {base_build / mine_build:.1f}× |"
    lines.append(demo_line)
    helps = sorted(per_command.values())
    met = sum(t <= TARGET_S for t in helps)
    text = (
        f"## startup ({time.strftime('%Y-%m-%d')}, {machine()}; load average {load_start} at "
        f"the start, {load()} at the end)\n\n"
        f"Run with `python benchmarks/startup.py{' --baseline SRC' if has_base else ''} "
        f"--repeat {args.repeat} --write benchmarks/RESULTS.md`. Whole processes, warm cache, "
        f"medians of {args.repeat} alternating rounds (baseline: the tree before lazy command "
        "loading, `git archive 3badccc src`).\n\n"
        + "\n".join(lines)
        + f"\n\nEvery `cryocurate <command> --help` ({len(helps)} groups and commands, this tree, "
        f"median of {max(3, args.repeat // 2)} each): median {statistics.median(helps):.3f} s, "
        f"slowest {per_command[slowest]:.3f} s (`{slowest} --help`); {met} of {len(helps)} "
        f"within the {TARGET_S} s target. CPU (user + system) per --help: median "
        f"{statistics.median(per_command_cpu.values()):.3f} s, most "
        f"{max(per_command_cpu.values()):.3f} s."
    )
    print(text)
    if args.write:
        write_section(args.write, "startup", text)


if __name__ == "__main__":
    main()
