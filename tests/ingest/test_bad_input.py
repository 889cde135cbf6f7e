"""Every kind of bad job the issue lists: one clear line, nothing written, the rest extracted.

Each case damages a copy of a real-format synthetic job, then runs the actual CLI on it
together with a good job, as a user would.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from cryocurate.ingest.discover import JobFiles, find_job
from tests.cli_in_process import cli as run_cli


def _rewrite_cs(path: Path, edit: Callable[[np.ndarray], np.ndarray]) -> None:
    arr = np.load(path, allow_pickle=False)
    np.save(open(path, "wb"), edit(arr))  # noqa: SIM115 - np.save closes nothing itself


def _truncate(path: Path, keep: float = 0.5) -> None:
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(int(size * keep))


def _set_pixels(path: Path, edit: Callable[[np.ndarray], np.ndarray]) -> None:
    with mrcfile.open(path, mode="r+", permissive=True) as m:
        m.set_data(edit(np.array(m.data)))


def _drop_field(field: str) -> Callable[[np.ndarray], np.ndarray]:
    def edit(arr: np.ndarray) -> np.ndarray:
        names = [n for n in arr.dtype.names if n != field]
        out = np.empty(len(arr), dtype=[(n, arr.dtype[n]) for n in names])
        for n in names:
            out[n] = arr[n]
        return out

    return edit


def _nan_pixel(data: np.ndarray) -> np.ndarray:
    data[1, 3, 4] = np.nan
    return data


def _class_out_of_range(arr: np.ndarray) -> np.ndarray:
    arr["alignments2D/class"][5] = 999
    return arr


def _idx_out_of_range(arr: np.ndarray) -> np.ndarray:
    arr["blob/idx"][0] = 57
    return arr


DAMAGES: dict[str, tuple[Callable[[JobFiles], None], str, str]] = {
    # name: (damage, file named in the message, words in the message)
    "missing particles": (lambda f: f.particles.unlink(), "particles.cs", "missing"),
    "unreadable metadata": (
        lambda f: (f.classes.unlink(), f.classes.symlink_to("/nonexistent/x.cs")),
        "class_averages.cs",
        "missing",
    ),
    "truncated MRC": (lambda f: _truncate(f.averages), "class_averages.mrc", "truncated"),
    "header promises more": (
        lambda f: _truncate(f.averages, keep=0.999),
        "class_averages.mrc",
        "promises",
    ),
    "not MRC": (
        lambda f: f.averages.write_text("this is not an image\n" * 100),
        "class_averages.mrc",
        "MRC",
    ),
    "cs not a dataset": (
        lambda f: f.classes.write_bytes(b"hello world, no dataset here" * 10),
        "class_averages.cs",
        "not a cryoSPARC",
    ),
    "cs lacks class field": (
        lambda f: _rewrite_cs(f.particles, _drop_field("alignments2D/class")),
        "particles.cs",
        "alignments2D/class",
    ),
    "class counts disagree": (
        lambda f: _rewrite_cs(f.classes, lambda a: a[:-1]),
        "class_averages",
        "classes but",
    ),
    "particle class out of range": (
        lambda f: _rewrite_cs(f.particles, _class_out_of_range),
        "particles.cs",
        "class 999",
    ),
    "blob idx out of range": (
        lambda f: _rewrite_cs(f.classes, _idx_out_of_range),
        "class_averages.cs",
        "out of range",
    ),
    "NaN pixels": (
        lambda f: _set_pixels(f.averages, _nan_pixel),
        "class_averages.mrc",
        "NaN",
    ),
    "non-square boxes": (
        lambda f: _set_pixels(f.averages, lambda d: np.ascontiguousarray(d[:, :, :40])),
        "class_averages.mrc",
        "not square",
    ),
}


@pytest.fixture
def root(tmp_path: Path, capsys) -> Path:
    code, _, _ = run_cli(capsys, "init", tmp_path / "portal")
    assert code == 0
    return tmp_path / "portal"


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_bad_job_gets_one_line_and_the_others_are_extracted(damage, job, root, capsys):
    good = job("relion", name="good")
    bad = job("cryosparc", name="bad")
    hurt, named_file, words = DAMAGES[damage]
    hurt(find_job(bad))
    code, out, err = run_cli(
        capsys, "extract", good, bad, "--root", root, "--dataset", "Mixed", "--workers", "2"
    )
    assert code == 2
    assert "Traceback" not in out + err
    error_lines = [line for line in err.splitlines() if line.startswith("error")]
    assert len(error_lines) == 1, err
    assert named_file in error_lines[0] and words in error_lines[0], error_lines[0]
    assert any(line.startswith("new") and "job006" in line for line in err.splitlines())
    # nothing written for the bad job
    written = {p.name for p in (root / "data" / "10000").iterdir()}
    assert written == {"dataset_metadata.json", "job006"}
    assert not any((root / "data" / ".staging").iterdir())


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda d: (d / "J5_class_averages.mrc").write_bytes(b"x" * 2000), "no iteration found"),
        (lambda d: (d / "readme.txt").write_text("hi"), "not a 2D classification job"),
    ],
)
def test_folders_that_are_no_job(make, words, tmp_path, root, capsys):
    d = tmp_path / "J5"
    d.mkdir()
    make(d)
    code, _, err = run_cli(capsys, "extract", d, "--root", root, "--dataset", "X")
    assert code == 2
    assert words in err and str(d) in err and "Traceback" not in err


def test_relion_class_number_out_of_range(job, root, capsys):
    d = job("relion")
    data = find_job(d).particles
    lines = data.read_text().splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("_rlnClassNumber"))
    column = int(lines[header].split("#")[1]) - 1
    last = len(lines) - 1
    while not lines[last].strip():
        last -= 1
    fields = lines[last].split()
    fields[column] = "77"
    lines[last] = " ".join(fields)
    data.write_text("\n".join(lines) + "\n")
    code, _, err = run_cli(capsys, "extract", d, "--root", root, "--dataset", "X")
    assert code == 2 and "_rlnClassNumber 77" in err and "data.star" in err


def test_usage_errors_are_one_line(root, capsys, tmp_path):
    code, _, err = run_cli(capsys, "extract", "--root", root, "--dataset", "X")
    assert code == 2 and "no jobs given" in err
    code, _, err = run_cli(capsys, "ls", tmp_path / "not-a-root")
    assert code == 2 and "not a portal root" in err and "cryocurate init" in err
    code, _, err = run_cli(capsys, "extract", tmp_path, "--root", root, "--dataset", "10500")
    assert code == 2 and "no dataset 10500" in err
    code, _, err = run_cli(
        capsys, "extract", tmp_path, "--root", root, "--dataset", "X", "--sample-type", "rock"
    )
    assert code == 2 and "sample type" in err
    assert "Traceback" not in err


def test_unreadable_file_as_non_root(job, root, capsys):
    if os.geteuid() == 0:
        pytest.skip("root reads any file; covered by the dangling-symlink case")
    d = job("cryosparc")
    find_job(d).particles.chmod(0)
    code, _, err = run_cli(capsys, "extract", d, "--root", root, "--dataset", "X")
    assert code == 2 and "particles.cs" in err
