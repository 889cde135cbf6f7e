"""Point annotations: portal ndjson, RELION STAR, copick JSON and CSV in; ndjson out; validation.

Every test writes a real file (by hand, as the tool that makes it would, or with our writer)
and reads it back. Expected numbers are worked out in the test from the format's definition,
and RELION rotations are checked against scipy and against RELION's own Euler formula.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from cryocurate.errors import FormatError, InputError, MissingFileError
from cryocurate.formats.annotations import (
    NDJSON_SUFFIX,
    Points,
    detect_format,
    read_copick,
    read_csv_points,
    read_ndjson,
    read_points,
    read_relion_star,
    relion_rotations,
    validate_mask,
    validate_points,
    write_ndjson,
)


def random_rotations(n: int, seed: int = 0) -> np.ndarray:
    return Rotation.random(n, random_state=seed).as_matrix()


def assert_proper_rotations(m: np.ndarray) -> None:
    eye = np.broadcast_to(np.eye(3), m.shape)
    np.testing.assert_allclose(m @ np.swapaxes(m, 1, 2), eye, atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(m), 1.0, atol=1e-12)


def relion_euler_matrix(rot: float, tilt: float, psi: float) -> np.ndarray:
    """RELION's ``Euler_angles2matrix`` (src/euler.cpp), written out independently."""
    a, b, g = np.radians([rot, tilt, psi])
    ca, sa, cb, sb, cg, sg = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(g), np.sin(g)
    cc, cs, sc, ss = cb * ca, cb * sa, sb * ca, sb * sa
    return np.array(
        [
            [cg * cc - sg * sa, cg * cs + sg * ca, -cg * sb],
            [-sg * cc - cg * sa, -sg * cs + cg * ca, sg * sb],
            [sc, ss, cb],
        ]
    )


# --------------------------------------------------------------------------------------------
# Points
# --------------------------------------------------------------------------------------------


def test_points_infer_kind_and_are_read_only():
    assert Points(np.zeros((2, 3))).kind == "point"
    assert Points(np.zeros((2, 3)), rotations=random_rotations(2)).kind == "orientedPoint"
    assert Points(np.zeros((2, 3)), instance_ids=[1, 2]).kind == "instancePoint"
    both = Points(np.zeros((2, 3)), rotations=random_rotations(2), instance_ids=[1, 2])
    assert both.kind == "orientedPoint" and both.instance_ids is None
    plain = both.as_kind("point")
    assert plain.kind == "point" and plain.rotations is None
    with pytest.raises(InputError, match="need rotation matrices"):
        plain.as_kind("orientedPoint")
    p = Points([[1, 2, 3]])
    with pytest.raises(ValueError):
        p.xyz[0, 0] = 5
    assert p.indices_zyx().tolist() == [[3, 2, 1]]
    np.testing.assert_allclose(p.angstrom(10.0), [[10, 20, 30]])


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"xyz": np.zeros((2, 2))}, "(n, 3)"),
        ({"xyz": np.zeros((2, 3)), "rotations": np.zeros((1, 3, 3))}, "(2, 3, 3)"),
        ({"xyz": np.zeros((2, 3)), "instance_ids": [1.5, 2]}, "integers"),
        ({"xyz": np.zeros((2, 3)), "kind": "orientedPoint"}, "rotation matrices"),
        ({"xyz": np.zeros((2, 3)), "kind": "instancePoint"}, "instance ids"),
        ({"xyz": np.zeros((2, 3)), "kind": "sphere"}, "unknown point kind"),
    ],
)
def test_points_refuse_inconsistent_arrays(kwargs, words):
    with pytest.raises(InputError, match=words):
        Points(**kwargs)


# --------------------------------------------------------------------------------------------
# ndjson
# --------------------------------------------------------------------------------------------


def test_ndjson_lines_are_exactly_the_portals(tmp_path):
    rot = [[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]
    write_ndjson(tmp_path / "a.ndjson", Points([[1.5, 2.0, 3.25]]))
    write_ndjson(tmp_path / "b.ndjson", Points([[1.5, 2.0, 3.25]], rotations=[rot]))
    write_ndjson(tmp_path / "c.ndjson", Points([[1.5, 2.0, 3.25]], instance_ids=[7]))
    assert (tmp_path / "a.ndjson").read_text() == (
        '{"type": "point", "location": {"x": 1.5, "y": 2.0, "z": 3.25}}\n'
    )
    assert (tmp_path / "b.ndjson").read_text() == (
        '{"type": "orientedPoint", "location": {"x": 1.5, "y": 2.0, "z": 3.25}, '
        '"xyz_rotation_matrix": [[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]}\n'
    )
    assert (tmp_path / "c.ndjson").read_text() == (
        '{"type": "instancePoint", "location": {"x": 1.5, "y": 2.0, "z": 3.25}, "instance_id": 7}\n'
    )
    assert list(json.loads((tmp_path / "b.ndjson").read_text())) == [
        "type",
        "location",
        "xyz_rotation_matrix",
    ]


@pytest.mark.parametrize("kind", ["point", "orientedPoint", "instancePoint"])
def test_ndjson_round_trip_is_exact(tmp_path, kind):
    rng = np.random.default_rng(1)
    n = 50
    points = Points(
        rng.uniform(0, 500, (n, 3)),
        rotations=random_rotations(n),
        instance_ids=rng.integers(1, 6, n),
        kind=kind,
    )
    path = tmp_path / f"ribosome-1.0{NDJSON_SUFFIX[kind]}"
    write_ndjson(path, points)
    for line in path.read_text().splitlines():  # byte for byte what json.dumps writes
        assert json.dumps(json.loads(line)) == line
    back = read_ndjson(path)
    assert back.kind == kind and len(back) == n
    np.testing.assert_array_equal(back.xyz, points.xyz)  # repr floats survive JSON exactly
    if kind == "orientedPoint":
        np.testing.assert_array_equal(back.rotations, points.rotations)
        assert back.instance_ids is None
    elif kind == "instancePoint":
        np.testing.assert_array_equal(back.instance_ids, points.instance_ids)
        assert back.rotations is None
    else:
        assert back.rotations is None and back.instance_ids is None
    assert not list(tmp_path.glob(".tmp-*"))  # written atomically, nothing left behind


def test_ndjson_reader_accepts_blank_lines_extra_keys_and_integers(tmp_path):
    path = tmp_path / "p.ndjson"
    path.write_text(
        '\n{"type": "instancePoint", "location": {"x": 1, "y": 2, "z": 3}, "instance_id": 4,'
        ' "score": 0.9}\n\n   \n'
        '{"type": "instancePoint", "location": {"x": 4.5, "y": 5, "z": 6}, "instance_id": 4.0}\n'
    )
    p = read_ndjson(path)
    assert p.kind == "instancePoint"
    assert p.xyz.tolist() == [[1, 2, 3], [4.5, 5, 6]]
    assert p.instance_ids.tolist() == [4, 4]


def test_empty_ndjson_is_zero_points(tmp_path):
    (tmp_path / "e.ndjson").write_text("\n")
    p = read_ndjson(tmp_path / "e.ndjson")
    assert len(p) == 0 and p.kind == "point" and p.xyz.shape == (0, 3)


GOOD = '{"type": "point", "location": {"x": 1, "y": 2, "z": 3}}'


@pytest.mark.parametrize(
    ("bad_line", "words"),
    [
        ('{"type": "point", "location": {"x": 1, "y": 2, "z": 3}', "not valid JSON"),
        ("[1, 2, 3]", "JSON list, not an object"),
        ('{"location": {"x": 1, "y": 2, "z": 3}}', "type is missing"),
        ('{"type": "sphere", "location": {"x": 1, "y": 2, "z": 3}}', "type is 'sphere'"),
        ('{"type": "point"}', 'lacks a "location"'),
        ('{"type": "point", "location": {"x": 1, "y": 2}}', "location.z is missing"),
        ('{"type": "point", "location": {"x": "1", "y": 2, "z": 3}}', "location.x is '1'"),
        ('{"type": "point", "location": {"x": NaN, "y": 2, "z": 3}}', "location.x is nan"),
        (
            '{"type": "orientedPoint", "location": {"x": 1, "y": 2, "z": 3}}',
            "type 'orientedPoint' in a file of 'point' annotations (line 1)",
        ),
    ],
)
def test_malformed_ndjson_line_names_file_and_line(tmp_path, bad_line, words):
    path = tmp_path / "bad_point.ndjson"
    path.write_text(f"{GOOD}\n\n{bad_line}\n{GOOD}\n")
    with pytest.raises(FormatError) as info:
        read_ndjson(path)
    message = str(info.value)
    assert message.startswith(f"{path}:3: ")
    assert words in message


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (
            '{"type": "orientedPoint", "location": {"x": 1, "y": 2, "z": 3}}',
            "xyz_rotation_matrix is missing",
        ),
        (
            '{"type": "orientedPoint", "location": {"x": 1, "y": 2, "z": 3}, '
            '"xyz_rotation_matrix": [[1, 0], [0, 1]]}',
            "not a 3×3 matrix",
        ),
        (
            '{"type": "instancePoint", "location": {"x": 1, "y": 2, "z": 3}, "instance_id": "a"}',
            "instance_id is 'a'",
        ),
    ],
)
def test_ndjson_matrix_and_id_errors(tmp_path, line, words):
    path = tmp_path / "x.ndjson"
    path.write_text(line + "\n")
    with pytest.raises(FormatError, match=words) as info:
        read_ndjson(path)
    assert str(info.value).startswith(f"{path}:1: ")


def test_ndjson_missing_and_binary_files(tmp_path):
    with pytest.raises(MissingFileError, match="file not found"):
        read_ndjson(tmp_path / "nope.ndjson")
    (tmp_path / "bin.ndjson").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(FormatError, match="not UTF-8"):
        read_ndjson(tmp_path / "bin.ndjson")


def test_writer_refuses_non_finite_and_leaves_old_file(tmp_path):
    path = tmp_path / "a.ndjson"
    write_ndjson(path, Points([[1, 2, 3]]))
    before = path.read_text()
    with pytest.raises(InputError, match=r"point 1 .* non-finite"):
        write_ndjson(path, Points([[1, 2, 3], [np.nan, 0, 0]]))
    assert path.read_text() == before


# --------------------------------------------------------------------------------------------
# RELION STAR
# --------------------------------------------------------------------------------------------

RELION31 = """
# version 30001

data_optics

loop_
_rlnOpticsGroupName #1
_rlnOpticsGroup #2
_rlnVoltage #3
_rlnSphericalAberration #4
_rlnImagePixelSize #5
_rlnImageSize #6
_rlnImageDimensionality #7
opticsGroup1            1   300.000000     2.700000    10.000000           64            3

# version 30001

data_particles

loop_
_rlnCoordinateX #1
_rlnCoordinateY #2
_rlnCoordinateZ #3
_rlnAngleRot #4
_rlnAngleTilt #5
_rlnAnglePsi #6
_rlnOriginXAngst #7
_rlnOriginYAngst #8
_rlnOriginZAngst #9
_rlnMicrographName #10
_rlnImageName #11
_rlnOpticsGroup #12
  420.000000   310.500000   120.000000    30.000000    50.000000    70.000000     5.000000   -10.000000     0.000000 Tomograms/TS_01.mrc Subtomograms/TS_01/000001_subtomo.mrc            1
  100.000000   200.000000    80.000000  -150.000000   120.000000    -5.500000     0.000000     0.000000    20.000000 Tomograms/TS_01.mrc Subtomograms/TS_01/000002_subtomo.mrc            1
  600.000000    40.000000   150.000000     0.000000     0.000000     0.000000     0.000000     0.000000     0.000000 Tomograms/TS_01.mrc Subtomograms/TS_01/000003_subtomo.mrc            1
"""  # noqa: E501


def test_relion31_with_optics_block_rescales_shifts_and_rotates(tmp_path):
    path = tmp_path / "run_data.star"
    path.write_text(RELION31)
    # picked on a 5 Å tomogram; the target tomogram has 10 Å voxels
    p = read_relion_star(path, 10.0, coordinate_pixel_size_a=5.0)
    coords = np.array([[420, 310.5, 120], [100, 200, 80], [600, 40, 150]], dtype=float)
    origins_a = np.array([[5, -10, 0], [0, 0, 20], [0, 0, 0]], dtype=float)
    np.testing.assert_allclose(p.xyz, (coords * 5.0 - origins_a) / 10.0)
    assert p.kind == "orientedPoint"
    angles = [[30, 50, 70], [-150, 120, -5.5], [0, 0, 0]]
    expected = Rotation.from_euler("ZYZ", angles, degrees=True).inv().as_matrix()
    np.testing.assert_allclose(p.rotations, expected, atol=1e-12)
    for m, a in zip(p.rotations, angles, strict=True):
        np.testing.assert_allclose(m, relion_euler_matrix(*a), atol=1e-12)
    assert_proper_rotations(p.rotations)
    # default pixel size is the voxel spacing (no tilt-series pixel size in data_optics)
    same = read_relion_star(path, 10.0)
    np.testing.assert_allclose(same.xyz, coords - origins_a / 10.0)
    # a run name matches the micrograph's file stem
    assert len(read_relion_star(path, 10.0, run_name="TS_01")) == 3


RELION30 = """
data_

loop_
_rlnCoordinateX #1
_rlnCoordinateY #2
_rlnCoordinateZ #3
_rlnAngleRot #4
_rlnAngleTilt #5
_rlnAnglePsi #6
_rlnOriginX #7
_rlnOriginY #8
_rlnOriginZ #9
_rlnMicrographName #10
_rlnMagnification #11
_rlnDetectorPixelSize #12
  210.000000   155.000000    60.000000    10.000000    20.000000    30.000000     1.500000    -2.000000     0.000000 Tomograms/TS_01/TS_01.mrc 10000.000000    13.480000
   50.000000    75.000000    40.000000   100.000000    90.000000   -45.000000     0.000000     0.000000     0.500000 Tomograms/TS_02/TS_02.mrc 10000.000000    13.480000
   20.000000    30.000000    10.000000     0.000000    10.000000     0.000000     0.000000     0.000000     0.000000 Tomograms/TS_01/TS_01.mrc 10000.000000    13.480000
"""  # noqa: E501


def test_relion30_origins_in_pixels_and_run_selection(tmp_path):
    path = tmp_path / "particles.star"
    path.write_text(RELION30)
    p = read_relion_star(path, 13.48, run_name="TS_01")
    np.testing.assert_allclose(p.xyz, [[210 - 1.5, 155 + 2, 60], [20, 30, 10]])
    expected = Rotation.from_euler("ZYZ", [[10, 20, 30], [0, 10, 0]], degrees=True).inv()
    np.testing.assert_allclose(p.rotations, expected.as_matrix(), atol=1e-12)
    assert_proper_rotations(p.rotations)
    # the full path works as a run name too; binned target: 2 × 13.48 Å voxels
    q = read_relion_star(
        path, 26.96, coordinate_pixel_size_a=13.48, run_name="Tomograms/TS_02/TS_02.mrc"
    )
    np.testing.assert_allclose(q.xyz, [[25, 37.5, 19.75]])


def test_relion_with_two_tomograms_needs_a_run_name(tmp_path):
    path = tmp_path / "particles.star"
    path.write_text(RELION30)
    with pytest.raises(FormatError, match="holds picks of 2 tomograms") as info:
        read_relion_star(path, 13.48)
    assert str(path) in str(info.value) and "pass the run name" in str(info.value)
    with pytest.raises(FormatError, match="no particle belongs to run 'TS_09'"):
        read_relion_star(path, 13.48, run_name="TS_09")


RELION4 = """
# version 50001

data_optics

loop_
_rlnOpticsGroup #1
_rlnOpticsGroupName #2
_rlnSphericalAberration #3
_rlnVoltage #4
_rlnTomoTiltSeriesPixelSize #5
_rlnCtfDataAreCtfPremultiplied #6
_rlnImageDimensionality #7
_rlnTomoSubtomogramBinning #8
_rlnImagePixelSize #9
_rlnImageSize #10
_rlnAmplitudeContrast #11
           1 opticsGroup1     2.700000   300.000000     1.350000            1            2     4.000000     5.400000           64     0.100000
           2 opticsGroup2     2.700000   300.000000     1.700000            1            2     4.000000     6.800000           64     0.100000

# version 50001

data_particles

loop_
_rlnTomoName #1
_rlnTomoParticleId #2
_rlnCoordinateX #3
_rlnCoordinateY #4
_rlnCoordinateZ #5
_rlnOriginXAngst #6
_rlnOriginYAngst #7
_rlnOriginZAngst #8
_rlnAngleRot #9
_rlnAngleTilt #10
_rlnAnglePsi #11
_rlnTomoSubtomogramRot #12
_rlnTomoSubtomogramTilt #13
_rlnTomoSubtomogramPsi #14
_rlnOpticsGroup #15
TS_01            1  2000.000000  1500.000000   600.000000     2.700000     0.000000    -1.350000    12.000000    34.000000    56.000000     0.000000     0.000000     0.000000            1
TS_01            2  1000.000000  3000.000000   300.000000     0.000000     0.000000     0.000000   -20.000000    80.000000   170.000000    90.000000    90.000000     0.000000            1
TS_02            3  1700.000000  1700.000000   340.000000     0.000000     3.400000     0.000000     0.000000     0.000000     0.000000     0.000000     0.000000     0.000000            2
"""  # noqa: E501


def test_relion4_uses_tilt_series_pixel_size_per_optics_group(tmp_path):
    path = tmp_path / "particles.star"
    path.write_text(RELION4)
    ts1 = read_relion_star(path, 10.8, run_name="TS_01")
    origin = np.array([[2.7, 0, -1.35], [0, 0, 0]])
    coords = np.array([[2000, 1500, 600], [1000, 3000, 300]], dtype=float)
    sub = Rotation.from_euler("ZYZ", [[0, 0, 0], [90, 90, 0]], degrees=True).inv().as_matrix()
    shifts = np.einsum("nij,nj->ni", sub, origin)
    np.testing.assert_allclose(ts1.xyz, (coords * 1.35 - shifts) / 10.8)
    particle = Rotation.from_euler("ZYZ", [[12, 34, 56], [-20, 80, 170]], degrees=True)
    np.testing.assert_allclose(ts1.rotations, sub @ particle.inv().as_matrix(), atol=1e-12)
    assert_proper_rotations(ts1.rotations)
    ts2 = read_relion_star(path, 13.6, run_name="TS_02")  # optics group 2: 1.7 Å pixels
    np.testing.assert_allclose(ts2.xyz, [[1700 * 1.7 / 13.6, (1700 * 1.7 - 3.4) / 13.6, 42.5]])
    np.testing.assert_allclose(ts2.rotations, [np.eye(3)], atol=1e-12)
    # an explicit pixel size overrides the file's
    np.testing.assert_allclose(
        read_relion_star(path, 13.6, run_name="TS_02", coordinate_pixel_size_a=13.6).xyz,
        [[1700, 1700 - 0.25, 340]],
    )


def test_relion5_centred_coordinates_need_the_tomogram_size(tmp_path):
    path = tmp_path / "particles.star"
    path.write_text(
        "data_particles\n\nloop_\n_rlnTomoName #1\n_rlnCenteredCoordinateXAngst #2\n"
        "_rlnCenteredCoordinateYAngst #3\n_rlnCenteredCoordinateZAngst #4\n"
        "TS_01 100.0 -200.0 0.0\nTS_01 0.0 0.0 -50.0\n"
    )
    with pytest.raises(FormatError, match="need the tomogram's size") as info:
        read_relion_star(path, 10.0)
    assert "tomogram_shape_xyz" in str(info.value)
    p = read_relion_star(path, 10.0, tomogram_shape_xyz=(630, 630, 200))
    np.testing.assert_allclose(p.xyz, [[325, 295, 100], [315, 315, 95]])
    assert p.kind == "point" and p.rotations is None


def test_relion_without_angles_gives_points(tmp_path):
    path = tmp_path / "picks.star"
    path.write_text(
        "data_\nloop_\n_rlnCoordinateX\n_rlnCoordinateY\n_rlnCoordinateZ\n1 2 3\n4 5 6\n"
    )
    p = read_relion_star(path, 7.0)
    assert p.kind == "point" and p.xyz.tolist() == [[1, 2, 3], [4, 5, 6]]


@pytest.mark.parametrize(
    ("columns", "row", "words"),
    [
        (["rlnAngleRot", "rlnAngleTilt"], "1 2", "not _rlnAnglePsi"),
        (["rlnImageName"], "a.mrc", "no _rlnCoordinateX/Y/Z"),
        (["rlnOriginXAngst", "rlnOriginYAngst", "rlnOriginZAngst"], "1 inf 3", "non-finite"),
        (["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"], "1 2 x", "non-number 'x'"),
    ],
)
def test_relion_errors_name_the_file(tmp_path, columns, row, words):
    path = tmp_path / "bad.star"
    base = ["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]
    if columns == ["rlnImageName"]:
        base = []
    header = "".join(f"_{c} #{i}\n" for i, c in enumerate(base + columns, start=1))
    values = "10 20 30 " if base else ""
    path.write_text(f"data_particles\n\nloop_\n{header}{values}{row}\n")
    with pytest.raises(FormatError, match=words) as info:
        read_relion_star(path, 10.0)
    assert str(path) in str(info.value)


def test_relion_run_name_without_name_column(tmp_path):
    path = tmp_path / "p.star"
    path.write_text("data_\nloop_\n_rlnCoordinateX\n_rlnCoordinateY\n_rlnCoordinateZ\n1 2 3\n")
    with pytest.raises(FormatError, match="no _rlnTomoName or _rlnMicrographName"):
        read_relion_star(path, 10.0, run_name="TS_01")


def test_relion_rotations_helper_matches_relion_formula():
    angles = np.random.default_rng(3).uniform(-180, 180, (20, 3))
    m = relion_rotations(angles)
    for got, a in zip(m, angles, strict=True):
        np.testing.assert_allclose(got, relion_euler_matrix(*a), atol=1e-12)
    assert relion_rotations(np.zeros((0, 3))).shape == (0, 3, 3)


# --------------------------------------------------------------------------------------------
# copick
# --------------------------------------------------------------------------------------------


def copick_file(path: Path, points: list[dict], **extra) -> Path:
    doc = {
        "pickable_object_name": "ribosome",
        "user_id": "curator",
        "session_id": "0",
        "run_name": "TS_01",
        "voxel_spacing": None,
        "unit": "angstrom",
        "trust_orientation": True,
        **extra,
        "points": points,
    }
    path.write_text(json.dumps(doc, indent=4))
    return path


def transform(rotation: np.ndarray, shift=(0.0, 0.0, 0.0)) -> list[list[float]]:
    t = np.eye(4)
    t[:3, :3] = rotation
    t[:3, 3] = shift
    return t.tolist()


def test_copick_picks_in_angstrom_with_rotations_and_shifts(tmp_path):
    rot = random_rotations(2, seed=5)
    path = copick_file(
        tmp_path / "curator_0_ribosome.json",
        [
            {
                "location": {"x": 1348.0, "y": 2696.0, "z": 674.0},
                "transformation_": transform(rot[0], (13.48, 0.0, -6.74)),
                "instance_id": 0,
                "score": 1.0,
            },
            {
                "location": {"x": 134.8, "y": 0.0, "z": 26.96},
                "transformation_": transform(rot[1]),
                "instance_id": 0,
                "score": 0.5,
            },
        ],
    )
    p = read_copick(path, 13.48)
    assert p.kind == "orientedPoint"
    np.testing.assert_allclose(p.xyz, [[101, 200, 49.5], [10, 0, 2]])
    np.testing.assert_allclose(p.rotations, rot, atol=1e-12)
    portal_like = read_copick(path, 13.48, include_translation=False)
    np.testing.assert_allclose(portal_like.xyz, [[100, 200, 50], [10, 0, 2]])
    assert detect_format(path) == "copick"


def test_copick_defaults_identity_and_instance_ids(tmp_path):
    path = copick_file(
        tmp_path / "p.json",
        [
            {"location": {"x": 10.0, "y": 20.0, "z": 30.0}},
            {"location": {"x": 10.0, "y": 20.0, "z": 40.0}, "instance_id": 3},
        ],
    )
    p = read_copick(path, 10.0)
    assert p.kind == "instancePoint" and p.instance_ids.tolist() == [0, 3]
    assert p.rotations is None  # a Points holds its kind's data only
    oriented = read_copick(path, 10.0, kind="orientedPoint")
    np.testing.assert_allclose(oriented.rotations, np.tile(np.eye(3), (2, 1, 1)))
    assert oriented.instance_ids is None
    plain = read_copick(path, 10.0, kind="point")
    assert plain.kind == "point" and plain.rotations is None and plain.instance_ids is None
    untrusted = copick_file(
        tmp_path / "u.json",
        [
            {
                "location": {"x": 0, "y": 0, "z": 0},
                "transformation_": transform(random_rotations(1)[0]),
            }
        ],
        trust_orientation=False,
    )
    assert read_copick(untrusted, 10.0).kind == "point"
    assert len(read_copick(copick_file(tmp_path / "e.json", None), 10.0)) == 0


@pytest.mark.parametrize(
    ("points", "extra", "words"),
    [
        ([{"location": {"x": 1, "y": 2}}], {}, "point 0 .*location.z is None"),
        ([{"location": {"x": 1, "y": 2, "z": 3}, "transformation_": [[1, 0], [0, 1]]}], {}, "4×4"),
        (
            [
                {"location": {"x": 1, "y": 2, "z": 3}},
                {
                    "location": {"x": 1, "y": 2, "z": 3},
                    "transformation_": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 1]],
                },
            ],
            {},
            "point 1 .*last row",
        ),
        ([{"location": {"x": 1, "y": 2, "z": 3}, "instance_id": "a"}], {}, "instance_id"),
        ([], {"unit": "nanometer"}, "unit is 'nanometer'"),
    ],
)
def test_copick_errors(tmp_path, points, extra, words):
    path = copick_file(tmp_path / "bad.json", points, **extra)
    with pytest.raises(FormatError, match=words) as info:
        read_copick(path, 10.0)
    assert str(path) in str(info.value)


def test_copick_not_json_names_the_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "points": [\n    {"location": }\n  ]\n}\n')
    with pytest.raises(FormatError, match="not valid JSON") as info:
        read_copick(path, 10.0)
    assert str(info.value).startswith(f"{path}:3: ")
    path.write_text('{"something": []}')
    with pytest.raises(FormatError, match='no top-level "points"'):
        read_copick(path, 10.0)


# --------------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "1.5,2,3\n4,5,6.25\n",
        "x,y,z\n1.5,2,3\n4,5,6.25\n",
        "# picks\nX Y Z\n1.5 2 3\n\n4\t5\t6.25\n",
        "1.5 2 3\n4 5 6.25",
        "id,score,z,y,x\n0,0.9,3,2,1.5\n1,0.8,6.25,5,4\n",
    ],
    ids=["no-header", "header", "whitespace-header", "whitespace", "reordered-columns"],
)
def test_csv_with_and_without_header(tmp_path, text):
    path = tmp_path / "picks.csv"
    path.write_text(text)
    p = read_csv_points(path)
    assert p.kind == "point"
    np.testing.assert_array_equal(p.xyz, [[1.5, 2, 3], [4, 5, 6.25]])


def test_csv_round_trip_and_instance_ids(tmp_path):
    xyz = np.random.default_rng(2).uniform(0, 100, (30, 3))
    path = tmp_path / "picks.txt"
    np.savetxt(path, xyz, delimiter=",", header="x,y,z", comments="")
    np.testing.assert_array_equal(read_csv_points(path).xyz, xyz)
    (tmp_path / "i.csv").write_text("x,y,z,instance_id\n1,2,3,7\n4,5,6,7\n")
    p = read_csv_points(tmp_path / "i.csv")
    assert p.kind == "instancePoint" and p.instance_ids.tolist() == [7, 7]


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("1,2,3\n4,5\n", 2, "2 columns where the first row has 3"),
        ("1,2,3\n4,five,6\n", 2, "y is 'five'"),
        ("1,2,3\n4,inf,6\n", 2, "y is 'inf'"),
        ("a,b,c\n1,2,3\n", 1, "header names no x, y, z column"),
        ("0,1,2,3\n", 1, "has 4 columns and no header"),
        ("x,y,z,instance_id\n1,2,3,1.5\n", 2, "instance_id is '1.5'"),
    ],
)
def test_csv_errors_name_the_line(tmp_path, text, line, words):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(FormatError, match=words) as info:
        read_csv_points(path)
    assert str(info.value).startswith(f"{path}:{line}: ")


# --------------------------------------------------------------------------------------------
# Format detection
# --------------------------------------------------------------------------------------------


def test_detect_format_by_extension_and_content(tmp_path):
    def put(name: str, text: str) -> Path:
        (tmp_path / name).write_text(text)
        return tmp_path / name

    assert detect_format(put("a.ndjson", GOOD)) == "ndjson"
    assert detect_format(put("a.star", RELION30)) == "star"
    assert detect_format(put("a.csv", "1,2,3\n")) == "csv"
    assert detect_format(put("a.txt", "1 2 3\n")) == "csv"
    assert detect_format(put("portal.json", GOOD + "\n" + GOOD)) == "ndjson"
    assert detect_format(put("noext", GOOD)) == "ndjson"
    assert detect_format(put("particles", RELION31)) == "star"
    assert detect_format(put("picks", "x y z\n1 2 3\n")) == "csv"
    assert detect_format(copick_file(tmp_path / "copick", [])) == "copick"
    with pytest.raises(FormatError, match="cannot tell") as info:
        detect_format(put("odd.json", '{"a": 1}'))
    assert "copick picks" in str(info.value)


def test_read_points_dispatches_and_needs_a_spacing(tmp_path):
    (tmp_path / "a.star").write_text(RELION31)
    with pytest.raises(InputError, match="voxel spacing"):
        read_points(tmp_path / "a.star")
    p = read_points(tmp_path / "a.star", voxel_spacing_a=10.0, coordinate_pixel_size_a=10.0)
    assert len(p) == 3 and p.kind == "orientedPoint"
    (tmp_path / "a.csv").write_text("1,2,3\n")
    assert read_points(tmp_path / "a.csv").xyz.tolist() == [[1, 2, 3]]
    with pytest.raises(InputError, match="take no options"):
        read_points(tmp_path / "a.csv", run_name="x")


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def test_valid_points_pass():
    p = Points([[0, 0, 0], [511, 511, 199], [10.5, 3.2, 0.0]], rotations=random_rotations(3))
    validate_points(p, (512, 512, 200), path="x.ndjson")
    validate_points(Points(np.zeros((0, 3))), (1, 1, 1))


def test_out_of_bounds_names_count_first_index_and_value():
    xyz = [[10, 10, 10], [511.5, 10, 10], [5, 5, 5], [-0.1, 3, 4]]
    with pytest.raises(FormatError) as info:
        validate_points(Points(xyz), (512, 512, 200), path="ribosome_point.ndjson")
    message = str(info.value)
    assert message.startswith("ribosome_point.ndjson: 2 of 4 points lie outside the tomogram")
    assert "0 ≤ x ≤ 511, 0 ≤ y ≤ 511, 0 ≤ z ≤ 199" in message
    assert "the first is point 1 at x=511.5, y=10, z=10" in message
    assert "z, y, x order" in message  # says what to check


def test_zyx_order_is_caught_as_out_of_bounds(tmp_path):
    path = tmp_path / "p.ndjson"
    write_ndjson(path, Points([[150, 400, 600]]))  # z, y, x written as x, y, z
    with pytest.raises(FormatError, match="1 of 1 points lie outside") as info:
        validate_points(read_ndjson(path), (630, 630, 200), path=path)
    assert str(path) in str(info.value)


def test_non_orthonormal_rotation_is_named():
    rot = random_rotations(4)
    rot[2] = rot[2] * 1.1
    rot[3] = np.round(rot[3], 1)  # rounded to one decimal: no longer orthonormal
    with pytest.raises(FormatError) as info:
        validate_points(Points(np.ones((4, 3)), rotations=rot), (10, 10, 10), path="a.ndjson")
    message = str(info.value)
    assert message.startswith("a.ndjson: 2 of 4 rotation matrices are not rotations")
    assert "the first, of point 2, is not orthonormal" in message


def test_reflection_det_minus_one_is_named():
    rot = random_rotations(3)
    rot[1] = rot[1] @ np.diag([1.0, 1.0, -1.0])  # orthonormal, det −1
    with pytest.raises(FormatError) as info:
        validate_points(Points(np.ones((3, 3)), rotations=rot), (10, 10, 10), path="b.ndjson")
    message = str(info.value)
    assert "b.ndjson: 1 of 3 rotation matrices are not rotations" in message
    assert "point 1, has determinant -1" in message and "reflection" in message


def test_small_rounding_is_tolerated():
    rot = np.round(random_rotations(5), 5)
    validate_points(Points(np.ones((5, 3)), rotations=rot), (10, 10, 10))


def test_object_count_is_checked():
    p = Points(np.ones((4, 3)), instance_ids=[1, 1, 2, 2])
    validate_points(p, (10, 10, 10), object_count=2)
    with pytest.raises(FormatError, match=r"2 distinct instance ids but .* object_count = 3"):
        validate_points(p, (10, 10, 10), object_count=3, path="x")
    with pytest.raises(FormatError, match="has 4 points but"):
        validate_points(p.as_kind("point"), (10, 10, 10), object_count=3, path="x")


def test_mask_shape_must_equal_tomogram_shape():
    validate_mask((200, 630, 630), (200, 630, 630))
    with pytest.raises(FormatError) as info:
        validate_mask((630, 630, 200), (200, 630, 630), path="membrane_segmentationmask.mrc")
    message = str(info.value)
    assert message.startswith("membrane_segmentationmask.mrc: segmentation mask is 630×630×200")
    assert "tomogram is 200×630×630" in message and "axes look reversed" in message
    with pytest.raises(FormatError, match="binned by 2"):
        validate_mask((100, 315, 315), (200, 630, 630), path="m.mrc")
    with pytest.raises(FormatError, match="at the tomogram's size"):
        validate_mask((200, 630, 631), (200, 630, 630), path="m.mrc")


def test_bad_tomogram_shape_is_refused():
    with pytest.raises(InputError, match="three positive sizes"):
        validate_points(Points(np.ones((1, 3))), (10, 10))
    assert math.isfinite(Points(np.ones((1, 3))).xyz.sum())
