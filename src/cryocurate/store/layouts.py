"""The CryoET Data Portal's two folder layouts as path templates, and moving paths between them.

The data tree is stored in the seed's layout ("v1", built by :mod:`cryocurate.store.layout`).
The portal itself moved to another layout in 2024 ("v2"). Users have data in both, so
downloads can be written in either and ``import-czportal`` reads either. Rather than two copies
of the path logic, each layout is one table of templates; a path is *parsed* with the source
layout's templates (which slot it fills, with which voxel spacing and folder ids) and
*formatted* with the destination's. Run-relative templates (``{vs}`` is the voxel spacing folder,
``VoxelSpacing13.480``)::

    slot                 v1 (seed 004; our data tree)
                         v2 (the portal today)
    tiltseries           TiltSeries/
                         TiltSeries/{tiltseries_id}/
    voxel_spacing        Tomograms/{vs}/
                         Reconstructions/{vs}/
    tomogram             Tomograms/{vs}/CanonicalTomogram/
                         Reconstructions/{vs}/Tomograms/{tomogram_id}/
    neuroglancer_config  Tomograms/{vs}/CanonicalTomogram/neuroglancer_config.json
                         Reconstructions/{vs}/NeuroglancerPrecompute/
                             {tomogram_id}-neuroglancer_config.json
    key_photos           Tomograms/{vs}/KeyPhotos/
                         Reconstructions/{vs}/Images/{tomogram_id}/
    annotation           Tomograms/{vs}/Annotations/{annotation_id}-{name}
                         Reconstructions/{vs}/Annotations/{annotation_id}/{name}
    precompute           Tomograms/{vs}/NeuroglancerPrecompute/{annotation_id}-{name}
                         Reconstructions/{vs}/NeuroglancerPrecompute/{annotation_id}-{name}

(``{name}`` is ``<object>-<version>`` plus ``.json`` or
``_<shape>.<ext>``.) Dataset-level paths (``dataset_metadata.json``, ``Images/``), run
metadata, ``ClassAverages/`` (our 2D classification runs) and anything unknown are the same in
both. v1 holds one tilt series and one (canonical) tomogram per run and voxel spacing, so their
v2 folder ids are always 100; v2 folder ids are local counters starting at 100, so annotation
*n* of a voxel spacing (in annotation id order) is folder ``100 + n``. Voxel spacings are
written with three decimals (``VoxelSpacing13.480``), as :func:`layout.voxel_spacing_name`.

:func:`rewrite_paths` rewrites the file paths inside a metadata JSON document for its new
place, whichever convention the document uses (relative to its own folder, like
``"../KeyPhotos/key-photo-snapshot.png"``, or to the tree's root, like
``"10000/TS_026/TiltSeries/TS_026.mrc"``).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from cryocurate import atomic
from cryocurate.store import layout

LayoutName = Literal["v1", "v2"]
LAYOUT_NAMES: tuple[LayoutName, ...] = ("v1", "v2")

FIRST_FOLDER_ID = 100
"""v2 folder ids (tilt series, tomograms, annotations) are local counters starting here."""

RECONSTRUCTIONS = "Reconstructions"
NEUROGLANCER_PRECOMPUTE = "NeuroglancerPrecompute"
NEUROGLANCER_CONFIG = "neuroglancer_config.json"
V2_TOMOGRAMS = "Tomograms"

SLOTS = (
    "neuroglancer_config",
    "tomogram",
    "key_photos",
    "annotation",
    "precompute",
    "voxel_spacing",
    "tiltseries",
)
"""Slots in parsing order: the most specific template first."""


@dataclass(frozen=True)
class Layout:
    """One layout's run-relative templates (see the module docstring's table)."""

    name: LayoutName
    templates: dict[str, str]

    def format(self, slot: str, **fields: Any) -> str:
        """The run-relative path of ``slot`` (``vs`` is the voxel spacing in Å, a float)."""
        if "vs" in fields:
            fields["vs"] = layout.voxel_spacing_name(float(fields["vs"]))
        return self.templates[slot].format(**fields)


_VS = "{vs}"
V1 = Layout(
    name="v1",
    templates={
        "tiltseries": layout.TILT_SERIES,
        "voxel_spacing": f"{layout.TOMOGRAMS}/{_VS}",
        "neuroglancer_config": (
            f"{layout.TOMOGRAMS}/{_VS}/{layout.CANONICAL_TOMOGRAM}/{NEUROGLANCER_CONFIG}"
        ),
        "tomogram": f"{layout.TOMOGRAMS}/{_VS}/{layout.CANONICAL_TOMOGRAM}",
        "key_photos": f"{layout.TOMOGRAMS}/{_VS}/{layout.KEY_PHOTOS}",
        "annotation": f"{layout.TOMOGRAMS}/{_VS}/{layout.ANNOTATIONS}/{{annotation_id}}-{{name}}",
        "precompute": (
            f"{layout.TOMOGRAMS}/{_VS}/{NEUROGLANCER_PRECOMPUTE}/{{annotation_id}}-{{name}}"
        ),
    },
)
V2 = Layout(
    name="v2",
    templates={
        "tiltseries": f"{layout.TILT_SERIES}/{{tiltseries_id}}",
        "voxel_spacing": f"{RECONSTRUCTIONS}/{_VS}",
        "neuroglancer_config": (
            f"{RECONSTRUCTIONS}/{_VS}/{NEUROGLANCER_PRECOMPUTE}/"
            f"{{tomogram_id}}-{NEUROGLANCER_CONFIG}"
        ),
        "tomogram": f"{RECONSTRUCTIONS}/{_VS}/{V2_TOMOGRAMS}/{{tomogram_id}}",
        "key_photos": f"{RECONSTRUCTIONS}/{_VS}/{layout.IMAGES}/{{tomogram_id}}",
        "annotation": f"{RECONSTRUCTIONS}/{_VS}/{layout.ANNOTATIONS}/{{annotation_id}}/{{name}}",
        "precompute": (
            f"{RECONSTRUCTIONS}/{_VS}/{NEUROGLANCER_PRECOMPUTE}/{{annotation_id}}-{{name}}"
        ),
    },
)
LAYOUTS: dict[str, Layout] = {"v1": V1, "v2": V2}


def get(name: str) -> Layout:
    """The layout called ``name`` (``v1`` or ``v2``)."""
    try:
        return LAYOUTS[name]
    except KeyError:
        raise ValueError(f"unknown layout {name!r}; use v1 or v2") from None


_FIELD_PATTERNS = {
    "vs": r"(?P<vs>VoxelSpacing\d+(?:\.\d+)?)",
    "tiltseries_id": r"(?P<tiltseries_id>\d+)",
    "tomogram_id": r"(?P<tomogram_id>\d+)",
    "annotation_id": r"(?P<annotation_id>\d+)",
    "name": r"(?P<name>[^/]+)",
}


def _compile(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{\w+\})", template)
    regex = "".join(_FIELD_PATTERNS[p[1:-1]] if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"^{regex}(?:/(?P<tail>.+))?$")


_COMPILED = {
    name: [(slot, _compile(lay.templates[slot])) for slot in SLOTS] for name, lay in LAYOUTS.items()
}


@dataclass(frozen=True)
class Parsed:
    """What a run-relative path is in a layout: its slot, ids, voxel spacing and the rest."""

    slot: str
    vs: float | None = None
    tiltseries_id: int | None = None
    tomogram_id: int | None = None
    annotation_id: int | None = None
    name: str | None = None
    tail: str | None = None


def parse_run_path(rel: str, lay: Layout) -> Parsed | None:
    """Which slot of ``lay`` the run-relative path ``rel`` is in; None for other paths."""
    for slot, pattern in _COMPILED[lay.name]:
        m = pattern.match(rel)
        if m is None:
            continue
        g = m.groupdict()
        vs = float(g["vs"][len("VoxelSpacing") :]) if g.get("vs") else None
        return Parsed(
            slot=slot,
            vs=vs,
            tiltseries_id=_int(g.get("tiltseries_id")),
            tomogram_id=_int(g.get("tomogram_id")),
            annotation_id=_int(g.get("annotation_id")),
            name=g.get("name"),
            tail=g.get("tail"),
        )
    return None


def _int(value: str | None) -> int | None:
    return int(value) if value is not None else None


class FolderIds(Protocol):
    """How folder ids change between layouts (v1 has none for tilt series and tomograms).

    Each method returns the id to write in the destination layout, or None to leave the path
    out (a v2 folder that v1 has no place for).
    """

    def tiltseries(self, run: str, source_id: int | None) -> int | str | None: ...

    def tomogram(self, run: str, vs: float, source_id: int | None) -> int | str | None: ...

    def annotation(self, run: str, vs: float, source_id: int) -> int | str | None: ...


def convert_run_path(run: str, rel: str, src: Layout, dst: Layout, ids: FolderIds) -> str | None:
    """``rel`` (relative to run folder ``run``) in ``src``, as it is in ``dst``; None: dropped.

    Paths outside the slots (``run_metadata.json``, ``ClassAverages/…``, ``Frames/…``) are
    the same in both layouts.
    """
    p = parse_run_path(rel, src)
    if p is None:
        return rel
    fields: dict[str, Any] = {}
    if p.vs is not None:
        fields["vs"] = p.vs
    if p.slot == "tiltseries":
        new = ids.tiltseries(run, p.tiltseries_id)
        if new is None:
            return None
        fields["tiltseries_id"] = new
    elif p.slot in ("tomogram", "key_photos", "neuroglancer_config"):
        assert p.vs is not None
        new = ids.tomogram(run, p.vs, p.tomogram_id)
        if new is None:
            return None
        fields["tomogram_id"] = new
    elif p.slot in ("annotation", "precompute"):
        assert p.vs is not None and p.annotation_id is not None
        new = ids.annotation(run, p.vs, p.annotation_id)
        if new is None:
            return None
        fields["annotation_id"] = new
        fields["name"] = p.name
    out = dst.format(p.slot, **fields)
    return f"{out}/{p.tail}" if p.tail else out


def convert_tree_path(rel: str, src: Layout, dst: Layout, ids: FolderIds) -> str | None:
    """A path relative to the tree's root (``<dataset_id>/<run>/…``) in ``dst``; None: dropped."""
    parts = rel.split("/")
    if len(parts) < 3 or parts[1] == layout.IMAGES:  # dataset-level, or a run folder itself
        return rel
    converted = convert_run_path(parts[1], "/".join(parts[2:]), src, dst, ids)
    return None if converted is None else f"{parts[0]}/{parts[1]}/{converted}"


def annotation_name(object_name: str, version: str) -> str:
    """``<object>-<version>``: the part of an annotation's file names both layouts share.

    ``layout.annotation_stem(id, object, version) == f"{id}-{annotation_name(object, version)}"``.
    """
    return layout.annotation_stem(0, object_name, version).split("-", 1)[1]


def split_annotation_stem(stem: str) -> tuple[int | None, str]:
    """``"7-ribosome-1.0"`` → ``(7, "ribosome-1.0")``; a name without an id → ``(None, stem)``."""
    m = re.match(r"^(\d+)-(.+)$", stem)
    return (int(m.group(1)), m.group(2)) if m else (None, stem)


def is_inside_zarr(rel: str) -> bool:
    """True for files inside an OME-Zarr folder (their JSON is Zarr's, not the portal's)."""
    return any(part.endswith(".zarr") for part in rel.split("/")[:-1])


def is_public_path(rel: str) -> bool:
    """True for a relative path a download or the file server may show.

    No empty, ``.`` or ``..`` parts, and no dot-names (staging folders, swaps, half-written
    ``.tmp-`` files) except inside an OME-Zarr folder, whose Zarr v2 metadata lives in
    ``.zarray``/``.zattrs``/``.zgroup``.
    """
    if not rel or rel.startswith("/") or "\\" in rel or "\0" in rel:
        return False
    in_zarr = False
    for part in rel.split("/"):
        if part in ("", ".", ".."):
            return False
        if part.startswith(".") and (not in_zarr or part.startswith(atomic.TMP_PREFIX)):
            return False
        in_zarr = in_zarr or part.endswith(".zarr")
    return True


# ── paths inside metadata JSON ──────────────────────────────────────────────────────────────


def rewrite_paths(
    document: Any, src_file: str, dst_file: str, map_path: Callable[[str], str | None]
) -> Any:
    """``document`` (parsed JSON) with every string that names a file of the source tree
    rewritten to name the same file at its new place.

    ``src_file``/``dst_file`` are the document's own paths, relative to the source and
    destination roots. ``map_path`` maps a source-root-relative path to its destination (None
    when the source has no such path). A string is tried first relative to the document's own
    folder (then rewritten relative to the new folder), then relative to the root (then
    rewritten relative to the new root), so either convention survives. URLs and absolute
    paths are left alone.
    """
    src_dir = posixpath.dirname(src_file)
    dst_dir = posixpath.dirname(dst_file)

    def fix(value: str) -> str:
        if not value or "://" in value or value.startswith("/") or "\n" in value:
            return value
        trailing = "/" if value.endswith("/") else ""
        near = posixpath.normpath(posixpath.join(src_dir, value))
        if not near.startswith("../") and near != "..":
            mapped = map_path(near)
            if mapped is not None:
                return posixpath.relpath(mapped, dst_dir or ".") + trailing
        rooted = posixpath.normpath(value)
        if not rooted.startswith("../") and rooted not in (".", ".."):
            mapped = map_path(rooted)
            if mapped is not None:
                return mapped + trailing
        return value

    def walk(node: Any) -> Any:
        if isinstance(node, str):
            return fix(node)
        if isinstance(node, list):
            return [walk(v) for v in node]
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        return node

    return walk(document)


__all__ = [
    "LAYOUTS",
    "LAYOUT_NAMES",
    "V1",
    "V2",
    "FolderIds",
    "Layout",
    "LayoutName",
    "Parsed",
    "annotation_name",
    "convert_run_path",
    "convert_tree_path",
    "get",
    "is_inside_zarr",
    "is_public_path",
    "parse_run_path",
    "rewrite_paths",
    "split_annotation_stem",
]
