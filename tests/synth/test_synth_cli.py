"""``cryocurate synth …``: CliRunner for the output, the real entry point for errors."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cryocurate.cli.main import main
from cryocurate.cli.synth import app

runner = CliRunner()


def test_cryosparc_relion_project(tmp_path):
    r = runner.invoke(
        app,
        [
            "cryosparc",
            str(tmp_path / "J12"),
            "--classes",
            "10",
            "--box",
            "32",
            "--particles",
            "500",
            "--seed",
            "3",
            "--cs-format",
            "csdat",
            "--legacy-names",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "Wrote cryoSPARC job J12" in r.output and "10 classes" in r.output
    assert (tmp_path / "J12" / "cryosparc_P1_J12_020_particles.cs").read_bytes()[:6] == b"\x95CSDAT"

    r = runner.invoke(
        app,
        [
            "relion",
            str(tmp_path / "job006"),
            "--classes",
            "10",
            "--box",
            "32",
            "--particles",
            "400",
            "--relion-version",
            "3.0",
            "--continued",
            "--iterations",
            "3",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "final iteration 025" in r.output
    assert (tmp_path / "job006" / "run_ct15_it025_data.star").exists()

    r = runner.invoke(
        app,
        [
            "project",
            str(tmp_path / "CS-p"),
            "--jobs",
            "2",
            "--classes",
            "10",
            "--box",
            "32",
            "--particles",
            "300",
        ],
    )
    assert r.exit_code == 0, r.output
    assert (tmp_path / "CS-p" / "J2" / "J2_020_class_averages.mrc").exists()


def test_density_option(tmp_path):
    import mrcfile
    import numpy as np

    z, y, x = np.mgrid[-8:8, -8:8, -8:8]
    with mrcfile.new(tmp_path / "m.mrc") as m:
        m.set_data(np.exp(-(x**2 + 2 * y**2 + z**2) / 10.0).astype(np.float32))
    r = runner.invoke(
        app,
        [
            "cryosparc",
            str(tmp_path / "J3"),
            "--classes",
            "4",
            "--box",
            "32",
            "--particles",
            "100",
            "--density",
            str(tmp_path / "m.mrc"),
        ],
    )
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cryosparc", "OUT", "--box", "8"], "--box must be at least 16"),
        (["cryosparc", "OUT", "--particles", "-1"], "--particles must not be negative"),
        (["relion", "OUT", "--classes", "0"], "--classes must be at least 1"),
        (["relion", "OUT", "--relion-version", "2.0"], "--relion-version must be one of"),
        (["cryosparc", "OUT", "--cs-format", "xml"], "--cs-format must be one of"),
        (["cryosparc", "OUT", "--density", "NOPE.mrc"], "NOPE.mrc"),
        (["project", "OUT", "--jobs", "0"], "--jobs must be at least 1"),
    ],
)
def test_bad_options_exit_2(tmp_path, args, message, capsys):
    args = [str(tmp_path / "out") if a == "OUT" else a for a in args]
    args = [str(tmp_path / a) if a == "NOPE.mrc" else a for a in args]
    with pytest.raises(SystemExit) as info:
        main(["synth", *args])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert "Error:" in err and message in err
    assert "Traceback" not in err


@pytest.mark.parametrize("command", ["cryosparc", "relion", "project"])
def test_help_ends_with_an_example(command):
    r = runner.invoke(app, [command, "--help"])
    assert r.exit_code == 0
    assert "Example: cryocurate synth " + command in r.output
