"""The data tree's layout, in the CryoET Data Portal's words (seed 004, "v1" layout).

::

    data/<dataset_id>/dataset_metadata.json
    data/<dataset_id>/<run_name>/run_metadata.json
    data/<dataset_id>/<run_name>/ClassAverages/class_averages.mrcs
    data/<dataset_id>/<run_name>/ClassAverages/class_averages_metadata.json
    data/<dataset_id>/<run_name>/ClassAverages/Images/class_0000.png …

Every path of the tree is built here and only here, so a download is a copy of a subtree and
a change of layout is a change of this module.
"""

from __future__ import annotations

from pathlib import Path

from cryocurate.store.names import check_segment, safe_segment

DATASET_METADATA = "dataset_metadata.json"
RUN_METADATA = "run_metadata.json"
CLASS_AVERAGES = "ClassAverages"
CLASS_AVERAGES_STACK = "class_averages.mrcs"
CLASS_AVERAGES_METADATA = "class_averages_metadata.json"
IMAGES = "Images"
STAGING = ".staging"


def dataset_dir(data_root: Path, dataset_id: int) -> Path:
    return data_root / str(dataset_id)


def run_dir(data_root: Path, dataset_id: int, run_name: str) -> Path:
    """The run's folder. A run name is one safe path segment (writers make it one with
    :func:`cryocurate.store.names.safe_segment`); any other is refused here, so no reader or
    writer ever builds a path out of the dataset folder from a stored name."""
    return dataset_dir(data_root, int(dataset_id)) / check_segment(run_name, what="run name")


def class_image_name(class_index: int) -> str:
    """``class_0007.png``: zero-padded so that file order is class order."""
    return f"class_{class_index:04d}.png"


def class_image_relpath(class_index: int) -> str:
    """Path of a class image relative to its run folder."""
    return f"{CLASS_AVERAGES}/{IMAGES}/{class_image_name(class_index)}"


def staging_root(data_root: Path) -> Path:
    """Where runs are built before they are swapped into place (same filesystem as data/)."""
    return data_root / STAGING


# ── tomography runs (seed 004's layout, the portal's "v1") ──────────────────────────────────
#
#   <run>/TiltSeries/<run>.mrc, <run>.rawtlt, tiltseries_metadata.json
#   <run>/Tomograms/VoxelSpacing<vs>/
#       CanonicalTomogram/<run>.mrc, <run>.zarr/, tomogram_metadata.json
#       Annotations/<id>-<object>-<version>.json, …_<shape>.ndjson | .mrc | .zarr
#       KeyPhotos/key-photo-snapshot.png, key-photo-thumbnail.png

TILT_SERIES = "TiltSeries"
TILT_SERIES_METADATA = "tiltseries_metadata.json"
TOMOGRAMS = "Tomograms"
CANONICAL_TOMOGRAM = "CanonicalTomogram"
TOMOGRAM_METADATA = "tomogram_metadata.json"
ANNOTATIONS = "Annotations"
KEY_PHOTOS = "KeyPhotos"
KEY_PHOTO_SNAPSHOT = "key-photo-snapshot.png"
KEY_PHOTO_THUMBNAIL = "key-photo-thumbnail.png"


def voxel_spacing_name(voxel_spacing_a: float) -> str:
    """``VoxelSpacing13.480``: three decimals, as the portal writes them today."""
    return f"VoxelSpacing{voxel_spacing_a:.3f}"


def voxel_spacing_dir(run: Path, voxel_spacing_a: float) -> Path:
    return run / TOMOGRAMS / voxel_spacing_name(voxel_spacing_a)


OBJECT_SLUG_CHARS = 64


def object_slug(name: str) -> str:
    """The portal's file-name form of an object name: lower case, ``[0-9a-z]`` kept, else ``_``
    (at most :data:`OBJECT_SLUG_CHARS` characters, so file names stay short enough)."""
    slug = "".join(c if c.isascii() and c.isalnum() else "_" for c in name.lower())
    return slug[:OBJECT_SLUG_CHARS]


def annotation_stem(annotation_id: int, object_name: str, version: str) -> str:
    """``<id>-<object>-<version>``, the v1 layout's annotation file stem (the version, which
    comes from input, made one safe path segment)."""
    version = safe_segment(version, what="annotation version")
    return f"{int(annotation_id)}-{object_slug(object_name)}-{version}"
