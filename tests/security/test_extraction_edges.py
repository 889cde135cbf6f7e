"""Extraction given files that lie, as someone handing a lab a crafted job folder would.

* An MRC whose header says mode 1 (int16) while its data block has the size of float32: the
  file is twice the size its header implies, and read as int16 it would give images of noise
  that look like data. It must be refused (class averages of cryoSPARC and RELION jobs, and
  tomograms through ``cryocurate ingest run``), in one line that says what fits.
* A job whose final iteration lost its class averages while its ``.cs``/``.star`` files stay,
  with an earlier iteration complete: it must be refused by name, never silently extracted
  from the earlier iteration; ``--iteration N`` picks another one on purpose.

Each attack asserts exit status 2, one line naming the file, and a portal exactly as before.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest

from cryocurate.catalog.models import ClassAverage, Dataset, Run
from tests.cli_in_process import cli
from tests.ingest import tomo_data
from tests.ingest.conftest import portal_state

SMALL = ("--classes", 4, "--box", 32, "--particles", 300, "--seed", 1)
MRC_MODE_OFFSET = 12  # bytes: nx, ny, nz, then mode, as little-endian int32


def _state(root: Path) -> tuple[dict[str, tuple[int, int]], dict[str, int]]:
    return portal_state(root, (Dataset, Run, ClassAverage))


def _set_mode(path: Path, mode: int) -> None:
    head = bytearray(path.read_bytes())
    (old,) = struct.unpack("<i", head[MRC_MODE_OFFSET : MRC_MODE_OFFSET + 4])
    assert old == 2, "the synthetic stack should be float32"
    head[MRC_MODE_OFFSET : MRC_MODE_OFFSET + 4] = struct.pack("<i", mode)
    path.write_bytes(bytes(head))


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error")]


@pytest.fixture
def portal_with_a_run(tmp_path: Path, capsys) -> Path:
    """A portal holding one good extracted job, so "nothing changed" has something to lose."""
    root = tmp_path / "portal"
    assert cli(capsys, "init", root)[0] == 0
    good = tmp_path / "P1" / "J7"
    assert cli(capsys, "synth", "cryosparc", good, "--job", "J7", *SMALL)[0] == 0
    code, _, err = cli(capsys, "extract", good, "--root", root, "--dataset", "Lab")
    assert code == 0, err
    return root


def _synth(capsys, software: str, out: Path, *extra: object) -> Path:
    args = ("--job", "J12") if software == "cryosparc" else ()
    code, _, err = cli(capsys, "synth", software, out, *args, *SMALL, *extra)
    assert code == 0, err
    return out


def _final(job: Path, pattern: str) -> Path:
    return sorted(job.glob(pattern))[-1]


AVERAGES = {"cryosparc": "J12_*_class_averages.mrc", "relion": "run_it*_classes.mrcs"}


@pytest.mark.parametrize("software", ["cryosparc", "relion"])
def test_a_float32_stack_labelled_int16_is_refused(portal_with_a_run, tmp_path, capsys, software):
    root = portal_with_a_run
    job = _synth(capsys, software, tmp_path / "crafted" / "job006")
    stack = _final(job, AVERAGES[software])
    _set_mode(stack, 1)  # the header now says int16; the data block is float32's size
    before = _state(root)

    code, _, err = cli(capsys, "extract", job, "--root", root, "--dataset", "Lab")

    assert code == 2
    (line,) = _error_lines(err)
    assert stack.name in line
    assert "data size disagrees with the header" in line
    assert "mode 1 (int16)" in line and "fits mode 2 (float32)" in line
    assert "Traceback" not in err
    assert _state(root) == before


def test_a_stack_with_bytes_beyond_its_header_is_refused(portal_with_a_run, tmp_path, capsys):
    """The same lie told by the dimensions: a header of 4 classes over a file of 5."""
    root = portal_with_a_run
    job = _synth(capsys, "cryosparc", tmp_path / "J12")
    stack = _final(job, AVERAGES["cryosparc"])
    with stack.open("ab") as fh:
        fh.write(b"\0" * (32 * 32 * 4))
    before = _state(root)
    code, _, err = cli(capsys, "extract", job, "--root", root, "--dataset", "Lab")
    assert code == 2
    (line,) = _error_lines(err)
    assert stack.name in line and "data size disagrees with the header" in line
    assert _state(root) == before


def test_a_tomogram_labelled_int16_is_refused(portal_with_a_run, tmp_path, capsys):
    root = portal_with_a_run
    tomogram = tomo_data.write_tomogram(tmp_path / "TS_01.mrc", tomo_data.particle_centres())
    _set_mode(tomogram, 1)
    before = _state(root)
    code, _, err = cli(capsys, "ingest", "run", root, "--dataset", 10000, tomogram)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "TS_01.mrc" in lines[0] and "data size disagrees with the header" in lines[0]
    assert _state(root) == before


@pytest.mark.parametrize("software", ["cryosparc", "relion"])
def test_final_iteration_without_class_averages_is_refused(
    portal_with_a_run, tmp_path, capsys, software
):
    root = portal_with_a_run
    job = _synth(capsys, software, tmp_path / "attack" / "job006", "--iterations", 3)
    stacks = sorted(job.glob(AVERAGES[software]))
    assert len(stacks) == 3
    final = stacks[-1]
    final.unlink()  # its .cs / .star files stay; iterations before it are complete
    before = _state(root)

    code, _, err = cli(capsys, "extract", job, "--root", root, "--dataset", "Lab")

    assert code == 2
    (line,) = _error_lines(err)
    number = int(re.search(r"(\d{3})_(?:class_averages|classes)", final.name).group(1))
    assert f"final iteration {number:03d} is incomplete" in line
    assert f"missing class averages {final.name}" in line
    earlier = int(re.search(r"(\d{3})_(?:class_averages|classes)", stacks[1].name).group(1))
    assert f"--iteration {earlier}" in line
    assert _state(root) == before

    # Asked for on purpose, the earlier complete iteration is extracted, and says so.
    code, out, err = cli(
        capsys, "extract", job, "--root", root, "--dataset", "Lab", "--iteration", earlier,
        "--json",
    )  # fmt: skip
    assert code == 0, err
    (outcome,) = json.loads(out)
    assert (outcome["status"], outcome["iteration"]) == ("new", earlier)


def test_an_iteration_that_does_not_exist_is_refused(portal_with_a_run, tmp_path, capsys):
    root = portal_with_a_run
    job = _synth(capsys, "cryosparc", tmp_path / "J12", "--iterations", 3)
    before = _state(root)
    code, _, err = cli(capsys, "extract", job, "--root", root, "-d", "Lab", "--iteration", 7)
    assert code == 2
    (line,) = _error_lines(err)
    assert "has no iteration 007; its iterations are 000, 010, 020" in line
    assert _state(root) == before


def test_an_iteration_missing_one_metadata_file_is_refused(portal_with_a_run, tmp_path, capsys):
    """Asked for an iteration whose particles were deleted: refused by name, not skipped."""
    root = portal_with_a_run
    job = _synth(capsys, "relion", tmp_path / "Class2D" / "job006", "--iterations", 3)
    (job / "run_it012_data.star").unlink()
    before = _state(root)
    code, _, err = cli(capsys, "extract", job, "--root", root, "-d", "Lab", "--iteration", 12)
    assert code == 2
    (line,) = _error_lines(err)
    assert "iteration 012 is incomplete: missing particle data file run_it012_data.star" in line
    assert _state(root) == before
