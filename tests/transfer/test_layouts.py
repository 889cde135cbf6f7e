"""The two folder layouts, file by file: templates, conversion, listings, metadata paths."""

from __future__ import annotations

import json
import re

import pytest

from cryocurate.errors import InputError, NotFoundError
from cryocurate.portal import Portal
from cryocurate.store import layout, layouts
from cryocurate.transfer.download import list_entity

from .conftest import CLASS_RUN, TOMO_RUN

VS1 = f"{TOMO_RUN}/Tomograms/VoxelSpacing10.000"
VS2 = f"{TOMO_RUN}/Reconstructions/VoxelSpacing10.000"
CLASS_FILES = [f"{CLASS_RUN}/ClassAverages/Images/class_000{k}.png" for k in range(4)] + [
    f"{CLASS_RUN}/ClassAverages/class_averages.mrcs",
    f"{CLASS_RUN}/ClassAverages/class_averages_metadata.json",
    f"{CLASS_RUN}/run_metadata.json",
]
ZARR_TOMO = [".zattrs", ".zgroup", "0/.zarray", "0/0.0.0", "1/.zarray", "1/0.0.0"]
ZARR_MASK = [".zattrs", ".zgroup", "0/.zarray", "0/0.0.0"]

# A dataset with one 2D class run and one tomography run (tilt series, one tomogram, a point
# annotation and a mask annotation), file by file, in each layout.
V1_FILES = sorted(
    [
        "dataset_metadata.json",
        *CLASS_FILES,
        f"{TOMO_RUN}/run_metadata.json",
        f"{TOMO_RUN}/TiltSeries/TS_001.mrc",
        f"{TOMO_RUN}/TiltSeries/TS_001.rawtlt",
        f"{TOMO_RUN}/TiltSeries/tiltseries_metadata.json",
        f"{VS1}/CanonicalTomogram/TS_001.mrc",
        *[f"{VS1}/CanonicalTomogram/TS_001.zarr/{z}" for z in ZARR_TOMO],
        f"{VS1}/CanonicalTomogram/neuroglancer_config.json",
        f"{VS1}/CanonicalTomogram/tomogram_metadata.json",
        f"{VS1}/KeyPhotos/key-photo-snapshot.png",
        f"{VS1}/KeyPhotos/key-photo-thumbnail.png",
        f"{VS1}/Annotations/1-cytosolic_ribosome-1.0.json",
        f"{VS1}/Annotations/1-cytosolic_ribosome-1.0_point.ndjson",
        f"{VS1}/Annotations/2-membrane-1.0.json",
        f"{VS1}/Annotations/2-membrane-1.0_segmentationmask.mrc",
        *[f"{VS1}/Annotations/2-membrane-1.0_segmentationmask.zarr/{z}" for z in ZARR_MASK],
        f"{VS1}/NeuroglancerPrecompute/1-cytosolic_ribosome-1.0_point/info",
    ]
)
V2_FILES = sorted(
    [
        "dataset_metadata.json",
        *CLASS_FILES,
        f"{TOMO_RUN}/run_metadata.json",
        f"{TOMO_RUN}/TiltSeries/100/TS_001.mrc",
        f"{TOMO_RUN}/TiltSeries/100/TS_001.rawtlt",
        f"{TOMO_RUN}/TiltSeries/100/tiltseries_metadata.json",
        f"{VS2}/Tomograms/100/TS_001.mrc",
        *[f"{VS2}/Tomograms/100/TS_001.zarr/{z}" for z in ZARR_TOMO],
        f"{VS2}/Tomograms/100/tomogram_metadata.json",
        f"{VS2}/NeuroglancerPrecompute/100-neuroglancer_config.json",
        f"{VS2}/Images/100/key-photo-snapshot.png",
        f"{VS2}/Images/100/key-photo-thumbnail.png",
        f"{VS2}/Annotations/100/cytosolic_ribosome-1.0.json",
        f"{VS2}/Annotations/100/cytosolic_ribosome-1.0_point.ndjson",
        f"{VS2}/Annotations/101/membrane-1.0.json",
        f"{VS2}/Annotations/101/membrane-1.0_segmentationmask.mrc",
        *[f"{VS2}/Annotations/101/membrane-1.0_segmentationmask.zarr/{z}" for z in ZARR_MASK],
        f"{VS2}/NeuroglancerPrecompute/100-cytosolic_ribosome-1.0_point/info",
    ]
)


def _paths(listing) -> list[str]:
    prefix = f"{listing.dataset_id}/"
    assert all(e.path.startswith(prefix) for e in listing.entries)
    return [e.path[len(prefix) :] for e in listing.entries]


# ── templates ───────────────────────────────────────────────────────────────────────────────


class _Same:
    def tiltseries(self, run, source_id):
        return 100

    def tomogram(self, run, vs, source_id):
        return 100

    def annotation(self, run, vs, source_id):
        return source_id


@pytest.mark.parametrize(
    ("v1", "v2"),
    [
        ("run_metadata.json", "run_metadata.json"),
        ("TiltSeries/TS.mrc", "TiltSeries/100/TS.mrc"),
        ("Tomograms/VoxelSpacing13.48", "Reconstructions/VoxelSpacing13.480"),
        (
            "Tomograms/VoxelSpacing13.480/CanonicalTomogram/TS.zarr/0/.zarray",
            "Reconstructions/VoxelSpacing13.480/Tomograms/100/TS.zarr/0/.zarray",
        ),
        (
            "Tomograms/VoxelSpacing4.000/CanonicalTomogram/neuroglancer_config.json",
            "Reconstructions/VoxelSpacing4.000/NeuroglancerPrecompute/100-neuroglancer_config.json",
        ),
        (
            "Tomograms/VoxelSpacing4.000/KeyPhotos/key-photo-snapshot.png",
            "Reconstructions/VoxelSpacing4.000/Images/100/key-photo-snapshot.png",
        ),
        (
            "Tomograms/VoxelSpacing4.000/Annotations/7-ribosome-1.0_point.ndjson",
            "Reconstructions/VoxelSpacing4.000/Annotations/7/ribosome-1.0_point.ndjson",
        ),
        (
            "Tomograms/VoxelSpacing4.000/NeuroglancerPrecompute/7-ribosome-1.0_point/info",
            "Reconstructions/VoxelSpacing4.000/NeuroglancerPrecompute/7-ribosome-1.0_point/info",
        ),
        ("ClassAverages/Images/class_0001.png", "ClassAverages/Images/class_0001.png"),
        ("Frames/TS_001.eer", "Frames/TS_001.eer"),
    ],
)
def test_templates_convert_both_ways(v1, v2):
    ids = _Same()
    assert layouts.convert_run_path("TS", v1, layouts.V1, layouts.V2, ids) == v2
    back = layouts.convert_run_path("TS", v2, layouts.V2, layouts.V1, ids)
    assert back == re.sub(r"VoxelSpacing13\.48$", "VoxelSpacing13.480", v1)  # 3 decimals


def test_annotation_stems_agree_with_layout_py():
    name = layouts.annotation_name("Cytosolic Ribosome", "1.0")
    assert name == "cytosolic_ribosome-1.0"
    assert layout.annotation_stem(7, "Cytosolic Ribosome", "1.0") == f"7-{name}"
    assert layouts.split_annotation_stem(f"7-{name}") == (7, name)
    assert layouts.split_annotation_stem("julia_mahamid-ribosome-1.0") == (
        None,
        "julia_mahamid-ribosome-1.0",
    )
    assert layouts.V2.format("annotation", vs=13.48, annotation_id=100, name="x.json") == (
        "Reconstructions/VoxelSpacing13.480/Annotations/100/x.json"
    )


@pytest.mark.parametrize(
    ("rel", "public"),
    [
        ("10000/TS/TiltSeries/TS.mrc", True),
        ("10000/TS/a.zarr/0/.zarray", True),
        ("10000/TS/a.zarr/.tmp-x.json", False),
        ("10000/.staging/x", False),
        ("10000/TS/.tmp-abc.mrc", False),
        ("../etc/passwd", False),
        ("10000/../../x", False),
        ("/etc/passwd", False),
        ("10000//x", False),
        ("10000/./x", False),
        ("", False),
    ],
)
def test_public_paths(rel, public):
    assert layouts.is_public_path(rel) is public


def test_rewrite_paths_keeps_each_convention():
    moves = {
        "10000/r/A/x.mrc": "10000/r/B/1/x.mrc",
        "10000/r/A/k.png": "10000/r/C/1/k.png",
        "10000/r/A/m.json": "10000/r/B/1/m.json",
    }
    doc = {
        "near": "x.mrc",
        "up": "../A/k.png",
        "rooted": "10000/r/A/x.mrc",
        "list": ["x.mrc", "unknown.mrc"],
        "url": "https://example.org/10000/r/A/x.mrc",
        "n": 3,
    }
    out = layouts.rewrite_paths(doc, "10000/r/A/m.json", "10000/r/B/1/m.json", moves.get)
    assert out == {
        "near": "x.mrc",
        "up": "../../C/1/k.png",
        "rooted": "10000/r/B/1/x.mrc",
        "list": ["x.mrc", "unknown.mrc"],
        "url": "https://example.org/10000/r/A/x.mrc",
        "n": 3,
    }


# ── listings of the test dataset ────────────────────────────────────────────────────────────


def test_dataset_listing_v1_is_the_tree_as_stored(source):
    with Portal.open(source.root) as portal:
        listing = list_entity(portal, "dataset", source.dataset_id, "v1")
        assert _paths(listing) == V1_FILES
        for e in listing.entries:
            assert e.content is None
            assert e.source == portal.data_dir / e.path
            assert e.size == e.source.stat().st_size


def test_dataset_listing_v2_file_by_file(source):
    with Portal.open(source.root) as portal:
        listing = list_entity(portal, "dataset", source.dataset_id, "v2")
    assert _paths(listing) == V2_FILES
    made = {e.path.split("/", 1)[1] for e in listing.entries if e.content is not None}
    assert made == {  # only metadata whose paths changed is rewritten
        f"{TOMO_RUN}/TiltSeries/100/tiltseries_metadata.json",
        f"{VS2}/Tomograms/100/tomogram_metadata.json",
        f"{VS2}/Annotations/100/cytosolic_ribosome-1.0.json",
        f"{VS2}/Annotations/101/membrane-1.0.json",
    }
    assert listing.name == f"dataset-{source.dataset_id}-v2"


def test_v2_metadata_paths_are_rewritten(source):
    with Portal.open(source.root) as portal:
        listing = list_entity(portal, "dataset", source.dataset_id, "v2")
    docs = {
        e.path.split("/", 1)[1]: json.loads(e.content or e.source.read_bytes())
        for e in listing.entries
        if e.path.endswith(".json") and ".zarr/" not in e.path
    }
    tomo = docs[f"{VS2}/Tomograms/100/tomogram_metadata.json"]
    assert tomo["key_photo"] == {
        "snapshot": "../../Images/100/key-photo-snapshot.png",
        "thumbnail": "../../Images/100/key-photo-thumbnail.png",
    }
    assert tomo["neuroglancer_config_path"] == (
        "../../NeuroglancerPrecompute/100-neuroglancer_config.json"
    )
    assert tomo["mrc_files"] == ["TS_001.mrc"] and tomo["omezarr_dir"] == "TS_001.zarr"
    ts = docs[f"{TOMO_RUN}/TiltSeries/100/tiltseries_metadata.json"]
    assert ts["angle_list"] == "10000/TS_001/TiltSeries/100/TS_001.rawtlt"
    mask = docs[f"{VS2}/Annotations/101/membrane-1.0.json"]
    assert [f["path"] for f in mask["files"]] == [
        "membrane-1.0_segmentationmask.mrc",
        "membrane-1.0_segmentationmask.zarr",
    ]
    assert mask["confidence"]["ground_truth_used"] == (
        f"10000/{VS2}/Annotations/100/cytosolic_ribosome-1.0.json"
    )
    # every path named in the rewritten metadata exists in the download
    names = set(V2_FILES)
    dirs = {p.rsplit("/", i)[0] for p in names for i in range(1, p.count("/") + 1)}
    tomo_dir = f"{VS2}/Tomograms/100"
    for ref in [*tomo["key_photo"].values(), tomo["neuroglancer_config_path"]]:
        resolved = "/".join(_normpath(f"{tomo_dir}/{ref}"))
        assert resolved in names
    assert f"{tomo_dir}/{tomo['omezarr_dir']}" in dirs


def _normpath(path: str) -> list[str]:
    out: list[str] = []
    for part in path.split("/"):
        if part == "..":
            out.pop()
        elif part not in ("", "."):
            out.append(part)
    return out


@pytest.mark.parametrize("name", ["v1", "v2"])
def test_run_tomogram_and_annotation_listings_merge_into_the_dataset(source, name):
    full = V1_FILES if name == "v1" else V2_FILES
    vs = VS1 if name == "v1" else VS2
    with Portal.open(source.root) as portal:
        dataset = {e.path: e for e in list_entity(portal, "dataset", 10000, name).entries}
        run = list_entity(portal, "run", source.tomo_run_id, name)
        tomo = list_entity(portal, "tomogram", source.tomogram_id, name)
        point = list_entity(portal, "annotation", source.point_annotation_id, name)
        mask = list_entity(portal, "annotation", source.mask_annotation_id, name)
        classes = list_entity(portal, "run", source.class_run_id, name)
    assert _paths(run) == [p for p in full if p.startswith(f"{TOMO_RUN}/")] + [
        "dataset_metadata.json"
    ]
    assert _paths(classes) == [p for p in full if p.startswith(f"{CLASS_RUN}/")] + [
        "dataset_metadata.json"
    ]
    meta = [f"{TOMO_RUN}/run_metadata.json", "dataset_metadata.json"]
    if name == "v1":
        tomo_files = [p for p in full if "/CanonicalTomogram/" in p or "/KeyPhotos/" in p]
        point_files = [f"{vs}/Annotations/1-cytosolic_ribosome-1.0.json",
                       f"{vs}/Annotations/1-cytosolic_ribosome-1.0_point.ndjson"]  # fmt: skip
        mask_files = [p for p in full if "/Annotations/2-" in p]
    else:
        tomo_files = [
            p for p in full
            if "/Tomograms/100/" in p or "/Images/100/" in p or "100-neuroglancer_config" in p
        ]  # fmt: skip
        point_files = [p for p in full if "/Annotations/100/" in p]
        mask_files = [p for p in full if "/Annotations/101/" in p]
    assert sorted(_paths(tomo)) == sorted(tomo_files + meta)
    assert sorted(_paths(point)) == sorted(point_files + meta)
    assert sorted(_paths(mask)) == sorted(mask_files + meta)
    # a part's files are the dataset's, byte for byte (so downloads merge)
    for part in (run, tomo, point, mask, classes):
        for e in part.entries:
            whole = dataset[e.path]
            assert (e.content, e.source, e.size) == (whole.content, whole.source, whole.size)


def test_listing_refuses_unknown_ids_kinds_and_layouts(source):
    with Portal.open(source.root) as portal:
        with pytest.raises(NotFoundError, match="no dataset 99"):
            list_entity(portal, "dataset", 99)
        with pytest.raises(NotFoundError, match="no annotation 99"):
            list_entity(portal, "annotation", 99)
        with pytest.raises(InputError, match="cannot download"):
            list_entity(portal, "frames", 1)
        with pytest.raises(InputError, match="v1 or v2"):
            list_entity(portal, "run", source.tomo_run_id, "v3")


def test_listing_skips_hidden_and_half_written_files(source):
    with Portal.open(source.root) as portal:
        run_dir = layout.run_dir(portal.data_dir, 10000, TOMO_RUN)
        (run_dir / ".tmp-abc.mrc").write_bytes(b"half")
        (run_dir / "TiltSeries" / ".DS_Store").write_bytes(b"x")
        zarr = run_dir / "Tomograms/VoxelSpacing10.000/CanonicalTomogram/TS_001.zarr"
        (zarr / ".tmp-xyz.json").write_bytes(b"{")
        (portal.data_dir / "10000" / "orphan-run").mkdir()
        (portal.data_dir / "10000" / "orphan-run" / "x.mrc").write_bytes(b"x")
        listing = list_entity(portal, "dataset", 10000, "v1")
    assert _paths(listing) == V1_FILES
